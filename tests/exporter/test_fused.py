"""The fast path: a fused graph with the default pooled vector as its one output.

Every tiny model is exported once by the session fixture (with int8); these tests check
that the fast graphs are recorded, gated, chosen only for the call they serve, and give
the same vectors as the torch reference, while every other call opens the full graph.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest

import featx
from featx.artifact import Artifact
from featx.config import Precision

onnx = pytest.importorskip("onnx")
TEXTS = ["the quick brown fox jumps over the lazy dog", "a man is playing a guitar", "", "dog"]
FUSED = {"bert", "roberta", "distilbert"}  # ORT's "bert" fusions know these graphs
TRANSFORMERS_5 = int(version("transformers").split(".")[0]) >= 5


def test_encoders_with_a_default_pooling_in_the_graph_get_fast_graphs(tiny_artifacts, family):
    encoder = Artifact.open(tiny_artifacts[family]).manifest.encoder
    assert encoder is not None
    parity = Artifact.open(tiny_artifacts[family]).read_json("parity.json")["variants"]
    if family in ("gpt2", "qwen3"):  # last-token pooling: the full graph serves
        assert encoder.fast == {}
        return
    assert Precision.FP32 in encoder.fast and parity["fast_fp32"]["min_cosine"] >= 0.9999
    assert "fast_int8" in parity  # built, and kept only if it passed the same gate
    assert (Precision.INT8 in encoder.fast) == parity["fast_int8"]["kept"]
    fused = encoder.fast[Precision.FP32].recipe["fused"]
    if family in FUSED:
        assert fused.get("SkipLayerNormalization") == 4
        # transformers 4.x traces DistilBERT's attention in a shape ORT's fusion misses;
        # that graph is still pooled inside and gated, only its attention stays unfused.
        if family != "distilbert" or TRANSFORMERS_5:
            assert fused.get("Attention") == 2


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "modernbert"])
def test_the_fast_graph_serves_the_default_call_and_equals_torch(
    tiny_artifacts, tiny_model_dirs, family
):
    fast = featx.load(tiny_artifacts[family], precision="fp32")
    torch_ref = featx.load(tiny_model_dirs[family], backend="torch")
    assert fast.fast is not None
    got = fast.encode(TEXTS)
    assert fast._session is None  # the full graph was never opened
    np.testing.assert_allclose(got, torch_ref.encode(TEXTS), atol=1e-5)
    long = [" ".join(["the quick brown fox"] * 40)]  # windows, pooled in the graph, merged
    np.testing.assert_allclose(
        fast.encode(long, long_text="chunk_mean"),
        torch_ref.encode(long, long_text="chunk_mean"),
        atol=1e-5,
    )


def test_other_calls_open_the_full_graph_with_every_layer(tiny_artifacts, tiny_model_dirs):
    fast = featx.load(tiny_artifacts["bert"], precision="fp32")
    torch_ref = featx.load(tiny_model_dirs["bert"], backend="torch")
    for options in ({"layers": 0}, {"pooling": "max"}, {"layers": (1, 2), "combine": "concat"}):
        np.testing.assert_allclose(
            fast.encode(TEXTS, **options), torch_ref.encode(TEXTS, **options), atol=1e-4
        )
    assert fast._session is not None
    words = fast.encode_tokens(["a man is playing"])
    want = torch_ref.encode_tokens(["a man is playing"])
    np.testing.assert_allclose(words[0].vectors, want[0].vectors, atol=1e-4)


def test_info_shows_the_fast_path(tiny_artifacts):
    from click.testing import CliRunner

    from featx.cli import main

    out = CliRunner().invoke(main, ["info", str(tiny_artifacts["bert"])])
    assert "fast path:  fp32, int8 (the default mean vector only; fused: " in out.output
    assert "Attention 2" in out.output


def test_a_load_for_another_pooling_does_not_open_the_fast_graph(tiny_artifacts):
    encoder = featx.load(tiny_artifacts["bert"], precision="fp32", pooling="cls")
    assert encoder.fast is None and encoder._session is not None


def test_the_int8_fast_graph_is_the_int8_graph_cut_to_its_pooled_output(tiny_artifacts):
    # Unfused int8 MatMuls outran QAttention (benchmarks/README.md): the same int8 graph,
    # cut to the default pooled vector, so it agrees with the gated int8 graph.
    path = tiny_artifacts["bert"]
    section = Artifact.open(path).manifest.encoder
    assert section is not None
    assert Precision.INT8 in section.fast  # the tiny BERT's passes the gate (seed 0)
    graph = onnx.load(str(path / section.fast[Precision.INT8].file))
    ops = [node.op_type for node in graph.graph.node]
    full = [n.op_type for n in onnx.load(str(path / "model_int8.onnx")).graph.node]
    assert "QAttention" not in ops and ops.count("MatMulInteger") == full.count("MatMulInteger")
    assert [o.name for o in graph.graph.output] == ["pooled"]
    assert section.fast[Precision.INT8].recipe["from"].startswith("model_int8.onnx cut")
    texts = ["a short text", "another, rather longer text about something else entirely"]
    fast = featx.load(path, precision="int8")
    assert fast.fast is not None
    full_only = featx.load(path, precision="int8")
    full_only.fast = None
    np.testing.assert_allclose(fast.encode(texts), full_only.encode(texts), atol=1e-5)
