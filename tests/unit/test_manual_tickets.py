"""Manual tickets (รับแจ้ง), acknowledgement and assignment on a temporary database:
storage (numbering, frozen context, history, outbox, joining, filters), the commands'
validation, the JSON API (PDPA), reminders skipping acknowledged tickets, the message
wording and the repair report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware

from monitord.app.commands import AppCommands
from monitord.config import Config, parse_config
from monitord.domain.activehours import MaintenanceWindow
from monitord.domain.events import NotificationEvent
from monitord.domain.incidents import (
    Incident,
    IncidentOpened,
    TicketDeviceBack,
    TicketInfo,
    TicketJoined,
    TicketOpen,
)
from monitord.domain.state import DeviceStatus, State
from monitord.domain.tickets import TicketContext
from monitord.http.api.routes import routes
from monitord.http.ports import Conflict, Invalid, NotFound, Unavailable, View
from monitord.http.server import SecurityHeaders
from monitord.http.status import StatusData
from monitord.notify import render_line
from monitord.notify.channel import NotifyPolicy
from monitord.notify.timed import Reminders, timed_events
from monitord.reports.from_ticket import report_from_ticket
from monitord.storage import Storage

TOKEN = "tok-unit-manual-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = 1_795_400_000.0


def config() -> Config:
    doc = {
        "office": {"name": "สำนักงานทดสอบ", "area_code": "6202"},
        "schools": {
            "62020001": {"name": "โรงเรียนบ้านทดสอบ", "district": "คลองขลุง", "isp": "NT"},
            "62020002": {"name": "โรงเรียนวัดทดสอบ", "district": "เมือง", "isp": "NT"},
        },
        "devices": [
            {"id": "rtr", "school": "62020001", "kind": "router", "address": "127.95.9.1",
             "hostname": "rtr.school.example", "serial": "SN-UNIT-1"},
            {"id": "proj", "school": "62020001", "kind": "projector", "parent": "rtr",
             "address": "127.95.9.3", "name": "โปรเจกเตอร์ห้อง 1", "serial": "SN-PROJ-1"},
            {"id": "rtr2", "school": "62020002", "kind": "router", "address": "127.95.9.4"},
            {"id": "srv", "kind": "server", "address": "127.95.9.2", "unit": "กลุ่มอำนวยการ"},
        ],
        "http": {"api_tokens": [{"name": "unit-officer",
                                 "token": {"env": "MONITORD_TEST_API_TOKEN"}}]},
    }
    return parse_config(yaml.safe_dump(doc, allow_unicode=True)).config


@dataclass
class FakeView:
    config: Config | None
    storage: Storage | None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def status_data(self) -> StatusData:
        return StatusData("สำนักงานทดสอบ", [])

    def device_status(self, device_id: str) -> DeviceStatus | None:
        return None

    def effective_state(self, device_id: str, now: float | None = None) -> State:
        return State.UP

    def in_maintenance(self, device_id: str, now: float) -> MaintenanceWindow | None:
        return None

    def open_incidents(self) -> list[Incident]:
        return []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "m.db")
    yield s
    await s.close()


async def outbox(store: Storage) -> list[dict[str, Any]]:
    async with store.connection.execute(
            "SELECT kind, data FROM notification_event ORDER BY id") as cur:
        return [{**json.loads(r["data"]), "event": r["kind"]} for r in await cur.fetchall()]


REPORT: dict[str, Any] = {"school": "62020001", "devices": ["proj"], "source": "phone",
                          "reporter_name": "ครูสมศรี ใจดี", "reporter_phone": "081-234 5678",
                          "reporter_position": "ครูผู้รับผิดชอบงาน ICT",
                          "problem": "โปรเจกเตอร์ห้อง 1 เปิดไม่ติด"}


async def test_manual_report_is_stored_numbered_and_notified(store: Storage) -> None:
    cfg = config()
    commands = AppCommands(_on(store), config=lambda: cfg)
    # an automatic ticket first: the manual one takes the next number
    await store.commit([], [TicketOpen(1, Incident("i1", "device", "rtr2", T0), T0 + 60)],
                       {1: TicketContext("school", "โรงเรียนวัดทดสอบ", "62020002", "", "",
                                         "ระบบ monitord", "")})
    t = await commands.report_problem("officer-a", **REPORT)
    assert t["id"] == 2 and t["origin"] == "manual" and t["status"] == "open"
    assert t["report_source"] == "phone" and t["reporter_phone"] == "081-234 5678"
    assert t["reporter_name"] == "ครูสมศรี ใจดี" and t["created_by"] == "officer-a"
    assert t["problem"] == t["event_text"] == "โปรเจกเตอร์ห้อง 1 เปิดไม่ติด"
    assert t["variant"] == "school" and t["served_unit"] == "โรงเรียนบ้านทดสอบ"
    assert [e["device_id"] for e in t["equipment"]] == ["proj"]
    assert t["equipment"][0]["serial"] == "SN-PROJ-1" and t["root"] == "proj"
    assert [(h["actor"], h["note"]) for h in t["history"]] == [
        ("officer-a", "รับแจ้งทาง โทรศัพท์ จาก ครูสมศรี ใจดี")]
    assert t["assigned_to"] is None and t["acknowledged_at"] is None
    (ev,) = [e for e in await outbox(store) if e.get("origin") == "manual"]
    assert ev["event"] == "ticket_opened" and ev["ticket_id"] == 2
    assert ev["district"] == "คลองขลุง" and ev["kind"] == "projector"
    assert "081" not in json.dumps(ev) and "สมศรี" not in json.dumps(ev)  # PDPA
    # a whole school: every device of it; then office equipment
    whole = await commands.report_problem("officer-a", school="62020001", source="line",
                                          reporter_name="ผอ.", problem="เน็ตช้าทั้งโรงเรียน")
    assert whole["id"] == 3 and whole["root"] == "school:62020001"
    assert sorted(e["device_id"] for e in whole["equipment"]) == ["proj", "rtr"]
    office = await commands.report_problem("officer-a", school=None, devices=["srv"],
                                           source="walk_in", reporter_name="คุณเอ",
                                           problem="เซิร์ฟเวอร์ค้าง")
    assert office["variant"] == "office" and office["served_unit"] == "กลุ่มอำนวยการ"
    infos = {i.id: i for i in await store.ticket_infos()}
    assert infos[3].manual and infos[3].school == "62020001"
    assert infos[2].devices == frozenset({"proj"}) and not infos[1].manual


def _on(store: Storage) -> Any:
    return AppCommands.on_store(store)._connect


async def test_report_validation_per_field(store: Storage) -> None:
    cfg = config()
    commands = AppCommands(_on(store), config=lambda: cfg)
    with pytest.raises(Invalid) as bad:
        await commands.report_problem("x", school="62020001", devices=["rtr2", "nope"],
                                      source="fax", reporter_name=" ", reporter_phone="abc",
                                      problem="")
    where = {p[0] for p in bad.value.problems}
    assert where == {("source",), ("reporter_name",), ("reporter_phone",), ("problem",),
                     ("devices", 0), ("devices", 1)}
    with pytest.raises(Invalid) as bad:
        await commands.report_problem("x", school="99999999", source="phone",
                                      reporter_name="a", problem="b")
    assert [p[0] for p in bad.value.problems] == [("school",)]
    with pytest.raises(Invalid, match="name the devices"):
        await commands.report_problem("x", school=None, source="phone", reporter_name="a",
                                      problem="b")
    with pytest.raises(Invalid):
        await commands.report_problem("x", school="62020001", source="phone",
                                      reporter_name="a", problem="x" * 2001)
    assert await store.list_tickets(include_closed=True) == []


async def test_daemon_numbering_hook_and_release(store: Storage) -> None:
    cfg = config()
    given: list[tuple[str | None, list[str]]] = []
    released: list[int] = []

    def allocate(school: str | None, devices: Any) -> int:
        given.append((school, list(devices)))
        return 41

    commands = AppCommands(_on(store), config=lambda: cfg, allocate_ticket=allocate,
                           release_ticket=released.append)
    t = await commands.report_problem("o", **REPORT)
    assert t["id"] == 41 and given == [("62020001", ["proj"])] and released == []
    with pytest.raises(Conflict, match="taken"):  # the same number again
        await commands.report_problem("o", **REPORT)
    assert released == [41]

    def starting(school: str | None, devices: Any) -> int:
        raise RuntimeError("the daemon is starting")

    with pytest.raises(Unavailable):
        await AppCommands(_on(store), config=lambda: cfg,
                          allocate_ticket=starting).report_problem("o", **REPORT)


async def test_acknowledge_assign_filters_and_reminders(store: Storage) -> None:
    cfg = config()
    commands = AppCommands(_on(store), config=lambda: cfg)
    a = await commands.report_problem("o", **REPORT)
    b = await commands.report_problem("o", **{**REPORT, "school": "62020002",
                                              "devices": ["rtr2"]})
    t = await commands.acknowledge_ticket(a["id"], "tech-1", note="กำลังไป")
    assert t["acknowledged_by"] == "tech-1" and t["acknowledged_at"] is not None
    again = await commands.acknowledge_ticket(a["id"], "tech-2")
    assert again["acknowledged_by"] == "tech-1" and len(again["history"]) == 2
    assert again["history"][-1]["note"] == "รับทราบ: กำลังไป"
    t = await commands.assign_ticket(b["id"], "o", "tech-1")
    assert t["assigned_to"] == "tech-1" and t["history"][-1]["note"] == "มอบหมายให้ tech-1"
    assert [x["id"] for x in await store.list_tickets(assigned_to="tech-1")] == [b["id"]]
    assert [x["id"] for x in await store.list_tickets(schools=["62020001"])] == [a["id"]]
    assert await store.list_tickets(schools=[]) == []
    t = await commands.assign_ticket(b["id"], "o", None)
    assert t["assigned_to"] is None and t["history"][-1]["note"] == "ยกเลิกการมอบหมาย"
    with pytest.raises(Invalid):
        await commands.assign_ticket(b["id"], "o", "a\nb")
    with pytest.raises(NotFound):
        await commands.acknowledge_ticket(99, "o")
    # reminders and escalation skip the acknowledged ticket; the summary lists both
    rows = await store.list_tickets()
    later = float(rows[0]["opened_at"]) + 3 * 86400
    events = timed_events(rows, [], later, Reminders(3600.0, 86400.0, None))
    assert {e.data["ticket_id"] for e in events} == {b["id"]}
    await commands.close_ticket(a["id"], "o")
    with pytest.raises(Conflict, match="closed"):
        await commands.acknowledge_ticket(a["id"], "o")
    with pytest.raises(Conflict, match="closed"):
        await commands.assign_ticket(a["id"], "o", "tech-1")


async def test_joined_incident_fills_the_manual_ticket(store: Storage) -> None:
    cfg = config()
    t = await AppCommands(_on(store), config=lambda: cfg).report_problem("o", **REPORT)
    inc = Incident("i9", "device", "proj", T0, reason="icmp: 3 consecutive failures",
                   hypothesis="อุปกรณ์ไม่ตอบสนอง", school="62020001")
    await store.commit([], [IncidentOpened(inc)], {})
    inc.ticket_id = t["id"]
    await store.commit([], [TicketJoined(t["id"], inc, T0 + 60)], {})
    joined = await store.get_ticket(t["id"])
    assert joined["incident_id"] == "i9" and joined["incident_root"] == "proj"
    assert joined["reason"] == "icmp: 3 consecutive failures" and joined["status"] == "open"
    assert "รวมเข้ากับใบแจ้งซ่อมที่รับแจ้งไว้" in joined["history"][-1]["note"]
    assert joined["history"][-1]["note"].startswith("ระบบตรวจพบ")
    await store.commit([], [TicketDeviceBack(t["id"], "proj", T0 + 600, 600.0)], {})
    back = await store.get_ticket(t["id"])
    assert back["status"] == "open" and back["repaired_at"] is None
    assert back["history"][-1]["note"].startswith("อุปกรณ์กลับมาใช้งานได้")
    # the repair report: the reporter signs, the problem and what was seen fill the form
    report = report_from_ticket(back, now=T0 + 700)
    assert report.reporter is not None and report.reporter.name == "ครูสมศรี ใจดี"
    assert report.reporter.position == "ครูผู้รับผิดชอบงาน ICT"
    assert report.event_text.startswith("โปรเจกเตอร์ห้อง 1 เปิดไม่ติด")
    assert "ระบบตรวจพบว่า โปรเจกเตอร์ห้อง 1 ไม่ตอบสนอง" in report.event_text
    infos = [i for i in await store.ticket_infos() if i.id == t["id"]]
    assert infos == [TicketInfo(t["id"], "proj", "open", None, manual=True,
                                devices=frozenset({"proj"}))]


def test_message_wording_for_a_manual_report() -> None:
    ev = NotificationEvent("k", "ticket_opened", T0, {
        "ticket_id": 7, "root": "school:62020001", "root_name": "",
        "school": "62020001", "served_unit": "โรงเรียนบ้านทดสอบ", "origin": "manual",
        "source": "line", "problem": "เน็ตช้า", "down_since": T0})
    assert render_line(ev, NotifyPolicy()) == (
        "🔴 เปิดใบแจ้งซ่อม #7 โรงเรียนบ้านทดสอบ รับแจ้งทางLINE: เน็ตช้า")
    assert render_line(ev, NotifyPolicy(lang="en")) == (
        "🔴 Repair ticket #7 opened, โรงเรียนบ้านทดสอบ reported by LINE: เน็ตช้า")


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MONITORD_TEST_API_TOKEN", TOKEN)
    yield


async def test_api_report_acknowledge_assign(store: Storage, token_env: None) -> None:
    cfg = config()
    commands = AppCommands.for_daemon(lambda: store, lambda: cfg)
    app = Starlette(routes=routes(cast(View, FakeView(cfg, store)), commands),
                    middleware=[Middleware(SecurityHeaders)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitord") as api:
        assert (await api.post("/api/v1/tickets", json=REPORT)).status_code == 401
        r = await api.post("/api/v1/tickets", json={**REPORT, "devices": ["rtr2"]},
                           headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"] == ["body", "devices", 0]
        r = await api.post("/api/v1/tickets", json={**REPORT, "source": "fax"}, headers=AUTH)
        assert r.status_code == 422
        r = await api.post("/api/v1/tickets", json=REPORT, headers=AUTH)
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        assert r.headers["location"] == f"/api/v1/tickets/{tid}"
        assert r.json()["created_by"] == "unit-officer"
        anon = (await api.get(f"/api/v1/tickets/{tid}")).json()
        assert anon["origin"] == "manual" and anon["report_source"] == "phone"
        for private in ("reporter_phone", "reporter_name", "problem", "created_by",
                        "assigned_to"):
            assert private not in anon
        assert "081" not in json.dumps(anon) and "สมศรี" not in json.dumps(anon)
        r = await api.post(f"/api/v1/tickets/{tid}/acknowledge", json={"note": "ok"},
                           headers=AUTH)
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "unit-officer"
        assert (await api.post("/api/v1/tickets/99/acknowledge", json={},
                               headers=AUTH)).status_code == 404
        r = await api.patch(f"/api/v1/tickets/{tid}", json={"assigned_to": "tech-1"},
                            headers=AUTH)
        assert r.status_code == 200 and r.json()["assigned_to"] == "tech-1"
        notes = [h["note"] for h in r.json()["history"]]
        assert notes[-1] == "มอบหมายให้ tech-1" and "แก้ไขรายละเอียด" not in notes
        r = await api.patch(f"/api/v1/tickets/{tid}", headers=AUTH,
                            json={"assigned_to": None, "status": "in_repair"})
        assert r.json()["assigned_to"] is None and r.json()["status"] == "in_repair"
        listed = (await api.get("/api/v1/tickets", params={"school": "62020001"})).json()
        assert [t["id"] for t in listed["items"]] == [tid]
        doc = (await api.get("/api/v1/openapi.json")).json()
        assert {"/api/v1/tickets/{id}/acknowledge", "/api/v1/tickets"} <= set(doc["paths"])
        assert "post" in doc["paths"]["/api/v1/tickets"]
        from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

        assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)] == []
