"""The encoder interfaces: what every encoder offers, and what the pipelines need of one.

:class:`Encoder` is the public contract (``dim`` and ``encode``), met by every backend and
by :class:`~featx.encoders.fake.HashEncoder`. :class:`Backend` is what the sentence
pipeline (:mod:`featx.encoders.sentence`) and the word pipeline
(:mod:`featx.encoders.token`) need from a Transformer backend: its spec, tokenisation,
batching settings and one forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from featx.config import ModelSpec, Representation
from featx.text import TextPreparer


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
        seconds: Wall time by stage of the call: ``tokenize`` and ``inference`` (batching,
            the model, pooling), where the encoder measures them.
    """

    embeddings: NDArray[np.float32]
    n_tokens: NDArray[np.int64]
    truncated: NDArray[np.bool_]
    n_windows: NDArray[np.int64]
    seconds: Mapping[str, float] = field(default_factory=dict)


class Backend(Protocol):
    """A Transformer backend as the pipelines see it."""

    spec: ModelSpec
    representation: Representation
    preparer: TextPreparer
    batch_size: int
    max_tokens: int

    @property
    def max_length(self) -> int:
        """Maximum tokens per window, special tokens included."""
        ...

    def dim_for(self, representation: Representation) -> int:
        """Width of the vectors for ``representation``."""
        ...

    def layer_indices(self, representation: Representation) -> tuple[int, ...]:
        """The hidden states ``representation`` reads, as 0..num_layers."""
        ...

    def model_inputs(self, windows: Sequence[Sequence[int]]) -> dict[str, NDArray[np.int64]]:
        """Pad token id lists into the model's input arrays."""
        ...

    def forward(
        self, inputs: dict[str, NDArray[np.int64]], layers: tuple[int, ...]
    ) -> list[NDArray[np.float32]]:
        """Run the model; return the hidden states (batch, tokens, dim) of ``layers``."""
        ...

    def pooled(
        self,
        inputs: dict[str, NDArray[np.int64]],
        representation: Representation,
        layers: tuple[int, ...],
    ) -> NDArray[np.float32]:
        """One batch's pooled vectors (batch, dim), before normalisation."""
        ...

    def word_tokenizer(self) -> Tokenizer:
        """The tokenizer without truncation or padding (offsets of whole texts)."""
        ...
