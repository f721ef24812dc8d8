"""A linear-chain conditional random field on dense features, in numpy and scipy.

:class:`LinearChainCRF` tags sequences of word vectors (e.g. frozen Transformer features
for named-entity recognition). A tag sequence ``y`` of sentence ``x`` scores::

    sum_t (x_t @ coef_ + intercept_)[y_t] + start_[y_0]
        + sum_t transitions_[y_{t-1}, y_t] + end_[y_last]

and ``p(y | x)`` is its softmax over all tag sequences. Training minimises the mean
negative log-likelihood plus an L2 penalty with L-BFGS-B; the gradient comes from the
forward-backward algorithm in log space. :func:`iob2_constraints` forbids transitions
such as ``O -> I-PER``, in training and in decoding alike.

Sentences are sorted by length and stored time-major ("packed"): the sentences still
running at step ``t`` are a prefix of the batch, so every time step is a few array
operations on that prefix, with no padding and no masks.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeResult, minimize
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

# Scores of forbidden transitions and starts. A finite stand-in for -inf: exp() of it is
# exactly 0, yet sums and differences never produce nan (and 0 * _NEG is 0).
_NEG = -1e30

Float = np.float32 | np.float64


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
        self._check_params()
        sentences, dtype = _check_X(X, n_features=None, allow_empty=False)
        tags = _check_y(y, sentences)
        k = self._resolve_n_tags(n_tags, tags)
        allowed, allowed_start = _check_constraints(self.allowed, self.allowed_start, k)
        _check_gold(tags, allowed, allowed_start)
        weights = _check_sample_weight(sample_weight, len(sentences))
        d = sentences[0].shape[1]

        packed = _pack(sentences, dtype, tags)
        layout = _Layout(d, k, allowed, allowed_start)
        problem = _Problem(packed, layout, weights, float(self.c2))
        del sentences  # the packed copy is all that training needs

        started = time.perf_counter()
        iteration = itertools.count(1)

        def log_iteration(intermediate_result: OptimizeResult) -> None:
            logger.info(
                "LinearChainCRF iteration %d: objective %.6f (%.1fs)",
                next(iteration),
                intermediate_result.fun,
                time.perf_counter() - started,
            )

        result = minimize(
            problem.objective,
            np.zeros(layout.size),
            jac=True,
            method="L-BFGS-B",
            callback=log_iteration if self.verbose else None,
            options={"maxiter": int(self.max_iter), "gtol": self.tol, "ftol": self.tol},
        )
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
        sentences, dtype = _check_X(X, n_features=self.n_features_in_, allow_empty=True)
        if not sentences:
            return []
        packed, emissions = self._emissions(sentences, dtype)
        transitions, start = self._scores()
        best = _viterbi(emissions, packed, transitions, start, self.end_)
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
        sentences, dtype = _check_X(X, n_features=self.n_features_in_, allow_empty=True)
        if not sentences:
            return []
        packed, emissions = self._emissions(sentences, dtype)
        transitions, start = self._scores()
        alpha, log_z = _forward(emissions, packed, transitions, start, self.end_)
        beta = _backward(emissions, packed, transitions, self.end_)
        return packed.unpack(_node_marginals(alpha, beta, log_z, packed))

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
        sentences, dtype = _check_X(X, n_features=self.n_features_in_, allow_empty=True)
        tags = _check_y(y, sentences)
        _check_tag_range(tags, self.n_tags_)
        if not sentences:
            return np.zeros(0)
        packed, emissions = self._emissions(sentences, dtype)
        transitions, start = self._scores()
        _, log_z = _forward(emissions, packed, transitions, start, self.end_)
        gold = np.concatenate([np.zeros(0, dtype=np.intp), *tags])
        gold_packed = np.empty_like(gold)
        gold_packed[packed.order_words] = gold
        word = emissions[np.arange(packed.n_words), gold_packed]
        step = np.empty(packed.n_words)
        first = packed.prev_row < 0
        step[first] = start[gold_packed[first]]
        step[~first] = transitions[gold_packed[packed.prev_row[~first]], gold_packed[~first]]
        rank = packed.row_rank
        score = np.bincount(rank, word + step, packed.n_nonempty).astype(np.float64)
        score += self.end_[gold_packed[packed.last]]
        forbidden = np.bincount(rank, weights=step <= _NEG / 2, minlength=packed.n_nonempty)
        log_p = np.where(forbidden > 0, -np.inf, score - log_z)
        out = np.zeros(packed.n_sentences)
        out[packed.order[: packed.n_nonempty]] = log_p
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    # -- helpers ---------------------------------------------------------------------------

    def _check_params(self) -> None:
        """Reject parameter values that cannot train, naming the valid range."""
        if (
            not (isinstance(self.c2, int | float | np.number) and np.isfinite(self.c2))
            or self.c2 < 0
        ):
            raise ValueError(f"c2 must be a finite number >= 0, got {self.c2!r}.")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int | np.integer):
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}.")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}.")
        if (
            not (isinstance(self.tol, int | float | np.number) and np.isfinite(self.tol))
            or self.tol <= 0
        ):
            raise ValueError(f"tol must be a finite number > 0, got {self.tol!r}.")

    def _resolve_n_tags(self, n_tags: int | None, tags: list[NDArray[np.intp]]) -> int:
        """``k`` from ``n_tags``, else the constraints, else the largest tag + 1."""
        top = max(int(t.max()) for t in tags)
        if n_tags is None:
            if self.allowed is not None:
                n_tags = int(np.shape(self.allowed)[0])
            elif self.allowed_start is not None:
                n_tags = int(np.shape(self.allowed_start)[0])
            else:
                n_tags = top + 1
        if isinstance(n_tags, bool) or not isinstance(n_tags, int | np.integer) or n_tags < 1:
            raise ValueError(f"n_tags must be an int >= 1, got {n_tags!r}.")
        _check_tag_range(tags, int(n_tags))
        return int(n_tags)

    def _scores(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Transition and start scores with forbidden entries at the finite ``_NEG``."""
        transitions = np.where(self.allowed_, self.transitions_, _NEG)
        start = np.where(self.allowed_start_, self.start_, _NEG)
        return transitions, start

    def _emissions(
        self, sentences: list[NDArray[Any]], dtype: type[Float]
    ) -> tuple[_Packed, NDArray[np.float64]]:
        """Pack the sentences and score every word, ``X @ coef_ + intercept_``, in one matmul."""
        packed = _pack(sentences, dtype)
        emissions = (packed.X @ self.coef_.astype(dtype)).astype(np.float64)
        emissions += self.intercept_
        return packed, emissions


# -- input checks -------------------------------------------------------------------------


def _check_X(
    X: Any, *, n_features: int | None, allow_empty: bool
) -> tuple[list[NDArray[Any]], type[Float]]:
    """Sentences as 2-D arrays of one width, all finite; the dtype to compute in."""
    if isinstance(X, str) or (isinstance(X, np.ndarray) and X.ndim < 3 and X.dtype != object):
        shape = getattr(X, "shape", None)
        raise TypeError(
            "X must be a sequence of 2-D arrays (n_words, n_features), one per sentence; "
            f"got {type(X).__name__}{f' of shape {shape}' if shape else ''}. "
            "For one sentence, pass [X]."
        )
    sentences: list[NDArray[Any]] = []
    for i, sentence in enumerate(X):
        x = np.asarray(sentence)
        if allow_empty and x.size == 0 and n_features is not None:
            x = x.reshape(0, n_features)
        if x.ndim != 2:
            raise ValueError(
                f"X[{i}] has shape {x.shape}; each sentence must be a 2-D array "
                "(n_words, n_features)."
            )
        if x.dtype.kind not in "biuf":
            raise ValueError(f"X[{i}] has dtype {x.dtype}; features must be numbers.")
        width = n_features if n_features is not None else sentences[0].shape[1] if i else None
        if width is not None and x.shape[1] != width:
            where = "the model was fitted with" if n_features is not None else "X[0] has"
            raise ValueError(
                f"X[{i}] has {x.shape[1]} features but {where} {width}; every sentence "
                "must use the same features."
            )
        if x.shape[0] == 0 and not allow_empty:
            raise ValueError(
                f"X[{i}] is an empty sentence (0 words); a CRF cannot learn from it. "
                "Drop empty sentences before fit()."
            )
        if not np.isfinite(x).all():
            row = int(np.nonzero(~np.isfinite(x).all(axis=1))[0][0])
            raise ValueError(
                f"X[{i}] holds NaN or infinite values (word {row}); fix or drop that sentence."
            )
        sentences.append(x)
    if not sentences and not allow_empty:
        raise ValueError("X holds no sentences; fit() needs at least one tagged sentence.")
    all64 = bool(sentences) and all(x.dtype == np.float64 for x in sentences)
    return sentences, np.float64 if all64 else np.float32


def _check_y(y: Any, sentences: list[NDArray[Any]]) -> list[NDArray[np.intp]]:
    """Tag arrays of integers, one per sentence and one per word."""
    if isinstance(y, str) or (isinstance(y, np.ndarray) and y.ndim < 2 and y.dtype != object):
        raise TypeError(
            "y must be a sequence of 1-D integer arrays, one per sentence; "
            f"got {type(y).__name__}. For one sentence, pass [y]."
        )
    tags = list(y)
    if len(tags) != len(sentences):
        raise ValueError(
            f"X has {len(sentences)} sentences but y has {len(tags)}; give one tag array per "
            "sentence."
        )
    out = []
    for i, (t, x) in enumerate(zip(tags, sentences, strict=True)):
        t = np.asarray(t)
        if t.size == 0:
            t = t.reshape(0).astype(np.intp)
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"y[{i}] has shape {t.shape} but X[{i}] has {x.shape[0]} words; give one tag "
                "per word."
            )
        if t.dtype.kind not in "iu":
            raise ValueError(
                f"y[{i}] has dtype {t.dtype}; tags must be integer ids 0..k-1. Map tag names "
                "to ids first, e.g. with {name: i for i, name in enumerate(labels)}."
            )
        out.append(t.astype(np.intp, copy=False))
    return out


def _check_tag_range(tags: list[NDArray[np.intp]], k: int) -> None:
    """Every tag is in ``0..k-1``."""
    for i, t in enumerate(tags):
        bad = np.nonzero((t < 0) | (t >= k))[0]
        if bad.size:
            raise ValueError(
                f"y[{i}][{bad[0]}] is tag {int(t[bad[0]])}, outside 0..{k - 1}; pass "
                "n_tags=k (or constraints of size k) when some tags are rarer than others."
            )


def _check_constraints(
    allowed: Any, allowed_start: Any, k: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Constraint masks of the right shape that admit tag sequences of every length."""
    masks = []
    for name, value, shape in (
        ("allowed", allowed, (k, k)),
        ("allowed_start", allowed_start, (k,)),
    ):
        if value is None:
            masks.append(np.ones(shape, dtype=bool))
            continue
        mask = np.asarray(value)
        if mask.shape != shape:
            raise ValueError(
                f"{name} has shape {mask.shape} but there are {k} tags; it must have shape "
                f"{shape}. Build both masks with iob2_constraints(labels)."
            )
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1), got dtype {mask.dtype}.")
        masks.append(mask.astype(bool))
    allowed, allowed_start = masks
    reachable = allowed_start
    # A walk of k + 1 tags repeats one, so it holds a cycle: then every length is possible.
    for n_words in range(1, k + 2):
        if not reachable.any():
            raise ValueError(
                f"The constraints allow no tag sequence of {n_words} words; allow at least "
                "one start tag and a cycle of transitions."
            )
        reachable = allowed[reachable].any(axis=0)
    return allowed, allowed_start


def _check_gold(
    tags: list[NDArray[np.intp]], allowed: NDArray[np.bool_], allowed_start: NDArray[np.bool_]
) -> None:
    """Every gold sequence obeys the constraints (else its likelihood is 0)."""
    lengths = np.array([len(t) for t in tags])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate(tags)
    bad_start = np.nonzero(~allowed_start[flat[starts]])[0]
    if bad_start.size:
        i = int(bad_start[0])
        raise ValueError(
            f"y[{i}] starts with tag {int(flat[starts[i]])}, which allowed_start forbids; fix "
            "the tags (e.g. an IOB2 sentence cannot start with I-) or the constraints."
        )
    inside = np.ones(flat.size, dtype=bool)
    inside[starts] = False  # word j continues its sentence: check flat[j - 1] -> flat[j]
    inside[0] = False
    ok = allowed[flat[:-1], flat[1:]] | ~inside[1:]
    if not ok.all():
        j = int(np.nonzero(~ok)[0][0]) + 1
        i = int(np.searchsorted(starts, j, side="right") - 1)
        raise ValueError(
            f"y[{i}][{j - starts[i]}]: tag {int(flat[j])} may not follow tag {int(flat[j - 1])} "
            "under allowed; fix the tags (e.g. IOB2's I-X only after B-X or I-X) or the "
            "constraints."
        )


def _check_sample_weight(sample_weight: Any, n: int) -> NDArray[np.float64]:
    """One finite, non-negative weight per sentence, not all zero."""
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(
            f"sample_weight has shape {weights.shape}; give one weight per sentence ({n},)."
        )
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise ValueError("sample_weight must be finite, >= 0 and not all 0.")
    return weights


# -- packed sentences ---------------------------------------------------------------------


@dataclass
class _Packed:
    """Sentences sorted by length, longest first, with their words stored time-major.

    Step ``t`` occupies rows ``offsets[t]:offsets[t] + n_active[t]``, one per sentence
    that is still running, in rank order; so the sentence of rank ``r`` holds rows
    ``offsets[t] + r`` for ``t < lengths[r]``.
    """

    X: NDArray[Any]  # (n_words, d) features, packed
    y: NDArray[np.intp] | None  # (n_words,) gold tags, packed
    order: NDArray[np.intp]  # order[r]: the input index of the sentence of rank r
    lengths: NDArray[np.intp]  # lengths[i]: words in input sentence i
    n_active: NDArray[np.intp]  # (n_steps,) sentences running at each step
    offsets: NDArray[np.intp]  # (n_steps + 1,) first row of each step
    row_rank: NDArray[np.intp]  # (n_words,) rank of each row's sentence
    prev_row: NDArray[np.intp]  # (n_words,) row of the previous word, -1 at t = 0
    last: NDArray[np.intp]  # (n_nonempty,) row of each ranked sentence's last word
    order_words: NDArray[np.intp]  # row of each word, words in input order

    @property
    def n_words(self) -> int:
        """Words in all sentences."""
        return int(self.row_rank.size)

    @property
    def n_sentences(self) -> int:
        """Sentences, empty ones included."""
        return int(self.lengths.size)

    @property
    def n_nonempty(self) -> int:
        """Sentences with at least one word (they hold the first ranks)."""
        return int(self.n_active[0]) if self.n_active.size else 0

    def unpack(self, values: NDArray[Any]) -> list[NDArray[Any]]:
        """Per-row values back into one array per input sentence, in input order."""
        flat = values[self.order_words]
        return np.split(flat, np.cumsum(self.lengths)[:-1])


def _pack(
    sentences: list[NDArray[Any]], dtype: type[Float], tags: list[NDArray[np.intp]] | None = None
) -> _Packed:
    """Copy the sentences (and tags) into the time-major layout of :class:`_Packed`."""
    lengths = np.array([x.shape[0] for x in sentences], dtype=np.intp)
    order = np.argsort(-lengths, kind="stable").astype(np.intp)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    n_steps = int(lengths.max())
    at_least = np.cumsum(np.bincount(lengths, minlength=n_steps + 1)[::-1])[::-1]
    n_active = at_least[1:].astype(np.intp)  # sentences longer than t
    offsets = np.concatenate([[0], np.cumsum(n_active)]).astype(np.intp)
    n_words = int(offsets[-1])
    step = np.repeat(np.arange(n_steps), n_active)
    row_rank = np.arange(n_words) - offsets[step]
    prev_row = np.where(step > 0, offsets[np.maximum(step - 1, 0)] + row_rank, -1)
    ranked_lengths = lengths[order[: n_active[0] if n_steps else 0]]
    last = offsets[ranked_lengths - 1] + np.arange(ranked_lengths.size)

    X = np.empty((n_words, sentences[0].shape[1]), dtype=dtype)
    y = np.empty(n_words, dtype=np.intp) if tags is not None else None
    order_words = np.empty(n_words, dtype=np.intp)
    start = 0
    for i, x in enumerate(sentences):
        rows = offsets[: x.shape[0]] + rank[i]
        X[rows] = x
        if y is not None and tags is not None:
            y[rows] = tags[i]
        order_words[start : start + x.shape[0]] = rows
        start += x.shape[0]
    return _Packed(X, y, order, lengths, n_active, offsets, row_rank, prev_row, last, order_words)


# -- the model ----------------------------------------------------------------------------


# Below this, a sum of shifted exponentials may have lost terms to underflow, so the
# (rare) rows concerned are redone exactly, term by term.
_TINY = 1e-250
# Above this, exp() of a pair-count row scale could overflow: those rows too are redone.
_HUGE_LOG = 600.0


def _logsumexp(a: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """``log(sum(exp(a), axis))``, stable; overwrites ``a``."""
    top = a.max(axis=axis, keepdims=True)
    a -= top
    np.exp(a, out=a)
    total = a.sum(axis=axis)
    np.log(total, out=total)
    total += np.squeeze(top, axis=axis)
    return total


class _Steps:
    """Transition scores, prepared for log-sum-exps over them as small matmuls.

    ``log sum_i exp(a_i + T_ij) = m + c_j + log sum_i exp(a_i - m) exp(T_ij - c_j)`` with
    ``m = max_i a_i`` and ``c_j`` the largest allowed ``T_ij``: every exponential is at
    most 1, and the inner sum is one ``(n, k) @ (k, k)`` product instead of a
    ``(n, k, k)`` tensor. Forbidden transitions become exact zeros.
    """

    def __init__(self, transitions: NDArray[np.float64]) -> None:
        self.transitions = transitions
        allowed = transitions > _NEG / 2
        # Tags with an allowed predecessor, and with an allowed successor.
        self.has_into: NDArray[np.bool_] = np.asarray(allowed.any(axis=0))
        self.has_out: NDArray[np.bool_] = np.asarray(allowed.any(axis=1))
        masked = np.where(allowed, transitions, -np.inf)
        self.into_shift = np.where(self.has_into, masked.max(axis=0, initial=-np.inf), 0.0)
        self.out_shift = np.where(self.has_out, masked.max(axis=1, initial=-np.inf), 0.0)
        self.exp_into = np.exp(masked - self.into_shift)  # [i, j] scaled by column
        self.exp_out_t = np.exp(masked - self.out_shift[:, None]).T  # [j, i] scaled by row
        self.pair_shift = float(masked.max()) if allowed.any() else 0.0
        self.exp_pair = np.exp(masked - self.pair_shift)

    def into(self, prev: NDArray[np.float64]) -> NDArray[np.float64]:
        """``log sum_i exp(prev[:, i] + T[i, j])`` for each row and tag ``j``."""
        top = prev.max(axis=1, keepdims=True)
        total = np.exp(prev - top) @ self.exp_into
        return self._finish(total, top, self.into_shift, self.has_into, prev[:, :, None], 1)

    def out_of(self, ahead: NDArray[np.float64]) -> NDArray[np.float64]:
        """``log sum_j exp(T[i, j] + ahead[:, j])`` for each row and tag ``i``."""
        top = ahead.max(axis=1, keepdims=True)
        total = np.exp(ahead - top) @ self.exp_out_t
        return self._finish(total, top, self.out_shift, self.has_out, ahead[:, None, :], 2)

    def _finish(
        self,
        total: NDArray[np.float64],
        top: NDArray[np.float64],
        shift: NDArray[np.float64],
        live: NDArray[np.bool_],
        exact_terms: NDArray[np.float64],
        axis: int,
    ) -> NDArray[np.float64]:
        """Logs of the scaled sums, with dead tags at ``_NEG`` and underflowed rows redone."""
        weak = (total[:, live] < _TINY).any(axis=1)
        with np.errstate(divide="ignore"):  # log(0) of dead tags, overwritten below
            out = np.log(total)
        out += top
        out += shift
        out[:, ~live] = _NEG
        if weak.any():
            out[weak] = _logsumexp(exact_terms[weak] + self.transitions, axis)
        return out


def _forward(
    emissions: NDArray[np.float64],
    packed: _Packed,
    transitions: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Forward scores ``alpha`` (per row) and ``log Z`` (per ranked sentence)."""
    off, active = packed.offsets, packed.n_active
    steps = _Steps(transitions)
    alpha = np.empty_like(emissions)
    if not active.size:
        return alpha, np.zeros(0)
    alpha[: active[0]] = emissions[: active[0]] + start
    for t in range(1, active.size):
        n = active[t]
        prev = alpha[off[t - 1] : off[t - 1] + n]
        alpha[off[t] : off[t] + n] = emissions[off[t] : off[t] + n] + steps.into(prev)
    log_z = _logsumexp(alpha[packed.last] + end, 1)
    return alpha, log_z


def _backward(
    emissions: NDArray[np.float64],
    packed: _Packed,
    transitions: NDArray[np.float64],
    end: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Backward scores ``beta`` (per row): the log-sum of every continuation."""
    off, active = packed.offsets, packed.n_active
    steps = _Steps(transitions)
    beta = np.empty_like(emissions)
    beta[packed.last] = end
    for t in range(active.size - 2, -1, -1):
        n = active[t + 1]
        ahead = emissions[off[t + 1] : off[t + 1] + n] + beta[off[t + 1] : off[t + 1] + n]
        beta[off[t] : off[t] + n] = steps.out_of(ahead)
    return beta


def _pair_counts(
    emissions: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    log_z: NDArray[np.float64],
    transitions: NDArray[np.float64],
    packed: _Packed,
    weights: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Expected transition counts, ``sum_i w_i sum_t p(y_{t-1} = a, y_t = b | x_i)``.

    ``p = exp(alpha_a + T_ab + ahead_b - log Z)`` factors into a row-scaled outer product
    of ``exp(alpha - max)`` and ``exp(ahead - max)``, so each step is one ``(k, n) @ (n, k)``
    matmul; rows whose scale could overflow are summed exactly instead.
    """
    off, active = packed.offsets, packed.n_active
    steps = _Steps(transitions)
    ahead = emissions + beta
    counts = np.zeros_like(transitions)
    for t in range(1, active.size):
        n = active[t]
        before = alpha[off[t - 1] : off[t - 1] + n]
        after = ahead[off[t] : off[t] + n]
        top_before = before.max(axis=1, keepdims=True)
        top_after = after.max(axis=1, keepdims=True)
        log_scale = top_before[:, 0] + top_after[:, 0] + steps.pair_shift - log_z[:n]
        huge = log_scale > _HUGE_LOG
        scale = weights[:n] * np.exp(np.where(huge, 0.0, log_scale))
        scale[huge] = 0.0
        left = np.exp(before - top_before)
        left *= scale[:, None]
        counts += (left.T @ np.exp(after - top_after)) * steps.exp_pair
        if huge.any():
            pair = before[huge, :, None] + transitions + after[huge, None, :]
            pair -= log_z[:n][huge, None, None]
            counts += np.einsum("n,nij->ij", weights[:n][huge], np.exp(pair))
    return counts


def _node_marginals(
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    log_z: NDArray[np.float64],
    packed: _Packed,
) -> NDArray[np.float64]:
    """``p(y_t = j | x)`` per row."""
    marginals = alpha + beta
    marginals -= log_z[packed.row_rank, None]
    return np.exp(marginals, out=marginals)


def _viterbi(
    emissions: NDArray[np.float64],
    packed: _Packed,
    transitions: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
) -> NDArray[np.int64]:
    """The best tag of each row, on the best path of its sentence."""
    off, active = packed.offsets, packed.n_active
    best = np.empty_like(emissions)
    back = np.empty(emissions.shape, dtype=np.intp)
    if not active.size:
        return np.zeros(0, dtype=np.int64)
    best[: active[0]] = emissions[: active[0]] + start
    for t in range(1, active.size):
        n, rows = active[t], slice(off[t], off[t] + active[t])
        scores = best[off[t - 1] : off[t - 1] + n, :, None] + transitions
        back[rows] = scores.argmax(axis=1)
        best[rows] = emissions[rows] + np.take_along_axis(scores, back[rows, None, :], 1)[:, 0]
    tags = np.empty(packed.n_words, dtype=np.int64)
    current = np.empty(packed.n_nonempty, dtype=np.intp)  # each sentence's tag at step t + 1
    for t in range(active.size - 1, -1, -1):
        n = active[t]
        going_on = active[t + 1] if t + 1 < active.size else 0
        if going_on:
            rows = off[t + 1] + np.arange(going_on)
            current[:going_on] = back[rows, current[:going_on]]
        # The sentences whose last word is at step t start their path here.
        current[going_on:n] = (best[off[t] + going_on : off[t] + n] + end).argmax(axis=1)
        tags[off[t] : off[t] + n] = current[:n]
    return tags


class _Layout:
    """Where each parameter sits in L-BFGS's flat vector (forbidden entries left out)."""

    def __init__(
        self, d: int, k: int, allowed: NDArray[np.bool_], allowed_start: NDArray[np.bool_]
    ) -> None:
        self.d, self.k = d, k
        self.allowed, self.allowed_start = allowed, allowed_start
        sizes = [d * k, k, int(allowed.sum()), int(allowed_start.sum()), k]
        self.bounds = np.cumsum([0, *sizes])
        self.size = int(self.bounds[-1])
        # Everything but the intercept is penalised.
        self.penalised = np.ones(self.size, dtype=bool)
        self.penalised[self.bounds[1] : self.bounds[2]] = False

    def unpack(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
        """``(coef, intercept, transitions, start, end)``, forbidden entries at ``_NEG``."""
        b = self.bounds
        coef = theta[b[0] : b[1]].reshape(self.d, self.k)
        transitions = np.full((self.k, self.k), _NEG)
        transitions[self.allowed] = theta[b[2] : b[3]]
        start = np.full(self.k, _NEG)
        start[self.allowed_start] = theta[b[3] : b[4]]
        return coef, theta[b[1] : b[2]].copy(), transitions, start, theta[b[4] : b[5]].copy()

    def pack(
        self,
        coef: NDArray[np.float64],
        intercept: NDArray[np.float64],
        transitions: NDArray[np.float64],
        start: NDArray[np.float64],
        end: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """The flat vector of these parameters (or their gradients)."""
        return np.concatenate(
            [
                np.ravel(coef),
                intercept,
                transitions[self.allowed],
                start[self.allowed_start],
                end,
            ]
        ).astype(np.float64)


class _Problem:
    """The training objective and its gradient, for ``scipy.optimize.minimize``."""

    def __init__(
        self, packed: _Packed, layout: _Layout, weights: NDArray[np.float64], c2: float
    ) -> None:
        if packed.y is None:
            raise ValueError("_Problem needs sentences packed with their tags.")
        self.packed, self.layout, self.c2 = packed, layout, c2
        self.y = y = packed.y
        k = layout.k
        self.rank_weight = weights[packed.order]  # per ranked sentence
        self.row_weight = self.rank_weight[packed.row_rank]
        self.total_weight = float(weights.sum())
        self.rows = np.arange(packed.n_words)
        first = packed.prev_row < 0
        later = ~first
        # The gold sequences' weighted counts: the constant half of the gradient.
        pairs = y[packed.prev_row[later]] * k + y[later]
        self.gold_transitions = np.bincount(
            pairs, weights=self.row_weight[later], minlength=k * k
        ).reshape(k, k)
        self.gold_start = np.bincount(y[first], weights=self.row_weight[first], minlength=k)
        self.gold_end = np.bincount(y[packed.last], weights=self.rank_weight, minlength=k)

    def objective(self, theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """The penalised mean negative log-likelihood and its exact gradient."""
        packed, layout, y = self.packed, self.layout, self.y
        coef, intercept, transitions, start, end = layout.unpack(theta)
        emissions = (packed.X @ coef.astype(packed.X.dtype)).astype(np.float64)
        emissions += intercept
        alpha, log_z = _forward(emissions, packed, transitions, start, end)
        beta = _backward(emissions, packed, transitions, end)
        gold = (
            self.row_weight @ emissions[self.rows, y]
            + np.sum(self.gold_transitions * transitions)
            + self.gold_start @ start
            + self.gold_end @ end
        )
        loss = float(self.rank_weight @ log_z - gold)

        marginals = _node_marginals(alpha, beta, log_z, packed)
        n0 = packed.n_nonempty
        grad_start = self.rank_weight @ marginals[:n0] - self.gold_start
        grad_end = self.rank_weight @ marginals[packed.last] - self.gold_end
        grad_transitions = _pair_counts(
            emissions, alpha, beta, log_z, transitions, packed, self.rank_weight
        )
        grad_transitions -= self.gold_transitions
        # d loss / d emissions = weight * (marginals - onehot(gold)), reusing the buffer.
        marginals *= self.row_weight[:, None]
        marginals[self.rows, y] -= self.row_weight
        grad_coef = (marginals.astype(packed.X.dtype).T @ packed.X).T  # a bit faster than X.T @
        grad = layout.pack(grad_coef, marginals.sum(axis=0), grad_transitions, grad_start, grad_end)
        penalised = np.where(layout.penalised, theta, 0.0)
        loss += 0.5 * self.c2 * float(penalised @ penalised)
        grad += self.c2 * penalised
        return loss / self.total_weight, grad / self.total_weight
