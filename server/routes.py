"""The endpoints: thin views that parse, check limits, call featx and answer JSON."""

from __future__ import annotations

import base64
import time
from importlib import resources
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, g, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import inputs
from .batching import Overloaded
from .errors import ApiError
from .models import ServedModel

bp = Blueprint("featx", __name__)


def _models() -> dict[str, ServedModel]:
    models: dict[str, ServedModel] = current_app.extensions["featx_models"]
    return models


def _vectors_response(body: dict[str, Any]) -> Response:
    """JSON with numpy arrays written natively, float32 at float32 precision.

    ``jsonify`` of ``tolist()`` prints 17 digits per float: slower and twice the bytes.
    """
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), mimetype="application/json"
    )


def _model(name: Any, *, param: str = "model") -> ServedModel:
    models = _models()
    if name is None:
        return next(iter(models.values()))
    if not isinstance(name, str) or name not in models:
        raise ApiError(
            404,
            "model_not_found",
            f"Unknown model {name!r}. Served models: {', '.join(models)} (GET /v1/models).",
            param,
        )
    return models[name]


def _embed(model: ServedModel, texts: list[str]) -> Any:
    """Embed through the model's batcher (429 when full, 503 past the timeout)."""
    result = model.embed(texts)
    g.stage_seconds = result.seconds  # the per-request timing headers
    metrics = current_app.extensions["featx_metrics"]
    metrics.texts.labels(model.name).inc(len(texts))
    metrics.tokens.labels(model.name).inc(int(result.n_tokens.sum()))
    return result


@bp.post("/embed")
def embed() -> Response:
    """Native embeddings with per-text token counts, truncation and window counts."""
    body = inputs.json_body()
    model = _model(body.get("model"))
    texts = inputs.texts(body.get("texts"), "texts")
    result = _embed(model, texts)
    return _vectors_response(
        {
            "model": model.name,
            "dim": int(result.embeddings.shape[1]),
            "embeddings": np.ascontiguousarray(result.embeddings, dtype=np.float32),
            "n_tokens": result.n_tokens,
            "truncated": result.truncated,
            "n_windows": result.n_windows,
        }
    )


@bp.post("/v1/embeddings")
def openai_embeddings() -> Response:
    """OpenAI-compatible embeddings (``openai.OpenAI(base_url=...).embeddings.create``)."""
    body = inputs.json_body()
    if body.get("model") is None:
        raise ApiError(400, "invalid_request_error", "'model' is required.", "model")
    model = _model(body["model"])
    raw = body.get("input")
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        raise ApiError(
            400, "invalid_request_error", "Token-id input is not supported; send text.", "input"
        )
    texts = inputs.texts(raw, "input", allow_str=True)
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise ApiError(
            400,
            "invalid_request_error",
            f"encoding_format must be 'float' or 'base64', got {fmt!r}.",
            "encoding_format",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= model.dim
    ):
        raise ApiError(
            400,
            "invalid_request_error",
            f"dimensions must be an integer from 1 to {model.dim}, got {dimensions!r}.",
            "dimensions",
        )
    result = _embed(model, texts)
    vectors = np.asarray(result.embeddings, dtype=np.float32)
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]  # Matryoshka-style cut, then unit length again
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": (
                base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                if fmt == "base64"
                else np.ascontiguousarray(v)
            ),
        }
        for i, v in enumerate(vectors)
    ]
    tokens = int(result.n_tokens.sum())
    return _vectors_response(
        {
            "object": "list",
            "data": data,
            "model": model.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


@bp.post("/predict")
def predict() -> Response:
    """Labels and probabilities (or scores) from a model with a trained head."""
    body = inputs.json_body()
    model = _model(body.get("model"))
    if model.predictor is None:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Model {model.name!r} has no trained head; train one with `featx train` "
            "and serve that artifact.",
            "model",
        )
    predictor = model.predictor
    if predictor.n_pair_columns == 2:
        pairs = body.get("pairs")
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in pairs
        ):
            raise ApiError(
                400,
                "invalid_request_error",
                f"Model {model.name!r} reads sentence pairs: send 'pairs': [[text, text], ...].",
                "pairs",
            )
        inputs.texts([t for p in pairs for t in p], "pairs")
        X: Any = np.array(pairs, dtype=object)
    else:
        X = inputs.texts(body.get("texts"), "texts")
    rows = predictor.records(X)
    return jsonify(
        {
            "model": model.name,
            "task": predictor.task.value,
            "labels": predictor.labels,
            "predictions": rows,
        }
    )


def _tagger_model(name: Any) -> ServedModel:
    """The named model, which must be a tagger; omitted or null: the first served tagger."""
    if name is None:
        taggers = [m for m in _models().values() if m.tagger is not None]
        if not taggers:
            raise ApiError(
                400,
                "invalid_request_error",
                "No served model is a named-entity tagger; train one with `featx train-ner` "
                "and serve that artifact.",
                "model",
            )
        return taggers[0]
    model = _model(name)
    if model.tagger is None:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Model {model.name!r} is not a named-entity tagger; train one with "
            "`featx train-ner` and serve that artifact.",
            "model",
        )
    return model


@bp.post("/ner")
def ner() -> Response:
    """Named entities with character offsets, from a model trained by ``featx train-ner``."""
    body = inputs.json_body()
    model = _tagger_model(body.get("model"))
    has_texts, has_words = "texts" in body, "words" in body
    if has_texts == has_words:
        raise ApiError(
            400,
            "invalid_request_error",
            "Send exactly one of 'texts' (raw strings) or 'words' (pre-split sentences, "
            f"lists of words){', not both' if has_texts else ''}.",
            "words" if has_texts else "texts",
        )
    X: list[Any]
    if has_texts:
        X = inputs.texts(body["texts"], "texts")
        shown = X
    else:
        X = inputs.words(body["words"], "words")
        shown = [" ".join(words) for words in X]
    try:
        found = model.tagger.predict(X)
    except ValueError as err:
        param = "texts" if has_texts else "words"
        raise ApiError(400, "invalid_request_error", str(err), param) from err
    current_app.extensions["featx_metrics"].texts.labels(model.name).inc(len(X))
    return jsonify(
        {
            "model": model.name,
            "entity_types": model.tagger.entity_types,
            "results": [
                {"index": i, "text": text, "entities": entities}
                for i, (text, entities) in enumerate(zip(shown, found, strict=True))
            ],
        }
    )


def _qa_model(name: Any) -> ServedModel:
    """The named model, which must answer questions; omitted or null: the first that does."""
    hint = "fine-tune one with `featx finetune-qa` and serve that artifact."
    if name is None:
        answerers = [m for m in _models().values() if m.answerer is not None]
        if not answerers:
            raise ApiError(
                400, "invalid_request_error", f"No served model answers questions; {hint}",
                "model",
            )  # fmt: skip
        return answerers[0]
    model = _model(name)
    if model.answerer is None:
        raise ApiError(
            400, "invalid_request_error", f"Model {model.name!r} does not answer questions; "
            f"{hint}", "model",
        )  # fmt: skip
    return model


@bp.post("/qa")
def answer() -> Response:
    """Extractive answers (spans of each context, with a score), from ``featx finetune-qa``."""
    body = inputs.json_body()
    model = _qa_model(body.get("model"))
    pairs = inputs.qa_pairs(body)
    spans = model.answerer.answer_batch(pairs)
    current_app.extensions["featx_metrics"].texts.labels(model.name).inc(len(pairs))
    return jsonify(
        {
            "model": model.name,
            "answers": [{"index": i, **span.to_dict()} for i, span in enumerate(spans)],
        }
    )


@bp.get("/v1/models")
def list_models() -> Response:
    """Served models, OpenAI-style, with dim, task and labels."""
    return jsonify({"object": "list", "data": [m.describe() for m in _models().values()]})


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers (never needs a key)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: every model embeds a text now (never needs a key); 503 while draining.

    A full queue is a 503 too: a load balancer should send this worker's traffic
    elsewhere until it has room. A pass is remembered for a second, so probes cost
    at most one inference per model per second.
    """
    models = _models()
    state = current_app.extensions["featx_ready"]
    if current_app.extensions["featx_draining"].is_set():
        raise ApiError(503, "not_ready", "The server is shutting down; use another worker.")
    if time.monotonic() - state.get("at", -1.0) > 1.0:
        for model in models.values():
            try:
                model.embed(["ready"], timeout=5.0)
            except Overloaded as err:
                raise ApiError(503, "not_ready", str(err)) from err
        state["at"] = time.monotonic()
    return jsonify({"status": "ready", "models": list(models)})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of this worker."""
    registry = current_app.extensions["featx_metrics"].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of every endpoint."""
    from .openapi import spec

    return jsonify(spec(current_app.config))


@bp.get("/")
def playground() -> Response:
    """The playground page."""
    page = resources.files(__package__).joinpath("playground.html").read_text(encoding="utf-8")
    return Response(page, mimetype="text/html")
