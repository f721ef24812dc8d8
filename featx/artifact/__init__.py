"""The artifact: one directory that holds a model, its typed manifest, verified reads.

:mod:`~featx.artifact.manifest` is the format (``featx.json``), :mod:`~featx.artifact.store`
reads and writes directories (checksums, staging, sealing, copying an encoder),
:mod:`~featx.artifact.describe` tells what an artifact holds (``featx info``), and
:mod:`~featx.artifact.estimators` saves and loads trained heads and taggers with skops
(imported on its own: it needs scikit-learn).
"""

from __future__ import annotations

from featx.artifact.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    EncoderSection,
    FileEntry,
    FinetuneSection,
    HeadSection,
    Kind,
    Manifest,
    Origin,
    QASection,
    TaggerSection,
    Variant,
)
from featx.artifact.store import Artifact, copy_encoder, is_artifact, seal, staging

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "Artifact",
    "EncoderSection",
    "FileEntry",
    "FinetuneSection",
    "HeadSection",
    "Kind",
    "Manifest",
    "Origin",
    "QASection",
    "TaggerSection",
    "Variant",
    "copy_encoder",
    "is_artifact",
    "seal",
    "staging",
]
