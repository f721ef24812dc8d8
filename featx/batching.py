"""Length-sorted batching with a token budget, and per-batch padding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def plan_batches(
    lengths: Sequence[int] | NDArray[np.int64], *, batch_size: int, max_tokens: int
) -> list[NDArray[np.int64]]:
    """Group row indices into batches of similar length.

    Rows are sorted longest first; a batch grows while it holds fewer than ``batch_size``
    rows and its padded size (rows x longest row) stays within ``max_tokens``. A single
    row longer than ``max_tokens`` still gets a batch of its own.

    Returns:
        Index arrays, one per batch; together they cover every row once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens!r}.")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[NDArray[np.int64]] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        fit = max(1, min(batch_size, max_tokens // max(longest, 1)))
        batches.append(order[start : start + fit])
        start += fit
    return batches


def pad_batch(
    windows: Sequence[Sequence[int]], pad_id: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Right-pad token id lists to the longest one.

    Returns:
        ``input_ids`` and ``attention_mask``, both int64 of shape (rows, longest).
    """
    width = max(len(w) for w in windows)
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = window
        mask[row, : len(window)] = 1
    return ids, mask
