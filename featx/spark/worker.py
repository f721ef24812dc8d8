"""The executor side of :mod:`featx.spark`: find the artifact, load it once, run batches.

Everything here runs in Spark's Python workers. The functions are module-level, so the
job pickles them by reference and a worker runs them against this module's globals.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark import SparkFiles

from featx.api import load
from featx.errors import TruncationWarning
from featx.spark.job import Job, digest

logger = logging.getLogger("featx.spark")

# Models a Python worker keeps loaded (each holds an ONNX Runtime session: ~100-300 MB).
MAX_MODELS = 4
ARROW_TYPES = {"string": "string", "long": "int64", "double": "float64", "boolean": "bool_"}


# Models loaded in this Python worker, most recently used last. Spark reuses a Python
# worker for task after task (spark.python.worker.reuse, on by default) and the job's
# functions are pickled by reference to this module, so this dict lives as long as the
# worker: each worker loads an artifact once, not once per batch or task. With reuse
# off, or after a worker sat idle for a minute and was stopped, it loads once per task.
_MODELS: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def locate(job: Job) -> Path:
    """The artifact on this executor, checked against the driver's manifest.

    Looked for as the copy the driver shipped, at the driver's path (shared filesystem,
    local mode), and under the folder's name in SparkFiles (``--archives A.tar#NAME``).
    """
    candidates = []
    if job.shipped is not None:
        candidates.append(Path(SparkFiles.get(job.shipped)))
    candidates += [Path(job.path), Path(SparkFiles.get(Path(job.path).name))]
    for path in candidates:
        if digest(path) == job.digest:
            return path
    raise FileNotFoundError(
        f"featx.spark: the artifact {job.path} is not on this executor (looked in "
        f"{', '.join(map(str, candidates))}), or differs from the driver's copy. Ship it with "
        "ship=True (the default) or spark-submit --archives, or put it on a shared filesystem."
    )


def model_of(job: Job) -> Any:
    """The encoder or predictor of ``job``, loaded once per worker."""
    path = locate(job)
    key = (str(path.resolve()), job.digest, job.kind, job.options)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    options = dict(job.options)
    started = time.perf_counter()
    if job.kind == "embed":
        model: Any = load(path, **{k: v for k, v in options.items() if v is not None})
    elif job.kind == "answer":
        from featx.qa.answerer import Answerer

        model = Answerer.load(path, threads=options["threads"])
    else:
        from featx.predictor import Predictor, embedders  # only predict jobs need scikit-learn

        model = Predictor.load(path)
        for embedder in embedders(model.estimator):
            embedder.threads = options["threads"]
            embedder.batch_size = options["batch_size"]
            embedder.get_encoder()  # load now, so that the load is timed as one
    seconds = time.perf_counter() - started
    logger.info("featx.spark: loaded %s in %.2f s (pid %d)", path, seconds, os.getpid())
    if job.stats is not None:
        job.stats.add(loads=1, load_seconds=seconds)
    _MODELS[key] = model
    while len(_MODELS) > MAX_MODELS:
        _MODELS.popitem(last=False)
    return model


def _present(
    batch: pa.RecordBatch, text_col: str, *, blank: bool = True
) -> tuple[list[str], list[int]]:
    """The texts to run and their rows: null, empty (and, unless ``blank``, blank) left out.

    Rows left out get null; a predictor refuses whitespace-only texts, so predict drops them.
    """
    texts = batch.column(text_col).to_pylist()
    keep = [i for i, text in enumerate(texts) if text and (blank or text.strip())]
    return [texts[i] for i in keep], keep


def _with(batch: pa.RecordBatch, names: tuple[str, ...], arrays: list[Any]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [*batch.columns, *arrays], names=[*batch.schema.names, *names]
    )


def _account(job: Job, batch: pa.RecordBatch, n_texts: int, n_cut: int, started: float) -> None:
    """Log the batch's truncated texts and add the batch to the job's counters."""
    if n_cut:
        logger.warning(
            "featx.spark: %d of %d texts in this batch were longer than the model's max "
            "length and were truncated. Pass long_text='chunk_mean' to embed them whole.",
            n_cut,
            n_texts,
        )
    if job.stats is not None:
        job.stats.add(
            texts=n_texts,
            nulls=batch.num_rows - n_texts,
            truncated=n_cut,
            batches=1,
            run_seconds=time.perf_counter() - started,
        )


def run_embed(job: Job, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each batch with its embedding column appended (``mapInArrow`` function)."""
    import numpy as np

    for batch in batches:
        started = time.perf_counter()
        texts, keep = _present(batch, job.text_col)
        n_cut = 0
        if texts:
            encoder = model_of(job)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TruncationWarning)  # counted and logged below
                result = encoder.encode_with_info(texts, show_progress=False)
            vectors = np.ascontiguousarray(result.embeddings, dtype=np.float32)
            n_cut = int(result.truncated.sum())
        else:
            vectors = np.zeros((0, 0), dtype=np.float32)
        # One list array over the flat vectors: rows without a text are null (empty span).
        sizes = np.zeros(batch.num_rows, dtype=np.int32)
        sizes[keep] = vectors.shape[1] if len(keep) else 0
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        valid = np.zeros(batch.num_rows, dtype=bool)
        valid[keep] = True
        column = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(vectors.reshape(-1)), mask=pa.array(~valid)
        )
        _account(job, batch, len(texts), n_cut, started)
        yield _with(batch, job.out_cols, [column])


def run_predict(job: Job, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each batch with its label (and probability) columns appended (``mapInArrow``)."""
    value_type = getattr(pa, ARROW_TYPES[job.value_type])()
    label_type = pa.list_(value_type) if job.multilabel else value_type
    convert = {"string": str, "long": int, "double": float, "boolean": bool}[job.value_type]
    with_proba = len(job.out_cols) == 2
    for batch in batches:
        started = time.perf_counter()
        texts, keep = _present(batch, job.text_col, blank=False)
        labels: list[Any] = [None] * batch.num_rows
        probas: list[Any] = [None] * batch.num_rows
        n_cut = 0
        if texts:
            model = model_of(job)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TruncationWarning)
                records = model.records(texts, proba=with_proba)
            for w in caught:  # count truncations (as in run_embed); pass the rest on
                if isinstance(w.message, TruncationWarning):
                    n_cut += w.message.n_truncated
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            for row, record in zip(keep, records, strict=True):
                value = record.get("label", record.get("labels", record.get("score")))
                if job.multilabel:
                    labels[row] = [convert(v) for v in value]
                else:
                    labels[row] = convert(value)
                if with_proba:
                    probas[row] = list(record["probabilities"].items())
        arrays = [pa.array(labels, type=label_type)]
        if with_proba:
            arrays.append(pa.array(probas, type=pa.map_(pa.string(), pa.float64())))
        _account(job, batch, len(texts), n_cut, started)
        yield _with(batch, job.out_cols, arrays)


def run_answer(job: Job, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each batch with its answer struct column appended (``mapInArrow`` function)."""
    assert job.context_col is not None  # set by featx.spark.answer
    fields = {"answer": pa.string(), "score": pa.float64(), "start": pa.int64(), "end": pa.int64()}
    span = pa.struct(list(fields.items()))
    for batch in batches:
        started = time.perf_counter()
        questions = batch.column(job.text_col).to_pylist()
        contexts = batch.column(job.context_col).to_pylist()
        keep = [
            i for i, (q, c) in enumerate(zip(questions, contexts, strict=True))
            if q and q.strip() and c and c.strip()
        ]  # fmt: skip
        answers: list[Any] = [None] * batch.num_rows
        if keep:
            spans = model_of(job).answer_batch([(questions[i], contexts[i]) for i in keep])
            for row, found in zip(keep, spans, strict=True):
                answers[row] = found.to_dict()
        _account(job, batch, len(keep), 0, started)
        yield _with(batch, job.out_cols, [pa.array(answers, type=span)])
