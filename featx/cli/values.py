"""Option values: enum choices, and parsers from option strings to library values.

Choices are refused with the library's own message; parsers turn layer lists, KEY=VALUE
pairs and grids into what the library takes.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import click

from featx.config import parse_enum


class EnumChoice(click.Choice):
    """A click choice of an enum's values, refused with the library's own message."""

    def __init__(self, enum: type[Enum], what: str) -> None:
        super().__init__([member.value for member in enum])
        self.enum = enum
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value as given, if it is one of the enum's."""
        try:
            return parse_enum(self.enum, value, self.what).value
        except ValueError as err:
            self.fail(str(err), param, ctx)


def choices(enum: type[Enum], what: str) -> EnumChoice:
    """A click choice of ``enum``'s values; ``what`` names it in the error message."""
    return EnumChoice(enum, what)


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


def parse_train_layers(value: str) -> int | str:
    """``0``, ``N`` or ``all``: the top encoder layers to train."""
    if value == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of top layers or 'all'.") from None


def _value(text: str) -> Any:
    """A JSON value where it parses (numbers, lists, true), else the string itself."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are JSON where they parse (numbers, lists), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE, e.g. C=0.5.")
        out[key] = _value(value)
    return out


def parse_param_grid(entries: tuple[str, ...]) -> dict[str, list[Any]]:
    """``lr=5e-5,1e-4`` and ``train_layers=2,all`` -> a grid of values per key."""
    grid: dict[str, list[Any]] = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not key or not values:
            raise click.BadParameter(f"{entry!r}: write KEY=V1,V2 (e.g. lr=5e-5,1e-4).")
        grid[key] = [_value(v) for v in values.split(",")]
    return grid


def parse_floats(value: str, what: str) -> list[float]:
    """``100`` or ``10,30,100`` -> floats."""
    try:
        return [float(c) for c in value.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{what} {value!r} is not a number or a comma-separated list of numbers."
        ) from None
