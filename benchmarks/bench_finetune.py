"""Partial fine-tuning of the default model on SST-2, exported back to ONNX, on this CPU.

Parts (all by default):

- ``layers``: accuracy against layers unfrozen (0 = head only, 1, 2, 4, all), each with
  its training wall time; dev scored every epoch, the best epoch kept (early stopping).
  Test accuracy is that of the exported artifact (ONNX, its default precision); the
  int8 graph's test predictions are compared with the fine-tuned torch model's.
- ``precision``: the same run (top 2 layers, 2 epochs) with bf16 autocast and in fp32:
  training time ratio and test accuracy.
- ``lowdata``: 64 and 256 training labels (5 fixed draws each), with and without EDA
  augmentation (4 copies per text), for a frozen head (logistic regression, C by CV)
  and for fine-tuning the top 2 layers (fixed epochs, no dev set).
- ``fewshot``: the same draws (64 and 256 labels), SetFit-style contrastive fine-tuning
  (``method="contrastive"`` with its defaults: all layers, one epoch over 40 pairs per
  text, lr 2e-5), then logistic regression on the exported encoder.
- ``defaults``: ``featx.finetune`` with no settings at all (with the dev set): test
  accuracy and training time of what a new user gets.
- ``serve``: the best fine-tuned artifact in the featx server, unchanged: ``/predict``
  answers equal the library's.

Appends one JSON line per configuration to ``benchmarks/results/bench_finetune.jsonl``
and prints a Markdown table.

    python benchmarks/bench_finetune.py
    python benchmarks/bench_finetune.py --parts precision --limit 1000
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

PARTS = ("layers", "precision", "lowdata", "fewshot", "defaults", "serve")
# Re-measure the artifacts a run left in --work: agreement with torch, embedding speed.
EXTRA_PARTS = ("agreement", "speed")
LAYERS: list[int | str] = [0, 1, 2, 4, "all"]
# Head-only training reads cached features, so it can afford many epochs and a high rate.
HEAD_ONLY = {"epochs": 40, "head_lr": 1e-2, "patience": 5}
LAYER_RUN = {"epochs": 3, "lr": 1e-4, "batch_size": 32, "patience": 2}
LOW_SIZES = (64, 256)
LOW_DRAWS = 5
AUGMENT = {"methods": ["eda"], "copies": 4}
# Fixed step budgets for the low-data fine-tuning (there is no dev set to stop on).
LOW_EPOCHS = {64: 20, 256: 8}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS + EXTRA_PARTS)
    parser.add_argument("--limit", type=int, default=0, help="first N rows of each split (0: all)")
    parser.add_argument("--layers", nargs="+", default=[str(n) for n in LAYERS])
    parser.add_argument("--draws", type=int, default=LOW_DRAWS)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(LOW_SIZES), help="low data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, help="where artifacts go (default: a temp dir)")
    common.add_out_arg(parser, "bench_finetune")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.threads < 1 or args.draws < 1:
        parser.error("--limit must be >= 0, --threads and --draws >= 1")
    args.layers = [n if n == "all" else int(n) for n in args.layers]
    return args


class Run(common.Run):
    """One benchmark run: SST-2, a work folder, the best artifact so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        torch.set_num_threads(args.threads)
        self.work = common.work_dir(args.work, "featx-bench-finetune-")
        d, n = args.data / "sst2", args.limit
        self.splits = {}
        for split in ("train", "dev", "test"):
            header, rows = common.read_tsv(d / f"{split}.tsv")
            rows = rows[:n] if n else rows
            self.splits[split] = ([r[0] for r in rows], [int(r[1]) for r in rows])
        settings = {"threads": args.threads, "limit": args.limit}
        super().__init__(
            args, common.base_record("finetune", threads=args.threads, settings=settings)
        )
        self.best: tuple[float, Path] | None = None


def torch_outputs(artifact: Path, texts: list[str]) -> np.ndarray:
    """The fine-tuned torch model's head outputs (from the artifact's hf/ folder)."""
    import featx

    predictor = featx.Predictor.load(artifact)
    encoder = featx.load(artifact, backend="torch")
    head = predictor.estimator.steps[-1][1]
    return head.decision_function(encoder.encode(texts, show_progress=False))


def finetuned(run: Run, name: str, **settings: Any) -> dict[str, Any]:
    """Fine-tune on SST-2 train with dev, score the artifact on test; return the record."""
    import featx

    xtr, ytr = run.splits["train"]
    xdv, ydv = run.splits["dev"]
    xte, yte = run.splits["test"]
    out = run.work / name
    started = time.perf_counter()
    result = featx.finetune(
        xtr,
        ytr,
        model=common.DEFAULT_MODEL,
        out=out,
        dev=(xdv, ydv),
        force=True,
        show_progress=False,
        **settings,
    )
    total = time.perf_counter() - started
    predictor = result.predictor
    proba = predictor.predict_proba(xte)
    labels = np.asarray(predictor.labels)
    test = float(np.mean(labels[proba.argmax(axis=1)] == np.asarray(yte))) * 100
    agreement = graph_agreement(out, xte, yte)
    report = result.report
    if run.best is None or report["best"]["accuracy"] > run.best[0]:
        run.best = (report["best"]["accuracy"], out)
    return {
        "settings_used": report["settings"],
        "autocast_used": report["autocast_used"],
        "train_seconds": report["train_seconds"],
        "total_seconds": round(total, 1),
        "epochs_run": report["history"]["evals"][-1]["epoch"] if report["history"]["evals"] else 0,
        "best_epoch": report["best"].get("epoch"),
        "dev_accuracy": round(report["best"]["accuracy"] * 100, 2),
        "test_accuracy": round(test, 2),
        **agreement,
        "default_precision": predictor_precision(out),
        "dev_gate": report["dev_gate"],
        "trainable_parameters": report["trainable_parameters"]["trainable"],
    }


def graph_agreement(artifact: Path, texts: list[str], y: list[int]) -> dict[str, float]:
    """How often each ONNX graph (with the numpy head) predicts what the torch model does."""
    import featx

    reference = torch_outputs(artifact, texts).argmax(axis=1)
    labels = np.asarray(featx.Predictor.load(artifact).labels)
    out: dict[str, float] = {}
    for precision in ("int8", "fp32"):
        estimator = featx.Predictor.load(artifact).estimator
        estimator.set_params(embed__precision=precision)
        predicted = estimator.predict_proba(texts).argmax(axis=1)
        out[f"{precision}_torch_agreement"] = round(float(np.mean(predicted == reference)) * 100, 2)
    out["test_accuracy_torch"] = round(float(np.mean(labels[reference] == np.asarray(y))) * 100, 2)
    return out


def encoder_section(artifact: Path) -> Any:
    """The manifest's encoder section (graphs, default precision) of ``artifact``."""
    from featx.artifact import Artifact

    return Artifact.open(artifact).manifest.encoder


def predictor_precision(artifact: Path) -> str:
    return encoder_section(artifact).default_precision.value


def part_layers(run: Run) -> None:
    for n in run.args.layers:
        settings = {**LAYER_RUN, **(HEAD_ONLY if n == 0 else {}), "train_layers": n}
        fields = finetuned(run, f"layers-{n}", **settings)
        run.record(part="layers", config=f"train_layers={n}", **fields)


def part_precision(run: Run) -> None:
    for autocast in ("bf16", "fp32"):
        fields = finetuned(
            run,
            f"precision-{autocast}",
            train_layers=2,
            epochs=2,
            lr=1e-4,
            autocast=autocast,
            patience=None,
        )
        run.record(part="precision", config=autocast, **fields)
    bf16, fp32 = run.records[-2], run.records[-1]
    ratio = fp32["train_seconds"] / bf16["train_seconds"]
    print(f"  bf16 trains {ratio:.2f}x faster than fp32", file=sys.stderr)


def _draw(run: Run, size: int, seed: int) -> tuple[list[str], list[int]]:
    """``size`` training examples, half of each class, drawn with ``seed``."""
    xtr, ytr = run.splits["train"]
    rng = np.random.default_rng(seed)
    labels = np.asarray(ytr)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), size // 2, replace=False) for c in (0, 1)]
    )
    rows = rng.permutation(rows)
    return [xtr[i] for i in rows], [ytr[i] for i in rows]


def part_lowdata(run: Run) -> None:
    import featx
    from featx.augment import Augmenter

    xte, yte = run.splits["test"]
    artifact, _ = common.ensure_artifact(run.args.artifact.resolve())
    for size in run.args.sizes:
        for augmented in (False, True):
            for method in ("frozen", "finetune"):
                scores, seconds = [], []
                for seed in range(run.args.draws):
                    X, y = _draw(run, size, seed)
                    augment = (
                        Augmenter(AUGMENT["methods"], copies=AUGMENT["copies"], seed=seed)
                        if augmented
                        else None
                    )
                    started = time.perf_counter()
                    if method == "frozen":
                        predictor = featx.train(
                            X,
                            y,
                            model=str(artifact),
                            search="grid",
                            cv=4,
                            seed=seed,
                            augment=augment,
                            show_progress=False,
                        )
                    else:
                        predictor = featx.finetune(
                            X,
                            y,
                            model=common.DEFAULT_MODEL,
                            out=run.work / "low",
                            force=True,
                            train_layers=2,
                            epochs=LOW_EPOCHS.get(size, 20),
                            lr=1e-4,
                            seed=seed,
                            augment=augment,
                            show_progress=False,
                        ).predictor
                    seconds.append(time.perf_counter() - started)
                    predicted = predictor.predict(xte)
                    scores.append(float(np.mean(np.asarray(predicted) == np.asarray(yte))) * 100)
                how = "EDA x4" if augmented else "no augmentation"
                run.record(
                    part="lowdata",
                    config=f"{size} labels, {method}, {how}",
                    n_labels=size,
                    method=method,
                    augment=AUGMENT if augmented else None,
                    test_accuracy=round(float(np.mean(scores)), 2),
                    test_accuracy_std=round(float(np.std(scores)), 2),
                    test_accuracies=[round(s, 2) for s in scores],
                    seconds_mean=round(float(np.mean(seconds)), 1),
                )


def part_fewshot(run: Run) -> None:
    import featx

    xte, yte = run.splits["test"]
    for size in run.args.sizes:
        scores, seconds = [], []
        for seed in range(run.args.draws):
            X, y = _draw(run, size, seed)
            started = time.perf_counter()
            result = featx.finetune(
                X,
                y,
                model=common.DEFAULT_MODEL,
                method="contrastive",
                out=run.work / "fewshot",
                force=True,
                seed=seed,
                show_progress=False,
            )
            seconds.append(time.perf_counter() - started)
            predicted = result.predictor.predict(xte)
            scores.append(float(np.mean(np.asarray(predicted) == np.asarray(yte))) * 100)
        run.record(
            part="fewshot",
            config=f"{size} labels, contrastive (SetFit recipe)",
            n_labels=size,
            method="contrastive",
            test_accuracy=round(float(np.mean(scores)), 2),
            test_accuracy_std=round(float(np.std(scores)), 2),
            test_accuracies=[round(s, 2) for s in scores],
            seconds_mean=round(float(np.mean(seconds)), 1),
        )


def part_defaults(run: Run) -> None:
    record = finetuned(run, "defaults")
    run.record(part="defaults", config="featx.finetune, no settings", **record)


def part_serve(run: Run) -> None:
    import featx
    from server import create_app

    if run.best is None:
        part = finetuned(run, "serve", train_layers=2, epochs=1)
        del part
    assert run.best is not None
    artifact = run.best[1]
    texts = run.splits["test"][0][:200]
    app = create_app({"MODELS": {"sst2": str(artifact)}})
    client = app.test_client()
    answer = client.post("/predict", json={"model": "sst2", "texts": texts}).get_json()
    served = [row["label"] for row in answer["predictions"]]
    library = featx.Predictor.load(artifact).predict(texts)
    run.record(
        part="serve",
        config="featx server /predict",
        artifact=str(artifact.name),
        n_texts=len(texts),
        equal_to_library=float(np.mean(np.asarray(served) == np.asarray(library))) * 100,
    )


def part_agreement(run: Run) -> None:
    from featx.artifact import Artifact, is_artifact

    xte, yte = run.splits["test"]
    tuned = [p for p in run.work.iterdir() if is_artifact(p) and Artifact.open(p).manifest.finetune]
    for artifact in sorted(tuned):
        run.record(
            part="agreement",
            config=artifact.name,
            default_precision=predictor_precision(artifact),
            **graph_agreement(artifact, xte, yte),
        )


def part_speed(run: Run) -> None:
    """Embedding throughput of a fine-tuned artifact's graphs against the base model's."""
    import featx
    from featx.config import Precision

    texts = run.splits["test"][0]
    base, _ = common.ensure_artifact(run.args.artifact.resolve())
    tuned = run.best[1] if run.best else run.work / "layers-all"
    for name, artifact in (("base", base), ("fine-tuned", tuned)):
        for precision in ("fp32", "int8"):
            encoder = featx.load(artifact, precision=precision, threads=run.args.threads)
            encoder.encode(texts[:64])
            times = []
            for _ in range(3):
                started = time.perf_counter()
                encoder.encode(texts)
                times.append(time.perf_counter() - started)
            recipe = encoder_section(Path(artifact)).variants[Precision(precision)].recipe or {}
            run.record(
                part="speed",
                config=f"{name} {precision}",
                artifact=str(artifact),
                texts_per_s=round(len(texts) / float(np.median(times)), 1),
                fp32_matmuls=recipe.get("fp32_matmuls", 0),
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.warn_if_busy(args.threads)
    parts = {
        "layers": part_layers,
        "precision": part_precision,
        "lowdata": part_lowdata,
        "fewshot": part_fewshot,
        "defaults": part_defaults,
        "serve": part_serve,
        "agreement": part_agreement,
        "speed": part_speed,
    }
    return common.run_parts(parts, args, Run(args), render)


TABLE = [
    "part",
    "configuration",
    "dev acc",
    "test acc",
    "int8 = torch %",
    "default graph",
    "train s",
    "autocast",
]


def render(records: list[dict[str, Any]]) -> str:
    """A Markdown table of one run."""
    return common.records_table(TABLE, records, table_row)


def table_row(r: dict[str, Any]) -> list[str]:
    test = common.fmt(r.get("test_accuracy"), ".2f")
    if "test_accuracy_std" in r:
        test += f" ± {r['test_accuracy_std']:.2f}"
    seconds = common.fmt(r.get("train_seconds") or r.get("seconds_mean"), ".0f")
    if "texts_per_s" in r:
        seconds += f" ({r['texts_per_s']:.0f} texts/s)"
    return [
        r["part"],
        r["config"],
        common.fmt(r.get("dev_accuracy"), ".2f"),
        test,
        common.fmt(r.get("int8_torch_agreement"), ".2f"),
        r.get("default_precision", ""),
        seconds,
        r.get("autocast_used", ""),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
