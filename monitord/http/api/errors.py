"""One error style for the JSON API: RFC 9457 problem details.

Every error under ``/api/v1`` — ours (:class:`ApiError`), the application commands'
(:class:`monitord.http.ports.CommandError`), FastAPI's request validation, Starlette's
own 404/405 and any unexpected exception (500) — is answered as
``application/problem+json`` by the exception handlers and the :class:`ApiGuard`
middleware installed by :func:`install`.  The guard also puts the security headers on
every answer.  Request bodies are read by :func:`json_body`: 415 unless JSON, 413 beyond
:data:`MAX_BODY`, 400 if malformed, 422 if not a valid request.
"""

from __future__ import annotations

import http
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitord.http.api.models import FieldError, Problem
from monitord.http.ports import CommandError, Conflict, Invalid, NotFound, Unavailable

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
PROBLEM_JSON = "application/problem+json"
VALIDATION = "urn:monitord:problem:validation"
READ_ONLY = "urn:monitord:problem:read-only"

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered as problem JSON."""

    def __init__(self, status: int, detail: str, *, type_: str = "about:blank",
                 errors: Sequence[FieldError] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


def problem_response(status: int, detail: str, *, type_: str = "about:blank",
                     errors: Sequence[FieldError] | None = None,
                     headers: Mapping[str, str] | None = None) -> Response:
    problem = Problem(type=type_, title=http.HTTPStatus(status).phrase, status=status,
                      detail=detail)
    if errors is not None:
        problem.errors = list(errors)
    return JSONResponse(problem.model_dump(mode="json", exclude_unset=True),
                        status_code=status, media_type=PROBLEM_JSON,
                        headers=headers)


def command_error(exc: CommandError) -> ApiError:
    """An application command's refusal as the API's error."""
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, str(exc))
    if isinstance(exc, Unavailable):
        return ApiError(503, str(exc))
    problems = exc.problems if isinstance(exc, Invalid) else []
    return ApiError(422, str(exc), type_=VALIDATION, errors=[
        FieldError(loc=["body", *loc], msg=msg, type=kind) for loc, msg, kind in problems
    ] or None)


# -- handlers ------------------------------------------------------------------------

_STARLETTE_DETAIL = {
    404: f"no such resource under {PREFIX}; see {PREFIX}/openapi.json",
    405: "method not allowed for this resource; see the Allow header",
}


def _field_errors(errors: Sequence[Any]) -> list[FieldError]:
    return [FieldError(loc=list(e["loc"]), msg=str(e["msg"]), type=str(e["type"]))
            for e in errors]


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_response(exc.status, exc.detail, type_=exc.type, errors=exc.errors,
                            headers=exc.headers)


async def _command_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CommandError)
    return await _api_error(_, command_error(exc))


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = _STARLETTE_DETAIL.get(exc.status_code, str(exc.detail))
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    """Query problems are 400 (and come first), body problems 422."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    elsewhere = [e for e in errors if not e["loc"] or e["loc"][0] != "body"]
    if elsewhere:
        return problem_response(400, "invalid query parameter", type_=VALIDATION,
                                errors=_field_errors(elsewhere))
    return problem_response(422, "the request body is not valid", type_=VALIDATION,
                            errors=_field_errors(errors))


class ApiGuard:
    """ASGI middleware around the API: HEAD served as GET, and an unexpected exception
    answered as a 500 problem (logged once, with its traceback, instead of being passed on
    to the server).  The security headers come from the site's
    :class:`~monitord.http.server.SecurityHeaders`, like every other answer's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":  # the server leaves the body out
            scope = {**scope, "method": "GET"}
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception:
            log.exception("API request %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await problem_response(500, "internal error; see the daemon's log")(
                scope, receive, send)


def install(app: FastAPI) -> None:
    """The problem JSON handlers and the guard middleware."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(CommandError, _command_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(ApiGuard)


# -- request bodies ------------------------------------------------------------------


async def read_json(request: Request) -> Any:
    """The body as JSON: 415 unless application/json, 413 beyond MAX_BODY, 400 if
    malformed (NaN/Infinity and lone surrogates included)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "send the body as application/json",
                       headers={"Accept-Patch": "application/json"}
                       if request.method == "PATCH" else None)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(b"".join(chunks).decode("utf-8"), parse_constant=no_constants)
        # Lone surrogates (\udc80) decode but cannot be stored or sent as UTF-8.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, json.JSONDecodeError) else "not JSON"
        raise ApiError(400, f"the body is not valid JSON: {detail}"[:300]) from None
    return data


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency: the request body validated as ``model`` (422 with ``errors``).

    A dependency rather than a FastAPI body parameter so that it runs after the bearer
    token is checked (a write without a token is 401 whatever its body) and so that the
    media type, size and JSON checks above answer as documented; the operation declares
    its request body schema for the OpenAPI document (``openapi_extra``)."""

    async def body(request: Request) -> M:
        data = await read_json(request)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError([
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_context=False,
                                    include_input=False)]) from None

    return body


def ok(model: BaseModel | None, status: int = 200,
       headers: Mapping[str, str] | None = None) -> Response:
    """A successful answer: the model without the fields left unset (the token-only
    ones for an anonymous reader), or no content."""
    if model is None:
        return Response(status_code=status, headers=dict(headers or {}))
    return JSONResponse(model.model_dump(mode="json", exclude_unset=True),
                        status_code=status, headers=dict(headers or {}))


MAX_ID = 2**63 - 1  # SQLite INTEGER
_ID_RE = re.compile(r"^[0-9]{1,19}$")
#: a database id in the path: documented as an integer, read as text so that anything
#: else is a 404 like an id that does not exist
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def path_id(raw: str, what: str) -> int:
    """A path segment as a database id; 404 ``no <what> …`` unless 1..2^63-1."""
    if not _ID_RE.match(raw) or not 1 <= int(raw) <= MAX_ID:
        raise ApiError(404, f"no {what} {raw[:40]!r}")
    return int(raw)
