"""The hand-tuned raw ONNX Runtime session that featx's fast path is measured against.

What an engineer builds by hand in an afternoon, without featx: the model's graph cut to
``last_hidden_state``, mean pooling and L2 normalisation added inside the graph, ORT's
transformer optimizer (EmbedLayerNormalization, Attention, SkipLayerNormalization,
BiasGelu), per-channel dynamic int8 with QAttention, the tokenizers library's batch
encoding with truncation at 256, and texts sorted by length into batches of 32 (so that
a batch pads little). The graph is made once from the featx artifact's fp32 graph (the
same model) and kept beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

OUTPUT = "embedding"


def build_graphs(
    artifact: Path, out_dir: Path, num_layers: int, heads: int, dim: int
) -> dict[str, Path]:
    """fp32 and int8 raw graphs (made once) from the artifact's full fp32 graph."""
    files = {"fp32": out_dir / "raw_fp32.onnx", "int8": out_dir / "raw_int8.onnx"}
    if all(f.is_file() for f in files.values()):
        return files
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    out_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(artifact / "model.onnx"))
    last = f"hidden_state_{num_layers}"
    one = helper.make_tensor("raw/one", TensorProto.INT64, [1], [1])
    two = helper.make_tensor("raw/two", TensorProto.INT64, [1], [2])
    eps = helper.make_tensor("raw/eps", TensorProto.FLOAT, [], [1e-9])
    model.graph.initializer.extend([one, two, eps])
    model.graph.node.extend(
        [
            helper.make_node("Cast", ["attention_mask"], ["raw/m"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["raw/m", "raw/two"], ["raw/m3"]),
            helper.make_node("Mul", [last, "raw/m3"], ["raw/masked"]),
            helper.make_node("ReduceSum", ["raw/masked", "raw/one"], ["raw/sum"], keepdims=0),
            helper.make_node("ReduceSum", ["raw/m3", "raw/one"], ["raw/n"], keepdims=0),
            helper.make_node("Max", ["raw/n", "raw/eps"], ["raw/n1"]),
            helper.make_node("Div", ["raw/sum", "raw/n1"], ["raw/mean"]),
            helper.make_node("LpNormalization", ["raw/mean"], [OUTPUT], axis=1, p=2),
        ]
    )
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, None))
    pooled = out_dir / "raw_pooled.onnx"
    onnx.save(model, str(pooled))
    optimized = optimize_model(str(pooled), model_type="bert", num_heads=heads, hidden_size=dim)
    optimized.save_model_to_file(str(files["fp32"]))
    quantize_dynamic(
        str(files["fp32"]),
        str(files["int8"]),
        op_types_to_quantize=["MatMul", "Attention"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    pooled.unlink()
    return files


class RawSession:
    """texts -> L2-normalised vectors, sorted into length batches, on one ORT session."""

    def __init__(
        self, graph: Path, tokenizer_file: Path, *, dim: int, threads: int, batch_size: int
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(256)
        self.tokenizer.no_padding()
        self.batch_size = batch_size
        self.dim = dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros_like(ids)
            for i, r in enumerate(rows):
                n = len(encodings[r].ids)
                ids[i, :n] = encodings[r].ids
                mask[i, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[rows] = self.session.run(
                [OUTPUT], {k: v for k, v in feed.items() if k in self.inputs}
            )[0]
        return out
