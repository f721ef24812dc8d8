"""Reading texts, labelled tables and word lists from files (writing: :mod:`featx.outputs`).

Inputs are text lines, JSONL, CSV, TSV or Parquet (or stdin); every error names the file
and the line (the row, for Parquet).
"""

from __future__ import annotations

import csv
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from featx.errors import DroppedRecordsWarning
from featx.extras import require

INPUT_FORMATS = ("lines", "jsonl", "csv", "tsv", "parquet")
_FIELD_LIMIT = 2**31 - 1  # the largest csv.field_size_limit takes on every platform
_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


def pyarrow_with_parquet() -> Any:
    """Pyarrow with its parquet module loaded (the ``io`` extra), or an error naming it."""
    require("io", "Parquet")
    import pyarrow
    import pyarrow.parquet

    return pyarrow


def input_format(path: str | None, fmt: str | None) -> str:
    """The input format: ``fmt`` if given, else from the file suffix (text lines by default)."""
    if fmt is not None:
        if fmt not in INPUT_FORMATS:
            raise ValueError(
                f"Unknown input format {fmt!r}. Valid values: {', '.join(INPUT_FORMATS)}."
            )
        return fmt
    if path is None or path == "-":
        return "lines"
    return _BY_SUFFIX.get(Path(path).suffix.lower(), "lines")


def read_texts(
    path: str | None, *, fmt: str | None = None, column: str = "text", drop_empty: bool = False
) -> list[str]:
    """Read texts from a file, or from standard input when ``path`` is None or ``"-"``.

    Formats: ``lines`` (one text per line), ``jsonl`` (a string, or an object with
    ``column``, per line), ``csv``/``tsv`` (a header row with ``column``), ``parquet``.
    An empty or whitespace-only text is refused (it has nothing to embed), or dropped with
    a warning when ``drop_empty``.

    Raises:
        ValueError: If a line is not valid JSON, a column is missing, a value is not text
            or a text is empty.
        FileNotFoundError: If ``path`` does not exist.
    """
    name = path or "<stdin>"
    if input_format(path, fmt) == "lines":
        with _open_text(path) as f:
            texts = [line.rstrip("\r\n") for line in f]
        where = [f"{name}, line {i + 1}" for i in range(len(texts))]
    else:
        values, where = _table(path, [column], fmt)
        texts = [_text(v, w, column) for v, w in zip(values[column], where, strict=True)]
    keep = _non_empty([texts], where, [column], drop_empty, name)
    return [texts[i] for i in keep]


def read_columns(
    path: str | None, columns: Sequence[str], *, fmt: str | None = None
) -> dict[str, list[Any]]:
    """Read ``columns`` of a table (jsonl, csv, tsv or parquet) as lists of values.

    TSV is read without quoting (a field is everything between two tabs); a JSON line
    that is a bare string counts as a record with one field, ``"text"``.

    Raises:
        ValueError: If the format has no columns, a column is missing or a line is bad JSON.
        FileNotFoundError: If ``path`` does not exist.
    """
    return _table(path, columns, fmt)[0]


def _table(
    path: str | None, columns: Sequence[str], fmt: str | None
) -> tuple[dict[str, list[Any]], list[str]]:
    """The columns of a table and where each record is ("FILE, line N"; "row N" in Parquet)."""
    kind = input_format(path, fmt)
    name = path or "<stdin>"
    if kind == "lines":
        raise ValueError(
            f"{name} is read as plain lines, which have no columns such as "
            f"{', '.join(map(repr, columns))}. Use a .tsv, .csv, .jsonl or .parquet file."
        )
    if kind == "parquet":
        if path is None or path == "-":
            raise ValueError("Parquet input must be a file, not standard input.")
        table = pyarrow_with_parquet().parquet.read_table(path)
        _check_columns(name, columns, table.column_names)
        where = [f"{name}, row {i + 1}" for i in range(table.num_rows)]
        return {c: table.column(c).to_pylist() for c in columns}, where
    with _open_text(path) as f:
        if kind == "jsonl":
            lines, records = [], []
            for number, record in _jsonl(f, name):
                _check_columns(f"{name}, line {number}", columns, list(record))
                lines.append(number)
                records.append(record)
        else:
            lines, records = _delimited(f, name, columns, kind)
    where = [f"{name}, line {n}" for n in lines]
    return {c: [record[c] for record in records] for c in columns}, where


def _delimited(
    f: IO[str], name: str, columns: Sequence[str], kind: str
) -> tuple[list[int], list[dict[str, Any]]]:
    """The first line of each record of a CSV or TSV file, and the records.

    Every error names the file and its line (csv's own count: a quoted multi-line record
    does not shift it).
    """
    # Python's csv refuses a field over 131,072 characters; a long post is a text like any
    # other (the character limits are the encoder's, which windows or reports it).
    csv.field_size_limit(_FIELD_LIMIT)
    if kind == "tsv":  # no quoting: a field is everything between two tabs
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.DictReader(f)
    try:
        _check_columns(name, columns, list(reader.fieldnames or []))
        lines, records = [], []
        start = reader.line_num + 1
        for record in reader:
            if any(record[c] is None for c in columns):
                raise ValueError(
                    f"{name}, line {reader.line_num}: fewer fields than the header; "
                    f"each line needs {len(reader.fieldnames or [])} {kind.upper()} fields."
                )
            lines.append(start)
            records.append(record)
            start = reader.line_num + 1
    except csv.Error as err:
        hint = "quote fields that hold commas, quotes or newlines" if kind == "csv" else (
            "a TSV field ends at a tab or a newline"
        )  # fmt: skip
        raise ValueError(f"{name}, line {reader.line_num}: {err}; {hint}.") from err
    return lines, records


def read_labelled(
    path: str,
    text_cols: Sequence[str],
    label_col: str | None,
    *,
    fmt: str | None = None,
    label_sep: str | None = None,
    drop_empty: bool = False,
) -> tuple[Any, list[Any] | None]:
    """Texts (or an (n, 2) array of pairs) and labels from a table file.

    Args:
        path: The table (jsonl, csv, tsv or parquet).
        text_cols: One text column, or two for sentence pairs.
        label_col: The target column; None reads texts only.
        fmt: The format (default: from the suffix).
        label_sep: Split labels on this string: a multi-label target.
        drop_empty: Drop records with an empty or whitespace-only text (with a warning
            that counts them); by default such a record is refused.

    Raises:
        ValueError: A missing column, a value that is not text, an empty text, a missing
            label; each names the file and line.
    """
    if len(text_cols) not in (1, 2) or len(set(text_cols)) != len(text_cols):
        raise ValueError(
            f"Give one --text-col, or two different ones for sentence pairs; got {text_cols}."
        )
    if label_col in text_cols:
        raise ValueError(f"--label-col {label_col!r} is also a --text-col.")
    columns, where = _table(path, [*text_cols, *([label_col] if label_col else [])], fmt)
    for col in text_cols:
        for value, at in zip(columns[col], where, strict=True):
            _text(value, at, col)
    keep = _non_empty([columns[c] for c in text_cols], where, text_cols, drop_empty, path)
    texts: Any = [columns[text_cols[0]][i] for i in keep]
    if len(text_cols) == 2:
        second = [columns[text_cols[1]][i] for i in keep]
        texts = np.array([texts, second], dtype=object).reshape(2, -1).T
    if not label_col:
        return texts, None
    labels = [columns[label_col][i] for i in keep]
    missing = next((i for i, v in zip(keep, labels, strict=True) if v is None or v == ""), None)
    if missing is not None and label_sep is None:
        raise ValueError(f"{where[missing]}: no value in {label_col!r}.")
    if label_sep is not None:
        labels = [
            v if isinstance(v, list) else [x.strip() for x in str(v or "").split(label_sep) if x]
            for v in labels
        ]
    return texts, labels


def _non_empty(
    columns: Sequence[Sequence[str]],
    where: list[str],
    names: Sequence[str],
    drop: bool,
    path: str | None,
) -> list[int]:
    """The records whose texts all have a non-space character.

    An empty text has nothing to embed and its vector (the special tokens alone) would
    still get a label: refused, naming the first; with ``drop``, left out with a warning.
    """
    empty = [
        i for i, texts in enumerate(zip(*columns, strict=True)) if not all(t.strip() for t in texts)
    ]
    if empty and not drop:
        column = next(n for n, c in zip(names, columns, strict=True) if not c[empty[0]].strip())
        raise ValueError(
            f"{where[empty[0]]}: {column!r} is empty or only whitespace "
            f"({len(empty)} such record(s) in all); fill them, or drop them with --drop-empty "
            "(drop_empty=True)."
        )
    if empty:
        first = where[empty[0]].rsplit(", ", 1)[-1]
        warnings.warn(
            f"{path or '<stdin>'}: dropped {len(empty)} record(s) with an empty text "
            f"(the first at {first}).",
            DroppedRecordsWarning,
            stacklevel=3,
        )
    skipped = set(empty)
    return [i for i in range(len(where)) if i not in skipped]


def read_words(path: str) -> list[list[str]]:
    """Sentences of a CoNLL-style file (or stdin for ``-``), as word lists.

    One word per line (its first column), blank lines between sentences; ``-DOCSTART-``
    lines are skipped.
    """
    sentences: list[list[str]] = [[]]
    with _open_text(path) as handle:
        for line in handle:
            fields = line.split()
            if not fields:
                if sentences[-1]:
                    sentences.append([])
            elif fields[0] != "-DOCSTART-":
                sentences[-1].append(fields[0])
    return [s for s in sentences if s]


def _check_columns(where: str, wanted: Sequence[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValueError(
            f"{where} has no column {', '.join(map(repr, missing))}; columns: "
            f"{', '.join(present) or '(none)'}."
        )


@contextmanager
def _open_text(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdin
        return
    with open(path, encoding="utf-8", newline="") as f:
        yield f


def _jsonl(f: IO[str], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each JSON line's number and record (blank lines skipped)."""
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}, line {number}: not valid JSON ({err.msg}).") from err
        yield number, value if isinstance(value, dict) else {"text": value}


def _text(value: object, where: str, column: str) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{where}: {column!r} is {type(value).__name__} ({value!r:.40}), not text."
        )
    return value


def to_plain(value: Any) -> Any:
    """Numpy scalars as Python scalars and tuples as lists: values that serialise as such."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [to_plain(v) for v in value]
    return value
