"""Manual tickets (รับแจ้ง) against a real daemon: a report received through the API for
a school's projector; the projector then goes down and its incident joins that ticket
(one ticket, not two); an automatic ticket for another school and a second report take
the next numbers from the same sequence; the projector comes back and the manual ticket
stays open (a person closes it); ``monitord tickets ack|assign`` on the database; after
a restart the engine still knows the manual ticket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

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
from tests.pdf_lab import norm, pdf_text

TOKEN = "tok-manual-8d2e4f6a1c3b5d7e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCHOOL_A, SCHOOL_B = "127.114.1.", "127.114.2."


def lab() -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"id": "a-rtr", "school": "62020001", "kind": "router", "address": SCHOOL_A + "1"},
        {"id": "a-proj", "school": "62020001", "kind": "projector", "parent": "a-rtr",
         "address": SCHOOL_A + "2", "name": "โปรเจกเตอร์ห้อง ป.6"},
        {"id": "b-rtr", "school": "62020002", "kind": "router", "address": SCHOOL_B + "1"},
    ]
    cfg = base_config(devices, ticket_delay="1s")
    cfg["http"] = {"api_tokens": [{"name": "officer-api",
                                   "token": {"env": "MONITORD_TEST_API_TOKEN"}}]}
    return cfg


def ticket(d: DaemonProcess, tid: int) -> dict[str, Any]:
    r = httpx.get(f"{d.url}/api/v1/tickets/{tid}", headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def tickets(d: DaemonProcess) -> list[dict[str, Any]]:
    r = httpx.get(f"{d.url}/api/v1/tickets", params={"all": "true"}, headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def report(d: DaemonProcess, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{d.url}/api/v1/tickets", json=body, headers=AUTH, timeout=10)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/v1/tickets/{r.json()['id']}"
    out: dict[str, Any] = r.json()
    return out


def test_manual_report_joins_and_shares_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    monkeypatch.setenv("MONITORD_TEST_API_TOKEN", TOKEN)
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", lab())))
    d.wait_ready()

    def state(dev: str) -> str:
        r = httpx.get(f"{d.url}/api/v1/devices/{dev}", timeout=5)
        return str(r.json()["state"])

    wait_for(lambda: all(state(x) == "up" for x in ("a-rtr", "a-proj", "b-rtr")), 30,
             "every device up")

    # รับแจ้ง by phone: the projector does not work (it still answers pings)
    t1 = report(d, {"school": "62020001", "devices": ["a-proj"], "source": "phone",
                    "reporter_name": "ครูสมศรี ใจดี", "reporter_phone": "081-234-5678",
                    "reporter_position": "ครูผู้รับผิดชอบงาน ICT",
                    "problem": "โปรเจกเตอร์ห้อง ป.6 ภาพไม่ขึ้น"})
    assert t1["id"] == 1 and t1["origin"] == "manual" and t1["created_by"] == "officer-api"
    assert t1["history"][0]["note"] == "รับแจ้งทาง โทรศัพท์ จาก ครูสมศรี ใจดี"

    # the projector goes down: its incident joins the manual ticket
    iptables.drop(SCHOOL_A + "2/32")
    joined = wait_value(lambda: ticket(d, 1), lambda t: t["incident_id"] != "", 30,
                        "the projector's incident joins ticket 1")
    assert "รวมเข้ากับใบแจ้งซ่อมที่รับแจ้งไว้" in joined["history"][-1]["note"]
    assert joined["reason"] and joined["status"] == "open"
    assert [t["id"] for t in tickets(d)] == [1]  # one ticket, not two

    # another school's router: an automatic ticket, numbered next
    iptables.drop(SCHOOL_B + "0/24")
    auto = wait_value(lambda: tickets(d), lambda ts: len(ts) == 2, 30,
                      "an automatic ticket for school B")
    assert [(t["id"], t["origin"]) for t in auto] == [(1, "manual"), (2, "auto")]
    assert auto[1]["root"] == "b-rtr"
    t3 = report(d, {"school": "62020002", "source": "line", "reporter_name": "ผอ.โรงเรียน",
                    "problem": "อินเทอร์เน็ตใช้ไม่ได้ทั้งโรงเรียน"})
    assert t3["id"] == 3 and t3["root"] == "school:62020002"

    # the projector answers again: noted, the manual ticket stays open
    iptables.undrop(SCHOOL_A + "2/32")
    back = wait_value(lambda: ticket(d, 1),
                      lambda t: "อุปกรณ์กลับมาใช้งานได้" in t["history"][-1]["note"], 30,
                      "the projector back noted on ticket 1")
    assert back["status"] == "open" and back["repaired_at"] is None

    # acknowledge and assign with the CLI, on the daemon's database
    res = cli("tickets", "ack", "1", "--db", str(d.db), "--by", "ช่างสมชาย")
    assert res.returncode == 0, res.stderr
    res = cli("tickets", "assign", "1", "--db", str(d.db), "--to", "ช่างสมชาย",
              "--by", "หัวหน้ากลุ่ม")
    assert res.returncode == 0, res.stderr
    rows = {t["id"]: t for t in db_tickets(d.db)}
    assert rows[1]["acknowledged_by"] == "ช่างสมชาย" and rows[1]["assigned_to"] == "ช่างสมชาย"
    listed = cli("tickets", "list", "--db", str(d.db))
    assert "รับแจ้ง" in listed.stdout and "ระบบตรวจพบ" in listed.stdout
    assert "→ ช่างสมชาย" in listed.stdout

    assert "Traceback" not in d.log()

    # after a restart the engine still knows the manual ticket: the projector joins again
    assert d.stop() == 0
    d2 = daemon_factory("run", "--config", str(tmp_path / "m.yaml"), db=d.db)
    d2.wait_ready()
    wait_for(lambda: ticket(d2, 1)["history"] is not None, 10, "the API up")
    iptables.drop(SCHOOL_A + "2/32")
    again = wait_value(
        lambda: ticket(d2, 1),
        lambda t: sum("รวมเข้ากับ" in h["note"] for h in t["history"]) == 2, 30,
        "the projector's new incident joins ticket 1 after the restart")
    assert again["status"] == "open"
    assert [t["id"] for t in tickets(d2)] == [1, 2, 3]
    t4 = report(d2, {"school": "62020001", "source": "letter", "reporter_name": "ครูเอ",
                     "problem": "เครื่องพิมพ์เสีย"})
    assert t4["id"] == 4
    assert "Traceback" not in d2.log()

    # the repair report: the reporter signs as ผู้แจ้งซ่อม, the problem is the event
    pdf = tmp_path / "t1.pdf"
    res = cli("report", "repair", "1", "--db", str(d.db), "-o", str(pdf))
    assert res.returncode == 0, res.stderr
    text = norm(pdf_text(pdf))
    for wanted in ("ครูสมศรี ใจดี", "ครูผู้รับผิดชอบงาน ICT", "โปรเจกเตอร์ห้อง ป.6 ภาพไม่ขึ้น",
                   "ผู้แจ้งซ่อม"):
        assert norm(wanted) in text, wanted
