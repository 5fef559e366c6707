"""The real daemon end to end: real ICMP on loopback, real iptables, real SQLite."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon_lab import (
    MONITORD,
    ROOT,
    DaemonProcess,
    IptablesDrop,
    Metrics,
    base_config,
    free_port,
    http_get,
    require_root,
    wait_for,
    write_config,
)

LIVE = ["127.90.0.1", "127.90.0.2", "::1"]
DEAD = ["127.91.0.1", "127.91.0.2"]


def devices() -> list[dict[str, object]]:
    devs: list[dict[str, object]] = [
        {"id": "rtr1", "school": "62020001", "kind": "router", "address": LIVE[0]},
        {"id": "sw1", "school": "62020001", "kind": "switch", "address": LIVE[1],
         "parent": "rtr1"},
        {"id": "web", "kind": "server", "address": LIVE[2], "unit": "กลุ่มอำนวยการ"},
        {"id": "rtr2", "school": "62020002", "kind": "router", "address": DEAD[0]},
        {"id": "rx2", "school": "62020002", "kind": "dltv_receiver", "address": DEAD[1],
         "parent": "rtr2"},
    ]
    return devs


def up_values(metrics: Metrics) -> dict[str, float]:
    return metrics.by_label("monitord_device_up", "device")


EXPECTED = {"rtr1": 1.0, "sw1": 1.0, "web": 1.0, "rtr2": 0.0, "rx2": 0.0}


@pytest.fixture
def lab(tmp_path: Path, iptables: IptablesDrop) -> Iterator[tuple[Path, IptablesDrop]]:
    iptables.drop("127.91.0.0/24")
    yield write_config(tmp_path / "monitord.yaml", base_config(devices())), iptables


def test_daemon_end_to_end(lab: tuple[Path, IptablesDrop],
                           daemon_factory: Callable[..., DaemonProcess]) -> None:
    config, _ = lab
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    wait_for(lambda: up_values(d.metrics()) == EXPECTED, 30, "live UP and dead DOWN")

    text = d.metrics_text()
    m = d.metrics()
    loss = m.by_label("monitord_icmp_packet_loss_ratio", "device")
    assert loss == {"rtr1": 0, "sw1": 0, "web": 0, "rtr2": 1, "rx2": 1}
    assert 0 < m("monitord_icmp_rtt_seconds", device="web", school="office", kind="server",
             stat="avg") < 0.1
    # rx2 is down behind its dead router: UNREACHABLE, not a root cause of its own.
    assert m("monitord_device_state", device="rtr2", state="down") == 1
    assert m("monitord_device_state", device="rx2", state="unreachable") == 1
    assert m("monitord_device_state", device="rx2", state="down") == 0
    assert m("monitord_incidents_open") == 1
    assert m.by_label("monitord_school_up", "school") == {"62020001": 1, "62020002": 0}
    assert m("monitord_school_info", school="62020001", name="โรงเรียนบ้านทดสอบ",
             district="คลองขลุง", isp="NT", latitude="", longitude="") == 1
    assert m("monitord_probe_round_duration_seconds", probe="icmp") > 0
    assert m("monitord_probe_up", probe="icmp") == 1
    assert m("monitord_icmp_packets_sent_total") >= m("monitord_icmp_packets_received_total") > 0
    # The exposition passes Prometheus' own linter without a word.
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0 and lint.stdout == "" and lint.stderr == "", lint

    status, body = http_get(d.url + "/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok"
    assert health["probes"]["icmp"]["mode"] == "raw" and health["devices"] == 5

    # `monitord status` reads the same database while the daemon runs.
    res = subprocess.run([*MONITORD, "status", "--db", str(d.db), "--format", "json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    states = {r["device"]: r["state"] for r in json.loads(res.stdout)}
    assert states == {"rtr1": "up", "sw1": "up", "web": "up", "rtr2": "down", "rx2": "down"}

    assert d.stop() == 0
    log = d.log()
    assert "ICMP" in log or "icmp" in log
    assert "stopped" in log
    with sqlite3.connect(d.db) as db:
        rows = db.execute("SELECT device_id, new_state FROM state_transition").fetchall()
    assert sorted(rows) == sorted([(k, "up" if v else "down") for k, v in EXPECTED.items()])


def test_recovery_and_restart_resume_state(lab: tuple[Path, IptablesDrop],
                                           daemon_factory: Callable[..., DaemonProcess]) -> None:
    config, ipt = lab
    # One echo request a round: removing the rule below cannot land inside a round, whose
    # half-answered pings could otherwise read as loss (DEGRADED) on the way back up.
    write_config(config, base_config(devices(), icmp={"count": 1, "timeout": "300ms"}))
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    wait_for(lambda: up_values(d.metrics()) == EXPECTED, 30, "initial states")
    since = d.metrics()("monitord_device_state_since_timestamp_seconds", device="rtr2",
                        school="62020002", kind="router")
    assert d.stop() == 0

    # Restarted daemon resumes the stored DOWN state (same "since") before probing.
    d2 = daemon_factory("run", "--config", str(config), db=d.db)
    d2.wait_ready()
    m = d2.metrics()
    assert m("monitord_device_state", device="rtr2", state="down") == 1
    assert m("monitord_device_state_since_timestamp_seconds", device="rtr2",
             school="62020002", kind="router") == since

    ipt.undrop("127.91.0.0/24")
    wait_for(lambda: all(d2.metrics()("monitord_device_state", device=dev, state="up") == 1
                         for dev in EXPECTED), 30,
             "dead devices recover (UP, not DEGRADED) after the rule is removed")
    assert d2.stop() == 0
    with sqlite3.connect(d.db) as db:
        rows = db.execute("SELECT old_state, new_state FROM state_transition"
                          " WHERE device_id = 'rtr2' ORDER BY id").fetchall()
    assert rows == [("unknown", "down"), ("down", "up")]


def test_sighup_reload(tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    require_root()
    devs = devices()[:3]
    config = write_config(tmp_path / "m.yaml", base_config(devs))
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    wait_for(lambda: up_values(d.metrics()) == {"rtr1": 1, "sw1": 1, "web": 1}, 30, "all up")

    # An invalid file is rejected; the running config stays in force.
    config.write_text(config.read_text(encoding="utf-8").replace("kind: switch", "kind: swich"),
                      encoding="utf-8")
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.metrics()("monitord_config_last_reload_success") == 0, 20,
             "reload rejected")
    m = d.metrics()
    # the file watcher (every 3 s) may have seen the change just before SIGHUP: 1 or 2
    assert m("monitord_config_reloads_total", result="failure") in (1, 2)
    assert set(up_values(m)) == {"rtr1", "sw1", "web"}
    assert "new configuration rejected" in d.log()
    assert f"{config}:" in d.log() and "devices[1].kind" in d.log()

    # A valid file with one more device is adopted.
    write_config(config, base_config([*devs, {"id": "ap1", "school": "62020001",
                                              "kind": "access_point", "address": "127.90.0.9"}]))
    d.signal(signal.SIGHUP)
    wait_for(lambda: up_values(d.metrics()).get("ap1") == 1, 30, "new device probed")
    m = d.metrics()
    assert m("monitord_config_last_reload_success") == 1
    assert m("monitord_config_reloads_total", result="success") in (1, 2)
    assert d.stop() == 0


def test_invalid_config_at_start_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("office: {name: x}\n", encoding="utf-8")
    res = subprocess.run([*MONITORD, "run", "--config", str(config), "--db",
                          str(tmp_path / "m.db"), "--listen", f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2
    assert f"{config}:1: office.area_code: required key is missing" in res.stderr


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    import socket

    config = write_config(tmp_path / "m.yaml", base_config(devices()[:1]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([*MONITORD, "run", "--config", str(config), "--db",
                              str(tmp_path / "m.db"), "--listen", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    require_root()
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True,
                   timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


def test_full_disk_loses_nothing(small_disk: Path, iptables: IptablesDrop, tmp_path: Path,
                                 daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "m.yaml", base_config(devices()))
    d = daemon_factory("run", "--config", str(config), db=small_disk / "m.db")
    d.wait_ready()
    wait_for(lambda: len(up_values(d.metrics())) == 5, 30, "first states")
    wait_for(lambda: d.metrics()("monitord_storage_pending_writes") == 0, 20, "first write")
    # Fill the disk, then make devices go down: the writes fail, are counted and kept.
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
        for _ in range(4096):  # bounded: 4096 × 1 KiB > the 2 MiB disk
            f.write(b"\0" * 1024)
    iptables.drop("127.90.0.0/24")
    wait_for(lambda: d.metrics()("monitord_storage_errors_total") > 0, 30,
             "write errors counted")
    # Both DOWN transitions (and the incident they open) wait in memory.
    wait_for(lambda: d.metrics()("monitord_state_transitions_total", state="down") == 2
             and d.metrics()("monitord_storage_pending_writes") >= 2, 30,
             "both DOWN transitions kept in memory")
    assert http_get(d.url + "/healthz")[0] == 200  # still running
    assert "cannot write" in d.log()
    filler.unlink()
    wait_for(lambda: d.metrics()("monitord_storage_pending_writes") == 0, 90,
             "pending writes flushed after space came back")
    assert d.stop() == 0
    with sqlite3.connect(d.db) as db:
        rows = db.execute("SELECT device_id, new_state FROM state_transition"
                          " WHERE new_state = 'down' AND device_id IN ('rtr1', 'sw1')").fetchall()
    assert sorted(rows) == [("rtr1", "down"), ("sw1", "down")]
