"""The daemon's pipeline in-process: observations → state → incidents → tickets → outbox.

No sockets, no root, no probes: observations are fed straight in with an injected clock,
and what a user would notice is read back from a real (temporary) SQLite database —
device states, ticket rows, the notifications waiting in the outbox — and from the read
model the pages use.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitord.app.pipeline import Pipeline
from monitord.app.readmodel import ReadModel, Runtime
from monitord.app.writer import StateWriter
from monitord.config import load_config
from monitord.domain.state import State
from monitord.probes.base import Observation
from monitord.storage import Storage

BANGKOK = ZoneInfo("Asia/Bangkok")
#: a Monday in lesson hours, and the Saturday evening before it
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=BANGKOK).timestamp()
SATURDAY_20 = datetime(2026, 11, 28, 20, 0, tzinfo=BANGKOK).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Lab:
    def __init__(self, pipeline: Pipeline, storage: Storage, writer: StateWriter,
                 clock: Clock) -> None:
        self.pipeline, self.storage, self.writer, self.clock = pipeline, storage, writer, clock
        self.view = ReadModel(pipeline, Runtime())

    def feed(self, device: str, ok: bool, *, probe: str = "icmp", reason: str = "",
             after: float = 1.0) -> None:
        """One observation ``after`` seconds later."""
        self.clock.t += after
        values = {"sent": 2.0, "received": 2.0 if ok else 0.0}
        if ok and probe == "icmp":
            values["rtt_avg_seconds"] = 0.002
        self.pipeline.apply([Observation(device, probe, ok, ts=self.clock.t,
                                         reason=reason or ("" if ok else "timeout"),
                                         values=values if probe == "icmp" else {})])

    async def settle(self, after: float = 0.0) -> None:
        """Let ``after`` seconds pass, write what is queued and run the timers once."""
        self.clock.t += after
        assert await self.writer.flush()
        await self.pipeline.tick()
        assert await self.writer.flush()

    async def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.storage.connection.execute(
                "SELECT kind, data FROM notification_event ORDER BY id") as cur:
            return [(r["kind"], json.loads(r["data"])) for r in await cur.fetchall()]

    async def state(self, device: str) -> str:
        return (await self.storage.load_states())[device].state.value


def config_data(devices: list[dict[str, Any]], **defaults: Any) -> dict[str, Any]:
    return {
        "office": {"name": "สำนักงานเขตพื้นที่การศึกษาประถมศึกษาทดสอบ เขต 1", "area_code": "6202"},
        "defaults": {"interval": "1s", "failure_threshold": 2, "success_threshold": 1,
                     **defaults},
        "schools": {
            "62020001": {"name": "โรงเรียนบ้านทดสอบ", "district": "คลองขลุง", "isp": "NT"},
            "62020002": {"name": "โรงเรียนวัดทดสอบ", "district": "คลองลาน", "isp": "TRUE"},
        },
        "devices": devices,
    }


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    cfg = config_data([
        {"id": "r1", "name": "เราเตอร์โรงเรียน", "kind": "router", "school": "62020001",
         "address": "192.0.2.1"},
        {"id": "sw1", "kind": "switch", "school": "62020001", "parent": "r1",
         "address": "192.0.2.2"},
        {"id": "tv1", "kind": "tv", "school": "62020001", "parent": "sw1",
         "address": "192.0.2.3", "probes": ["mqtt"]},
        {"id": "r2", "kind": "router", "school": "62020002", "address": "192.0.2.9"},
    ], ticket_delay="60s")
    cfg["schedules"] = {"school_hours": {"days": ["mon-fri"], "hours": ["08:00-16:00"]}}
    cfg["kinds"] = {"tv": {"schedule": "school_hours"}}
    cfg["mqtt"] = {"host": "127.0.0.1", "port": 1883}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    config = load_config(path).config
    clock = Clock(MONDAY_10)
    storage = await Storage.open(tmp_path / "m.db")
    writer = StateWriter(storage)
    pipeline = Pipeline(now=clock)
    pipeline.configure(config)
    pipeline.attach(storage, writer)
    pipeline.restore(await Pipeline.load_saved(storage))
    try:
        yield Lab(pipeline, storage, writer, clock)
    finally:
        pipeline.stop_event.set()
        await storage.close()


async def test_router_down_opens_one_ticket_and_recovery_repairs_it(lab: Lab) -> None:
    for dev in ("r1", "sw1", "r2"):
        lab.feed(dev, True, after=0.1)
    await lab.settle()
    assert await lab.state("r1") == "up"

    lab.feed("r1", False)
    lab.feed("sw1", False, after=0.1)
    lab.feed("r1", False)
    lab.feed("sw1", False, after=0.1)
    await lab.settle()
    assert await lab.state("r1") == "down"
    # the switch behind the router is unreachable, not down: one incident, its root r1
    assert lab.view.effective_state("sw1", lab.clock.t) is State.UNREACHABLE
    assert [i.root for i in lab.view.open_incidents()] == ["r1"]
    assert await lab.storage.list_tickets() == []  # not before ticket_delay

    await lab.settle(after=61)
    tickets = await lab.storage.list_tickets()
    assert [(t["root"], t["status"]) for t in tickets] == [("r1", "open")]
    assert lab.view.ticket_counts() == {"62020001": 1}
    opened = [data for kind, data in await lab.outbox() if kind == "ticket_opened"]
    assert len(opened) == 1
    assert opened[0]["root"] == "r1" and opened[0]["served_unit"] == "โรงเรียนบ้านทดสอบ"
    assert opened[0]["affected"] == 1  # the switch behind it
    school = next(s for s in lab.view.status_data().schools if s.smis == "62020001")
    assert school.state is State.DOWN

    # more failed rounds and timer turns queue nothing new
    lab.feed("r1", False)
    await lab.settle(after=30)
    assert [k for k, _ in await lab.outbox()].count("ticket_opened") == 1

    lab.feed("r1", True)
    lab.feed("sw1", True, after=0.1)
    await lab.settle()
    assert await lab.state("r1") == "up"
    ticket = await lab.storage.get_ticket(tickets[0]["id"])
    assert ticket["status"] == "repaired"
    assert [k for k, _ in await lab.outbox()] == ["ticket_opened", "ticket_repaired"]
    assert lab.view.open_incidents() == []
    counters = lab.view.counters()
    # both failed to answer (the switch shows unreachable: its parent is the root cause)
    assert counters["monitord_state_transitions_total"][("down",)] == 2


async def test_short_outage_opens_no_ticket(lab: Lab) -> None:
    lab.feed("r2", True)
    lab.feed("r2", False)
    lab.feed("r2", False)
    await lab.settle(after=20)
    assert await lab.state("r2") == "down"
    lab.feed("r2", True)
    await lab.settle(after=61)
    assert await lab.state("r2") == "up"
    assert await lab.storage.list_tickets() == []
    assert await lab.outbox() == []
    transitions = await lab.storage.transitions("r2")
    assert sorted(t.new.value for t in transitions if t.old is not State.UNKNOWN) == [
        "down", "up"]


async def test_tv_powered_off_outside_lesson_hours_is_no_fault(lab: Lab) -> None:
    lab.clock.t = SATURDAY_20
    lab.feed("tv1", True, probe="mqtt")
    for _ in range(3):
        lab.feed("tv1", False, probe="mqtt", reason="powered_off")
    await lab.settle(after=120)
    assert await lab.state("tv1") == "up"
    st = lab.view.device_status("tv1")
    assert st is not None and st.state is State.UP

    lab.clock.t = MONDAY_10
    lab.feed("tv1", False, probe="mqtt", reason="powered_off")
    await lab.settle()
    assert await lab.state("tv1") == "down"  # switched off in a lesson: a fault
    counters = lab.view.counters()["monitord_observations_total"]
    assert counters[("mqtt", "ok")] == 4 and counters[("mqtt", "fail")] == 1


async def test_writes_wait_in_memory_while_the_database_fails(lab: Lab) -> None:
    lab.feed("r2", True)
    await lab.settle()
    await lab.storage.connection.execute("PRAGMA query_only = ON")  # writes now fail
    lab.feed("r2", False)
    lab.feed("r2", False)
    assert not await lab.writer.flush()
    assert not lab.writer.up and lab.writer.pending > 0
    health = lab.view.health()
    assert health["storage"]["up"] is False and health["storage"]["pending_writes"] > 0
    assert lab.view.gauges()["monitord_storage_up"] == {(): 0.0}

    await lab.storage.connection.execute("PRAGMA query_only = OFF")
    assert await lab.writer.flush()
    assert lab.writer.up and lab.writer.pending == 0
    assert await lab.state("r2") == "down"


async def test_maintenance_added_is_in_force_at_once(lab: Lab) -> None:
    lab.feed("r2", True)
    lab.feed("r2", False)
    lab.feed("r2", False)
    now = lab.clock.t
    assert lab.view.effective_state("r2", now) is State.DOWN
    await lab.storage.add_maintenance(  # as `monitord maintenance add` / the API would
        "ย้ายตู้", now - 60, max(now, time.time()) + 3600,  # storage hides ended windows
        devices=["r2"], created_by="tester")
    assert lab.view.effective_state("r2", now) is State.DOWN  # not yet known
    await lab.pipeline.maintenance_changed()  # the commands' callback
    assert lab.view.effective_state("r2", now) is State.MAINTENANCE
    assert lab.view.in_maintenance("r2", now) is not None
    await lab.settle(after=120)  # no ticket for a device in maintenance
    assert await lab.storage.list_tickets() == []


async def test_wall_reads_the_read_model(lab: Lab) -> None:
    """A page built in-process over the read model: no daemon, no sockets."""
    from monitord.http.wall import Wall

    for dev in ("r1", "r2"):
        lab.feed(dev, True, after=0.1)
    lab.feed("r1", False)
    lab.feed("r1", False)
    await lab.settle(after=61)
    data = await Wall(lab.view).snapshot("en")
    f = data["figures"]
    assert (f["schools_offline"], f["schools_online"], f["tickets_open"]) == (1, 1, 1)
    assert [r["smis"] for r in data["down_schools"]] == ["62020001"]
    kinds = [e["kind"] for e in data["events"]]
    assert "ticket" in kinds and "state" in kinds
    assert all("192.0.2." not in e["text"] for e in data["events"])  # never an address


async def test_the_whole_site_in_process_with_security_headers_once(lab: Lab) -> None:
    """Every page and the API over the read model, in-process (no daemon, no sockets):
    each answer carries the security headers from the one site-wide middleware — HTML the
    page policy, everything else the data policy — and routes' own values win."""
    import httpx

    from monitord.app.commands import AppCommands
    from monitord.http.site import build_app

    for dev in ("r1", "r2"):
        lab.feed(dev, True, after=0.1)
    await lab.settle()
    commands = AppCommands.on_store(lab.storage)
    app = build_app(lab.view, commands)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitord") as client:
        answers = {path: await client.get(path) for path in (
            "/status", "/status/62020001", "/wall", "/wall/data.json", "/metrics",
            "/healthz", "/api/v1/schools", "/api/v1/nothing", "/tickets/1", "/nothing")}
    for path, r in answers.items():
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        csp = r.headers["content-security-policy"]
        if r.headers["content-type"].startswith("text/html"):
            assert "script-src 'unsafe-inline'" in csp, path
        else:
            assert csp == "default-src 'none'; frame-ancestors 'none'", path
    assert answers["/status"].status_code == 200
    assert "โรงเรียนบ้านทดสอบ" in answers["/status"].text
    assert answers["/api/v1/schools"].json()["count"] == 2
    assert answers["/api/v1/nothing"].headers["content-type"] == "application/problem+json"
    assert answers["/tickets/1"].status_code == 401  # personal data: token or signed link
    assert answers["/nothing"].status_code == 404
    assert "connect-src 'self'" in answers["/wall"].headers["content-security-policy"]
    assert answers["/status"].headers["cache-control"] == "no-cache"
    assert answers["/healthz"].headers["cache-control"] == "no-store"
