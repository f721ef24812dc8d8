"""``featx serve``: the HTTP server (the ``server`` extra), the only command that imports it."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from featx.cli import options
from featx.cli.options import friendly_errors
from featx.environment import available_cpus
from featx.extras import require


def server_package() -> ModuleType:
    """The server package: ``featx.server`` as installed, else the checkout's ``server/``.

    A wheel installs the repository's ``server/`` folder as ``featx.server``; an editable
    install imports featx from the checkout, where the folder sits beside ``featx/``.

    Raises:
        ImportError: If the server extra or the package is missing.
    """
    require("server", "featx serve")
    try:
        return importlib.import_module("featx.server")
    except ModuleNotFoundError as err:
        checkout = Path(__file__).resolve().parents[2]
        if not (checkout / "server" / "__init__.py").is_file():
            raise ImportError(f"featx.server is not installed ({err}).") from err
        return importlib.import_module("server")


@click.command()
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--threads", type=click.IntRange(1), default=16, show_default=True, help="Per worker."
)
@click.option(
    "--runners",
    type=click.IntRange(1),
    help="Batches run at once per worker. Default: cores / workers.",
)
@click.option(
    "--onnx-threads", type=click.IntRange(1), default=1, show_default=True, help="Per run."
)
@click.option("--timeout", type=click.IntRange(1), default=60, show_default=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--api-keys-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-batching", is_flag=True, help="Run each request on its own.")
@options.precision()
@friendly_errors
def serve(
    models: tuple[str, ...],
    host: str,
    port: int,
    workers: int,
    threads: int,
    runners: int | None,
    onnx_threads: int,
    timeout: int,
    config_file: str | None,
    api_keys_file: str | None,
    no_batching: bool,
    precision: str | None,
) -> None:
    """Serve MODELS (NAME=ARTIFACT or ARTIFACT; default: the default model) over HTTP."""
    package = server_package()
    run = importlib.import_module(f"{package.__name__}.gunicorn_app").serve
    config: dict[str, Any] = {"REQUEST_TIMEOUT_S": float(timeout)}
    if models:
        named = [
            m.split("=", 1) if "=" in m else [os.path.basename(m.rstrip("/")), m] for m in models
        ]
        config["MODELS"] = dict(named)
    if config_file:
        config["CONFIG"] = config_file
    if api_keys_file:
        config["API_KEYS_FILE"] = api_keys_file
    if no_batching:
        config["BATCHING"] = False
    if precision:
        config["PRECISION"] = precision
    config["ONNX_THREADS"] = onnx_threads
    config["RUNNERS"] = runners or max(1, available_cpus() // (workers * onnx_threads))
    run(config, host=host, port=port, workers=workers, threads=threads, timeout=timeout)  # execs
