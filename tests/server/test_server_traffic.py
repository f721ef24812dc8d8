"""The server under real traffic: backpressure, slow and broken clients, faults, key rotation.

The micro-batcher's queue is tested on its own with a real (slow) run function; the rest
runs the real server (``featx serve``: gunicorn's master, waitress's I/O loop) on loopback.
"""

import json
import os
import select
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_server import post_embed, start_server, stop

from featx.encoders.base import EncodeResult
from featx.errors import ArtifactIntegrityError
from server import create_app
from server.batching import MicroBatcher, Overloaded


def _slow_run(delay, runs):
    def run(texts):
        runs.append(list(texts))
        time.sleep(delay)
        vectors = np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
        n = np.full(len(texts), 3, dtype=np.int64)
        seconds = {"tokenize": 0.0, "inference": delay}
        return EncodeResult(vectors, n, np.zeros(len(texts), bool), np.ones_like(n), seconds)

    return run


def test_a_full_queue_refuses_at_once_with_a_retry_delay():
    runs = []
    batcher = MicroBatcher(_slow_run(0.3, runs), max_texts=4, max_queue_texts=6)
    first = threading.Thread(target=batcher.submit, args=(["a"] * 4, 10))
    first.start()
    time.sleep(0.05)  # running now; the queue is empty again
    second = threading.Thread(target=batcher.submit, args=(["b"] * 6, 10))
    second.start()
    time.sleep(0.05)  # queued: 6 of 6 texts
    started = time.monotonic()
    with pytest.raises(Overloaded, match="6 texts queued, limit 6") as refused:
        batcher.submit(["c"], timeout=10)
    assert time.monotonic() - started < 0.05  # refused at once, not after waiting
    assert refused.value.retry_after_s >= 1
    first.join()
    second.join()
    assert batcher.submit(["d"], timeout=10).embeddings.shape == (1, 2)  # drained: room again


def test_a_request_larger_than_a_batch_is_split_and_kept_in_order():
    runs = []
    batcher = MicroBatcher(_slow_run(0.0, runs), max_texts=4, max_queue_texts=16)
    texts = ["x" * i for i in range(1, 11)]
    result = batcher.submit(texts, timeout=10)
    assert [len(r) for r in runs] == [4, 4, 2]
    assert result.embeddings[:, 0].tolist() == [float(i) for i in range(1, 11)]
    assert result.n_tokens.shape == (10,) and result.seconds["queue"] >= 0
    assert result.seconds["inference"] == 0.0


def test_a_request_past_its_timeout_leaves_the_queue_and_never_runs():
    runs = []
    batcher = MicroBatcher(_slow_run(0.5, runs), max_texts=2, max_queue_texts=8)
    busy = threading.Thread(target=batcher.submit, args=(["busy"], 10))
    busy.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="not ready within 0.1 s"):
        batcher.submit(["late"], timeout=0.1)
    assert time.monotonic() - started < 0.3  # it did not wait for the busy run
    busy.join()
    time.sleep(0.1)
    assert ["late"] not in runs  # left the queue: nothing ran for a client told to retry


def test_the_app_answers_429_with_retry_after_then_serves_again(tiny_artifacts):
    app = create_app(
        {
            "MODELS": {"tiny": str(tiny_artifacts["bert"])},
            "MAX_TEXTS": 4,
            "MAX_QUEUE_TEXTS": 4,
            "RUNNERS": 1,  # one batch at a time: the second request waits in the queue
        }
    )
    batcher = app.extensions["featx_models"]["tiny"].batcher
    real_run = batcher.run
    batcher.run = lambda texts: (time.sleep(0.4), real_run(texts))[1]  # a long batch
    client = app.test_client()
    threads = [
        threading.Thread(
            target=client.post, args=("/embed",), kwargs={"json": {"texts": ["a"] * 4}}
        )
        for _ in range(2)
    ]  # one runs, one fills the queue
    for t in threads:
        t.start()
        time.sleep(0.1)
    refused = client.post("/embed", json={"texts": ["b"]})
    assert refused.status_code == 429, refused.get_json()
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["error"]["type"] == "rate_limit_error"
    busy = client.get("/readyz")  # a load balancer should send traffic elsewhere meanwhile
    assert busy.status_code == 503 and "at capacity" in busy.get_json()["error"]["message"]
    for t in threads:
        t.join()
    batcher.run = real_run
    ok = client.post("/embed", json={"texts": ["b"]})
    assert ok.status_code == 200 and client.get("/readyz").status_code == 200
    for header in ("X-Queue-Time", "X-Tokenization-Time", "X-Inference-Time", "X-Total-Time"):
        assert float(ok.headers[header]) >= 0, header
    metrics = client.get("/metrics").get_data(as_text=True)
    for name in (
        "featx_batch_tokens_bucket",
        'featx_stage_seconds_bucket{le="0.001",stage="queue"',
    ):
        assert name in metrics, name
    assert 'featx_errors_total{endpoint="/embed",type="rate_limit_error"} 1.0' in metrics


def test_a_draining_worker_is_not_ready(tiny_artifacts):
    app = create_app({"MODELS": {"tiny": str(tiny_artifacts["bert"])}})
    client = app.test_client()
    assert client.get("/readyz").get_json() == {"status": "ready", "models": ["tiny"]}
    app.extensions["featx_draining"].set()  # what the worker does on SIGTERM
    response = client.get("/readyz")
    assert (
        response.status_code == 503 and "shutting down" in response.get_json()["error"]["message"]
    )


def test_keys_rotate_by_rewriting_the_key_file_and_probes_stay_open(tiny_artifacts, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("old-key\n")
    app = create_app({"MODELS": {"tiny": str(tiny_artifacts["bert"])}, "API_KEYS_FILE": str(keys)})
    client = app.test_client()

    def status(key):
        headers = {"Authorization": f"Bearer {key}"}
        return client.post("/embed", json={"texts": ["a"]}, headers=headers).status_code

    assert status("old-key") == 200 and status("new-key") == 401
    staged = tmp_path / "keys.txt.new"
    staged.write_text("# rotated\nnew-key\nsecond-key\n")
    os.replace(staged, keys)  # atomic, as the docs say
    time.sleep(1.1)  # the file is checked at most once a second
    assert status("new-key") == 200 and status("second-key") == 200
    assert status("old-key") == 401
    keys.write_text("")  # an emptied file locks the server, never opens it
    time.sleep(1.1)
    assert status("new-key") == 401 and status("") == 401
    for probe in ("/healthz", "/readyz"):  # Kubernetes probes send no key
        assert client.get(probe).status_code == 200, probe


def test_a_damaged_graph_of_a_precision_not_served_is_refused_at_start(tiny_artifacts, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_artifacts["bert"], copy)
    graph = copy / "model.onnx"  # the full fp32 graph: int8 is served from other files
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 1
    graph.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="Checksum mismatch for .*model.onnx"):
        create_app({"MODELS": {"tiny": str(copy)}, "PRECISION": "int8"})


# --- the real server on loopback -------------------------------------------------------


def _raw(url, data, wait=5.0):
    """Send raw bytes, a piece at a time, stopping once the server answers (it refuses an
    oversized request before reading all of it, and bytes left unread would reset the
    connection and lose its answer); return the answer's head and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        for start in range(0, len(data), 4096):
            sock.sendall(data[start : start + 4096])
            if select.select([sock], [], [], 0.02)[0]:
                break
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


@pytest.fixture(scope="module")
def server(real_artifact, tmp_path_factory):
    log = tmp_path_factory.mktemp("traffic") / "server.log"
    env = {"FEATX_READ_TIMEOUT_S": "2", "FEATX_MAX_QUEUE_TEXTS": "256"}
    process, url = start_server(real_artifact, log, env=env)
    try:
        yield process, url
    finally:
        stop(process)


@pytest.mark.real
@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400,
         "Content-Length is invalid"),
        (b"NONSENSE\r\n\r\n", 400, "Start line is invalid"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "byte limit"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
         "byte limit"),
        (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413,
         "byte limit"),
    ],
)  # fmt: skip
def test_malformed_http_gets_a_json_error_not_an_html_page(server, request_bytes, status, message):
    head, body = _raw(server[1], request_bytes)
    assert head.split()[1] == str(status), head
    assert "application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == status and message in error["message"], error


@pytest.mark.real
def test_stalled_connections_neither_block_others_nor_stay_open(server):
    _, url = server
    host, port = url.removeprefix("http://").split(":")
    stalled = []
    for i in range(64):  # half the headers, or half the body, then nothing
        sock = socket.create_connection((host, int(port)))
        half_body = b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"te'
        sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\n" + (half_body if i % 2 else b"Conte"))
        stalled.append(sock)
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        assert response.status == 200
    status, body = post_embed(url, ["still served"], timeout=5)
    assert status == 200 and len(body["embeddings"]) == 1
    assert time.monotonic() - started < 2  # answered as usual, not after the stalls
    time.sleep(2 + 2)  # the read timeout, plus the sweep that closes them
    for sock in stalled:
        sock.settimeout(1)
        assert sock.recv(100) == b""  # closed by the server
        sock.close()


@pytest.mark.real
def test_a_flood_gets_only_200s_and_429s_then_normal_service(server):
    _, url = server
    texts = [f"flood text number {i} about a guitar" for i in range(64)]
    outcomes = []

    def client():
        for _ in range(3):
            try:
                status, _ = post_embed(url, texts, timeout=30)
                outcomes.append((status, None))
            except urllib.error.HTTPError as err:
                outcomes.append((err.code, err.headers.get("Retry-After")))

    threads = [threading.Thread(target=client) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = {status for status, _ in outcomes}
    assert statuses <= {200, 429} and 429 in statuses and 200 in statuses, statuses
    assert all(int(retry) >= 1 for status, retry in outcomes if status == 429)
    started = time.monotonic()
    status, _ = post_embed(url, ["after the flood"], timeout=5)
    assert status == 200 and time.monotonic() - started < 1


@pytest.mark.real
def test_a_killed_worker_is_replaced_and_service_resumes(real_artifact, tmp_path):
    import psutil

    process, url = start_server(real_artifact, tmp_path / "server.log")
    try:
        (worker,) = psutil.Process(process.pid).children()
        os.kill(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        while True:
            try:
                status, _ = post_embed(url, ["back again"], timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() - killed < 30, "the worker was not replaced"
            time.sleep(0.1)
        assert time.monotonic() - killed < 5  # the bar: requests succeed again within 5 s
    finally:
        stop(process)
