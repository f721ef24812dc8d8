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
import shutil
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from numpy.typing import NDArray

from featx._version import __version__
from featx.artifact import Artifact, seal, sha256_file, staging, write_json_atomic
from featx.embedder import Embedder, _column, _pair_columns
from featx.errors import ArtifactIntegrityError, ModelLoadError
from featx.heads import Task
from featx.text import check_texts

HEAD_FILE = "head.skops"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
MEMBERS_DIR = "encoders"
# Types trusted beyond skops' defaults: featx's own, and scikit-learn internals that its
# estimators hold: Bunch (the dict that ensembles keep members in) and the fitted parts
# of CalibratedClassifierCV (svm), MLPs (optimiser state) and gradient boosting (trees).
TRUSTED_TYPES = (
    "featx.embedder.Embedder",
    "featx.encoders.fake.HashEncoder",
    "featx.heads.NeuralHead",
    "sklearn.utils._bunch.Bunch",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


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
        columns = _pair_columns(X)
        if columns != self.n_pair_columns:
            want = "pairs of texts (two columns)" if self.n_pair_columns else "single texts"
            raise ValueError(f"This model reads {want}; got {columns or 'one'} column(s).")
        if columns == 2:
            pairs = np.asarray(X, dtype=object)
            check_texts(pairs[:, 0], "X[:, 0]")
            check_texts(pairs[:, 1], "X[:, 1]")
            return pairs
        return check_texts(_column(X), "X")

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

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the model as one artifact directory at ``path`` (atomically).

        Raises:
            FileExistsError: If ``path`` exists and ``force`` is false.
        """
        out = Path(path)
        estimator = copy.deepcopy(self.estimator)  # embedders copy without their sessions
        with staging(out, force=force) as stage:
            members: dict[Path, str] = {}
            base: dict[str, Any] = {}
            for embedder in embedders(estimator):
                source = _artifact_of(embedder)
                if source is None:
                    continue  # an in-memory encoder (HashEncoder) is saved inside head.skops
                if source not in members:
                    members[source] = "." if not members else f"{MEMBERS_DIR}/{len(members)}"
                    manifest = _copy_encoder(source, stage / members[source])
                    base = base or manifest
                embedder.model = members[source]
                embedder.cache = None  # the cache is a training aid, not part of the model
            (stage / HEAD_FILE).write_bytes(skops.io.dumps(estimator))
            write_json_atomic(stage / LABELS_FILE, {"task": self.task.value, "labels": self.labels})
            write_json_atomic(stage / METRICS_FILE, self.metrics)
            seal(
                stage,
                {
                    **{k: v for k, v in base.items() if k not in ("files", "format_version")},
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "featx_version": __version__,
                    "predictor": {
                        "task": self.task.value,
                        "head": HEAD_FILE,
                        "labels": LABELS_FILE,
                        "metrics": METRICS_FILE,
                        "encoders": sorted(members.values()),
                        "estimator": _head_name(estimator),
                    },
                },
            )
        return out

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
        artifact = Artifact.open(path)
        info = artifact.manifest.get("predictor")
        if not isinstance(info, dict):
            raise ModelLoadError(
                f"{artifact.path} has no head: it is an encoder artifact. Train one with: "
                f"featx train --model {artifact.path} --data train.tsv --out MODEL"
            )
        data = artifact.read(info["head"])
        untrusted = skops.io.get_untrusted_types(data=data)
        refused = [t for t in untrusted if t not in TRUSTED_TYPES and t not in trusted]
        if refused:
            raise ModelLoadError(
                f"{artifact.path / info['head']} holds types that skops does not trust: "
                f"{', '.join(refused)}. If you trust this file, pass trusted=[...] with them."
            )
        estimator = skops.io.loads(data, trusted=list(untrusted))
        for embedder in embedders(estimator):
            if isinstance(embedder.model, str):
                embedder.model = str((artifact.path / embedder.model).resolve())
        labels = artifact.read_json(info["labels"])
        metrics = artifact.read_json(info["metrics"])
        return cls(estimator, labels["task"], labels["labels"], metrics=metrics)


def is_predictor(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an artifact with a trained head."""
    try:
        return "predictor" in Artifact.open(path).manifest
    except (FileNotFoundError, ModelLoadError, ArtifactIntegrityError):
        return False


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
    path = getattr(embedder._encoder(), "path", None)
    return Path(path).resolve() if path is not None else None


def _copy_encoder(source: Path, target: Path) -> dict[str, Any]:
    """Copy the encoder files of artifact ``source`` into ``target``, verifying each."""
    manifest = {k: v for k, v in Artifact.open(source).manifest.items() if k != "predictor"}
    target.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, entry in manifest["files"].items():
        if name in (HEAD_FILE, LABELS_FILE, METRICS_FILE) or name.startswith(f"{MEMBERS_DIR}/"):
            continue  # a trained artifact used as an encoder: take only the encoder
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
        if sha256_file(target / name) != entry["sha256"]:
            raise ArtifactIntegrityError(
                f"{source / name} does not match its checksum; re-export {source}."
            )
        files[name] = entry
    manifest["files"] = files
    write_json_atomic(target / "featx.json", manifest)
    return manifest


def _head_name(estimator: Any) -> str:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__name__


def to_plain(value: Any) -> Any:
    """Numpy scalars as Python scalars and tuples as lists: values that serialise as such."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [to_plain(v) for v in value]
    return value
