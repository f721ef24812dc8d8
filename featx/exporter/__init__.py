"""Export a Hugging Face model to a featx artifact, behind a parity gate.

:mod:`~featx.exporter.pipeline` holds :func:`export` (checks, no torch needed to import
it), :mod:`~featx.exporter.steps` the steps that need the ``export`` extra,
:mod:`~featx.exporter.onnx` the torch -> ONNX graph, :mod:`~featx.exporter.quantize` the
int8 and fp16 variants, :mod:`~featx.exporter.calibration` and
:mod:`~featx.exporter.parity` the texts and figures of the gate,
:mod:`~featx.exporter.existing` a folder's own ONNX file (no torch) and
:mod:`~featx.exporter.assemble` the steps every exporter finishes with.
"""

from __future__ import annotations

from featx.exporter.pipeline import ExportResult, export

__all__ = ["ExportResult", "export"]
