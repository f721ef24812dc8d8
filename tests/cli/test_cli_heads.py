import json

import pytest
from click.testing import CliRunner

from featx.cli import main

POSITIVE = ["a great movie", "i love it", "great fun", "the film was great", "love the cat"]
NEGATIVE = ["a terrible film", "i hate it", "a bad mess", "the movie was terrible", "hate the dog"]


def write_tsv(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture()
def sentiment(tmp_path):
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    return write_tsv(tmp_path / "train.tsv", ["text", "label"], rows * 2)


def run(args):
    result = CliRunner().invoke(main, args)
    return result


def round_trip(model, data, tmp_path, extra=()):
    out = str(tmp_path / "model")
    trained = run(
        [
            "train",
            "--data",
            data,
            "--dev",
            data,
            "-m",
            model,
            "--search",
            "grid",
            "--cv",
            "2",
            "--out",
            out,
            "--no-progress",
            *extra,
        ]
    )
    assert trained.exit_code == 0, trained.output
    assert "search: best accuracy" in trained.output and "saved binary model" in trained.output
    report = tmp_path / "report"
    evaluated = run(["evaluate", out, "--data", data, "--report", str(report)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy:" in evaluated.output and "macro_f1:" in evaluated.output
    assert "neg" in evaluated.output and "pos" in evaluated.output  # per-class rows
    for name in ("confusion_matrix.png", "calibration.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "report.html").read_text()
    assert '<img src="confusion_matrix.png"' in page and "accuracy" in page
    assert "![Confusion matrix](confusion_matrix.png)" in (report / "report.md").read_text()
    predicted = run(["predict", out, "--input", data])
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.output.splitlines()]
    assert len(rows) == 20 and set(rows[0]["probabilities"]) == {"neg", "pos"}
    return out, rows


def test_train_evaluate_predict_round_trip_on_a_tiny_model(tiny_artifacts, tmp_path, sentiment):
    extra = ["--layers", "all", "--combine", "concat", "--no-normalize", "--tfidf"]
    out, rows = round_trip(str(tiny_artifacts["bert"]), sentiment, tmp_path, extra)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)
    table = tmp_path / "pred.csv"
    lines = tmp_path / "new.txt"
    lines.write_text("a great movie\na terrible film\n")
    written = run(["predict", out, "--input", str(lines), "-o", str(table)])
    assert written.exit_code == 0, written.output
    assert table.read_text().splitlines()[0] == "index,label,p_neg,p_pos"
    bare = run(["predict", out, "--input", str(lines), "--no-proba"])
    assert [json.loads(x) for x in bare.output.splitlines()][0].keys() == {"index", "label"}
    shown = run(["info", out])
    assert "head:       LogisticRegression (binary: neg, pos)" in shown.output, shown.output
    embedded = run(["embed", str(lines), "-m", out])  # a trained model still embeds
    assert embedded.exit_code == 0 and len(embedded.output.splitlines()) == 2


@pytest.mark.real
def test_train_evaluate_predict_round_trip_on_the_real_model(real_artifact, tmp_path, sentiment):
    _, rows = round_trip(str(real_artifact), sentiment, tmp_path)
    labels = [r["label"] for r in rows]
    assert labels[:5] == ["pos"] * 5 and labels[5:10] == ["neg"] * 5


def test_pairs_regression_and_multilabel_from_the_cli(tiny_artifacts, tmp_path):
    model = str(tiny_artifacts["bert"])
    pairs = write_tsv(
        tmp_path / "pairs.tsv",
        ["sentence1", "sentence2", "score"],
        [
            (a, b, f"{(i % 5) * 1.25:.2f}")
            for i, (a, b) in enumerate(zip(POSITIVE, NEGATIVE, strict=True))
        ]
        * 3,
    )
    cols = ["--text-col", "sentence1", "--text-col", "sentence2", "--label-col", "score"]
    trained = run(
        [
            "train",
            "--data",
            pairs,
            *cols,
            "-m",
            model,
            "--head",
            "ridge",
            "--out",
            str(tmp_path / "sts"),
        ]
    )
    assert trained.exit_code == 0 and "saved regression model" in trained.output, trained.output
    evaluated = run(
        [
            "evaluate",
            str(tmp_path / "sts"),
            "--data",
            pairs,
            *cols,
            "--report",
            str(tmp_path / "sts-report"),
        ]
    )
    assert evaluated.exit_code == 0 and "spearman:" in evaluated.output, evaluated.output
    assert (tmp_path / "sts-report" / "residuals.png").is_file()
    scores = run(
        [
            "predict",
            str(tmp_path / "sts"),
            "--input",
            pairs,
            "--text-col",
            "sentence1",
            "--text-col",
            "sentence2",
        ]
    )
    assert isinstance(json.loads(scores.output.splitlines()[0])["score"], float)
    tags = write_tsv(
        tmp_path / "tags.tsv",
        ["text", "tags"],
        [(t, ["a", "b", "a,b"][i % 3]) for i, t in enumerate(POSITIVE + NEGATIVE)] * 2,
    )
    trained = run(
        [
            "train",
            "--data",
            tags,
            "--label-col",
            "tags",
            "--label-sep",
            ",",
            "-m",
            model,
            "--out",
            str(tmp_path / "tags"),
        ]
    )
    assert trained.exit_code == 0 and "saved multilabel model" in trained.output, trained.output
    evaluated = run(
        [
            "evaluate",
            str(tmp_path / "tags"),
            "--data",
            tags,
            "--label-col",
            "tags",
            "--report",
            str(tmp_path / "tags-report"),
        ]
    )
    assert evaluated.exit_code == 0 and "micro_f1:" in evaluated.output, evaluated.output
    predicted = run(["predict", str(tmp_path / "tags"), "--input", tags])
    assert isinstance(json.loads(predicted.output.splitlines()[0])["labels"], list)


def test_ensemble_from_the_cli(tiny_artifacts, tmp_path, sentiment):
    out = str(tmp_path / "ensemble")
    trained = run(
        [
            "train",
            "--data",
            sentiment,
            "-m",
            str(tiny_artifacts["bert"]),
            "-m",
            str(tiny_artifacts["roberta"]),
            "--head",
            "logreg",
            "--head",
            "svm",
            "--tfidf",
            "--ensemble",
            "stack",
            "--out",
            out,
        ]
    )
    assert trained.exit_code == 0, trained.output
    predicted = run(["predict", out, "--input", sentiment, "-o", str(tmp_path / "p.jsonl")])
    assert predicted.exit_code == 0 and "wrote 20 predictions" in predicted.output


def test_bad_input_is_explained(tiny_artifacts, tmp_path, sentiment):
    model = str(tiny_artifacts["bert"])
    one_class = write_tsv(tmp_path / "one.tsv", ["text", "label"], [(t, "pos") for t in POSITIVE])
    empty_text = write_tsv(tmp_path / "empty.tsv", ["text", "label"], [("", "a"), ("b", "c")])
    out = str(tmp_path / "m")
    cases = [
        (
            ["train", "--data", sentiment, "--label-col", "stars", "-m", model, "--out", out],
            "has no column 'stars'; columns: text, label",
        ),
        (["train", "--data", one_class, "-m", model, "--out", out], "one class only"),
        (
            ["train", "--data", empty_text, "-m", model, "--out", out],
            "empty.tsv, line 2: 'text' is empty or only whitespace",
        ),
        (
            ["train", "--data", sentiment, "-m", model, "--head", "tree", "--out", out],
            "Unknown head 'tree'",
        ),
        (
            ["train", "--data", sentiment, "-m", model, "--param", "C", "--out", out],
            "is not KEY=VALUE",
        ),
        (["evaluate", model, "--data", sentiment, "--no-report"], "has no head"),
    ]
    for args, message in cases:
        result = run(args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    ridge = str(tmp_path / "ridge")
    assert (
        run(
            ["train", "--data", sentiment, "-m", model, "--head", "ridge", "--out", ridge]
        ).exit_code
        == 0
    )
    refused = run(["predict", ridge, "--input", sentiment, "--proba"])
    assert refused.exit_code == 1 and "gives no probabilities" in refused.output
    plain = run(["predict", ridge, "--input", sentiment])  # no probabilities asked: fine
    assert plain.exit_code == 0 and "probabilities" not in plain.output
    again = run(["train", "--data", sentiment, "-m", model, "--out", ridge])
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.filterwarnings("default::featx.TruncationWarning")  # the long post is cut
def test_a_text_longer_than_the_csv_field_limit_reads_everywhere(tiny_artifacts, tmp_path):
    # Probed: one post of 158,651 characters made `featx evaluate` die on Python's csv
    # field limit (131,072) with a raw traceback; train, predict and embed read the same way.
    long_post = " ".join(["a long post about a great movie"] * 5200)
    assert len(long_post) > 131_072
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE] + [(long_post, "pos")]
    tsv = write_tsv(tmp_path / "long.tsv", ["text", "label"], rows)
    csv_file = tmp_path / "long.csv"
    csv_file.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    model = str(tmp_path / "model")
    trained = run(["train", "--data", tsv, "-m", str(tiny_artifacts["bert"]), "--out", model])
    assert trained.exit_code == 0, trained.output
    for data in (tsv, str(csv_file)):
        evaluated = run(["evaluate", model, "--data", data, "--no-report"])
        assert evaluated.exit_code == 0, evaluated.output
        predicted = run(["predict", model, "--input", data])
        assert predicted.exit_code == 0, predicted.output
        records = [line for line in predicted.output.splitlines() if line.startswith("{")]
        assert len(records) == len(rows)  # the output mixes in the truncation warning
        # ... which names the CLI's option, not the Python one
        assert "1 of 11 texts" in predicted.output and "--long-text chunk_mean" in predicted.output
        assert "long_text='chunk_mean'" not in predicted.output
    embedded = run(["embed", tsv, "-m", str(tiny_artifacts["bert"]), "-o", str(tmp_path / "v.npy")])
    assert embedded.exit_code == 0, embedded.output


def test_a_short_csv_record_names_its_line_in_the_file(tmp_path):
    from featx.io import read_columns

    bad = tmp_path / "bad.csv"
    # The first record spans lines 2-3 (a quoted newline); the short one is on line 4.
    bad.write_text('text,label\n"two\nlines",pos\nno label here\n')
    with pytest.raises(ValueError, match=r"bad.csv, line 4: fewer fields than the header"):
        read_columns(str(bad), ["text", "label"])


def test_the_per_class_table_keeps_whole_label_names():
    from featx.evaluation import summary

    name = "a label name longer than twenty characters"
    row = {"precision": 1.0, "recall": 0.5, "f1-score": 0.6667, "support": 2}
    text = summary({"accuracy": 0.5, "per_class": {name: row, "b": row}, "n": 4})
    assert name in text  # probed: cut at 20 characters
    header, first = text.splitlines()[1:3]
    # the columns still line up (right-aligned)
    assert header.index("precision") + len("precision") == first.index("1.0000") + len("1.0000")
