"""The packed layout of :class:`~featx.tagging.crf.LinearChainCRF`'s data and parameters.

Sentences are sorted by length and stored time-major ("packed", :class:`Packed`): the
sentences still running at step ``t`` are a prefix of the batch, so every time step is a
few array operations on that prefix, with no padding and no masks. :class:`Layout` places
the model's parameters in the flat vector that L-BFGS optimises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Scores of forbidden transitions and starts. A finite stand-in for -inf: exp() of it is
# exactly 0, yet sums and differences never produce nan (and 0 * NEG is 0).
NEG = -1e30

Float = np.float32 | np.float64


# -- packed sentences ---------------------------------------------------------------------


@dataclass
class Packed:
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


def pack(
    sentences: list[NDArray[Any]], dtype: type[Float], tags: list[NDArray[np.intp]] | None = None
) -> Packed:
    """Copy the sentences (and tags) into the time-major layout of :class:`Packed`."""
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
    return Packed(X, y, order, lengths, n_active, offsets, row_rank, prev_row, last, order_words)


# -- the parameter vector -----------------------------------------------------------------


class Layout:
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
        """``(coef, intercept, transitions, start, end)``, forbidden entries at ``NEG``."""
        b = self.bounds
        coef = theta[b[0] : b[1]].reshape(self.d, self.k)
        transitions = np.full((self.k, self.k), NEG)
        transitions[self.allowed] = theta[b[2] : b[3]]
        start = np.full(self.k, NEG)
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
