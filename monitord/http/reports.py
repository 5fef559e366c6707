"""Reports over HTTP, from the read model's config and database.

* ``/reports`` — a small page with a form for each report (works without JavaScript);
* ``/reports/daily?date=YYYY-MM-DD&format=html|csv|pdf&lang=th|en`` — the daily
  connectivity report (default: today in the office's time zone, HTML, Thai);
* ``/reports/availability?from=YYYY-MM&to=YYYY-MM`` or ``?fy=2569`` (Thai fiscal year,
  Buddhist era), same ``format``/``lang`` — monthly availability per school and kind.

The reports show what the public status page shows (school names, districts, ISPs,
states) and nothing more: no addresses, host names or people.  Building one reads the
database through its own read-only connection in a worker thread; at most one report is
rendered at a time (PDF layout is CPU-heavy on a 2-core office server).  Dates and months
outside 2000-01-01..2100-12-31 are refused (400, a Thai error page), like every malformed
parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from monitord.http.ports import View
from monitord.http.server import FIRST_DATE, LAST_DATE, error_page
from monitord.reports import common, daily, monthly
from monitord.reports.common import Format, Lang

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.domain.availability import HistoryLoader

INDEX_TEXT: dict[Lang, dict[str, str]] = {
    "th": {"title": "รายงาน", "daily": "รายงานสถานะการเชื่อมต่ออินเทอร์เน็ตของโรงเรียนประจำวัน",
           "monthly": "รายงานอัตราการใช้งานได้รายเดือน", "date": "วันที่", "from": "ตั้งแต่เดือน",
           "to": "ถึงเดือน", "fy": "หรือปีงบประมาณ (พ.ศ.)", "format": "รูปแบบ", "go": "สร้างรายงาน",
           "status": "หน้าสถานะโรงเรียน"},
    "en": {"title": "Reports", "daily": "Daily report: schools' internet connectivity",
           "monthly": "Monthly availability report", "date": "Date", "from": "From month",
           "to": "To month", "fy": "or Thai fiscal year (Buddhist era)", "format": "Format",
           "go": "Create report", "status": "Schools' status page"},
}


class BadRequest(ValueError):
    pass


WINDOW = f"{FIRST_DATE.isoformat()}..{LAST_DATE.isoformat()}"


def _problem(status: int, message: str) -> Response:
    thai = {400: "คำขอรายงานไม่ถูกต้อง (วันที่ เดือน หรือรูปแบบ) โปรดตรวจสอบแล้วลองใหม่",
            503: "ระบบยังไม่พร้อม โปรดลองใหม่ภายหลัง"}.get(status, "เกิดข้อผิดพลาด")
    return error_page(status, thai, message)


def _check_months(first: tuple[int, int], last: tuple[int, int]) -> None:
    for year, month in (first, last):
        if not FIRST_DATE <= date(year, month, 1) <= LAST_DATE:
            raise BadRequest(f"months within {WINDOW}")


def _format(request: Request) -> Format:
    value = request.query_params.get("format", "html")
    for fmt in common.FORMATS:
        if value == fmt:
            return fmt
    raise BadRequest("format: html, csv or pdf")


def _respond(body: bytes, fmt: Format, name: str) -> Response:
    if fmt == "html":
        return Response(body, media_type=common.MEDIA_TYPES["html"])
    disposition = "attachment" if fmt == "csv" else "inline"
    return Response(body, media_type=common.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'{disposition}; filename="{name}"'})


#: builds one report from the config and a loader of history spans (in a thread)
Build = Callable[["Config", "HistoryLoader"], tuple[bytes, str]]


def routes(view: View) -> list[BaseRoute]:
    """``/reports``, ``/reports/daily`` and ``/reports/availability``."""

    def refuse(status: int, message: str) -> Response:
        if status == 400:
            view.count_http_rejected("bad_request")
        return _problem(status, message)

    async def handle(request: Request, build: Build, fmt: Format) -> Response:
        try:
            body, name = await view.read_history(build)
        except BadRequest as exc:
            return refuse(400, str(exc))
        except ValueError as exc:  # e.g. a date in the future
            return refuse(400, str(exc))
        except (RuntimeError, OSError):  # not started yet, or the database failed
            return refuse(503, "not ready")
        return _respond(body, fmt, name)

    async def daily_report(request: Request) -> Response:
        params = request.query_params
        try:
            fmt = _format(request)
            text = params.get("date", "").strip()
            day: date | None = None
            if text:
                try:
                    day = datetime.strptime(text, "%Y-%m-%d").date()
                except ValueError:
                    raise BadRequest("date: YYYY-MM-DD") from None
                if not FIRST_DATE <= day <= LAST_DATE:
                    raise BadRequest(f"date: within {WINDOW}")
        except BadRequest as exc:
            return refuse(400, str(exc))
        lang = common.lang_of(params.get("lang"))

        def build(cfg: Config, load: HistoryLoader) -> tuple[bytes, str]:
            report = daily.build_daily(cfg, load, day)
            return daily.render_daily(report, fmt, lang), daily.filename(report, fmt)

        return await handle(request, build, fmt)

    async def availability_report(request: Request) -> Response:
        params = request.query_params
        lang = common.lang_of(params.get("lang"))
        try:
            fmt = _format(request)
            fy_text = (params.get("fy") or params.get("fiscal_year") or "").strip()
            fy: int | None = None
            if fy_text:
                if not fy_text.isdigit() or not 2400 < int(fy_text) < 2700:
                    raise BadRequest("fy: a Buddhist-era year such as 2569")
                fy = int(fy_text)
                first, last = monthly.fiscal_months(fy)
            else:
                today = datetime.now(view.config.tz if view.config else None).date()
                first = monthly.parse_month(params.get("from") or f"{today.year}-{today.month}")
                last = monthly.parse_month(params.get("to") or f"{today.year}-{today.month}")
            _check_months(first, last)
            monthly.months_between(first, last)
        except ValueError as exc:
            return refuse(400, str(exc))

        def build(cfg: Config, load: HistoryLoader) -> tuple[bytes, str]:
            report = monthly.build_monthly(cfg, load, first, last, fiscal_year=fy, lang=lang)
            return monthly.render_monthly(report, fmt, lang), monthly.filename(report, fmt)

        return await handle(request, build, fmt)

    async def index(request: Request) -> Response:
        lang = common.lang_of(request.query_params.get("lang"))
        cfg = view.config
        tz = cfg.tz if cfg is not None else None
        today = datetime.now(tz).date()
        html = common.render_template("index.html", {
            "lang": lang, "T": INDEX_TEXT[lang], "office": cfg.office.name if cfg else "",
            "today": today.isoformat(), "month": f"{today.year}-{today.month:02d}",
            "fy": today.year + 543 + (1 if today.month >= 10 else 0)})
        return HTMLResponse(html)

    return [Route("/reports", index), Route("/reports/daily", daily_report),
            Route("/reports/availability", availability_report)]
