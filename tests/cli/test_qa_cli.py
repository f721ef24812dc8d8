"""Question answering from the shell: finetune-qa, predict, evaluate, info, and bad input."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from featx.cli import main

pytest.importorskip("torch")

COLOURS = ["red", "green", "blue", "black"]
THINGS = ["fox", "dog", "car", "film", "market"]


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _record(i: int) -> dict:
    colour, thing = COLOURS[i % 4], THINGS[i % 5]
    context = f"the quick {thing} is {colour} and the lazy dog is slow"
    start = context.index(" is ") + 4
    return {
        "id": f"q{i}",
        "question": f"what color is the {thing}?",
        "context": context,
        "answers": {"text": [colour], "answer_start": [start]},
    }


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def qa_model(tiny_model_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("qa-cli")
    train = _write(root / "train.jsonl", [_record(i) for i in range(40)])
    out = root / "qa"
    result = run([
        "finetune-qa", "-m", tiny_model_dirs["bert"], "--data", train, "--dev", train,
        "--dev-limit", "8", "--out", out, "--epochs", "30", "--lr", "1e-3", "--batch-size",
        "8", "--no-progress",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "trained on 40 windows of 40 questions" in result.output
    assert "int8 gate:" in result.output and f"wrote {out}" in result.output
    return out, train


def test_predict_answers_tables_and_squad_files(qa_model, tmp_path):
    model, train = qa_model
    rows = [("what color is the car?", "the quick car is green and the lazy dog is slow")]
    table = tmp_path / "in.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("q", "c"), *rows])
    result = run(["predict", model, "--input", table, "--text-col", "q", "--text-col", "c"])
    assert result.exit_code == 0, result.output
    (answer,) = [json.loads(line) for line in result.output.splitlines()]
    assert set(answer) == {"index", "answer", "score", "start", "end"}
    assert rows[0][1][answer["start"] : answer["end"]] == answer["answer"]
    result = run(["predict", model, "--input", train])  # question/context columns by default
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 40


def test_evaluate_prints_squad_scores_and_records(qa_model, tmp_path):
    model, train = qa_model
    result = run(["evaluate", model, "--data", train, "--json", "--records", tmp_path / "r.jsonl"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["n_questions"] == 40 and scores["f1"] >= 80.0
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(records) == 40 and {"id", "answer", "exact_match", "f1"} <= set(records[0])
    plain = run(["evaluate", model, "--data", train])
    assert "exact match" in plain.output and "official metric" in plain.output
    info = run(["info", model])
    assert "kind:       qa" in info.output and "qa:         span head" in info.output


def test_bad_input_gets_a_clear_error_not_a_traceback(qa_model, tmp_path):
    model, _ = qa_model
    bad_offset = _record(0)
    bad_offset["answers"]["answer_start"] = [999]
    data = _write(tmp_path / "bad.jsonl", [_record(1), bad_offset])
    result = run(["finetune-qa", "--data", data, "--out", tmp_path / "x"])
    assert result.exit_code != 0 and "line 2" in result.output
    assert "lies outside the context" in result.output and "Traceback" not in result.output
    no_context = tmp_path / "q.jsonl"
    no_context.write_text(json.dumps({"question": "why?"}) + "\n", encoding="utf-8")
    result = run(["predict", model, "--input", no_context])
    assert result.exit_code != 0 and "context" in result.output
    empty = tmp_path / "e.jsonl"
    empty.write_text(json.dumps({"question": " ", "context": "some text"}) + "\n")
    result = run(["predict", model, "--input", empty])
    assert result.exit_code != 0 and "line 1" in result.output
    result = run(["predict", model, "--input", empty, "--text-col", "question"])
    assert result.exit_code != 0 and "two columns" in result.output
    assert not (tmp_path / "x").exists()
