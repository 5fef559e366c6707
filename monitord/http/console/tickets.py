"""The repair workflow in the browser: ``/console/tickets`` (the list with filters and
counts), ``/console/tickets/{id}`` (facts, timeline, the actions the user may take),
``POST /console/tickets/{id}/{action}`` and ``/console/tickets/new`` (รับแจ้ง: a problem
reported by phone, LINE, letter or in person).

Tickets are read from ``view.storage`` (the read model the API reads too) and changed
only through the application commands; every page checks the user's rights
(:mod:`monitord.domain.access`): a school user sees only their school(s), a technician
the tickets assigned to them, a viewer reads without action forms.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from monitord.domain.access import (
    Action,
    Perm,
    Role,
    User,
    can_act,
    can_report,
    can_see_school,
    can_see_ticket,
    ticket_scope,
)
from monitord.domain.incidents import root_device
from monitord.domain.tickets import STATUSES, TicketError, TicketStatus
from monitord.http.console import render as r
from monitord.http.console.guard import Forbidden, lang_of, require
from monitord.http.ports import CommandError, Commands, Conflict, Invalid, NotFound, View
from monitord.http.server import MAX_ID, error_page
from monitord.storage import Storage
from monitord.thaidate import BANGKOK

SOURCES = ("phone", "line", "letter", "walk_in")
CONFIRM_NOTE = "โรงเรียนยืนยันว่าใช้งานได้แล้ว"
#: the roles a ticket may be assigned to
ASSIGNABLE = (Role.TECHNICIAN, Role.OFFICER, Role.ADMIN)
RECORD_FIELDS = ("event_text", "cause", "fix", "summary", "repairer_name", "repairer_position")
OFFICE = "office"  # the school select's value for the office's own equipment
#: rows on one list page at most (the filters narrow it down)
MAX_ROWS = 500

_CLOSED = TicketStatus.CLOSED.value


# -- reading ------------------------------------------------------------------------


def _storage(view: View) -> Storage:
    store = view.storage
    if store is None:
        raise _NotReady()
    return store


class _NotReady(Exception):
    pass


def _not_ready() -> Response:
    return error_page(503, "ระบบยังไม่พร้อม โปรดลองใหม่ภายหลัง", "not ready yet; try again later")


async def visible_tickets(view: View, user: User, *, include_closed: bool
                          ) -> list[dict[str, Any]]:
    """The tickets ``user`` may see: scoped in SQL (``ticket_scope``), and each one
    checked with ``can_see_ticket`` too."""
    scope = ticket_scope(user)
    if scope.nothing:
        return []
    rows = await _storage(view).list_tickets(
        None, include_closed=include_closed,
        schools=list(scope.schools) if scope.schools is not None else None,
        assigned_to=scope.assigned_to)
    return [t for t in rows if can_see_ticket(user, t)]


async def load_ticket(view: View, user: User, tid: int) -> dict[str, Any] | None:
    """The ticket (None: no such ticket); Forbidden when the user may not see it."""
    if not 1 <= tid <= MAX_ID:
        return None
    try:
        ticket: dict[str, Any] = await _storage(view).get_ticket(tid)
    except TicketError:
        return None
    if not can_see_ticket(user, ticket):
        raise Forbidden()
    return ticket


async def known_users(view: View) -> list[tuple[str, str, str]] | None:
    """(name, label, role) of the enabled users, when the storage keeps users
    (``list_users``); None: it does not."""
    list_users = getattr(view.storage, "list_users", None)
    if list_users is None:
        return None
    try:
        users = await list_users()
    except Exception:  # a page without names is better than no page
        return None
    out = []
    for u in users:
        def get(key: str, u: Any = u) -> Any:
            return u.get(key) if isinstance(u, Mapping) else getattr(u, key, None)
        if get("disabled"):
            continue
        role = get("role")
        name = str(get("name"))
        label = str(get("display_name") or name)
        out.append((name, label if label == name else f"{label} ({name})",
                    str(getattr(role, "value", role))))
    return sorted(out, key=lambda x: x[1])


def assignable(users: list[tuple[str, str, str]] | None) -> list[tuple[str, str]] | None:
    """(name, label) of the users a ticket may be assigned to; None: unknown (the form
    asks for a name)."""
    if users is None:
        return None
    roles = {x.value for x in ASSIGNABLE}
    return [(name, label) for name, label, role in users if role in roles]


# -- facts from the config ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    """What the config says about the schools and devices tickets mention."""

    schools: Mapping[str, Any]  # smis → config School
    devices: Mapping[str, Any]  # id → config Device

    @classmethod
    def of(cls, view: View) -> Facts:
        cfg = view.config
        if cfg is None:
            return cls({}, {})
        return cls(dict(cfg.schools), cfg.device_map())

    def school_name(self, smis: str | None, lang: str) -> str:
        if smis is None:
            return r.LABELS[lang]["office"]
        s = self.schools.get(smis)
        return s.name if s is not None else smis

    def district(self, smis: str | None) -> str:
        s = self.schools.get(smis) if smis else None
        return s.district if s is not None else ""

    def kinds(self, ticket: Mapping[str, Any]) -> set[str]:
        """The kind of the ticket's root device; for a reported problem also those of
        the devices it names."""
        out = set()
        root = self.devices.get(root_device(str(ticket.get("root") or "")))
        if root is not None:
            out.add(root.kind.value)
        if root is None or ticket.get("origin") == "manual":
            for e in ticket.get("equipment") or []:
                dev = self.devices.get(e.get("device_id", ""))
                if dev is not None:
                    out.add(dev.kind.value)
        return out

    def device_text(self, ticket: Mapping[str, Any], lang: str) -> str:
        equipment = ticket.get("equipment") or []
        root = self.devices.get(root_device(str(ticket.get("root") or "")))
        if root is not None:
            first = root.name or root.id
        elif ticket.get("origin") == "manual" and str(ticket.get("root")).startswith(
                "school:"):
            return r.LABELS[lang]["whole_school_short"]
        elif equipment:
            first = equipment[0].get("name") or equipment[0].get("device_id", "")
        else:
            first = str(ticket.get("root") or "")
        more = len(equipment) - 1
        return f"{first} (+{more})" if more > 0 else first


# -- the list ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    status: str = "active"  # active (not closed) | all | a status
    district: str = ""
    school: str = ""
    kind: str = ""
    age: int | None = None
    assigned: str = ""
    origin: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Filters:
        status = params.get("status", "active")
        if status not in ("active", "all", *STATUSES):
            status = "active"
        age_text = params.get("age", "").strip()
        age = int(age_text) if age_text.isdigit() and len(age_text) <= 5 else None
        origin = params.get("origin", "")
        return cls(status, params.get("district", "")[:100], params.get("school", "")[:20],
                   params.get("kind", "")[:40], age, params.get("assigned", "").strip()[:100],
                   origin if origin in ("auto", "manual") else "")

    def query(self, **override: Any) -> str:
        from urllib.parse import urlencode

        values = {"status": self.status, "district": self.district, "school": self.school,
                  "kind": self.kind, "age": "" if self.age is None else str(self.age),
                  "assigned": self.assigned, "origin": self.origin}
        values.update({k: str(v) for k, v in override.items()})
        return urlencode({k: v for k, v in values.items() if v})


def matches(t: Mapping[str, Any], f: Filters, facts: Facts, user: User, now: float, *,
            status: bool = True) -> bool:
    if status and f.status == "active" and t["status"] == _CLOSED:
        return False
    if status and f.status not in ("active", "all") and t["status"] != f.status:
        return False
    if f.district and facts.district(t.get("school")) != f.district:
        return False
    if f.school and (t.get("school") or OFFICE) != f.school:
        return False
    if f.kind and f.kind not in facts.kinds(t):
        return False
    if f.age is not None and now - float(t.get("opened_at") or now) < f.age * 86400:
        return False
    if f.assigned:
        who = user.name if f.assigned == "me" else f.assigned
        assigned = t.get("assigned_to") or ""
        if assigned != ("" if who == "-" else who):
            return False
    return not (f.origin and (t.get("origin") or "auto") != f.origin)


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    status: str
    school: str
    device: str
    opened: str
    age: str
    assigned: str
    acknowledged: bool
    origin: str


def routes(view: View, commands: Commands) -> list[BaseRoute]:

    async def console_root(_: Request) -> Response:
        return RedirectResponse("/console/tickets", status_code=303)

    async def ticket_list(request: Request) -> Response:
        user = require(request)
        lang = lang_of(request)
        f = Filters.of(request.query_params)
        facts = Facts.of(view)
        now = time.time()
        try:
            tickets = await visible_tickets(view, user, include_closed=True)
        except _NotReady:
            return _not_ready()
        # counts per status over the other filters; per option over the status filter
        others = [t for t in tickets if matches(t, f, facts, user, now, status=False)]
        by_status = Counter(t["status"] for t in others)
        active = sum(n for s, n in by_status.items() if s != _CLOSED)
        shown = [t for t in others if matches(t, f, facts, user, now)]
        shown.sort(key=lambda t: (-(t.get("opened_at") or 0), -t["id"]))
        in_status = [t for t in tickets
                     if matches(t, Filters(status=f.status), facts, user, now)]
        districts = Counter(facts.district(t.get("school")) for t in in_status)
        schools = Counter(t.get("school") or OFFICE for t in in_status)
        kinds = Counter(k for t in in_status for k in facts.kinds(t))
        origins = Counter(t.get("origin") or "auto" for t in in_status)
        # every option the user could pick (from the config), with its count
        seen = [smis for smis in facts.schools if can_see_school(user, smis)]
        for smis in seen:
            schools.setdefault(smis, 0)
            districts.setdefault(facts.district(smis), 0)
        for dev in facts.devices.values():
            if can_see_school(user, dev.school):
                kinds.setdefault(dev.kind.value, 0)
        for origin in ("auto", "manual"):
            origins.setdefault(origin, 0)
        rows = [Row(t["id"], t["status"], facts.school_name(t.get("school"), lang),
                    facts.device_text(t, lang), r.date_text(t.get("opened_at"), lang),
                    r.age_text(now - float(t.get("opened_at") or now), lang),
                    t.get("assigned_to") or "", bool(t.get("acknowledged_at")),
                    t.get("origin") or "auto")
                for t in shown[:MAX_ROWS]]
        return r.render(
            request, view, user, "console/tickets.html", f=f, rows=rows,
            matching=len(shown), total=len(tickets), by_status=by_status, active=active,
            count_all=len(others), statuses=STATUSES,
            districts=sorted((d, n) for d, n in districts.items() if d),
            schools=sorted(((s, facts.school_name(None if s == OFFICE else s, lang), n)
                            for s, n in schools.items()), key=lambda x: x[1]),
            kinds=sorted(kinds.items()), origins=sorted(origins.items()))

    async def detail_page(request: Request, user: User, ticket: dict[str, Any], *,
                          status: int = 200, error: str = "", problems: Sequence[str] = (),
                          form: Mapping[str, Any] | None = None, action: str = ""
                          ) -> Response:
        lang = lang_of(request)
        facts = Facts.of(view)
        st = ticket["status"]
        closed = st == _CLOSED

        def may(a: Action) -> bool:
            return can_act(user, ticket, a)

        available = {
            Action.ACKNOWLEDGE: may(Action.ACKNOWLEDGE) and not closed
            and not ticket.get("acknowledged_at"),
            Action.ASSIGN: may(Action.ASSIGN) and not closed,
            Action.SCHEDULE: may(Action.SCHEDULE) and st in ("open", "scheduled"),
            Action.START: may(Action.START) and st in ("open", "scheduled"),
            Action.FINISH: may(Action.FINISH) and st in ("open", "scheduled", "in_repair"),
            Action.RECORD: may(Action.RECORD),
            Action.CLOSE: may(Action.CLOSE) and not closed,
            Action.CONFIRM: may(Action.CONFIRM) and not may(Action.CLOSE) and st == "repaired",
        }
        everyone = await known_users(view)
        users = assignable(everyone)
        labels = {name: label for name, label, _ in everyone or []}
        sched = r.local_inputs(ticket.get("scheduled_for"))
        started = r.local_inputs(ticket.get("repair_started"))
        finished = r.local_inputs(ticket.get("repair_finished"))
        now_in = r.local_inputs(time.time())
        ok = request.query_params.get("ok", "")
        flash = r.LABELS[lang].get(f"ok_{ok}", "") if ok.isidentifier() else ""
        return r.render(
            request, view, user, "console/ticket.html", status=status, t=ticket,
            school=facts.school_name(ticket.get("school"), lang),
            district=facts.district(ticket.get("school")),
            device=facts.device_text(ticket, lang),
            available={a.value: v for a, v in available.items()},
            any_action=any(available.values()), users=users, user_labels=labels,
            sched=sched, started=started, finished=finished, now_in=now_in, flash=flash,
            error=error, problems=list(problems), form=form or {}, failed_action=action,
            pdf=f"/tickets/{ticket['id']}/report.pdf" + ("?lang=en" if lang == "en" else ""))

    async def ticket_detail(request: Request) -> Response:
        user = require(request)
        try:
            ticket = await load_ticket(view, user, request.path_params["tid"])
        except _NotReady:
            return _not_ready()
        if ticket is None:
            return error_page(404, "ไม่พบใบแจ้งซ่อม", "ticket not found")
        return await detail_page(request, user, ticket)

    async def apply(action: Action, ticket: Mapping[str, Any], user: User, form: FormData,
                    tz: Any) -> None:
        tid = int(ticket["id"])
        actor = user.name
        note = r.text(form, "note", 2000)
        if action is Action.ACKNOWLEDGE:
            await commands.acknowledge_ticket(tid, actor, note)
        elif action is Action.ASSIGN:
            assignee = r.text(form, "assignee", 100)
            await commands.assign_ticket(tid, actor, assignee or None, note)
        elif action is Action.SCHEDULE:
            when = _when(form, "date", "time", tz, "scheduled_for")
            await commands.schedule_ticket(tid, actor, when, note)
        elif action is Action.START:
            fields = {"repair_started": _optional_when(form, "start", tz, "repair_started")}
            await commands.update_ticket(tid, actor, status=TicketStatus.IN_REPAIR.value,
                                         note=note, fields=fields)
        elif action is Action.FINISH:
            fields = {"repair_started": _optional_when(form, "start", tz, "repair_started"),
                      "repair_finished": _optional_when(form, "finish", tz,
                                                        "repair_finished")}
            if fields["repair_started"] is None and not ticket.get("repair_started"):
                fields["repair_started"] = fields["repair_finished"] or time.time()
            await commands.update_ticket(tid, actor, status=TicketStatus.REPAIRED.value,
                                         note=note, fields=fields)
        elif action is Action.RECORD:
            changed = {k: r.text(form, k, 2000) for k in RECORD_FIELDS
                       if r.text(form, k, 2000) != (ticket.get(k) or "")}
            if changed or note:
                await commands.update_ticket(tid, actor, note=note, fields=changed)
        elif action is Action.CLOSE:
            await commands.close_ticket(tid, actor, note)
        elif action is Action.CONFIRM:
            if ticket["status"] != TicketStatus.REPAIRED:
                raise Conflict("not_repaired")
            await commands.close_ticket(tid, actor, CONFIRM_NOTE)

    async def ticket_action(request: Request) -> Response:
        user = require(request)
        try:
            action = Action(request.path_params["action"])
        except ValueError:
            return error_page(404, "ไม่พบหน้านี้", "page not found")
        form = await r.read_form(request)
        try:
            ticket = await load_ticket(view, user, request.path_params["tid"])
        except _NotReady:
            return _not_ready()
        if ticket is None:
            return error_page(404, "ไม่พบใบแจ้งซ่อม", "ticket not found")
        if not can_act(user, ticket, action):
            raise Forbidden()
        tz = view.config.tz if view.config is not None else BANGKOK
        try:
            await apply(action, ticket, user, form, tz)
        except CommandError as exc:
            lang = lang_of(request)
            status, message, problems = _explain(exc, lang)
            fresh = await load_ticket(view, user, ticket["id"]) or ticket
            return await detail_page(request, user, fresh, status=status, error=message,
                                     problems=problems, form=dict(form), action=action.value)
        lang_q = "&lang=en" if lang_of(request) == "en" else ""
        return RedirectResponse(f"/console/tickets/{ticket['id']}?ok={action.value}{lang_q}",
                                status_code=303)

    # -- รับแจ้ง: the manual report -----------------------------------------------------

    def school_choices(user: User, lang: str) -> list[tuple[str, str]]:
        facts = Facts.of(view)
        out = [(smis, f"{s.name} ({smis})") for smis, s in facts.schools.items()
               if can_report(user, smis)]
        out.sort(key=lambda x: x[1])
        if can_report(user, None):
            out.insert(0, (OFFICE, r.LABELS[lang]["office_eq"]))
        return out

    def devices_of(choice: str) -> list[tuple[str, str, str]]:
        if not choice:
            return []
        school = None if choice == OFFICE else choice
        cfg = view.config
        if cfg is None:
            return []
        return [(d.id, d.name or d.id, d.kind.value) for d in cfg.devices
                if d.school == school]

    async def new_form(request: Request, user: User, form: Mapping[str, Any], *,
                       status: int = 200, error: str = "",
                       problems: Mapping[str, str] | None = None,
                       general: Sequence[str] = ()) -> Response:
        lang = lang_of(request)
        choices = school_choices(user, lang)
        choice = str(form.get("school") or "")
        if len(choices) == 1 and not choice:
            choice = choices[0][0]
        if choice and choice not in {c for c, _ in choices}:
            choice = ""
        chosen = form.getlist("devices") if isinstance(form, FormData) else list(
            form.get("devices") or [])
        return r.render(request, view, user, "console/new.html", status=status,
                        choices=choices, choice=choice, devices=devices_of(choice),
                        chosen=set(chosen), form=form, sources=SOURCES, error=error,
                        problems=problems or {}, general=list(general),
                        stepped=form.get("step") == "devices")

    async def new_ticket(request: Request) -> Response:
        user = require(request, Perm.REPORT)
        if request.method == "GET":
            values: dict[str, Any] = dict(request.query_params)
            if user.role is Role.SCHOOL:  # the teacher reports for themself
                values.setdefault("reporter_name", user.label)
            return await new_form(request, user, values)
        form = await r.read_form(request)
        choice = r.text(form, "school", 20)
        if form.get("step") == "devices" or not choice:
            return await new_form(request, user, form)
        school = None if choice == OFFICE else choice
        if not can_report(user, school):
            raise Forbidden()
        devices = [d for d in form.getlist("devices") if isinstance(d, str)][:200]
        try:
            ticket = await commands.report_problem(
                user.name, school=school, devices=devices, source=r.text(form, "source", 20),
                reporter_name=r.text(form, "reporter_name", 300),
                reporter_phone=r.text(form, "reporter_phone", 100),
                reporter_position=r.text(form, "reporter_position", 300),
                problem=r.text(form, "problem", 4000))
        except CommandError as exc:
            lang = lang_of(request)
            status, message, general = _explain(exc, lang)
            fields: dict[str, str] = {}
            if isinstance(exc, Invalid):
                for where, msg, _ in exc.problems:
                    if where and isinstance(where[0], str):
                        fields.setdefault(where[0], msg)
            return await new_form(request, user, form, status=status, error=message,
                                  problems=fields, general=general)
        lang_q = "&lang=en" if lang_of(request) == "en" else ""
        return RedirectResponse(f"/console/tickets/{ticket['id']}?ok=new{lang_q}",
                                status_code=303)

    return [
        Route("/console", console_root),
        Route("/console/", console_root),
        Route("/console/tickets", ticket_list),
        Route("/console/tickets/new", new_ticket, methods=["GET", "POST"]),
        Route("/console/tickets/{tid:int}", ticket_detail),
        Route("/console/tickets/{tid:int}/{action}", ticket_action, methods=["POST"]),
    ]


def _when(form: FormData, day_key: str, time_key: str, tz: Any, field: str) -> float:
    try:
        return r.parse_local(r.text(form, day_key, 20), r.text(form, time_key, 20), tz)
    except ValueError as exc:
        raise Invalid(str(exc), [((field,), str(exc), "value_error")]) from None


def _optional_when(form: FormData, prefix: str, tz: Any, field: str) -> float | None:
    day, clock = r.text(form, f"{prefix}_date", 20), r.text(form, f"{prefix}_time", 20)
    if not day and not clock:
        return None
    return _when(form, f"{prefix}_date", f"{prefix}_time", tz, field)


_KIND_TH = {
    Invalid: (422, "ข้อมูลไม่ถูกต้อง"),
    Conflict: (409, "ทำรายการนี้ไม่ได้ในสถานะปัจจุบันของใบแจ้งซ่อม"),
    NotFound: (404, "ไม่พบรายการ"),
}
_KIND_EN = {Invalid: "invalid input", Conflict: "not possible in the ticket's current status",
            NotFound: "not found"}


def _explain(exc: CommandError, lang: str) -> tuple[int, str, list[str]]:
    """(HTTP status, a headline in the page's language, the details) of a refused
    command."""
    if str(exc) == "not_repaired":
        return 409, r.LABELS[lang]["not_repaired"], []
    for kind, (status, thai) in _KIND_TH.items():
        if isinstance(exc, kind):
            head = thai if lang != "en" else _KIND_EN[kind]
            details = [str(exc)]
            if isinstance(exc, Invalid):
                details += [f"{'.'.join(str(p) for p in where)}: {msg}"
                            for where, msg, _ in exc.problems if msg != str(exc)]
            return status, head, details
    return 503, ("ระบบยังไม่พร้อม โปรดลองใหม่ภายหลัง" if lang != "en"
                 else "not available; try again later"), [str(exc)]
