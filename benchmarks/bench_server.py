"""Server: throughput, micro-batching, latency, start-up and memory, loopback only.

Runs ``featx serve`` (gunicorn, the default settings unless named) on 127.0.0.1 with a
free port, against the default model's artifact (int8), and measures from this process:

- ``ready``: seconds from spawning ``featx serve`` to the first 200 from ``GET /readyz``
  (median of ``--start-repeats`` fresh servers); also the first embedding, the idle RSS
  and the seconds from SIGTERM to exit.
- ``embed64``: texts/s of ``POST /embed`` with 64 short texts per request, sequential
  requests from one keep-alive ``http.client`` connection (JSON out and back to a numpy
  array included), against ``encoder.encode`` of the same 64-text batches in this
  process (``featx.load(artifact, threads=<the server's ONNX threads>)``), passes
  interleaved, ``--repeats`` of each, the median; ratio = server / library (bar >= 0.8).
- ``concurrent``: 16 client threads, each with its own keep-alive connection, each
  sending ``--requests-per-client`` requests of one short text; requests/s and latency
  p50/p99 with micro-batching on (the default) and on a second server started with
  ``--no-batching``; ratio of requests/s (bar >= 2) and both p99s (bar: batching lower).
  The mean texts per encoder run comes from the server's ``/metrics``.
- ``single``: latency p50/p95 of one short text per request, sequential, on both
  servers (bar for the default server: p50 <= 10 ms).
- ``soak``: a fresh server; ``--soak-clients`` threads send ``--soak-batch`` texts per
  request (2 % mixed-length, ``--soak-mixed``; the rest short) continuously for
  ``--soak-seconds`` and until ``--soak-texts`` texts were embedded (at most
  ``--soak-max-seconds``); the RSS (and PSS) of the gunicorn worker process(es) (psutil,
  the server's process tree) every ``--soak-interval`` s (at most a sixth of the soak):
  max (bar <= 500 MB) and the least-squares slope over the second half, MB/min (no
  growth trend: bar <= 1 MB/min).

Before anything is timed on a server, its vectors for a few texts (one request) must
match the library's for the same batch (cosine >= 0.999: int8 quantises activations per
batch, so the same texts in a different batch differ slightly; that difference is
recorded too). Server output goes to a log file; every server is stopped at the end
(SIGTERM, then SIGKILL after ``--stop-timeout`` s). Appends one JSON line per
measurement to ``benchmarks/results/bench_server.jsonl`` and prints a Markdown table.

    python benchmarks/bench_server.py                      # everything (idle machine!)
    python benchmarks/bench_server.py --start-repeats 1 --n-batches 4 --requests-per-client 5 \\
        --single 20 --soak-seconds 5 --soak-texts 200 --stop-timeout 3   # smoke, < 60 s
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

PARTS = ("ready", "embed64", "concurrent", "single", "soak")
HOST = "127.0.0.1"
MODEL_NAME = "minilm"
BATCH = 64  # texts per request in embed64 (the server's micro-batch size, too)
CLIENTS = 16  # concurrent clients (the server's default gthread threads)
AGREE_COSINE = 0.999  # same texts, same batch: server vs library
COALESCED_COSINE = 0.98  # a text batched with other clients' texts vs alone (sanity)
AGREE_TEXTS = 8
SOAK_POOL = 5000  # distinct texts the soak clients cycle through
BARS = {
    "embed64": "ratio >= 0.8",
    "concurrent": "req/s >= 2x no-batching; p99 lower",
    "single": "p50 <= 10 ms",
    "soak": "max RSS <= 500 MB; 2nd-half slope <= 1 MB/min",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_data_args(parser)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--start-repeats", type=int, default=3, help="fresh servers for ready")
    parser.add_argument("--n-batches", type=int, default=64, help="64-text requests per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of embed64")
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests before timing")
    parser.add_argument("--requests-per-client", type=int, default=100)
    parser.add_argument("--single", type=int, default=500, help="sequential 1-text requests")
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--soak-texts", type=int, default=100_000)
    parser.add_argument("--soak-max-seconds", type=float, default=900.0, help="hard stop")
    parser.add_argument(
        "--soak-interval", type=float, default=10.0, help="RSS sampling, s (<= soak/6)"
    )
    parser.add_argument("--soak-clients", type=int, default=8)
    parser.add_argument("--soak-batch", type=int, default=8, help="texts per soak request")
    parser.add_argument(
        "--soak-mixed", type=float, default=0.02, help="fraction of mixed-length soak texts"
    )
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0, help="SIGTERM, then kill")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs")
    common.add_out_arg(parser, "bench_server")
    args = parser.parse_args(argv)
    common.require_at_least_one(
        parser,
        args,
        ("start_repeats", "n_batches", "repeats", "requests_per_client", "single")
        + ("soak_clients", "soak_batch", "soak_texts"),
    )
    if args.warmup < 0 or args.soak_seconds <= 0 or args.soak_interval <= 0:
        parser.error("--warmup must be >= 0; --soak-seconds and --soak-interval > 0")
    if not 0 <= args.soak_mixed <= 1:
        parser.error("--soak-mixed must be in [0, 1]")
    args.parts = list(dict.fromkeys(args.parts))
    return args


def onnx_threads() -> int:
    """What ``featx serve`` gives ONNX Runtime with one worker: every usable core."""
    from featx.environment import available_cpus

    return max(1, available_cpus())


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """One ``featx serve`` process tree: spawned, polled until ready, measured, stopped."""

    def __init__(
        self,
        artifact: Path,
        log_dir: Path,
        label: str,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ):
        self.artifact = artifact
        self.label = label
        self.extra = list(extra)
        self.env = dict(env or {})  # settings for this server (FEATX_*), on top of ours
        self.log_path = log_dir / f"{label}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.spawned_ns = 0

    @property
    def command(self) -> list[str]:
        featx = str(Path(sys.executable).parent / "featx")
        return [featx, "serve", f"{MODEL_NAME}={self.artifact}", "--host", HOST,
                "--port", str(self.port), *self.extra]  # fmt: skip

    def start(self, timeout: float) -> float:
        """Spawn the server and wait for the first 200 from /readyz; seconds since spawn."""
        for _attempt in range(3):  # the free port can be taken before gunicorn binds it
            self.port = free_port()
            env = {**os.environ, "HF_HUB_OFFLINE": "1", **self.env}
            with open(self.log_path, "ab") as log:
                log.write(f"$ {' '.join(self.command)}\n".encode())
                log.flush()
                self.spawned_ns = time.perf_counter_ns()
                self.proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group, killed as one
                )
            ready = self._wait_ready(timeout)
            if ready is not None:
                return ready
            self.stop(timeout=5)
            if "Address already in use" not in self.log_tail():
                break
        raise RuntimeError(f"{self.label} server did not become ready:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> float | None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return None
            conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
            try:
                conn.request("GET", "/readyz")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return (time.perf_counter_ns() - self.spawned_ns) / 1e9
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.01)
        return None

    def stop(self, timeout: float) -> tuple[float, bool]:
        """SIGTERM the master, wait, then SIGKILL the group: (seconds to exit, killed)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0.0, False
        start = time.perf_counter()
        killed = False
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
        seconds = time.perf_counter() - start
        try:  # workers that outlived their master, or the master itself on a timeout
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        return seconds, killed

    def memory(self) -> dict[str, float]:
        """MB: RSS and PSS of the worker processes (the master's children, summed), RSS of
        the whole tree (master included), and the number of workers."""
        import psutil

        assert self.proc is not None
        master = psutil.Process(self.proc.pid)
        rss = pss = 0
        children = master.children(recursive=True)
        for child in children:
            try:
                info = child.memory_full_info()  # reads smaps: pss shares pages fairly
            except psutil.NoSuchProcess:
                continue
            rss += info.rss
            pss += getattr(info, "pss", 0)
        return {
            "rss_workers_mb": round(rss / 2**20, 2),
            "pss_workers_mb": round(pss / 2**20, 2),
            "rss_tree_mb": round((rss + master.memory_info().rss) / 2**20, 2),
            "worker_processes": len(children),
        }

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the master and its workers."""
        import psutil

        assert self.proc is not None
        master = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [master, *master.children(recursive=True)]:
            try:
                times = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""


class Client:
    """One keep-alive HTTP/1.1 connection (``http.client``) to the server."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.reconnects = 0
        self.decode_ns = 0

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {} if body is None else {"Content-Type": "application/json"}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle kept-alive connection: open a new one, once.
                self.conn.close()
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """POST /embed; the vectors as an array (``decode_ns``: time spent decoding them)."""
        status, body = self.request("POST", "/embed", {"texts": list(texts)})
        if status != 200:
            raise RuntimeError(f"POST /embed answered {status}: {body[:500]!r}")
        start = time.perf_counter_ns()
        vectors = np.asarray(json.loads(body)["embeddings"], dtype=np.float32)
        self.decode_ns = time.perf_counter_ns() - start
        return vectors

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus samples: ``name{labels}`` -> value."""
        status, body = self.request("GET", "/metrics")
        values: dict[str, float] = {}
        if status == 200:
            for line in body.decode("utf-8", errors="replace").splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    try:
                        values[name] = float(value)
                    except ValueError:
                        pass
        return values

    def close(self) -> None:
        self.conn.close()


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


BATCH_SUM, BATCH_COUNT = "featx_batch_size_sum", "featx_batch_size_count"
EMBED_LATENCY_SUM = 'featx_request_latency_seconds_sum{endpoint="/embed"}'
EMBED_LATENCY_COUNT = 'featx_request_latency_seconds_count{endpoint="/embed"}'


# --------------------------------------------------------------------------- benchmark


class Bench(common.Run):
    """One run: the encoder in this process, workloads, the servers and the records."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.artifact, artifact_status = common.ensure_artifact(args.artifact.resolve())
        self.threads = onnx_threads()
        self.log_dir = Path(tempfile.mkdtemp(prefix="featx-bench-server-"))
        sentences = common.sst2_sentences(args.data)
        n_short = max(args.n_batches * BATCH, CLIENTS * args.requests_per_client, args.single)
        self.short = common.short_workload(sentences, max(n_short, SOAK_POOL))
        self._encoder: Any = None
        settings = {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "data", "artifact")
        } | {"onnx_threads": self.threads, "server": "featx serve (gunicorn gthread)"}
        base = common.base_record(
            "server",
            threads=self.threads,
            settings=settings,
            artifact=self.artifact,
            artifact_status=artifact_status,
        )
        super().__init__(args, base)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            import featx

            self._encoder = featx.load(self.artifact, threads=self.threads)
        return self._encoder

    def library(self, texts: Sequence[str]) -> np.ndarray:
        import featx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", featx.TruncationWarning)
            return np.asarray(self.encoder.encode(list(texts)), dtype=np.float32)

    def summary(self, fields: dict[str, Any]) -> str:
        keys = [k for k, v in fields.items() if isinstance(v, float)][:6]
        figures = ", ".join(f"{k}={fields[k]:.4g}" for k in keys)
        return f"{fields['part']}/{fields['config']}: {figures}"

    def server(self, label: str, extra: Sequence[str] = ()) -> Server:
        return Server(self.artifact, self.log_dir, label, extra)

    def check_agreement(self, server: Server) -> float:
        """The server's vectors for a few texts equal the library's (same batch)."""
        texts = self.short[-AGREE_TEXTS:]
        client = Client(server.port)
        try:
            got = client.embed(texts)
        finally:
            client.close()
        cos = float(common.cosines(got, self.library(texts)).min())
        if cos < AGREE_COSINE:
            raise RuntimeError(
                f"{server.label} server disagrees with the library: min cosine {cos:.6f} "
                f"< {AGREE_COSINE} on the same {len(texts)}-text batch"
            )
        return cos

    # ---------------------------------------------------------------- parts

    def part_ready(self) -> None:
        readies, firsts, stops, killed, rss = [], [], [], [], []
        for i in range(self.args.start_repeats):
            server = self.server(f"ready-{i}")
            try:
                readies.append(server.start(self.args.start_timeout))
                client = Client(server.port)
                client.embed(["A man is playing a guitar."])
                firsts.append((time.perf_counter_ns() - server.spawned_ns) / 1e9)
                client.close()
                rss.append(server.memory()["rss_workers_mb"])
            finally:
                seconds, was_killed = server.stop(self.args.stop_timeout)
            stops.append(seconds)
            killed.append(was_killed)
        self.record(
            part="ready",
            config="batching",
            ready_s_median=common.median(readies),
            ready_s_all=readies,
            first_embedding_s_median=common.median(firsts),
            rss_idle_mb_median=common.median(rss),
            stop_s_median=common.median(stops),
            stop_s_all=stops,
            stop_killed=killed,
        )

    def part_embed64(self, server: Server, cosine_agree: float) -> None:
        n = self.args.n_batches
        batches = [self.short[i * BATCH : (i + 1) * BATCH] for i in range(n)]
        client = Client(server.port)
        try:
            got = client.embed(batches[0])
            cos = float(common.cosines(got, self.library(batches[0])).min())
            if cos < AGREE_COSINE:
                raise RuntimeError(f"embed64: server vs library min cosine {cos:.6f}")
            for i in range(self.args.warmup):
                client.embed(batches[i % n])
                self.library(batches[i % n])
            server_rates, library_rates, latencies, decode = [], [], [], []
            before = client.metrics()
            for _ in range(self.args.repeats):  # interleaved passes: library, then server
                start = time.perf_counter_ns()
                for batch in batches:
                    self.library(batch)
                library_rates.append(n * BATCH / ((time.perf_counter_ns() - start) / 1e9))
                start = time.perf_counter_ns()
                for batch in batches:
                    t0 = time.perf_counter_ns()
                    client.embed(batch)
                    latencies.append((time.perf_counter_ns() - t0) / 1e6)
                    decode.append(client.decode_ns / 1e6)
                server_rates.append(n * BATCH / ((time.perf_counter_ns() - start) / 1e9))
            after = client.metrics()
            size = len(client.request("POST", "/embed", {"texts": batches[0]})[1])
        finally:
            client.close()
        server_rate, library_rate = common.median(server_rates), common.median(library_rates)
        ratio = server_rate / library_rate
        self.record(
            part="embed64",
            config="batching",
            n_requests=n,
            texts_per_request=BATCH,
            server_texts_per_s=server_rate,
            library_texts_per_s=library_rate,
            ratio=ratio,
            server_texts_per_s_all=server_rates,
            library_texts_per_s_all=library_rates,
            latency_ms_p50=common.median(latencies),
            latency_ms_p95=common.p95(latencies),
            server_side_ms_mean=1000
            * delta(before, after, EMBED_LATENCY_SUM)
            / max(delta(before, after, EMBED_LATENCY_COUNT), 1),
            library_ms_per_batch=1000 * BATCH / library_rate,
            client_decode_ms_p50=common.median(decode),
            response_kb=size / 1024,
            cosine_min=min(cos, cosine_agree),
            reconnects=client.reconnects,
            bar=BARS["embed64"],
            meets_bar=ratio >= 0.8,
        )

    def part_concurrent(self, server: Server, config: str, cosine_agree: float) -> None:
        rpc = self.args.requests_per_client
        barrier = threading.Barrier(CLIENTS + 1)
        latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
        samples: dict[int, np.ndarray] = {}
        errors: list[str] = []
        reconnects = [0] * CLIENTS

        def worker(k: int) -> None:
            client = Client(server.port)
            texts = self.short[k * rpc : (k + 1) * rpc]
            try:
                for i in range(min(2, self.args.warmup)):
                    client.embed([texts[i % rpc]])
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(f"client {k} warm-up: {type(exc).__name__}: {exc}")
            barrier.wait()
            try:
                for i, text in enumerate(texts):
                    t0 = time.perf_counter_ns()
                    vec = client.embed([text])
                    latencies[k].append((time.perf_counter_ns() - t0) / 1e6)
                    if i < 2:
                        samples[k * rpc + i] = vec[0]
            except Exception as exc:  # noqa: BLE001
                errors.append(f"client {k}: {type(exc).__name__}: {exc}")
            finally:
                reconnects[k] = client.reconnects
                client.close()

        probe = Client(server.port)
        before = probe.metrics()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter_ns()
        cpu_server, cpu_client = server.cpu_s(), time.process_time()
        for t in threads:
            t.join()
        wall = (time.perf_counter_ns() - start) / 1e9
        cpu_server, cpu_client = server.cpu_s() - cpu_server, time.process_time() - cpu_client
        after = probe.metrics()
        probe.close()
        if errors:
            raise RuntimeError(f"concurrent ({config}) failed: {errors[:3]}")
        flat = [x for lat in latencies for x in lat]
        idx = sorted(samples)
        alone = self.library_each([self.short[i] for i in idx])
        cos = float(common.cosines(np.vstack([samples[i] for i in idx]), alone).min())
        if cos < COALESCED_COSINE:
            raise RuntimeError(f"concurrent ({config}): min cosine {cos:.4f} vs the library")
        runs = delta(before, after, BATCH_COUNT)
        self.record(
            part="concurrent",
            config=config,
            clients=CLIENTS,
            requests_per_client=rpc,
            n_requests=len(flat),
            wall_s=wall,
            requests_per_s=len(flat) / wall,
            latency_ms_p50=common.median(flat),
            latency_ms_p95=common.p95(flat),
            latency_ms_p99=float(np.percentile(flat, 99)),
            latency_ms_max=max(flat),
            encoder_runs=runs if runs > 0 else None,
            texts_per_encoder_run=delta(before, after, BATCH_SUM) / runs if runs > 0 else None,
            cosine_min_same_batch=cosine_agree,
            cosine_min_vs_alone=cos,
            server_cpu_s=cpu_server,
            client_cpu_s=cpu_client,
            cores_busy=(cpu_server + cpu_client) / wall,
            reconnects=sum(reconnects),
        )

    def library_each(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.library([t]) for t in texts])

    def part_single(self, server: Server, config: str) -> None:
        texts = self.short[: self.args.single]
        client = Client(server.port)
        latencies = []
        try:
            for i in range(max(self.args.warmup, 1)):
                client.embed([texts[i % len(texts)]])
            for text in texts:
                t0 = time.perf_counter_ns()
                client.embed([text])
                latencies.append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            client.close()
        p50 = common.median(latencies)
        self.record(
            part="single",
            config=config,
            n_requests=len(latencies),
            latency_ms_p50=p50,
            latency_ms_p95=common.p95(latencies),
            latency_ms_p99=float(np.percentile(latencies, 99)),
            reconnects=client.reconnects,
            bar=BARS["single"] if config == "batching" else None,
            meets_bar=p50 <= 10.0 if config == "batching" else None,
        )

    def part_soak(self) -> None:
        args = self.args
        rng = np.random.default_rng(common.SEED)
        n_mixed = round(SOAK_POOL * args.soak_mixed)
        sentences = common.sst2_sentences(args.data)
        pool = self.short[: SOAK_POOL - n_mixed] + common.mixed_workload(sentences, n_mixed)
        pool = [pool[i] for i in rng.permutation(len(pool))]
        interval = min(args.soak_interval, args.soak_seconds / 6)
        stop = threading.Event()
        lock = threading.Lock()
        done = {"texts": 0, "requests": 0}
        latencies: list[float] = []
        errors: list[str] = []

        server = self.server("soak")
        try:
            server.start(args.start_timeout)
            cos = self.check_agreement(server)
            rss_ready = server.memory()["rss_workers_mb"]

            def worker(k: int) -> None:
                client = Client(server.port)
                pos = (k * len(pool)) // args.soak_clients
                try:
                    while not stop.is_set():
                        texts = [pool[(pos + j) % len(pool)] for j in range(args.soak_batch)]
                        pos += args.soak_batch
                        t0 = time.perf_counter_ns()
                        client.embed(texts)
                        ms = (time.perf_counter_ns() - t0) / 1e6
                        with lock:
                            done["texts"] += len(texts)
                            done["requests"] += 1
                            latencies.append(ms)
                except Exception as exc:  # noqa: BLE001 - reported by the main thread
                    errors.append(f"client {k}: {type(exc).__name__}: {exc}")
                    stop.set()
                finally:
                    client.close()

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.soak_clients)]
            start = time.monotonic()
            samples: list[dict[str, float]] = []

            def sample() -> None:
                t_s = round(time.monotonic() - start, 3)
                memory = server.memory()
                with lock:
                    texts = done["texts"]
                samples.append({"t_s": t_s, "texts": texts, **memory})

            sample()
            cpu_server, cpu_client = server.cpu_s(), time.process_time()
            for t in threads:
                t.start()
            next_at = start + interval
            while not stop.is_set():
                now = time.monotonic()
                with lock:
                    texts_done = done["texts"]
                enough = now - start >= args.soak_seconds and texts_done >= args.soak_texts
                if enough or now - start >= args.soak_max_seconds:
                    break
                time.sleep(min(0.25, max(0.0, next_at - now)))
                if time.monotonic() >= next_at:
                    sample()
                    next_at += interval
            stop.set()
            for t in threads:
                t.join()
            duration = time.monotonic() - start
            cpu_server, cpu_client = server.cpu_s() - cpu_server, time.process_time() - cpu_client
            sample()
        finally:
            server.stop(args.stop_timeout)
        if errors:
            raise RuntimeError(f"soak failed: {errors[:3]}")
        rss = np.array([s["rss_workers_mb"] for s in samples])
        t_min = np.array([s["t_s"] for s in samples]) / 60
        half = t_min >= t_min[-1] / 2
        slope = float(np.polyfit(t_min[half], rss[half], 1)[0]) if half.sum() >= 2 else None
        max_rss = float(rss.max())
        self.record(
            part="soak",
            config="batching",
            clients=args.soak_clients,
            texts_per_request=args.soak_batch,
            seconds=duration,
            n_texts=done["texts"],
            n_requests=done["requests"],
            target_reached=duration >= args.soak_seconds and done["texts"] >= args.soak_texts,
            texts_per_s=done["texts"] / duration,
            latency_ms_p50=common.median(latencies),
            latency_ms_p99=float(np.percentile(latencies, 99)),
            rss_ready_mb=rss_ready,
            rss_max_mb=max_rss,
            rss_first_mb=float(rss[0]),
            rss_last_mb=float(rss[-1]),
            rss_slope_mb_per_min_second_half=slope,
            pss_max_mb=max(s["pss_workers_mb"] for s in samples),
            server_cpu_s=cpu_server,
            client_cpu_s=cpu_client,
            rss_samples=samples,
            cosine_min_same_batch=cos,
            bar=BARS["soak"],
            meets_bar=max_rss <= 500 and slope is not None and slope <= 1.0,
        )

    # ---------------------------------------------------------------- driver

    def run(self) -> None:
        parts = self.args.parts
        if "ready" in parts:
            print("[ready]", file=sys.stderr)
            self.part_ready()
        configs = [("batching", ())]
        if "concurrent" in parts or "single" in parts:
            configs.append(("no-batching", ("--no-batching",)))
        if any(p in parts for p in ("embed64", "concurrent", "single")):
            for config, extra in configs:
                server = self.server(config, extra)
                try:
                    print(f"[{config} server]", file=sys.stderr)
                    server.start(self.args.start_timeout)
                    cos = self.check_agreement(server)
                    if "embed64" in parts and config == "batching":
                        self.part_embed64(server, cos)
                    if "concurrent" in parts:
                        self.part_concurrent(server, config, cos)
                    if "single" in parts:
                        self.part_single(server, config)
                finally:
                    server.stop(self.args.stop_timeout)
            self.compare_concurrent()
        if "soak" in parts:
            print("[soak]", file=sys.stderr)
            self.part_soak()

    def compare_concurrent(self) -> None:
        by = {r["config"]: r for r in self.records if r["part"] == "concurrent"}
        if {"batching", "no-batching"} <= set(by):
            on, off = by["batching"], by["no-batching"]
            ratio = on["requests_per_s"] / off["requests_per_s"]
            lower = on["latency_ms_p99"] < off["latency_ms_p99"]
            on.update(
                ratio_vs_no_batching=ratio,
                p99_lower_than_no_batching=lower,
                bar=BARS["concurrent"],
                meets_bar=ratio >= 2 and lower,
                **self.batching_ceiling(),
            )

    def batching_ceiling(self, n_texts: int = 256) -> dict[str, float]:
        """What batching can gain at most here: the library's texts/s embedding the short
        texts 16 at a time (all 16 clients coalesced) over one at a time, interleaved."""
        texts = self.short[:n_texts]
        rates: dict[int, list[float]] = {1: [], 16: []}
        self.library(texts[:16])  # warm-up
        for _ in range(3):
            for size in rates:
                start = time.perf_counter_ns()
                for i in range(0, len(texts), size):
                    self.library(texts[i : i + size])
                rates[size].append(len(texts) / ((time.perf_counter_ns() - start) / 1e9))
        one, sixteen = common.median(rates[1]), common.median(rates[16])
        return {
            "library_texts_per_s_batch1": one,
            "library_texts_per_s_batch16": sixteen,
            "encoder_batching_ceiling": sixteen / one,
        }


def render(records: list[dict[str, Any]]) -> str:
    """One Markdown table of the run."""
    f = common.fmt
    rows = []
    for r in records:
        part, figures = r["part"], ""
        if part == "ready":
            figures = (
                f"ready {f(r['ready_s_median'], '.2f', ' s')} (median of "
                f"{len(r['ready_s_all'])}); first embedding "
                f"{f(r['first_embedding_s_median'], '.2f', ' s')}; idle worker RSS "
                f"{f(r['rss_idle_mb_median'], '.0f', ' MB')}; SIGTERM to exit "
                f"{f(r['stop_s_median'], '.1f', ' s')}"
            )
        elif part == "embed64":
            figures = (
                f"server {r['server_texts_per_s']:.0f} texts/s vs library "
                f"{r['library_texts_per_s']:.0f} texts/s: ratio **{r['ratio']:.2f}**; per "
                f"request p50 {r['latency_ms_p50']:.1f} ms (server-side "
                f"{r['server_side_ms_mean']:.1f}, library {r['library_ms_per_batch']:.1f}, "
                f"client JSON decode {r['client_decode_ms_p50']:.1f})"
            )
        elif part == "concurrent":
            figures = (
                f"{r['requests_per_s']:.0f} req/s, p50 {r['latency_ms_p50']:.1f} ms, "
                f"p99 {r['latency_ms_p99']:.1f} ms; "
                f"{f(r.get('texts_per_encoder_run'), '.1f')} texts per encoder run"
            )
            figures += f"; {r['cores_busy']:.1f} cores busy (server + client)"
            if "ratio_vs_no_batching" in r:
                figures += f"; **{r['ratio_vs_no_batching']:.2f}x** no-batching req/s"
                figures += (
                    f" (the encoder alone gains {r['encoder_batching_ceiling']:.2f}x from "
                    "batches of 16 over single texts)"
                )
        elif part == "single":
            figures = f"p50 **{r['latency_ms_p50']:.1f} ms**, p95 {r['latency_ms_p95']:.1f} ms"
        elif part == "soak":
            figures = (
                f"{r['n_texts']:,} texts in {r['seconds']:.0f} s ({r['texts_per_s']:.0f}/s); "
                f"worker RSS max **{r['rss_max_mb']:.0f} MB** (ready {r['rss_ready_mb']:.0f}, "
                f"PSS max {r['pss_max_mb']:.0f}); "
                f"slope {f(r['rss_slope_mb_per_min_second_half'], '+.2f')} MB/min "
                f"({len(r['rss_samples'])} samples)"
            )
        meets = r.get("meets_bar")
        rows.append(
            [part, r["config"], figures, r.get("bar") or "", "" if meets is None else meets]
        )
    return common.markdown_table(["part", "config", "figures", "bar", "meets"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.warn_if_busy(onnx_threads())
    bench = Bench(args)
    ok = False
    try:
        bench.run()
        ok = True
    finally:
        if bench.records:
            common.finish(args.out, bench.records, render)
        if ok and not args.keep_logs:
            shutil.rmtree(bench.log_dir, ignore_errors=True)
        else:
            print(f"server logs: {bench.log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
