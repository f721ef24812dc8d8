"""Post-export graph variants: dynamic int8 for CPUs, fp16 for GPUs."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

logger = logging.getLogger(__name__)


def quantize_int8(fp32: Path, out: Path, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Dynamically quantise the MatMul weights of ``fp32`` to int8, per output channel.

    Activations are quantised at run time (uint8), weights per channel (int8): the
    u8s8 path that AVX-512 VNNI and AVX2 both run fast.

    Args:
        fp32: The exported fp32 graph.
        out: Where to write the int8 graph.
        exclude: Substrings of node names to keep in fp32 (the most sensitive MatMuls).

    Returns:
        The names of the MatMul nodes left in fp32.
    """
    graph = onnx.load(str(fp32), load_external_data=False).graph
    kept = [
        n.name for n in graph.node if n.op_type == "MatMul" and any(p in n.name for p in exclude)
    ]
    quantize_dynamic(
        str(fp32),
        str(out),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=kept,
        extra_options={"MatMulConstBOnly": True},
    )
    logger.info("int8: %d MatMul nodes kept in fp32", len(kept))
    return kept


def convert_fp16(fp32: Path, out: Path) -> None:
    """Convert ``fp32`` to fp16 weights and compute, keeping fp32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32))
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(out))


# Recorded in the manifest so that an artifact says how its int8 graph was made.
INT8_RECIPE = {
    "method": "dynamic",
    "op_types": ["MatMul"],
    "activations": "uint8",
    "weights": "int8, per channel",
}
