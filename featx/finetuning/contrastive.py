"""Few-shot fine-tuning, SetFit's way: contrastive pairs teach the encoder, then a head.

With a few dozen labels, a classification head trained through the encoder barely moves
it. SetFit (Tunstall et al. 2022) instead draws pairs of training texts, "same class"
(target cosine 1) or "different class" (target 0), trains the sentence embedding to match
with a cosine-similarity loss, and then fits logistic regression on the new embeddings.
Each text gets :data:`ITERATIONS` pairs of each kind, so 64 labels give 2,560 pairs (at
most :data:`MAX_PAIRS` an epoch).

The encoder is exported to ONNX (int8 behind the parity gate) and the head is fitted on
the exported embeddings, so the artifact is an ordinary predictor. Needs torch (the
``export`` extra).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx.config import Task
from featx.environment import progress_bar
from featx.finetuning.data import Problem
from featx.finetuning.export import export_encoder, seal_finetuned
from featx.finetuning.model import TextModel, freeze, set_train_mode
from featx.finetuning.runs import N_CALIBRATION, N_PROBES, Runs, Start
from featx.finetuning.settings import Settings
from featx.finetuning.setup import feeder, tokenise
from featx.finetuning.trainer import (
    History,
    autocast_context,
    autocast_dtype,
    learning_rate_factor,
    param_groups,
    run_report,
)
from featx.predictor import Predictor

# Pairs of each kind per text and epoch (SetFit's num_iterations), up to MAX_PAIRS pairs
# an epoch: past a hundred texts, more texts bring the variety that more pairs per text
# would, and the epoch stays a few minutes on a CPU.
ITERATIONS = 20
MAX_PAIRS = 4096
# SetFit's body training: the whole encoder, one epoch, lr 2e-5, 16 pairs per batch,
# attention dropout 0.1 (MiniLM's own, which SetFit trains with): without it two SST-2
# draws of 64 labels scored 74.79 and 71.39, against 74.85 and 73.09 (benchmarks/README.md).
DEFAULTS: dict[str, Any] = {
    "train_layers": "all",
    "epochs": 1,
    "lr": 2e-5,
    "batch_size": 16,
    "layer_decay": 1.0,
    "patience": None,
    "attention_dropout": 0.1,
}


def iterations(n_texts: int) -> int:
    """Rounds over the texts an epoch draws: :data:`ITERATIONS`, within :data:`MAX_PAIRS`."""
    return max(1, min(ITERATIONS, MAX_PAIRS // (2 * n_texts)))


def pairs(labels: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
    """Rows (first, second, same): per round, one of each kind for every text."""
    classes = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    others = {c: np.flatnonzero(labels != c) for c in classes}
    rows = []
    for _ in range(iterations(len(labels))):
        for i, c in enumerate(labels):
            rows.append((i, int(rng.choice(classes[c])), 1))
            rows.append((i, int(rng.choice(others[c])), 0))
    return np.asarray(rows, dtype=np.int64)


def run_contrastive(
    problem: Problem, settings: Settings, start: Start, out: Path, force: bool, show: bool | None
) -> tuple[Predictor, dict[str, Any]]:
    """Train the encoder on pairs, export it, fit logistic regression on it, save at ``out``."""
    if problem.targets.task not in (Task.BINARY, Task.MULTICLASS) or problem.pairs:
        raise ValueError(
            "Contrastive fine-tuning learns from class labels of single texts; use "
            "method='head' for multi-label, regression or sentence pairs."
        )
    runs = Runs(problem, start, show)
    model = runs.model(settings)
    reference = runs.reference(model.encoder)
    data = tokenise(reference, problem.columns, problem.targets.values, what="training")
    values = problem.targets.values
    history = _train(model, data.windows[0], values, settings, runs, feeder(reference))
    report = run_report(
        history,
        settings,
        runs.device,
        model=runs.name,
        method="contrastive",
        task=problem.targets.task.value,
        labels=problem.targets.labels,
        n_train=len(problem.columns[0]),
        n_pairs=2 * iterations(len(problem.columns[0])) * len(problem.columns[0]) * settings.epochs,
        representation={
            "pooling": runs.representation.pooling.value,
            "normalize": runs.representation.normalize,
        },
    )
    texts = problem.columns[0]
    labels = [problem.targets.labels[int(v)] for v in problem.targets.values]
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.contrastive-"))
    try:
        encoder_dir = work / "encoder"
        rng = np.random.default_rng(0)
        export_encoder(
            model.encoder.to("cpu"),
            runs.source_dir,
            encoder_dir,
            max_length=runs.spec.max_length,
            calibration_texts=[texts[i] for i in rng.permutation(len(texts))[:N_CALIBRATION]],
            probe_texts=texts[:N_PROBES],
            show_progress=show,
            **report["representation"],
        )
        seal_finetuned(encoder_dir, report, what="contrastive fine-tuned")
        predictor = _head(texts, labels, encoder_dir, problem, settings.seed, report)
        predictor.save(out, force=force, all_graphs=True)  # an encoder to reuse: every graph
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Predictor.load(out), report


def _head(
    texts: list[str],
    labels: list[Any],
    encoder_dir: Path,
    problem: Problem,
    seed: int,
    report: dict[str, Any],
) -> Predictor:
    """Logistic regression on the exported encoder's embeddings, scored on dev if given."""
    import featx

    dev = None
    if problem.dev_columns is not None and problem.dev_targets is not None:
        dev_labels = [problem.targets.labels[int(v)] for v in problem.dev_targets]
        dev = (problem.dev_columns[0], dev_labels)
    predictor = featx.train(
        texts, labels, model=str(encoder_dir), head="logreg", dev=dev, seed=seed, cache=False
    )
    predictor.metrics["finetune"] = {
        k: report[k] for k in ("method", "n_train", "n_pairs", "train_seconds", "settings")
    }
    report["dev_final"] = predictor.metrics.get("dev", {})
    return predictor


def _train(
    model: TextModel,
    windows: list[NDArray[np.int32]],
    labels: NDArray[np.int64],
    settings: Settings,
    runs: Runs,
    feed: Any,
) -> History:
    """The cosine-similarity loss over pairs, with the usual schedule and autocast."""
    started = time.perf_counter()
    device, num_layers = runs.device, runs.spec.num_layers
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    freeze(model, settings.train_layers, num_layers)
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, settings, num_layers))
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    dtype = autocast_dtype(settings.autocast, device)
    drawn = [pairs(labels, rng) for _ in range(settings.epochs)]
    per_epoch = math.ceil(len(drawn[0]) / settings.batch_size)
    total, history, step = per_epoch * settings.epochs, History(), 0
    warmup = int(settings.warmup * total)
    set_train_mode(model, settings.train_layers, num_layers)
    for epoch, rows in enumerate(drawn):
        order = rows[rng.permutation(len(rows))]
        desc = f"pairs {epoch + 1}/{settings.epochs}"
        bar = progress_bar(runs.show, per_epoch, desc, unit="batch")
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            first, second = (
                {k: v.to(device) for k, v in feed([windows[i] for i in side]).items()}
                for side in (batch[:, 0], batch[:, 1])
            )
            with autocast_context(device, dtype):
                u, v = model.embed(first), model.embed(second)
            cosine = torch.nn.functional.cosine_similarity(u.float(), v.float())
            target = torch.as_tensor(batch[:, 2], dtype=torch.float32, device=device)
            loss = torch.nn.functional.mse_loss(cosine, target)
            loss.backward()
            value = float(loss.detach())
            factor = learning_rate_factor(step, total, warmup, settings.schedule)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            lr = settings.lr * factor
            history.steps.append({"step": step, "loss": value, "lr": lr, "epoch": epoch})
            bar.update()
            bar.set_postfix(loss=f"{value:.4f}")
        bar.close()
    history.train_seconds = time.perf_counter() - started
    model.eval()
    return history
