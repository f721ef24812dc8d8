"""``featx finetune``: partial fine-tuning from the shell, back to a normal artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from featx._cliutil import friendly_errors
from featx.cli_predictor import _augment_options, _augmenter, _data_options, read_dataset

# --search values are parsed as these types (the rest as float).
_SEARCH_TYPES = {
    "train_layers": "layers",
    "epochs": int,
    "batch_size": int,
    "accumulate": int,
    "lora": int,
}


def _layers(value: str) -> int | str:
    if value == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of top layers or 'all'.") from None


def _search(entries: tuple[str, ...]) -> dict[str, list[Any]]:
    """``lr=5e-5,1e-4`` and ``train_layers=2,all`` -> a search space."""
    space: dict[str, list[Any]] = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not values:
            raise click.BadParameter(f"{entry!r}: write KEY=V1,V2 (e.g. lr=5e-5,1e-4).")
        kind = _SEARCH_TYPES.get(key, float)
        try:
            space[key] = [
                _layers(v) if kind == "layers" else kind(v)  # type: ignore[operator]
                for v in values.split(",")
            ]
        except ValueError:
            raise click.BadParameter(f"{entry!r}: values of {key} must be numbers.") from None
    return space


@click.command()
@click.argument("model", required=False)
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@_data_options
@click.option("--dev", type=click.Path(exists=True, dir_okay=False), help="Validation data.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "multilabel", "regression"]),
    help="Target kind (default: inferred from the labels).",
)
@click.option(
    "--train-layers",
    default="2",
    show_default=True,
    help="Top encoder layers to train: 0 (head only), N, or all.",
)
@click.option("--epochs", type=click.IntRange(1), default=4, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--head-lr", type=click.FloatRange(min=0, min_open=True), help="Default: 5 x --lr.")
@click.option(
    "--layer-decay", type=float, default=0.9, show_default=True, help="LR x per layer down."
)
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--warmup", type=float, default=0.1, show_default=True, help="Share of steps.")
@click.option("--schedule", type=click.Choice(["linear", "cosine", "constant"]), default="linear")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option(
    "--accumulate", type=click.IntRange(1), default=1, show_default=True, help="Batches per step."
)
@click.option("--dropout", type=float, default=0.1, show_default=True)
@click.option("--hidden", help="MLP head hidden sizes, e.g. 256 or 256,128 (default: linear).")
@click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--eval-every", type=click.IntRange(1), help="Score dev every N steps (default: each epoch)."
)
@click.option(
    "--patience", type=click.IntRange(1), default=2, show_default=True, help="Early stopping."
)
@click.option("--mixup", type=float, default=0.0, show_default=True, help="Embedding mixup alpha.")
@click.option(
    "--lora", type=click.IntRange(0), default=0, show_default=True, help="LoRA rank (0: off)."
)
@click.option("--lora-alpha", type=click.IntRange(1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--pooling", help="mean, cls, max, last or weighted_mean.")
@click.option("--normalize/--no-normalize", default=None, help="L2-normalise embeddings.")
@click.option("--max-length", type=click.IntRange(4), help="Max tokens per text.")
@click.option("--search", "search", multiple=True, help="Try KEY=V1,V2 on dev (repeatable).")
@_augment_options
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--progress/--no-progress", default=None, help="Progress bars.")
@friendly_errors
def finetune(
    model: str | None,
    data: str,
    fmt: str | None,
    text_cols: tuple[str, ...],
    label_col: str,
    label_sep: str | None,
    dev: str | None,
    out: str,
    force: bool,
    task: str | None,
    train_layers: str,
    hidden: str | None,
    search: tuple[str, ...],
    augment: str | None,
    augment_copies: int,
    pooling: str | None,
    normalize: bool | None,
    max_length: int | None,
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
    from featx.sources import default_model

    if Path(out).exists() and not force:
        raise FileExistsError(f"{out} already exists. Choose another path or pass --force.")
    if label_sep is None and task == "multilabel":
        label_sep = ","
    X, y = read_dataset(data, text_cols, label_col, fmt=fmt, label_sep=label_sep)
    X_dev = y_dev = None
    if dev is not None:
        try:
            X_dev, y_dev = read_dataset(dev, text_cols, label_col, fmt=fmt, label_sep=label_sep)
        except (ValueError, KeyError) as err:
            raise ValueError(f"The dev set {dev} does not fit: {err}") from err
    sizes = tuple(int(v) for v in hidden.split(",")) if hidden else ()
    augmenter = _augmenter(augment, augment_copies, (model,) if model else (), settings["seed"])
    result = run(
        model or default_model(),
        X,
        y,
        out=out,
        X_dev=X_dev,
        y_dev=y_dev,
        task=task,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        search=_search(search) or None,
        augment=augmenter,
        device=device,
        force=force,
        show_progress=progress,
        train_layers=_layers(train_layers),
        hidden=sizes,
        **settings,
    )
    report = result.report
    counts = report["trainable_parameters"]
    click.echo(
        f"trained {counts['trainable']:,} of {counts['total']:,} parameters in "
        f"{report['train_seconds']:.1f} s ({report['precision_used']})"
    )
    if report["dev_final"]:
        click.echo("dev: " + json.dumps({k: round(v, 4) for k, v in report["dev_final"].items()}))
        click.echo("int8 gate: " + json.dumps(report["dev_gate"]))
    click.echo(f"wrote {out}")
