"""``featx train | predict | evaluate``: heads on top of embeddings, from the shell.

``predict`` and ``evaluate`` take any trained artifact and act on its kind: a predictor
gives labels and probabilities (or scores), a tagger entities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from featx.cli import data, options
from featx.cli.data import DataSpec, data_options
from featx.cli.options import friendly_errors
from featx.cli.values import parse_params
from featx.io import INPUT_FORMATS


def augmenter(methods: str | None, copies: int, model: str | None, seed: int) -> Any:
    """--augment as an Augmenter whose synonyms come from ``model``."""
    if not methods:
        return None
    from featx.augment import Augmenter

    return Augmenter(methods.split(","), copies=copies, model=model, seed=seed)


@click.command()
@data.data_file("--data", "Training data (a table).")
@data_options
@data.data_file("--dev", "Validation data.", required=False)
@options.model(multiple=True)
@options.heads()
@options.task()
@options.representation(allow_all_layers=True)
@options.precision()
@options.search()
@options.augment()
@options.seed()
@click.option("--cache/--no-cache", default=True, show_default=True, help="Embedding cache.")
@options.progress()
@options.out()
@options.force()
@friendly_errors
def train(
    data: str,
    spec: DataSpec,
    dev: str | None,
    models: tuple[str, ...],
    recipe: str,
    heads: tuple[str, ...],
    ensemble: str | None,
    tfidf: bool,
    params: tuple[str, ...],
    class_weight: str | None,
    task: str | None,
    representation: dict[str, Any],
    precision: str | None,
    search: str | None,
    search_representation: bool,
    cv: int,
    n_iter: int,
    augment: str | None,
    augment_copies: int,
    seed: int,
    cache: bool,
    progress: bool | None,
    out: str,
    force: bool,
) -> None:
    """Train a head on DATA and save it, with its encoder(s), as one artifact."""
    from featx.evaluation import summary
    from featx.recipes import recipe_table
    from featx.training import train as run

    options.refuse_existing(out, force)
    multilabel = task == "multilabel"
    X, y = spec.read(data, multilabel=multilabel)
    dev_set = None if dev is None else spec.read_dev(dev, multilabel=multilabel)
    predictor = run(
        X,
        y,
        model=list(models) or None,
        head=list(heads) or None,
        task=task,
        recipe=recipe,
        tfidf=tfidf,
        ensemble=ensemble,
        representation=representation,
        head_params=parse_params(params),
        class_weight=class_weight,
        cache=cache,
        precision=precision,
        search=search,
        search_representation=search_representation,
        cv=cv,
        n_iter=n_iter,
        dev=dev_set,
        augment=augmenter(augment, augment_copies, models[0] if models else None, seed),
        seed=seed,
        show_progress=progress,
    )
    predictor.save(out, force=force)
    metrics = predictor.metrics
    if "search" in metrics:
        found = metrics["search"]
        click.echo(
            f"search: best {found['scoring']} {found['best_score']:.4f} over {cv} folds with "
            f"{json.dumps(found['best_params'])}"
        )
    if "recipe" in metrics:
        click.echo(recipe_table(metrics["recipe"]))
    if "dev" in metrics:
        click.echo("dev:")
        click.echo(summary(metrics["dev"]))
    click.echo(f"saved {predictor.task.value} model to {out}")


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", required=True, help="Texts: a file, or - for stdin.")
@options.input_format((*INPUT_FORMATS, "conll"))
@options.text_col(multiple=True)
@data.drop_empty()
@options.output()
@click.option(
    "--proba/--no-proba",
    default=None,
    help="Write probabilities (default: when the head has them).",
)
@options.force()
@friendly_errors
def predict(
    artifact: str,
    input_path: str,
    fmt: str | None,
    text_cols: tuple[str, ...],
    drop_empty: bool,
    output: str | None,
    proba: bool | None,
    force: bool,
) -> None:
    """Predict labels (and probabilities) or scores for texts with a trained ARTIFACT.

    With a tagger (``featx train-ner``): the entities of each text, with character offsets.
    With a question answerer (``featx finetune-qa``): the answer to each record's question
    (columns question and context, or --text-col twice; SQuAD JSON too), with its score
    and its characters start:end in the context.
    CoNLL input (``--format conll``, taggers only) is one word per line, blank lines
    between sentences. An empty text is refused (naming its line) unless --drop-empty;
    each output's index then counts the kept records.
    """
    from featx.artifact import Artifact, Kind
    from featx.outputs import records_format, write_records

    records_format(output)  # fail before the work, not after it
    options.refuse_existing(output, force)
    kind = Artifact.open(artifact).manifest.kind
    if kind is Kind.TAGGER:
        rows = _entities(artifact, input_path, fmt, text_cols, drop_empty)
    elif kind is Kind.QA:
        from featx.cli import qa

        rows = qa.answers(artifact, input_path, fmt, text_cols, drop_empty)
    else:
        if fmt == "conll":
            raise ValueError("--format conll is for taggers (featx train-ner); this is not one.")
        rows = _predictions(artifact, input_path, fmt, text_cols, proba, drop_empty)
    write_records(rows, output)
    if output is not None:
        click.echo(f"wrote {len(rows)} predictions to {output}", err=True)


def _predictions(
    artifact: str,
    input_path: str,
    fmt: str | None,
    text_cols: tuple[str, ...],
    proba: bool | None,
    drop_empty: bool,
) -> list[dict[str, Any]]:
    from featx.io import input_format, read_labelled, read_texts
    from featx.predictor import Predictor

    model = Predictor.load(artifact)
    if input_format(input_path, fmt) == "lines":
        if len(text_cols) != 1:
            raise ValueError("Sentence pairs need a table input (tsv, csv, jsonl or parquet).")
        X: Any = read_texts(input_path, fmt=fmt, drop_empty=drop_empty)
    else:
        X, _ = read_labelled(input_path, text_cols, None, fmt=fmt, drop_empty=drop_empty)
    rows = [{"index": i, **record} for i, record in enumerate(model.records(X, proba=proba))]
    for row in rows:
        if "probabilities" in row:
            row["probabilities"] = {k: round(p, 6) for k, p in row["probabilities"].items()}
    return rows


def _entities(
    artifact: str, input_path: str, fmt: str | None, text_cols: tuple[str, ...], drop_empty: bool
) -> list[dict[str, Any]]:
    from featx.io import read_texts, read_words
    from featx.tagging import Tagger

    if len(text_cols) != 1:
        raise ValueError("A tagger reads one text column; give --text-col once.")
    tagger = Tagger.load(artifact)
    if fmt == "conll":
        return tagger.records(read_words(input_path))
    texts = read_texts(input_path, fmt=fmt, column=text_cols[0], drop_empty=drop_empty)
    return tagger.records(texts)


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@data.data_file("--data", "Labelled data: a table, or CoNLL / JSONL spans for a tagger.")
@data_options
@click.option(
    "--report",
    "report_dir",
    default="featx-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write plots, report.md and report.html.",
)
@click.option("--no-report", is_flag=True, help="Print the metrics only.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--records", help="Question answering: write per-question records to this file.")
@options.force()
@friendly_errors
def evaluate(
    artifact: str,
    data: str,
    spec: DataSpec,
    report_dir: str,
    no_report: bool,
    as_json: bool,
    records: str | None,
    force: bool,
) -> None:
    """Score a trained ARTIFACT on labelled DATA and write a report with plots.

    A tagger (``featx train-ner``) is scored on CoNLL or JSONL-span DATA: entity-level
    precision, recall and F1 per type (conlleval semantics); no plots. A question
    answerer (``featx finetune-qa``) on SQuAD DATA: exact match and F1 (the official
    v1.1 metric).
    """
    from featx.artifact import Artifact, Kind

    kind = Artifact.open(artifact).manifest.kind
    if kind is Kind.QA:
        from featx.cli import qa

        options.refuse_existing(records, force)
        qa.evaluate(artifact, data, as_json, records)
        return
    if kind is Kind.TAGGER:
        from featx.tagging import Tagger, read_sentences
        from featx.tagging.tags import format_scores

        sentences = read_sentences(data)
        scores = Tagger.load(artifact).evaluate(
            [s.words for s in sentences], [s.tags for s in sentences]
        )
        click.echo(json.dumps(scores, indent=2) if as_json else format_scores(scores))
        return
    from featx.evaluation import evaluate as run
    from featx.evaluation import summary, write_report
    from featx.predictor import Predictor

    if not no_report:
        options.refuse_existing(report_dir, force, hint="pass --report DIR, --force or --no-report")
    model = Predictor.load(artifact)
    X, y = spec.read(data, multilabel=model.task.value == "multilabel")
    result = run(model, X, y)
    click.echo(json.dumps(result.metrics, indent=2) if as_json else summary(result.metrics))
    if not no_report:
        title = f"{Path(artifact).name} on {Path(data).name}"
        write_report(result, report_dir, title=title, force=force)
        click.echo(f"report: {Path(report_dir) / 'report.html'}", err=True)
