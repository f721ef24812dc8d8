"""The command line's options, each declared once, with choices taken from the enums.

Commands compose these decorators; the parsers turn option strings into the values the
library takes, and :func:`friendly_errors` turns expected errors into one-line messages.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import fields
from enum import Enum
from typing import Any, TypeVar

import click

from featx import files
from featx.cli.values import choices, parse_layers, parse_train_layers
from featx.config import (
    Autocast,
    Ensemble,
    Head,
    LayerCombine,
    LongText,
    Pooling,
    Precision,
    Recipe,
    Search,
    Task,
)
from featx.errors import FeatxError
from featx.io import INPUT_FORMATS

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]


def friendly_errors(command: F) -> F:
    """Turn expected errors into a one-line message and exit status 1 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (FeatxError, ValueError, TypeError, OSError, ImportError) as err:
            raise click.ClickException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def refuse_existing(path: str | None, force: bool, *, hint: str = "pass --force") -> None:
    """Refuse an existing output before any work, unless --force."""
    files.refuse_existing(path, force, hint=hint)


# --------------------------------------------------------------------------- options


def force() -> Decorator[Any]:
    """--force: replace an existing output (only once the new one is complete)."""
    return click.option("--force", is_flag=True, help="Replace the output if it exists.")


def model(*, multiple: bool = False) -> Decorator[Any]:
    """-m/--model: an artifact, alias, hub id or folder (default: the registry default)."""
    if multiple:
        return click.option(
            "-m",
            "--model",
            "models",
            multiple=True,
            help="Artifact, alias, hub id or folder (repeat for several; default: the "
            "registry default).",
        )
    return click.option(
        "-m",
        "--model",
        "--artifact",
        "model",
        help="Artifact, alias, hub id or folder (default: the registry default).",
    )


def out() -> Decorator[Any]:
    """--out: the artifact to write."""
    return click.option(
        "--out", required=True, type=click.Path(file_okay=False), help="Artifact to write."
    )


def output() -> Decorator[Any]:
    """-o/--output: a file to write (default: JSONL on stdout)."""
    return click.option("-o", "--output", help="Output file (default: JSONL on stdout).")


def text_col(*, multiple: bool = False) -> Decorator[Any]:
    """--text-col: the column holding the text (twice for sentence pairs)."""
    if multiple:
        return click.option(
            "--text-col",
            "text_cols",
            multiple=True,
            default=["text"],
            show_default=True,
            help="Text column; give it twice for sentence pairs.",
        )
    return click.option(
        "--text-col",
        "--column",
        "text_col",
        default="text",
        show_default=True,
        help="Column or field holding the text.",
    )


def input_format(formats: tuple[str, ...] = INPUT_FORMATS) -> Decorator[Any]:
    """--format: the input format (default: from the file's suffix)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(formats),
        help="Input format (default: from the suffix; text lines otherwise).",
    )


def representation(*, allow_all_layers: bool = False) -> Decorator[Any]:
    """--pooling, --normalize/--no-normalize, --layers, --combine, --long-text.

    Passed on as one ``representation`` dict of the options given (layers parsed).
    """
    layers_help = "Hidden-state layers, e.g. -1 or -4,-3,-2,-1" + (
        " or all." if allow_all_layers else "."
    )

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            pooling: str | None,
            normalize: bool | None,
            layers: str | None,
            combine: str | None,
            long_text: str | None,
            **kwargs: Any,
        ) -> Any:
            chosen: dict[str, Any] = {"pooling": pooling, "normalize": normalize}
            chosen["combine"] = combine
            chosen["layers"] = parse_layers(layers, allow_all=allow_all_layers)
            chosen["long_text"] = long_text
            given = {k: v for k, v in chosen.items() if v is not None}
            return command(*args, representation=given, **kwargs)

        return grouped(
            pooling(),
            normalize(),
            click.option("--layers", help=layers_help),
            combine(),
            click.option(
                "--long-text",
                type=choices(LongText, "long_text"),
                help="Over-long texts: truncate (with a warning) or window and pool.",
            ),
        )(wrapper)

    return decorate


def pooling() -> Decorator[Any]:
    """--pooling: one of the Pooling values (default: the model's)."""
    return click.option(
        "--pooling", type=choices(Pooling, "pooling"), help="Pooling (default: the model's)."
    )


def normalize() -> Decorator[Any]:
    """--normalize/--no-normalize (default: the model's)."""
    return click.option(
        "--normalize/--no-normalize", default=None, help="L2-normalise (default: the model's)."
    )


def combine() -> Decorator[Any]:
    """--combine: how several layers combine."""
    return click.option(
        "--combine", type=choices(LayerCombine, "combine"), help="How several layers combine."
    )


def precision() -> Decorator[Any]:
    """--precision: the ONNX graph to run (default: the artifact's)."""
    return click.option(
        "--precision",
        type=choices(Precision, "precision"),
        help="Graph to run (default: the artifact's).",
    )


def task() -> Decorator[Any]:
    """--task: the target kind (default: inferred from the labels)."""
    return click.option(
        "--task",
        type=choices(Task, "task"),
        help="Target kind (default: inferred from the labels).",
    )


def progress() -> Decorator[Any]:
    """--progress/--no-progress (default: long jobs on a terminal, lines in a log)."""

    def quiet(ctx: click.Context, param: click.Parameter, value: bool | None) -> bool | None:
        if value is False:  # no bar, and no progress lines either
            logging.getLogger("featx.progress").setLevel(logging.WARNING)
        return value

    return click.option(
        "--progress/--no-progress",
        default=None,
        callback=quiet,
        help="Progress bars (default: long jobs on a terminal; elsewhere a progress line "
        "every 30 s).",
    )


def seed() -> Decorator[Any]:
    """--seed: the random seed."""
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")


def train_layers(default: str | None, shown: str | None = None) -> Decorator[Any]:
    """--train-layers: 0 (frozen encoder / head only), N top layers, or all.

    ``default`` None leaves the choice to the command (``shown`` says what it is).
    """
    return click.option(
        "--train-layers",
        default=default,
        show_default=shown or True,
        callback=lambda ctx, param, value: None if value is None else parse_train_layers(value),
        help="Top encoder layers to fine-tune: 0 (none), N, or all.",
    )


def augment() -> Decorator[Any]:
    """--augment and --augment-copies (training texts only)."""
    return grouped(
        click.option(
            "--augment", help="Augment training texts: eda, swap, delete, insert, synonym."
        ),
        click.option("--augment-copies", type=click.IntRange(1), default=1, show_default=True),
    )


def heads() -> Decorator[Any]:
    """--recipe, --head (repeatable), --ensemble, --tfidf, --param, --class-weight."""
    return grouped(
        click.option(
            "--recipe",
            type=choices(Recipe, "recipe"),
            default="auto",
            show_default=True,
            help="auto: score a few candidates by cross-validation, keep the best (unless a "
            "head, ensemble, TF-IDF, search or layers is chosen); fast: the model's "
            "embedding + logistic regression, one fit.",
        ),
        click.option(
            "--head",
            "heads",
            multiple=True,
            type=choices(Head, "head"),
            help="Head (repeat with --ensemble); default: logreg (ridge for regression).",
        ),
        click.option("--ensemble", type=choices(Ensemble, "ensemble"), help="Combine members."),
        click.option("--tfidf", is_flag=True, help="Add word 1-2 gram TF-IDF features."),
        click.option("--param", "params", multiple=True, help="Head parameter KEY=VALUE."),
        click.option("--class-weight", help="'balanced' (classification heads)."),
    )


def search() -> Decorator[Any]:
    """--search, --search-representation, --cv, --n-iter."""
    return grouped(
        click.option("--search", type=choices(Search, "search"), help="Hyperparameter search."),
        click.option("--search-representation", is_flag=True, help="Also search pooling, layers."),
        click.option("--cv", type=click.IntRange(2), default=5, show_default=True),
        click.option("--n-iter", type=click.IntRange(1), default=20, show_default=True),
    )


def finetune_settings(
    names: tuple[str, ...] | None = None, defaults: Mapping[str, Any] | None = None
) -> Decorator[Any]:
    """The fine-tuning settings (:class:`featx.finetuning.Settings`) as options.

    Each defaults to None, which leaves the setting's own default (shown in the help).

    Args:
        names: The settings to offer; None: all but ``train_layers`` and ``hidden``.
        defaults: The command's own defaults over Settings' (shown in the help).
    """
    from featx.finetuning.settings import Settings

    shown = Settings(**(defaults or {}))
    offered = [
        f
        for f in fields(Settings)
        if (f.name in names if names is not None else f.name not in ("train_layers", "hidden"))
    ]
    decorators = [_setting_option(f.name, getattr(shown, f.name)) for f in offered]
    return grouped(*decorators)


_SETTING_HELP = {
    "lr": "Learning rate of the top encoder layer.",
    "head_lr": "Learning rate of the head (default: 5 x --lr).",
    "layer_decay": "Learning rate x this per layer down.",
    "warmup": "Share of the steps spent warming up.",
    "accumulate": "Batches per optimiser step.",
    "dropout": "Dropout before the head.",
    "attention_dropout": "Dropout of the encoder's attention probabilities (slower if > 0).",
    "autocast": "Autocast dtype while training (auto: bf16 where the CPU has it).",
    "eval_every": "Score dev every N steps (default: each epoch).",
    "patience": "Early stopping: evaluations without improvement.",
    "mixup": "Embedding mixup alpha (0: off).",
    "lora": "LoRA rank (0: off).",
    "seed": "Random seed.",
}
_SETTING_TYPES: dict[str, Any] = {
    "schedule": click.Choice(["linear", "cosine", "constant"]),
    "autocast": choices(Autocast, "autocast"),
}


def _setting_option(name: str, default: Any) -> Decorator[Any]:
    shown = default.value if isinstance(default, Enum) else default
    kind = _SETTING_TYPES.get(name) or (float if isinstance(default, float) else int)
    help_text = _SETTING_HELP.get(name, name.replace("_", " ").capitalize() + ".")
    return click.option(
        f"--{name.replace('_', '-')}", name, type=kind, help=f"{help_text} [default: {shown}]"
    )


def grouped(*decorators: Decorator[Any]) -> Decorator[Any]:
    """Apply several option decorators as one, in the order given (as written above)."""

    def apply(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply
