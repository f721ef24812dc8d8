"""Named-entity recognition on CoNLL-2003 with the default model, on this CPU.

Parts (all by default):

- ``frozen``: the frozen encoder's word vectors (middle layers, neighbours, word shape)
  under the CRF tagger (``featx.tagging.train_ner``), ``c2`` chosen on dev; and a
  per-token linear classifier (logistic regression) on the same features, decoded per
  word, for comparison. Each with its wall time (embedding + training).
- ``finetuned``: the top layers fine-tuned for the tags (``train_layers``), exported back
  to ONNX, then the CRF on the fine-tuned word vectors; wall time of the whole job.
- ``parity``: word vectors of the exported graphs (fp32 and int8) against torch on dev
  sentences: cosine per word.

Test scores are entity-level micro F1 (conlleval semantics) of the saved artifact on
the test split. Appends one JSON line per configuration to
``benchmarks/results/bench_ner.jsonl`` and prints a Markdown table.

    python benchmarks/bench_ner.py
    python benchmarks/bench_ner.py --parts frozen --limit 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

PARTS = ("frozen", "finetuned", "parity")
C2_GRID = (30.0, 100.0, 300.0)
FINETUNE = {"train_layers": "all", "epochs": 3, "lr": 1e-4, "batch_size": 32, "patience": 1}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--limit", type=int, default=0, help="first N sentences per split (0: all)")
    parser.add_argument("--c2", type=float, nargs="+", default=list(C2_GRID))
    parser.add_argument("--max-iter", type=int, default=300, help="CRF iterations")
    parser.add_argument("--train-layers", default=str(FINETUNE["train_layers"]))
    parser.add_argument("--epochs", type=int, default=int(FINETUNE["epochs"]))  # type: ignore[call-overload]
    parser.add_argument("--patience", type=int, default=int(FINETUNE["patience"]))  # type: ignore[call-overload]
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, help="where artifacts go (default: a temp dir)")
    common.add_out_arg(parser, "bench_ner")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.threads < 1:
        parser.error("--limit must be >= 0 and --threads >= 1")
    return args


class Run(common.Run):
    """One benchmark run: CoNLL-2003, a work folder, the default model's artifact."""

    def __init__(self, args: argparse.Namespace) -> None:
        from featx.tagging import read_sentences

        self.work = common.work_dir(args.work, "featx-bench-ner-")
        self.splits = {}
        for split in ("train", "dev", "test"):
            sentences = read_sentences(args.data / "conll2003" / f"{split}.txt")
            sentences = sentences[: args.limit] if args.limit else sentences
            self.splits[split] = ([s.words for s in sentences], [list(s.tags) for s in sentences])
        settings = {"threads": args.threads, "limit": args.limit, "max_iter": args.max_iter}
        super().__init__(args, common.base_record("ner", threads=args.threads, settings=settings))
        self.artifact, _ = common.ensure_artifact(args.artifact)


def _scores(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        "f1": round(100 * scores["micro"]["f1"], 2),
        "precision": round(100 * scores["micro"]["precision"], 2),
        "recall": round(100 * scores["micro"]["recall"], 2),
        "per_type_f1": {t: round(100 * m["f1"], 2) for t, m in scores["per_type"].items()},
    }


def tagger_record(run: Run, part: str, config: str, **options: Any) -> None:
    """Train a tagger with ``options``, save it, score the saved artifact on test."""
    from featx.tagging import Tagger, train_ner

    X, y = run.splits["train"]
    X_dev, y_dev = run.splits["dev"]
    X_test, y_test = run.splits["test"]
    out = run.work / config
    started = time.perf_counter()
    tagger = train_ner(
        X, y, dev=(X_dev, y_dev), out=out, force=True, max_iter=run.args.max_iter, **options
    )
    seconds = time.perf_counter() - started
    loaded = Tagger.load(out)
    scoring = time.perf_counter()
    test = loaded.evaluate(X_test, y_test)
    scoring = time.perf_counter() - scoring
    n_words = sum(len(s) for s in X_test)
    finetune = tagger.metrics.get("finetune") or {}
    run.record(
        part=part,
        config=config,
        dev_f1=round(100 * tagger.metrics["dev"]["micro"]["f1"], 2),
        test=_scores(test),
        test_f1=round(100 * test["micro"]["f1"], 2),
        wall_seconds=round(seconds, 1),
        finetune_seconds=finetune.get("train_seconds"),
        search=tagger.metrics.get("search"),
        tagger_settings=tagger.metrics["settings"],
        default_precision=loaded.embedder.get_encoder().precision,
        test_words_per_s=round(n_words / scoring, 1),
    )


def part_frozen(run: Run) -> None:
    tagger_record(run, "frozen", "frozen-crf", model=str(run.artifact), c2=run.args.c2)
    linear_record(run)


def linear_record(run: Run) -> None:
    """Per-token logistic regression on the tagger's features (no CRF), for comparison."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from featx.tagging import Tagger, entity_scores

    tagger = Tagger.load(run.work / "frozen-crf")
    started = time.perf_counter()
    X, y = run.splits["train"]
    features = tagger.embedder.transform(X)
    scaler = StandardScaler().fit(np.concatenate(features))
    flat_y = [t for tags in y for t in tags]
    model = LogisticRegression(max_iter=300, C=0.5)
    model.fit(scaler.transform(np.concatenate(features)), flat_y)
    seconds = time.perf_counter() - started
    X_test, y_test = run.splits["test"]
    test_features = tagger.embedder.transform(X_test)
    predicted = model.predict(scaler.transform(np.concatenate(test_features)))
    tags, position = [], 0
    for words in X_test:
        tags.append(list(predicted[position : position + len(words)]))
        position += len(words)
    test = entity_scores(y_test, tags)
    run.record(
        part="frozen",
        config="frozen-linear",
        test=_scores(test),
        test_f1=round(100 * test["micro"]["f1"], 2),
        wall_seconds=round(seconds, 1),
    )


def part_finetuned(run: Run) -> None:
    layers = run.args.train_layers
    tagger_record(  # from the Hugging Face model: an artifact holds ONNX only
        run,
        "finetuned",
        f"finetuned-{layers}",
        c2=run.args.c2,
        **{
            **FINETUNE,
            "train_layers": layers if layers == "all" else int(layers),
            "epochs": run.args.epochs,
            "patience": run.args.patience,
        },
    )


def part_parity(run: Run) -> None:
    """Per-word cosine of ONNX (fp32, int8) word vectors against torch."""
    import featx

    encoder_torch = featx.load(common.DEFAULT_MODEL, backend="torch")
    X_dev = run.splits["dev"][0][:500]
    expected = encoder_torch.encode_tokens(X_dev, layers=(3, 4))
    for precision in ("fp32", "int8"):
        onnx = featx.load(run.artifact, precision=precision)
        got = onnx.encode_tokens(X_dev, layers=(3, 4))
        cos = np.concatenate(
            [common.cosines(g.vectors, e.vectors) for g, e in zip(got, expected, strict=True)]
        )
        run.record(
            part="parity",
            config=f"onnx-{precision}",
            n_words=int(len(cos)),
            min_cosine=round(float(cos.min()), 6),
            mean_cosine=round(float(cos.mean()), 6),
            share_at_least_0_999=round(float((cos >= 0.999).mean()), 4),
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.warn_if_busy(args.threads)
    parts = {"frozen": part_frozen, "finetuned": part_finetuned, "parity": part_parity}
    return common.run_parts(parts, args, Run(args), render)


TABLE = ["part", "configuration", "dev F1", "test F1", "wall s", "graph", "min cosine"]


def render(records: list[dict[str, Any]]) -> str:
    """A Markdown table of one run."""
    return common.records_table(TABLE, records, table_row)


def table_row(r: dict[str, Any]) -> list[str]:
    return [
        r["part"],
        r["config"],
        common.fmt(r.get("dev_f1"), ".2f"),
        common.fmt(r.get("test_f1"), ".2f"),
        common.fmt(r.get("wall_seconds"), ".0f"),
        r.get("default_precision", ""),
        common.fmt(r.get("min_cosine"), ".4f"),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
