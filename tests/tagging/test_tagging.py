"""Named-entity tagging end to end: features, CRF tagger, artifacts, fine-tuning, CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.errors import ModelLoadError
from featx.tagging import Tagger, TokenEmbedder, read_sentences, train_ner
from featx.tagging.features import SHAPES, with_context, word_shapes
from featx.tagging.tags import entities

WORDS = "the a cat dog man woman guitar food market movie film stock text model".split()


def synthetic(n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences where capitalised runs are PER and a capitalised word after 'at' is LOC."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(rng.integers(3, 9))):
            word = str(rng.choice(WORDS))
            if rng.random() < 0.3 and words and words[-1] != "at":
                words += [word.capitalize(), str(rng.choice(WORDS)).capitalize()]
                tags += ["B-PER", "I-PER"]
            elif rng.random() < 0.15:
                words += ["at", word.capitalize()]
                tags += ["O", "B-LOC"]
            else:
                words.append(word)
                tags.append("O")
        X.append(words)
        y.append(tags)
    return X, y


@pytest.fixture(scope="module")
def tiny_tagger(tiny_artifacts, tmp_path_factory):
    X, y = synthetic(120)
    X_dev, y_dev = synthetic(40, seed=1)
    out = tmp_path_factory.mktemp("taggers") / "tiny"
    tagger = train_ner(
        X, y, model=tiny_artifacts["bert"], dev=(X_dev, y_dev), out=out, c2=[1.0, 10.0]
    )
    return out, tagger


@pytest.fixture(scope="module")
def conll_files(tmp_path_factory, shared_data):
    """The first CoNLL-2003 sentences, as small train/dev/test files."""
    root = tmp_path_factory.mktemp("conll")
    for split, n in (("train", 300), ("dev", 120), ("test", 120)):
        blocks = (
            shared_data("conll2003", f"{split}.txt").read_text(encoding="utf-8").split("\n\n")[:n]
        )
        (root / f"{split}.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return root


def test_word_shapes_and_context():
    shapes = word_shapes(["EU", "rejects", "German", "1,000", "-", "McDonald"])
    flags = {name: shapes[:, i].tolist() for i, name in enumerate(SHAPES)}
    assert flags["all_caps"] == [1, 0, 0, 0, 0, 0]
    assert flags["cap_not_first"] == [0, 0, 1, 0, 0, 1]
    assert flags["has_digit"] == [0, 0, 0, 1, 0, 0]
    assert flags["punctuation"] == [0, 0, 0, 0, 1, 0]
    assert flags["mixed_case"] == [0, 0, 0, 0, 0, 1]
    assert flags["first_word"] == [1, 0, 0, 0, 0, 0] and flags["last_word"][-1] == 1
    v = np.arange(6, dtype=np.float32).reshape(3, 2)
    ctx = with_context(v, 1)
    np.testing.assert_array_equal(ctx[1], [2, 3, 0, 1, 4, 5])
    np.testing.assert_array_equal(ctx[0], [0, 1, 0, 0, 2, 3])
    np.testing.assert_array_equal(with_context(v[:1], 2)[0], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0])


def test_token_embedder_rows_per_word(tiny_artifacts):
    embedder = TokenEmbedder(tiny_artifacts["bert"], layers=(1, 2), context=1).fit()
    encoder = featx.load(tiny_artifacts["bert"])
    features = embedder.transform([["The", "cat"], ["a", "Dog", "eats", "food"]])
    assert [f.shape for f in features] == [(2, embedder.n_features), (4, embedder.n_features)]
    assert embedder.n_features == 32 * 3 + len(SHAPES)
    same_batch = [["The", "cat"], ["a", "Dog", "eats", "food"]]  # int8 scales per batch
    vectors = encoder.encode_tokens(same_batch, layers=(1, 2))[1].vectors
    np.testing.assert_allclose(features[1][:, :32], vectors, atol=1e-5)
    np.testing.assert_allclose(features[1][1, 32:64], vectors[0], atol=1e-5)  # left neighbour
    raw = embedder.transform(["a Dog eats food."])[0]
    assert raw.shape == (5, embedder.n_features)  # the full stop is a word
    with pytest.raises(ValueError, match="context"):
        TokenEmbedder(tiny_artifacts["bert"], context=-1).fit()


def test_tagger_learns_saves_and_loads(tiny_tagger):
    out, tagger = tiny_tagger
    assert tagger.entity_types == ["LOC", "PER"]
    assert tagger.metrics["dev"]["micro"]["f1"] > 0.9
    assert [s["c2"] for s in tagger.metrics["search"]] == [1.0, 10.0]
    loaded = Tagger.load(out)
    X, _ = synthetic(20, seed=2)
    assert loaded.predict_tags(X) == tagger.predict_tags(X)
    # The tagger artifact still embeds like a plain encoder artifact.
    assert featx.load(out).encode(["a cat"]).shape == (1, 32)
    manifest = json.loads((out / "featx.json").read_text())
    assert manifest["tagger"]["entity_types"] == ["LOC", "PER"]


def test_entities_have_offsets_into_the_text(tiny_tagger):
    _, tagger = tiny_tagger
    texts = ["the Cat Dog eats food at Market.", "", "a man at  Guitar!"]
    results = tagger.predict(texts)
    assert results[1] == []
    for text, found in zip(texts, results, strict=True):
        for entity in found:
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert 0.0 <= entity["score"] <= 1.0
    assert {(e["text"], e["label"]) for e in results[0]} == {("Cat Dog", "PER"), ("Market", "LOC")}
    assert [(e["text"], e["label"]) for e in results[2]] == [("Guitar", "LOC")]
    words = tagger.predict([["the", "Cat", "Dog"]])[0]
    assert words == [
        {
            "text": "Cat Dog",
            "label": "PER",
            "start": 4,
            "end": 11,
            "words": [1, 3],
            "score": words[0]["score"],
        }
    ]


def test_train_ner_errors_say_what_to_fix(tiny_artifacts, tmp_path):
    model = tiny_artifacts["bert"]
    with pytest.raises(ValueError, match="Sentence 1 has 2 words but 1 tags"):
        train_ner([["a"], ["a", "b"]], [["O"], ["O"]], model=model)
    with pytest.raises(ValueError, match="Sentence 0 is empty"):
        train_ner([[]], [[]], model=model)
    with pytest.raises(ValueError, match="dev set"):
        train_ner([["A"]], [["B-PER"]], model=model, c2=[1, 10])
    with pytest.raises(ValueError, match="give out="):
        train_ner([["A"]], [["B-PER"]], model=model, train_layers=1)
    with pytest.raises(ValueError, match="train_layers > 0"):
        train_ner([["A"]], [["B-PER"]], model=model, epochs=2)
    with pytest.raises(ValueError, match="mixed tag schemes|BIOES"):
        train_ner([["A", "b"]], [["S-PER", "I-PER"]], model=model)
    with pytest.raises(ModelLoadError, match="not a tagger"):
        Tagger.load(model)


def test_iob1_and_bioes_tags_train_the_same_tagger(tiny_artifacts):
    X, y = synthetic(60)
    bioes = [
        [
            (
                "S-"
                if t.startswith("B-") and (i + 1 == len(s) or not s[i + 1].startswith("I-"))
                else "E-"
                if t.startswith("I-") and (i + 1 == len(s) or not s[i + 1].startswith("I-"))
                else t[:2]
            )
            + t[2:]
            if t != "O"
            else "O"
            for i, t in enumerate(s)
        ]
        for s in y
    ]
    a = train_ner(X, y, model=tiny_artifacts["bert"], max_iter=30)
    b = train_ner(X, bioes, model=tiny_artifacts["bert"], max_iter=30)
    assert a.labels == b.labels
    np.testing.assert_allclose(a.crf.coef_, b.crf.coef_)
    loaded = featx.load(tiny_artifacts["bert"])  # a loaded encoder works as the model too
    c = train_ner(X, y, model=loaded, max_iter=30)
    assert c.embedder.model is loaded
    np.testing.assert_allclose(a.crf.coef_, c.crf.coef_)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "gpt2"])
def test_finetuned_tagger_on_every_family(tiny_model_dirs, tmp_path, family):
    X, y = synthetic(48)
    out = tmp_path / "tagger"
    tagger = train_ner(
        X,
        y,
        model=tiny_model_dirs[family],
        dev=(X[:8], y[:8]),
        out=out,
        train_layers=1,
        epochs=2,
        lr=1e-3,
        batch_size=16,
        max_iter=40,
    )
    report = json.loads((out / "finetune.json").read_text())
    assert report["task"] == "tokens" and report["settings"]["train_layers"] == 1
    assert report["shape_flags"] is True  # the classifier saw what the CRF sees
    assert (out / "hf" / "config.json").is_file()
    assert tagger.metrics["finetune"]["best"]["f1"] >= 0.0
    assert tagger.metrics["settings"]["layers"] == [-1]
    # The exported graph's word vectors equal the fine-tuned torch model's.
    onnx = featx.load(out, precision="fp32")
    reference = featx.load(out / "hf", backend="torch")
    got = onnx.encode_tokens(X[:6])
    expected = reference.encode_tokens(X[:6])
    for g, e in zip(got, expected, strict=True):
        cos = (
            (g.vectors * e.vectors).sum(1)
            / np.linalg.norm(g.vectors, axis=1)
            / np.linalg.norm(e.vectors, axis=1)
        )
        assert cos.min() >= 0.999
    # Frozen lower layers are untouched: the embeddings equal the source model's.
    import safetensors.numpy

    before = safetensors.numpy.load_file(str(tiny_model_dirs[family] / "model.safetensors"))
    after = safetensors.numpy.load_file(str(out / "hf" / "model.safetensors"))
    embeddings = [k for k in before if "embed" in k or "wte" in k or "wpe" in k]
    assert embeddings and all(np.array_equal(before[k], after[k]) for k in embeddings)
    assert len(tagger.predict_tags(X[:3])) == 3


@pytest.mark.real
def test_real_model_on_conll_cli(real_artifact, conll_files, tmp_path):
    runner = CliRunner()
    out = tmp_path / "ner"
    result = runner.invoke(
        main,
        [
            "train-ner",
            "--data",
            str(conll_files / "train.txt"),
            "--dev",
            str(conll_files / "dev.txt"),
            "--model",
            str(real_artifact),
            "--max-iter",
            "80",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "micro" in result.output and "PER" in result.output
    result = runner.invoke(
        main, ["evaluate", str(out), "--data", str(conll_files / "test.txt"), "--json"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["micro"]["f1"] > 0.45  # 300 training sentences
    tagger = Tagger.load(out)
    sentences = read_sentences(conll_files / "test.txt")
    expected = tagger.evaluate([s.words for s in sentences], [s.tags for s in sentences])
    assert scores == expected

    texts = tmp_path / "texts.txt"
    texts.write_text(
        "Peter Blackburn flew from London to Germany .\nNothing here\n", encoding="utf-8"
    )
    result = runner.invoke(main, ["predict", str(out), "--input", str(texts)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    assert rows == [
        {"index": i, "text": t, "entities": e}
        for i, (t, e) in enumerate(
            zip(
                ["Peter Blackburn flew from London to Germany .", "Nothing here"],
                tagger.predict(["Peter Blackburn flew from London to Germany .", "Nothing here"]),
                strict=True,
            )
        )
    ]
    found = {(e["text"], e["label"]) for e in rows[0]["entities"]}
    assert ("London", "LOC") in found and ("Germany", "LOC") in found

    table = tmp_path / "texts.csv"
    table.write_text('id,sentence\n1,"Peter Blackburn flew from London to Germany ."\n')
    result = runner.invoke(
        main, ["predict", str(out), "--input", str(table), "--text-col", "sentence"]
    )
    assert result.exit_code == 0, result.output
    spans = [(e["text"], e["label"], e["start"]) for e in rows[0]["entities"]]
    from_csv = json.loads(result.output.splitlines()[0])["entities"]
    assert [(e["text"], e["label"], e["start"]) for e in from_csv] == spans

    result = runner.invoke(
        main, ["predict", str(out), "--input", str(conll_files / "test.txt"), "--format", "conll"]
    )
    assert result.exit_code == 0, result.output
    first = json.loads(result.output.splitlines()[0])
    assert first["text"] == " ".join(sentences[0].words)


def test_cli_errors_name_the_line(tmp_path, tiny_artifacts):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU B-ORG\nrejects\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "train-ner",
            "--data",
            str(bad),
            "--model",
            str(tiny_artifacts["bert"]),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    assert f"{bad}:2:" in result.output
    result = CliRunner().invoke(
        main, ["train-ner", "--data", str(bad), "--c2", "x", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "comma-separated" in result.output


def test_cli_trains_from_jsonl_spans_with_fine_tuning(tiny_model_dirs, tmp_path):
    X, y = synthetic(40)
    lines = []
    for words, tags in zip(X, y, strict=True):
        text = " ".join(words)
        starts = np.cumsum([0] + [len(w) + 1 for w in words])
        spans = [
            {"start": int(starts[e.start]), "end": int(starts[e.end] - 1), "label": e.label}
            for e in entities(tags)
        ]
        lines.append(json.dumps({"text": text, "entities": spans}))
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "ner-ft"
    args = ["train-ner", "--data", str(data), "--model", str(tiny_model_dirs["bert"])]
    args += ["--train-layers", "1", "--epochs", "2", "--lr", "1e-3", "--batch-size", "8"]
    result = CliRunner().invoke(main, [*args, "--max-iter", "40", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "finetune.json").read_text())["settings"]["epochs"] == 2
    tagger = Tagger.load(out)
    assert tagger.entity_types == ["LOC", "PER"]
    assert tagger.metrics["settings"]["train_layers"] == 1
    shown = CliRunner().invoke(main, ["info", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "tagger:     CRF over layers [-1]" in shown.output and "LOC, PER" in shown.output
    assert "fine-tuned: from" in shown.output and "train_layers=1" in shown.output
    result = CliRunner().invoke(main, [*args[:-8], "--train-layers", "x", "--out", str(out)])
    assert result.exit_code != 0 and "'all'" in result.output


def test_finetuning_shows_the_tag_classifier_each_words_shape(tiny_model_dirs):
    from featx.encoders.torch import load_hf_model
    from featx.finetuning.setup import feeder
    from featx.finetuning.tokens import IGNORE, TokenModel, shaped_feeder, tagged_windows

    encoder = featx.load(tiny_model_dirs["bert"], backend="torch")
    sentences = [["Peter", "Blackburn", "went"], ["EU", "rejects", "German", "call", "3-4"]]
    tags = [[1, 2, 0], [3, 0, 4, 0, 0]]
    windows, labels = tagged_windows(encoder, sentences, tags, shape=True)
    feed = shaped_feeder(feeder(encoder))(windows)
    flags = feed["shape"].numpy()
    for row, words in enumerate(sentences):
        first = np.flatnonzero(labels[row] != IGNORE)  # each word's first piece
        np.testing.assert_array_equal(flags[row, first], word_shapes(words))
        assert not np.delete(flags[row], first, axis=0).any()
    plain, _ = tagged_windows(encoder, sentences, tags)
    np.testing.assert_array_equal(feed["input_ids"], feeder(encoder)(plain)["input_ids"])
    model = TokenModel(load_hf_model(tiny_model_dirs["bert"]), 5, 0.0, shape=True).eval()
    assert model(feed).shape == (*feed["input_ids"].shape, 5)
