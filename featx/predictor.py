"""Predictor: a fitted text -> label/score model, saved as one artifact.

A predictor is any fitted scikit-learn estimator that takes texts (or text pairs),
usually a pipeline of :class:`~featx.Embedder` blocks and a head, plus what its outputs
mean (task, labels) and how well it did on validation data. Saving copies every encoder
artifact the estimator uses into the output (the first at its root, so the result still
embeds like a plain artifact; others under ``encoders/``), writes the estimator with skops
(``head.skops``, no pickle), ``labels.json`` and ``metrics.json``, and seals the manifest.
Loading verifies checksums and refuses any type skops does not trust.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.artifact import HeadSection, Kind
from featx.artifact.estimators import load, member_dirs, open_trained, write_trained
from featx.embedder import Embedder
from featx.heads import Task
from featx.io import to_plain
from featx.text import check_texts, pair_columns, refuse_empty, text_column


class Predictor:
    """A fitted model from texts to labels, label sets or scores.

    Args:
        estimator: A fitted scikit-learn estimator whose input is texts (or two columns
            of text pairs), e.g. ``Pipeline([("embed", Embedder(...)), ("head", ...)])``.
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        labels: Class names in the estimator's order (label names, for multi-label).
        metrics: Validation figures to keep with the model.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.pipeline import make_pipeline
        >>> from featx import Embedder, HashEncoder, Predictor
        >>> pipe = make_pipeline(Embedder(HashEncoder(dim=64)), LogisticRegression())
        >>> model = Predictor(pipe.fit(["good", "bad"], ["pos", "neg"]), "binary", ["neg", "pos"])
        >>> model.predict(["good"])
        ['pos']
    """

    def __init__(
        self,
        estimator: Any,
        task: Task | str,
        labels: Sequence[Any] = (),
        *,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.estimator = estimator
        self.task = Task(task)
        self.labels = [to_plain(v) for v in labels]
        self.metrics = dict(metrics or {})
        if self.task is not Task.REGRESSION and not self.labels:
            raise ValueError(f"A {self.task.value} predictor needs its labels.")

    def __repr__(self) -> str:
        return f"Predictor(task={self.task.value!r}, labels={self.labels!r:.80})"

    @property
    def n_pair_columns(self) -> int:
        """2 when the model reads text pairs, 0 for single texts."""
        fitted = (e for e in embedders(self.estimator) if hasattr(e, "n_pair_columns_"))
        return next((e.n_pair_columns_ for e in fitted), 0)

    def _input(self, X: Any) -> Any:
        columns = pair_columns(X)
        if columns != self.n_pair_columns:
            want = "pairs of texts (two columns)" if self.n_pair_columns else "single texts"
            raise ValueError(f"This model reads {want}; got {columns or 'one'} column(s).")
        if columns == 2:
            pairs = np.asarray(X, dtype=object)
            refuse_empty(check_texts(pairs[:, 0], "X[:, 0]"), "X[:, 0]")
            refuse_empty(check_texts(pairs[:, 1], "X[:, 1]"), "X[:, 1]")
            return pairs
        texts = check_texts(text_column(X), "X")
        refuse_empty(texts)
        return texts

    @property
    def has_probabilities(self) -> bool:
        """Whether :meth:`predict_proba` works: a classifier whose head gives them."""
        return self.task is not Task.REGRESSION and hasattr(self.estimator, "predict_proba")

    def predict(self, X: Any) -> list[Any]:
        """Labels (classification), lists of labels (multi-label) or floats (regression)."""
        out = self.estimator.predict(self._input(X))
        if self.task is Task.MULTILABEL:
            return [[lab for lab, on in zip(self.labels, row, strict=True) if on] for row in out]
        return [to_plain(v) for v in out]

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """Probabilities, shape (n, len(labels)), columns in :attr:`labels` order.

        Raises:
            ValueError: For regression, or a head that gives no probabilities.
        """
        if self.task is Task.REGRESSION:
            raise ValueError("A regression model predicts scores, not probabilities.")
        if not hasattr(self.estimator, "predict_proba"):
            raise ValueError(
                f"This head ({_head_name(self.estimator)}) gives no probabilities. Train "
                "with logreg, svm (calibrated), knn, mlp or gbm, or use predict()."
            )
        proba = self.estimator.predict_proba(self._input(X))
        if isinstance(proba, list):  # multi-output heads: one (n, 2) array per label
            proba = np.stack([p[:, 1] for p in proba], axis=1)
        return np.asarray(proba, dtype=np.float64)

    def predict_with_proba(
        self, X: Any, *, proba: bool | None = None
    ) -> tuple[list[Any], NDArray[np.float64] | None]:
        """Predictions and, when asked (default: when the head has them), probabilities.

        A single-label classifier's labels are read off its probabilities (the class of
        highest probability, as its ``predict`` does), so the texts are embedded once.

        Raises:
            ValueError: If probabilities are asked for but the head gives none.
        """
        if not (self.has_probabilities if proba is None else proba):
            return self.predict(X), None
        probabilities = self.predict_proba(X)
        if self.task.is_classification:
            return [self.labels[i] for i in probabilities.argmax(axis=1)], probabilities
        return self.predict(X), probabilities

    def records(self, X: Any, *, proba: bool | None = None) -> list[dict[str, Any]]:
        """One JSON-ready record per text, with probabilities by label name if any.

        The prediction is under ``label``, ``labels`` (multi-label) or ``score``
        (regression); see :meth:`predict_with_proba` for when probabilities come.
        """
        predictions, probabilities = self.predict_with_proba(X, proba=proba)
        key = {Task.REGRESSION: "score", Task.MULTILABEL: "labels"}.get(self.task, "label")
        rows: list[dict[str, Any]] = [{key: value} for value in predictions]
        if probabilities is not None:
            names = [str(label) for label in self.labels]
            for row, p in zip(rows, probabilities.tolist(), strict=True):
                row["probabilities"] = dict(zip(names, p, strict=True))
        return rows

    def save(
        self, path: str | os.PathLike[str], *, force: bool = False, all_graphs: bool = False
    ) -> Path:
        """Write the model as one artifact directory at ``path`` (atomically).

        Each encoder keeps only the ONNX graph(s) the model runs (one precision; the fast
        graph alone when it embeds with the default vector), unless ``all_graphs``.

        Raises:
            FileExistsError: If ``path`` exists and ``force`` is false.
        """
        estimator = copy.deepcopy(self.estimator)  # embedders copy without their sessions
        sources = [(e, _artifact_of(e)) for e in embedders(estimator)]
        members = member_dirs([s for _, s in sources if s is not None])
        graphs: dict[Path, set[str]] = {}
        for embedder, source in sources:
            used = None if all_graphs or source is None else embedder.graphs_used()
            if source is not None and used is not None:
                graphs.setdefault(source, set()).update(used)
        for embedder, source in sources:
            if source is not None:  # an in-memory encoder (HashEncoder) stays in head.skops
                embedder.model = members[source]
            embedder.cache = None  # the cache is a training aid, not part of the model
        return write_trained(
            path,
            force=force,
            members=members,
            graphs=graphs,
            estimator=estimator,
            labels={"task": self.task.value, "labels": self.labels},
            metrics=self.metrics,
            section=HeadSection(
                task=self.task.value,
                estimator=_head_name(estimator),
                encoders=tuple(sorted(members.values())),
            ),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trusted: Sequence[str] = ()) -> Predictor:
        """Load a model saved by :meth:`save`, checking every file it reads.

        Args:
            path: The artifact directory.
            trusted: Extra type names to trust in ``head.skops`` beyond scikit-learn's
                and featx's own (see ``skops.io.get_untrusted_types``).

        Raises:
            ModelLoadError: If the artifact has no head, or the head holds untrusted types.
            ArtifactIntegrityError: If a file does not match its checksum.
        """
        artifact = open_trained(path, Kind.PREDICTOR)
        head = artifact.manifest.head
        assert head is not None  # a predictor's manifest has its head section
        estimator = load(artifact.read(head.file), artifact.path / head.file, trusted)
        for embedder in embedders(estimator):
            if isinstance(embedder.model, str):
                embedder.model = str((artifact.path / embedder.model).resolve())
        labels = artifact.read_json(head.labels)
        metrics = artifact.read_json(head.metrics)
        return cls(estimator, labels["task"], labels["labels"], metrics=metrics)


def embedders(obj: Any) -> Iterator[Embedder]:
    """Every :class:`Embedder` inside a (possibly nested, possibly fitted) estimator."""
    seen: set[int] = set()
    todo = [obj]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Embedder):
            yield item
        elif isinstance(item, list | tuple):
            todo.extend(reversed(item))
        elif isinstance(item, dict):
            todo.extend(reversed(list(item.values())))
        elif hasattr(item, "get_params"):  # an estimator: its parameters and fitted parts
            todo.extend(reversed(list(vars(item).values())))


def _artifact_of(embedder: Embedder) -> Path | None:
    path = getattr(embedder.get_encoder(), "path", None)
    return Path(path).resolve() if path is not None else None


def _head_name(estimator: Any) -> str:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__name__
