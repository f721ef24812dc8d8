"""``featx train-ner`` and the tagger side of ``featx predict`` and ``featx evaluate``."""

from __future__ import annotations

import json
from typing import Any

import click

from featx._cliutil import friendly_errors, parse_layers


@click.command("train-ner")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Training data: CoNLL (WORD ... TAG per line) or JSONL with entity spans.",
)
@click.option(
    "--dev", type=click.Path(exists=True, dir_okay=False), help="Dev data (same formats)."
)
@click.option(
    "--model", default="minilm", show_default=True, help="Alias, hub id, folder or artifact."
)
@click.option(
    "--layers", help="Hidden states to read, e.g. 3,4 (default: middle two; last if fine-tuned)."
)
@click.option(
    "--combine", type=click.Choice(["mean", "sum", "concat"]), default="mean", show_default=True
)
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
    default="100",
    show_default=True,
    help="CRF L2 strength, or several: 10,30,100 (needs --dev).",
)
@click.option(
    "--max-iter", type=click.IntRange(1), default=300, show_default=True, help="CRF iterations."
)
@click.option(
    "--train-layers",
    default="0",
    show_default=True,
    help="0: frozen encoder; N or 'all': fine-tune the top N layers for the tags first.",
)
@click.option("--epochs", type=click.IntRange(1), help="Fine-tuning epochs.")
@click.option("--lr", type=float, help="Fine-tuning learning rate.")
@click.option("--batch-size", type=click.IntRange(1), help="Fine-tuning batch size.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@friendly_errors
def train_ner(
    data: str,
    dev: str | None,
    model: str,
    layers: str | None,
    combine: str,
    subword: str | None,
    context: int,
    shape: bool,
    c2: str,
    max_iter: int,
    train_layers: str,
    epochs: int | None,
    lr: float | None,
    batch_size: int | None,
    out: str,
    force: bool,
) -> None:
    """Train a named-entity tagger (word vectors + CRF) and save it as an artifact."""
    from featx.tagging import read_sentences, train_ner

    try:
        c2_values = [float(c) for c in c2.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{c2!r} is not a number or a comma-separated list of numbers."
        ) from None
    train = read_sentences(data)
    dev_set = read_sentences(dev) if dev else None
    finetune: dict[str, Any] = {
        k: v
        for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size))
        if v is not None
    }
    tagger = train_ner(
        [s.words for s in train],
        [s.tags for s in train],
        model=model,
        X_dev=None if dev_set is None else [s.words for s in dev_set],
        y_dev=None if dev_set is None else [s.tags for s in dev_set],
        out=out,
        layers=parse_layers(layers),  # type: ignore[arg-type]
        combine=combine,
        subword=subword,
        context=context,
        shape=shape,
        c2=c2_values,
        max_iter=max_iter,
        train_layers=train_layers if train_layers == "all" else _int(train_layers),
        force=force,
        **finetune,
    )
    dev_scores = tagger.metrics.get("dev")
    if dev_scores:
        click.echo(entity_table(dev_scores))
    click.echo(f"wrote {out} ({tagger.metrics['train_seconds']:.0f} s)", err=True)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(
            f"--train-layers must be a number or 'all', got {value!r}."
        ) from None


def entity_table(scores: dict[str, Any]) -> str:
    """Per-type and micro/macro precision, recall and F1 as an aligned text table."""
    lines = [f"{'type':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    rows = [
        *sorted(scores["per_type"].items()),
        ("micro", scores["micro"]),
        ("macro", scores["macro"]),
    ]
    for name, m in rows:
        lines.append(
            f"{name:<8} {100 * m['precision']:>9.2f} {100 * m['recall']:>7.2f} "
            f"{100 * m['f1']:>7.2f} {m['support']:>8}"
        )
    return "\n".join(lines)


def predict_entities(
    artifact: str, input_path: str, fmt: str | None, column: str = "text"
) -> list[dict[str, Any]]:
    """Rows for ``featx predict`` with a tagger: each text and its entities.

    Texts come as lines, or as ``column`` of JSONL, CSV, TSV or Parquet, as for any model,
    or ``--format conll``: one word per line (its first column), blank lines between
    sentences.
    """
    from featx.io import read_texts
    from featx.tagging import Tagger

    tagger = Tagger.load(artifact)
    if fmt == "conll":
        X: Any = _word_lines(input_path)
    else:
        X = read_texts(input_path, fmt=fmt, column=column)
    rows = []
    for i, (item, found) in enumerate(zip(X, tagger.predict(X), strict=True)):
        text = item if isinstance(item, str) else " ".join(item)
        rows.append({"index": i, "text": text, "entities": found})
    return rows


def _word_lines(path: str) -> list[list[str]]:
    import sys

    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    sentences: list[list[str]] = [[]]
    with handle:
        for line in handle:
            fields = line.split()
            if not fields:
                if sentences[-1]:
                    sentences.append([])
            elif fields[0] != "-DOCSTART-":
                sentences[-1].append(fields[0])
    return [s for s in sentences if s]


def evaluate_tagger(artifact: str, data: str, as_json: bool) -> None:
    """``featx evaluate`` with a tagger: entity-level scores on CoNLL or JSONL data."""
    from featx.tagging import Tagger, read_sentences

    tagger = Tagger.load(artifact)
    sentences = read_sentences(data)
    X = [s.words for s in sentences]
    scores = tagger.evaluate(X, [s.tags for s in sentences])
    click.echo(json.dumps(scores, indent=2) if as_json else entity_table(scores))
