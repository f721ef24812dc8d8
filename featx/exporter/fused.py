"""The fast path's graph: the default sentence vector only, pooled inside, fused by ORT.

The full graph has every hidden state as an output, which ONNX Runtime's transformer
fusions cannot work across (a fused Attention or SkipLayerNormalization hides the
tensors those outputs name). For the common call (the artifact's default pooling over
the last layer) featx builds a second graph from the full one: the last hidden state
only, pooled inside the graph (mean or first token; normalisation stays in numpy, so
long-text windows merge as they do everywhere), then fused offline by
``onnxruntime.transformers.optimizer`` (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu).

The int8 fast graph is the full int8 graph cut the same way (:func:`write_pooled`), not
the fused graph quantised: measured interleaved on the 2-core AVX-512 VNNI machine of
benchmarks/README.md, QAttention and the fused int8 graph ran about 10 % slower than
the int8 MatMuls with ONNX Runtime's own load-time fusions (889 vs 807 short texts/s,
238 vs 217 mixed), while fp32 gains from the offline fusions (359 vs 347, and 2.6 vs
3.8 ms for one text). The cut int8 graph computes what the gated int8 graph computes,
so it needs no second calibration and agrees with it to rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from featx.artifact.manifest import POOLED_OUTPUT
from featx.artifact.sections import QA_OUTPUT
from featx.config import Family, ModelSpec, Pooling

logger = logging.getLogger(__name__)
# The poolings built inside the graph; the others take the full graph.
IN_GRAPH = (Pooling.MEAN, Pooling.CLS)
# Families whose graphs ORT's "bert" fusions know (encoders with post-LayerNorm blocks).
FUSED_FAMILIES = (Family.BERT, Family.ROBERTA, Family.DISTILBERT)


def can_pool_in_graph(spec: ModelSpec) -> bool:
    """Whether the artifact's default representation has a fast graph."""
    rep = spec.representation
    return rep.pooling in IN_GRAPH and rep.layers in ((-1,), (spec.num_layers,))


def _pooling_nodes(last: str, pooling: Pooling) -> tuple[list[onnx.NodeProto], list[Any]]:
    """Nodes from the last hidden state (batch, tokens, dim) to ``pooled`` (batch, dim)."""
    if pooling is Pooling.CLS:
        index = helper.make_tensor("pool/first", TensorProto.INT64, [], [0])
        return [helper.make_node("Gather", [last, "pool/first"], [POOLED_OUTPUT], axis=1)], [index]
    # Masked mean, as featx.pooling.mean_pool: sum(h * m) / max(sum(m), 1e-9).
    axes = helper.make_tensor("pool/axes", TensorProto.INT64, [1], [1])
    last_axis = helper.make_tensor("pool/last_axis", TensorProto.INT64, [1], [2])
    eps = helper.make_tensor("pool/eps", TensorProto.FLOAT, [], [1e-9])
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["pool/m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["pool/m", "pool/last_axis"], ["pool/m3"]),
        helper.make_node("Mul", [last, "pool/m3"], ["pool/masked"]),
        helper.make_node("ReduceSum", ["pool/masked", "pool/axes"], ["pool/sum"], keepdims=0),
        helper.make_node("ReduceSum", ["pool/m3", "pool/axes"], ["pool/count"], keepdims=0),
        helper.make_node("Max", ["pool/count", "pool/eps"], ["pool/safe_count"]),
        helper.make_node("Div", ["pool/sum", "pool/safe_count"], [POOLED_OUTPUT]),
    ]
    return nodes, [axes, last_axis, eps]


def pooled_graph(full: Path, spec: ModelSpec, outputs: Mapping[int, str]) -> onnx.ModelProto:
    """The full graph cut to the last hidden state and pooled as ``spec`` pools by default."""
    model = onnx.load(str(full))
    last = outputs.get(spec.num_layers, f"hidden_state_{spec.num_layers}")
    nodes, constants = _pooling_nodes(last, spec.representation.pooling)
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(constants)
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info(POOLED_OUTPUT, TensorProto.FLOAT, ["batch", spec.dim])
    )
    return model


def span_graph(
    full: Path, spec: ModelSpec, outputs: Mapping[int, str], weight: Any, bias: Any
) -> onnx.ModelProto:
    """The full graph cut to the last hidden state, then a question answerer's span head.

    One output, ``span_logits`` (batch, tokens, 2): start and end logits of every piece.
    """
    from onnx import numpy_helper

    model = onnx.load(str(full))
    last = outputs.get(spec.num_layers, f"hidden_state_{spec.num_layers}")
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(weight.astype("float32"), "span/weight"),
            numpy_helper.from_array(bias.astype("float32"), "span/bias"),
        ]
    )
    model.graph.node.extend(
        [
            helper.make_node("MatMul", [last, "span/weight"], ["span/product"]),
            helper.make_node("Add", ["span/product", "span/bias"], [QA_OUTPUT]),
        ]
    )
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info(QA_OUTPUT, TensorProto.FLOAT, ["batch", "tokens", 2])
    )
    return model


def write_span(
    full: Path,
    out: Path,
    spec: ModelSpec,
    outputs: Mapping[int, str],
    head: tuple[Any, Any],
    *,
    fuse_heads: int | None = None,
) -> dict[str, Any]:
    """Write the span graph of ``full`` to ``out``; return what was fused.

    Fused by ORT when ``fuse_heads`` is given (fp32); int8 graphs are only cut, as the
    fast int8 graph is.
    """
    partial = out.with_name(out.name + ".partial.onnx")
    try:
        onnx.save(span_graph(full, spec, outputs, *head), str(partial))
        fused: dict[str, int] = {}
        if fuse_heads is not None and spec.family in FUSED_FAMILIES:
            from onnxruntime.transformers.optimizer import optimize_model

            optimized = optimize_model(
                str(partial), model_type="bert", num_heads=fuse_heads,
                hidden_size=spec.dim if fuse_heads else 0, opt_level=0,
            )  # fmt: skip
            fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
            optimized.save_model_to_file(str(partial))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return {"from": full.name, "fused": fused}


def write_pooled(full: Path, out: Path, spec: ModelSpec, outputs: Mapping[int, str]) -> None:
    """Write ``full`` cut to the default pooled vector to ``out`` (atomically), unfused."""
    partial = out.with_name(out.name + ".partial")
    try:
        onnx.save(pooled_graph(full, spec, outputs), str(partial))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def write_fused(
    full: Path, out: Path, spec: ModelSpec, outputs: Mapping[int, str], heads: int | None
) -> dict[str, Any]:
    """Write the fast fp32 graph to ``out``; return what was fused, for the manifest.

    ``heads`` (attention heads, from config.json) lets ORT fuse attention; without it the
    graph is still pooled inside, with the other fusions.
    """
    pooled = out.with_name(out.name + ".pooled.onnx")
    write_pooled(full, pooled, spec, outputs)
    try:
        if spec.family not in FUSED_FAMILIES:
            pooled.replace(out)
            return {"pooling": spec.representation.pooling.value, "fused": {}}
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(pooled),
            model_type="bert",
            num_heads=heads or 0,
            hidden_size=spec.dim if heads else 0,
            opt_level=0,  # fusions only (1 and up import torch); ORT optimises at load
        )
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(out))
    finally:
        pooled.unlink(missing_ok=True)
    logger.info("fast graph: fused %s", fused)
    return {"pooling": spec.representation.pooling.value, "fused": fused}
