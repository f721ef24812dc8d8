"""The ``featx`` command line: thin wrappers over the public API.

Heavy imports (torch for export) happen inside the commands that need them, so
``featx embed`` with an existing artifact starts without torch.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from typing import Any

import click

from featx._cliutil import friendly_errors, parse_layers
from featx.errors import TruncationWarning
from featx.io import INPUT_FORMATS


def _show_warnings(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    click.echo(f"featx: warning: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="featx")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """featx: pretrained Transformers as fast, cheap features (ONNX Runtime)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="featx: %(message)s"
    )
    warnings.showwarning = _show_warnings


@main.command()
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
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
    default=0.99,
    show_default=True,
    help="int8 gate: mean cosine vs torch fp32.",
)
@click.option(
    "--min-cosine",
    type=float,
    default=0.97,
    show_default=True,
    help="int8 gate: minimum cosine vs torch fp32.",
)
@click.option("--max-length", type=int, help="Max tokens per window (default: the model's).")
@click.option("--pooling", help="Default pooling: mean, cls, max, last, weighted_mean.")
@click.option("--normalize/--no-normalize", default=None, help="Default L2 normalisation.")
@click.option("--opset", type=int, default=17, show_default=True)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@friendly_errors
def export(
    model: str,
    out: str,
    int8: bool,
    fp16: bool,
    probe_file: str | None,
    min_mean_cosine: float,
    min_cosine: float,
    max_length: int | None,
    pooling: str | None,
    normalize: bool | None,
    opset: int,
    force: bool,
) -> None:
    """Export MODEL (alias, hub id or folder) to the artifact directory OUT."""
    import featx
    from featx.io import read_texts

    probes = read_texts(probe_file) if probe_file else []
    result = featx.export(
        model,
        out,
        quantize=int8,
        fp16=fp16,
        probe_texts=probes,
        min_mean_cosine=min_mean_cosine,
        min_cosine=min_cosine,
        max_length=max_length,
        pooling=pooling,
        normalize=normalize,
        opset=opset,
        force=force,
    )
    click.echo(f"wrote {result.path}")
    click.echo(f"default precision: {result.default_precision} ({result.reason})")
    for name, figures in result.parity.items():
        click.echo(_parity_line(name, figures))


def _parity_line(name: str, figures: dict[str, Any]) -> str:
    if "min_cosine" not in figures:
        return f"  {name}: not measured ({figures.get('why', '')})"
    return (
        f"  {name}: min cosine {figures['min_cosine']:.5f}, mean {figures['mean_cosine']:.5f}, "
        f"max abs diff {figures['max_abs_diff']:.2e}"
    )


@main.command()
@click.argument("input", required=False)
@click.option(
    "-m", "--model", help="Artifact, alias, hub id or folder (default: the registry default)."
)
@click.option(
    "-o", "--output", help="Output file: .npy, .parquet or .jsonl (default: JSONL on stdout)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(INPUT_FORMATS),
    help="Input format (default: from the file suffix; text lines otherwise).",
)
@click.option(
    "--column", default="text", show_default=True, help="Column or field holding the text."
)
@click.option("--pooling", help="mean, cls, max, last or weighted_mean (default: the model's).")
@click.option(
    "--normalize/--no-normalize", default=None, help="L2-normalise (default: the model's)."
)
@click.option("--layers", help="Hidden-state layers, e.g. -1 or -4,-3,-2,-1 (default: -1).")
@click.option(
    "--combine", type=click.Choice(["mean", "sum", "concat"]), help="How several layers combine."
)
@click.option(
    "--long-text",
    type=click.Choice(["truncate", "chunk_mean", "chunk_max"]),
    help="Over-long texts: truncate (with a warning) or window and pool.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8", "fp16"]),
    help="Graph to run (default: the artifact's).",
)
@click.option("--threads", type=int, help="ONNX Runtime threads (default: all cores).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: long jobs on a terminal).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@friendly_errors
def embed(
    input: str | None,
    model: str | None,
    output: str | None,
    fmt: str | None,
    column: str,
    pooling: str | None,
    normalize: bool | None,
    layers: str | None,
    combine: str | None,
    long_text: str | None,
    precision: str | None,
    threads: int | None,
    batch_size: int,
    progress: bool | None,
    force: bool,
) -> None:
    """Embed texts from INPUT (a file, or stdin when absent or '-')."""
    import featx
    from featx.io import jsonl_records, output_format, read_texts, write_embeddings

    if output is not None:
        output_format(output)  # fail before the work, not after it
        from pathlib import Path

        if Path(output).exists() and not force:
            raise FileExistsError(f"{output} already exists. Choose another path or pass --force.")
    texts = read_texts(input, fmt=fmt, column=column)
    options: dict[str, Any] = {
        "pooling": pooling,
        "normalize": normalize,
        "layers": parse_layers(layers),
        "combine": combine,
        "long_text": long_text,
    }
    encoder = featx.load(
        model,
        precision=precision,
        threads=threads,
        batch_size=batch_size,
        **{k: v for k, v in options.items() if v is not None},
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


@main.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and parity as JSON.")
@friendly_errors
def info(artifact: str, as_json: bool) -> None:
    """Show an artifact's manifest and parity figures, after verifying every file."""
    from featx.artifact import Artifact

    opened = Artifact.open(artifact)
    for name in opened.manifest["files"]:
        opened.read(name)  # raises on any altered file
    m = opened.manifest
    parity = opened.read_json("parity.json") if "parity.json" in m["files"] else None
    if as_json:
        click.echo(json.dumps({"manifest": m, "parity": parity}, indent=2))
        return
    click.echo(f"artifact:   {opened.path}")
    if "model" in m:
        spec = m["model"]
        rep = spec["representation"]
        click.echo(f"source:     {m['source']['name']} (revision {m['source']['revision']})")
        click.echo(
            f"family:     {spec['family']}, {spec['num_layers']} layers, dim {spec['dim']}, "
            f"max_length {spec['max_length']}"
        )
        click.echo(f"pooling:    {rep['pooling']}, normalize {rep['normalize']}")
        click.echo(
            f"variants:   {', '.join(m['variants'])} "
            f"(default {m['default_precision']}; opset {m['opset']})"
        )
    if "predictor" in m:
        head = m["predictor"]
        labels = opened.read_json(head["labels"])["labels"]
        shown = ", ".join(map(str, labels[:10])) + (", ..." if len(labels) > 10 else "")
        click.echo(
            f"head:       {head['estimator']} ({head['task']}{': ' + shown if shown else ''})"
        )
        extra = [e for e in head["encoders"] if e != "."]
        if extra:
            click.echo(f"encoders:   {', '.join(extra)} (besides the root)")
    if "tagger" in m:
        tagger = m["tagger"]
        metrics = opened.read_json(tagger["metrics"])
        settings = metrics["settings"]
        dev = metrics.get("dev")
        click.echo(
            f"tagger:     CRF over layers {settings['layers']} ({settings['combine']}), "
            f"context {settings['context']}, c2 {settings['c2']:g}; entity types "
            f"{', '.join(tagger['entity_types'])}"
            + (f"; dev F1 {100 * dev['micro']['f1']:.2f}" if dev else "")
        )
    tuned = m.get("finetune")
    if tuned:
        report = opened.read_json(tuned["report"])
        gate = tuned.get("dev_gate", {})  # token fine-tuning has no head to gate
        layers = report["settings"]["train_layers"]
        click.echo(
            f"fine-tuned: from {report['model']}, train_layers={layers}, "
            f"{report['train_seconds']:.0f} s ({report['precision_used']}); "
            f"HF folder {tuned['hf']}/"
        )
        if gate.get("checked"):
            click.echo(
                f"dev gate:   {gate['metric']} torch fp32 {gate['torch_fp32']:.2f}, "
                f"int8 {gate['onnx_int8']:.2f} ({'passed' if gate['passes'] else 'failed'})"
            )
    click.echo(f"featx:      {m['featx_version']}, created {m['created']}")
    click.echo(f"checksums:  {len(m['files'])} files verified")
    if parity is not None:
        click.echo(f"parity vs {parity['reference']} on {parity['n_probe_texts']} probe texts:")
        for name, figures in parity["variants"].items():
            click.echo(_parity_line(name, figures))
        click.echo(f"  default: {parity['reason']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def models(as_json: bool) -> None:
    """List the model registry's aliases."""
    import featx

    registry = featx.models()
    if as_json:
        click.echo(json.dumps(registry, indent=2))
        return
    for alias, e in registry.items():
        mark = "*" if e["default"] else " "
        click.echo(
            f"{mark} {alias:<16} {e['family']:<10} {e['pooling']:<6} "
            f"norm={str(e['normalize']).lower():<5} max_len={e['max_length']:<5} {e['source']}"
        )


@main.group()
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


@main.command()
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--threads", type=click.IntRange(1), default=16, show_default=True, help="Per worker."
)
@click.option("--onnx-threads", type=click.IntRange(1), help="Default: all cores / workers.")
@click.option("--timeout", type=click.IntRange(1), default=60, show_default=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--api-keys-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-batching", is_flag=True, help="Run each request on its own.")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), help="Default: the artifact's.")
@friendly_errors
def serve(
    models: tuple[str, ...],
    host: str,
    port: int,
    workers: int,
    threads: int,
    onnx_threads: int | None,
    timeout: int,
    config_file: str | None,
    api_keys_file: str | None,
    no_batching: bool,
    precision: str | None,
) -> None:
    """Serve MODELS (NAME=ARTIFACT or ARTIFACT; default: the default model) over HTTP."""
    import os

    try:
        from server.gunicorn_app import serve as run
    except ImportError as err:
        raise ImportError(
            "featx serve needs the server extra. Install it with: pip install 'featx[server]'"
        ) from err
    config: dict[str, Any] = {"REQUEST_TIMEOUT_S": float(timeout)}
    if models:
        named = [
            m.split("=", 1) if "=" in m else [os.path.basename(m.rstrip("/")), m] for m in models
        ]
        config["MODELS"] = dict(named)
    if config_file:
        config["CONFIG"] = config_file
    if api_keys_file:
        config["API_KEYS_FILE"] = api_keys_file
    if no_batching:
        config["BATCHING"] = False
    if precision:
        config["PRECISION"] = precision
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    config["ONNX_THREADS"] = onnx_threads or max(1, (cores or 1) // workers)
    run(config, host=host, port=port, workers=workers, threads=threads, timeout=timeout)  # execs


def _register_predictor_commands() -> None:
    from featx.cli_finetune import finetune
    from featx.cli_ner import train_ner
    from featx.cli_predictor import evaluate, predict, train
    from featx.cli_spark import spark_embed

    for command in (train, predict, evaluate, finetune, train_ner, spark_embed):
        main.add_command(command)


_register_predictor_commands()
