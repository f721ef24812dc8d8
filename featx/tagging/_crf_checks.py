"""Input checks of :class:`~featx.tagging.crf.LinearChainCRF`: parameters, features, tags.

Each check either returns its input in the form training and decoding use (2-D arrays,
integer tag arrays, boolean constraint masks, float64 weights) or raises an error that
shows the bad value and says how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.tagging._crf_layout import Float


def check_params(c2: Any, max_iter: Any, tol: Any) -> None:
    """Reject parameter values that cannot train, naming the valid range."""
    if not (isinstance(c2, int | float | np.number) and np.isfinite(c2)) or c2 < 0:
        raise ValueError(f"c2 must be a finite number >= 0, got {c2!r}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}.")
    if not (isinstance(tol, int | float | np.number) and np.isfinite(tol)) or tol <= 0:
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}.")


def resolve_n_tags(
    n_tags: int | None, tags: list[NDArray[np.intp]], allowed: Any, allowed_start: Any
) -> int:
    """``k`` from ``n_tags``, else the constraints, else the largest tag + 1."""
    top = max(int(t.max()) for t in tags)
    if n_tags is None:
        if allowed is not None:
            n_tags = int(np.shape(allowed)[0])
        elif allowed_start is not None:
            n_tags = int(np.shape(allowed_start)[0])
        else:
            n_tags = top + 1
    if isinstance(n_tags, bool) or not isinstance(n_tags, int | np.integer) or n_tags < 1:
        raise ValueError(f"n_tags must be an int >= 1, got {n_tags!r}.")
    check_tag_range(tags, int(n_tags))
    return int(n_tags)


def check_X(
    X: Any, *, n_features: int | None, allow_empty: bool
) -> tuple[list[NDArray[Any]], type[Float]]:
    """Sentences as 2-D arrays of one width, all finite; the dtype to compute in."""
    if isinstance(X, str) or (isinstance(X, np.ndarray) and X.ndim < 3 and X.dtype != object):
        shape = getattr(X, "shape", None)
        raise TypeError(
            "X must be a sequence of 2-D arrays (n_words, n_features), one per sentence; "
            f"got {type(X).__name__}{f' of shape {shape}' if shape else ''}. "
            "For one sentence, pass [X]."
        )
    sentences: list[NDArray[Any]] = []
    for i, sentence in enumerate(X):
        x = np.asarray(sentence)
        if allow_empty and x.size == 0 and n_features is not None:
            x = x.reshape(0, n_features)
        if x.ndim != 2:
            raise ValueError(
                f"X[{i}] has shape {x.shape}; each sentence must be a 2-D array "
                "(n_words, n_features)."
            )
        if x.dtype.kind not in "biuf":
            raise ValueError(f"X[{i}] has dtype {x.dtype}; features must be numbers.")
        width = n_features if n_features is not None else sentences[0].shape[1] if i else None
        if width is not None and x.shape[1] != width:
            where = "the model was fitted with" if n_features is not None else "X[0] has"
            raise ValueError(
                f"X[{i}] has {x.shape[1]} features but {where} {width}; every sentence "
                "must use the same features."
            )
        if x.shape[0] == 0 and not allow_empty:
            raise ValueError(
                f"X[{i}] is an empty sentence (0 words); a CRF cannot learn from it. "
                "Drop empty sentences before fit()."
            )
        if not np.isfinite(x).all():
            row = int(np.nonzero(~np.isfinite(x).all(axis=1))[0][0])
            raise ValueError(
                f"X[{i}] holds NaN or infinite values (word {row}); fix or drop that sentence."
            )
        sentences.append(x)
    if not sentences and not allow_empty:
        raise ValueError("X holds no sentences; fit() needs at least one tagged sentence.")
    all64 = bool(sentences) and all(x.dtype == np.float64 for x in sentences)
    return sentences, np.float64 if all64 else np.float32


def check_y(y: Any, sentences: list[NDArray[Any]]) -> list[NDArray[np.intp]]:
    """Tag arrays of integers, one per sentence and one per word."""
    if isinstance(y, str) or (isinstance(y, np.ndarray) and y.ndim < 2 and y.dtype != object):
        raise TypeError(
            "y must be a sequence of 1-D integer arrays, one per sentence; "
            f"got {type(y).__name__}. For one sentence, pass [y]."
        )
    tags = list(y)
    if len(tags) != len(sentences):
        raise ValueError(
            f"X has {len(sentences)} sentences but y has {len(tags)}; give one tag array per "
            "sentence."
        )
    out = []
    for i, (t, x) in enumerate(zip(tags, sentences, strict=True)):
        t = np.asarray(t)
        if t.size == 0:
            t = t.reshape(0).astype(np.intp)
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"y[{i}] has shape {t.shape} but X[{i}] has {x.shape[0]} words; give one tag "
                "per word."
            )
        if t.dtype.kind not in "iu":
            raise ValueError(
                f"y[{i}] has dtype {t.dtype}; tags must be integer ids 0..k-1. Map tag names "
                "to ids first, e.g. with {name: i for i, name in enumerate(labels)}."
            )
        out.append(t.astype(np.intp, copy=False))
    return out


def check_tag_range(tags: list[NDArray[np.intp]], k: int) -> None:
    """Every tag is in ``0..k-1``."""
    for i, t in enumerate(tags):
        bad = np.nonzero((t < 0) | (t >= k))[0]
        if bad.size:
            raise ValueError(
                f"y[{i}][{bad[0]}] is tag {int(t[bad[0]])}, outside 0..{k - 1}; pass "
                "n_tags=k (or constraints of size k) when some tags are rarer than others."
            )


def check_constraints(
    allowed: Any, allowed_start: Any, k: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Constraint masks of the right shape that admit tag sequences of every length."""
    masks = []
    for name, value, shape in (
        ("allowed", allowed, (k, k)),
        ("allowed_start", allowed_start, (k,)),
    ):
        if value is None:
            masks.append(np.ones(shape, dtype=bool))
            continue
        mask = np.asarray(value)
        if mask.shape != shape:
            raise ValueError(
                f"{name} has shape {mask.shape} but there are {k} tags; it must have shape "
                f"{shape}. Build both masks with iob2_constraints(labels)."
            )
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1), got dtype {mask.dtype}.")
        masks.append(mask.astype(bool))
    allowed, allowed_start = masks
    reachable = allowed_start
    # A walk of k + 1 tags repeats one, so it holds a cycle: then every length is possible.
    for n_words in range(1, k + 2):
        if not reachable.any():
            raise ValueError(
                f"The constraints allow no tag sequence of {n_words} words; allow at least "
                "one start tag and a cycle of transitions."
            )
        reachable = allowed[reachable].any(axis=0)
    return allowed, allowed_start


def check_gold(
    tags: list[NDArray[np.intp]], allowed: NDArray[np.bool_], allowed_start: NDArray[np.bool_]
) -> None:
    """Every gold sequence obeys the constraints (else its likelihood is 0)."""
    lengths = np.array([len(t) for t in tags])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate(tags)
    bad_start = np.nonzero(~allowed_start[flat[starts]])[0]
    if bad_start.size:
        i = int(bad_start[0])
        raise ValueError(
            f"y[{i}] starts with tag {int(flat[starts[i]])}, which allowed_start forbids; fix "
            "the tags (e.g. an IOB2 sentence cannot start with I-) or the constraints."
        )
    inside = np.ones(flat.size, dtype=bool)
    inside[starts] = False  # word j continues its sentence: check flat[j - 1] -> flat[j]
    inside[0] = False
    ok = allowed[flat[:-1], flat[1:]] | ~inside[1:]
    if not ok.all():
        j = int(np.nonzero(~ok)[0][0]) + 1
        i = int(np.searchsorted(starts, j, side="right") - 1)
        raise ValueError(
            f"y[{i}][{j - starts[i]}]: tag {int(flat[j])} may not follow tag {int(flat[j - 1])} "
            "under allowed; fix the tags (e.g. IOB2's I-X only after B-X or I-X) or the "
            "constraints."
        )


def check_sample_weight(sample_weight: Any, n: int) -> NDArray[np.float64]:
    """One finite, non-negative weight per sentence, not all zero."""
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(
            f"sample_weight has shape {weights.shape}; give one weight per sentence ({n},)."
        )
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise ValueError("sample_weight must be finite, >= 0 and not all 0.")
    return weights
