"""Writing embeddings and prediction records: npy, Parquet, JSONL, CSV or TSV, atomically.

Every output refuses an existing file unless forced, and appears whole or not at all.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featx.files import atomic_write, refuse_existing
from featx.io import pyarrow_with_parquet

OUTPUT_FORMATS = ("npy", "parquet", "jsonl")


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
        pa = pyarrow_with_parquet()
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
