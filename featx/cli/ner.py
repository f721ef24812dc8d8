"""``featx train-ner``: a named-entity tagger from CoNLL or JSONL-span data."""

from __future__ import annotations

from typing import Any

import click

from featx.cli import data, options
from featx.cli.options import friendly_errors
from featx.cli.values import parse_floats, parse_layers


@click.command("train-ner")
@data.data_file("--data", "Training data: CoNLL (WORD ... TAG per line) or JSONL spans.")
@data.data_file("--dev", "Dev data (same formats).", required=False)
@options.model()
@click.option(
    "--layers", help="Hidden states to read, e.g. 3,4 (default: middle two; last if fine-tuned)."
)
@options.combine()
@click.option("--subword", type=click.Choice(["first", "mean", "last"]), help="Piece(s) per word.")
@click.option(
    "--context",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Neighbour words per side.",
)
@click.option(
    "--shape/--no-shape", default=True, show_default=True, help="Word-shape features (case)."
)
@click.option(
    "--c2",
    help="CRF L2 strength, or several to choose from on --dev: 10,30,100 "
    "(default: the value chosen on CoNLL-2003 dev).",
)
@click.option(
    "--max-iter", type=click.IntRange(1), default=300, show_default=True, help="CRF iterations."
)
@options.train_layers("0")
@options.finetune_settings(("epochs", "lr", "batch_size", "seed"))
@options.progress()
@options.out()
@options.force()
@friendly_errors
def train_ner(
    data: str,
    dev: str | None,
    model: str | None,
    layers: str | None,
    combine: str | None,
    subword: str | None,
    context: int,
    shape: bool,
    c2: str | None,
    max_iter: int,
    train_layers: int | str,
    progress: bool | None,
    out: str,
    force: bool,
    **settings: Any,
) -> None:
    """Train a named-entity tagger (word vectors + CRF) and save it as an artifact.

    --epochs, --lr, --batch-size and --seed are fine-tuning settings (--train-layers > 0).
    """
    from featx.tagging import read_sentences
    from featx.tagging import train_ner as run
    from featx.tagging.tags import format_scores

    chosen = {k: v for k, v in settings.items() if v is not None}
    if c2 is not None:
        chosen["c2"] = parse_floats(c2, "--c2")
    options.refuse_existing(out, force)
    train = read_sentences(data)
    dev_set = None
    if dev:
        sentences = read_sentences(dev)
        dev_set = ([s.words for s in sentences], [s.tags for s in sentences])
    tagger = run(
        [s.words for s in train],
        [s.tags for s in train],
        model=model,
        dev=dev_set,
        out=out,
        layers=parse_layers(layers),  # type: ignore[arg-type]
        combine=combine or "mean",
        subword=subword,
        context=context,
        shape=shape,
        max_iter=max_iter,
        train_layers=train_layers,
        force=force,
        show_progress=progress,
        **chosen,
    )
    dev_scores = tagger.metrics.get("dev")
    if dev_scores:
        click.echo(format_scores(dev_scores))
    click.echo(f"wrote {out} ({tagger.metrics['train_seconds']:.0f} s)", err=True)
