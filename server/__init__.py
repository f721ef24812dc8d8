"""The featx HTTP server: a Flask app factory over one or more featx artifacts.

Installed as ``featx.server`` (the repository keeps it in its top-level ``server/``
folder); ``featx serve`` runs it under gunicorn. Modules: :mod:`.models` (what is served),
:mod:`.routes` (the views), :mod:`.batching`, :mod:`.errors`, :mod:`.auth`,
:mod:`.observability`, :mod:`.openapi` and :mod:`.gunicorn_app`.

``create_app(config)`` takes its settings from :data:`DEFAULTS`, then a config file
(``FEATX_CONFIG``, JSON or TOML, or ``CONFIG`` in ``config``), then ``FEATX_*``
environment variables (``FEATX_MAX_TEXTS=128``; JSON values such as
``FEATX_MODELS='{"sentiment": "models/sentiment"}'`` are parsed), then ``config``.
It loads every model before it returns, so a worker is ready when it accepts requests.

Endpoints: ``POST /v1/embeddings`` (OpenAI-compatible), ``POST /embed``,
``POST /predict``, ``POST /ner`` (entities, from a ``featx train-ner`` artifact),
``GET /v1/models``, ``/healthz``, ``/readyz``, ``/metrics``
(Prometheus), ``/openapi.json`` and ``/`` (a playground page).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import tomllib
from flask import Flask

DEFAULTS: dict[str, Any] = {
    "MODELS": {},  # name -> artifact, alias or folder; empty: the default model
    "MAX_TEXTS": 256,  # texts per request
    "MAX_CHARS": 20_000,  # characters per text
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,  # request body bytes (Flask enforces it)
    "BATCHING": True,  # coalesce concurrent requests into one encoder run
    "BATCH_MAX_TEXTS": 64,
    "BATCH_WAIT_MS": 2.0,
    "MAX_QUEUE_TEXTS": 1024,  # texts waiting per model; a request that does not fit: 429
    "REQUEST_TIMEOUT_S": 30.0,  # longest a request waits for its embeddings
    "READ_TIMEOUT_S": 10.0,  # a connection silent this long is closed (stalled, idle)
    "MAX_CONNECTIONS": 1000,  # open connections per worker; more wait in the backlog
    "MAX_HEADER_BYTES": 65536,  # request line + headers
    "RUNNERS": None,  # batches run at once per model; None: the CPUs the process may use
    "ONNX_THREADS": 1,  # ONNX Runtime threads per run (RUNNERS x ONNX_THREADS = cores)
    "PRECISION": None,  # "fp32" or "int8"; None: each artifact's default
    "API_KEYS": [],  # Bearer keys; empty: no auth
    "API_KEYS_FILE": None,  # one key per line
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, models (loaded now), routes, errors, auth and metrics.

    Raises:
        ValueError: For an unknown setting or a bad value.
    """
    # Imported here: the gunicorn master imports this package and must not load onnxruntime.
    from .auth import install_auth
    from .errors import install_errors
    from .models import load_models
    from .observability import Metrics, install_observability
    from .routes import bp

    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    config_file = (config or {}).get("CONFIG") or os.environ.get("FEATX_CONFIG")
    if config_file:
        app.config.from_mapping(_read_config_file(Path(config_file)))
    app.config.from_prefixed_env("FEATX")
    app.config.from_mapping(config or {})
    _check(app.config)
    metrics = Metrics()
    app.extensions["featx_metrics"] = metrics
    app.extensions["featx_draining"] = threading.Event()  # set by a stopping worker
    app.extensions["featx_ready"] = {}  # when /readyz last passed
    app.extensions["featx_models"] = load_models(app.config, metrics)
    install_observability(app, metrics)
    install_auth(app)
    install_errors(app)
    app.register_blueprint(bp)
    return app


def _read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return {k.upper(): v for k, v in data.items()}


def _check(config: Any) -> None:
    for key in (
        "MAX_TEXTS", "MAX_CHARS", "MAX_CONTENT_LENGTH", "BATCH_MAX_TEXTS", "MAX_QUEUE_TEXTS",
        "MAX_CONNECTIONS", "MAX_HEADER_BYTES", "ONNX_THREADS",
    ):  # fmt: skip
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Setting {key} must be a positive integer, got {value!r}.")
    for key in ("BATCH_WAIT_MS", "REQUEST_TIMEOUT_S"):
        if not isinstance(config[key], int | float) or config[key] < 0:
            raise ValueError(f"Setting {key} must be a non-negative number, got {config[key]!r}.")
    if not isinstance(config["READ_TIMEOUT_S"], int | float) or config["READ_TIMEOUT_S"] <= 0:
        raise ValueError(
            f"Setting READ_TIMEOUT_S must be a positive number, got {config['READ_TIMEOUT_S']!r}."
        )
    runners = config["RUNNERS"]
    if runners is not None and (
        isinstance(runners, bool) or not isinstance(runners, int) or runners < 1
    ):
        raise ValueError(f"Setting RUNNERS must be a positive integer or null, got {runners!r}.")
    if config["MAX_QUEUE_TEXTS"] < config["MAX_TEXTS"]:
        raise ValueError(
            f"Setting MAX_QUEUE_TEXTS ({config['MAX_QUEUE_TEXTS']}) must be at least MAX_TEXTS "
            f"({config['MAX_TEXTS']}), or a request within the limits could never be queued."
        )
    if not isinstance(config["MODELS"], dict):
        raise ValueError(
            f"Setting MODELS must map names to artifacts, got {config['MODELS']!r}; e.g. "
            """FEATX_MODELS='{"minilm": "models/artifacts/minilm"}'."""
        )


__all__ = ["DEFAULTS", "create_app"]
