"""Helpers shared by the command-line modules."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from featx.errors import FeatxError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Turn expected errors into a one-line message and exit status 1 (no traceback)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (FeatxError, ValueError, TypeError, OSError, ImportError) as err:
            raise click.ClickException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def parse_layers(value: str | None, *, allow_all: bool = False) -> tuple[int, ...] | str | None:
    """``-1`` or ``-4,-3,-2,-1`` -> a tuple of ints (``all`` where ``allow_all``)."""
    if value is None or (allow_all and value == "all"):
        return value
    try:
        return tuple(int(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of layer indices, e.g. -1 or -4,-3,-2,-1."
        ) from None
