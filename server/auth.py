"""API keys: Bearer tokens, compared in constant time, never logged, rotated without a restart.

Keys come from ``API_KEYS`` and ``API_KEYS_FILE`` (one per line, ``#`` comments). The file
is read again when it changes (checked at most once a second), so keys are rotated by
writing a new file (atomically: write a temporary file and rename it) with no restart. A
file that cannot be read keeps the keys in force; an emptied file leaves only the
``API_KEYS`` keys, never an open server.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from .errors import error_response

logger = logging.getLogger(__name__)

# Paths that never need a key: probes of liveness and readiness must answer to anyone
# (a Kubernetes probe sends no Authorization header).
OPEN_PATHS = ("/healthz", "/readyz")
_CHECK_EVERY_S = 1.0


def _listed(keys: Any) -> list[str]:
    if isinstance(keys, str):
        keys = keys.split(",")
    return [k.strip() for k in keys or [] if k and k.strip()]


class KeyRing:
    """The keys in force: the configured ones and the key file's, re-read when it changes."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.fixed = _listed(config.get("API_KEYS"))
        self.path = Path(config["API_KEYS_FILE"]) if config.get("API_KEYS_FILE") else None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._from_file: list[str] = []
        if self.path is not None:
            self._from_file = self._read()  # a missing or unreadable file fails start-up

    @property
    def enabled(self) -> bool:
        """Whether keys are required (any configured, now or at start)."""
        return bool(self.fixed) or self.path is not None

    def keys(self) -> list[str]:
        """The keys in force now."""
        if self.path is not None and time.monotonic() - self._checked > _CHECK_EVERY_S:
            with self._lock:
                self._checked = time.monotonic()
                try:
                    self._from_file = self._read()
                except OSError as err:
                    logger.warning("API key file %s unreadable (%s); keeping the keys", self.path,
                                   err.strerror)  # fmt: skip
        return self.fixed + self._from_file

    def _read(self) -> list[str]:
        assert self.path is not None
        info = os.stat(self.path)
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return self._from_file
        lines = self.path.read_text(encoding="utf-8").splitlines()
        keys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if self._stamp is not None:
            logger.info("API key file %s reloaded: %d keys", self.path, len(keys))
        self._stamp = stamp
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
    ring = KeyRing(app.config)
    if not ring.enabled:
        return

    @app.before_request
    def _check_key() -> Response | None:
        if request.path not in OPEN_PATHS and not authorised(ring.keys()):
            return error_response(
                401,
                "authentication_error",
                "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
            )
        return None
