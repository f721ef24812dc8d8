"""The manifest (``featx.json``): what an artifact is and what it holds, as typed records.

A :class:`Kind` is an artifact's top capability: an ``encoder`` embeds texts, a
``predictor`` adds a head over texts, a ``tagger`` a named-entity tagger over words, a
``qa`` an extractive question answerer (all still embed). Each part has a frozen section:
:class:`EncoderSection`, :class:`HeadSection`, :class:`TaggerSection`, :class:`QASection`,
:class:`FinetuneSection`.

Format 2 (featx 0.2) writes ``kind`` and the sections under their own keys. Format 1
(featx 0.1) kept the encoder's keys at the top level and named the head ``predictor``;
it is still read, and written anew as format 2 whenever an artifact is rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from featx.artifact.sections import (
    HeadSection,
    QASection,
    TaggerSection,
)
from featx.config import Exporter, ModelSpec, Precision, parse_enum
from featx.errors import ModelLoadError

MANIFEST = "featx.json"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MEMBERS_DIR = "encoders"  # further encoders of a union or an ensemble: encoders/1, ...
TOKENIZER_FILE = "tokenizer.json"
PARITY_FILE = "parity.json"  # every graph against the reference, the gate, the choice
# The encoder's graph of each precision.
GRAPH_FILES = {
    Precision.FP32: "model.onnx",
    Precision.INT8: "model_int8.onnx",
    Precision.FP16: "model_fp16.onnx",
}
# The fast path's graphs, with the default pooled vector as the one output (exporter/fused.py).
POOLED_OUTPUT = "pooled"
FAST_GRAPH_FILES = {
    Precision.FP32: "model_fast.onnx",
    Precision.INT8: "model_fast_int8.onnx",
}


class Kind(str, Enum):
    """What an artifact is for (its top capability)."""

    ENCODER = "encoder"
    PREDICTOR = "predictor"
    TAGGER = "tagger"
    QA = "qa"


def _frozen(mapping: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class FileEntry:
    """A file's sha256 and size, as sealed."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class Origin:
    """Where the encoder came from.

    Attributes:
        name: The name it was exported under (an alias, hub id or folder).
        revision: The hub commit, or ``sha256:<prefix>`` of the weights file.
        hub_id: The hub id, when it came from the hub.
        path: The model folder it was exported from; relative paths are inside the
            artifact (a fine-tuned encoder keeps its Hugging Face folder under ``hf/``).
        finetuned_from: The model a fine-tuned encoder started from.
    """

    name: str
    revision: str
    hub_id: str | None = None
    path: str | None = None
    finetuned_from: str | None = None


@dataclass(frozen=True)
class Variant:
    """One ONNX graph of the encoder: its file and, for int8, how it was made."""

    file: str
    recipe: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EncoderSection:
    """The encoder's graphs, their parity with the torch reference, and the int8 gate.

    Attributes:
        opset: ONNX opset of the graphs.
        variants: The graph of each precision.
        default_precision: The graph used on CPU when none is asked for.
        parity: Figures per precision (min/mean cosine, max abs diff, ...).
        gate: The cosine thresholds int8 had to meet.
        exporter: What made the fp32 graph.
        outputs: Hidden state index -> output name where the graph lacks featx's
            ``hidden_state_<i>`` for every layer (a folder's own ONNX file). Empty: all.
        fast: The fast graph of each precision (the default pooled vector only),
            used when a call asks for just that. Empty: none (older artifacts, decoders).
    """

    opset: int
    variants: Mapping[Precision, Variant]
    default_precision: Precision
    parity: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    gate: Mapping[str, float] = field(default_factory=dict)
    exporter: Exporter = Exporter.TORCH
    outputs: Mapping[int, str] = field(default_factory=dict)
    fast: Mapping[Precision, Variant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        variants = {parse_enum(Precision, k, "precision"): v for k, v in self.variants.items()}
        object.__setattr__(self, "variants", _frozen(variants))
        default = parse_enum(Precision, self.default_precision, "default precision")
        if default not in variants:
            raise ValueError(f"The default precision {default.value} has no graph.")
        object.__setattr__(self, "default_precision", default)
        object.__setattr__(self, "parity", _frozen(self.parity))
        object.__setattr__(self, "gate", _frozen(self.gate))
        object.__setattr__(self, "exporter", parse_enum(Exporter, self.exporter, "exporter"))
        outputs = {int(k): str(v) for k, v in self.outputs.items()}
        object.__setattr__(self, "outputs", _frozen(outputs))
        fast = {parse_enum(Precision, k, "precision"): v for k, v in self.fast.items()}
        object.__setattr__(self, "fast", _frozen(fast))

    @property
    def precisions(self) -> list[str]:
        """The precisions this encoder has a graph for, sorted."""
        return sorted(p.value for p in self.variants)


@dataclass(frozen=True)
class FinetuneSection:
    """A fine-tuned encoder: its report, its Hugging Face folder and its dev gate.

    Attributes:
        report: The JSON report (settings, history, dev scores, timings).
        hf: The Hugging Face folder inside the artifact (further fine-tuning, torch).
        task: ``"tokens"`` for token fine-tuning; None for a sentence head.
        dev_gate: int8 against the fine-tuned torch model on dev (sentence heads).
    """

    report: str
    hf: str
    task: str | None = None
    dev_gate: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Manifest:
    """What an artifact is and holds, with the sha256 and size of every file.

    Attributes:
        kind: What the artifact is for.
        featx_version: The featx that wrote it.
        created: When (ISO 8601, UTC).
        source: Where the root encoder came from (None without one).
        model: How to feed the root encoder and pool its output.
        encoder: The root encoder's graphs (None for a head over an in-memory encoder).
        head: The trained head (predictors).
        tagger: The tagger (taggers).
        qa: The span head (question answerers).
        finetune: The fine-tuning of the root encoder, if it was fine-tuned.
        files: Every file but the manifest, by relative path.
    """

    kind: Kind
    featx_version: str
    created: str
    source: Origin | None = None
    model: ModelSpec | None = None
    encoder: EncoderSection | None = None
    head: HeadSection | None = None
    tagger: TaggerSection | None = None
    qa: QASection | None = None
    finetune: FinetuneSection | None = None
    files: Mapping[str, FileEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_enum(Kind, self.kind, "artifact kind"))
        object.__setattr__(self, "files", _frozen(self.files))
        if (self.model is None) != (self.encoder is None):
            raise ValueError("An encoder needs both its model spec and its graphs.")
        needs = {
            Kind.ENCODER: ("encoder",),
            Kind.PREDICTOR: ("head",),
            Kind.TAGGER: ("tagger", "encoder"),
            Kind.QA: ("qa", "encoder"),
        }[self.kind]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"A {self.kind.value} artifact needs its {missing[0]} section.")

    def with_files(self, files: Mapping[str, FileEntry]) -> Manifest:
        """A copy listing ``files``."""
        return replace(self, files=files)

    def trained_files(self) -> set[str]:
        """The files of the head or tagger (not of the root encoder)."""
        if self.qa is not None:
            return {self.qa.file, self.qa.metrics, *self.qa.graphs.values()}
        section = self.head or self.tagger
        return set() if section is None else {section.file, section.labels, section.metrics}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, format 2."""
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind.value,
            "featx_version": self.featx_version,
            "created": self.created,
        }
        if self.source is not None:
            out["source"] = _plain(self.source)
        if self.model is not None and self.encoder is not None:
            out["model"] = self.model.to_dict()
            out["encoder"] = _encoder_dict(self.encoder)
        for name in ("head", "tagger", "qa", "finetune"):
            section = getattr(self, name)
            if section is not None:
                out[name] = _plain(section)
        out["files"] = {name: _plain(entry) for name, entry in sorted(self.files.items())}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Read format 1 or 2.

        Raises:
            ModelLoadError: If a section is missing or malformed.
        """
        try:
            version = data.get("format_version")
            read = _from_v1 if version == 1 else _from_v2
            return read(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            what = f"{type(err).__name__}: {err}"
            raise ModelLoadError(f"The manifest is malformed ({what}).") from err


def _plain(section: Any) -> dict[str, Any]:
    """A section as JSON: None fields left out, tuples as lists, mappings as dicts."""
    out = {}
    for name in section.__dataclass_fields__:
        value = getattr(section, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = _thaw(value)
        out[name] = value
    return out


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k.value if isinstance(k, Enum) else k): _thaw(v) for k, v in value.items()}
    return value


def _encoder_dict(encoder: EncoderSection) -> dict[str, Any]:
    return {
        "opset": encoder.opset,
        "variants": _thaw({p: _plain(v) for p, v in encoder.variants.items()}),
        "default_precision": encoder.default_precision.value,
        "parity": _thaw(encoder.parity),
        "gate": _thaw(encoder.gate),
        "exporter": encoder.exporter.value,
        **({"outputs": _thaw(encoder.outputs)} if encoder.outputs else {}),
        **(
            {"fast": _thaw({p: _plain(v) for p, v in encoder.fast.items()})} if encoder.fast else {}
        ),
    }


def _encoder(data: Mapping[str, Any]) -> EncoderSection:
    return EncoderSection(
        opset=int(data["opset"]),
        variants={p: Variant(v["file"], v.get("recipe")) for p, v in data["variants"].items()},
        default_precision=data["default_precision"],
        parity=data.get("parity", {}),
        gate=data.get("gate", {}),
        exporter=data.get("exporter", Exporter.TORCH),
        outputs=data.get("outputs", {}),
        fast={p: Variant(v["file"], v.get("recipe")) for p, v in data.get("fast", {}).items()},
    )


def _common(data: Mapping[str, Any]) -> dict[str, Any]:
    """The parts both formats write alike."""
    source = data.get("source")
    return {
        "featx_version": str(data.get("featx_version", "unknown")),
        "created": str(data.get("created", "")),
        "source": None if source is None else Origin(**source),
        "model": None if "model" not in data else ModelSpec.from_dict(data["model"]),
        "files": {n: FileEntry(e["sha256"], int(e["bytes"])) for n, e in data["files"].items()},
    }


def _finetune(data: Mapping[str, Any] | None) -> FinetuneSection | None:
    return None if data is None else FinetuneSection(**data)


def _from_v2(data: Mapping[str, Any]) -> Manifest:
    head, tagger, qa = data.get("head"), data.get("tagger"), data.get("qa")
    return Manifest(
        kind=data["kind"],
        encoder=_encoder(data["encoder"]) if "encoder" in data else None,
        head=None if head is None else HeadSection(**head),
        tagger=None if tagger is None else TaggerSection(**tagger),
        qa=None if qa is None else QASection(**qa),
        finetune=_finetune(data.get("finetune")),
        **_common(data),
    )


def _from_v1(data: Mapping[str, Any]) -> Manifest:
    """Featx 0.1: the encoder's keys at the top level, the head under ``predictor``."""
    head = tagger = None
    if "predictor" in data:
        p = data["predictor"]
        head = HeadSection(
            task=p["task"],
            estimator=p["estimator"],
            file=p["head"],
            labels=p["labels"],
            metrics=p["metrics"],
            encoders=tuple(p["encoders"]),
        )
    if "tagger" in data:
        t = data["tagger"]
        tagger = TaggerSection(
            entity_types=tuple(t["entity_types"]),
            file=t["head"],
            labels=t["labels"],
            metrics=t["metrics"],
        )
    kind = Kind.TAGGER if tagger else Kind.PREDICTOR if head else Kind.ENCODER
    return Manifest(
        kind=kind,
        encoder=_encoder(data) if "variants" in data else None,
        head=head,
        tagger=tagger,
        finetune=_finetune(data.get("finetune")),
        **_common(data),
    )
