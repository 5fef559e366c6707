"""The daemon's one HTTP server (Starlette on uvicorn, in the daemon's event loop).

Routes: ``/metrics`` (Prometheus), ``/healthz``, ``/status`` and ``/status/<smis>`` (the
public schools' status page, :mod:`monitord.http.status`), ``/tickets/<id>`` and
``/tickets/<id>/report.pdf`` (a ticket as the office's repair report form: people's names
and serial numbers, so only with an API bearer token or a signed link from a notification,
:mod:`monitord.domain.links`).  The wall screen (:mod:`monitord.http.wall`), the API and the report
pages come from :func:`monitord.app.daemon.web_routes`.  We bind the listening socket ourselves
so that a port in use is a clear error instead of uvicorn's ``sys.exit``.

Hostile clients: path ids are range-checked (1..2^63-1), unexpected errors get a Thai page
without a traceback, the server holds at most ``limit_concurrency`` connections (503
beyond) and the "accept() out of system resource" line asyncio logs when file descriptors
run out is let through once a minute (:class:`AcceptErrorFilter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import resource
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

from monitord.http.metrics import CONTENT_TYPE, render
from monitord.http.status import StatusSource, render_status
from monitord.thaidate import SANE_FIRST, SANE_LAST

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


BACKLOG = 128  # also how many accepts asyncio tries (and logs) per wake-up

PAGE_HEADERS = {
    **SECURITY_HEADERS,
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
}


MAX_ID = 2**63 - 1  # SQLite INTEGER
#: dates a request may name (reports): the one window every date input is held to
FIRST_DATE, LAST_DATE = SANE_FIRST, SANE_LAST
TicketSource = Callable[[int], Awaitable[dict[str, Any] | None]]
#: May this request see ticket ``id``? (a bearer token or a signed link)
TicketAccess = Callable[[Request, int], bool]


def error_page(status: int, thai: str, english: str,
               headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A short Thai (and English) error page; never a traceback."""
    body = (f"<!doctype html><html lang=th><meta charset=utf-8><title>{status}</title>"
            f"<p>{html.escape(thai)}</p><p lang=en>{html.escape(english)}</p></html>")
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


async def not_found(_: Request, __: Exception) -> Response:
    return error_page(404, "ไม่พบหน้านี้", "page not found")


async def server_error(_: Request, __: Exception) -> Response:
    return error_page(500, "เกิดข้อผิดพลาดภายในระบบ โปรดลองใหม่หรือแจ้งผู้ดูแลระบบ",
                      "internal error; see the daemon's log")


def build_app(registry: CollectorRegistry, health: Callable[[], Mapping[str, Any]],
              status: StatusSource | None = None,
              ticket: TicketSource | None = None,
              extra_routes: Sequence[BaseRoute] = (),
              ticket_access: TicketAccess | None = None) -> Starlette:
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
        page = render_status(status(), lang=params.get("lang", "th"), now=time.time(),
                             q=params.get("q", "")[:100], isp=params.get("isp", "")[:100],
                             smis=smis)
        if page is None:
            return error_page(404, "ไม่พบโรงเรียน", "school not found")
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def root(_: Request) -> Response:
        return RedirectResponse("/status")

    # Slow school links: the status page (300 schools × 30 day cells) compresses ~10×.
    gzip = [Middleware(GZipMiddleware, minimum_size=1400)]

    async def ticket_report(request: Request) -> Response:
        """A ticket as the office's repair report form (the links in notifications):
        ``/tickets/<id>`` HTML (``?lang=en``), ``/tickets/<id>/report.pdf`` to print.
        Only with a bearer token or a signed link; anyone else gets the same 401 whether
        the ticket exists or not."""
        from monitord.reports import render_repair_html, render_repair_pdf
        from monitord.reports.from_ticket import report_from_ticket

        tid: int = request.path_params["tid"]
        if ticket_access is None or not ticket_access(request, tid):
            return error_page(
                401, "หน้านี้มีข้อมูลส่วนบุคคล: เปิดได้จากลิงก์ในข้อความแจ้งเตือน (ยังไม่หมดอายุ) "
                "หรือด้วยโทเคนของเจ้าหน้าที่",
                "this page holds personal data: open it from the link in a notification "
                "(before it expires) or with an officer's bearer token",
                {"WWW-Authenticate": 'Bearer realm="monitord"'})
        data = await ticket(tid) if ticket is not None and 1 <= tid <= MAX_ID else None
        if data is None:
            return error_page(404, "ไม่พบใบแจ้งซ่อม", "ticket not found")
        lang = "en" if request.query_params.get("lang") == "en" else "th"
        report = report_from_ticket(data, lang=lang)
        if request.url.path.endswith(".pdf"):
            pdf = await asyncio.to_thread(render_repair_pdf, report)
            return Response(pdf, media_type="application/pdf", headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'inline; filename="ticket-{data["id"]}.pdf"'})
        page = await asyncio.to_thread(render_repair_html, report)
        return HTMLResponse(page, headers=PAGE_HEADERS)

    return Starlette(exception_handlers={404: not_found, 500: server_error}, routes=[
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
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (an office server's default soft
    limit of 1024 is a few hundred idle browsers away); return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def default_concurrency(open_files: int) -> int:
    """HTTP connections at most: half the open-files limit, the rest for the database,
    probes, MQTT and notifications."""
    return max(8, open_files // 2)


class AcceptErrorFilter(logging.Filter):
    """One line per ``every`` seconds for asyncio's "socket.accept() out of system
    resource" (logged with a traceback for every failed accept: 158 MB in 20 s when the
    file descriptors run out), saying how many were suppressed."""

    PREFIX = "socket.accept() out of system resource"

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last = -float("inf")
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.PREFIX):
            return True
        now = time.monotonic()
        if now - self._last < self.every:
            self._suppressed += 1
            return False
        exc = record.exc_info[1] if record.exc_info else None
        text = (f"{self.PREFIX}: {exc or 'unknown error'} — too many open connections "
                "(see http.limit_concurrency and the unit's LimitNOFILE)")
        if self._suppressed:
            text += f" ({self._suppressed} more suppressed)"
        record.msg, record.args = text, None
        record.exc_info = record.exc_text = None
        self._last, self._suppressed = now, 0
        return True


class HttpServer:
    def __init__(self, app: Starlette, sock: socket.socket,
                 limit_concurrency: int | None = None) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, server_header=False,
            limit_concurrency=limit_concurrency, backlog=BACKLOG,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._accept_filter = AcceptErrorFilter()
        logging.getLogger("asyncio").addFilter(self._accept_filter)

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
        logging.getLogger("asyncio").removeFilter(self._accept_filter)
