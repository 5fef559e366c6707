"""Notifications and ticket texts under hostile input and faults (issue 12).

* Out-of-range dates are refused where they come in (API 422, CLI exit 2), and one that
  is already stored (old data) shows as "?" instead of stopping the notification worker,
  ``tickets show`` or the repair report; an event that cannot be rendered at all fails
  alone, with its ``last_error``, while every other notification still arrives.
* Messages say things in words and once: "ผู้ให้บริการ NT", never ``isp:NT``; one count
  of affected devices, the ticket's own.
* kill -9 during a notification storm: every message arrives, each under a stable
  idempotency key; a repeat is only the message in flight at the kill.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from monitord.notify import NotificationEvent, NotifyPolicy, render_message
from monitord.thaidate import format_datetime
from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    cli,
    db_tickets,
    wait_for,
    wait_value,
    write_config,
)
from tests.notify_lab import Webhook

TOKEN = "tok-hardening-5c1d9e"
# What the API stored for `"scheduled_for": "0001-01-01T00:00:00"` before it checked dates
# (naive = Bangkok local time): a Unix time no calendar date in Python can hold in UTC.
YEAR_ONE = datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Bangkok")).timestamp()


# -- finding 4: dates ------------------------------------------------------------------


def _ticket_db(path: Path) -> None:
    """A database with ticket 1 open (as the daemon writes it)."""
    from monitord.domain.incidents import Incident, TicketOpen
    from monitord.domain.tickets import Equipment, TicketContext
    from monitord.storage import Storage

    async def make() -> None:
        store = await Storage.open(path)
        try:
            inc = Incident("i1", "device", "srv", 1_795_400_000.0)
            ctx = TicketContext("office", "กลุ่มอำนวยการ", None, "สพป.ทดสอบ", "กลุ่ม DLICT",
                                "ระบบ monitord", "", [Equipment("srv", "เซิร์ฟเวอร์", "", "", "")])
            await store.commit([], [TicketOpen(1, inc, 1_795_400_600.0)], {1: ctx})
        finally:
            await store.close()

    asyncio.run(make())


def test_cli_refuses_dates_outside_2000_2100(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    _ticket_db(db)
    for args in (("tickets", "schedule", "1", "--at", "0001-01-01T00:00:00"),
                 ("tickets", "update", "1", "--started", "1999-12-31 23:59"),
                 ("tickets", "update", "1", "--finished", "2101-01-01 00:00"),
                 ("maintenance", "add", "--name", "x", "--start", "9999-12-31 00:00",
                  "--end", "9999-12-31 01:00")):
        res = cli(*args, "--db", str(db))
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "is outside 2000-01-01..2100-12-31" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    shown = cli("tickets", "show", "1", "--db", str(db), "--format", "json")
    t = json.loads(shown.stdout)
    assert t["scheduled_for"] is None and t["repair_started"] is None  # nothing stored
    assert cli("maintenance", "list", "--db", str(db)).stdout.strip() == ""
    ok = cli("tickets", "schedule", "1", "--at", "2030-01-15 09:30", "--db", str(db))
    assert ok.returncode == 0, ok.stderr
    assert "นัดหมาย: 2030-01-15 09:30" in cli("tickets", "show", "1", "--db", str(db)).stdout


def test_api_refuses_dates_outside_2000_2100(
        tmp_path: Path, iptables: IptablesDrop, monkeypatch: pytest.MonkeyPatch,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([{"id": "srv", "kind": "server", "address": "127.131.4.1",
                        "unit": "กลุ่มอำนวยการ"}], ticket_delay="1s")
    cfg["http"] = {"api_tokens": [{"name": "officer",
                                   "token": {"env": "MONITORD_TEST_API_TOKEN"}}]}
    monkeypatch.setenv("MONITORD_TEST_API_TOKEN", TOKEN)
    iptables.drop("127.131.4.0/24")
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()
    wait_for(lambda: len(db_tickets(d.db, "--all")) == 1, 40, "a ticket")
    api = httpx.Client(base_url=d.url, timeout=10,
                       headers={"Authorization": f"Bearer {TOKEN}"})
    for body, field in (({"scheduled_for": "0001-01-01T00:00:00"}, "scheduled_for"),
                        ({"repair_started": "1999-12-31T23:59:59+07:00"}, "repair_started"),
                        ({"repair_finished": "9999-12-31T23:59:59Z"}, "repair_finished")):
        r = api.patch("/api/v1/tickets/1", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        (err,) = r.json()["errors"]
        assert err["loc"] == ["body", field] and "outside 2000-01-01..2100-12-31" in err["msg"]
    for start, end in (("0001-01-01T00:00:00", "2026-01-01T00:00:00"),
                       ("2026-01-01T00:00:00", "2101-01-01T00:00:00")):
        r = api.post("/api/v1/maintenance", json={"name": "x", "start": start, "end": end})
        assert r.status_code == 422, r.text
        assert "outside 2000-01-01..2100-12-31" in r.json()["errors"][0]["msg"]
    t = api.get("/api/v1/tickets/1").json()
    assert t["scheduled_for"] is None and t["repair_started"] is None
    assert api.get("/api/v1/maintenance").json()["count"] == 0
    r = api.patch("/api/v1/tickets/1", json={"scheduled_for": "2030-01-15T09:30:00"})
    assert r.status_code == 200, r.text
    assert "Traceback" not in d.log()
    assert d.stop() == 0


def test_stored_bad_dates_and_unreadable_events_fail_alone(
        tmp_path: Path, iptables: IptablesDrop, webhook: Webhook,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    """Old data written straight into the database: a year-1 appointment (what the API
    used to accept) and an event whose data is not JSON.  The appointment goes out with
    "?" for its date; the unreadable event fails alone (last_error, retried); ticket 2's
    notification still arrives; tickets show and the repair report still work."""
    cfg = base_config([
        {"id": "srv-a", "kind": "server", "address": "127.131.2.1", "unit": "กลุ่มอำนวยการ"},
        {"id": "srv-b", "kind": "server", "address": "127.131.3.1", "unit": "กลุ่มนโยบายและแผน"},
    ], ticket_delay="1s")
    cfg["notify"] = {"group_window": "1s", "backoff_initial": "2s"}
    config = write_config(tmp_path / "m.yaml", cfg)
    iptables.drop("127.131.2.0/24")
    d = daemon_factory("run", "--config", str(config), "--notify", webhook.url)
    d.wait_ready()
    wait_for(lambda: any("เปิดใบแจ้งซ่อม #1" in m for m in webhook.messages()), 40,
             "ticket 1's message")
    with sqlite3.connect(d.db, timeout=10) as db:
        db.execute("UPDATE ticket SET scheduled_for = ?, repair_started = ? WHERE id = 1",
                   (YEAR_ONE, YEAR_ONE))
        db.execute("INSERT INTO notification_event (key, kind, ts, data) VALUES (?, ?, ?, ?)",
                   ("old-scheduled", "ticket_scheduled", 1_795_400_000.0, json.dumps(
                       {"ticket_id": 1, "root": "srv-a", "served_unit": "กลุ่มอำนวยการ",
                        "actor": "นายเก่า", "scheduled_for": YEAR_ONE})))
        db.execute("INSERT INTO notification_event (key, kind, ts, data) VALUES (?, ?, ?, ?)",
                   ("old-broken", "ticket_reminder", 1_795_400_001.0, '{"ticket_id": 1, "ag'))
    iptables.drop("127.131.3.0/24")
    wait_for(lambda: any("เปิดใบแจ้งซ่อม #2 กลุ่มนโยบายและแผน" in m
                         for m in webhook.messages()), 40, "ticket 2's message")
    text = "\n".join(webhook.messages())
    assert "📅 นัดหมายซ่อม #1 กลุ่มอำนวยการ: ? โดย นายเก่า" in text

    def broken() -> sqlite3.Row:
        with sqlite3.connect(d.db, timeout=10) as db:
            db.row_factory = sqlite3.Row
            row: sqlite3.Row = db.execute(
                "SELECT d.* FROM notification_delivery d JOIN notification_event e"
                " ON e.id = d.event_id WHERE e.key = 'old-broken'").fetchone()
            return row

    row = wait_value(broken, lambda r: r is not None and r["attempts"] >= 2, 30,
                     "the unreadable event retried")
    assert row["status"] == "pending" and row["last_error"].startswith(
        "cannot render: JSONDecodeError"), dict(row)
    assert "⏰" not in text  # it never went out half-rendered
    m = d.metrics()
    assert m("monitord_notifications_total", channel="cli-1", result="retry") >= 2
    assert m("monitord_notifications_total", channel="cli-1", result="success") >= 2

    # The stored year-1 dates render as "?" in tickets show and the repair report.
    shown = cli("tickets", "show", "1", "--db", str(d.db))
    assert shown.returncode == 0, shown.stderr
    assert "นัดหมาย: ?" in shown.stdout
    for fmt in ("html", "pdf"):
        out = tmp_path / f"repair.{fmt}"
        res = cli("report", "repair", "1", "--db", str(d.db), "--format", fmt, "-o", str(out))
        assert res.returncode == 0, res.stderr
        assert out.stat().st_size > 1000
    assert "Traceback" not in d.log()
    assert d.stop() == 0


# -- finding 16: messages in words, each thing once ------------------------------------


def words_config() -> dict[str, Any]:
    """School A (ISP TRUE): router → switch → TV; three NT schools that fail together."""
    devices: list[dict[str, Any]] = [
        {"id": "62020001-rtr", "school": "62020001", "kind": "router",
         "address": "127.132.1.1", "name": "เราเตอร์อินเทอร์เน็ต"},
        {"id": "62020001-sw", "school": "62020001", "kind": "switch",
         "address": "127.132.1.2", "parent": "62020001-rtr", "name": "สวิตช์"},
        {"id": "62020001-tv", "school": "62020001", "kind": "tv",
         "address": "127.132.1.3", "parent": "62020001-sw", "name": "ทีวีห้อง ป.1"},
    ]
    cfg = base_config(devices, ticket_delay="8s")  # the router fails well within it
    cfg["schools"] = {"62020001": {"name": "โรงเรียนบ้านหนองปลิง", "district": "คลองขลุง",
                                   "isp": "TRUE"}}
    for i in range(1, 4):
        smis = f"620201{i:02d}"
        cfg["schools"][smis] = {"name": f"โรงเรียนทดสอบ {i}", "district": "คลองลาน",
                                "isp": "NT"}
        devices.append({"id": f"{smis}-rtr", "school": smis, "kind": "router",
                        "address": f"127.132.2.{i}"})
    cfg["incidents"] = {"correlation": {"group_by": "isp", "min_schools": 3,
                                        "min_share": 0.5, "window": "60s"}}
    cfg["notify"] = {"group_window": "1s"}
    return cfg


def test_messages_name_things_in_words_and_count_once(
        tmp_path: Path, iptables: IptablesDrop, webhook: Webhook,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "m.yaml", words_config())
    d = daemon_factory("run", "--config", str(config), "--notify", webhook.url)
    d.wait_ready()
    wait_for(lambda: len(d.metrics().by_label("monitord_device_up", "device")) == 6, 30,
             "all devices probed")
    # The devices below the router die first, then the router: its incident finds them
    # already down (the case that said the count twice).
    iptables.drop("127.132.1.2/31")
    def up() -> dict[str, float]:
        return d.metrics().by_label("monitord_device_up", "device")

    wait_for(lambda: up()["62020001-sw"] == up()["62020001-tv"] == 0, 30, "switch, TV down")
    iptables.drop("127.132.1.1/32")
    iptables.drop("127.132.2.0/24")
    rows = wait_value(lambda: db_tickets(d.db, "--all"), lambda r: len(r) == 2, 40, "two tickets")
    t = {x["root"]: x for x in rows}
    school, isp = t["62020001-rtr"], t["isp:NT"]
    assert [e["device_id"] for e in school["equipment"]] == [
        "62020001-rtr", "62020001-sw", "62020001-tv"]

    def lines() -> list[str]:
        return [ln for m in webhook.messages() for ln in m.splitlines()]

    wait_for(lambda: sum(ln.startswith(("🔴", "⚠️")) for ln in lines()) == 3, 40,
             "three messages: two tickets and the upstream outage")
    when = {k: format_datetime(datetime.fromtimestamp(v["down_since"], UTC), abbreviated=True)
            for k, v in t.items()}
    expected = {
        f"🔴 เปิดใบแจ้งซ่อม #{school['id']} โรงเรียนบ้านหนองปลิง: เราเตอร์อินเทอร์เน็ต "
        f"ขัดข้องตั้งแต่ {when['62020001-rtr']} กระทบอุปกรณ์อื่น 2 รายการ — "
        "เราเตอร์/อุปกรณ์หลักของโรงเรียนไม่ตอบสนอง: ตรวจสอบไฟฟ้า อุปกรณ์ "
        "และสัญญาณอินเทอร์เน็ตจากผู้ให้บริการ TRUE",
        f"🔴 เปิดใบแจ้งซ่อม #{isp['id']} เหตุขัดข้องต้นทางตั้งแต่ {when['isp:NT']} — "
        "โรงเรียนที่ใช้ผู้ให้บริการ NT ขัดข้องพร้อมกัน 3 จาก 3 แห่ง → "
        "น่าจะเป็นเหตุขัดข้องของผู้ให้บริการ ไม่ใช่อุปกรณ์ของโรงเรียน: แจ้งผู้ให้บริการ",
        "⚠️ เหตุขัดข้องต้นทาง: โรงเรียนที่ใช้ผู้ให้บริการ NT ขัดข้องพร้อมกัน 3 จาก 3 แห่ง → "
        "น่าจะเป็นเหตุขัดข้องของผู้ให้บริการ ไม่ใช่อุปกรณ์ของโรงเรียน: แจ้งผู้ให้บริการ",
    }
    got = {ln for ln in lines() if ln.startswith(("🔴", "⚠️"))}
    assert got == expected
    text = "\n".join(webhook.messages())
    assert "isp:" not in text and "ด้านล่าง" not in text
    assert "ทีวีห้อง ป.1" not in text  # the affected devices are counted, not listed twice
    assert isp["served_unit"] == "โรงเรียน 3 แห่ง (ผู้ให้บริการ NT)"  # the report's unit

    # The NT schools come back: the outage's end and the ticket's repair, in words.
    iptables.undrop("127.132.2.0/24")
    wait_for(lambda: any(ln.startswith("✅ เหตุขัดข้องต้นทาง") for ln in lines()), 40,
             "outage over")
    wait_for(lambda: any(ln.startswith(f"✅ ซ่อมเสร็จ/กลับมาใช้งานได้ #{isp['id']}")
                         for ln in lines()), 40, "upstream ticket repaired")
    assert "✅ เหตุขัดข้องต้นทาง ผู้ให้บริการ NT สิ้นสุดแล้ว" in lines()
    assert f"✅ ซ่อมเสร็จ/กลับมาใช้งานได้ #{isp['id']} ผู้ให้บริการ NT" in lines()
    assert "isp:" not in "\n".join(webhook.messages())
    assert d.stop() == 0

    # The same recorded events in English (notify.lang: en).
    with sqlite3.connect(d.db) as db:
        events = [NotificationEvent(k, kind, ts, json.loads(data)) for k, kind, ts, data
                  in db.execute("SELECT key, kind, ts, data FROM notification_event"
                                " WHERE kind IN ('ticket_opened', 'upstream_started',"
                                " 'upstream_ended') ORDER BY id")]
    _, body = render_message(events, NotifyPolicy(lang="en"), "x")
    en = {ln.split(" — ")[1] if " — " in ln else ln for ln in body.splitlines()}
    assert en == {
        "the school's router does not answer: check power, the equipment and the internet "
        "link from provider TRUE",
        "3 of 3 schools on provider NT are down at once → most likely the provider's "
        "outage, not the schools' equipment: tell the provider",
        "⚠️ Upstream outage: 3 of 3 schools on provider NT are down at once → most likely "
        "the provider's outage, not the schools' equipment: tell the provider",
        "✅ Upstream outage of provider NT is over",
    }
    assert re.search(r"down since \S+ \S+, 2 other devices affected — the school's router",
                     body)
    assert "isp:" not in body


# -- kill -9 during a notification storm ------------------------------------------------

STORM = 500


def test_kill9_during_storm_every_message_once_per_key(
        tmp_path: Path, iptables: IptablesDrop, webhook: Webhook,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    """500 tickets open at once; two webhook channels answer slowly (3 s); the daemon is
    killed -9 twice while a message is in flight.  Afterwards every ticket's notification
    has arrived on both channels under exactly one idempotency key, and the only repeats
    are the in-flight messages (at most one per kill), with the same key and body."""
    devices = [{"id": f"srv{i:03d}", "kind": "server",
                "address": f"127.133.{i // 250}.{i % 250 + 1}"} for i in range(STORM)]
    cfg = base_config(devices, ticket_delay="1s")
    cfg["notify"] = {"group_window": "1s", "backoff_initial": "1s"}
    config = write_config(tmp_path / "m.yaml", cfg)
    hooks = [webhook.url.replace("/hook", "/a"), webhook.url.replace("/hook", "/b")]
    args = ["run", "--config", str(config), "--notify", hooks[0], "--notify", hooks[1]]
    iptables.drop("127.133.0.0/16")
    webhook.delay = 3.0
    kills = 0
    d = daemon_factory(*args)
    d.wait_ready(timeout=60)
    for _ in range(2):  # kill while the receiver holds a request (in flight)
        seen = len(webhook.snapshot())
        wait_for(lambda seen=seen: len(webhook.snapshot()) > seen, 60, "a message in flight")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
        kills += 1
        d = daemon_factory(*args, db=d.db)
        d.wait_ready(timeout=60)

    def pending() -> int:
        with sqlite3.connect(d.db, timeout=10) as db:
            row = db.execute("SELECT (SELECT COUNT(*) FROM ticket),"
                             " (SELECT COUNT(*) FROM notification_delivery"
                             "  WHERE status != 'sent')"
                             " + (SELECT COUNT(*) FROM notification_event WHERE routed = 0)"
                             ).fetchone()
        return -1 if row[0] < STORM else int(row[1])

    wait_for(lambda: pending() == 0, 80, "every delivery sent")
    requests = webhook.snapshot()
    assert d.stop() == 0
    by_channel: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for r in requests:
        key = r["headers"]["Idempotency-Key"]
        assert r["json"]["idempotency_key"] == key  # in the payload too
        by_channel[r["path"]][key].append(r["json"])
    assert set(by_channel) == {"/a", "/b"}
    repeats = 0
    for path, messages in by_channel.items():
        opened: list[int] = []
        for key, copies in messages.items():
            assert all(c == copies[0] for c in copies), f"{path}: key {key} reused"
            repeats += len(copies) - 1
            opened += [int(n) for n in re.findall(r"เปิดใบแจ้งซ่อม #(\d+) ", copies[0]["message"])]
        # After dedup by key: every ticket exactly once on this channel.
        assert sorted(opened) == list(range(1, STORM + 1)), path
    # Only what was in flight at a kill repeats, one message per kill (and the kills did
    # hit a message in flight: the receiver holds each request for 3 s).
    assert 1 <= repeats <= kills
    keys_a, keys_b = set(by_channel["/a"]), set(by_channel["/b"])
    assert not keys_a & keys_b  # a key belongs to one channel
    with sqlite3.connect(d.db) as db:
        opens = db.execute("SELECT COUNT(*), COUNT(DISTINCT ticket_id) FROM ticket_event"
                           " WHERE status = 'open'").fetchone()
    assert opens == (STORM, STORM)


def test_thai_dates_of_impossible_times_render_as_question_mark() -> None:
    """What the renderers fall back on: a stored time outside any calendar is "?"."""
    from monitord.thaidate import format_timestamp, from_timestamp, to_bangkok

    assert format_timestamp(YEAR_ONE) == "?" and from_timestamp(YEAR_ONE) is None
    assert format_timestamp(float("nan")) == "?" and format_timestamp(1e300) == "?"
    assert format_timestamp(None) == "-"
    assert format_timestamp(1_795_400_000.0, abbreviated=True) == "23 พ.ย. 2569 เวลา 09:13 น."
    last = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert to_bangkok(last) == last  # no Bangkok date after 9999-12-31: shown as it is
