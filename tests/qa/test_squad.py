"""Reading SQuAD data: both layouts, every answer checked, errors that say where and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featx.qa import Answer, Question, read_squad

CONTEXT = "The fox jumps over the lazy dog. The dog sleeps."


def _line(**fields: object) -> str:
    record = {
        "id": "q1",
        "question": "What jumps?",
        "context": CONTEXT,
        "answers": {"text": ["The fox"], "answer_start": [0]},
    }
    return json.dumps({**record, **fields})


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_and_nested_json_read_the_same_questions(tmp_path: Path) -> None:
    jsonl = _write(
        tmp_path,
        _line(),
        _line(
            id="q2",
            question="Who sleeps?",
            answers={"text": ["The dog", "dog"], "answer_start": [33, 37]},
        ),
    )
    nested = tmp_path / "official.json"
    qas = [
        {
            "id": "q1",
            "question": "What jumps?",
            "answers": [{"text": "The fox", "answer_start": 0}],
        },
        {
            "id": "q2",
            "question": "Who sleeps?",
            "answers": [
                {"text": "The dog", "answer_start": 33},
                {"text": "dog", "answer_start": 37},
            ],
        },
    ]
    data = {
        "version": "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": qas}]}],
    }
    nested.write_text(json.dumps(data), encoding="utf-8")
    expected = [
        Question("q1", "What jumps?", CONTEXT, (Answer("The fox", 0),)),
        Question("q2", "Who sleeps?", CONTEXT, (Answer("The dog", 33), Answer("dog", 37))),
    ]
    assert read_squad(jsonl) == expected
    assert read_squad(nested) == expected
    assert expected[1].answers[0].end == 40


def test_the_shared_sets_read_whole(shared_data) -> None:
    dev = read_squad(shared_data("squad", "dev.jsonl"))
    assert len(dev) == 10_570
    assert sum(len(q.answers) for q in dev) == 34_726
    assert all(q.context[a.start : a.end] == a.text for q in dev for a in q.answers)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"answers": {"text": ["The fox"], "answer_start": [4]}},
            "not at answer_start 4 of the context (the text is at 0)",
        ),
        ({"answers": {"text": ["a cat"], "answer_start": [0]}}, "the text is not in it"),
        ({"answers": {"text": ["The fox"], "answer_start": [900]}}, "lies outside the context"),
        ({"answers": {"text": [], "answer_start": []}}, "has no answer"),
        ({"answers": ["The fox"]}, '"answers" must be'),
        ({"question": "  "}, "the question is empty"),
        ({"context": None}, "'context' must be a string"),
        ({"is_impossible": True}, "is_impossible (SQuAD 2.0)"),
    ],
)
def test_a_bad_record_names_its_line_and_the_fix(tmp_path: Path, fields, message) -> None:
    path = _write(tmp_path, _line(id="ok"), _line(**fields))
    with pytest.raises(ValueError, match="line 2") as caught:
        read_squad(path)
    assert message in str(caught.value)


def test_a_bad_offset_in_nested_json_names_the_question(tmp_path: Path) -> None:
    qa = {"id": "abc", "question": "What?", "answers": [{"text": "fox", "answer_start": 1}]}
    data = {"data": [{"paragraphs": [{"context": CONTEXT, "qas": [qa]}]}]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id 'abc'\)"):
        read_squad(path)


def test_unlabelled_questions_read_for_prediction_only(tmp_path: Path) -> None:
    line = json.dumps({"id": "u", "question": "What jumps?", "context": CONTEXT})
    path = _write(tmp_path, line)
    assert read_squad(path, labelled=False)[0].answers == ()
    with pytest.raises(ValueError, match="has no answer"):
        read_squad(path)


def test_other_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        read_squad(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="line 2: invalid JSON"):
        read_squad(_write(tmp_path, _line(), "{not json"))
    with pytest.raises(ValueError, match="used before"):
        read_squad(_write(tmp_path, _line(), _line()))
    with pytest.raises(ValueError, match="holds no question"):
        read_squad(_write(tmp_path, ""))
