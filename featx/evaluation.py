"""Evaluate a predictor on labelled texts, and write the result as a report with plots.

:func:`evaluate` returns the figures people check first (accuracy, macro-F1, a per-class
report; R², Spearman and errors for regression); :func:`write_report` adds plots
(confusion matrix, calibration curve or residuals) as PNG and a Markdown and an HTML
page that show them. Plots need matplotlib (the ``report`` extra).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from featx.artifact import staging
from featx.config import Task
from featx.extras import require
from featx.files import write_json_atomic
from featx.io import to_plain

if TYPE_CHECKING:
    from featx.predictor import Predictor


@dataclass
class Evaluation:
    """Metrics and the raw predictions they came from.

    Attributes:
        task: The target kind.
        labels: Class (or label) names in the model's order.
        metrics: JSON-ready figures.
        y_true: Targets (class labels, 0/1 matrix for multi-label, floats).
        y_pred: Predictions in the same form.
        proba: Probabilities (n, len(labels)) when the head gives them.
    """

    task: Task
    labels: list[Any]
    metrics: dict[str, Any]
    y_true: Any
    y_pred: Any
    proba: NDArray[np.float64] | None = field(default=None, repr=False)


def evaluate(predictor: Predictor, X: Any, y: Any) -> Evaluation:
    """Score ``predictor`` on texts ``X`` with true targets ``y``.

    Raises:
        ValueError: If lengths differ, the data is empty, or ``y`` holds labels the model
            does not know (often "1" against 1: check the label column's type).
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} texts but y has {len(y)} labels.")
    if len(y) == 0:
        raise ValueError("Nothing to evaluate: the data is empty.")
    task, labels = predictor.task, predictor.labels
    predictions, proba = predictor.predict_with_proba(X)
    y_true: Any
    y_pred: Any
    if task is Task.REGRESSION:
        y_true = np.asarray(y, dtype=np.float64)
        y_pred = np.asarray(predictions, dtype=np.float64)
        metrics = _regression(y_true, y_pred)
    elif task is Task.MULTILABEL:
        y_true = _indicator(y, labels)
        y_pred = _indicator(predictions, labels)
        metrics = _multilabel(y_true, y_pred, labels)
    else:
        y_true = np.asarray([to_plain(v) for v in y])
        unknown = sorted({repr(v) for v in y_true.tolist() if v not in set(labels)})
        if unknown:
            raise ValueError(
                f"Labels {', '.join(unknown[:5])} are not among the model's labels {labels!r}; "
                "check the label column (and its type: '1' is not 1)."
            )
        y_pred = np.asarray(predictions)
        metrics = _classification(y_true, y_pred, labels, proba)
    metrics["n"] = len(y)
    return Evaluation(task, labels, metrics, y_true, y_pred, proba)


def _classification(
    y_true: Any, y_pred: Any, labels: list[Any], proba: NDArray[np.float64] | None
) -> dict[str, Any]:
    names = [str(v) for v in labels]
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
    )
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {name: _rounded(report[name]) for name in names},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if proba is not None:
        # Some heads round to rows that miss 1 by ~1e-7: renormalise before scoring.
        proba = np.clip(proba, 1e-15, 1.0)
        metrics["log_loss"] = float(
            log_loss(y_true, proba / proba.sum(1, keepdims=True), labels=labels)
        )
    return metrics


def _multilabel(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], labels: list[Any]
) -> dict[str, Any]:
    names = [str(v) for v in labels]
    report = classification_report(
        y_true, y_pred, target_names=names, output_dict=True, zero_division=0
    )
    return {
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "per_label": {name: _rounded(report[name]) for name in names},
    }


def _regression(y_true: NDArray[np.float64], y_pred: NDArray[np.float64]) -> dict[str, Any]:
    constant = np.ptp(y_pred) == 0 or np.ptp(y_true) == 0
    return {
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        "spearman": float("nan") if constant else float(spearmanr(y_true, y_pred).statistic),
        "pearson": float("nan") if constant else float(pearsonr(y_true, y_pred).statistic),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
    }


def _indicator(rows: Any, labels: list[Any]) -> NDArray[np.int64]:
    """Lists of labels per text (or a 0/1 matrix) -> a 0/1 matrix in ``labels`` order."""
    if hasattr(rows, "shape"):
        return np.asarray(rows, dtype=np.int64)
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(rows), len(labels)), dtype=np.int64)
    for r, row in enumerate(rows):
        for label in row:
            if label not in index:
                raise ValueError(f"Label {label!r} (row {r + 1}) is not among {labels!r}.")
            out[r, index[label]] = 1
    return out


def _rounded(entry: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in entry.items()}


def summary(m: dict[str, Any]) -> str:
    """Metrics (of :func:`evaluate`) as a few lines of text, with the per-class table."""
    lines = []
    order = ("accuracy", "macro_f1", "subset_accuracy", "micro_f1", "r2", "spearman", "pearson")
    headline = [k for k in (*order, "mae", "rmse", "log_loss") if k in m]
    lines += [f"{k}: {m[k]:.4f}" for k in headline]
    table = m.get("per_class") or m.get("per_label")
    if table:
        width = max(len("label"), *(len(str(name)) for name in table))  # whole names, never cut
        lines.append(f"{'label':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}")
        for name, row in table.items():
            lines.append(
                f"{name:<{width}} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                f"{row['f1-score']:>9.4f} {int(row['support']):>9d}"
            )
    lines.append(f"n: {m['n']}")
    return "\n".join(lines)


def write_report(
    evaluation: Evaluation,
    out: str | os.PathLike[str],
    *,
    title: str = "featx evaluation",
    force: bool = False,
) -> Path:
    """Write ``metrics.json``, plots (PNG), ``report.md`` and ``report.html`` into ``out``.

    Raises:
        FileExistsError: If ``out`` exists and ``force`` is false.
        ImportError: If matplotlib is missing.
    """
    plt = _pyplot()
    target = Path(out)
    with staging(target, force=force) as stage:
        write_json_atomic(stage / "metrics.json", evaluation.metrics)
        plots = _plots(evaluation, stage, plt)
        text = summary(evaluation.metrics)
        md = [f"# {title}", "", "```", text, "```", ""]
        md += [f"![{caption}]({name})\n" for name, caption in plots]
        (stage / "report.md").write_text("\n".join(md), encoding="utf-8")
        images = "".join(
            f'<figure><img src="{name}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            for name, caption in plots
        )
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1><pre>{html.escape(text)}</pre>"
            f"{images}<details><summary>metrics.json</summary><pre>"
            f"{html.escape(json.dumps(evaluation.metrics, indent=2))}</pre></details>"
            "</body></html>"
        )
        (stage / "report.html").write_text(page, encoding="utf-8")
    return target


def _pyplot() -> Any:
    require("report", "Report plots")
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt

    return plt


def _plots(evaluation: Evaluation, out: Path, plt: Any) -> list[tuple[str, str]]:
    """Draw the task's plots into ``out``; return (file name, caption) pairs."""
    made = []
    m = evaluation.metrics
    if "confusion_matrix" in m:
        names = [str(v) for v in evaluation.labels]
        matrix = np.asarray(m["confusion_matrix"])
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(names), 1.0 + 0.6 * len(names)))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        made.append(_save(fig, out, "confusion_matrix.png", "Confusion matrix", plt))
    if evaluation.proba is not None and evaluation.task.is_classification:
        made.append(_calibration(evaluation, out, plt))
    if evaluation.task is Task.MULTILABEL:
        names = list(m["per_label"])
        fig, ax = plt.subplots(figsize=(6, 1.0 + 0.3 * len(names)))
        ax.barh(names, [m["per_label"][n]["f1-score"] for n in names])
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1")
        made.append(_save(fig, out, "per_label_f1.png", "F1 per label", plt))
    if evaluation.task is Task.REGRESSION:
        y_true, y_pred = evaluation.y_true, evaluation.y_pred
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        left.scatter(y_true, y_pred, s=6, alpha=0.5)
        lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        left.plot([lo, hi], [lo, hi], color="gray", linewidth=1)
        left.set_xlabel("true")
        left.set_ylabel("predicted")
        right.scatter(y_pred, y_pred - y_true, s=6, alpha=0.5)
        right.axhline(0, color="gray", linewidth=1)
        right.set_xlabel("predicted")
        right.set_ylabel("residual (predicted - true)")
        made.append(_save(fig, out, "residuals.png", "Predicted vs true, and residuals", plt))
    return made


def _calibration(evaluation: Evaluation, out: Path, plt: Any) -> tuple[str, str]:
    """Reliability of the top predicted probability: confidence vs accuracy in 10 bins."""
    assert evaluation.proba is not None  # checked by the caller
    confidence = evaluation.proba.max(axis=1)
    correct = evaluation.y_pred == evaluation.y_true
    edges = np.linspace(0.0, 1.0, 11)
    bins = np.clip(np.digitize(confidence, edges) - 1, 0, 9)
    used = [b for b in range(10) if np.any(bins == b)]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="gray", linewidth=1, label="perfect")
    ax.plot(
        [confidence[bins == b].mean() for b in used],
        [correct[bins == b].mean() for b in used],
        marker="o",
        label="model",
    )
    ax.set_xlabel("predicted probability (top class)")
    ax.set_ylabel("accuracy")
    ax.legend()
    return _save(fig, out, "calibration.png", "Calibration (reliability curve)", plt)


def _save(fig: Any, out: Path, name: str, caption: str, plt: Any) -> tuple[str, str]:
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name, caption
