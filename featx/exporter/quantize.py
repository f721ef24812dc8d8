"""Post-export graph variants: int8 for CPUs (smoothed, dynamic), fp16 for GPUs.

Plain dynamic int8 loses accuracy on Transformer encoders because a few channels of
the LayerNorm outputs are 10-15x larger than the rest, and a dynamic activation scale
is one per tensor. Following SmoothQuant (Xiao et al., 2023), each LayerNorm-fed MatMul
is rewritten as ``X @ W == (X / s) @ (s * W)`` with ``s = max|X|^a / max|W|^(1-a)`` per
input channel, moving the outliers into the weights, which are quantised per channel.
On all-MiniLM-L6-v2 this lifts the minimum cosine against fp32 from about 0.97 to
about 0.98 at the same speed (benchmarks/README.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from featx.exporter.calibration import Feed

logger = logging.getLogger(__name__)

SMOOTH_ALPHA = 0.6  # 0.6-0.7 measured best; 0.5 and >= 0.8 lose accuracy
LAYER_NORMS = {
    "LayerNormalization",
    "SkipLayerNormalization",
    "SimplifiedLayerNormalization",
}

# Recorded in the manifest so that an artifact says how its int8 graph was made.
INT8_RECIPE: dict[str, Any] = {
    "method": "dynamic",
    "op_types": ["MatMul"],
    "activations": "uint8, per tensor, at run time",
    "weights": "int8, per output channel",
    "smoothing": {"alpha": SMOOTH_ALPHA, "applied_to": "MatMuls fed by a LayerNormalization"},
}


def _smoothable(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """LayerNorm outputs -> the MatMuls that read them.

    Both with a constant 2-D weight: input 0 is the activation, input 1 the (in, out) weight.
    """
    weights = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    groups: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2:
            continue
        act, weight = node.input
        if (
            weight in weights
            and len(weights[weight].dims) == 2
            and act in producer
            and producer[act].op_type in LAYER_NORMS
        ):
            groups.setdefault(act, []).append(node)
    return groups


def _activation_max(
    model: onnx.ModelProto, names: list[str], calibration: Iterable[Feed]
) -> dict[str, NDArray[np.float32]]:
    """Per-channel max |activation| over the real (unpadded) tokens of the calibration feeds."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    amax: dict[str, NDArray[np.float32]] = {}
    for feed in calibration:
        real = feed["attention_mask"].astype(bool)
        outputs = session.run(names, {k: v for k, v in feed.items() if k in inputs})
        for name, value in zip(names, outputs, strict=True):
            channel_max = np.abs(value[real]).max(axis=0)
            amax[name] = np.maximum(amax.get(name, channel_max), channel_max)
    return amax


def smooth(model: onnx.ModelProto, calibration: Iterable[Feed], alpha: float = SMOOTH_ALPHA) -> int:
    """Rescale LayerNorm-fed MatMuls in place (an exact rewrite in fp32); return how many."""
    groups = _smoothable(model)
    if not groups:
        return 0
    weights = {i.name: i for i in model.graph.initializer}
    amax = _activation_max(model, list(groups), calibration)
    insert_before: dict[str, onnx.NodeProto] = {}
    for act, nodes in groups.items():
        mats = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        wmax = np.max([np.abs(w).max(axis=1) for w in mats], axis=0)
        scale = np.maximum(amax[act], 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha)
        scale = np.clip(scale, 1e-3, 1e3).astype(np.float32)
        inverse, smoothed = f"{act}/smooth_inv", f"{act}/smoothed"
        model.graph.initializer.append(numpy_helper.from_array(1.0 / scale, inverse))
        insert_before[nodes[0].name] = helper.make_node(
            "Mul", [act, inverse], [smoothed], name=f"{nodes[0].name}/SmoothMul"
        )
        for node, mat in zip(nodes, mats, strict=True):
            name = f"{node.input[1]}/smoothed"
            model.graph.initializer.append(numpy_helper.from_array(mat * scale[:, None], name))
            node.input[0], node.input[1] = smoothed, name
    ordered = []
    for node in model.graph.node:
        if node.name in insert_before:
            ordered.append(insert_before[node.name])
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    used = {name for node in model.graph.node for name in node.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return sum(len(nodes) for nodes in groups.values())


class _DropPreprocessHint(logging.Filter):
    """onnxruntime's quantiser logs this on the root logger for every transformer model."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(
    fp32: Path,
    out: Path,
    calibration: Iterable[Feed],
    *,
    alpha: float | None = SMOOTH_ALPHA,
    per_channel: bool = True,
    exclude: Iterable[str] = (),
) -> dict[str, Any]:
    """Write a smoothed, dynamically quantised int8 copy of ``fp32`` to ``out``.

    Args:
        fp32: The exported fp32 graph.
        out: Where to write the int8 graph.
        calibration: Model inputs (padded batches) of representative texts, used only to
            measure activation ranges for smoothing.
        alpha: Smoothing strength; ``None`` skips smoothing (plain dynamic int8).
        per_channel: One weight scale per output channel (else one per tensor).
        exclude: Names of MatMul nodes to keep in fp32.

    Returns:
        What was done, for the manifest (the recipe and the number of smoothed MatMuls).
    """
    excluded = list(exclude)
    model = onnx.load(str(fp32))
    n_smoothed = 0 if alpha is None else smooth(model, calibration, alpha)
    smoothed = out.with_name(out.name + ".smoothed.onnx")
    onnx.save(model, str(smoothed))
    hint_filter = _DropPreprocessHint()
    logging.getLogger().addFilter(hint_filter)
    try:
        quantize_dynamic(
            str(smoothed),
            str(out),
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            reduce_range=False,  # VNNI and AVX2 u8s8 kernels use the full range
            weight_type=QuantType.QInt8,
            # Fused ops (com.microsoft) defeat shape inference; their outputs are float.
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            nodes_to_exclude=excluded,
        )
    finally:
        logging.getLogger().removeFilter(hint_filter)
        smoothed.unlink(missing_ok=True)
    logger.info("int8: %d MatMuls smoothed before quantisation", n_smoothed)
    return {
        **INT8_RECIPE,
        "weights": f"int8, per {'output channel' if per_channel else 'tensor'}",
        "smoothing": {**INT8_RECIPE["smoothing"], "alpha": alpha},
        "n_smoothed_matmuls": n_smoothed,
        **({"fp32_matmuls": len(excluded)} if excluded else {}),
    }


def convert_fp16(fp32: Path, out: Path) -> None:
    """Convert ``fp32`` to fp16 weights and compute, keeping fp32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32))
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(out))


def ffn_output_matmuls(fp32: Path) -> list[str]:
    """The MatMuls that read the feed-forward activations (GELU outputs) of each layer.

    Their inputs are the hardest to quantise per tensor; keeping them in fp32 is the
    cheapest way to bring an int8 graph closer to fp32 when the default one is not close
    enough (see featx.finetuning).
    """
    model = onnx.load(str(fp32), load_external_data=False)
    producer = {out: node for node in model.graph.node for out in node.output}
    weights = {i.name for i in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            continue
        source = producer.get(node.input[0])
        # GELU is exported as Erf arithmetic (x * 0.5 * (1 + erf(x / sqrt 2))) or a Gelu op.
        if source is not None and source.op_type in ("Mul", "Gelu", "FastGelu", "BiasGelu"):
            names.append(node.name)
    return names
