"""Pure numpy pooling: token vectors (batch, tokens, dim) -> text vectors (batch, dim).

Every backend (ONNX Runtime, torch) hands its hidden states to these functions, so
the backends cannot drift apart. Masks are right-padded: 1 for real tokens, 0 for padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from featx.config import LayerCombine, Pooling

FloatArray = NDArray[np.float32]


def _mask(mask: NDArray[np.integer] | NDArray[np.bool_]) -> FloatArray:
    return np.asarray(mask, dtype=np.float32)


def mean_pool(hidden: FloatArray, mask: NDArray[np.integer]) -> FloatArray:
    """Average the unmasked token vectors; a fully masked row gives zeros."""
    m = _mask(mask)
    summed = np.einsum("btd,bt->bd", hidden, m)
    return (summed / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)


def weighted_mean_pool(hidden: FloatArray, mask: NDArray[np.integer]) -> FloatArray:
    """Position-weighted mean (SGPT): token i of a text has weight i + 1."""
    m = _mask(mask) * np.arange(1, hidden.shape[1] + 1, dtype=np.float32)
    summed = np.einsum("btd,bt->bd", hidden, m)
    return (summed / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)


def cls_pool(hidden: FloatArray, mask: NDArray[np.integer]) -> FloatArray:
    """Take the first token's vector."""
    return np.ascontiguousarray(hidden[:, 0], dtype=np.float32)


def max_pool(hidden: FloatArray, mask: NDArray[np.integer]) -> FloatArray:
    """Element-wise max over unmasked tokens; a fully masked row gives zeros."""
    m = np.asarray(mask, dtype=bool)[:, :, None]
    pooled = np.where(m, hidden, -np.inf).max(axis=1)
    return np.where(np.isfinite(pooled), pooled, 0.0).astype(np.float32)


def last_pool(hidden: FloatArray, mask: NDArray[np.integer]) -> FloatArray:
    """Take the last unmasked token's vector (decoders); a fully masked row takes token 0."""
    last = np.maximum(np.asarray(mask).astype(np.int64).sum(axis=1) - 1, 0)
    return np.ascontiguousarray(hidden[np.arange(hidden.shape[0]), last], dtype=np.float32)


_POOLERS = {
    Pooling.MEAN: mean_pool,
    Pooling.WEIGHTED_MEAN: weighted_mean_pool,
    Pooling.CLS: cls_pool,
    Pooling.MAX: max_pool,
    Pooling.LAST: last_pool,
}


def pool(hidden: FloatArray, mask: NDArray[np.integer], pooling: Pooling) -> FloatArray:
    """Pool ``hidden`` (batch, tokens, dim) with ``mask`` (batch, tokens) -> (batch, dim)."""
    return _POOLERS[Pooling(pooling)](hidden, mask)


def combine_layers(hidden_states: Sequence[FloatArray], combine: LayerCombine) -> FloatArray:
    """Combine several layers' hidden states (each batch, tokens, dim) into one array."""
    if len(hidden_states) == 1:
        return hidden_states[0]
    if LayerCombine(combine) is LayerCombine.CONCAT:
        return np.concatenate(hidden_states, axis=-1)
    if LayerCombine(combine) is LayerCombine.SUM:  # the BERT paper's feature-based recipe
        return np.sum(np.stack(hidden_states), axis=0, dtype=np.float32)
    return np.mean(np.stack(hidden_states), axis=0, dtype=np.float32)


def normalize(x: FloatArray, eps: float = 1e-12) -> FloatArray:
    """L2-normalise rows; a zero row stays zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)
