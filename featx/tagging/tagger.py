"""Tagger: word features -> CRF, saved as one artifact; entities with character offsets.

A tagger is a :class:`~featx.tagging.features.TokenEmbedder` (frozen encoder word
vectors, neighbours, word shapes), a standardisation, and a
:class:`~featx.tagging.crf.LinearChainCRF` over IOB2 tags whose transitions forbid
invalid sequences. Saving copies the encoder artifact into the output (so the result
still embeds like a plain artifact), writes the embedder settings and the CRF with skops
(``tagger.skops``, no pickle), ``labels.json`` and ``metrics.json``, and seals the manifest.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from featx.artifact import Kind, TaggerSection
from featx.artifact.estimators import load, open_trained, write_trained
from featx.tagging.crf import LinearChainCRF, iob2_constraints
from featx.tagging.features import TokenEmbedder
from featx.tagging.tags import entities, entity_scores, parse_tag, tag_order

logger = logging.getLogger(__name__)


class Tagger:
    """A fitted named-entity tagger over an encoder's frozen word vectors.

    Args:
        embedder: The fitted feature extractor.
        crf: The fitted CRF over standardised features.
        labels: IOB2 tag names in the CRF's order.
        mean: Feature means (standardisation).
        scale: Feature standard deviations.
        metrics: Validation figures to keep with the model.
    """

    def __init__(
        self,
        embedder: TokenEmbedder,
        crf: LinearChainCRF,
        labels: Sequence[str],
        mean: NDArray[np.float32],
        scale: NDArray[np.float32],
        *,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.embedder = embedder
        self.crf = crf
        self.labels = list(labels)
        self.mean = mean
        self.scale = scale
        self.metrics = dict(metrics or {})

    def __repr__(self) -> str:
        return f"Tagger(entity_types={self.entity_types!r}, model={self.embedder.model!r})"

    @property
    def entity_types(self) -> list[str]:
        """The entity labels this tagger finds."""
        return sorted({t for t in (parse_tag(x)[1] for x in self.labels) if t})

    def _standardised(self, features: list[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        return [(x - self.mean) / self.scale for x in features]

    def _tag(self, X: Any) -> tuple[list[Any], list[NDArray[np.int64]], list[NDArray[Any]]]:
        words = self.embedder.words(X)
        features = self._standardised(self.embedder.features(words))
        return words, self.crf.predict(features), self.crf.predict_marginals(features)

    def predict_tags(self, X: Any) -> list[list[str]]:
        """IOB2 tags, one per word, for raw texts or pre-split word lists."""
        _, paths, _ = self._tag(X)
        return [[self.labels[i] for i in path] for path in paths]

    def predict(self, X: Any) -> list[list[dict[str, Any]]]:
        """Entities of each text, for raw texts or pre-split word lists.

        Each entity is a dict: ``text``, ``label``, ``start``/``end`` character offsets
        into the text (pre-split words: into the words joined by single spaces), the
        ``words`` it spans ``[first, last + 1]``, and ``score`` (the mean probability of
        its tags).
        """
        words, paths, marginals = self._tag(X)
        out = []
        for item, path, probs in zip(words, paths, marginals, strict=True):
            tags = [self.labels[i] for i in path]
            found = []
            for entity in entities(tags):
                start = int(item.spans[entity.start][0])
                end = int(item.spans[entity.end - 1][1])
                rows = np.arange(entity.start, entity.end)
                found.append(
                    {
                        "text": item.text[start:end],
                        "label": entity.label,
                        "start": start,
                        "end": end,
                        "words": [entity.start, entity.end],
                        "score": round(float(probs[rows, path[rows]].mean()), 4),
                    }
                )
            out.append(found)
        return out

    def evaluate(self, X: Any, y: Sequence[Sequence[str]]) -> dict[str, Any]:
        """Entity-level precision, recall and F1 (conlleval semantics) against IOB2 ``y``."""
        return entity_scores(list(y), self.predict_tags(X))

    def records(self, X: Any) -> list[dict[str, Any]]:
        """One JSON-ready record per text: its index, the text, and its entities.

        Pre-split words are shown joined by single spaces (the entities' offsets point there).
        """
        items = X if isinstance(X, list) else list(X)
        return [
            {
                "index": i,
                "text": item if isinstance(item, str) else " ".join(item),
                "entities": found,
            }
            for i, (item, found) in enumerate(zip(items, self.predict(items), strict=True))
        ]

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the tagger as one artifact directory at ``path`` (atomically).

        Raises:
            FileExistsError: If ``path`` exists and ``force`` is false.
            ValueError: If the tagger's encoder is not an artifact.
        """
        source = getattr(self.embedder.get_encoder(), "path", None)
        if source is None:
            raise ValueError("The tagger's encoder is not an artifact, so it cannot be saved.")
        embedder = copy.copy(self.embedder)
        embedder.model = "."
        return write_trained(
            path,
            force=force,
            members={Path(source).resolve(): "."},
            estimator={
                "embedder": embedder,
                "crf": self.crf,
                "mean": self.mean,
                "scale": self.scale,
            },
            labels={"labels": self.labels},
            metrics=self.metrics,
            section=TaggerSection(entity_types=tuple(self.entity_types)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trusted: Sequence[str] = ()) -> Tagger:
        """Load a tagger saved by :meth:`save`, checking every file it reads.

        Args:
            path: The artifact directory.
            trusted: Extra type names to trust in ``tagger.skops`` beyond featx's own.

        Raises:
            ModelLoadError: If the artifact is not a tagger or holds untrusted types.
            ArtifactIntegrityError: If a file does not match its checksum.
        """
        artifact = open_trained(path, Kind.TAGGER)
        section = artifact.manifest.tagger
        assert section is not None  # a tagger's manifest has its tagger section
        state = load(artifact.read(section.file), artifact.path / section.file, trusted)
        embedder = state["embedder"]
        embedder.model = str(artifact.path.resolve())
        labels = artifact.read_json(section.labels)["labels"]
        metrics = artifact.read_json(section.metrics)
        return cls(embedder, state["crf"], labels, state["mean"], state["scale"], metrics=metrics)


def fit_tagger(
    embedder: TokenEmbedder,
    X: Any,
    y: Sequence[Sequence[str]],
    *,
    c2: float,
    max_iter: int,
    features: list[NDArray[np.float32]] | None = None,
) -> Tagger:
    """Fit the CRF on ``embedder``'s features of ``X`` (or their ready ``features``)."""
    labels = tag_order(y)
    index = {tag: i for i, tag in enumerate(labels)}
    if features is None:
        features = embedder.fit().transform(X)
    stacked = np.concatenate(features)
    mean = stacked.mean(axis=0).astype(np.float32)
    scale = (stacked.std(axis=0) + 1e-6).astype(np.float32)
    del stacked
    allowed, allowed_start = iob2_constraints(labels)
    crf = LinearChainCRF(c2=c2, max_iter=max_iter, allowed=allowed, allowed_start=allowed_start)
    standardised = [(x - mean) / scale for x in features]
    with warnings.catch_warnings():
        # max_iter is a budget here (stopping early also regularises), not a failure.
        warnings.simplefilter("ignore", ConvergenceWarning)
        crf.fit(standardised, [np.asarray([index[t] for t in tags]) for tags in y])
    logger.info("CRF (c2=%s) trained in %d iterations", c2, crf.n_iter_)
    return Tagger(embedder, crf, labels, mean, scale)
