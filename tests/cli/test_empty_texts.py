"""One policy for empty texts everywhere: refused, naming the file and line; --drop-empty drops.

Found as a new user: train refused empty texts with "row 48" (line 49 of the file) and no
way to drop them, while evaluate and predict embedded them silently (all 215 empty test
texts got one label).
"""

import json

import pytest
from click.testing import CliRunner

import featx
from featx import HashEncoder
from featx.cli import main
from featx.errors import DroppedRecordsWarning
from featx.io import read_labelled, read_texts

POSITIVE = ["a great movie", "i love it", "great fun", "the film was great", "love the cat"]
NEGATIVE = ["a terrible film", "i hate it", "a bad mess", "the movie was terrible", "hate the dog"]
ROWS = [(t, "pos") for t in POSITIVE] * 2 + [(t, "neg") for t in NEGATIVE] * 2


def run(args):
    return CliRunner().invoke(main, args)


@pytest.fixture()
def with_empty(tmp_path):
    """A TSV whose records 4 and 9 (lines 5 and 10) have no text."""
    rows = list(ROWS)
    rows[3] = ("", "pos")
    rows[8] = ("   ", "neg")
    path = tmp_path / "data.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return str(path)


def test_every_command_refuses_an_empty_text_naming_file_and_line(
    tiny_artifacts, tmp_path, with_empty
):
    model = str(tiny_artifacts["bert"])
    clean = tmp_path / "clean.tsv"
    clean.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS))
    trained = str(tmp_path / "model")
    result = run(["train", "--data", str(clean), "-m", model, "--recipe", "fast", "--out", trained])
    assert result.exit_code == 0, result.output
    commands = [
        ["train", "--data", with_empty, "-m", model, "--out", str(tmp_path / "m2")],
        ["evaluate", trained, "--data", with_empty, "--no-report"],
        ["predict", trained, "--input", with_empty],
        ["embed", with_empty, "-m", model, "-o", str(tmp_path / "v.npy")],
    ]
    for args in commands:
        result = run(args)
        assert result.exit_code == 1, (args, result.output)
        assert "data.tsv, line 5: 'text' is empty or only whitespace" in result.output, args
        assert "(2 such record(s) in all)" in result.output and "--drop-empty" in result.output
    # --drop-empty: the same commands work on the 18 other records and say what was dropped.
    dropped = "dropped 2 record(s) with an empty text (the first at line 5)"
    for args in commands:
        result = run([*args, "--drop-empty"])
        assert result.exit_code == 0, (args, result.output)
        assert dropped in result.output, args
    lines = run(["predict", trained, "--input", with_empty, "--drop-empty"]).stdout.splitlines()
    assert len(lines) == 18 and json.loads(lines[-1])["index"] == 17


def test_line_numbers_count_file_lines_across_quoted_multi_line_records(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('text,label\n"two\nlines",a\n"",b\n')
    with pytest.raises(ValueError, match=r"data.csv, line 4: 'text' is empty"):
        read_labelled(str(path), ["text"], "label")
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "a"}\n\n{"text": " "}\n')
    with pytest.raises(ValueError, match=r"data.jsonl, line 3: 'text' is empty"):
        read_texts(str(jsonl), column="text")
    lines = tmp_path / "data.txt"
    lines.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match=r"data.txt, line 2: 'text' is empty"):
        read_texts(str(lines))
    with pytest.warns(DroppedRecordsWarning, match="dropped 1 record"):
        assert read_texts(str(lines), drop_empty=True) == ["a", "b"]


def test_python_train_and_predict_refuse_empty_texts_alike():
    texts = [t for t, _ in ROWS]
    labels = [y for _, y in ROWS]
    with pytest.raises(ValueError, match=r"X\[3\] is empty or only whitespace \(1 such"):
        featx.train([*texts[:3], " ", *texts[4:]], labels, model=HashEncoder(8), cache=False)
    model = featx.train(texts, labels, model=HashEncoder(8), recipe="fast", cache=False)
    for call in (model.predict, model.predict_proba, model.records):
        with pytest.raises(ValueError, match=r"X\[1\] is empty or only whitespace"):
            call(["a great movie", "\t"])
    with pytest.raises(ValueError, match=r"X\[1\] is empty"):
        featx.evaluate(model, ["a great movie", ""], ["pos", "neg"])
