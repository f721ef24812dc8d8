import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import featx
from featx import Embedder, HashEncoder

TEXTS = [
    "a great movie",
    "a terrible film",
    "i love it",
    "i hate it",
    "great fun",
    "awful mess",
] * 3
LABELS = [1, 0, 1, 0, 1, 0] * 3


def test_init_only_stores_and_clone_keeps_params():
    embedder = Embedder("no-such-model-yet", pooling="cls", layers=(-2, -1), batch_size=8)
    params = embedder.get_params()
    assert params["model"] == "no-such-model-yet" and params["layers"] == (-2, -1)
    twin = clone(embedder).set_params(pooling="max")
    assert twin.pooling == "max" and embedder.pooling == "cls"


def test_fit_transform_on_hash_encoder_accepts_lists_arrays_and_series():
    pd = pytest.importorskip("pandas")
    embedder = Embedder(HashEncoder(dim=8)).fit(TEXTS)
    expected = HashEncoder(dim=8).encode(TEXTS)
    for X in (TEXTS, np.array(TEXTS), pd.Series(TEXTS), pd.DataFrame({"text": TEXTS})):
        np.testing.assert_array_equal(embedder.transform(X), expected)
    assert embedder.n_features_out_ == 8
    assert list(embedder.get_feature_names_out()[:2]) == ["embed0", "embed1"]


def test_pipeline_with_a_classifier_and_pandas_output():
    pd = pytest.importorskip("pandas")
    pipe = Pipeline([("embed", Embedder(HashEncoder(dim=16))), ("clf", LogisticRegression())])
    pipe.fit(TEXTS, LABELS)
    assert pipe.score(TEXTS, LABELS) == 1.0
    frame = Embedder(HashEncoder(dim=4)).set_output(transform="pandas").fit_transform(TEXTS)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == [
        f"embed{i}" for i in range(4)
    ]


def test_sentence_pairs_give_sbert_features():
    pairs = np.array([["a cat", "a dog"], ["a great movie", "a great film"]], dtype=object)
    embedder = Embedder(HashEncoder(dim=4)).fit(pairs)
    out = embedder.transform(pairs)
    u, v = HashEncoder(dim=4).encode(pairs[:, 0]), HashEncoder(dim=4).encode(pairs[:, 1])
    np.testing.assert_allclose(out, np.hstack([u, v, np.abs(u - v), u * v]))
    assert embedder.get_feature_names_out()[[0, 4, 8, 12]].tolist() == [
        "u0",
        "v0",
        "absdiff0",
        "prod0",
    ]


def test_real_artifact_pipeline_grid_search_and_pickle(tiny_artifacts):
    path = str(tiny_artifacts["bert"])
    embedder = Embedder(path, pooling="max", precision="fp32").fit(TEXTS)
    direct = featx.load(path, precision="fp32").encode(TEXTS, pooling="max")
    np.testing.assert_allclose(embedder.transform(TEXTS), direct, atol=1e-6)
    again = pickle.loads(pickle.dumps(embedder))  # the encoder travels as a reference
    np.testing.assert_allclose(again.transform(TEXTS), direct, atol=1e-6)
    pipe = Pipeline([("embed", Embedder(path)), ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(
        pipe, {"embed__pooling": ["mean", "cls"], "embed__layers": [-1, (-2, -1)]}, cv=2
    )
    search.fit(TEXTS, LABELS)
    assert search.best_params_["embed__pooling"] in ("mean", "cls")
    assert len(search.cv_results_["params"]) == 4


@pytest.mark.real
def test_no_model_means_the_default_model(real_artifact):
    # One spelling everywhere: model=None is the registry's default model.
    assert Embedder().fit(TEXTS).get_encoder().path == real_artifact


def test_bad_input_is_explained():
    with pytest.raises(TypeError, match="takes a str or an encoder, got int"):
        Embedder(3).fit(TEXTS)
    fitted = Embedder(HashEncoder()).fit(TEXTS)
    with pytest.raises(TypeError, match="single str"):
        fitted.transform("one text")
    with pytest.raises(ValueError, match="got 3 columns"):
        fitted.transform(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="fitted on single-column input but got 2-column"):
        fitted.transform(np.array([["a", "b"]]))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Embedder(HashEncoder()).transform(TEXTS)


class CountingEncoder(HashEncoder):
    """A HashEncoder that records every text it embeds, across the copies clone() makes."""

    seen: list[str] = []  # a class attribute: clone() deep-copies instances, not classes

    def encode(self, texts, **options):
        CountingEncoder.seen.extend(texts)
        return super().encode(texts, **options)


def test_cache_lets_a_grid_search_embed_each_text_once(tmp_path):
    CountingEncoder.seen.clear()
    encoder = CountingEncoder(8)
    texts = [f"text number {i} is {'good' if i % 2 else 'bad'}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    pipe = Pipeline(
        [
            ("embed", Embedder(encoder, cache=str(tmp_path / "cache.sqlite"))),
            ("clf", LogisticRegression()),
        ]
    )
    search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=5).fit(texts, labels)
    embedded = [t for t in CountingEncoder.seen if t != "featx"]  # fit's width probe
    assert sorted(embedded) == sorted(texts)  # 5 folds x 3 settings + refit: each text once
    cached = search.best_estimator_.named_steps["embed"].transform(texts)
    np.testing.assert_allclose(cached, HashEncoder(8).encode(texts))
    info = search.best_estimator_.named_steps["embed"].cache_.info()
    assert info["rows"] == 40 and info["misses"] == 0 and info["hits"] >= 40


def test_cache_keeps_settings_apart_and_stays_bounded(tiny_artifacts, tmp_path):
    from featx.cache import EmbeddingCache

    path = str(tmp_path / "cache.sqlite")
    mean = Embedder(str(tiny_artifacts["bert"]), cache=path).fit(TEXTS)
    cls = Embedder(str(tiny_artifacts["bert"]), pooling="cls", cache=path).fit(TEXTS)
    direct = featx.load(tiny_artifacts["bert"])
    for embedder, pooling in ((mean, "mean"), (cls, "cls"), (mean, "mean")):
        np.testing.assert_allclose(
            embedder.transform(TEXTS), direct.encode(TEXTS, pooling=pooling), atol=1e-6
        )
    assert mean.cache_.hits == len(TEXTS)  # the second mean pass came from the cache
    small = EmbeddingCache(tmp_path / "small.sqlite", max_bytes=32 * 4 * 10)
    small.put("space", [f"t{i}" for i in range(40)], np.ones((40, 32), dtype=np.float32))
    assert small.info()["rows"] <= 30


def test_cache_cli_info_and_clear(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from featx.cache import EmbeddingCache
    from featx.cli import main

    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path))
    EmbeddingCache().put("space", ["a", "b"], np.zeros((2, 4), dtype=np.float32))
    info = CliRunner().invoke(main, ["cache", "info"])
    assert info.exit_code == 0 and "rows: 2" in info.output
    cleared = CliRunner().invoke(main, ["cache", "clear"])
    assert cleared.exit_code == 0 and "cleared 2 cached embeddings" in cleared.output
    assert EmbeddingCache().info()["rows"] == 0


def test_the_in_process_cache_tier_is_bounded_and_per_file(tmp_path):
    from featx.cache import EmbeddingCache, MemoryRows

    memory = MemoryRows(max_bytes=4 * 4 * 3)  # three rows of four float32
    for i in range(10):
        memory.put(("file", bytes([i])), np.full(4, i, dtype=np.float32))
    assert memory.bytes <= memory.max_bytes and len(memory.rows) == 3
    assert memory.get(("file", bytes([9]))) is not None and memory.get(("file", b"\0")) is None
    first = EmbeddingCache(tmp_path / "first.sqlite")
    first.put("space", ["a"], np.ones((1, 4), dtype=np.float32))
    second = EmbeddingCache(tmp_path / "second.sqlite")
    assert second.get("space", ["a"]) == ({}, [0])  # another file: not served from memory
    first.clear()
    assert first.get("space", ["a"]) == ({}, [0])  # cleared from memory and from disk


def test_the_truncation_warning_counts_rows_and_survives_the_cache(tiny_artifacts, tmp_path):
    # Finding: with the cache, the warning counted distinct new texts, and vanished once
    # the vectors came from the cache although the texts were still cut.
    long_text = " ".join(["word"] * 400)
    texts = [long_text, "short", long_text, long_text]
    embedder = Embedder(str(tiny_artifacts["bert"]), cache=str(tmp_path / "cache.sqlite"))
    embedder.fit(texts)
    for _ in range(2):  # new vectors, then cached ones
        with pytest.warns(featx.TruncationWarning) as caught:
            embedder.transform(texts)
        warning = caught[-1].message
        assert (warning.n_truncated, warning.n_texts) == (3, 4)
        assert warning.tokens_cut == 3 * (warning.longest - warning.max_length)
        assert f"{warning.tokens_cut} of their {warning.tokens_of_cut} tokens" in str(warning)
    whole = Embedder(
        str(tiny_artifacts["bert"]), long_text="chunk_mean", cache=str(tmp_path / "c2")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", featx.TruncationWarning)
        whole.fit(texts).transform(texts)  # windows: nothing is cut, nothing said
