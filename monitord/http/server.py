"""The daemon's one HTTP server (Starlette on uvicorn, in the daemon's event loop), the
headers and error pages every page shares.  The routes are assembled by
:func:`monitord.http.site.build_app`.  We bind the listening socket ourselves so that a
port in use is a clear error instead of uvicorn's ``sys.exit``.

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
from collections.abc import Generator, Mapping

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


#: what every non-HTML answer (JSON, CSV, PDF, metrics) gets: nothing may run or frame it
DATA_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class SecurityHeaders:
    """ASGI middleware around the whole site, once: every answer gets the security headers
    (HTML the page policy, anything else the data policy) unless the route set its own
    value of a header (the wall's CSP, a report's Cache-Control)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {bytes(k).lower(): bytes(v) for k, v in headers}
                html_page = names.get(b"content-type", b"").startswith(b"text/html")
                defaults = _PAGE if html_page else _DATA
                headers += [(k, v) for k, v in defaults if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _raw(headers: Mapping[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


_PAGE, _DATA = _raw(PAGE_HEADERS), _raw(DATA_HEADERS)

MAX_ID = 2**63 - 1  # SQLite INTEGER
#: dates a request may name (reports): the one window every date input is held to
FIRST_DATE, LAST_DATE = SANE_FIRST, SANE_LAST


def error_page(status: int, thai: str, english: str,
               headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A short Thai (and English) error page; never a traceback."""
    body = (f"<!doctype html><html lang=th><meta charset=utf-8><title>{status}</title>"
            f"<p>{html.escape(thai)}</p><p lang=en>{html.escape(english)}</p></html>")
    return HTMLResponse(body, status_code=status, headers=headers)


async def not_found(_: Request, __: Exception) -> Response:
    return error_page(404, "ไม่พบหน้านี้", "page not found")


async def server_error(_: Request, __: Exception) -> Response:
    return error_page(500, "เกิดข้อผิดพลาดภายในระบบ โปรดลองใหม่หรือแจ้งผู้ดูแลระบบ",
                      "internal error; see the daemon's log")


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
