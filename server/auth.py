"""API keys: Bearer tokens, compared in constant time, never logged."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from .errors import error_response

# Paths that never need a key: liveness must answer to any probe.
OPEN_PATHS = ("/healthz",)


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


def authorised(keys: list[str]) -> bool:
    """Whether the request carries one of ``keys`` as a Bearer token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    # Compare with every key, so timing reveals neither the key nor which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    return matched


def install_auth(app: Flask) -> None:
    """Refuse requests without a valid key (when keys are configured), before the view."""
    keys = api_keys(app.config)
    if not keys:
        return

    @app.before_request
    def _check_key() -> Response | None:
        if request.path not in OPEN_PATHS and not authorised(keys):
            return error_response(
                401,
                "authentication_error",
                "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
            )
        return None
