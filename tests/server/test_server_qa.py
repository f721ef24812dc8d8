"""POST /qa: a real (tiny) question answerer served in process and on loopback; answers equal
Answerer.answer_batch, offsets map back, and every bad request gets a clear 4xx."""

import json
import urllib.error
import urllib.request

import pytest
from conftest import toy_questions
from test_server import start_server, stop

from featx.qa import Answerer
from server import create_app

CONTEXT = "the quick car is green and the lazy dog is slow"


@pytest.fixture(scope="module")
def app(real_artifact, tiny_qa_artifact):
    # The first model is a plain encoder: /qa without a model must find the answerer itself.
    models = {"minilm": str(real_artifact), "qa": str(tiny_qa_artifact)}
    return create_app({"TESTING": True, "MODELS": models, "MAX_TEXTS": 4, "MAX_CHARS": 100})


@pytest.fixture()
def client(app):
    return app.test_client()


def test_one_pair_and_many_give_answer_batch_s_spans(client, tiny_qa_artifact):
    answerer = Answerer.load(tiny_qa_artifact)
    one = client.post("/qa", json={"question": "what color is the car?", "context": CONTEXT})
    assert one.status_code == 200, one.get_json()
    body = one.get_json()
    assert body["model"] == "qa"
    (answer,) = body["answers"]
    assert CONTEXT[answer["start"] : answer["end"]] == answer["answer"] == "green"
    pairs = [(q.question, q.context) for q in toy_questions(3)]
    many = client.post("/qa", json={"pairs": [{"question": q, "context": c} for q, c in pairs],
                                    "model": "qa"})  # fmt: skip
    assert many.status_code == 200
    expected = [{"index": i, **s.to_dict()} for i, s in enumerate(answerer.answer_batch(pairs))]
    got = many.get_json()["answers"]
    assert [{**a, "score": None} for a in got] == [{**a, "score": None} for a in expected]
    assert [a["score"] for a in got] == pytest.approx([a["score"] for a in expected], rel=1e-5)
    models = {m["id"]: m for m in client.get("/v1/models").get_json()["data"]}
    assert models["qa"]["task"] == "qa" and models["minilm"]["task"] is None
    served = client.application.extensions["featx_models"]["qa"]
    assert served.answerer.encoder is served.encoder  # one ONNX session per model


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"question": "why?"}, 400, "'context' is missing"),
        ({"question": "  ", "context": CONTEXT}, 422, "'question' is empty"),
        ({"question": "why?", "context": "x" * 101}, 422, "the limit is 100"),
        ({"pairs": [{"question": "why?", "context": "c"}] * 5}, 422, "the limit is 4"),
        ({"pairs": [{"question": "why?", "context": 3}]}, 400, "'pairs[0].context' is int"),
        ({"pairs": "no"}, 400, "'pairs' must be a non-empty list"),
        ({"pairs": [], "question": "q"}, 400, "Send either"),
        ({"question": "q?", "context": "c", "model": "minilm"}, 400, "does not answer questions"),
        ({"question": "q?", "context": "c", "model": "nope"}, 404, "Unknown model"),
    ],
)
def test_bad_requests_say_what_to_fix(client, body, status, words):
    response = client.post("/qa", json=body)
    assert response.status_code == status
    assert words in response.get_json()["error"]["message"]


def test_without_an_answerer_qa_says_how_to_get_one(real_artifact):
    app = create_app({"TESTING": True, "MODELS": {"minilm": str(real_artifact)}})
    response = app.test_client().post("/qa", json={"question": "q?", "context": "c"})
    assert response.status_code == 400
    assert "featx finetune-qa" in response.get_json()["error"]["message"]


def test_featx_serve_answers_on_loopback(tiny_qa_artifact, tmp_path):
    process, url = start_server(tiny_qa_artifact, tmp_path / "server.log")
    try:
        request = urllib.request.Request(
            f"{url}/qa",
            data=json.dumps({"question": "what color is the car?", "context": CONTEXT}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert body["answers"][0]["answer"] == "green"
        bad = urllib.request.Request(f"{url}/qa", data=b'{"question": "q"}',
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(bad, timeout=30)
        assert caught.value.code == 400
        caught.value.close()  # its socket, or a ResourceWarning (an error here)
    finally:
        stop(process)
