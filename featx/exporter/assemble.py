"""The export steps every exporter shares, torch-free: int8 behind the gate, parity, manifest.

:mod:`featx.exporter.steps` (torch, optimum) and :mod:`featx.exporter.existing` (a
folder's own ONNX file) build the fp32 graph their own way and finish here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from featx._version import __version__
from featx.artifact import EncoderSection, Kind, Manifest, Origin, Variant
from featx.artifact.manifest import FAST_GRAPH_FILES, GRAPH_FILES, PARITY_FILE
from featx.config import ModelSpec, Precision
from featx.encoders.onnx import OnnxEncoder, make_session
from featx.encoders.transformer import TransformerEncoder
from featx.environment import want_progress
from featx.exporter.calibration import Feed, builtin_calibration_texts, calibration_feeds
from featx.exporter.parity import FP32_MIN_COSINE, PROBE_TEXTS, Parity, compare
from featx.exporter.plan import ExportPlan
from featx.files import write_json_atomic

logger = logging.getLogger(__name__)


@dataclass
class Graphs:
    """The graphs built so far in the staging directory, and how each compares with the reference.

    Attributes:
        reference: What every graph is compared with: the torch model, or (for a
            folder's own ONNX file, where there is no torch) that fp32 graph itself.
        outputs: Hidden state index -> graph output name, where the graph does not have
            featx's ``hidden_state_<i>`` for every layer.
    """

    stage: Path
    tokenizer: Tokenizer
    spec: ModelSpec
    reference: TransformerEncoder
    probes: list[str]
    outputs: Mapping[int, str] = field(default_factory=dict)
    variants: dict[Precision, Variant] = field(default_factory=dict)
    fast: dict[Precision, Variant] = field(default_factory=dict)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    _feeds: list[Feed] | None = field(default=None, repr=False)

    def calibration(self, plan: ExportPlan) -> list[Feed]:
        """The int8 calibration feeds (built-in and the plan's texts), made once per export."""
        if self._feeds is None:
            texts = [*builtin_calibration_texts(), *plan.calibration]
            self._feeds = calibration_feeds(self.reference, texts)
        return self._feeds

    def encoder(self, precision: Precision, *, fast: bool = False) -> OnnxEncoder:
        """The staged graph of ``precision`` (its fast graph for the default), to encode."""
        graph = make_session(str(self.stage / GRAPH_FILES[precision]))
        pooled = make_session(str(self.stage / FAST_GRAPH_FILES[precision])) if fast else None
        return OnnxEncoder(graph, self.tokenizer, self.spec, outputs=self.outputs, fast=pooled)

    def check(self, precision: Precision, *, fast: bool = False) -> Parity:
        """How the staged graph of ``precision`` compares with the reference."""
        return compare(self.reference, self.encoder(precision, fast=fast), self.probes)


def int8(graphs: Graphs, plan: ExportPlan) -> tuple[Precision, str]:
    """Build the int8 graph; return the default precision and why."""
    from featx.exporter.quantize import quantize_int8  # needs the onnx package

    file = GRAPH_FILES[Precision.INT8]
    fp32 = graphs.stage / GRAPH_FILES[Precision.FP32]
    recipe = quantize_int8(fp32, graphs.stage / file, graphs.calibration(plan))
    graphs.variants[Precision.INT8] = Variant(file, recipe)
    result = graphs.check(Precision.INT8)
    passed = result.passes(**plan.gate)
    graphs.parity["int8"] = {**result.to_dict(), "passes_gate": passed}
    gate = (
        f"mean cosine {result.mean_cosine:.4f} (gate {plan.gate['min_mean_cosine']}), "
        f"min {result.min_cosine:.4f} (gate {plan.gate['min_cosine']})"
    )
    if passed:
        return Precision.INT8, f"int8 passed the parity gate: {gate}"
    return Precision.FP32, f"int8 failed the parity gate, so fp32 is the default: {gate}"


def fast_graphs(graphs: Graphs, plan: ExportPlan, heads: int | None) -> None:
    """The fast path's graphs, for each precision built so far that has one (fp32, int8).

    Each is checked against the reference like the full graphs and kept only if it meets
    the same bar (fp32: the export's own bar; int8: the gate), else left out, said in
    parity.json: the full graph then serves every call, as before.
    """
    from featx.exporter.fused import can_pool_in_graph, write_fused

    if not can_pool_in_graph(graphs.spec):
        return
    stage, fp32 = graphs.stage, graphs.stage / FAST_GRAPH_FILES[Precision.FP32]
    fused = write_fused(
        stage / GRAPH_FILES[Precision.FP32], fp32, graphs.spec, graphs.outputs, heads
    )
    built = {Precision.FP32: fused}
    int8_variant = graphs.variants.get(Precision.INT8)
    if int8_variant is not None:
        built[Precision.INT8] = cut_int8(stage, graphs.spec, graphs.outputs, int8_variant)
    for precision, recipe in built.items():
        result = graphs.check(precision, fast=True)
        kept = (
            result.passes(**plan.gate)
            if precision is Precision.INT8
            else result.min_cosine >= FP32_MIN_COSINE
        )
        graphs.parity[f"fast_{precision.value}"] = {**result.to_dict(), "kept": kept}
        if kept:
            graphs.fast[precision] = Variant(FAST_GRAPH_FILES[precision], recipe)
        else:
            (stage / FAST_GRAPH_FILES[precision]).unlink()
            logger.warning(
                "The fast %s graph missed its bar; the full graph serves", precision.value
            )


def cut_int8(
    directory: Path, spec: ModelSpec, outputs: Mapping[int, str], int8_variant: Variant
) -> dict[str, Any]:
    """The fast int8 graph: the int8 graph cut to its pooled output (see fused.py); recipe."""
    from featx.exporter.fused import write_pooled

    write_pooled(
        directory / int8_variant.file, directory / FAST_GRAPH_FILES[Precision.INT8], spec, outputs
    )
    return {
        **(int8_variant.recipe or {}),
        "pooling": spec.representation.pooling.value,
        "from": f"{int8_variant.file} cut to the pooled output (ONNX Runtime fuses at load)",
    }


def write_parity(
    graphs: Graphs, plan: ExportPlan, reference: str, default: Precision, reason: str
) -> None:
    """parity.json: every graph's figures against ``reference``, the gate and the choice."""
    write_json_atomic(
        graphs.stage / PARITY_FILE,
        {
            "reference": reference,
            "exporter": plan.exporter.value,
            "n_probe_texts": len(plan.probes),
            "n_user_probe_texts": len(plan.probes) - len(PROBE_TEXTS),
            "variants": graphs.parity,
            "gate": plan.gate,
            "default_precision": default.value,
            "reason": reason,
        },
    )


def manifest(graphs: Graphs, origin: Origin, plan: ExportPlan, default: Precision) -> Manifest:
    """The encoder artifact's manifest."""
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
            outputs=graphs.outputs,
            fast=graphs.fast,
        ),
    )


@contextmanager
def progress(name: str, steps: list[str], show: bool | None) -> Iterator[Callable[[], None]]:
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
