"""The demo lab's simulated agents, checked with the real probe and real clients.

SNMP: the simulator (monitord/demo/snmp_*.py) answers the real ``SnmpProber`` and net-snmp's
``snmpbulkwalk``; the codec is proven against a client that is not ours.  MQTT: the demo's
own mosquitto and agents.  End to end: ``monitord demo`` with every probe wired.  Loopback
only; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitord.demo import processes
from monitord.demo.agents import DOWN_BEHAVIOURS, plan
from monitord.demo.broker import DemoBroker
from monitord.demo.office import (
    DEAD_BLOCK,
    DEAD_NET,
    LIVE_NET,
    RULE_COMMENT,
    DemoLab,
    build_lab,
    lab_of_config,
    write_config,
)
from monitord.demo.projectors import DEGRADED_REASON, LAMP_LIFE_HOURS, PjlinkLab
from monitord.demo.services import (
    DNS_NAME,
    EXPIRING_DAYS,
    EXPIRING_SERVICE,
    ServicePlan,
    ServicesLab,
)
from monitord.demo.snmp_agent import SnmpLab
from monitord.demo.snmp_devices import SimAgent, agent_for
from monitord.demo.snmp_mib import (
    MAX_MESSAGE,
    answer,
    decode_request,
    encode_response,
    encode_varbind,
)
from monitord.demo.traps import LINK_DOWN, LINK_UP, TrapSender
from monitord.probes.base import Observation, Target
from monitord.probes.dns import DnsProber
from monitord.probes.http import HttpProber
from monitord.probes.pjlink import PjlinkProber
from monitord.probes.snmp import SnmpProber
from monitord.probes.snmp import codec as w
from tests.daemon_lab import (
    MONITORD,
    ROOT,
    IptablesDrop,
    http_get,
    parse_metrics,
    require_root,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)

COMMUNITY = "demo-public"
ROUTER = {"id": "62020001-rtr", "kind": "router", "address": f"{LIVE_NET}.201.1",
          "brand_model": "Huawei HG8145V5", "hostname": "rtr.62020001.demo.invalid"}
SWITCH = {"id": "office-sw", "kind": "switch", "address": f"{LIVE_NET}.201.2",
          "brand_model": "Cisco Catalyst 2960"}
SERVER = {"id": "office-web", "kind": "server", "address": f"{LIVE_NET}.201.3",
          "brand_model": "Dell PowerEdge R450", "hostname": "office-web.demo.invalid"}
UPS = {"id": "office-ups", "kind": "ups", "address": f"{LIVE_NET}.201.4",
       "brand_model": "APC Smart-UPS 3000"}
UPS_MAINS = {"id": "office-ups2", "kind": "ups", "address": f"{LIVE_NET}.201.5",
             "brand_model": "APC Smart-UPS 3000"}
REBOOTER = {"id": "62020003-rtr", "kind": "router", "address": f"{LIVE_NET}.201.6",
            "brand_model": "Huawei HG8145V5"}
DEAD = f"{DEAD_NET}.201.1"   # no agent: a dead device does not answer SNMP


def free_udp_port() -> int:
    """A UDP port free on loopback.  Not the demo's 16161: a demo may be running."""
    return processes.free_port(kind=socket.SOCK_DGRAM)


@pytest.fixture
def one_demo_at_a_time() -> Iterator[None]:
    """Demos use fixed ports (SNMP agents on 16161, projectors on 4352): a demo test waits
    until no other demo test of this machine runs (other sessions included)."""
    with processes.machine_lock("monitord-demo-tests", 200):
        yield


class Lab:
    def __init__(self, snmp: SnmpLab, agents: dict[str, SimAgent]) -> None:
        self.snmp = snmp
        self.agents = agents
        self.port = snmp.port

    def params(self, device: dict[str, Any], **extra: Any) -> dict[str, Any]:
        profile = {"router": "router", "switch": "switch", "server": "server",
                   "ups": "ups"}[device["kind"]]
        return {"community": COMMUNITY, "port": self.port, "profile": profile,
                "timeout": 0.5, "retries": 1, **extra}

    def target(self, device: dict[str, Any], **extra: Any) -> Target:
        return Target(device["id"], device["address"], self.params(device, **extra))


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    agents = {
        "router": agent_for(ROUTER),
        "switch": agent_for(SWITCH),
        "server": agent_for(SERVER),
        # on battery from the start (the cycle's last 120 s, 10 s in) …
        "ups": agent_for(UPS, battery_cycle=300, battery_seconds=120, battery_offset=190),
        # … and on mains for the next minute
        "ups_mains": agent_for(UPS_MAINS, battery_cycle=300, battery_seconds=120,
                               battery_offset=0),
        "rebooter": agent_for(REBOOTER, reboot_every=2.0),
    }
    snmp = SnmpLab(agents.values(), COMMUNITY, port=free_udp_port())
    await snmp.start()
    try:
        yield Lab(snmp, agents)
    finally:
        snmp.close()


@pytest.fixture
async def prober() -> AsyncIterator[SnmpProber]:
    p = SnmpProber(max_in_flight=16)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def poll(p: SnmpProber, *targets: Target) -> list[Observation]:
    obs, stats = await p.probe(list(targets))
    assert stats.targets == len(targets) == len(obs)
    return obs


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------- SNMP, real probe


async def test_router_interfaces_and_counters_grow(lab: Lab, prober: SnmpProber) -> None:
    agent = lab.agents["router"]
    target = lab.target(ROUTER, uplink="wan")
    (o1,) = await poll(prober, target)
    assert o1.ok, o1.reason
    assert o1.info["sys_name"] == "rtr.62020001.demo.invalid"
    assert "Huawei" in o1.info["sys_descr"] and o1.info["sys_object_id"].startswith(
        "1.3.6.1.4.1.2011")
    assert o1.values["sys_uptime_seconds"] > 3600
    ifaces = o1.tables["interface"]
    assert 4 <= len(ifaces) <= 6 and "wan" in ifaces and "lan1" in ifaces
    assert o1.values["uplink_oper_status"] == 1 and not o1.degraded
    wan = ifaces["wan"]
    assert wan["speed_bps"] == 1e9 and wan["oper_status"] == 1 and wan["in_octets"] > 0
    # a plausible school rate: 2–20 Mbit/s mean downstream
    up0 = agent.uptime()
    await until(lambda: agent.uptime() - up0 > 0.5, 10, "half a second of agent time")
    (o2,) = await poll(prober, target)
    assert o2.ok and o2.events == []
    wan2 = o2.tables["interface"]["wan"]
    assert wan2["in_octets"] > wan["in_octets"] and wan2["out_octets"] > wan["out_octets"]
    assert 0 < wan2["utilisation_in_ratio"] < 0.05
    # the empty LAN port (if any) stays at zero
    for row in o2.tables["interface"].values():
        if row["oper_status"] == 2:
            assert row["in_octets"] == 0


async def test_switch_has_24_ports_with_large_indexes(lab: Lab, prober: SnmpProber) -> None:
    (o,) = await poll(prober, lab.target(SWITCH))
    assert o.ok, o.reason
    table = o.tables["interface"]
    ports = [name for name in table if name.startswith("Fa0/")]
    assert len(ports) == 24 and len(table) >= 27
    assert table["Fa0/1"]["index"] == 10001 and table["Gi0/2"]["index"] == 10102
    assert table["Fa0/1"]["speed_bps"] == 1e8
    assert "snmp_partial" not in o.info


async def test_server_cpu_memory_disks_load(lab: Lab, prober: SnmpProber) -> None:
    (o,) = await poll(prober, lab.target(SERVER))
    assert o.ok, o.reason
    assert o.values["cpu_count"] in (8, 16) and 0 < o.values["cpu_load_ratio"] <= 1
    assert 0.3 < o.values["memory_used_ratio"] < 0.8
    assert {"load1", "load5", "load15"} <= set(o.values)
    storage = o.tables["storage"]
    assert {"Physical memory", "/", "/var"} <= set(storage)
    assert storage["/var"]["size_bytes"] == 900 * 1024 ** 3
    assert 0 < storage["/"]["used_ratio"] < 1


async def test_ups_on_battery_and_on_mains(lab: Lab, prober: SnmpProber) -> None:
    battery, mains = await poll(prober, lab.target(UPS), lab.target(UPS_MAINS))
    assert battery.ok and mains.ok
    assert battery.values["ups_on_battery"] == 1 and battery.degraded == "ups_on_battery"
    assert battery.values["ups_battery_status"] == 2
    assert battery.values["ups_charge_ratio"] < 1
    assert mains.values["ups_on_battery"] == 0 and mains.degraded == ""
    assert mains.values["ups_charge_ratio"] == 1


async def test_reboot_restarts_uptime(lab: Lab, prober: SnmpProber) -> None:
    agent = lab.agents["rebooter"]
    target = lab.target(REBOOTER, uplink="wan")
    (o1,) = await poll(prober, target)
    assert o1.ok and o1.events == []
    boots = agent.boots()
    await until(lambda: agent.boots() > boots and agent.uptime() > 0.2, 10,
                "the simulated router to reboot")
    (o2,) = await poll(prober, target)
    assert o2.ok and o2.events == ["reboot"]
    assert prober.stats.reboots["62020003-rtr"] == 1


async def test_dead_address_times_out(lab: Lab, prober: SnmpProber) -> None:
    t0 = time.monotonic()
    dead, alive = await poll(prober, Target("dead", DEAD, lab.params(ROUTER)),
                             lab.target(ROUTER))
    assert not dead.ok and dead.reason == "timeout" and dead.degraded == "snmp_failing"
    assert alive.ok
    assert time.monotonic() - t0 < 5   # 0.5 s × 2 tries, bounded


async def test_wrong_community_and_v1_are_dropped(lab: Lab, prober: SnmpProber) -> None:
    dropped = lab.snmp.dropped
    (o,) = await poll(prober, lab.target(ROUTER, community="private"))
    assert not o.ok and o.reason == "timeout"
    (o,) = await poll(prober, lab.target(ROUTER, version="1", community=COMMUNITY))
    assert not o.ok and o.reason == "timeout"
    assert lab.snmp.dropped >= dropped + 4   # 2 tries each


# ---------------------------------------------------------------------------- SNMP, raw PDUs


def exchange(address: str, port: int, message: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(message, (address, port))
        data, src = s.recvfrom(65535)
        assert src == (address, port), "the reply must come from the address asked"
        return data


def o(text: str) -> bytes:
    return w.encode_oid(w.parse_oid(text))


async def test_get_exceptions_getnext_and_end_of_view(lab: Lab) -> None:
    addr = SERVER["address"]
    msg = w.encode_request(1, COMMUNITY.encode(), w.PDU_GET, 7, [
        o("1.3.6.1.2.1.1.5.0"), o("1.3.6.1.2.1.1.5.1"), o("1.3.6.1.2.1.99.0")])
    r = w.decode_response(await asyncio.to_thread(exchange, addr, lab.port, msg))
    assert r.request_id == 7 and r.error_status == 0
    assert [(t, v) for _, t, v in r.varbinds] == [
        (w.OCTET_STRING, b"office-web.demo.invalid"), (w.NO_SUCH_INSTANCE, None),
        (w.NO_SUCH_OBJECT, None)]
    msg = w.encode_request(1, COMMUNITY.encode(), w.PDU_GETNEXT, 8, [
        o("1.3.6.1.2.1.1"), o("1.3.6.1.2.1.1.1.0"), o("1.3.6.1.9")])
    r = w.decode_response(await asyncio.to_thread(exchange, addr, lab.port, msg))
    assert [w.decode_oid(x) for x, _, _ in r.varbinds] == [
        (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 2, 0), (1, 3, 6, 1, 9)]
    assert r.varbinds[2][1] == w.END_OF_MIB_VIEW


async def test_getbulk_walks_whole_mib_in_order_within_size_cap(lab: Lab) -> None:
    """A full GETBULK walk of the switch: strictly increasing, capped replies, ends."""
    agent = lab.agents["switch"]
    cursor = o("1.3")
    last: tuple[int, ...] = ()
    seen = 0
    for rid in range(1, 1000):   # bounded: the MIB has ~700 objects
        msg = w.encode_request(1, COMMUNITY.encode(), w.PDU_GETBULK, rid, [cursor],
                               max_repetitions=200)
        raw = await asyncio.to_thread(exchange, SWITCH["address"], lab.port, msg)
        assert len(raw) <= MAX_MESSAGE
        r = w.decode_response(raw)
        assert r.error_status == 0 and 1 <= len(r.varbinds) <= 200
        done = False
        for oid_raw, tag, _ in r.varbinds:
            if tag == w.END_OF_MIB_VIEW:
                done = True
                break
            oid = w.decode_oid(oid_raw)
            assert oid > last, f"{oid} after {last}"
            last = oid
            seen += 1
            cursor = oid_raw
        if done:
            break
    else:
        raise AssertionError("walk did not end")
    assert seen == len(agent.mib)
    # non-repeaters + repeaters, several columns side by side
    msg = w.encode_request(1, COMMUNITY.encode(), w.PDU_GETBULK, 5000,
                           [o("1.3.6.1.2.1.1.3"), o("1.3.6.1.2.1.2.2.1.2"),
                            o("1.3.6.1.2.1.31.1.1.1.1")], non_repeaters=1, max_repetitions=3)
    r = w.decode_response(await asyncio.to_thread(exchange, SWITCH["address"], lab.port, msg))
    names = [w.format_oid(w.decode_oid(x)) for x, _, _ in r.varbinds]
    assert names == ["1.3.6.1.2.1.1.3.0",
                     "1.3.6.1.2.1.2.2.1.2.1", "1.3.6.1.2.1.31.1.1.1.1.1",
                     "1.3.6.1.2.1.2.2.1.2.10001", "1.3.6.1.2.1.31.1.1.1.1.10001",
                     "1.3.6.1.2.1.2.2.1.2.10002", "1.3.6.1.2.1.31.1.1.1.1.10002"]


def test_too_big_when_nothing_fits() -> None:
    agent = agent_for(SERVER)
    oids = [o("1.3.6.1.2.1.1.1.0")] * 4
    req = decode_request(w.encode_request(1, b"c", w.PDU_GET, 9, oids))
    r = w.decode_response(answer(agent.mib, req, 100.0, max_message=120))
    assert r.error_status == 1 and r.request_id == 9   # tooBig
    # a GETBULK that does not fit in full is truncated, not refused
    req = decode_request(w.encode_request(1, b"c", w.PDU_GETBULK, 10, [o("1.3")],
                                          max_repetitions=50))
    raw = answer(agent.mib, req, 100.0, max_message=300)
    r = w.decode_response(raw)
    assert r.error_status == 0 and 1 <= len(r.varbinds) < 50 and len(raw) <= 300


def test_codec_round_trip_of_every_value_type() -> None:
    values: list[tuple[int, w.Value]] = [
        (w.INTEGER, -129), (w.INTEGER, 0), (w.INTEGER, 2 ** 31 - 1), (w.COUNTER32, 2 ** 32 - 1),
        (w.GAUGE32, 128), (w.TIMETICKS, 0), (w.COUNTER64, 2 ** 64 - 1),
        (w.OCTET_STRING, b"x" * 200), (w.OBJECT_ID, (1, 3, 6, 1, 4, 1, 2021, 10000)),
        (w.NO_SUCH_OBJECT, None), (w.END_OF_MIB_VIEW, None)]
    vbs = [encode_varbind((1, 3, 6, 1, 99, k, 300), t, v) for k, (t, v) in enumerate(values)]
    r = w.decode_response(encode_response(1, b"demo-public", 2 ** 31 - 1, vbs))
    assert r.request_id == 2 ** 31 - 1 and r.community == b"demo-public"
    assert [(t, v) for _, t, v in r.varbinds] == values
    assert w.decode_oid(r.varbinds[3][0]) == (1, 3, 6, 1, 99, 3, 300)


# ---------------------------------------------------------------------------- net-snmp


def _net_snmp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"})


async def test_snmpbulkwalk_agrees_with_the_prober(lab: Lab, prober: SnmpProber) -> None:
    """net-snmp walks the switch's ifTable (27 rows × 17 columns, capped replies)."""
    addr = f"{SWITCH['address']}:{lab.port}"
    for reps in ("10", "60"):
        res = await asyncio.to_thread(_net_snmp, "snmpbulkwalk", "-v2c", "-c", COMMUNITY,
                                      "-On", "-Cr" + reps, "-t", "2", addr,
                                      "1.3.6.1.2.1.2.2.1")
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert len(lines) == 27 * 17, lines[-3:]
        assert "OID not increasing" not in res.stderr
    descr = {ln.split(" = ")[0].rsplit(".", 1)[1]: ln.split('STRING: ')[1].strip('"')
             for ln in lines if ln.startswith(".1.3.6.1.2.1.2.2.1.2.")}
    (obs,) = await poll(prober, lab.target(SWITCH))
    assert obs.ok
    by_index = {int(row["index"]): name for name, row in obs.tables["interface"].items()}
    assert set(descr) == {str(i) for i in by_index}
    assert descr["10001"] == "FastEthernet0/1" and by_index[10001] == "Fa0/1"
    # Counter64 and TimeTicks as net-snmp reads them
    res = await asyncio.to_thread(_net_snmp, "snmpget", "-v2c", "-c", COMMUNITY, "-On",
                                  f"{ROUTER['address']}:{lab.port}",
                                  "1.3.6.1.2.1.31.1.1.1.6.1", "1.3.6.1.2.1.1.3.0")
    assert res.returncode == 0, res.stderr
    assert "Counter64: " in res.stdout and "Timeticks: " in res.stdout
    # the wrong community gets no answer from net-snmp's point of view either
    res = await asyncio.to_thread(_net_snmp, "snmpget", "-v2c", "-c", "nope", "-t", "0.3",
                                  "-r", "0", f"{ROUTER['address']}:{lab.port}",
                                  "1.3.6.1.2.1.1.3.0")
    assert res.returncode != 0 and "Timeout" in res.stderr


# ---------------------------------------------------------------------------- config, agents


@pytest.mark.parametrize("mqtt_port", [None, 18830])
def test_monitord_check_accepts_the_demo_config(tmp_path: Path, mqtt_port: int | None) -> None:
    # as `monitord demo` writes it (traps, services) and as the plain lab
    full = mqtt_port is not None
    services = ServicePlan({"office-website": 18443, "office-eoffice-web": 18444,
                            "office-hotspot-portal": 18445, "office-dns": 18053})
    lab = build_lab(36, mqtt_port, 19162 if full else None,
                    services=services if full else None)
    path = tmp_path / "demo.yaml"
    write_config(lab, path, tmp_path / "demo.db")
    res = subprocess.run([*MONITORD, "check", "--config", str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"OK (36 schools, {372 if full else 368} devices)" in res.stderr
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    snmp = [d for d in cfg["devices"] if "snmp" in (d.get("probes") or {})]
    assert len(snmp) == 36 + 7 and len(lab.snmp_devices) == 43
    assert cfg["defaults"]["snmp"]["community"] == {"env": "MONITORD_DEMO_SNMP_COMMUNITY"}
    projectors = [d for d in cfg["devices"] if d["kind"] == "projector"]
    assert len(projectors) == 36 and all(d["probes"] == {"icmp": None, "pjlink": None}
                                         for d in projectors)
    assert cfg["kinds"]["projector"]["pjlink"]["password"] == {
        "env": "MONITORD_DEMO_PJLINK_PASSWORD"}
    if not full:
        assert "snmp_traps" not in cfg and not lab.trap_routers   # no trap port: traps off
    else:
        assert cfg["snmp_traps"]["communities"] == [{"env": "MONITORD_DEMO_SNMP_COMMUNITY"}]
        kinds = {d["id"]: d["kind"] for d in cfg["devices"]}
        assert [k for k in kinds.values() if k == "service"] == ["service"] * 4
        assert lab_of_config(cfg).config == lab.config   # read back as written
    mqtt = [d for d in cfg["devices"] if "mqtt" in (d.get("probes") or {})]
    if mqtt_port is None:
        assert not mqtt and "mqtt" not in cfg and not lab.agents
    else:
        assert len(mqtt) == 36 * 6 and cfg["mqtt"]["port"] == mqtt_port
        assert all(list(d["probes"]) == ["mqtt"] for d in mqtt)


def test_agents_behind_dead_devices_are_silent() -> None:
    lab = build_lab(36, 18830)
    agents = {a.device_id: a for a in lab.agents}
    dead_agents = [a for a in lab.agents if a.device_id in lab.dead_devices]
    assert len(dead_agents) == 2 * 6 + 1   # two dead schools' rx/tv + one dead TV
    assert all(a.behaviour == "silent" for a in dead_agents)
    assert lab.faulty_devices.isdisjoint(lab.dead_devices)
    assert {agents[d].behaviour for d in lab.faulty_devices} == set(DOWN_BEHAVIOURS)
    assert lab.degraded_devices and lab.root_causes == sorted(
        {*lab.faulty_devices, "62020005-rtr", "62020017-rtr", "62020009-tv2",
         "62020022-prj", "62020030-ap"})
    assert plan(lab.config["devices"], dead=lab.dead_devices) == list(lab.agents)


def test_lab_projectors_and_trap_routers() -> None:
    lab = build_lab(36, 18830, trap_port=19162)
    prj = {p.device_id: p for p in lab.projectors}
    # every school's projector but those of the dead schools and the dead one
    assert len(prj) == 36 - 2 - 1 and not set(prj) & lab.dead_devices
    conditions = [p.condition for p in prj.values()]
    assert {"lamp_error", "filter_error", "lamp_worn", "standby", "on"} == set(conditions)
    assert 3 <= len(lab.degraded_projectors) <= 6 and conditions.count("standby") >= 5
    hours = sorted(p.lamp_hours for p in prj.values())
    assert hours[0] < 500 and hours[-1] > 0.9 * LAMP_LIFE_HOURS   # spread out, one worn
    # a DEGRADED projector is no root cause: the tickets stay those of the DOWN devices
    assert lab.degraded_projectors.isdisjoint(lab.root_causes)
    assert lab.trap_routers == [("62020001-rtr", f"{LIVE_NET}.1.1"),
                                ("62020002-rtr", f"{LIVE_NET}.2.1")]
    assert lab.config["snmp_traps"]["listen"] == ["127.0.0.1:19162"]
    moved = build_lab(5, pjlink_port_map={f"{LIVE_NET}.1.10": 14352})
    assert next(d for d in moved.config["devices"] if d["id"] == "62020001-prj")[
        "probes"] == {"icmp": None, "pjlink": {"port": 14352}}
    assert [p.port for p in moved.projectors][:2] == [14352, 4352]


async def test_lab_projectors_answer_the_pjlink_probe() -> None:
    """The demo's projectors, on free ports of their own addresses, polled by the real
    probe with the demo's password: faults DEGRADED with their reason, standby fine."""
    base = build_lab(36)
    ports = {p.address: processes.free_port(p.address) for p in base.projectors}
    lab = build_lab(36, pjlink_port_map=ports)
    sims = PjlinkLab(lab.projectors, "s3cret")
    await sims.start()
    prober = PjlinkProber(timeout=2.0)
    try:
        assert sims.failed == 0
        targets = [Target(p.device_id, p.address,
                          {"port": p.port, "password": "s3cret",
                           "lamp_life_hours": LAMP_LIFE_HOURS}) for p in lab.projectors]
        obs, _ = await prober.probe(targets)
    finally:
        await prober.close()
        await sims.stop()
    for p, o in zip(lab.projectors, obs, strict=True):
        assert o.ok, (p, o.reason)
        assert o.degraded == DEGRADED_REASON.get(p.condition, ""), (p, o.degraded)
    assert sum(1 for o in obs if o.degraded) == len(lab.degraded_projectors)


async def test_routers_send_link_traps_from_their_own_address() -> None:
    port = free_udp_port()
    lab = build_lab(3, trap_port=port)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    class Rx(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.put_nowait((data, addr))

    tr, _ = await loop.create_datagram_endpoint(Rx, local_addr=("127.0.0.1", port))
    stop = asyncio.Event()
    sender = TrapSender(lab.trap_routers, COMMUNITY, port, first_after=0.0, every=0.05,
                        down_for=0.05)
    task = asyncio.create_task(sender.run(stop))
    try:
        seen = []
        for _ in range(4):
            data, addr = await asyncio.wait_for(got.get(), 5)
            n = w.decode_notification(data)
            assert n.community == COMMUNITY.encode() and n.version == 1
            seen.append((addr[0], n.trap_oid))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        tr.close()
    a1, a2 = (a for _, a in lab.trap_routers)
    # linkDown then linkUp, from one router, then the other: sources map to devices
    assert seen == [(a1, LINK_DOWN), (a1, LINK_UP), (a2, LINK_DOWN), (a2, LINK_UP)]
    assert sender.errors == 0


async def test_office_services_answer_the_http_and_dns_probes(tmp_path: Path) -> None:
    """The demo's office services, checked by the real http and dns probes with the demo
    config's settings: all working, the e-office certificate inside the warning window."""
    plan = ServicePlan.choose(build_lab(1).server_addresses)
    assert plan.dns, "dnsmasq is installed by scripts/setup-services.sh"
    lab = build_lab(1, services=plan)
    services = [d for d in lab.config["devices"] if d["kind"] == "service"]
    assert len(services) == 4 and lab.device_count == 18 + 4
    assert lab.condition_tickets == [f"{EXPIRING_SERVICE}#tls_cert_expiring"]
    svc = ServicesLab(plan, lab.server_addresses, tmp_path)
    await asyncio.to_thread(svc.start)
    http, dns = HttpProber(), DnsProber()
    try:
        def targets(probe: str) -> list[Target]:
            kind = lab.config["kinds"]["service"].get(probe, {})   # the cascade, by hand
            return [Target(d["id"], d["address"], {**kind, **d["probes"][probe]})
                    for d in services if probe in d["probes"]]

        obs, _ = await http.probe(targets("http"))
        [dns_obs], _ = await dns.probe(targets("dns"))
    finally:
        await http.close()
        await asyncio.to_thread(svc.stop)
    now = time.time()
    for o in obs:
        assert o.ok, (o.device_id, o.reason)
        left = o.values["tls_cert_not_after"] - now
        if o.device_id == EXPIRING_SERVICE:
            assert (EXPIRING_DAYS - 1) * 86400 < left <= EXPIRING_DAYS * 86400
            assert o.degraded, "a certificate inside the warning window"
        else:
            assert left > 300 * 86400 and not o.degraded, (o.device_id, o.degraded)
    assert dns_obs.ok, (dns_obs.reason, DNS_NAME)
    assert svc.dnsmasq is None and not svc.servers   # stopped


def test_broker_dies_with_the_demo(tmp_path: Path) -> None:
    """Even kill -9 of the demo leaves no mosquitto behind (PR_SET_PDEATHSIG)."""
    code = ("import sys, time; from pathlib import Path\n"
            "from monitord.demo.broker import DemoBroker\n"
            f"b = DemoBroker(Path({str(tmp_path)!r}))\n"
            "assert b.start(), b.why_not\n"
            "print(b.proc.pid, b.port, flush=True)\n"
            "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    try:
        assert child.stdout is not None
        pid, port = map(int, child.stdout.readline().split())
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    conf = str(tmp_path / "mosquitto.conf").encode()

    def gone() -> bool:
        if processes.tcp_listening(port):
            return False
        for proc in Path("/proc").iterdir():   # bounded: the processes of this machine
            with contextlib.suppress(OSError):
                if conf in (proc / "cmdline").read_bytes():
                    return False
        return not Path(f"/proc/{pid}").exists()

    wait_for(gone, 10, "mosquitto to die with its parent")


def test_broker_missing_is_reported(tmp_path: Path) -> None:
    b = DemoBroker(tmp_path, executable=str(tmp_path / "no-mosquitto"))
    assert not b.start() and "not installed" in b.why_not
    b.stop()


# ---------------------------------------------------------------------------- end to end


def _demo_command() -> list[str]:
    """``monitord demo`` (the CLI delegates to run_demo)."""
    return [*MONITORD, "demo"]


def foreign_dead(lab: DemoLab, own_comment: str) -> set[str]:
    """Lab devices on loopback blocks that other tests' iptables rules drop ICMP to.

    The suite runs sequentially, but a developer may run another lab test meanwhile;
    its rules are not this test's business, and the devices behind them are skipped.
    """
    rules = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True,
                           text=True, timeout=30, check=True).stdout.splitlines()
    nets = []
    for rule in rules:
        words = rule.split()
        if ("DROP" not in words or "-d" not in words or "--probability" in words
                or own_comment in rule or RULE_COMMENT in words):
            continue
        net = ipaddress.ip_network(words[words.index("-d") + 1], strict=False)
        if net != ipaddress.ip_network(DEAD_BLOCK):
            nets.append(net)
    return {d["id"] for d in lab.config["devices"]
            if any(ipaddress.ip_address(d["address"]) in n for n in nets)}


@pytest.mark.usefixtures("one_demo_at_a_time")
def test_demo_end_to_end_snmp_mqtt(tmp_path: Path, iptables: IptablesDrop) -> None:
    require_root()
    # the dead block under this test's own rule too: another demo that exits meanwhile
    # removes the shared `monitord-demo` rule
    iptables.drop(DEAD_BLOCK)
    port = processes.free_port()
    data_dir = tmp_path / "demo"
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as out:
        proc = processes.spawn(
            [*_demo_command(), "--listen", f"127.0.0.1:{port}", "--db",
             str(tmp_path / "demo.db"), "--data-dir", str(data_dir), "--schools", "30"],
            output=out, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"

    def log() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    def metrics() -> Any:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited with {proc.returncode}:\n{log()}")
        status, body = http_get(url + "/metrics")
        assert status == 200
        return parse_metrics(body)

    try:
        wait_for(lambda: http_get(url + "/healthz")[0] == 200, 60, "demo /healthz")
        cfg = yaml.safe_load((data_dir / "demo.yaml").read_text(encoding="utf-8"))
        assert "mqtt" in cfg, "mosquitto is installed: the demo must use it\n" + log()
        lab = lab_of_config(cfg)   # with the demo's MQTT port, trap port, services
        broker_port = int(cfg["mqtt"]["port"])

        def settled() -> bool:
            m = metrics()
            ups = m.by_label("monitord_device_up", "device")
            # devices that another session's ICMP DROP rule makes dead are left out
            skip = foreign_dead(lab, iptables.comment)
            down = {d for d, v in ups.items() if v == 0} - skip
            want = lab.down_devices - skip
            # raised, not returned: wait_for's timeout message then says what differs
            assert m.get_sample("monitord_mqtt_broker_up") == 1, "broker down"
            assert len(ups) == lab.device_count, f"{lab.device_count - len(ups)} UNKNOWN"
            assert down == want, (f"down but should not be: {sorted(down - want)}; "
                                  f"up but should not be: {sorted(want - down)}")
            return True

        wait_for(settled, 120, "demo devices settle (dead block and faulty agents DOWN)",
                 interval=1)
        skip = foreign_dead(lab, iptables.comment) | lab.dead_devices
        router = next(d["id"] for d in lab.config["devices"]
                      if d["kind"] == "router" and d.get("school") and d["id"] not in skip)
        wanted = [(router, "wan"), ("office-rtr", "Gi0/0/0"), ("office-sw", "Fa0/24")]

        def interfaces() -> bool:
            m = metrics()
            return all(m.get_sample("monitord_interface_receive_bytes_total", device=dev,
                                    interface=itf) is not None for dev, itf in wanted)

        wait_for(interfaces, 70, "interface counters of the routers and the switch",
                 interval=1)   # SNMP every 30 s
        wan1 = metrics()("monitord_interface_receive_bytes_total", device=router,
                         interface="wan")

        def signal_and_snmp() -> bool:
            m = metrics()
            quality = m.by_label("monitord_dltv_signal_quality_db", "device")
            assert quality and all(0 <= q < 20 for q in quality.values())
            assert lab.degraded_devices <= {d for d, q in quality.items() if q < 6}
            for dev in lab.degraded_devices:   # weak signal: DEGRADED, still counted up
                assert m.get_sample("monitord_device_state", device=dev,
                                    state="degraded") == 1, f"{dev} not DEGRADED"
            assert m.get_sample("monitord_snmp_up", device="office-web") == 1, "office-web"
            return True

        # each agent reports on its own period and SNMP polls every 30 s: wait, bounded
        wait_for(signal_and_snmp, 60, "weak-signal receivers DEGRADED, office-web SNMP up",
                 interval=1)
        m = metrics()
        if (snmp_dead := m.get_sample("monitord_snmp_up", device="62020005-rtr")) is not None:
            assert snmp_dead == 0   # dead: no SNMP either
        states = m.by_label("monitord_device_state", "device")
        assert states   # every device has a state row
        # the office UPS goes on battery 30 s after the start (SNMP every 30 s)
        wait_for(lambda: metrics().get_sample("monitord_ups_on_battery",
                                              device="office-ups") == 1,
                 120, "office UPS on battery", interval=1)
        # DEGRADED after failure_threshold (2) such rounds; the outage lasts 120 s
        wait_for(lambda: metrics()("monitord_device_state", device="office-ups",
                                   state="degraded") == 1,
                 90, "office UPS DEGRADED (ups_on_battery)", interval=1)
        wait_for(lambda: metrics()("monitord_interface_receive_bytes_total",
                                   device=router, interface="wan") > wan1,
                 60, "the school router's counter to grow", interval=1)
    finally:
        processes.stop(proc, 30)
    assert proc.returncode == 0, log()
    processes.wait_closed(broker_port, 10)   # the demo's mosquitto stopped
    rules = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True,
                           text=True, timeout=30, check=True).stdout
    assert RULE_COMMENT not in rules
