"""Train a predictor: build the pipeline, search hyperparameters, score on dev data.

:func:`build_pipeline` turns short names (models, heads, TF-IDF, an ensemble method)
into a scikit-learn estimator over texts; :func:`train` fits it, optionally with a grid
or random search over head and representation parameters (the embedding cache makes
every fold reuse one embedding pass), and returns a :class:`~featx.Predictor` that
carries its validation metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import (
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import check_scoring
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MultiLabelBinarizer, Normalizer, StandardScaler

from featx.embedder import Embedder
from featx.evaluation import evaluate
from featx.heads import Task, infer_task, make_head, search_space
from featx.predictor import Predictor, to_plain
from featx.text import check_texts

ENSEMBLES = ("soft", "stack")
SEARCHES = ("grid", "random")
# Heads that want standardised, unit-length features (linear models and the MLP).
_SCALED_HEADS = ("logreg", "svm", "ridge", "mlp")
# The poolings a representation search tries, each with the last layer, the last four
# layers and all layers (several layers are concatenated).
SEARCH_POOLINGS = ["mean", "cls", "max"]


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


def build_pipeline(
    model: str | Any | Sequence[str | Any] | None = None,
    head: str | BaseEstimator | Sequence[str | BaseEstimator] = "logreg",
    task: Task | str = Task.BINARY,
    *,
    tfidf: bool = False,
    ensemble: str | None = None,
    representation: dict[str, Any] | None = None,
    head_params: dict[str, Any] | None = None,
    class_weight: str | dict[Any, float] | None = None,
    cache: bool | str | None = True,
    precision: str | None = None,
    random_state: int | None = 0,
) -> BaseEstimator:
    """An unfitted estimator from texts to targets.

    Without ``ensemble``, every model (and TF-IDF, if asked) is one block of a feature
    union under one head. With ``ensemble="soft"`` or ``"stack"``, every (model, head)
    pair (and TF-IDF with the first head) is a member of a soft vote or a stack.

    Args:
        model: One or more artifacts/aliases/encoders; default: the default model.
        head: One or more head names (see :func:`featx.make_head`) or estimators.
        task: The target kind.
        tfidf: Add word uni- and bigram TF-IDF features.
        ensemble: ``None``, ``"soft"`` (average probabilities) or ``"stack"`` (a
            logistic regression, or ridge for regression, over the members' outputs).
        representation: Embedder options: pooling, normalize, layers, combine, long_text.
        head_params: Parameters for named heads, e.g. ``{"C": 0.5}``.
        class_weight: ``"balanced"`` or ``{label: weight}``.
        cache: The embedding cache (see :class:`~featx.Embedder`).
        precision: ``"fp32"`` or ``"int8"``; default: the artifact's.
        random_state: Seed for heads, folds and searches.

    Raises:
        ValueError: For an unknown ensemble method, or several heads without one.
    """
    task = Task(task)
    models = list(model) if isinstance(model, list | tuple) else [model]
    heads = list(head) if isinstance(head, list | tuple) else [head]
    if not models or not heads:
        raise ValueError("build_pipeline needs at least one model and one head.")
    if ensemble is not None and ensemble not in ENSEMBLES:
        raise ValueError(f"Unknown ensemble {ensemble!r}. Valid values: {', '.join(ENSEMBLES)}.")
    if ensemble is None and len(heads) > 1:
        raise ValueError("Several heads need an ensemble: pass ensemble='soft' or 'stack'.")

    def head_for(spec: str | BaseEstimator) -> BaseEstimator:
        if isinstance(spec, str):
            params = dict(head_params or {})
            return make_head(
                spec, task, class_weight=class_weight, random_state=random_state, **params
            )
        return clone(spec)

    def scaled(spec: str | BaseEstimator) -> bool:
        return isinstance(spec, str) and spec in _SCALED_HEADS

    def embed_block(source: Any, scale: bool) -> BaseEstimator:
        embedder = Embedder(
            _default_model() if source is None else source,
            cache=cache,
            precision=precision,
            **(representation or {}),
        )
        if not scale:
            return embedder
        # Standardise, then unit length: one regularisation grid fits every width.
        return Pipeline([("embed", embedder), ("scale", StandardScaler()), ("norm", Normalizer())])

    def member(sources: list[Any], with_tfidf: bool, spec: str | BaseEstimator) -> Pipeline:
        blocks = [(f"embed{i}", embed_block(s, scaled(spec))) for i, s in enumerate(sources)]
        if with_tfidf:
            blocks.append(("tfidf", _tfidf()))
        features = blocks[0][1] if len(blocks) == 1 else FeatureUnion(blocks)
        return Pipeline([("features", features), ("head", head_for(spec))])

    if ensemble is None:
        return member(models, tfidf, heads[0])
    members = [
        (f"m{i}", member([source], False, spec))
        for i, (source, spec) in enumerate((s, h) for s in models for h in heads)
    ]
    if tfidf:
        members.append(("tfidf", member([], True, heads[0])))
    if len(members) < 2:
        raise ValueError("An ensemble needs at least two members (models x heads, or tfidf).")
    regression = task is Task.REGRESSION
    if ensemble == "soft":
        if regression:
            return VotingRegressor(members)
        return VotingClassifier(members, voting="soft")
    if regression:
        return StackingRegressor(members, final_estimator=RidgeCV(), cv=5)
    return StackingClassifier(
        members, final_estimator=LogisticRegression(max_iter=2000), cv=5, stack_method="auto"
    )


def _tfidf() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def _default_model() -> str:
    from featx.sources import default_model

    return default_model()


def search_grid(
    estimator: BaseEstimator, head: str | None, task: Task, *, representation: bool = False
) -> dict[str, list[Any]]:
    """The parameter grid for ``estimator`` as :func:`build_pipeline` made it.

    Covers the named head's parameters and, with ``representation``, the pooling and
    layers of a single embedding block.

    Raises:
        ValueError: If the estimator is an ensemble, or representation search finds
            more than one embedding block.
    """
    if not isinstance(estimator, Pipeline) or "head" not in estimator.named_steps:
        raise ValueError("Search one head at a time: ensembles are not searched.")
    grid: dict[str, list[Any]] = {}
    if head is not None:
        grid.update({f"head__{k}": v for k, v in search_space(head, task).items()})
    if representation:
        found = [(p, v) for p, v in estimator.get_params().items() if isinstance(v, Embedder)]
        if len(found) != 1:
            raise ValueError("Representation search needs exactly one model.")
        path, embedder = found[0]
        n_layers = getattr(getattr(embedder._encoder(), "spec", None), "num_layers", None)
        if n_layers is None:
            raise ValueError("Representation search needs a Transformer model (an artifact).")
        last_four = tuple(range(-min(4, n_layers + 1), 0))
        grid[f"{path}__pooling"] = SEARCH_POOLINGS
        grid[f"{path}__layers"] = [-1, last_four, "all"]
        grid[f"{path}__combine"] = ["concat"]
    if not grid:
        raise ValueError("Nothing to search: name a head (e.g. 'logreg') or search_representation.")
    return grid


def train(
    X: Any,
    y: Any,
    *,
    estimator: BaseEstimator | None = None,
    model: str | Any | Sequence[str | Any] | None = None,
    head: str | BaseEstimator | Sequence[str | BaseEstimator] = "logreg",
    task: Task | str | None = None,
    search: str | None = None,
    search_representation: bool = False,
    param_grid: dict[str, list[Any]] | None = None,
    cv: int = 5,
    n_iter: int = 20,
    dev: tuple[Any, Any] | None = None,
    show_progress: bool | None = None,
    random_state: int | None = 0,
    augment: Any = None,
    **pipeline_options: Any,
) -> Predictor:
    """Fit a predictor on texts ``X`` and targets ``y``.

    Args:
        X: Texts, or two columns of text pairs.
        y: Class labels, numbers (regression), or a list of labels per text (multi-label).
        estimator: A ready estimator over texts; default: :func:`build_pipeline` of
            ``model``, ``head`` and ``pipeline_options``.
        model: Encoder(s) for the default pipeline.
        head: Head name(s) or estimator(s) for the default pipeline.
        task: The target kind; default: inferred from ``y``.
        search: ``None``, ``"grid"`` or ``"random"`` hyperparameter search with ``cv`` folds.
        search_representation: Also search pooling and layers.
        param_grid: The search space; default: the head's (and representation's).
        cv: Folds for the search.
        n_iter: Candidates a random search draws.
        dev: Held-out ``(X, y)``: its metrics are stored with the model.
        show_progress: A progress bar over search fits; default: on a terminal.
        random_state: Seed for heads, folds and the random search.
        augment: Add augmented copies of the training texts: method name(s) or an
            :class:`~featx.augment.Augmenter`. In a search, copies of a fold's held-out
            texts never train that fold, and only original texts are scored.
        **pipeline_options: More :func:`build_pipeline` options (``tfidf``, ``ensemble``,
            ``representation``, ``head_params``, ``class_weight``, ``cache``, ``precision``).

    Returns:
        The fitted :class:`~featx.Predictor`, with ``metrics`` holding the search's best
        cross-validation score and parameters, and the dev metrics.

    Raises:
        ValueError: For bad data (empty, mismatched lengths, one class) or options.
    """
    if search is not None and search not in SEARCHES:
        raise ValueError(f"Unknown search {search!r}. Valid values: {', '.join(SEARCHES)}.")
    n = len(X)
    if n != len(y):
        raise ValueError(f"X has {n} texts but y has {len(y)} labels.")
    target, task, labels = prepare_targets(y, task)
    _check_no_empty_texts(X)
    if pipeline_options.get("tfidf") and np.ndim(np.asarray(X, dtype=object)) == 2:
        raise ValueError("TF-IDF features take single texts, not sentence pairs.")
    if estimator is None:
        estimator = build_pipeline(model, head, task, random_state=random_state, **pipeline_options)
    elif pipeline_options:
        raise ValueError(f"Pass {', '.join(pipeline_options)} or estimator, not both.")
    metrics: dict[str, Any] = {"task": task.value, "n_train": n}
    rows = None
    if augment is not None:
        if np.ndim(np.asarray(X, dtype=object)) == 2:
            raise ValueError("Augmentation edits single texts, not sentence pairs.")
        from featx.augment import augmenter

        X, rows = augmenter(augment, seed=random_state or 0).expand(list(X))
        target = target[rows]
        metrics["augment"] = {"methods": str(augment), "n_added": len(rows) - n}
    if search is None:
        fitted = clone(estimator).fit(X, target)
    else:
        heads = list(head) if isinstance(head, list | tuple) else [head]
        head_name = heads[0] if len(heads) == 1 and isinstance(heads[0], str) else None
        grid = param_grid or search_grid(
            estimator, head_name, task, representation=search_representation
        )
        fitted, found = _search(
            estimator, grid, X, target, task, search, cv, n_iter, random_state, show_progress, rows
        )
        metrics["search"] = found
    if labels and task is not Task.MULTILABEL:
        labels = [to_plain(c) for c in fitted.classes_]
    predictor = Predictor(fitted, task, labels, metrics=metrics)
    if dev is not None:
        dev_X, dev_y = dev
        metrics["dev"] = evaluate(predictor, dev_X, dev_y).metrics
        predictor.metrics = metrics
    return predictor


def _check_no_empty_texts(X: Any) -> None:
    """Training texts must say something: an empty one is almost always a data error."""
    columns = np.asarray(X, dtype=object)
    for column in columns.reshape(len(columns), -1).T:
        texts = check_texts(column, "X")
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            raise ValueError(
                f"{len(empty)} training text(s) are empty (first at row {empty[0] + 1}); "
                "drop or fill them before training."
            )


def _search(
    estimator: BaseEstimator,
    grid: dict[str, list[Any]],
    X: Any,
    y: Any,
    task: Task,
    method: str,
    cv: int,
    n_iter: int,
    random_state: int | None,
    show_progress: bool | None,
    rows: Any = None,
) -> tuple[BaseEstimator, dict[str, Any]]:
    from tqdm.auto import tqdm

    from featx.encoders.base import _want_progress

    splitter: Any = (
        StratifiedKFold(cv, shuffle=True, random_state=random_state)
        if task.is_classification
        else KFold(cv, shuffle=True, random_state=random_state)
    )
    if rows is not None:  # augmented: split the originals, keep copies with their source
        from featx.augment import folds_without_leaks

        n = int(rows.max()) + 1
        splitter = folds_without_leaks(splitter.split(np.zeros(n), y[:n]), rows)
    scoring = {
        Task.BINARY: "accuracy",
        Task.MULTICLASS: "accuracy",
        Task.MULTILABEL: "f1_micro",
        Task.REGRESSION: "r2",
    }[task]
    n_candidates = int(np.prod([len(v) for v in grid.values()]))
    if method == "random":
        n_candidates = min(n_iter, n_candidates)
    bar = tqdm(
        total=n_candidates * cv,
        desc="search",
        unit="fit",
        disable=not _want_progress(show_progress, n_candidates * cv * 100),
    )
    scorer = _ProgressScorer(check_scoring(estimator, scoring=scoring), bar)
    common: dict[str, Any] = {"cv": splitter, "scoring": scorer, "refit": True, "n_jobs": 1}
    search: Any
    if method == "grid":
        search = GridSearchCV(estimator, grid, **common)
    else:
        search = RandomizedSearchCV(
            estimator, grid, n_iter=n_candidates, random_state=random_state, **common
        )
    with bar:
        search.fit(X, y)
    found = {
        "method": method,
        "cv": cv,
        "scoring": scoring,
        "n_candidates": n_candidates,
        "best_score": float(search.best_score_),
        "best_params": {k: to_plain(v) for k, v in search.best_params_.items()},
    }
    return search.best_estimator_, found


class _ProgressScorer:
    """A scorer that ticks a progress bar: one tick per fitted fold."""

    def __init__(self, scorer: Any, bar: Any) -> None:
        self.scorer = scorer
        self.bar = bar

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        score = self.scorer(estimator, X, y)
        self.bar.update(1)
        return float(score)
