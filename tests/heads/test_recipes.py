"""The default recipe: candidates scored by cross-validation on training data, the best refit."""

import json

import numpy as np
import pytest
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import Pipeline

import featx
from featx import Embedder, HashEncoder, Predictor
from featx.recipes import recipe_table

# Words carry the label and a tiny random model's vectors do not: TF-IDF members score,
# embeddings guess, so the table has something to rank.
POSITIVE = [f"a great movie number {i}" for i in range(6)] + ["great fun", "i love it"] * 2
NEGATIVE = [f"a terrible film number {i}" for i in range(6)] + ["a bad mess", "i hate it"] * 2
TEXTS = POSITIVE + NEGATIVE
LABELS = ["pos"] * len(POSITIVE) + ["neg"] * len(NEGATIVE)


def test_auto_scores_every_candidate_and_refits_the_best(tiny_artifacts, tmp_path):
    model = featx.train(TEXTS, LABELS, model=str(tiny_artifacts["bert"]), cache=False)
    recipe = model.metrics["recipe"]
    assert recipe["name"] == "auto"
    rows = {row["name"]: row for row in recipe["candidates"]}
    assert list(rows) == ["embedding", "all-layers", "tfidf", "vote"]
    assert all("cv_score" in row and row["seconds"] >= 0 for row in rows.values())
    best = max(rows.values(), key=lambda row: row["cv_score"])
    assert [r["name"] for r in rows.values() if r["chosen"]] == [best["name"]] == [recipe["chosen"]]
    assert rows["vote"]["params"]["members"][1] == "tfidf"
    # The chosen candidate is what was fitted: a vote is a VotingClassifier, the others
    # a pipeline with a tuned C.
    if recipe["chosen"] == "vote":
        assert isinstance(model.estimator, VotingClassifier)
    else:
        assert model.estimator.get_params()["head__C"] == rows[recipe["chosen"]]["params"]["C"]
    # The table is kept with the model (metrics.json) and predictions survive the round trip.
    folder = model.save(tmp_path / "auto")
    assert json.loads((folder / "metrics.json").read_text())["recipe"] == recipe
    assert Predictor.load(folder).predict(TEXTS) == model.predict(TEXTS)
    assert f"auto chose {recipe['chosen']}" in recipe_table(recipe)


def test_fast_and_any_named_choice_fit_exactly_what_was_asked():
    encoder = HashEncoder(16)
    fast = featx.train(TEXTS, LABELS, model=encoder, recipe="fast", cache=False)
    assert "recipe" not in fast.metrics
    assert isinstance(fast.estimator, Pipeline)
    assert isinstance(fast.estimator.named_steps["features"], Pipeline)  # embed, scale, norm
    for chosen in ({"head": "svm"}, {"tfidf": True}, {"representation": {"pooling": "max"}}):
        model = featx.train(TEXTS, LABELS, model=encoder, cache=False, **chosen)
        assert "recipe" not in model.metrics, chosen
    with pytest.raises(ValueError, match="Unknown recipe 'best'. Valid values: 'auto', 'fast'"):
        featx.train(TEXTS, LABELS, model=encoder, recipe="best")


def test_auto_falls_back_to_fast_and_says_why():
    encoder = HashEncoder(16)
    few = featx.train(TEXTS[:8] + TEXTS[-3:], LABELS[:8] + LABELS[-3:], model=encoder, cache=False)
    assert few.metrics["recipe"] == {
        "name": "fast",
        "why": "a class has 3 example(s), fewer than the 5 folds",
    }
    pairs = np.array([[t, t] for t in TEXTS], dtype=object)
    scores = [float(i % 3) for i in range(len(TEXTS))]
    regression = featx.train(pairs, scores, model=encoder, head=None, cache=False)
    assert (
        regression.metrics["recipe"]["why"] == "regression targets (the candidates are classifiers)"
    )
    # A hash encoder has no hidden states: that candidate is skipped with the reason.
    hashed = featx.train(TEXTS, LABELS, model=encoder, cache=False)
    skipped = [r for r in hashed.metrics["recipe"]["candidates"] if "skipped" in r]
    assert [r["name"] for r in skipped] == ["all-layers"]
    assert "needs a Transformer encoder" in skipped[0]["skipped"]


class CountingEncoder(HashEncoder):
    """A hash encoder that counts the texts it embeds (class-wide: clones share it)."""

    texts = 0

    def encode(self, texts, **options):
        CountingEncoder.texts += len(texts)
        return super().encode(texts, **options)


@pytest.mark.parametrize("how", ["grid search", "auto recipe"])
def test_without_a_cache_a_search_still_embeds_each_text_once(how):
    # Finding: a grid search with --no-cache re-embedded every fold of every candidate.
    CountingEncoder.texts = 0
    encoder = CountingEncoder(16)
    if how == "grid search":
        estimator = Pipeline(
            [("embed", Embedder(encoder)), ("head", featx.heads.make_head("logreg"))]
        )
        model = featx.train(TEXTS, LABELS, estimator=estimator, search="grid")
    else:
        model = featx.train(TEXTS, LABELS, model=encoder, cache=False)
    distinct = len(set(TEXTS))
    # Each distinct text once for the search, once more for the refit on all the data
    # (after the search's temporary cache is gone), plus Embedder.fit's one probe text per fit.
    assert CountingEncoder.texts <= 2 * distinct + 200
    assert CountingEncoder.texts < 5 * distinct  # five folds each embedding would exceed this
    # The fitted model keeps no hook to the deleted temporary cache.
    embedders = [v for v in model.estimator.get_params().values() if isinstance(v, Embedder)]
    assert embedders and all(not e.cache for e in embedders)
    assert model.predict(TEXTS[:2])


def test_the_cli_trains_with_the_recipe_and_prints_its_table(tiny_artifacts, tmp_path):
    from click.testing import CliRunner

    from featx.cli import main

    data = tmp_path / "train.tsv"
    data.write_text(
        "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(TEXTS, LABELS, strict=True))
    )
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "-m", str(tiny_artifacts["bert"]), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--no-cache", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "recipe: auto chose" in result.output
    for name in ("embedding", "all-layers", "tfidf", "vote"):
        assert name in result.output
    assert json.loads((out / "metrics.json").read_text())["recipe"]["name"] == "auto"
    fast = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "fast"), "--recipe", "fast"])
    assert fast.exit_code == 0, fast.output
    assert "recipe" not in fast.output


def test_an_ensemble_is_searched_member_by_member(tiny_artifacts, tmp_path):
    # Finding: an ensemble could not be searched ("Search one head at a time").
    model = featx.train(
        TEXTS,
        LABELS,
        model=HashEncoder(16),
        head=["logreg", "svm"],
        tfidf=True,
        ensemble="soft",
        search="grid",
        cv=2,
        cache=False,
    )
    found = model.metrics["search"]
    assert set(found["best_params"]) == {"m0__head__C", "m1__head__estimator__C", "tfidf__head__C"}
    assert found["n_candidates"] == 4 * 4 * 4  # the middle four values of each head's grid
    assert found["best_params"]["m0__head__C"] in [0.1, 0.3, 1.0, 3.0]
    # From the command line: a random search over a stack of a model and TF-IDF.
    from click.testing import CliRunner

    from featx.cli import main

    data = tmp_path / "train.tsv"
    rows = [f"{text}\t{label}\n" for text, label in zip(TEXTS, LABELS, strict=True)]
    data.write_text("text\tlabel\n" + "".join(rows))
    args = ["train", "--data", str(data), "-m", str(tiny_artifacts["bert"]), "--tfidf"]
    args += ["--ensemble", "stack", "--search", "random", "--n-iter", "3", "--cv", "2"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "stack"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert '"m0__head__C"' in result.output and '"tfidf__head__C"' in result.output
