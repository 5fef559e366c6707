"""Route assembly: every page and API of the daemon's one web app.

``/metrics`` (Prometheus), ``/healthz``, ``/status`` and ``/status/<smis>`` (the public
schools' status page, :mod:`monitord.http.status`), ``/tickets/<id>`` and
``/tickets/<id>/report.pdf`` (a ticket as the office's repair report form: people's names
and serial numbers, so only with an API bearer token or a signed link from a notification,
:mod:`monitord.domain.links`), the wall screen (:mod:`monitord.http.wall`), the report
pages (:mod:`monitord.http.reports`) and the JSON API (:mod:`monitord.http.api`).

Pages read the :class:`~monitord.http.ports.View` and change state only through the
:class:`~monitord.http.ports.Commands`.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from monitord.domain.access import can_see_ticket
from monitord.http.api.routes import routes as api_routes
from monitord.http.console import routes as console_routes
from monitord.http.console.auth import AuthService, SessionMiddleware, sign_in_link
from monitord.http.console.guard import (
    Forbidden,
    SignInRequired,
    TooLarge,
    forbidden,
    sign_in_required,
    too_large,
    user_of,
)
from monitord.http.metrics import CONTENT_TYPE, Exposition, build_registry
from monitord.http.metrics import PARTS as METRICS_PARTS
from monitord.http.ports import Commands, View
from monitord.http.reports import routes as report_routes
from monitord.http.server import (
    MAX_ID,
    SecurityHeaders,
    error_page,
    not_found,
    server_error,
)
from monitord.http.status import StatusPages
from monitord.http.wall import routes as wall_routes


def build_app(view: View, commands: Commands, *, clock: Callable[[], float] = time.time
              ) -> Starlette:
    """The site; ``clock`` is the sessions' (tests move it to expire them)."""
    registry = build_registry(view)
    auth = AuthService(view, clock)

    async def metrics(request: Request) -> Response:
        part = request.query_params.get("part", "all")
        if part not in METRICS_PARTS or set(request.query_params) - {"part"}:
            view.count_http_rejected("bad_request")
            return PlainTextResponse(
                "/metrics takes only part=" + "|".join(METRICS_PARTS) + "\n", status_code=400)
        return StreamingResponse(registry.stream(part), media_type=CONTENT_TYPE)

    async def healthz(_: Request) -> Response:
        report = dict(view.health())
        # "degraded" (e.g. the database cannot be written) still monitors: 200
        code = 200 if report.get("status") in ("ok", "degraded") else 503
        return JSONResponse(report, status_code=code)

    # 2,000 schools: cached rows and gzipped bodies (gzip level 6, in a thread); the
    # status page (300 schools × 30 day cells) compresses ~10× for slow school links.
    status_pages = StatusPages()

    async def status_page(request: Request) -> Response:
        params = request.query_params
        smis = request.path_params.get("smis")
        out = await status_pages.body(
            view.status_data(), lang=params.get("lang", "th"), now=time.time(),
            q=params.get("q", "")[:100], isp=params.get("isp", "")[:100], smis=smis,
            gzip_ok="gzip" in request.headers.get("accept-encoding", ""))
        if out is None:
            return error_page(404, "ไม่พบโรงเรียน", "school not found")
        body, gzipped = out
        headers = {"Vary": "Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return HTMLResponse(body, headers=headers)

    async def root(_: Request) -> Response:
        return RedirectResponse("/status")

    async def ticket_report(request: Request) -> Response:
        """A ticket as the office's repair report form (the links in notifications):
        ``/tickets/<id>`` HTML (``?lang=en``), ``/tickets/<id>/report.pdf`` to print.
        For a signed-in user who may see the ticket (domain.access.can_see_ticket; 403
        otherwise), a bearer token or a signed link; anyone else gets the same 401 (with a
        link to sign in) whether the ticket exists or not."""
        from monitord.reports import render_repair_html, render_repair_pdf
        from monitord.reports.from_ticket import report_from_ticket

        tid: int = request.path_params["tid"]
        user = user_of(request)
        data: dict[str, Any] | None = None
        if not view.ticket_access(request, tid):  # neither a signed link nor a token
            if user is None:
                return _sign_in_page(request.url.path)
            data = await view.ticket_for_web(tid) if 1 <= tid <= MAX_ID else None
            if data is not None and not can_see_ticket(user, data):
                view.count_http_rejected("forbidden")
                return error_page(403, "คุณไม่มีสิทธิ์ดูใบแจ้งซ่อมนี้",
                                  "you may not see this ticket")
        elif 1 <= tid <= MAX_ID:
            data = await view.ticket_for_web(tid)
        if data is None:
            return error_page(404, "ไม่พบใบแจ้งซ่อม", "ticket not found")
        lang = "en" if request.query_params.get("lang") == "en" else "th"
        report = report_from_ticket(data, lang=lang)
        if request.url.path.endswith(".pdf"):
            pdf = await asyncio.to_thread(render_repair_pdf, report)
            return Response(pdf, media_type="application/pdf", headers={
                "Content-Disposition": f'inline; filename="ticket-{data["id"]}.pdf"'})
        page = await asyncio.to_thread(render_repair_html, report)
        return HTMLResponse(page)

    # Security headers once, around everything (pages, wall, reports, metrics, the API);
    # inside them the session middleware (request.state.user/csrf, CSRF checks).
    app = Starlette(exception_handlers={404: not_found, 500: server_error,
                                        SignInRequired: sign_in_required,
                                        Forbidden: forbidden, TooLarge: too_large},
                    middleware=[Middleware(SecurityHeaders),
                                Middleware(SessionMiddleware, service=auth)], routes=[
        Route("/", root), Route("/metrics", metrics), Route("/healthz", healthz),
        Route("/status", status_page),
        Route("/status/{smis}", status_page),
        Route("/tickets/{tid:int}", ticket_report),
        Route("/tickets/{tid:int}/report.pdf", ticket_report),
        *wall_routes(view), *api_routes(view, commands), *report_routes(view),
        *console_routes(view, commands),
    ])
    app.state.auth = auth
    app.state.metrics = registry
    return app


def _sign_in_page(path: str) -> Response:
    """The 401 of a ticket page for a visitor: sign in (and come back), or a link/token."""
    link = html.escape(sign_in_link(path))
    body = ("<!doctype html><html lang=th><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'><title>401</title>"
            "<p>หน้านี้มีข้อมูลส่วนบุคคล: <a href=\"" + link + "\">เข้าสู่ระบบ</a> "
            "หรือเปิดจากลิงก์ในข้อความแจ้งเตือน (ยังไม่หมดอายุ) หรือด้วยโทเคนของเจ้าหน้าที่</p>"
            "<p lang=en>this page holds personal data: <a href=\"" + link + "\">sign in</a>, "
            "or open it from the link in a notification (before it expires) or with an "
            "officer's bearer token</p></html>")
    return HTMLResponse(body, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="monitord"'})


async def close_site(app: Starlette) -> None:
    """Close what the site opened (the sessions' database connection)."""
    auth = getattr(app.state, "auth", None)
    if isinstance(auth, AuthService):
        await auth.close()
    exposition = getattr(app.state, "metrics", None)
    if isinstance(exposition, Exposition):
        await exposition.close()
