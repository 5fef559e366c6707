"""The dns probe's wire codec: known replies decode; any bytes either decode or raise
MalformedReply (never another exception, never a hang)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitord.probes.dns.wire import (
    MalformedReply,
    build_query,
    encode_name,
    parse_reply,
)


def _reply(qid: int, answers: list[tuple[int, bytes]], flags: int = 0x8180) -> bytes:
    """A reply to office.test with ``answers`` as (type, rdata), names compressed."""
    q = encode_name("office.test") + struct.pack("!HH", 1, 1)
    out = struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + q
    for rtype, rdata in answers:
        out += b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata
    return out


def test_query_layout() -> None:
    q = build_query(0x1234, "office.test", "MX")
    assert q[:2] == b"\x12\x34" and q[2:4] == b"\x01\x00"
    assert q[12:] == b"\x06office\x04test\x00\x00\x0f\x00\x01"


def test_known_records() -> None:
    mx = struct.pack("!H", 10) + b"\x04mail\xc0\x0c"
    txt = b"\x0bv=spf1 -all\x02ok"
    soa = b"\x02ns\xc0\x0c\x0ahostmaster\xc0\x0c" + struct.pack("!IIIII", 1, 2, 3, 4, 5)
    aaaa = bytes(15) + b"\x01"
    r = parse_reply(_reply(7, [(1, bytes([127, 0, 0, 5])), (15, mx), (16, txt), (6, soa),
                               (28, aaaa), (5, b"\xc0\x0c"), (99, b"\xab")]))
    assert r.id == 7 and r.rcode == "NOERROR" and not r.truncated
    assert r.question == ("office.test.", 1)
    assert [a.data for a in r.answers] == [
        "127.0.0.5", "10 mail.office.test.", '"v=spf1 -all" "ok"',
        "ns.office.test. hostmaster.office.test. 1 2 3 4 5", "::1", "office.test.",
        "\\# 1 ab"]
    assert r.answers[0].name == "office.test." and r.answers[0].ttl == 300


def test_rcode_and_truncation() -> None:
    r = parse_reply(_reply(1, [], flags=0x8383))
    assert r.rcode == "NXDOMAIN" and r.truncated


@pytest.mark.parametrize("data,why", [
    (b"\x00" * 5, "shorter than a DNS header"),
    (struct.pack("!HHHHHH", 1, 0x0100, 0, 0, 0, 0), "not a response"),
    (struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c", "loop"),
    (_reply(1, [(1, b"\x01\x02")]), "A record of 2 bytes"),
    (_reply(1, [(1, bytes(4))])[:-2], "runs past the end"),
])
def test_malformed(data: bytes, why: str) -> None:
    with pytest.raises(MalformedReply, match=why):
        parse_reply(data)


def test_name_limits() -> None:
    with pytest.raises(ValueError):
        encode_name("a" * 64 + ".test")
    with pytest.raises(ValueError):
        encode_name(".".join(["abcdefgh"] * 40))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_any_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedReply):
        parse_reply(data)


VALID = _reply(9, [(1, bytes([127, 0, 0, 5])), (15, struct.pack("!H", 10) + b"\x04mail\xc0\x0c"),
                   (16, b"\x03abc"), (6, b"\xc0\x0c\xc0\x0c" + bytes(20))])


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                min_size=1, max_size=6),
       st.integers(0, len(VALID)))
def test_fuzz_mutated_reply(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    try:
        reply = parse_reply(bytes(data[:cut] if cut < 12 else data))
    except MalformedReply:
        return
    assert all(isinstance(a.data, str) for a in reply.answers)
