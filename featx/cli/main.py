"""The ``featx`` command group: logging, warnings on stderr, and every command."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import click

from featx.cli import encode, finetune, heads, ner, qa, serve, spark
from featx.errors import DroppedRecordsWarning, TruncationWarning


def _show_warnings(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    if isinstance(message, TruncationWarning):  # name the option a CLI user can pass
        message = message.explain(
            "Pass --long-text chunk_mean (or chunk_max) to featx embed or featx train to embed "
            "them whole."
        )
    click.echo(f"featx: warning: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="featx")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """featx: pretrained Transformers as fast, cheap features (ONNX Runtime)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="featx: %(message)s"
    )
    warnings.showwarning = _show_warnings
    # Without a terminal (a log file, CI), long work says how far it is every 30 s.
    logging.getLogger("featx.progress").setLevel(logging.INFO)
    # What --drop-empty left out is part of the answer: said every time, whatever the filters.
    warnings.simplefilter("always", DroppedRecordsWarning)


for _command in (
    encode.export,
    encode.embed,
    encode.info,
    encode.models,
    encode.cache,
    heads.train,
    heads.predict,
    heads.evaluate,
    finetune.finetune,
    qa.finetune_qa,
    ner.train_ner,
    serve.serve,
    spark.spark_embed,
):
    main.add_command(_command)
