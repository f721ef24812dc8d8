"""JSON errors: every error the server answers is ``{"error": {type, message, param, code}}``.

One mapping for every endpoint: a client's mistake is a 4xx that says what to fix (400 for
a malformed request, 422 for a well-formed one whose values break a limit, with the limit);
a ``ValueError`` or ``TypeError`` from featx (bad input the views did not catch) is a 400,
never a 500. Load is not the client's fault but is theirs to act on: a full queue is a 429
and a request that waited past its timeout a 503, both with ``Retry-After``.
"""

from __future__ import annotations

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .batching import Overloaded


class ApiError(Exception):
    """A client error with an HTTP status, a type and a message that says what to fix."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param


def error_response(
    status: int,
    kind: str,
    message: str,
    param: str | None = None,
    retry_after_s: int | None = None,
) -> Response:
    """The JSON error body (OpenAI-compatible: the ``openai`` client shows ``message``)."""
    body = {"error": {"type": kind, "message": message, "param": param, "code": status}}
    response = jsonify(body)
    response.status_code = status
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


def install_errors(app: Flask) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return error_response(err.status, err.kind, err.message, err.param)

    @app.errorhandler(Overloaded)
    def _overloaded(err: Overloaded) -> Response:
        # OpenAI's type for a 429: its client (and most others) retry after Retry-After.
        return error_response(429, "rate_limit_error", str(err), None, err.retry_after_s)

    @app.errorhandler(TimeoutError)
    def _timeout(err: TimeoutError) -> Response:
        message = f"{err} The server is overloaded; retry later."
        return error_response(503, "timeout", message, None, 1)

    @app.errorhandler(ValueError)
    @app.errorhandler(TypeError)
    def _bad_input(err: Exception) -> Response:
        # featx checks its input and says what is wrong: that is the client's to fix.
        return error_response(400, "invalid_request_error", str(err))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        messages = {
            404: f"No endpoint {request.path}; see GET /openapi.json.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: (
                f"The request body is over the {app.config['MAX_CONTENT_LENGTH']} byte limit; "
                "send fewer or shorter texts per request."
            ),
        }
        kind = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        response = error_response(
            status, kind.get(status, "invalid_request_error"), messages.get(status, str(err))
        )
        # Keep the exception's own headers (405: Allow, required by RFC 9110), not its HTML type.
        for name, value in err.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        app.logger.exception("unexpected error (request %s)", g.get("request_id"))
        return error_response(500, "server_error", "Internal error; see the server log.")
