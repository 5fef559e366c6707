"""SNMP traps through the real daemon: net-snmp's snmptrap/snmpinform send them to the
receiver on a high loopback port; the sending device's SNMP agent is a real snmpd."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitord.demo.processes import free_port
from monitord.probes.snmp import codec
from tests.daemon_lab import (
    DaemonProcess,
    Metrics,
    base_config,
    http_get,
    wait_for,
    write_config,
)
from tests.snmp_lab import Snmpd

pytestmark = pytest.mark.timeout(60)

NET_SNMP_ENV = {**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"}
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX_2 = "1.3.6.1.2.1.2.2.1.1.2"


def net_snmp(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=NET_SNMP_ENV, capture_output=True, text=True,
                          timeout=15, check=False)


def traps(m: Metrics) -> dict[tuple[str, str], float]:
    return {(lab["trap"], lab["result"]): v
            for lab, v in m.samples("monitord_snmp_traps_total") if v}


def polls(d: DaemonProcess) -> float:
    return d.metrics().get_sample("monitord_snmp_polls_total") or 0.0


def test_traps_through_the_daemon(tmp_path: Path, snmpd: Snmpd,
                                  daemon_factory: Callable[..., DaemonProcess]) -> None:
    port = free_port(kind=socket.SOCK_DGRAM)
    community = tmp_path / "trap-community"
    community.write_text("s3cret-traps\n")
    cfg = base_config([
        {"id": "sw-1", "kind": "switch", "school": "62020001", "address": "127.0.0.1",
         "probes": {"snmp": {"community": "public", "port": snmpd.port, "timeout": 0.5,
                             "retries": 0}}},
    ], interval="1h")  # its regular poll never falls inside the test
    cfg["snmp_traps"] = {"enabled": True, "listen": [f"127.0.0.1:{port}"],
                         "communities": [{"file": str(community)}]}
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()
    health = json.loads(http_get(d.url + "/healthz")[1])
    assert health["probes"]["snmp_traps"]["listen"] == [f"127.0.0.1:{port}"]
    target = f"127.0.0.1:{port}"
    before = polls(d)

    # linkDown from the device (v2c): polled at once, counted, shown on the wall
    sent = time.monotonic()
    out = net_snmp("snmptrap", "-v", "2c", "-c", "s3cret-traps", target, "", LINK_DOWN,
                   IF_INDEX_2, "i", "2")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: polls(d) > before, 3, "an early SNMP poll of sw-1")
    assert time.monotonic() - sent < 1.0
    assert traps(d.metrics()) == {("linkDown", "accepted"): 1}

    def wall_event() -> dict[str, str] | None:
        data = json.loads(http_get(d.url + "/wall/data.json?lang=en")[1])
        return next((e for e in data["events"] if e["kind"] == "trap"), None)

    ev = wait_for(wall_event, 5, "the trap on the wall's recent events")
    assert ev is not None and ev["badge"] == "SNMP trap linkDown ifIndex 2"
    assert "sw-1" in ev["text"] or "switch" in ev["text"].lower()

    # a wrong community: counted, nothing else
    out = net_snmp("snmptrap", "-v", "2c", "-c", "guess", target, "", LINK_DOWN)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: traps(d.metrics()).get(("linkDown", "bad_community")) == 1, 3,
             "bad_community counted")

    # an unknown source (another loopback address): counted and logged, no device made
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        for _ in range(3):
            s.sendto(codec.encode_trap_v2(b"s3cret-traps", codec.parse_oid(LINK_DOWN)),
                     ("127.0.0.1", port))
        s.sendto(b"\x30\x82garbage", ("127.0.0.1", port))
    wait_for(lambda: traps(d.metrics()).get(("linkDown", "unknown_source")) == 3, 3,
             "unknown_source counted")
    m = d.metrics()
    assert traps(m).get(("other", "malformed")) == 1
    assert sum(v for _, v in m.samples("monitord_devices_configured")) == 1
    assert set(m.by_label("monitord_device_up", "device")) <= {"sw-1"}
    assert d.log().count("no configured device's address") == 1  # once a minute at most

    # a v1 coldStart, and an inform that is acknowledged
    out = net_snmp("snmptrap", "-v", "1", "-c", "s3cret-traps", target,
                   "1.3.6.1.4.1.8072.3.2.10", "127.0.0.1", "0", "0", "")
    assert out.returncode == 0, out.stderr
    out = net_snmp("snmpinform", "-v", "2c", "-t", "2", "-r", "0", "-c", "s3cret-traps",
                   target, "", "1.3.6.1.2.1.33.2.0.1")
    assert out.returncode == 0, out.stderr  # snmpinform fails with "Timeout" when unacked
    wait_for(lambda: traps(d.metrics()).get(("upsOnBattery", "accepted")) == 1, 3,
             "the inform counted")
    assert traps(d.metrics()).get(("coldStart", "accepted")) == 1

    # secrets never show; the exposition stays valid
    text = d.metrics_text()
    assert "s3cret" not in d.log() and "s3cret" not in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30, check=False)
    assert "monitord_snmp_traps_total" not in lint.stdout + lint.stderr, lint.stderr

    # reload: a new community takes effect without a restart
    community.write_text("rotated\n")
    cfg["snmp_traps"]["repoll_min_interval"] = "1s"
    write_config(tmp_path / "m.yaml", cfg)
    wait_for(lambda: "configuration reloaded" in d.log(), 15, "the config reload")
    net_snmp("snmptrap", "-v", "2c", "-c", "rotated", target, "", LINK_DOWN)
    wait_for(lambda: traps(d.metrics()).get(("linkDown", "accepted")) == 2, 3,
             "the rotated community accepted")
    assert "Traceback" not in d.log()


def test_a_receiver_that_cannot_bind_leaves_monitoring_running(
        tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        cfg = base_config([{"id": "r1", "kind": "router", "address": "127.0.0.1"}])
        cfg["snmp_traps"] = {"enabled": True, "listen": [f"127.0.0.1:{port}"],
                             "communities": ["lab"]}
        d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
        d.wait_ready()
        health = json.loads(http_get(d.url + "/healthz")[1])
        assert health["probes"]["snmp_traps"]["up"] is False
        assert f"127.0.0.1:{port}" in health["probes"]["snmp_traps"]["last_error"]
        wait_for(lambda: d.metrics().by_label("monitord_device_up", "device").get("r1") == 1,
                 10, "r1 monitored (pinged) all the same")
        assert "cannot listen for SNMP traps" in d.log()
