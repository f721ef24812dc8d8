"""The training loop: AdamW, warmup and decay, layer-wise learning rates, early stopping.

Everything a fine-tuning run needs and nothing about files: :class:`Training` takes a
:class:`~featx.finetuning.model.TextModel`, tokenised data and :class:`Settings`, trains
what :func:`~featx.finetuning.model.freeze` left trainable, scores the dev set after each
epoch (or every ``eval_every`` steps), keeps the best weights, and returns the history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from featx._version import __version__
from featx.config import Autocast
from featx.environment import progress_bar
from featx.finetuning.model import TextModel, freeze, layer_groups, set_train_mode
from featx.finetuning.settings import Settings

# The head starts from random weights on unit-length features: it learns this much faster
# than the pretrained layers (when head_lr is not given).
HEAD_LR_FACTOR = 5.0
# Buckets of similar length are drawn from this many batches' worth of shuffled examples:
# little padding, yet batches still differ from epoch to epoch.
BUCKET_BATCHES = 50


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


def autocast_dtype(autocast: Autocast | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``autocast`` on ``device`` (None: plain fp32)."""
    autocast = Autocast(autocast)
    if autocast is Autocast.FP32:
        return None
    if autocast is Autocast.FP16:
        if device.type != "cuda":
            raise ValueError("autocast='fp16' needs a GPU; on a CPU use 'bf16' or 'fp32'.")
        return torch.float16
    if autocast is Autocast.BF16 or device.type == "cuda":
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
    regression, per-piece cross-entropy for token tags (``-100`` is ignored), and for
    answer spans the mean of the start and end cross-entropies over the pieces.
    """
    if task == "spans":  # (batch, pieces, 2) start/end logits against (batch, 2) pieces
        start, end = out.unbind(-1)
        return (
            torch.nn.functional.cross_entropy(start, targets[:, 0])
            + torch.nn.functional.cross_entropy(end, targets[:, 1])
        ) / 2
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


class Training:
    """One training run: the optimiser, the schedule, dev scoring and the best weights.

    ``Training(model, data, settings, ...).run(score, metric)`` trains ``model`` in place
    and restores the weights of its best dev score.

    Args:
        model: The model; its trainable parameters are set by ``settings.train_layers``.
        train: Tokenised training data.
        settings: Optimisation settings.
        task: ``binary``, ``multiclass``, ``multilabel``, ``regression``, ``tokens`` or
            ``spans``.
        n_out: Width of the head's output.
        num_layers: Transformer layers of the encoder.
        feed: Pads a list of windows into the model's input tensors.
        device: Where to train (default: CPU).
    """

    def __init__(
        self,
        model: TextModel,
        train: Data,
        settings: Settings,
        *,
        task: str,
        n_out: int,
        num_layers: int,
        feed: Callable[[list[NDArray[np.int32]]], dict[str, torch.Tensor]],
        device: torch.device | None = None,
    ) -> None:
        self.model, self.train, self.settings = model, train, settings
        self.task, self.n_out, self.num_layers, self.feed = task, n_out, num_layers, feed
        self.device = device or torch.device("cpu")
        torch.manual_seed(settings.seed)
        self.rng = np.random.default_rng(settings.seed)
        freeze(model, settings.train_layers, num_layers, lora=settings.lora > 0)
        model.to(self.device)
        self.optimizer = torch.optim.AdamW(param_groups(model, settings, num_layers))
        self.trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.dtype = autocast_dtype(settings.autocast, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None
        per_epoch = math.ceil(math.ceil(len(train) / settings.batch_size) / settings.accumulate)
        self.total = per_epoch * settings.epochs
        self.warmup = int(settings.warmup * self.total)
        self.history = History()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_evals = 0
        self.step = 0
        self.eval_seconds = 0.0  # dev scoring is not training time
        self.cached: torch.Tensor | None = None

    def evaluate(self, epoch: float, score: Callable[[], dict[str, float]], metric: str) -> bool:
        """Score dev data; keep the best weights; return whether training should stop."""
        scoring = time.perf_counter()
        self.model.eval()
        with autocast_context(self.device, self.dtype):
            result = {"step": self.step, "epoch": round(epoch, 3), **score()}
        self.history.evals.append(result)
        self.eval_seconds += time.perf_counter() - scoring
        if not self.history.best or result[metric] > self.history.best[metric]:
            self.history.best = result
            state = _trainable_state(self.model)
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
            self.bad_evals = 0
        else:
            self.bad_evals += 1
        set_train_mode(self.model, self.settings.train_layers, self.num_layers)
        return self.settings.patience is not None and self.bad_evals >= self.settings.patience

    def backward(self, rows: NDArray[np.int64]) -> float:
        """Add the gradient of one batch; return its loss."""
        settings, device = self.settings, self.device
        targets = torch.as_tensor(self.train.targets[rows], device=device)
        with autocast_context(device, self.dtype):
            if self.cached is not None:
                features = self.cached[torch.as_tensor(rows, device=device)]
            else:
                features = self.model.features(*_feeds(self.feed, self.train, rows, device))
            if settings.mixup > 0:
                features, targets = mix(
                    features, targets, self.task, settings.mixup, self.n_out, self.rng
                )
            loss = loss_of(self.model.head(features.float()).float(), targets, self.task)
        loss = loss / settings.accumulate
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        return float(loss.detach()) * settings.accumulate

    def update(self, loss: float, epoch: int) -> float:
        """One optimiser step at the scheduled learning rate; return that rate."""
        settings = self.settings
        factor = learning_rate_factor(self.step, self.total, self.warmup, settings.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.trainable, settings.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        lr = settings.lr * factor
        self.history.steps.append({"step": self.step, "loss": loss, "lr": lr, "epoch": epoch})
        self.step += 1
        return lr

    def run(
        self,
        score: Callable[[], dict[str, float]] | None = None,
        metric: str = "",
        *,
        show_progress: bool = False,
    ) -> History:
        """Train; ``score`` rates the dev set (higher is better under ``metric``)."""
        settings, model = self.settings, self.model
        started = time.perf_counter()
        model.eval()
        if settings.train_layers == 0:
            self.cached = _frozen_features(model, self.train, self.feed, self.device, self.dtype)
        set_train_mode(model, settings.train_layers, self.num_layers)
        lengths = self.train.lengths()
        stop = False
        for epoch in range(settings.epochs):
            batches = length_batches(lengths, settings.batch_size, self.rng)
            desc = f"epoch {epoch + 1}/{settings.epochs}"
            bar = progress_bar(show_progress, len(batches), desc, unit="batch")
            for i, rows in enumerate(batches):
                loss = self.backward(rows)
                bar.update()
                if (i + 1) % settings.accumulate and i + 1 < len(batches):
                    continue
                lr = self.update(loss, epoch)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.1e}")
                if score and settings.eval_every and self.step % settings.eval_every == 0:
                    stop = self.evaluate(epoch + (i + 1) / len(batches), score, metric)
                    if stop:
                        break
            bar.close()
            if not stop and score and not settings.eval_every:
                stop = self.evaluate(epoch + 1.0, score, metric)
            if stop:
                break
        self.history.stopped_early = stop
        self.history.train_seconds = time.perf_counter() - started - self.eval_seconds
        if self.best_state is not None:
            model.load_state_dict(self.best_state, strict=False)
        model.eval()
        return self.history


def run_report(
    history: History, settings: Settings, device: torch.device, **facts: Any
) -> dict[str, Any]:
    """What a fine-tuning run reports (``finetune.json``): ``facts``, settings, history."""
    dtype = autocast_dtype(settings.autocast, device)
    return {
        "featx_version": __version__,
        **facts,
        "settings": settings.to_dict(),
        "autocast_used": str(dtype or "fp32").replace("torch.", ""),
        "device": str(device),
        "history": {"steps": history.steps, "evals": history.evals},
        "best": history.best,
        "stopped_early": history.stopped_early,
        "train_seconds": round(history.train_seconds, 2),
    }


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


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> Any:
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
        with autocast_context(device, dtype):
            features = model.features(*_feeds(feed, data, rows, device)).float()
        if not out.numel():
            out = torch.empty((len(data), features.shape[1]), device=device)
        out[torch.as_tensor(rows, device=device)] = features
    return out
