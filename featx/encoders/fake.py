"""HashEncoder: a real, model-free backend for wiring tests (like httpx's MockTransport)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.pooling import normalize
from featx.text import check_texts

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEncoder:
    """Embed texts by hashing their lower-cased words into ``dim`` signed buckets.

    Deterministic, instant and dependency-free; texts sharing words get similar vectors.

    Args:
        dim: Width of the vectors.

    Example:
        >>> from featx import HashEncoder
        >>> HashEncoder(dim=8).encode(["a cat", "a dog"]).shape
        (2, 8)
    """

    def __init__(self, dim: int = 16) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}.")
        self._dim = dim

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return self._dim

    def encode(self, texts: Sequence[str], **options: Any) -> NDArray[np.float32]:
        """Embed ``texts`` -> float32 array (len(texts), dim), L2-normalised."""
        items = check_texts(texts)
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        for row, text in enumerate(items):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
        return normalize(out)

    def __repr__(self) -> str:
        return f"HashEncoder(dim={self._dim})"
