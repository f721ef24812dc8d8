"""Errors raised by featx.

Built-in exceptions are used where they fit (``ValueError`` for bad arguments,
``TypeError`` for wrong types, ``FileNotFoundError`` for missing paths,
``ImportError`` for a missing extra). featx's own tree is small::

    FeatxError
    ├── ModelLoadError        a model or artifact cannot be loaded
    │   └── ArtifactIntegrityError   a file is missing or its checksum does not match
    └── ExportError           exporting to ONNX failed or did not pass its parity check
"""

from __future__ import annotations


class FeatxError(Exception):
    """Base class of the errors featx raises itself."""


class ModelLoadError(FeatxError):
    """A model, model folder or artifact cannot be loaded."""


class ArtifactIntegrityError(ModelLoadError):
    """An artifact file is missing, unexpected or altered (sha256 mismatch)."""


class ExportError(FeatxError):
    """Exporting a model to ONNX failed, or the export did not match the reference."""


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's max length and were truncated."""
