"""featx: pretrained Transformers as fast, cheap features.

Export a model once to ONNX, then embed on ONNX Runtime with no torch in the process::

    import featx
    encoder = featx.load("minilm")          # an alias, hub id, model folder or artifact
    vectors = encoder.encode(["A man is playing a guitar."])   # float32 (1, 384)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.api import cache_dir, load
from featx.config import LayerCombine, LongText, Pooling, Precision, Representation
from featx.encoders import Encoder, EncodeResult, HashEncoder, OnnxEncoder, TransformerEncoder
from featx.errors import (
    ArtifactIntegrityError,
    ExportError,
    FeatxError,
    ModelLoadError,
    TruncationWarning,
)

if TYPE_CHECKING:
    from featx.augment import Augmenter
    from featx.embedder import Embedder
    from featx.evaluation import Evaluation, evaluate
    from featx.exporter import ExportResult
    from featx.finetuning import Finetuned
    from featx.heads import Task, make_head
    from featx.predictor import Predictor
    from featx.tagging import Tagger, TokenEmbedder, train_ner
    from featx.training import build_pipeline, train

# Public names that need scikit-learn, imported on first use: module -> names.
_LAZY = {
    "featx.augment": ("Augmenter",),
    "featx.embedder": ("Embedder",),
    "featx.evaluation": ("Evaluation", "evaluate"),
    "featx.heads": ("Task", "make_head"),
    "featx.predictor": ("Predictor",),
    "featx.tagging": ("Tagger", "TokenEmbedder", "train_ner"),
    "featx.training": ("build_pipeline", "train"),
}


def export(
    model: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any
) -> ExportResult:
    """Export ``model`` to a featx artifact; see :func:`featx.exporter.export` for options.

    Needs the ``export`` extra (torch, transformers, onnx), imported only when called.
    """
    from featx.exporter import export as _export

    return _export(model, out, **options)


def finetune(
    model: str | os.PathLike[str], X: Any, y: Any, *, out: str | os.PathLike[str], **options: Any
) -> Finetuned:
    """Fine-tune ``model`` on texts and targets and save it as an artifact at ``out``.

    See :func:`featx.finetuning.finetune` for the options. Needs the ``export`` extra
    (torch, transformers, onnx), imported only when called.
    """
    from featx.finetuning import finetune as _finetune

    return _finetune(model, X, y, out=out, **options)


def __getattr__(name: str) -> Any:
    # scikit-learn takes ~0.5 s to import: only code that uses these names pays for it.
    import importlib

    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def models() -> dict[str, dict[str, Any]]:
    """The model registry: alias -> source, family, pooling, normalize, max_length."""
    from dataclasses import asdict

    from featx.sources import load_registry

    default, entries = load_registry()
    return {
        alias: {
            **asdict(e),
            "family": e.family.value,
            "pooling": e.pooling.value,
            "default": alias == default,
        }
        for alias, e in entries.items()
    }


__all__ = [
    "ArtifactIntegrityError",
    "Augmenter",
    "EncodeResult",
    "Embedder",
    "Encoder",
    "Evaluation",
    "ExportError",
    "FeatxError",
    "HashEncoder",
    "LayerCombine",
    "LongText",
    "ModelLoadError",
    "OnnxEncoder",
    "Pooling",
    "Precision",
    "Predictor",
    "Representation",
    "Tagger",
    "Task",
    "TokenEmbedder",
    "TransformerEncoder",
    "TruncationWarning",
    "__version__",
    "build_pipeline",
    "cache_dir",
    "evaluate",
    "export",
    "finetune",
    "load",
    "make_head",
    "models",
    "train",
    "train_ner",
]
