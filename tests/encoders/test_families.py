"""Every family end to end on a tiny random model: export, ONNX vs torch, batching, pooling."""

import pickle
import warnings

import numpy as np
import pytest

import featx
from featx.artifact import Artifact
from featx.config import Family

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a man is playing a guitar",
    "",
    "naïve café —東京 ünïcödé 1 2 3",
    "the movie was great , i love it !",
    "dog",
]
POOLINGS = ["mean", "cls", "max", "last", "weighted_mean"]


@pytest.fixture(scope="module")
def encoders(tiny_artifacts, tiny_model_dirs):
    out = {}
    for family, path in tiny_artifacts.items():
        onnx = featx.load(path, precision="fp32")
        torch_ref = featx.load(tiny_model_dirs[family], backend="torch")
        out[family] = (onnx, torch_ref)
    return out


def test_spec_matches_family(encoders, family):
    onnx, _ = encoders[family]
    spec = onnx.spec
    assert spec.family is Family(family)
    assert ("token_type_ids" in spec.input_names) == (family == "bert")
    if family == "gpt2":
        assert onnx.representation.pooling.value == "last"  # decoders pool their last token
        assert spec.pad_id == 0  # no pad token: padded with eos, masked out
    if family == "roberta":
        assert spec.pad_id == 1 and spec.max_length == 64


def test_shape_dtype_and_input_order(encoders, family):
    onnx, _ = encoders[family]
    out = onnx.encode(TEXTS)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    np.testing.assert_allclose(onnx.encode(TEXTS[::-1]), out[::-1], atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_one_by_one_equals_batched(encoders, family, pooling):
    onnx, _ = encoders[family]
    batched = onnx.encode(TEXTS, pooling=pooling)
    single = np.vstack([onnx.encode([t], pooling=pooling) for t in TEXTS])
    np.testing.assert_allclose(single, batched, atol=1e-5)  # padding must not leak


@pytest.mark.parametrize("pooling", POOLINGS)
def test_onnx_matches_torch(encoders, family, pooling):
    onnx, torch_ref = encoders[family]
    for options in (
        {"pooling": pooling},
        {"pooling": pooling, "layers": 0},
        {"pooling": pooling, "layers": (-2, -1), "combine": "concat"},
    ):
        np.testing.assert_allclose(
            onnx.encode(TEXTS, **options), torch_ref.encode(TEXTS, **options), atol=1e-4
        )


def test_the_last_layer_is_the_models_last_hidden_state(encoders, family):
    import torch

    onnx, torch_ref = encoders[family]
    feed = onnx.model_inputs([[5, 6, 7, 8]])
    with torch.inference_mode():
        out = torch_ref.model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    # what sentence-transformers pools; ModernBERT's last hidden_states entry is before its norm
    np.testing.assert_allclose(onnx.forward(feed, (2,))[0], out.last_hidden_state, atol=1e-4)


def test_layer_choice_and_combination(encoders, family):
    onnx, _ = encoders[family]
    last = onnx.encode(TEXTS, layers=-1, normalize=False)
    first = onnx.encode(TEXTS, layers=0, normalize=False)
    assert not np.allclose(last, first)
    mean2 = onnx.encode(TEXTS, layers=(1, 2), normalize=False)
    np.testing.assert_allclose(
        mean2, (onnx.encode(TEXTS, layers=1, normalize=False) + last) / 2, atol=1e-5
    )  # mean pooling is linear, so the layer mean can be taken before or after it
    concat = onnx.encode(TEXTS, layers=(1, 2), combine="concat", normalize=False)
    assert concat.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(concat[:, 32:], last, atol=1e-6)
    with pytest.raises(ValueError, match="Layer 3 does not exist"):
        onnx.encode(TEXTS, layers=3)


def test_normalize_gives_unit_vectors(encoders, family):
    onnx, _ = encoders[family]
    norms = np.linalg.norm(onnx.encode(TEXTS, normalize=True), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_empty_inputs(encoders, family):
    onnx, _ = encoders[family]
    empty = onnx.encode([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32
    vec = onnx.encode([""])
    assert np.isfinite(vec).all() and np.linalg.norm(vec) > 0


def test_over_long_text_warns_and_reports(encoders, family):
    onnx, _ = encoders[family]
    long_text = "the quick brown fox jumps over the lazy dog " * 20
    with pytest.warns(
        featx.TruncationWarning, match=r"1 of 2 texts were longer than max_length=64"
    ) as caught:
        info = onnx.encode_with_info([long_text, "dog"])
    assert info.truncated.tolist() == [True, False]
    warning = caught[0].message  # the counts are data: nothing needs to parse the message
    assert isinstance(warning, featx.TruncationWarning)
    assert (warning.n_truncated, warning.n_texts, warning.max_length) == (1, 2, 64)
    assert warning.longest == info.n_tokens[0]
    assert info.n_tokens[0] > 64 and info.n_windows.tolist() == [1, 1]


@pytest.mark.parametrize("mode", ["chunk_mean", "chunk_max"])
def test_chunk_modes_embed_long_texts_whole(encoders, family, mode):
    onnx, torch_ref = encoders[family]
    long_text = "the quick brown fox jumps over the lazy dog " * 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chunking never warns about truncation
        info = onnx.encode_with_info([long_text, "dog"], long_text=mode, stride=8)
    assert info.n_windows[0] > 1 and info.n_windows[1] == 1
    assert not info.truncated.any()
    truncated = onnx.encode([long_text[:50]])
    assert not np.allclose(info.embeddings[0], truncated[0])
    np.testing.assert_allclose(info.embeddings[1], onnx.encode(["dog"])[0], atol=1e-6)
    np.testing.assert_allclose(
        info.embeddings, torch_ref.encode([long_text, "dog"], long_text=mode, stride=8), atol=1e-4
    )


def test_pickle_round_trip(encoders, family):
    onnx, _ = encoders[family]
    custom = featx.load(onnx.path, precision="fp32", pooling="max", batch_size=2)
    clone = pickle.loads(pickle.dumps(custom))
    assert clone.representation == custom.representation and clone.batch_size == 2
    np.testing.assert_array_equal(clone.encode(TEXTS), custom.encode(TEXTS))


def test_bad_calls_say_what_to_fix(encoders):
    onnx, _ = encoders["bert"]
    with pytest.raises(TypeError, match="single str"):
        onnx.encode("a man is playing a guitar")
    with pytest.raises(TypeError, match=r"texts\[1\] is float"):
        onnx.encode(["ok", float("nan")])
    with pytest.raises(ValueError, match="Unknown pooling 'avg'"):
        onnx.encode(["ok"], pooling="avg")
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['poolng'\]"):
        onnx.encode(["ok"], poolng="mean")


def test_int8_graph_is_recorded_with_parity(tiny_artifacts, family):
    info = featx.load(tiny_artifacts[family])
    manifest = Artifact.open(info.path).manifest
    assert manifest.encoder is not None
    assert set(manifest.encoder.precisions) == {"fp32", "int8"}
    assert manifest.encoder.parity["fp32"]["min_cosine"] > 0.9999
    int8 = manifest.encoder.parity["int8"]
    passes = int8["mean_cosine"] >= 0.99 and int8["min_cosine"] >= 0.97
    assert int8["passes_gate"] == passes
    assert manifest.encoder.default_precision == ("int8" if passes else "fp32")
    assert info.precision == manifest.encoder.default_precision
