"""SNMP against hostile agents (issue 12, findings 1 and 2) and a fuzzed decoder.

Real UDP on loopback throughout: net-snmp's snmpd as the healthy agent, and scripted
agents (tests/snmp_lab.py) that send crafted replies — a 200-byte TimeTicks, replies
forged from other addresses and ports, with another community or version, or for guessed
request-ids.  The decoder fuzz test feeds >= 20,000 generated datagrams (fixed seed) to
the codec and accepts only its documented error, :class:`MalformedReply`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitord.demo.snmp_mib import Request, encode_response, encode_varbind
from monitord.probes.base import Observation, Target
from monitord.probes.snmp import SYS_UPTIME, SnmpProber
from monitord.probes.snmp import codec as w
from monitord.probes.snmp.session import Session, WalkLimits
from tests.daemon_lab import DaemonProcess, Metrics, base_config, wait_for, write_config
from tests.snmp_lab import (
    Answer,
    ScriptedAgent,
    Snmpd,
    get_reply,
    raw_varbind,
)

pytestmark = pytest.mark.timeout(120)

UPTIME_OID = w.decode_oid(SYS_UPTIME)
Agents = Callable[[Callable[[Request], list[Answer]]], ScriptedAgent]


def answer_get(req: Request, uptime: bytes) -> list[bytes]:
    """Varbinds answering a GET: sysUpTime.0 with the given content octets, the rest
    missing (noSuchObject), as an agent without those objects would."""
    return [raw_varbind(o, w.TIMETICKS, uptime) if o == UPTIME_OID
            else encode_varbind(o, w.NO_SUCH_OBJECT, None) for o in req.oids]


def huge_uptime(req: Request) -> list[Answer]:
    """A broken agent: sysUpTime as a 200-byte TimeTicks."""
    return [("agent", get_reply(req, answer_get(req, b"\x01" * 200)))]


# ---------------------------------------------------------------------------- finding 1


async def test_overlong_timeticks_fails_only_that_device(snmpd: Snmpd,
                                                         scripted_agent: Agents) -> None:
    broken = scripted_agent(huge_uptime)
    prober = SnmpProber(max_in_flight=16)
    await prober.start()
    try:
        obs, rs = await prober.probe([
            Target("broken", "127.0.0.1", {"community": "public", "port": broken.port,
                                           "timeout": 1.0, "retries": 0}),
            Target("healthy", "127.0.0.1", {"community": "public", "port": snmpd.port}),
        ])
    finally:
        await prober.close()
    assert rs.complete and rs.reason == ""
    bad, good = obs
    assert good.ok and good.values["sys_uptime_seconds"] > 0 and good.info["sys_name"]
    assert not bad.ok and bad.reason == "malformed" and bad.complete
    assert bad.degraded == "snmp_failing"
    assert prober.stats.errors[("broken", "malformed")] == 1
    assert broken.requests == 1  # answered (badly) at once: no retry, no timeout


def test_overlong_number_through_the_daemon(tmp_path: Path, snmpd: Snmpd,
                                            scripted_agent: Agents,
                                            daemon_factory: Callable[..., DaemonProcess]
                                            ) -> None:
    broken = scripted_agent(huge_uptime)
    fast = {"community": "public", "timeout": 0.5, "retries": 0}
    cfg = base_config([
        {"id": "broken", "kind": "switch", "address": "127.0.0.1",
         "probes": {"snmp": {"port": broken.port, **fast}}},
        {"id": "healthy", "kind": "switch", "address": "127.0.0.1",
         "probes": {"snmp": {"port": snmpd.port, **fast}}},
    ])
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()

    def three_rounds() -> Metrics | None:
        m = d.metrics()
        return m if (m.get_sample("monitord_snmp_polls_total") or 0) >= 6 else None

    m = wait_for(three_rounds, 40, "three SNMP rounds")
    assert m is not None
    # every round of the batch completed; the healthy device's data arrived
    assert not m.get_sample("monitord_probe_rounds_incomplete_total", probe="snmp")
    assert m("monitord_snmp_up", device="healthy") == 1
    assert m("monitord_snmp_uptime_seconds", device="healthy") > 0
    # the broken device: its own error, counted by reason
    assert m("monitord_snmp_errors_total", device="broken", reason="malformed") >= 2
    assert m("monitord_snmp_up", device="broken") == 0
    log = d.log()
    assert "incomplete" not in log and "Traceback" not in log and "OverflowError" not in log


class _BuggyProber(SnmpProber):
    """A prober with a deliberate bug in the server profile's reader: stands in for any
    defect that meets a device's data, to prove the per-device isolation on its own
    (the decoder bounds above stop the known overflow before it gets this far)."""

    async def _server(self, session: Session, obs: Observation, walk: WalkLimits) -> None:
        raise ZeroDivisionError("a reader bug")


async def test_unexpected_error_stays_with_its_device(snmpd: Snmpd,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    prober = _BuggyProber(max_in_flight=16)
    await prober.start()
    targets = [Target(f"srv{i}", "127.0.0.1", {"community": "public", "port": snmpd.port,
                                               "profile": "server"}) for i in range(12)]
    targets.append(Target("plain", "127.0.0.1", {"community": "public",
                                                 "port": snmpd.port}))
    try:
        with caplog.at_level(logging.ERROR, logger="monitord.probes.snmp"):
            obs, rs = await prober.probe(targets)
    finally:
        await prober.close()
    assert rs.complete and len(obs) == 13
    *servers, plain = obs
    assert plain.ok and plain.values["sys_uptime_seconds"] > 0
    for o in servers:  # the GET worked; the failing part is named, the data kept
        assert o.ok and o.info["snmp_partial"] == "internal_error" and o.complete
        assert o.values["sys_uptime_seconds"] > 0
        assert prober.stats.errors[(o.device_id, "internal_error")] == 1
    # twelve failures, at most five tracebacks a minute: the log stays readable
    lines = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(lines) == 5 and all(r.exc_info for r in lines)


# ---------------------------------------------------------------------------- finding 2


async def test_spoofed_replies_are_dropped_and_the_genuine_one_used(
        scripted_agent: Agents) -> None:
    forged = answer_get  # same shape, another uptime

    def script(req: Request) -> list[Answer]:
        lie = forged(req, (999_999).to_bytes(4, "big"))
        return [
            ("elsewhere", get_reply(req, lie)),      # right id, another loopback address
            ("other_port", get_reply(req, lie)),     # right id, the agent's address, other port
            ("agent", get_reply(req, lie, community=b"guessed")),  # wrong community
            ("agent", get_reply(req, lie, version=0)),             # wrong version
            ("agent", get_reply(req, answer_get(req, (4200).to_bytes(2, "big")))),  # genuine
        ]

    agent = scripted_agent(script)
    agent.add_sender("elsewhere", "127.0.0.2")
    agent.add_sender("other_port", "127.0.0.1")
    prober = SnmpProber()
    await prober.start()
    try:
        obs, _ = await prober.probe([Target("gw", "127.0.0.1", {
            "community": "public", "port": agent.port, "timeout": 2.0, "retries": 0})])
    finally:
        await prober.close()
    assert agent.requests == 1
    assert obs[0].ok and obs[0].values["sys_uptime_seconds"] == 42.0
    dropped = dict(prober.dropped_datagrams)
    assert dropped == {"malformed": 0, "unmatched": 0, "wrong_source": 2,
                       "wrong_version": 1, "wrong_community": 1}


async def test_request_ids_are_random_and_guesses_fail(scripted_agent: Agents) -> None:
    """A blind spoofer predicting request-ids (1, 2, 3 … or the last one seen + 1) sends
    forged replies before every genuine one; none is accepted."""
    guessed = 0

    def script(req: Request) -> list[Answer]:
        nonlocal guessed
        last = agent.seen[-2].request_id if len(agent.seen) > 1 else 0
        guesses = sorted({*range(1, 17), last + 1, last + 2} - {req.request_id})
        guessed += len(guesses)
        lie = answer_get(req, (999_999).to_bytes(4, "big"))
        return [*(("agent", get_reply(req, lie, request_id=g)) for g in guesses),
                ("agent", get_reply(req, answer_get(req, (4200).to_bytes(2, "big"))))]

    agent = scripted_agent(script)
    prober = SnmpProber()
    await prober.start()
    target = Target("gw", "127.0.0.1", {"community": "public", "port": agent.port,
                                        "timeout": 2.0, "retries": 0})
    try:
        for _ in range(20):
            obs, _ = await prober.probe([target])
            assert obs[0].ok and obs[0].values["sys_uptime_seconds"] == 42.0
        unmatched = prober.unmatched_datagrams
    finally:
        await prober.close()
    ids = [r.request_id for r in agent.seen]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert all(1 <= i < 2 ** 31 for i in ids)
    assert not any(b == a + 1 for a, b in itertools.pairwise(ids))
    assert max(ids) >= 2 ** 20  # spread over the 31-bit space, not counting up
    assert unmatched == guessed


# ---------------------------------------------------------------------------- the codec


def _reply(varbinds: list[bytes], rid: int = 7) -> bytes:
    return encode_response(1, b"public", rid, varbinds)


@pytest.mark.parametrize(("tag", "content", "value"), [
    (w.TIMETICKS, b"\x00\xff\xff\xff\xff", 2 ** 32 - 1),
    (w.COUNTER32, b"\xff\xff\xff\xff", 2 ** 32 - 1),   # sign bit read as unsigned
    (w.GAUGE32, b"\x2a", 42),
    (w.COUNTER64, b"\x00" + b"\xff" * 8, 2 ** 64 - 1),
    (w.INTEGER, b"\x80\x00\x00\x00", -(2 ** 31)),
    (w.INTEGER, b"\x00\xff\xff\xff\xff", 2 ** 32 - 1),  # some agents send unsigned values
])
def test_numbers_within_their_type_decode(tag: int, content: bytes, value: int) -> None:
    resp = w.decode_response(_reply([raw_varbind((1, 3, 6, 1), tag, content)]))
    assert resp.varbinds[0][2] == value


@pytest.mark.parametrize(("tag", "content"), [
    (w.TIMETICKS, b"\x01" * 200),
    (w.TIMETICKS, b"\x01" * 6),
    (w.TIMETICKS, b"\x01\x00\x00\x00\x00"),   # 5 octets but beyond 2^32-1
    (w.COUNTER32, b"\x00" * 6),
    (w.GAUGE32, b"\xff" * 5),
    (w.COUNTER64, b"\x00" * 10),
    (w.COUNTER64, b"\x01" + b"\x00" * 8),     # beyond 2^64-1
    (w.INTEGER, b"\x01" * 6),
    (w.INTEGER, b""),
])
def test_overlong_numbers_are_malformed(tag: int, content: bytes) -> None:
    with pytest.raises(w.MalformedReply):
        w.decode_response(_reply([raw_varbind((1, 3, 6, 1), tag, content)]))


def test_overlong_header_numbers_and_sub_identifiers_are_malformed() -> None:
    good = _reply([])
    assert w.peek_header(good) == (1, b"public", 7)
    big_rid = encode_response(1, b"public", 2 ** 40, [])
    with pytest.raises(w.MalformedReply):
        w.peek_header(big_rid)
    with pytest.raises(w.MalformedReply):
        w.decode_response(big_rid)
    assert w.decode_subids(w.encode_subids((2 ** 32 - 1,))) == (2 ** 32 - 1,)
    with pytest.raises(w.MalformedReply):
        w.decode_subids(w.encode_subids((2 ** 32,)))
    with pytest.raises(w.MalformedReply):  # a long run of continuation octets
        w.decode_subids(b"\xff" * 60_000 + b"\x01")
    oid_value = w.tlv(w.SEQUENCE, w.tlv(w.OBJECT_ID, w.encode_oid((1, 3)))
                       + w.tlv(w.OBJECT_ID, b"\x2b" + b"\x81" * 300 + b"\x01"))
    with pytest.raises(w.MalformedReply):
        w.decode_response(_reply([oid_value]))


_TYPE_MAX = {w.COUNTER32: 2 ** 32, w.GAUGE32: 2 ** 32, w.TIMETICKS: 2 ** 32,
             w.COUNTER64: 2 ** 64}


def _seed_replies(rng: random.Random) -> list[bytes]:
    """Valid replies of every value type, short and long form lengths, GET and bulk."""
    vbs = [
        encode_varbind((1, 3, 6, 1, 2, 1, 1, 3, 0), w.TIMETICKS, 123456),
        encode_varbind((1, 3, 6, 1, 2, 1, 1, 5, 0), w.OCTET_STRING, b"core-sw"),
        encode_varbind((1, 3, 6, 1, 2, 1, 1, 1, 0), w.OCTET_STRING, b"x" * 300),
        encode_varbind((1, 3, 6, 1, 2, 1, 1, 2, 0), w.OBJECT_ID, (1, 3, 6, 1, 4, 1, 8072, 3)),
        encode_varbind((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 1), w.INTEGER, -5),
        encode_varbind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), w.COUNTER32, 2 ** 32 - 1),
        encode_varbind((1, 3, 6, 1, 2, 1, 2, 2, 1, 5, 1), w.GAUGE32, 10 ** 9),
        encode_varbind((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 70000), w.COUNTER64, 2 ** 64 - 1),
        encode_varbind((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), w.IP_ADDRESS,
                       b"\x0a\x00\x00\x01"),
        encode_varbind((1, 3, 6, 1, 2, 1, 1, 9, 0), w.NULL, None),
        encode_varbind((1, 3, 6, 1, 2, 1, 1, 8, 0), w.NO_SUCH_INSTANCE, None),
        encode_varbind((1, 3, 6, 1, 2, 1, 99), w.END_OF_MIB_VIEW, None),
    ]
    bulk = [encode_varbind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, i), w.COUNTER32,
                           rng.randrange(2 ** 32)) for i in range(1, 40)]
    return [_reply(vbs[:1]), _reply(vbs[:4]), _reply(vbs), _reply(bulk, rid=2 ** 31 - 1),
            encode_response(0, b"a-longer-community-string", 99, vbs[4:8], 2, 1),
            _reply([])]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randrange(len(b) + 1)
        if op == 0 and b:                       # flip a byte
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif op == 1 and b:                     # a byte that confuses tags and lengths
            b[min(at, len(b) - 1)] = rng.choice((0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85,
                                                 0xff, 0x30, 0x02, 0x43, 0x46, 0x06))
        elif op == 2:                           # insert random bytes
            b[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:                           # delete a run
            del b[at:at + rng.randint(1, 8)]
        elif op == 4:                           # truncate
            del b[at:]
        elif op == 5 and b:                     # repeat a slice
            j = rng.randrange(len(b))
            b[at:at] = b[j:j + rng.randint(1, 40)]
        else:                                   # a long run of one byte (big numbers)
            b[at:at] = bytes([rng.choice((0x01, 0x81, 0xff))]) * rng.randint(5, 300)
    return bytes(b)


def _check(data: bytes) -> bool:
    """Decode like the probe does; True if it decoded.  Only MalformedReply may escape,
    and whatever decodes is within its type's range."""
    try:
        w.peek_header(data)
        resp = w.decode_response(data)
    except w.MalformedReply:
        return False
    assert -(2 ** 39) <= resp.request_id < 2 ** 39
    for oid, tag, value in resp.varbinds:
        try:
            assert all(0 <= s < 2 ** 32 for s in w.decode_subids(oid))
            w.decode_oid(oid)
        except w.MalformedReply:
            pass
        if tag in _TYPE_MAX:
            assert isinstance(value, int) and 0 <= value < _TYPE_MAX[tag]
        elif tag == w.INTEGER:
            assert isinstance(value, int) and -(2 ** 39) <= value < 2 ** 39
        elif tag == w.OBJECT_ID:
            assert isinstance(value, tuple) and all(0 <= s <= 2 ** 32 + 80 for s in value)
    return True


def test_decoder_fuzz_only_malformed_reply_escapes() -> None:
    rng = random.Random(20240612)
    seeds = _seed_replies(rng)
    assert all(_check(s) for s in seeds)
    t0 = time.monotonic()
    decoded = total = 0
    for _ in range(18_000):   # mutations of valid replies
        decoded += _check(_mutate(rng, rng.choice(seeds)))
        total += 1
    for _ in range(4_000):    # random bytes, half of them starting like a message
        head = b"\x30" if rng.random() < 0.5 else b""
        decoded += _check(head + rng.randbytes(rng.randint(0, 200)))
        total += 1
    for _ in range(2_000):    # OID content octets straight to the OID decoders
        raw = rng.randbytes(rng.randint(0, 40))
        for fn in (w.decode_oid, w.decode_subids):
            with contextlib.suppress(w.MalformedReply):
                fn(raw)
        total += 1
    assert total >= 20_000
    assert decoded > 500  # the mutations reach past the header, not only the first tag
    assert time.monotonic() - t0 < 20  # a few seconds on a loaded 2-core machine
