"""Estimators over texts from short names: models, heads, TF-IDF, ensembles, search grids.

:func:`build_pipeline` turns names into an unfitted scikit-learn estimator over texts;
:func:`search_grid` gives the grid a search over it should try.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import (
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from featx.config import Ensemble, Task, parse_enum
from featx.embedder import Embedder
from featx.heads import make_head, search_space

if TYPE_CHECKING:
    from typing import Unpack

# Heads that want standardised, unit-length features (linear models and the MLP).
SCALED_HEADS = ("logreg", "svm", "ridge", "mlp")
# The poolings a representation search tries, each with the last layer, the last four
# layers and all layers (several layers are concatenated).
SEARCH_POOLINGS = ["mean", "cls", "max"]

HeadSpec: TypeAlias = str | BaseEstimator  # a head name, or an estimator


class PipelineOptions(TypedDict, total=False):
    """How :func:`build_pipeline` builds (and :func:`featx.train` asks it to build).

    Keys: ``tfidf`` (add word uni- and bigram TF-IDF features; default False),
    ``ensemble`` (``"soft"``: average probabilities; ``"stack"``: a logistic regression,
    or ridge for regression, over the members' outputs), ``representation`` (Embedder
    options: pooling, normalize, layers, combine, long_text), ``head_params``
    (parameters of named heads, e.g. ``{"C": 0.5}``), ``class_weight`` (``"balanced"`` or
    ``{label: weight}``), ``cache`` (the embedding cache, default True; see
    :class:`~featx.Embedder`), ``precision`` (the graph to embed with, ``"fp32"`` or
    ``"int8"``; default: the artifact's).
    """

    tfidf: bool
    ensemble: Ensemble | str | None
    representation: dict[str, Any] | None
    head_params: dict[str, Any] | None
    class_weight: str | dict[Any, float] | None
    cache: bool | str | None
    precision: str | None


class _Blocks:
    """Builds the parts of a pipeline with one set of options."""

    def __init__(self, task: Task, options: PipelineOptions, seed: int | None) -> None:
        self.task = task
        self.representation = options.get("representation") or {}
        self.head_params = options.get("head_params") or {}
        self.class_weight = options.get("class_weight")
        self.cache = options.get("cache", True)
        self.precision = options.get("precision")
        self.seed = seed

    def head(self, spec: HeadSpec) -> BaseEstimator:
        if isinstance(spec, str):
            return make_head(
                spec,
                self.task,
                class_weight=self.class_weight,
                random_state=self.seed,
                **self.head_params,
            )
        return clone(spec)

    def embed(self, source: Any, scale: bool) -> BaseEstimator:
        embedder = Embedder(
            source, cache=self.cache, precision=self.precision, **self.representation
        )
        if not scale:
            return embedder
        # Standardise, then unit length: one regularisation grid fits every width.
        return Pipeline([("embed", embedder), ("scale", StandardScaler()), ("norm", Normalizer())])

    def member(self, sources: list[Any], with_tfidf: bool, spec: HeadSpec) -> Pipeline:
        scale = isinstance(spec, str) and spec in SCALED_HEADS
        blocks = [(f"embed{i}", self.embed(s, scale)) for i, s in enumerate(sources)]
        if with_tfidf:
            blocks.append(("tfidf", tfidf_block()))
        features = blocks[0][1] if len(blocks) == 1 else FeatureUnion(blocks)
        return Pipeline([("features", features), ("head", self.head(spec))])


def build_pipeline(
    model: str | Any | Sequence[str | Any] | None = None,
    head: HeadSpec | Sequence[HeadSpec] = "logreg",
    task: Task | str = Task.BINARY,
    *,
    seed: int | None = 0,
    **options: Unpack[PipelineOptions],
) -> BaseEstimator:
    """An unfitted estimator from texts to targets.

    Without ``ensemble``, every model (and TF-IDF, if asked) is one block of a feature
    union under one head. With ``ensemble="soft"`` or ``"stack"``, every (model, head)
    pair (and TF-IDF with the first head) is a member of a soft vote or a stack.

    Args:
        model: One or more artifacts/aliases/encoders; None: the default model.
        head: One or more head names (see :func:`featx.heads.make_head`) or estimators.
        task: The target kind.
        seed: Seed for the heads.
        **options: :class:`PipelineOptions` (``tfidf``, ``ensemble``, ``representation``,
            ``head_params``, ``class_weight``, ``cache``, ``precision``).

    Raises:
        ValueError: For an unknown ensemble method, or several heads without one.
        TypeError: For an unknown option.
    """
    unknown = sorted(set(options) - set(PipelineOptions.__optional_keys__))
    if unknown:
        valid = ", ".join(sorted(PipelineOptions.__optional_keys__))
        raise TypeError(f"Unknown pipeline option(s) {unknown}. Valid: {valid}.")
    ensemble, tfidf = options.get("ensemble"), options.get("tfidf", False)
    task = Task(task)
    models = list(model) if isinstance(model, list | tuple) else [model]
    heads = list(head) if isinstance(head, list | tuple) else [head]
    if not models or not heads:
        raise ValueError("build_pipeline needs at least one model and one head.")
    method = None if ensemble is None else parse_enum(Ensemble, ensemble, "ensemble")
    if method is None and len(heads) > 1:
        raise ValueError("Several heads need an ensemble: pass ensemble='soft' or 'stack'.")
    blocks = _Blocks(task, options, seed)
    if method is None:
        return blocks.member(models, tfidf, heads[0])
    members = [
        (f"m{i}", blocks.member([source], False, spec))
        for i, (source, spec) in enumerate((s, h) for s in models for h in heads)
    ]
    if tfidf:
        members.append(("tfidf", blocks.member([], True, heads[0])))
    if len(members) < 2:
        raise ValueError("An ensemble needs at least two members (models x heads, or tfidf).")
    return _combined(members, method, task)


def tfidf_pipeline(
    task: Task | str = Task.BINARY,
    *,
    head: HeadSpec = "logreg",
    seed: int | None = 0,
    **options: Unpack[PipelineOptions],
) -> Pipeline:
    """Word 1-2 gram TF-IDF under one head: the lexical baseline, without an encoder."""
    return _Blocks(Task(task), options, seed).member([], True, head)


def _combined(members: list[tuple[str, Pipeline]], method: Ensemble, task: Task) -> BaseEstimator:
    regression = task is Task.REGRESSION
    if method is Ensemble.SOFT:
        return VotingRegressor(members) if regression else VotingClassifier(members, voting="soft")
    if regression:
        return StackingRegressor(members, final_estimator=RidgeCV(), cv=5)
    return StackingClassifier(
        members, final_estimator=LogisticRegression(max_iter=2000), cv=5, stack_method="auto"
    )


def tfidf_block() -> TfidfVectorizer:
    """Word uni- and bigram TF-IDF, the lexical member of unions and ensembles."""
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def search_grid(
    estimator: BaseEstimator,
    head: HeadSpec | Sequence[HeadSpec] | None,
    task: Task,
    *,
    representation: bool = False,
) -> dict[str, list[Any]]:
    """The parameter grid for ``estimator`` as :func:`build_pipeline` made it.

    Covers the named head's parameters and, with ``representation``, the pooling and
    layers of a single embedding block. For an ensemble (``head`` the names given to
    :func:`build_pipeline`), every member's head parameters, each over the middle four
    values of its head's grid (the product grows fast: a random search draws from it).

    Raises:
        ValueError: If representation search finds more than one embedding block, or
            there is nothing to search.
    """
    heads = list(head) if isinstance(head, list | tuple) else [head]
    members = getattr(estimator, "estimators", None)
    grid: dict[str, list[Any]] = {}
    if members is not None:
        if representation:
            raise ValueError("Representation search needs exactly one model, not an ensemble.")
        for i, (name, _) in enumerate(members):
            # Members are (model x head) in order, then TF-IDF with the first head.
            spec = heads[0] if name == "tfidf" else heads[i % len(heads)]
            if isinstance(spec, str):
                for key, values in search_space(spec, task).items():
                    middle = (len(values) - 4) // 2 if len(values) > 4 else 0
                    grid[f"{name}__head__{key}"] = values[middle : middle + 4]
    elif isinstance(estimator, Pipeline) and "head" in estimator.named_steps:
        if len(heads) == 1 and isinstance(heads[0], str):
            grid.update({f"head__{k}": v for k, v in search_space(heads[0], task).items()})
        if representation:
            grid.update(_representation_grid(estimator))
    if not grid:
        raise ValueError(
            "Nothing to search: name a head (e.g. 'logreg'), search_representation, or pass "
            "param_grid for your own estimator."
        )
    return grid


def _representation_grid(estimator: BaseEstimator) -> dict[str, list[Any]]:
    """Pooling and layers of the one embedding block of ``estimator``."""
    found = [(p, v) for p, v in estimator.get_params().items() if isinstance(v, Embedder)]
    if len(found) != 1:
        raise ValueError("Representation search needs exactly one model.")
    path, embedder = found[0]
    n_layers = getattr(getattr(embedder.get_encoder(), "spec", None), "num_layers", None)
    if n_layers is None:
        raise ValueError("Representation search needs a Transformer model (an artifact).")
    last_four = tuple(range(-min(4, n_layers + 1), 0))
    return {
        f"{path}__pooling": SEARCH_POOLINGS,
        f"{path}__layers": [-1, last_four, "all"],
        f"{path}__combine": ["concat"],
    }
