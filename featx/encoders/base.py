"""The encoder interface and the shared text -> vector pipeline.

``TransformerEncoder`` owns everything but the forward pass: validation, tokenisation,
length-sorted batching, pooling, long-text windows, the truncation report. Backends
(ONNX Runtime, torch) only implement :meth:`TransformerEncoder._forward`.
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from featx.batching import pad_batch, plan_batches
from featx.config import Family, LayerCombine, LongText, ModelSpec, Representation, parse_enum
from featx.errors import TruncationWarning
from featx.pooling import combine_layers, pool
from featx.pooling import normalize as l2_normalize
from featx.text import TextPreparer, Tokenized, check_texts
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

# Padded tokens per batch: large enough for efficient GEMMs, small enough that long
# texts do not blow the cache (measured in benchmarks/README.md).
DEFAULT_MAX_TOKENS = 1024
# Jobs at least this long show a progress bar (when stderr is a terminal).
PROGRESS_MIN_TEXTS = 2048


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns a sequence of texts into a float32 (n, dim) array."""

    @property
    def dim(self) -> int:
        """Width of the vectors :meth:`encode` returns."""
        ...

    def encode(self, texts: Sequence[str], **options: Any) -> NDArray[np.float32]:
        """Embed ``texts`` -> float32 array of shape (len(texts), dim), in input order."""
        ...


@dataclass(frozen=True)
class EncodeResult:
    """Embeddings with what happened to each text on the way.

    Attributes:
        embeddings: float32 array (n, dim), in input order.
        n_tokens: Tokens per text, special tokens included, before truncation.
        truncated: Whether each text was cut to the model's max length (only in
            ``long_text="truncate"`` mode; chunk modes never cut).
        n_windows: Windows each text was embedded in (1 unless chunked).
    """

    embeddings: NDArray[np.float32]
    n_tokens: NDArray[np.int64]
    truncated: NDArray[np.bool_]
    n_windows: NDArray[np.int64]


def _want_progress(show_progress: bool | None, n_texts: int) -> bool:
    if show_progress is not None:
        return show_progress
    return n_texts >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()


class TransformerEncoder(ABC):
    """Shared pipeline of every Transformer backend.

    Args:
        tokenizer: The model's tokenizer.
        spec: How to feed the model (family, inputs, max length, pad id).
        representation: Default pooling and normalisation; ``None`` takes the model's.
        batch_size: Most texts (windows) per forward pass.
        max_tokens: Most padded tokens per forward pass.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        spec: ModelSpec,
        *,
        representation: Representation | None = None,
        batch_size: int = 32,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.representation = representation or spec.representation
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.preparer = TextPreparer(tokenizer, spec.max_length, spec.fallback_id)
        self._words_tokenizer: Tokenizer | None = None
        self._layer_indices(self.representation)  # fail early on a bad default

    @property
    def max_length(self) -> int:
        """Maximum tokens per window, special tokens included."""
        return self.spec.max_length

    @property
    def dim(self) -> int:
        """Width of the vectors :meth:`encode` returns with the default representation."""
        return self.dim_for(self.representation)

    def dim_for(self, representation: Representation) -> int:
        """Width of the vectors for ``representation`` (concatenation widens them)."""
        n = len(representation.layers) if representation.combine is LayerCombine.CONCAT else 1
        return self.spec.dim * n

    def _layer_indices(self, representation: Representation) -> tuple[int, ...]:
        n = self.spec.num_layers
        out = []
        for layer in representation.layers:
            if not -(n + 1) <= layer <= n:
                raise ValueError(
                    f"Layer {layer} does not exist: this model has hidden states 0 (embeddings)"
                    f" to {n} (last), or -1 to -{n + 1} counting from the last."
                )
            out.append(layer % (n + 1))
        return tuple(out)

    @abstractmethod
    def _forward(
        self, inputs: dict[str, NDArray[np.int64]], layers: tuple[int, ...]
    ) -> list[NDArray[np.float32]]:
        """Run the model; return the hidden states (batch, tokens, dim) of ``layers``."""

    def model_inputs(self, windows: Sequence[Sequence[int]]) -> dict[str, NDArray[np.int64]]:
        """Pad token id lists into the model's input arrays (right padding)."""
        ids, mask = pad_batch(windows, self.spec.pad_id)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.spec.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        return feed

    def encode_with_info(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
        **representation: Any,
    ) -> EncodeResult:
        """Embed ``texts`` and report token counts, truncation and windows per text.

        Args:
            texts: A sequence of str (list, tuple, 1-D array, pandas Series).
            batch_size: Most windows per forward pass (default: the encoder's).
            max_tokens: Most padded tokens per forward pass (default: the encoder's).
            show_progress: Show a progress bar; ``None`` shows one for long jobs on a terminal.
            **representation: Overrides of the encoder's :class:`Representation`
                (``pooling``, ``normalize``, ``layers``, ``combine``, ``long_text``, ``stride``).

        Returns:
            An :class:`EncodeResult`; warns with :class:`TruncationWarning` if texts were cut.

        Raises:
            TypeError: If ``texts`` is a bare string or holds a non-string.
            ValueError: If an option is unknown or out of range.
        """
        result = self._encode(texts, batch_size, max_tokens, show_progress, representation)
        _warn_truncation(result, self.max_length, stacklevel=3)
        return result

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
        **representation: Any,
    ) -> NDArray[np.float32]:
        """Embed ``texts`` -> float32 array (len(texts), dim), in input order.

        Takes the same arguments as :meth:`encode_with_info`.
        """
        result = self._encode(texts, batch_size, max_tokens, show_progress, representation)
        _warn_truncation(result, self.max_length, stacklevel=3)
        return result.embeddings

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Token counts of ``texts``, special tokens included, before truncation."""
        return self.preparer.count_tokens(texts)

    def encode_tokens(
        self,
        texts: Sequence[str] | Sequence[Sequence[str]],
        *,
        layers: int | Sequence[int] | None = None,
        combine: str | None = None,
        subword: str | None = None,
        normalize: bool = False,
        overlap: int | None = None,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
    ) -> list[WordVectors]:
        """One vector per word: raw texts are split into words, pre-split words are kept.

        Each word's vector comes from its own sub-word pieces, found through the
        tokenizer's character offsets; a word the tokenizer maps to nothing is fed as the
        fallback token so that it still gets a vector. Texts longer than the model's
        window are read in overlapping windows, and each word from the window where it
        has the most context on both sides, so no word is lost.

        Args:
            texts: Raw texts (a sequence of str) or pre-split words (a sequence of
                sequences of str, for example CoNLL sentences).
            layers: Hidden states to read (0 = embeddings, -1 = last); default: the
                encoder's. ``layers=(-4, -3, -2, -1), combine="sum"`` (or ``"concat"``) is
                the BERT paper's feature-based recipe.
            combine: ``"mean"``, ``"sum"`` or ``"concat"`` for several layers.
            subword: ``"first"`` piece (default for encoders), ``"mean"`` of the pieces,
                or ``"last"`` (default for decoders, whose last piece has seen the word).
            normalize: L2-normalise each word vector.
            overlap: Pieces shared by consecutive windows of a long text; default a
                quarter of the window.
            batch_size: Most windows per forward pass (default: the encoder's).
            max_tokens: Most padded tokens per forward pass (default: the encoder's).
            show_progress: Show a progress bar; ``None`` shows one for long jobs on a terminal.

        Returns:
            A :class:`~featx.words.WordVectors` per text, in input order.

        Raises:
            TypeError: If ``texts`` mixes raw texts and word lists, or holds a non-string.
            ValueError: If a pre-split word is empty, or an option is out of range.
        """
        rep = self.representation.updated(
            **{k: v for k, v in (("layers", layers), ("combine", combine)) if v is not None}
        )
        indices = self._layer_indices(rep)
        default = Subword.LAST if self.spec.family is Family.GPT2 else Subword.FIRST
        how = default if subword is None else parse_enum(Subword, subword, "subword")
        overlap = self._overlap(overlap)
        docs = _word_inputs(texts)
        dim = self.dim_for(rep)
        starts = np.cumsum([0] + [len(words) for _, words, _ in docs])
        out = np.zeros((int(starts[-1]), dim), dtype=np.float32)
        windows: list[NDArray[np.int32]] = []
        picks: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]] = []
        for d, (text, _, spans) in enumerate(docs):
            for window in self.word_windows(text, spans, overlap=overlap):
                rows: list[int] = []
                dest: list[int] = []
                weight: list[float] = []
                for w, pieces in zip(window.words, window.pieces, strict=True):
                    used, share = piece_weights(pieces, how)
                    rows.extend(used.tolist())
                    dest.extend([int(starts[d]) + w] * len(used))
                    weight.extend([share] * len(used))
                windows.append(window.ids)
                picks.append(
                    (
                        np.asarray(rows, dtype=np.int64),
                        np.asarray(dest, dtype=np.int64),
                        np.asarray(weight, dtype=np.float32),
                    )
                )
        batches = plan_batches(
            [len(w) for w in windows],
            batch_size=batch_size or self.batch_size,
            max_tokens=max_tokens or self.max_tokens,
        )
        bar = _bar(_want_progress(show_progress, len(windows)), len(windows), "featx tokens")
        for batch in batches:
            inputs = self.model_inputs([windows[r] for r in batch])
            hidden = combine_layers(self._forward(inputs, indices), rep.combine)
            for b, r in enumerate(batch):
                at, into, share = picks[r]
                np.add.at(out, into, hidden[b, at] * share[:, None])
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
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

    def word_windows(
        self, text: str, spans: Sequence[tuple[int, int]], *, overlap: int | None = None
    ) -> list[Window]:
        """The model inputs of one text and the pieces of each word read from them.

        The pieces are aligned to the words at ``spans`` by character offsets; a text
        longer than the model's window is cut into windows sharing ``overlap`` pieces
        (default: a quarter of the window), and each word is read from the window where
        it has the most context on both sides.
        """
        alignment = align(self._word_tokenizer(), text, spans, self.spec.fallback_id)
        prefix, suffix = special_affixes(self._word_tokenizer())
        room = self.max_length - self.preparer.n_special
        return windows_of(alignment, room, self._overlap(overlap), prefix, suffix)

    def _overlap(self, overlap: int | None) -> int:
        room = self.max_length - self.preparer.n_special
        overlap = room // 4 if overlap is None else overlap
        if not 0 <= overlap < room:
            raise ValueError(f"overlap={overlap} must be between 0 and {room - 1} pieces.")
        return overlap

    def _word_tokenizer(self) -> Tokenizer:
        # Offsets of the whole text: a copy that neither truncates nor pads.
        if self._words_tokenizer is None:
            tokenizer = Tokenizer.from_str(self.tokenizer.to_str())
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._words_tokenizer = tokenizer
        return self._words_tokenizer

    def _encode(
        self,
        texts: Sequence[str],
        batch_size: int | None,
        max_tokens: int | None,
        show_progress: bool | None,
        overrides: dict[str, Any],
    ) -> EncodeResult:
        unknown = set(overrides) - set(Representation.__dataclass_fields__)
        if unknown:
            valid = ", ".join(Representation.__dataclass_fields__)
            raise TypeError(f"Unknown option(s) {sorted(unknown)}. Valid: {valid}.")
        rep = self.representation.updated(**overrides) if overrides else self.representation
        layers = self._layer_indices(rep)
        items = check_texts(texts)
        chunk = rep.long_text is not LongText.TRUNCATE
        tokenized = self.preparer.tokenize(items, chunk=chunk, stride=rep.stride)
        window_vectors = self._embed_windows(
            tokenized,
            rep,
            layers,
            batch_size or self.batch_size,
            max_tokens or self.max_tokens,
            _want_progress(show_progress, len(items)),
        )
        vectors = _merge_windows(window_vectors, tokenized, rep.long_text, self.dim_for(rep))
        if rep.normalize:
            vectors = l2_normalize(vectors)
        return EncodeResult(
            embeddings=vectors,
            n_tokens=tokenized.n_tokens,
            truncated=tokenized.truncated & (not chunk),
            n_windows=tokenized.n_windows,
        )

    def _embed_windows(
        self,
        tokenized: Tokenized,
        rep: Representation,
        layers: tuple[int, ...],
        batch_size: int,
        max_tokens: int,
        progress: bool,
    ) -> NDArray[np.float32]:
        out = np.empty((len(tokenized.windows), self.dim_for(rep)), dtype=np.float32)
        lengths = [len(w) for w in tokenized.windows]
        batches = plan_batches(lengths, batch_size=batch_size, max_tokens=max_tokens)
        bar = _bar(progress, len(lengths), "featx encode")
        for rows in batches:
            inputs = self.model_inputs([tokenized.windows[r] for r in rows])
            hidden = combine_layers(self._forward(inputs, layers), rep.combine)
            out[rows] = pool(hidden, inputs["attention_mask"], rep.pooling)
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()
        return out


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm  # only long jobs pay for the import

    return tqdm(total=total, desc=desc, unit="text")


def _word_inputs(
    texts: Sequence[str] | Sequence[Sequence[str]],
) -> list[tuple[str, list[str], list[tuple[int, int]]]]:
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


def _merge_windows(
    window_vectors: NDArray[np.float32], tokenized: Tokenized, mode: LongText, dim: int
) -> NDArray[np.float32]:
    """Pool the windows of each text into one vector (mean or max); one window passes."""
    n_texts = len(tokenized.n_tokens)
    if len(window_vectors) == n_texts:  # no text was split: windows are texts, in order
        return window_vectors
    owner = tokenized.owner
    if mode is LongText.CHUNK_MAX:
        out = np.full((n_texts, dim), -np.inf, dtype=np.float32)
        np.maximum.at(out, owner, window_vectors)
        return out
    out = np.zeros((n_texts, dim), dtype=np.float32)
    np.add.at(out, owner, window_vectors)
    return (out / tokenized.n_windows[:, None]).astype(np.float32)


def _warn_truncation(result: EncodeResult, max_length: int, stacklevel: int) -> None:
    n_cut = int(result.truncated.sum())
    if n_cut:
        longest = int(result.n_tokens.max())
        warnings.warn(
            f"{n_cut} of {len(result.truncated)} texts were longer than max_length="
            f"{max_length} tokens and were truncated (longest: {longest} tokens). "
            "Pass long_text='chunk_mean' (or 'chunk_max') to embed them whole; "
            "encode_with_info() reports which texts were cut.",
            TruncationWarning,
            stacklevel=stacklevel,
        )
