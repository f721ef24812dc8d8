"""How to fine-tune: the settings of one run, and the grid a search tries (no torch)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypedDict

from featx.config import Autocast, parse_enum

SCHEDULES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class Settings:
    """How to fine-tune (see :func:`featx.finetune` for each option)."""

    train_layers: int | str = "all"
    epochs: int = 3
    lr: float = 1e-4
    head_lr: float | None = None
    layer_decay: float = 0.9
    weight_decay: float = 0.01
    warmup: float = 0.1
    schedule: str = "linear"
    batch_size: int = 32
    accumulate: int = 1
    dropout: float = 0.1
    # Off by default: with dropout on attention probabilities torch's fused CPU attention
    # kernel cannot run, and a step over 32 SQuAD windows took 3.0 s, not 1.9 s, here
    # (benchmarks/README.md).
    attention_dropout: float = 0.0
    hidden: tuple[int, ...] = ()
    max_grad_norm: float = 1.0
    autocast: Autocast | str = Autocast.AUTO
    eval_every: int | None = None
    patience: int | None = 2
    mixup: float = 0.0
    lora: int = 0
    lora_alpha: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "autocast", parse_enum(Autocast, self.autocast, "autocast"))
        object.__setattr__(self, "hidden", tuple(self.hidden))
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
        for name, value in (
            ("warmup", self.warmup),
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
        ):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}.")
        if not isinstance(self.lora, int) or self.lora < 0:
            raise ValueError(f"lora is the adapters' rank (0: off), got {self.lora!r}.")
        if self.lora and self.train_layers == 0:
            raise ValueError("LoRA adapts encoder layers: give train_layers > 0 (or 'all').")
        if self.weight_decay < 0 or self.mixup < 0 or self.max_grad_norm <= 0:
            raise ValueError("weight_decay and mixup must be >= 0, max_grad_norm > 0.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return {
            **asdict(self),
            "hidden": list(self.hidden),
            "autocast": Autocast(self.autocast).value,
        }


class TrainingOptions(TypedDict, total=False):
    """:class:`Settings` but ``train_layers``, as keyword arguments (``epochs=3, lr=1e-4``)."""

    epochs: int
    lr: float
    head_lr: float | None
    layer_decay: float
    weight_decay: float
    warmup: float
    schedule: str
    batch_size: int
    accumulate: int
    dropout: float
    attention_dropout: float
    hidden: tuple[int, ...]
    max_grad_norm: float
    autocast: Autocast | str
    eval_every: int | None
    patience: int | None
    mixup: float
    lora: int
    lora_alpha: int
    seed: int


class SettingsOptions(TrainingOptions, total=False):
    """:class:`Settings` as keyword arguments (``finetune(..., train_layers=2, lr=1e-4)``)."""

    train_layers: int | str


# Question answering's defaults over Settings' (BERT's SQuAD recipe at this model size):
# the whole encoder and the head at one lr 1e-4 (no per-layer decay: +1.8 dev F1 over
# x0.9 per layer and a 5x head lr, benchmarks/README.md), batches of 32 windows, three
# epochs of warmup and linear decay: SQuAD dev EM 59.0 / F1 70.4 from the shared train
# set in 39 minutes of training here (13 minutes an epoch).
QA_DEFAULTS: dict[str, Any] = {
    "train_layers": "all",
    "lr": 1e-4,
    "head_lr": 1e-4,
    "layer_decay": 1.0,
    "batch_size": 32,
    "epochs": 3,
}

# What a search may vary: any Settings field.
SEARCHABLE = tuple(f.name for f in fields(Settings))


def settings_grid(base: Settings, param_grid: Mapping[str, Sequence[Any]] | None) -> list[Settings]:
    """Every combination of ``param_grid`` over ``base``.

    Raises:
        ValueError: For a key that is not a setting, or a value list that is empty.
    """
    if not param_grid:
        return [base]
    unknown = sorted(set(param_grid) - set(SEARCHABLE))
    if unknown:
        raise ValueError(
            f"Cannot search {', '.join(unknown)}; choose among {', '.join(SEARCHABLE)}."
        )
    for key, values in param_grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"param_grid[{key!r}] must be a non-empty list of values.")
    keys = list(param_grid)
    return [
        replace(base, **dict(zip(keys, combo, strict=True)))
        for combo in itertools.product(*param_grid.values())
    ]
