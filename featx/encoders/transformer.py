"""TransformerEncoder: the shared core of every Transformer backend.

It owns everything but the forward pass: the model's tokenizer and spec, the default
representation, batching settings, layer checks and input arrays. Sentence vectors come
from :mod:`featx.encoders.sentence`, word vectors from :mod:`featx.encoders.token`;
backends (ONNX Runtime, torch) implement only :meth:`TransformerEncoder.forward`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from featx.batching import model_feed
from featx.config import LayerCombine, ModelSpec, Representation, RepresentationOptions
from featx.encoders.base import EncodeResult
from featx.encoders.sentence import encode_texts, warn_truncation
from featx.encoders.token import encode_words, word_windows
from featx.pooling import combine_layers, pool
from featx.text import TextPreparer
from featx.words import Window, WordVectors

if TYPE_CHECKING:
    from typing import Unpack

# Padded tokens per batch: large enough for efficient GEMMs, small enough that long
# texts do not blow the cache (measured in benchmarks/README.md).
DEFAULT_MAX_TOKENS = 1024


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
        self.layer_indices(self.representation)  # fail early on a bad default

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

    def layer_indices(self, representation: Representation) -> tuple[int, ...]:
        """The hidden states ``representation`` reads, as 0 (embeddings) .. num_layers.

        Raises:
            ValueError: If a layer does not exist in this model.
        """
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
    def forward(
        self, inputs: dict[str, NDArray[np.int64]], layers: tuple[int, ...]
    ) -> list[NDArray[np.float32]]:
        """Run the model; return the hidden states (batch, tokens, dim) of ``layers``."""

    def pooled(
        self,
        inputs: dict[str, NDArray[np.int64]],
        representation: Representation,
        layers: tuple[int, ...],
    ) -> NDArray[np.float32]:
        """One batch's pooled vectors (batch, dim), before normalisation."""
        hidden = combine_layers(self.forward(inputs, layers), representation.combine)
        return pool(hidden, inputs["attention_mask"], representation.pooling)

    def model_inputs(self, windows: Sequence[Sequence[int]]) -> dict[str, NDArray[np.int64]]:
        """Pad token id lists into the model's input arrays (right padding)."""
        return model_feed(windows, self.spec.pad_id, self.spec.input_names)

    def word_tokenizer(self) -> Tokenizer:
        """A copy of the tokenizer that neither truncates nor pads (offsets of whole texts)."""
        if self._words_tokenizer is None:
            tokenizer = Tokenizer.from_str(self.tokenizer.to_str())
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._words_tokenizer = tokenizer
        return self._words_tokenizer

    def encode_with_info(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
        **representation: Unpack[RepresentationOptions],
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
        return self._encoded(texts, batch_size, max_tokens, show_progress, representation)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        show_progress: bool | None = None,
        **representation: Unpack[RepresentationOptions],
    ) -> NDArray[np.float32]:
        """Embed ``texts`` -> float32 array (len(texts), dim), in input order.

        Takes the same arguments as :meth:`encode_with_info`.
        """
        return self._encoded(
            texts, batch_size, max_tokens, show_progress, representation
        ).embeddings

    def _encoded(
        self,
        texts: Sequence[str],
        batch_size: int | None,
        max_tokens: int | None,
        show_progress: bool | None,
        representation: Mapping[str, Any],
    ) -> EncodeResult:
        """Run the sentence pipeline; warn, at the caller of encode(), of truncated texts."""
        result = encode_texts(
            self,
            texts,
            batch_size=batch_size,
            max_tokens=max_tokens,
            show_progress=show_progress,
            overrides=representation,
        )
        warn_truncation(result, self.max_length, stacklevel=4)
        return result

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
        chosen = {k: v for k, v in (("layers", layers), ("combine", combine)) if v is not None}
        return encode_words(
            self,
            texts,
            self.representation.updated(**chosen),
            subword=subword,
            normalize=normalize,
            overlap=overlap,
            batch_size=batch_size,
            max_tokens=max_tokens,
            show_progress=show_progress,
        )

    def word_windows(
        self, text: str, spans: Sequence[tuple[int, int]], *, overlap: int | None = None
    ) -> list[Window]:
        """The model windows of one text, each word's pieces aligned (see the word pipeline)."""
        return word_windows(self, text, spans, overlap=overlap)
