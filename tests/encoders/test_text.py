import numpy as np
import pytest
from tokenizers import Tokenizer

from featx.text import TextPreparer, check_texts


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    return Tokenizer.from_file(str(default_model_dir / "tokenizer.json"))


def test_check_texts_accepts_sequences_and_arrays():
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(np.array(["a", "b"])) == ["a", "b"]
    assert check_texts(x for x in ["a"]) == ["a"]


def test_check_texts_rejects_a_bare_string():
    with pytest.raises(TypeError, match=r"got a single str; wrap it in a list"):
        check_texts("hello")


def test_check_texts_names_the_bad_item():
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        check_texts(["ok", None])
    with pytest.raises(TypeError, match=r"texts\[0\] is int"):
        check_texts([3])
    with pytest.raises(TypeError, match="must be 1-D"):
        check_texts(np.array([["a"]]))
    with pytest.raises(TypeError, match="sequence of str"):
        check_texts(42)


def test_check_texts_refuses_a_lone_surrogate_but_keeps_real_unicode():
    assert check_texts(["naïve 東京 😀"]) == ["naïve 東京 😀"]
    with pytest.raises(ValueError, match=r"texts\[1\] holds a lone surrogate at character 1"):
        check_texts(["ok", "a\ud800b"])


@pytest.mark.parametrize("stride", [0, 7, 32])
def test_token_counts_are_exact_before_truncation(tokenizer, stride):
    rng = np.random.default_rng(0)
    words = ["cat", "extraordinarily", "東京", "!", "naïve", "a"]
    texts = [" ".join(rng.choice(words, size=n)) for n in [0, 1, 5, 40, 100, 300, 700]]
    prep = TextPreparer(tokenizer, max_length=64, fallback_id=0)
    tokenized = prep.tokenize(texts, chunk=True, stride=stride)
    reference = Tokenizer.from_str(tokenizer.to_str())
    reference.no_truncation()
    reference.no_padding()
    expected = [len(e.ids) for e in reference.encode_batch(texts)]
    assert tokenized.n_tokens.tolist() == expected
    assert tokenized.truncated.tolist() == [n > 64 for n in expected]
    assert all(len(w) <= 64 for w in tokenized.windows)
    # Windows, minus their overlaps and special tokens, are the whole text.
    for i, n in enumerate(expected):
        mine = [
            w for w, owner in zip(tokenized.windows, tokenized.owner, strict=True) if owner == i
        ]
        new = len(mine[0]) - 2 + sum(len(w) - 2 - stride for w in mine[1:])
        assert new == n - 2


def test_truncate_mode_keeps_one_window_per_text(tokenizer):
    prep = TextPreparer(tokenizer, max_length=16, fallback_id=0)
    tokenized = prep.tokenize(["word " * 100, "short"], chunk=False, stride=0)
    assert len(tokenized.windows) == 2
    assert tokenized.n_windows.tolist() == [1, 1]
    assert tokenized.truncated.tolist() == [True, False]


def test_stride_must_leave_room_for_new_tokens(tokenizer):
    prep = TextPreparer(tokenizer, max_length=16, fallback_id=0)
    with pytest.raises(ValueError, match="stride=14 must be smaller"):
        prep.tokenize(["x"], chunk=True, stride=14)


def test_max_length_must_leave_room_for_text(tokenizer):
    with pytest.raises(ValueError, match="leaves no room"):
        TextPreparer(tokenizer, max_length=2, fallback_id=0)
