"""featx.finetune: train the head and the top layers, export back to a fast artifact.

This module imports nothing heavy (the command line reads its settings); the data checks
need scikit-learn, and the runs the ``export`` extra (torch, transformers, onnx): they
live in :mod:`featx.finetuning.data` and :mod:`featx.finetuning.runs`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.config import Task
from featx.extras import require
from featx.files import refuse_existing
from featx.finetuning.settings import Settings, SettingsOptions, settings_grid

METHODS = ("head", "contrastive")

if TYPE_CHECKING:
    from typing import Unpack

    from featx.predictor import Predictor


@dataclass(frozen=True)
class Finetuned:
    """What :func:`finetune` made.

    Attributes:
        predictor: The saved model, loaded back from ``path`` (ONNX + numpy head).
        path: The artifact directory.
        report: Settings, history, dev scores, the int8 dev gate, timings.
    """

    predictor: Predictor
    path: Path
    report: dict[str, Any]


def finetune(
    X: Any,
    y: Any,
    *,
    out: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    method: str = "head",
    dev: tuple[Any, Any] | None = None,
    task: Task | str | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    augment: Any = None,
    device: str = "auto",
    force: bool = False,
    show_progress: bool | None = None,
    **settings: Unpack[SettingsOptions],
) -> Finetuned:
    """Fine-tune ``model`` on texts ``X`` (or two-column pairs) and targets ``y``.

    Args:
        X: Training texts, or an (n, 2) array / two-column frame of text pairs.
        y: Class labels, lists of labels (multi-label), or numbers (regression).
        out: Where to write the artifact.
        model: A registry alias, a model folder, a hub id, or an artifact made by
            ``finetune`` (it keeps its Hugging Face folder); None: the default model.
        method: ``"head"``: the head with the top layers; ``"contrastive"``: SetFit's
            few-shot recipe, with its own defaults (:mod:`featx.finetuning.contrastive`).
        dev: ``(X_dev, y_dev)``: scored every epoch for early stopping, the best weights
            kept, the int8 gate checked; needed by ``param_grid``.
        task: Force ``binary``, ``multiclass``, ``multilabel`` or ``regression``.
        pooling: Override the model's pooling (the exported artifact pools the same way).
        normalize: Override the model's L2 normalisation.
        max_length: Override the model's max tokens per text.
        param_grid: Settings to try on the dev set, e.g. ``{"lr": [5e-5, 1e-4],
            "train_layers": [2, 4]}``; the best run by the dev metric is kept.
        augment: Augment the training texts (not dev): a method name or list of names of
            :func:`featx.augment.augment`, or an :class:`~featx.augment.Augmenter`.
        device: ``"auto"`` (a GPU if there is one), ``"cpu"`` or ``"cuda"``.
        force: Replace ``out`` if it exists.
        show_progress: Progress bars; ``None`` shows them on a terminal.
        **settings: :class:`~featx.finetuning.Settings`: ``train_layers`` (int, or
            ``"all"``; 0 trains the head alone), ``epochs``, ``lr``, ``head_lr``,
            ``layer_decay``, ``weight_decay``, ``warmup``, ``schedule``, ``batch_size``,
            ``accumulate``, ``dropout`` (before the head), ``attention_dropout`` (0: torch's
            fused attention kernel runs), ``hidden``, ``max_grad_norm``, ``autocast``
            (``auto``: bf16 where the CPU has it), ``eval_every``, ``patience``,
            ``mixup``, ``lora`` (rank of LoRA adapters on the attention query and value
            projections of the ``train_layers`` top layers, merged back before export; 0:
            off), ``lora_alpha``, ``seed``.

    Raises:
        ValueError: Bad settings or data (too few examples per class, a dev label unseen
            in training, a dev set of another shape, a batch too big for memory).
        ModelLoadError: A model that cannot be found or fine-tuned.
        FileExistsError: ``out`` exists and ``force`` is false.
        ImportError: If the ``export`` extra is missing.
    """
    from featx.finetuning.data import augmented, check_problem

    started, out_path = time.perf_counter(), Path(out)
    refuse_existing(out_path, force)
    base = _method_settings(method, dict(settings), param_grid)
    grid = settings_grid(base, param_grid)
    problem = check_problem(X, y, dev, task)
    if len(grid) > 1 and problem.dev_columns is None:
        raise ValueError("A search needs a dev set (dev=(X_dev, y_dev)) to choose by.")
    problem = problem if augment is None else augmented(problem, augment, base.seed)
    require("export", "featx.finetune")
    from featx.finetuning.contrastive import run_contrastive
    from featx.finetuning.runs import Start, run

    start = Start(model, pooling, normalize, max_length, device)
    if method == "contrastive":
        predictor, report = run_contrastive(problem, base, start, out_path, force, show_progress)
    else:
        predictor, report = run(problem, grid, start, out_path, force, show_progress, augment)
    report["total_seconds"] = round(time.perf_counter() - started, 2)
    return Finetuned(predictor, out_path, report)


def _method_settings(
    method: str, settings: dict[str, Any], param_grid: Mapping[str, Sequence[Any]] | None
) -> Settings:
    """The run's settings: the method's own defaults under what was given."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}. Valid values: {', '.join(METHODS)}.")
    if method == "contrastive":
        from featx.finetuning.contrastive import DEFAULTS

        if param_grid:
            raise ValueError("Contrastive fine-tuning takes one setting: drop param_grid.")
        settings = {**DEFAULTS, **settings}
    return Settings(**settings)
