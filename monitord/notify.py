"""Alert notifications: a durable outbox delivered through apprise.

Pipeline (after Alertmanager): **record → route → group → send/retry**, as separate steps.

* *Record.*  Every notification event (ticket opened, repaired, reopened, scheduled,
  closed; upstream outage started/ended) is a row in ``notification_event``, written in
  the same transaction as the state or ticket change that caused it, with a unique
  idempotency ``key`` — so kill -9 can neither lose it nor record it twice.
* *Route.*  The delivery worker fans each new event out to the channels whose filters
  match (event kinds, schools, districts, device kinds), one ``notification_delivery``
  row per (event, channel), first sendable ``group_window`` after the event.
* *Group.*  All deliveries of one channel that are due together go out as ONE message:
  forty schools dropping at once is one message, not forty.
* *Send/retry.*  apprise sends; a failure is retried with exponential backoff (and
  jitter) up to ``max_attempts``; the rows are marked sent in one transaction after the
  channel acknowledged.  Results are counted in ``monitord_notifications_total``.

Messages are Thai (English optional) and carry links to the ticket's repair report and
the status page when ``notify.base_url`` is set.  Channel URLs may hold tokens: they are
given by reference (``{env: NAME}``/``{file: PATH}``) and only the channel *name* ever
appears in logs, metrics or messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
import apprise

from monitord.schedule import Calendar, Schedule
from monitord.thaidate import format_datetime, format_duration

BANGKOK = ZoneInfo("Asia/Bangkok")
NO_HOLIDAYS = Calendar()

log = logging.getLogger(__name__)

EVENT_KINDS = ("ticket_opened", "ticket_scheduled", "ticket_repaired", "ticket_reopened",
               "ticket_closed", "ticket_reminder", "ticket_escalated", "upstream_started",
               "upstream_ended", "broker_unreachable", "broker_restored", "daily_summary",
               "test", "storage_failing", "storage_restored")


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """Something people should hear about; ``key`` makes recording it idempotent."""

    key: str
    kind: str
    ts: float
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def school(self) -> str | None:
        value = self.data.get("school")
        return str(value) if value else None


@dataclass(frozen=True, slots=True)
class Channel:
    """Where messages go, and which ones.

    ``on_duty``: the officer behind this channel is on duty only then (e.g. Thursday and
    Friday): events that happen outside it go to whoever else is on duty, not here.
    ``quiet``: hours in which nothing is sent; messages wait and go out when they end.
    ``max_per_hour``: messages at most per rolling hour; the rest wait (grouped).
    ``escalation``: this channel receives only escalations (e.g. the group director).
    """

    name: str
    url: str  # may contain a token: never log it
    events: frozenset[str] = frozenset()  # empty: all
    schools: frozenset[str] = frozenset()
    districts: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    on_duty: Schedule | None = None
    quiet: Schedule | None = None
    max_per_hour: int | None = None
    escalation: bool = False

    def wants(self, event: NotificationEvent, calendar: Calendar = NO_HOLIDAYS) -> bool:
        data = event.data
        if self.escalation != (event.kind == "ticket_escalated"):
            return False
        if self.on_duty is not None and not self.on_duty.active(
                datetime.fromtimestamp(event.ts, BANGKOK), calendar):
            return False
        return ((not self.events or event.kind in self.events)
                and (not self.schools or str(data.get("school") or "") in self.schools)
                and (not self.districts or str(data.get("district") or "") in self.districts)
                and (not self.kinds or str(data.get("kind") or "") in self.kinds))

    def quiet_now(self, now: float, calendar: Calendar = NO_HOLIDAYS) -> bool:
        return self.quiet is not None and self.quiet.active(
            datetime.fromtimestamp(now, BANGKOK), calendar)


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    group_window: float = 30.0
    max_attempts: int = 12
    backoff_initial: float = 5.0
    backoff_max: float = 1800.0
    base_url: str = ""
    lang: str = "th"


# -- recording (inside the caller's transaction) ---------------------------------------


async def record(db: aiosqlite.Connection, events: Iterable[NotificationEvent]) -> None:
    await db.executemany(
        "INSERT INTO notification_event (key, kind, ts, data) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        [(e.key, e.kind, e.ts, json.dumps(dict(e.data), ensure_ascii=False)) for e in events],
    )


def event_key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


# -- text ------------------------------------------------------------------------------


def _when(ts: Any) -> str:
    if not ts:
        return "-"
    return format_datetime(datetime.fromtimestamp(float(ts), UTC), abbreviated=True)


LINES: dict[str, dict[str, str]] = {
    "th": {
        "ticket_opened": "🔴 เปิดใบแจ้งซ่อม #{tid} {where}: {what} ขัดข้องตั้งแต่ {down_since}"
                         "{affected} — {hypothesis}{link}",
        "ticket_repaired": "✅ ซ่อมเสร็จ/กลับมาใช้งานได้ #{tid} {where}: {what}{link}",
        "ticket_reopened": "🔁 ขัดข้องซ้ำ เปิดใบแจ้งซ่อมเดิม #{tid} {where}: {what}{link}",
        "ticket_scheduled": "📅 นัดหมายซ่อม #{tid} {where}: {scheduled_for} โดย {actor}{link}",
        "ticket_closed": "☑️ ปิดใบแจ้งซ่อม #{tid} {where}{link}",
        "ticket_reminder": "⏰ ใบแจ้งซ่อม #{tid} {where}: {what} ยังไม่ได้แก้ไข "
                           "(เปิดมาแล้ว {age}){link}",
        "ticket_escalated": "⏫ ใบแจ้งซ่อม #{tid} {where}: {what} เปิดค้างเกิน {age} — "
                            "ขอให้ติดตาม{link}",
        "broker_unreachable": "⚠️ monitord ติดต่อ MQTT broker ไม่ได้: สถานะอุปกรณ์ที่รายงานผ่าน "
                              "MQTT ไม่ทราบ ({reason})",
        "broker_restored": "✅ monitord ติดต่อ MQTT broker ได้อีกครั้ง (ขาดการติดต่อ {age})",
        "storage_failing": "⚠️ monitord บันทึกลงฐานข้อมูลไม่ได้ ({reason}): ยังเฝ้าระวังต่อ "
                           "การเปลี่ยนแปลงเก็บไว้ในหน่วยความจำรอบันทึก — โปรดตรวจพื้นที่ดิสก์",
        "storage_restored": "✅ monitord บันทึกลงฐานข้อมูลได้อีกครั้ง (ขัดข้อง {age}) "
                            "การเปลี่ยนแปลงที่ค้างไว้บันทึกแล้ว",
        "upstream_started": "⚠️ เหตุขัดข้องต้นทาง {group}: {hypothesis}",
        "upstream_ended": "✅ เหตุขัดข้องต้นทาง {group} สิ้นสุดแล้ว",
        "affected": " กระทบอุปกรณ์อื่น {n} รายการ",
        "summary": "📋 สรุปประจำวัน: โรงเรียนออฟไลน์ {offline} แห่ง, ใบแจ้งซ่อมที่ยังเปิด {open} ใบ",
        "summary_offline": "  • ออฟไลน์: {name}",
        "summary_ticket": "  • #{id} {unit} (เปิดเมื่อ {when})",
        "status_page": "หน้าสถานะ: {url}",
        "events": "{n} เหตุการณ์",
    },
    "en": {
        "ticket_opened": "🔴 Repair ticket #{tid} opened, {where}: {what} down since "
                         "{down_since}{affected} — {hypothesis}{link}",
        "ticket_repaired": "✅ Repaired / back up #{tid}, {where}: {what}{link}",
        "ticket_reopened": "🔁 Failed again, ticket #{tid} reopened, {where}: {what}{link}",
        "ticket_scheduled": "📅 Repair #{tid} scheduled, {where}: {scheduled_for} by "
                            "{actor}{link}",
        "ticket_closed": "☑️ Ticket #{tid} closed, {where}{link}",
        "ticket_reminder": "⏰ Ticket #{tid}, {where}: {what} still not fixed (open for "
                           "{age}){link}",
        "ticket_escalated": "⏫ Ticket #{tid}, {where}: {what} open for more than {age} — "
                            "please follow up{link}",
        "broker_unreachable": "⚠️ monitord cannot reach the MQTT broker: devices reporting "
                              "over MQTT are in an unknown state ({reason})",
        "broker_restored": "✅ monitord reaches the MQTT broker again (it was unreachable for "
                           "{age})",
        "storage_failing": "⚠️ monitord cannot write its database ({reason}): monitoring goes "
                           "on, changes are kept in memory until they can be written — "
                           "check the disk",
        "storage_restored": "✅ monitord writes its database again (it failed for {age}); the "
                            "changes kept meanwhile are saved",
        "upstream_started": "⚠️ Upstream outage {group}: {hypothesis}",
        "upstream_ended": "✅ Upstream outage {group} is over",
        "affected": ", {n} other devices affected",
        "summary": "📋 Daily summary: {offline} schools offline, {open} tickets open",
        "summary_offline": "  • offline: {name}",
        "summary_ticket": "  • #{id} {unit} (opened {when})",
        "status_page": "Status page: {url}",
        "events": "{n} events",
    },
}


def _when_lang(ts: Any, lang: str) -> str:
    if not ts:
        return "-"
    if lang == "en":
        return datetime.fromtimestamp(float(ts), BANGKOK).strftime("%Y-%m-%d %H:%M")
    return _when(ts)


def _age(seconds: float, lang: str) -> str:
    if lang == "th":
        return format_duration(seconds)
    hours, minutes = divmod(int(seconds) // 60, 60)
    days, hours = divmod(hours, 24)
    return " ".join(p for p in (f"{days} d" if days else "", f"{hours} h" if hours else "",
                                f"{minutes} min" if minutes or not (days or hours) else "")
                    if p)


def render_line(event: NotificationEvent, policy: NotifyPolicy) -> str:
    """One event as one line (Thai, or English with ``notify.lang: en``)."""
    lang = "en" if policy.lang == "en" else "th"
    t = LINES[lang]
    d = event.data
    if event.kind == "daily_summary":
        offline = d.get("offline_schools") or []
        tickets = d.get("open_tickets") or []
        lines = [t["summary"].format(offline=len(offline), open=len(tickets))]
        lines += [t["summary_offline"].format(name=name) for name in offline[:50]]
        lines += [t["summary_ticket"].format(id=x["id"], unit=x["served_unit"],
                                             when=_when_lang(x["opened_at"], lang))
                  for x in tickets[:50]]
        return "\n".join(lines)
    template = t.get(event.kind)
    if template is None:
        return f"monitord: {d.get('message', event.kind)}"
    tid = d.get("ticket_id")
    link = f" {policy.base_url.rstrip('/')}/tickets/{tid}" if policy.base_url and tid else ""
    return template.format(
        tid=tid, where=d.get("served_unit") or d.get("school") or "",
        what=d.get("root_name") or d.get("root") or "",
        down_since=_when_lang(d.get("down_since"), lang),
        affected=t["affected"].format(n=d["affected"]) if d.get("affected") else "",
        hypothesis=d.get("hypothesis", ""), link=link,
        scheduled_for=_when_lang(d.get("scheduled_for"), lang), actor=d.get("actor", ""),
        age=_age(float(d.get("age", 0)), lang), group=d.get("group", ""),
        reason=d.get("reason", ""))


def render_message(events: Sequence[NotificationEvent], policy: NotifyPolicy,
                   office: str) -> tuple[str, str]:
    """(title, body) for a group of events sent to one channel as one message."""
    t = LINES["en" if policy.lang == "en" else "th"]
    title = f"monitord {office}"
    if len(events) > 1:
        title += ": " + t["events"].format(n=len(events))
    body = "\n".join(render_line(e, policy) for e in sorted(events, key=lambda e: e.ts))
    if policy.base_url and any(e.kind != "test" for e in events):
        body += "\n" + t["status_page"].format(url=f"{policy.base_url.rstrip('/')}/status")
    return title, body


# -- delivery ----------------------------------------------------------------------------


async def send(url: str, title: str, body: str) -> bool:
    """Send through apprise; True when the channel acknowledged."""
    obj = apprise.Apprise()
    if not obj.add(url):
        raise ValueError("apprise does not understand this channel URL")
    return bool(await obj.async_notify(body=body, title=title))


class Deliverer:
    """The worker: route new events, group what is due per channel, send with retries."""

    def __init__(self, db: aiosqlite.Connection, channels: Sequence[Channel],
                 policy: NotifyPolicy, office: str) -> None:
        self._db = db
        self.channels = list(channels)
        self.policy = policy
        self.office = office
        self.results: Counter[tuple[str, str]] = Counter()
        self.calendar = Calendar()
        self._rng = random.Random()
        self._sent_times: dict[str, list[float]] = {}
        #: the worker waits while this says so (the daemon: while the database fails)
        self.hold: Callable[[], bool] = lambda: False
        #: told about the worker's errors (the daemon counts database failures)
        self.on_error: Callable[[Exception], None] = lambda exc: None

    def configure(self, channels: Sequence[Channel], policy: NotifyPolicy, office: str) -> None:
        self.channels, self.policy, self.office = list(channels), policy, office

    async def route(self, now: float) -> int:
        """Create deliveries for events not routed yet (one transaction)."""
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            async with self._db.execute(
                "SELECT id, key, kind, ts, data FROM notification_event WHERE routed = 0"
                " ORDER BY id LIMIT 1000"
            ) as cur:
                rows = await cur.fetchall()
            made = 0
            for r in rows:
                ev = NotificationEvent(r["key"], r["kind"], r["ts"], json.loads(r["data"]))
                for ch in self.channels:
                    if ch.wants(ev, self.calendar):
                        await self._db.execute(
                            "INSERT INTO notification_delivery (event_id, channel, status,"
                            " attempts, next_attempt) VALUES (?, ?, 'pending', 0, ?)"
                            " ON CONFLICT (event_id, channel) DO NOTHING",
                            (r["id"], ch.name, max(now, ev.ts) + self.policy.group_window
                             if ev.kind != "test" else now),
                        )
                        made += 1
                await self._db.execute("UPDATE notification_event SET routed = 1 WHERE id = ?",
                                       (r["id"],))
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        return made

    async def deliver(self, now: float) -> None:
        """Send every channel's due deliveries, grouped into one message per channel."""
        for ch in self.channels:
            if ch.quiet_now(now, self.calendar):
                continue  # quiet hours: messages wait, grouped, until they end
            recent = [t for t in self._sent_times.get(ch.name, []) if now - t < 3600]
            self._sent_times[ch.name] = recent
            if ch.max_per_hour is not None and len(recent) >= ch.max_per_hour:
                continue  # rate limit: wait; what accumulates goes out as one message
            async with self._db.execute(
                "SELECT d.id, d.attempts, e.key, e.kind, e.ts, e.data"
                " FROM notification_delivery d JOIN notification_event e ON e.id = d.event_id"
                " WHERE d.channel = ? AND d.status = 'pending' AND d.next_attempt <= ?"
                " ORDER BY e.ts LIMIT 200", (ch.name, now)
            ) as cur:
                rows = await cur.fetchall()
            if not rows:
                continue
            events = [NotificationEvent(r["key"], r["kind"], r["ts"], json.loads(r["data"]))
                      for r in rows]
            title, body = render_message(events, self.policy, self.office)
            try:
                ok = await send(ch.url, title, body)
                error = "" if ok else "channel did not acknowledge"
            except Exception as exc:  # a broken URL or library error: same retry path
                ok, error = False, type(exc).__name__
            ids = [r["id"] for r in rows]
            attempts = max(r["attempts"] for r in rows) + 1
            if ok:
                self._sent_times[ch.name].append(now)
                await self._mark(ids, "sent", now, attempts, "")
                self.results[(ch.name, "success")] += 1
                log.info("notification to %s: %d event(s) sent", ch.name, len(ids))
            elif attempts >= self.policy.max_attempts:
                await self._mark(ids, "failed", now, attempts, error)
                self.results[(ch.name, "failed")] += 1
                log.error("notification to %s given up after %d attempts: %s", ch.name,
                          attempts, error)
            else:
                delay = min(self.policy.backoff_max,
                            self.policy.backoff_initial * 2 ** (attempts - 1))
                delay *= self._rng.uniform(0.8, 1.2)
                await self._mark(ids, "pending", now + delay, attempts, error)
                self.results[(ch.name, "retry")] += 1
                log.warning("notification to %s failed (%s); retry %d in %.0fs", ch.name,
                            error, attempts, delay)

    async def _mark(self, ids: list[int], status: str, when: float, attempts: int,
                    error: str) -> None:
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            await self._db.executemany(
                "UPDATE notification_delivery SET status = ?, attempts = ?, last_error = ?,"
                " next_attempt = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
                " WHERE id = ?",
                [(status, attempts, error, when, status, when, i) for i in ids],
            )
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            try:
                if not self.hold():
                    now = time.time()
                    await self.route(now)
                    await self.deliver(now)
            except Exception as exc:
                log.error("notification worker: %s", exc)
                self.on_error(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)


# -- events from the clock ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reminders:
    remind_every: float | None = 14400.0
    escalate_after: float | None = 172800.0
    daily_summary_at: str | None = None  # "HH:MM" Bangkok time; None: no summary


def timed_events(tickets: Sequence[Mapping[str, Any]], offline_schools: Sequence[str],
                 now: float, cfg: Reminders) -> list[NotificationEvent]:
    """Reminders for tickets still open, escalations of old ones, the daily summary.

    Keys are derived from the ticket and the reminder's ordinal (or the date), so calling
    this every few seconds records each reminder exactly once.
    """
    out: list[NotificationEvent] = []
    active = [t for t in tickets if t["status"] in ("open", "scheduled", "in_repair")]
    for t in active:
        age = now - float(t["opened_at"])
        data = {"ticket_id": t["id"], "root": t["root"], "school": t.get("school"),
                "served_unit": t.get("served_unit", ""), "age": age,
                "root_name": (t.get("equipment") or [{"name": t["root"]}])[0]["name"]}
        if cfg.remind_every and age >= cfg.remind_every:
            n = int(age // cfg.remind_every)
            out.append(NotificationEvent(event_key("remind", t["id"], n), "ticket_reminder",
                                         float(t["opened_at"]) + n * cfg.remind_every, data))
        if cfg.escalate_after and age >= cfg.escalate_after:
            out.append(NotificationEvent(event_key("escalate", t["id"]), "ticket_escalated",
                                         float(t["opened_at"]) + cfg.escalate_after, data))
    if cfg.daily_summary_at:
        local = datetime.fromtimestamp(now, BANGKOK)
        hh, mm = (int(x) for x in cfg.daily_summary_at.split(":"))
        due = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if 0 <= (local - due).total_seconds() < 600:  # missed while stopped: skipped
            ordered = sorted(active, key=lambda t: float(t["opened_at"]))
            out.append(NotificationEvent(
                event_key("daily", due.date().isoformat()), "daily_summary", due.timestamp(),
                {"offline_schools": list(offline_schools),
                 "open_tickets": [{"id": t["id"], "served_unit": t.get("served_unit", ""),
                                   "opened_at": t["opened_at"]} for t in ordered]}))
    return out
