"""What the server tells its operators: request ids, JSON access logs, Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from featx.encoders import EncodeResult

access_log = logging.getLogger("featx.access")
_TIMING_HEADERS = {
    "queue": "X-Queue-Time",
    "tokenize": "X-Tokenization-Time",
    "inference": "X-Inference-Time",
}


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
        self.batch_tokens = Histogram(
            "featx_batch_tokens",
            "Tokens per encoder run (special tokens included, before truncation)",
            buckets=(16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768),
            registry=r,
        )
        seconds = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
        self.stage = Histogram(
            "featx_stage_seconds",
            "Seconds per stage: queue (per request), tokenize and inference (per encoder run)",
            ["stage"],
            buckets=seconds,
            registry=r,
        )
        self.queue_depth = Gauge("featx_queue_depth", "Texts waiting to be batched", registry=r)
        self.texts = Counter("featx_texts_embedded", "Texts embedded", ["model"], registry=r)
        self.tokens = Counter("featx_tokens_embedded", "Tokens embedded", ["model"], registry=r)

    def observe_batch(self, result: EncodeResult) -> None:
        """One encoder run of the micro-batcher: its size, tokens and stage times."""
        self.batch_size.observe(len(result.n_tokens))
        self.batch_tokens.observe(int(result.n_tokens.sum()))
        for stage in ("tokenize", "inference"):
            if stage in result.seconds:
                self.stage.labels(stage).observe(result.seconds[stage])


def install_observability(app: Flask, metrics: Metrics) -> None:
    """Give every request an id, a metrics sample and one JSON access-log line."""

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("start", time.perf_counter())
        response.headers["X-Request-ID"] = g.get("request_id", "")
        stages = g.get("stage_seconds")
        if stages:  # text-embeddings-inference's timing headers, in milliseconds
            if "queue" in stages:
                metrics.stage.labels("queue").observe(stages["queue"])
            for stage, header in _TIMING_HEADERS.items():
                if stage in stages:
                    response.headers[header] = f"{stages[stage] * 1000:.2f}"
        response.headers["X-Total-Time"] = f"{elapsed * 1000:.2f}"
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
