"""Server under real traffic (issue 16's bars): engine share, flood, stalls, a killed worker, a
soak with bad requests. Loopback only; ``featx serve`` with its defaults unless named.

- ``stages``: CPU per one-text ``POST /embed``, layer by layer, in this process, one request
  at a time (CPU time = wall time, no contention): the model (``encode_with_info`` of one
  text), the Flask app with batching off (routing, parsing, checks, JSON out, metrics,
  access log) and its floor (``GET /healthz``), the micro-batcher's hand-off (batching on),
  and the HTTP server around it (the ``engine`` part's server CPU per request minus the
  in-process app's).
- ``engine``: 16 clients, each with its own keep-alive connection, one short text per
  request; requests/s and latency p50/p99, against the library's own ``encode`` of the same
  texts in the same run (this process, the server's cores): all at once (the library's
  batching: ratio, bar >= 0.75) and 16 at a time (the most 16 clients can coalesce).
  Also the server's CPU per request, and its stage seconds from ``/metrics``.
- ``flood``: 32 clients x 64 texts for ``--flood-seconds`` on a server with a small queue
  (``MAX_QUEUE_TEXTS`` 256): statuses (bar: only 200 and 429, every 429 with Retry-After,
  none past the request timeout), then seconds until a one-text request is answered in
  under 100 ms (bar <= 1 s).
- ``stall``: 4 one-text clients and ``/healthz`` probes, p99 before and while 64
  connections hold half their headers or half their body; seconds until the server closed
  the stalled connections (``READ_TIMEOUT_S`` ``--read-timeout``).
- ``kill``: 4 clients; SIGKILL the worker; seconds until requests succeed again (bar <= 5).
- ``soak``: 16 clients for ``--soak-seconds``, 20 % of requests malformed or over a limit
  (bad JSON, wrong Content-Type, an empty text, too many texts, a text too long, a body
  over the byte limit); bar: 0 errors on valid requests, 0 5xx, RSS slope <= 1 MB/min.

    python benchmarks/bench_traffic.py                         # everything (~10 min, idle!)
    python benchmarks/bench_traffic.py --requests-per-client 5 --flood-seconds 2 \\
        --soak-seconds 5 --read-timeout 2                     # smoke
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server  # noqa: E402
import common  # noqa: E402
from bench_server import HOST, Client, Server  # noqa: E402

PARTS = ("stages", "engine", "flood", "stall", "kill", "soak")
BARS = {
    "stages": "(a breakdown, no bar)",
    "engine": "req/s >= 0.75x library batched; p99 <= 50 ms",
    "flood": "only 200/429 (Retry-After), none past timeout; normal within 1 s",
    "stall": "others answered as usual; stalled closed after the read timeout",
    "kill": "requests succeed again within 5 s",
    "soak": "0 errors on valid requests, 0 5xx, RSS slope <= 1 MB/min",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--requests-per-client", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="engine passes (median)")
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--stall-seconds", type=float, default=5.0)
    parser.add_argument("--read-timeout", type=float, default=5.0)
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--start-timeout", type=float, default=180.0)
    common.add_out_arg(parser, "bench_traffic")
    return parser.parse_args(argv)


def post(conn: http.client.HTTPConnection, body: bytes, content_type: str = "application/json"):
    """(status, headers, body) of POST /embed with raw ``body``."""
    conn.request("POST", "/embed", body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def one_text(text: str) -> bytes:
    return json.dumps({"texts": [text]}).encode()


def clients(n: int, work: Callable[[int], None]) -> float:
    """Run ``work(k)`` in ``n`` threads, started together; the wall seconds."""
    barrier = threading.Barrier(n + 1)

    def run(k: int) -> None:
        barrier.wait()
        work(k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def latencies_ms(port: int, texts: Sequence[str], n_clients: int, per_client: int) -> list[float]:
    """One-text requests from ``n_clients`` keep-alive clients; every latency, in ms."""
    out: list[list[float]] = [[] for _ in range(n_clients)]

    def work(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        for i in range(per_client):
            started = time.perf_counter()
            status, _, _ = post(conn, one_text(texts[(k * per_client + i) % len(texts)]))
            if status != 200:
                raise RuntimeError(f"POST /embed answered {status}")
            out[k].append((time.perf_counter() - started) * 1000)
        conn.close()

    clients(n_clients, work)
    return [x for lat in out for x in lat]


class Bench(common.Run):
    def __init__(self, args: argparse.Namespace) -> None:
        self.artifact, status = common.ensure_artifact(args.artifact.resolve())
        self.threads = bench_server.onnx_threads()
        self.log_dir = Path(tempfile.mkdtemp(prefix="featx-bench-traffic-"))
        self.short = common.short_workload(common.sst2_sentences(args.data), 3200)
        settings = {k: str(v) for k, v in vars(args).items() if k not in ("out", "data")}
        base = common.base_record(
            "traffic", threads=self.threads, settings=settings, artifact=self.artifact,
            artifact_status=status,
        )  # fmt: skip
        super().__init__(args, base)

    def server(self, label: str, env: dict[str, str] | None = None) -> Server:
        server = Server(self.artifact, self.log_dir, label, env=env)
        server.start(self.args.start_timeout)
        return server

    def library_rates(self, texts: list[str]) -> dict[str, float]:
        import featx

        encoder = featx.load(self.artifact, threads=self.threads)
        encoder.encode(texts[:64])
        rates: dict[str, list[float]] = {"all": [], "16": []}
        for _ in range(3):
            started = time.perf_counter()
            encoder.encode(texts)
            rates["all"].append(len(texts) / (time.perf_counter() - started))
            started = time.perf_counter()
            for i in range(0, len(texts), 16):
                encoder.encode(texts[i : i + 16])
            rates["16"].append(len(texts) / (time.perf_counter() - started))
        return {
            "library_texts_per_s_batched": common.median(rates["all"]),
            "library_texts_per_s_batch16": common.median(rates["16"]),
        }

    def part_stages(self) -> None:
        import featx
        from featx.cli.serve import server_package

        create_app = server_package().create_app
        texts = self.short[:400]
        encoder = featx.load(self.artifact, threads=1)
        config = {"MODELS": {"m": str(self.artifact)}, "RUNNERS": 1}
        direct = create_app({**config, "BATCHING": False}).test_client()
        batched = create_app(config).test_client()

        def cpu_ms(call: Callable[[str], Any]) -> float:
            for text in texts[:20]:
                call(text)
            started = time.process_time()
            for text in texts:
                call(text)
            return (time.process_time() - started) * 1000 / len(texts)

        model = cpu_ms(lambda t: encoder.encode_with_info([t]))
        app = cpu_ms(lambda t: direct.post("/embed", json={"texts": [t]}))
        floor = cpu_ms(lambda t: direct.get("/healthz"))
        with_batcher = cpu_ms(lambda t: batched.post("/embed", json={"texts": [t]}))
        self.stage_ms = {
            "model": model,
            "flask_floor": floor,
            "flask_embed_view": app - model - floor,
            "batcher_handoff": with_batcher - app,
        }
        self.record(part="stages", core_ms_per_request=self.stage_ms, bar=BARS["stages"],
                    meets_bar=None)  # fmt: skip

    def _engine_pass(self, server: Server, texts: list[str], per: int) -> dict[str, Any]:
        probe = Client(server.port)
        before, cpu = probe.metrics(), server.cpu_s()
        started = time.perf_counter()
        flat = latencies_ms(server.port, texts, 16, per)
        wall = time.perf_counter() - started
        cpu = server.cpu_s() - cpu
        after = probe.metrics()
        probe.close()

        def grew(name: str) -> float:
            return bench_server.delta(before, after, name)

        stages = ("queue", "tokenize", "inference")
        runs = max(1.0, grew(bench_server.BATCH_COUNT))
        return {
            "requests_per_s": len(flat) / wall,
            "latency_ms_p50": common.median(flat),
            "latency_ms_p99": float(np.percentile(flat, 99)),
            "server_core_ms_per_request": cpu * 1000 / len(flat),
            "texts_per_run": grew(bench_server.BATCH_SUM) / runs,
            # queue: per request; tokenize and inference: per run, shared by its requests
            "stage_ms_per_request": {
                s: grew(f'featx_stage_seconds_sum{{stage="{s}"}}') * 1000 / len(flat)
                for s in stages
            },
        }

    def part_engine(self) -> None:
        per = self.args.requests_per_client
        texts = self.short[: 16 * per]
        server = self.server("engine")
        try:
            latencies_ms(server.port, texts, 16, 3)  # warm-up
            runs = [self._engine_pass(server, texts, per) for _ in range(self.args.repeats)]
        finally:
            server.stop(30)
        median = sorted(runs, key=lambda r: r["requests_per_s"])[len(runs) // 2]
        library = self.library_rates(texts)
        share = median["requests_per_s"] / library["library_texts_per_s_batched"]
        share16 = median["requests_per_s"] / library["library_texts_per_s_batch16"]
        stage_ms = getattr(self, "stage_ms", None)
        if stage_ms is not None:  # what the HTTP layer adds under load, per request
            in_process = stage_ms["model"] + stage_ms["flask_floor"] + stage_ms["flask_embed_view"]
            in_process += stage_ms["batcher_handoff"]
            median["http_server_and_contention_core_ms"] = (
                median["server_core_ms_per_request"] - in_process
            )
        self.record(
            part="engine", **median, **library, share_of_library_batched=share,
            share_of_library_batch16=share16, runs=runs, bar=BARS["engine"],
            meets_bar=share >= 0.75 and median["latency_ms_p99"] <= 50,
        )  # fmt: skip

    def part_flood(self) -> None:
        timeout_s = 10.0
        env = {"FEATX_MAX_QUEUE_TEXTS": "256", "FEATX_REQUEST_TIMEOUT_S": str(timeout_s)}
        server = self.server("flood", env)
        body = json.dumps({"texts": self.short[:64]}).encode()
        statuses: Counter[int] = Counter()
        no_retry_after, slowest = [0], [0.0]
        stop_at = time.monotonic() + self.args.flood_seconds
        lock = threading.Lock()

        def work(k: int) -> None:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                status, headers, _ = post(conn, body)
                with lock:
                    statuses[status] += 1
                    slowest[0] = max(slowest[0], time.perf_counter() - started)
                    no_retry_after[0] += status == 429 and "Retry-After" not in headers
            conn.close()

        try:
            clients(32, work)
            flood_end = time.perf_counter()
            conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
            while True:
                started = time.perf_counter()
                status, _, _ = post(conn, one_text("after the flood"))
                if status == 200 and time.perf_counter() - started < 0.1:
                    break
            recovered_s = time.perf_counter() - flood_end
        finally:
            server.stop(30)
        only = set(statuses) <= {200, 429}
        self.record(
            part="flood", statuses={str(k): v for k, v in sorted(statuses.items())},
            without_retry_after=no_retry_after[0], slowest_s=slowest[0],
            request_timeout_s=timeout_s, recovered_s=recovered_s, bar=BARS["flood"],
            meets_bar=only and not no_retry_after[0] and slowest[0] <= timeout_s + 1
            and recovered_s <= 1.0,
        )  # fmt: skip

    def _p99s(self, port: int) -> tuple[float, float]:
        """p99 ms of one-text requests (4 clients) and of /healthz probes, meanwhile."""
        health: list[float] = []
        done = threading.Event()

        def probe() -> None:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            while not done.is_set():
                started = time.perf_counter()
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                health.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        per = max(5, int(self.args.stall_seconds * 40))
        flat = latencies_ms(port, self.short, 4, per)
        done.set()
        prober.join()
        return float(np.percentile(flat, 99)), float(np.percentile(health, 99))

    def part_stall(self) -> None:
        server = self.server("stall", {"FEATX_READ_TIMEOUT_S": str(self.args.read_timeout)})
        try:
            self._p99s(server.port)  # warm-up
            embed_before, health_before = self._p99s(server.port)
            stalled = []
            for i in range(64):
                sock = socket.create_connection((HOST, server.port))
                half_body = b"Content-Type: application/json\r\nContent-Length: 99\r\n\r\n{"
                sock.sendall(
                    b"POST /embed HTTP/1.1\r\nHost: x\r\n" + (half_body if i % 2 else b"Con")
                )
                stalled.append(sock)
            opened = time.monotonic()
            embed_during, health_during = self._p99s(server.port)
            closed_after = []
            for sock in stalled:
                sock.settimeout(self.args.read_timeout * 4 + 5)
                if sock.recv(10) == b"":
                    closed_after.append(time.monotonic() - opened)
                sock.close()
        finally:
            server.stop(30)
        self.record(
            part="stall", embed_p99_ms_before=embed_before, embed_p99_ms_during=embed_during,
            healthz_p99_ms_before=health_before, healthz_p99_ms_during=health_during,
            stalled=64, closed=len(closed_after), read_timeout_s=self.args.read_timeout,
            closed_after_s_max=max(closed_after, default=None), bar=BARS["stall"],
            meets_bar=len(closed_after) == 64 and embed_during <= 1.5 * embed_before + 5,
        )  # fmt: skip

    def part_kill(self) -> None:
        import psutil

        server = self.server("kill")
        stop = threading.Event()
        failures = Counter[str]()

        def load(k: int) -> None:
            while not stop.is_set():
                try:
                    conn = http.client.HTTPConnection(HOST, server.port, timeout=5)
                    post(conn, one_text(self.short[k]))
                    conn.close()
                except (OSError, http.client.HTTPException) as err:  # in flight on the worker
                    failures[type(err).__name__] += 1
                    time.sleep(0.01)

        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0)
            assert server.proc is not None
            (worker,) = psutil.Process(server.proc.pid).children()
            os.kill(worker.pid, signal.SIGKILL)
            killed = time.monotonic()
            while True:
                try:
                    conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
                    if post(conn, one_text("back again"))[0] == 200:
                        break
                except (OSError, http.client.HTTPException):
                    time.sleep(0.02)
            resumed_s = time.monotonic() - killed
        finally:
            stop.set()
            for t in threads:
                t.join()
            server.stop(30)
        self.record(
            part="kill", resumed_s=resumed_s, client_failures=dict(failures),
            bar=BARS["kill"], meets_bar=resumed_s <= 5,
        )  # fmt: skip

    def part_soak(self) -> None:
        bad = [
            (b"{not json", "application/json"),
            (b'{"texts": ["a"]}', "text/plain"),
            (json.dumps({"texts": ["ok", " "]}).encode(), "application/json"),
            (json.dumps({"texts": ["x"] * 257}).encode(), "application/json"),
            (json.dumps({"texts": ["x" * 20_001]}).encode(), "application/json"),
            (b'{"texts": ["' + b"y" * (5 * 2**20) + b'"]}', "application/json"),
        ]
        server = self.server("soak")
        counts: Counter[str] = Counter()
        rss: list[tuple[float, float]] = []
        lock = threading.Lock()
        start = time.monotonic()
        stop_at = start + self.args.soak_seconds

        def work(k: int) -> None:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
            rng, i = random.Random(common.SEED + k), k
            while time.monotonic() < stop_at:
                i += 16
                if rng.random() < 0.2:
                    body, content_type = bad[i % len(bad)]
                    try:
                        status = post(conn, body, content_type)[0]
                    except (ConnectionError, http.client.HTTPException):
                        conn.close()  # refused a body over the limit, then closed: fine
                        status = 413
                    key = "bad_5xx" if status >= 500 else f"bad_{status}"
                else:
                    status = post(conn, one_text(self.short[i % len(self.short)]))[0]
                    key = "valid_ok" if status == 200 else f"valid_error_{status}"
                with lock:
                    counts[key] += 1
            conn.close()

        sampler_done = threading.Event()

        def sample() -> None:
            while not sampler_done.wait(max(1.0, self.args.soak_seconds / 30)):
                rss.append((time.monotonic() - start, server.memory()["rss_workers_mb"]))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            clients(16, work)
        finally:
            sampler_done.set()
            sampler.join()
            server.stop(30)
        minutes = np.array([t for t, _ in rss]) / 60
        mb = np.array([m for _, m in rss])
        half = minutes >= minutes[-1] / 2 if len(rss) else minutes
        slope = float(np.polyfit(minutes[half], mb[half], 1)[0]) if half.sum() >= 2 else None
        valid_errors = sum(v for k, v in counts.items() if k.startswith("valid_error"))
        self.record(
            part="soak", seconds=self.args.soak_seconds, counts=dict(counts),
            valid_errors=valid_errors, server_5xx=counts["bad_5xx"], rss_max_mb=float(mb.max()),
            rss_slope_mb_per_min=slope, bar=BARS["soak"],
            meets_bar=not valid_errors and not counts["bad_5xx"]
            and (slope is None or slope <= 1.0),
        )  # fmt: skip

    def run(self) -> None:
        for part in self.args.parts:
            print(f"[{part}]", file=sys.stderr)
            getattr(self, f"part_{part}")()


SHOWN = {
    "stages": ("core_ms_per_request",),
    "engine": ("requests_per_s", "share_of_library_batched", "share_of_library_batch16",
               "latency_ms_p50", "latency_ms_p99", "library_texts_per_s_batched",
               "library_texts_per_s_batch16", "server_core_ms_per_request", "texts_per_run",
               "stage_ms_per_request", "http_server_and_contention_core_ms"),
    "flood": ("statuses", "without_retry_after", "slowest_s", "recovered_s"),
    "stall": ("embed_p99_ms_before", "embed_p99_ms_during", "healthz_p99_ms_before",
              "healthz_p99_ms_during", "closed", "closed_after_s_max"),
    "kill": ("resumed_s", "client_failures"),
    "soak": ("counts", "valid_errors", "server_5xx", "rss_max_mb", "rss_slope_mb_per_min"),
}  # fmt: skip


def _short(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    return value


def render(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        shown = {k: _short(r[k]) for k in SHOWN[r["part"]] if k in r}
        rows.append([r["part"], json.dumps(shown), r["bar"], r["meets_bar"]])
    return common.markdown_table(["part", "figures", "bar", "meets"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.warn_if_busy(bench_server.onnx_threads())
    bench = Bench(args)
    try:
        bench.run()
    finally:
        if bench.records:
            common.finish(args.out, bench.records, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
