"""``featx finetune-qa``, and question answering in ``featx predict`` and ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from featx.cli import data, options
from featx.cli.options import friendly_errors
from featx.finetuning.settings import QA_DEFAULTS

QUESTION_COLUMNS = ("question", "context")
SETTINGS = ("epochs", "lr", "batch_size", "accumulate", "warmup", "weight_decay",
            "layer_decay", "schedule", "dropout", "attention_dropout", "autocast", "patience",
            "seed")  # fmt: skip


@click.command("finetune-qa")
@options.model()
@data.data_file("--data", "Training questions: SQuAD JSONL (Hugging Face columns) or JSON.")
@data.data_file("--dev", "Dev questions: early stopping on F1, the int8 gate.", required=False)
@click.option("--dev-limit", type=click.IntRange(1), help="Use the first N dev questions (faster).")
@options.out()
@options.force()
@options.train_layers(None, shown="all")
@options.finetune_settings(SETTINGS, QA_DEFAULTS)
@click.option("--stride", type=click.IntRange(0), help="Pieces windows share [default: 64].")
@click.option("--max-question", type=click.IntRange(1), help="Pieces [default: 64].")
@click.option("--max-answer-length", type=click.IntRange(1), default=30, show_default=True)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@options.progress()
@friendly_errors
def finetune_qa(
    model: str | None,
    data: str,
    dev: str | None,
    dev_limit: int | None,
    out: str,
    force: bool,
    train_layers: int | str | None,
    stride: int | None,
    max_question: int | None,
    max_answer_length: int,
    device: str,
    progress: bool | None,
    **settings: Any,
) -> None:
    """Fine-tune MODEL (default: the default model) for extractive question answering.

    Trains the encoder and a start/end span head on SQuAD-format DATA, exports the encoder
    to ONNX with the head as a 'qa' artifact (int8 the default only if its dev EM and F1
    are within 0.5 points of fp32's), for featx predict, evaluate and serve.
    """
    from featx import qa

    options.refuse_existing(out, force)
    train = qa.read_squad(data)
    dev_set = None if dev is None else qa.read_squad(dev)[:dev_limit]
    chosen = {k: v for k, v in settings.items() if v is not None}
    if train_layers is not None:
        chosen["train_layers"] = train_layers
    answerer = qa.finetune(
        train, model=model, out=out, dev=dev_set, stride=stride, max_question=max_question,
        max_answer_length=max_answer_length, device=device, force=force,
        show_progress=progress, **chosen,
    )  # fmt: skip
    tuned = answerer.metrics["finetune"]
    click.echo(
        f"trained on {tuned['windows']['windows']:,} windows of {tuned['n_train']:,} questions "
        f"in {tuned['train_seconds']:.1f} s; {json.dumps(tuned['windows'])}"
    )
    if answerer.metrics.get("dev"):
        click.echo("dev: " + json.dumps(_rounded(answerer.metrics["dev"])))
    click.echo(f"int8 gate: {json.dumps(answerer.metrics['dev_gate'])}")
    click.echo(f"wrote {out}")


def answers(
    artifact: str, input_path: str, fmt: str | None, text_cols: tuple[str, ...], drop_empty: bool
) -> list[dict[str, Any]]:
    """``featx predict`` with a question answerer: one answer per question/context record."""
    from featx import qa
    from featx.io import read_labelled

    columns = QUESTION_COLUMNS if text_cols == ("text",) else text_cols
    if len(columns) != 2:
        raise ValueError(
            "A question answerer reads two columns: --text-col QUESTION --text-col CONTEXT "
            f"(default {' and '.join(QUESTION_COLUMNS)})."
        )
    if Path(input_path).suffix == ".json":  # SQuAD's official nested layout
        pairs = [(q.question, q.context) for q in qa.read_squad(input_path, labelled=False)]
    else:
        table, _ = read_labelled(input_path, columns, None, fmt=fmt, drop_empty=drop_empty)
        pairs = [(str(q), str(c)) for q, c in table]
    spans = qa.Answerer.load(artifact).answer_batch(pairs)
    return [{"index": i, **span.to_dict()} for i, span in enumerate(spans)]


def evaluate(artifact: str, data: str, as_json: bool, records: str | None) -> None:
    """``featx evaluate`` with a question answerer: SQuAD v1.1 EM and F1 on DATA."""
    from featx import qa
    from featx.outputs import write_records

    questions = qa.read_squad(data)
    scores = qa.Answerer.load(artifact).evaluate(questions, records=records is not None)
    if records is not None:
        write_records(scores.pop("records"), records)
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    click.echo(
        f"exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} on "
        f"{scores['n_questions']:,} questions (SQuAD v1.1 official metric); windows: "
        + json.dumps(scores["windows"])
    )


def _rounded(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in scores.items()}
