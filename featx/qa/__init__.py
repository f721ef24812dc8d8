"""Extractive question answering: SQuAD data, windows, decoding, the metric, ``Answerer``.

``featx.qa.finetune(questions, out=...)`` fine-tunes an encoder with a span head and saves
a ``qa`` artifact (needs the ``export`` extra: it is imported on first use);
``featx.qa.Answerer.load(path).answer(question, context)`` answers on ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featx.qa.answerer import Answerer
from featx.qa.decode import Span
from featx.qa.metric import squad_scores
from featx.qa.squad import Answer, Question, read_squad

if TYPE_CHECKING:
    from featx.finetuning.spans import finetune_qa as finetune


def __getattr__(name: str) -> Any:
    if name == "finetune":  # torch: imported on first use, not with featx.qa
        return importlib.import_module("featx.finetuning.spans").finetune_qa
    raise AttributeError(f"module 'featx.qa' has no attribute {name!r}")


__all__ = ["Answer", "Answerer", "Question", "Span", "finetune", "read_squad", "squad_scores"]
