"""The SNMP probe against real agents: net-snmp snmpd, snmpsim's recorded devices, and
small responders that misbehave on purpose.  No mocks."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitord.probes.base import Observation, Target
from monitord.probes.snmp import SnmpParams, SnmpProber
from tests.snmp_lab import V3_USERS, BadAgent, Snmpd, Snmpsim

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def prober() -> AsyncIterator[SnmpProber]:
    p = SnmpProber(max_in_flight=16)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def one(p: SnmpProber, device: str, address: str, params: dict[str, Any]
              ) -> Observation:
    obs, stats = await p.probe([Target(device, address, params)])
    assert stats.targets == 1 and len(obs) == 1
    return obs[0]


# ---------------------------------------------------------------------------- snmpd


async def test_v2c_router_profile_reads_interfaces(snmpd: Snmpd, prober: SnmpProber) -> None:
    params = {"community": "public", "port": snmpd.port, "profile": "router", "uplink": "lo"}
    o = await one(prober, "r1", "127.0.0.1", params)
    assert o.ok, o.reason
    assert o.info["sys_object_id"].startswith("1.3.6.1.4.1.8072")
    assert o.values["sys_uptime_seconds"] > 0
    lo = o.tables["interface"]["lo"]
    assert lo["oper_status"] == 1 and lo["admin_status"] == 1 and lo["index"] >= 1
    assert lo["in_octets"] >= 0 and "in_errors" in lo and "out_discards" in lo
    assert o.values["uplink_oper_status"] == 1
    o2 = await one(prober, "r1", "127.0.0.1", params)
    assert o2.tables["interface"]["lo"]["in_octets"] >= lo["in_octets"]
    assert o2.events == []


@pytest.mark.parametrize(("user", "auth", "priv"), [
    ("u_sha256_aes", "sha256", "aes128"),
    ("u_sha512_aes256", "sha512", "aes256"),
    ("u_sha_aes", "sha", "aes128"),
])
async def test_v3_auth_priv(snmpd: Snmpd, prober: SnmpProber, monkeypatch: pytest.MonkeyPatch,
                            user: str, auth: str, priv: str) -> None:
    _, akey, _, pkey = V3_USERS[user]
    monkeypatch.setenv("T_AUTH", akey)
    monkeypatch.setenv("T_PRIV", pkey)
    params = {"version": "3", "port": snmpd.port, "profile": "server",
              "v3": {"user": user, "auth_protocol": auth, "auth_key": {"env": "T_AUTH"},
                     "priv_protocol": priv, "priv_key": {"env": "T_PRIV"}}}
    o = await one(prober, "srv", "127.0.0.1", params)
    assert o.ok, o.reason
    # (a fresh snmpd fills hrProcessorLoad only after a minute: cpu is checked on snmpsim)
    assert o.values["load1"] >= 0 and 0 < o.values["memory_used_ratio"] < 1
    assert "/" in o.tables["storage"]
    assert akey not in repr(o) and pkey not in repr(o)
    assert akey not in repr(SnmpParams.model_validate(params))


async def test_v3_wrong_key_is_auth_failed(snmpd: Snmpd, prober: SnmpProber,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_AUTH", "not-the-key")
    monkeypatch.setenv("T_PRIV", "privpass-128")
    params = {"version": "3", "port": snmpd.port, "timeout": 0.5, "retries": 0,
              "v3": {"user": "u_sha256_aes", "auth_protocol": "sha256",
                     "auth_key": {"env": "T_AUTH"}, "priv_protocol": "aes128",
                     "priv_key": {"env": "T_PRIV"}}}
    o = await one(prober, "srv", "127.0.0.1", params)
    assert not o.ok and o.reason == "auth_failed"
    assert prober.stats.errors[("srv", "auth_failed")] == 1


async def test_reboot_detected_when_snmpd_restarts(snmpd: Snmpd, prober: SnmpProber) -> None:
    params = {"community": "public", "port": snmpd.port}
    first = await one(prober, "gw", "127.0.0.1", params)
    assert first.ok and first.events == []
    # make sure the agent has been up long enough that a fresh start reads lower
    deadline = time.monotonic() + 10
    while first.values["sys_uptime_seconds"] < 1.0 and time.monotonic() < deadline:
        first = await one(prober, "gw", "127.0.0.1", params)
    assert first.values["sys_uptime_seconds"] >= 1.0
    snmpd.stop()
    snmpd.start()
    after = await one(prober, "gw", "127.0.0.1", params)
    assert after.ok and after.events == ["reboot"]
    assert prober.stats.reboots["gw"] == 1
    assert after.info["sys_name"]  # re-read after the reboot
    again = await one(prober, "gw", "127.0.0.1", params)
    assert again.events == []


async def test_secret_from_file_and_missing_env(snmpd: Snmpd, prober: SnmpProber,
                                                tmp_path: Any) -> None:
    secret = tmp_path / "community"
    secret.write_text("public\n")
    o = await one(prober, "f", "127.0.0.1",
                  {"community": {"file": str(secret)}, "port": snmpd.port})
    assert o.ok
    os.environ.pop("MONITORD_TEST_UNSET", None)
    o = await one(prober, "e", "127.0.0.1",
                  {"community": {"env": "MONITORD_TEST_UNSET"}, "port": snmpd.port})
    assert not o.ok and o.reason == "secret_unavailable"
    assert "public" not in repr(SnmpParams(community="public"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- snmpsim


def _sim_params(sim: Snmpsim, community: str, **kw: Any) -> dict[str, Any]:
    return {"community": community, "port": sim.port, "timeout": 2.0, **kw}


async def test_recorded_devices(snmpsim_factory: Snmpsim, prober: SnmpProber) -> None:
    sim = snmpsim_factory
    sim.start()
    targets = [
        Target("linux", "127.0.0.1", _sim_params(sim, "linux-full-walk", profile="server")),
        Target("linux-if", "127.0.0.1", _sim_params(sim, "linux-full-walk", profile="router",
                                                    uplink="eth0")),
        Target("xp", "127.0.0.1", _sim_params(sim, "winxp-full-walk", profile="switch")),
        Target("ups", "127.0.0.1", _sim_params(sim, "eaton-9PX-partial-walk",
                                               profile="ups")),
        Target("linksys", "127.0.0.1", _sim_params(sim, "linksys-system")),
    ]
    obs, rs = await prober.probe(targets)
    by = {o.device_id: o for o in obs}
    assert rs.targets == 5

    linux = by["linux"]
    assert linux.ok and linux.values["sys_uptime_seconds"] == 2334251.2
    assert linux.values["cpu_load_ratio"] == pytest.approx((13 + 9) / 2 / 100)
    assert linux.values["load1"] == 0.46 and linux.values["load15"] == 0.03
    root = linux.tables["storage"]["/"]
    assert root["size_bytes"] == 2164327 * 4096 and 0 < root["used_ratio"] < 1

    eth0 = by["linux-if"].tables["interface"]["eth0"]
    assert eth0["in_octets"] == 24167091249  # ifHCInOctets preferred to the 32-bit one
    assert by["linux-if"].values["uplink_oper_status"] == 1

    xp = by["xp"]
    assert xp.ok and len(xp.tables["interface"]) >= 2
    loop = next(r for k, r in xp.tables["interface"].items() if "Loopback" in k)
    assert loop["in_octets"] == 230095059  # no ifXTable: 32-bit fallback

    ups = by["ups"]
    assert ups.ok  # the agent answers, although this recording has no sysUpTime
    assert ups.values["ups_runtime_remaining_seconds"] == 17218
    assert ups.values["ups_on_battery"] == 0 and ups.values["ups_charge_ratio"] == 1.0
    assert ups.info["snmp_partial"] == "no_such_object"
    assert prober.stats.errors[("ups", "no_such_object")] == 1

    assert by["linksys"].info == {"sys_name": "isp-gw", "sys_descr": "BEFSX41",
                                  "sys_object_id": "1.3.6.1.4.1.3955.1.1"}


async def _set(port: int, community: str, *pairs: tuple[str, Any]) -> None:
    """SET through pysnmp (a test tool here): snmpsim's writecache keeps the value."""
    from pysnmp.hlapi.v3arch import asyncio as hl  # type: ignore[import-untyped]

    eng = hl.SnmpEngine()
    tgt = await hl.UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
    ind, status, _, _ = await hl.set_cmd(eng, hl.CommunityData(community), tgt,
                                          hl.ContextData(),
                                          *[hl.ObjectType(hl.ObjectIdentity(o), v)
                                            for o, v in pairs], lookupMib=False)
    eng.close_dispatcher()
    assert not ind and not int(status), (ind, status)


WRAP_DEVICE = """\
1.3.6.1.2.1.1.3.0|67:writecache|value=50000
1.3.6.1.2.1.1.5.0|4|wrapper
1.3.6.1.2.1.2.2.1.2.1|4|wan0
1.3.6.1.2.1.2.2.1.5.1|66|100000000
1.3.6.1.2.1.2.2.1.7.1|2|1
1.3.6.1.2.1.2.2.1.8.1|2|1
1.3.6.1.2.1.2.2.1.10.1|65:writecache|value=4294967000
1.3.6.1.2.1.2.2.1.13.1|65|0
1.3.6.1.2.1.2.2.1.14.1|65:writecache|value=7
1.3.6.1.2.1.2.2.1.16.1|65|10
1.3.6.1.2.1.2.2.1.19.1|65|0
1.3.6.1.2.1.2.2.1.20.1|65|0
"""


async def test_counter32_wrap_and_reset_on_reboot(snmpsim_factory: Snmpsim,
                                                  prober: SnmpProber) -> None:
    from pysnmp.proto.rfc1902 import Counter32, TimeTicks  # type: ignore[import-untyped]

    sim = snmpsim_factory
    sim.add("wrap", WRAP_DEVICE)
    sim.start()
    params = _sim_params(sim, "wrap", profile="router")
    o1 = await one(prober, "w", "127.0.0.1", params)
    assert o1.tables["interface"]["wan0"]["in_octets"] == 4294967000
    # the 32-bit counter wraps: 4294967000 → 100 is +396 octets, uptime still grows
    await _set(sim.port, "wrap", ("1.3.6.1.2.1.2.2.1.10.1", Counter32(100)),
               ("1.3.6.1.2.1.1.3.0", TimeTicks(60000)))
    o2 = await one(prober, "w", "127.0.0.1", params)
    assert o2.events == []
    assert o2.tables["interface"]["wan0"]["in_octets"] == 4294967000 + 396
    assert prober.stats.counter_wraps["w"] == 1
    assert 0 <= o2.tables["interface"]["wan0"]["utilisation_in_ratio"] <= 1
    # a reboot: uptime falls, counters restart from zero — a reset, not a wrap
    await _set(sim.port, "wrap", ("1.3.6.1.2.1.2.2.1.10.1", Counter32(50)),
               ("1.3.6.1.2.1.2.2.1.14.1", Counter32(0)), ("1.3.6.1.2.1.1.3.0", TimeTicks(30)))
    o3 = await one(prober, "w", "127.0.0.1", params)
    assert o3.events == ["reboot"] and prober.stats.reboots["w"] == 1
    assert o3.tables["interface"]["wan0"]["in_octets"] == 4294967000 + 396 + 50
    assert o3.tables["interface"]["wan0"]["in_errors"] == 7  # monotonic across the reset
    assert prober.stats.counter_wraps["w"] == 1


async def test_slow_agent_needs_its_own_timeout(snmpsim_factory: Snmpsim,
                                                prober: SnmpProber) -> None:
    sim = snmpsim_factory
    sim.add("slow", "1.3.6.1.2.1.1.3.0|67:delay|value=777,wait=600\n"
                    "1.3.6.1.2.1.1.5.0|4:delay|value=slowpoke,wait=600\n")
    sim.start()
    fast = Target("fast", "127.0.0.1", _sim_params(sim, "linksys-system"))
    strict = Target("slow-strict", "127.0.0.1",
                    _sim_params(sim, "slow", timeout=0.2, retries=0))
    lenient = Target("slow-ok", "127.0.0.1", _sim_params(sim, "slow", timeout=3.0))
    obs, rs = await prober.probe([fast, strict, lenient])
    assert obs[0].ok
    assert not obs[1].ok and obs[1].reason == "timeout"
    assert obs[1].degraded == "snmp_failing"
    assert obs[2].ok and obs[2].info["sys_name"] == "slowpoke"
    assert rs.duration_seconds < 10


# ---------------------------------------------------------------------------- bad agents


async def test_silent_agent_times_out_without_stalling(bad_agent: type[BadAgent],
                                                       snmpd: Snmpd,
                                                       prober: SnmpProber) -> None:
    silent = bad_agent("silent")
    t0 = time.monotonic()
    obs, _ = await prober.probe([
        Target("dead", "127.0.0.1", {"community": "public", "port": silent.port,
                                     "timeout": 0.3, "retries": 1}),
        Target("live", "127.0.0.1", {"community": "public", "port": snmpd.port}),
    ])
    assert time.monotonic() - t0 < 3
    assert not obs[0].ok and obs[0].reason == "timeout" and obs[0].complete
    assert silent.requests == 2  # one try + one retry
    assert obs[1].ok
    assert prober.stats.errors[("dead", "timeout")] == 1


async def test_garbled_reply_is_malformed(bad_agent: type[BadAgent],
                                          prober: SnmpProber) -> None:
    junk = bad_agent("junk")
    o = await one(prober, "junk", "127.0.0.1",
                  {"community": "public", "port": junk.port, "timeout": 0.3, "retries": 0})
    # garbage never matches a request: dropped and counted, the request times out
    assert not o.ok and o.reason in ("malformed", "timeout")
    assert prober.malformed_datagrams >= 1


async def test_walk_that_loops_is_stopped(bad_agent: type[BadAgent],
                                          prober: SnmpProber) -> None:
    loop = bad_agent("loop")
    params = {"community": "public", "port": loop.port, "timeout": 0.5, "profile": "switch"}
    o = await one(prober, "loopy", "127.0.0.1", params)
    assert o.ok  # it answered the GET
    assert o.info["snmp_partial"] == "walk_loop"
    assert prober.stats.errors[("loopy", "walk_loop")] == 1
    assert loop.requests < 10


async def test_no_such_object_for_missing_uplink(snmpsim_factory: Snmpsim,
                                                 prober: SnmpProber) -> None:
    sim = snmpsim_factory
    sim.start()
    o = await one(prober, "l", "127.0.0.1", _sim_params(sim, "linksys-system", uplink="wan9"))
    assert o.ok and o.info["snmp_partial"] == "no_such_object"


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="community"):
        SnmpParams.model_validate({"version": "2c"})
    with pytest.raises(ValueError, match="extra"):
        SnmpParams.model_validate({"community": {"env": "X"}, "comunity": "typo"})
    with pytest.raises(ValueError, match="priv_key"):
        SnmpParams.model_validate({"version": "3", "v3": {
            "user": "u", "auth_key": {"env": "A"}, "priv_protocol": "aes256"}})
    p = SnmpParams.model_validate({"community": {"env": "X"}, "profile": "ups"})
    assert p.timeout == 1.0 and p.max_repetitions == 25 and p.bulk
