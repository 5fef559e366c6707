"""The JSON API (``/api/v1``) as a FastAPI application mounted in the daemon's server.

Reads (GET) are public and show what the public status page shows plus ticket and
incident data **without** people's names or officers' free texts; a request carrying a
valid bearer token also gets addresses, host names, serial numbers, models, people's
names, notes and free texts (PDPA: those are for the office).  Secrets (SNMP
communities, tokens, channel URLs) are never part of any answer.  Writes (PATCH a ticket,
POST/DELETE a maintenance window) need ``Authorization: Bearer <token>`` with a token
from ``http.api_tokens``; the token's ``name`` is recorded as the actor.  Without tokens
configured the API is read-only (writes get 401).  Writes go through the application
commands (:class:`monitord.http.ports.Commands`), as the CLI's do.

Every error is RFC 9457 problem JSON (:mod:`monitord.http.api.errors`), including unknown
paths and methods under ``/api/v1``.  ``/api/v1/openapi.json`` is FastAPI's OpenAPI 3.1
document of these operations (:mod:`monitord.http.api.openapi`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from monitord import __version__
from monitord.http.api import maintenance, reads, tickets
from monitord.http.api.auth import ApiContext
from monitord.http.api.errors import PREFIX, install
from monitord.http.api.models import OpenApiDocument
from monitord.http.api.openapi import PUBLIC, document
from monitord.http.ports import Commands, View

meta = APIRouter(tags=["meta"])


@meta.get("/openapi.json", operation_id="getOpenApi", summary="This OpenAPI document",
          response_model=OpenApiDocument, response_description="OK", openapi_extra=PUBLIC)
async def get_openapi(request: Request) -> Response:
    app = request.app
    assert isinstance(app, FastAPI)
    if app.openapi_schema is None:
        app.openapi_schema = document(app)
    return JSONResponse(app.openapi_schema)


def build_api(view: View, commands: Commands) -> FastAPI:
    """The API as an ASGI application whose paths are relative to ``/api/v1``."""
    app = FastAPI(title="monitord API", version=__version__, openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.state.api = ApiContext(view, commands)
    for router in (reads.router, tickets.router, maintenance.router, meta):
        app.include_router(router)
    install(app)
    return app


def routes(view: View, commands: Commands) -> list[BaseRoute]:
    """The API mounted at ``/api/v1``, for the daemon's one HTTP server."""
    return [Mount(PREFIX, app=build_api(view, commands))]


def openapi_document(view: Any = None, commands: Any = None) -> dict[str, Any]:
    """The OpenAPI document without a running daemon (docs, tests)."""
    return document(build_api(view, commands))
