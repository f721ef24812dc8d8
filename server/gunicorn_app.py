"""Run the app under gunicorn from Python (what ``featx serve`` calls).

Defaults: one worker process with 16 threads, ONNX Runtime using every core in that
worker. The threads wait on the network and on the micro-batcher, which runs one
encoder batch at a time, so cores are not oversubscribed. With ``workers > 1``, give
each worker ``cores / workers`` ONNX threads (``onnx_threads``) instead.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, app_config: dict[str, Any], options: dict[str, Any]) -> None:
        self.app_config = app_config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from server import create_app

        return create_app(self.app_config)


def serve(
    app_config: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    threads: int = 16,
    timeout: int = 60,
    graceful_timeout: int = 20,
    access_log: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests get ``graceful_timeout`` s to finish."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "keepalive": 5,
        "accesslog": None,  # featx writes its own structured access log
        "loglevel": "info",
    }
    if access_log:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")
    _Server(app_config, options).run()
