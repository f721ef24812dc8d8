"""featx: pretrained Transformers as fast, cheap features.

Export a model once to ONNX, then embed on ONNX Runtime with no torch in the process::

    import featx
    encoder = featx.load("minilm")          # an alias, hub id, model folder or artifact
    vectors = encoder.encode(["A man is playing a guitar."])   # float32 (1, 384)

The names below are the public API; everything else lives in its own module
(``featx.config``, ``featx.errors``, ``featx.heads``, ...). Names that need
scikit-learn or torch are imported on first use, so ``import featx`` stays light.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.api import load
from featx.config import Pooling
from featx.encoders import Encoder, HashEncoder, OnnxEncoder
from featx.errors import FeatxError, TruncationWarning
from featx.sources import models

if TYPE_CHECKING:
    from featx.embedder import Embedder
    from featx.evaluation import evaluate
    from featx.exporter import export
    from featx.finetuning import finetune
    from featx.predictor import Predictor
    from featx.tagging import Tagger, train_ner
    from featx.training import train

# Public names imported on first use (scikit-learn takes ~0.5 s to import): name -> module.
_LAZY = {
    "Embedder": "featx.embedder",
    "Predictor": "featx.predictor",
    "Tagger": "featx.tagging",
    "evaluate": "featx.evaluation",
    "export": "featx.exporter",
    "finetune": "featx.finetuning",
    "train": "featx.training",
    "train_ner": "featx.tagging",
}
# Names featx 0.1 exported from the root, now in their own modules (until featx 0.3).
_MOVED = {
    "ArtifactIntegrityError": "featx.errors",
    "ExportError": "featx.errors",
    "ModelLoadError": "featx.errors",
    "LayerCombine": "featx.config",
    "LongText": "featx.config",
    "Precision": "featx.config",
    "Representation": "featx.config",
    "Task": "featx.config",
    "EncodeResult": "featx.encoders",
    "TransformerEncoder": "featx.encoders",
    "Augmenter": "featx.augment",
    "Evaluation": "featx.evaluation",
    "TokenEmbedder": "featx.tagging",
    "build_pipeline": "featx.pipelines",
    "make_head": "featx.heads",
    "cache_dir": "featx.environment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MOVED:
        module = _MOVED[name]
        warnings.warn(
            f"featx.{name} moved to {module}.{name}; import it from there "
            "(the root name goes away in featx 0.3).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Embedder",
    "Encoder",
    "FeatxError",
    "HashEncoder",
    "OnnxEncoder",
    "Pooling",
    "Predictor",
    "Tagger",
    "TruncationWarning",
    "__version__",
    "evaluate",
    "export",
    "finetune",
    "load",
    "models",
    "train",
    "train_ner",
]
