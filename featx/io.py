"""Reading texts, labelled tables and word lists from files; writing embeddings and records.

Inputs are text lines, JSONL, CSV, TSV or Parquet (or stdin); every error names the file
and the record or line. Outputs are written atomically and refuse an existing file unless
forced.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from featx.extras import require
from featx.files import atomic_write, refuse_existing

INPUT_FORMATS = ("lines", "jsonl", "csv", "tsv", "parquet")
_FIELD_LIMIT = 2**31 - 1  # the largest csv.field_size_limit takes on every platform
OUTPUT_FORMATS = ("npy", "parquet", "jsonl")
_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


def _pyarrow() -> Any:
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


def read_texts(path: str | None, *, fmt: str | None = None, column: str = "text") -> list[str]:
    """Read texts from a file, or from standard input when ``path`` is None or ``"-"``.

    Formats: ``lines`` (one text per line), ``jsonl`` (a string, or an object with
    ``column``, per line), ``csv``/``tsv`` (a header row with ``column``), ``parquet``.

    Raises:
        ValueError: If a line is not valid JSON, a column is missing, or a value is not text.
        FileNotFoundError: If ``path`` does not exist.
    """
    if input_format(path, fmt) == "lines":
        with _open_text(path) as f:
            return [line.rstrip("\r\n") for line in f]
    values = read_columns(path, [column], fmt=fmt)[column]
    return [_text(v, f"{path or '<stdin>'}, record {i + 1}", column) for i, v in enumerate(values)]


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
        table = _pyarrow().parquet.read_table(path)
        _check_columns(name, columns, table.column_names)
        return {c: table.column(c).to_pylist() for c in columns}
    with _open_text(path) as f:
        if kind == "jsonl":
            records = list(_jsonl(f, name))
            for i, record in enumerate(records):
                _check_columns(f"{name}, record {i + 1}", columns, list(record))
        else:
            records = _delimited(f, name, columns, kind)
    return {c: [record[c] for record in records] for c in columns}


def _delimited(f: IO[str], name: str, columns: Sequence[str], kind: str) -> list[dict[str, Any]]:
    """The records of a CSV or TSV file; every error names the file and its line."""
    # Python's csv refuses a field over 131,072 characters; a long post is a text like any
    # other (the character limits are the encoder's, which windows or reports it).
    csv.field_size_limit(_FIELD_LIMIT)
    if kind == "tsv":  # no quoting: a field is everything between two tabs
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.DictReader(f)
    try:
        _check_columns(name, columns, list(reader.fieldnames or []))
        records = []
        for record in reader:
            if any(record[c] is None for c in columns):
                raise ValueError(
                    f"{name}, line {reader.line_num}: fewer fields than the header; "
                    f"each line needs {len(reader.fieldnames or [])} {kind.upper()} fields."
                )
            records.append(record)
    except csv.Error as err:
        hint = "quote fields that hold commas, quotes or newlines" if kind == "csv" else (
            "a TSV field ends at a tab or a newline"
        )  # fmt: skip
        raise ValueError(f"{name}, line {reader.line_num}: {err}; {hint}.") from err
    return records


def read_labelled(
    path: str,
    text_cols: Sequence[str],
    label_col: str | None,
    *,
    fmt: str | None = None,
    label_sep: str | None = None,
) -> tuple[Any, list[Any] | None]:
    """Texts (or an (n, 2) array of pairs) and labels from a table file.

    Args:
        path: The table (jsonl, csv, tsv or parquet).
        text_cols: One text column, or two for sentence pairs.
        label_col: The target column; None reads texts only.
        fmt: The format (default: from the suffix).
        label_sep: Split labels on this string: a multi-label target.

    Raises:
        ValueError: A missing column, a value that is not text, a missing label.
    """
    if len(text_cols) not in (1, 2) or len(set(text_cols)) != len(text_cols):
        raise ValueError(
            f"Give one --text-col, or two different ones for sentence pairs; got {text_cols}."
        )
    if label_col in text_cols:
        raise ValueError(f"--label-col {label_col!r} is also a --text-col.")
    columns = read_columns(path, [*text_cols, *([label_col] if label_col else [])], fmt=fmt)
    for col in text_cols:
        bad = next((i for i, v in enumerate(columns[col]) if not isinstance(v, str)), None)
        if bad is not None:
            raise ValueError(f"{path}, record {bad + 1}: {col!r} is not text.")
    texts: Any = columns[text_cols[0]]
    if len(text_cols) == 2:
        texts = np.array([columns[text_cols[0]], columns[text_cols[1]]], dtype=object).T
    if not label_col:
        return texts, None
    labels = columns[label_col]
    missing = next((i for i, v in enumerate(labels) if v is None or v == ""), None)
    if missing is not None and label_sep is None:
        raise ValueError(f"{path}, record {missing + 1}: no value in {label_col!r}.")
    if label_sep is not None:
        labels = [
            v if isinstance(v, list) else [x.strip() for x in str(v or "").split(label_sep) if x]
            for v in labels
        ]
    return texts, labels


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


def _jsonl(f: IO[str], name: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}, line {number}: not valid JSON ({err.msg}).") from err
        yield value if isinstance(value, dict) else {"text": value}


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


def output_format(path: str) -> str:
    """The output format from the suffix of ``path``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(
            f"Cannot tell the output format of {path!r}; use a file ending in "
            f"{', '.join('.' + f for f in OUTPUT_FORMATS)}."
        )
    return suffix


def jsonl_records(
    embeddings: NDArray[np.float32], n_tokens: NDArray[np.int64], truncated: NDArray[np.bool_]
) -> Iterator[str]:
    """One JSON line per text: its index, embedding, token count and truncation flag."""
    for i, row in enumerate(embeddings):
        yield (
            json.dumps(
                {
                    "index": i,
                    "embedding": [float(x) for x in row],
                    "n_tokens": int(n_tokens[i]),
                    "truncated": bool(truncated[i]),
                }
            )
            + "\n"
        )


def write_embeddings(
    path: str,
    embeddings: NDArray[np.float32],
    n_tokens: NDArray[np.int64],
    truncated: NDArray[np.bool_],
    *,
    force: bool = False,
) -> None:
    """Write embeddings to ``path`` (.npy, .parquet or .jsonl) atomically.

    Raises:
        FileExistsError: If ``path`` exists and ``force`` is false.
    """
    kind = output_format(path)
    target = Path(path)
    refuse_existing(target, force, hint="pass --force")
    if kind == "npy":
        atomic_write(target, lambda f: np.save(f, embeddings))
    elif kind == "jsonl":
        records = jsonl_records(embeddings, n_tokens, truncated)
        atomic_write(target, lambda f: f.writelines(r.encode() for r in records))
    else:
        pa = _pyarrow()
        table = pa.table(
            {
                "embedding": pa.array(list(embeddings), type=pa.list_(pa.float32())),
                "n_tokens": pa.array(n_tokens, type=pa.int64()),
                "truncated": pa.array(truncated, type=pa.bool_()),
            }
        )
        atomic_write(target, lambda f: pa.parquet.write_table(table, f))


RECORD_FORMATS = ("jsonl", "csv", "tsv")


def records_format(output: str | None) -> str:
    """The format of a records file by its suffix (JSONL on stdout when None)."""
    if output is None:
        return "jsonl"
    kind = Path(output).suffix.lower().lstrip(".")
    if kind not in RECORD_FORMATS:
        raise ValueError(f"Cannot tell the output format of {output!r}; use .jsonl, .csv or .tsv.")
    return kind


def write_records(rows: Sequence[dict[str, Any]], output: str | None) -> None:
    """Predictions as JSONL (one object per line), or CSV/TSV with a column per probability.

    Writes to stdout when ``output`` is None, else atomically to ``output``.
    """
    kind = records_format(output)
    if kind == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        flat = [_flat_record(r) for r in rows]
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            fieldnames=list(flat[0]) if flat else ["index"],
            delimiter="\t" if kind == "tsv" else ",",
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(flat)
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(Path(output), lambda f: f.write(text.encode("utf-8")))


def _flat_record(row: dict[str, Any]) -> dict[str, Any]:
    """One table row: label lists joined by commas, entities as JSON, ``p_<label>`` columns."""
    record = {k: v for k, v in row.items() if k != "probabilities"}
    if isinstance(record.get("labels"), list):
        record["labels"] = ",".join(map(str, record["labels"]))
    if "entities" in record:
        record["entities"] = json.dumps(record["entities"], ensure_ascii=False)
    record.update({f"p_{k}": v for k, v in row.get("probabilities", {}).items()})
    return record
