"""The export steps that need torch: the fp32 graph and parity with the torch reference.

Imported by :func:`featx.exporter.export` once the ``export`` extra is known to be there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from featx.artifact import Origin, Variant, seal, staging
from featx.artifact.manifest import GRAPH_FILES, TOKENIZER_FILE
from featx.config import Exporter, Precision
from featx.encoders.torch import TorchEncoder, load_hf_model, load_hf_tokenizer
from featx.errors import ExportError
from featx.exporter.assemble import Graphs, fast_graphs, int8, manifest, progress, write_parity
from featx.exporter.onnx import export_onnx
from featx.exporter.parity import FP32_MIN_COSINE
from featx.exporter.plan import ExportPlan, ExportResult
from featx.exporter.quantize import convert_fp16
from featx.sources import attention_heads, fetch, inspect_folder, resolve, transformer_folder

logger = logging.getLogger(__name__)


def build(plan: ExportPlan) -> ExportResult:
    """Build the artifact ``plan`` asks for."""
    source = resolve(plan.model)
    folder, revision = fetch(source)
    spec = inspect_folder(folder, source.entry, **plan.overrides)
    model_dir = transformer_folder(folder)
    tokenizer = load_hf_tokenizer(model_dir)
    reference = TorchEncoder(load_hf_model(model_dir), tokenizer, spec)
    steps = ["fp32 graph", "fp32 parity"] + ["int8 graph"] * plan.quantize
    steps += ["fast graphs"] + ["fp16 graph"] * plan.fp16
    with (
        staging(plan.out, force=plan.force) as stage,
        progress(source.name, steps, plan.show_progress) as step,
    ):
        graphs = Graphs(stage, tokenizer, spec, reference, plan.probes)
        step()
        _fp32(graphs, model_dir, plan, step)
        default, reason = Precision.FP32, "int8 not built (quantize=False)"
        if plan.quantize:
            step()
            default, reason = int8(graphs, plan)
            if default is not Precision.INT8:
                logger.warning("%s: %s", source.name, reason)
        step()
        fast_graphs(graphs, plan, attention_heads(folder))
        if plan.fp16:
            step()
            convert_fp16(stage / GRAPH_FILES[Precision.FP32], stage / GRAPH_FILES[Precision.FP16])
            graphs.variants[Precision.FP16] = Variant(GRAPH_FILES[Precision.FP16])
            # Measured with the CPU provider; on a GPU, fp16 kernels may round differently.
            figures = graphs.check(Precision.FP16).to_dict()
            graphs.parity["fp16"] = {**figures, "provider": "CPUExecutionProvider"}
        write_parity(graphs, plan, f"torch {torch.__version__} fp32", default, reason)
        origin = Origin(source.name, revision, source.hub_id, str(folder))
        seal(stage, manifest(graphs, origin, plan, default))
    logger.info("Wrote %s (default %s: %s)", plan.out, default.value, reason)
    return ExportResult(plan.out, default.value, graphs.parity, reason)


def _fp32(graphs: Graphs, model_dir: Path, plan: ExportPlan, step: Callable[[], None]) -> None:
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
