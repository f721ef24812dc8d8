"""Encoders: the shared pipeline, the ONNX Runtime backend and the test encoder.

The torch backend lives in :mod:`featx.encoders.torch` and is imported on demand.
"""

from __future__ import annotations

from featx.encoders.base import Encoder, EncodeResult, TransformerEncoder
from featx.encoders.fake import HashEncoder
from featx.encoders.onnx import OnnxEncoder

__all__ = ["EncodeResult", "Encoder", "HashEncoder", "OnnxEncoder", "TransformerEncoder"]
