"""SNMPv1/v2c on the wire: a small BER codec (pure: bytes in, values out; no I/O).

Why not pysnmp for this part: measured on this project's 2-core machine, pysnmp 7's
high-level API spends ~2.4 ms of CPU per 4-OID GET and ~44 ms per interface walk, almost
all of it building and decoding pyasn1 objects.  Community-based SNMP messages are tiny
and fixed in shape (RFC 1157 / RFC 3416), so this module encodes them from bytes
templates and decodes replies with index arithmetic over ``bytes``: ~20 µs per GET.
SNMPv3 (USM authentication and privacy) stays with pysnmp (see :mod:`.session`).

Every decoding step validates lengths and tags; anything that does not parse raises
:class:`MalformedReply` (a :class:`ValueError`).  That is the **only** exception the decoding
functions (:func:`peek_header`, :func:`decode_response`, :func:`read_int`, :func:`read_len`,
:func:`decode_oid`, :func:`decode_subids`, :func:`decode_notification`) raise for any
input (fuzz-tested in tests/integration/test_snmp_hardening.py and, for traps,
tests/unit/test_snmp_traps.py): a bad agent can cost a reason and a counter,
never a crash.
Numbers are bounded by their ASN.1 type (:data:`MAX_INT_OCTETS`, sub-identifiers < 2³²),
so no decoded value can overflow a float or a Prometheus sample downstream.

The shared UDP socket that sends these messages and routes replies is in
:mod:`monitord.probes.snmp.transport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

# ---------------------------------------------------------------------------- tags

INTEGER: Final = 0x02
OCTET_STRING: Final = 0x04
NULL: Final = 0x05
OBJECT_ID: Final = 0x06
SEQUENCE: Final = 0x30
IP_ADDRESS: Final = 0x40
COUNTER32: Final = 0x41
GAUGE32: Final = 0x42
TIMETICKS: Final = 0x43
OPAQUE: Final = 0x44
COUNTER64: Final = 0x46
NO_SUCH_OBJECT: Final = 0x80
NO_SUCH_INSTANCE: Final = 0x81
END_OF_MIB_VIEW: Final = 0x82

PDU_GET: Final = 0xA0
PDU_GETNEXT: Final = 0xA1
PDU_RESPONSE: Final = 0xA2
PDU_GETBULK: Final = 0xA5

#: varbind value tags that carry no value but say why (RFC 3416 §3)
EXCEPTION_TAGS: Final = frozenset({NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})
#: most content octets per integer type: two's complement needs 5 octets for any 32-bit
#: value (Integer32, or Counter32/Gauge32/TimeTicks with a leading 0x00) and 9 for a
#: Counter64.  Longer numbers (or a full-length unsigned one without the leading 0x00,
#: which would exceed its type) are rejected as malformed.
_UNSIGNED_OCTETS: Final = {COUNTER32: 5, GAUGE32: 5, TIMETICKS: 5, COUNTER64: 9}
MAX_INT_OCTETS: Final = {INTEGER: 5, **_UNSIGNED_OCTETS}
_MAX_SUBID: Final = 0xFFFFFFFF  # RFC 2578 §7.1.3: sub-identifiers are 0 … 2^32-1

Oid: TypeAlias = tuple[int, ...]
Value: TypeAlias = int | bytes | Oid | None
#: one decoded variable binding: (BER content octets of the OID, value tag, value).  The
#: OID stays encoded: walks test column prefixes with ``bytes.startswith`` and decode only
#: the index suffix, which is most of the win over a generic decoder.
VarBind: TypeAlias = tuple[bytes, int, Value]

#: SNMP error-status names (RFC 3416), for reasons and logs
ERROR_STATUS: Final = {
    1: "too_big", 2: "no_such_name", 3: "bad_value", 4: "read_only", 5: "gen_err",
    6: "no_access", 16: "authorization_error",
}


class MalformedReply(ValueError):
    """A datagram that is not a well-formed SNMP response.

    The codec's one documented decode error: every decoding function raises this and
    nothing else, whatever the bytes.
    """


# ---------------------------------------------------------------------------- encoding


def _enc_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _enc_len(len(body)) + body


def _enc_int(value: int) -> bytes:
    return tlv(INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big",
                                        signed=True))


def encode_oid(oid: Oid) -> bytes:
    """BER content octets of an OBJECT IDENTIFIER (without tag and length)."""
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f"invalid OID {oid!r}")
    return encode_subids((oid[0] * 40 + oid[1], *oid[2:]))


def parse_oid(text: str) -> Oid:
    """``"1.3.6.1.2.1.1.3.0"`` (leading dot allowed) → tuple of ints."""
    return tuple(int(p) for p in text.strip().lstrip(".").split("."))


def format_oid(oid: Oid) -> str:
    return ".".join(map(str, oid))


def _null_varbinds(oids: Sequence[bytes]) -> bytes:
    """Varbind list asking for ``oids`` (encoded content octets), each with a NULL value."""
    body = b"".join(tlv(SEQUENCE, tlv(OBJECT_ID, o) + b"\x05\x00") for o in oids)
    return tlv(SEQUENCE, body)


def encode_request(version: int, community: bytes, pdu_type: int, request_id: int,
                   oids: Sequence[bytes], non_repeaters: int = 0,
                   max_repetitions: int = 0) -> bytes:
    """A complete v1/v2c request message.  ``version`` is 0 for v1, 1 for v2c.

    For GETBULK the two error fields carry non-repeaters and max-repetitions.
    """
    if pdu_type == PDU_GETBULK:
        f1, f2 = _enc_int(non_repeaters), _enc_int(max_repetitions)
    else:
        f1 = f2 = b"\x02\x01\x00"
    pdu = tlv(pdu_type, _enc_int(request_id) + f1 + f2 + _null_varbinds(oids))
    return tlv(SEQUENCE, _enc_int(version) + tlv(OCTET_STRING, community) + pdu)


# ---------------------------------------------------------------------------- decoding


def read_len(data: bytes, i: int, end: int) -> tuple[int, int]:
    """Length at ``data[i]`` → (length, index of the content); bounded by ``end``."""
    if i >= end:
        raise MalformedReply("truncated length")
    first = data[i]
    i += 1
    if first < 0x80:
        n = first
    else:
        k = first & 0x7F
        if k == 0 or k > 4 or i + k > end:
            raise MalformedReply("bad length form")
        n = int.from_bytes(data[i:i + k], "big")
        i += k
    if i + n > end:
        raise MalformedReply("length beyond datagram")
    return n, i


def _expect(data: bytes, i: int, end: int, tag: int) -> tuple[int, int]:
    """Check the tag at ``i``; return (content start, content end)."""
    if i >= end or data[i] != tag:
        got = f"0x{data[i]:02x}" if i < end else "end"
        raise MalformedReply(f"expected tag 0x{tag:02x}, got {got}")
    n, i = read_len(data, i + 1, end)
    return i, i + n


def read_int(data: bytes, i: int, end: int) -> tuple[int, int]:
    """An INTEGER (Integer32: at most 5 content octets) → (value, index after it)."""
    s, e = _expect(data, i, end, INTEGER)
    if not 0 < e - s <= 5:
        raise MalformedReply(f"INTEGER of {e - s} octets")
    return int.from_bytes(data[s:e], "big", signed=True), e


def decode_oid(raw: bytes) -> Oid:
    """BER content octets → OID tuple (fast path when every sub-identifier is < 128)."""
    if not raw:
        raise MalformedReply("empty OID")
    if max(raw) < 0x80:
        first = raw[0]
        head = (first // 40, first % 40) if first < 80 else (2, first - 80)
        return head + tuple(raw[1:])
    subs = decode_subids(raw)
    first = subs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + subs[1:]


def decode_subids(raw: bytes) -> Oid:
    """Sub-identifiers of an OID *suffix* (e.g. a table index), no first-byte merge."""
    if max(raw, default=0) < 0x80:
        return tuple(raw)
    subs: list[int] = []
    acc = 0
    for b in raw:
        acc = (acc << 7) | (b & 0x7F)
        if acc > _MAX_SUBID:  # checked per octet: a long run cannot grow a huge number
            raise MalformedReply("OID sub-identifier beyond 2^32-1")
        if not b & 0x80:
            subs.append(acc)
            acc = 0
    if raw[-1] & 0x80:
        raise MalformedReply("OID ends inside a sub-identifier")
    return tuple(subs)


def encode_subids(subs: Oid) -> bytes:
    """Inverse of :func:`decode_subids` (an index suffix → content octets)."""
    out = bytearray()
    for value in subs:
        if value < 0x80:
            out.append(value)
            continue
        chunk = []
        rest = value
        while rest:
            chunk.append(rest & 0x7F)
            rest >>= 7
        chunk.reverse()
        out += bytes([0x80 | c for c in chunk[:-1]] + [chunk[-1]])
    return bytes(out)


@dataclass(slots=True)
class Response:
    """A decoded Response-PDU."""

    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]


def peek_header(data: bytes) -> tuple[int, bytes, int]:
    """(version, community, request-id) of a v1/v2c Response, cheaply, to route it before
    full decoding."""
    end = len(data)
    s, e = _expect(data, 0, end, SEQUENCE)
    version, i = read_int(data, s, e)
    cs, ce = _expect(data, i, e, OCTET_STRING)
    if ce >= e or data[ce] != PDU_RESPONSE:
        raise MalformedReply("not a Response-PDU")
    _, ps = read_len(data, ce + 1, e)
    rid, _ = read_int(data, ps, e)
    return version, data[cs:ce], rid


def decode_response(data: bytes) -> Response:
    """Decode a whole v1/v2c Response message; raise :class:`MalformedReply` if bad."""
    end = len(data)
    s, e = _expect(data, 0, end, SEQUENCE)
    version, i = read_int(data, s, e)
    cs, ce = _expect(data, i, e, OCTET_STRING)
    community = data[cs:ce]
    ps, pe = _expect(data, ce, e, PDU_RESPONSE)
    rid, i = read_int(data, ps, pe)
    status, i = read_int(data, i, pe)
    index, i = read_int(data, i, pe)
    vs, ve = _expect(data, i, pe, SEQUENCE)
    return Response(version, community, rid, status, index, _decode_varbinds(data, vs, ve))


def _decode_varbinds(data: bytes, i: int, end: int) -> list[VarBind]:
    """The hot loop: short-form lengths (all but huge strings) are read inline."""
    out: list[VarBind] = []
    append = out.append
    unsigned = _UNSIGNED_OCTETS
    while i < end:
        if data[i] != SEQUENCE or i + 1 >= end:
            raise MalformedReply("varbind is not a SEQUENCE")
        n = data[i + 1]
        if n < 0x80:
            vs, ve = i + 2, i + 2 + n
            if ve > end:
                raise MalformedReply("varbind beyond list")
        else:
            vs, ve = _expect(data, i, end, SEQUENCE)
        if vs + 1 >= ve or data[vs] != OBJECT_ID:
            raise MalformedReply("varbind without OID")
        n = data[vs + 1]
        if n < 0x80:
            os_, oe = vs + 2, vs + 2 + n
        else:
            n, os_ = read_len(data, vs + 1, ve)
            oe = os_ + n
        if oe >= ve or n == 0:
            raise MalformedReply("bad OID in varbind")
        oid = data[os_:oe]
        if oid[-1] & 0x80:
            raise MalformedReply("OID ends inside a sub-identifier")
        tag = data[oe]
        n = data[oe + 1] if oe + 1 < ve else 0x80
        if n < 0x80:
            s, e = oe + 2, oe + 2 + n
            if e != ve:
                raise MalformedReply("value does not fill its varbind")
        else:
            n, s = read_len(data, oe + 1, ve)
            e = s + n
            if e != ve:
                raise MalformedReply("value does not fill its varbind")
        lim = unsigned.get(tag)
        if lim is not None and (0 < n < lim or (n == lim and data[s] == 0)):
            append((oid, tag, int.from_bytes(data[s:e], "big")))
        else:
            append((oid, tag, _decode_value(tag, data[s:e])))
        i = ve
    return out


def _decode_value(tag: int, raw: bytes) -> Value:
    lim = MAX_INT_OCTETS.get(tag)
    if lim is not None:
        if not raw:
            raise MalformedReply(f"empty number (tag 0x{tag:02x})")
        if len(raw) > lim or (len(raw) == lim and tag != INTEGER and raw[0]):
            raise MalformedReply(f"number of {len(raw)} octets for tag 0x{tag:02x}")
        return int.from_bytes(raw, "big", signed=tag == INTEGER)
    if tag in (OCTET_STRING, IP_ADDRESS, OPAQUE):
        return raw
    if tag == OBJECT_ID:
        return decode_oid(raw)
    if tag == NULL or tag in EXCEPTION_TAGS:
        return None
    raise MalformedReply(f"unknown value tag 0x{tag:02x}")



class Builder:
    """Builds the request bytes for a given request-id (type for :meth:`request`)."""

    __slots__ = ("head", "tail")

    def __init__(self, version: int, community: bytes, pdu_type: int, oids: Sequence[bytes],
                 non_repeaters: int = 0, max_repetitions: int = 0) -> None:
        # pre-encode everything but the request-id: only that changes between sends
        self.head = (version, community, pdu_type)
        self.tail = (_null_varbinds(oids), non_repeaters, max_repetitions)

    def __call__(self, rid: int) -> bytes:
        version, community, pdu_type = self.head
        vbl, nr, mr = self.tail
        if pdu_type == PDU_GETBULK:
            f1, f2 = _enc_int(nr), _enc_int(mr)
        else:
            f1 = f2 = b"\x02\x01\x00"
        pdu = tlv(pdu_type, _enc_int(rid) + f1 + f2 + vbl)
        return tlv(SEQUENCE, _enc_int(version) + tlv(OCTET_STRING, community) + pdu)




# ---------------------------------------------------------------------------- traps
#
# What the trap receiver (monitord.probes.snmp.traps) needs: decode v1 Trap-PDUs
# (RFC 1157 §4.1.6) and v2c SNMPv2-Trap / InformRequest PDUs (RFC 3416 §4.2.6-7) into one
# shape, with the v1 fields mapped to an snmpTrapOID as RFC 3584 §3.1 does; and encode the
# Response that acknowledges an inform.  Same rule as above: any input either decodes or
# raises MalformedReply.

PDU_TRAP_V1: Final = 0xA4
PDU_INFORM: Final = 0xA6
PDU_TRAP_V2: Final = 0xA7

#: snmpTrapOID.0 and sysUpTime.0, the first two varbinds of every v2 notification
SNMP_TRAP_OID: Final = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SYS_UPTIME_0: Final = (1, 3, 6, 1, 2, 1, 1, 3, 0)
#: snmpTraps (RFC 3418): generic-trap n of a v1 trap is snmpTraps.(n+1)
SNMP_TRAPS: Final = (1, 3, 6, 1, 6, 3, 1, 1, 5)


@dataclass(slots=True)
class Notification:
    """A decoded trap or inform, v1 mapped to v2 terms.

    ``trap_oid`` is the snmpTrapOID (for v1: snmpTraps.(generic+1), or
    ``enterprise.0.specific`` for enterprise-specific traps); ``varbinds`` are the
    notification's own variables (without sysUpTime.0 / snmpTrapOID.0); ``agent_address``
    is the v1 agent-addr field (empty for v2c).
    """

    version: int
    community: bytes
    pdu_type: int
    request_id: int
    trap_oid: Oid
    varbinds: list[VarBind]
    agent_address: bytes = b""

    @property
    def inform(self) -> bool:
        return self.pdu_type == PDU_INFORM


def decode_notification(data: bytes) -> Notification:
    """Decode a v1 Trap, v2c SNMPv2-Trap or InformRequest; raise :class:`MalformedReply`
    for anything else (including other PDU types and SNMPv3 messages)."""
    end = len(data)
    s, e = _expect(data, 0, end, SEQUENCE)
    version, i = read_int(data, s, e)
    if version not in (0, 1):
        raise MalformedReply(f"SNMP version field {version} (not v1/v2c)")
    cs, ce = _expect(data, i, e, OCTET_STRING)
    community = data[cs:ce]
    if ce >= e:
        raise MalformedReply("no PDU")
    pdu_type = data[ce]
    if version == 0 and pdu_type == PDU_TRAP_V1:
        ps, pe = _expect(data, ce, e, PDU_TRAP_V1)
        os_, oe = _expect(data, ps, pe, OBJECT_ID)
        enterprise = decode_oid(data[os_:oe])
        as_, ae = _expect(data, oe, pe, IP_ADDRESS)
        if ae - as_ != 4:
            raise MalformedReply("agent-addr is not 4 octets")
        generic, i = read_int(data, ae, pe)
        specific, i = read_int(data, i, pe)
        ts, te = _expect(data, i, pe, TIMETICKS)
        _decode_value(TIMETICKS, data[ts:te])
        vs, ve = _expect(data, te, pe, SEQUENCE)
        varbinds = _decode_varbinds(data, vs, ve)
        if generic == 6:
            if specific < 0:
                raise MalformedReply("negative specific-trap")
            trap_oid = (*enterprise, 0, specific)
        elif 0 <= generic <= 5:
            trap_oid = (*SNMP_TRAPS, generic + 1)
        else:
            raise MalformedReply(f"generic-trap {generic}")
        return Notification(version, community, pdu_type, 0, trap_oid, varbinds,
                            data[as_:ae])
    if version == 1 and pdu_type in (PDU_TRAP_V2, PDU_INFORM):
        ps, pe = _expect(data, ce, e, pdu_type)
        rid, i = read_int(data, ps, pe)
        _, i = read_int(data, i, pe)
        _, i = read_int(data, i, pe)
        vs, ve = _expect(data, i, pe, SEQUENCE)
        varbinds = _decode_varbinds(data, vs, ve)
        # RFC 3416 §4.2.6: sysUpTime.0 then snmpTrapOID.0; be lenient about the first
        rest = varbinds
        if rest and decode_oid(rest[0][0]) == SYS_UPTIME_0:
            rest = rest[1:]
        if not rest or decode_oid(rest[0][0]) != SNMP_TRAP_OID:
            raise MalformedReply("notification without snmpTrapOID.0")
        value = rest[0][2]
        if rest[0][1] != OBJECT_ID or not isinstance(value, tuple):
            raise MalformedReply("snmpTrapOID.0 is not an OID")
        return Notification(version, community, pdu_type, rid, value, rest[1:])
    raise MalformedReply(f"not a notification (version {version}, PDU 0x{pdu_type:02x})")


def _enc_value(tag: int, value: Value) -> bytes:
    if value is None:
        return tlv(tag, b"")
    if isinstance(value, bytes):
        return tlv(tag, value)
    if isinstance(value, tuple):
        return tlv(tag, encode_oid(value))
    if tag == INTEGER:
        return _enc_int(value)
    return tlv(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def encode_varbinds(varbinds: Sequence[tuple[Oid, int, Value]]) -> bytes:
    """A varbind list from (OID, tag, value) triples."""
    return tlv(SEQUENCE, b"".join(
        tlv(SEQUENCE, tlv(OBJECT_ID, encode_oid(o)) + _enc_value(t, v))
        for o, t, v in varbinds))


def encode_inform_response(note: Notification) -> bytes:
    """The Response-PDU acknowledging an inform (RFC 3416 §4.2.7): same request-id and
    variable bindings, error-status 0."""
    vbs: list[tuple[Oid, int, Value]] = [
           (SYS_UPTIME_0, TIMETICKS, 0), (SNMP_TRAP_OID, OBJECT_ID, note.trap_oid),
           *((decode_oid(o), t, v) for o, t, v in note.varbinds)]
    pdu = tlv(PDU_RESPONSE, _enc_int(note.request_id) + b"\x02\x01\x00\x02\x01\x00"
              + encode_varbinds(vbs))
    return tlv(SEQUENCE, _enc_int(note.version) + tlv(OCTET_STRING, note.community) + pdu)


def encode_trap_v2(community: bytes, trap_oid: Oid,
                   varbinds: Sequence[tuple[Oid, int, Value]] = (), *, uptime: int = 0,
                   request_id: int = 1, inform: bool = False) -> bytes:
    """A v2c SNMPv2-Trap (or InformRequest) message (tests, the demo lab)."""
    vbs: list[tuple[Oid, int, Value]] = [
           (SYS_UPTIME_0, TIMETICKS, uptime), (SNMP_TRAP_OID, OBJECT_ID, trap_oid),
           *varbinds]
    pdu = tlv(PDU_INFORM if inform else PDU_TRAP_V2,
              _enc_int(request_id) + b"\x02\x01\x00\x02\x01\x00" + encode_varbinds(vbs))
    return tlv(SEQUENCE, _enc_int(1) + tlv(OCTET_STRING, community) + pdu)


def encode_trap_v1(community: bytes, enterprise: Oid, agent_address: bytes, generic: int,
                   specific: int, varbinds: Sequence[tuple[Oid, int, Value]] = (), *,
                   uptime: int = 0) -> bytes:
    """A v1 Trap-PDU message (tests, the demo lab)."""
    pdu = tlv(PDU_TRAP_V1, tlv(OBJECT_ID, encode_oid(enterprise))
              + tlv(IP_ADDRESS, agent_address) + _enc_int(generic) + _enc_int(specific)
              + _enc_value(TIMETICKS, uptime) + encode_varbinds(varbinds))
    return tlv(SEQUENCE, _enc_int(0) + tlv(OCTET_STRING, community) + pdu)
