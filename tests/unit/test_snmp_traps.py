"""SNMP trap decoding (codec) and the receiver's accounting, without sockets: bytes made by
the codec, bytes captured from net-snmp's snmptrap/snmpinform, and fuzzed bytes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitord.app.pipeline import TRAP_EVENT_KIND, Pipeline
from monitord.demo.processes import free_port
from monitord.probes.base import Observation, RoundStats, Target
from monitord.probes.metrics import MetricFamily
from monitord.probes.scheduler import Job, Scheduler
from monitord.probes.snmp import codec
from monitord.probes.snmp.codec import MalformedReply
from monitord.probes.snmp.traps import (
    RESULTS,
    TRAP_KINDS,
    TrapEvent,
    TrapReceiver,
    TrapSettings,
    normalize_address,
    split_listen,
)

LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
IF_INDEX_2 = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 2)

# Captured from net-snmp 5.9 (Debian 12), community "public":
#   snmptrap -v 2c -c public HOST '' 1.3.6.1.6.3.1.1.5.3 1.3.6.1.2.1.2.2.1.1.2 i 2
NETSNMP_V2C_LINKDOWN = bytes.fromhex(
    "305602010104067075626c6963a749020442aa2ddc020100020100303b300f06082b0601020101030043"
    "0305bf413017060a2b06010603010104010006092b0601060301010503300f060a2b060102010202010102"
    "020102")
#   snmptrap -v 1 -c public HOST 1.3.6.1.4.1.8072.3.2.10 127.0.0.1 2 0 '' \
#       1.3.6.1.2.1.2.2.1.1.3 i 3
NETSNMP_V1_LINKDOWN = bytes.fromhex(
    "303d02010004067075626c6963a430060a2b06010401bf0803020a40047f000001020102020100430305"
    "bf423011300f060a2b060102010202010103020103")
#   snmptrap -v 1 -c public HOST 1.3.6.1.2.1.33.2 127.0.0.1 6 1 12345  (upsTrapOnBattery)
NETSNMP_V1_UPS = bytes.fromhex(
    "302802010004067075626c6963a41b06072b06010201210240047f000001020106020101430230393000")
#   snmpinform -v 2c -c public HOST '' 1.3.6.1.6.3.1.1.5.1  (coldStart)
NETSNMP_INFORM_COLDSTART = bytes.fromhex(
    "304502010104067075626c6963a63802040c817879020100020100302a300f06082b0601020101030043"
    "0305bf443017060a2b06010603010104010006092b0601060301010501")


# ---------------------------------------------------------------------------- codec


def test_netsnmp_v2c_linkdown() -> None:
    n = codec.decode_notification(NETSNMP_V2C_LINKDOWN)
    assert (n.version, n.community, n.pdu_type, n.inform) == (1, b"public", codec.PDU_TRAP_V2,
                                                                False)
    assert n.trap_oid == LINK_DOWN
    assert [(codec.decode_oid(o), t, v) for o, t, v in n.varbinds] == [
        (IF_INDEX_2, codec.INTEGER, 2)]


def test_netsnmp_v1_generic_and_enterprise_traps() -> None:
    n = codec.decode_notification(NETSNMP_V1_LINKDOWN)
    assert n.version == 0 and n.trap_oid == LINK_DOWN and n.agent_address == b"\x7f\0\0\1"
    assert codec.decode_oid(n.varbinds[0][0]) == (1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3)
    ups = codec.decode_notification(NETSNMP_V1_UPS)
    assert ups.trap_oid == (1, 3, 6, 1, 2, 1, 33, 2, 0, 1) and ups.varbinds == []


def test_netsnmp_inform_and_its_acknowledgement() -> None:
    n = codec.decode_notification(NETSNMP_INFORM_COLDSTART)
    assert n.inform and n.request_id == 0x0C817879
    assert n.trap_oid == (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
    ack = codec.decode_response(codec.encode_inform_response(n))
    assert (ack.version, ack.community, ack.request_id, ack.error_status) == (
        1, b"public", 0x0C817879, 0)
    assert codec.decode_oid(ack.varbinds[1][0]) == codec.SNMP_TRAP_OID
    assert ack.varbinds[1][2] == n.trap_oid


def test_codec_round_trip_v2c_and_v1() -> None:
    data = codec.encode_trap_v2(b"c0mm", LINK_DOWN, [(IF_INDEX_2, codec.INTEGER, 2)],
                                uptime=123456, request_id=77, inform=True)
    n = codec.decode_notification(data)
    assert n.inform and n.request_id == 77 and n.community == b"c0mm"
    assert n.trap_oid == LINK_DOWN and n.varbinds[0][2] == 2
    v1 = codec.encode_trap_v1(b"x", (1, 3, 6, 1, 4, 1, 318), b"\x0a\0\0\1", 6, 5,
                              uptime=2**32 - 1)
    assert codec.decode_notification(v1).trap_oid == (1, 3, 6, 1, 4, 1, 318, 0, 5)


@pytest.mark.parametrize("data", [
    b"", b"\x30\x00", codec.encode_request(1, b"public", codec.PDU_GET, 1, []),
    codec.encode_trap_v2(b"p", LINK_DOWN)[:-1],
    # a v1 Trap-PDU in a v2c message, and a v2 trap in a v1 message
    NETSNMP_V1_LINKDOWN.replace(b"\x02\x01\x00", b"\x02\x01\x01", 1),
    NETSNMP_V2C_LINKDOWN.replace(b"\x02\x01\x01", b"\x02\x01\x00", 1),
    # SNMPv3 (version 3)
    NETSNMP_V2C_LINKDOWN.replace(b"\x02\x01\x01", b"\x02\x01\x03", 1),
    # a v2 trap without snmpTrapOID.0
    codec.tlv(codec.SEQUENCE, b"\x02\x01\x01" + codec.tlv(codec.OCTET_STRING, b"p")
              + codec.tlv(codec.PDU_TRAP_V2, b"\x02\x01\x01\x02\x01\x00\x02\x01\x00"
                          + codec.encode_varbinds([]))),
])
def test_not_a_notification(data: bytes) -> None:
    with pytest.raises(MalformedReply):
        codec.decode_notification(data)


SAMPLES = [NETSNMP_V2C_LINKDOWN, NETSNMP_V1_LINKDOWN, NETSNMP_V1_UPS,
           NETSNMP_INFORM_COLDSTART]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_only_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedReply):
        codec.decode_notification(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=st.sampled_from(SAMPLES),
       edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 200))
def test_fuzz_mutated_traps_only_malformed(sample: bytes, edits: list[tuple[int, int]],
                                           cut: int) -> None:
    data = bytearray(sample)
    for pos, value in edits:
        data[pos % len(data)] = value
    try:
        n = codec.decode_notification(bytes(data[:len(data) - cut % 8]))
    except MalformedReply:
        return
    if n.inform:  # whatever decodes can be acknowledged
        codec.decode_response(codec.encode_inform_response(n))


# ---------------------------------------------------------------------------- receiver


def receiver(events: list[TrapEvent]) -> TrapReceiver:
    r = TrapReceiver([("127.0.0.1", 0)], [b"public", b"second"], events.append)
    r.set_devices({"10.0.0.1": ["sw-1"], "10.0.0.2": ["ups-1", "ups-1-card"]})
    return r


def counts(r: TrapReceiver) -> dict[tuple[str, ...], float]:
    (fam,) = r.metrics()
    assert fam.name == "monitord_snmp_traps_total" and fam.labels == ("trap", "result")
    assert len(fam.samples) == len(TRAP_KINDS) * len(RESULTS)  # all series exist at 0
    return {k: v for k, v in fam.samples.items() if v}


def test_receiver_results() -> None:
    events: list[TrapEvent] = []
    r = receiver(events)
    assert r.handle(NETSNMP_V2C_LINKDOWN, "10.0.0.1") is None
    assert events == [TrapEvent(("sw-1",), "10.0.0.1", "linkDown", "1.3.6.1.6.3.1.1.5.3",
                                "2c", False, 2)]
    assert events[0].summary == "linkDown ifIndex 2"
    r.handle(NETSNMP_V1_UPS, "::ffff:10.0.0.2")  # dual-stack socket
    assert events[-1].device_ids == ("ups-1", "ups-1-card") and events[-1].version == "1"
    assert events[-1].trap == "upsOnBattery"
    r.handle(codec.encode_trap_v2(b"wrong", LINK_DOWN), "10.0.0.1")
    r.handle(NETSNMP_V1_LINKDOWN, "192.0.2.9")
    r.handle(b"\x30\x03\x02\x01", "10.0.0.1")
    other = codec.encode_trap_v2(b"second", (1, 3, 6, 1, 4, 1, 9, 0, 1))
    r.handle(other, "10.0.0.1")
    assert not events[-1].actionable and events[-1].summary == "other 1.3.6.1.4.1.9.0.1"
    assert counts(r) == {("linkDown", "accepted"): 1, ("upsOnBattery", "accepted"): 1,
                         ("linkDown", "bad_community"): 1,
                         ("linkDown", "unknown_source"): 1, ("other", "malformed"): 1,
                         ("other", "accepted"): 1}


def test_inform_acknowledged_only_with_the_right_community() -> None:
    r = receiver([])
    ack = r.handle(NETSNMP_INFORM_COLDSTART, "10.0.0.1")
    assert ack is not None and codec.decode_response(ack).request_id == 0x0C817879
    bad = NETSNMP_INFORM_COLDSTART.replace(b"public", b"publiX")
    assert r.handle(bad, "10.0.0.1") is None
    r.set_communities([b"publiX"])
    assert r.handle(bad, "10.0.0.1") is not None


def test_a_failing_callback_does_not_stop_the_receiver() -> None:
    def boom(_: TrapEvent) -> None:
        raise RuntimeError("bug")
    r = TrapReceiver([], [b"public"], boom)
    r.set_devices({"10.0.0.1": ["sw-1"]})
    r.handle(NETSNMP_V2C_LINKDOWN, "10.0.0.1")
    assert counts(r) == {("linkDown", "accepted"): 1}


def test_unknown_sources_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    r = TrapReceiver([], [b"public"], lambda _: None, clock=lambda: now[0])
    for i in range(50):
        r.handle(NETSNMP_V2C_LINKDOWN, f"192.0.2.{i}")
    now[0] = 61.0
    r.handle(NETSNMP_V2C_LINKDOWN, "192.0.2.200")
    lines = [m for m in caplog.messages if "unknown sources" in m or "no configured" in m]
    assert len(lines) == 3 and "49 more" in lines[1]
    assert counts(r) == {("linkDown", "unknown_source"): 51}


def test_settings() -> None:
    assert not TrapSettings().enabled and TrapSettings().addresses() == [("0.0.0.0", 162)]
    with pytest.raises(ValueError, match="communities"):
        TrapSettings(enabled=True)
    s = TrapSettings.model_validate({"enabled": True, "listen": ["[::]:1162", ":162"],
                                     "communities": ["lab", {"env": "NO_SUCH_VAR_X"}]})
    assert s.addresses() == [("::", 1162), ("0.0.0.0", 162)]
    assert "lab" not in repr(s)
    with pytest.raises(LookupError):
        s.reveal_communities()
    with pytest.raises(ValueError):
        split_listen("nope")
    assert normalize_address("::ffff:127.0.0.2") == "127.0.0.2"
    assert normalize_address("fe80::1%eth0") == "fe80::1"


async def test_receiver_on_a_socket() -> None:
    import socket

    events: list[TrapEvent] = []
    port = free_port(kind=socket.SOCK_DGRAM)
    # an IPv4 and an IPv6 socket on the same port (the v6 one is v6-only)
    r = TrapReceiver([("127.0.0.1", port), ("::1", port)], [b"public"], events.append)
    r.set_devices({"127.0.0.1": ["sw-1"]})
    await r.start()
    try:
        assert [p for _, p in r.addresses] == [port, port]
        host = "127.0.0.1"

        def client() -> bytes:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.sendto(b"garbage", (host, port))
                s.sendto(NETSNMP_INFORM_COLDSTART, (host, port))
                return s.recv(2000)

        ack = codec.decode_response(await asyncio.to_thread(client))
        assert ack.request_id == 0x0C817879 and events[0].trap == "coldStart"
    finally:
        await r.close()


# ---------------------------------------------------------------------------- effects


class Recorder:
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.called = asyncio.Event()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def metrics(self) -> list[MetricFamily]:
        return []

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        self.calls.append([t.device_id for t in targets])
        self.called.set()
        return [], RoundStats("fake", len(targets), 0.0)


async def test_poll_now_runs_the_device_early_and_is_rate_limited() -> None:
    prober = Recorder()

    async def sink(_: list[Observation], __: RoundStats) -> None:
        pass

    sched = Scheduler({"fake": prober}, sink)
    sched.set_jobs([Job(Target(d, "127.0.0.1", {}), "fake", 3600.0) for d in ("a", "b")])
    sched._due = {k: time.monotonic() + 3000 for k in sched._due}  # far in the future
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    try:
        assert sched.poll_now("a") == ["fake"]
        assert sched.poll_now("a") == []  # rate limited
        assert sched.poll_now("nope") == []
        await asyncio.wait_for(prober.called.wait(), 2)
        assert prober.calls == [["a"]]
        assert sched.poll_now("a", min_interval=0.0) == ["fake"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_pipeline_records_trap_events_once_per_burst() -> None:
    now = [1000.0]
    p = Pipeline(now=lambda: now[0])
    recorded: list[tuple[str, str]] = []

    async def record_event(kind: str, detail: str) -> None:
        recorded.append((kind, detail))

    p.record_event = record_event  # type: ignore[method-assign]
    ev = TrapEvent(("sw-1", "sw-1b"), "10.0.0.1", "linkDown", "x", "2c", False, 3)
    p.on_trap(ev)
    p.on_trap(ev)
    now[0] += 10
    p.on_trap(ev)
    p.on_trap(TrapEvent(("sw-1",), "10.0.0.1", "other", "1.2.3", "2c", False))
    await asyncio.sleep(0)
    assert recorded == [(TRAP_EVENT_KIND, "sw-1 linkDown ifIndex 3"),
                        (TRAP_EVENT_KIND, "sw-1b linkDown ifIndex 3")] * 2


async def test_a_port_in_use_is_a_setup_error() -> None:
    import socket

    from monitord.probes.base import ProbeSetupError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        r = TrapReceiver([("127.0.0.1", 0), ("127.0.0.1", port)], [b"p"], lambda _: None)
        with pytest.raises(ProbeSetupError, match=f"127.0.0.1:{port}"):
            await r.start()
        assert r.addresses == []  # the first socket was closed again
