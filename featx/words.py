"""Words and sub-word tokens: split text into words, align the tokenizer's pieces to them.

Token features are asked for per *word* (a CoNLL token, a word of raw text), but a
Transformer sees sub-word pieces. :func:`align` tokenises the text the words came from
and maps every piece back to the words its character offsets overlap, so that each
word gets its own pieces whatever the tokenizer (WordPiece, byte-level BPE with or
without a leading-space marker). A word the tokenizer maps to nothing (a control or
zero-width character that the normaliser strips) gets the model's unknown/fallback
token in its place, so that every word still gets a vector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

# Acronyms with dots ("U.S."), words with inner hyphens or apostrophes ("Jean-Luc",
# "O'Neill"), numbers with separators ("1,000.5"), else one symbol at a time.
_WORD = re.compile(
    r"(?:[^\W\d_]\.){2,}"
    r"|\d+(?:[.,]\d+)*"
    r"|[^\W_]+(?:['’\-][^\W_]+)*"
    r"|_+"
    r"|[^\w\s]",
)


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split raw ``text`` into words and punctuation, with character spans into ``text``."""
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(text):
        words.append(match.group())
        spans.append(match.span())
    return words, spans


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join pre-split ``words`` with single spaces; return the text and each word's span.

    Raises:
        TypeError: If a word is not a str.
        ValueError: If a word is empty or only whitespace (it would have no span).
    """
    spans = []
    start = 0
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise TypeError(f"words[{i}] is {type(word).__name__} ({word!r:.40}), not str.")
        if not word.strip():
            raise ValueError(
                f"words[{i}] is {word!r}: a word must hold a non-space character. "
                "Drop empty words before tagging."
            )
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return " ".join(words), spans


@dataclass(frozen=True)
class Alignment:
    """A text's sub-word ids and which of them belong to each word.

    Attributes:
        ids: Token ids of the text, without special tokens (fallback ids inserted for
            words the tokenizer maps to nothing).
        word_tokens: For each word, the positions in ``ids`` of its pieces (at least one).
    """

    ids: NDArray[np.int32]
    word_tokens: list[NDArray[np.int64]]


def align(
    tokenizer: Tokenizer, text: str, spans: Sequence[tuple[int, int]], fallback_id: int
) -> Alignment:
    """Tokenise ``text`` and map its pieces to the words at ``spans`` by character offsets.

    ``tokenizer`` must not truncate or add special tokens' padding (a copy set up with
    ``no_truncation()`` and ``no_padding()``). A piece that overlaps several words
    (a tokenizer that merges what the splitter separated) belongs to each of them.
    """
    encoding = tokenizer.encode(text, add_special_tokens=False)
    ids = list(encoding.ids)
    offsets = encoding.offsets
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    ends = np.asarray([e for _, e in spans], dtype=np.int64)
    pieces: list[list[int]] = [[] for _ in spans]
    for position, (start, end) in enumerate(offsets):
        if end <= start:
            continue  # zero-width pieces (some byte-level edge cases) mark no word
        first = int(np.searchsorted(ends, start, side="right"))
        for w in range(first, len(spans)):
            if starts[w] >= end:
                break
            pieces[w].append(position)
    # Words without pieces get the fallback token, inserted where the word stands.
    missing = [w for w, p in enumerate(pieces) if not p]
    if missing:
        ids, pieces = _insert_fallbacks(ids, offsets, starts, pieces, missing, fallback_id)
    return Alignment(
        ids=np.asarray(ids, dtype=np.int32),
        word_tokens=[np.asarray(p, dtype=np.int64) for p in pieces],
    )


def _insert_fallbacks(
    ids: list[int],
    offsets: list[tuple[int, int]],
    starts: NDArray[np.int64],
    pieces: list[list[int]],
    missing: list[int],
    fallback_id: int,
) -> tuple[list[int], list[list[int]]]:
    # Position of each missing word: before the first piece that starts at or after it.
    piece_starts = np.asarray([s for s, _ in offsets] or [0], dtype=np.int64)
    where = {w: int(np.searchsorted(piece_starts[: len(offsets)], starts[w])) for w in missing}
    new_ids: list[int] = []
    old_to_new = np.empty(len(ids), dtype=np.int64)
    inserted: dict[int, int] = {}
    queue = sorted(missing, key=lambda w: (where[w], w))
    q = 0
    for position in range(len(ids) + 1):
        while q < len(queue) and where[queue[q]] == position:
            inserted[queue[q]] = len(new_ids)
            new_ids.append(fallback_id)
            q += 1
        if position < len(ids):
            old_to_new[position] = len(new_ids)
            new_ids.append(ids[position])
    new_pieces = [
        [inserted[w]] if w in inserted else [int(old_to_new[p]) for p in piece]
        for w, piece in enumerate(pieces)
    ]
    return new_ids, new_pieces


def special_affixes(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single text."""
    bare = tokenizer.encode("a", add_special_tokens=False).ids
    full = tokenizer.encode("a", add_special_tokens=True).ids
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return full[:i], full[i + len(bare) :]
    raise ValueError("Cannot tell this tokenizer's special tokens apart from the text.")


class Subword(str, Enum):
    """Which of a word's pieces make its vector."""

    FIRST = "first"  # the BERT paper's choice
    MEAN = "mean"
    LAST = "last"  # for decoders: the last piece has seen the whole word


@dataclass(frozen=True)
class WordVectors:
    """One vector per word of one text.

    Attributes:
        text: The text the words come from (pre-split words joined by single spaces).
        words: The words.
        spans: (n_words, 2) character offsets of each word in ``text`` (end exclusive).
        vectors: (n_words, dim) float32, one row per word.
    """

    text: str
    words: list[str]
    spans: NDArray[np.int64]
    vectors: NDArray[np.float32]


def plan_windows(n_tokens: int, room: int, overlap: int) -> list[tuple[int, int]]:
    """Cut ``n_tokens`` pieces into windows of at most ``room``, each sharing ``overlap``."""
    if n_tokens <= room:
        return [(0, n_tokens)]
    step = room - overlap
    windows = []
    start = 0
    while True:
        windows.append((start, min(start + room, n_tokens)))
        if start + room >= n_tokens:
            return windows
        start += step


def best_window(first: int, last: int, windows: Sequence[tuple[int, int]]) -> int:
    """The window that holds pieces ``first..last`` with the most context on both sides.

    A word longer than any window is read from the window with the most of its pieces.
    """
    best, best_score = 0, -(1 << 62)
    for w, (start, end) in enumerate(windows):
        if start <= first and last < end:
            score = min(first - start, end - 1 - last)
        else:
            score = -(1 << 40) + min(end, last + 1) - max(start, first)
        if score > best_score:
            best, best_score = w, score
    return best


@dataclass(frozen=True)
class Window:
    """One model input of a text and the words read from it.

    Attributes:
        ids: Token ids, special tokens included.
        words: Indices of the words read from this window, in order.
        pieces: For each of those words, the positions in ``ids`` of its pieces.
    """

    ids: NDArray[np.int32]
    words: list[int]
    pieces: list[NDArray[np.int64]]


def windows_of(
    alignment: Alignment, room: int, overlap: int, prefix: list[int], suffix: list[int]
) -> list[Window]:
    """Cut an aligned text into windows of ``room`` pieces between ``prefix`` and ``suffix``.

    Each word is read from the window where it has the most context (:func:`best_window`);
    windows no word is read from are left out.
    """
    cuts = plan_windows(len(alignment.ids), room, overlap)
    words: list[list[int]] = [[] for _ in cuts]
    pieces: list[list[NDArray[np.int64]]] = [[] for _ in cuts]
    for w, word_pieces in enumerate(alignment.word_tokens):
        chosen = best_window(int(word_pieces.min()), int(word_pieces.max()), cuts)
        start, end = cuts[chosen]
        inside = word_pieces[(word_pieces >= start) & (word_pieces < end)]
        words[chosen].append(w)
        pieces[chosen].append(inside - start + len(prefix))
    return [
        Window(
            ids=np.asarray([*prefix, *alignment.ids[start:end].tolist(), *suffix], dtype=np.int32),
            words=words[c],
            pieces=pieces[c],
        )
        for c, (start, end) in enumerate(cuts)
        if words[c]
    ]


def piece_weights(pieces: NDArray[np.int64], subword: Subword) -> tuple[NDArray[np.int64], float]:
    """The pieces that make a word's vector, and the weight of each."""
    if subword is Subword.FIRST:
        return pieces[:1], 1.0
    if subword is Subword.LAST:
        return pieces[-1:], 1.0
    return pieces, 1.0 / len(pieces)
