"""The export steps that need torch: graphs, parity with the torch reference, the manifest.

Imported by :func:`featx.exporter.export` once the ``export`` extra is known to be there.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from featx._version import __version__
from featx.artifact import EncoderSection, Kind, Manifest, Origin, Variant, seal, staging
from featx.artifact.manifest import GRAPH_FILES, TOKENIZER_FILE
from featx.config import Exporter, ModelSpec, Precision
from featx.encoders.onnx import OnnxEncoder, make_session
from featx.encoders.torch import TorchEncoder, load_hf_model, load_hf_tokenizer
from featx.environment import want_progress
from featx.errors import ExportError
from featx.exporter.calibration import builtin_calibration_texts, calibration_feeds
from featx.exporter.onnx import export_onnx
from featx.exporter.parity import FP32_MIN_COSINE, PROBE_TEXTS, Parity, compare
from featx.exporter.plan import ExportPlan, ExportResult
from featx.exporter.quantize import convert_fp16, quantize_int8
from featx.files import write_json_atomic
from featx.sources import fetch, inspect_folder, resolve, transformer_folder

logger = logging.getLogger(__name__)
PARITY_FILE = "parity.json"


@dataclass
class _Graphs:
    """The graphs built so far in the staging directory, and how each compares with torch."""

    stage: Path
    tokenizer: Tokenizer
    spec: ModelSpec
    reference: TorchEncoder
    probes: list[str]
    variants: dict[Precision, Variant] = field(default_factory=dict)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(self, precision: Precision) -> Parity:
        graph = make_session(str(self.stage / GRAPH_FILES[precision]))
        return compare(self.reference, OnnxEncoder(graph, self.tokenizer, self.spec), self.probes)


def build(plan: ExportPlan) -> ExportResult:
    """Build the artifact ``plan`` asks for."""
    source = resolve(plan.model)
    folder, revision = fetch(source)
    spec = inspect_folder(folder, source.entry, **plan.overrides)
    model_dir = transformer_folder(folder)
    tokenizer = load_hf_tokenizer(model_dir)
    reference = TorchEncoder(load_hf_model(model_dir), tokenizer, spec)
    steps = ["fp32 graph", "fp32 parity"] + ["int8 graph"] * plan.quantize
    steps += ["fp16 graph"] * plan.fp16
    with (
        staging(plan.out, force=plan.force) as stage,
        _progress(source.name, steps, plan.show_progress) as step,
    ):
        graphs = _Graphs(stage, tokenizer, spec, reference, plan.probes)
        step()
        _fp32(graphs, model_dir, plan, step)
        default, reason = Precision.FP32, "int8 not built (quantize=False)"
        if plan.quantize:
            step()
            default, reason = _int8(graphs, plan)
            if default is not Precision.INT8:
                logger.warning("%s: %s", source.name, reason)
        if plan.fp16:
            step()
            convert_fp16(stage / GRAPH_FILES[Precision.FP32], stage / GRAPH_FILES[Precision.FP16])
            graphs.variants[Precision.FP16] = Variant(GRAPH_FILES[Precision.FP16])
            # Measured with the CPU provider; on a GPU, fp16 kernels may round differently.
            figures = graphs.check(Precision.FP16).to_dict()
            graphs.parity["fp16"] = {**figures, "provider": "CPUExecutionProvider"}
        _write_parity(graphs, plan, default, reason)
        origin = Origin(source.name, revision, source.hub_id, str(folder))
        seal(stage, _manifest(graphs, origin, plan, default))
    logger.info("Wrote %s (default %s: %s)", plan.out, default.value, reason)
    return ExportResult(plan.out, default.value, graphs.parity, reason)


def _fp32(graphs: _Graphs, model_dir: Path, plan: ExportPlan, step: Callable[[], None]) -> None:
    """Export the fp32 graph and the tokenizer; refuse a graph that disagrees with torch."""
    if plan.exporter is Exporter.OPTIMUM:
        from featx.exporter.optimum import export_onnx as export_graph
    else:
        export_graph = export_onnx
    export_graph(
        model_dir, graphs.stage / GRAPH_FILES[Precision.FP32], graphs.spec, opset=plan.opset
    )
    graphs.tokenizer.save(str(graphs.stage / TOKENIZER_FILE))
    graphs.variants[Precision.FP32] = Variant(GRAPH_FILES[Precision.FP32])
    step()
    fp32 = graphs.check(Precision.FP32)
    graphs.parity["fp32"] = fp32.to_dict()
    if fp32.min_cosine < FP32_MIN_COSINE:
        raise ExportError(
            f"The exported fp32 graph disagrees with torch (min cosine {fp32.min_cosine:.6f}"
            f" < {FP32_MIN_COSINE}); the export is wrong for this model. Please report it."
        )


def _int8(graphs: _Graphs, plan: ExportPlan) -> tuple[Precision, str]:
    """Build the int8 graph; return the default precision and why."""
    feeds = calibration_feeds(graphs.reference, [*builtin_calibration_texts(), *plan.calibration])
    file = GRAPH_FILES[Precision.INT8]
    recipe = quantize_int8(graphs.stage / GRAPH_FILES[Precision.FP32], graphs.stage / file, feeds)
    graphs.variants[Precision.INT8] = Variant(file, recipe)
    int8 = graphs.check(Precision.INT8)
    passed = int8.passes(**plan.gate)
    graphs.parity["int8"] = {**int8.to_dict(), "passes_gate": passed}
    gate = (
        f"mean cosine {int8.mean_cosine:.4f} (gate {plan.gate['min_mean_cosine']}), "
        f"min {int8.min_cosine:.4f} (gate {plan.gate['min_cosine']})"
    )
    if passed:
        return Precision.INT8, f"int8 passed the parity gate: {gate}"
    return Precision.FP32, f"int8 failed the parity gate, so fp32 is the default: {gate}"


def _write_parity(graphs: _Graphs, plan: ExportPlan, default: Precision, reason: str) -> None:
    write_json_atomic(
        graphs.stage / PARITY_FILE,
        {
            "reference": f"torch {torch.__version__} fp32",
            "exporter": plan.exporter.value,
            "n_probe_texts": len(plan.probes),
            "n_user_probe_texts": len(plan.probes) - len(PROBE_TEXTS),
            "variants": graphs.parity,
            "gate": plan.gate,
            "default_precision": default.value,
            "reason": reason,
        },
    )


def _manifest(graphs: _Graphs, origin: Origin, plan: ExportPlan, default: Precision) -> Manifest:
    return Manifest(
        kind=Kind.ENCODER,
        featx_version=__version__,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        source=origin,
        model=graphs.spec,
        encoder=EncoderSection(
            opset=plan.opset,
            exporter=plan.exporter,
            variants=graphs.variants,
            default_precision=default,
            parity=graphs.parity,
            gate=plan.gate,
        ),
    )


@contextmanager
def _progress(name: str, steps: list[str], show: bool | None) -> Iterator[Callable[[], None]]:
    """Yield a callable that announces the next export step on a progress bar."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(steps),
        desc=f"featx export {name}",
        unit="step",
        disable=not want_progress(show),
    )
    names = iter(steps)
    started = False

    def step() -> None:
        nonlocal started
        if started:
            bar.update()
        started = True
        bar.set_postfix_str(next(names))

    try:
        yield step
        bar.update()
    finally:
        bar.close()
