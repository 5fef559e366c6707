"""The notification pipeline's stages, each alone: pure, fast, no network, no database.

The whole pipeline runs here too, on an in-memory outbox and a recording sender: what a
receiver would see (one message per group, the same key on a retry, a damaged event
failing alone) without sockets or SQLite.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest

from monitord.domain import notifications as events
from monitord.domain.activehours import Schedule, WeeklyWindow, parse_days, parse_hours
from monitord.domain.notifications import NotificationEvent, event_key
from monitord.notify import pipeline
from monitord.notify.channel import Channel, NotifyPolicy
from monitord.notify.deliverer import Deliverer
from monitord.notify.group import Pending, group
from monitord.notify.outbox import Targets
from monitord.notify.quiet import quiet_now
from monitord.notify.ratelimit import RateLimit
from monitord.notify.render import render_line, render_message, unrenderable
from monitord.notify.retry import Backoff, Verdict, after_failure, send_directly
from monitord.notify.route import first_attempt, targets
from monitord.notify.send import keyed_url, message_key
from monitord.notify.timed import Reminders, timed_events

BKK = ZoneInfo("Asia/Bangkok")


def bkk(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, day, hour, minute, tzinfo=BKK).timestamp()


MON, THU = bkk(23, 10), bkk(26, 10)  # Monday and Thursday 10:00
SUBJECT = events.TicketSubject(7, "62020001-rtr", "เราเตอร์อินเทอร์เน็ต",
                               served_unit="โรงเรียนบ้านหนองปลิง", school="62020001",
                               district="คลองขลุง", kind="router")


def sched(days: str, hours: str) -> Schedule:
    return Schedule("s", (WeeklyWindow(parse_days([days]), *parse_hours(hours)),))


def opened(tid: int, ts: float, school: str = "62020001") -> NotificationEvent:
    subject = events.TicketSubject(tid, f"{school}-rtr", "เราเตอร์", served_unit=f"โรงเรียน {tid}",
                                   school=school, district="คลองขลุง", kind="router")
    return events.ticket_opened(subject, f"i{tid}", ts, ts - 600, "ตรวจสอบไฟฟ้า",
                                events.DeviceCause(0, True, "NT"))


# -- events: one typed constructor per kind, keys as before the split ------------------


def test_event_constructors_keep_keys_and_payloads() -> None:
    ev = events.ticket_opened(SUBJECT, "inc-1", MON, MON - 600, "ตรวจสอบไฟฟ้า",
                              events.DeviceCause(2, True, "NT"))
    assert ev.key == event_key("open", 7, "inc-1") and ev.kind == "ticket_opened"
    assert ev.data == {"ticket_id": 7, "root": "62020001-rtr",
                       "root_name": "เราเตอร์อินเทอร์เน็ต", "school": "62020001",
                       "district": "คลองขลุง", "kind": "router",
                       "served_unit": "โรงเรียนบ้านหนองปลิง", "down_since": MON - 600,
                       "hypothesis": "ตรวจสอบไฟฟ้า", "affected": 2, "gateway": True,
                       "isp": "NT"}
    up = events.upstream_started("inc-9", MON, "h", events.UpstreamCause("isp:NT", 5, 12))
    assert up.key == event_key("upstream_started", "inc-9")
    assert dict(up.data) == {"hypothesis": "h", "group": "isp:NT", "schools": 5, "total": 12}
    assert events.upstream_ended("inc-9", MON, "h", events.UpstreamCause("isp:NT", 5, 12)
                                 ).key == event_key("upstream_ended", "inc-9")
    back = events.ticket_changed("ticket_repaired", SUBJECT, MON + 60)
    assert back.key == event_key("ticket_repaired", 7, MON + 60) and back.ts == MON + 60
    officer = events.ticket_scheduled(
        events.TicketSubject(7, "r", "เราเตอร์", served_unit="u", school="s"), "นายสมชาย",
        THU, MON)
    assert officer.key == event_key("scheduled", 7, THU)
    assert "district" not in officer.data and officer.data["actor"] == "นายสมชาย"
    closed = events.ticket_closed_by(SUBJECT, "นายสมชาย", MON)
    assert closed.key == event_key("closed", 7) and closed.kind == "ticket_closed"
    # monitord itself: ages are never negative, keys name the episode's start
    assert events.broker_restored(MON, MON - 5).data == {"age": 0.0}
    assert events.broker_restored(MON, MON + 90).key == event_key("broker_restored", MON)
    assert events.broker_unreachable(MON, "refused").data == {"reason": "refused",
                                                              "since": MON}
    failing = events.storage_failing(MON, "disk full")
    assert failing.key == event_key("storage_failing", MON) and failing.ts == MON
    restored = events.storage_restored(MON, MON + 120)
    assert restored.key == event_key("storage_restored", MON)
    assert restored.ts == MON + 120 and restored.data == {"age": 120.0}
    daily = events.daily_summary(date(2026, 11, 24), MON, ["ก"],
                                 [events.SummaryTicket(7, "u", MON - 10)])
    assert daily.key == event_key("daily", "2026-11-24")
    assert daily.data["open_tickets"] == [{"id": 7, "served_unit": "u", "opened_at": MON - 10}]


def test_timed_reminders_use_the_constructors() -> None:
    tickets = [{"id": 7, "status": "open", "opened_at": MON, "root": "r", "school": "s",
                "served_unit": "โรงเรียน 7", "equipment": [{"name": "เราเตอร์"}]}]
    (remind,) = timed_events(tickets, [], MON + 3 * 3600 + 1,
                             Reminders(remind_every=3600, escalate_after=None))
    assert remind.key == event_key("remind", 7, 3) and remind.ts == MON + 3 * 3600
    assert remind.data["root_name"] == "เราเตอร์" and remind.data["age"] == 3 * 3600 + 1


# -- route ------------------------------------------------------------------------------


def test_route_fans_out_to_the_channels_that_want_the_event() -> None:
    policy = NotifyPolicy(group_window=30)
    channels = [Channel("all", "json://a"),
                Channel("district", "json://b", districts=frozenset({"คลองขลุง"})),
                Channel("other-district", "json://c", districts=frozenset({"เมือง"})),
                Channel("servers", "json://d", kinds=frozenset({"server"})),
                Channel("upstream", "json://e", events=frozenset({"upstream_started"})),
                Channel("director", "json://f", escalation=True),
                Channel("thu-fri", "json://g", on_duty=sched("thu-fri", "08:30-16:30"))]
    assert targets(opened(1, MON), channels, MON, policy) == [
        ("all", MON + 30), ("district", MON + 30)]
    assert [n for n, _ in targets(opened(2, THU), channels, THU, policy)] == [
        "all", "district", "thu-fri"]
    esc = events.ticket_escalated(SUBJECT, MON, 172800)
    assert [n for n, _ in targets(esc, channels, MON, policy)] == ["director"]


def test_first_attempt_waits_one_group_window_except_for_tests() -> None:
    policy = NotifyPolicy(group_window=30)
    assert first_attempt(opened(1, MON), MON - 5, policy) == MON + 30  # routed early
    assert first_attempt(opened(1, MON), MON + 100, policy) == MON + 130  # routed late
    assert first_attempt(NotificationEvent("k", "test", MON), MON + 100, policy) == MON + 100


# -- quiet hours and rate limit -------------------------------------------------------


def test_quiet_hours_hold_over_midnight() -> None:
    ch = Channel("night", "json://x", quiet=sched("mon-sun", "22:00-06:00"))
    assert quiet_now(ch, bkk(26, 23))
    assert quiet_now(ch, bkk(27, 5, 59))
    assert not quiet_now(ch, bkk(27, 6, 1))
    assert not quiet_now(Channel("always", "json://y"), bkk(26, 23))


def test_rate_limit_is_a_rolling_hour_per_channel() -> None:
    limited, free = Channel("limited", "json://x", max_per_hour=2), Channel("free", "json://y")
    rl = RateLimit()
    assert rl.allows(limited, MON)
    rl.sent(limited, MON)
    rl.sent(limited, MON + 600)
    assert not rl.allows(limited, MON + 1200)
    assert rl.allows(limited, MON + 3601)  # the first send left the hour
    for i in range(100):
        rl.sent(free, MON + i)
    assert rl.allows(free, MON + 100)


# -- group ------------------------------------------------------------------------------


def test_group_makes_one_message_with_a_stable_key() -> None:
    due = [Pending(1, 0, None, opened(1, MON)), Pending(2, 3, None, opened(2, MON + 1))]
    m = group("hook", due)
    assert m is not None
    assert m.ids == (1, 2) and m.attempts == 4  # the most tried delivery's next attempt
    assert m.key == message_key("hook", [opened(2, MON + 1).key, opened(1, MON).key])
    assert m.key != message_key("other", [e.key for e in m.events])  # per channel
    # Deliveries already fixed in a message keep its key: the retry is the same message.
    again = group("hook", [Pending(1, 1, "fixed-key", opened(1, MON))])
    assert again is not None and again.key == "fixed-key" and again.attempts == 2
    assert group("hook", []) is None
    with pytest.raises(ValueError):
        group("hook", [Pending(3, 0, None, None, "cannot render: x")])


# -- render -----------------------------------------------------------------------------


def test_render_names_an_upstream_outage_in_words() -> None:
    up = events.upstream_started("i", MON, "ignored", events.UpstreamCause("isp:NT", 5, 10))
    th = render_line(up, NotifyPolicy())
    assert "isp:NT" not in th and "ผู้ให้บริการ NT" in th
    en = render_line(up, NotifyPolicy(lang="en"))
    assert en.startswith("⚠️ Upstream outage:") and "isp:NT" not in en
    title, body = render_message([opened(2, MON + 1), opened(1, MON)],
                                 NotifyPolicy(base_url="http://noc:9847/"), "สพป.")
    assert title == "monitord สพป.: 2 เหตุการณ์"
    lines = body.splitlines()
    assert "#1" in lines[0] and "#2" in lines[1]  # in time order
    assert lines[2] == "หน้าสถานะ: http://noc:9847/status"


def test_unrenderable_says_why_and_a_good_event_renders() -> None:
    assert unrenderable(opened(1, MON), NotifyPolicy()) == ""
    bad = NotificationEvent("k", "ticket_opened", MON, {"ticket_id": 1, "affected": "many"})
    assert unrenderable(bad, NotifyPolicy()).startswith("cannot render: ValueError:")


# -- send -------------------------------------------------------------------------------


def test_keyed_url_only_on_webhook_channels() -> None:
    url = keyed_url("jsons://hook.example/x?a=1", "K1")
    assert dict(parse_qsl(urlsplit(url).query)) == {"a": "1", "+Idempotency-Key": "K1",
                                                    ":idempotency_key": "K1"}
    assert keyed_url("tgram://bot/chat", "K1") == "tgram://bot/chat"
    assert message_key("c", ["b", "a"]) == message_key("c", ["a", "b"])


# -- retry ------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_up_to_the_maximum() -> None:
    policy = NotifyPolicy(backoff_initial=10, backoff_max=100, max_attempts=5)
    b = Backoff(random.Random(1))
    for attempts, base in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)):
        assert 0.8 * base <= b.delay(policy, attempts) <= 1.2 * base
    v = after_failure(policy, b, 2, MON)
    assert v.status == "pending" and v.result == "retry" and 16 <= v.next_attempt - MON <= 24
    assert after_failure(policy, b, 5, MON) == Verdict("failed", MON, "failed")


async def test_send_directly_retries_in_memory_until_acknowledged() -> None:
    answers: list[bool | Exception] = [False, RuntimeError("boom"), True]
    sent: list[tuple[str, str | None]] = []

    async def sender(url: str, title: str, body: str, key: str | None) -> bool:
        sent.append((url, key))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    results: list[str] = []
    ok = await send_directly(sender, "json://x", "t", "b", asyncio.Event(), results.append,
                             wait=0.001)
    assert ok and results == ["retry", "retry", "success"] and len(sent) == 3
    stop = asyncio.Event()
    stop.set()
    answers[:] = [False] * 5
    results.clear()
    assert not await send_directly(sender, "json://x", "t", "b", stop, results.append)
    assert results == ["retry", "failed"]  # stopping: no more waiting


# -- the whole pipeline, in memory ------------------------------------------------------


@dataclass
class Row:
    id: int
    event: NotificationEvent | None
    channel: str
    next_attempt: float
    status: str = "pending"
    attempts: int = 0
    message_key: str | None = None
    last_error: str | None = None
    sent_at: float | None = None


class MemoryOutbox:
    """The :class:`~monitord.notify.outbox.Outbox` contract, in memory."""

    def __init__(self, recorded: Sequence[NotificationEvent | None] = ()) -> None:
        self.unrouted: list[NotificationEvent | None] = list(recorded)
        self.rows: dict[int, Row] = {}
        self.log: list[tuple[Any, ...]] = []

    async def route(self, targets: Targets) -> int:
        made = 0
        for ev in self.unrouted:
            for channel, first in targets(ev or NotificationEvent("?", "ticket_opened", 0)):
                self.rows[len(self.rows) + 1] = Row(len(self.rows) + 1, ev, channel, first)
                made += 1
        self.unrouted.clear()
        return made

    async def due(self, channel: str, now: float) -> list[Pending]:
        mine = [r for r in self.rows.values() if r.channel == channel
                and r.status == "pending" and r.next_attempt <= now]
        fixed = [r for r in mine if r.message_key is not None]
        key = fixed[0].message_key if fixed else None
        mine = [r for r in mine if r.message_key == key] if key else mine[:200]
        return [Pending(r.id, r.attempts, r.message_key, r.event,
                        "" if r.event is not None else "cannot render: TypeError: no data")
                for r in sorted(mine, key=lambda r: r.event.ts if r.event else 0)]

    async def update(self, ids: Sequence[int], status: str, when: float, attempts: int,
                     error: str | None, key: str | None = None) -> None:
        self.log.append(("update", tuple(ids), status, attempts, key))
        for i in ids:
            r = self.rows[i]
            r.status, r.attempts, r.next_attempt = status, attempts, when
            r.last_error = error if error is not None else r.last_error
            r.message_key = key if key is not None else r.message_key
            if status == "sent":
                r.sent_at = when


class Receiver:
    def __init__(self, outbox: MemoryOutbox) -> None:
        self.outbox = outbox
        self.ok = True
        self.got: list[tuple[str, str, str, str | None]] = []

    async def __call__(self, url: str, title: str, body: str, key: str | None) -> bool:
        # Fixed before sent: the outbox already holds this message's key and attempt.
        assert self.outbox.log and self.outbox.log[-1][2] == "pending"
        assert self.outbox.log[-1][4] == key
        self.got.append((url, title, body, key))
        return self.ok


def test_the_stages_run_in_the_documented_order() -> None:
    assert [name for name, _ in pipeline.STAGES] == [
        "quiet", "rate limit", "due", "render check", "group", "fix", "render", "send",
        "retry"]


async def test_pipeline_groups_sends_once_and_retries_under_the_same_key() -> None:
    box = MemoryOutbox([opened(i, MON + i) for i in range(1, 41)])
    hook = Receiver(box)
    d = Deliverer(None, [Channel("hook", "json://hook")], NotifyPolicy(group_window=30),
                  "สพป.", outbox=box, sender=hook, rng=random.Random(0))
    assert await d.route(MON) == 40
    await d.deliver(MON + 10)  # inside the window: nothing yet
    assert hook.got == []
    hook.ok = False
    await d.deliver(MON + 100)
    assert d.results == {("hook", "retry"): 1}
    first_key = hook.got[0][3]
    assert hook.got[0][1] == "monitord สพป.: 40 เหตุการณ์"
    hook.ok = True
    await d.deliver(MON + 200)  # after the backoff: the same message, the same key
    assert [g[3] for g in hook.got] == [first_key, first_key]
    assert d.results == {("hook", "retry"): 1, ("hook", "success"): 1}
    assert {r.status for r in box.rows.values()} == {"sent"}
    await d.deliver(MON + 10_000)
    assert len(hook.got) == 2  # nothing left


async def test_pipeline_an_unreadable_event_fails_alone_and_gives_up() -> None:
    box = MemoryOutbox([None, opened(1, MON)])
    hook = Receiver(box)
    d = Deliverer(None, [Channel("hook", "json://hook")],
                  NotifyPolicy(group_window=0, max_attempts=2, backoff_initial=1), "x",
                  outbox=box, sender=hook)
    await d.route(MON)
    await d.deliver(MON + 1)
    assert len(hook.got) == 1 and "#1" in hook.got[0][2]
    assert d.results == {("hook", "retry"): 1, ("hook", "success"): 1}
    bad = box.rows[1]
    assert bad.status == "pending" and bad.last_error and "cannot render" in bad.last_error
    await d.deliver(MON + 100)
    assert bad.status == "failed" and d.results[("hook", "failed")] == 1


async def test_pipeline_quiet_and_rate_limit_end_the_turn_before_reading() -> None:
    box = MemoryOutbox([opened(1, bkk(26, 23))])
    hook = Receiver(box)
    ctx = pipeline.Context(box, NotifyPolicy(group_window=0), "x", hook)
    await box.route(lambda ev: [("night", ev.ts)])
    night = Channel("night", "json://n", quiet=sched("mon-sun", "22:00-06:00"),
                    max_per_hour=1)
    assert await pipeline.run(pipeline.Turn(night, bkk(26, 23, 30)), ctx) == "quiet"
    assert await pipeline.run(pipeline.Turn(night, bkk(27, 6, 1)), ctx) == ""
    await box.route(lambda ev: [])
    box.rows[2] = Row(2, opened(2, bkk(27, 6, 2)), "night", bkk(27, 6, 2))
    assert await pipeline.run(pipeline.Turn(night, bkk(27, 6, 3)), ctx) == "rate limit"
    assert await pipeline.run(pipeline.Turn(night, bkk(27, 7, 2)), ctx) == ""
    assert len(hook.got) == 2


async def test_alert_directly_reaches_every_channel_that_wants_it() -> None:
    got: list[str] = []

    async def sender(url: str, title: str, body: str, key: str | None) -> bool:
        got.append(url)
        return url != "json://broken"

    d = Deliverer(None, [Channel("a", "json://a"), Channel("broken", "json://broken"),
                         Channel("tickets-only", "json://t",
                                 events=frozenset({"ticket_opened"}))],
                  NotifyPolicy(), "x", outbox=MemoryOutbox(), sender=sender)
    stop = asyncio.Event()
    stop.set()  # no waiting between attempts
    await d.alert_directly(events.storage_failing(MON, "disk full"), stop)
    assert sorted(set(got)) == ["json://a", "json://broken"]
    assert d.results == {("a", "success"): 1, ("broken", "retry"): 1,
                         ("broken", "failed"): 1}
