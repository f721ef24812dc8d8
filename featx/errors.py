"""Errors raised by featx.

Built-in exceptions are used where they fit (``ValueError`` for bad arguments,
``TypeError`` for wrong types, ``FileNotFoundError`` for missing paths,
``ImportError`` for a missing extra). featx's own tree is small::

    FeatxError
    ├── ModelLoadError        a model or artifact cannot be loaded
    │   └── ArtifactIntegrityError   a file is missing or its checksum does not match
    └── ExportError           exporting to ONNX failed or did not pass its parity check
"""

from __future__ import annotations

from typing import Any

import numpy as np


class FeatxError(Exception):
    """Base class of the errors featx raises itself."""


class ModelLoadError(FeatxError):
    """A model, model folder or artifact cannot be loaded."""


class ArtifactIntegrityError(ModelLoadError):
    """An artifact file is missing, unexpected or altered (sha256 mismatch)."""


class ExportError(FeatxError):
    """Exporting a model to ONNX failed, or the export did not match the reference."""


class DroppedRecordsWarning(UserWarning):
    """Records were left out of an input on request (``drop_empty``): how many, and where."""


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's max length and were truncated.

    The counts are attributes, so that callers (the Spark workers) read them as data.

    Attributes:
        n_truncated: Texts that were cut.
        n_texts: Texts in the call.
        longest: Tokens of the longest text, special tokens included.
        max_length: The model's max length.
        tokens_cut: Tokens dropped from the cut texts, in all.
        tokens_of_cut: Tokens the cut texts had, in all (before truncation).
    """

    def __init__(
        self,
        n_truncated: int,
        n_texts: int,
        longest: int,
        max_length: int,
        tokens_cut: int = 0,
        tokens_of_cut: int = 0,
    ) -> None:
        super().__init__(n_truncated, n_texts, longest, max_length, tokens_cut, tokens_of_cut)
        self.n_truncated = n_truncated
        self.n_texts = n_texts
        self.longest = longest
        self.max_length = max_length
        self.tokens_cut = tokens_cut
        self.tokens_of_cut = tokens_of_cut

    @classmethod
    def of(cls, n_tokens: Any, truncated: Any, max_length: int) -> TruncationWarning | None:
        """The warning for texts of ``n_tokens`` tokens each, those ``truncated`` cut.

        None when no text was cut.
        """
        counts = np.asarray(n_tokens, dtype=np.int64)
        cut = np.asarray(truncated, dtype=bool)
        if not cut.any():
            return None
        return cls(
            int(cut.sum()),
            len(counts),
            int(counts.max()),
            max_length,
            int((counts[cut] - max_length).sum()),
            int(counts[cut].sum()),
        )

    def __str__(self) -> str:
        return self.explain(
            "Pass long_text='chunk_mean' (or 'chunk_max') to embed them whole; "
            "encode_with_info() reports which texts were cut."
        )

    def explain(self, advice: str) -> str:
        """The counts, then ``advice`` (the CLI names its own option, not the Python one)."""
        share = (
            f"; {self.tokens_cut} of their {self.tokens_of_cut} tokens "
            f"({100 * self.tokens_cut / self.tokens_of_cut:.0f} %) were cut"
            if self.tokens_of_cut
            else ""
        )
        return (
            f"{self.n_truncated} of {self.n_texts} texts were longer than max_length="
            f"{self.max_length} tokens and were truncated (longest: {self.longest} tokens"
            f"{share}). " + advice
        )
