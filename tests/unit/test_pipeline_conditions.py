"""Conditions through the pipeline in-process (injected clock, a real temporary SQLite):
observations that report a standing problem (a TLS certificate about to expire) open a
repair ticket for that device and condition; a later answer of the same probe without it
repairs the ticket; the device going DOWN changes nothing; a restart carries on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitord.app.pipeline import Pipeline
from monitord.app.writer import StateWriter
from monitord.config import load_config
from monitord.domain.events import NotificationEvent
from monitord.domain.state import State
from monitord.notify import NotifyPolicy
from monitord.notify.render import render_line
from monitord.probes.base import Observation
from monitord.reports.from_ticket import report_from_ticket
from monitord.storage import Storage
from tests.unit.test_pipeline import MONDAY_10, Clock, Lab, config_data

KEY = "tls_cert_expiring"
REASON = ("ใบรับรอง TLS ของ portal.example.go.th หมดอายุใน 9 วัน (9 ธ.ค. 2569): "
          "ต่ออายุใบรับรอง")
ROOT = f"web-portal#{KEY}"


class CondLab(Lab):
    def observe(self, device: str, probe: str, ok: bool = True,
                conditions: dict[str, str] | None = None, after: float = 1.0,
                **kw: Any) -> None:
        self.clock.t += after
        values = {"sent": 2.0, "received": 2.0 if ok else 0.0, "rtt_avg_seconds": 0.002} \
            if probe == "icmp" else {}
        self.pipeline.apply([Observation(device, probe, ok, ts=self.clock.t, values=values,
                                         reason="" if ok else "timeout",
                                         conditions=conditions or {}, **kw)])


def write_config(tmp_path: Path, portal_probes: tuple[str, ...] = ("icmp", "snmp"),
                 name: str = "m.yaml", router: bool = True) -> Path:
    cfg = config_data([
        {"id": "web-portal", "name": "เว็บไซต์สำนักงาน", "kind": "server",
         "unit": "กลุ่มส่งเสริมการศึกษาทางไกลฯ", "address": "192.0.2.20",
         "probes": list(portal_probes)},
        *([{"id": "r1", "kind": "router", "school": "62020001", "address": "192.0.2.1",
            "probes": ["icmp", "snmp"]}] if router else []),
    ], ticket_delay="60s", snmp={"community": "public"})
    cfg["tickets"] = {"auto_close_after": "1h"}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def open_lab(path: Path, db: Path, t: float) -> CondLab:
    config = load_config(path).config
    storage = await Storage.open(db)
    clock = Clock(t)
    pipeline = Pipeline(now=clock)
    pipeline.configure(config)
    pipeline.attach(storage, StateWriter(storage))
    pipeline.restore(await Pipeline.load_saved(storage))
    assert pipeline.writer is not None
    return CondLab(pipeline, storage, pipeline.writer, clock)


@pytest.fixture
async def paths(tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    yield write_config(tmp_path), tmp_path / "m.db"


async def test_condition_opens_a_ticket_survives_down_and_restart_then_is_repaired(
        paths: tuple[Path, Path]) -> None:
    cfg_path, db = paths
    lab = await open_lab(cfg_path, db, MONDAY_10)
    try:
        lab.observe("web-portal", "icmp")
        lab.observe("web-portal", "snmp", conditions={KEY: REASON})
        await lab.settle()
        assert [(i.kind, i.root) for i in lab.view.open_incidents()] == [("condition", ROOT)]
        assert await lab.storage.list_tickets() == []  # not before ticket_delay
        lab.observe("web-portal", "snmp", conditions={KEY: REASON}, after=30)
        await lab.settle(after=31)
        (ticket,) = await lab.storage.list_tickets()
        assert (ticket["root"], ticket["status"], ticket["reason"]) == (ROOT, "open", REASON)
        assert ticket["variant"] == "office"
        assert ticket["served_unit"] == "กลุ่มส่งเสริมการศึกษาทางไกลฯ"
        assert [e["device_id"] for e in ticket["equipment"]] == ["web-portal"]
        assert lab.view.ticket_counts() == {"office": 1}
        # the device's state is its own: a working device with a condition is UP
        assert lab.view.effective_state("web-portal") is State.UP

        # the notification says what is wrong and what to do
        ((kind, data),) = await lab.outbox()
        assert kind == "ticket_opened" and data["condition"] == KEY
        assert data["reason"] == REASON and data["root_name"] == "เว็บไซต์สำนักงาน"
        line = render_line(NotificationEvent("k", kind, lab.clock.t, data), NotifyPolicy())
        assert "ต่ออายุใบรับรอง" in line and "เว็บไซต์สำนักงาน" in line
        assert "ไม่ตอบสนอง" not in line and "web-portal#" not in line
        en = render_line(NotificationEvent("k", kind, lab.clock.t, data),
                         NotifyPolicy(lang="en"))
        assert "works but needs fixing" in en and REASON in en

        # the repair report's เหตุการณ์/ปัญหา is the condition's reason
        report = report_from_ticket(await lab.storage.get_ticket(ticket["id"]))
        assert REASON in report.event_text and "ไม่ตอบสนอง" not in report.event_text
        assert report.equipment[0].name == "เว็บไซต์สำนักงาน"

        # the portal stops answering: DOWN, its own incident; failed checks keep the
        # condition (they say nothing about the certificate)
        for _ in range(2):
            lab.observe("web-portal", "icmp", ok=False)
            lab.observe("web-portal", "snmp", ok=False)
        await lab.settle()
        assert await lab.state("web-portal") == "down"
        assert sorted(i.root for i in lab.view.open_incidents()) == ["web-portal", ROOT]
    finally:
        lab.pipeline.stop_event.set()
        await lab.storage.close()

    # a restart: the condition's incident and ticket come back; which probe reported it
    # is not stored, so each probe of the device must answer without it to end it
    lab = await open_lab(cfg_path, db, lab.clock.t + 5)
    try:
        assert lab.pipeline.conditions == {"web-portal": {KEY: {"icmp", "snmp"}}}
        lab.observe("web-portal", "icmp")
        lab.observe("web-portal", "snmp", ok=False)  # a timeout ends nothing
        await lab.settle()
        assert await lab.state("web-portal") == "up"
        assert [i.root for i in lab.view.open_incidents()] == [ROOT]
        assert lab.pipeline.conditions == {"web-portal": {KEY: {"snmp"}}}

        lab.observe("web-portal", "snmp")  # the renewed certificate: no condition
        await lab.settle()
        assert lab.view.open_incidents() == []
        assert lab.pipeline.conditions == {}
        (ticket,) = await lab.storage.list_tickets()
        assert ticket["status"] == "repaired"
        detail = await lab.storage.get_ticket(ticket["id"])
        assert KEY in detail["history"][-1]["note"]
        outbox = await lab.outbox()
        assert [k for k, _ in outbox] == ["ticket_opened", "ticket_repaired"]
        line = render_line(NotificationEvent("k", "ticket_repaired", lab.clock.t, outbox[1][1]),
                           NotifyPolicy())
        assert line.startswith("✅ แก้ไขแล้ว") and KEY in line
        report = report_from_ticket(detail)
        assert "แก้ไขแล้ว" in report.event_text

        await lab.settle(after=3601)  # auto_close_after
        assert await lab.storage.list_tickets() == []
        (closed,) = await lab.storage.list_tickets(include_closed=True)
        assert closed["status"] == "closed"
    finally:
        lab.pipeline.stop_event.set()
        await lab.storage.close()


async def test_each_reporting_probe_must_drop_it_and_school_counts(
        paths: tuple[Path, Path]) -> None:
    cfg_path, db = paths
    lab = await open_lab(cfg_path, db, MONDAY_10)
    try:
        lab.observe("r1", "icmp")
        # two probes see the same condition: one incident, ended when neither reports it
        lab.observe("r1", "icmp", conditions={KEY: REASON})
        lab.observe("r1", "snmp", conditions={KEY: REASON})
        await lab.settle(after=61)
        (ticket,) = await lab.storage.list_tickets()
        assert ticket["root"] == f"r1#{KEY}" and ticket["variant"] == "school"
        assert lab.view.ticket_counts() == {"62020001": 1}
        lab.observe("r1", "snmp")
        await lab.settle()
        assert [i.root for i in lab.view.open_incidents()] == [f"r1#{KEY}"]
        lab.observe("r1", "icmp", unknown=True)  # cannot tell: no answer
        await lab.settle()
        assert len(lab.view.open_incidents()) == 1
        lab.observe("r1", "icmp")
        await lab.settle()
        assert lab.view.open_incidents() == []
        (ticket,) = await lab.storage.list_tickets()
        assert ticket["status"] == "repaired"
        # an observation with no conditions for a device with none costs no state
        lab.observe("r1", "snmp")
        assert lab.pipeline.conditions == {}
    finally:
        lab.pipeline.stop_event.set()
        await lab.storage.close()


async def test_api_wall_and_console_name_the_condition(paths: tuple[Path, Path]) -> None:
    """Nothing that reads tickets or incidents assumes their root is a device id."""
    import httpx

    from monitord.app.commands import AppCommands
    from monitord.http.site import build_app
    from monitord.http.wall import Wall

    cfg_path, db = paths
    lab = await open_lab(cfg_path, db, MONDAY_10)
    try:
        lab.observe("web-portal", "icmp")
        lab.observe("web-portal", "snmp", conditions={KEY: REASON})
        await lab.settle(after=61)
        data = await Wall(lab.view).snapshot("th")
        assert data["figures"]["tickets_open"] == 1
        (event,) = [e for e in data["events"] if e["kind"] == "ticket"]
        assert "เว็บไซต์สำนักงาน" in event["text"] and KEY in event["text"]
        app = build_app(lab.view, AppCommands.on_store(lab.storage))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            r = await client.get("/api/v1/incidents")
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert (item["kind"], item["root"], item["reason"]) == ("condition", ROOT, REASON)
    finally:
        lab.pipeline.stop_event.set()
        await lab.storage.close()


async def test_a_reload_that_drops_the_reporting_probe(paths: tuple[Path, Path]) -> None:
    cfg_path, db = paths
    lab = await open_lab(cfg_path, db, MONDAY_10)
    try:
        lab.observe("web-portal", "icmp")
        lab.observe("web-portal", "snmp", conditions={KEY: REASON})
        lab.observe("r1", "icmp", conditions={KEY: REASON})
        await lab.settle()
        assert len(lab.view.open_incidents()) == 2
        # the portal's snmp check and the router are removed from the config
        lab.pipeline.configure(load_config(write_config(
            cfg_path.parent, ("icmp",), "reloaded.yaml", router=False)).config)
        assert lab.pipeline.conditions == {"web-portal": {KEY: {"icmp"}}}
        lab.observe("web-portal", "icmp")  # the remaining probe answers without it
        await lab.settle()
        assert [i.root for i in lab.view.open_incidents()] == [f"r1#{KEY}"]
        assert lab.pipeline.conditions == {}
    finally:
        lab.pipeline.stop_event.set()
        await lab.storage.close()
