"""The training loop: AdamW, warmup and decay, layer-wise learning rates, early stopping.

Everything a fine-tuning run needs and nothing about files: :func:`fit` takes a
:class:`~featx.finetuning.model.TextModel`, tokenised data and :class:`Settings`, trains
what :func:`~featx.finetuning.model.freeze` left trainable, scores the dev set after each
epoch (or every ``eval_every`` steps), keeps the best weights, and returns the history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx.finetuning.model import TextModel, freeze, layer_groups, set_train_mode

SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# The head starts from random weights on unit-length features: it learns this much faster
# than the pretrained layers (when head_lr is not given).
HEAD_LR_FACTOR = 5.0
# Buckets of similar length are drawn from this many batches' worth of shuffled examples:
# little padding, yet batches still differ from epoch to epoch.
BUCKET_BATCHES = 50


@dataclass(frozen=True)
class Settings:
    """How to fine-tune (see :func:`featx.finetune` for each option)."""

    train_layers: int | str = 2
    epochs: int = 4
    lr: float = 1e-4
    head_lr: float | None = None
    layer_decay: float = 0.9
    weight_decay: float = 0.01
    warmup: float = 0.1
    schedule: str = "linear"
    batch_size: int = 32
    accumulate: int = 1
    dropout: float = 0.1
    hidden: tuple[int, ...] = ()
    max_grad_norm: float = 1.0
    precision: str = "auto"
    eval_every: int | None = None
    patience: int | None = 2
    mixup: float = 0.0
    lora: int = 0
    lora_alpha: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.train_layers == "all" or isinstance(self.train_layers, int)):
            raise ValueError(f"train_layers must be an int or 'all', got {self.train_layers!r}.")
        if isinstance(self.train_layers, int) and self.train_layers < 0:
            raise ValueError(f"train_layers must be >= 0, got {self.train_layers}.")
        positive = {
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "accumulate": self.accumulate,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}.")
        for name, value in (("warmup", self.warmup), ("dropout", self.dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}.")
        if not isinstance(self.lora, int) or self.lora < 0:
            raise ValueError(f"lora is the adapters' rank (0: off), got {self.lora!r}.")
        if self.lora and self.train_layers == 0:
            raise ValueError("LoRA adapts encoder layers: give train_layers > 0 (or 'all').")
        if self.weight_decay < 0 or self.mixup < 0 or self.max_grad_norm <= 0:
            raise ValueError("weight_decay and mixup must be >= 0, max_grad_norm > 0.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return {**asdict(self), "hidden": list(self.hidden)}


@dataclass
class Data:
    """Tokenised examples: token id windows (one list per text column) and targets."""

    windows: list[list[NDArray[np.int32]]]
    targets: NDArray[Any]

    def __len__(self) -> int:
        return len(self.targets)

    def lengths(self) -> NDArray[np.int64]:
        """Tokens per example (the longer text of a pair)."""
        return np.max([[len(w) for w in column] for column in self.windows], axis=0)


@dataclass
class History:
    """What happened: losses and learning rates by step, dev scores by evaluation."""

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    stopped_early: bool = False


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision='fp16' needs a GPU; on a CPU use 'bf16' or 'fp32'.")
        return torch.float16
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if cpu_supports_bf16() else None


def learning_rate_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warmup over ``warmup`` steps, then linear/cosine decay to 0 (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return max(0.0, 1.0 - progress)


def param_groups(model: TextModel, settings: Settings, num_layers: int) -> list[dict[str, Any]]:
    """AdamW parameter groups: layer-wise decayed learning rates.

    No weight decay on 1-d parameters (biases and LayerNorm), as BERT's recipe does.
    """
    params = dict(model.named_parameters())
    groups: list[dict[str, Any]] = []

    def add(names: Sequence[str], lr: float) -> None:
        trainable = [params[n] for n in names if params[n].requires_grad]
        for decay in (True, False):
            chosen = [p for p in trainable if (p.ndim > 1) == decay]
            if chosen:
                wd = settings.weight_decay if decay else 0.0
                groups.append({"params": chosen, "lr": lr, "weight_decay": wd})

    add(
        [f"head.{n}" for n, _ in model.head.named_parameters()],
        settings.head_lr or settings.lr * HEAD_LR_FACTOR,
    )
    for depth, names in layer_groups(model, num_layers):
        add([f"encoder.{n}" for n in names], settings.lr * settings.layer_decay**depth)
    for group in groups:
        group["initial_lr"] = group["lr"]
    return groups


def length_batches(
    lengths: NDArray[np.int64], batch_size: int, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    """Batches of similar length (little padding), in random order."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * BUCKET_BATCHES
    batches: list[NDArray[np.int64]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def loss_of(out: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """The training loss of ``task``.

    Cross-entropy for one label (targets as class indices or, after mixup, as
    distributions), binary cross-entropy for multi-label, mean squared error for
    regression, and per-piece cross-entropy for token tags (``-100`` is ignored).
    """
    if task == "tokens":  # (batch, pieces, tags) against padded tags, -100 where no word starts
        targets = targets[:, : out.shape[1]]
        return torch.nn.functional.cross_entropy(out.flatten(0, 1), targets.flatten())
    if task == "regression":
        return torch.nn.functional.mse_loss(out[:, 0], targets.float())
    if task == "multilabel":
        return torch.nn.functional.binary_cross_entropy_with_logits(out, targets.float())
    if targets.ndim == 2:
        return -(targets * torch.log_softmax(out, dim=-1)).sum(dim=-1).mean()
    return torch.nn.functional.cross_entropy(out, targets)


def mix(
    features: torch.Tensor,
    targets: torch.Tensor,
    task: str,
    alpha: float,
    n_out: int,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup in embedding space: convex mixes of pairs of examples and of their targets."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(features.shape[0])
    if task in ("binary", "multiclass"):
        targets = torch.nn.functional.one_hot(targets, n_out).float()
    mixed = targets.float() * lam + targets[perm].float() * (1 - lam)
    return features * lam + features[perm] * (1 - lam), mixed


def fit(
    model: TextModel,
    train: Data,
    settings: Settings,
    *,
    task: str,
    n_out: int,
    num_layers: int,
    feed: Callable[[list[NDArray[np.int32]]], dict[str, torch.Tensor]],
    score: Callable[[], dict[str, float]] | None = None,
    metric: str = "",
    device: torch.device | None = None,
    show_progress: bool = False,
) -> History:
    """Train ``model`` in place on ``train``; restore the weights of the best dev score.

    Args:
        model: The model; its trainable parameters are set by ``settings.train_layers``.
        train: Tokenised training data.
        settings: Optimisation settings.
        task: ``binary``, ``multiclass``, ``multilabel`` or ``regression``.
        n_out: Width of the head's output.
        num_layers: Transformer layers of the encoder.
        feed: Pads a list of windows into the model's input tensors.
        score: Scores the model on the dev set (higher is better under ``metric``).
        metric: The key of ``score``'s result that early stopping follows.
        device: Where to train (default: CPU).
        show_progress: Show a progress bar per epoch.
    """
    from tqdm.auto import tqdm

    device = device or torch.device("cpu")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    freeze(model, settings.train_layers, num_layers, lora=settings.lora > 0)
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, settings, num_layers))
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    dtype = autocast_dtype(settings.precision, device)
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    lengths = train.lengths()
    per_epoch = math.ceil(math.ceil(len(train) / settings.batch_size) / settings.accumulate)
    total = per_epoch * settings.epochs
    warmup = int(settings.warmup * total)
    history = History()
    best_state: dict[str, torch.Tensor] | None = None
    bad_evals = 0
    step = 0
    started = time.perf_counter()
    eval_seconds = 0.0  # dev scoring is not training time

    def evaluate(epoch: float) -> bool:
        """Score dev data; return whether training should stop."""
        nonlocal best_state, bad_evals, eval_seconds
        if score is None:
            return False
        scoring = time.perf_counter()
        model.eval()
        with _autocast(device, dtype):
            result = {"step": step, "epoch": round(epoch, 3), **score()}
        history.evals.append(result)
        eval_seconds += time.perf_counter() - scoring
        if not history.best or result[metric] > history.best[metric]:
            history.best = result
            best_state = {k: v.detach().clone() for k, v in _trainable_state(model).items()}
            bad_evals = 0
        else:
            bad_evals += 1
        set_train_mode(model, settings.train_layers, num_layers)
        return settings.patience is not None and bad_evals >= settings.patience

    model.eval()
    cached = (
        _frozen_features(model, train, feed, device, dtype) if settings.train_layers == 0 else None
    )
    set_train_mode(model, settings.train_layers, num_layers)
    stop = False
    for epoch in range(settings.epochs):
        batches = length_batches(lengths, settings.batch_size, rng)
        bar = tqdm(
            total=len(batches),
            desc=f"epoch {epoch + 1}/{settings.epochs}",
            disable=not show_progress,
        )
        for i, rows in enumerate(batches):
            targets = torch.as_tensor(train.targets[rows], device=device)
            with _autocast(device, dtype):
                if cached is not None:
                    features = cached[torch.as_tensor(rows, device=device)]
                else:
                    features = model.features(*_feeds(feed, train, rows, device))
                if settings.mixup > 0:
                    features, targets = mix(features, targets, task, settings.mixup, n_out, rng)
                loss = loss_of(model.head(features.float()).float(), targets, task)
            loss = loss / settings.accumulate
            (scaler.scale(loss) if scaler else loss).backward()
            bar.update()
            if (i + 1) % settings.accumulate and i + 1 < len(batches):
                continue
            factor = learning_rate_factor(step, total, warmup, settings.schedule)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            if scaler:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach()) * settings.accumulate
            history.steps.append(
                {"step": step, "loss": value, "lr": settings.lr * factor, "epoch": epoch}
            )
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{settings.lr * factor:.1e}")
            step += 1
            if settings.eval_every and step % settings.eval_every == 0:
                stop = evaluate(epoch + (i + 1) / len(batches))
                if stop:
                    break
        bar.close()
        if stop:
            break
        if not settings.eval_every:
            stop = evaluate(epoch + 1.0)
            if stop:
                break
    history.stopped_early = stop
    history.train_seconds = time.perf_counter() - started - eval_seconds
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    model.eval()
    return history


def _feeds(
    feed: Callable[..., dict[str, torch.Tensor]],
    data: Data,
    rows: NDArray[np.int64],
    device: torch.device,
) -> list[dict[str, torch.Tensor]]:
    """The model inputs of examples ``rows``, one feed per text column."""
    return [{k: v.to(device) for k, v in feed([c[r] for r in rows]).items()} for c in data.windows]


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in wanted}


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` for ``dtype``, or nothing for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


@torch.no_grad()
def _frozen_features(
    model: TextModel,
    data: Data,
    feed: Callable[..., dict[str, torch.Tensor]],
    device: torch.device,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    """Every example's head input, computed once: with the encoder frozen they never change."""
    order = np.argsort(data.lengths(), kind="stable")
    out = torch.empty(0)
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        with _autocast(device, dtype):
            features = model.features(*_feeds(feed, data, rows, device)).float()
        if not out.numel():
            out = torch.empty((len(data), features.shape[1]), device=device)
        out[torch.as_tensor(rows, device=device)] = features
    return out
