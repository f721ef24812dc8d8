"""Sequence-labelling data: read CoNLL and JSONL files into :class:`Sentence` records.

Every reader returns :class:`Sentence` records whose tags are IOB2 (``O``, ``B-PER``,
``I-PER``), whatever scheme the file used (IOB1, IOB2, BIOES or BILOU): the scheme is
detected over the whole file and converted with :mod:`featx.tagging.tags`. Errors name
the file and line (``path:line: ...``).
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from featx.tagging.tags import Entity, convert_parsed, detect_parsed, parse_tag, tags_from_entities
from featx.words import split_words

_COLUMNS = re.compile(r"[ \t]+")
_DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class Sentence:
    """One labelled sentence.

    Attributes:
        words: The words (CoNLL tokens, or words split from ``text``).
        tags: One IOB2 tag per word.
        line: 1-based line where the sentence starts in its file.
        text: The original text (JSONL); None for CoNLL.
        spans: Character spans of the words in ``text`` (JSONL); None for CoNLL.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    line: int
    text: str | None = None
    spans: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.words) != len(self.tags):
            raise ValueError(
                f"Sentence at line {self.line} has {len(self.words)} words but "
                f"{len(self.tags)} tags; give exactly one tag per word."
            )
        if self.spans is not None and len(self.spans) != len(self.words):
            raise ValueError(
                f"Sentence at line {self.line} has {len(self.words)} words but "
                f"{len(self.spans)} spans; give exactly one span per word."
            )


def read_sentences(path: str | os.PathLike[str]) -> list[Sentence]:
    """Read a ``.jsonl``/``.json`` file with :func:`read_jsonl`, anything else as CoNLL.

    Args:
        path: The file.

    Returns:
        The sentences, tags in IOB2.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is malformed (the message starts with ``path:line:``).
    """
    if Path(path).suffix.lower() in (".jsonl", ".json"):
        return read_jsonl(path)
    return read_conll(path)


def read_conll(path: str | os.PathLike[str]) -> list[Sentence]:
    """Read a CoNLL file: one ``WORD ... TAG`` line per token, blank lines between sentences.

    Columns are separated by spaces or tabs; the word is the first column and the tag the
    last (CoNLL-2003 is ``word POS chunk NER``). ``-DOCSTART-`` lines are skipped. The
    tag scheme is detected over the whole file (:func:`detect_scheme`) and the tags are
    converted to IOB2.

    Args:
        path: The file (UTF-8, a BOM is tolerated).

    Returns:
        The sentences, tags in IOB2.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a line has fewer than two columns or a different column count
            than the first token line, a tag is invalid, the file mixes tag schemes, is
            not UTF-8 or holds no sentence. The message starts with ``path:line:``.
    """
    lines = _read_lines(path)
    sentences: list[tuple[int, list[str], list[str]]] = []
    parsed: list[list[tuple[str, str | None]]] = []
    words: list[str] = []
    tags: list[str] = []
    tags_parsed: list[tuple[str, str | None]] = []
    first_line = 0
    n_columns = 0
    columns_line = 0
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip(" \t\r\n")
        columns = _COLUMNS.split(line) if line else []
        if not columns or columns[0] == _DOCSTART:
            if words:
                sentences.append((first_line, words, tags))
                parsed.append(tags_parsed)
                words, tags, tags_parsed = [], [], []
            continue
        if len(columns) < 2:
            raise ValueError(
                f"{path}:{line_no}: expected 'WORD ... TAG' (columns separated by spaces "
                f"or tabs), got {raw!r:.80}."
            )
        if not n_columns:
            n_columns, columns_line = len(columns), line_no
        elif len(columns) != n_columns:
            raise ValueError(
                f"{path}:{line_no}: expected {n_columns} columns like the first token line "
                f"(line {columns_line}), got {len(columns)} in {raw!r:.80}."
            )
        if not columns[0].strip():
            raise ValueError(f"{path}:{line_no}: the word {columns[0]!r} is only whitespace.")
        try:
            tags_parsed.append(parse_tag(columns[-1]))
        except ValueError as err:
            raise ValueError(f"{path}:{line_no}: {err}") from err
        if not words:
            first_line = line_no
        words.append(columns[0])
        tags.append(columns[-1])
    if words:
        sentences.append((first_line, words, tags))
        parsed.append(tags_parsed)
    if not sentences:
        raise ValueError(
            f"{path}:{max(len(lines), 1)}: no sentences found; a CoNLL file holds "
            "'WORD ... TAG' lines with a blank line after each sentence."
        )
    _check_scheme(path, sentences, parsed)
    return [
        Sentence(tuple(w), tuple(convert_parsed(p)), line)
        for (line, w, _), p in zip(sentences, parsed, strict=True)
    ]


def _check_scheme(
    path: str | os.PathLike[str],
    sentences: list[tuple[int, list[str], list[str]]],
    parsed: list[list[tuple[str, str | None]]],
) -> None:
    """Refuse a file whose E-/S- tags make it BIOES but whose other tags break BIOES."""
    _, problem, first_es = detect_parsed(parsed)
    if problem is not None and first_es is not None:
        i, j, reason = problem
        es_line, es_tag = (
            sentences[first_es[0]][0] + first_es[1],
            sentences[first_es[0]][2][first_es[1]],
        )
        raise ValueError(
            f"{path}:{sentences[i][0] + j}: tag {sentences[i][2][j]!r}: {reason} The file is "
            f"BIOES because of its E-/S- tags (first {es_tag!r} at line {es_line})."
        )


def read_jsonl(path: str | os.PathLike[str]) -> list[Sentence]:
    """Read a JSONL file: one ``{"text": ..., "entities": [...]}`` object per line.

    Entities are ``{"start": s, "end": e, "label": "PER"}`` objects or ``[s, e, "PER"]``
    lists, with Python str character offsets (end exclusive); the key ``"spans"`` is
    accepted for ``"entities"``. Words come from :func:`featx.words.split_words`, and each
    entity must start and end on a word boundary. Blank lines are skipped.

    Args:
        path: The file (UTF-8, a BOM is tolerated).

    Returns:
        The sentences, tags in IOB2, with ``text`` and ``spans`` kept.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a line is not a JSON object of that shape, a text is empty, an
            entity is out of range, off word boundaries or overlaps another, the file
            is not UTF-8 or holds no sentence. The message starts with ``path:line:``.
    """
    lines = _read_lines(path)
    sentences = []
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            sentences.append(_jsonl_sentence(raw, line_no))
        except ValueError as err:
            raise ValueError(f"{path}:{line_no}: {err}") from err
    if not sentences:
        raise ValueError(
            f"{path}:{max(len(lines), 1)}: no sentences found; a JSONL file holds one "
            '{"text": ..., "entities": [...]} object per line.'
        )
    return sentences


def _read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The file's lines, decoded as UTF-8 (BOM dropped), with a line-numbered error if not."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"No such file: {os.fspath(path)!r}.") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{path}:{line_no}: the file is not UTF-8 (byte {data[err.start]:#04x} at offset "
            f"{err.start}); re-encode it, e.g. iconv -f latin1 -t utf-8."
        ) from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _jsonl_sentence(raw: str, line_no: int) -> Sentence:
    """Parse one JSONL line into a Sentence (errors without the path prefix)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON ({err.msg} at column {err.colno}).") from err
    if not isinstance(obj, dict):
        raise ValueError(
            f'expected a JSON object {{"text": ..., "entities": [...]}}, got {raw!r:.60}.'
        )
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError(f'"text" must be a string, got {text!r:.60}.')
    keys = [key for key in ("entities", "spans") if key in obj]
    if len(keys) != 1:
        raise ValueError(
            'give the entities under exactly one key, "entities" or "spans" '
            '(use "entities": [] for a sentence without entities).'
        )
    raw_ents = obj[keys[0]]
    if not isinstance(raw_ents, list):
        raise ValueError(f'"{keys[0]}" must be a list, got {raw_ents!r:.60}.')
    words, spans = split_words(text)
    if not words:
        raise ValueError(f"empty sentence: text {text!r:.60} holds no word.")
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    ents = []
    for item in raw_ents:
        start, end, label = _entity_fields(item)
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"entity {item!r} is out of range: need 0 <= start < end <= {len(text)} "
                "(the text's length; end is exclusive)."
            )
        first = bisect.bisect_left(starts, start)
        last = bisect.bisect_left(ends, end)
        if first == len(starts) or starts[first] != start:
            raise ValueError(_boundary_error(item, text, "start", start, starts))
        if last == len(ends) or ends[last] != end:
            raise ValueError(_boundary_error(item, text, "end", end, ends))
        try:
            ents.append((Entity(label, first, last + 1), item))
        except ValueError as err:
            raise ValueError(f"entity {item!r}: {err}") from err
    ents.sort(key=lambda pair: (pair[0].start, pair[0].end))
    for (a, item_a), (b, item_b) in zip(ents, ents[1:], strict=False):
        if b.start < a.end:
            raise ValueError(f"entities {item_a!r} and {item_b!r} overlap; keep one of them.")
    tags = tags_from_entities(len(words), [e for e, _ in ents])
    return Sentence(tuple(words), tuple(tags), line_no, text=text, spans=tuple(spans))


def _entity_fields(item: object) -> tuple[int, int, str]:
    """(start, end, label) of a JSONL entity given as a dict or a [start, end, label] list."""
    if isinstance(item, dict):
        fields = (item.get("start"), item.get("end"), item.get("label"))
    elif isinstance(item, list) and len(item) == 3:
        fields = (item[0], item[1], item[2])
    else:
        fields = (None, None, None)
    start, end, label = fields
    if (
        not isinstance(start, int)
        or not isinstance(end, int)
        or isinstance(start, bool)
        or isinstance(end, bool)
        or not isinstance(label, str)
    ):
        raise ValueError(
            f"entity {item!r:.80} must be {{'start': int, 'end': int, 'label': str}} "
            "or [start, end, label]."
        )
    return start, end, label


def _boundary_error(item: object, text: str, side: str, offset: int, bounds: list[int]) -> str:
    """Say that an entity's ``side`` is off word boundaries, naming the nearest ones."""
    k = bisect.bisect_left(bounds, offset)
    near = sorted({bounds[i] for i in (k - 1, k) if 0 <= i < len(bounds)})
    context = text[max(0, offset - 20) : offset] + "|" + text[offset : offset + 20]
    return (
        f"entity {item!r} does not {side} on a word boundary (offset {offset} is at the | "
        f"in {context!r}); the nearest word {side}s are at {' or '.join(map(str, near))}."
    )
