"""The ``featx`` command line: thin commands over the public API, one module per group.

:mod:`~featx.cli.main` is the group, :mod:`~featx.cli.options` declares every option once;
:mod:`~featx.cli.encode` (export, embed, info, models, cache), :mod:`~featx.cli.heads`
(train, predict, evaluate), :mod:`~featx.cli.finetune`, :mod:`~featx.cli.ner`
(train-ner), :mod:`~featx.cli.serve` and :mod:`~featx.cli.spark` (spark-embed) hold the
commands. Heavy imports happen inside the commands that need them.
"""

from __future__ import annotations

from featx.cli.main import main

__all__ = ["main"]
