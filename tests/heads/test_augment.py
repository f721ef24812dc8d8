"""featx.augment: EDA edits, embedding-space synonyms, masked-LM substitution, no leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

import featx
from featx.augment import PROTECTED, Augmenter, augment, folds_without_leaks

TEXTS = [
    "the movie was not great and i hate it",
    "a great film , i love the guitar",
    "the dog eats food at the market",
    "stock market fell fast then rose",
]


def test_copies_are_seeded_and_keep_their_source_rows() -> None:
    first = Augmenter(["swap", "delete"], copies=3, seed=7).expand(TEXTS)
    again = Augmenter(["swap", "delete"], copies=3, seed=7).expand(TEXTS)
    other = Augmenter(["swap", "delete"], copies=3, seed=8).expand(TEXTS)
    assert first[0] == again[0] and first[0] != other[0]
    texts, rows = first
    assert texts[: len(TEXTS)] == TEXTS and rows[: len(TEXTS)].tolist() == [0, 1, 2, 3]
    for text, row in zip(texts[len(TEXTS) :], rows[len(TEXTS) :], strict=True):
        source = TEXTS[row].split()
        words = text.split()
        assert text != TEXTS[row]
        assert set(words) <= set(source) and len(words) <= len(source)  # swaps and deletions
        # Negations (and other protected words) are never dropped or moved away.
        for word in source:
            if word in PROTECTED:
                assert word in words


def test_augment_returns_labels_for_every_copy() -> None:
    texts, labels = augment(TEXTS, [1, 0, 1, 0], methods="swap", copies=2, seed=0)
    assert len(texts) == len(labels) > len(TEXTS)
    assert labels[:4] == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="4 texts but 3 labels"):
        augment(TEXTS, [1, 0, 1])


def test_synonyms_come_from_the_models_token_embeddings(tiny_model_dirs: dict[str, Path]) -> None:
    for family in ("bert", "gpt2"):  # WordPiece and byte-level BPE vocabularies
        augmenter = Augmenter(["synonym"], model=str(tiny_model_dirs[family]), seed=0)
        texts, rows = augmenter.expand(["the movie was great"])
        for text in texts[1:]:
            words = text.split()
            assert len(words) == 4 and words[0] == "the"  # stopwords stay
        neighbours = augmenter._synonyms.neighbours("movie")
        assert "movie" not in neighbours and all(w not in PROTECTED for w in neighbours)


@pytest.mark.real
def test_default_model_synonyms_are_close_words() -> None:
    augmenter = Augmenter(["synonym"], seed=0)
    assert "movie" in augmenter._synonyms.neighbours("film")
    assert "hilarious" in augmenter._synonyms.neighbours("funny")
    texts, _ = augmenter.expand(["a funny film about a dog"])
    assert len(texts) == 2 and texts[1] != texts[0]


def test_masked_lm_substitution(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import transformers as tf
    from conftest import SPECIAL_TOKENS, WORDS, wordpiece_dir

    wordpiece_dir(tmp_path, tf.BertTokenizerFast)
    torch.manual_seed(0)
    config = tf.BertConfig(
        vocab_size=len(SPECIAL_TOKENS + WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=37,
    )
    tf.BertForMaskedLM(config).save_pretrained(tmp_path)
    augmenter = Augmenter(["mlm"], mlm_model=tmp_path, rate=0.2, seed=0)
    source = "the quick brown fox jumps over the lazy dog"
    texts, _ = augmenter.expand([source])
    assert len(texts) == 2
    changed = [a != b for a, b in zip(texts[1].split(), source.split(), strict=True)]
    assert 1 <= sum(changed) <= 2  # 20 % of nine words, one at a time


def test_bad_options_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="Unknown augmentation 'mixup'.*featx.finetune"):
        Augmenter(["mixup"])
    with pytest.raises(ValueError, match="needs mlm_model"):
        Augmenter(["mlm"])
    with pytest.raises(ValueError, match="copies"):
        Augmenter(["swap"], copies=0)
    with pytest.raises(ValueError, match="rate"):
        Augmenter(["swap"], rate=0.9)
    with pytest.raises(TypeError, match="single str"):
        Augmenter(["swap"]).expand("one text")


def test_folds_never_train_on_copies_of_held_out_texts() -> None:
    labels = np.array([0, 1] * 10)
    texts = [f"text number {i} about a movie" for i in range(20)]
    augmented, rows = Augmenter(["swap"], copies=2, seed=0).expand(texts)
    splits = StratifiedKFold(4, shuffle=True, random_state=0).split(np.zeros(20), labels)
    for train, test in folds_without_leaks(splits, rows):
        assert set(test.tolist()) <= set(range(20))  # only originals are scored
        held_out = set(test.tolist())
        assert not {int(rows[i]) for i in train} & held_out
        assert len(train) > 15  # the training originals and their copies


def test_train_with_augmentation_and_search() -> None:
    texts = [f"good movie {i}" for i in range(12)] + [f"bad film {i}" for i in range(12)]
    labels = ["pos"] * 12 + ["neg"] * 12
    model = featx.train(
        texts,
        labels,
        model=featx.HashEncoder(dim=64),
        search="grid",
        cv=3,
        augment="swap",
        show_progress=False,
    )
    assert model.metrics["augment"]["n_added"] > 0
    assert model.metrics["search"]["cv"] == 3
    with pytest.raises(ValueError, match="not sentence pairs"):
        pairs = np.array([[t, t] for t in texts], dtype=object)
        featx.train(pairs, labels, model=featx.HashEncoder(dim=64), augment="swap")


def test_cli_train_with_augmentation(tiny_artifacts: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from featx.cli import main

    data = tmp_path / "train.tsv"
    rows = [f"good movie {i}\tpos" for i in range(8)] + [f"bad film {i}\tneg" for i in range(8)]
    data.write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "-m", str(tiny_artifacts["bert"]), "--augment", "eda"]
    args += ["--augment-copies", "2", "--search", "grid", "--cv", "2", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert featx.Predictor.load(out).metrics["augment"]["n_added"] > 0
    bad = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "m2"), "--augment", "paraphrase"])
    assert bad.exit_code != 0 and "Unknown augmentation 'paraphrase'" in bad.output
