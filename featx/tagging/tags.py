"""Tag schemes and entities: parse, convert and score sequence-labelling tags.

Tags are ``O`` or ``PREFIX-TYPE`` (``B-PER``). :func:`to_iob2` converts a sentence's tags
from IOB1, IOB2 or BIOES (or BILOU) to IOB2, and :func:`detect_scheme` tells which scheme
tagged a set of sentences. :func:`entities` and :func:`entity_scores` follow conlleval and
seqeval's default (non-strict) mode, so their figures match the numbers NER papers report.

Example:
    >>> tags = ["B-PER", "I-PER", "O", "I-LOC"]
    >>> entities(tags)
    [Entity(label='PER', start=0, end=2), Entity(label='LOC', start=3, end=4)]
    >>> to_iob2(["S-PER", "O", "B-LOC", "E-LOC"], "bioes")
    ['B-PER', 'O', 'B-LOC', 'I-LOC']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}
_PARSED: dict[str, tuple[str, str | None]] = {"O": ("O", None)}


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
    return convert_parsed(parsed)


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
    scheme, problem, first_es = detect_parsed(parsed)
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


def detect_parsed(
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


def convert_parsed(parsed: Sequence[tuple[str, str | None]]) -> list[str]:
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


def tag_order(y: Sequence[Sequence[str]]) -> list[str]:
    """The tag order of a tagger: O, then B- and I- of every entity type seen, types sorted."""
    types = sorted({t for tags in y for t in (parse_tag(x)[1] for x in tags) if t})
    return ["O", *(f"{p}-{t}" for t in types for p in ("B", "I"))]


def format_scores(scores: dict[str, Any]) -> str:
    """Per-type and micro/macro precision, recall and F1 as an aligned text table."""
    lines = [f"{'type':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    rows = [
        *sorted(scores["per_type"].items()),
        ("micro", scores["micro"]),
        ("macro", scores["macro"]),
    ]
    for name, m in rows:
        lines.append(
            f"{name:<8} {100 * m['precision']:>9.2f} {100 * m['recall']:>7.2f} "
            f"{100 * m['f1']:>7.2f} {m['support']:>8}"
        )
    return "\n".join(lines)
