"""Good results by default: ``featx train`` as a new user runs it, against its baselines.

For each data set, three rows, in one run on one machine:

- ``featx train`` with no options (the ``auto`` recipe: candidates scored by 5-fold CV
  on train, the best refitted), run as a command with an empty embedding cache;
- ``featx train --recipe fast`` (the model's embedding + logistic regression, one fit:
  the default before issue 17), the same way;
- a TF-IDF (word 1-2 grams) + logistic regression baseline with C tuned by 5-fold CV on
  train (scikit-learn alone).

Test accuracy comes from ``featx evaluate --json`` on the saved model. Wall time is the
whole command (start, reading, embedding, fitting, saving). Data sets:

- ``sst2``: SST-2 train / test (6,920 / 1,821 sentences, 2 classes).
- ``topics``: SQuAD v1.1 dev questions labelled with their article (48 classes), split
  80 / 20 per article with a fixed seed: a task where words matter more than sentiment.
- ``long``: whole documents, not sentences: every three consecutive paragraphs of a SQuAD
  dev article make one document (about 2.5x the model's 256 tokens), labelled with its
  article, split 50 / 50 per article. ``featx train --recipe fast`` with the default
  first-window truncation against ``--long-text chunk_mean`` (every window embedded,
  their vectors averaged), and the truncation report of the first.

Appends one JSON line per row to ``benchmarks/results/bench_recipe.jsonl``.

    python benchmarks/bench_recipe.py
    python benchmarks/bench_recipe.py --sets sst2 --limit 400
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SETS = ("sst2", "topics", "long")
C_GRID = [0.3, 1.0, 3.0, 10.0, 30.0]
SEED = 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument(
        "--sets", "--parts", dest="parts", nargs="+", default=list(SETS), choices=SETS
    )
    parser.add_argument("--limit", type=int, default=0, help="first N train and test rows (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    common.add_out_arg(parser, "bench_recipe")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.threads < 1:
        parser.error("--limit must be >= 0 and --threads >= 1")
    return args


class Run(common.Run):
    """One run: the artifact, a work folder for the tables and models, shared records."""

    def __init__(self, args: argparse.Namespace) -> None:
        artifact, _ = common.ensure_artifact(args.artifact.resolve())
        self.artifact = str(artifact)
        self.work = Path(tempfile.mkdtemp(prefix="featx-bench-recipe-"))
        settings = {"threads": args.threads, "limit": args.limit, "tfidf_c_grid": C_GRID}
        base = common.base_record(
            "recipe", threads=args.threads, settings=settings, artifact=artifact
        )
        super().__init__(args, base)

    def summary(self, fields: dict[str, Any]) -> str:
        return (
            f"{fields['part']}/{fields['config']}: test {fields['test_accuracy']:.2f}, "
            f"{fields['seconds']:.1f} s"
        )

    def table(self, name: str, texts: list[str], labels: list[str]) -> Path:
        path = self.work / f"{name}.tsv"
        rows = "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels, strict=True))
        path.write_text("text\tlabel\n" + rows, encoding="utf-8")
        return path


def sst2(run: Run) -> tuple[list[str], list[str], list[str], list[str]]:
    """SST-2 train and test texts and labels."""
    n = run.args.limit
    splits = []
    for split in ("train", "test"):
        header, rows = common.read_tsv(run.args.data / "sst2" / f"{split}.tsv")
        rows = rows[:n] if n else rows
        splits += [
            [r[header.index("text")] for r in rows],
            [r[header.index("label")] for r in rows],
        ]
    return splits[0], splits[1], splits[2], splits[3]


def topics(run: Run) -> tuple[list[str], list[str], list[str], list[str]]:
    """SQuAD dev questions and their article titles, 80 / 20 per article (seeded)."""
    from sklearn.model_selection import train_test_split

    path = run.args.data / "squad" / "dev.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    questions = [" ".join(r["question"].split()) for r in records]  # one line per question
    titles = [r["title"] for r in records]
    xtr, xte, ytr, yte = train_test_split(
        questions, titles, test_size=0.2, stratify=titles, random_state=SEED
    )
    if run.args.limit:
        xtr, ytr, xte, yte = (v[: run.args.limit] for v in (xtr, ytr, xte, yte))
    return list(xtr), list(ytr), list(xte), list(yte)


def documents(run: Run) -> tuple[list[str], list[str], list[str], list[str]]:
    """Three consecutive paragraphs of a SQuAD dev article per document, 50 / 50 per article."""
    from sklearn.model_selection import train_test_split

    path = run.args.data / "squad" / "dev.jsonl"
    paragraphs: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        context = " ".join(record["context"].split())
        article = paragraphs.setdefault(record["title"], [])
        if context not in article:
            article.append(context)
    texts, titles = [], []
    for title, article in paragraphs.items():
        for i in range(0, len(article) - 2, 3):
            texts.append(" ".join(article[i : i + 3]))
            titles.append(title)
    xtr, xte, ytr, yte = train_test_split(
        texts, titles, test_size=0.5, stratify=titles, random_state=SEED
    )
    if run.args.limit:
        xtr, ytr, xte, yte = (v[: run.args.limit] for v in (xtr, ytr, xte, yte))
    return list(xtr), list(ytr), list(xte), list(yte)


def part_long(run: Run) -> None:
    xtr, ytr, xte, yte = documents(run)
    train, test = run.table("long-train", xtr, ytr), run.table("long-test", xte, yte)
    facts = {"part": "long", "n_train": len(xtr), "n_test": len(xte), "n_classes": len(set(ytr))}
    for mode in ("truncate", "chunk_mean"):
        out = run.work / f"long-{mode}"
        args = ["train", "--data", str(train), "-m", run.artifact, "--out", str(out)]
        args += ["--recipe", "fast", "--long-text", mode, "--no-progress"]
        seconds, _, stderr = featx_command(run, *args, with_stderr=True)
        _, metrics, _ = featx_command(
            run, "evaluate", str(out), "--data", str(test), "--no-report", "--json",
            with_stderr=True,
        )  # fmt: skip
        warning = [line for line in stderr.splitlines() if "were truncated" in line]
        run.record(
            **facts,
            config=f"featx train --recipe fast --long-text {mode}",
            test_accuracy=100 * json.loads(metrics)["accuracy"],
            seconds=seconds,
            truncation_warning=warning[0] if warning else None,
        )


def featx_command(run: Run, *args: str, with_stderr: bool = False) -> Any:
    """Run ``featx ARGS`` with an empty embedding cache: (wall seconds, stdout[, stderr])."""
    env = {**os.environ, "FEATX_CACHE_DIR": tempfile.mkdtemp(dir=run.work), "HF_HUB_OFFLINE": "1"}
    env["OMP_NUM_THREADS"] = str(run.args.threads)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from featx.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"featx {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return (seconds, done.stdout, done.stderr) if with_stderr else (seconds, done.stdout)


def part(run: Run, name: str, data: tuple[list[str], list[str], list[str], list[str]]) -> None:
    xtr, ytr, xte, yte = data
    train, test = run.table(f"{name}-train", xtr, ytr), run.table(f"{name}-test", xte, yte)
    facts = {"part": name, "n_train": len(xtr), "n_test": len(xte), "n_classes": len(set(ytr))}
    for config, extra in (
        ("featx train (auto recipe)", []),
        ("featx train --recipe fast", ["--recipe", "fast"]),
    ):
        out = run.work / f"{name}-{len(extra)}"
        seconds, stdout = featx_command(
            run,
            "train",
            "--data",
            str(train),
            "-m",
            run.artifact,
            "--out",
            str(out),
            "--no-progress",
            *extra,
        )
        _, metrics = featx_command(
            run, "evaluate", str(out), "--data", str(test), "--no-report", "--json"
        )
        saved = json.loads((out / "metrics.json").read_text())
        run.record(
            **facts,
            config=config,
            test_accuracy=100 * json.loads(metrics)["accuracy"],
            seconds=seconds,
            recipe=saved.get("recipe"),
            model_mb=sum(f.stat().st_size for f in out.iterdir()) / 1e6,
            stdout=stdout.strip().splitlines()[-8:],
        )
    run.record(**facts, config="TF-IDF + logistic regression (C by CV)", **tfidf_baseline(data))


def tfidf_baseline(data: tuple[list[str], list[str], list[str], list[str]]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline

    xtr, ytr, xte, yte = data
    start = time.perf_counter()
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=2000),
    )
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
    search = GridSearchCV(pipeline, {"logisticregression__C": C_GRID}, cv=folds).fit(xtr, ytr)
    accuracy = float(np.mean(search.predict(xte) == np.asarray(yte)))
    return {
        "test_accuracy": 100 * accuracy,
        "cv_accuracy": 100 * float(search.best_score_),
        "best_c": search.best_params_["logisticregression__C"],
        "seconds": time.perf_counter() - start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = {
        "sst2": lambda r: part(r, "sst2", sst2(r)),
        "topics": lambda r: part(r, "topics", topics(r)),
        "long": part_long,
    }
    return common.run_parts(parts, args, Run(args), render)


def render(records: list[dict[str, Any]]) -> str:
    """One Markdown table: each data set's rows, the auto recipe's choice and its time ratio."""
    rows = []
    for r in records:
        fast = next(
            (
                x
                for x in records
                if x["part"] == r["part"] and x["config"].endswith("--recipe fast")
            ),
            None,
        )
        recipe = r.get("recipe") or {}
        notes = f"chose {recipe['chosen']}" if recipe.get("name") == "auto" else ""
        if recipe.get("why"):
            notes = f"fast recipe: {recipe['why']}"
        if r.get("truncation_warning"):
            notes = r["truncation_warning"].split(" tokens and were truncated")[0]
        if fast is not None and recipe.get("name") == "auto":
            notes += f", {r['seconds'] / fast['seconds']:.2f}x the fast recipe's time"
        rows.append(
            [r["part"], r["config"], f"{r['test_accuracy']:.2f}", f"{r['seconds']:.0f} s", notes]
        )
    return common.markdown_table(["set", "configuration", "test acc", "wall", "notes"], rows)


if __name__ == "__main__":
    raise SystemExit(main())
