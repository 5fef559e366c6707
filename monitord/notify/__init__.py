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
  At least once, with an idempotency key: see :class:`Deliverer`.

Messages are Thai (English optional) and carry links to the ticket's repair report and
the status page when ``notify.base_url`` is set.  Channel URLs may hold tokens: they are
given by reference (``{env: NAME}``/``{file: PATH}``) and only the channel *name* ever
appears in logs, metrics or messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import apprise

from monitord.domain.activehours import Calendar, Schedule
from monitord.domain.events import EVENT_KINDS as EVENT_KINDS
from monitord.domain.events import NotificationEvent as NotificationEvent
from monitord.domain.events import event_key as event_key
from monitord.domain.incidents import (
    device_hypothesis,
    group_label,
    is_group_key,
    upstream_hypothesis,
)
from monitord.domain.links import LinkSigner, ticket_url
from monitord.domain.tickets import ACTIVE as ACTIVE_TICKET
from monitord.storage import outbox
from monitord.storage.outbox import event_of
from monitord.storage.outbox import record as record
from monitord.thaidate import format_duration, format_timestamp, from_timestamp

BANGKOK = ZoneInfo("Asia/Bangkok")
NO_HOLIDAYS = Calendar()

log = logging.getLogger(__name__)

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
    links: LinkSigner | None = None  # signs ticket links (monitord.domain.links)


# -- text ------------------------------------------------------------------------------


LINES: dict[str, dict[str, str]] = {
    "th": {
        "ticket_opened": "🔴 เปิดใบแจ้งซ่อม #{tid} {subject} ขัดข้องตั้งแต่ {down_since}"
                         "{affected} — {hypothesis}{link}",
        "ticket_opened_upstream": "🔴 เปิดใบแจ้งซ่อม #{tid} เหตุขัดข้องต้นทางตั้งแต่ "
                                  "{down_since} — {hypothesis}{link}",
        "ticket_repaired": "✅ ซ่อมเสร็จ/กลับมาใช้งานได้ #{tid} {subject}{link}",
        "ticket_reopened": "🔁 ขัดข้องซ้ำ เปิดใบแจ้งซ่อมเดิม #{tid} {subject}{link}",
        "ticket_scheduled": "📅 นัดหมายซ่อม #{tid} {where}: {scheduled_for} โดย {actor}{link}",
        "ticket_closed": "☑️ ปิดใบแจ้งซ่อม #{tid} {where}{link}",
        "ticket_reminder": "⏰ ใบแจ้งซ่อม #{tid} {subject} ยังไม่ได้แก้ไข "
                           "(เปิดมาแล้ว {age}){link}",
        "ticket_escalated": "⏫ ใบแจ้งซ่อม #{tid} {subject} เปิดค้างเกิน {age} — "
                            "ขอให้ติดตาม{link}",
        "broker_unreachable": "⚠️ monitord ติดต่อ MQTT broker ไม่ได้: สถานะอุปกรณ์ที่รายงานผ่าน "
                              "MQTT ไม่ทราบ ({reason})",
        "broker_restored": "✅ monitord ติดต่อ MQTT broker ได้อีกครั้ง (ขาดการติดต่อ {age})",
        "storage_failing": "⚠️ monitord บันทึกลงฐานข้อมูลไม่ได้ ({reason}): ยังเฝ้าระวังต่อ "
                           "การเปลี่ยนแปลงเก็บไว้ในหน่วยความจำรอบันทึก — โปรดตรวจพื้นที่ดิสก์",
        "storage_restored": "✅ monitord บันทึกลงฐานข้อมูลได้อีกครั้ง (ขัดข้อง {age}) "
                            "การเปลี่ยนแปลงที่ค้างไว้บันทึกแล้ว",
        "upstream_started": "⚠️ เหตุขัดข้องต้นทาง: {hypothesis}",
        "upstream_ended": "✅ เหตุขัดข้องต้นทาง {where} สิ้นสุดแล้ว",
        "affected": " กระทบอุปกรณ์อื่น {n} รายการ",
        "affected_one": " กระทบอุปกรณ์อื่น 1 รายการ",
        "summary": "📋 สรุปประจำวัน: โรงเรียนออฟไลน์ {offline} แห่ง, ใบแจ้งซ่อมที่ยังเปิด {open} ใบ",
        "summary_offline": "  • ออฟไลน์: {name}",
        "summary_ticket": "  • #{id} {unit} (เปิดเมื่อ {when})",
        "status_page": "หน้าสถานะ: {url}",
        "events": "{n} เหตุการณ์",
    },
    "en": {
        "ticket_opened": "🔴 Repair ticket #{tid} opened, {subject} down since "
                         "{down_since}{affected} — {hypothesis}{link}",
        "ticket_opened_upstream": "🔴 Repair ticket #{tid} opened, upstream outage since "
                                  "{down_since} — {hypothesis}{link}",
        "ticket_repaired": "✅ Repaired / back up #{tid}, {subject}{link}",
        "ticket_reopened": "🔁 Failed again, ticket #{tid} reopened, {subject}{link}",
        "ticket_scheduled": "📅 Repair #{tid} scheduled, {where}: {scheduled_for} by "
                            "{actor}{link}",
        "ticket_closed": "☑️ Ticket #{tid} closed, {where}{link}",
        "ticket_reminder": "⏰ Ticket #{tid}, {subject} still not fixed (open for "
                           "{age}){link}",
        "ticket_escalated": "⏫ Ticket #{tid}, {subject} open for more than {age} — "
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
        "upstream_started": "⚠️ Upstream outage: {hypothesis}",
        "upstream_ended": "✅ Upstream outage of {where} is over",
        "affected": ", {n} other devices affected",
        "affected_one": ", 1 other device affected",
        "summary": "📋 Daily summary: {offline} schools offline, {open} tickets open",
        "summary_offline": "  • offline: {name}",
        "summary_ticket": "  • #{id} {unit} (opened {when})",
        "status_page": "Status page: {url}",
        "events": "{n} events",
    },
}


def _when_lang(ts: Any, lang: str) -> str:
    """A stored time in the message's language; "?" for one no calendar can hold."""
    if not ts:
        return "-"
    if lang == "en":
        moment = from_timestamp(float(ts))
        return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M")
    return format_timestamp(float(ts), abbreviated=True)


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
    # An upstream outage (root "isp:NT") is named in words ("ผู้ให้บริการ NT"), never by
    # its internal key; a device ticket by its unit and device.
    root = str(d.get("root") or "")
    group = str(d.get("group") or (root if is_group_key(root) else ""))
    if group:
        where, what = group_label(group, lang), ""
        if event.kind == "ticket_opened":
            template = t["ticket_opened_upstream"]
    else:
        where = str(d.get("served_unit") or d.get("school") or "")
        what = str(d.get("root_name") or root)
    subject = f"{where}: {what}" if where and what else where or what
    n = int(d.get("affected") or 0)
    affected = "" if not n else t["affected_one"] if n == 1 else t["affected"].format(n=n)
    tid = d.get("ticket_id")
    link = f" {ticket_url(policy.base_url, tid, policy.links)}" if policy.base_url and tid else ""
    return template.format(
        tid=tid, where=where, subject=subject, affected=affected,
        down_since=_when_lang(d.get("down_since"), lang),
        hypothesis=_hypothesis(d, group, lang), link=link,
        scheduled_for=_when_lang(d.get("scheduled_for"), lang), actor=d.get("actor", ""),
        age=_age(float(d.get("age", 0)), lang), reason=d.get("reason", ""))


def _hypothesis(d: Mapping[str, Any], group: str, lang: str) -> str:
    """The likely cause in the message's language, from the facts the event carries;
    events recorded before they carried facts keep their stored (Thai) text."""
    if group and "schools" in d and "total" in d:
        return upstream_hypothesis(group, int(d["schools"]), int(d["total"]), lang)
    if "gateway" in d:
        return device_hypothesis(bool(d["gateway"]), str(d.get("isp") or ""), lang)
    return str(d.get("hypothesis", ""))


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

# apprise's webhook channels (JSON, form, XML POSTs) take extra HTTP headers as "+Name=value"
# and extra payload fields as ":name=value" in their URL.
_KEYED_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})


def keyed_url(url: str, key: str) -> str:
    """``url`` with the message's idempotency key as the ``Idempotency-Key`` header and the
    ``idempotency_key`` payload field, for webhook channels; other channels as they are."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _KEYED_SCHEMES:
        return url
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True),
             ("+Idempotency-Key", key), (":idempotency_key", key)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def message_key(channel: str, event_keys: Iterable[str]) -> str:
    """The idempotency key of one message to one channel: the same events to the same
    channel always give the same key (receivers drop a message whose key they have seen)."""
    return event_key("message", channel, *sorted(event_keys))


async def send(url: str, title: str, body: str, key: str | None = None) -> bool:
    """Send through apprise; True when the channel acknowledged.  ``key``: the message's
    idempotency key, sent along on webhook channels (see :func:`keyed_url`)."""
    obj = apprise.Apprise()
    if not obj.add(keyed_url(url, key) if key else url):
        raise ValueError("apprise does not understand this channel URL")
    return bool(await obj.async_notify(body=body, title=title))


class Deliverer:
    """The worker: route new events, group what is due per channel, send with retries.

    Delivery is at least once, with an idempotency key: a group of deliveries is fixed as
    one message (``message_key``) and its attempt counted *before* it is sent, so a retry
    — after a failure or a kill -9 while the channel was answering — resends the same
    message with the same key.  Per channel at most one message is in flight, so a crash
    can repeat at most that one message; receivers that dedupe on the key see each
    message exactly once.
    """

    def __init__(self, db: outbox.Connection, channels: Sequence[Channel],
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
        def targets(ev: NotificationEvent) -> list[tuple[str, float]]:
            first = max(now, ev.ts) + self.policy.group_window if ev.kind != "test" else now
            return [(ch.name, first) for ch in self.channels if ch.wants(ev, self.calendar)]
        return await outbox.route_events(self._db, targets)

    async def _due(self, channel: str, now: float) -> list[Any]:
        """The next message's deliveries: an unfinished message first (same rows, same
        key), else up to 200 due deliveries not yet in a message."""
        return await outbox.due_deliveries(self._db, channel, now)

    def _backoff(self, attempts: int) -> float:
        delay = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (attempts - 1))
        return float(delay * self._rng.uniform(0.8, 1.2))

    async def deliver(self, now: float) -> None:
        """Send every channel's due deliveries, grouped into one message per channel."""
        for ch in self.channels:
            if ch.quiet_now(now, self.calendar):
                continue  # quiet hours: messages wait, grouped, until they end
            recent = [t for t in self._sent_times.get(ch.name, []) if now - t < 3600]
            self._sent_times[ch.name] = recent
            if ch.max_per_hour is not None and len(recent) >= ch.max_per_hour:
                continue  # rate limit: wait; what accumulates goes out as one message
            rows = await self._due(ch.name, now)
            # A delivery whose event cannot be rendered (damaged data, a date no calendar
            # holds) fails alone; the channel's other deliveries go out.
            good: list[tuple[Any, NotificationEvent]] = []
            for r in rows:
                try:
                    ev = event_of(r)
                    render_line(ev, self.policy)
                except Exception as exc:
                    await self._failed(ch, [r], now, r["attempts"] + 1,
                                       f"cannot render: {type(exc).__name__}: {exc}"[:200])
                else:
                    good.append((r, ev))
            if not good:
                continue
            ids = [r["id"] for r, _ in good]
            events = [ev for _, ev in good]
            key = good[0][0]["message_key"] or message_key(ch.name, (e.key for e in events))
            attempts = max(r["attempts"] for r, _ in good) + 1
            # Fixed and counted before sending: a kill -9 from here on is a failed attempt
            # whose retry sends this same message with this same key.
            await self._update(ids, "pending", now + self._backoff(attempts), attempts,
                               None, key)
            title, body = render_message(events, self.policy, self.office)
            try:
                ok = await send(ch.url, title, body, key)
                error = "" if ok else "channel did not acknowledge"
            except Exception as exc:  # a broken URL or library error: same retry path
                ok, error = False, type(exc).__name__
            if ok:
                self._sent_times[ch.name].append(now)
                await self._update(ids, "sent", now, attempts, "")
                self.results[(ch.name, "success")] += 1
                log.info("notification to %s: %d event(s) sent", ch.name, len(ids))
            else:
                await self._failed(ch, [r for r, _ in good], now, attempts, error)

    async def _failed(self, ch: Channel, rows: Sequence[Any], now: float, attempts: int,
                      error: str) -> None:
        """An attempt failed: retry later with backoff, or give up after max_attempts."""
        ids = [r["id"] for r in rows]
        if attempts >= self.policy.max_attempts:
            await self._update(ids, "failed", now, attempts, error)
            self.results[(ch.name, "failed")] += 1
            log.error("notification to %s given up after %d attempts: %s", ch.name,
                      attempts, error)
        else:
            delay = self._backoff(attempts)
            await self._update(ids, "pending", now + delay, attempts, error)
            self.results[(ch.name, "retry")] += 1
            log.warning("notification to %s failed (%s); retry %d in %.0fs", ch.name,
                        error, attempts, delay)

    async def _update(self, ids: list[int], status: str, when: float, attempts: int,
                      error: str | None, key: str | None = None) -> None:
        """Set the deliveries' status (``error``/``key`` None: keep the stored value)."""
        await outbox.update_deliveries(self._db, ids, status, when, attempts, error, key)

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
    active = [t for t in tickets if t["status"] in ACTIVE_TICKET]
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
