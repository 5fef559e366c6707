"""SNMP and MQTT through the real daemon: real snmpd/snmpsim agents, a real mosquitto,
real ICMP on loopback, and what a user sees — /metrics, states, notifications, logs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.daemon_lab import (
    MONITORD,
    DaemonProcess,
    IptablesDrop,
    Metrics,
    base_config,
    http_get,
    wait_for,
    write_config,
)
from tests.mqtt_lab import Broker
from tests.notify_lab import Webhook
from tests.snmp_lab import BadAgent, Snmpd, Snmpsim

COMMUNITY = "s3cr3t-c0mmunity-9f2"

# A small router for snmpsim: LAN up, WAN (the uplink) down.
CUT_ROUTER = "\n".join([
    "1.3.6.1.2.1.1.1.0|4|Lab router with a dead WAN",
    "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10",
    "1.3.6.1.2.1.1.3.0|67|123456",
    "1.3.6.1.2.1.1.5.0|4|cut-router",
    "1.3.6.1.2.1.2.2.1.1.1|2|1",
    "1.3.6.1.2.1.2.2.1.1.2|2|2",
    "1.3.6.1.2.1.2.2.1.2.1|4|lan",
    "1.3.6.1.2.1.2.2.1.2.2|4|wan",
    "1.3.6.1.2.1.2.2.1.5.1|66|1000000000",
    "1.3.6.1.2.1.2.2.1.5.2|66|100000000",
    "1.3.6.1.2.1.2.2.1.7.1|2|1",
    "1.3.6.1.2.1.2.2.1.7.2|2|1",
    "1.3.6.1.2.1.2.2.1.8.1|2|1",
    "1.3.6.1.2.1.2.2.1.8.2|2|2",
    "1.3.6.1.2.1.2.2.1.10.1|65|1000",
    "1.3.6.1.2.1.2.2.1.10.2|65|0",
    "1.3.6.1.2.1.2.2.1.16.1|65|2000",
    "1.3.6.1.2.1.2.2.1.16.2|65|0",
    "",
])


def state_of(m: Metrics, device: str) -> str | None:
    for labels, value in m.samples("monitord_device_state"):
        if labels.get("device") == device and value == 1:
            return labels["state"]
    return None


def status_rows(d: DaemonProcess) -> dict[str, dict[str, Any]]:
    out = subprocess.run([*MONITORD, "status", "--db", str(d.db), "--format", "json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return {r["device"]: r for r in json.loads(out.stdout)}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Snmpd]:
    """net-snmp's snmpd answering v2c on a community only this test knows."""
    a = Snmpd(tmp_path)
    conf = tmp_path / "snmpd.conf"
    conf.write_text(conf.read_text() + f"rocommunity {COMMUNITY} 127.0.0.1\n")
    a.start()
    try:
        yield a
    finally:
        a.stop()


def test_snmp_through_the_daemon(tmp_path: Path, agent: Snmpd,
                                 snmpsim_factory: Snmpsim,
                                 bad_agent: type[BadAgent],
                                 iptables: IptablesDrop,
                                 daemon_factory: Callable[..., DaemonProcess],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    snmpsim_factory.add("cutrouter", CUT_ROUTER)
    snmpsim_factory.start()
    silent = bad_agent("silent")
    iptables.drop("127.93.0.0/24")
    monkeypatch.setenv("LAB_SNMP_COMMUNITY", COMMUNITY)
    fast = {"interval": "1s", "timeout": 0.3, "retries": 0}
    cfg = base_config([
        # snmpd: interfaces (router profile) and, on the same agent, the server profile
        {"id": "core", "kind": "router", "address": "127.0.0.1",
         "probes": {"icmp": None, "snmp": {"port": agent.port, "uplink": "lo"}}},
        {"id": "web", "kind": "server", "address": "127.0.0.1", "unit": "กลุ่มอำนวยการ",
         "probes": {"icmp": None, "snmp": {"port": agent.port}}},
        # answers ping, never SNMP: "SNMP failing", not DOWN
        {"id": "mute", "kind": "switch", "address": "127.0.0.1",
         "probes": {"icmp": None, "snmp": {"port": silent.port}}},
        # answers ping and SNMP, but its uplink (WAN) is down: what hangs below is cut off
        {"id": "cut", "kind": "router", "school": "62020001", "address": "127.0.0.1",
         "probes": {"icmp": None, "snmp": {"port": snmpsim_factory.port, "uplink": "wan",
                                           "community": "cutrouter"}}},
        {"id": "cut-sw", "kind": "switch", "school": "62020001", "address": "127.93.0.1",
         "parent": "cut"},
    ], snmp={"community": {"env": "LAB_SNMP_COMMUNITY"}, **fast})
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()

    def snmp_ready() -> Metrics | None:
        m = d.metrics()
        rx = m.get_sample("monitord_interface_receive_bytes_total", device="core",
                          interface="lo")
        ok = (rx is not None and m.get_sample("monitord_snmp_up", device="mute") == 0
              and state_of(m, "mute") == "degraded" and state_of(m, "cut") == "down"
              and state_of(m, "cut-sw") == "unreachable")
        return m if ok else None

    try:
        m = wait_for(snmp_ready, 40, "SNMP data, SNMP failing, uplink down")
    except AssertionError:
        print(d.log()[-5000:])
        print("\n".join(line for line in d.metrics_text().splitlines()
                        if "snmp" in line or ("device_state" in line and line.endswith("1.0"))))
        raise
    # counters are Prometheus counters and grow with real traffic (the polls themselves)
    first = m("monitord_interface_receive_bytes_total", device="core", interface="lo")
    assert m("monitord_interface_oper_status", device="core", interface="lo") == 1
    assert m("monitord_snmp_uptime_seconds", device="core") > 0
    assert m("monitord_snmp_uplink_oper_status", device="core") == 1
    assert state_of(m, "core") == "up"
    wait_for(lambda: d.metrics()("monitord_interface_receive_bytes_total", device="core",
                                 interface="lo") > first, 20, "lo receive bytes to grow")
    # server profile on the same snmpd: storage (RAM, disks) and the load average
    assert any(labels["device"] == "web" and 0 <= v <= 1
               for labels, v in m.samples("monitord_storage_used_ratio"))
    assert m("monitord_load1", device="web") >= 0
    assert state_of(m, "web") == "up"
    # a large office scrapes the interface tables apart: the two parts make the whole
    code, tables = http_get(d.url + "/metrics?part=interfaces")
    assert code == 200 and 'monitord_interface_oper_status{device="core",interface="lo"}' \
        in tables
    samples = [line for line in tables.splitlines() if line and not line.startswith("#")]
    assert samples and all(line.startswith("monitord_interface_") for line in samples)
    code, rest = http_get(d.url + "/metrics?part=no_interfaces")
    assert code == 200 and "monitord_interface_" not in rest and "monitord_snmp_up" in rest
    assert http_get(d.url + "/metrics?part=everything")[0] == 400
    # the silent agent: errors counted by reason, the device works (ICMP) but is degraded
    assert m("monitord_snmp_errors_total", device="mute", reason="timeout") >= 1
    rows = status_rows(d)
    assert rows["mute"]["state"] == "degraded"
    assert "snmp_failing" in rows["mute"]["reason"] and "timeout" in rows["mute"]["reason"]
    # uplink down: one root cause (the router), its child unreachable, not another incident
    assert "uplink_down" in rows["cut"]["reason"]
    assert m("monitord_incidents_open") == 1
    assert m("monitord_snmp_up", device="cut") == 1
    assert m("monitord_interface_oper_status", device="cut", interface="wan") == 2
    # the community never shows: not in metrics, health, the log or the database
    text = d.metrics_text()
    for where in (text, http_get(d.url + "/healthz")[1], d.log(),
                  d.db.read_bytes().decode("latin-1")):
        assert COMMUNITY not in where
    d.stop()
    assert COMMUNITY not in d.log()


def test_snmp_metrics_pass_promtool(tmp_path: Path, agent: Snmpd,
                                    daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([
        {"id": "core", "kind": "switch", "address": "127.0.0.1",
         "probes": {"icmp": None, "snmp": {"port": agent.port, "community": "public",
                                           "interval": "1s"}}},
        {"id": "web", "kind": "server", "address": "127.0.0.1",
         "probes": {"icmp": None, "snmp": {"port": agent.port, "community": "public",
                                           "interval": "1s"}}},
    ])
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()
    wait_for(lambda: d.metrics().get_sample("monitord_interface_utilisation_ratio",
                                            device="core", interface="lo",
                                            direction="in") is not None,
             30, "utilisation after two polls")
    out = subprocess.run(["promtool", "check", "metrics"], input=d.metrics_text(),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "" and out.stderr.strip() == ""


def publish_report(b: Broker, device: str, **fields: Any) -> None:
    b.publish(f"monitord/62020001/{device}/state", {"ts": time.time(), **fields})


def test_mqtt_through_the_daemon(tmp_path: Path, broker: Broker,
                                 daemon_factory: Callable[..., DaemonProcess]) -> None:
    hook = Webhook()
    # A retained report from an hour ago: a replay on subscribe must not make rx3 UP.
    broker.publish("monitord/62020001/rx3/state",
                   {"ts": time.time() - 3600, "signal_lock": True, "signal_quality_db": 12},
                   retain=True)
    mq = {"period": "1s"}
    cfg = base_config([
        {"id": "rx1", "kind": "dltv_receiver", "school": "62020001", "address": "127.0.0.1",
         "probes": {"mqtt": mq}},
        {"id": "rx2", "kind": "dltv_receiver", "school": "62020001", "address": "127.0.0.1",
         "probes": {"mqtt": mq}},
        {"id": "rx3", "kind": "dltv_receiver", "school": "62020001", "address": "127.0.0.1",
         "probes": {"mqtt": mq}},
        # switched off: a fault in lesson hours, nothing outside them (night, holiday)
        {"id": "tv-lesson", "kind": "tv", "school": "62020001", "address": "127.0.0.1",
         "probes": {"mqtt": mq}},
        {"id": "tv-evening", "kind": "tv", "school": "62020001", "address": "127.0.0.1",
         "probes": {"mqtt": mq}, "schedule": "tomorrow_only"},
    ])
    tomorrow = (datetime.now(ZoneInfo("Asia/Bangkok")) + timedelta(days=1)).strftime("%a")
    cfg["schedules"] = {"tomorrow_only": {"days": [tomorrow.lower()],
                                          "hours": ["00:00-24:00"]}}
    cfg["mqtt"] = {"host": "127.0.0.1", "port": broker.port, "client_id": "monitord-test",
                   "reconnect_min": "200ms", "reconnect_max": "1s", "alert_after": "1s"}
    cfg["notify"] = {"group_window": "200ms", "backoff_initial": "200ms"}
    try:
        d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)),
                           "--notify", hook.url)
        d.wait_ready()
        wait_for(lambda: d.metrics().get_sample("monitord_mqtt_broker_up") == 1, 20,
                 "the daemon to connect to the broker")

        def reports_applied() -> bool:
            publish_report(broker, "rx1", signal_lock=True, signal_quality_db=11.5,
                           channel=3)
            publish_report(broker, "rx2", receiver_power=True, signal_lock=False)
            publish_report(broker, "tv-lesson", tv_power=False)
            publish_report(broker, "tv-evening", tv_power=False)
            m = d.metrics()
            return (state_of(m, "rx1") == "up" and state_of(m, "rx2") == "down"
                    and state_of(m, "tv-lesson") == "down"
                    and state_of(m, "tv-evening") == "up")

        wait_for(reports_applied, 20, "rx1 UP and rx2 DOWN (no lock)", interval=0.3)
        m = d.metrics()
        assert m("monitord_dltv_signal_quality_db", device="rx1") == 11.5
        assert m("monitord_dltv_channel", device="rx1") == 3
        assert m("monitord_dltv_signal_lock", device="rx2") == 0
        rows = status_rows(d)
        assert "no_signal_lock" in rows["rx2"]["reason"]
        assert "powered_off" in rows["tv-lesson"]["reason"]
        assert m("monitord_tv_power", device="tv-evening") == 0
        # rx3 only ever had the hour-old retained report: stale, never UP
        wait_for(lambda: state_of(d.metrics(), "rx3") == "down", 20, "rx3 DOWN (stale)")
        assert "stale" in status_rows(d)["rx3"]["reason"]
        con = sqlite3.connect(d.db)
        try:
            states = [r[0] for r in con.execute(
                "SELECT new_state FROM state_transition WHERE device_id='rx3'")]
        finally:
            con.close()
        assert "up" not in states
        # bad input is counted, ingest goes on
        broker.publish("monitord/62020001/rx1/state", b"{not json")
        broker.publish("monitord/62020001/nobody/state", {"ts": time.time()})
        wait_for(lambda: d.metrics().get_sample("monitord_mqtt_messages_rejected_total",
                                                reason="malformed_json") == 1
                 and d.metrics().get_sample("monitord_mqtt_messages_rejected_total",
                                            reason="unknown_device") == 1,
                 10, "rejected messages counted")
        # rx1 goes silent: DOWN (stale) after period × stale_factor
        wait_for(lambda: state_of(d.metrics(), "rx1") == "down", 20, "rx1 DOWN (stale)")

        # the broker goes away: MQTT devices UNKNOWN (never DOWN because of us), one alert
        broker.stop()
        wait_for(lambda: d.metrics().get_sample("monitord_mqtt_broker_up") == 0, 20,
                 "broker down seen")
        wait_for(lambda: all(state_of(d.metrics(), r) == "unknown"
                             for r in ("rx1", "rx2", "rx3")), 20, "MQTT devices UNKNOWN")
        wait_for(lambda: any("MQTT broker" in msg for msg in hook.messages()), 30,
                 "the broker_unreachable notification")
        broker.start()
        wait_for(lambda: d.metrics().get_sample("monitord_mqtt_broker_up") == 1, 30,
                 "reconnected")
        wait_for(lambda: any("again" in msg or "อีกครั้ง" in msg for msg in hook.messages()),
                 30, "the broker_restored notification")
        unreachable = [msg for msg in hook.messages() if "ติดต่อ MQTT broker ไม่ได้" in msg]
        assert len(unreachable) == 1, hook.messages()
        assert d.metrics()("monitord_mqtt_reconnects_total") >= 1
        wait_for(reports_applied, 20, "reports applied after the reconnect",
                 interval=0.3)
    finally:
        hook.close()
