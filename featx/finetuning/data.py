"""Checks and encodings of fine-tuning data: texts or pairs, targets, the dev set."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.config import Task
from featx.heads import prepare_targets
from featx.io import to_plain
from featx.text import check_texts, dev_pair, pair_columns, text_column

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


def score(task: Task, y_true: NDArray[Any], outputs: NDArray[np.float64]) -> dict[str, float]:
    """Dev metrics (x1, not x100) from the head's raw outputs and encoded targets."""
    from scipy.stats import spearmanr
    from sklearn.metrics import accuracy_score, f1_score

    if task is Task.REGRESSION:
        return {"spearman": float(spearmanr(y_true, outputs[:, 0]).statistic)}
    if task is Task.MULTILABEL:
        predicted = (outputs > 0).astype(int)
        return {
            "micro_f1": float(f1_score(y_true, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
        }
    predicted = outputs.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "macro_f1": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
    }


def text_columns(X: Any, what: str) -> list[list[str]]:
    """``X`` as one list of texts, or two (sentence pairs)."""
    if pair_columns(X) == 2:
        pairs = np.asarray(X, dtype=object)
        return [check_texts(pairs[:, i], f"{what}[:, {i}]") for i in (0, 1)]
    return [check_texts(text_column(X), what)]


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
        return Targets(found, [to_plain(v) for v in labels], matrix)
    _check_counts(Counter(np.asarray(values).tolist()), "class")
    index = {v: i for i, v in enumerate(labels)}
    return Targets(
        found,
        [to_plain(v) for v in labels],
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
    values = [to_plain(v) for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
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


@dataclass(frozen=True)
class Problem:
    """Checked training data (and dev data) of a fine-tuning run."""

    columns: list[list[str]]
    targets: Targets
    dev_columns: list[list[str]] | None = None
    dev_targets: NDArray[Any] | None = None

    @property
    def pairs(self) -> bool:
        """Whether the texts are sentence pairs."""
        return len(self.columns) == 2


def check_problem(X: Any, y: Any, dev: Any, task: Task | str | None) -> Problem:
    """Check and encode ``X``, ``y`` and ``dev=(X_dev, y_dev)``.

    Raises:
        ValueError: Mismatched lengths, too few examples per class, a dev set that does
            not fit the training data.
    """
    columns = text_columns(X, "X")
    if len(columns[0]) != len(y):
        raise ValueError(f"X has {len(columns[0])} texts but y has {len(y)} labels.")
    targets = encode_targets(y, task)
    if dev is None:
        return Problem(columns, targets)
    X_dev, y_dev = dev_pair(dev)
    dev_columns = check_dev(X_dev, y_dev, len(columns))
    return Problem(columns, targets, dev_columns, encode_dev_targets(y_dev, targets))


def augmented(problem: Problem, augment: Any, seed: int) -> Problem:
    """``problem`` with augmented copies of its training texts (same targets; dev untouched)."""
    from featx.augment import augmenter

    if problem.pairs:
        raise ValueError("Augmentation edits single texts; it does not apply to sentence pairs.")
    texts, rows = augmenter(augment, seed=seed).expand(problem.columns[0])
    targets = replace(problem.targets, values=problem.targets.values[rows])
    return replace(problem, columns=[texts], targets=targets)
