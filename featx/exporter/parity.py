"""The parity gate: does an exported graph embed like the torch fp32 reference?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from featx.encoders.transformer import TransformerEncoder

# The int8 gate: cosine of int8 against the torch fp32 reference on the probe texts.
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.97
# An fp32 graph that disagrees with torch more than this is a broken export.
FP32_MIN_COSINE = 0.9999

# Built-in probe texts: short and long, punctuation, digits, non-Latin scripts, emoji,
# an empty string and a text longer than most models' windows.
PROBE_TEXTS: tuple[str, ...] = (
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog.",
    "it 's a charming and often affecting journey .",
    "The film was a complete waste of time, and I want those two hours back!",
    "Stocks fell 3.2% on Tuesday after the central bank raised rates by 50 basis points.",
    "How do I reset my password if I no longer have access to my email?",
    "Die Katze sitzt auf der Matte.",
    "Le chat est assis sur le tapis.",
    "東京は日本の首都です。",
    "Emoji 😀 and symbols ©®™ — plus “quotes” and ‘apostrophes’.",
    "ok",
    "",
    "BERT, RoBERTa, DistilBERT and GPT-2 turn text into vectors; pooling makes one per text.",
    "Patient presented with acute dyspnea; CT angiography ruled out pulmonary embolism.",
    "def encode(texts): return model(tokenizer(texts))",
    " ".join(
        "Long documents are split into overlapping windows so that no part of them is lost, "
        "and the window vectors are pooled into one vector for the whole document."
        for _ in range(12)
    ),
)


@dataclass(frozen=True)
class Parity:
    """Agreement of candidate embeddings with reference embeddings, row by row."""

    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    n_texts: int

    def passes(self, *, min_mean_cosine: float, min_cosine: float) -> bool:
        """Whether both cosine thresholds are met."""
        return self.mean_cosine >= min_mean_cosine and self.min_cosine >= min_cosine

    def to_dict(self) -> dict[str, float | int]:
        """Return a JSON-ready dict."""
        return asdict(self)


def cosine_rows(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    """Cosine similarity of matching rows; two zero rows count as identical."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = (a64 * b64).sum(axis=1) / np.maximum(na * nb, 1e-30)
    return np.where(both_zero, 1.0, cos)


def measure(reference: NDArray[np.float32], candidate: NDArray[np.float32]) -> Parity:
    """Compare candidate embeddings with the reference, row by row."""
    if reference.shape != candidate.shape:
        raise ValueError(f"Shapes differ: {reference.shape} vs {candidate.shape}.")
    cos = cosine_rows(reference, candidate)
    return Parity(
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        max_abs_diff=float(np.abs(reference - candidate).max()),
        n_texts=len(reference),
    )


def compare(
    reference: TransformerEncoder, candidate: TransformerEncoder, texts: Sequence[str]
) -> Parity:
    """How ``candidate`` embeds ``texts`` against ``reference`` (long texts whole)."""
    expected = reference.encode(texts, long_text="chunk_mean", show_progress=False)
    return measure(expected, candidate.encode(texts, long_text="chunk_mean", show_progress=False))
