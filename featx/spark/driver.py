"""The driver side of :mod:`featx.spark`: check the column and the artifact, ship it, map.

The executors run :mod:`featx.spark.worker` over Arrow batches (``DataFrame.mapInArrow``).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    FloatType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from featx.artifact import MANIFEST, Artifact, Kind
from featx.config import LongText, Task, parse_enum
from featx.encoders.onnx import CPU, choose_precision
from featx.errors import ModelLoadError
from featx.spark.job import Job, digest
from featx.spark.ship import ship as ship_artifact
from featx.spark.worker import run_answer, run_embed, run_predict

logger = logging.getLogger(__name__)

# Spark types of label values (the workers build them with the matching Arrow types).
_SPARK_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "long": LongType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
}


class JobStats:
    """Counters the executors fill in while a job runs (Spark accumulators).

    Pass one to :func:`embed` or :func:`predict`, run an action, then read
    :meth:`to_dict`. Like all accumulators updated in transformations, a retried or
    re-run task counts again.

    Args:
        spark: The session whose SparkContext holds the accumulators.
    """

    FIELDS = ("texts", "nulls", "truncated", "batches", "loads", "load_seconds", "run_seconds")

    def __init__(self, spark: SparkSession) -> None:
        sc = spark.sparkContext
        self._accumulators = {
            name: sc.accumulator(0.0 if name.endswith("seconds") else 0) for name in self.FIELDS
        }

    def add(self, **values: float) -> None:
        """Add to counters (called on the executors)."""
        for name, value in values.items():
            self._accumulators[name].add(value)

    def to_dict(self) -> dict[str, float]:
        """The counters, summed over workers.

        ``texts`` run, ``nulls`` (null or empty texts), ``truncated`` texts, Arrow
        ``batches``, artifact ``loads``, ``load_seconds`` and ``run_seconds`` (time in
        embedding or predicting, loads included).
        """
        return {name: acc.value for name, acc in self._accumulators.items()}


def embed(
    df: DataFrame,
    text_col: str,
    artifact: str | os.PathLike[str],
    *,
    out_col: str = "embedding",
    vector: bool = False,
    batch_size: int = 32,
    threads: int | None = None,
    precision: str | None = None,
    long_text: str | None = None,
    ship: bool = True,
    stats: JobStats | None = None,
) -> DataFrame:
    """Add a column with the embedding of each text of ``df[text_col]``.

    Lazy like any transformation: nothing runs until an action (``write``, ``count``).
    Rows keep their order and their other columns. A null or empty text gets a null
    embedding. An over-long text is handled as the artifact says (truncated, unless it was
    exported with ``long_text="chunk_mean"``); truncations raise no warning per batch but
    are logged by the executors and counted in ``stats``.

    Args:
        df: The input DataFrame.
        text_col: Name of its string column of texts.
        artifact: An artifact directory made by ``featx export`` (or ``featx train``),
            readable on the driver.
        out_col: Name of the new column: ``array<float>``, or a Spark ML vector.
        vector: Give a ``pyspark.ml.linalg`` dense vector instead of an array.
        batch_size: Most texts per forward pass.
        threads: ONNX Runtime threads per task; default ``spark.task.cpus`` (1 unless set).
        precision: ``"fp32"`` or ``"int8"``; default: the artifact's.
        long_text: ``"truncate"``, ``"chunk_mean"`` or ``"chunk_max"``; default: the
            artifact's.
        ship: Send the artifact to the executors with the job. Pass False when
            ``artifact`` is readable at the same path on every executor (a shared
            filesystem, local mode, or already sent with ``spark-submit --archives``).
        stats: Counters to fill in while the job runs.

    Returns:
        ``df`` with ``out_col`` appended.

    Raises:
        ValueError: If the column is missing or ``out_col`` exists, or an option is unknown.
        TypeError: If ``text_col`` is not a string column.
        FileNotFoundError: If ``artifact`` is not an artifact.
        ModelLoadError: If ``artifact`` holds no encoder.
    """
    _check_columns(df, text_col, [out_col])
    opened = _open(artifact)
    encoder = opened.manifest.encoder
    if encoder is None:
        raise ModelLoadError(
            f"{opened.path} holds no encoder (no ONNX graph). Export one with: "
            f"featx export <model> {opened.path}"
        )
    if precision is not None:
        choose_precision(encoder, precision, [CPU])  # fails here, not in a task
    if long_text is not None:
        long_text = parse_enum(LongText, long_text, "long_text").value
    options = {
        "precision": precision,
        "threads": threads or _task_cpus(df.sparkSession),
        "batch_size": batch_size,
        "long_text": long_text,
    }
    job = _job("embed", df, opened, ship, text_col, (out_col,), options, stats)
    schema = StructType([*df.schema.fields, StructField(out_col, ArrayType(FloatType()), True)])
    out = _map(df, functools.partial(run_embed, job), schema)
    if vector:
        out = out.withColumn(out_col, _vector(F.col(_quoted(out_col))))
    return out


def predict(
    df: DataFrame,
    text_col: str,
    artifact: str | os.PathLike[str],
    *,
    label_col: str = "label",
    proba_col: str | None = "probability",
    batch_size: int = 32,
    threads: int | None = None,
    ship: bool = True,
    stats: JobStats | None = None,
) -> DataFrame:
    """Add the prediction of a model trained with ``featx train`` for each text.

    ``label_col`` holds the label (a string or number, as the model's labels are), the
    list of labels (multi-label) or the score (regression, ``double``). ``proba_col`` is
    a ``map<string,double>`` from label to probability, added when the model gives
    probabilities (not for regression, nor for heads without ``predict_proba``) and
    ``proba_col`` is not None. Null and empty texts get nulls. The encoder reads over-long
    texts as it was trained to.

    Args:
        df: The input DataFrame.
        text_col: Name of its string column of texts.
        artifact: A model directory made by ``featx train`` (or ``Predictor.save``).
        label_col: Name of the prediction column.
        proba_col: Name of the probability column; None for no probabilities.
        batch_size: Most texts per forward pass.
        threads: ONNX Runtime threads per task; default ``spark.task.cpus`` (1 unless set).
        ship: Send the artifact with the job; see :func:`embed`.
        stats: Counters to fill in while the job runs.

    Returns:
        ``df`` with the prediction column(s) appended.

    Raises:
        ValueError: If the column is missing, an output column exists, or the model reads
            text pairs.
        TypeError: If ``text_col`` is not a string column.
        FileNotFoundError: If ``artifact`` is not an artifact.
        ModelLoadError: If ``artifact`` has no trained head, or one skops does not trust.
    """
    from featx.predictor import Predictor  # scikit-learn: only predict needs it

    opened = _open(artifact)
    if opened.manifest.kind is not Kind.PREDICTOR:
        raise ModelLoadError(
            f"{opened.path} has no head: it is an encoder artifact, so it can embed but not "
            f"predict. Train one with: featx train --model {opened.path} --data train.tsv "
            "--out MODEL (or use featx.spark.embed)."
        )
    model = Predictor.load(opened.path)  # on the driver: a bad or untrusted head fails here
    if model.n_pair_columns:
        raise ValueError(
            f"{opened.path} reads pairs of texts; featx.spark.predict takes one text column."
        )
    if not (proba_col and model.has_probabilities):
        proba_col = None
    _check_columns(df, text_col, [label_col, *([proba_col] if proba_col else [])])
    value_type = "double" if model.task is Task.REGRESSION else _value_type(model.labels)
    multilabel = model.task is Task.MULTILABEL
    label_type = _SPARK_TYPES[value_type]
    fields = [StructField(label_col, ArrayType(label_type) if multilabel else label_type, True)]
    if proba_col:
        fields.append(StructField(proba_col, MapType(StringType(), DoubleType()), True))
    options = {"threads": threads or _task_cpus(df.sparkSession), "batch_size": batch_size}
    out_cols = (label_col, *([proba_col] if proba_col else []))
    job = _job("predict", df, opened, ship, text_col, out_cols, options, stats)
    job = replace(job, value_type=value_type, multilabel=multilabel)
    schema = StructType([*df.schema.fields, *fields])
    return _map(df, functools.partial(run_predict, job), schema)


def answer(
    df: DataFrame,
    question_col: str,
    context_col: str,
    artifact: str | os.PathLike[str],
    *,
    answer_col: str = "answer",
    threads: int | None = None,
    ship: bool = True,
    stats: JobStats | None = None,
) -> DataFrame:
    """Add the answer of a model made by ``featx finetune-qa`` to each question.

    ``answer_col`` is a struct ``<answer: string, score: double, start: long, end: long>``:
    the span of the row's context (``context[start:end] == answer``) and its probability,
    as :meth:`featx.qa.Answerer.answer` gives it. Rows whose question or context is null,
    empty or blank get null.

    Raises:
        ValueError: If a column is missing, or ``answer_col`` exists.
        TypeError: If a column is not a string column.
        FileNotFoundError: If ``artifact`` is not an artifact.
        ModelLoadError: If ``artifact`` is not a question answerer.
    """
    from featx.artifact.estimators import open_trained
    from featx.qa.answerer import read_span_head

    opened = _open(artifact)
    # On the driver a wrong kind or a bad head fails here, without an ONNX session.
    read_span_head(open_trained(opened.path, Kind.QA))
    _check_columns(df, question_col, [answer_col])
    _check_columns(df, context_col, [])
    options = {"threads": threads or _task_cpus(df.sparkSession)}
    job = _job("answer", df, opened, ship, question_col, (answer_col,), options, stats)
    job = replace(job, context_col=context_col)
    span = StructType(
        [
            StructField("answer", StringType(), False),
            StructField("score", DoubleType(), False),
            StructField("start", LongType(), False),
            StructField("end", LongType(), False),
        ]
    )
    schema = StructType([*df.schema.fields, StructField(answer_col, span, True)])
    return _map(df, functools.partial(run_answer, job), schema)


# --------------------------------------------------------------------------- driver


def _check_columns(df: DataFrame, text_col: str, out_cols: list[str]) -> None:
    if not isinstance(df, DataFrame):
        raise TypeError(f"Expected a pyspark DataFrame, got {type(df).__name__}.")
    if text_col not in df.columns:
        raise ValueError(
            f"No column {text_col!r} in the DataFrame. Its columns: "
            f"{', '.join(map(repr, df.columns)) or 'none'}."
        )
    kind = df.schema[text_col].dataType
    if not isinstance(kind, StringType):
        raise TypeError(
            f"Column {text_col!r} is {kind.simpleString()}, not string. Cast it first: "
            f"df.withColumn({text_col!r}, F.col({text_col!r}).cast('string'))."
        )
    for name in out_cols:
        if name in df.columns:
            raise ValueError(
                f"The DataFrame already has a column {name!r}. Choose another output column "
                "name or drop that column first."
            )


def _open(artifact: str | os.PathLike[str]) -> Artifact:
    path = Path(os.fspath(artifact)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"Artifact {str(path)!r} is not a directory on the driver. Pass a folder made by "
            f"featx export (or featx train), e.g.: featx export minilm {path}"
        )
    return Artifact.open(path)


def _task_cpus(spark: SparkSession) -> int:
    return max(1, int(spark.conf.get("spark.task.cpus", "1") or 1))


def _job(
    kind: str,
    df: DataFrame,
    opened: Artifact,
    ship: bool,
    text_col: str,
    out_cols: tuple[str, ...],
    options: dict[str, Any],
    stats: JobStats | None,
) -> Job:
    sha = digest(opened.path)
    if sha is None:  # pragma: no cover - Artifact.open has just read it
        raise FileNotFoundError(f"No {MANIFEST} in {opened.path}.")
    path = opened.path.resolve() if ship else opened.path  # a relative path stays relative
    shipped = ship_artifact(df.sparkSession, opened, sha) if ship else None
    return Job(
        kind=kind,
        path=str(path),
        digest=sha,
        shipped=shipped,
        text_col=text_col,
        out_cols=out_cols,
        options=tuple(sorted(options.items())),
        stats=stats,
    )


def _map(df: DataFrame, func: Any, schema: StructType) -> DataFrame:
    with warnings.catch_warnings():
        # mapInArrow checks for pandas although no pandas data is made here; pyspark's
        # "pandas >= 3 not yet fully supported" warning does not concern this path.
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")
        return df.mapInArrow(func, schema)


def _value_type(labels: list[Any]) -> str:
    """The Spark type that holds every label: boolean, long, double, else string."""
    if labels and all(isinstance(v, bool) for v in labels):
        return "boolean"
    if labels and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return "long"
    if labels and all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        return "double"
    return "string"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _vector(column: Column) -> Column:
    """``array_to_vector``, except that a null array stays null (Spark 4 fails on it)."""
    from pyspark.ml.functions import array_to_vector

    return F.when(column.isNull(), None).otherwise(array_to_vector(column))
