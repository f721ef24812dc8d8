import itertools
import pickle
import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression

from featx.tagging.crf import LinearChainCRF, iob2_constraints

# White-box pieces for the gradient checks.
from featx.tagging._crf_layout import Layout, pack  # isort: skip
from featx.tagging._crf_math import Problem  # isort: skip

IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_walk(rng, n, allowed, allowed_start):
    """A tag sequence of n tags that the constraints allow."""
    tags = [rng.choice(np.flatnonzero(allowed_start))]
    while len(tags) < n:
        tags.append(rng.choice(np.flatnonzero(allowed[tags[-1]])))
    return np.array(tags)


def random_constraints(rng, k):
    allowed = rng.random((k, k)) < 0.6
    allowed[:, 0] = True  # tag 0 may follow anything: sequences of every length exist
    allowed_start = rng.random(k) < 0.5
    allowed_start[0] = True
    return allowed, allowed_start


def random_model(rng, k, d, allowed=None, allowed_start=None):
    """A 'fitted' CRF with random weights, set through its public attributes."""
    allowed = np.ones((k, k), bool) if allowed is None else allowed
    allowed_start = np.ones(k, bool) if allowed_start is None else allowed_start
    crf = LinearChainCRF(allowed=allowed, allowed_start=allowed_start)
    crf.coef_ = rng.normal(size=(d, k))
    crf.intercept_ = rng.normal(size=k)
    crf.transitions_ = np.where(allowed, rng.normal(size=(k, k)), -np.inf)
    crf.start_ = np.where(allowed_start, rng.normal(size=k), -np.inf)
    crf.end_ = rng.normal(size=k)
    crf.allowed_, crf.allowed_start_ = allowed, allowed_start
    crf.n_features_in_, crf.n_tags_ = d, k
    return crf


def brute_force(crf, x):
    """Score of every tag sequence of sentence x, by enumeration: (sequences, scores)."""
    n, k = len(x), crf.n_tags_
    emissions = x @ crf.coef_ + crf.intercept_
    sequences = np.array(list(itertools.product(range(k), repeat=n)))
    scores = emissions[np.arange(n), sequences].sum(axis=1) + crf.start_[sequences[:, 0]]
    scores += crf.end_[sequences[:, -1]]
    for t in range(1, n):
        scores += crf.transitions_[sequences[:, t - 1], sequences[:, t]]
    return sequences, scores


def is_valid(tags, allowed, allowed_start):
    return bool(allowed_start[tags[0]] and allowed[tags[:-1], tags[1:]].all())


# -- exactness -----------------------------------------------------------------------------


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_equals_finite_differences(constrained, weighted):
    rng = np.random.default_rng(1 + 2 * constrained + weighted)
    k, d = 4, 3
    allowed, allowed_start = (
        random_constraints(rng, k) if constrained else (np.ones((k, k), bool), np.ones(k, bool))
    )
    lengths = [1, 2, 6, 4, 5]
    y = [random_walk(rng, n, allowed, allowed_start) for n in lengths]
    X = [rng.normal(size=(n, d)) for n in lengths]
    weights = rng.uniform(0.2, 2.0, size=5) if weighted else np.ones(5)
    layout = Layout(d, k, allowed, allowed_start)
    problem = Problem(pack(X, np.float64, y), layout, weights, c2=0.7)
    theta = rng.normal(size=layout.size)

    def loss(t):
        return problem.objective(t)[0]

    def grad(t):
        return problem.objective(t)[1]

    error = check_grad(loss, grad, theta, epsilon=1e-6)
    assert error < 1e-5 * max(1.0, np.linalg.norm(grad(theta)))
    if constrained:  # forbidden entries are not parameters at all
        assert layout.size == d * k + k + allowed.sum() + allowed_start.sum() + k


@pytest.mark.parametrize("constrained", [False, True])
def test_viterbi_marginals_and_likelihood_equal_brute_force(constrained):
    rng = np.random.default_rng(10 + constrained)
    k, d = 3, 4
    allowed, allowed_start = iob2_constraints(["O", "B-X", "I-X"]) if constrained else (None, None)
    crf = random_model(rng, k, d, allowed, allowed_start)
    X = [rng.normal(size=(n, d)) for n in (1, 2, 3, 4, 5, 5, 3)]
    best = crf.predict(X)
    marginals = crf.predict_marginals(X)
    y = [rng.integers(0, k, len(x)) for x in X]
    log_p = crf.score_sequences(X, y)
    for i, x in enumerate(X):
        sequences, scores = brute_force(crf, x)
        log_z = logsumexp(scores)
        np.testing.assert_array_equal(best[i], sequences[np.argmax(scores)])
        assert best[i].dtype == np.int64
        probs = np.exp(scores - log_z)
        expected = np.stack([np.bincount(sequences[:, t], probs, k) for t in range(len(x))])
        np.testing.assert_allclose(marginals[i], expected, atol=1e-10)
        match = np.flatnonzero((sequences == y[i]).all(axis=1))[0]
        np.testing.assert_allclose(log_p[i], scores[match] - log_z, rtol=1e-10)
        if constrained:
            assert is_valid(best[i], crf.allowed_, crf.allowed_start_)
            np.testing.assert_allclose(marginals[i][0, 2], 0.0)  # I-X never starts
            if not is_valid(y[i], crf.allowed_, crf.allowed_start_):
                assert log_p[i] == -np.inf


def test_objective_matches_public_likelihood_and_fit_reaches_its_minimum():
    rng = np.random.default_rng(3)
    k, d, c2 = 3, 4, 0.5
    allowed, allowed_start = iob2_constraints(["O", "B-X", "I-X"])
    y = [random_walk(rng, n, allowed, allowed_start) for n in rng.integers(1, 8, 30)]
    X = [np.eye(k)[t] @ rng.normal(size=(k, d)) + rng.normal(size=(len(t), d)) for t in y]
    crf = LinearChainCRF(
        c2=c2, tol=1e-13, max_iter=1000, allowed=allowed, allowed_start=allowed_start
    )
    crf.fit(X, y)
    default_tol = clone(crf).set_params(tol=1e-6, max_iter=200).fit(X, y)
    layout = Layout(d, k, allowed, allowed_start)
    theta = layout.pack(
        crf.coef_,
        crf.intercept_,
        np.where(allowed, crf.transitions_, 0),
        np.where(allowed_start, crf.start_, 0),
        crf.end_,
    )
    loss, grad = Problem(pack(X, np.float64, y), layout, np.ones(len(y)), c2).objective(theta)
    penalty = np.sum(crf.coef_**2) + np.sum(crf.transitions_[allowed] ** 2)
    penalty += np.sum(crf.start_[allowed_start] ** 2) + np.sum(crf.end_**2)
    expected = -crf.score_sequences(X, y).mean() + c2 / 2 * penalty / len(y)
    np.testing.assert_allclose(loss, expected, rtol=1e-10)
    np.testing.assert_allclose(crf.objective_, loss, rtol=1e-8)
    assert np.abs(grad).max() < 1e-6  # a minimum: the gradient vanishes
    assert 0 < default_tol.n_iter_ < crf.n_iter_ < crf.max_iter
    np.testing.assert_allclose(default_tol.objective_, crf.objective_, rtol=1e-5)


def brute_force_gradient(layout, theta, X, y, weights, c2):
    """The objective's gradient as expectations over every tag sequence, by enumeration."""
    coef, intercept, transitions, start, end = layout.unpack(theta)
    crf = random_model(np.random.default_rng(0), layout.k, layout.d)
    crf.coef_, crf.intercept_, crf.start_, crf.end_ = coef, intercept, start, end
    crf.transitions_ = transitions
    k = layout.k
    grads = [np.zeros_like(coef), np.zeros(k), np.zeros((k, k)), np.zeros(k), np.zeros(k)]
    for x, gold, w in zip(X, y, weights, strict=True):
        sequences, scores = brute_force(crf, x)
        p = np.exp(scores - logsumexp(scores))
        for seq, sign in [(sequences, p), (gold[None], np.array([-1.0]))]:
            onehot = np.eye(k)[seq]  # (m, n, k)
            per_word = np.einsum("m,mnk->nk", sign, onehot)
            grads[0] += w * x.T @ per_word
            grads[1] += w * per_word.sum(axis=0)
            for t in range(1, len(x)):
                np.add.at(grads[2], (seq[:, t - 1], seq[:, t]), w * sign)
            np.add.at(grads[3], seq[:, 0], w * sign)
            np.add.at(grads[4], seq[:, -1], w * sign)
    grad = layout.pack(*grads) + c2 * np.where(layout.penalised, theta, 0.0)
    return grad / weights.sum()


def test_extreme_scores_stay_exact(monkeypatch):
    """Scores ~1000 apart underflow the fast shifted sums: the exact fallback must take over."""
    from featx.tagging import _crf_math

    exact_calls = []
    original = _crf_math.logsumexp

    def counting(a, axis):
        exact_calls.append(a.ndim == 3)
        return original(a, axis)

    monkeypatch.setattr(_crf_math, "logsumexp", counting)
    rng = np.random.default_rng(7)
    k = d = 3
    allowed, allowed_start = iob2_constraints(["O", "B-X", "I-X"])
    # Word 0 is surely O, word 1 surely I-X: yet O -> I-X is forbidden.
    X = [np.eye(3)[[0, 2]], np.eye(3)[[0, 2, 2, 1]], rng.normal(size=(3, d))]
    y = [np.array([0, 1]), np.array([0, 1, 2, 1]), np.array([1, 2, 0])]
    layout = Layout(d, k, allowed, allowed_start)
    theta = rng.normal(size=layout.size)
    theta[: d * k] = (1000 * np.eye(3) + rng.normal(size=(3, 3))).ravel()
    weights = np.array([1.0, 2.0, 0.5])
    loss, grad = Problem(pack(X, np.float64, y), layout, weights, 0.3).objective(theta)
    assert np.isfinite(loss) and any(exact_calls)  # the fallback ran
    expected = brute_force_gradient(layout, theta, X, y, weights, 0.3)
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9)

    crf = random_model(rng, k, d, allowed, allowed_start)
    crf.coef_ = 1000 * np.eye(3)
    marginals, log_p = crf.predict_marginals(X), crf.score_sequences(X, y)
    for i, x in enumerate(X):
        sequences, scores = brute_force(crf, x)
        probs = np.exp(scores - logsumexp(scores))
        expected = np.stack([np.bincount(sequences[:, t], probs, k) for t in range(len(x))])
        np.testing.assert_allclose(marginals[i], expected, atol=1e-12)
        match = np.flatnonzero((sequences == y[i]).all(axis=1))[0]
        np.testing.assert_allclose(log_p[i], scores[match] - logsumexp(scores), rtol=1e-12)
        assert is_valid(crf.predict([x])[0], allowed, allowed_start)


# -- learning ------------------------------------------------------------------------------


def iob2_corpus(rng, n_sentences, noise_dims=5):
    """Entities of 1-3 words between runs of O. Word features say O, PER or LOC (noisily),
    never B or I: only the previous tag tells 'B-PER' from 'I-PER'."""
    X, y = [], []
    for _ in range(n_sentences):
        tags = []
        entity = bool(rng.integers(2))
        while len(tags) < rng.integers(6, 20):
            if entity:
                kind = rng.choice([1, 3])  # B-PER or B-LOC
                tags += [kind] + [kind + 1] * int(rng.integers(0, 3))
            else:
                tags += [0] * int(rng.integers(1, 4))
            entity = not entity
        tags = np.array(tags)
        word_class = (tags + 1) // 2  # 0: O, 1: PER, 2: LOC
        features = np.hstack([np.eye(3)[word_class], np.zeros((len(tags), noise_dims))])
        X.append(features + 0.3 * rng.normal(size=features.shape))
        y.append(tags)
    return X, y


def test_crf_uses_the_previous_tag_where_a_token_classifier_cannot():
    rng = np.random.default_rng(0)
    X_train, y_train = iob2_corpus(rng, 300)
    X_test, y_test = iob2_corpus(rng, 200)
    allowed, allowed_start = iob2_constraints(IOB2)
    crf = LinearChainCRF(c2=0.1, allowed=allowed, allowed_start=allowed_start)
    predicted = crf.fit(X_train, y_train).predict(X_test)
    gold = np.concatenate(y_test)
    crf_accuracy = np.mean(np.concatenate(predicted) == gold)

    tokens = LogisticRegression(max_iter=1000).fit(np.vstack(X_train), np.concatenate(y_train))
    token_accuracy = np.mean(tokens.predict(np.vstack(X_test)) == gold)

    assert crf_accuracy > 0.97
    assert token_accuracy < 0.85  # B vs I is a coin flip word by word
    assert crf_accuracy > token_accuracy + 0.15
    assert all(is_valid(tags, allowed, allowed_start) for tags in predicted)
    assert np.isneginf(crf.transitions_[0, 2]) and np.isneginf(crf.start_[2])  # O -> I-PER
    marginals = crf.predict_marginals(X_test[:5])
    for m, x in zip(marginals, X_test[:5], strict=True):
        assert m.shape == (len(x), 5)
        np.testing.assert_allclose(m.sum(axis=1), 1.0)


def test_sample_weight_zero_ignores_a_sentence_and_float32_matches_float64():
    rng = np.random.default_rng(5)
    X, y = iob2_corpus(rng, 40)
    junk_X, junk_y = [rng.normal(size=(6, 8))], [np.array([2, 2, 4, 4, 2, 4])]
    plain = LinearChainCRF(c2=1.0).fit(X, y, n_tags=5)
    weighted = LinearChainCRF(c2=1.0).fit(
        X + junk_X, y + junk_y, n_tags=5, sample_weight=[1.0] * 40 + [0.0]
    )
    np.testing.assert_allclose(weighted.coef_, plain.coef_, atol=1e-4)
    single = LinearChainCRF(c2=1.0).fit([x.astype(np.float32) for x in X], y, n_tags=5)
    np.testing.assert_allclose(single.coef_, plain.coef_, atol=1e-3)


def test_iob2_constraints():
    allowed, allowed_start = iob2_constraints(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    expected = np.array(
        [
            [1, 1, 0, 1, 0],  # O ->
            [1, 1, 1, 1, 0],  # B-PER ->
            [1, 1, 1, 1, 0],  # I-PER ->
            [1, 1, 0, 1, 1],  # B-LOC ->
            [1, 1, 0, 1, 1],  # I-LOC ->
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(allowed, expected)
    np.testing.assert_array_equal(allowed_start, [True, True, False, True, False])
    with pytest.raises(ValueError, match="'E-PER' is not IOB2"):
        iob2_constraints(["O", "E-PER"])
    with pytest.raises(ValueError, match="must be unique"):
        iob2_constraints(["O", "O"])


def test_sklearn_clone_pickle_and_empty_inputs():
    rng = np.random.default_rng(2)
    X, y = iob2_corpus(rng, 20)
    crf = LinearChainCRF(c2=0.3, max_iter=300).fit(X, y)
    assert clone(crf).get_params() == crf.get_params() and not hasattr(clone(crf), "coef_")
    again = pickle.loads(pickle.dumps(crf))
    np.testing.assert_array_equal(np.concatenate(again.predict(X)), np.concatenate(crf.predict(X)))
    assert crf.predict([]) == [] and crf.predict_marginals([]) == []
    out = crf.predict([X[0], np.zeros((0, 8)), X[1]])
    assert [len(o) for o in out] == [len(X[0]), 0, len(X[1])]
    np.testing.assert_array_equal(out[0], crf.predict([X[0]])[0])  # batching leaks nothing
    assert crf.predict_marginals([np.zeros((0, 8))])[0].shape == (0, 5)
    np.testing.assert_array_equal(crf.score_sequences([np.zeros((0, 8))], [[]]), [0.0])
    assert [len(o) for o in crf.predict([np.zeros((0, 8))] * 2)] == [0, 0]


def test_max_iter_warns_and_verbose_logs_each_iteration(caplog):
    rng = np.random.default_rng(4)
    X, y = iob2_corpus(rng, 20)
    with pytest.warns(ConvergenceWarning, match="max_iter=2 iterations"):
        crf = LinearChainCRF(max_iter=2).fit(X, y)
    assert crf.n_iter_ == 2
    with caplog.at_level("INFO", logger="featx.tagging.crf"):
        LinearChainCRF(verbose=True, max_iter=500).fit(X, y)
    assert "LinearChainCRF iteration 1: objective" in caplog.text
    assert "iterations in" in caplog.text
    assert crf.__sklearn_tags__().input_tags.two_d_array is False


# -- validation ----------------------------------------------------------------------------

X3 = [np.ones((3, 2)), np.ones((2, 2))]
Y3 = [np.array([0, 1, 2]), np.array([0, 0])]
ABC = iob2_constraints(["O", "B-X", "I-X"])


@pytest.mark.parametrize(
    ("params", "X", "y", "fit_kwargs", "error", "match"),
    [
        ({}, np.ones((3, 2)), Y3, {}, TypeError, "sequence of 2-D arrays"),
        ({}, X3, Y3[:1], {}, ValueError, "X has 2 sentences but y has 1"),
        ({}, [np.ones(3), np.ones((2, 2))], Y3, {}, ValueError, r"X\[0\] has shape \(3,\)"),
        ({}, [np.ones((3, 2)), np.ones((2, 4))], Y3, {}, ValueError, r"X\[1\] has 4 features"),
        ({}, [np.ones((3, 2)), np.array([[1, np.nan]] * 2)], Y3, {}, ValueError, "NaN"),
        ({}, [np.ones((3, 2)), np.ones((0, 2))], [Y3[0], []], {}, ValueError, "empty sentence"),
        ({}, [], [], {}, ValueError, "no sentences"),
        ({}, X3, [np.array([0, 1]), Y3[1]], {}, ValueError, r"y\[0\] has shape \(2,\)"),
        ({}, X3, [np.array([0.0, 1, 2]), Y3[1]], {}, ValueError, "integer ids"),
        ({}, X3, Y3, {"n_tags": 2}, ValueError, r"y\[0\]\[2\] is tag 2, outside 0..1"),
        ({}, X3, [np.array([0, -1, 2]), Y3[1]], {}, ValueError, r"y\[0\]\[1\] is tag -1"),
        ({"allowed": np.ones((2, 2), bool)}, X3, Y3, {"n_tags": 3}, ValueError, "allowed has"),
        ({"allowed_start": np.ones(4, bool)}, X3, Y3, {"n_tags": 3}, ValueError, "allowed_start"),
        ({"allowed": ABC[0], "allowed_start": ABC[1]}, X3, [Y3[0], np.array([2, 2])], {},
         ValueError, r"y\[1\] starts with tag 2"),
        ({"allowed": ABC[0], "allowed_start": ABC[1]}, X3, [Y3[0], np.array([0, 2])], {},
         ValueError, r"y\[1\]\[1\]: tag 2 may not follow tag 0"),
        ({"allowed": np.eye(3, k=1, dtype=bool)}, X3, Y3, {}, ValueError, "no tag sequence of 4"),
        ({"c2": -1.0}, X3, Y3, {}, ValueError, "c2 must be"),
        ({"max_iter": 0}, X3, Y3, {}, ValueError, "max_iter must be"),
        ({"tol": 0.0}, X3, Y3, {}, ValueError, "tol must be"),
        ({}, X3, Y3, {"sample_weight": [1.0]}, ValueError, "one weight per sentence"),
        ({}, X3, Y3, {"sample_weight": [1.0, -1.0]}, ValueError, ">= 0"),
    ],
)  # fmt: skip
def test_bad_inputs_are_explained(params, X, y, fit_kwargs, error, match):
    with pytest.raises(error, match=match):
        LinearChainCRF(**params).fit(X, y, **fit_kwargs)


def test_bad_prediction_inputs_are_explained():
    with pytest.raises(NotFittedError):
        LinearChainCRF().predict(X3)
    crf = LinearChainCRF().fit(X3, Y3)
    with pytest.raises(ValueError, match="3 features but the model was fitted with 2"):
        crf.predict([np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"X\[0\] holds NaN"):
        crf.predict_marginals([np.full((2, 2), np.inf)])
    with pytest.raises(ValueError, match=r"y\[0\]\[0\] is tag 7"):
        crf.score_sequences(X3[:1], [np.array([7, 0, 0])])


# -- speed ---------------------------------------------------------------------------------


def test_speed_smoke_conll_shaped():
    rng = np.random.default_rng(0)
    labels = ["O"] + [f"{p}-{t}" for t in ("PER", "LOC", "ORG", "MISC") for p in "BI"]
    allowed, allowed_start = iob2_constraints(labels)
    d, k = 300, len(labels)
    centres = rng.normal(size=(k, d)).astype(np.float32)
    y = [random_walk(rng, n, allowed, allowed_start) for n in rng.integers(8, 23, 2000)]
    X = [centres[t] + 3 * rng.normal(size=(len(t), d)).astype(np.float32) for t in y]
    crf = LinearChainCRF(c2=1.0, max_iter=50, allowed=allowed, allowed_start=allowed_start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        crf.fit(X, y)
    predicted = crf.predict(X[:500])
    assert all(is_valid(tags, allowed, allowed_start) for tags in predicted)
    assert np.mean(np.concatenate(predicted) == np.concatenate(y[:500])) > 0.5
    assert crf.coef_.shape == (d, k) and 1 <= crf.n_iter_ <= 50
