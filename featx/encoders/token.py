"""The word pipeline: one vector per word, aligned through the tokenizer's offsets.

Raw texts are split into words (:func:`featx.words.split_words`), pre-split words are
joined by single spaces; pieces are mapped back to words by character offsets, long
texts are read in overlapping windows, and each word is read from the window where it
has the most context on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from featx.batching import plan_batches
from featx.config import Representation, parse_enum
from featx.encoders.base import Backend
from featx.environment import progress_bar, want_progress
from featx.pooling import combine_layers
from featx.pooling import normalize as l2_normalize
from featx.words import (
    Subword,
    Window,
    WordVectors,
    align,
    join_words,
    piece_weights,
    special_affixes,
    split_words,
    windows_of,
)

Document = tuple[str, list[str], list[tuple[int, int]]]  # text, words, character spans


@dataclass(frozen=True)
class _Reads:
    """Where the pieces of one window go: rows of its hidden state, output rows, weights."""

    pieces: NDArray[np.int64]
    words: NDArray[np.int64]
    weights: NDArray[np.float32]


def encode_words(
    backend: Backend,
    texts: Sequence[str] | Sequence[Sequence[str]],
    rep: Representation,
    *,
    subword: str | None,
    normalize: bool,
    overlap: int | None,
    batch_size: int | None,
    max_tokens: int | None,
    show_progress: bool | None,
) -> list[WordVectors]:
    """One vector per word: see :meth:`TransformerEncoder.encode_tokens`."""
    indices = backend.layer_indices(rep)
    default = Subword.LAST if backend.spec.family.is_decoder else Subword.FIRST
    how = default if subword is None else parse_enum(Subword, subword, "subword")
    docs = word_inputs(texts)
    starts = np.cumsum([0] + [len(words) for _, words, _ in docs])
    windows: list[NDArray[np.int32]] = []
    reads: list[_Reads] = []
    for d, (text, _, spans) in enumerate(docs):
        for window in word_windows(backend, text, spans, overlap=overlap):
            windows.append(window.ids)
            reads.append(_reads(window, int(starts[d]), how))
    out = np.zeros((int(starts[-1]), backend.dim_for(rep)), dtype=np.float32)
    batches = plan_batches(
        [len(w) for w in windows],
        batch_size=batch_size or backend.batch_size,
        max_tokens=max_tokens or backend.max_tokens,
    )
    bar = progress_bar(
        want_progress(show_progress, items=len(windows)), len(windows), "featx tokens"
    )
    for batch in batches:
        inputs = backend.model_inputs([windows[r] for r in batch])
        hidden = combine_layers(backend.forward(inputs, indices), rep.combine)
        for b, r in enumerate(batch):
            read = reads[r]
            np.add.at(out, read.words, hidden[b, read.pieces] * read.weights[:, None])
        bar.update(len(batch))
    bar.close()
    if normalize:
        out = l2_normalize(out)
    return [
        WordVectors(
            text=text,
            words=words,
            spans=np.asarray(spans, dtype=np.int64).reshape(-1, 2),
            vectors=out[starts[d] : starts[d + 1]],
        )
        for d, (text, words, spans) in enumerate(docs)
    ]


def _reads(window: Window, first_word: int, how: Subword) -> _Reads:
    pieces: list[int] = []
    words: list[int] = []
    weights: list[float] = []
    for w, word_pieces in zip(window.words, window.pieces, strict=True):
        used, share = piece_weights(word_pieces, how)
        pieces.extend(used.tolist())
        words.extend([first_word + w] * len(used))
        weights.extend([share] * len(used))
    return _Reads(
        np.asarray(pieces, dtype=np.int64),
        np.asarray(words, dtype=np.int64),
        np.asarray(weights, dtype=np.float32),
    )


def word_windows(
    backend: Backend, text: str, spans: Sequence[tuple[int, int]], *, overlap: int | None = None
) -> list[Window]:
    """The model inputs of one text and the pieces of each word read from them.

    The pieces are aligned to the words at ``spans`` by character offsets; a text
    longer than the model's window is cut into windows sharing ``overlap`` pieces
    (default: a quarter of the window), and each word is read from the window where
    it has the most context on both sides.
    """
    tokenizer = backend.word_tokenizer()
    alignment = align(tokenizer, text, spans, backend.spec.fallback_id)
    prefix, suffix = special_affixes(tokenizer)
    room = backend.max_length - backend.preparer.n_special
    overlap = room // 4 if overlap is None else overlap
    if not 0 <= overlap < room:
        raise ValueError(f"overlap={overlap} must be between 0 and {room - 1} pieces.")
    return windows_of(alignment, room, overlap, prefix, suffix)


def word_inputs(texts: Sequence[str] | Sequence[Sequence[str]]) -> list[Document]:
    """(text, words, spans) per input: raw texts are split, word lists are joined."""
    if isinstance(texts, str | bytes):
        raise TypeError(
            "texts must be a sequence of texts or of word lists, got a single "
            f"{type(texts).__name__}; wrap it in a list."
        )
    items = list(texts)
    raw = [isinstance(t, str) for t in items]
    if any(raw) and not all(raw):
        i = raw.index(not raw[0])
        raise TypeError(
            f"texts[0] is {'a str' if raw[0] else 'a word list'} but texts[{i}] is not: give "
            "either raw texts (str) or pre-split words (lists of str), not both."
        )
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            words, spans = split_words(item)
            out.append((item, words, spans))
            continue
        if not isinstance(item, Sequence) or isinstance(item, bytes):
            raise TypeError(
                f"texts[{i}] is {type(item).__name__}, not a str or a list of words (str)."
            )
        try:
            text, spans = join_words(item)
        except (TypeError, ValueError) as err:
            raise type(err)(f"texts[{i}]: {err}") from None
        out.append((text, list(item), spans))
    return out
