"""A small DNS message codec (RFC 1035) for the ``dns`` probe: one query out, a reply in.

Pure functions, no I/O.  :func:`parse_reply` reads any bytes without crashing: a garbled
reply raises :class:`MalformedReply` (bounded name-compression pointers, bounds checked).
Records of the types the probe asks for (A, AAAA, CNAME, MX, TXT, NS, SOA, PTR) are
rendered as text like ``dig +short`` does; other types as ``\\# <hex>`` (RFC 3597).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Final

TYPES: Final[dict[str, int]] = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
                                "TXT": 16, "AAAA": 28}
TYPE_NAMES: Final[dict[int, str]] = {v: k for k, v in TYPES.items()}
RCODES: Final[dict[int, str]] = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
                                 4: "NOTIMP", 5: "REFUSED"}
MAX_POINTERS: Final = 64


class MalformedReply(ValueError):
    """The bytes are not a well-formed DNS reply."""


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    type: str
    ttl: int
    data: str


@dataclass(slots=True)
class Reply:
    id: int
    rcode: str
    truncated: bool
    question: tuple[str, int] | None
    answers: list[Record] = field(default_factory=list)


def encode_name(name: str) -> bytes:
    """``office.test`` → wire labels; ValueError for a label over 63 or a name over 255."""
    name = name.rstrip(".")
    out = bytearray()
    for label in name.split(".") if name else []:
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not 0 < len(raw) <= 63:
            raise ValueError(f"bad label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    out += b"\0"
    if len(out) > 255:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


def build_query(qid: int, name: str, qtype: str, recursion: bool = True) -> bytes:
    flags = 0x0100 if recursion else 0
    header = struct.pack("!HHHHHH", qid & 0xFFFF, flags, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", TYPES[qtype], 1)


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``pos``: (name, position after it)."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    total = 0
    while True:
        if pos >= len(msg):
            raise MalformedReply("name runs past the end")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise MalformedReply("truncated compression pointer")
            jumps += 1
            if jumps > MAX_POINTERS:
                raise MalformedReply("compression pointer loop")
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length & 0xC0:
            raise MalformedReply("unknown label type")
        pos += 1
        if length == 0:
            break
        if pos + length > len(msg):
            raise MalformedReply("label runs past the end")
        total += length + 1
        if total > 255:
            raise MalformedReply("name longer than 255 bytes")
        labels.append(msg[pos:pos + length].decode("ascii", "backslashreplace"))
        pos += length
    return (".".join(labels) + "."), (end if end is not None else pos)


def _rdata(msg: bytes, rtype: int, start: int, length: int) -> str:
    end = start + length
    data = msg[start:end]
    try:
        if rtype == 1 and length == 4:
            return str(ipaddress.IPv4Address(data))
        if rtype == 28 and length == 16:
            return str(ipaddress.IPv6Address(data))
        if rtype in (2, 5, 12):
            name, after = _name(msg, start)
            _within(after, end)
            return name
        if rtype == 15 and length >= 3:
            pref = struct.unpack_from("!H", msg, start)[0]
            name, after = _name(msg, start + 2)
            _within(after, end)
            return f"{pref} {name}"
        if rtype == 16:
            parts, pos = [], 0
            while pos < length:
                n = data[pos]
                if pos + 1 + n > length:
                    raise MalformedReply("TXT string runs past its record")
                parts.append('"' + data[pos + 1:pos + 1 + n].decode("utf-8", "replace") + '"')
                pos += 1 + n
            return " ".join(parts)
        if rtype == 6:
            mname, pos = _name(msg, start)
            rname, pos = _name(msg, pos)
            if pos + 20 > end:
                raise MalformedReply("SOA record too short")
            nums = struct.unpack_from("!IIIII", msg, pos)
            return " ".join([mname, rname, *map(str, nums)])
    except (struct.error, IndexError) as exc:
        raise MalformedReply(f"bad {TYPE_NAMES.get(rtype, rtype)} record: {exc}") from None
    if rtype in (1, 28):
        raise MalformedReply(f"{TYPE_NAMES[rtype]} record of {length} bytes")
    return f"\\# {length} {data.hex()}"


def _within(after: int, end: int) -> None:
    if after > end:
        raise MalformedReply("record data runs past its length")


def parse_reply(msg: bytes) -> Reply:
    """Header, question and answer section of a reply."""
    if len(msg) < 12:
        raise MalformedReply(f"{len(msg)} bytes: shorter than a DNS header")
    qid, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", msg, 0)
    if not flags & 0x8000:
        raise MalformedReply("not a response (QR bit clear)")
    rcode = RCODES.get(flags & 0xF, f"RCODE{flags & 0xF}")
    truncated = bool(flags & 0x0200)
    pos = 12
    question = None
    for _ in range(qd):
        qname, pos = _name(msg, pos)
        if pos + 4 > len(msg):
            raise MalformedReply("question runs past the end")
        qtype = struct.unpack_from("!H", msg, pos)[0]
        pos += 4
        question = question or (qname, qtype)
    reply = Reply(qid, rcode, truncated, question)
    for _ in range(an):
        if truncated and pos >= len(msg):
            break
        rname, pos = _name(msg, pos)
        if pos + 10 > len(msg):
            raise MalformedReply("record header runs past the end")
        rtype, _cls, ttl, rdlen = struct.unpack_from("!HHIH", msg, pos)
        pos += 10
        if pos + rdlen > len(msg):
            raise MalformedReply("record data runs past the end")
        reply.answers.append(Record(rname, TYPE_NAMES.get(rtype, f"TYPE{rtype}"), ttl,
                                    _rdata(msg, rtype, pos, rdlen)))
        pos += rdlen
    return reply
