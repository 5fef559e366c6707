"""Tickets end to end: real loopback devices made dead with iptables, the real daemon,
kill -9 and restart, officers' CLI edits while it runs."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitord.domain.links import LinkSigner, load_secret
from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    cli,
    db_tickets,
    http_get,
    wait_for,
    wait_value,
    write_config,
)
from tests.pdf_lab import dark_fraction, norm, pdf_text

DELAY_S = 6  # ticket delay: long enough to kill the daemon before it elapses


def lab_config() -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"id": "62020001-rtr", "school": "62020001", "kind": "router", "address": "127.92.1.1"},
        {"id": "62020001-sw", "school": "62020001", "kind": "switch", "address": "127.92.1.2",
         "parent": "62020001-rtr", "name": "สวิตช์", "brand_model": "TP-Link TL-SG1016D"},
        {"id": "62020001-tv", "school": "62020001", "kind": "tv", "address": "127.92.1.3",
         "parent": "62020001-sw", "serial": "TV0001"},
    ]
    cfg = base_config(devices, ticket_delay=f"{DELAY_S}s")
    cfg["schools"] = {"62020001": {"name": "โรงเรียนบ้านหนองปลิง", "district": "คลองขลุง",
                                   "isp": "TRUE"}}
    for i in range(1, 13):  # ten NT schools that will fail together, two that stay up
        smis = f"620201{i:02d}"
        cfg["schools"][smis] = {"name": f"โรงเรียนทดสอบ {i}", "district": "คลองลาน",
                                "isp": "NT" if i <= 10 else "AIS"}
        net = "127.93.0" if i <= 10 else "127.94.0"
        devices.append({"id": f"{smis}-rtr", "school": smis, "kind": "router",
                        "address": f"{net}.{i}"})
    cfg["incidents"] = {"correlation": {"group_by": "isp", "min_schools": 5,
                                        "min_share": 0.5, "window": "60s"}}
    cfg["tickets"] = {"relapse_window": "1h", "auto_close_after": None}
    return cfg


def by_root(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["root"]: t for t in rows}


def test_tickets_one_per_root_cause_survive_kill9_and_relapse(
        tmp_path: Path, iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "m.yaml", lab_config())
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    wait_for(lambda: len(d.metrics().by_label("monitord_device_up", "device")) == 15, 30,
             "all devices probed")
    iptables.drop("127.92.1.0/24")
    iptables.drop("127.93.0.0/24")

    # Incidents open at once (school A's router; the NT upstream outage with its ten
    # member schools).  Kill -9 before the ticket delay has elapsed.
    def incidents() -> dict[str, float]:
        with sqlite3.connect(d.db) as db:
            return dict(db.execute("SELECT root, opened_at FROM incident"
                                   " WHERE closed_at IS NULL").fetchall())

    opened = wait_value(incidents, lambda i: "isp:NT" in i and "62020001-rtr" in i
                        and len(i) == 12, 30, "incidents open")
    assert db_tickets(d.db) == []
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=10)

    # Restart: timers resume from the stored incident times; exactly two tickets.
    d2 = daemon_factory("run", "--config", str(config), db=d.db)
    d2.wait_ready()
    rows = wait_value(lambda: db_tickets(d.db), lambda r: len(r) == 2, 40, "two tickets")
    t = by_root(rows)
    assert set(t) == {"62020001-rtr", "isp:NT"}
    school_t, isp_t = t["62020001-rtr"], t["isp:NT"]
    assert school_t["down_since"] == opened["62020001-rtr"]
    assert school_t["opened_at"] - school_t["down_since"] < DELAY_S + 5
    assert [e["device_id"] for e in school_t["equipment"]] == [
        "62020001-rtr", "62020001-sw", "62020001-tv"]
    assert school_t["variant"] == "school" and school_t["served_unit"] == "โรงเรียนบ้านหนองปลิง"
    assert school_t["status"] == "open" and school_t["status_th"] == "เปิด"
    assert len(isp_t["equipment"]) == 10 and "NT" in isp_t["hypothesis"]

    # Several more rounds change nothing: still exactly these two tickets.
    rounds = d2.metrics()("monitord_probe_rounds_total", probe="icmp")
    wait_for(lambda: d2.metrics()("monitord_probe_rounds_total", probe="icmp") > rounds + 20,
             60, "more probe rounds")
    assert sorted(x["root"] for x in db_tickets(d.db)) == ["62020001-rtr", "isp:NT"]
    m = d2.metrics()
    assert m("monitord_tickets_open", school="62020001") == 1
    assert m("monitord_tickets_open", school="upstream") == 1
    assert m("monitord_upstream_outages_open", group="isp:NT") == 10
    assert sum(v for v in m.by_label("monitord_school_up", "school").values()) == 2

    # An officer schedules and starts the repair while the daemon runs.
    sid = str(school_t["id"])
    res = cli("tickets", "schedule", sid, "--db", str(d.db), "--at", "2026-11-24 09:30",
              "--by", "นายสมชาย ใจดี")
    assert res.returncode == 0, res.stderr
    res = cli("tickets", "update", sid, "--db", str(d.db), "--status", "in_repair",
              "--cause", "อะแดปเตอร์ไฟเราเตอร์เสีย", "--repairer", "นายสมชาย ใจดี",
              "--by", "นายสมชาย ใจดี")
    assert res.returncode == 0, res.stderr

    # The link in every ticket message (signed with the installation's key in the data
    # directory): the ticket as the office's repair report form.  Not without it (PDPA).
    signer = LinkSigner(load_secret(None, d.db.parent), 600)

    def signed(tid: str, suffix: str = "") -> str:
        q = signer.query(int(tid))
        return f"{d2.url}/tickets/{tid}{suffix}?exp={q['exp']}&sig={q['sig']}"

    assert http_get(f"{d2.url}/tickets/{sid}")[0] == 401
    status, html = http_get(signed(sid))
    assert status == 200
    assert "รายงานการซ่อมแซมแก้ไข" in html and "โรงเรียนบ้านหนองปลิง" in html
    assert "อะแดปเตอร์ไฟเราเตอร์เสีย" in html
    with urllib.request.urlopen(signed(sid, "/report.pdf"), timeout=60) as resp:
        assert resp.headers["Content-Type"] == "application/pdf"
        assert resp.read(5) == b"%PDF-"
    assert http_get(signed("99999"))[0] == 404

    # School A's router comes back: its ticket is repaired by the system, with the
    # officer's fields kept.
    iptables.undrop("127.92.1.0/24")
    def school_ticket() -> dict[str, Any]:
        return by_root(db_tickets(d.db, "--all"))["62020001-rtr"]

    repaired = wait_value(school_ticket, lambda x: x["status"] == "repaired", 40,
                          "ticket repaired")
    assert repaired["cause"] == "อะแดปเตอร์ไฟเราเตอร์เสีย"
    assert repaired["recovery_seconds"] > 0
    show = json.loads(cli("tickets", "show", sid, "--db", str(d.db), "--format", "json").stdout)
    assert [h["status"] for h in show["history"]] == ["open", "scheduled", "in_repair",
                                                      "repaired"]
    assert [h["actor"] for h in show["history"]] == ["monitord", "นายสมชาย ใจดี",
                                                     "นายสมชาย ใจดี", "monitord"]

    # It fails again within the relapse window: the same ticket reopens.
    iptables.drop("127.92.1.0/24")
    reopened = wait_value(school_ticket, lambda x: x["status"] == "open", 40,
                          "ticket reopened")
    assert reopened["id"] == school_t["id"] and reopened["relapses"] == 1
    assert len(db_tickets(d.db, "--all")) == 2
    assert d2.stop() == 0

    # The repair report of the school ticket, as the office's Thai form.
    pdf = tmp_path / "repair.pdf"
    res = cli("report", "repair", sid, "--db", str(d.db), "--format", "pdf", "-o", str(pdf))
    assert res.returncode == 0, res.stderr
    text = norm(pdf_text(pdf))
    for label in ("รายงานการซ่อมแซมแก้ไข DLTV, DLIT, คอมพิวเตอร์ โปรแกรมและอุปกรณ์ต่อพ่วงอื่นๆ",
                  "โรงเรียนที่ให้บริการ", "โรงเรียนบ้านหนองปลิง", "วันที่รับแจ้ง", "ลำดับที่",
                  "ชื่ออุปกรณ์", "Hostname", "ยี่ห้อ/รุ่น", "หมายเลขเครื่อง", "หมายเหตุ",
                  "สรุปผลการปฏิบัติงาน", "เหตุการณ์ / ปัญหา / สาเหตุ",
                  "ข้อสมมุติฐาน / การแก้ไข", "ผู้แจ้งซ่อม", "ผู้ทำการซ่อม / แก้ไข",
                  "สวิตช์", "TP-Link TL-SG1016D", "TV0001", "อะแดปเตอร์ไฟเราเตอร์เสีย",
                  "นายสมชาย ใจดี", "อุปกรณ์ที่ได้รับผลกระทบ 2 รายการ"):
        assert norm(label) in text, label
    assert re.search(r"พ\.ศ\.\s*25\d\d", text)  # norm() drops spaces
    assert dark_fraction(pdf, tmp_path) > 0.005
    html = tmp_path / "repair.html"
    assert cli("report", "repair", sid, "--db", str(d.db), "--format", "html", "-o",
               str(html)).returncode == 0
    assert "โรงเรียนบ้านหนองปลิง" in html.read_text(encoding="utf-8")
    missing = cli("report", "repair", "999", "--db", str(d.db), "-o", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no ticket 999" in missing.stderr


def test_cli_maintenance_window_suppresses_tickets(
        tmp_path: Path, iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([
        {"id": "web", "kind": "server", "address": "127.95.0.1", "unit": "กลุ่มอำนวยการ"},
        {"id": "ups", "kind": "ups", "address": "127.95.0.2"},
    ], ticket_delay="2s")
    config = write_config(tmp_path / "m.yaml", cfg)
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    res = cli("maintenance", "add", "--db", str(d.db), "--name", "ย้ายตู้แร็ค",
              "--start", "2020-01-01 00:00", "--end", "2099-01-01 00:00", "--device", "web")
    assert res.returncode == 0, res.stderr
    wid = res.stdout.split()[2]
    wait_for(lambda: d.metrics().get_sample("monitord_device_state", device="web",
                                            state="maintenance") == 1, 30, "web in maintenance")
    iptables.drop("127.95.0.0/24")
    # ups (no window) gets its ticket; web (in maintenance) does not.
    rows = wait_value(lambda: db_tickets(d.db), lambda r: len(r) >= 1, 30, "ups ticket")
    assert [t["root"] for t in rows] == ["ups"]
    assert rows[0]["variant"] == "office"
    rounds = d.metrics()("monitord_probe_rounds_total", probe="icmp")
    wait_for(lambda: d.metrics()("monitord_probe_rounds_total", probe="icmp") > rounds + 10,
             60, "more rounds")
    assert [t["root"] for t in db_tickets(d.db)] == ["ups"]
    # Maintenance over: web's ticket opens.
    assert cli("maintenance", "delete", "--db", str(d.db), wid).returncode == 0
    rows = wait_value(lambda: db_tickets(d.db), lambda r: len(r) == 2, 30, "web ticket")
    web = by_root(rows)["web"]
    assert web["served_unit"] == "กลุ่มอำนวยการ"
    # A recurring (weekly) window from the CLI: all day, every day, for UPSes.
    res = cli("maintenance", "add", "--db", str(d.db), "--name", "เปลี่ยนแบตเตอรี่",
              "--weekly", "mon-sun", "--hours", "00:00-24:00", "--kind", "ups")
    assert res.returncode == 0, res.stderr
    wait_for(lambda: d.metrics().get_sample("monitord_device_state", device="ups",
                                            state="maintenance") == 1, 30, "ups in maintenance")
    listed = json.loads(cli("maintenance", "list", "--db", str(d.db), "--format", "json").stdout)
    assert [(w["name"], w["weekly"]) for w in listed] == [
        ("เปลี่ยนแบตเตอรี่", {"days": ["mon-sun"], "hours": "00:00-24:00"})]
    bad = cli("maintenance", "add", "--db", str(d.db), "--name", "x", "--weekly", "funday",
              "--hours", "01:00-02:00")
    assert bad.returncode == 2 and "unknown day" in bad.stderr
    assert d.stop() == 0


def test_repeated_kill9_never_duplicates_or_loses_tickets(
        tmp_path: Path, iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    """kill -9 at varied moments (bounded: 5 restarts) while devices fail and recover."""
    import random

    devices = [{"id": f"dev{i}", "kind": "server", "address": f"127.98.{i}.1"}
               for i in range(6)]
    config = write_config(tmp_path / "m.yaml", base_config(devices, ticket_delay="1s"))
    rng = random.Random(7)
    db = tmp_path / "m.db"
    for block in range(3):
        iptables.drop(f"127.98.{block}.0/24")
    seen: dict[int, str] = {}  # ticket id → root, across all lives
    for restart in range(5):
        d = daemon_factory("run", "--config", str(config), db=db)
        d.wait_ready()
        if restart == 2:  # half-way: two devices recover, one more fails
            iptables.undrop("127.98.0.0/24")
            iptables.undrop("127.98.1.0/24")
            iptables.drop("127.98.3.0/24")
        def failures(d: DaemonProcess = d) -> float:
            return d.metrics().get_sample("monitord_observations_total", probe="icmp",
                                          result="fail") or 0.0

        want = failures() + rng.randint(2, 12)
        wait_for(lambda want=want: failures() >= want, 30, "some failed probes")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
        now = {t["id"]: t["root"] for t in db_tickets(db, "--all")}
        assert seen.items() <= now.items(), "a ticket was lost or changed by a kill -9"
        seen = now
    d = daemon_factory("run", "--config", str(config), db=db)
    d.wait_ready()
    # dev2 and dev3 stay dead: both end with an open ticket.
    wait_for(lambda: {"dev2", "dev3"} <= {t["root"] for t in db_tickets(db)
                                          if t["status"] == "open"}, 60, "dev2/dev3 tickets")
    rows = db_tickets(db, "--all")
    roots = [t["root"] for t in rows]
    assert len(roots) == len(set(roots)), f"duplicate tickets: {roots}"  # one per device
    assert set(roots) <= {"dev0", "dev1", "dev2", "dev3"}  # dev4/dev5 never failed
    for t in rows:
        if t["root"] in ("dev0", "dev1"):  # recovered at restart 2
            wait_for(lambda t=t: by_root(db_tickets(db, "--all"))[t["root"]]["status"]
                     == "repaired", 30, f"{t['root']} repaired")
    with sqlite3.connect(db) as conn:
        opens = conn.execute("SELECT ticket_id, COUNT(*) FROM ticket_event WHERE status = 'open'"
                             " GROUP BY ticket_id").fetchall()
    assert opens and all(n == 1 for _, n in opens)  # each opened exactly once
    assert d.stop() == 0
