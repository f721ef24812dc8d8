"""The gunicorn worker ``featx serve`` runs: gunicorn's master around waitress's I/O loop.

gunicorn's gthread worker parses a request in one of its threads, so as many clients as
threads that send half their headers or half their body and stall hang the server for
everyone (found by probing: 16 such connections stopped ``/healthz``). waitress reads
every connection in one non-blocking loop and hands a thread only a request it has read
whole; a connection that sends nothing for ``READ_TIMEOUT_S`` is closed. gunicorn's master
still does what it is good at: it replaces a worker that dies, drains on SIGTERM and runs
several workers on one socket. waitress's own error pages (a bad request line, a header
section or body over the limits, a bad ``Content-Length``) are answered as featx's JSON
errors.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

_LOOP_S = 0.5  # longest poll: how soon a stopping worker notices (and the heartbeat)


class _JsonErrorTask(ErrorTask):
    """waitress's HTTP-level errors as featx's ``{"error": {...}}`` JSON body."""

    def execute(self) -> None:
        err = self.request.error
        adj = self.channel.server.adj
        messages = {
            413: f"The request body is over the {adj.max_request_body_size} byte limit; "
            "send fewer or shorter texts per request.",
            431: f"The request line and headers are over the {adj.max_request_header_size} "
            "byte limit; send a shorter URL and fewer or shorter headers.",
        }
        message = messages.get(err.code, f"{err.reason}: {err.body}".rstrip(". ") + ".")
        kind = "request_too_large" if err.code in messages else "invalid_request_error"
        error = {"type": kind, "message": message, "param": None, "code": err.code}
        body = json.dumps({"error": error}).encode()
        self.status = f"{err.code} {err.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask


class _Server(TcpWSGIServer):
    channel_class = _Channel


def adjustments(config: dict[str, Any], threads: int) -> Adjustments:
    """Waitress's settings from the app's: read timeout, connection and size limits."""
    return Adjustments(
        threads=threads,
        channel_timeout=config["READ_TIMEOUT_S"],
        cleanup_interval=max(0.2, min(1.0, config["READ_TIMEOUT_S"] / 4)),
        connection_limit=config["MAX_CONNECTIONS"],
        max_request_body_size=config["MAX_CONTENT_LENGTH"],
        max_request_header_size=config["MAX_HEADER_BYTES"],
        asyncore_use_poll=True,  # select() fails past 1024 descriptors
        ident="featx",
    )


class WaitressWorker(Worker):
    """A gunicorn worker serving its WSGI app with waitress on the master's sockets."""

    def run(self) -> None:
        """Serve until told to stop (SIGTERM) or orphaned, then drain."""
        app = self.wsgi
        # featx answers overload itself (429); waitress would warn on every queued task.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        adj = adjustments(app.config, self.cfg.threads)
        socket_map: dict[int, Any] = {}
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        servers = []
        for listener in self.sockets:
            sock: socket.socket = listener.sock
            sock.setblocking(False)
            info = (sock.family, sock.type, sock.proto, sock.getsockname())
            server = _Server(
                app, socket_map, _sock=sock, dispatcher=dispatcher, adj=adj,
                bind_socket=False, sockinfo=info,
            )  # fmt: skip
            servers.append(server)
        notified = 0.0
        while self.alive and os.getppid() == self.ppid:
            if time.monotonic() - notified > _LOOP_S:  # the heartbeat, not once per event
                self.notify()
                notified = time.monotonic()
            wasyncore.loop(timeout=_LOOP_S, map=socket_map, use_poll=True, count=1)
        self._drain(app, servers, socket_map, dispatcher)

    def _drain(self, app: Any, servers: list[_Server], socket_map: dict[int, Any],
               dispatcher: ThreadedTaskDispatcher) -> None:  # fmt: skip
        """Stop accepting, say not ready, finish the requests already read, then exit."""
        app.extensions["featx_draining"].set()
        for server in servers:
            server.accepting = False
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline and any(_busy(s) for s in servers):
            self.notify()
            wasyncore.loop(timeout=0.05, map=socket_map, use_poll=True, count=1)
        dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(socket_map)


def _busy(server: _Server) -> bool:
    """Whether a connection has a request read but not yet answered, or output unsent."""
    return any(ch.requests or ch.total_outbufs_len for ch in server.active_channels.values())
