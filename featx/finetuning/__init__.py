"""Partial fine-tuning: train the head and the top layers, export back to a fast artifact.

:mod:`~featx.finetuning.sentence` holds :func:`finetune` (its checks need no torch),
:mod:`~featx.finetuning.runs` the runs of a search, :mod:`~featx.finetuning.trainer` the
training loop, :mod:`~featx.finetuning.model` the torch model, :mod:`~featx.finetuning.setup`
what every run starts from, :mod:`~featx.finetuning.export` and
:mod:`~featx.finetuning.gate` the way back to an artifact, and
:mod:`~featx.finetuning.tokens` fine-tuning for word tags. Training needs the ``export``
extra (torch, transformers, onnx); importing this package does not.
"""

from __future__ import annotations

from featx.finetuning.sentence import Finetuned, finetune
from featx.finetuning.settings import Settings

__all__ = ["Finetuned", "Settings", "finetune"]
