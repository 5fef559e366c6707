"""The JSON API (``/api/v1``): schools, devices, incidents, tickets, maintenance windows.

Reads (GET) are public and show what the public status page shows plus ticket and
incident data **without** people's names or officers' free texts; a request carrying a
valid bearer token also gets addresses, host names, serial numbers, models, people's
names, notes and free texts (PDPA: those are for the office).  Secrets (SNMP
communities, tokens, channel URLs) are never part of any answer.  Writes (PATCH a ticket,
POST/DELETE a maintenance window) need ``Authorization: Bearer <token>`` with a token
from ``http.api_tokens``; the token's ``name`` is recorded as the actor.  Without tokens
configured the API is read-only (writes get 401).

Every error is RFC 9457 problem JSON (``application/problem+json``), including unknown
paths and methods under ``/api/v1``.  ``/api/v1/openapi.json`` is an OpenAPI 3.1
document generated from the same operation table and pydantic models the handlers use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import http
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from monitord import __version__
from monitord.config import Config, Device
from monitord.domain.labels import STATE_TEXT
from monitord.domain.state import State
from monitord.domain.tickets import STATUS_TH, TicketError
from monitord.http.api.models import (
    TOKEN_ONLY,
    DeviceList,
    DeviceOut,
    DeviceQuery,
    EquipmentOut,
    FieldError,
    IncidentList,
    IncidentOut,
    IncidentQuery,
    Location,
    MaintenanceCreate,
    MaintenanceList,
    MaintenanceOut,
    MaintenanceQuery,
    OpenApiDocument,
    Problem,
    SchoolDetail,
    SchoolList,
    SchoolOut,
    SchoolQuery,
    TicketDetail,
    TicketEventOut,
    TicketList,
    TicketOut,
    TicketPatch,
    TicketQuery,
    WeeklyOut,
)
from monitord.http.server import SECURITY_HEADERS
from monitord.storage import Storage
from monitord.storage.maintenance import db_window

if TYPE_CHECKING:
    from monitord.app.daemon import Daemon

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
MIN_TOKEN_LENGTH = 16
PROBLEM_JSON = "application/problem+json"
API_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
VALIDATION = "urn:monitord:problem:validation"
READ_ONLY = "urn:monitord:problem:read-only"
_MAX_ID = 2**63 - 1
_ID_RE = re.compile(r"^[0-9]{1,19}$")
_IPV4 = re.compile(r"(?<![0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:])")
REDACTED = "[…]"


# -- problems ------------------------------------------------------------------------


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
                        headers={**API_HEADERS, **(headers or {})})


def _field_errors(exc: ValidationError, where: str) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        out.append(FieldError(loc=[where, *err["loc"]], msg=err["msg"], type=err["type"]))
    return out


_STARLETTE_DETAIL = {
    404: f"no such resource under {PREFIX}; see {PREFIX}/openapi.json",
    405: "method not allowed for this resource; see the Allow header",
}


class ProblemApp:
    """The mounted ASGI app: the API router, with every error (Starlette's own 404/405
    included) answered as problem JSON and unexpected exceptions as a 500 problem."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.router(scope, receive, tracking_send)
        except HTTPException as exc:
            if started:
                raise
            detail = _STARLETTE_DETAIL.get(exc.status_code, str(exc.detail))
            await problem_response(exc.status_code, detail, headers=exc.headers)(
                scope, receive, send)
        except ApiError as exc:
            if started:
                raise
            await problem_response(exc.status, exc.detail, type_=exc.type, errors=exc.errors,
                                   headers=exc.headers)(scope, receive, send)
        except Exception:
            log.exception("API request %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await problem_response(500, "internal error; see the daemon's log")(
                scope, receive, send)


# -- operations ----------------------------------------------------------------------


@dataclass
class Call:
    api: Api
    daemon: Daemon
    request: Request
    actor: str | None  # the token's name when the request carried a valid token
    query: Any = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        cfg = self.daemon.config
        if cfg is None:
            raise ApiError(503, "the daemon is starting")
        return cfg

    @property
    def storage(self) -> Storage:
        store = self.daemon.storage
        if store is None:
            raise ApiError(503, "the database is not open yet")
        return store

    @property
    def full(self) -> bool:
        return self.actor is not None


Handler = Callable[[Call], Awaitable[BaseModel | None]]


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # relative to PREFIX, Starlette and OpenAPI syntax alike
    op_id: str
    summary: str
    handler: Handler
    response: type[BaseModel] | None  # None: 204 No Content
    status: int = 200
    tag: str = ""
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    write: bool = False
    path_params: tuple[tuple[str, str, dict[str, Any]], ...] = ()  # name, text, schema
    problems: tuple[int, ...] = ()
    description: str = ""
    public: bool = False  # no auth at all (the OpenAPI document)


def usable_tokens(cfg: Config | None, warn: Callable[[str, str], None] | None = None
                  ) -> list[tuple[str, bytes]]:
    """(name, secret) of the ``http.api_tokens`` that can be read and are long enough."""
    out = []
    for tok in cfg.http.api_tokens if cfg is not None else []:
        try:
            secret = tok.token.reveal()
        except (LookupError, OSError) as exc:
            if warn is not None:
                warn(tok.name, f"API token {tok.name} unusable: {exc}")
            continue
        if len(secret) < MIN_TOKEN_LENGTH:
            if warn is not None:
                warn(tok.name, f"API token {tok.name} ignored: shorter than "
                     f"{MIN_TOKEN_LENGTH} characters")
            continue
        out.append((tok.name, secret.encode("utf-8")))
    return out


def token_holder(header: str | None, tokens: Sequence[tuple[str, bytes]]) -> str | None:
    """The name of the token an ``Authorization: Bearer …`` header carries, if valid
    (constant-time comparison with every token)."""
    if header is None:
        return None
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    found: str | None = None
    if scheme.lower() == "bearer" and credential:
        given = credential.encode("utf-8", "surrogateescape")
        for name, secret in tokens:
            if hmac.compare_digest(given, secret) and found is None:
                found = name
    return found


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._write_lock = asyncio.Lock()
        self._warned: set[str] = set()
        self.ops = operations()
        self._document: dict[str, Any] | None = None

    # -- auth --------------------------------------------------------------------

    def _tokens(self) -> list[tuple[str, bytes]]:
        return usable_tokens(self.daemon.config, self._warn)

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def authenticate(self, request: Request, required: bool) -> str | None:
        """The token's name; None for an anonymous read.  401 for a write without a
        valid token and for any request with a wrong one."""
        header = request.headers.get("authorization")
        tokens = self._tokens()
        if required and not tokens:
            raise ApiError(401, "the API is read-only: no bearer tokens are configured "
                                "(http.api_tokens)", type_=READ_ONLY,
                           headers={"WWW-Authenticate": 'Bearer realm="monitord"'})
        if header is None:
            if required:
                raise ApiError(401, "this request needs 'Authorization: Bearer <token>'",
                               headers={"WWW-Authenticate": 'Bearer realm="monitord"'})
            return None
        found = token_holder(header, tokens)
        if found is None:
            raise ApiError(401, "invalid bearer token", headers={
                "WWW-Authenticate": 'Bearer realm="monitord", error="invalid_token"'})
        return found

    # -- request plumbing ----------------------------------------------------------

    def endpoint(self, op: Op) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            actor = None if op.public else self.authenticate(request, op.write)
            call = Call(self, self.daemon, request, actor)
            if op.query is not None:
                try:
                    call.query = op.query.model_validate(dict(request.query_params))
                except ValidationError as exc:
                    raise ApiError(400, "invalid query parameter", type_=VALIDATION,
                                   errors=_field_errors(exc, "query")) from None
            if op.body is not None:
                data = await read_json(request)
                try:
                    call.body = op.body.model_validate(data)
                except ValidationError as exc:
                    raise ApiError(422, "the request body is not valid", type_=VALIDATION,
                                   errors=_field_errors(exc, "body")) from None
            result = await op.handler(call)
            if result is None:
                return Response(status_code=op.status, headers={**API_HEADERS, **call.headers})
            return JSONResponse(result.model_dump(mode="json", exclude_unset=True),
                                status_code=op.status, headers={**API_HEADERS, **call.headers})

        return run

    def routes(self) -> list[BaseRoute]:
        by_path: dict[str, list[Op]] = {}
        for op in self.ops:
            by_path.setdefault(op.path, []).append(op)
        inner: list[BaseRoute] = []
        for path, ops in by_path.items():
            handlers = {op.method: self.endpoint(op) for op in ops}

            async def dispatch(request: Request,
                               handlers: Mapping[str, Callable[[Request], Awaitable[Response]]]
                               = handlers) -> Response:
                method = "GET" if request.method == "HEAD" else request.method
                return await handlers[method](request)

            inner.append(Route(path, dispatch, methods=list(handlers)))
        return [Mount(PREFIX, app=ProblemApp(Router(inner)))]

    async def write_store(self) -> Storage:
        """A connection of our own for officers' changes: their transactions must not
        interleave with the state writer's on the daemon's connection."""
        store = self.daemon.storage
        if store is None:
            raise ApiError(503, "the database is not open yet")
        return await Storage.open(store.path)

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = openapi(self.ops)
        return self._document


async def read_json(request: Request) -> Any:
    """The body as JSON: 415 unless application/json, 413 beyond MAX_BODY, 400 if
    malformed."""
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


def routes(daemon: Daemon) -> list[BaseRoute]:
    """The routes this module serves from the running daemon."""
    return Api(daemon).routes()


# -- views ---------------------------------------------------------------------------


def scrub(text: str, own: Iterable[str] = ()) -> str:
    """Remove IP addresses and the device's own address, host name and serial from a
    probe's reason before it goes to an anonymous reader."""
    for secret in own:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)

    def ip(m: re.Match[str]) -> str:
        try:
            ipaddress.ip_address(m.group(0))
        except ValueError:
            return m.group(0)
        return REDACTED

    return _IPV6.sub(ip, _IPV4.sub(ip, text))


def _private(dev: Device | None) -> tuple[str, ...]:
    if dev is None:
        return ()
    return dev.address, dev.hostname, dev.serial


def device_out(call: Call, dev: Device, now: float) -> DeviceOut:
    d = call.daemon
    st = d.tracker.status(dev.id)
    state = d.engine.effective_state(dev.id, now)
    window = d.engine.in_maintenance(dev.id, now)
    reason = st.reason if st is not None else ""
    out = DeviceOut(
        id=dev.id, name=dev.display_name, kind=dev.kind, school=dev.school, parent=dev.parent,
        state=state, state_text=STATE_TEXT["th"][state],
        since=st.since if st is not None and st.since > 0 else None,
        reason=reason if call.full else scrub(reason, _private(dev)),
        flapping=st.flapping if st is not None else False,
        maintenance=window.name if window is not None else None)
    if call.full:
        out.address = dev.address
        out.hostname = dev.hostname
        out.serial = dev.serial
        out.brand_model = dev.brand_model
        out.unit = dev.unit
        out.probes = dev.probe_names
    return out


def school_views(call: Call) -> list[SchoolOut]:
    cfg = call.config
    data = call.daemon.status_data()
    out = []
    for row in data.schools:
        school = cfg.schools.get(row.smis)
        loc = school.location if school is not None else None
        down = sum(1 for dr in row.devices if dr.state in (State.DOWN, State.UNREACHABLE))
        out.append(SchoolOut(
            smis=row.smis, name=row.name, district=row.district, isp=row.isp,
            location=Location(lat=loc.lat, lon=loc.lon) if loc is not None else None,
            state=row.state, state_text=STATE_TEXT["th"][row.state], since=row.since,
            device_count=len(row.devices), devices_down=down))
    return out


def incident_out(call: Call, row: Mapping[str, Any]) -> IncidentOut:
    def ids(value: Any) -> list[str]:
        items = json.loads(value) if isinstance(value, str) else value
        return sorted(str(x) for x in items)

    root = str(row["root"])
    reason = str(row["reason"])
    if not call.full:
        reason = scrub(reason, _private(call.config.device_map().get(root)))
    return IncidentOut(
        id=row["id"], kind=row["kind"], root=root, school=row["school"],
        opened_at=row["opened_at"], closed_at=row["closed_at"], reason=reason,
        hypothesis=row["hypothesis"], affected=ids(row["affected"]),
        members=ids(row["members"]), parent_incident=row["parent_incident"],
        ticket_id=row["ticket_id"])


_TICKET_PUBLIC = ("id", "incident_id", "root", "school", "variant", "served_unit", "status",
                  "status_th", "opened_at", "down_since", "scheduled_for", "repair_started",
                  "repair_finished", "repaired_at", "closed_at", "recovery_seconds",
                  "reason", "hypothesis", "relapses", "updated_at", "office_name",
                  "group_name")
_TICKET_PRIVATE = ("event_text", "cause", "fix", "summary", "reporter_name",
                   "reporter_position", "repairer_name", "repairer_position")


def ticket_fields(call: Call, t: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {k: t[k] for k in _TICKET_PUBLIC}
    equipment = []
    for e in t.get("equipment") or []:
        item = EquipmentOut(device_id=str(e.get("device_id", "")), name=str(e.get("name", "")),
                            remark=str(e.get("remark", "")))
        if call.full:
            item.hostname = str(e.get("hostname", ""))
            item.brand_model = str(e.get("brand_model", ""))
            item.serial = str(e.get("serial", ""))
        equipment.append(item)
    data["equipment"] = equipment
    if call.full:
        data.update({k: t[k] for k in _TICKET_PRIVATE})
    else:
        own = _private(call.config.device_map().get(str(t["root"])))
        data["reason"] = scrub(str(t["reason"]), own)
        data["hypothesis"] = scrub(str(t["hypothesis"]), own)
    return data


def ticket_detail(call: Call, t: Mapping[str, Any]) -> TicketDetail:
    history = []
    for h in t.get("history") or []:
        ev = TicketEventOut(ts=h["ts"], status=h["status"],
                            status_th=STATUS_TH.get(h["status"], h["status"]))
        if call.full:
            ev.actor = h["actor"]
            ev.note = h["note"]
        history.append(ev)
    return TicketDetail(**ticket_fields(call, t), affected=[str(a) for a in t["affected"]],
                        history=history)


def _when(value: dt.datetime, tz: dt.tzinfo, what: str) -> float:
    try:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=tz)
        return aware.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ApiError(422, f"{what}: date-time out of range", type_=VALIDATION) from None


def _ticket_id(call: Call) -> int:
    raw = str(call.request.path_params.get("id", ""))
    if not _ID_RE.match(raw) or not 1 <= int(raw) <= _MAX_ID:
        raise ApiError(404, f"no ticket {raw[:40]!r}")
    return int(raw)


def _window_id(call: Call) -> int:
    raw = str(call.request.path_params.get("id", ""))
    if not _ID_RE.match(raw) or not 1 <= int(raw) <= _MAX_ID:
        raise ApiError(404, f"no maintenance window {raw[:40]!r} in the database")
    return int(raw)


def maintenance_db_out(call: Call, row: Mapping[str, Any], now: float) -> MaintenanceOut:
    cfg = call.config
    weekly = row["weekly"]
    try:
        active = db_window(row).active(dt.datetime.fromtimestamp(now, dt.UTC), cfg.tz)
    except (ValueError, KeyError, TypeError):
        active = False
    out = MaintenanceOut(
        id=row["id"], source="database", name=row["name"], start=row["start"], end=row["end"],
        weekly=WeeklyOut(days=[str(d) for d in weekly["days"]], hours=str(weekly["hours"]))
        if weekly else None,
        devices=list(row["devices"]), schools=list(row["schools"]), kinds=list(row["kinds"]),
        reason=row["reason"], active=active)
    if call.full:
        out.created_by = row["created_by"]
        out.created_at = row["created_at"]
    return out


async def refresh_maintenance(call: Call, store: Storage) -> None:
    """Put the windows in force now instead of at the daemon's next tick."""
    windows = [db_window(r) for r in await store.maintenance()]
    call.daemon.engine.set_maintenance([*call.config.maintenance_windows(), *windows])


# -- handlers ------------------------------------------------------------------------


async def list_schools(call: Call) -> SchoolList:
    q: SchoolQuery = call.query
    items = [s for s in school_views(call)
             if (q.district is None or s.district == q.district)
             and (q.isp is None or s.isp == q.isp)
             and (q.state is None or s.state == q.state)]
    return SchoolList(count=len(items), items=items)


async def get_school(call: Call) -> SchoolDetail:
    smis = str(call.request.path_params["smis"])
    for s in school_views(call):
        if s.smis == smis:
            now = time.time()
            devices = [device_out(call, dev, now) for dev in call.config.devices
                       if dev.school == smis]
            return SchoolDetail(**dict(s), devices=devices)
    raise ApiError(404, f"no school with SMIS code {smis[:40]!r}")


async def list_devices(call: Call) -> DeviceList:
    q: DeviceQuery = call.query
    now = time.time()
    items = []
    for dev in call.config.devices:
        if q.school is not None and (dev.school or "office") != q.school:
            continue
        if q.kind is not None and dev.kind != q.kind:
            continue
        out = device_out(call, dev, now)
        if q.state is None or out.state == q.state:
            items.append(out)
    return DeviceList(count=len(items), items=items)


async def get_device(call: Call) -> DeviceOut:
    dev_id = str(call.request.path_params["id"])
    dev = call.config.device_map().get(dev_id)
    if dev is None:
        raise ApiError(404, f"no device {dev_id[:80]!r}")
    return device_out(call, dev, time.time())


async def list_incidents(call: Call) -> IncidentList:
    q: IncidentQuery = call.query
    if q.all:
        rows = await call.storage.incidents(limit=q.limit)
    else:
        rows = [{"id": i.id, "kind": i.kind, "root": i.root, "school": i.school,
                 "opened_at": i.opened_at, "closed_at": i.closed_at, "reason": i.reason,
                 "hypothesis": i.hypothesis, "affected": i.affected, "members": i.members,
                 "parent_incident": i.parent_incident, "ticket_id": i.ticket_id}
                for i in sorted(call.daemon.engine.open_incidents(),
                                key=lambda i: (i.opened_at, i.id))]
    items = [incident_out(call, r) for r in rows]
    return IncidentList(count=len(items), items=items)


async def list_tickets(call: Call) -> TicketList:
    q: TicketQuery = call.query
    rows = await call.storage.list_tickets(q.status, include_closed=q.all)
    items = [TicketOut(**ticket_fields(call, t)) for t in rows]
    return TicketList(count=len(items), items=items)


async def get_ticket(call: Call) -> TicketDetail:
    tid = _ticket_id(call)
    try:
        t = await call.storage.get_ticket(tid)
    except TicketError:
        raise ApiError(404, f"no ticket {tid}") from None
    return ticket_detail(call, t)


def _ticket_change(call: Call) -> dict[str, Any]:
    body: TicketPatch = call.body
    tz = call.config.tz
    fields: dict[str, Any] = {k: getattr(body, k) for k in (
        "cause", "fix", "summary", "event_text", "repairer_name", "repairer_position")
        if getattr(body, k) is not None}
    for k in ("repair_started", "repair_finished"):
        value = getattr(body, k)
        if value is not None:
            fields[k] = _when(value, tz, k)
    started, finished = fields.get("repair_started"), fields.get("repair_finished")
    if started is not None and finished is not None and finished < started:
        raise ApiError(422, "repair_finished is before repair_started", type_=VALIDATION,
                       errors=[FieldError(loc=["body", "repair_finished"],
                                          msg="before repair_started", type="value_error")])
    scheduled = (_when(body.scheduled_for, tz, "scheduled_for")
                 if body.scheduled_for is not None else None)
    return {"status": body.status, "note": body.note, "scheduled_for": scheduled,
            "fields": fields}


async def patch_ticket(call: Call) -> TicketDetail:
    tid = _ticket_id(call)
    change = _ticket_change(call)
    assert call.actor is not None
    api = call.api
    async with api._write_lock:
        store = await api.write_store()
        try:
            try:
                t = await store.update_ticket(tid, call.actor, **change)
            except TicketError as exc:
                if str(exc).startswith("no ticket"):
                    raise ApiError(404, f"no ticket {tid}") from None
                raise ApiError(409, str(exc)) from None
        finally:
            await store.close()
    return ticket_detail(call, t)


async def list_maintenance(call: Call) -> MaintenanceList:
    q: MaintenanceQuery = call.query
    cfg = call.config
    now = time.time()
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    items = []
    for mc, window in zip(cfg.maintenance, cfg.maintenance_windows(), strict=True):
        end = window.end.timestamp() if window.end is not None else None
        if not q.all and end is not None and end <= now:
            continue
        items.append(MaintenanceOut(
            id=None, source="config", name=mc.name,
            start=window.start.timestamp() if window.start is not None else None, end=end,
            weekly=WeeklyOut(days=list(mc.weekly.days), hours=mc.weekly.hours[0])
            if mc.weekly is not None else None,
            devices=list(mc.devices), schools=list(mc.schools),
            kinds=[k.value for k in mc.kinds], reason=mc.reason,
            active=window.active(when, cfg.tz)))
    for row in await call.storage.maintenance(include_past=q.all):
        items.append(maintenance_db_out(call, row, now))
    return MaintenanceList(count=len(items), items=items)


async def _db_window_row(store: Storage, wid: int) -> Mapping[str, Any] | None:
    for row in await store.maintenance(include_past=True):
        if row["id"] == wid:
            return row
    return None


async def get_maintenance(call: Call) -> MaintenanceOut:
    wid = _window_id(call)
    row = await _db_window_row(call.storage, wid)
    if row is None:
        raise ApiError(404, f"no maintenance window {wid} in the database")
    return maintenance_db_out(call, row, time.time())


async def create_maintenance(call: Call) -> MaintenanceOut:
    body: MaintenanceCreate = call.body
    cfg = call.config
    devices = cfg.device_map()
    errors = [FieldError(loc=["body", "devices", i], msg=f"unknown device {d!r}",
                         type="unknown_reference")
              for i, d in enumerate(body.devices) if d not in devices]
    errors += [FieldError(loc=["body", "schools", i], msg=f"unknown school {s!r}",
                          type="unknown_reference")
               for i, s in enumerate(body.schools) if s not in cfg.schools]
    if errors:
        raise ApiError(422, "the window names devices or schools that are not configured",
                       type_=VALIDATION, errors=errors)
    start = _when(body.start, cfg.tz, "start") if body.start is not None else None
    end = _when(body.end, cfg.tz, "end") if body.end is not None else None
    if start is not None and end is not None and end <= start:
        raise ApiError(422, "'end' must be after 'start'", type_=VALIDATION,
                       errors=[FieldError(loc=["body", "end"], msg="not after start",
                                          type="value_error")])
    weekly = ({"days": list(body.weekly.days), "hours": body.weekly.hours}
              if body.weekly is not None else None)
    assert call.actor is not None
    api = call.api
    async with api._write_lock:
        store = await api.write_store()
        try:
            wid = await store.add_maintenance(
                body.name, start, end, weekly=weekly, devices=body.devices,
                schools=body.schools, kinds=[k.value for k in body.kinds], reason=body.reason,
                created_by=call.actor)
            row = await _db_window_row(store, wid)
            await refresh_maintenance(call, store)
        finally:
            await store.close()
    if row is None:
        raise ApiError(500, "the new window could not be read back")
    log.info("maintenance window %d %r added through the API by %s", wid, body.name,
             call.actor)
    call.headers["Location"] = f"{PREFIX}/maintenance/{wid}"
    return maintenance_db_out(call, row, time.time())


async def delete_maintenance(call: Call) -> None:
    wid = _window_id(call)
    api = call.api
    async with api._write_lock:
        store = await api.write_store()
        try:
            if not await store.delete_maintenance(wid):
                raise ApiError(404, f"no maintenance window {wid} in the database")
            await refresh_maintenance(call, store)
        finally:
            await store.close()
    log.info("maintenance window %d deleted through the API by %s", wid, call.actor)



async def get_openapi(call: Call) -> OpenApiDocument:
    return OpenApiDocument.model_validate(call.api.document())


# -- the operation table and the OpenAPI document --------------------------------------

_SMIS = ("smis", "the school's SMIS code", {"type": "string", "minLength": 1})
_DEVICE = ("id", "device id", {"type": "string",
                               "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"})
_INT_ID = {"type": "integer", "minimum": 1, "maximum": _MAX_ID}


def operations() -> list[Op]:
    """Every operation of the API: routes and the OpenAPI document are built from this."""
    ticket_id = ("id", "ticket id", _INT_ID)
    window_id = ("id", "maintenance window id (database windows)", _INT_ID)
    return [
        Op("GET", "/schools", "listSchools", "Schools with their current state", list_schools,
           SchoolList, tag="schools", query=SchoolQuery, problems=(400, 401)),
        Op("GET", "/schools/{smis}", "getSchool", "One school with its devices", get_school,
           SchoolDetail, tag="schools", path_params=(_SMIS,), problems=(401, 404)),
        Op("GET", "/devices", "listDevices", "Devices with their effective state",
           list_devices, DeviceList, tag="devices", query=DeviceQuery, problems=(400, 401)),
        Op("GET", "/devices/{id}", "getDevice", "One device", get_device, DeviceOut,
           tag="devices", path_params=(_DEVICE,), problems=(401, 404)),
        Op("GET", "/incidents", "listIncidents",
           "Open incidents (from memory), or all recent ones from the database",
           list_incidents, IncidentList, tag="incidents", query=IncidentQuery,
           problems=(400, 401)),
        Op("GET", "/tickets", "listTickets", "Repair tickets (not closed, unless asked)",
           list_tickets, TicketList, tag="tickets", query=TicketQuery, problems=(400, 401)),
        Op("GET", "/tickets/{id}", "getTicket", "One repair ticket with its history",
           get_ticket, TicketDetail, tag="tickets", path_params=(ticket_id,),
           problems=(401, 404)),
        Op("PATCH", "/tickets/{id}", "updateTicket",
           "An officer's change to a ticket (status, appointment, findings)", patch_ticket,
           TicketDetail, tag="tickets", body=TicketPatch, write=True,
           path_params=(ticket_id,), problems=(400, 401, 404, 409, 413, 415, 422),
           description="As `monitord tickets update/schedule/close`; the token's name is "
                       "recorded as the actor in the ticket's history."),
        Op("GET", "/maintenance", "listMaintenance",
           "Maintenance windows: from the config and from the database", list_maintenance,
           MaintenanceList, tag="maintenance", query=MaintenanceQuery, problems=(400, 401)),
        Op("POST", "/maintenance", "createMaintenance", "Add a maintenance window",
           create_maintenance, MaintenanceOut, status=201, tag="maintenance",
           body=MaintenanceCreate, write=True, problems=(400, 401, 413, 415, 422),
           description="As `monitord maintenance add`; in force at once.  Devices and "
                       "schools must exist in the config (422 otherwise)."),
        Op("GET", "/maintenance/{id}", "getMaintenance", "One database maintenance window",
           get_maintenance, MaintenanceOut, tag="maintenance", path_params=(window_id,),
           problems=(401, 404)),
        Op("DELETE", "/maintenance/{id}", "deleteMaintenance",
           "Delete a database maintenance window", delete_maintenance, None, status=204,
           tag="maintenance", write=True, path_params=(window_id,), problems=(401, 404),
           description="Windows written in the config file cannot be deleted here."),
        Op("GET", "/openapi.json", "getOpenApi", "This OpenAPI document", get_openapi,
           OpenApiDocument, tag="meta", public=True),
    ]


_PROBLEM_TEXT = {
    400: "malformed request: query parameter or JSON body (problem JSON; `errors` lists "
         "the query problems)",
    401: "missing or invalid bearer token (writes), invalid token (reads), or no tokens "
         "configured (the API is read-only)",
    404: "no such resource",
    409: "the change conflicts with the ticket's state (a closed ticket)",
    413: f"body larger than {MAX_BODY} bytes",
    415: "body not sent as application/json",
    422: "body valid JSON but not a valid request (`errors` lists the problems)",
}

API_DESCRIPTION = f"""\
JSON API of monitord: schools, devices, states, incidents, repair tickets and maintenance
windows of the area office's network.

* Instants are Unix seconds (UTC epoch); request date-times are RFC 3339, and naive ones
  are office local time (Asia/Bangkok).
* **Privacy (PDPA).** Without a token the API shows what the public status page shows
  (schools, devices by name and kind, states) plus incidents and tickets *without*
  people's names or officers' free texts: no addresses, host names, serial numbers,
  models, reporter/repairer names, history actors or notes, causes, fixes or summaries
  (IP addresses are removed from probe reasons).  A valid bearer token adds those
  fields (described as "{TOKEN_ONLY}").  Secrets (SNMP communities, tokens,
  notification URLs) are never part of any answer.
* **Writes** need `Authorization: Bearer <token>` with a token from `http.api_tokens`;
  the token's name is recorded as the actor.  Without tokens configured the API is
  read-only and writes get 401.  A wrong token gets 401 on reads too.
* **Errors** are RFC 9457 problem details (`application/problem+json`).
* Request bodies are limited to {MAX_BODY} bytes.
"""


def _query_schema(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a value is present or absent, never null."""
    sch = {k: v for k, v in prop.items() if k not in ("title", "description")}
    if sch.get("default", 0) is None:
        del sch["default"]
    branches = sch.pop("anyOf", None)
    if branches is not None:
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1:
            sch.update(rest[0])
        else:
            sch["anyOf"] = rest
    return sch


def openapi(ops: Sequence[Op]) -> dict[str, Any]:
    """The OpenAPI 3.1 document, generated from the operation table and its models."""
    ref = "#/components/schemas/{model}"
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in ops:
        if op.response is not None:
            models.append((op.response, "serialization"))
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.query is not None:
            models.append((op.query, "validation"))
    unique = list(dict.fromkeys(models))
    mapping, top = models_json_schema(unique, ref_template=ref)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def name(model: type[BaseModel], mode: JsonSchemaMode) -> str:
        return str(mapping[(model, mode)]["$ref"]).rsplit("/", 1)[-1]

    query_names = {name(op.query, "validation") for op in ops if op.query is not None}
    problem_ref = {"$ref": ref.format(model=name(Problem, "serialization"))}
    paths: dict[str, Any] = {}
    for op in ops:
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "description": text, "schema": sch}
            for n, text, sch in op.path_params]
        if op.query is not None:
            qs = schemas[name(op.query, "validation")]
            required = set(qs.get("required", []))
            for pname, prop in qs.get("properties", {}).items():
                psch = _query_schema(prop)
                params.append({"name": pname, "in": "query", "required": pname in required,
                               "description": prop.get("description", ""), "schema": psch})
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "OK" if op.status == 200 else
                              http.HTTPStatus(op.status).phrase}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": {
                "$ref": ref.format(model=name(op.response, "serialization"))}}}
        if op.status == 201:
            ok["headers"] = {"Location": {"description": "the new resource",
                                          "schema": {"type": "string"}}}
        responses[str(op.status)] = ok
        for code in op.problems:
            resp: dict[str, Any] = {"description": _PROBLEM_TEXT[code],
                                    "content": {PROBLEM_JSON: {"schema": problem_ref}}}
            if code == 401:
                resp["headers"] = {"WWW-Authenticate": {
                    "description": "Bearer", "schema": {"type": "string"}}}
            responses[str(code)] = resp
        responses["default"] = {"description": "any other error (e.g. 405, 500, 503)",
                                "content": {PROBLEM_JSON: {"schema": problem_ref}}}
        operation: dict[str, Any] = {
            "operationId": op.op_id, "summary": op.summary, "tags": [op.tag],
            "parameters": params, "responses": responses}
        if op.description:
            operation["description"] = op.description
        if op.public:
            operation["security"] = []
        elif op.write:
            operation["security"] = [{"bearerAuth": []}]
        else:
            operation["security"] = [{}, {"bearerAuth": []}]
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": ref.format(model=name(op.body, "validation"))}}}}
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "monitord API", "version": __version__,
                 "description": API_DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {k: v for k, v in schemas.items() if k not in query_names},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "a token from http.api_tokens: needed for writes; on reads "
                               "it adds the non-public fields"}},
        },
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in ops)],
    }
