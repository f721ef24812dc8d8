"""The models a server serves: encoders (with their micro-batchers), heads, taggers, QA."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx.api import load
from featx.artifact import Artifact, Kind, is_artifact
from featx.encoders import EncodeResult
from featx.environment import available_cpus
from featx.sources import default_model

from .batching import MicroBatcher

logger = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One named model: its encoder, its head or tagger (if trained), how requests reach it."""

    name: str
    source: str
    encoder: Any
    predictor: Any  # a featx.Predictor for artifacts with a trained head, else None
    batcher: MicroBatcher | None
    timeout_s: float
    tagger: Any = None  # a featx.tagging.Tagger for named-entity taggers, else None
    answerer: Any = None  # a featx.qa.Answerer for question answerers, else None

    @property
    def dim(self) -> int:
        """Width of the embeddings."""
        return int(self.encoder.dim)

    @property
    def max_length(self) -> int:
        """Most tokens per window."""
        return int(self.encoder.max_length)

    def embed(self, texts: list[str], timeout: float | None = None) -> EncodeResult:
        """Embed through the micro-batcher (or directly when batching is off).

        Raises:
            Overloaded: If the batcher's queue has no room for ``texts``.
            TimeoutError: If the embeddings are not ready within the timeout.
        """
        if self.batcher is None:
            return self.encoder.encode_with_info(texts)
        return self.batcher.submit(texts, timeout=self.timeout_s if timeout is None else timeout)

    def describe(self) -> dict[str, Any]:
        """The model's entry in ``GET /v1/models``."""
        info: dict[str, Any] = {
            "id": self.name,
            "object": "model",
            "owned_by": "featx",
            "dim": self.dim,
            "max_length": self.max_length,
            "task": None,
            "labels": None,
            "entity_types": None,
        }
        if self.predictor is not None:
            info["task"] = self.predictor.task.value
            info["labels"] = self.predictor.labels
        if self.tagger is not None:
            info["task"] = "ner"
            info["labels"] = self.tagger.labels
            info["entity_types"] = self.tagger.entity_types
        if self.answerer is not None:
            info["task"] = "qa"
        return info


def load_models(config: dict[str, Any], metrics: Any) -> dict[str, ServedModel]:
    """Load every configured model once: name -> :class:`ServedModel`."""
    sources: dict[str, str] = dict(config["MODELS"] or {})
    if not sources:
        sources = {default_model(): default_model()}
    models = {}
    for name, source in sources.items():
        encoder = load(source, threads=config["ONNX_THREADS"], precision=config["PRECISION"])
        path = getattr(encoder, "path", None)
        artifact = Path(path) if path is not None and is_artifact(path) else None
        kind = Kind.ENCODER
        if artifact is not None:
            # Every file, not only the graph this precision reads: a damaged fp32 graph is
            # found at start, not when a client first asks for fp32.
            opened = Artifact.open(artifact)
            opened.verify_all()
            kind = opened.manifest.kind
        predictor = tagger = answerer = None
        if artifact is not None and kind is Kind.PREDICTOR:
            # Only a trained artifact pays for scikit-learn and skops (~350 MB, ~2.5 s).
            from featx.predictor import Predictor

            predictor = Predictor.load(artifact)
        if artifact is not None and kind is Kind.TAGGER:
            from featx.tagging import Tagger

            tagger = Tagger.load(artifact)
            # Tag with the encoder loaded above: one ONNX session per model, with the
            # configured threads and precision, instead of a second one of its own.
            tagger.embedder.model = encoder
        if artifact is not None and kind is Kind.QA:
            from featx.encoders.onnx import OnnxEncoder
            from featx.qa import Answerer

            assert isinstance(encoder, OnnxEncoder)  # an artifact loads on ONNX Runtime
            answerer = Answerer.load(artifact, encoder=encoder)  # the same ONNX session
        batcher = None
        if config["BATCHING"]:
            batcher = MicroBatcher(
                encoder.encode_with_info,
                max_texts=config["BATCH_MAX_TEXTS"],
                max_wait_s=config["BATCH_WAIT_MS"] / 1000,
                max_queue_texts=config["MAX_QUEUE_TEXTS"],
                runners=config["RUNNERS"] or available_cpus(),
                on_batch=metrics.observe_batch,
                on_queue=metrics.queue_depth.set,
            )
        models[name] = ServedModel(
            name,
            str(source),
            encoder,
            predictor,
            batcher,
            config["REQUEST_TIMEOUT_S"],
            tagger,
            answerer,
        )
        logger.info("serving %s from %s (dim %d)", name, source, encoder.dim)
    return models
