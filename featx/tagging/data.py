"""Sequence-labelling data: read CoNLL and JSONL files, convert tag schemes, score entities.

Every reader returns :class:`Sentence` records whose tags are IOB2 (``O``, ``B-PER``,
``I-PER``), whatever scheme the file used (IOB1, IOB2, BIOES or BILOU). :func:`entities`
and :func:`entity_scores` follow conlleval and seqeval's default (non-strict) mode, so
their figures match the numbers NER papers report.

Example:
    >>> tags = ["B-PER", "I-PER", "O", "I-LOC"]
    >>> entities(tags)
    [Entity(label='PER', start=0, end=2), Entity(label='LOC', start=3, end=4)]
    >>> to_iob2(["S-PER", "O", "B-LOC", "E-LOC"], "bioes")
    ['B-PER', 'O', 'B-LOC', 'I-LOC']
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx.words import split_words

SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}
_COLUMNS = re.compile(r"[ \t]+")
_DOCSTART = "-DOCSTART-"
_PARSED: dict[str, tuple[str, str | None]] = {"O": ("O", None)}


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


@dataclass(frozen=True)
class Entity:
    """A labelled run of words.

    Attributes:
        label: The entity type, e.g. ``"PER"``.
        start: Index of the first word.
        end: Index one past the last word.
    """

    label: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not self.label or any(c.isspace() for c in self.label):
            raise ValueError(
                f"Entity label {self.label!r} must be a non-empty name without spaces, e.g. 'PER'."
            )
        if not 0 <= self.start < self.end:
            raise ValueError(
                f"Entity {self.label!r} has start={self.start}, end={self.end}: need "
                "0 <= start < end (end is one past the last word)."
            )


def parse_tag(tag: str) -> tuple[str, str | None]:
    """Split a tag into its prefix and type.

    BILOU prefixes are read as their BIOES equivalents (``U`` as ``S``, ``L`` as ``E``).

    Args:
        tag: ``"O"`` or ``PREFIX-TYPE`` such as ``"B-PER"``.

    Returns:
        ``(prefix, type)``: ``("B", "PER")`` for ``"B-PER"``, ``("O", None)`` for ``"O"``.

    Raises:
        TypeError: If ``tag`` is not a str.
        ValueError: If ``tag`` is not ``O`` or ``X-TYPE`` with X one of B, I, E, S, U, L.
    """
    parsed = _PARSED.get(tag) if isinstance(tag, str) else None
    if parsed is not None:
        return parsed
    if not isinstance(tag, str):
        raise TypeError(f"A tag must be a str, got {type(tag).__name__} ({tag!r:.40}).")
    prefix, dash, label = tag.partition("-")
    if prefix not in _PREFIXES or not dash or not label or any(c.isspace() for c in label):
        hint = " (a zero, not the letter 'O'?)" if tag == "0" else ""
        raise ValueError(
            f"Invalid tag {tag!r}{hint}: expected 'O' or PREFIX-TYPE with PREFIX one of "
            "B, I, E, S (or BILOU's U, L), e.g. 'B-PER'."
        )
    parsed = (_PREFIXES[prefix], label)
    _PARSED[tag] = parsed
    return parsed


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert one sentence's tags from ``scheme`` to IOB2.

    IOB1 and IOB2 input is read as conlleval does: an ``I-X`` that does not continue an
    ``X`` entity starts one (and becomes ``B-X``). BIOES (or BILOU) input must be valid:
    ``B-X I-X* E-X`` or ``S-X``.

    Args:
        tags: The sentence's tags.
        scheme: ``"iob1"``, ``"iob2"`` or ``"bioes"``.

    Returns:
        IOB2 tags, one per input tag.

    Raises:
        ValueError: If ``scheme`` is unknown, a tag is invalid or does not belong to the
            scheme, or a BIOES sequence is malformed (the message gives the position).
    """
    scheme = scheme.lower() if isinstance(scheme, str) else scheme
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tag scheme {scheme!r}. Valid values: {', '.join(SCHEMES)}.")
    parsed = [parse_tag(tag) for tag in tags]
    if scheme == "bioes":
        problem = _bioes_problem(parsed)
        if problem is not None:
            j, reason = problem
            raise ValueError(f"Tag {tags[j]!r} at position {j}: {reason}")
    else:
        for j, (p, _) in enumerate(parsed):
            if p in ("E", "S"):
                raise ValueError(
                    f"Tag {tags[j]!r} at position {j} is not an IOB tag; "
                    "read E-/S- (or L-/U-) tags with scheme='bioes'."
                )
    return _convert(parsed)


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """Tell which scheme tagged a set of sentences.

    Any ``E-``/``S-`` (or BILOU ``L-``/``U-``) tag means ``"bioes"``, and then every
    entity must be valid BIOES. Otherwise ``"iob1"`` if some entity starts with ``I-``,
    else ``"iob2"``.

    Args:
        tag_sequences: The tags of every sentence of a file.

    Returns:
        ``"iob1"``, ``"iob2"`` or ``"bioes"``.

    Raises:
        ValueError: If a tag is invalid, or the sentences mix BIOES with IOB patterns
            (the message names the sentence and position of the first offending tag).
    """
    parsed = [[parse_tag(tag) for tag in tags] for tags in tag_sequences]
    scheme, problem, first_es = _detect(parsed)
    if problem is not None and first_es is not None:
        i, j, reason = problem
        es_i, es_j = first_es
        raise ValueError(
            f"Sentence {i}, tag {tag_sequences[i][j]!r} at position {j}: {reason} The data "
            f"is BIOES because of its E-/S- tags (first {tag_sequences[es_i][es_j]!r} "
            f"in sentence {es_i}, position {es_j})."
        )
    return scheme


def entities(tags: Sequence[str]) -> list[Entity]:
    """Extract the entities of one IOB2 sentence, as conlleval and seqeval do.

    ``B-X`` always starts an entity; ``I-X`` starts one unless it follows ``B-X`` or
    ``I-X``; an entity ends where the next tag is not ``I-`` of its type.

    Args:
        tags: IOB2 tags (an ``I-`` start is accepted).

    Returns:
        The entities, in order.

    Raises:
        ValueError: If a tag is invalid or is an ``E-``/``S-`` tag (convert with
            ``to_iob2(tags, "bioes")`` first).
    """
    found: list[Entity] = []
    label: str | None = None
    start = 0
    for j, tag in enumerate(tags):
        p, t = parse_tag(tag)
        if p in ("E", "S"):
            raise ValueError(
                f"Tag {tag!r} at position {j} is not IOB2; convert BIOES tags with "
                "to_iob2(tags, 'bioes') first."
            )
        if label is not None and (p != "I" or t != label):
            found.append(Entity(label, start, j))
            label = None
        if label is None and t is not None:
            label, start = t, j
    if label is not None:
        found.append(Entity(label, start, len(tags)))
    return found


def tags_from_entities(n_words: int, ents: Sequence[Entity]) -> list[str]:
    """Write entities as IOB2 tags.

    Args:
        n_words: Length of the sentence.
        ents: Non-overlapping entities within the sentence, in any order.

    Returns:
        ``n_words`` IOB2 tags.

    Raises:
        ValueError: If an entity ends past ``n_words`` or two entities overlap.
    """
    tags = ["O"] * n_words
    previous: Entity | None = None
    for ent in sorted(ents, key=lambda e: (e.start, e.end)):
        if ent.end > n_words:
            raise ValueError(f"{ent} ends past the sentence's {n_words} words.")
        if previous is not None and ent.start < previous.end:
            raise ValueError(f"{ent} overlaps {previous}; entities must not overlap.")
        tags[ent.start] = f"B-{ent.label}"
        for j in range(ent.start + 1, ent.end):
            tags[j] = f"I-{ent.label}"
        previous = ent
    return tags


def entity_scores(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Entity-level precision, recall and F1, as seqeval's default mode computes them.

    A predicted entity is correct when its label, start and end all match a true one.
    A zero denominator gives 0.0 (seqeval's ``zero_division`` default).

    Args:
        y_true: True IOB2 tags, one sequence per sentence.
        y_pred: Predicted IOB2 tags, same shape.

    Returns:
        ``{"micro": {...}, "macro": {...}, "per_type": {label: {...}}, "n_true",
        "n_pred", "n_correct"}``, each inner dict holding ``precision``, ``recall``,
        ``f1`` (floats in 0..1) and ``support`` (true entities). Macro averages are
        unweighted means over the types seen in the truth or the predictions.

    Raises:
        TypeError: If a sentence is a bare str instead of a sequence of tags.
        ValueError: If the sentence counts or a sentence's lengths differ, or a tag is
            invalid.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}; "
            "give one predicted tag sequence per true one."
        )
    true_by: dict[str, set[tuple[int, int, int]]] = {}
    pred_by: dict[str, set[tuple[int, int, int]]] = {}
    for i, (true_tags, pred_tags) in enumerate(zip(y_true, y_pred, strict=True)):
        for name, tags in (("y_true", true_tags), ("y_pred", pred_tags)):
            if isinstance(tags, str):
                raise TypeError(f"{name}[{i}] is a str; pass a list of tag lists, e.g. [tags].")
        if len(true_tags) != len(pred_tags):
            raise ValueError(
                f"Sentence {i} has {len(true_tags)} true tags but {len(pred_tags)} "
                "predicted; predict one tag per word."
            )
        for tags, by in ((true_tags, true_by), (pred_tags, pred_by)):
            for ent in entities(tags):
                by.setdefault(ent.label, set()).add((i, ent.start, ent.end))
    per_type = {}
    for label in sorted(true_by.keys() | pred_by.keys()):
        true_set, pred_set = true_by.get(label, set()), pred_by.get(label, set())
        per_type[label] = _prf(len(true_set & pred_set), len(true_set), len(pred_set))
    n_true = sum(len(s) for s in true_by.values())
    n_pred = sum(len(s) for s in pred_by.values())
    n_correct = sum(len(s & pred_by.get(label, set())) for label, s in true_by.items())
    macro: dict[str, Any] = {
        key: (sum(s[key] for s in per_type.values()) / len(per_type) if per_type else 0.0)
        for key in ("precision", "recall", "f1")
    }
    macro["support"] = n_true
    return {
        "micro": _prf(n_correct, n_true, n_pred),
        "macro": macro,
        "per_type": per_type,
        "n_true": n_true,
        "n_pred": n_pred,
        "n_correct": n_correct,
    }


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
    _, problem, first_es = _detect(parsed)
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
    return [
        Sentence(tuple(w), tuple(_convert(p)), line)
        for (line, w, _), p in zip(sentences, parsed, strict=True)
    ]


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


def _prf(n_correct: int, n_true: int, n_pred: int) -> dict[str, Any]:
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_true}


def _bioes_problem(parsed: Sequence[tuple[str, str | None]]) -> tuple[int, str] | None:
    """The position and reason of the first tag that breaks BIOES, or None."""
    open_type: str | None = None  # type of a B-/I- run still waiting for its E-
    for j, (p, t) in enumerate(parsed):
        if open_type is not None:
            if p in ("I", "E") and t == open_type:
                open_type = None if p == "E" else open_type
                continue
            return j - 1, (
                f"mixed tag schemes: this {open_type} entity is not closed by E-{open_type} "
                "(in BIOES a one-word entity is S-X and a longer one B-X I-X... E-X)."
            )
        if p in ("I", "E"):
            return j, (
                f"mixed tag schemes: in BIOES an {p}- tag must continue a B-{t} or I-{t}; "
                "start the entity with B- (or use S- for one word)."
            )
        if p == "B":
            open_type = t
    if open_type is not None:
        return len(parsed) - 1, (
            f"mixed tag schemes: this {open_type} entity is not closed by E-{open_type} "
            "at the end of the sentence (in BIOES a one-word entity is S-X)."
        )
    return None


def _detect(
    parsed: Sequence[Sequence[tuple[str, str | None]]],
) -> tuple[str, tuple[int, int, str] | None, tuple[int, int] | None]:
    """The scheme; the first (sentence, position, reason) breaking BIOES; the first E-/S-."""
    first_es = next(
        (
            (i, j)
            for i, tags in enumerate(parsed)
            for j, (p, _) in enumerate(tags)
            if p in ("E", "S")
        ),
        None,
    )
    if first_es is not None:
        for i, tags in enumerate(parsed):
            problem = _bioes_problem(tags)
            if problem is not None:
                return "bioes", (i, *problem), first_es
        return "bioes", None, first_es
    for tags in parsed:
        prev: str | None = None
        for p, t in tags:
            if p == "I" and t != prev:
                return "iob1", None, None
            prev = t
    return "iob2", None, None


def _convert(parsed: Sequence[tuple[str, str | None]]) -> list[str]:
    """IOB2 tags from parsed IOB1, IOB2 or valid BIOES tags."""
    out = []
    prev: str | None = None
    for p, t in parsed:
        if t is None:
            out.append("O")
        elif p in ("B", "S") or t != prev:
            out.append(f"B-{t}")
        else:
            out.append(f"I-{t}")
        prev = None if p in ("E", "S") else t
    return out
