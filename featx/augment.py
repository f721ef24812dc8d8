"""Augmentation for small labelled sets: EDA edits, synonyms, masked-LM substitution.

Text methods (:data:`TEXT_METHODS`) make edited copies of training texts that keep their
label: ``swap``, ``delete`` and ``insert`` are EDA's edits (Wei & Zou 2019), ``synonym``
replaces words by their nearest neighbours in the encoder's own token-embedding space
(offline, no word lists needed), ``mlm`` lets a fill-mask model propose a word in
context. Negations and other words that flip meaning are never touched, which is the
part of label preservation that can be had by construction. Embedding-space methods
(mixup, noise) live with the heads: ``featx.finetune(mixup=...)``.

Augmentation only ever sees training texts: :meth:`Augmenter.expand` returns, with the
texts, the row each one came from, so cross-validation can keep a text's copies on the
training side of its fold (see :func:`folds_without_leaks`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.artifact import Artifact, is_artifact
from featx.extras import require, require_module
from featx.sources import default_model, fetch, resolve, transformer_folder

TEXT_METHODS = ("swap", "delete", "insert", "synonym", "mlm")
# `eda` is shorthand for EDA's edits; insertion needs the synonym source.
ALIASES = {"eda": ("swap", "delete", "insert", "synonym")}
# Words that flip or qualify a sentence's meaning: no method edits them.
PROTECTED = frozenset(
    "not no nor never n't nothing none nobody neither without hardly barely but however "
    "although though yet".split()
)
STOPWORDS = frozenset(
    "a an the and or of to in on at by for with from as is are was were be been being it its "
    "this that these those he she they we you i me my our your his her their them us do does "
    "did has have had will would can could should may might must shall 's 're 've 'd 'll".split()
)
_WORD = re.compile(r"^[a-z][a-z'-]+$", re.IGNORECASE)


@dataclass
class Augmenter:
    """Make label-preserving copies of texts.

    Args:
        methods: Names from :data:`TEXT_METHODS` (or ``"eda"``); each copy applies one,
            drawn at random.
        copies: Augmented copies per text.
        rate: Share of a text's words each edit changes (at least one word).
        model: Where synonyms come from: an alias, model folder or artifact whose token
            embeddings give the neighbours (default: the default model).
        mlm_model: A fill-mask model folder for ``"mlm"``.
        seed: Seed of every random choice.
    """

    methods: Sequence[str] = ("eda",)
    copies: int = 1
    rate: float = 0.1
    model: str | os.PathLike[str] | None = None
    mlm_model: str | os.PathLike[str] | None = None
    seed: int = 0
    _expanded: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        expanded: list[str] = []
        for name in names:
            for part in ALIASES.get(name, (name,)):
                if part not in TEXT_METHODS:
                    raise ValueError(
                        f"Unknown augmentation {name!r}. Text methods: "
                        f"{', '.join([*TEXT_METHODS, *ALIASES])}; embedding mixup is the "
                        "`mixup` setting of featx.finetune."
                    )
                if part not in expanded:
                    expanded.append(part)
        if not expanded:
            raise ValueError("Give at least one augmentation method.")
        if "mlm" in expanded and self.mlm_model is None:
            raise ValueError("The 'mlm' method needs mlm_model: a fill-mask model folder.")
        if not isinstance(self.copies, int) or self.copies < 1:
            raise ValueError(f"copies must be a positive int, got {self.copies!r}.")
        if not 0.0 < self.rate <= 0.5:
            raise ValueError(f"rate must be in (0, 0.5], got {self.rate!r}.")
        self._expanded = tuple(expanded)

    def expand(self, texts: Sequence[str]) -> tuple[list[str], NDArray[np.int64]]:
        """The texts followed by their copies, and the source row of every output text.

        Copies that come out identical to their source are dropped.
        """
        from featx.text import check_texts

        texts = check_texts(texts, "texts")
        rng = np.random.default_rng(self.seed)
        out, rows = list(texts), list(range(len(texts)))
        for _ in range(self.copies):
            for i, text in enumerate(texts):
                method = self._expanded[int(rng.integers(len(self._expanded)))]
                edited = self.edit(text, method, rng)
                if edited != text:
                    out.append(edited)
                    rows.append(i)
        return out, np.asarray(rows, dtype=np.int64)

    def edit(self, text: str, method: str, rng: np.random.Generator) -> str:
        """One edited copy of ``text`` by ``method``."""
        words = text.split()
        editable = [i for i, w in enumerate(words) if w.lower() not in PROTECTED]
        if not editable:
            return text
        n = max(1, int(round(self.rate * len(words))))
        if method == "swap":
            for _ in range(n):
                if len(editable) < 2:
                    break
                a, b = rng.choice(editable, size=2, replace=False)
                words[a], words[b] = words[b], words[a]
        elif method == "delete":
            if len(words) < 2:
                return text
            drop = {i for i in editable if rng.random() < self.rate}
            words = [w for i, w in enumerate(words) if i not in drop] or words
        elif method in ("synonym", "insert"):
            candidates = [i for i in editable if words[i].lower() not in STOPWORDS]
            rng.shuffle(candidates)
            done = 0
            for i in candidates:
                synonym = self._synonyms.pick(words[i], rng)
                if synonym is None:
                    continue
                if method == "synonym":
                    words[i] = synonym
                else:
                    words.insert(int(rng.integers(len(words) + 1)), synonym)
                done += 1
                if done == n:
                    break
        else:
            words = self._masked_lm.substitute(words, editable, n, rng)
        return " ".join(words)

    @cached_property
    def _synonyms(self) -> EmbeddingNeighbours:
        return EmbeddingNeighbours.from_model(self.model)

    @cached_property
    def _masked_lm(self) -> MaskedLM:
        assert self.mlm_model is not None
        return MaskedLM(Path(self.mlm_model))


def augmenter(spec: Any, *, seed: int = 0, **options: Any) -> Augmenter:
    """An :class:`Augmenter` from a name, a comma-separated list or list of names, or as is."""
    if isinstance(spec, Augmenter):
        return spec
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    return Augmenter([n.strip() for n in names if n.strip()], seed=seed, **options)


def augment(
    texts: Sequence[str], labels: Sequence[Any], methods: Any = "eda", **options: Any
) -> tuple[list[str], list[Any]]:
    """Texts and labels with augmented copies appended (see :class:`Augmenter`).

    Example:
        >>> texts, labels = augment(["a fine film"], [1], methods="swap", seed=1)
        >>> len(texts) == len(labels)
        True
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
    out, rows = augmenter(methods, **options).expand(texts)
    return out, [labels[i] for i in rows]


def folds_without_leaks(
    splits: Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]], rows: NDArray[np.int64]
) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Cross-validation folds over augmented data from folds over the originals.

    Each fold trains on its training originals and their copies, and is scored on its
    held-out originals only: no copy of a held-out text is ever trained on.
    """
    n = int(rows.max()) + 1 if len(rows) else 0
    out = []
    for train, test in splits:
        keep = np.zeros(n, dtype=bool)
        keep[train] = True
        out.append((np.flatnonzero(keep[rows]), np.asarray(test, dtype=np.int64)))
    return out


class EmbeddingNeighbours:
    """Nearest whole-word neighbours in a model's input token-embedding matrix."""

    TOP = 5
    MIN_COSINE = 0.35

    def __init__(self, words: list[str], vectors: NDArray[np.float32]) -> None:
        self.index = {w: i for i, w in enumerate(words)}
        self.words = words
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_model(cls, model: str | os.PathLike[str] | None) -> EmbeddingNeighbours:
        """Read the vocabulary and the token embeddings of ``model``'s weights."""
        from tokenizers import Tokenizer

        folder = _weights_folder(model)
        matrix = _token_embeddings(folder)
        vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab()
        words, rows = [], []
        for token, i in vocab.items():
            word = token[1:] if token.startswith(("Ġ", "▁")) else token
            if (
                i < len(matrix)
                and _WORD.match(word)
                and len(word) > 2
                and not token.startswith("##")
            ):
                words.append(word)
                rows.append(i)
        return cls(words, matrix[rows])

    def neighbours(self, word: str) -> list[str]:
        """Up to :attr:`TOP` close whole words (no stopwords, protected words or variants)."""
        key = word.lower()
        if key not in self._cache:
            found: list[str] = []
            i = self.index.get(key, self.index.get(word))
            if i is not None:
                sims = self.unit @ self.unit[i]
                for j in np.argsort(-sims)[: 10 * self.TOP]:
                    w = self.words[j]
                    if sims[j] < self.MIN_COSINE or len(found) == self.TOP:
                        break
                    if w.lower() in PROTECTED or w.lower() in STOPWORDS or _variant(w, key):
                        continue
                    if w.lower() not in {f.lower() for f in found}:
                        found.append(w)
            self._cache[key] = found
        return self._cache[key]

    def pick(self, word: str, rng: np.random.Generator) -> str | None:
        """A random close neighbour of ``word``, or None."""
        options = self.neighbours(word)
        return options[int(rng.integers(len(options)))] if options else None


class MaskedLM:
    """Contextual substitution with a fill-mask model (needs torch and transformers)."""

    def __init__(self, folder: Path) -> None:
        require("export", "'mlm' augmentation")
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise ValueError(f"mlm_model {folder} is not a model folder (no config.json).")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if self.tokenizer.mask_token is None:
            raise ValueError(f"{folder} has no mask token: it is not a fill-mask model.")
        self.model = AutoModelForMaskedLM.from_pretrained(str(folder)).eval()

    def substitute(
        self, words: list[str], editable: list[int], n: int, rng: np.random.Generator
    ) -> list[str]:
        """Replace up to ``n`` editable words, one at a time, by the model's best guess."""
        import torch

        words = list(words)
        for i in rng.permutation(editable)[:n]:
            masked = [*words[:i], self.tokenizer.mask_token, *words[i + 1 :]]
            batch = self.tokenizer(" ".join(masked), return_tensors="pt", truncation=True)
            where = (batch["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()
            if not len(where):
                continue
            with torch.no_grad():
                logits = self.model(**batch).logits[0, int(where[0, 0])]
            for token_id in logits.topk(10).indices.tolist():
                guess = str(self.tokenizer.decode([token_id])).strip()
                low = guess.lower()
                if _WORD.match(guess) and low != words[i].lower() and low not in PROTECTED:
                    words[i] = guess
                    break
        return words


def _variant(candidate: str, word: str) -> bool:
    """``candidate`` is ``word`` itself or a trivial inflection of it (film/films)."""
    c = candidate.lower()
    stem = word[:-1] if len(word) > 4 else word
    return c == word or c.startswith(stem) or word.startswith(c[:-1] if len(c) > 4 else c)


def _weights_folder(model: str | os.PathLike[str] | None) -> Path:
    """The Hugging Face folder holding ``model``'s weights and tokenizer.json."""
    if model is not None and is_artifact(model):
        folder = Artifact.open(model).source_folder()
    else:
        folder, _ = fetch(resolve(model or default_model()))
    folder = transformer_folder(folder)
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(f"{folder} has no tokenizer.json: synonyms need the model's vocabulary.")
    return folder


def _token_embeddings(folder: Path) -> NDArray[np.float32]:
    """The input token-embedding matrix from the folder's safetensors weights."""
    require_module("safetensors", "Synonym augmentation reads weights", "pip install safetensors")
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                if key.endswith(("word_embeddings.weight", "wte.weight", "embed_tokens.weight")):
                    return np.asarray(f.get_tensor(key), dtype=np.float32)
    raise ValueError(
        f"No token-embedding matrix in {folder} ({len(files)} safetensors file(s)); synonym "
        "augmentation needs the model's safetensors weights."
    )
