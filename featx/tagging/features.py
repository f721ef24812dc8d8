"""Per-word features for sequence labelling: frozen Transformer vectors plus cheap word shape.

:class:`TokenEmbedder` turns sentences into one row per word: the encoder's word
vectors (through :meth:`~featx.encoders.base.TransformerEncoder.encode_tokens`), the
vectors of the neighbouring words, and word-shape flags. Shape matters because the
default model is uncased: "apple" and "Apple" get the same pieces, so capitalisation
has to come from the raw word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin

SHAPES = (
    "init_cap",
    "all_caps",
    "all_lower",
    "mixed_case",
    "cap_not_first",
    "has_digit",
    "all_digits",
    "has_hyphen",
    "has_period",
    "punctuation",
    "single_char",
    "first_word",
    "last_word",
)


def word_shapes(words: Sequence[str]) -> NDArray[np.float32]:
    """Word-shape flags (:data:`SHAPES`), one row per word, as 0/1 float32."""
    rows = []
    last = len(words) - 1
    for i, word in enumerate(words):
        letters = [c for c in word if c.isalpha()]
        upper = sum(c.isupper() for c in letters)
        init_cap = word[:1].isupper()
        rows.append(
            (
                init_cap,
                bool(letters) and upper == len(letters),
                bool(letters) and upper == 0,
                0 < upper < len(letters) and not (init_cap and upper == 1),
                init_cap and i > 0,
                any(c.isdigit() for c in word),
                word.isdigit(),
                "-" in word,
                "." in word,
                not any(c.isalnum() for c in word),
                len(word) == 1,
                i == 0,
                i == last,
            )
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(words), len(SHAPES))


def with_context(vectors: NDArray[np.float32], context: int) -> NDArray[np.float32]:
    """Each row followed by the rows ``1..context`` before and after it (zeros past the ends)."""
    if context == 0:
        return vectors
    n, dim = vectors.shape
    out = np.zeros((n, dim * (2 * context + 1)), dtype=np.float32)
    out[:, :dim] = vectors
    for k in range(1, context + 1):
        out[k:, (2 * k - 1) * dim : 2 * k * dim] = vectors[:-k] if k < n else 0
        out[: n - k, 2 * k * dim : (2 * k + 1) * dim] = vectors[k:] if k < n else 0
    return out


class TokenEmbedder(TransformerMixin, BaseEstimator):
    """Sentences -> one feature row per word: word vectors, neighbours' vectors, shapes.

    A scikit-learn transformer over *sequences*: ``transform`` takes raw texts or
    pre-split word lists and returns a list of float32 arrays, one (n_words, n_features)
    array per sentence, the input that sequence models (CRFs) take.

    Args:
        model: An artifact path, registry alias, hub id or model folder (as for
            :func:`featx.load`), or a loaded encoder; None: the registry's default model.
        layers: Hidden states to read; default: the encoder's own.
        combine: ``"mean"``, ``"sum"`` or ``"concat"`` for several layers.
        subword: ``"first"``, ``"mean"`` or ``"last"`` piece of each word.
        context: Neighbouring words on each side whose vectors are appended.
        shape: Append the word-shape flags of :func:`word_shapes`.
        batch_size: Most windows per forward pass.

    Example:
        >>> embedder = TokenEmbedder("minilm", layers=(3, 4), combine="mean")  # doctest: +SKIP
        >>> [x.shape for x in embedder.transform([["Peter", "Blackburn"]])]  # doctest: +SKIP
        [(2, 1165)]
    """

    def __init__(
        self,
        model: Any = None,
        *,
        layers: int | tuple[int, ...] | None = None,
        combine: str = "mean",
        subword: str | None = None,
        context: int = 1,
        shape: bool = True,
        batch_size: int = 32,
    ) -> None:
        self.model = model
        self.layers = layers
        self.combine = combine
        self.subword = subword
        self.context = context
        self.shape = shape
        self.batch_size = batch_size

    def get_encoder(self) -> Any:
        """The encoder, loaded on first use (after ``fit`` or unpickling)."""
        if not isinstance(self.model, str | bytes) and hasattr(self.model, "encode_tokens"):
            return self.model
        encoder = getattr(self, "_loaded", None)
        if encoder is None:
            from featx.api import load

            encoder = load(self.model, batch_size=self.batch_size)
            self._loaded = encoder
        return encoder

    def __getstate__(self) -> dict[str, Any]:
        # The loaded encoder is a session: reload it from ``model`` instead of copying it.
        return {k: v for k, v in self.__dict__.items() if k != "_loaded"}

    def fit(self, X: Any = None, y: object = None) -> TokenEmbedder:
        """Check the settings and load the encoder (nothing is learned)."""
        if not isinstance(self.context, int) or self.context < 0:
            raise ValueError(f"context must be a whole number >= 0, got {self.context!r}.")
        self.get_encoder()
        return self

    def words(self, X: Any) -> list[Any]:
        """Each sentence's words, spans, text and vectors (:class:`~featx.words.WordVectors`)."""
        options: dict[str, Any] = {"combine": self.combine, "subword": self.subword}
        if self.layers is not None:
            options["layers"] = self.layers
        return list(self.get_encoder().encode_tokens(X, **options))

    def features(self, word_vectors: Sequence[Any]) -> list[NDArray[np.float32]]:
        """Feature rows from the output of :meth:`words`."""
        out = []
        for item in word_vectors:
            x = with_context(item.vectors, self.context)
            if self.shape:
                x = np.hstack([x, word_shapes(item.words)])
            out.append(np.ascontiguousarray(x, dtype=np.float32))
        return out

    def transform(self, X: Any) -> list[NDArray[np.float32]]:
        """One float32 (n_words, n_features) array per sentence of ``X``."""
        return self.features(self.words(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # texts or word lists, not numbers
        tags.input_tags.two_d_array = False
        return tags

    @property
    def n_features(self) -> int:
        """Width of each row."""
        encoder = self.get_encoder()
        layers = self.layers if self.layers is not None else encoder.representation.layers
        n_layers = 1 if isinstance(layers, int) else len(layers)
        dim = encoder.spec.dim * (n_layers if self.combine == "concat" else 1)
        return dim * (2 * self.context + 1) + (len(SHAPES) if self.shape else 0)
