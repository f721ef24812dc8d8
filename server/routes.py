"""The endpoints: thin views that parse, check limits, call featx and answer JSON."""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .errors import ApiError
from .models import ServedModel

bp = Blueprint("featx", __name__)


def _models() -> dict[str, ServedModel]:
    models: dict[str, ServedModel] = current_app.extensions["featx_models"]
    return models


def _body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(
            415,
            "invalid_request_error",
            f"Send JSON with 'Content-Type: application/json' (got "
            f"{request.content_type or 'no content type'!r}).",
        )
    # orjson, not the json module: it refuses lone surrogates (which the tokenizer cannot
    # take) and nesting deeper than 1024 (a RecursionError, a 500, in the json module)
    # with a JSONDecodeError that says which.
    try:
        body = orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError as err:
        raise ApiError(
            400,
            "invalid_request_error",
            f"The request body is not valid JSON ({err}): send UTF-8 JSON without lone "
            "surrogates, nested at most 1024 deep.",
        ) from err
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request_error", "The JSON body must be an object.")
    return body


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


def _texts(value: Any, param: str, *, allow_str: bool = False) -> list[str]:
    """Check a list of texts against the configured limits."""
    config = current_app.config
    if allow_str and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ApiError(
            400, "invalid_request_error", f"'{param}' must be a non-empty list of strings.", param
        )
    if len(value) > config["MAX_TEXTS"]:
        raise ApiError(
            413,
            "request_too_large",
            f"'{param}' has {len(value)} texts; the limit is {config['MAX_TEXTS']} per request.",
            param,
        )
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ApiError(
                400,
                "invalid_request_error",
                f"'{param}[{i}]' is {type(text).__name__}, not a string.",
                param,
            )
        if len(text) > config["MAX_CHARS"]:
            raise ApiError(
                413,
                "request_too_large",
                f"'{param}[{i}]' has {len(text)} characters; the limit is {config['MAX_CHARS']}.",
                param,
            )
    return value


def _embed(model: ServedModel, texts: list[str]) -> Any:
    try:
        result = model.embed(texts)
    except TimeoutError as err:
        raise ApiError(503, "timeout", f"{err} The server is overloaded; retry later.") from err
    metrics = current_app.extensions["featx_metrics"]
    metrics.texts.labels(model.name).inc(len(texts))
    metrics.tokens.labels(model.name).inc(int(result.n_tokens.sum()))
    return result


@bp.post("/embed")
def embed() -> Response:
    """Native embeddings with per-text token counts, truncation and window counts."""
    body = _body()
    model = _model(body.get("model"))
    texts = _texts(body.get("texts"), "texts")
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
    body = _body()
    if body.get("model") is None:
        raise ApiError(400, "invalid_request_error", "'model' is required.", "model")
    model = _model(body["model"])
    raw = body.get("input")
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        raise ApiError(
            400, "invalid_request_error", "Token-id input is not supported; send text.", "input"
        )
    texts = _texts(raw, "input", allow_str=True)
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
    body = _body()
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
        _texts([t for p in pairs for t in p], "pairs")
        X: Any = np.array(pairs, dtype=object)
    else:
        X = _texts(body.get("texts"), "texts")
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


def _words(value: Any, param: str) -> list[list[str]]:
    """Check pre-split sentences (lists of words) against the configured limits."""
    config = current_app.config
    if not isinstance(value, list) or not value:
        raise ApiError(
            400,
            "invalid_request_error",
            f"'{param}' must be a non-empty list of sentences, each a non-empty list of words "
            """(strings), e.g. [["Peter", "Blackburn"]].""",
            param,
        )
    if len(value) > config["MAX_TEXTS"]:
        raise ApiError(
            413,
            "request_too_large",
            f"'{param}' has {len(value)} sentences; the limit is {config['MAX_TEXTS']} "
            "per request.",
            param,
        )
    for i, words in enumerate(value):
        if not isinstance(words, list) or not words:
            raise ApiError(
                400,
                "invalid_request_error",
                f"'{param}[{i}]' must be a non-empty list of words (strings), "
                f"got {type(words).__name__}{' (empty)' if words == [] else ''}.",
                param,
            )
        for j, word in enumerate(words):
            if not isinstance(word, str) or not word.strip():
                got = type(word).__name__ if not isinstance(word, str) else repr(word)
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"'{param}[{i}][{j}]' is {got}: each word must be a string with a "
                    "non-space character. Drop empty words.",
                    param,
                )
        n_chars = sum(len(w) for w in words) + len(words) - 1  # joined by single spaces
        if n_chars > config["MAX_CHARS"]:
            raise ApiError(
                413,
                "request_too_large",
                f"'{param}[{i}]' has {n_chars} characters (words joined by spaces); "
                f"the limit is {config['MAX_CHARS']}.",
                param,
            )
    return value


@bp.post("/ner")
def ner() -> Response:
    """Named entities with character offsets, from a model trained by ``featx train-ner``."""
    body = _body()
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
        X = _texts(body["texts"], "texts")
        shown = X
    else:
        X = _words(body["words"], "words")
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
    """Readiness: every model is loaded (models load before the app serves)."""
    models = _models()
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
