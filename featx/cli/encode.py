"""``featx export | embed | info | models | cache``: artifacts and embeddings from the shell."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import click

from featx.cli import data, options
from featx.cli.options import friendly_errors
from featx.cli.values import choices
from featx.config import Exporter
from featx.errors import TruncationWarning
from featx.exporter.parity import MIN_COSINE, MIN_MEAN_COSINE
from featx.exporter.plan import DEFAULT_OPSET


@click.command()
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--quantize/--no-quantize",
    "--int8/--no-int8",
    default=True,
    show_default=True,
    help="Build the int8 graph (default on CPU if it passes the gate).",
)
@click.option("--fp16", is_flag=True, help="Also build an fp16 graph for GPUs.")
@click.option(
    "--probe-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Extra probe texts for the parity check, one per line.",
)
@click.option(
    "--min-mean-cosine",
    type=float,
    default=MIN_MEAN_COSINE,
    show_default=True,
    help="int8 gate: mean cosine vs torch fp32.",
)
@click.option(
    "--min-cosine",
    type=float,
    default=MIN_COSINE,
    show_default=True,
    help="int8 gate: minimum cosine vs torch fp32.",
)
@click.option("--max-length", type=int, help="Max tokens per window (default: the model's).")
@options.pooling()
@options.normalize()
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True)
@click.option(
    "--exporter",
    type=choices(Exporter, "exporter"),
    help="torch (featx's own), optimum (needs featx[optimum], transformers 4.x) or existing "
    "(the folder's own ONNX file; no torch). Default: existing for a folder with an ONNX "
    "file and no weights (or no torch), else torch.",
)
@click.option(
    "--onnx-file",
    help="With --exporter existing: the folder's ONNX file (default onnx/model.onnx).",
)
@options.force()
@friendly_errors
def export(
    model: str,
    out: str,
    quantize: bool,
    fp16: bool,
    probe_file: str | None,
    min_mean_cosine: float,
    min_cosine: float,
    max_length: int | None,
    pooling: str | None,
    normalize: bool | None,
    opset: int,
    exporter: str | None,
    onnx_file: str | None,
    force: bool,
) -> None:
    """Export MODEL (alias, hub id or folder) to the artifact directory OUT."""
    from featx.artifact.describe import parity_line
    from featx.exporter import export as run
    from featx.io import read_texts

    result = run(
        model,
        out,
        quantize=quantize,
        fp16=fp16,
        probe_texts=read_texts(probe_file) if probe_file else [],
        min_mean_cosine=min_mean_cosine,
        min_cosine=min_cosine,
        max_length=max_length,
        pooling=pooling,
        normalize=normalize,
        opset=opset,
        exporter=exporter,
        onnx_file=onnx_file,
        force=force,
    )
    click.echo(f"wrote {result.path}")
    click.echo(f"default precision: {result.default_precision} ({result.reason})")
    for name, figures in result.parity.items():
        click.echo(parity_line(name, figures))


@click.command()
@click.argument("input", required=False)
@options.model()
@options.output()
@options.input_format()
@options.text_col()
@data.drop_empty()
@options.representation()
@options.precision()
@click.option("--threads", type=click.IntRange(1), help="ONNX Runtime threads (default: all).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@options.progress()
@options.force()
@friendly_errors
def embed(
    input: str | None,
    model: str | None,
    output: str | None,
    fmt: str | None,
    text_col: str,
    drop_empty: bool,
    representation: dict[str, Any],
    precision: str | None,
    threads: int | None,
    batch_size: int,
    progress: bool | None,
    force: bool,
) -> None:
    """Embed texts from INPUT (a file, or stdin when absent or '-')."""
    from featx.api import load
    from featx.io import read_texts
    from featx.outputs import jsonl_records, output_format, write_embeddings

    if output is not None:
        output_format(output)  # fail before the work, not after it
        options.refuse_existing(output, force)
    texts = read_texts(input, fmt=fmt, column=text_col, drop_empty=drop_empty)
    encoder = load(
        model, precision=precision, threads=threads, batch_size=batch_size, **representation
    )
    with warnings.catch_warnings():
        warnings.simplefilter("always", TruncationWarning)
        result = encoder.encode_with_info(texts, show_progress=progress)
    if output is None:
        sys.stdout.writelines(jsonl_records(result.embeddings, result.n_tokens, result.truncated))
    else:
        write_embeddings(output, result.embeddings, result.n_tokens, result.truncated, force=force)
        click.echo(
            f"wrote {len(texts)} x {result.embeddings.shape[1]} embeddings to {output}", err=True
        )


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and parity as JSON.")
@friendly_errors
def info(artifact: str, as_json: bool) -> None:
    """Show an artifact's manifest and parity figures, after verifying every file."""
    from featx.artifact import MANIFEST, Artifact
    from featx.artifact.describe import describe
    from featx.artifact.manifest import PARITY_FILE

    opened = Artifact.open(artifact)
    opened.verify_all()  # raises on any altered file
    if as_json:
        raw = json.loads((opened.path / MANIFEST).read_text(encoding="utf-8"))
        has_parity = PARITY_FILE in opened.manifest.files
        parity = opened.read_json(PARITY_FILE) if has_parity else None
        click.echo(json.dumps({"manifest": raw, "parity": parity}, indent=2))
        return
    for line in describe(opened):
        click.echo(line)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def models(as_json: bool) -> None:
    """List the model registry's aliases."""
    from featx.sources import models as registry

    entries = registry()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for alias, e in entries.items():
        mark = "*" if e["default"] else " "
        click.echo(
            f"{mark} {alias:<16} {e['family']:<10} {e['pooling']:<6} "
            f"norm={str(e['normalize']).lower():<5} max_len={e['max_length']:<5} {e['source']}"
        )


@click.group()
def cache() -> None:
    """Inspect or clear the embedding cache ($FEATX_CACHE_DIR/embeddings.sqlite)."""


@cache.command("info")
@friendly_errors
def cache_info() -> None:
    """Show the cache file, its rows and sizes."""
    from featx.cache import EmbeddingCache

    facts = EmbeddingCache().info()
    for key in ("path", "rows", "vector_bytes", "file_bytes"):
        click.echo(f"{key}: {facts[key]}")


@cache.command("clear")
@friendly_errors
def cache_clear() -> None:
    """Drop every cached embedding."""
    from featx.cache import EmbeddingCache

    store = EmbeddingCache()
    rows = store.info()["rows"]
    store.clear()
    click.echo(f"cleared {rows} cached embeddings from {store.path}")
