"""Maintenance windows in the browser: ``/console/maintenance`` lists the windows in
force and to come (``?all=1``: the ended ones too), from the config file and from the
database, and has the form to add one; ``POST /console/maintenance/{id}/end`` ends a
database window by deleting it (the command there is; the config's windows are edited in
the file).  Seeing them needs a user who sees every device (officers, technicians,
viewers, admins); changing them needs :attr:`~monitord.domain.access.Perm.MAINTENANCE`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from monitord.domain.access import Perm, User, can
from monitord.domain.activehours import DAY_NAMES
from monitord.domain.labels import KIND_TEXT
from monitord.http.console import render as r
from monitord.http.console.guard import Forbidden, lang_of, require
from monitord.http.ports import CommandError, Commands, Invalid, NotFound, View
from monitord.http.server import MAX_ID, error_page
from monitord.storage.maintenance import db_window
from monitord.thaidate import BANGKOK

_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True, slots=True)
class WindowRow:
    id: int | None  # None: from the config file
    name: str
    when: str
    scope: str
    reason: str
    created_by: str
    state: str  # now | future | past


def _hours_text(hours: str, lang: str) -> str:
    return f"{hours} น." if lang != "en" else hours


def _when_text(start: float | None, end: float | None, weekly: tuple[list[str], str] | None,
               lang: str) -> str:
    L = r.LABELS[lang]
    if weekly is not None:
        days = ", ".join(r.DAY_TEXT[lang].get(d, d) for d in weekly[0])
        return f"{L['m_weekly_on']}: {days} {_hours_text(weekly[1], lang)}"
    return f"{r.when_text(start, lang)} – {r.when_text(end, lang)}"


def _scope_text(devices: list[str], schools: list[str], kinds: list[str], lang: str,
                school_names: dict[str, str]) -> str:
    L = r.LABELS[lang]
    parts = []
    if devices:
        parts.append(f"{L['device']}: {', '.join(devices)}")
    if schools:
        parts.append(f"{L['school']}: " + ", ".join(
            f"{school_names.get(s, s)} ({s})" for s in schools))
    if kinds:
        parts.append(f"{L['kind']}: " + ", ".join(KIND_TEXT[lang].get(k, k) for k in kinds))
    return " · ".join(parts) or L["m_everything"]


def _state(active: bool, start: float | None, end: float | None, now: float) -> str:
    if active:
        return "now"
    if end is not None and end <= now:
        return "past"
    return "future"


def routes(view: View, commands: Commands) -> list[BaseRoute]:

    def may_see(user: User) -> None:
        if not r.can_see_maintenance(user):
            raise Forbidden()

    async def rows(lang: str, include_past: bool) -> list[WindowRow]:
        cfg = view.config
        store = view.storage
        now = time.time()
        when = datetime.fromtimestamp(now, UTC)
        tz = cfg.tz if cfg is not None else ZoneInfo("Asia/Bangkok")
        names = {smis: s.name for smis, s in cfg.schools.items()} if cfg else {}
        out: list[WindowRow] = []
        if cfg is not None:
            for mc, w in zip(cfg.maintenance, cfg.maintenance_windows(), strict=True):
                start = w.start.timestamp() if w.start is not None else None
                end = w.end.timestamp() if w.end is not None else None
                if not include_past and end is not None and end <= now:
                    continue
                weekly = (list(mc.weekly.days), mc.weekly.hours[0]) if mc.weekly else None
                out.append(WindowRow(
                    None, mc.name, _when_text(start, end, weekly, lang),
                    _scope_text(list(mc.devices), list(mc.schools),
                                [k.value for k in mc.kinds], lang, names),
                    mc.reason, r.LABELS[lang]["m_from_config"],
                    _state(w.active(when, tz), start, end, now)))
        if store is not None:
            for row in await store.maintenance(include_past=include_past):
                try:
                    active = db_window(row).active(when, tz)
                except (ValueError, KeyError, TypeError):
                    active = False
                weekly_row = row["weekly"]
                weekly = ([str(d) for d in weekly_row["days"]], str(weekly_row["hours"])
                          ) if weekly_row else None
                out.append(WindowRow(
                    int(row["id"]), row["name"],
                    _when_text(row["start"], row["end"], weekly, lang),
                    _scope_text(list(row["devices"]), list(row["schools"]),
                                list(row["kinds"]), lang, names),
                    row["reason"] or "", row["created_by"] or "",
                    _state(active, row["start"], row["end"], now)))
        order = {"now": 0, "future": 1, "past": 2}
        out.sort(key=lambda w: order[w.state])
        return out

    async def page(request: Request, user: User, *, status: int = 200, error: str = "",
                   problems: list[str] | None = None, form: dict[str, Any] | None = None
                   ) -> Response:
        lang = lang_of(request)
        include_past = request.query_params.get("all") == "1"
        ok = request.query_params.get("ok", "")
        flash = r.LABELS[lang].get(f"ok_m_{ok}", "") if ok.isidentifier() else ""
        return r.render(
            request, view, user, "console/maintenance.html", status=status,
            windows=await rows(lang, include_past), include_past=include_past,
            may_change=can(user, Perm.MAINTENANCE), flash=flash, error=error,
            problems=problems or [], form=form or {}, day_names=DAY_NAMES,
            kinds=list(KIND_TEXT[lang]), now_in=r.local_inputs(time.time()))

    async def list_page(request: Request) -> Response:
        user = require(request)
        may_see(user)
        return await page(request, user)

    async def add(request: Request) -> Response:
        user = require(request, Perm.MAINTENANCE)
        form = await r.read_form(request)
        lang = lang_of(request)
        tz = view.config.tz if view.config is not None else BANGKOK
        try:
            start = end = None
            weekly = None
            if r.text(form, "type", 10) == "weekly":
                hours = f"{r.text(form, 'from', 10)}-{r.text(form, 'to', 10)}"
                days = [d for d in form.getlist("days") if isinstance(d, str)][:7]
                weekly = (days, hours)
            else:
                start = _when(form, "start", tz)
                end = _when(form, "end", tz)
            await commands.add_maintenance(
                r.text(form, "name", 200), user.name, start=start, end=end, weekly=weekly,
                devices=_list(form, "devices"), schools=_list(form, "schools"),
                kinds=[k for k in form.getlist("kinds") if isinstance(k, str)][:20],
                reason=r.text(form, "reason", 1000))
        except CommandError as exc:
            details = [str(exc)]
            if isinstance(exc, Invalid):
                details += [f"{'.'.join(str(p) for p in where)}: {msg}"
                            for where, msg, _ in exc.problems if msg != str(exc)]
            status = 422 if isinstance(exc, Invalid) else 503
            head = "ข้อมูลไม่ถูกต้อง" if lang != "en" else "invalid input"
            values: dict[str, Any] = {k: v for k, v in form.multi_items()
                                      if isinstance(v, str)}
            values["days"] = form.getlist("days")
            values["kinds"] = form.getlist("kinds")
            return await page(request, user, status=status, error=head, problems=details,
                              form=values)
        q = "&lang=en" if lang == "en" else ""
        return RedirectResponse(f"/console/maintenance?ok=add{q}", status_code=303)

    async def end(request: Request) -> Response:
        user = require(request, Perm.MAINTENANCE)
        await r.read_form(request)
        wid = request.path_params["wid"]
        if not 1 <= wid <= MAX_ID:
            return error_page(404, "ไม่พบช่วงปิดปรับปรุง", "maintenance window not found")
        try:
            await commands.delete_maintenance(wid, user.name)
        except NotFound:
            return error_page(404, "ไม่พบช่วงปิดปรับปรุง", "maintenance window not found")
        except CommandError as exc:
            return error_page(503, "ระบบยังไม่พร้อม โปรดลองใหม่ภายหลัง", str(exc))
        q = "&lang=en" if lang_of(request) == "en" else ""
        return RedirectResponse(f"/console/maintenance?ok=end{q}", status_code=303)

    return [
        Route("/console/maintenance", list_page),
        Route("/console/maintenance", add, methods=["POST"]),
        Route("/console/maintenance/{wid:int}/end", end, methods=["POST"]),
    ]


def _list(form: FormData, key: str) -> list[str]:
    return [x for x in _SPLIT.split(r.text(form, key, 4000)) if x][:500]


def _when(form: FormData, prefix: str, tz: Any) -> float:
    try:
        return r.parse_local(r.text(form, f"{prefix}_date", 20),
                             r.text(form, f"{prefix}_time", 20), tz)
    except ValueError as exc:
        raise Invalid(str(exc), [((prefix,), str(exc), "value_error")]) from None
