"""Question + context into model windows, with character offsets and span labels.

The question and the context go in as a text pair (the model's own pair template: BERT's
``[CLS] q [SEP] c [SEP]``, RoBERTa's ``<s> q </s></s> c </s>``); a context longer than one
window is cut into overlapping windows (``stride`` shared pieces), so no part of it is
lost. Every context piece keeps its character span in the context, so answers are always
slices of the original text, never re-tokenised text. A question longer than
``max_question`` pieces is cut (and counted): it must leave room for the context.

For training, each window is labelled with the pieces where the first gold answer starts
and ends, or with position 0 (the no-answer position: ``[CLS]``, or a decoder's first
piece) when the answer is not wholly inside it, as in BERT's SQuAD recipe.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from featx.qa.squad import Answer

# Defaults: BERT's SQuAD recipe reads questions of up to 64 pieces and shares 128 of 384
# pieces between windows; featx's default model reads 256, so 64 shared pieces. A model with
# short windows gets a question of at most a quarter of them and a stride of at most half
# the context room.
STRIDE = 64
MAX_QUESTION = 64
NO_ANSWER = 0


@dataclass(frozen=True)
class SpanWindows:
    """Windows of question/context pairs.

    Attributes:
        ids: Token ids of each window, special tokens included.
        type_ids: Segment ids of each window (0 question, 1 context).
        offsets: (pieces, 2) character span of each piece in its context; -1 outside it.
        owner: For each window, the index of its question.
        starts: Training label per window: the piece where the answer starts (or 0).
        ends: The piece where it ends (inclusive), or 0.
        questions_cut: How many questions were cut to ``max_question`` pieces.
        several_windows: How many contexts needed more than one window.
    """

    ids: list[NDArray[np.int32]]
    type_ids: list[NDArray[np.int32]]
    offsets: list[NDArray[np.int64]]
    owner: NDArray[np.int64]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    questions_cut: int
    several_windows: int

    def report(self) -> dict[str, int]:
        """What the truncation report says about these windows."""
        return {
            "questions": len(np.unique(self.owner)),
            "windows": len(self.ids),
            "questions_cut": self.questions_cut,
            "contexts_in_several_windows": self.several_windows,
        }


class SpanPreparer:
    """Cuts question/context pairs into windows for one tokenizer and window shape.

    Args:
        tokenizer: The model's tokenizer (copied, not changed).
        max_length: Pieces per window, special tokens included.
        stride: Pieces of context each window shares with the one before (default
            :data:`STRIDE`, at most half the context room).
        max_question: Most pieces of a question; longer ones are cut (default
            :data:`MAX_QUESTION`, at most a quarter of the window).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_length: int,
        *,
        stride: int | None = None,
        max_question: int | None = None,
    ) -> None:
        n_special = tokenizer.num_special_tokens_to_add(is_pair=True)
        if max_question is None:
            max_question = max(1, min(MAX_QUESTION, max_length // 4))
        room = max_length - n_special - max_question
        if stride is None:
            stride = max(0, min(STRIDE, room // 2))
        if max_question < 1 or stride < 0 or stride >= room:
            raise ValueError(
                f"max_length={max_length} leaves {room} context pieces per window after "
                f"{n_special} special tokens and a question of up to {max_question}: stride "
                f"({stride}) must be smaller than that, and max_question at least 1. Use a "
                "smaller stride or max_question, or a larger max_length."
            )
        self.max_length, self.stride, self.max_question = max_length, stride, max_question
        self._plain = Tokenizer.from_str(tokenizer.to_str())
        self._plain.no_truncation()
        self._plain.no_padding()
        self._pair = Tokenizer.from_str(tokenizer.to_str())
        self._pair.no_padding()
        self._pair.enable_truncation(max_length, stride=stride, strategy="only_second")
        self._lock = threading.Lock()  # tokenizers are not safe to share across threads

    def windows(
        self,
        pairs: Sequence[tuple[str, str]],
        answers: Sequence[Answer | None] | None = None,
    ) -> SpanWindows:
        """Windows of (question, context) ``pairs``, labelled by ``answers`` if given."""
        ids, type_ids, offsets, owner, starts, ends = [], [], [], [], [], []
        cut = several = 0
        with self._lock:
            for i, (question, context) in enumerate(pairs):
                question, was_cut = self._fit_question(question)
                cut += was_cut
                encoding = self._pair.encode(question, context)
                parts: list[Encoding] = [encoding, *encoding.overflowing]
                several += len(parts) > 1
                answer = None if answers is None else answers[i]
                for part in parts:
                    spans = _context_offsets(part)
                    start, end = _label(spans, answer)
                    ids.append(np.asarray(part.ids, dtype=np.int32))
                    type_ids.append(np.asarray(part.type_ids, dtype=np.int32))
                    offsets.append(spans)
                    owner.append(i)
                    starts.append(start)
                    ends.append(end)
        return SpanWindows(
            ids,
            type_ids,
            offsets,
            np.asarray(owner, dtype=np.int64),
            np.asarray(starts, dtype=np.int64),
            np.asarray(ends, dtype=np.int64),
            cut,
            several,
        )

    def _fit_question(self, question: str) -> tuple[str, bool]:
        """The question, cut after its first ``max_question`` pieces if longer."""
        encoding = self._plain.encode(question, add_special_tokens=False)
        if len(encoding.ids) <= self.max_question:
            return question, False
        return question[: encoding.offsets[self.max_question - 1][1]], True


def _context_offsets(encoding: Encoding) -> NDArray[np.int64]:
    """Each piece's character span in the context; (-1, -1) for question and special pieces."""
    spans = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    in_context = np.asarray([s == 1 for s in encoding.sequence_ids])
    spans[~in_context] = -1
    return spans


def _label(spans: NDArray[np.int64], answer: Answer | None) -> tuple[int, int]:
    """The first and last piece of ``answer`` in this window, or the no-answer position."""
    if answer is None:
        return NO_ANSWER, NO_ANSWER
    inside = np.flatnonzero(spans[:, 0] >= 0)
    if not len(inside) or spans[inside[0], 0] > answer.start or spans[inside[-1], 1] < answer.end:
        return NO_ANSWER, NO_ANSWER
    pieces = inside[(spans[inside, 1] > answer.start) & (spans[inside, 0] < answer.end)]
    if not len(pieces):  # an answer of only whitespace between pieces
        return NO_ANSWER, NO_ANSWER
    return int(pieces[0]), int(pieces[-1])
