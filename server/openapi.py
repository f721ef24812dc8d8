"""The OpenAPI 3 description of every endpoint (served at ``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from featx._version import __version__

from .inputs import NOT_BLANK

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "integer"},
            },
        }
    },
}
_TEXTS = {"type": "array", "minItems": 1, "items": {"type": "string"}}
_MODEL = {"type": "string", "description": "A served model's name (GET /v1/models)."}
_DEFAULT_MODEL = {
    "type": ["string", "null"],
    "description": "A served model's name (GET /v1/models); omitted or null: the first one.",
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Bad input: the message says what to fix",
        401: "Missing or invalid API key",
        404: "Unknown model",
        413: "Request body over the byte limit",
        415: "Not JSON",
        422: "Well-formed, but over a limit (the message gives it) or an empty text",
        429: "The queue is full: retry after the Retry-After header's seconds",
        503: "Timed out waiting for the encoder, or not ready (Retry-After)",
    }
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, reasons[c]) for c in codes}


def _post(summary: str, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": _json(response),
                **_errors(400, 401, 404, 413, 415, 422, 429, 503),
            },
        }
    }


def _get(
    summary: str, response: dict[str, Any], *, auth: bool = True, errors: tuple[int, ...] = ()
) -> dict[str, Any]:
    responses = {"200": response, **_errors(*errors)}
    if auth:
        responses.update(_errors(401))
    return {"get": {"summary": summary, "responses": responses}}


_VECTOR = {"type": "array", "items": {"type": "number"}}
_EMBED_RESPONSE = {
    "type": "object",
    "required": ["model", "dim", "embeddings", "n_tokens", "truncated", "n_windows"],
    "properties": {
        "model": {"type": "string"},
        "dim": {"type": "integer"},
        "embeddings": {"type": "array", "items": _VECTOR},
        "n_tokens": {"type": "array", "items": {"type": "integer"}},
        "truncated": {"type": "array", "items": {"type": "boolean"}},
        "n_windows": {"type": "array", "items": {"type": "integer"}},
    },
}

_OPENAI_RESPONSE = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["object", "index", "embedding"],
                "properties": {
                    "object": {"type": "string", "enum": ["embedding"]},
                    "index": {"type": "integer"},
                    "embedding": {"oneOf": [_VECTOR, {"type": "string"}]},
                },
            },
        },
        "model": {"type": "string"},
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
            },
        },
    },
}

_PREDICT_RESPONSE = {
    "type": "object",
    "required": ["model", "task", "labels", "predictions"],
    "properties": {
        "model": {"type": "string"},
        "task": {"type": "string"},
        "labels": {"type": "array"},
        "predictions": {"type": "array", "items": {"type": "object"}},
    },
}

_ENTITY = {
    "type": "object",
    "required": ["text", "label", "start", "end", "words", "score"],
    "properties": {
        "text": {"type": "string", "description": "text[start:end]"},
        "label": {"type": "string", "description": "An entity type, e.g. 'PER'."},
        "start": {"type": "integer", "minimum": 0, "description": "First character."},
        "end": {"type": "integer", "minimum": 0, "description": "Past the last character."},
        "words": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 2,
            "maxItems": 2,
            "description": "The words it spans: [first, last + 1].",
        },
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Mean probability of its tags.",
        },
    },
}

_NER_RESPONSE = {
    "type": "object",
    "required": ["model", "entity_types", "results"],
    "properties": {
        "model": {"type": "string"},
        "entity_types": {"type": "array", "items": {"type": "string"}},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "text", "entities"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "text": {
                        "type": "string",
                        "description": "The text (pre-split words: joined by spaces).",
                    },
                    "entities": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Entity"},
                    },
                },
            },
        },
    },
}

_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}},
}

_MODELS = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"type": "string"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "object", "dim"],
                "properties": {"id": {"type": "string"}, "dim": {"type": "integer"}},
            },
        },
    },
}


def _openai_request(texts: dict[str, Any], config: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": _MODEL,
            "input": {"oneOf": [texts["items"], texts]},
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
            "user": {"type": "string"},
        },
    }


def _predict_request(texts: dict[str, Any], config: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "model": _DEFAULT_MODEL,
            "texts": texts,
            "pairs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "items": {"type": "string"},
                },
            },
        },
    }


def _words(texts: dict[str, Any], config: Any) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": config["MAX_TEXTS"],
        "description": "Pre-split sentences; at most MAX_CHARS characters each, joined by spaces.",
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1, "pattern": NOT_BLANK},
        },
    }


def _ner_request(texts: dict[str, Any], config: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Exactly one of 'texts' (raw strings) and 'words' (pre-split sentences).",
        "oneOf": [{"required": ["texts"]}, {"required": ["words"]}],
        "properties": {
            "model": {
                "type": ["string", "null"],
                "description": (
                    "A served tagger's name (GET /v1/models, task 'ner'); omitted or null: "
                    "the first served tagger."
                ),
            },
            "texts": texts,
            "words": _words(texts, config),
        },
    }


def _qa_request(config: Any) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": config["MAX_CHARS"],
            "pattern": NOT_BLANK}  # fmt: skip
    pair = {
        "type": "object",
        "required": ["question", "context"],
        "properties": {"question": text, "context": text},
    }
    return {
        "type": "object",
        "description": "One pair ('question' and 'context') or several ('pairs').",
        "oneOf": [
            {"required": ["question", "context"], "not": {"required": ["pairs"]}},
            {
                "required": ["pairs"],
                "not": {"anyOf": [{"required": ["question"]}, {"required": ["context"]}]},
            },
        ],
        "properties": {
            "model": {
                "type": ["string", "null"],
                "description": "A served question answerer (task 'qa'); omitted or null: the "
                "first one.",
            },
            "question": text,
            "context": text,
            "pairs": {
                "type": "array",
                "minItems": 1,
                "maxItems": config["MAX_TEXTS"],
                "items": pair,
            },  # fmt: skip
        },
    }


_QA_RESPONSE = {
    "type": "object",
    "required": ["model", "answers"],
    "properties": {
        "model": {"type": "string"},
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "answer", "score", "start", "end"],
                "properties": {
                    "index": {"type": "integer"},
                    "answer": {"type": "string", "description": "context[start:end]"},
                    "score": {"type": "number", "description": "Span probability."},
                    "start": {"type": "integer", "minimum": 0},
                    "end": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}


def spec(config: Any) -> dict[str, Any]:
    """The document, with this server's limits in the schemas."""
    texts = {**_TEXTS, "maxItems": config["MAX_TEXTS"]}
    # A text needs a non-space character: an empty one is refused (422), not embedded.
    texts["items"] = {"type": "string", "maxLength": config["MAX_CHARS"], "pattern": NOT_BLANK}
    text = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    html = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "featx server", "version": __version__},
        "components": {
            "schemas": {"Error": _ERROR, "Entity": _ENTITY},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/embeddings": _post(
                "Embeddings, OpenAI-compatible", _openai_request(texts, config), _OPENAI_RESPONSE
            ),
            "/embed": _post(
                "Embeddings with token counts and truncation flags",
                {
                    "type": "object",
                    "required": ["texts"],
                    "properties": {"texts": texts, "model": _DEFAULT_MODEL},
                },
                _EMBED_RESPONSE,
            ),
            "/predict": _post(
                "Labels and probabilities (or scores) from a trained head",
                _predict_request(texts, config),
                _PREDICT_RESPONSE,
            ),
            "/ner": _post(
                "Named entities with character offsets, from a tagger (featx train-ner)",
                _ner_request(texts, config),
                _NER_RESPONSE,
            ),
            "/qa": _post(
                "Extractive answers: spans of each context (featx finetune-qa)",
                _qa_request(config),
                _QA_RESPONSE,
            ),
            "/v1/models": _get("Served models", _json(_MODELS)),
            "/healthz": _get("Liveness (never needs a key)", _json(_STATUS), auth=False),
            "/readyz": _get(
                "Readiness: every model embeds a text now (never needs a key)",
                _json(_STATUS),
                auth=False,
                errors=(503,),
            ),
            "/metrics": _get("Prometheus metrics", text),
            "/openapi.json": _get("This document", _json({"type": "object"})),
            "/": _get("Playground page", html),
        },
    }
