"""Reading texts from files and writing embeddings to files, atomically."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from featx._atomic import atomic_write

INPUT_FORMATS = ("lines", "jsonl", "csv", "tsv", "parquet")
OUTPUT_FORMATS = ("npy", "parquet", "jsonl")
_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise ImportError(
            "Parquet needs pyarrow. Install it with: pip install 'featx[io]'"
        ) from err
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
    kind = input_format(path, fmt)
    if kind == "parquet":
        if path is None or path == "-":
            raise ValueError("Parquet input must be a file, not standard input.")
        table = _pyarrow().parquet.read_table(path)
        if column not in table.column_names:
            raise ValueError(
                f"{path} has no column {column!r}; columns: {', '.join(table.column_names)}."
            )
        values = table.column(column).to_pylist()
        return [_text(v, f"{path}, row {i + 1}", column) for i, v in enumerate(values)]
    with _open_text(path) as f:
        if kind == "lines":
            return [line.rstrip("\r\n") for line in f]
        if kind == "jsonl":
            return list(_jsonl(f, path or "<stdin>", column))
        reader = csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",")
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ValueError(
                f"{path or '<stdin>'} has no column {column!r}; header: {reader.fieldnames}. "
                "Pick one with --column."
            )
        return [_text(row[column], f"{path}, line {i + 2}", column) for i, row in enumerate(reader)]


@contextmanager
def _open_text(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdin
        return
    with open(path, encoding="utf-8", newline="") as f:
        yield f


def _jsonl(f: IO[str], name: str, column: str) -> Iterator[str]:
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}, line {number}: not valid JSON ({err.msg}).") from err
        if isinstance(value, dict):
            if column not in value:
                raise ValueError(
                    f"{name}, line {number}: no field {column!r} (pick one with --column)."
                )
            value = value[column]
        yield _text(value, f"{name}, line {number}", column)


def _text(value: object, where: str, column: str) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{where}: {column!r} is {type(value).__name__} ({value!r:.40}), not text."
        )
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
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists. Choose another path or pass --force.")
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
