"""Options that read tables: --format, --text-col, --label-col, --label-sep, --drop-empty.

``@data_options`` passes them on as one :class:`DataSpec`, which reads a labelled file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import click

from featx.cli.options import Decorator, F, grouped, input_format, text_col
from featx.io import INPUT_FORMATS


@dataclass(frozen=True)
class DataSpec:
    """How to read a labelled table: format, text column(s), label column, label separator."""

    fmt: str | None
    text_cols: tuple[str, ...]
    label_col: str
    label_sep: str | None
    drop_empty: bool

    def read(self, path: str, *, multilabel: bool = False) -> tuple[Any, list[Any] | None]:
        """Texts (or pairs) and labels of ``path``; multi-label splits on ``,`` by default."""
        from featx.io import read_labelled

        sep = "," if self.label_sep is None and multilabel else self.label_sep
        return read_labelled(
            path,
            self.text_cols,
            self.label_col,
            fmt=self.fmt,
            label_sep=sep,
            drop_empty=self.drop_empty,
        )

    def read_dev(self, path: str, *, multilabel: bool = False) -> tuple[Any, list[Any] | None]:
        """Like :meth:`read`, saying which file did not fit."""
        try:
            return self.read(path, multilabel=multilabel)
        except (ValueError, KeyError) as err:
            raise ValueError(f"The dev set {path} does not fit: {err}") from err


def data_options(command: F) -> F:
    """--format, --text-col, --label-col, --label-sep and --drop-empty, as ``spec: DataSpec``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        fmt: str | None,
        text_cols: tuple[str, ...],
        label_col: str,
        label_sep: str | None,
        drop_empty: bool,
        **kwargs: Any,
    ) -> Any:
        spec = DataSpec(fmt, text_cols, label_col, label_sep, drop_empty)
        return command(*args, spec=spec, **kwargs)

    tables = tuple(f for f in INPUT_FORMATS if f != "lines")
    decorated = grouped(
        input_format(tables),
        text_col(multiple=True),
        click.option("--label-col", default="label", show_default=True, help="Target column."),
        click.option(
            "--label-sep",
            help="Split labels on this string: a multi-label target (e.g. --label-sep ,).",
        ),
        drop_empty(),
    )(wrapper)
    return decorated


def drop_empty() -> Decorator[Any]:
    """--drop-empty: leave out records with an empty text instead of refusing the file."""
    return click.option(
        "--drop-empty",
        is_flag=True,
        help="Drop records whose text is empty or only whitespace (by default they are "
        "refused, naming the file and line).",
    )


def data_file(name: str, help_text: str, *, required: bool = True) -> Decorator[Any]:
    """--data / --dev: an existing file."""
    return click.option(
        name,
        required=required,
        type=click.Path(exists=True, dir_okay=False),
        help=help_text,
    )
