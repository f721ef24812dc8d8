"""The best answer span of each question, over all windows of its context.

For each window, start and end logits are read over the context pieces only; the span
probability is softmax(start)[s] x softmax(end)[e] within that window (as the Hugging Face
question-answering pipeline scores), over the ``n_best`` starts and ends with s <= e and at
most ``max_answer_length`` pieces. The best span over all windows wins, and its answer is
the slice of the original context between its pieces' character offsets (without the
leading space a byte-level piece such as GPT-2's ``Ġblue`` carries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from featx.qa.windows import SpanWindows

N_BEST = 20
MAX_ANSWER_LENGTH = 30


@dataclass(frozen=True)
class Span:
    """An answer: its text, its characters ``start:end`` in the context, its probability."""

    text: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, object]:
        """The span as JSON-ready values."""
        return {"answer": self.text, "score": self.score, "start": self.start, "end": self.end}


def best_spans(
    start_logits: Sequence[NDArray[np.float32]],
    end_logits: Sequence[NDArray[np.float32]],
    windows: SpanWindows,
    contexts: Sequence[str],
    *,
    n_best: int = N_BEST,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> list[Span]:
    """One span per context (question), from the logits of each of its windows."""
    if n_best < 1 or max_answer_length < 1:
        raise ValueError("n_best and max_answer_length must be at least 1.")
    best: list[Span | None] = [None] * len(contexts)
    for w, owner in enumerate(windows.owner):
        found = _window_best(
            start_logits[w], end_logits[w], windows.offsets[w], n_best, max_answer_length
        )
        if found is None:
            continue
        score, first, last = found
        current = best[owner]
        if current is None or score > current.score:
            best[owner] = _span(contexts[owner], windows.offsets[w], first, last, score)
    return [span if span is not None else Span("", 0, 0, 0.0) for span in best]


def _span(context: str, offsets: NDArray[np.int64], first: int, last: int, score: float) -> Span:
    """The characters of pieces ``first..last``, without the spaces byte-level pieces carry."""
    start, end = int(offsets[first, 0]), int(offsets[last, 1])
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return Span(context[start:end], start, end, score)


def _window_best(
    start: NDArray[np.float32],
    end: NDArray[np.float32],
    offsets: NDArray[np.int64],
    n_best: int,
    max_answer_length: int,
) -> tuple[float, int, int] | None:
    """(probability, first piece, last piece) of the window's best span, if it has context."""
    context = np.flatnonzero(offsets[:, 0] >= 0)
    if not len(context):
        return None
    log_start = _log_softmax(start[context].astype(np.float64))
    log_end = _log_softmax(end[context].astype(np.float64))
    k = min(n_best, len(context))
    top_start = np.argsort(-log_start, kind="stable")[:k]
    top_end = np.argsort(-log_end, kind="stable")[:k]
    s, e = np.meshgrid(top_start, top_end, indexing="ij")
    valid = (e >= s) & (context[e] - context[s] < max_answer_length)
    if not valid.any():
        return None
    scores = np.where(valid, log_start[s] + log_end[e], -np.inf)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(np.exp(scores[i, j])), int(context[s[i, j]]), int(context[e[i, j]])


def _log_softmax(x: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = x - x.max()
    return shifted - np.log(np.exp(shifted).sum())
