"""ICMP engine tests: real echo requests on loopback, iptables to make hosts dead or lossy.

Every test that needs raw sockets, iptables or network namespaces *fails* (not skips)
without root.  Loopback blocks used here (each test its own, so rules cannot interfere):
127.10/16 live, 127.20/16 dead-exact, 127.30/16 lossy, 127.40/16 concurrency,
127.50/16 overrun, 127.60/16 in-flight bound, 127.70/16 forged replies, 127.80/16 misc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from icmplib import ICMPv4Socket

from monitord.domain.state import DeviceSpec, State, StateTracker
from monitord.probes.base import Prober, ProbeSetupError, Target
from monitord.probes.icmp import IcmpEngine, IcmpProber, IcmpRound
from monitord.probes.icmp import packet as pkt

ROOT = Path(__file__).resolve().parents[2]
COMMENT = f"monitord-test-icmp-{os.getpid()}"


# --------------------------------------------------------------------------- helpers


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (raw ICMP sockets, iptables, netns); run as root")


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, timeout=timeout, capture_output=True,
                          text=True)


class IcmpDrops:
    """iptables INPUT rules dropping ICMP to loopback blocks; all removed at teardown."""

    def __init__(self) -> None:
        self.rules: list[list[str]] = []

    def drop(self, cidr: str, probability: float | None = None) -> None:
        rule = ["INPUT", "-d", cidr, "-p", "icmp"]
        if probability is not None:
            rule += ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
        rule += ["-m", "comment", "--comment", COMMENT, "-j", "DROP"]
        run("iptables", "-w", "5", "-I", *rule)
        self.rules.append(rule)

    def clear(self) -> None:
        for rule in self.rules:
            run("iptables", "-w", "5", "-D", *rule, check=False)
        self.rules.clear()
        # Belt and braces: nothing carrying our comment may survive the test.
        listing = run("iptables", "-w", "5", "-S", "INPUT", check=False).stdout
        for line in listing.splitlines():
            if COMMENT in line and line.startswith("-A "):
                run("iptables", "-w", "5", "-D", *line.split()[1:], check=False)


@pytest.fixture
def drops() -> Iterator[IcmpDrops]:
    require_root()
    d = IcmpDrops()
    try:
        yield d
    finally:
        d.clear()


@pytest.fixture
async def engine() -> AsyncIterator[IcmpEngine]:
    require_root()
    e = IcmpEngine(mode="raw")
    await e.start()
    try:
        yield e
    finally:
        await e.close()


def block(prefix: str, n: int, start: int = 1) -> list[str]:
    """``n`` addresses in a /16 given as ``"127.20"``: 127.20.0.1, 127.20.0.2 …"""
    return [f"{prefix}.{i >> 8}.{i & 255}" for i in range(start, start + n)]


def assert_alive(rnd: IcmpRound, addresses: list[str], count: int) -> None:
    by_addr = {r.address: r for r in rnd.results}
    for a in addresses:
        r = by_addr[a]
        assert r.ok and r.complete and r.received == count == r.sent, r
        assert r.loss_ratio == 0.0
        assert r.rtt_min is not None and r.rtt_avg is not None and r.rtt_max is not None
        assert 0 < r.rtt_min <= r.rtt_avg <= r.rtt_max < 0.5, r
        assert r.jitter is not None and 0 <= r.jitter <= r.rtt_max - r.rtt_min + 1e-9


async def wait_until(pred: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``pred()`` on the event loop until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.001)


# --------------------------------------------------------------------------- wire format


def test_checksum_matches_icmplib_reference() -> None:
    cookie = bytes(range(1, 9))
    for ident, rid, idx, ping, wall, mono in [
        (0, 0, 0, 0, 0, 0), (0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 2**63 - 1, 2**63 - 1),
        (4242, 17, 9999, 2, time.time_ns(), time.monotonic_ns()),
    ]:
        data = pkt.build_request(False, ident, cookie, round_id=rid, index=idx, ping=ping,
                                 tx_wall=wall, tx_mono=mono, with_checksum=True)
        zeroed = data[:2] + b"\0\0" + data[4:]
        expected = ICMPv4Socket._checksum(None, zeroed)  # icmplib's RFC 1071 implementation
        assert struct.unpack_from("!H", data, 2)[0] == expected == pkt.icmp_checksum(zeroed)
        reply = bytes([pkt.ICMP_ECHO_REPLY]) + data[1:]
        parsed = pkt.parse_reply(b"\x45" + bytes(19) + reply, cookie, ip_header=True, v6=False)
        assert parsed == pkt.ParsedEcho(rid, idx, ping, wall, mono)
        assert pkt.parse_reply(reply, b"x" * 8, ip_header=False, v6=False) is None


def test_kernel_filters_block_everything_but_the_allowed_types() -> None:
    (mask,) = struct.unpack("=I", pkt.icmp4_filter(0, 3, 11))
    assert [t for t in range(32) if not mask & (1 << t)] == [0, 3, 11]
    words = struct.unpack("=8I", pkt.icmp6_filter(1, 3, 129))
    allowed = [t for t in range(256) if not words[t >> 5] & (1 << (t & 31))]
    assert allowed == [1, 3, 129]


def test_prober_satisfies_protocol() -> None:
    assert isinstance(IcmpProber(), Prober)
    assert IcmpProber.name == "icmp"


# --------------------------------------------------------------------------- live / dead


async def test_live_ipv4_hosts(engine: IcmpEngine) -> None:
    addrs = ["127.0.0.1", *block("127.10", 50)]
    rnd = await engine.ping(addrs, count=3, timeout=0.5, period=0.01)
    assert not rnd.incomplete and [r.address for r in rnd.results] == addrs
    assert_alive(rnd, addrs, 3)
    assert engine.mode == "raw"


async def test_ipv6_loopback(engine: IcmpEngine) -> None:
    rnd = await engine.ping(["::1"], count=4, timeout=0.5, period=0.01)
    assert_alive(rnd, ["::1"], 4)
    assert rnd.results[0].ip == "::1"


async def test_mixed_v4_v6_round_keeps_input_order(engine: IcmpEngine) -> None:
    addrs = ["::1", "127.0.0.1", "0:0:0::1", "127.10.1.1", "localhost"]
    rnd = await engine.ping(addrs, count=2, timeout=0.5, period=0.01)
    assert [r.address for r in rnd.results] == addrs
    assert [r.ip for r in rnd.results] == ["::1", "127.0.0.1", "::1", "127.10.1.1",
                                           "127.0.0.1"]
    assert_alive(rnd, addrs, 2)


async def test_dead_hosts_are_exactly_the_dropped_ones(engine: IcmpEngine,
                                                       drops: IcmpDrops) -> None:
    drops.drop("127.20.7.0/24")
    addrs = block("127.20", 3000)  # 127.20.0.1 … 127.20.11.184
    dead = {a for a in addrs if a.startswith("127.20.7.")}
    assert len(dead) == 256
    rnd = await engine.ping(addrs, count=2, timeout=0.5, period=0.01)
    assert not rnd.incomplete, rnd.reason
    found = {r.address for r in rnd.results if not r.ok}
    assert found == dead
    for r in rnd.results:
        assert r.complete
        if r.address in dead:
            assert r.reason == "timeout" and r.received == 0 and r.loss_ratio == 1.0
            assert r.rtt_avg is None and r.jitter is None
    assert_alive(rnd, [a for a in addrs if a not in dead], 2)


async def test_partial_loss_is_measured(engine: IcmpEngine, drops: IcmpDrops) -> None:
    drops.drop("127.30.0.0/24", probability=0.5)
    addrs = block("127.30", 40)
    rnd = await engine.ping(addrs, count=20, timeout=0.5, period=0.005)
    assert not rnd.incomplete, rnd.reason
    assert all(r.complete and r.sent == 20 for r in rnd.results)
    between = [r for r in rnd.results if 0 < r.loss_ratio < 1]
    # Per host P(0 or 20 of 20 lost) = 2e-6, so ≥ 36 of 40 cannot fail by chance; the
    # overall ratio over 800 requests is 0.5 ± 0.018 (1 σ), 0.3–0.7 is > 10 σ.
    assert len(between) >= 36
    total = sum(r.received for r in rnd.results) / sum(r.sent for r in rnd.results)
    assert 0.3 < total < 0.7
    for r in rnd.results:
        assert r.loss_ratio == pytest.approx(1 - r.received / r.sent)


async def test_concurrent_rounds_are_separate(engine: IcmpEngine, drops: IcmpDrops) -> None:
    drops.drop("127.40.1.0/24")
    a = block("127.40", 200, start=512)  # 127.40.2.0 …: alive
    b_alive, b_dead = block("127.40", 100, start=768), block("127.40", 100, start=256)
    c = ["::1", "127.0.0.1", a[0]]  # overlaps round A on purpose
    ra, rb, rc = await asyncio.gather(
        engine.ping(a, count=3, timeout=0.5, period=0.01),
        engine.ping(b_dead + b_alive, count=2, timeout=0.4, period=0.02),
        engine.ping(c, count=5, timeout=0.5, period=0.01),
    )
    assert_alive(ra, a, 3)
    assert_alive(rc, c, 5)
    assert_alive(rb, b_alive, 2)
    assert {r.address for r in rb.results if not r.ok} == set(b_dead)
    assert all(r.complete and r.sent == 2 for r in rb.results)
    assert not (ra.incomplete or rb.incomplete or rc.incomplete)
    assert engine.in_flight == 0


# --------------------------------------------------------------------------- local limits


async def test_overrun_never_reports_live_host_dead(drops: IcmpDrops) -> None:
    """A receive buffer far too small for the rate: drops happen, live hosts must not be
    reported dead with complete=True — re-probing makes them exact or the round says
    incomplete."""
    require_root()
    drops.drop("127.50.1.0/24")
    addrs = block("127.50", 3000)
    dead = {a for a in addrs if a.startswith("127.50.1.")}
    e = IcmpEngine(mode="raw", rate_pps=200_000, rcvbuf_bytes=1)
    await e.start()
    try:
        rnd = await e.ping(addrs, count=2, timeout=0.4, period=0.001)
    finally:
        await e.close()
    assert e.stats.socket_drops > 0, "the kernel dropped nothing: the test proves nothing"
    assert rnd.socket_drops > 0 and rnd.reprobed_hosts > 0
    for r in rnd.results:
        if r.address in dead:
            assert not r.ok  # nothing can make a dropped host answer
        else:
            assert r.ok or not r.complete, r  # never: live host, dead, complete
            if r.complete:
                assert r.received == r.sent == 2, r  # complete ⇒ exact
    if not rnd.incomplete:
        assert {r.address for r in rnd.results if not r.ok} == dead
    else:
        assert "socket_drops" in rnd.reason
        assert any(not r.complete for r in rnd.results)
    assert e.stats.rounds_incomplete == int(rnd.incomplete)


async def test_max_in_flight_is_respected(drops: IcmpDrops) -> None:
    require_root()
    drops.drop("127.60.1.0/24")
    dead, alive = block("127.60", 60, start=256), block("127.60", 60, start=512)
    e = IcmpEngine(mode="raw", max_in_flight=20)
    await e.start()
    peak = 0
    try:
        task = asyncio.create_task(e.ping(dead + alive, count=1, timeout=0.2))
        deadline = time.monotonic() + 10
        while not task.done() and time.monotonic() < deadline:
            peak = max(peak, e.in_flight)
            await asyncio.sleep(0)
        rnd = await asyncio.wait_for(task, 10)
    finally:
        await e.close()
    assert 0 < peak <= 20
    assert {r.address for r in rnd.results if not r.ok} == set(dead)
    assert_alive(rnd, alive, 1)
    assert rnd.duration >= 0.2 * (60 // 20) * 0.9  # dead requests held the window


async def test_forged_duplicate_and_wrong_source_replies(engine: IcmpEngine,
                                                         drops: IcmpDrops) -> None:
    """A reply is counted once, and only from the pinged address (payload matching)."""
    drops.drop("127.70.0.0/24")  # the real request is dropped; we answer by hand
    target = "127.70.0.9"
    task = asyncio.create_task(engine.ping([target], count=1, timeout=1.5))
    await wait_until(lambda: any(b.sent_total for b in engine._batches.values()), 5,
                     "request sent")
    (b,) = engine._batches.values()
    now_wall, now_mono = time.time_ns(), time.monotonic_ns()
    payload = engine._cookie + pkt.PAYLOAD_TAIL.pack(b.rid, 0, 0, now_wall, now_mono)
    icmp = struct.pack("!BBHHH", pkt.ICMP_ECHO_REPLY, 0, 0, 1, 0) + payload
    icmp = icmp[:2] + struct.pack("!H", pkt.icmp_checksum(icmp)) + icmp[4:]

    def ip_packet(src: str) -> bytes:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0,
                           socket.inet_aton(src), socket.inet_aton("127.0.0.1")) + icmp

    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as inj:
        inj.sendto(ip_packet("127.80.0.1"), ("127.0.0.1", 0))  # wrong source: invalid
        inj.sendto(ip_packet(target), ("127.0.0.1", 0))
        inj.sendto(ip_packet(target), ("127.0.0.1", 0))  # duplicate
        rnd = await asyncio.wait_for(task, 5)
    (r,) = rnd.results
    assert r.ok and r.received == 1 and r.sent == 1 and r.complete
    assert rnd.duplicate_replies == 1 and rnd.invalid_replies == 1
    assert engine.stats.duplicate_replies >= 1 and engine.stats.invalid_replies >= 1


async def test_close_finishes_running_rounds_as_incomplete(drops: IcmpDrops) -> None:
    require_root()
    drops.drop("127.80.1.0/24")
    e = IcmpEngine(mode="raw")
    await e.start()
    task = asyncio.create_task(e.ping(["127.80.1.1", "127.0.0.1"], count=3, timeout=5,
                                      period=0.5))
    await wait_until(lambda: e.stats.packets_sent >= 2, 5, "first wave sent")
    t0 = time.monotonic()
    await e.close()
    rnd = await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 < 2
    assert rnd.incomplete and "engine closed" in rnd.reason
    dead, live = rnd.results
    assert not dead.ok and not dead.complete and dead.reason == "engine_closed"
    assert live.ok and not live.complete
    after = await e.ping(["127.0.0.1"], count=1)
    assert after.incomplete and not after.results[0].complete


async def test_icmp_unreachable_error_gives_reason(engine: IcmpEngine) -> None:
    require_root()
    rule = ["INPUT", "-d", "127.80.3.0/24", "-p", "icmp", "--icmp-type", "echo-request",
            "-m", "comment", "--comment", COMMENT, "-j", "REJECT", "--reject-with",
            "icmp-host-unreachable"]
    run("iptables", "-w", "5", "-I", *rule)
    try:
        rnd = await engine.ping(["127.80.3.1", "127.80.3.2", "127.0.0.1"], count=3,
                                timeout=0.5, period=0.01)
    finally:
        run("iptables", "-w", "5", "-D", *rule, check=False)
    a, b, live = rnd.results
    for r in (a, b):
        assert not r.ok and r.complete and r.reason == "unreachable" and r.sent >= 1, r
    assert live.ok and live.received == 3
    assert not rnd.incomplete


# --------------------------------------------------------------------------- modes / names


async def test_auto_mode_picks_raw_as_root(caplog: pytest.LogCaptureFixture) -> None:
    require_root()
    caplog.set_level(logging.INFO, logger="monitord.probes.icmp")
    e = IcmpEngine(mode="auto")
    await e.start()
    try:
        assert e.mode == "raw" and e.families == ["IPv4", "IPv6"]
        rnd = await e.ping(["127.0.0.1"], count=1)
        assert rnd.results[0].ok
    finally:
        await e.close()
    assert any("mode=raw" in m and "CAP_NET_RAW" in m for m in caplog.messages)
    assert not any("undetectable" in m for m in caplog.messages)


async def test_localhost_name_resolves(engine: IcmpEngine) -> None:
    # "localhost" comes from /etc/hosts ("files" before "dns"): no DNS query leaves.
    rnd = await engine.ping(["localhost"], count=1, timeout=0.5)
    (r,) = rnd.results
    assert r.ok and r.ip in ("127.0.0.1", "::1") and r.address == "localhost"


async def test_prober_observations(drops: IcmpDrops) -> None:
    require_root()
    drops.drop("127.80.2.0/24")
    prober = IcmpProber(mode="raw")
    await prober.start()
    try:
        assert prober.mode == "raw"
        targets = [
            Target("live", "127.0.0.1", {"count": 2, "timeout": 0.5, "period": 0.01}),
            Target("dead", "127.80.2.5", {"count": 2, "timeout": 0.3, "period": 0.01}),
            Target("v6", "::1", {"count": 3, "timeout": 0.5, "period": 0.01}),
            Target("defaults", "127.0.0.2", {}),
        ]
        obs, stats = await prober.probe(targets)
    finally:
        await prober.close()
    assert [o.device_id for o in obs] == ["live", "dead", "v6", "defaults"]
    live, dead, v6, defaults = obs
    assert live.ok and live.complete and live.probe == "icmp" and live.reason == ""
    assert set(live.values) == {"rtt_min_seconds", "rtt_avg_seconds", "rtt_max_seconds",
                                "jitter_seconds", "loss_ratio", "sent", "received"}
    assert live.values["sent"] == live.values["received"] == 2
    assert not dead.ok and dead.complete and dead.reason == "timeout"
    assert dead.values == {"sent": 2.0, "received": 0.0, "loss_ratio": 1.0}
    assert v6.ok and v6.values["received"] == 3
    assert defaults.ok and defaults.values["sent"] == 3  # default count
    assert stats.probe == "icmp" and stats.targets == 4 and stats.complete
    assert prober.stats.packets_sent >= 10


async def test_prober_rounds_judged_by_device_thresholds(drops: IcmpDrops) -> None:
    """The prober reports each round as it was; the state tracker judges loss and
    latency over the device's window with the device's limits."""
    require_root()
    drops.drop("127.80.3.0/24")
    prober = IcmpProber(mode="raw")
    await prober.start()
    params = {"count": 10, "timeout": 0.3, "period": 0.01}
    tracker = StateTracker()
    tracker.configure([
        # Loopback RTT is tens of microseconds: a 1 µs limit is always exceeded.
        DeviceSpec("slow", "icmp", 2, 1, window_rounds=3, rtt_degraded=1e-6),
        DeviceSpec("fine", "icmp", 2, 1, window_rounds=3, loss_degraded=0.2, rtt_degraded=1.0),
        DeviceSpec("dead", "icmp", 2, 1, window_rounds=3, loss_degraded=0.2, rtt_degraded=1e-6),
    ])
    targets = [Target("slow", "127.0.0.1", params), Target("fine", "127.0.0.1", params),
               Target("dead", "127.80.3.1", params)]
    try:
        for _ in range(3):
            obs, _ = await prober.probe(targets)
            assert all(not o.degraded for o in obs)  # no verdict on one round
            for o in obs:
                tracker.apply(o)
    finally:
        await prober.close()
    states = {d: st.state for d in ("slow", "fine", "dead") if (st := tracker.status(d))}
    assert states == {"slow": State.DEGRADED, "fine": State.UP, "dead": State.DOWN}
    slow = tracker.status("slow")
    assert slow is not None and slow.reason == "icmp: high_latency"
    assert slow.window.loss_ratio == 0.0 and len(slow.window) == 3


# --------------------------------------------------------------------------- netns: dgram

NETNS_SCRIPT = r"""
import asyncio, json, logging, sys
from monitord.probes.base import ProbeSetupError
from monitord.probes.icmp import IcmpEngine

async def main():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    e = IcmpEngine(mode=sys.argv[1])
    try:
        await e.start()
    except ProbeSetupError as exc:
        print(json.dumps({"setup_error": str(exc)}))
        return
    addrs = ["127.0.0.1", "::1", "127.0.0.2", "127.99.0.1", "127.99.0.2", "localhost",
             "no-such-host.invalid"]
    rnd = await e.ping(addrs, count=3, timeout=0.5, period=0.01)
    await e.close()
    print(json.dumps({"mode": e.mode, "incomplete": rnd.incomplete,
                      "reprobed": rnd.reprobed_hosts, "results": [
        {"address": r.address, "ok": r.ok, "sent": r.sent, "received": r.received,
         "reason": r.reason, "complete": r.complete, "rtt_avg": r.rtt_avg}
        for r in rnd.results]}))

asyncio.run(main())
"""


@pytest.fixture
def netns() -> Iterator[str]:
    """A private network namespace with only ``lo``: nothing can leave the machine.

    Its resolv.conf points at 127.0.0.1 (nothing listens), so name lookups fail fast
    and locally.
    """
    require_root()
    name = f"mdicmp{os.getpid()}"
    etc = Path("/etc/netns") / name
    try:
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        run("ip", "netns", "exec", name, "iptables", "-w", "5", "-I", "INPUT", "-d",
            "127.99.0.0/24", "-p", "icmp", "-j", "DROP")
        yield name
    finally:
        run("ip", "netns", "del", name, check=False)
        shutil.rmtree(etc, ignore_errors=True)


def run_in_netns(ns: str, mode: str, *prefix: str) -> dict[str, object]:
    proc = run("ip", "netns", "exec", ns, *prefix, sys.executable, "-c", NETNS_SCRIPT, mode,
               timeout=60)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["log"] = proc.stderr
    return out


def check_netns_results(out: dict[str, object]) -> None:
    results = {r["address"]: r for r in out["results"]}  # type: ignore[attr-defined]
    for a in ("127.0.0.1", "::1", "127.0.0.2", "localhost"):
        assert results[a]["ok"] and results[a]["received"] == 3, results[a]
        assert results[a]["complete"] and results[a]["rtt_avg"] > 0
    for a in ("127.99.0.1", "127.99.0.2"):
        assert results[a] | {"rtt_avg": None} == {
            "address": a, "ok": False, "sent": 3, "received": 0, "reason": "timeout",
            "complete": True, "rtt_avg": None}
    bad = results["no-such-host.invalid"]
    assert not bad["ok"] and bad["reason"] == "resolve_failed" and bad["sent"] == 0
    assert out["incomplete"] == (not bad["complete"])
    assert out["reprobed"] == 0  # the drop counters were readable: no needless re-probe
    assert "undetectable" not in str(out["log"])


def test_dgram_mode_and_auto_fallback_in_netns(netns: str) -> None:
    run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    out = run_in_netns(netns, "dgram")
    assert out["mode"] == "dgram"
    assert "mode=dgram" in str(out["log"]) and "ping_group_range" in str(out["log"])
    check_netns_results(out)

    # Without CAP_NET_RAW, auto falls back to datagram sockets: root without the
    # capability, and a plain unprivileged user (nobody: no forced buffer sizes either).
    nocap = ("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw")
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    for prefix in (nocap, nobody):
        out = run_in_netns(netns, "auto", *prefix)
        assert out["mode"] == "dgram", out
        check_netns_results(out)

    # Neither raw nor ping sockets allowed: a setup error that names both fixes.
    run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    out = run_in_netns(netns, "auto", *nobody)
    msg = str(out["setup_error"])
    assert "CAP_NET_RAW" in msg and "setcap" in msg and "ping_group_range" in msg


async def test_setup_error_type() -> None:
    e = IcmpEngine(mode="dgram")
    text = Path("/proc/sys/net/ipv4/ping_group_range").read_text()
    lo, hi = (int(x) for x in text.split())
    if lo <= os.getgid() <= hi:
        await e.start()
        await e.close()
        return
    with pytest.raises(ProbeSetupError, match="ping_group_range"):
        await e.start()
    with contextlib.suppress(Exception):
        await e.close()
