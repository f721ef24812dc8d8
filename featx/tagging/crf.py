"""A linear-chain conditional random field on dense features, in numpy and scipy.

:class:`LinearChainCRF` tags sequences of word vectors (e.g. frozen Transformer features
for named-entity recognition). A tag sequence ``y`` of sentence ``x`` scores::

    sum_t (x_t @ coef_ + intercept_)[y_t] + start_[y_0]
        + sum_t transitions_[y_{t-1}, y_t] + end_[y_last]

and ``p(y | x)`` is its softmax over all tag sequences. Training minimises the mean
negative log-likelihood plus an L2 penalty with L-BFGS-B; the gradient comes from the
forward-backward algorithm in log space. :func:`iob2_constraints` forbids transitions
such as ``O -> I-PER``, in training and in decoding alike.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeResult, minimize
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from featx.tagging._crf_checks import (
    check_constraints,
    check_gold,
    check_params,
    check_sample_weight,
    check_tag_range,
    check_X,
    check_y,
    resolve_n_tags,
)
from featx.tagging._crf_layout import NEG, Float, Layout, Packed, pack
from featx.tagging._crf_math import (
    Problem,
    backward,
    forward,
    log_likelihood,
    node_marginals,
    viterbi,
)

logger = logging.getLogger(__name__)


def iob2_constraints(labels: Sequence[str]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The transitions and starts that IOB2 tags allow: ``I-X`` only after ``B-X`` or ``I-X``.

    Args:
        labels: Tag names in tag-id order, e.g. ``["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]``.

    Returns:
        ``(allowed, allowed_start)``: ``allowed[i, j]`` is True when tag ``j`` may follow tag
        ``i`` (shape ``(k, k)``), ``allowed_start[j]`` when a sentence may start with tag
        ``j`` (shape ``(k,)``). Pass them to :class:`LinearChainCRF`.

    Raises:
        ValueError: If a label is not ``O``, ``B-<type>`` or ``I-<type>``, or appears twice.
    """
    if isinstance(labels, str):
        raise TypeError(f"labels must be a sequence of tag names, got the str {labels!r}.")
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"Tag names must be unique, got {labels!r}.")
    inside: list[str | None] = []
    for label in labels:
        if label == "O" or (label[:2] == "B-" and len(label) > 2):
            inside.append(None)
        elif label[:2] == "I-" and len(label) > 2:
            inside.append(label[2:])
        else:
            raise ValueError(
                f"Tag {label!r} is not IOB2: use 'O', 'B-<type>' or 'I-<type>' "
                "(convert IOB1 or BIOES tags first)."
            )
    k = len(labels)
    allowed = np.ones((k, k), dtype=bool)
    for j, entity in enumerate(inside):
        if entity is not None:
            allowed[:, j] = [lab in (f"B-{entity}", f"I-{entity}") for lab in labels]
    allowed_start = np.array([entity is None for entity in inside], dtype=bool)
    return allowed, allowed_start


class LinearChainCRF(BaseEstimator):
    """A linear-chain CRF over dense word features, trained by L-BFGS-B.

    The objective, with ``w_i`` the sentence weights (all 1 by default) and ``W = sum_i w_i``::

        (sum_i w_i * -log p(y_i | x_i)  +  c2 / 2 * ||theta||^2) / W

    where ``theta`` holds ``coef_``, ``transitions_``, ``start_`` and ``end_`` (allowed
    entries only) but not ``intercept_``. That is scikit-learn's ``LogisticRegression``
    scaling with ``c2 = 1 / C``: the penalty is per corpus, so it weighs less as the
    corpus grows.

    Features are used as float32 (float64 if every sentence is float64); ``fit`` copies
    them once into one array (CoNLL-2003 at 768 dimensions: about 0.6 GB) and computes
    every word's scores with one matmul per L-BFGS step.

    Args:
        c2: L2 penalty strength (``>= 0``); larger is smoother.
        max_iter: Most L-BFGS-B iterations.
        tol: Stop once the objective's relative decrease, or its largest gradient entry,
            falls below ``tol``.
        allowed: ``(k, k)`` booleans, ``allowed[i, j]``: tag ``j`` may follow tag ``i``
            (None: all). See :func:`iob2_constraints`.
        allowed_start: ``(k,)`` booleans: the tags a sentence may start with (None: all).
        verbose: Log the objective at every iteration with ``logging`` at INFO level
            (show it with ``logging.basicConfig(level=logging.INFO)``).

    Attributes:
        coef_: ``(n_features, k)`` word-feature weights.
        intercept_: ``(k,)`` per-tag bias.
        transitions_: ``(k, k)`` score of tag ``j`` after tag ``i``; ``-inf`` where forbidden.
        start_: ``(k,)`` score of starting with each tag; ``-inf`` where forbidden.
        end_: ``(k,)`` score of ending with each tag.
        allowed_: ``(k, k)`` the transition constraints used (all True without any).
        allowed_start_: ``(k,)`` the start constraints used.
        n_features_in_: Features per word.
        n_tags_: ``k``, the number of tags.
        n_iter_: L-BFGS-B iterations run.
        objective_: The objective's final value.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = [rng.integers(0, 3, n) for n in (4, 6, 5)]
        >>> X = [np.eye(3)[tags] + 0.1 * rng.normal(size=(len(tags), 3)) for tags in y]
        >>> crf = LinearChainCRF(c2=0.1).fit(X, y)
        >>> [list(tags) for tags in crf.predict(X[:1])] == [list(y[0])]
        True
    """

    def __init__(
        self,
        *,
        c2: float = 1.0,
        max_iter: int = 200,
        tol: float = 1e-6,
        allowed: NDArray[np.bool_] | None = None,
        allowed_start: NDArray[np.bool_] | None = None,
        verbose: bool = False,
    ) -> None:
        self.c2 = c2
        self.max_iter = max_iter
        self.tol = tol
        self.allowed = allowed
        self.allowed_start = allowed_start
        self.verbose = verbose

    def fit(
        self,
        X: Sequence[NDArray[Any]],
        y: Sequence[NDArray[np.integer[Any]]],
        n_tags: int | None = None,
        sample_weight: NDArray[np.floating[Any]] | Sequence[float] | None = None,
    ) -> LinearChainCRF:
        """Learn the weights from tagged sentences.

        Args:
            X: One ``(n_words, n_features)`` array per sentence.
            y: One ``(n_words,)`` array of integer tags in ``0..k-1`` per sentence.
            n_tags: ``k``; by default the constraints' size, else the largest tag + 1.
            sample_weight: One non-negative weight per sentence.

        Returns:
            The fitted estimator.

        Raises:
            ValueError: For bad parameters, malformed or non-finite ``X``, tags out of range,
                empty sentences, bad constraints, or gold tags the constraints forbid.
        """
        check_params(self.c2, self.max_iter, self.tol)
        sentences, dtype = check_X(X, n_features=None, allow_empty=False)
        tags = check_y(y, sentences)
        k = resolve_n_tags(n_tags, tags, self.allowed, self.allowed_start)
        allowed, allowed_start = check_constraints(self.allowed, self.allowed_start, k)
        check_gold(tags, allowed, allowed_start)
        weights = check_sample_weight(sample_weight, len(sentences))
        d = sentences[0].shape[1]

        packed = pack(sentences, dtype, tags)
        layout = Layout(d, k, allowed, allowed_start)
        problem = Problem(packed, layout, weights, float(self.c2))
        del sentences  # the packed copy is all that training needs

        started = time.perf_counter()
        result = self._minimize(problem, layout.size, started)
        coef, intercept, transitions, start, end = layout.unpack(result.x)
        self.coef_ = coef.copy()
        self.intercept_ = intercept
        self.transitions_ = np.where(allowed, transitions, -np.inf)
        self.start_ = np.where(allowed_start, start, -np.inf)
        self.end_ = end
        self.allowed_ = allowed
        self.allowed_start_ = allowed_start
        self.n_features_in_ = d
        self.n_tags_ = k
        self.n_iter_ = int(result.nit)
        self.objective_ = float(result.fun)
        elapsed = time.perf_counter() - started
        logger.log(
            logging.INFO if self.verbose else logging.DEBUG,
            "LinearChainCRF: %d iterations in %.1fs, objective %.6f (%s)",
            result.nit,
            elapsed,
            result.fun,
            result.message,
        )
        if result.status == 1:
            warnings.warn(
                f"LinearChainCRF stopped after max_iter={self.max_iter} iterations before "
                f"converging (tol={self.tol}). Raise max_iter, or raise c2 for an easier "
                "objective.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def predict(self, X: Sequence[NDArray[Any]]) -> list[NDArray[np.int64]]:
        """The most likely tag sequence of each sentence (Viterbi), within the constraints.

        Args:
            X: One ``(n_words, n_features)`` array per sentence; a sentence may be empty.

        Returns:
            One ``(n_words,)`` int64 array of tags per sentence.

        Raises:
            ValueError: If ``X`` is malformed, non-finite or has the wrong number of features.
        """
        check_is_fitted(self)
        sentences, dtype = check_X(X, n_features=self.n_features_in_, allow_empty=True)
        if not sentences:
            return []
        packed, emissions = self._emissions(sentences, dtype)
        transitions, start = self._scores()
        best = viterbi(emissions, packed, transitions, start, self.end_)
        return packed.unpack(best)

    def predict_marginals(self, X: Sequence[NDArray[Any]]) -> list[NDArray[np.float64]]:
        """Each word's tag probabilities, ``p(y_t = j | x)``, by forward-backward.

        Args:
            X: One ``(n_words, n_features)`` array per sentence; a sentence may be empty.

        Returns:
            One ``(n_words, k)`` float64 array per sentence; each row sums to 1.

        Raises:
            ValueError: If ``X`` is malformed, non-finite or has the wrong number of features.
        """
        check_is_fitted(self)
        sentences, dtype = check_X(X, n_features=self.n_features_in_, allow_empty=True)
        if not sentences:
            return []
        packed, emissions = self._emissions(sentences, dtype)
        transitions, start = self._scores()
        alpha, log_z = forward(emissions, packed, transitions, start, self.end_)
        beta = backward(emissions, packed, transitions, self.end_)
        return packed.unpack(node_marginals(alpha, beta, log_z, packed))

    def score_sequences(
        self, X: Sequence[NDArray[Any]], y: Sequence[NDArray[np.integer[Any]]]
    ) -> NDArray[np.float64]:
        """The log-likelihood ``log p(y_i | x_i)`` of each tagged sentence.

        Args:
            X: One ``(n_words, n_features)`` array per sentence; a sentence may be empty.
            y: One ``(n_words,)`` array of integer tags per sentence.

        Returns:
            ``(n_sentences,)`` float64: ``-inf`` for a sequence the constraints forbid,
            0 for an empty sentence.

        Raises:
            ValueError: If ``X`` or ``y`` is malformed, or a tag is out of range.
        """
        check_is_fitted(self)
        sentences, dtype = check_X(X, n_features=self.n_features_in_, allow_empty=True)
        tags = check_y(y, sentences)
        check_tag_range(tags, self.n_tags_)
        if not sentences:
            return np.zeros(0)
        packed, emissions = self._emissions(sentences, dtype)
        transitions, start = self._scores()
        return log_likelihood(emissions, packed, transitions, start, self.end_, tags)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    # -- helpers ---------------------------------------------------------------------------

    def _minimize(self, problem: Problem, n_params: int, started: float) -> OptimizeResult:
        """Run L-BFGS-B from all-zero parameters; with ``verbose``, log every iteration.

        Each iteration's log line shows the seconds since ``started``.
        """
        iteration = itertools.count(1)

        def log_iteration(intermediate_result: OptimizeResult) -> None:
            logger.info(
                "LinearChainCRF iteration %d: objective %.6f (%.1fs)",
                next(iteration),
                intermediate_result.fun,
                time.perf_counter() - started,
            )

        return minimize(
            problem.objective,
            np.zeros(n_params),
            jac=True,
            method="L-BFGS-B",
            callback=log_iteration if self.verbose else None,
            options={"maxiter": int(self.max_iter), "gtol": self.tol, "ftol": self.tol},
        )

    def _scores(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Transition and start scores with forbidden entries at the finite ``NEG``."""
        transitions = np.where(self.allowed_, self.transitions_, NEG)
        start = np.where(self.allowed_start_, self.start_, NEG)
        return transitions, start

    def _emissions(
        self, sentences: list[NDArray[Any]], dtype: type[Float]
    ) -> tuple[Packed, NDArray[np.float64]]:
        """Pack the sentences and score every word, ``X @ coef_ + intercept_``, in one matmul."""
        packed = pack(sentences, dtype)
        emissions = (packed.X @ self.coef_.astype(dtype)).astype(np.float64)
        emissions += self.intercept_
        return packed, emissions
