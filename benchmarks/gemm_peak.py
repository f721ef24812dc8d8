"""This machine's GEMM peaks (fp32, int8) and the FLOP bound they put on an encoder.

The peak is the best of ONNX Runtime's kernels (MatMul in fp32, MatMulInteger u8 x s8 in
int8, the kernels an int8 graph runs) and torch's (``torch.matmul``, ``torch._int_mm``)
over a few shapes: the model's own (tokens x hidden x FFN) and a large square one. The
bound of a workload is the peak divided by the operations its texts need: per token and
layer 2 x (4 hidden^2 + 2 hidden x FFN) for the projections and FFN, plus 4 x tokens x
hidden for the attention products; no contender can beat it, so "share of the bound"
says how much of the machine a contender uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _best_ops_per_s(run: Callable[[], object], ops: float, seconds: float = 0.5) -> float:
    """Best single-call rate over about ``seconds`` of calls, after a warm-up."""
    for _ in range(3):
        run()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return ops / best


def _ort_matmul(m: int, k: int, n: int, int8: bool, threads: int) -> Callable[[], object]:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if int8:
        a = rng.integers(0, 255, (m, k), dtype=np.uint8)
        b = rng.integers(-127, 127, (k, n), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["c"])
        a_type, out_type = TensorProto.UINT8, TensorProto.INT32
        b_init = helper.make_tensor("b", TensorProto.INT8, b.shape, b.tobytes(), raw=True)
    else:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["c"])
        a_type = out_type = TensorProto.FLOAT
        b_init = helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.tobytes(), raw=True)
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, [m, k])],
        [helper.make_tensor_value_info("c", out_type, [m, n])],
        [b_init],  # a constant B, as a model's weights are (ORT pre-packs it)
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return lambda: session.run(["c"], {"a": a})


def _torch_matmul(m: int, k: int, n: int, int8: bool, threads: int) -> Callable[[], object]:
    import torch

    torch.set_num_threads(threads)
    if int8:
        a = torch.randint(-127, 127, (m, k), dtype=torch.int8)
        b = torch.randint(-127, 127, (k, n), dtype=torch.int8)
        return lambda: torch._int_mm(a, b)
    a, b = torch.randn(m, k), torch.randn(k, n)
    return lambda: torch.matmul(a, b)


def gemm_peaks(hidden: int, ffn: int, threads: int) -> dict[str, Any]:
    """Best GOP/s in fp32 and int8, with every (kernel, shape) tried."""
    shapes = [(1024, hidden, ffn), (1024, ffn, hidden), (2048, 2048, 2048)]
    tried: list[dict[str, Any]] = []
    for int8 in (False, True):
        for kernel, make in (("onnxruntime", _ort_matmul), ("torch", _torch_matmul)):
            for m, k, n in shapes:
                try:
                    rate = _best_ops_per_s(make(m, k, n, int8, threads), 2.0 * m * k * n)
                except (ImportError, RuntimeError) as exc:  # no torch, or no int8 kernel
                    tried.append({"int8": int8, "kernel": kernel, "error": str(exc)[:200]})
                    continue
                tried.append(
                    {"int8": int8, "kernel": kernel, "shape": [m, k, n], "gop_s": rate / 1e9}
                )
    best = {
        kind: max((t["gop_s"] for t in tried if t["int8"] is int8 and "gop_s" in t), default=0.0)
        for kind, int8 in (("fp32", False), ("int8", True))
    }
    return {"fp32_gop_s": best["fp32"], "int8_gop_s": best["int8"], "tried": tried}


def encoder_shape(model_folder: Path) -> dict[str, int]:
    """hidden, FFN width and layers from the model's config.json."""
    config = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))
    return {
        "hidden": int(config.get("hidden_size") or config["dim"]),
        "ffn": int(config.get("intermediate_size") or config["hidden_dim"]),
        "layers": int(config.get("num_hidden_layers") or config["n_layers"]),
    }


def ops_per_text(tokens: Sequence[int], shape: dict[str, int]) -> float:
    """Mean operations (2 per multiply-add) one text of the workload needs."""
    t = np.asarray(tokens, dtype=np.float64)
    h, f = shape["hidden"], shape["ffn"]
    dense = 2.0 * (4 * h * h + 2 * h * f) * t
    attention = 4.0 * h * t * t  # Q K^T and softmax(.) V over the text's own tokens
    return float(((dense + attention) * shape["layers"]).mean())
