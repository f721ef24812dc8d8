"""What an export is asked to build, and what it built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx.config import Exporter

DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` built.

    Attributes:
        path: The artifact directory.
        default_precision: The graph used on CPU by default (``"int8"`` or ``"fp32"``).
        parity: Parity figures per precision (min/mean cosine, max abs diff).
        reason: Why the default precision was chosen.
    """

    path: Path
    default_precision: str
    parity: dict[str, dict[str, Any]]
    reason: str


@dataclass(frozen=True)
class ExportPlan:
    """What to build, checked: the steps read this and nothing else."""

    model: str | os.PathLike[str]
    out: Path
    quantize: bool
    fp16: bool
    probes: list[str]
    calibration: list[str]
    gate: dict[str, float]
    overrides: dict[str, Any]
    opset: int
    exporter: Exporter
    onnx_file: str | None
    force: bool
    show_progress: bool | None
