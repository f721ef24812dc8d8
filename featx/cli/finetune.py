"""``featx finetune``: partial fine-tuning from the shell, back to a normal artifact."""

from __future__ import annotations

import json
from typing import Any

import click

from featx.cli import data, options
from featx.cli.data import DataSpec, data_options
from featx.cli.heads import augmenter
from featx.cli.options import friendly_errors
from featx.cli.values import parse_param_grid


@click.command()
@options.model()
@data.data_file("--data", "Training data (a table).")
@data_options
@data.data_file("--dev", "Validation data: early stopping, the int8 gate.", required=False)
@options.out()
@options.force()
@options.task()
@click.option(
    "--method",
    type=click.Choice(["head", "contrastive"]),
    default="head",
    show_default=True,
    help="head: the head with the top layers; contrastive: SetFit's few-shot recipe (pairs "
    "of same- and different-class texts train the encoder, then logistic regression).",
)
@options.train_layers(None, shown="all; contrastive: all")
@options.finetune_settings()
@click.option("--hidden", help="MLP head hidden sizes, e.g. 256 or 256,128 (default: linear).")
@options.pooling()
@options.normalize()
@click.option("--max-length", type=click.IntRange(4), help="Max tokens per text.")
@click.option(
    "--param-grid", "param_grid", multiple=True, help="Try KEY=V1,V2 on dev (repeatable)."
)
@options.augment()
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@options.progress()
@friendly_errors
def finetune(
    model: str | None,
    data: str,
    spec: DataSpec,
    dev: str | None,
    out: str,
    force: bool,
    task: str | None,
    method: str,
    hidden: str | None,
    pooling: str | None,
    normalize: bool | None,
    max_length: int | None,
    param_grid: tuple[str, ...],
    augment: str | None,
    augment_copies: int,
    device: str,
    progress: bool | None,
    **settings: Any,
) -> None:
    """Fine-tune MODEL (default: the default model) on DATA and save it as an artifact.

    Trains the head and the top --train-layers layers, then exports the encoder to ONNX
    (int8 behind the parity gate and a dev-metric gate) with the head, so that featx
    predict, Embedder and featx serve use it as they are.
    """
    from featx.finetuning import finetune as run

    options.refuse_existing(out, force)
    multilabel = task == "multilabel"
    X, y = spec.read(data, multilabel=multilabel)
    dev_set = None if dev is None else spec.read_dev(dev, multilabel=multilabel)
    chosen = {k: v for k, v in settings.items() if v is not None}
    if hidden:
        chosen["hidden"] = tuple(int(v) for v in hidden.split(","))
    result = run(
        X,
        y,
        model=model,
        method=method,
        out=out,
        dev=dev_set,
        task=task,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        param_grid=parse_param_grid(param_grid) or None,
        augment=augmenter(augment, augment_copies, model, chosen.get("seed", 0)),
        device=device,
        force=force,
        show_progress=progress,
        **chosen,
    )
    report = result.report
    counts = report.get("trainable_parameters")
    trained = f"trained {counts['trainable']:,} of {counts['total']:,} parameters" if counts else (
        f"trained the encoder on {report['n_pairs']:,} pairs"
    )  # fmt: skip
    click.echo(f"{trained} in {report['train_seconds']:.1f} s ({report['autocast_used']})")
    if report["dev_final"]:
        scores = {k: round(v, 4) for k, v in report["dev_final"].items() if isinstance(v, float)}
        click.echo("dev: " + json.dumps(scores))
    if report.get("dev_gate"):
        click.echo("int8 gate: " + json.dumps(report["dev_gate"]))
    click.echo(f"wrote {out}")
