"""What the driver sends the Python workers for one job, and the counters they fill in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from featx.artifact import MANIFEST


class Counters(Protocol):
    """Job counters the executors add to (:class:`featx.spark.JobStats`)."""

    def add(self, **values: float) -> None:
        """Add to counters."""
        ...


@dataclass(frozen=True)
class Job:
    """What a Python worker needs: where the artifact is, what to run, where to write."""

    kind: str  # "embed", "predict" or "answer"
    path: str  # the artifact as the driver was given it
    digest: str  # sha256 of its manifest, which holds the sha256 of every file
    shipped: str | None  # SparkFiles name of the shipped copy
    text_col: str
    out_cols: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]
    value_type: str = "string"  # predict: Spark type of the label values
    multilabel: bool = False
    context_col: str | None = None  # answer: the contexts (text_col holds the questions)
    stats: Counters | None = None


def digest(path: Path) -> str | None:
    """sha256 of the artifact's manifest (so of all its files); None if it has none."""
    try:
        return hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None
