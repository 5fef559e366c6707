"""The daemon's one HTTP server (Starlette on uvicorn, in the daemon's event loop).

Routes: ``/metrics`` (Prometheus), ``/healthz``, ``/status`` and ``/status/<smis>`` (the
public schools' status page, :mod:`monitord.status`), ``/tickets/<id>`` and
``/tickets/<id>/report.pdf`` (a ticket as the office's repair report form).  The wall
screen (:mod:`monitord.wall`), the API and the report pages come from
:func:`monitord.daemon.web_routes`.  We bind the listening socket ourselves so that a port
in use is a clear error instead of uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from exporters.prometheus import CONTENT_TYPE, render
from monitord.status import StatusSource, render_status

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


PAGE_HEADERS = {
    **SECURITY_HEADERS,
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
}


TicketSource = Callable[[int], Awaitable[dict[str, Any] | None]]


def build_app(registry: CollectorRegistry, health: Callable[[], Mapping[str, Any]],
              status: StatusSource | None = None,
              ticket: TicketSource | None = None,
              extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    async def metrics(_: Request) -> Response:
        body = await asyncio.to_thread(render, registry)
        return Response(body, media_type=CONTENT_TYPE, headers=SECURITY_HEADERS)

    async def healthz(_: Request) -> Response:
        report = dict(health())
        # "degraded" (e.g. the database cannot be written) still monitors: 200
        code = 200 if report.get("status") in ("ok", "degraded") else 503
        return JSONResponse(report, status_code=code, headers=SECURITY_HEADERS)

    async def status_page(request: Request) -> Response:
        if status is None:
            return Response("status page not configured", status_code=404)
        params = request.query_params
        smis = request.path_params.get("smis")
        html = render_status(status(), lang=params.get("lang", "th"), now=time.time(),
                             q=params.get("q", "")[:100], isp=params.get("isp", "")[:100],
                             smis=smis)
        if html is None:
            return HTMLResponse("<!doctype html><title>404</title><p>ไม่พบโรงเรียน / "
                                "school not found</p>", status_code=404, headers=PAGE_HEADERS)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def root(_: Request) -> Response:
        return RedirectResponse("/status")

    # Slow school links: the status page (300 schools × 30 day cells) compresses ~10×.
    gzip = [Middleware(GZipMiddleware, minimum_size=1400)]

    async def ticket_report(request: Request) -> Response:
        """A ticket as the office's repair report form (the links in notifications):
        ``/tickets/<id>`` HTML (``?lang=en``), ``/tickets/<id>/report.pdf`` to print."""
        from monitord.reports import render_repair_html, render_repair_pdf
        from monitord.reports.from_ticket import report_from_ticket

        data = await ticket(request.path_params["tid"]) if ticket is not None else None
        if data is None:
            return HTMLResponse("<!doctype html><title>404</title><p>ไม่พบใบแจ้งซ่อม / "
                                "ticket not found</p>", status_code=404, headers=PAGE_HEADERS)
        lang = "en" if request.query_params.get("lang") == "en" else "th"
        report = report_from_ticket(data, lang=lang)
        if request.url.path.endswith(".pdf"):
            pdf = await asyncio.to_thread(render_repair_pdf, report)
            return Response(pdf, media_type="application/pdf", headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'inline; filename="ticket-{data["id"]}.pdf"'})
        html = await asyncio.to_thread(render_repair_html, report)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    return Starlette(routes=[
        Route("/", root), Route("/metrics", metrics), Route("/healthz", healthz),
        Route("/status", status_page, middleware=gzip),
        Route("/status/{smis}", status_page, middleware=gzip),
        Route("/tickets/{tid:int}", ticket_report),
        Route("/tickets/{tid:int}/report.pdf", ticket_report),
        *extra_routes,
    ])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon owns SIGTERM/SIGINT/SIGHUP; uvicorn must not install its own.
        yield


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket; raises OSError with a readable message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HttpServer:
    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, server_header=False
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        name = self._sock.getsockname()
        return str(name[0]), int(name[1])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="http")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except TimeoutError:
                self._task.cancel()
        self._sock.close()
