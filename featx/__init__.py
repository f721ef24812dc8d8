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
    from featx.embedder import Embedder
    from featx.exporter import ExportResult


def export(
    model: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any
) -> ExportResult:
    """Export ``model`` to a featx artifact; see :func:`featx.exporter.export` for options.

    Needs the ``export`` extra (torch, transformers, onnx), imported only when called.
    """
    from featx.exporter import export as _export

    return _export(model, out, **options)


def __getattr__(name: str) -> Any:
    # scikit-learn takes ~0.5 s to import: only code that uses Embedder pays for it.
    if name == "Embedder":
        from featx.embedder import Embedder

        return Embedder
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
    "EncodeResult",
    "Embedder",
    "Encoder",
    "ExportError",
    "FeatxError",
    "HashEncoder",
    "LayerCombine",
    "LongText",
    "ModelLoadError",
    "OnnxEncoder",
    "Pooling",
    "Precision",
    "Representation",
    "TransformerEncoder",
    "TruncationWarning",
    "__version__",
    "cache_dir",
    "export",
    "load",
    "models",
]
