"""Fine-tuning for extractive question answering: a start/end head over every piece.

The encoder (its top ``train_layers`` layers, or all) and a linear span head train on
question/context windows (:mod:`featx.qa.windows`) with the loop every fine-tuning uses
(:class:`~featx.finetuning.trainer.Training`: AdamW, LLRD, warmup and decay, bf16
autocast, length-bucketed batches, early stopping on dev F1). The result is a ``qa``
artifact: the fine-tuned encoder exported to ONNX (parity gate, ``hf/`` kept), the head
as an npz matrix, and int8 as the default only if it passes the dev gate (EM and F1
within :data:`MAX_INT8_LOSS` points of fp32).

Decoders (GPT-2 style) train the same way: the question comes first, so every context
piece has read it, but a piece cannot see the context after it, so they score below
encoders of their size.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx.artifact import Artifact, EncoderSection, Kind, QASection, seal, staging
from featx.artifact.manifest import PARITY_FILE
from featx.batching import model_feed, pad_batch
from featx.encoders.torch import load_hf_model, load_hf_tokenizer
from featx.environment import want_progress
from featx.files import refuse_existing, write_json_atomic
from featx.finetuning.export import export_encoder, seal_finetuned
from featx.finetuning.model import Head
from featx.finetuning.settings import QA_DEFAULTS, Settings, SettingsOptions
from featx.finetuning.setup import starting_point, torch_device
from featx.finetuning.span_gate import add_span_graphs, int8_gate
from featx.finetuning.trainer import Data, Training, run_report
from featx.qa.answerer import Answerer, span_logits
from featx.qa.decode import MAX_ANSWER_LENGTH, best_spans
from featx.qa.metric import squad_scores
from featx.qa.squad import Question
from featx.qa.windows import SpanPreparer
from featx.sources import default_model

if TYPE_CHECKING:
    from typing import Unpack

logger = logging.getLogger(__name__)
N_CALIBRATION = 256
N_PROBES = 64


class SpanModel(torch.nn.Module):
    """Encoder + a linear start/end head on every piece of the last hidden state."""

    def __init__(self, encoder: torch.nn.Module, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        config: Any = encoder.config
        self.head = Head(int(config.hidden_size), 2, (), dropout)
        self.takes_types = "token_type_ids" in _forward_arguments(encoder)

    def features(self, feed: dict[str, torch.Tensor], types: dict[str, torch.Tensor]) -> Any:
        """The last hidden state (windows, pieces, dim); ``types`` carries the segment ids."""
        inputs = dict(feed)
        if self.takes_types:  # padding gets segment 0: some models have one segment only
            inputs["token_type_ids"] = types["input_ids"] * feed["attention_mask"]
        return self.encoder(**inputs, return_dict=True).last_hidden_state.float()


def _forward_arguments(encoder: torch.nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(encoder.forward).parameters)


def finetune_qa(
    questions: Sequence[Question],
    *,
    model: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
    dev: Sequence[Question] | None = None,
    stride: int | None = None,
    max_question: int | None = None,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    device: str = "auto",
    force: bool = False,
    show_progress: bool | None = None,
    **settings: Unpack[SettingsOptions],
) -> Answerer:
    """Fine-tune ``model`` to answer ``questions`` with spans; save a ``qa`` artifact at ``out``.

    Args:
        questions: Training questions with answers (:func:`featx.qa.read_squad`).
        model: A registry alias, model folder, hub id or fine-tuned artifact (default model).
        out: Where to save the artifact.
        dev: Questions for early stopping on F1, the best weights and the int8 gate.
        stride: Context pieces each window shares with the one before (default 64 for
            256-piece windows; see :class:`~featx.qa.windows.SpanPreparer`).
        max_question: Most pieces of a question; longer ones are cut and counted (default 64).
        max_answer_length: Most pieces of an answer when decoding.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        force: Replace an existing artifact at ``out``.
        show_progress: Progress bars; None shows them on a terminal (logs otherwise).
        **settings: :class:`~featx.finetuning.Settings`, over the defaults
            :data:`~featx.finetuning.settings.QA_DEFAULTS`.

    Returns:
        The saved answerer, loaded back.
    """
    out = Path(out)
    refuse_existing(out, force)
    chosen = _checked(questions, dev, settings)
    source_dir, name, spec = starting_point(model or default_model())
    torch.manual_seed(chosen.seed)
    encoder = load_hf_model(source_dir, attention_dropout=chosen.attention_dropout)
    span_model, tokenizer = SpanModel(encoder, chosen.dropout), load_hf_tokenizer(source_dir)
    preparer = SpanPreparer(tokenizer, spec.max_length, stride=stride, max_question=max_question)
    windows = preparer.windows(
        [(q.question, q.context) for q in questions], [q.answers[0] for q in questions]
    )
    logger.info("Training windows: %s", windows.report())
    torch_dev = torch_device(device)
    feed = _feeder(spec.pad_id)
    score = None
    if dev is not None:
        score = _dev_scorer(span_model, preparer, dev, feed, torch_dev, max_answer_length)
    training = Training(
        span_model,  # type: ignore[arg-type]
        Data([windows.ids, windows.type_ids], np.stack([windows.starts, windows.ends], 1)),
        chosen,
        task="spans",
        n_out=2,
        num_layers=spec.num_layers,
        feed=feed,
        device=torch_dev,
    )
    history = training.run(score, "f1", show_progress=want_progress(show_progress))
    span_model.to("cpu")
    report = run_report(
        history,
        chosen,
        torch_dev,
        model=name,
        task="qa",
        n_train=len(questions),
        n_dev=0 if dev is None else len(dev),
        windows=windows.report(),
        stride=preparer.stride,
        max_question=preparer.max_question,
    )
    section = QASection(preparer.stride, preparer.max_question, max_answer_length)
    contexts = list(dict.fromkeys(q.context for q in questions))
    _save(span_model, source_dir, spec.max_length, section, contexts, report, dev, out, force,
          show_progress)  # fmt: skip
    return Answerer.load(out)


def _checked(
    questions: Sequence[Question], dev: Sequence[Question] | None, settings: Any
) -> Settings:
    """The run's settings over ``QA_DEFAULTS``, once the questions are known to be usable."""
    chosen = Settings(**{**QA_DEFAULTS, **settings})
    if chosen.train_layers == 0 or chosen.mixup or chosen.lora or chosen.hidden:
        raise ValueError(
            "Question answering trains encoder layers with a linear span head: give "
            "train_layers > 0 (or 'all'), without mixup, lora or hidden."
        )
    _check_labelled(questions, "questions")
    if dev is not None:
        _check_labelled(dev, "dev")
    return chosen


def _check_labelled(questions: Sequence[Question], what: str) -> None:
    if not questions:
        raise ValueError(f"{what} is empty: give SQuAD questions (featx.qa.read_squad).")
    for i, q in enumerate(questions):
        if not isinstance(q, Question):
            raise ValueError(f"{what}[{i}] is {type(q).__name__}, not a featx.qa.Question.")
        if not q.answers:
            raise ValueError(f"{what}[{i}] (id {q.id!r}) has no answer to learn or score.")


def _feeder(pad_id: int) -> Callable[[list[NDArray[np.int32]]], dict[str, torch.Tensor]]:
    def feed(windows: list[Any]) -> dict[str, torch.Tensor]:
        ids, mask = pad_batch(windows, pad_id)
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

    return feed


def torch_run(
    model: SpanModel, pad_id: int, device: torch.device
) -> Callable[[list[NDArray[np.int32]], list[NDArray[np.int32]]], NDArray[np.float32]]:
    """Span logits of a batch of windows from the torch model (dev scoring, the gate)."""

    @torch.no_grad()
    def run(ids: list[NDArray[np.int32]], types: list[NDArray[np.int32]]) -> NDArray[np.float32]:
        feed = model_feed(ids, pad_id, ("token_type_ids",), types)
        tensors = {k: torch.from_numpy(v).to(device) for k, v in feed.items()}
        segments = {"input_ids": tensors.pop("token_type_ids")}
        hidden = model.features(tensors, segments)
        return model.head(hidden).float().cpu().numpy()

    return run


def _dev_scorer(
    model: SpanModel,
    preparer: SpanPreparer,
    dev: Sequence[Question],
    feed: Any,
    device: torch.device,
    max_answer_length: int,
) -> Callable[[], dict[str, float]]:
    windows = preparer.windows([(q.question, q.context) for q in dev])
    contexts = [q.context for q in dev]
    pad_id = int(feed([np.zeros(1, np.int32)])["input_ids"][0, 0])

    def score() -> dict[str, float]:  # Training.evaluate runs it under the run's autocast
        starts, ends = span_logits(windows, torch_run(model, pad_id, device))
        spans = best_spans(starts, ends, windows, contexts, max_answer_length=max_answer_length)
        return squad_scores({q.id: s.text for q, s in zip(dev, spans, strict=True)}, dev)

    return score


def _save(
    model: SpanModel,
    source_dir: Path,
    max_length: int,
    section: QASection,
    contexts: list[str],
    report: dict[str, Any],
    dev: Sequence[Question] | None,
    out: Path,
    force: bool,
    show_progress: bool | None,
) -> None:
    """Export the encoder, add the span head, gate int8 on dev, seal as a ``qa`` artifact."""
    rng = np.random.default_rng(0)
    texts = [contexts[i] for i in rng.permutation(len(contexts))[: N_CALIBRATION + N_PROBES]]
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.qa-"))
    try:
        encoder_dir = work / "qa"
        export_encoder(
            model.encoder,
            source_dir,
            encoder_dir,
            max_length=max_length,
            calibration_texts=texts[:N_CALIBRATION],
            probe_texts=texts[N_CALIBRATION:] or texts[:N_PROBES],
            show_progress=show_progress,
        )
        exported = Artifact.open(encoder_dir).manifest
        encoder = _without_pooled_graphs(encoder_dir, exported.encoder)
        qa_manifest = replace(exported, kind=Kind.QA, qa=section, encoder=encoder)
        linear: Any = model.head.linears[0]
        buffer = io.BytesIO()
        np.savez(
            buffer,
            weight=linear.weight.detach().float().numpy().T.copy(),
            bias=linear.bias.detach().float().numpy().copy(),
        )
        (encoder_dir / section.file).write_bytes(buffer.getvalue())
        write_json_atomic(encoder_dir / section.metrics, {})
        seal(encoder_dir, qa_manifest)  # a qa artifact already, for the graphs and the gate
        section = add_span_graphs(encoder_dir, texts[:N_PROBES])
        qa_manifest = replace(qa_manifest, qa=section)
        seal(encoder_dir, qa_manifest)
        gate = int8_gate(encoder_dir, dev, texts[:N_CALIBRATION])
        qa_manifest = Artifact.open(encoder_dir).manifest  # a rebuilt int8 graph is in it
        report = {**report, "dev_gate": gate}
        metrics = {"finetune": _summary(report), "dev": report["best"], "dev_gate": gate}
        write_json_atomic(encoder_dir / section.metrics, metrics)
        seal(encoder_dir, qa_manifest)
        seal_finetuned(
            encoder_dir,
            report,
            what="fine-tuned for question answering",
            task="qa",
            dev_gate=gate,
        )
        with staging(out, force=force) as stage:
            for child in encoder_dir.iterdir():
                shutil.move(str(child), str(stage / child.name))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _without_pooled_graphs(directory: Path, encoder: EncoderSection | None) -> EncoderSection:
    """The encoder section without its pooled (fast) graphs, whose files are deleted.

    They serve sentence vectors, not spans: a qa artifact answers from its span graphs,
    with the encoder graphs as their fallback (and for embeddings). parity.json keeps
    their figures, marked not kept.
    """
    assert encoder is not None  # just exported
    report = json.loads((directory / PARITY_FILE).read_text(encoding="utf-8"))
    parity = dict(encoder.parity)
    for precision, variant in encoder.fast.items():
        (directory / variant.file).unlink()
        key = f"fast_{precision.value}"
        for figures in (report["variants"], parity):
            if key in figures:
                figures[key] = {**figures[key], "kept": False}
    write_json_atomic(directory / PARITY_FILE, report)
    return replace(encoder, fast={}, parity=parity)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("model", "n_train", "train_seconds", "settings", "windows")}
