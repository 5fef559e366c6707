"""Notifications: a durable outbox delivered to real receivers on loopback."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from monitord.notify import Channel, Deliverer, NotificationEvent, NotifyPolicy, event_key
from monitord.storage import Storage
from tests.daemon_lab import (
    MONITORD,
    ROOT,
    DaemonProcess,
    IptablesDrop,
    base_config,
    free_port,
    wait_for,
    write_config,
)
from tests.notify_lab import Mailbox, Webhook

NOW = 1_795_400_000.0  # 2026-11-23 ~09:13 Bangkok


def opened(tid: int, school: str, name: str) -> NotificationEvent:
    return NotificationEvent(event_key("open", tid), "ticket_opened", NOW + tid,
                             {"ticket_id": tid, "school": school, "served_unit": name,
                              "root": f"{school}-rtr", "root_name": "เราเตอร์อินเทอร์เน็ต",
                              "down_since": NOW - 600, "hypothesis": "ตรวจสอบไฟฟ้า",
                              "affected": 2})


async def store_with(tmp_path: Path, events: list[NotificationEvent]) -> Storage:
    store = await Storage.open(tmp_path / "m.db")
    await store.commit([], [], {}, events)
    return store


async def test_events_in_one_window_are_one_message(tmp_path: Path, webhook: Webhook) -> None:
    events = [opened(i, f"620200{i:02d}", f"โรงเรียนที่ {i}") for i in range(1, 41)]
    store = await store_with(tmp_path, events)
    try:
        d = Deliverer(store.connection, [Channel("hook", webhook.url)],
                      NotifyPolicy(group_window=30, base_url="http://noc.example:9847"),
                      "สพป.กำแพงเพชร เขต 2")
        await d.route(NOW)
        await d.deliver(NOW + 10)  # inside the window: nothing yet
        assert webhook.messages() == []
        await d.deliver(NOW + 100)
        await d.deliver(NOW + 200)  # nothing left to send
        (msg,) = webhook.requests
        body = msg["json"]["message"]
        assert msg["json"]["title"] == "monitord สพป.กำแพงเพชร เขต 2: 40 เหตุการณ์"
        assert body.count("🔴 เปิดใบแจ้งซ่อม #") == 40
        first = body.splitlines()[0]
        assert first == ("🔴 เปิดใบแจ้งซ่อม #1 โรงเรียนที่ 1: เราเตอร์อินเทอร์เน็ต ขัดข้องตั้งแต่ "
                         "23 พ.ย. 2569 เวลา 09:03 น. กระทบอุปกรณ์อื่น 2 รายการ — ตรวจสอบไฟฟ้า "
                         "http://noc.example:9847/tickets/1")
        assert body.endswith("หน้าสถานะ: http://noc.example:9847/status")
        assert d.results == {("hook", "success"): 1}
    finally:
        await store.close()


async def test_recording_twice_is_idempotent_and_routing_filters(tmp_path: Path,
                                                                 webhook: Webhook) -> None:
    store = await store_with(tmp_path, [opened(1, "62020001", "ก")])
    try:
        await store.commit([], [], {}, [opened(1, "62020001", "ก"), opened(2, "62020002", "ข")])
        d = Deliverer(store.connection,
                      [Channel("all", webhook.url),
                       Channel("only-2", webhook.url, schools=frozenset({"62020002"})),
                       Channel("upstream", webhook.url, events=frozenset({"upstream_started"}))],
                      NotifyPolicy(group_window=0), "x")
        assert await d.route(NOW) == 3  # all: 2 events, only-2: 1, upstream: 0
        await d.deliver(NOW + 100)
        assert sorted(m.count("#") for m in webhook.messages()) == [1, 2]
    finally:
        await store.close()


async def test_retry_with_backoff_until_the_receiver_is_back(tmp_path: Path,
                                                             webhook: Webhook) -> None:
    store = await store_with(tmp_path, [opened(1, "62020001", "ก")])
    try:
        d = Deliverer(store.connection, [Channel("hook", webhook.url)],
                      NotifyPolicy(group_window=0, backoff_initial=10), "x")
        await d.route(NOW)
        webhook.status = 500
        await d.deliver(NOW + 1)  # the event is due at its own time (NOW + 1)
        assert d.results == {("hook", "retry"): 1}
        webhook.status = 200
        await d.deliver(NOW + 2)  # backoff (8–12 s) not over yet
        assert webhook.messages() == []
        await d.deliver(NOW + 14)
        assert len(webhook.messages()) == 1
        # A restarted worker on the same database sends nothing again.
        d2 = Deliverer(store.connection, [Channel("hook", webhook.url)],
                       NotifyPolicy(group_window=0), "x")
        await d2.route(NOW + 20)
        await d2.deliver(NOW + 1000)
        assert len(webhook.messages()) == 1
    finally:
        await store.close()


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    store = await store_with(tmp_path, [opened(1, "62020001", "ก")])
    dead = f"json://127.0.0.1:{free_port()}/hook"  # nothing listens there
    try:
        d = Deliverer(store.connection, [Channel("dead", dead)],
                      NotifyPolicy(group_window=0, max_attempts=2, backoff_initial=1), "x")
        await d.route(NOW)
        await d.deliver(NOW + 1)
        await d.deliver(NOW + 100)
        await d.deliver(NOW + 200)
        assert d.results == {("dead", "retry"): 1, ("dead", "failed"): 1}
    finally:
        await store.close()


def test_notify_test_command(webhook: Webhook, mailbox: Mailbox) -> None:
    res = subprocess.run([*MONITORD, "notify", "test", webhook.url], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert webhook.requests[0]["json"]["title"] == "monitord: ทดสอบการแจ้งเตือน"
    res = subprocess.run([*MONITORD, "notify", "test", mailbox.url()], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    (mail,) = mailbox.mails
    msg = email.message_from_bytes(mail[2], policy=email.policy.default)
    assert msg["Subject"] == "monitord: ทดสอบการแจ้งเตือน" and mail[1] == ["director@example.org"]
    res = subprocess.run([*MONITORD, "notify", "test", f"json://127.0.0.1:{free_port()}/x"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1 and "NOT sent" in res.stderr


def test_daemon_notifies_ticket_opened_and_repaired(
        tmp_path: Path, iptables: IptablesDrop, webhook: Webhook, mailbox: Mailbox,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([
        {"id": "62020001-rtr", "school": "62020001", "kind": "router", "address": "127.96.0.1",
         "name": "เราเตอร์อินเทอร์เน็ต"},
        {"id": "62020002-rtr", "school": "62020002", "kind": "router", "address": "127.96.1.1"},
    ], ticket_delay="2s")
    cfg["notify"] = {"group_window": "1s", "channels": [
        {"name": "director-mail", "url": {"env": "MONITORD_TEST_MAIL_URL"},
         "events": ["ticket_opened"]},
    ]}
    config = write_config(tmp_path / "m.yaml", cfg)
    os.environ["MONITORD_TEST_MAIL_URL"] = mailbox.url()
    try:
        d = daemon_factory("run", "--config", str(config), "--notify", webhook.url)
    finally:
        del os.environ["MONITORD_TEST_MAIL_URL"]
    d.wait_ready()
    wait_for(lambda: len(d.metrics().by_label("monitord_device_up", "device")) == 2, 30,
             "probed")
    iptables.drop("127.96.0.0/24")
    wait_for(lambda: any("เปิดใบแจ้งซ่อม #1" in m for m in webhook.messages()), 40,
             "ticket message on the webhook")
    wait_for(lambda: len(mailbox.mails) == 1, 30, "ticket e-mail")
    iptables.undrop("127.96.0.0/24")
    wait_for(lambda: any("ซ่อมเสร็จ" in m for m in webhook.messages()), 40, "repaired message")
    msgs = webhook.messages()
    assert sum("เปิดใบแจ้งซ่อม #1 โรงเรียนบ้านทดสอบ: เราเตอร์อินเทอร์เน็ต" in m for m in msgs) == 1
    assert len(mailbox.mails) == 1  # the e-mail channel takes ticket_opened only
    body = email.message_from_bytes(mailbox.mails[0][2], policy=email.policy.default)
    assert "เปิดใบแจ้งซ่อม #1" in body.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    m = d.metrics()
    assert m("monitord_notifications_total", channel="director-mail", result="success") == 1
    assert m("monitord_notifications_total", channel="cli-1", result="success") >= 2
    # The channel URL (it could hold a token) never reaches logs or metrics.
    assert f"127.0.0.1:{mailbox.port}" not in d.log() + d.metrics_text()
    assert d.stop() == 0


def test_kill9_before_delivery_loses_nothing_and_sends_once(
        tmp_path: Path, iptables: IptablesDrop, webhook: Webhook,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    import json
    import signal

    cfg = base_config([{"id": "web", "kind": "server", "address": "127.96.2.1",
                        "unit": "กลุ่มอำนวยการ"}], ticket_delay="1s")
    cfg["notify"] = {"group_window": "4s"}
    config = write_config(tmp_path / "m.yaml", cfg)
    iptables.drop("127.96.2.0/24")
    d = daemon_factory("run", "--config", str(config), "--notify", webhook.url)
    d.wait_ready()

    def ticket_count() -> int:
        res = subprocess.run([*MONITORD, "tickets", "list", "--db", str(d.db), "--format",
                              "json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        return len(json.loads(res.stdout)) if res.returncode == 0 else 0

    wait_for(lambda: ticket_count() == 1, 30, "ticket opened")
    d.proc.send_signal(signal.SIGKILL)  # inside the 4 s group window: not sent yet
    d.proc.wait(timeout=10)
    assert webhook.messages() == []
    d2 = daemon_factory("run", "--config", str(config), "--notify", webhook.url, db=d.db)
    d2.wait_ready()
    wait_for(lambda: len(webhook.messages()) == 1, 30, "the stored notification delivered")
    rounds = d2.metrics()("monitord_probe_rounds_total", probe="icmp")
    wait_for(lambda: d2.metrics()("monitord_probe_rounds_total", probe="icmp") > rounds + 8,
             60, "more rounds")
    assert len(webhook.messages()) == 1 and "เปิดใบแจ้งซ่อม #1" in webhook.messages()[0]
    assert d2.stop() == 0


class _CloudApi:
    """Stands in for LINE's and Telegram's servers, which cannot be reached from here: it
    replaces requests' transport, so the exact prepared request is captured and nothing
    leaves the machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.sent: list[requests.PreparedRequest] = []

        def send(adapter: HTTPAdapter, request: requests.PreparedRequest,
                 **kwargs: object) -> requests.Response:
            self.sent.append(request)
            resp = requests.Response()
            resp.status_code = 200
            resp._content = b'{"ok": true, "result": {}}'
            resp.url = request.url or ""
            resp.request = request
            return resp

        monkeypatch.setattr(HTTPAdapter, "send", send)


async def test_telegram_request_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitord.notify import send

    api = _CloudApi(monkeypatch)
    assert await send("tgram://123456789:ABCdefGhIJKlmNoPQRsTUVwxyZ/-1001234567890",
                      "หัวข้อ", "ข้อความ")
    (req,) = api.sent
    assert req.method == "POST"
    assert req.url == ("https://api.telegram.org/bot123456789:ABCdefGhIJKlmNoPQRsTUVwxyZ/"
                       "sendMessage")
    assert req.headers["Content-Type"] == "application/json"
    assert req.body == (
        '{"disable_notification": false, "disable_web_page_preview": true, '
        '"parse_mode": "HTML", "text": "<b>\\u0e2b\\u0e31\\u0e27\\u0e02\\u0e49\\u0e2d</b>'
        '\\r\\n\\u0e02\\u0e49\\u0e2d\\u0e04\\u0e27\\u0e32\\u0e21", "chat_id": -1001234567890}')


async def test_line_messaging_api_request_byte_for_byte(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from monitord.notify import send

    api = _CloudApi(monkeypatch)
    assert await send("line://ChannelAccessTokenXYZ/Cgroup1234567890", "หัวข้อ", "ข้อความ")
    (req,) = api.sent
    assert req.method == "POST"
    assert req.url == "https://api.line.me/v2/bot/message/push"
    assert req.headers["Authorization"] == "Bearer ChannelAccessTokenXYZ"
    assert req.headers["Content-Type"] == "application/json"
    assert req.body == (
        '{"to": "Cgroup1234567890", "messages": [{"type": "text", "text": '
        '"\\u0e2b\\u0e31\\u0e27\\u0e02\\u0e49\\u0e2d\\r\\n\\u0e02\\u0e49\\u0e2d\\u0e04'
        '\\u0e27\\u0e32\\u0e21", "sender": {"name": "Apprise", "iconUrl": '
        '"https://github.com/caronc/apprise/raw/master/apprise/assets/themes/default/'
        'apprise-info-128x128.png"}}]}')


def bkk(day: int, hour: int, minute: int = 0) -> float:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime(2026, 11, day, hour, minute, tzinfo=ZoneInfo("Asia/Bangkok")).timestamp()


def event_at(ts: float, tid: int, kind: str = "ticket_opened") -> NotificationEvent:
    return NotificationEvent(event_key(kind, tid, ts), kind, ts,
                             {"ticket_id": tid, "served_unit": f"โรงเรียน {tid}", "root": "r"})


async def test_duty_roster_quiet_hours_rate_limit_and_escalation(tmp_path: Path,
                                                                 webhook: Webhook) -> None:
    from monitord.domain.activehours import Schedule, WeeklyWindow, parse_days, parse_hours

    def sched(days: str, hours: str) -> Schedule:
        return Schedule("s", (WeeklyWindow(parse_days([days]), *parse_hours(hours)),))

    mon, thu = bkk(23, 10), bkk(26, 10)  # Monday and Thursday 10:00
    store = await store_with(tmp_path, [event_at(mon, 1), event_at(thu, 2),
                                        event_at(thu, 3, "ticket_escalated")])
    hook2, hook3, hook4 = Webhook(), Webhook(), Webhook()
    try:
        channels = [
            Channel("acting-director", webhook.url, on_duty=sched("thu-fri", "08:30-16:30")),
            Channel("night-quiet", hook2.url, quiet=sched("mon-sun", "22:00-06:00")),
            Channel("director", hook3.url, escalation=True),
            Channel("limited", hook4.url, max_per_hour=1),
        ]
        d = Deliverer(store.connection, channels, NotifyPolicy(group_window=0), "x")
        await d.route(thu)
        # The Thursday/Friday officer hears of Thursday's event only.
        await d.deliver(thu + 1)
        assert [m.count("#") for m in webhook.messages()] == [1]
        assert "#2" in webhook.messages()[0]
        # The director's channel gets the escalation and nothing else.
        assert len(hook3.messages()) == 1 and "⏫" in hook3.messages()[0]
        # Rate limit 1/hour: the first message took both due events; a new one waits.
        assert len(hook4.messages()) == 1
        await store.commit([], [], {}, [event_at(thu + 60, 4)])
        await d.route(thu + 60)
        await d.deliver(thu + 120)
        assert len(hook4.messages()) == 1
        await d.deliver(thu + 3700)
        assert len(hook4.messages()) == 2 and "#4" in hook4.messages()[1]
        # Quiet hours: a message due at 23:00 waits until 06:00.
        hook2.requests.clear()
        await store.commit([], [], {}, [event_at(bkk(26, 23), 5)])
        await d.route(bkk(26, 23))
        await d.deliver(bkk(26, 23, 30))
        assert hook2.messages() == []
        await d.deliver(bkk(27, 6, 1))
        assert len(hook2.messages()) == 1 and "#5" in hook2.messages()[0]
    finally:
        await store.close()
        for h in (hook2, hook3, hook4):
            h.close()


def test_timed_events_are_idempotent() -> None:
    from monitord.notify import Reminders, timed_events

    opened = bkk(23, 9)
    tickets = [{"id": 7, "status": "open", "opened_at": opened, "root": "r", "school": "s",
                "served_unit": "โรงเรียน 7", "equipment": [{"name": "เราเตอร์"}]},
               {"id": 8, "status": "repaired", "opened_at": opened, "root": "q"}]
    cfg = Reminders(remind_every=3600, escalate_after=7200, daily_summary_at="07:30")
    early = timed_events(tickets, [], opened + 1800, cfg)
    assert early == []
    later = timed_events(tickets, ["โรงเรียน 7"], opened + 2.5 * 3600, cfg)
    kinds = sorted(e.kind for e in later)
    assert kinds == ["ticket_escalated", "ticket_reminder"]
    again = timed_events(tickets, [], opened + 2.6 * 3600, cfg)
    assert {e.key for e in again} == {e.key for e in later}  # same keys: recorded once
    summary = timed_events(tickets, ["โรงเรียน 7"], bkk(24, 7, 35), cfg)
    (daily,) = [e for e in summary if e.kind == "daily_summary"]
    assert daily.data["offline_schools"] == ["โรงเรียน 7"]
    assert [t["id"] for t in daily.data["open_tickets"]] == [7]
    assert not [e for e in timed_events(tickets, [], bkk(24, 9, 0), cfg)
                if e.kind == "daily_summary"]  # missed by more than 10 minutes: skipped


async def test_officer_schedule_and_close_are_recorded_for_notification(tmp_path: Path) -> None:
    from monitord.domain.incidents import Incident, TicketOpen
    from monitord.domain.tickets import Equipment, TicketContext

    store = await Storage.open(tmp_path / "m.db")
    try:
        inc = Incident("i1", "device", "62020001-rtr", NOW - 600, school="62020001")
        ctx = TicketContext("school", "โรงเรียนบ้านหนองปลิง", "62020001", "สพป.", "กลุ่ม",
                            "ระบบ monitord", "", [Equipment("62020001-rtr", "เราเตอร์", "", "",
                                                            "")])
        await store.commit([], [TicketOpen(1, inc, NOW)], {1: ctx})
        await store.update_ticket(1, "นายสมชาย", scheduled_for=NOW + 86400)
        await store.update_ticket(1, "นายสมชาย", status="closed")
        async with store.connection.execute(
                "SELECT kind, data FROM notification_event ORDER BY id") as cur:
            rows = [(r[0], r[1]) for r in await cur.fetchall()]
        assert [k for k, _ in rows] == ["ticket_scheduled", "ticket_closed"]
        assert "นายสมชาย" in rows[0][1] and "โรงเรียนบ้านหนองปลิง" in rows[0][1]
        history = (await store.get_ticket(1))["history"]
        assert [h["status"] for h in history] == ["open", "scheduled", "closed"]
    finally:
        await store.close()


def test_english_messages() -> None:
    from monitord.notify import render_message

    ev = opened(3, "62020003", "Ban Nong Pling School")
    title, body = render_message([ev, event_at(NOW + 50, 4, "ticket_repaired")],
                                 NotifyPolicy(lang="en", base_url="http://noc:9847"),
                                 "Kamphaeng Phet 2")
    assert title == "monitord Kamphaeng Phet 2: 2 events"
    assert body.splitlines()[0] == (
        "🔴 Repair ticket #3 opened, Ban Nong Pling School: เราเตอร์อินเทอร์เน็ต down since "
        "2026-11-23 09:03, 2 other devices affected — ตรวจสอบไฟฟ้า http://noc:9847/tickets/3")
    assert body.splitlines()[1] == "✅ Repaired / back up #4, โรงเรียน 4: r http://noc:9847/tickets/4"
    assert body.splitlines()[2] == "Status page: http://noc:9847/status"


async def test_stored_outbox_gives_the_stages_typed_deliveries(tmp_path: Path) -> None:
    """The stages' port on the real database: a damaged event comes back as a delivery
    without an event that says why (it fails alone), the others with theirs."""
    from monitord.notify.outbox import StoredOutbox

    store = await store_with(tmp_path, [opened(1, "62020001", "ก")])
    try:
        await store.connection.execute(
            "INSERT INTO notification_event (key, kind, ts, data) VALUES ('bad', "
            "'ticket_opened', ?, 'not json')", (NOW,))
        await store.connection.commit()
        box = StoredOutbox(store.connection)
        assert await box.route(lambda ev: [("hook", NOW)]) == 2
        bad, good = await box.due("hook", NOW)
        assert bad.event is None and bad.error.startswith("cannot render: JSONDecodeError")
        assert good.event == opened(1, "62020001", "ก") and good.error == ""
        await box.update([good.id], "pending", NOW + 60, 1, None, "k1")
        assert await box.due("hook", NOW + 30) == [bad]  # the fixed message is not due yet
        (again,) = await box.due("hook", NOW + 60)  # now the unfinished message comes first
        assert again.id == good.id and again.message_key == "k1" and again.attempts == 1
    finally:
        await store.close()
