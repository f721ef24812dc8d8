"""Closed sets and records shared across featx modules.

Closed sets are ``str`` Enums: the plain string is accepted at the edges and converted
once with :func:`parse_enum`, which names the valid values on error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypedDict, TypeVar

E = TypeVar("E", bound=Enum)


class Pooling(str, Enum):
    """How token vectors become one text vector."""

    MEAN = "mean"
    CLS = "cls"
    MAX = "max"
    LAST = "last"
    WEIGHTED_MEAN = "weighted_mean"


class Family(str, Enum):
    """Model families featx knows how to feed (inputs, padding, default pooling)."""

    BERT = "bert"
    ROBERTA = "roberta"
    DISTILBERT = "distilbert"
    MODERNBERT = "modernbert"
    GPT2 = "gpt2"
    QWEN3 = "qwen3"

    @property
    def is_decoder(self) -> bool:
        """Causal models: their last token has read the whole text (last-token pooling)."""
        return self in (Family.GPT2, Family.QWEN3)


class LayerCombine(str, Enum):
    """How the hidden states of several layers are combined before pooling."""

    MEAN = "mean"
    SUM = "sum"
    CONCAT = "concat"


class LongText(str, Enum):
    """What to do with texts longer than the model's max length."""

    TRUNCATE = "truncate"
    CHUNK_MEAN = "chunk_mean"
    CHUNK_MAX = "chunk_max"


class Exporter(str, Enum):
    """Where an artifact's fp32 graph comes from."""

    TORCH = "torch"  # torch.onnx (TorchScript), featx's own wrapper: every family here
    OPTIMUM = "optimum"  # optimum's exporter with featx's hidden-state outputs
    EXISTING = "existing"  # the folder's own ONNX file (optimum, sentence-transformers); no torch


class Precision(str, Enum):
    """Numeric precision of an exported ONNX graph."""

    FP32 = "fp32"
    INT8 = "int8"
    FP16 = "fp16"


class Task(str, Enum):
    """What kind of target a head predicts."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        """Binary and multi-class tasks (one label per text)."""
        return self in (Task.BINARY, Task.MULTICLASS)


class Head(str, Enum):
    """The heads featx builds by name (see :func:`featx.heads.make_head`)."""

    LOGREG = "logreg"
    SVM = "svm"
    RIDGE = "ridge"
    KNN = "knn"
    MLP = "mlp"
    GBM = "gbm"


class Ensemble(str, Enum):
    """How the members of an ensemble are combined."""

    SOFT = "soft"  # average the members' probabilities (or predictions)
    STACK = "stack"  # a final model over the members' outputs


class Recipe(str, Enum):
    """How ``featx.train`` builds its estimator when none is chosen (see featx.recipes)."""

    AUTO = "auto"  # a few candidates scored by cross-validation, the best refit
    FAST = "fast"  # the model's embedding + logistic regression, one fit


class Search(str, Enum):
    """How a hyperparameter search draws its candidates."""

    GRID = "grid"
    RANDOM = "random"


class Autocast(str, Enum):
    """The autocast dtype of fine-tuning (not the exported graph's precision)."""

    AUTO = "auto"  # bf16 where the CPU has it (AVX512-BF16 or AMX), bf16 on a GPU
    BF16 = "bf16"
    FP16 = "fp16"  # GPUs only
    FP32 = "fp32"


def parse_enum(enum: type[E], value: object, what: str) -> E:
    """Convert a plain string (or an enum member) to ``enum``, naming valid values on error.

    Args:
        enum: The Enum class.
        value: A member of ``enum`` or its string value.
        what: What the value is, for the message (for example ``"pooling"``).

    Returns:
        The enum member.

    Raises:
        ValueError: If ``value`` is not one of the enum's values.
    """
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(repr(m.value) for m in enum)
        raise ValueError(f"Unknown {what} {value!r}. Valid values: {valid}.") from None


def _parse_layers(layers: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(layers, bool) or not isinstance(layers, int | Sequence):
        raise TypeError(f"layers must be an int or a sequence of ints, got {layers!r}.")
    out = (layers,) if isinstance(layers, int) else tuple(layers)
    if not out or not all(isinstance(i, int) and not isinstance(i, bool) for i in out):
        raise ValueError(f"layers must be one or more layer indices, got {layers!r}.")
    if len(set(out)) != len(out):
        raise ValueError(f"layers must not repeat a layer, got {layers!r}.")
    return out


class RepresentationOptions(TypedDict, total=False):
    """Keyword overrides of a :class:`Representation` (``encode(texts, pooling="cls")``)."""

    pooling: Pooling | str
    normalize: bool
    layers: int | Sequence[int]
    combine: LayerCombine | str
    long_text: LongText | str
    stride: int


@dataclass(frozen=True)
class Representation:
    """How hidden states become a text vector: the settings a cache key needs.

    Args:
        pooling: Pooling over tokens.
        normalize: L2-normalise the final vector.
        layers: Hidden-state layers to use; ``-1`` is the last layer, ``0`` the embedding
            layer output. Several layers are combined with ``combine``.
        combine: How several layers are combined (element-wise mean, or concatenation).
        long_text: Truncate over-long texts, or split them into overlapping windows and pool
            the window vectors (mean or max).
        stride: Tokens shared by consecutive windows in chunk mode.
    """

    pooling: Pooling = Pooling.MEAN
    normalize: bool = True
    layers: tuple[int, ...] = (-1,)
    combine: LayerCombine = LayerCombine.MEAN
    long_text: LongText = LongText.TRUNCATE
    stride: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "pooling", parse_enum(Pooling, self.pooling, "pooling"))
        object.__setattr__(self, "combine", parse_enum(LayerCombine, self.combine, "combine"))
        object.__setattr__(self, "long_text", parse_enum(LongText, self.long_text, "long_text"))
        object.__setattr__(self, "layers", _parse_layers(self.layers))
        if not isinstance(self.normalize, bool):
            raise TypeError(f"normalize must be True or False, got {self.normalize!r}.")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 0:
            raise ValueError(f"stride must be a non-negative int, got {self.stride!r}.")

    def updated(self, **changes: Any) -> Representation:
        """Return a copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "pooling": self.pooling.value,
            "normalize": self.normalize,
            "layers": list(self.layers),
            "combine": self.combine.value,
            "long_text": self.long_text.value,
            "stride": self.stride,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Representation:
        """Build from :meth:`to_dict` output."""
        fields: dict[str, Any] = {k: (tuple(v) if k == "layers" else v) for k, v in data.items()}
        return cls(**fields)


@dataclass(frozen=True)
class ModelSpec:
    """What featx needs to know to feed a model and pool its output.

    Args:
        family: The model family.
        max_length: Maximum tokens per window, special tokens included.
        dim: Width of one hidden state.
        num_layers: Number of Transformer layers (hidden states are ``num_layers + 1``).
        input_names: Graph inputs, in the order the model takes them.
        pad_id: Token id used for padding.
        fallback_id: Token fed for a text that tokenises to nothing (decoders without
            special tokens), so that every text gets a real vector.
        representation: Default pooling and normalisation (from the source model).
    """

    family: Family
    max_length: int
    dim: int
    num_layers: int
    input_names: tuple[str, ...]
    pad_id: int
    fallback_id: int
    representation: Representation = field(default_factory=Representation)

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", parse_enum(Family, self.family, "family"))
        object.__setattr__(self, "input_names", tuple(self.input_names))
        for name in ("max_length", "dim", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if "input_ids" not in self.input_names or "attention_mask" not in self.input_names:
            raise ValueError(
                f"input_names must include input_ids and attention_mask, got {self.input_names!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "family": self.family.value,
            "max_length": self.max_length,
            "dim": self.dim,
            "num_layers": self.num_layers,
            "input_names": list(self.input_names),
            "pad_id": self.pad_id,
            "fallback_id": self.fallback_id,
            "representation": self.representation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build from :meth:`to_dict` output."""
        data = dict(data)
        data["representation"] = Representation.from_dict(data["representation"])
        data["input_names"] = tuple(data["input_names"])
        return cls(**data)
