"""Run the app under gunicorn (what ``featx serve`` calls).

Defaults: one worker process (:class:`.worker.WaitressWorker`: waitress reads requests,
gunicorn's master supervises) with 16 request threads, which only wait on the
micro-batcher; its runners, one per core the process may use, each run ONNX Runtime on one
thread, so cores are not oversubscribed. With ``workers > 1``, each worker gets
``cores / workers`` runners (``featx serve`` sets ``RUNNERS``).

:func:`serve` replaces the calling process with a fresh interpreter running
``python -m featx.server.gunicorn_app``: the gunicorn master must not have imported
onnxruntime before it forks workers (a worker that inherits it hangs on exit until the
master kills it), and the fresh process gets its own logging set-up.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, NoReturn

from gunicorn.app.base import BaseApplication

_SPEC_ENV = "FEATX_SERVE_SPEC"


class _Server(BaseApplication):
    def __init__(self, app_config: dict[str, Any], options: dict[str, Any]) -> None:
        self.app_config = app_config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from . import create_app

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
) -> NoReturn:
    """Serve until SIGTERM/SIGINT; in-flight requests get ``graceful_timeout`` s to finish."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": f"{__package__}.worker.WaitressWorker",
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "accesslog": None,  # featx writes its own structured access log
        "control_socket_disable": True,  # no shared control socket between servers
    }
    os.environ[_SPEC_ENV] = json.dumps({"config": app_config, "options": options})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", f"{__package__}.gunicorn_app"])


def _main() -> None:
    spec = json.loads(os.environ.pop(_SPEC_ENV))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _Server(spec["config"], spec["options"]).run()


if __name__ == "__main__":
    _main()
