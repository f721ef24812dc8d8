"""Word-level token features: exact word alignment on every tokenizer family, ONNX = torch."""

import numpy as np
import pytest
from tokenizers import Tokenizer

import featx
from featx.words import align, best_window, join_words, plan_windows, split_words

TEXTS = [
    "EU rejects German call to boycott British lamb.",
    "Naïve café —東京 in São Paulo, U.S. 1,000.5 pounds!",
    "Jean-Luc O'Neill's e-mail: jl@example.com (re: \"quick\" fox)...",
    "unbelievablyunpronounceable antidisestablishmentarianism ünïcödé",
    "zero\u200bwidth and a lone accent \u0301 and a\tcontrol\x00char",
    "   ",
    "",
]
WORD_LISTS = [
    ["Peter", "Blackburn"],
    ["S.", "Korea", "'s", "1,000", "--", "东京", "naïve"],
    ["\u200b", "a", "\ufeff", "b"],
]


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def encoders(tiny_artifacts, tiny_model_dirs):
    return {
        family: (featx.load(path, precision="fp32"), featx.load(folder, backend="torch"))
        for family, path in tiny_artifacts.items()
        for folder in [tiny_model_dirs[family]]
    }


def test_split_words_spans_map_back():
    words, spans = split_words(TEXTS[1])
    assert words == ["Naïve", "café", "—", "東京", "in", "São", "Paulo", ",", "U.S.", "1,000.5"] + [
        "pounds",
        "!",
    ]
    assert [TEXTS[1][s:e] for s, e in spans] == words
    assert split_words("  ") == ([], [])


def test_join_words_rejects_empty_words():
    assert join_words(["a", "bc"]) == ("a bc", [(0, 1), (2, 4)])
    with pytest.raises(ValueError, match=r"words\[1\] is ' '"):
        join_words(["a", " "])
    with pytest.raises(TypeError, match=r"words\[0\] is int"):
        join_words([3])


def _check_alignment(tokenizer: Tokenizer, text: str, spans, fallback_id: int) -> None:
    """Every word has pieces; every piece that covers a character of a word is the word's."""
    alignment = align(tokenizer, text, spans, fallback_id)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    assert len(alignment.word_tokens) == len(spans)
    n_inserted = len(alignment.ids) - len(encoding.ids)
    assert n_inserted >= 0
    for w, pieces in enumerate(alignment.word_tokens):
        assert len(pieces) >= 1, f"word {w} has no piece"
        assert list(pieces) == sorted(set(pieces.tolist()))
        assert all(0 <= p < len(alignment.ids) for p in pieces)
    # Map back without inserted fallbacks: pieces' offsets overlap their word's span.
    if n_inserted == 0:
        for (start, end), pieces in zip(spans, alignment.word_tokens, strict=True):
            for p in pieces:
                s, e = encoding.offsets[p]
                assert s < end and e > start, (text[start:end], text[s:e])
        owned = {int(p) for pieces in alignment.word_tokens for p in pieces}
        for p, (s, e) in enumerate(encoding.offsets):
            if any(text[i].strip() for i in range(s, e)) and any(
                s < end and e > start for start, end in spans
            ):
                assert p in owned


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "gpt2"])
def test_alignment_is_exact_on_every_family(encoders, family):
    onnx, _ = encoders[family]
    tokenizer = onnx.word_tokenizer()
    for text in TEXTS:
        _, spans = split_words(text)
        _check_alignment(tokenizer, text, spans, onnx.spec.fallback_id)
    for words in WORD_LISTS:
        text, spans = join_words(words)
        _check_alignment(tokenizer, text, spans, onnx.spec.fallback_id)


@pytest.mark.real
def test_alignment_is_exact_on_the_default_model(real_artifact):
    encoder = featx.load(real_artifact)
    tokenizer = encoder.word_tokenizer()
    for text in TEXTS:
        _, spans = split_words(text)
        _check_alignment(tokenizer, text, spans, encoder.spec.fallback_id)
    # A word the WordPiece normaliser strips entirely still gets a (fallback) piece.
    text, spans = join_words(["a", "\u200b", "b"])
    alignment = align(tokenizer, text, spans, encoder.spec.fallback_id)
    assert alignment.ids[alignment.word_tokens[1][0]] == encoder.spec.fallback_id


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "gpt2"])
def test_one_vector_per_word_and_onnx_equals_torch(encoders, family):
    onnx, reference = encoders[family]
    for inputs in (TEXTS, WORD_LISTS):
        got = onnx.encode_tokens(inputs, layers=(-2, -1), combine="concat")
        expected = reference.encode_tokens(inputs, layers=(-2, -1), combine="concat")
        for item, g, e in zip(inputs, got, expected, strict=True):
            words = split_words(item)[0] if isinstance(item, str) else list(item)
            assert g.words == words and len(g.vectors) == len(words)
            assert [g.text[s:e] for s, e in g.spans] == words
            if isinstance(item, str):
                assert g.text == item  # offsets point into the caller's own string
            assert g.vectors.shape == (len(words), 64) and g.vectors.dtype == np.float32
            assert np.isfinite(g.vectors).all() and (np.abs(g.vectors).sum(1) > 0).all()
            if len(words):
                assert cosines(g.vectors, e.vectors).min() >= 0.999


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_long_text_windows_lose_no_word(encoders, family):
    onnx, reference = encoders[family]
    words = ("the quick brown fox jumps over the lazy dog , " * 30).split()
    assert len(words) > 4 * onnx.max_length  # several windows
    got = onnx.encode_tokens([words], overlap=16)[0]
    expected = reference.encode_tokens([words], overlap=16)[0]
    assert got.vectors.shape[0] == len(words)
    assert cosines(got.vectors, expected.vectors).min() >= 0.999
    if family == "bert":  # one piece per word here, so the first window is words[:room]
        room = onnx.max_length - 2
        window = onnx.encode_tokens([words[:room]])[0]
        np.testing.assert_allclose(got.vectors[:40], window.vectors[:40], atol=1e-4)


def test_subword_modes_and_batching(encoders):
    onnx, _ = encoders["bert"]
    items = ["the dogsing guitar", "a cat"]  # dogsing -> dog ##s ##ing
    first = onnx.encode_tokens(items, subword="first")
    mean = onnx.encode_tokens(items, subword="mean")
    last = onnx.encode_tokens(items, subword="last")
    # One-piece words are the same in every mode; split words differ.
    np.testing.assert_allclose(first[1].vectors, mean[1].vectors, atol=1e-6)
    assert not np.allclose(first[0].vectors[1], last[0].vectors[1])
    assert not np.allclose(first[0].vectors[1], mean[0].vectors[1])
    one_by_one = [onnx.encode_tokens([t])[0].vectors for t in items]
    for batched, single in zip(first, one_by_one, strict=True):
        np.testing.assert_allclose(batched.vectors, single, atol=1e-5)
    summed = onnx.encode_tokens(items, layers=(-2, -1), combine="sum")[0].vectors
    averaged = onnx.encode_tokens(items, layers=(-2, -1), combine="mean")[0].vectors
    np.testing.assert_allclose(summed, 2 * averaged, rtol=1e-5, atol=1e-5)
    unit = onnx.encode_tokens(items, normalize=True)[0].vectors
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


def test_bad_inputs_say_what_to_fix(encoders):
    onnx, _ = encoders["bert"]
    with pytest.raises(TypeError, match="not both"):
        onnx.encode_tokens(["a text", ["a", "list"]])
    with pytest.raises(TypeError, match="single str"):
        onnx.encode_tokens("a text")
    with pytest.raises(ValueError, match=r"texts\[0\]: words\[1\]"):
        onnx.encode_tokens([["a", ""]])
    with pytest.raises(ValueError, match="overlap"):
        onnx.encode_tokens(["a"], overlap=10_000)
    with pytest.raises(ValueError, match="subword"):
        onnx.encode_tokens(["a"], subword="middle")
    with pytest.raises(ValueError, match="Layer 9"):
        onnx.encode_tokens(["a"], layers=9)
    assert onnx.encode_tokens([]) == []


def test_window_planning():
    assert plan_windows(5, 8, 2) == [(0, 5)]
    windows = plan_windows(20, 8, 2)
    assert windows == [(0, 8), (6, 14), (12, 20)]
    assert best_window(7, 7, windows) == 1  # more context in the second window
    assert best_window(0, 1, windows) == 0
    assert best_window(3, 12, windows) in (0, 1)  # longer than any window: most pieces
