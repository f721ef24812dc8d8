"""The sections of a trained artifact's parts beside its encoder: head, tagger, span head.

Each is a frozen record of the part's files (all sealed in the manifest) and the settings
needed to use it; :mod:`featx.artifact.manifest` reads and writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Files of a trained artifact beside its encoder's.
HEAD_FILE = "head.skops"
TAGGER_FILE = "tagger.skops"
QA_HEAD_FILE = "qa_head.npz"
# A question answerer's own graphs: encoder + span head, start/end logits the one output.
QA_GRAPH_FILES = {"fp32": "qa.onnx", "int8": "qa_int8.onnx"}
QA_OUTPUT = "span_logits"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class HeadSection:
    """A trained head over texts (a predictor).

    Attributes:
        task: ``binary``, ``multiclass``, ``multilabel`` or ``regression``.
        estimator: The class name of the final estimator.
        file: The skops file of the fitted estimator.
        labels: The JSON file with the task and the label names.
        metrics: The JSON file with search and validation metrics.
        encoders: The folders of the encoders the estimator embeds with (``.`` is the root).
    """

    task: str
    estimator: str
    file: str = HEAD_FILE
    labels: str = LABELS_FILE
    metrics: str = METRICS_FILE
    encoders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoders", tuple(self.encoders))


@dataclass(frozen=True)
class TaggerSection:
    """A named-entity tagger over the root encoder's word vectors.

    Attributes:
        entity_types: The entity labels it finds.
        file: The skops file of the feature extractor and the CRF.
        labels: The JSON file with the IOB2 tags in the CRF's order.
        metrics: The JSON file with settings and dev scores.
    """

    entity_types: tuple[str, ...]
    file: str = TAGGER_FILE
    labels: str = LABELS_FILE
    metrics: str = METRICS_FILE

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity_types", tuple(self.entity_types))


@dataclass(frozen=True)
class QASection:
    """An extractive question answerer: a span head over the root encoder's last layer.

    Attributes:
        stride: Context pieces each window shares with the one before.
        max_question: Most pieces of a question (longer ones are cut).
        max_answer_length: Most pieces of an answer.
        file: The npz file of the span head (weight (dim, 2), bias (2,)), read without pickle.
        metrics: The JSON file with settings and dev scores.
        graphs: Precision -> the graph of encoder and span head in one (``span_logits``
            out), where built and checked; other precisions run the encoder's graph and
            the head in numpy.
    """

    stride: int
    max_question: int
    max_answer_length: int
    file: str = QA_HEAD_FILE
    metrics: str = METRICS_FILE
    graphs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "graphs", MappingProxyType(dict(self.graphs)))
