"""The numerical core of :class:`~featx.tagging.crf.LinearChainCRF`, in numpy.

On the packed layout of :mod:`~featx.tagging._crf_layout` (sentences sorted by length,
stored time-major) run the forward-backward algorithm in log space, Viterbi decoding, the
log-likelihood of given tag sequences, and the training objective with its gradient.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from featx.tagging._crf_layout import NEG, Layout, Packed

# Below this, a sum of shifted exponentials may have lost terms to underflow, so the
# (rare) rows concerned are redone exactly, term by term.
_TINY = 1e-250
# Above this, exp() of a pair-count row scale could overflow: those rows too are redone.
_HUGE_LOG = 600.0


def logsumexp(a: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
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
        allowed = transitions > NEG / 2
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
        """Logs of the scaled sums, with dead tags at ``NEG`` and underflowed rows redone."""
        weak = (total[:, live] < _TINY).any(axis=1)
        with np.errstate(divide="ignore"):  # log(0) of dead tags, overwritten below
            out = np.log(total)
        out += top
        out += shift
        out[:, ~live] = NEG
        if weak.any():
            out[weak] = logsumexp(exact_terms[weak] + self.transitions, axis)
        return out


def forward(
    emissions: NDArray[np.float64],
    packed: Packed,
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
    log_z = logsumexp(alpha[packed.last] + end, 1)
    return alpha, log_z


def backward(
    emissions: NDArray[np.float64],
    packed: Packed,
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
    packed: Packed,
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


def node_marginals(
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    log_z: NDArray[np.float64],
    packed: Packed,
) -> NDArray[np.float64]:
    """``p(y_t = j | x)`` per row."""
    marginals = alpha + beta
    marginals -= log_z[packed.row_rank, None]
    return np.exp(marginals, out=marginals)


def viterbi(
    emissions: NDArray[np.float64],
    packed: Packed,
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


def log_likelihood(
    emissions: NDArray[np.float64],
    packed: Packed,
    transitions: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    tags: list[NDArray[np.intp]],
) -> NDArray[np.float64]:
    """``log p(y_i | x_i)`` per input sentence: ``-inf`` where forbidden, 0 when empty."""
    _, log_z = forward(emissions, packed, transitions, start, end)
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
    score += end[gold_packed[packed.last]]
    forbidden = np.bincount(rank, weights=step <= NEG / 2, minlength=packed.n_nonempty)
    log_p = np.where(forbidden > 0, -np.inf, score - log_z)
    out = np.zeros(packed.n_sentences)
    out[packed.order[: packed.n_nonempty]] = log_p
    return out


class Problem:
    """The training objective and its gradient, for ``scipy.optimize.minimize``."""

    def __init__(
        self, packed: Packed, layout: Layout, weights: NDArray[np.float64], c2: float
    ) -> None:
        if packed.y is None:
            raise ValueError("Problem needs sentences packed with their tags.")
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
        alpha, log_z = forward(emissions, packed, transitions, start, end)
        beta = backward(emissions, packed, transitions, end)
        gold = (
            self.row_weight @ emissions[self.rows, y]
            + np.sum(self.gold_transitions * transitions)
            + self.gold_start @ start
            + self.gold_end @ end
        )
        loss = float(self.rank_weight @ log_z - gold)

        marginals = node_marginals(alpha, beta, log_z, packed)
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
