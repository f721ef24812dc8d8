"""Train a predictor: fit an estimator over texts, search hyperparameters, score dev data.

:func:`train` builds the estimator (:func:`featx.pipelines.build_pipeline`) or takes a
ready one, fits it, optionally with a grid or random search over head and
representation parameters (the embedding cache makes every fold reuse one embedding
pass), and returns a :class:`~featx.Predictor` that carries its validation metrics.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold

from featx import recipes
from featx.config import Recipe, Search, Task, parse_enum
from featx.embedder import Embedder
from featx.environment import progress_bar, want_progress
from featx.evaluation import evaluate
from featx.heads import prepare_targets
from featx.io import to_plain
from featx.pipelines import HeadSpec, PipelineOptions, build_pipeline, search_grid
from featx.predictor import Predictor
from featx.text import check_texts, refuse_empty

if TYPE_CHECKING:
    from typing import Unpack

# The score a search follows, per task.
SCORING = {
    Task.BINARY: "accuracy",
    Task.MULTICLASS: "accuracy",
    Task.MULTILABEL: "f1_micro",
    Task.REGRESSION: "r2",
}
# Searches of at least this many fits show a progress bar on a terminal.
_PROGRESS_MIN_FITS = 20


def train(
    X: Any,
    y: Any,
    *,
    estimator: BaseEstimator | None = None,
    model: str | Any | Sequence[str | Any] | None = None,
    head: HeadSpec | Sequence[HeadSpec] | None = None,
    task: Task | str | None = None,
    recipe: Recipe | str = Recipe.AUTO,
    search: Search | str | None = None,
    search_representation: bool = False,
    param_grid: dict[str, list[Any]] | None = None,
    cv: int = 5,
    n_iter: int = 20,
    dev: tuple[Any, Any] | None = None,
    augment: Any = None,
    seed: int | None = 0,
    show_progress: bool | None = None,
    **pipeline: Unpack[PipelineOptions],
) -> Predictor:
    """Fit a predictor on texts ``X`` and targets ``y``.

    Args:
        X: Texts, or two columns of text pairs.
        y: Class labels, numbers (regression), or a list of labels per text (multi-label).
        estimator: A ready estimator over texts; default: what
            :func:`~featx.pipelines.build_pipeline` makes of the options.
        model: Encoder(s) for the default pipeline; None: the default model.
        head: Head name(s) or estimator(s) for the default pipeline; None: logistic
            regression (ridge for regression), or what the ``"auto"`` recipe chooses.
        task: The target kind; default: inferred from ``y``.
        recipe: ``"auto"``: unless an estimator, head, search, TF-IDF, ensemble, head
            parameters or representation (but ``long_text``) is given, ``cv``-fold CV on
            ``X`` chooses among a few candidates (:mod:`featx.recipes`; the table in
            ``metrics["recipe"]``). ``"fast"``: embedding + logistic regression, one fit.
        search: ``None``, ``"grid"`` or ``"random"`` hyperparameter search with ``cv`` folds.
        search_representation: Also search pooling and layers.
        param_grid: The search space; default: the head's (and representation's).
        cv: Folds for the search.
        n_iter: Candidates a random search draws.
        dev: Held-out ``(X, y)``: its metrics are stored with the model.
        augment: Add augmented copies of the training texts: method name(s) or an
            :class:`~featx.augment.Augmenter`. In a search, copies of a fold's held-out
            texts never train that fold, and only original texts are scored.
        seed: Seed for heads, folds, the random search and augmentation.
        show_progress: A progress bar over search fits; default: on a terminal (log lines).
        **pipeline: :class:`~featx.pipelines.PipelineOptions` of the default pipeline:
            ``tfidf``, ``ensemble`` (``"soft"`` or ``"stack"``), ``representation``,
            ``head_params``, ``class_weight``, ``cache``, ``precision``.

    Returns:
        The fitted :class:`~featx.Predictor`; ``metrics`` hold the search's or recipe's
        findings and the dev metrics.

    Raises:
        ValueError: For bad data (empty, mismatched lengths, one class) or options.
    """
    method = None if search is None else parse_enum(Search, search, "search")
    tfidf = pipeline.get("tfidf", False)
    target, found_task, labels = _targets(X, y, task, tfidf=tfidf, augment=augment)
    chosen = estimator is not None or head is not None or method is not None
    auto = parse_enum(Recipe, recipe, "recipe") is Recipe.AUTO and not chosen
    auto = auto and not _shapes_pipeline(pipeline)
    head = head or ("ridge" if found_task is Task.REGRESSION else "logreg")
    estimator = _estimator(estimator, model, head, found_task, seed, pipeline)
    metrics: dict[str, Any] = {"task": found_task.value, "n_train": len(X)}
    X, target, rows = _augmented(X, target, augment, seed, metrics)
    searcher = _Searcher(method or Search.GRID, found_task, cv, n_iter, seed, show_progress)
    if method is not None:
        grid = param_grid or search_grid(
            estimator, head, found_task, representation=search_representation
        )
        fitted, metrics["search"] = _search(searcher, estimator, grid, X, target, rows)
    elif auto:
        fitted, metrics["recipe"] = _auto(
            X, target, found_task, estimator, searcher, rows, model, pipeline
        )
    else:
        fitted = clone(estimator).fit(X, target)
    return _predictor(fitted, found_task, labels, metrics, dev)


def _estimator(
    estimator: BaseEstimator | None,
    model: Any,
    head: Any,
    task: Task,
    seed: int | None,
    pipeline: PipelineOptions,
) -> BaseEstimator:
    """The estimator given, or the one :func:`build_pipeline` makes of the options."""
    if estimator is None:
        return build_pipeline(model, head, task, seed=seed, **pipeline)
    if pipeline:
        raise ValueError(f"Pass {', '.join(pipeline)} or estimator, not both.")
    return estimator


def _search(
    searcher: _Searcher,
    estimator: BaseEstimator,
    grid: dict[str, list[Any]],
    X: Any,
    y: Any,
    rows: Any,
) -> tuple[BaseEstimator, dict[str, Any]]:
    """The search's refitted best estimator and findings, every fold sharing embeddings."""
    with _shared_embeddings({"estimator": estimator}) as (shared, temporary):
        fitted, found = searcher.run(shared["estimator"], grid, X, y, rows)
        _forget_cache(fitted, temporary)
    return fitted, found


def _auto(
    X: Any,
    y: Any,
    task: Task,
    fast: BaseEstimator,
    searcher: _Searcher,
    rows: Any,
    model: Any,
    pipeline: PipelineOptions,
) -> tuple[BaseEstimator, dict[str, Any]]:
    """The auto recipe's choice, fitted, and its table; ``fast`` fitted where it cannot run.

    The candidates are scored on the search's folds (augmented copies stay with their
    originals).
    """
    why_not = recipes.auto_applies(X, task, model) or _too_few_per_class(y, searcher.cv)
    if why_not is not None:
        return clone(fast).fit(X, y), {"name": "fast", "why": why_not}
    with _shared_embeddings(dict(pipeline)) as (options, temporary):
        fitted, table = recipes.choose(
            X,
            y,
            task,
            folds=searcher.splitter(y, rows),
            scoring=check_scoring(fast, scoring=SCORING[task]),
            model=model,
            seed=searcher.seed,
            options=options,
        )
        _forget_cache(fitted, temporary)
    return fitted, table


def _shapes_pipeline(pipeline: PipelineOptions) -> bool:
    """Whether the options choose the pipeline's shape (then the auto recipe steps aside)."""
    representation = {k for k in pipeline.get("representation") or {} if k != "long_text"}
    return bool(
        pipeline.get("tfidf")
        or pipeline.get("ensemble")
        or pipeline.get("head_params")
        or representation
    )


def _too_few_per_class(target: Any, cv: int) -> str | None:
    """Why ``cv`` stratified folds cannot be made (None when they can)."""
    _, counts = np.unique(target, return_counts=True)
    if counts.min() < cv:
        return f"a class has {counts.min()} example(s), fewer than the {cv} folds"
    return None


@contextmanager
def _shared_embeddings(
    options: dict[str, Any],
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Without a cache, a search would embed every text once per fold and candidate.

    Yields ``options`` with a temporary cache file for the search, in ``options["cache"]``
    (pipeline options) or on every uncached Embedder of ``options["estimator"]``, and the
    file's path (None when everything was cached already). The file is deleted afterwards;
    :func:`_forget_cache` unhooks the fitted estimator from it.
    """
    estimator = options.get("estimator")
    if estimator is None:
        uncached = [] if options.get("cache", True) else ["cache"]
    else:
        params = estimator.get_params().items()
        uncached = [p for p, v in params if isinstance(v, Embedder) and not v.cache]
    if not uncached:
        yield options, None
        return
    with tempfile.TemporaryDirectory(prefix="featx-search-") as folder:
        path = str(Path(folder) / "embeddings.sqlite")
        if estimator is None:
            yield {**options, "cache": path}, path
        else:
            shared = clone(estimator).set_params(**{f"{p}__cache": path for p in uncached})
            yield {"estimator": shared}, path


def _forget_cache(fitted: BaseEstimator, path: str | None) -> None:
    """Unhook the fitted estimator's Embedders from a search's temporary cache file."""
    for value in fitted.get_params().values():
        if path is not None and isinstance(value, Embedder) and value.cache == path:
            value.__dict__.pop("cache_", None)
            value.cache = False


def _predictor(
    fitted: BaseEstimator,
    task: Task,
    labels: list[Any],
    metrics: dict[str, Any],
    dev: tuple[Any, Any] | None,
) -> Predictor:
    """The fitted estimator as a Predictor, labels in its order, scored on dev if given."""
    if labels and task is not Task.MULTILABEL:
        labels = [to_plain(c) for c in fitted.classes_]
    predictor = Predictor(fitted, task, labels, metrics=metrics)
    if dev is not None:
        predictor.metrics["dev"] = evaluate(predictor, *dev).metrics
    return predictor


def _augmented(
    X: Any, target: Any, augment: Any, seed: int | None, metrics: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Texts with their augmented copies, their targets and source rows (noted in metrics).

    Without ``augment``: the texts and targets as they are, and no rows.
    """
    if augment is None:
        return X, target, None
    from featx.augment import augmenter

    texts, rows = augmenter(augment, seed=seed or 0).expand(list(X))
    metrics["augment"] = {"methods": str(augment), "n_added": len(rows) - len(X)}
    return texts, target[rows], rows


def _targets(
    X: Any, y: Any, task: Task | str | None, *, tfidf: bool, augment: Any
) -> tuple[Any, Task, list[Any]]:
    """The targets, the task and the labels, once the texts are checked against them."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} texts but y has {len(y)} labels.")
    targets = prepare_targets(y, task)
    _check_no_empty_texts(X)
    pairs = np.ndim(np.asarray(X, dtype=object)) == 2
    if tfidf and pairs:
        raise ValueError("TF-IDF features take single texts, not sentence pairs.")
    if augment is not None and pairs:
        raise ValueError("Augmentation edits single texts, not sentence pairs.")
    return targets


def _check_no_empty_texts(X: Any) -> None:
    """Training texts must say something: an empty one is almost always a data error."""
    columns = np.asarray(X, dtype=object)
    if columns.ndim == 2:
        for j in range(columns.shape[1]):
            refuse_empty(check_texts(columns[:, j], f"X[:, {j}]"), f"X[:, {j}]")
    else:
        refuse_empty(check_texts(columns, "X"))


class _Searcher:
    """A cross-validated grid or random search with one progress tick per fitted fold."""

    def __init__(
        self,
        method: Search,
        task: Task,
        cv: int,
        n_iter: int,
        seed: int | None,
        show_progress: bool | None,
    ) -> None:
        self.method = method
        self.task = task
        self.cv = cv
        self.n_iter = n_iter
        self.seed = seed
        self.show_progress = show_progress

    def splitter(self, y: Any, rows: Any) -> Any:
        """The folds; augmented data splits the originals and keeps copies with them."""
        splitter: Any = (
            StratifiedKFold(self.cv, shuffle=True, random_state=self.seed)
            if self.task.is_classification
            else KFold(self.cv, shuffle=True, random_state=self.seed)
        )
        if rows is None:
            return splitter
        from featx.augment import folds_without_leaks

        n = int(rows.max()) + 1
        return folds_without_leaks(splitter.split(np.zeros(n), y[:n]), rows)

    def run(
        self, estimator: BaseEstimator, grid: dict[str, list[Any]], X: Any, y: Any, rows: Any
    ) -> tuple[BaseEstimator, dict[str, Any]]:
        """Search ``grid``; return the refitted best estimator and what was found."""
        scoring = SCORING[self.task]
        n_candidates = int(np.prod([len(v) for v in grid.values()]))
        if self.method is Search.RANDOM:
            n_candidates = min(self.n_iter, n_candidates)
        fits = n_candidates * self.cv
        show = want_progress(self.show_progress, items=fits, min_items=_PROGRESS_MIN_FITS)
        bar = progress_bar(show, fits, "search", unit="fit")
        scorer = _ProgressScorer(check_scoring(estimator, scoring=scoring), bar)
        common: dict[str, Any] = {
            "cv": self.splitter(y, rows),
            "scoring": scorer,
            "refit": True,
            "n_jobs": 1,
        }
        search: Any
        if self.method is Search.GRID:
            search = GridSearchCV(estimator, grid, **common)
        else:
            search = RandomizedSearchCV(
                estimator, grid, n_iter=n_candidates, random_state=self.seed, **common
            )
        try:
            search.fit(X, y)
        finally:
            bar.close()
        found = {
            "method": self.method.value,
            "cv": self.cv,
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
