"""Heads: the scikit-learn estimators that sit on top of embeddings, by short name.

``make_head("logreg", "binary", C=0.5)`` builds a configured estimator; any other
scikit-learn estimator works as a head too. :func:`infer_task` tells binary, multi-class,
multi-label and regression targets apart, and :func:`search_space` gives each head the
grid a hyperparameter search should try.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.utils.multiclass import type_of_target

from featx.config import Head, Task, parse_enum


def infer_task(y: Any) -> Task:
    """The task a target array implies: floats -> regression, a 0/1 matrix -> multi-label.

    Raises:
        ValueError: If ``y`` is empty, has one class only, or is not a usable target.
    """
    kind = type_of_target(y)
    if kind == "continuous":
        return Task.REGRESSION
    if kind == "multilabel-indicator":
        return Task.MULTILABEL
    if kind in ("binary", "multiclass"):
        n_classes = len(np.unique(np.asarray(y)))
        if n_classes < 2:
            raise ValueError(
                f"The labels hold one class only ({np.unique(np.asarray(y))[0]!r}): a classifier "
                "needs at least two. Check the label column, or that the file is not filtered."
            )
        return Task.BINARY if n_classes == 2 else Task.MULTICLASS
    raise ValueError(
        f"Cannot learn from targets of type {kind!r}: give class labels (str or int), "
        "numbers for regression, or a 0/1 matrix (or lists of labels) for multi-label."
    )


def prepare_targets(y: Any, task: Task | str | None = None) -> tuple[Any, Task, list[Any]]:
    """Targets as scikit-learn wants them, the task, and the label names.

    Lists of labels per text (``[["a"], ["a", "b"], []]``) become a 0/1 matrix; floats,
    and text that is all numbers with some decimals (``"2.5"``), mean regression.

    Raises:
        ValueError: If ``y`` is empty, has one class only, or does not fit ``task``.
    """
    values = y if hasattr(y, "shape") else list(y)
    if len(values) == 0:
        raise ValueError("No labels: the training data is empty.")
    task = None if task is None else Task(task)
    if isinstance(values[0], list | tuple | set | frozenset):
        if task not in (None, Task.MULTILABEL):
            raise ValueError(f"Lists of labels per text are a multilabel target, not {task}.")
        binarizer = MultiLabelBinarizer()
        return binarizer.fit_transform(values), Task.MULTILABEL, list(binarizer.classes_)
    if task is None and (_decimal_strings(values) or np.asarray(values).dtype.kind == "f"):
        task = Task.REGRESSION  # floats mean scores, even 1.0 and 2.0
    if task is Task.REGRESSION:
        try:
            return np.asarray(values, dtype=np.float64), task, []
        except ValueError as err:
            raise ValueError(f"Regression needs numeric targets: {err}") from err
    target = np.asarray(values)
    found = infer_task(target)
    if found is Task.MULTILABEL:
        return target, found, list(range(target.shape[1]))
    if task is None:
        task = found
        if task is Task.REGRESSION:
            return target.astype(np.float64), task, []
    elif found is Task.REGRESSION or (task is Task.BINARY and found is Task.MULTICLASS):
        raise ValueError(f"The labels look like a {found.value} target, not {task.value}.")
    return target, task, sorted(np.unique(target).tolist())


def _decimal_strings(values: Any) -> bool:
    """All values are strings of numbers, and some have a fractional part."""
    if not all(isinstance(v, str) for v in values):
        return False
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return False
    return any(not x.is_integer() for x in numbers)


_Builder = Callable[[Task, dict[str, Any]], BaseEstimator]


def _logreg(task: Task, params: dict[str, Any]) -> BaseEstimator:
    model = LogisticRegression(**{"max_iter": 2000, **params})
    return OneVsRestClassifier(model) if task is Task.MULTILABEL else model


def _svm(task: Task, params: dict[str, Any]) -> BaseEstimator:
    if task is Task.REGRESSION:
        # The squared loss solves in the primal, which converges where the dual stalls.
        params = {"loss": "squared_epsilon_insensitive", "dual": False, **params}
        return LinearSVR(**params)
    # LinearSVC has no probabilities; sigmoid calibration on 3 folds adds them.
    model = CalibratedClassifierCV(LinearSVC(**params), cv=3)
    return OneVsRestClassifier(model) if task is Task.MULTILABEL else model


def _ridge(task: Task, params: dict[str, Any]) -> BaseEstimator:
    if task is Task.REGRESSION:
        return Ridge(**params)
    model = RidgeClassifier(**params)  # decision scores only: no predict_proba
    return OneVsRestClassifier(model) if task is Task.MULTILABEL else model


def _knn(task: Task, params: dict[str, Any]) -> BaseEstimator:
    params = {"n_neighbors": 15, "metric": "cosine", "weights": "distance", **params}
    return (
        KNeighborsRegressor(**params) if task is Task.REGRESSION else KNeighborsClassifier(**params)
    )


def _mlp(task: Task, params: dict[str, Any]) -> BaseEstimator:
    params = {"hidden_layer_sizes": (256,), "alpha": 1e-3, "early_stopping": True, **params}
    params.setdefault("max_iter", 300)
    return MLPRegressor(**params) if task is Task.REGRESSION else MLPClassifier(**params)


def _gbm(task: Task, params: dict[str, Any]) -> BaseEstimator:
    if task is Task.REGRESSION:
        return HistGradientBoostingRegressor(**params)
    model = HistGradientBoostingClassifier(**params)
    return MultiOutputClassifier(model) if task is Task.MULTILABEL else model


_BUILDERS: dict[str, _Builder] = {
    "logreg": _logreg,
    "svm": _svm,
    "ridge": _ridge,
    "knn": _knn,
    "mlp": _mlp,
    "gbm": _gbm,
}
HEADS = tuple(h.value for h in Head)
# Heads whose estimator takes `class_weight` (kNN and MLP do not).
_CLASS_WEIGHTS = ("logreg", "svm", "ridge", "gbm")
# Parameters that take a random_state, per head.
_SEEDED = ("logreg", "svm", "mlp", "gbm")


def make_head(
    name: str,
    task: Task | str = Task.BINARY,
    *,
    class_weight: str | dict[Any, float] | None = None,
    random_state: int | None = 0,
    **params: Any,
) -> BaseEstimator:
    """Build the head ``name`` for ``task``.

    Args:
        name: ``"logreg"`` (logistic regression), ``"svm"`` (linear SVM, calibrated
            probabilities), ``"ridge"``, ``"knn"`` (cosine kNN), ``"mlp"`` or ``"gbm"``
            (histogram gradient boosting).
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        class_weight: ``"balanced"`` or ``{label: weight}`` (classification heads that
            support it).
        random_state: Seed for heads that use one.
        **params: The estimator's own parameters, e.g. ``C`` (logreg, svm), ``alpha``
            (ridge, mlp), ``n_neighbors`` (knn), ``l2_regularization`` (gbm).

    Returns:
        An unfitted scikit-learn estimator.

    Raises:
        ValueError: For an unknown head, a head that cannot do ``task``, or class weights
            on a head or task without them.
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown head {name!r}. Valid values: {', '.join(HEADS)}.")
    task = parse_enum(Task, task, "task")
    if name == "logreg" and task is Task.REGRESSION:
        raise ValueError("logreg is a classifier; for regression use ridge, svm, knn, mlp or gbm.")
    if class_weight is not None:
        if name not in _CLASS_WEIGHTS or task is Task.REGRESSION:
            raise ValueError(
                f"Head {name!r} takes no class weights for {task.value} targets; use "
                f"{', '.join(_CLASS_WEIGHTS)} for classification."
            )
        params["class_weight"] = class_weight
    if name in _SEEDED:
        params.setdefault("random_state", random_state)
    try:
        return _BUILDERS[name](task, params)
    except TypeError as err:
        raise ValueError(f"Bad parameter for head {name!r}: {err}") from err


def search_space(name: str, task: Task | str = Task.BINARY) -> dict[str, list[Any]]:
    """The grid a hyperparameter search tries for head ``name``, keyed by parameter path.

    Raises:
        ValueError: For an unknown head.
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown head {name!r}. Valid values: {', '.join(HEADS)}.")
    task = parse_enum(Task, task, "task")
    # Multi-label wraps these heads in a one-vs-rest (or multi-output) estimator.
    wrapped = "estimator__" if task is Task.MULTILABEL and name not in ("knn", "mlp") else ""
    c_values = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
    if name == "logreg":
        return {f"{wrapped}C": c_values}
    if name == "svm":
        inner = "" if task is Task.REGRESSION else "estimator__"
        return {f"{wrapped}{inner}C": c_values[:6]}
    if name == "ridge":
        return {f"{wrapped}alpha": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]}
    if name == "knn":
        return {"n_neighbors": [5, 10, 20, 40], "weights": ["uniform", "distance"]}
    if name == "mlp":
        return {"alpha": [1e-4, 1e-3, 1e-2, 1e-1], "hidden_layer_sizes": [(128,), (256,)]}
    return {
        f"{wrapped}learning_rate": [0.05, 0.1],
        f"{wrapped}l2_regularization": [0.0, 1.0],
        f"{wrapped}max_leaf_nodes": [15, 31],
    }


class NeuralHead(BaseEstimator):
    """A head trained by :func:`featx.finetune`, run in numpy: ``ReLU`` layers, then logits.

    It is built from trained weights (``fit`` is not how it learns), so a fine-tuned model
    runs with no torch at all. Binary and multi-class heads give softmax probabilities,
    multi-label heads one sigmoid per label (a label is on at 0.5), regression the raw
    output.

    Args:
        task: The task the head was trained for.
        weights: Weight matrices (out, in), first layer first.
        biases: Bias vectors, one per weight matrix.
        classes: Class labels (classification) or label names (multi-label).
    """

    def __init__(
        self,
        task: str = "binary",
        weights: list[Any] | None = None,
        biases: list[Any] | None = None,
        classes: list[Any] | None = None,
    ) -> None:
        self.task = task
        self.weights = weights
        self.biases = biases
        self.classes = classes

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once it holds weights."""
        return bool(self.weights)

    @property
    def classes_(self) -> Any:
        """Class labels, as scikit-learn classifiers expose them."""
        return np.asarray(self.classes)

    def fit(self, X: Any, y: Any) -> NeuralHead:
        """Refuse: the head's weights come from fine-tuning."""
        raise NotImplementedError(
            "A NeuralHead is trained by featx.finetune (or `featx finetune`), not by fit()."
        )

    def decision_function(self, X: Any) -> Any:
        """The head's raw outputs (logits, or scores for regression)."""
        h = np.asarray(X, dtype=np.float32)
        layers = list(zip(self.weights or [], self.biases or [], strict=True))
        for i, (w, b) in enumerate(layers):
            h = h @ np.asarray(w, dtype=np.float32).T + np.asarray(b, dtype=np.float32)
            if i < len(layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (softmax), or per-label probabilities (sigmoid)."""
        if Task(self.task) is Task.REGRESSION:
            raise AttributeError("A regression head gives scores, not probabilities.")
        z = self.decision_function(X).astype(np.float64)
        if Task(self.task) is Task.MULTILABEL:
            return 1.0 / (1.0 + np.exp(-z))
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> Any:
        """Labels, a 0/1 label matrix (multi-label) or scores (regression)."""
        task = Task(self.task)
        if task is Task.REGRESSION:
            return self.decision_function(X)[:, 0].astype(np.float64)
        if task is Task.MULTILABEL:
            return (self.predict_proba(X) >= 0.5).astype(np.int64)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
