"""Storage faults: odd paths, file modes, a full disk, a read-only or damaged database,
online backup and restore.  Real SQLite files on real (tmpfs) file systems, the real
daemon, real ICMP on loopback made to fail with iptables, a real webhook receiver."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitord.app.writer import StateWriter
from monitord.domain.activehours import Calendar
from monitord.domain.incidents import IncidentEngine, Node, Policy, TicketOpen
from monitord.domain.state import State, Transition
from monitord.domain.tickets import TicketContext
from monitord.notify import Channel, Deliverer, NotificationEvent, NotifyPolicy
from monitord.storage import Storage
from monitord.storage.history import open_readonly
from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    cli,
    db_tickets,
    http_get,
    require_root,
    wait_for,
    wait_value,
    write_config,
)
from tests.notify_lab import Webhook

FAILING_TH = "บันทึกลงฐานข้อมูลไม่ได้"
RESTORED_TH = "บันทึกลงฐานข้อมูลได้อีกครั้ง"


def db_states(db: Path) -> dict[str, str]:
    res = cli("status", "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    return {r["device"]: r["state"] for r in json.loads(res.stdout)}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Small tmpfs file systems mounted for the test, always unmounted at the end."""
    require_root()
    mounted: list[Path] = []

    def mount(name: str, size: str = "16m") -> Path:
        where = tmp_path / name
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(where)], check=True, timeout=30)
        mounted.append(where)
        return where

    try:
        yield mount
    finally:
        for where in reversed(mounted):
            subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def fill(disk: Path) -> Path:
    """Fill the file system with a filler file until not one page is left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for chunk in (1 << 20, 4096):
            data = b"\0" * chunk
            for _ in range(100_000):
                try:
                    os.write(fd, data)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


# -- finding 11: read-only URIs ---------------------------------------------------------


@pytest.mark.parametrize("dirname", ["data#1", "what?mode=rw", "100%41 full", "my data"])
async def test_readonly_paths_with_uri_characters(tmp_path: Path, dirname: str) -> None:
    db = tmp_path / dirname / "m.db"
    config = write_config(tmp_path / "m.yaml", base_config([
        {"id": "rtr1", "school": "62020001", "kind": "router", "address": "127.131.9.1"}]))
    store = await Storage.open(db)
    await store.record_transitions([Transition("rtr1", State.UNKNOWN, State.DOWN, 5.0, "x")])
    await store.close()
    before = sorted(p.name for p in tmp_path.iterdir())

    # The CLI (as `monitord status` is used) reads the very file and sees its data ...
    assert db_states(db) == {"rtr1": "down"}
    res = cli("status", "--db", os.path.relpath(db, tmp_path), cwd=tmp_path)
    assert res.returncode == 0 and "rtr1" in res.stdout, res.stderr
    # ... and so do the reports.
    res = cli("report", "daily", "--config", str(config), "--db", str(db), "--format", "csv",
              "--lang", "en", "-o", "-")
    assert res.returncode == 0, res.stderr
    assert "62020001,โรงเรียนบ้านทดสอบ,คลองขลุง,NT,offline" in res.stdout
    conn = open_readonly(db)
    try:
        rows = conn.execute("SELECT device_id, state FROM device_state").fetchall()
        assert [tuple(r) for r in rows] == [("rtr1", "down")]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM device_state")
    finally:
        conn.close()
    reader = await Storage.open(db, readonly=True)
    try:
        assert set(await reader.load_states()) == {"rtr1"}
    finally:
        await reader.close()
    # Nothing was created beside it (a URI cut at '#' or '?' opened another file).
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- finding 12: file modes ----------------------------------------------------------------


def lab(tmp_path: Path, **notify: Any) -> Path:
    devices: list[dict[str, Any]] = [
        {"id": "62020001-rtr", "school": "62020001", "kind": "router",
         "address": "127.131.1.1"},
        {"id": "62020001-sw", "school": "62020001", "kind": "switch",
         "address": "127.131.1.2", "parent": "62020001-rtr"},
        {"id": "62020002-rtr", "school": "62020002", "kind": "router",
         "address": "127.131.2.1"},
    ]
    cfg = base_config(devices, ticket_delay="1s")
    cfg["notify"] = {"group_window": "1s", **notify}
    return write_config(tmp_path / "m.yaml", cfg)


def test_data_dir_and_files_private_under_umask_022(
        tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    require_root()
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        d = daemon_factory("run", "--config", str(lab(tmp_path)), db=data / "monitord.db")
        d.wait_ready()
        wait_for(lambda: len(db_states(d.db)) == 3, 30, "states written")
        files = {p.name: mode(p) for p in data.iterdir()}
        assert mode(data) == 0o750
        # the ticket links' signing key is the one file readable by monitord alone
        assert files == {"monitord.db": 0o640, "monitord.db-wal": 0o640,
                         "monitord.db-shm": 0o640, "link-secret": 0o600}
        backup = tmp_path / "backup.db"
        assert cli("db", "backup", str(backup), "--db", str(d.db)).returncode == 0
        assert mode(backup) == 0o640
        assert d.stop() == 0
        assert all(mode(p) == (0o600 if p.name == "link-secret" else 0o640)
                   for p in data.iterdir())
        # A database left world-readable by an earlier version is tightened at start.
        os.chmod(d.db, 0o644)
        d2 = daemon_factory("run", "--config", str(lab(tmp_path)), db=d.db)
        d2.wait_ready()
        assert mode(d.db) == 0o640
        assert d2.stop() == 0
    finally:
        os.umask(old)


# -- full disk ---------------------------------------------------------------------------


async def test_write_queue_is_bounded_and_keeps_ticket_changes(
        tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("disk", "8m")
    store = await Storage.open(disk / "m.db")
    devices = ["r1", "r2", "r3"]
    await store.record_transitions([Transition(d, State.UNKNOWN, State.UP, 1.0, "ok")
                                    for d in devices])
    engine = IncidentEngine(ZoneInfo("Asia/Bangkok"), Policy(group_by=""))
    engine.configure([Node(d, "router", f"6202000{i}", None, ticket_delay=0.0)
                      for i, d in enumerate(devices, start=1)], Calendar(), [])
    engine.restore([], [], dict.fromkeys(devices, State.UP), 1)
    try:
        await _bounded_queue(disk, store, engine, devices)
    finally:
        await store.close()


async def _bounded_queue(disk: Path, store: Storage, engine: IncidentEngine,
                         devices: list[str]) -> None:
    writer = StateWriter(store, max_pending=100)
    filler = fill(disk)
    try:
        # r1 goes down: its incident and ticket (ticket changes are always kept).
        changes = engine.on_state("r1", State.DOWN, 10.0, "down", False)
        changes += engine.tick(11.0)
        opened = [c for c in changes if isinstance(c, TicketOpen)]
        assert len(opened) == 1
        ctx = {opened[0].ticket_id: TicketContext("school", "โรงเรียน", "62020001", "สพป.",
                                                  "กลุ่ม", "", "")}
        note = NotificationEvent("open-1", "ticket_opened", 11.0, {"ticket_id": 1})
        writer.enqueue([Transition("r1", State.UP, State.DOWN, 10.0, "down")], changes, ctx,
                       [note])
        assert not await writer.flush()
        assert not writer.up and writer.write_errors["disk_full"] >= 1
        # r2 and r3 flap thousands of times; a reminder is queued again and again.
        state = dict.fromkeys(["r2", "r3"], State.UP)
        for i in range(3000):
            ts = 20.0 + i
            batch = []
            for dev in ("r2", "r3"):
                new = State.DOWN if state[dev] is State.UP else State.UP
                batch.append(Transition(dev, state[dev], new, ts, f"flap {i}"))
                state[dev] = new
            writer.enqueue(batch, notifications=[
                NotificationEvent("remind-1", "ticket_reminder", 12.0, {"ticket_id": 1})])
            assert writer.pending <= 2 * writer.max_pending
        # r3 ends where the disk has it (UP); r2 ends DOWN; r1 is back: its ticket repaired.
        writer.enqueue([Transition("r2", State.UP, State.DOWN, 3999.0, "down")])
        back = engine.on_state("r1", State.UP, 4000.0, "ok", False)
        writer.enqueue([Transition("r1", State.DOWN, State.UP, 4000.0, "ok")], back)
        assert not await writer.flush()
        assert writer.pending <= writer.max_pending + 10
        assert writer.transitions_dropped > 5000
    finally:
        filler.unlink()
    assert await writer.flush()
    assert writer.up and writer.pending == 0
    states = await store.load_states()
    assert {d: s.state for d, s in states.items()} == {
        "r1": State.UP, "r2": State.DOWN, "r3": State.UP}
    t = await store.get_ticket(1)
    assert t["status"] == "repaired" and t["served_unit"] == "โรงเรียน"
    # Flaps are dropped from the history (the last ones, queued after the last compaction,
    # are kept); what is on disk is a consistent chain for each device.
    for dev in devices:
        rows = sorted(await store.transitions(device_id=dev), key=lambda r: r.id)
        assert all(a.new == b.old for a, b in itertools.pairwise(rows)), dev
        assert len(rows) <= writer.max_pending, dev
    async with store.connection.execute("SELECT key FROM notification_event") as cur:
        assert sorted(r[0] for r in await cur.fetchall()) == ["open-1", "remind-1"]
    assert [e[1] for e in await store.events()] == ["storage_restored"]


def test_full_disk_monitoring_goes_on_and_writes_resume(
        tmp_path: Path, tmpfs: Callable[..., Path], iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    disk = tmpfs("disk", "16m")
    hook = Webhook()
    rtr = "62020001-rtr"

    def up(d: DaemonProcess) -> dict[str, float]:
        return d.metrics().by_label("monitord_device_up", "device")

    try:
        d = daemon_factory("run", "--config", str(lab(tmp_path)), "--notify", hook.url,
                           db=disk / "monitord.db")
        d.wait_ready()
        wait_for(lambda: set(db_states(d.db).values()) == {"up"}
                 and len(db_states(d.db)) == 3, 30, "all devices up in the database")
        # A ticket opens and its message is sent (and recorded as sent) before the disk fills.
        iptables.drop("127.131.1.0/24")
        wait_for(lambda: len(db_tickets(d.db, "--all")) == 1, 30, "ticket in the database")
        wait_for(lambda: d.metrics().get_sample("monitord_notifications_total",
                                                channel="cli-1", result="success") == 1,
                 30, "ticket message sent")
        filler = fill(disk)

        # The router comes back while nothing can be written.
        iptables.undrop("127.131.1.0/24")
        m = wait_value(d.metrics, lambda m: m("monitord_storage_up") == 0
                       and m.by_label("monitord_device_up", "device")[rtr] == 1,
                       30, "router up while storage fails")
        assert m("monitord_storage_pending_writes") > 0
        assert m("monitord_storage_write_errors_total", reason="disk_full") >= 1
        status, body = http_get(d.url + "/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "degraded"
        assert health["storage"]["up"] is False and health["storage"]["pending_writes"] > 0
        assert "full" in health["storage"]["last_error"]
        status, page = http_get(d.url + "/status")
        assert status == 200 and "โรงเรียนบ้านทดสอบ" in page
        # Readers still work: the database has the states from before the disk filled.
        assert db_states(d.db)[rtr] == "down"
        wait_for(lambda: any(FAILING_TH in m for m in hook.messages()), 30,
                 "storage_failing message")
        rounds = d.metrics()("monitord_probe_rounds_total", probe="icmp")
        wait_for(lambda: d.metrics()("monitord_probe_rounds_total", probe="icmp")
                 > rounds + 8, 60, "more rounds while the disk is full")
        m = d.metrics()
        assert m("monitord_storage_up") == 0
        # The repaired ticket stays repaired in memory (the database's "open" is older).
        assert not m.get_sample("monitord_tickets_open", school="62020001")
        # ... and fails again: the same ticket reopens.
        iptables.drop("127.131.1.0/24")
        wait_for(lambda: up(d)[rtr] == 0
                 and d.metrics()("monitord_tickets_open", school="62020001") == 1, 30,
                 "router down again, ticket reopened")
        assert sum(FAILING_TH in m for m in hook.messages()) == 1

        filler.unlink()
        wait_for(lambda: d.metrics()("monitord_storage_up") == 1
                 and d.metrics()("monitord_storage_pending_writes") == 0, 40,
                 "queued writes flushed")
        assert db_states(d.db) == {rtr: "down", "62020001-sw": "down", "62020002-rtr": "up"}
        tickets = db_tickets(d.db, "--all")
        assert [(t["id"], t["root"], t["status"], t["relapses"]) for t in tickets] == [
            (1, rtr, "open", 1)]
        with sqlite3.connect(d.db) as db:
            rows = db.execute("SELECT old_state, new_state FROM state_transition WHERE"
                              " device_id = ? ORDER BY id", (rtr,)).fetchall()
        assert rows == [("unknown", "up"), ("up", "down"), ("down", "up"), ("up", "down")]
        assert d.metrics()("monitord_storage_transitions_dropped_total") == 0
        wait_for(lambda: any(RESTORED_TH in m for m in hook.messages())
                 and any("ขัดข้องซ้ำ" in m for m in hook.messages()), 40,
                 "storage_restored and the ticket's messages")
        status, body = http_get(d.url + "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert d.stop() == 0
        msgs = hook.messages()
        for text in (FAILING_TH, RESTORED_TH, "เปิดใบแจ้งซ่อม #1", "ซ่อมเสร็จ", "ขัดข้องซ้ำ"):
            assert sum(text in m for m in msgs) == 1, (text, msgs)
    finally:
        hook.close()


# -- read-only or damaged database at start; check and backup ----------------------------


def make_db(path: Path) -> Path:
    """A sound database with a device's state, written and closed."""
    async def make() -> None:
        store = await Storage.open(path)
        await store.record_transitions([Transition("a", State.UNKNOWN, State.UP, 1.0, "")])
        await store.close()

    asyncio.run(make())
    return path


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    out = (res.stdout + res.stderr).strip()
    assert res.returncode == 1, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    return out


def test_damaged_or_readonly_database_at_start(tmp_path: Path,
                                               tmpfs: Callable[..., Path]) -> None:
    config = lab(tmp_path)
    garbage = tmp_path / "monitord.db"
    garbage.write_bytes(b"this is not a database, just an old text file\n" * 100)
    for args in (["run", "--config", str(config), "--listen", "127.0.0.1:1"],
                 ["status"], ["tickets", "list"], ["db", "check"]):
        line = one_line_error(cli(*args, "--db", str(garbage)))
        assert "not a database" in line, args
    assert "monitord db check" in one_line_error(
        cli("run", "--config", str(config), "--db", str(garbage)))

    # A sound database on a file system that became read-only.
    disk = tmpfs("ro", "8m")
    res = cli("db", "backup", str(disk / "monitord.db"), "--db", str(tmp_path / "none.db"))
    assert "no database" in one_line_error(res)
    make_db(disk / "monitord.db")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, timeout=30)
    line = one_line_error(cli("run", "--config", str(config), "--db", str(disk / "monitord.db")))
    assert "cannot open database" in line and "writable" in line
    res = cli("db", "check", "--db", str(disk / "monitord.db"))
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_db_check_finds_damage(tmp_path: Path) -> None:
    db = make_db(tmp_path / "m.db")
    res = cli("db", "check", "--db", str(db))
    assert res.returncode == 0 and "OK" in res.stdout
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE ticket_event")
    res = cli("db", "check", "--db", str(db))
    assert res.returncode == 1 and "ticket_event is missing" in res.stderr
    # Damaged pages: overwrite the middle of the file.
    make_db(tmp_path / "b.db")
    data = bytearray((tmp_path / "b.db").read_bytes())
    data[4096 * 2: 4096 * 4] = b"\xff" * (4096 * 2)
    (tmp_path / "b.db").write_bytes(bytes(data))
    res = cli("db", "check", "--db", str(tmp_path / "b.db"))
    assert res.returncode == 1 and res.stderr.strip() and "Traceback" not in res.stderr


def test_online_backup_restores_tickets_and_states(
        tmp_path: Path, iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = lab(tmp_path)
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    iptables.drop("127.131.1.0/24")
    wait_for(lambda: len(db_tickets(d.db, "--all")) == 1, 40, "ticket opened")
    wait_for(lambda: db_states(d.db) == {"62020001-rtr": "down", "62020001-sw": "down",
                                         "62020002-rtr": "up"}, 30, "states stored")
    backup = tmp_path / "backup" / "copy.db"
    backup.parent.mkdir()
    res = cli("db", "backup", str(backup), "--db", str(d.db))  # while the daemon writes
    assert res.returncode == 0, res.stderr
    assert d.proc.poll() is None
    assert cli("db", "check", "--db", str(backup)).returncode == 0
    tickets, states = db_tickets(d.db, "--all"), db_states(d.db)
    assert d.stop() == 0

    restored = tmp_path / "restored" / "monitord.db"
    restored.parent.mkdir()
    shutil.copy(backup, restored)
    assert db_tickets(restored, "--all") == tickets and db_states(restored) == states
    d2 = daemon_factory("run", "--config", str(config), db=restored)
    d2.wait_ready()
    m = d2.metrics()
    assert m("monitord_tickets_open", school="62020001") == 1
    assert m("monitord_device_state", device="62020001-rtr", state="down") == 1
    rounds = m("monitord_probe_rounds_total", probe="icmp")
    wait_for(lambda: d2.metrics()("monitord_probe_rounds_total", probe="icmp") > rounds + 3,
             30, "rounds after the restore")
    assert [t["id"] for t in db_tickets(restored, "--all")] == [1]  # the same ticket, not a new one
    assert d2.stop() == 0


async def test_outbox_waits_while_the_disk_is_full(tmpfs: Callable[..., Path]) -> None:
    """While the disk is full the outbox cannot record a send attempt, so it sends
    nothing (a send it could not record would go out again on every tick); the worker
    waits until the database takes writes again, then sends the message once."""
    disk = tmpfs("disk", "8m")
    store = await Storage.open(disk / "m.db")
    outbox = await Storage.open(disk / "m.db")
    hook = Webhook()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        writer = StateWriter(store)
        deliverer = Deliverer(outbox.connection, [Channel("hook", hook.url)],
                              NotifyPolicy(group_window=0), "สพป.ทดสอบ")
        deliverer.hold = lambda: not writer.up  # as the daemon wires them
        deliverer.on_error = writer.report_failure
        writer.enqueue([], notifications=[NotificationEvent(
            "open-1", "ticket_opened", 1.0, {"ticket_id": 1, "root": "rtr"})])
        assert await writer.flush()
        await deliverer.route(2.0)
        filler = fill(disk)
        tasks = [asyncio.create_task(deliverer.run(stop, every=0.05)),
                 asyncio.create_task(writer.run(stop))]

        async def until(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while not cond():
                assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
                await asyncio.sleep(0.05)

        await until(lambda: not writer.up, "the attempt could not be recorded")
        assert writer.write_errors["disk_full"] >= 1  # the real cause, not a rollback error
        await until(lambda: writer.errors >= 3, "the writer retried (several seconds)")
        assert hook.messages() == []  # nothing sent that could not be recorded
        filler.unlink()
        await until(lambda: writer.up, "storage back")
        await until(lambda: deliverer.results[("hook", "success")] == 1, "delivery marked")
        async with outbox.connection.execute(
                "SELECT status FROM notification_delivery") as cur:
            assert [r[0] for r in await cur.fetchall()] == ["sent"]
        assert len(hook.messages()) == 1
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        hook.close()
        await outbox.close()
        await store.close()
