"""The sentence pipeline: texts -> windows -> length-sorted batches -> pooled vectors.

Validation, tokenisation with exact token counts, long texts truncated (and reported) or
windowed and pooled, one forward pass per batch, pooling and normalisation in numpy.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.batching import plan_batches
from featx.config import LongText, Representation
from featx.encoders.base import Backend, EncodeResult
from featx.environment import progress_bar, want_progress
from featx.errors import TruncationWarning
from featx.pooling import normalize as l2_normalize
from featx.text import Tokenized, check_texts


def representation_of(backend: Backend, overrides: Mapping[str, Any]) -> Representation:
    """The backend's representation with ``overrides`` (checked by name) applied."""
    unknown = set(overrides) - set(Representation.__dataclass_fields__)
    if unknown:
        valid = ", ".join(Representation.__dataclass_fields__)
        raise TypeError(f"Unknown option(s) {sorted(unknown)}. Valid: {valid}.")
    return backend.representation.updated(**overrides) if overrides else backend.representation


def encode_texts(
    backend: Backend,
    texts: Sequence[str],
    *,
    batch_size: int | None,
    max_tokens: int | None,
    show_progress: bool | None,
    overrides: Mapping[str, Any],
) -> EncodeResult:
    """Embed ``texts`` with ``backend``: see :meth:`TransformerEncoder.encode_with_info`."""
    rep = representation_of(backend, overrides)
    layers = backend.layer_indices(rep)
    started = time.perf_counter()
    items = check_texts(texts)
    chunk = rep.long_text is not LongText.TRUNCATE
    tokenized = backend.preparer.tokenize(items, chunk=chunk, stride=rep.stride)
    tokenized_at = time.perf_counter()
    window_vectors = _embed_windows(
        backend,
        tokenized,
        rep,
        layers,
        batch_size or backend.batch_size,
        max_tokens or backend.max_tokens,
        want_progress(show_progress, items=len(items)),
    )
    vectors = merge_windows(window_vectors, tokenized, rep.long_text, backend.dim_for(rep))
    if rep.normalize:
        vectors = l2_normalize(vectors)
    return EncodeResult(
        embeddings=vectors,
        n_tokens=tokenized.n_tokens,
        truncated=tokenized.truncated & (not chunk),
        n_windows=tokenized.n_windows,
        seconds={
            "tokenize": tokenized_at - started,
            "inference": time.perf_counter() - tokenized_at,
        },
    )


def _embed_windows(
    backend: Backend,
    tokenized: Tokenized,
    rep: Representation,
    layers: tuple[int, ...],
    batch_size: int,
    max_tokens: int,
    progress: bool,
) -> NDArray[np.float32]:
    out = np.empty((len(tokenized.windows), backend.dim_for(rep)), dtype=np.float32)
    lengths = [len(w) for w in tokenized.windows]
    batches = plan_batches(lengths, batch_size=batch_size, max_tokens=max_tokens)
    bar = progress_bar(progress, len(lengths), "featx encode")
    for rows in batches:
        inputs = backend.model_inputs([tokenized.windows[r] for r in rows])
        out[rows] = backend.pooled(inputs, rep, layers)
        bar.update(len(rows))
    bar.close()
    return out


def merge_windows(
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


def warn_truncation(result: EncodeResult, max_length: int, stacklevel: int) -> None:
    """Warn with a :class:`TruncationWarning` (counts as data) if any text was cut."""
    warning = TruncationWarning.of(result.n_tokens, result.truncated, max_length)
    if warning is not None:
        warnings.warn(warning, stacklevel=stacklevel)
