import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import featx
from featx import Embedder, HashEncoder, Predictor
from featx.errors import ArtifactIntegrityError, ModelLoadError
from featx.heads import HEADS

POSITIVE = ["a great movie", "i love it", "great fun", "the film was great", "love the cat"]
NEGATIVE = ["a terrible film", "i hate it", "a bad mess", "the movie was terrible", "hate the dog"]
TEXTS = (POSITIVE + NEGATIVE) * 2
LABELS = (["pos"] * 5 + ["neg"] * 5) * 2


def test_every_task_trains_predicts_and_round_trips(tmp_path):
    encoder = HashEncoder(16)
    targets = {
        "binary": LABELS,
        "multiclass": [i % 3 for i in range(len(TEXTS))],
        "multilabel": [[["a"], ["b"], ["a", "b"]][i % 3] for i in range(len(TEXTS))],
        "regression": [float(i % 5) / 2 for i in range(len(TEXTS))],
    }
    for task, y in targets.items():
        head = "ridge" if task == "regression" else "logreg"
        model = featx.train(TEXTS, y, model=encoder, head=head, cache=False, dev=(TEXTS, y))
        assert model.task.value == task
        assert model.metrics["dev"]["n"] == len(TEXTS)
        predicted = model.predict(TEXTS[:3])
        assert len(predicted) == 3
        again = Predictor.load(model.save(tmp_path / task))
        assert again.predict(TEXTS) == model.predict(TEXTS)
        assert again.labels == model.labels and again.metrics == model.metrics
    assert Predictor.load(tmp_path / "multilabel").labels == ["a", "b"]
    assert isinstance(Predictor.load(tmp_path / "regression").predict(TEXTS)[0], float)


# Every head for every task it does: logreg is a classifier (make_head refuses regression).
HEAD_TASKS = [
    (head, task)
    for task in ("multiclass", "multilabel", "regression")
    for head in HEADS
    if not (head == "logreg" and task == "regression")
]


@pytest.mark.parametrize(("head", "task"), HEAD_TASKS)
def test_every_head_saves_and_loads_without_extra_trust(head, task, tmp_path):
    y = {
        "multiclass": [i % 3 for i in range(len(TEXTS))],
        "multilabel": [[["a"], ["b"], ["a", "b"]][i % 3] for i in range(len(TEXTS))],
        "regression": [float(i % 5) for i in range(len(TEXTS))],
    }[task]
    params = {"n_neighbors": 3} if head == "knn" else {}
    model = featx.train(TEXTS, y, model=HashEncoder(8), head=head, head_params=params, cache=False)
    loaded = Predictor.load(model.save(tmp_path / head))
    assert loaded.predict(TEXTS) == model.predict(TEXTS)


def test_tiny_artifact_predictor_embeds_like_its_encoder(tiny_artifacts, tmp_path):
    path = str(tiny_artifacts["bert"])
    model = featx.train(TEXTS, LABELS, model=path, head="logreg", precision="fp32")
    out = model.save(tmp_path / "sentiment")
    names = set(json.loads((out / "featx.json").read_text())["files"])
    # The default vector comes from the fast fp32 graph: the only graph kept.
    assert {"model_fast.onnx", "tokenizer.json", "head.skops", "labels.json"} <= names
    assert "model.onnx" not in names and "metrics.json" in names
    loaded = Predictor.load(out)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-6)
    # The saved model is also a plain encoder artifact, with the same vectors.
    np.testing.assert_allclose(
        featx.load(out, precision="fp32").encode(TEXTS),
        featx.load(path, precision="fp32").encode(TEXTS),
        atol=1e-5,
    )
    embedder = next(iter(loaded.estimator.named_steps["features"].named_steps.values()))
    assert embedder.model == str(out.resolve()) and embedder.cache is None


def test_feature_union_of_two_encoders_and_tfidf_saves_both_encoders(tiny_artifacts, tmp_path):
    models = [str(tiny_artifacts["bert"]), str(tiny_artifacts["roberta"])]
    model = featx.train(
        TEXTS, LABELS, model=models, head="logreg", tfidf=True, representation={"layers": "all"}
    )
    loaded = Predictor.load(model.save(tmp_path / "union"))
    # Every hidden state needs each encoder's full graph, of its default precision only.
    assert len(list((tmp_path / "union" / "encoders" / "1").glob("*.onnx"))) == 1
    # int8 quantises activations per batch, and the trained model reads cached vectors
    # made in other batches: float noise only.
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-4)


@pytest.mark.parametrize("method", ["soft", "stack"])
def test_ensembles_over_heads_and_encoders(tiny_artifacts, tmp_path, method):
    models = [str(tiny_artifacts["bert"]), str(tiny_artifacts["distilbert"])]
    model = featx.train(
        TEXTS, LABELS, model=models, head=["logreg", "knn"], ensemble=method, tfidf=True
    )
    kind = VotingClassifier if method == "soft" else StackingClassifier
    assert isinstance(model.estimator, kind) and len(model.estimator.estimators) == 5
    loaded = Predictor.load(model.save(tmp_path / method))
    # int8 quantises activations per batch, and the trained model reads cached vectors
    # made in other batches: float noise only.
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-4)
    assert loaded.predict(TEXTS) == model.predict(TEXTS)
    regression = featx.train(
        TEXTS,
        [float(i % 4) for i in range(len(TEXTS))],
        model=HashEncoder(8),
        head=["ridge", "knn"],
        ensemble=method,
        cache=False,
    )
    assert len(regression.predict(TEXTS)) == len(TEXTS)


def test_ensemble_over_poolings_and_layers_of_one_artifact(tiny_artifacts, tmp_path):
    path = str(tiny_artifacts["bert"])
    vote = VotingClassifier(
        [
            ("mean", make_pipeline(Embedder(path, pooling="mean"), LogisticRegression())),
            ("cls", make_pipeline(Embedder(path, pooling="cls", layers=-2), LogisticRegression())),
        ],
        voting="soft",
    )
    model = featx.train(TEXTS, LABELS, estimator=vote)
    out = model.save(tmp_path / "vote")
    assert json.loads((out / "featx.json").read_text())["head"]["encoders"] == ["."]
    loaded = Predictor.load(out)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-4)


def test_search_covers_head_and_representation_with_progress(tiny_artifacts, capsys):
    model = featx.train(
        TEXTS,
        LABELS,
        model=str(tiny_artifacts["bert"]),
        head="logreg",
        search="random",
        search_representation=True,
        n_iter=4,
        cv=2,
        show_progress=True,
    )
    found = model.metrics["search"]
    assert found["n_candidates"] == 4 and 0.0 <= found["best_score"] <= 1.0
    assert {"head__C", "features__embed__pooling", "features__embed__layers"} <= set(
        found["best_params"]
    )
    assert "8/8" in capsys.readouterr().err  # one tick per fitted fold


def test_pairs_class_weights_and_head_params_reach_the_model():
    pairs = np.array([POSITIVE * 2, NEGATIVE * 2], dtype=object).T
    scores = [float(i % 5) for i in range(len(pairs))]
    model = featx.train(pairs, scores, model=HashEncoder(8), head="ridge", cache=False)
    assert model.n_pair_columns == 2 and len(model.predict(pairs)) == len(pairs)
    with pytest.raises(ValueError, match="reads pairs of texts"):
        model.predict(TEXTS)
    with pytest.raises(ValueError, match="TF-IDF features take single texts"):
        featx.train(pairs, scores, model=HashEncoder(8), tfidf=True)
    svm = featx.train(
        TEXTS,
        LABELS,
        model=HashEncoder(8),
        head="svm",
        class_weight="balanced",
        head_params={"C": 0.5},
        cache=False,
    )
    params = svm.estimator.named_steps["head"].get_params()
    assert params["estimator__C"] == 0.5 and params["estimator__class_weight"] == "balanced"


def test_any_sklearn_estimator_over_texts_is_a_predictor(tmp_path):
    pipe = make_pipeline(Embedder(HashEncoder(8)), LogisticRegression())
    model = featx.train(TEXTS, LABELS, estimator=pipe)
    assert Predictor.load(model.save(tmp_path / "custom")).predict(TEXTS) == model.predict(TEXTS)


class Majority(ClassifierMixin, BaseEstimator):
    """A head skops does not know: loading it must be refused unless trusted."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.repeat(self.classes_[0], len(X))


def test_bad_input_is_explained(tiny_artifacts, tmp_path):
    encoder = HashEncoder(8)
    with pytest.raises(ValueError, match="one class only"):
        featx.train(TEXTS, ["pos"] * len(TEXTS), model=encoder)
    with pytest.raises(ValueError, match="X has 20 texts but y has 3 labels"):
        featx.train(TEXTS, LABELS[:3], model=encoder)
    with pytest.raises(ValueError, match="training data is empty"):
        featx.train([], [], model=encoder)
    with pytest.raises(ValueError, match="empty"):
        featx.train(["", "b"], ["x", "y"], model=encoder, cache=False)
    with pytest.raises(ValueError, match="Several heads need an ensemble"):
        featx.train(TEXTS, LABELS, model=encoder, head=["logreg", "svm"])
    with pytest.raises(ValueError, match="Unknown ensemble 'hard'"):
        featx.train(TEXTS, LABELS, model=encoder, head=["logreg", "svm"], ensemble="hard")
    ridge = featx.train(TEXTS, LABELS, model=encoder, head="ridge", cache=False)
    with pytest.raises(ValueError, match="gives no probabilities"):
        ridge.predict_proba(TEXTS)
    with pytest.raises(ValueError, match="not among the model's labels"):
        featx.evaluate(ridge, TEXTS[:2], [1, 0])
    with pytest.raises(ModelLoadError, match="has no head"):
        Predictor.load(tiny_artifacts["bert"])
    odd = featx.train(TEXTS, LABELS, estimator=make_pipeline(Embedder(encoder), Majority()))
    odd.save(tmp_path / "odd")
    with pytest.raises(ModelLoadError, match="test_training.Majority"):
        Predictor.load(tmp_path / "odd")
    trusted = Predictor.load(tmp_path / "odd", trusted=["test_training.Majority"])
    assert trusted.predict(TEXTS[:1]) == ["neg"]
    head = tmp_path / "odd" / "head.skops"
    head.write_bytes(head.read_bytes()[:-4] + b"XXXX")
    with pytest.raises(ArtifactIntegrityError, match="Checksum mismatch"):
        Predictor.load(tmp_path / "odd", trusted=["test_training.Majority"])


def test_cache_is_shared_by_two_processes(tiny_artifacts, tmp_path):
    cache = tmp_path / "shared.sqlite"
    script = (
        "import sys; from featx import Embedder; "
        f"e = Embedder({str(tiny_artifacts['bert'])!r}, cache={str(cache)!r}).fit([]); "
        "texts = [f'text {i} of {sys.argv[1]}' for i in range(200)] + ['the same text']; "
        "e.transform(texts); print(e.cache_.misses)"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE, text=True)
        for name in ("first", "second")
    ]
    misses = [int(run.communicate(timeout=120)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert sum(misses) in (401, 402)  # both may miss the shared text, neither loses a row
    reader = Embedder(str(tiny_artifacts["bert"]), cache=str(cache)).fit([])
    reader.transform(["text 5 of first", "text 7 of second", "the same text"])
    assert reader.cache_.hits == 3 and reader.cache_.misses == 0
