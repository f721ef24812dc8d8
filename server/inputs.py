"""Request input: the JSON body, texts and pre-split sentences, checked against the limits.

Every failure is an :class:`~.errors.ApiError` that says what to fix.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import current_app, request

from .errors import ApiError

# JSON Schema's pattern for "has a non-space character", spelled out: its \S is ECMAScript's,
# which counts U+001C..U+001F and U+0085 as text and U+FEFF as space, unlike Python's
# str.isspace() that the checks below use. The class lists exactly Python's whitespace.
NOT_BLANK = (
    "[^\\t-\\r\\u001c- \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def json_body() -> dict[str, Any]:
    """The request's JSON object (415 if not JSON, 400 if malformed or not an object)."""
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


def texts(value: Any, param: str, *, allow_str: bool = False) -> list[str]:
    """Check a list of texts: its type (400), then the configured limits and emptiness (422).

    An empty or whitespace-only text is refused: it has nothing to embed, and its vector
    (the special tokens alone) would look like an answer. Every endpoint reads texts here.
    """
    config = current_app.config
    if allow_str and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ApiError(
            400, "invalid_request_error", f"'{param}' must be a non-empty list of strings.", param
        )
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ApiError(
                400,
                "invalid_request_error",
                f"'{param}[{i}]' is {type(text).__name__}, not a string.",
                param,
            )
    if len(value) > config["MAX_TEXTS"]:
        raise ApiError(
            422,
            "invalid_request_error",
            f"'{param}' has {len(value)} texts; the limit is {config['MAX_TEXTS']} per request.",
            param,
        )
    for i, text in enumerate(value):
        if len(text) > config["MAX_CHARS"]:
            raise ApiError(
                422,
                "invalid_request_error",
                f"'{param}[{i}]' has {len(text)} characters; the limit is {config['MAX_CHARS']}.",
                param,
            )
        if not text.strip():
            raise ApiError(
                422,
                "invalid_request_error",
                f"'{param}[{i}]' is empty or only whitespace: there is nothing to embed; "
                "drop it or send text.",
                param,
            )
    return value


def words(value: Any, param: str) -> list[list[str]]:
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
            422,
            "invalid_request_error",
            f"'{param}' has {len(value)} sentences; the limit is {config['MAX_TEXTS']} "
            "per request.",
            param,
        )
    for i, sentence in enumerate(value):
        if not isinstance(sentence, list) or not sentence:
            raise ApiError(
                400,
                "invalid_request_error",
                f"'{param}[{i}]' must be a non-empty list of words (strings), "
                f"got {type(sentence).__name__}{' (empty)' if sentence == [] else ''}.",
                param,
            )
        for j, word in enumerate(sentence):
            if not isinstance(word, str) or not word.strip():
                got = type(word).__name__ if not isinstance(word, str) else repr(word)
                raise ApiError(
                    400 if not isinstance(word, str) else 422,
                    "invalid_request_error",
                    f"'{param}[{i}][{j}]' is {got}: each word must be a string with a "
                    "non-space character. Drop empty words.",
                    param,
                )
        n_chars = sum(len(w) for w in sentence) + len(sentence) - 1  # joined by single spaces
        if n_chars > config["MAX_CHARS"]:
            raise ApiError(
                422,
                "invalid_request_error",
                f"'{param}[{i}]' has {n_chars} characters (words joined by spaces); "
                f"the limit is {config['MAX_CHARS']}.",
                param,
            )
    return value


def qa_pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(question, context) pairs: ``question`` and ``context``, or ``pairs`` of both."""
    if ("pairs" in body) == ("question" in body or "context" in body):
        raise ApiError(
            400,
            "invalid_request_error",
            "Send either 'question' and 'context' (one pair) or 'pairs': a list of "
            "{'question': ..., 'context': ...} objects.",
            "pairs",
        )
    if "pairs" not in body:
        items: Any = [{"question": body.get("question"), "context": body.get("context")}]
        names = ["question", "context"]
    else:
        items = body["pairs"]
        if not isinstance(items, list) or not items:
            raise ApiError(
                400, "invalid_request_error", "'pairs' must be a non-empty list.", "pairs"
            )
        names = [f"pairs[{i}]" for i in range(len(items))]
    if len(items) > current_app.config["MAX_TEXTS"]:
        limit = current_app.config["MAX_TEXTS"]
        raise ApiError(
            422, "invalid_request_error", f"'pairs' has {len(items)} pairs; the limit is {limit}.",
            "pairs",
        )  # fmt: skip
    out = []
    for i, item in enumerate(items):
        where = names[i] if "pairs" in body else ""
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_request_error", f"'{where}' must be an object.", "pairs")
        pair = []
        for key in ("question", "context"):
            param = f"{where}.{key}" if where else key
            pair.append(_one_text(item.get(key), param))
        out.append((pair[0], pair[1]))
    return out


def _one_text(value: Any, param: str) -> str:
    """One question or context: a string (400), within MAX_CHARS and not blank (422)."""
    if not isinstance(value, str):
        what = "missing" if value is None else f"{type(value).__name__}, not a string"
        raise ApiError(400, "invalid_request_error", f"'{param}' is {what}.", param)
    limit = current_app.config["MAX_CHARS"]
    if len(value) > limit:
        raise ApiError(
            422, "invalid_request_error",
            f"'{param}' has {len(value)} characters; the limit is {limit}.", param,
        )  # fmt: skip
    if not value.strip():
        raise ApiError(
            422, "invalid_request_error",
            f"'{param}' is empty or only whitespace: a question needs both texts.", param,
        )  # fmt: skip
    return value
