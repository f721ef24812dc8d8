"""The server: every endpoint, limit, auth and error path in process, then the real
server (gunicorn, loopback) with the official openai client and a client that dies."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import featx
from featx.encoders.base import EncodeResult
from server import create_app
from server.batching import MicroBatcher

TEXTS = ["a great movie", "a terrible film", "i love it", "i hate it"] * 3
LABELS = ["pos", "neg", "pos", "neg"] * 3


@pytest.fixture(scope="module")
def sentiment_model(tiny_artifacts, tmp_path_factory):
    out = tmp_path_factory.mktemp("served") / "sentiment"
    model = featx.train(TEXTS, LABELS, model=str(tiny_artifacts["bert"]), cache=False)
    return model.save(out)


@pytest.fixture(scope="module")
def app(tiny_artifacts, sentiment_model):
    return create_app(
        {
            "TESTING": True,
            "MODELS": {"tiny": str(tiny_artifacts["bert"]), "sentiment": str(sentiment_model)},
            "MAX_TEXTS": 8,
            "MAX_CHARS": 100,
            "MAX_CONTENT_LENGTH": 4096,
        }
    )


@pytest.fixture()
def client(app):
    return app.test_client()


def test_embed_matches_the_library_and_reports_tokens(client, tiny_artifacts):
    response = client.post("/embed", json={"texts": TEXTS[:4], "model": "tiny"})
    assert response.status_code == 200
    body = response.get_json()
    direct = featx.load(tiny_artifacts["bert"]).encode(TEXTS[:4])
    np.testing.assert_allclose(np.array(body["embeddings"]), direct, atol=1e-5)
    assert body["dim"] == direct.shape[1] and body["model"] == "tiny"
    assert len(body["n_tokens"]) == 4 and body["truncated"] == [False] * 4
    assert body["n_windows"] == [1] * 4


def test_openai_embeddings_formats_dimensions_and_usage(client, tiny_artifacts):
    import base64

    full = client.post("/v1/embeddings", json={"model": "tiny", "input": "a great movie"})
    body = full.get_json()
    assert body["object"] == "list" and body["data"][0]["index"] == 0
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    packed = client.post(
        "/v1/embeddings",
        json={"model": "tiny", "input": ["a great movie"], "encoding_format": "base64"},
    ).get_json()
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, body["data"][0]["embedding"], atol=1e-7)
    short = client.post(
        "/v1/embeddings", json={"model": "tiny", "input": ["a great movie"], "dimensions": 8}
    ).get_json()["data"][0]["embedding"]
    assert len(short) == 8 and abs(np.linalg.norm(short) - 1) < 1e-5  # renormalised


def test_predict_gives_labels_and_probabilities(client):
    body = client.post("/predict", json={"texts": TEXTS[:2], "model": "sentiment"}).get_json()
    assert body["task"] == "binary" and body["labels"] == ["neg", "pos"]
    first = body["predictions"][0]
    assert first["label"] in ("neg", "pos") and set(first["probabilities"]) == {"neg", "pos"}
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-6


def test_models_health_readiness_metrics_openapi_and_playground(client):
    models = client.get("/v1/models").get_json()["data"]
    assert {m["id"] for m in models} == {"tiny", "sentiment"}
    assert next(m for m in models if m["id"] == "sentiment")["task"] == "binary"
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json()["status"] == "ready"
    client.post("/embed", json={"texts": ["a"], "model": "tiny"})
    text = client.get("/metrics").get_data(as_text=True)
    for name in (
        "featx_requests_total",
        "featx_request_latency_seconds_bucket",
        "featx_batch_size_bucket",
        "featx_queue_depth",
        "featx_texts_embedded_total",
        "featx_tokens_embedded_total",
    ):
        assert name in text, name
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/embeddings", "/embed", "/predict", "/v1/models", "/metrics"} <= set(spec["paths"])
    page = client.get("/")
    assert page.status_code == 200 and 'id="model"' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
        # A lone surrogate (escaped or as raw UTF-8 bytes) and deep nesting: 400, not 500.
        ({"data": '{"texts": ["a\\ud800b"]}', "content_type": "application/json"},
         400, "surrogate"),
        ({"data": b'{"texts": ["a\xed\xa0\x80b"]}', "content_type": "application/json"},
         400, "surrogates not allowed"),
        ({"data": "[" * 1100 + "]" * 1100, "content_type": "application/json"},
         400, "depth limit exceeded"),
        ({"data": "texts=a"}, 415, "Content-Type: application/json"),
        ({"json": ["a"]}, 400, "must be an object"),
        ({"json": {"texts": []}}, 400, "non-empty list of strings"),
        ({"json": {"texts": "one text"}}, 400, "non-empty list of strings"),
        ({"json": {"texts": ["ok", 3]}}, 400, "'texts[1]' is int"),
        # Well-formed but over a limit, or empty: 422 with the limit, as TEI does.
        ({"json": {"texts": ["x"] * 9}}, 422, "the limit is 8 per request"),
        ({"json": {"texts": ["x" * 101]}}, 422, "the limit is 100"),
        ({"json": {"texts": ["ok", ""]}}, 422, "'texts[1]' is empty or only whitespace"),
        ({"json": {"texts": [" \t\n"]}}, 422, "'texts[0]' is empty or only whitespace"),
        ({"json": {"texts": ["a"], "model": "nope"}}, 404, "Unknown model 'nope'"),
        ({"data": json.dumps({"texts": ["a" * 90] * 50}), "content_type": "application/json"},
         413, "4096 byte limit"),
    ],
)  # fmt: skip
def test_bad_requests_get_json_errors_that_say_what_to_fix(client, kwargs, status, message):
    response = client.post("/embed", **kwargs)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert message in error["message"] and error["code"] == status


def test_more_error_paths(client):
    cases = [
        (client.post("/v1/embeddings", json={"input": "a"}), 400, "'model' is required"),
        (client.post("/v1/embeddings", json={"model": "tiny", "input": [1, 2]}), 400, "Token-id"),
        (
            client.post(
                "/v1/embeddings", json={"model": "tiny", "input": "a", "encoding_format": "hex"}
            ),
            400,
            "encoding_format",
        ),
        (
            client.post("/v1/embeddings", json={"model": "tiny", "input": "a", "dimensions": 0}),
            400,
            "dimensions must be an integer from 1 to",
        ),
        (client.post("/predict", json={"texts": ["a"], "model": "tiny"}), 400, "no trained head"),
        (client.get("/nowhere"), 404, "No endpoint /nowhere"),
        (client.get("/embed"), 405, "GET is not allowed"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.get_json()
        assert message in response.get_json()["error"]["message"]


def test_api_keys_request_ids_and_access_log(tiny_artifacts, tmp_path, caplog):
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nsecret-one\nsecret-two\n")
    app = create_app({"MODELS": {"tiny": str(tiny_artifacts["bert"])}, "API_KEYS_FILE": str(keys)})
    client = app.test_client()
    payload = {"texts": ["a"]}
    assert client.post("/embed", json=payload).status_code == 401
    wrong = client.post("/embed", json=payload, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Bearer" in wrong.get_json()["error"]["message"]
    assert client.get("/healthz").status_code == 200  # liveness stays open
    assert client.get("/metrics").status_code == 401
    with caplog.at_level(logging.INFO, logger="featx.access"):
        ok = client.post(
            "/embed",
            json=payload,
            headers={"Authorization": "Bearer secret-two", "X-Request-ID": "req-42"},
        )
    assert ok.status_code == 200 and ok.headers["X-Request-ID"] == "req-42"
    record = json.loads(caplog.records[-1].getMessage())
    assert record["request_id"] == "req-42" and record["status"] == 200
    assert "secret" not in caplog.text  # keys are never logged
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32  # generated when absent


def test_settings_from_a_file_and_the_environment(tiny_artifacts, tmp_path, monkeypatch):
    config = tmp_path / "featx.toml"
    config.write_text(f'max_texts = 2\n[models]\ntiny = "{tiny_artifacts["bert"]}"\n')
    monkeypatch.setenv("FEATX_CONFIG", str(config))
    monkeypatch.setenv("FEATX_MAX_CHARS", "5")
    client = create_app().test_client()
    assert client.post("/embed", json={"texts": ["a", "b", "c"]}).status_code == 422
    assert (
        "limit is 5"
        in client.post("/embed", json={"texts": ["abcdef"]}).get_json()["error"]["message"]
    )
    assert client.get("/v1/models").get_json()["data"][0]["id"] == "tiny"
    with pytest.raises(ValueError, match="MAX_TEXTS must be a positive integer"):
        create_app({"MAX_TEXTS": 0})
    with pytest.raises(ValueError, match="MAX_QUEUE_TEXTS .1. must be at least MAX_TEXTS .2."):
        create_app({"MAX_QUEUE_TEXTS": 1})  # MAX_TEXTS is 2 in this test's config file
    with pytest.raises(ValueError, match="READ_TIMEOUT_S must be a positive number"):
        create_app({"READ_TIMEOUT_S": 0})
    fp32 = create_app({"PRECISION": "fp32", "BATCHING": False})
    assert fp32.extensions["featx_models"]["tiny"].encoder.precision == "fp32"
    assert fp32.test_client().post("/embed", json={"texts": ["a"]}).status_code == 200


def test_a_request_that_waits_too_long_gets_a_503(tiny_artifacts):
    app = create_app({"MODELS": {"tiny": str(tiny_artifacts["bert"])}, "REQUEST_TIMEOUT_S": 0})
    response = app.test_client().post("/embed", json={"texts": ["a"]})
    assert response.status_code == 503 and "retry later" in response.get_json()["error"]["message"]


def test_micro_batcher_coalesces_and_isolates_failures():
    runs = []

    def run(texts):
        runs.append(len(texts))
        if "boom" in texts:
            raise ValueError("bad text")
        time.sleep(0.01)
        vectors = np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
        n = np.full(len(texts), 3, dtype=np.int64)
        return EncodeResult(vectors, n, np.zeros(len(texts), dtype=bool), np.ones_like(n))

    batcher = MicroBatcher(run, max_texts=64, max_wait_s=0.02)
    results, errors = {}, {}

    def client(i):
        text = "boom" if i == 5 else "x" * i
        try:
            results[i] = batcher.submit([text], timeout=10).embeddings[0, 0]
        except ValueError as err:
            errors[i] = str(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == {5: "bad text"}  # only the bad request failed
    assert results == {i: float(i) for i in range(16) if i != 5}  # each got its own row
    assert max(runs) > 1  # requests were coalesced (the failing batch re-ran job by job)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifact, log, env=None):
    """``featx serve`` in a subprocess; returns (process, url) once /readyz answers."""
    port = _free_port()
    featx_cli = Path(sys.executable).parent / "featx"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(featx_cli), "serve", f"minilm={artifact}", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"server did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


def stop(process):
    process.terminate()
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture(scope="module")
def live_server(real_artifact, tmp_path_factory):
    process, url = start_server(real_artifact, tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield url
    finally:
        stop(process)


def post_embed(url, texts, timeout=60):
    request = urllib.request.Request(
        f"{url}/embed",
        data=json.dumps({"texts": texts}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.load(response)


@pytest.mark.real
def test_sigterm_lets_the_request_in_flight_finish(real_artifact, tmp_path):
    process, url = start_server(real_artifact, tmp_path / "server.log")
    try:
        long_texts = [" ".join(["a long sentence about a guitar"] * 40)] * 128  # ~1 s of work
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(r=post_embed(url, long_texts)))
        worker.start()
        time.sleep(0.3)  # the request is in flight
        process.send_signal(15)
        worker.join(timeout=60)
        status, body = outcome["r"]
        assert status == 200 and len(body["embeddings"]) == 128
        assert process.wait(timeout=30) == 0  # then it exits cleanly
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.real
def test_the_openai_client_works_unchanged(live_server, real_artifact):
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server}/v1", api_key="unused", max_retries=0)
    texts = ["A man is playing a guitar.", "A woman is slicing an onion."]
    response = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
    vectors = np.array([d.embedding for d in response.data])
    direct = featx.load(real_artifact).encode(texts)
    np.testing.assert_allclose(vectors, direct, atol=1e-4)
    assert response.usage.prompt_tokens > 0
    floats = client.embeddings.create(model="minilm", input=texts[0], encoding_format="float")
    alone = featx.load(real_artifact).encode(texts[:1])  # int8 scales depend on the batch
    np.testing.assert_allclose(floats.data[0].embedding, alone[0], atol=1e-4)
    from openai import NotFoundError

    with pytest.raises(NotFoundError, match="Unknown model"):
        client.embeddings.create(model="gpt-4", input="x")


@pytest.mark.real
def test_a_client_dying_mid_request_does_not_hurt_the_server(live_server):
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # promise a body, send half
        sock.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"texts": ["half'
        )
    with socket.create_connection((host, int(port))) as sock:  # ask, then leave unread
        body = json.dumps({"texts": ["a text"] * 200}).encode()
        sock.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    status, body = post_embed(live_server, ["still serving"], timeout=30)
    assert status == 200 and len(body["embeddings"]) == 1


def test_a_library_error_is_a_400_never_a_500(client):
    # A lone surrogate, refused where the JSON is read (and by featx.text.check_texts).
    for path, body in (
        ("/embed", {"texts": ["a\ud800b"]}),
        ("/v1/embeddings", {"model": "tiny", "input": "a\ud800b"}),
        ("/predict", {"model": "sentiment", "texts": ["a\ud800b"]}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 400, (path, response.get_json())
        assert response.get_json()["error"]["type"] == "invalid_request_error"
