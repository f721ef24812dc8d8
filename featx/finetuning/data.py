"""Checks and encodings of fine-tuning data: texts or pairs, targets, the dev set."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.embedder import _column, _pair_columns
from featx.heads import Task
from featx.text import check_texts
from featx.training import prepare_targets

# Fewer examples of a class than this cannot be learnt, nor held out for early stopping.
MIN_PER_CLASS = 2
# The metric early stopping and the search follow, per task (higher is better).
PRIMARY_METRIC = {
    Task.BINARY: "accuracy",
    Task.MULTICLASS: "accuracy",
    Task.MULTILABEL: "micro_f1",
    Task.REGRESSION: "spearman",
}


@dataclass(frozen=True)
class Targets:
    """Encoded targets and how to read the head's outputs back."""

    task: Task
    labels: list[Any]
    values: NDArray[Any]  # class indices, a 0/1 matrix, or standardised scores
    mean: float = 0.0  # regression: the head learns (y - mean) / scale
    scale: float = 1.0

    @property
    def n_out(self) -> int:
        """Outputs of the head."""
        return 1 if self.task is Task.REGRESSION else len(self.labels)


def text_columns(X: Any, what: str) -> list[list[str]]:
    """``X`` as one list of texts, or two (sentence pairs)."""
    if _pair_columns(X) == 2:
        pairs = np.asarray(X, dtype=object)
        return [check_texts(pairs[:, i], f"{what}[:, {i}]") for i in (0, 1)]
    return [check_texts(_column(X), what)]


def encode_targets(y: Any, task: Task | str | None) -> Targets:
    """Check and encode training targets.

    Raises:
        ValueError: One class only, or a class with fewer than :data:`MIN_PER_CLASS` examples.
    """
    values, found, labels = prepare_targets(y, task)
    if found is Task.REGRESSION:
        scores = np.asarray(values, dtype=np.float32)
        scale = float(scores.std()) or 1.0
        mean = float(scores.mean())
        return Targets(found, [], (scores - mean) / scale, mean, scale)
    if found is Task.MULTILABEL:
        counts = dict(zip(labels, np.asarray(values).sum(axis=0).tolist(), strict=True))
        matrix = np.asarray(values, dtype=np.float32)
        _check_counts(counts, "label")
        return Targets(found, [_plain(v) for v in labels], matrix)
    _check_counts(Counter(np.asarray(values).tolist()), "class")
    index = {v: i for i, v in enumerate(labels)}
    return Targets(
        found,
        [_plain(v) for v in labels],
        np.asarray([index[v] for v in np.asarray(values).tolist()]),
    )


def encode_dev_targets(y: Any, train: Targets) -> NDArray[Any]:
    """Encode dev targets like the training ones.

    Raises:
        ValueError: A dev label that training never saw, or targets of another kind.
    """
    if train.task is Task.REGRESSION:
        try:
            return (np.asarray(y, dtype=np.float32) - train.mean) / train.scale
        except ValueError as err:
            raise ValueError(f"The dev set's targets must be numbers (regression): {err}") from err
    if train.task is Task.MULTILABEL:
        rows = [list(v) if isinstance(v, list | tuple | set) else None for v in y]
        if any(r is None for r in rows):
            raise ValueError("The dev set must give a list of labels per text (multi-label).")
        known = set(train.labels)
        unseen = sorted({repr(v) for r in rows for v in r or [] if v not in known})
        if unseen:
            raise ValueError(
                f"Dev labels {', '.join(unseen[:5])} never occur in the training data; a model "
                "cannot learn them. Add training examples or drop them from the dev set."
            )
        index = {v: i for i, v in enumerate(train.labels)}
        out = np.zeros((len(rows), len(train.labels)), dtype=np.float32)
        for r, labels in enumerate(rows):
            for v in labels or []:
                out[r, index[v]] = 1.0
        return out
    index = {v: i for i, v in enumerate(train.labels)}
    values = [_plain(v) for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
    unseen = sorted({repr(v) for v in values if v not in index})
    if unseen:
        raise ValueError(
            f"Dev labels {', '.join(unseen[:5])} never occur in the training labels "
            f"{train.labels!r:.200}; a model cannot learn them (check the label column and its "
            "type: '1' is not 1)."
        )
    return np.asarray([index[v] for v in values])


def check_dev(X_dev: Any, y_dev: Any, n_columns: int) -> list[list[str]]:
    """The dev texts, checked against the training data's shape."""
    if y_dev is None:
        raise ValueError("X_dev needs y_dev (the dev labels).")
    columns = text_columns(X_dev, "X_dev")
    if len(columns) != n_columns:
        want = "pairs of texts (two columns)" if n_columns == 2 else "single texts"
        raise ValueError(f"The training data has {want}, so the dev set must too.")
    if len(columns[0]) != len(y_dev):
        raise ValueError(f"X_dev has {len(columns[0])} texts but y_dev has {len(y_dev)} labels.")
    if not len(y_dev):
        raise ValueError("The dev set is empty.")
    return columns


def _check_counts(counts: dict[Any, int], what: str) -> None:
    few = {k: n for k, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        listed = ", ".join(f"{k!r}: {n}" for k, n in sorted(few.items(), key=str)[:5])
        raise ValueError(
            f"Too few examples per {what} to fine-tune ({listed}); each needs at least "
            f"{MIN_PER_CLASS}. Add examples, or merge or drop the rare ones."
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
