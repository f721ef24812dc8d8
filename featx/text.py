"""Text preparation: validate texts, tokenise them the model's way, window long ones.

The tokenizer is the model's own (``tokenizers``), with its truncation set to the model's
max length and its overflow turned on, so one call yields every window of a long text
(special tokens included) and the exact token count of the text before truncation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

TOKENIZE_BLOCK = 1024  # texts tokenised at once


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Return ``texts`` as a list of str, or raise a TypeError that says what is wrong.

    Accepts any iterable of str (a list, a tuple, a 1-D numpy array of str, a pandas
    Series); rejects a bare string, which would otherwise be read as characters.
    """
    if isinstance(texts, str | bytes):
        raise TypeError(
            f"{what} must be a sequence of str, got a single {type(texts).__name__}; "
            f"wrap it in a list: [{what[:-1] if what.endswith('s') else what}]."
        )
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise TypeError(f"{what} must be 1-D, got an array of shape {texts.shape}.")
    if not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a sequence of str, got {type(texts).__name__}.")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(
                f"{what}[{i}] is {type(text).__name__} ({text!r:.60}), not str; "
                "every item must be a string (drop or fill missing values first)."
            )
        if not text.isascii():
            _check_encodable(text, f"{what}[{i}]")
    return out


def refuse_empty(texts: Sequence[str], what: str = "X") -> None:
    """Refuse empty or whitespace-only texts, naming the first and counting them.

    Such a text has nothing to embed, and its vector (the special tokens alone) would
    still get a label or a score: every entry point that trains or predicts refuses it
    (the server answers 422; the command line's --drop-empty drops such records).
    """
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise ValueError(
            f"{what}[{empty[0]}] is empty or only whitespace ({len(empty)} such text(s) in "
            f"all): there is nothing to embed; drop or fill them first."
        )


def _check_encodable(text: str, where: str) -> None:
    """Refuse a lone surrogate (not Unicode text; the tokenizer raises a bare TypeError)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{where} holds a lone surrogate at character {err.start} "
            f"({text[max(err.start - 20, 0) : err.start + 20]!r}), which is not valid text. "
            "Read the source with errors='replace' (or fix its encoding)."
        ) from None


def pair_columns(X: Any) -> int:
    """2 for a two-column table of text pairs, 0 for a flat sequence of texts.

    Raises:
        ValueError: For a table of more than two columns.
    """
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        if shape[1] == 1:
            return 0
        if shape[1] != 2:
            raise ValueError(
                f"Embedder takes texts or two columns of text pairs, got {shape[1]} columns."
            )
        return 2
    return 0


def text_column(X: Any) -> Any:
    """A one-column table as a flat sequence (anything else as it is)."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        return np.asarray(X, dtype=object)[:, 0]
    return X


def dev_pair(dev: Any) -> tuple[Any, Any]:
    """``dev=(X_dev, y_dev)`` checked as a pair with both parts given.

    Raises:
        ValueError: If ``dev`` is not such a pair.
    """
    if not isinstance(dev, tuple | list) or len(dev) != 2:
        raise ValueError(
            f"dev must be a pair (X_dev, y_dev) of texts and their targets, got "
            f"{type(dev).__name__}."
        )
    X_dev, y_dev = dev
    if y_dev is None:
        raise ValueError("dev=(X_dev, y_dev) needs y_dev (the dev labels).")
    return X_dev, y_dev


@dataclass(frozen=True)
class Tokenized:
    """Texts cut into model windows.

    Attributes:
        windows: Token ids of every window, special tokens included, text by text.
        owner: For each window, the index of its text.
        n_tokens: For each text, its token count with special tokens, before truncation.
        truncated: For each text, whether it is longer than the model's max length.
    """

    windows: list[NDArray[np.int32]]
    owner: NDArray[np.int64]
    n_tokens: NDArray[np.int64]
    truncated: NDArray[np.bool_]

    @property
    def n_windows(self) -> NDArray[np.int64]:
        """Windows per text."""
        return np.bincount(self.owner, minlength=len(self.n_tokens)).astype(np.int64)


class TextPreparer:
    """Tokenise texts into windows of at most ``max_length`` tokens.

    Args:
        tokenizer: The model's tokenizer; it is copied, not changed.
        max_length: Maximum tokens per window, special tokens included.
        fallback_id: Token fed for a text that tokenises to nothing (a decoder without
            special tokens given ""), so that it still gets a real vector.
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int, fallback_id: int) -> None:
        self._source = tokenizer.to_str()
        self.max_length = max_length
        self.fallback_id = fallback_id
        self.n_special = tokenizer.num_special_tokens_to_add(is_pair=False)
        if max_length <= self.n_special:
            raise ValueError(
                f"max_length={max_length} leaves no room for text next to "
                f"{self.n_special} special tokens."
            )
        self._by_stride: dict[int, Tokenizer] = {}
        self._lock = threading.Lock()

    def _tokenizer(self, stride: int) -> Tokenizer:
        # One configured copy per stride: changing truncation on a shared tokenizer
        # is not safe while another thread encodes with it.
        with self._lock:
            tok = self._by_stride.get(stride)
            if tok is None:
                tok = Tokenizer.from_str(self._source)
                tok.no_padding()
                tok.enable_truncation(self.max_length, stride=stride)
                self._by_stride[stride] = tok
            return tok

    def check_stride(self, stride: int) -> None:
        """Raise ValueError if ``stride`` leaves no new tokens in each window."""
        room = self.max_length - self.n_special
        if stride >= room:
            raise ValueError(
                f"stride={stride} must be smaller than max_length minus special tokens "
                f"({room}) so that each window adds new tokens."
            )

    def tokenize(self, texts: Sequence[str], *, chunk: bool, stride: int) -> Tokenized:
        """Tokenise ``texts``; keep every window when ``chunk``, else the first only."""
        self.check_stride(stride)
        tokenizer = self._tokenizer(stride)
        windows: list[NDArray[np.int32]] = []
        owner: list[int] = []
        n_tokens = np.empty(len(texts), dtype=np.int64)
        # Encodings carry strings and offsets: tokenise in blocks and keep only the ids,
        # so memory stays flat however many texts come in.
        for start in range(0, len(texts), TOKENIZE_BLOCK):
            block = list(texts[start : start + TOKENIZE_BLOCK])
            # encode_batch fans out to a thread pool: worth it for many texts, not for one.
            if len(block) == 1:
                encodings = [tokenizer.encode(block[0], add_special_tokens=True)]
            else:
                encodings = tokenizer.encode_batch(block, add_special_tokens=True)
            for i, enc in enumerate(encodings, start=start):
                overflow: list[Encoding] = enc.overflowing
                # Each overflow window repeats `stride` tokens of the one before it.
                n_tokens[i] = len(enc.ids) + sum(
                    len(o.ids) - self.n_special - stride for o in overflow
                )
                for part in [enc, *overflow] if chunk else [enc]:
                    windows.append(np.asarray(part.ids or [self.fallback_id], dtype=np.int32))
                    owner.append(i)
        return Tokenized(
            windows=windows,
            owner=np.asarray(owner, dtype=np.int64),
            n_tokens=n_tokens,
            truncated=n_tokens > self.max_length,
        )

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Token counts of ``texts`` with special tokens, before any truncation."""
        return self.tokenize(check_texts(texts), chunk=False, stride=0).n_tokens
