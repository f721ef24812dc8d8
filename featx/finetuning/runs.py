"""The fine-tuning runs (torch): train each setting of the grid, keep the best, export it.

Called by :func:`featx.finetune` once the data and settings are checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx.config import Representation
from featx.encoders.torch import TorchEncoder, load_hf_model, load_hf_tokenizer
from featx.environment import want_progress
from featx.finetuning.data import PRIMARY_METRIC, Problem, score
from featx.finetuning.export import build_artifact, plot_curves
from featx.finetuning.gate import head_input
from featx.finetuning.model import TextModel, add_lora
from featx.finetuning.settings import Settings
from featx.finetuning.setup import check_memory, feeder, starting_point, tokenise, torch_device
from featx.finetuning.trainer import Data, History, Training, run_report
from featx.predictor import Predictor
from featx.sources import default_model

# Calibration texts for the fine-tuned int8 graph, and dev texts added to its probes.
N_CALIBRATION = 256
N_PROBES = 64


@dataclass(frozen=True)
class Start:
    """Where a run starts: the model, its pooling and length overrides, the device."""

    model: str | os.PathLike[str] | None
    pooling: str | None
    normalize: bool | None
    max_length: int | None
    device: str


@dataclass
class _Result:
    value: float
    model: TextModel
    history: History
    settings: Settings
    counts: dict[str, int]


class Runs:
    """What every run of a search shares: the model folder, tokens, dev data, device."""

    def __init__(self, problem: Problem, start: Start, show_progress: bool | None) -> None:
        self.problem = problem
        self.source_dir, self.name, self.spec = starting_point(
            start.model if start.model is not None else default_model(),
            max_length=start.max_length,
            pooling=start.pooling,
            normalize=start.normalize,
        )
        rep = self.spec.representation
        self.representation = Representation(pooling=rep.pooling, normalize=rep.normalize)
        self.tokenizer = load_hf_tokenizer(self.source_dir)
        self.device = torch_device(start.device)
        self.show = want_progress(show_progress)
        self.train: Data | None = None
        self.metric = PRIMARY_METRIC[problem.targets.task]

    def model(self, settings: Settings) -> TextModel:
        """A fresh encoder (with LoRA adapters if asked) and head."""
        torch.manual_seed(settings.seed)  # the head's (and adapters') initial weights
        encoder = load_hf_model(self.source_dir, attention_dropout=settings.attention_dropout)
        if settings.lora:
            n, layers = self.spec.num_layers, settings.train_layers
            encoder = add_lora(
                encoder,
                self.spec.family.value,
                rank=settings.lora,
                alpha=settings.lora_alpha,
                dropout=settings.dropout,
                layers=None if layers == "all" else list(range(n - int(layers), n)),
            )
        return TextModel(
            encoder,
            self.representation,
            self.problem.targets.n_out,
            hidden=settings.hidden,
            dropout=settings.dropout,
            pairs=self.problem.pairs,
        )

    def reference(self, encoder: torch.nn.Module) -> TorchEncoder:
        """The torch encoder as the exported artifact will feed and pool it."""
        return TorchEncoder(encoder, self.tokenizer, self.spec, representation=self.representation)

    def one(self, settings: Settings) -> _Result:
        """Train one setting; the weights of its best dev score."""
        problem, targets = self.problem, self.problem.targets
        text_model = self.model(settings)
        reference = self.reference(text_model.encoder)
        if self.train is None:  # the same tokens for every run of a search
            self.train = tokenise(reference, problem.columns, targets.values, what="training")
        check_memory(text_model, self.train, settings, self.spec.num_layers, self.device)
        scorer = None
        if problem.dev_columns is not None and problem.dev_targets is not None:
            scorer = _scorer(text_model, reference, problem, frozen=settings.train_layers == 0)
        training = Training(
            text_model,
            self.train,
            settings,
            task=targets.task.value,
            n_out=targets.n_out,
            num_layers=self.spec.num_layers,
            feed=feeder(reference),
            device=self.device,
        )
        history = training.run(scorer, self.metric, show_progress=self.show)
        text_model.to("cpu")
        counts = _count(text_model)  # before adapters merge away
        if settings.lora:  # fold the adapters into the weights: a plain encoder again
            wrapped: Any = text_model.encoder
            text_model.encoder = wrapped.merge_and_unload()
        value = history.best.get(self.metric, float("-inf"))
        return _Result(value, text_model, history, settings, counts)


def run(
    problem: Problem,
    grid: list[Settings],
    start: Start,
    out: Path,
    force: bool,
    show_progress: bool | None,
    augment: Any,
) -> tuple[Predictor, dict[str, Any]]:
    """Train every setting of ``grid``, export the best run to ``out``; its report."""
    runs = Runs(problem, start, show_progress)
    results = [runs.one(settings) for settings in grid]
    best = results[0]
    for result in results[1:]:
        if result.value > best.value:
            best = result
    reference = runs.reference(best.model.encoder)
    dev = None
    dev_final: dict[str, float] = {}
    if problem.dev_columns is not None and problem.dev_targets is not None:
        outputs = _outputs(best.model, reference, problem.dev_columns)
        dev_final = score(problem.targets.task, problem.dev_targets, outputs)
        dev = (problem.dev_columns, problem.dev_targets, outputs)
    report = run_report(
        best.history,
        best.settings,
        runs.device,
        model=runs.name,
        task=problem.targets.task.value,
        labels=problem.targets.labels,
        n_train=len(problem.columns[0]),
        n_dev=0 if problem.dev_columns is None else len(problem.dev_columns[0]),
        trainable_parameters=best.counts,
        representation={
            "pooling": runs.representation.pooling.value,
            "normalize": runs.representation.normalize,
        },
    )
    report["dev_final"] = dev_final
    report["search"] = [_summary(r) for r in results] if len(grid) > 1 else []
    report["augment"] = None if augment is None else str(augment)
    rng = np.random.default_rng(0)
    flat = [text for column in problem.columns for text in column]
    calibration = [flat[i] for i in rng.permutation(len(flat))[:N_CALIBRATION]]
    predictor = build_artifact(
        best.model,
        source_dir=runs.source_dir,
        targets=problem.targets,
        out=out,
        representation=report["representation"],
        max_length=runs.spec.max_length,
        report=report,
        dev=dev,
        reference=reference,
        calibration_texts=calibration,
        probe_texts=[] if problem.dev_columns is None else problem.dev_columns[0][:N_PROBES],
        plot=plot_curves,
        force=force,
        show_progress=show_progress,
    )
    return predictor, {**report, "dev_gate": predictor.metrics.get("dev_gate")}


def _summary(result: _Result) -> dict[str, Any]:
    return {
        "settings": result.settings.to_dict(),
        "best": result.history.best,
        "seconds": result.history.train_seconds,
    }


def _outputs(
    model: TextModel,
    encoder: TorchEncoder,
    columns: list[list[str]],
    features: NDArray[np.float32] | None = None,
) -> NDArray[np.float64]:
    """The head's raw outputs for ``columns`` (or for their ready ``features``)."""
    model.eval()
    device = next(model.parameters()).device
    features = head_input(encoder, columns) if features is None else features
    with torch.no_grad():
        out = model.head(torch.from_numpy(features).to(device))
    return out.double().cpu().numpy()


def _scorer(
    model: TextModel, encoder: TorchEncoder, problem: Problem, *, frozen: bool
) -> Callable[[], dict[str, float]]:
    """Scores the dev set; with a frozen encoder its features are computed once."""
    assert problem.dev_columns is not None and problem.dev_targets is not None
    columns, y = problem.dev_columns, problem.dev_targets
    cached: list[NDArray[np.float32]] = []

    def run() -> dict[str, float]:
        if frozen and not cached:
            cached.append(head_input(encoder, columns))
        outputs = _outputs(model, encoder, columns, cached[0] if cached else None)
        return score(problem.targets.task, y, outputs)

    return run


def _count(model: TextModel) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}
