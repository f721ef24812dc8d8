"""Encoders: the interfaces, the shared pipelines, the ONNX Runtime backend, the test encoder.

The torch backend lives in :mod:`featx.encoders.torch` and is imported on demand.
"""

from __future__ import annotations

from featx.encoders.base import Encoder, EncodeResult
from featx.encoders.fake import HashEncoder
from featx.encoders.onnx import OnnxEncoder
from featx.encoders.transformer import TransformerEncoder

__all__ = ["EncodeResult", "Encoder", "HashEncoder", "OnnxEncoder", "TransformerEncoder"]
