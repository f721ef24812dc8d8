"""POST /ner: a real tagger (trained once on 300 CoNLL-2003 sentences) served in process and
on loopback; entities equal Tagger.predict, offsets map back, every error says what to fix."""

import json
import threading
import urllib.request

import numpy as np
import pytest
from test_server import start_server, stop

import featx
from featx.tagging import Tagger, read_sentences, train_ner
from server import create_app

pytestmark = pytest.mark.real

TEXTS = [
    "Peter Blackburn lives in Paris.",
    "EU rejects German call to boycott British lamb.",
    "Germany's representative to the European Union said on Wednesday.",
]
WORDS = [
    ["Peter", "Blackburn", "lives", "in", "Paris", "."],
    ["BRUSSELS", "1996-08-22"],
    ["The", "European", "Commission", "said", "on", "Thursday", "."],
]


@pytest.fixture(scope="module")
def tagger_path(real_artifact, tmp_path_factory, shared_data):
    sentences = read_sentences(shared_data("conll2003", "train.txt"))[:300]
    out = tmp_path_factory.mktemp("ner") / "tagger"
    train_ner(
        [s.words for s in sentences],
        [s.tags for s in sentences],
        model=real_artifact,
        out=out,
        max_iter=50,
    )
    return out


@pytest.fixture(scope="module")
def tagger(tagger_path):
    return Tagger.load(tagger_path)


@pytest.fixture(scope="module")
def app(real_artifact, tagger_path):
    # The first model is a plain encoder: /ner without a model must find the tagger itself.
    models = {"minilm": str(real_artifact), "ner": str(tagger_path)}
    return create_app({"TESTING": True, "MODELS": models, "MAX_TEXTS": 4, "MAX_CHARS": 100})


@pytest.fixture()
def client(app):
    return app.test_client()


def _check_offsets(results):
    for result in results:
        for entity in result["entities"]:
            assert result["text"][entity["start"] : entity["end"]] == entity["text"]


def test_raw_texts_give_the_entities_of_tagger_predict(client, tagger):
    response = client.post("/ner", json={"texts": TEXTS, "model": "ner"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"] == "ner" and body["entity_types"] == ["LOC", "MISC", "ORG", "PER"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert [r["text"] for r in body["results"]] == TEXTS
    assert [r["entities"] for r in body["results"]] == tagger.predict(TEXTS)
    _check_offsets(body["results"])
    first = body["results"][0]["entities"]
    assert {(e["text"], e["label"]) for e in first} >= {("Peter Blackburn", "PER")}


def test_pre_split_words_give_the_entities_of_tagger_predict(client, tagger):
    response = client.post("/ner", json={"words": WORDS, "model": "ner"})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["text"] for r in results] == [" ".join(w) for w in WORDS]
    assert [r["entities"] for r in results] == tagger.predict(WORDS)
    _check_offsets(results)
    for words, result in zip(WORDS, results, strict=True):
        for entity in result["entities"]:
            first, last = entity["words"]
            assert " ".join(words[first:last]) == entity["text"]
    assert ("Peter Blackburn", "PER") in {(e["text"], e["label"]) for e in results[0]["entities"]}


def test_without_a_model_the_first_served_tagger_answers(client):
    body = client.post("/ner", json={"texts": ["Peter Blackburn lives in Paris."]}).get_json()
    assert body["model"] == "ner"
    assert len(body["results"]) == 1 and body["results"][0]["entities"]


def test_the_tagger_runs_on_the_served_encoder(app):
    models = app.extensions["featx_models"]
    served = models["ner"]
    assert served.tagger.embedder.model is served.encoder  # one ONNX session per model
    assert models["minilm"].tagger is None


def test_concurrent_ner_and_embed_requests_share_the_session_safely(app, tagger):
    texts = [t for t in TEXTS if t] * 3
    ner, embed = {}, {}

    def tag(i):
        body = app.test_client().post("/ner", json={"texts": [texts[i]]}).get_json()
        ner[i] = body["results"][0]["entities"]

    def vectors(i):  # through the micro-batcher's thread, on the same ONNX session
        response = app.test_client().post("/embed", json={"texts": [texts[i]], "model": "ner"})
        embed[i] = response.status_code

    threads = [
        threading.Thread(target=f, args=(i,)) for i in range(len(texts)) for f in (tag, vectors)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ner == {i: tagger.predict([text])[0] for i, text in enumerate(texts)}
    assert embed == {i: 200 for i in range(len(texts))}


def test_models_list_entity_types_and_the_ner_task(client):
    data = {m["id"]: m for m in client.get("/v1/models").get_json()["data"]}
    assert data["ner"]["task"] == "ner"
    assert data["ner"]["entity_types"] == ["LOC", "MISC", "ORG", "PER"]
    assert data["ner"]["labels"][0] == "O" and "B-PER" in data["ner"]["labels"]
    assert data["minilm"]["task"] is None and data["minilm"]["entity_types"] is None


def test_a_tagger_still_embeds_like_its_encoder(client, tagger_path):
    body = client.post("/embed", json={"texts": ["Paris"], "model": "ner"}).get_json()
    direct = featx.load(tagger_path).encode(["Paris"])
    np.testing.assert_allclose(np.array(body["embeddings"]), direct, atol=1e-5)


def test_texts_are_counted_in_the_metrics(client):
    def counted():
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith('featx_texts_embedded_total{model="ner"}'):
                return float(line.split()[-1])
        return 0.0

    before = counted()
    client.post("/ner", json={"words": WORDS})
    assert counted() == before + len(WORDS)


def test_a_sentence_at_the_character_limit_is_accepted(client):
    at_limit = ["x" * 50, "y" * 49]  # 100 characters joined by a space
    assert client.post("/ner", json={"words": [at_limit]}).status_code == 200
    assert client.post("/ner", json={"texts": ["z" * 100]}).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "param", "message"),
    [
        ({"data": "texts=a"}, 415, None, "Content-Type: application/json"),
        ({"data": "{oops", "content_type": "application/json"}, 400, None, "not valid JSON"),
        ({"json": {"model": "ner"}}, 400, "texts", "exactly one of 'texts'"),
        ({"json": {"texts": ["a"], "words": [["a"]]}}, 400, "words", "not both"),
        ({"json": {"texts": []}}, 400, "texts", "non-empty list of strings"),
        ({"json": {"texts": "Paris"}}, 400, "texts", "non-empty list of strings"),
        ({"json": {"texts": None}}, 400, "texts", "non-empty list of strings"),
        ({"json": {"texts": ["ok", 3]}}, 400, "texts", "'texts[1]' is int"),
        ({"json": {"texts": ["a"] * 5}}, 422, "texts", "the limit is 4 per request"),
        ({"json": {"texts": ["x" * 101]}}, 422, "texts", "the limit is 100"),
        ({"json": {"texts": ["Paris", " "]}}, 422, "texts", "'texts[1]' is empty"),
        ({"json": {"words": []}}, 400, "words", 'e.g. [["Peter", "Blackburn"]]'),
        ({"json": {"words": ["Peter"]}}, 400, "words", "'words[0]' must be a non-empty list"),
        ({"json": {"words": [["a"], []]}}, 400, "words", "'words[1]' must be a non-empty list"),
        ({"json": {"words": [["Peter", ""]]}}, 422, "words", "'words[0][1]' is ''"),
        ({"json": {"words": [["Peter", " "]]}}, 422, "words", "Drop empty words"),
        ({"json": {"words": [["Peter", 3]]}}, 400, "words", "'words[0][1]' is int"),
        ({"json": {"words": [["a"]] * 5}}, 422, "words", "5 sentences; the limit is 4"),
        ({"json": {"words": [["x" * 50, "y" * 50]]}}, 422, "words",
         "101 characters (words joined by spaces); the limit is 100"),
        ({"json": {"texts": ["a"], "model": "nope"}}, 404, "model", "Unknown model 'nope'"),
        ({"json": {"texts": ["a"], "model": "minilm"}}, 400, "model",
         "'minilm' is not a named-entity tagger; train one with `featx train-ner`"),
    ],
)  # fmt: skip
def test_bad_requests_get_json_errors_that_say_what_to_fix(client, kwargs, status, param, message):
    response = client.post("/ner", **kwargs)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert set(error) == {"type", "message", "param", "code"}
    assert message in error["message"], error["message"]
    assert error["param"] == param and error["code"] == status
    expected_type = {404: "model_not_found"}
    assert error["type"] == expected_type.get(status, "invalid_request_error")


def test_get_is_not_allowed(client):
    response = client.get("/ner")
    assert (
        response.status_code == 405
        and "GET is not allowed" in response.get_json()["error"]["message"]
    )


def test_a_server_without_a_tagger_says_how_to_get_one(real_artifact):
    client = create_app({"TESTING": True, "MODELS": {"minilm": str(real_artifact)}}).test_client()
    response = client.post("/ner", json={"texts": ["Peter Blackburn lives in Paris."]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "No served model is a named-entity tagger" in error["message"]
    assert "featx train-ner" in error["message"] and error["param"] == "model"
    models = client.get("/v1/models").get_json()["data"]
    assert models[0]["entity_types"] is None


def test_the_real_server_tags_over_loopback(tagger_path, tagger, tmp_path):
    process, url = start_server(tagger_path, tmp_path / "server.log")  # serves it as 'minilm'
    try:
        request = urllib.request.Request(
            f"{url}/ner",
            data=json.dumps({"texts": TEXTS}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            body = json.load(response)
    finally:
        stop(process)
    assert body["model"] == "minilm" and body["entity_types"] == tagger.entity_types
    expected = tagger.predict(TEXTS)
    for result, want in zip(body["results"], expected, strict=True):
        # The server picks its own ONNX thread count: scores may differ in the last digit.
        assert [{**e, "score": None} for e in result["entities"]] == [
            {**e, "score": None} for e in want
        ]
        got_scores = [e["score"] for e in result["entities"]]
        np.testing.assert_allclose(got_scores, [e["score"] for e in want], atol=2e-3)
    _check_offsets(body["results"])
