"""Shared fixtures: tiny random models of every family, exported once per session, and the
shared evaluation data (``FEATX_DATA_DIR``, else ``../shared/data`` beside the checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an is was are of and to in on for with at by from cat dog man woman guitar "
    "playing plays eats food fast slow good bad movie film great terrible love hate "
    "stock market fell rose quick brown fox jumps over lazy text vector model token "
    "##s ##ing ##ed ##er ##ly , . ! ? ' - 1 2 3 é ü 東 京"
).split()
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a man is playing a guitar",
    "a woman eats food at the market",
    "the movie was great and i love it",
    "the film was terrible and i hate it",
    "stock markets fell fast, then rose slowly!",
    "text vectors from a model, token by token",
    "naïve café —東京 ünïcödé 1 2 3",
]
FAMILIES = ("bert", "roberta", "distilbert", "modernbert", "gpt2", "qwen3")
REPO = Path(__file__).resolve().parents[1]


def data_path(*parts: str) -> Path:
    """A path in the shared evaluation data: ``$FEATX_DATA_DIR``, else ../shared/data."""
    root = os.environ.get("FEATX_DATA_DIR") or REPO.parent / "shared" / "data"
    return Path(root).expanduser().joinpath(*parts)


@pytest.fixture(scope="session")
def shared_data():
    """``shared_data("conll2003", "train.txt")``: the path, or a skip that names it."""

    def need(*parts: str) -> Path:
        path = data_path(*parts)
        if not path.exists():
            pytest.skip(f"{path} is not here: the shared evaluation data (set FEATX_DATA_DIR)")
        return path

    return need


MAX_POSITIONS = 64


# Loads a model in a process where torch and transformers cannot be imported at all.
_NO_TORCH = (
    "import sys, json; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
    "import featx; e = featx.load(sys.argv[1], precision='fp32'); "
    "print(json.dumps(e.encode(json.loads(sys.argv[2])).tolist()))"
)


def no_torch_vectors(model: Path, texts: list[str]) -> np.ndarray:
    """``featx.load(model).encode(texts)`` (fp32) in a process that cannot import torch."""
    run = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, str(model), json.dumps(texts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return np.array(json.loads(run.stdout.splitlines()[-1]), dtype=np.float32)


def wordpiece_dir(out: Path, tokenizer_cls: type) -> None:
    (out / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS + WORDS) + "\n", encoding="utf-8")
    # from_pretrained reads vocab.txt in transformers 4 and 5 alike (their keywords differ).
    tokenizer_cls.from_pretrained(str(out)).save_pretrained(out)


def _bpe_files(out: Path, special: list[str]) -> tuple[str, str]:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=400, min_frequency=1, special_tokens=special)
    bpe.save_model(str(out))
    return str(out / "vocab.json"), str(out / "merges.txt")


def build_tiny_model(family: str, out: Path) -> Path:
    """Save a tiny random model of ``family`` (config, weights, fast tokenizer) in ``out``."""
    import torch
    import transformers as tf

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    common = {"vocab_size": 0, "max_position_embeddings": MAX_POSITIONS}
    if family == "bert":
        wordpiece_dir(out, tf.BertTokenizerFast)
        vocab = len(SPECIAL_TOKENS + WORDS)
        config = tf.BertConfig(
            **{**common, "vocab_size": vocab},
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
        )
        model = tf.BertModel(config)
    elif family == "distilbert":
        wordpiece_dir(out, tf.DistilBertTokenizerFast)
        vocab = len(SPECIAL_TOKENS + WORDS)
        config = tf.DistilBertConfig(
            **{**common, "vocab_size": vocab}, dim=32, n_layers=2, n_heads=4, hidden_dim=37
        )
        model = tf.DistilBertModel(config)
    elif family == "roberta":
        _bpe_files(out, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        tf.RobertaTokenizerFast.from_pretrained(str(out)).save_pretrained(out)
        config = tf.RobertaConfig(
            vocab_size=400,
            max_position_embeddings=MAX_POSITIONS + 2,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        )
        model = tf.RobertaModel(config, add_pooling_layer=False)
    elif family == "gpt2":
        _bpe_files(out, ["<|endoftext|>"])
        tf.GPT2TokenizerFast.from_pretrained(str(out)).save_pretrained(out)
        config = tf.GPT2Config(
            vocab_size=400,
            n_positions=MAX_POSITIONS,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = tf.GPT2Model(config)
    elif family == "modernbert":
        wordpiece_dir(out, tf.BertTokenizerFast)
        config = tf.ModernBertConfig(
            **{**common, "vocab_size": len(SPECIAL_TOKENS + WORDS)},
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=48,
            global_attn_every_n_layers=2,  # one global, one local (sliding window) layer
            local_attention=16,
            pad_token_id=0,
            cls_token_id=2,
            sep_token_id=3,
            bos_token_id=2,
            eos_token_id=3,
            reference_compile=False,
        )
        model = tf.ModernBertModel(config)
    elif family == "qwen3":
        _bpe_files(out, ["<|endoftext|>"])
        tf.GPT2TokenizerFast.from_pretrained(str(out)).save_pretrained(out)
        config = tf.Qwen3Config(
            **{**common, "vocab_size": 400},
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            intermediate_size=48,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = tf.Qwen3Model(config)
    else:
        raise ValueError(family)
    model.eval().save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("tiny-models")
    return {family: build_tiny_model(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="session")
def tiny_artifacts(
    tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    import featx

    root = tmp_path_factory.mktemp("tiny-artifacts")
    return {
        family: featx.export(folder, root / family).path
        for family, folder in tiny_model_dirs.items()
    }


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from featx.sources import resolve

    folder = resolve("minilm").folder
    assert folder is not None
    return folder


@pytest.fixture(scope="session", autouse=True)
def featx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private export cache for the whole run, so tests never touch ~/.cache/featx."""
    cache = tmp_path_factory.mktemp("featx-cache")
    os.environ["FEATX_CACHE_DIR"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def real_artifact(featx_cache: Path) -> Path:
    """The default model, exported once (fp32 + int8) into the cache by featx.load."""
    import featx

    encoder = featx.load("minilm")
    assert encoder.path is not None and encoder.path.parent == featx_cache
    return encoder.path


def toy_questions(n: int) -> list:
    """``n`` SQuAD-style questions a tiny model learns in seconds: a thing's colour."""
    from featx.qa import Answer, Question

    colours, things = ["red", "green", "blue", "black"], ["fox", "dog", "car", "film", "market"]
    out = []
    for i in range(n):
        colour, thing = colours[i % 4], things[i % 5]
        context = f"the quick {thing} is {colour} and the lazy dog is slow"
        start = context.index(" is ") + 4
        out.append(
            Question(f"q{i}", f"what color is the {thing}?", context, (Answer(colour, start),))
        )
    return out


@pytest.fixture(scope="session")
def tiny_qa_artifact(
    tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A question answerer fine-tuned from the tiny BERT on :func:`toy_questions`."""
    from featx import qa

    out = tmp_path_factory.mktemp("tiny-qa") / "qa"
    train = toy_questions(40)
    qa.finetune(train, model=tiny_model_dirs["bert"], out=out, dev=train[:8], epochs=30,
                lr=1e-3, batch_size=8, show_progress=False)  # fmt: skip
    return out
