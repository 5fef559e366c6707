"""The NOC wall screen (``/wall``): one 1920×1080 TV in the office, read from 5 m away.

Routes:

* ``/wall`` — server-rendered HTML (Thai; ``?lang=en``), dark theme, huge figures, no
  interaction and no scrolling.  Works without JavaScript (``<meta refresh>`` every
  minute); with it, the page follows the live stream below and updates in place.
* ``/wall/events`` — server-sent events: a full JSON snapshot on connect, then whenever
  something changed (checked every second) and at least every ``HEARTBEAT_SECONDS`` as a
  heartbeat (durations move on).  The stream ends when the client goes away or the
  daemon stops.  At most ``http.max_sse_clients`` streams are open at once (each holds a
  connection and a file descriptor); beyond, 429 with ``Retry-After`` (the page then
  falls back to polling ``/wall/data.json``).
* ``/wall/data.json`` — the same snapshot, for the script's polling fallback.

Under the offline schools it lists the unstable (DEGRADED) devices with their loss over
the loss window (monitord.domain.state), worst first.

What it shows is read from the read model (:class:`monitord.http.ports.View`: states,
incidents, tickets, and the last state transitions and ticket status changes from the
database).  Devices
appear by their display names only, never by address; every string from the config is
escaped (Jinja2 autoescape in the page, ``textContent`` in the script).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from monitord.domain.incidents import condition_of, group_label
from monitord.domain.labels import KIND_TEXT, STATE_TEXT, TICKET_STATUS_TEXT
from monitord.domain.school import OFFLINE_STATES, ONLINE_STATES
from monitord.domain.state import State
from monitord.domain.tickets import TicketStatus
from monitord.http.ports import View
from monitord.http.server import PAGE_HEADERS
from monitord.thaidate import BANGKOK, format_date, format_duration, month_name

if TYPE_CHECKING:
    from monitord.config import Config, Device
    from monitord.domain.incidents import Incident

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
HEARTBEAT_SECONDS = 5.0
CHECK_SECONDS = 1.0
CACHE_SECONDS = 0.9
#: the counts over all devices (down, unreachable, DLTV, lossy) are this old at most
FACTS_SECONDS = 2.9
#: a pass over 20,000 devices lets the event loop run after this many seconds
SLICE_SECONDS = 0.02
EVENT_ROWS = 10
DOWN_ROWS = 8  # rows of down schools that fit at 1920×1080 (the rest: "and N more")
LOSSY_ROWS = 3  # rows of lossy (DEGRADED) devices under them, worst loss first

WALL_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"] + "; connect-src 'self'",
}
STREAM_HEADERS = {"X-Accel-Buffering": "no"}

LABELS: dict[str, dict[str, str]] = {
    "th": {
        "title": "ศูนย์เฝ้าระวังเครือข่าย", "online": "โรงเรียนออนไลน์",
        "offline": "โรงเรียนออฟไลน์", "of": "จาก", "schools": "แห่ง",
        "devices_down": "อุปกรณ์ขัดข้อง (ต้นเหตุ)", "unreachable": "เข้าถึงไม่ได้",
        "devices": "เครื่อง", "dltv": "เครื่องรับ DLTV ไม่มีสัญญาณ",
        "tickets": "ใบแจ้งซ่อมที่ยังเปิด", "upstream": "ผู้ให้บริการขัดข้อง",
        "upstream_schools": "กระทบ", "down_list": "โรงเรียนที่ออฟไลน์ (นานที่สุดก่อน)",
        "none_down": "ทุกโรงเรียนออนไลน์", "more": "และอีก {n} แห่ง", "events": "เหตุการณ์ล่าสุด",
        "no_events": "ยังไม่มีเหตุการณ์", "updated": "ปรับปรุงล่าสุด",
        "stale": "ขาดการเชื่อมต่อกับเซิร์ฟเวอร์ — ข้อมูลอาจไม่เป็นปัจจุบัน",
        "isp_outage": "ผู้ให้บริการขัดข้อง", "ticket": "ใบแจ้งซ่อม", "ticket_unit": "ใบ",
        "office": "สำนักงาน",
        "district_short": "อ.",
        "outage_word": "ขัดข้อง",
        "lossy": "อุปกรณ์ไม่เสถียร (เสียแพ็กเก็ตในช่วงล่าสุด)", "loss": "เสีย {p}%",
        "rounds": "{n} รอบ",
    },
    "en": {
        "title": "Network operations", "online": "Schools online",
        "offline": "Schools offline", "of": "of", "schools": "schools",
        "devices_down": "Devices down (root causes)", "unreachable": "unreachable",
        "devices": "devices", "dltv": "DLTV receivers without signal",
        "tickets": "Open repair tickets", "upstream": "ISP (upstream) outages",
        "upstream_schools": "affecting", "down_list": "Schools offline (longest first)",
        "none_down": "All schools online", "more": "and {n} more", "events": "Latest events",
        "no_events": "No events yet", "updated": "Updated",
        "stale": "Lost contact with the server — data may be out of date",
        "isp_outage": "ISP outage", "ticket": "Ticket", "ticket_unit": "tickets",
        "office": "Office",
        "district_short": "",
        "outage_word": "outage",
        "lossy": "Unstable devices (recent packet loss)", "loss": "{p}% loss",
        "rounds": "{n} rounds",
    },
}
TICKET_STATUS = TICKET_STATUS_TEXT
SEVERITY = {State.DOWN: "bad", State.UNREACHABLE: "bad", State.UP: "good",
            State.DEGRADED: "warn", State.MAINTENANCE: "info", State.UNKNOWN: "info"}
#: SNMP traps shown as a warning on the wall (the rest: info)
WARN_TRAPS = frozenset({"linkDown", "coldStart", "warmStart", "authenticationFailure",
                        "upsOnBattery"})
TICKET_SEVERITY: dict[str, str] = {TicketStatus.OPEN: "bad", TicketStatus.REPAIRED: "good",
                                    TicketStatus.CLOSED: "good"}


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.StrictUndefined)


_ENV = _env()


def _lang(request: Request) -> str:
    return "en" if request.query_params.get("lang") == "en" else "th"


def duration_text(seconds: float, lang: str) -> str:
    seconds = max(0.0, seconds)
    if lang == "th":
        return format_duration(seconds)
    secs = int(seconds)
    if secs < 60:
        return f"{secs} s"
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{n} {u}" for n, u in ((days, "d"), (hours, "h"), (rest // 60, "min")) if n]
    return " ".join(parts)


def short_duration(seconds: float, lang: str) -> str:
    """The two largest units, for the wall's narrow column: "3 วัน 23 ชม.", "2 ชม. 5 นาที"."""
    secs = int(max(0.0, seconds))
    if secs >= 86400:
        secs -= secs % 3600
    elif secs >= 3600:
        secs -= secs % 60
    text = duration_text(secs, lang)
    return text.replace("ชั่วโมง", "ชม.") if lang == "th" else text


def short_school_name(name: str, lang: str) -> str:
    """The wall lists only schools: "โรงเรียนบ้านหนองน้ำใส" → "บ้านหนองน้ำใส"."""
    prefix = "โรงเรียน"
    if lang == "th" and name.startswith(prefix) and len(name) > len(prefix) + 1:
        return name[len(prefix):].strip()
    return name


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(BANGKOK)


def time_text(ts: float, now: float, lang: str) -> str:
    """"14:05" today, "23 พ.ย. 14:05" on another day (Bangkok time)."""
    when, today = _local(ts), _local(now)
    clock = f"{when:%H:%M}"
    if when.date() == today.date():
        return clock
    if lang == "th":
        return f"{when.day} {month_name(when.month, abbreviated=True)} {clock}"
    return f"{when:%d %b} {clock}"


def updated_text(now: float, lang: str) -> str:
    when = _local(now)
    if lang == "th":
        return f"{format_date(when, abbreviated=True)} เวลา {when:%H:%M:%S} น."
    return f"{when:%d %b %Y} (B.E. {when.year + 543}) {when:%H:%M:%S}"


def _looks_like_address(text: str, dev: Device) -> bool:
    if text in (dev.address, dev.hostname):
        return True
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def device_label(dev: Device, lang: str) -> str:
    """The device's display name, never its address (a bare-IP id becomes its kind)."""
    name = dev.display_name
    if _looks_like_address(name, dev):
        return KIND_TEXT[lang].get(dev.kind.value, dev.kind.value)
    return name


def _where(cfg: Config, dev: Device, lang: str) -> str:
    if dev.school is not None and (school := cfg.schools.get(dev.school)) is not None:
        return school.name
    return dev.unit or LABELS[lang]["office"]


@dataclass(frozen=True, slots=True)
class _Facts:
    """What both languages' snapshots count from all devices, read at most every
    :data:`FACTS_SECONDS` (the schools' states: at each snapshot)."""

    upstream: list[Incident]
    in_upstream: frozenset[str]
    gateways: dict[str, tuple[str, ...]]
    roots: int
    unreachable: int
    dltv_total: int
    dltv_no_signal: int
    tickets_open: int
    #: DEGRADED devices with a loss window: (device, loss ratio, mean RTT, rounds)
    lossy: list[tuple[Device, float, float | None, int]]


class Wall:
    """Builds snapshots of the read model (cached briefly: many screens, one query).

    At 20,000 devices one pass over the devices (:class:`_Facts`) serves both languages;
    each language then formats only what it lists (offline schools, lossy devices)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._facts: tuple[float, _Facts] | None = None
        self._device_list: tuple[Config, list[tuple[Device, bool]]] | None = None
        self._json: dict[str, tuple[dict[str, Any], str]] = {}
        self._lock = asyncio.Lock()

    async def snapshot(self, lang: str) -> dict[str, Any]:
        async with self._lock:
            hit = self._cache.get(lang)
            if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
                return hit[1]
            data = await self._build(lang, time.time())
            self._cache[lang] = (time.monotonic(), data)
            return data

    def dumped(self, lang: str, data: dict[str, Any]) -> str:
        """``data`` (a snapshot of ``lang``) as JSON, once per snapshot for all streams."""
        hit = self._json.get(lang)
        if hit is not None and hit[0] is data:
            return hit[1]
        text = _dump(data)
        self._json[lang] = (data, text)
        return text

    def _devices(self, cfg: Config) -> list[tuple[Device, bool]]:
        """The config's devices, each with whether it is a DLTV receiver (per config)."""
        hit = self._device_list
        if hit is None or hit[0] is not cfg:
            hit = self._device_list = (cfg, [(dev, dev.kind.value == "dltv_receiver")
                                             for dev in cfg.devices])
        return hit[1]

    async def _read_facts(self, now: float) -> _Facts:
        """One pass over the devices at most every :data:`FACTS_SECONDS` (in slices of
        :data:`SLICE_SECONDS`: the event loop runs in between)."""
        hit = self._facts
        if hit is not None and time.monotonic() - hit[0] < FACTS_SECONDS:
            return hit[1]
        d = self.view
        cfg = d.config
        roots = unreachable = dltv_total = dltv_no_signal = 0
        lossy: list[tuple[Device, float, float | None, int]] = []
        effective, device_status = d.effective_state, d.device_status
        down, gone, degraded = State.DOWN, State.UNREACHABLE, State.DEGRADED
        started = time.perf_counter()
        for n, (dev, dltv) in enumerate(self._devices(cfg) if cfg is not None else []):
            if n % 1000 == 999 and time.perf_counter() - started > SLICE_SECONDS:
                await asyncio.sleep(0)
                started = time.perf_counter()
            eff = effective(dev.id, now)
            if eff is down:
                roots += 1
            elif eff is gone:
                unreachable += 1
            elif eff is degraded:
                st = device_status(dev.id)
                if st is not None and (loss := st.window.loss_ratio) is not None:
                    lossy.append((dev, loss, st.window.rtt_avg, len(st.window)))
            if dltv:
                dltv_total += 1
                st = device_status(dev.id)
                obs = st.latest.get("mqtt") if st is not None else None
                if obs is not None and (obs.values.get("signal_lock") == 0
                                        or obs.reason == "no_signal_lock"):
                    dltv_no_signal += 1
        upstream = [inc for inc in d.open_incidents() if inc.kind == "upstream"]
        facts = _Facts(
            upstream, frozenset(dev for inc in upstream for dev in inc.affected),
            {s.school: s.gateways for s in d.school_labels()}, roots, unreachable,
            dltv_total, dltv_no_signal, sum(d.ticket_counts().values()), lossy)
        self._facts = (time.monotonic(), facts)
        return facts

    async def _build(self, lang: str, now: float) -> dict[str, Any]:
        d = self.view
        cfg = d.config
        states = STATE_TEXT[lang]
        facts = await self._read_facts(now)
        upstream, in_upstream = facts.upstream, facts.in_upstream
        status = d.status_data()
        online = offline = 0
        down: list[dict[str, Any]] = []
        gateways = facts.gateways
        for row in status.schools:
            if row.state in ONLINE_STATES:
                online += 1
            elif row.state in OFFLINE_STATES:
                offline += 1
                down.append({
                    "smis": row.smis, "name": row.name,
                    "short_name": short_school_name(row.name, lang), "district": row.district,
                    "isp": row.isp, "state": row.state.value, "state_text": states[row.state],
                    "since": row.since, "since_text": time_text(row.since, now, lang),
                    "duration_text": duration_text(now - row.since, lang),
                    "duration_short": short_duration(now - row.since, lang),
                    "isp_outage": any(g in in_upstream for g in gateways.get(row.smis, ())),
                })
        down.sort(key=lambda r: (r["since"], r["name"]))
        devices = cfg.device_map() if cfg is not None else {}
        figures = {
            "schools_total": len(status.schools), "schools_online": online,
            "schools_offline": offline,
            "schools_other": len(status.schools) - online - offline,
            "devices_down": facts.roots, "devices_unreachable": facts.unreachable,
            "dltv_total": facts.dltv_total, "dltv_no_signal": facts.dltv_no_signal,
            "tickets_open": facts.tickets_open,
            "upstream_outages": len(upstream),
            "upstream_schools": len({(dev.school if (dev := devices.get(dev_id)) else None)
                                     or dev_id for inc in upstream
                                     for dev_id in inc.affected}),
        }
        outages: list[dict[str, Any]] = [
            {"group": inc.root, "label": group_label(inc.root, lang),
             "schools": len(inc.affected), "since": inc.opened_at,
             "duration_text": duration_text(now - inc.opened_at, lang)}
            for inc in sorted(upstream, key=lambda i: i.opened_at)]
        lossy = self._lossy(cfg, facts, lang)
        events = await self._events(cfg, lang, now)
        stable = json.dumps([figures, [(r["smis"], r["state"], r["isp_outage"]) for r in down],
                             [o["group"] for o in outages], [e["key"] for e in events],
                             [(r["text"], r["loss_percent"]) for r in lossy]])
        return {
            "version": 1, "lang": lang, "office": cfg.office.name if cfg else "",
            "generated_at": now, "updated_text": updated_text(now, lang),
            "today_text": format_date(_local(now)) if lang == "th"
            else f"{_local(now):%A %d %B %Y}",
            "digest": hashlib.sha256(stable.encode()).hexdigest()[:16],
            "figures": figures, "down_schools": down, "upstream": outages, "events": events,
            "lossy": lossy,
        }

    def _lossy(self, cfg: Config | None, facts: _Facts, lang: str) -> list[dict[str, Any]]:
        """DEGRADED devices with their loss window (loss, mean RTT), worst loss first."""
        rows: list[dict[str, Any]] = []
        if cfg is None:
            return rows
        for dev, loss, rtt, rounds in facts.lossy:
            percent = round(loss * 100)
            where = short_school_name(_where(cfg, dev, lang), lang)
            rows.append({
                "text": f"{device_label(dev, lang)} · {where}",
                "loss_ratio": round(loss, 4), "loss_percent": percent,
                "loss_text": LABELS[lang]["loss"].replace("{p}", str(percent)),
                "rtt_text": "" if rtt is None else f"{rtt * 1000:.{1 if rtt < 0.01 else 0}f} ms",
                "rounds_text": LABELS[lang]["rounds"].replace("{n}", str(rounds)),
            })
        rows.sort(key=lambda r: (-r["loss_ratio"], r["text"]))
        return rows

    async def _events(self, cfg: Config | None, lang: str, now: float) -> list[dict[str, Any]]:
        if cfg is None:
            return []
        devices = cfg.device_map()
        states = STATE_TEXT[lang]
        out: list[dict[str, Any]] = []
        try:
            # the last transitions (no first sightings) and real ticket status changes
            recent = await self.view.recent_events(EVENT_ROWS)
        except Exception as exc:  # the wall must keep running when the database hiccups
            log.warning("wall: reading events failed: %s", exc)
            return []
        for t in recent.states:
            dev = devices.get(t.device_id)
            if dev is None:
                continue  # removed from the config: no name to show
            out.append({"key": f"t{t.id}", "ts": t.ts, "kind": "state",
                        "time_text": time_text(t.ts, now, lang),
                        "severity": SEVERITY[t.new], "badge": states[t.new],
                        "text": f"{device_label(dev, lang)} · {_where(cfg, dev, lang)}"})
        for k in recent.tickets:
            cond = condition_of(k.root)  # a condition's ticket: its device, and the key
            if (dev := devices.get(cond[0] if cond else k.root)) is not None:
                subject = f"{device_label(dev, lang)} · {_where(cfg, dev, lang)}"
                if cond:
                    subject += f" · {cond[1]}"
            elif ":" in k.root:
                subject = group_label(k.root, lang)
            else:
                continue
            out.append({"key": f"k{k.id}", "ts": k.ts, "kind": "ticket",
                        "time_text": time_text(k.ts, now, lang),
                        "severity": TICKET_SEVERITY.get(k.status, "info"),
                        "badge": f"{LABELS[lang]['ticket']} #{k.ticket_id} "
                                 f"{TICKET_STATUS[lang].get(k.status, k.status)}",
                        "text": subject})
        for r in recent.traps:
            if (dev := devices.get(r.device_id)) is None:
                continue
            out.append({"key": f"s{r.id}", "ts": r.ts, "kind": "trap",
                        "time_text": time_text(r.ts, now, lang),
                        "severity": "warn" if r.what.split(" ", 1)[0] in WARN_TRAPS
                        else "info",
                        "badge": f"SNMP trap {r.what}",
                        "text": f"{device_label(dev, lang)} · {_where(cfg, dev, lang)}"})
        out.sort(key=lambda e: e["ts"], reverse=True)
        return out[:EVENT_ROWS]


class _Slots:
    """Counts open event streams against a cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.cap:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


class _SlotStream(StreamingResponse):
    """A stream that gives its slot back however it ends (even if never started)."""

    def __init__(self, slots: _Slots, body: AsyncIterator[str]) -> None:
        super().__init__(body, media_type="text/event-stream", headers=STREAM_HEADERS)
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.give_back()


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def routes(view: View) -> list[BaseRoute]:
    wall = Wall(view)
    slots = _Slots(view.config.http.max_sse_clients if view.config is not None else 100)

    async def page(request: Request) -> Response:
        lang = _lang(request)
        data = await wall.snapshot(lang)
        html = _ENV.get_template("wall.html").render(
            lang=lang, L=LABELS[lang], data=data, f=data["figures"],
            down_rows=DOWN_ROWS, lossy_rows=LOSSY_ROWS,
            clock=f"{_local(data['generated_at']):%H:%M}")
        return HTMLResponse(html, headers=WALL_HEADERS)

    async def data_json(request: Request) -> Response:
        lang = _lang(request)
        return Response(wall.dumped(lang, await wall.snapshot(lang)),
                        media_type="application/json")

    async def stream(lang: str) -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        last_digest = ""
        last_sent = 0.0
        stop = view.stopping
        while not stop.is_set():
            data = await wall.snapshot(lang)
            mono = time.monotonic()
            if data["digest"] != last_digest or mono - last_sent >= HEARTBEAT_SECONDS:
                yield f"data: {wall.dumped(lang, data)}\n\n"
                last_digest, last_sent = data["digest"], mono
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=CHECK_SECONDS)

    async def events(request: Request) -> Response:
        if not slots.take():
            view.count_http_rejected("sse_limit")
            return Response("too many live wall screens; poll /wall/data.json\n",
                            status_code=429, media_type="text/plain",
                            headers={"Retry-After": "60"})
        return _SlotStream(slots, stream(_lang(request)))

    return [Route("/wall", page), Route("/wall/data.json", data_json),
            Route("/wall/events", events)]
