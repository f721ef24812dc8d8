"""SQuAD-format question answering data, checked before any work starts.

Two layouts are read: JSON Lines with the Hugging Face ``squad`` columns (one question per
line: ``id``, ``question``, ``context``, ``answers: {"text": [...], "answer_start":
[...]}``) and the official nested JSON (``{"data": [{"paragraphs": [{"context", "qas":
[...]}]}]}``). Every answer's ``answer_start`` must point at its text in the context;
an error names the file, the line (or the question id in nested JSON) and the fix.

Questions without an answer (SQuAD 2.0's ``is_impossible``) are refused: featx answers
every question with a span of its context, so a no-answer label would be trained as noise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A gold answer: its text and the character where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """The character after the answer."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class Question:
    """One question about one context, with its gold answers (none when unlabelled)."""

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...] = ()


def check_question(question: object, context: object, where: str) -> tuple[str, str]:
    """The question and context as strings, or ValueError saying what is wrong at ``where``."""
    for name, value in (("question", question), ("context", context)):
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name!r} must be a string, got {value!r:.60}.")
        if not value.strip():
            raise ValueError(f"{where}: the {name} is empty; every question needs both texts.")
    return question, context  # type: ignore[return-value]


def check_answers(context: str, answers: object, where: str) -> tuple[Answer, ...]:
    """Answers from the ``{"text": [...], "answer_start": [...]}`` layout, each checked.

    Raises:
        ValueError: If the layout is wrong or an answer's text is not at its offset.
    """
    if not isinstance(answers, dict) or not {"text", "answer_start"} <= answers.keys():
        raise ValueError(
            f'{where}: "answers" must be {{"text": [...], "answer_start": [...]}}, '
            f"got {answers!r:.80}."
        )
    texts, starts = answers["text"], answers["answer_start"]
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise ValueError(f'{where}: "text" and "answer_start" must be lists of the same length.')
    out = []
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: an answer text must be a non-empty string, got {text!r}.")
        if isinstance(start, bool) or not isinstance(start, int):
            raise ValueError(f"{where}: answer_start must be an integer, got {start!r}.")
        if not 0 <= start <= len(context) - len(text):
            raise ValueError(
                f"{where}: answer {text!r:.60} at answer_start {start} lies outside the "
                f"context ({len(context)} characters)."
            )
        if context[start : start + len(text)] != text:
            found = context.find(text)
            hint = f" (the text is at {found})" if found >= 0 else " (the text is not in it)"
            raise ValueError(
                f"{where}: answer {text!r:.60} is not at answer_start {start} of the "
                f"context{hint}: the offset counts characters of the context as given."
            )
        out.append(Answer(text, start))
    return tuple(out)


def read_squad(path: str | os.PathLike[str], *, labelled: bool = True) -> list[Question]:
    """Questions from a SQuAD JSONL or nested JSON file, every answer checked.

    Args:
        path: The file.
        labelled: Whether every question must have an answer (training and evaluation).

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: For a bad record, naming the file and the line or question id.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"No such file: {os.fspath(path)!r}.") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 ({err.reason} at byte {err.start}).") from err
    nested = _nested_data(text)
    records = list(_nested(path, nested) if nested is not None else _lines(path, text))
    if not records:
        raise ValueError(f"{path}: holds no question.")
    questions = [_question(path, where, raw, labelled) for where, raw in records]
    seen: dict[str, str] = {}
    for (where, _), q in zip(records, questions, strict=True):
        if q.id in seen:
            raise ValueError(f"{where}: question id {q.id!r} was used before ({seen[q.id]}).")
        seen[q.id] = where
    return questions


def _nested_data(text: str) -> dict[str, Any] | None:
    """The official nested layout, or None for JSON Lines (which fail to parse as one value)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("data"), list) else None


def _lines(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {line_no}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: invalid JSON ({err.msg} at column {err.colno}).") from err
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: each line must be a JSON object, got {raw!r:.60}.")
        yield where, raw


def _nested(path: Path, data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                where = f"{path}, data[{a}].paragraphs[{p}].qas[{q}] (id {qa.get('id')!r})"
                answers = qa.get("answers", [])
                yield (
                    where,
                    {
                        **qa,
                        "context": paragraph.get("context"),
                        "answers": {
                            "text": [x.get("text") for x in answers],
                            "answer_start": [x.get("answer_start") for x in answers],
                        },
                    },
                )


def _question(path: Path, where: str, raw: dict[str, Any], labelled: bool) -> Question:
    question, context = check_question(raw.get("question"), raw.get("context"), where)
    if raw.get("is_impossible"):
        raise ValueError(
            f"{where}: the question is marked is_impossible (SQuAD 2.0). featx answers every "
            "question with a span of its context; leave unanswerable questions out."
        )
    identifier = raw.get("id", where)
    answers = raw.get("answers")
    checked = () if answers is None else check_answers(context, answers, where)
    if labelled and not checked:
        raise ValueError(
            f"{where}: the question has no answer. Training and evaluation need one (SQuAD "
            "2.0 no-answer questions are not supported); leave it out."
        )
    return Question(str(identifier), question, context, checked)
