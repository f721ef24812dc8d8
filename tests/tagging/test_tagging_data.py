"""Tests for featx.tagging.data and featx.tagging.tags: readers, tag schemes, entities, scores."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from seqeval import metrics

from featx.tagging.data import Sentence, read_conll, read_jsonl, read_sentences
from featx.tagging.tags import (
    Entity,
    detect_scheme,
    entities,
    entity_scores,
    parse_tag,
    tags_from_entities,
    to_iob2,
)

TYPES = ["PER", "LOC", "ORG", "MISC"]


@pytest.fixture(scope="module")
def conll2003_dir(shared_data) -> Path:
    return shared_data("conll2003", "train.txt").parent


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _conll(rows: list[list[tuple[str, str]]]) -> str:
    return "\n\n".join("\n".join(f"{w} {t}" for w, t in sentence) for sentence in rows) + "\n"


def _random_entities(rng: np.random.Generator, n_words: int) -> list[Entity]:
    ents, j = [], 0
    while j < n_words:
        if rng.random() < 0.4:
            length = int(rng.integers(1, 4))
            end = min(n_words, j + length)
            ents.append(Entity(str(rng.choice(TYPES)), j, end))
            j = end
        else:
            j += 1
    return ents


def _random_lenient(rng: np.random.Generator, n_words: int) -> list[str]:
    """Random B-/I-/O tags: I- may start an entity or follow another type."""
    choices = ["O"] + [f"{p}-{t}" for p in "BI" for t in TYPES]
    return [str(rng.choice(choices)) for _ in range(n_words)]


# --- the real CoNLL-2003 copy -------------------------------------------------------------

# Sentence and token counts of the shared copy (no -DOCSTART- lines); entity counts are
# the ones published with the data (Tjong Kim Sang & De Meulder, 2003, table 2).
CONLL2003 = {
    "train": (14_041, 203_621, {"PER": 6_600, "LOC": 7_140, "ORG": 6_321, "MISC": 3_438}),
    "dev": (3_250, 51_362, {"PER": 1_842, "LOC": 1_837, "ORG": 1_341, "MISC": 922}),
    "test": (3_453, 46_435, {"PER": 1_617, "LOC": 1_668, "ORG": 1_661, "MISC": 702}),
}


@pytest.mark.parametrize("split", list(CONLL2003))
def test_conll2003_counts(conll2003_dir: Path, split: str) -> None:
    n_sentences, n_tokens, n_entities = CONLL2003[split]
    sentences = read_conll(conll2003_dir / f"{split}.txt")
    assert len(sentences) == n_sentences
    assert sum(len(s.words) for s in sentences) == n_tokens
    counts = Counter(e.label for s in sentences for e in entities(s.tags))
    assert dict(counts) == n_entities
    assert all(s.words and s.text is None and s.spans is None for s in sentences)


def test_conll2003_first_sentences_and_lines(conll2003_dir: Path) -> None:
    sentences = read_conll(conll2003_dir / "train.txt")
    first = sentences[0]
    assert first.words == (
        "EU",
        "rejects",
        "German",
        "call",
        "to",
        "boycott",
        "British",
        "lamb",
        ".",
    )
    assert first.tags == ("B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O")
    assert (first.line, sentences[1].line, sentences[2].line) == (1, 11, 14)
    assert sentences[1].tags == ("B-PER", "I-PER")
    # The file is already IOB2: reading it leaves every tag as written.
    raw = (conll2003_dir / "train.txt").read_text(encoding="utf-8").split()
    assert detect_scheme([s.tags for s in sentences]) == "iob2"
    assert [t for s in sentences for t in s.tags] == raw[3::4]


def test_conll2003_scores_itself_perfectly(conll2003_dir: Path) -> None:
    tags = [list(s.tags) for s in read_conll(conll2003_dir / "test.txt")]
    scores = entity_scores(tags, tags)
    assert scores["n_true"] == scores["n_pred"] == scores["n_correct"] == 5_648
    assert scores["micro"]["f1"] == 1.0
    assert scores["per_type"]["MISC"]["support"] == 702


# --- entity_scores against seqeval --------------------------------------------------------


def _seqeval_check(y_true: list[list[str]], y_pred: list[list[str]]) -> None:
    ours = entity_scores(y_true, y_pred)
    kwargs = {"zero_division": 0}
    assert ours["micro"]["precision"] == pytest.approx(
        metrics.precision_score(y_true, y_pred, **kwargs), abs=1e-9
    )
    assert ours["micro"]["recall"] == pytest.approx(
        metrics.recall_score(y_true, y_pred, **kwargs), abs=1e-9
    )
    assert ours["micro"]["f1"] == pytest.approx(
        metrics.f1_score(y_true, y_pred, **kwargs), abs=1e-9
    )
    report = metrics.classification_report(y_true, y_pred, output_dict=True, **kwargs)
    types = sorted(k for k in report if not k.endswith(" avg"))
    assert sorted(ours["per_type"]) == types
    for label in types:
        for key in ("precision", "recall", "f1"):
            theirs = report[label]["f1-score" if key == "f1" else key]
            assert ours["per_type"][label][key] == pytest.approx(theirs, abs=1e-9)
        assert ours["per_type"][label]["support"] == report[label]["support"]
    for key in ("precision", "recall", "f1"):
        theirs = report["macro avg"]["f1-score" if key == "f1" else key]
        assert ours["macro"][key] == pytest.approx(theirs, abs=1e-9)
        theirs = report["micro avg"]["f1-score" if key == "f1" else key]
        assert ours["micro"][key] == pytest.approx(theirs, abs=1e-9)
    assert ours["n_true"] == report["micro avg"]["support"]


@pytest.mark.parametrize("lenient", [False, True], ids=["iob2", "lenient-I"])
def test_entity_scores_match_seqeval(lenient: bool) -> None:
    rng = np.random.default_rng(0 if lenient else 1)
    checked = 0
    for _ in range(300):
        lengths = rng.integers(0, 12, size=int(rng.integers(1, 8)))
        if lenient:
            y_true = [_random_lenient(rng, int(n)) for n in lengths]
            y_pred = [_random_lenient(rng, int(n)) for n in lengths]
        else:
            y_true = [tags_from_entities(int(n), _random_entities(rng, int(n))) for n in lengths]
            # Predictions: the truth with some tags flipped, so that many entities match.
            y_pred = [
                [t if rng.random() < 0.8 else str(rng.choice(["O", "B-PER", "I-LOC"])) for t in s]
                for s in y_true
            ]
        if not any(entities(s) for s in y_true + y_pred):
            continue  # seqeval averages over no types at all: nothing to compare
        _seqeval_check(y_true, y_pred)
        checked += 1
    assert checked > 250


def test_entity_scores_edge_cases_match_seqeval() -> None:
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "B-ORG"]]
    _seqeval_check(y_true, [["O"] * 4, ["O", "O"]])  # nothing predicted
    _seqeval_check([["O"] * 4, ["O", "O"]], y_true)  # nothing true
    _seqeval_check(y_true, y_true)
    _seqeval_check([["B-PER", "I-PER"]], [["B-PER", "B-PER"]])  # boundaries must match


def test_entity_scores_values_by_hand() -> None:
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    scores = entity_scores(y_true, y_pred)
    assert (scores["n_true"], scores["n_pred"], scores["n_correct"]) == (3, 3, 2)
    assert scores["micro"]["f1"] == pytest.approx(2 / 3)
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["ORG"]["precision"] == 0.5
    assert scores["macro"]["f1"] == pytest.approx((1.0 + 0.0 + 2 / 3) / 3)
    nothing = entity_scores(y_true, [["O"] * 4, ["O", "O"]])
    assert nothing["micro"]["precision"] == 0.0 and nothing["n_pred"] == 0


def test_entity_scores_errors() -> None:
    with pytest.raises(ValueError, match="Sentence 1 has 2 true tags but 3 predicted"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O", "O", "O"]])
    with pytest.raises(ValueError, match="y_true has 2 sentences but y_pred has 1"):
        entity_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(TypeError, match=r"y_pred\[0\] is a str"):
        entity_scores([["O"]], ["O"])
    with pytest.raises(ValueError, match="Invalid tag 'B_PER'"):
        entity_scores([["B_PER"]], [["O"]])


# --- tags, schemes and entities -----------------------------------------------------------


def test_parse_tag() -> None:
    assert parse_tag("B-PER") == ("B", "PER")
    assert parse_tag("O") == ("O", None)
    assert parse_tag("I-WORK-OF-ART") == ("I", "WORK-OF-ART")
    assert parse_tag("U-LOC") == ("S", "LOC")
    assert parse_tag("L-LOC") == ("E", "LOC")
    for bad in ["B", "B-", "b-PER", "PER", "X-PER", "B_PER", "B-NEW YORK", ""]:
        with pytest.raises(ValueError, match="expected 'O' or PREFIX-TYPE"):
            parse_tag(bad)
    with pytest.raises(ValueError, match="a zero, not the letter 'O'"):
        parse_tag("0")
    with pytest.raises(TypeError, match="must be a str"):
        parse_tag(1)  # type: ignore[arg-type]


def test_entities_follow_conlleval() -> None:
    tags = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "B-ORG", "I-ORG", "O"]
    assert entities(tags) == [
        Entity("PER", 0, 2),
        Entity("PER", 2, 3),
        Entity("LOC", 4, 5),
        Entity("ORG", 5, 6),
        Entity("ORG", 6, 8),
    ]
    assert entities(["O", "O"]) == [] and entities([]) == []
    assert entities(["B-MISC", "I-MISC"]) == [Entity("MISC", 0, 2)]
    with pytest.raises(ValueError, match="to_iob2"):
        entities(["S-PER"])


def test_to_iob2() -> None:
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "iob1") == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
    ]
    assert to_iob2(["B-PER", "I-PER", "O"], "iob2") == ["B-PER", "I-PER", "O"]
    assert to_iob2(["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"], "BIOES") == [
        "B-PER",
        "B-LOC",
        "I-LOC",
        "I-LOC",
        "B-LOC",
    ]
    assert to_iob2(["U-PER", "B-LOC", "L-LOC"], "bioes") == ["B-PER", "B-LOC", "I-LOC"]
    with pytest.raises(ValueError, match="Unknown tag scheme 'bilou'. Valid values: iob1"):
        to_iob2(["O"], "bilou")
    with pytest.raises(ValueError, match="position 1 is not an IOB tag"):
        to_iob2(["O", "S-PER"], "iob2")
    with pytest.raises(ValueError, match="'B-PER' at position 0: mixed tag schemes"):
        to_iob2(["B-PER", "O"], "bioes")
    with pytest.raises(ValueError, match="'E-PER' at position 1: mixed tag schemes"):
        to_iob2(["O", "E-PER"], "bioes")


def test_detect_scheme() -> None:
    assert detect_scheme([["B-PER", "I-PER", "O"], ["B-LOC", "B-LOC"]]) == "iob2"
    assert detect_scheme([["B-PER", "I-PER"], ["O", "I-LOC"]]) == "iob1"
    assert detect_scheme([["I-PER", "I-ORG"]]) == "iob1"
    assert detect_scheme([["S-PER", "O"], ["B-LOC", "I-LOC", "E-LOC"]]) == "bioes"
    assert detect_scheme([["U-PER", "B-LOC", "L-LOC"]]) == "bioes"
    assert detect_scheme([["O"], []]) == "iob2"
    with pytest.raises(ValueError, match=r"Sentence 1, tag 'B-LOC' at position 0: mixed"):
        detect_scheme([["S-PER"], ["B-LOC", "O"]])
    # The unclosed B-PER comes first, so it is the tag named.
    with pytest.raises(ValueError, match=r"Sentence 0, tag 'B-PER' at position 0: mixed"):
        detect_scheme([["B-PER", "I-LOC", "E-LOC"]])
    with pytest.raises(ValueError, match=r"Sentence 0, tag 'I-LOC' at position 1: mixed"):
        detect_scheme([["O", "I-LOC", "E-LOC"]])


def test_tags_from_entities_inverts_entities_on_random_iob2() -> None:
    rng = np.random.default_rng(2)
    for _ in range(500):
        n = int(rng.integers(0, 15))
        ents = _random_entities(rng, n)
        tags = tags_from_entities(n, ents)
        assert entities(tags) == ents
        assert tags_from_entities(n, entities(tags)) == tags
        # A lenient sequence comes back as its IOB2 normal form.
        lenient = _random_lenient(rng, n)
        assert tags_from_entities(n, entities(lenient)) == to_iob2(lenient, "iob1")


def test_tags_from_entities_inverts_entities_on_conll2003(conll2003_dir: Path) -> None:
    sentences = read_conll(conll2003_dir / "dev.txt")
    assert all(
        tuple(tags_from_entities(len(s.tags), entities(s.tags))) == s.tags for s in sentences
    )


def test_tags_from_entities_errors_and_records() -> None:
    assert tags_from_entities(3, [Entity("LOC", 2, 3), Entity("PER", 0, 2)]) == [
        "B-PER",
        "I-PER",
        "B-LOC",
    ]
    with pytest.raises(ValueError, match="overlaps"):
        tags_from_entities(4, [Entity("PER", 0, 2), Entity("LOC", 1, 3)])
    with pytest.raises(ValueError, match="ends past the sentence's 2 words"):
        tags_from_entities(2, [Entity("PER", 1, 3)])
    with pytest.raises(ValueError, match="need 0 <= start < end"):
        Entity("PER", 2, 2)
    with pytest.raises(ValueError, match="non-empty name without spaces"):
        Entity("NEW YORK", 0, 1)
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        Sentence(("a", "b"), ("O",), line=1)


# --- CoNLL files --------------------------------------------------------------------------

ROWS = [
    # (word, IOB2, IOB1, BIOES): single-word, multi-word, adjacent same-type entities,
    # adjacent different types.
    [
        ("John", "B-PER", "I-PER", "S-PER"),
        ("lives", "O", "O", "O"),
        ("in", "O", "O", "O"),
        ("New", "B-LOC", "I-LOC", "B-LOC"),
        ("York", "I-LOC", "I-LOC", "I-LOC"),
        ("City", "I-LOC", "I-LOC", "E-LOC"),
    ],
    [
        ("Paris", "B-LOC", "I-LOC", "S-LOC"),
        ("London", "B-LOC", "B-LOC", "S-LOC"),
        ("Acme", "B-ORG", "I-ORG", "B-ORG"),
        ("Corp", "I-ORG", "I-ORG", "E-ORG"),
        ("Mary", "B-PER", "I-PER", "B-PER"),
        ("Ann", "I-PER", "I-PER", "E-PER"),
        ("Lee", "B-PER", "B-PER", "S-PER"),
    ],
    [("Hi", "O", "O", "O")],
]
BILOU = {"S": "U", "E": "L"}


@pytest.mark.parametrize("column", [2, 3, 4], ids=["iob1", "bioes", "bilou"])
def test_schemes_read_to_the_same_iob2(tmp_path: Path, column: int) -> None:
    def convert(tag: str) -> str:
        if column == 4 and tag[0] in BILOU:
            return BILOU[tag[0]] + tag[1:]
        return tag

    reference = read_conll(
        _write(tmp_path, "iob2.txt", _conll([[(r[0], r[1]) for r in s] for s in ROWS]))
    )
    other = _conll([[(r[0], convert(r[min(column, 3)])) for r in s] for s in ROWS])
    sentences = read_conll(_write(tmp_path, "other.txt", other))
    assert sentences == reference
    assert [list(s.tags) for s in reference] == [[r[1] for r in s] for s in ROWS]
    assert entities(reference[1].tags) == [
        Entity("LOC", 0, 1),
        Entity("LOC", 1, 2),
        Entity("ORG", 2, 4),
        Entity("PER", 4, 6),
        Entity("PER", 6, 7),
    ]


def test_conll_layout_tolerance(tmp_path: Path) -> None:
    text = (
        "\ufeff-DOCSTART- -X- -X- O\n"
        "\n"
        "EU\tNNP\tB-NP\tB-ORG\r\n"
        "rejects  VBZ B-VP   O\n"
        "\n\n\n"
        "-DOCSTART- -X- -X- O\n"
        "Peter NNP B-NP B-PER\n"
        "Blackburn NNP I-NP I-PER"  # no final newline
    )
    sentences = read_conll(_write(tmp_path, "data.conll", text))
    assert [s.words for s in sentences] == [("EU", "rejects"), ("Peter", "Blackburn")]
    assert [s.tags for s in sentences] == [("B-ORG", "O"), ("B-PER", "I-PER")]
    assert [s.line for s in sentences] == [3, 9]
    assert read_sentences(tmp_path / "data.conll") == sentences


def test_conll_two_columns_and_doc_start_mid_sentence(tmp_path: Path) -> None:
    text = "a O\nb B-X\n-DOCSTART- O\nc I-X\n"
    sentences = read_conll(_write(tmp_path, "d.txt", text))
    # -DOCSTART- ends the sentence, so the I-X after it starts a new entity (IOB1 file).
    assert [s.tags for s in sentences] == [("O", "B-X"), ("B-X",)]
    assert [s.line for s in sentences] == [1, 4]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a O\nb O\n\nlonely\nc O\n", 4, "expected 'WORD ... TAG'"),
        ("a NN O\nb NN O\n\nc O\n", 4, "expected 3 columns like the first token line (line 1)"),
        ("a NN O\nb NN x O\n", 2, "expected 3 columns"),
        ("a O\nb B_PER\n", 2, "Invalid tag 'B_PER'"),
        ("a O\nb b-per\n", 2, "Invalid tag 'b-per'"),
        ("a 0\n", 1, "a zero, not the letter 'O'"),
        # S- tags make the file BIOES; the IOB2-only "B-LOC O" on line 4 is the first
        # offending token.
        ("a S-PER\nb O\n\nc B-LOC\nd O\n\ne S-ORG\n", 4, "tag 'B-LOC': mixed tag schemes"),
        ("a B-PER\nb E-PER\n\nc O\nd I-LOC\n", 5, "tag 'I-LOC': mixed tag schemes"),
        ("a B-PER\nb I-PER\n\nc S-LOC\n", 2, "first 'S-LOC' at line 4"),
        ("", 1, "no sentences found"),
        ("\n\n\n", 3, "no sentences found"),
        ("-DOCSTART- -X- -X- O\n\n", 2, "no sentences found"),
    ],
)
def test_conll_errors_name_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = _write(tmp_path, "bad.txt", text)
    with pytest.raises(ValueError) as info:
        read_conll(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message


def test_conll_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("a O\nb O\nCafé O\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:3: the file is not UTF-8"):
        read_conll(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_conll(path)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_sentences(tmp_path / "nope.jsonl")


# --- JSONL files --------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    records = [
        {
            "text": "John Smith lives in New York.",
            "entities": [
                {"start": 20, "end": 28, "label": "LOC"},
                {"start": 0, "end": 10, "label": "PER"},
            ],
        },
        {"text": "Nothing here", "entities": []},
        {"text": "Paris, London", "spans": [[0, 5, "LOC"], [7, 13, "LOC"]]},
    ]
    lines = [json.dumps(records[0]), "", "   ", json.dumps(records[1]), json.dumps(records[2])]
    path = _write(tmp_path, "data.jsonl", "\n".join(lines) + "\n")
    sentences = read_jsonl(path)
    assert [s.line for s in sentences] == [1, 4, 5]
    first = sentences[0]
    assert first.words == ("John", "Smith", "lives", "in", "New", "York", ".")
    assert first.tags == ("B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O")
    assert first.text == records[0]["text"]
    assert first.spans is not None
    assert [first.text[s:e] for s, e in first.spans] == list(first.words)
    assert sentences[1].tags == ("O", "O")
    assert sentences[2].tags == ("B-LOC", "O", "B-LOC")
    # entities -> tags -> entities, and back to the same character offsets.
    for sentence, record in zip(sentences, records, strict=True):
        ents = entities(sentence.tags)
        assert tags_from_entities(len(sentence.words), ents) == list(sentence.tags)
        assert sentence.spans is not None
        spans = sorted(
            (sentence.spans[e.start][0], sentence.spans[e.end - 1][1], e.label) for e in ents
        )
        given = record.get("entities", record.get("spans"))
        assert isinstance(given, list)
        expected = sorted(
            (g["start"], g["end"], g["label"]) if isinstance(g, dict) else tuple(g) for g in given
        )
        assert spans == expected
    assert read_sentences(path) == sentences
    json_path = _write(tmp_path, "data.json", path.read_text(encoding="utf-8"))
    assert read_sentences(json_path) == sentences


def test_jsonl_bom_and_unicode_offsets(tmp_path: Path) -> None:
    record = {"text": "Café in Zürich", "entities": [[8, 14, "LOC"]]}
    path = tmp_path / "u.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(record, ensure_ascii=False).encode("utf-8"))
    (sentence,) = read_jsonl(path)
    assert sentence.words == ("Café", "in", "Zürich")
    assert sentence.tags == ("O", "O", "B-LOC")


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (
            {"text": "John Smith", "entities": [[1, 10, "PER"]]},
            "does not start on a word boundary (offset 1 is at the | in 'J|ohn Smith'); "
            "the nearest word starts are at 0 or 5",
        ),
        (
            {"text": "John Smith", "entities": [[0, 7, "PER"]]},
            "does not end on a word boundary (offset 7 is at the | in 'John Sm|ith'); "
            "the nearest word ends are at 4 or 10",
        ),
        ({"text": "John Smith", "entities": [[0, 4, "PER"], [0, 10, "PER"]]}, "overlap"),
        ({"text": "John Smith", "entities": [[0, 11, "PER"]]}, "out of range"),
        ({"text": "John Smith", "entities": [[4, 0, "PER"]]}, "out of range"),
        ({"text": "", "entities": []}, "empty sentence"),
        ({"text": "  \t ", "entities": []}, "empty sentence"),
        ({"text": "John", "entities": [[0, 4]]}, "must be {'start': int"),
        ({"text": "John", "entities": [[0, 4, "NEW YORK"]]}, "non-empty name without spaces"),
        ({"text": "John"}, 'exactly one key, "entities" or "spans"'),
        ({"text": 3, "entities": []}, '"text" must be a string'),
        (["John"], "expected a JSON object"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, record: object, fragment: str) -> None:
    ok = json.dumps({"text": "fine", "entities": []})
    path = _write(tmp_path, "bad.jsonl", f"{ok}\n\n{json.dumps(record)}\n{ok}\n")
    with pytest.raises(ValueError) as info:
        read_jsonl(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: "), message
    assert fragment in message


def test_jsonl_bad_json_and_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.jsonl", '{"text": "a", "entities": []}\n{"text": "b",\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON"):
        read_jsonl(path)
    empty = _write(tmp_path, "empty.jsonl", "\n\n")
    with pytest.raises(ValueError, match=r"empty\.jsonl:2: no sentences found"):
        read_sentences(empty)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"text": "ok", "entities": []}\n{"text": "é"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.jsonl:2: the file is not UTF-8"):
        read_jsonl(latin)
