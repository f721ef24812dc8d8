"""Length-sorted batching with a token budget, and per-batch padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

# One window's token ids: a list, or an int array as the tokenizers give them.
TokenIds = Sequence[int] | NDArray[np.integer[Any]]


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
    windows: Sequence[TokenIds], pad_id: int
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


def model_feed(
    windows: Sequence[TokenIds],
    pad_id: int,
    input_names: Sequence[str],
    type_ids: Sequence[TokenIds] | None = None,
) -> dict[str, NDArray[np.int64]]:
    """A model's padded inputs: ids and mask, plus segment and position ids where it takes them.

    ``type_ids`` are the windows' segment ids (question/context pairs); zeros without them.
    """
    ids, mask = pad_batch(windows, pad_id)
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        segments = np.zeros_like(ids) if type_ids is None else pad_batch(type_ids, 0)[0]
        feed["token_type_ids"] = segments
    if "position_ids" in input_names:  # graphs exported by others may take them
        feed["position_ids"] = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    return feed
