"""SQuAD v1.1's official metric: exact match and token F1, the best over gold answers.

This is ``evaluate-v1.1.py`` (Rajpurkar et al. 2016) line for line: both texts are
lower-cased, ASCII punctuation and the articles a/an/the are removed, whitespace is
collapsed; F1 is over the bag of whitespace tokens. A question without a prediction
scores 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

from featx.qa.squad import Question

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token F1 of the normalised texts (0.0 when no token is shared)."""
    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction: str, golds: Sequence[str]) -> dict[str, float]:
    """Exact match and F1 of one prediction: the best over the gold answers."""
    return {
        "exact_match": max(exact_match(prediction, g) for g in golds),
        "f1": max(f1(prediction, g) for g in golds),
    }


def squad_scores(predictions: Mapping[str, str], questions: Sequence[Question]) -> dict[str, float]:
    """Mean exact match and F1 (x100) over ``questions``, as the official script prints them.

    Raises:
        ValueError: If a question has no gold answer.
    """
    totals = {"exact_match": 0.0, "f1": 0.0}
    for q in questions:
        if not q.answers:
            raise ValueError(f"question {q.id!r} has no gold answer to score against.")
        if q.id not in predictions:
            continue
        for key, value in question_scores(predictions[q.id], [a.text for a in q.answers]).items():
            totals[key] += value
    n = max(len(questions), 1)
    return {"exact_match": 100 * totals["exact_match"] / n, "f1": 100 * totals["f1"] / n}
