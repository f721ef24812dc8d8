"""``featx train | predict | evaluate``: heads on top of embeddings, from the shell."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from featx._cliutil import friendly_errors, parse_layers
from featx.io import INPUT_FORMATS

_FORMATS = click.Choice([f for f in INPUT_FORMATS if f != "lines"])  # tables only


_text_col = click.option(
    "--text-col",
    "text_cols",
    multiple=True,
    default=["text"],
    show_default=True,
    help="Text column; give it twice for sentence pairs.",
)


def _data_options(command: Any) -> Any:
    """--format, --text-col, --label-col and --label-sep, shared by train and evaluate."""
    for option in reversed(
        [
            click.option("--format", "fmt", type=_FORMATS, help="Data format (default: suffix)."),
            _text_col,
            click.option("--label-col", default="label", show_default=True, help="Target column."),
            click.option(
                "--label-sep",
                help="Split labels on this string: a multi-label target (e.g. --label-sep ,).",
            ),
        ]
    ):
        command = option(command)
    return command


def _augment_options(command: Any) -> Any:
    """--augment and --augment-copies, shared by train and finetune (see :func:`_augmenter`)."""
    command = click.option(
        "--augment-copies", type=click.IntRange(1), default=1, show_default=True
    )(command)
    return click.option(
        "--augment", help="Augment training texts: eda, swap, delete, insert, synonym."
    )(command)


def read_dataset(
    path: str,
    text_cols: tuple[str, ...],
    label_col: str | None,
    *,
    fmt: str | None = None,
    label_sep: str | None = None,
) -> tuple[Any, list[Any] | None]:
    """Texts (or an (n, 2) array of pairs) and labels from a table file."""
    import numpy as np

    from featx.io import read_columns

    if len(text_cols) not in (1, 2) or len(set(text_cols)) != len(text_cols):
        raise ValueError(
            f"Give one --text-col, or two different ones for sentence pairs; got {text_cols}."
        )
    wanted = list(text_cols) + ([label_col] if label_col else [])
    if label_col in text_cols:
        raise ValueError(f"--label-col {label_col!r} is also a --text-col.")
    columns = read_columns(path, wanted, fmt=fmt)
    for col in text_cols:
        bad = next((i for i, v in enumerate(columns[col]) if not isinstance(v, str)), None)
        if bad is not None:
            raise ValueError(f"{path}, record {bad + 1}: {col!r} is not text.")
    texts: Any = columns[text_cols[0]]
    if len(text_cols) == 2:
        texts = np.array([columns[text_cols[0]], columns[text_cols[1]]], dtype=object).T
    if not label_col:
        return texts, None
    labels = columns[label_col]
    missing = next((i for i, v in enumerate(labels) if v is None or v == ""), None)
    if missing is not None and label_sep is None:
        raise ValueError(f"{path}, record {missing + 1}: no value in {label_col!r}.")
    if label_sep is not None:
        labels = [
            v if isinstance(v, list) else [x.strip() for x in str(v or "").split(label_sep) if x]
            for v in labels
        ]
    return texts, labels


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@_data_options
@click.option("--dev", type=click.Path(exists=True, dir_okay=False), help="Validation data.")
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    help="Artifact or alias to embed with (repeat for several; default: the default model).",
)
@click.option(
    "--head",
    "heads",
    multiple=True,
    default=["logreg"],
    show_default=True,
    help="logreg, svm, ridge, knn, mlp or gbm (repeat with --ensemble).",
)
@click.option("--ensemble", type=click.Choice(["soft", "stack"]), help="Combine members.")
@click.option("--tfidf", is_flag=True, help="Add word 1-2 gram TF-IDF features.")
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "multilabel", "regression"]),
    help="Target kind (default: inferred from the labels).",
)
@click.option("--param", "params", multiple=True, help="Head parameter KEY=VALUE, e.g. C=0.5.")
@click.option("--class-weight", help="'balanced' (classification heads).")
@click.option("--pooling", help="mean, cls, max, last or weighted_mean.")
@click.option("--normalize/--no-normalize", default=None, help="L2-normalise embeddings.")
@click.option("--layers", help="Layers, e.g. -1, -4,-3,-2,-1 or all.")
@click.option("--combine", type=click.Choice(["mean", "concat"]), help="How layers combine.")
@click.option("--long-text", type=click.Choice(["truncate", "chunk_mean", "chunk_max"]))
@click.option("--precision", type=click.Choice(["fp32", "int8"]), help="Graph to run.")
@click.option("--search", type=click.Choice(["grid", "random"]), help="Hyperparameter search.")
@click.option("--search-representation", is_flag=True, help="Also search pooling and layers.")
@click.option("--cv", type=click.IntRange(2), default=5, show_default=True)
@click.option("--n-iter", type=click.IntRange(1), default=20, show_default=True)
@_augment_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache/--no-cache", default=True, show_default=True, help="Embedding cache.")
@click.option("--progress/--no-progress", default=None, help="Progress bar for searches.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@friendly_errors
def train(
    data: str,
    fmt: str | None,
    text_cols: tuple[str, ...],
    label_col: str,
    label_sep: str | None,
    dev: str | None,
    models: tuple[str, ...],
    heads: tuple[str, ...],
    ensemble: str | None,
    tfidf: bool,
    task: str | None,
    params: tuple[str, ...],
    class_weight: str | None,
    pooling: str | None,
    normalize: bool | None,
    layers: str | None,
    combine: str | None,
    long_text: str | None,
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
    import featx

    if Path(out).exists() and not force:
        raise FileExistsError(f"{out} already exists. Choose another path or pass --force.")
    if label_sep is None and task == "multilabel":
        label_sep = ","
    X, y = read_dataset(data, text_cols, label_col, fmt=fmt, label_sep=label_sep)
    dev_set = None
    if dev is not None:
        dev_set = read_dataset(dev, text_cols, label_col, fmt=fmt, label_sep=label_sep)
    representation = {
        k: v
        for k, v in {
            "pooling": pooling,
            "normalize": normalize,
            "combine": combine,
            "layers": parse_layers(layers, allow_all=True),
            "long_text": long_text,
        }.items()
        if v is not None
    }
    predictor = featx.train(
        X,
        y,
        model=list(models) or None,
        head=list(heads),
        task=task,
        search=search,
        search_representation=search_representation,
        cv=cv,
        n_iter=n_iter,
        dev=dev_set,
        show_progress=progress,
        random_state=seed,
        augment=_augmenter(augment, augment_copies, models, seed),
        tfidf=tfidf,
        ensemble=ensemble,
        representation=representation,
        head_params=_params(params),
        class_weight=class_weight,
        cache=cache,
        precision=precision,
    )
    predictor.save(out, force=force)
    metrics = predictor.metrics
    if "search" in metrics:
        found = metrics["search"]
        click.echo(
            f"search: best {found['scoring']} {found['best_score']:.4f} over {cv} folds with "
            f"{json.dumps(found['best_params'])}"
        )
    if "dev" in metrics:
        from featx.evaluation import summary

        click.echo("dev:")
        click.echo(summary(metrics["dev"]))
    click.echo(f"saved {predictor.task.value} model to {out}")


def _augmenter(methods: str | None, copies: int, models: tuple[str, ...], seed: int) -> Any:
    """The --augment option as an Augmenter whose synonyms come from the first model."""
    if not methods:
        return None
    from featx.augment import Augmenter

    model = models[0] if models else None
    return Augmenter(methods.split(","), copies=copies, model=model, seed=seed)


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs; values are JSON where they parse (numbers, lists), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE, e.g. C=0.5.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", required=True, help="Texts: a file, or - for stdin.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*INPUT_FORMATS, "conll"]),
    help="Input format (default: from the suffix; text lines otherwise; conll: taggers).",
)
@_text_col
@click.option("-o", "--output", help="Output .jsonl, .csv or .tsv (default: JSONL on stdout).")
@click.option(
    "--proba/--no-proba",
    default=None,
    help="Write probabilities (default: when the head has them).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@friendly_errors
def predict(
    artifact: str,
    input_path: str,
    fmt: str | None,
    text_cols: tuple[str, ...],
    output: str | None,
    proba: bool | None,
    force: bool,
) -> None:
    """Predict labels (and probabilities) or scores for texts with a trained ARTIFACT.

    With a tagger (``featx train-ner``): the entities of each text, with character offsets.
    """
    from featx.io import input_format, read_texts
    from featx.predictor import Predictor
    from featx.tagging import is_tagger

    kind = _output_kind(output)
    if output is not None and Path(output).exists() and not force:
        raise FileExistsError(f"{output} already exists. Choose another path or pass --force.")
    if is_tagger(artifact):
        from featx.cli_ner import predict_entities

        if len(text_cols) != 1:
            raise ValueError("A tagger reads one text column; give --text-col once.")
        _write_rows(predict_entities(artifact, input_path, fmt, text_cols[0]), output, kind)
        return
    if fmt == "conll":
        raise ValueError("--format conll is for taggers (featx train-ner); this is a classifier.")
    model = Predictor.load(artifact)
    if input_format(input_path, fmt) == "lines":
        if len(text_cols) != 1:
            raise ValueError("Sentence pairs need a table input (tsv, csv, jsonl or parquet).")
        X: Any = read_texts(input_path, fmt=fmt)
    else:
        X, _ = read_dataset(input_path, text_cols, None, fmt=fmt)
    rows = [{"index": i, **record} for i, record in enumerate(model.records(X, proba=proba))]
    for row in rows:
        if "probabilities" in row:
            row["probabilities"] = {k: round(p, 6) for k, p in row["probabilities"].items()}
    _write_rows(rows, output, kind)
    if output is not None:
        click.echo(f"wrote {len(rows)} predictions to {output}", err=True)


def _output_kind(output: str | None) -> str:
    if output is None:
        return "jsonl"
    kind = Path(output).suffix.lower().lstrip(".")
    if kind not in ("jsonl", "csv", "tsv"):
        raise ValueError(f"Cannot tell the output format of {output!r}; use .jsonl, .csv or .tsv.")
    return kind


def _write_rows(rows: list[dict[str, Any]], output: str | None, kind: str) -> None:
    """JSONL (one object per line) or a CSV/TSV table with one column per probability."""
    from featx._atomic import atomic_write

    if kind == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        flat = []
        for r in rows:
            record = {k: v for k, v in r.items() if k != "probabilities"}
            if isinstance(record.get("labels"), list):
                record["labels"] = ",".join(map(str, record["labels"]))
            if "entities" in record:
                record["entities"] = json.dumps(record["entities"], ensure_ascii=False)
            record.update({f"p_{k}": v for k, v in r.get("probabilities", {}).items()})
            flat.append(record)
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


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@_data_options
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
@click.option("--force", is_flag=True, help="Replace the report directory if it exists.")
@friendly_errors
def evaluate(
    artifact: str,
    data: str,
    fmt: str | None,
    text_cols: tuple[str, ...],
    label_col: str,
    label_sep: str | None,
    report_dir: str,
    no_report: bool,
    as_json: bool,
    force: bool,
) -> None:
    """Score a trained ARTIFACT on labelled DATA and write a report with plots.

    A tagger (``featx train-ner``) is scored on CoNLL or JSONL-span DATA: entity-level
    precision, recall and F1 per type (conlleval semantics); no plots.
    """
    import featx
    from featx.evaluation import summary, write_report
    from featx.predictor import Predictor
    from featx.tagging import is_tagger

    if is_tagger(artifact):
        from featx.cli_ner import evaluate_tagger

        evaluate_tagger(artifact, data, as_json)
        return

    if not no_report and Path(report_dir).exists() and not force:
        raise FileExistsError(
            f"{report_dir} already exists. Pass --report DIR, --force or --no-report."
        )
    model = Predictor.load(artifact)
    if model.task.value == "multilabel" and label_sep is None:
        label_sep = ","
    X, y = read_dataset(data, text_cols, label_col, fmt=fmt, label_sep=label_sep)
    result = featx.evaluate(model, X, y)
    click.echo(json.dumps(result.metrics, indent=2) if as_json else summary(result.metrics))
    if not no_report:
        title = f"{Path(artifact).name} on {Path(data).name}"
        write_report(result, report_dir, title=title, force=force)
        click.echo(f"report: {Path(report_dir) / 'report.html'}", err=True)
