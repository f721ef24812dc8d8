"""Cross-cutting HTTP concerns: JSON errors, API keys, request ids, access logs, metrics."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from werkzeug.exceptions import HTTPException

access_log = logging.getLogger("featx.access")
# Paths that never need a key: liveness must answer to any probe.
OPEN_PATHS = ("/healthz",)


class ApiError(Exception):
    """A client error with an HTTP status, a type and a message that says what to fix."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param


def error_response(status: int, kind: str, message: str, param: str | None = None) -> Response:
    """The JSON error body (OpenAI-compatible: the ``openai`` client shows ``message``)."""
    body = {"error": {"type": kind, "message": message, "param": param, "code": status}}
    response = jsonify(body)
    response.status_code = status
    return response


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps can coexist)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "featx_requests", "HTTP requests", ["endpoint", "status"], registry=r
        )
        self.errors = Counter("featx_errors", "Error responses", ["endpoint", "type"], registry=r)
        self.latency = Histogram(
            "featx_request_latency_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            "featx_batch_size",
            "Texts per encoder run",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.queue_depth = Gauge("featx_queue_depth", "Requests waiting to be batched", registry=r)
        self.texts = Counter("featx_texts_embedded", "Texts embedded", ["model"], registry=r)
        self.tokens = Counter("featx_tokens_embedded", "Tokens embedded", ["model"], registry=r)


def api_keys(config: dict[str, Any]) -> list[str]:
    """Keys from ``API_KEYS`` (a list, or a comma-separated string) and ``API_KEYS_FILE``."""
    keys = config.get("API_KEYS") or []
    if isinstance(keys, str):
        keys = keys.split(",")
    keys = [k.strip() for k in keys if k and k.strip()]
    path = config.get("API_KEYS_FILE")
    if path:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return keys


def _authorised(keys: list[str]) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    # Compare with every key, so timing reveals neither the key nor which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    return matched


def install(app: Flask, metrics: Metrics) -> None:
    """Register auth, request ids, access logging, metrics and JSON errors on ``app``."""
    keys = api_keys(app.config)

    @app.before_request
    def _start() -> Response | None:
        g.start = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        if keys and request.path not in OPEN_PATHS and not _authorised(keys):
            return error_response(
                401,
                "authentication_error",
                "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
            )
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("start", time.perf_counter())
        response.headers["X-Request-ID"] = g.get("request_id", "")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(elapsed)
        if response.status_code >= 400 and response.is_json:
            kind = (response.get_json(silent=True) or {}).get("error", {}).get("type", "error")
            metrics.errors.labels(endpoint, kind).inc()
        access_log.info(
            json.dumps(
                {
                    "request_id": g.get("request_id"),
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 2),
                    "bytes_in": request.content_length or 0,
                    "remote": request.remote_addr,
                }
            )
        )
        return response

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return error_response(err.status, err.kind, err.message, err.param)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        messages = {
            404: f"No endpoint {request.path}; see GET /openapi.json.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: (
                f"The request body is over the {app.config['MAX_CONTENT_LENGTH']} byte limit; "
                "send fewer or shorter texts per request."
            ),
        }
        kind = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        response = error_response(
            status, kind.get(status, "invalid_request_error"), messages.get(status, str(err))
        )
        # Keep the exception's own headers (405: Allow, required by RFC 9110), not its HTML type.
        for name, value in err.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        app.logger.exception("unexpected error (request %s)", g.get("request_id"))
        return error_response(500, "server_error", "Internal error; see the server log.")
