"""The graphs a question answerer serves, and its int8 dev gate.

Each precision's encoder graph gets the span head on top (one ONNX run gives the start
and end logits), kept only if it matches the encoder graph + the numpy head. int8 then
stays the default only if its dev EM and F1 are within :data:`MAX_INT8_LOSS` points of
fp32's; a graph that fails is rebuilt with more and more feed-forward output MatMuls in
fp32, from the first layer up, as for classification (:mod:`featx.finetuning.gate`):
the fastest graph that passes wins; if none does, the closest stays and fp32 is the
default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from featx.artifact import Artifact, QASection
from featx.artifact.manifest import GRAPH_FILES
from featx.artifact.sections import QA_GRAPH_FILES
from featx.config import Precision
from featx.encoders.onnx import OnnxEncoder, make_session
from featx.exporter.fused import write_span
from featx.exporter.parity import PROBE_TEXTS, compare
from featx.finetuning.export import HF_DIR
from featx.finetuning.gate import MAX_INT8_LOSS, rebuild_int8, record_int8
from featx.qa.answerer import Answerer, span_logits
from featx.qa.squad import Question
from featx.sources import attention_heads

logger = logging.getLogger(__name__)
# Most a span graph's logits may differ from the encoder graph's + the numpy head's.
SPAN_GRAPH_TOLERANCE = 1e-2
SCORES = ("exact_match", "f1")


def add_span_graphs(directory: Path, probe_contexts: Sequence[str]) -> QASection:
    """Build each precision's encoder + span head graph in the sealed ``qa`` artifact.

    fp32 is fused by ONNX Runtime's transformer optimizer, int8 is the encoder's int8
    graph cut (as for the fast embedding graphs). Each is kept only if its logits on
    windows of ``probe_contexts`` are within :data:`SPAN_GRAPH_TOLERANCE` of the encoder
    graph's + the head's. Returns the section listing the kept graphs (the caller seals it).
    """
    manifest = Artifact.open(directory).manifest
    assert manifest.qa is not None and manifest.encoder is not None and manifest.model
    reference = {p.value: Answerer.load(directory, precision=p.value)
                 for p in manifest.encoder.variants if p.value in QA_GRAPH_FILES}  # fmt: skip
    pairs = [("What is it about?", context) for context in probe_contexts]
    graphs: dict[str, str] = {}
    heads = attention_heads(directory / HF_DIR)
    for precision, answerer in reference.items():
        file = QA_GRAPH_FILES[precision]
        variant = manifest.encoder.variants[Precision(precision)]
        _write_span(directory / variant.file, directory / file, answerer,
                    fuse_heads=heads if precision == "fp32" else None)  # fmt: skip
        windows = answerer.preparer.windows(pairs)
        expected = span_logits(windows, answerer.run_windows)
        answerer.span_session = make_session(str(directory / file))
        got = span_logits(windows, answerer.run_windows)
        pieces = zip(expected[0] + expected[1], got[0] + got[1], strict=True)
        worst = max(float(np.abs(a - b).max()) for a, b in pieces)
        if worst <= SPAN_GRAPH_TOLERANCE:
            graphs[precision] = file
        else:
            (directory / file).unlink()
            logger.warning("The %s span graph differs by %.4f; the encoder graph serves",
                           precision, worst)  # fmt: skip
    return replace(manifest.qa, graphs=graphs)


def int8_gate(
    directory: Path, dev: Sequence[Question] | None, calibration_texts: Sequence[str]
) -> dict[str, Any]:
    """Gate int8 on ``dev`` against fp32; rebuild it while it fails (see the module)."""
    encoder = Artifact.open(directory).manifest.encoder
    has_int8 = encoder is not None and Precision.INT8 in encoder.variants
    gate: dict[str, Any] = {
        "max_int8_loss_points": MAX_INT8_LOSS,
        "checked": dev is not None and has_int8,
    }
    if not has_int8:
        return gate
    if dev is None:
        gate["passes"] = False  # unchecked: fp32 stays the default
        return gate
    fp32_answerer = Answerer.load(directory, precision="fp32")
    fp32 = _scores(fp32_answerer, dev)
    int8_answerer = Answerer.load(directory, precision="int8")
    int8 = _scores(int8_answerer, dev)
    gate.update(fp32=fp32, int8=int8, passes=_passes(fp32, int8), int8_fp32_matmuls=0)
    if gate["passes"] or int8_answerer.span_session is None:
        return gate  # (without an int8 span graph there is nothing to rebuild it into)
    span_file = directory / "retry_qa_int8.onnx"

    def check(graph: Path) -> dict[str, Any]:  # the candidate's span graph on dev
        _write_span(graph, span_file, int8_answerer)
        int8_answerer.span_session = make_session(str(span_file))
        scores = _scores(int8_answerer, dev)
        return {**scores, "passes": _passes(fp32, scores)}

    manifest = Artifact.open(directory).manifest  # before the int8 files change
    rebuilt = rebuild_int8(directory, int8_answerer.encoder, calibration_texts, check)
    if rebuilt is None:
        span_file.unlink(missing_ok=True)
        return gate
    n, recipe, last = rebuilt
    os.replace(span_file, directory / QA_GRAPH_FILES["int8"])
    reference = fp32_answerer.encoder
    graph = make_session(str(directory / GRAPH_FILES[Precision.INT8]))
    rebuilt_encoder = OnnxEncoder(graph, reference.tokenizer, reference.spec,
                                  outputs=reference.outputs)  # fmt: skip
    parity = compare(reference, rebuilt_encoder, list(PROBE_TEXTS)).to_dict()
    record_int8(directory, manifest, recipe, {**parity, "against": "the fp32 graph"})
    scores = {k: last[k] for k in SCORES}
    return {**gate, "int8": scores, "passes": last["passes"], "int8_fp32_matmuls": n,
            "first_try": int8}  # fmt: skip


def _write_span(graph: Path, out: Path, answerer: Answerer, fuse_heads: int | None = None) -> None:
    spec, outputs = answerer.encoder.spec, answerer.encoder.outputs
    write_span(graph, out, spec, outputs, (answerer.weight, answerer.bias), fuse_heads=fuse_heads)


def _scores(answerer: Answerer, dev: Sequence[Question]) -> dict[str, float]:
    result = answerer.evaluate(dev)
    return {k: result[k] for k in SCORES}


def _passes(fp32: dict[str, float], int8: dict[str, float]) -> bool:
    return bool(max(fp32[k] - int8[k] for k in SCORES) <= MAX_INT8_LOSS)
