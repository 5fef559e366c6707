"""The simulated SNMP agents' side of the protocol: request codec, MIB and answers.

Built on the probe's own BER primitives (:mod:`monitord.probes.snmp.codec`).  The
agents answer GET, GETNEXT and GETBULK the way net-snmp does: lexicographic OID order,
``noSuchObject``/``noSuchInstance`` for GET, ``endOfMibView`` past the end,
max-repetitions respected and responses capped at :data:`MAX_MESSAGE` bytes (``tooBig``
when not even one variable fits).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from monitord.probes.snmp import codec as w
from monitord.probes.snmp.codec import MalformedReply, Oid, Value

#: response size cap, as net-snmp's default for UDP (a little under one Ethernet frame)
MAX_MESSAGE: Final = 1400
#: most variable bindings accepted in one request (more: the request is dropped)
MAX_REQUEST_VARBINDS: Final = 256

ERR_TOO_BIG: Final = 1

# ---------------------------------------------------------------------------- codec


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded v1/v2c request (GET, GETNEXT, GETBULK)."""

    version: int
    community: bytes
    pdu_type: int
    request_id: int
    non_repeaters: int   # GETBULK only (the error-status field of other PDUs)
    max_repetitions: int  # GETBULK only (the error-index field of other PDUs)
    oids: list[Oid]


def _read_tlv(data: bytes, i: int, end: int) -> tuple[int, int, int]:
    """TLV at ``data[i]`` → (tag, content start, content end); bounded by ``end``."""
    if i >= end:
        raise MalformedReply("truncated TLV")
    n, j = w.read_len(data, i + 1, end)
    return data[i], j, j + n


def decode_request(data: bytes) -> Request:
    """Decode a request message; raise :class:`MalformedReply` when it does not parse."""
    tag, s, e = _read_tlv(data, 0, len(data))
    if tag != w.SEQUENCE:
        raise MalformedReply("message is not a SEQUENCE")
    version, i = w.read_int(data, s, e)
    tag, cs, ce = _read_tlv(data, i, e)
    if tag != w.OCTET_STRING:
        raise MalformedReply("community is not an OCTET STRING")
    pdu_type, ps, pe = _read_tlv(data, ce, e)
    if pdu_type not in (w.PDU_GET, w.PDU_GETNEXT, w.PDU_GETBULK):
        raise MalformedReply(f"unsupported PDU 0x{pdu_type:02x}")
    rid, i = w.read_int(data, ps, pe)
    f1, i = w.read_int(data, i, pe)
    f2, i = w.read_int(data, i, pe)
    tag, vs, ve = _read_tlv(data, i, pe)
    if tag != w.SEQUENCE:
        raise MalformedReply("varbind list is not a SEQUENCE")
    oids: list[Oid] = []
    i = vs
    for _ in range(MAX_REQUEST_VARBINDS + 1):
        if i >= ve:
            break
        tag, bs, be = _read_tlv(data, i, ve)
        if tag != w.SEQUENCE:
            raise MalformedReply("varbind is not a SEQUENCE")
        tag, os_, oe = _read_tlv(data, bs, be)
        if tag != w.OBJECT_ID or os_ == oe:
            raise MalformedReply("varbind without OID")
        oids.append(w.decode_oid(data[os_:oe]))
        i = be
    else:
        raise MalformedReply("too many varbinds")
    return Request(version, data[cs:ce], pdu_type, rid, f1, f2, oids)


def tlv(tag: int, body: bytes) -> bytes:
    """One BER TLV: ``tag``, the length (short or long form), ``body``."""
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def encode_value(tag: int, value: Value) -> bytes:
    """One value as a BER TLV (INTEGER, OCTET STRING, OID, the application types, NULL,
    and the v2c exceptions)."""
    if tag == w.INTEGER:
        assert isinstance(value, int)
        return tlv(tag, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))
    if tag in (w.COUNTER32, w.GAUGE32, w.TIMETICKS, w.COUNTER64):
        assert isinstance(value, int) and value >= 0
        limit = 1 << (64 if tag == w.COUNTER64 else 32)
        value %= limit
        return tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))
    if tag in (w.OCTET_STRING, w.IP_ADDRESS, w.OPAQUE):
        assert isinstance(value, bytes)
        return tlv(tag, value)
    if tag == w.OBJECT_ID:
        assert isinstance(value, tuple)
        return tlv(tag, w.encode_oid(value))
    if tag == w.NULL or tag in w.EXCEPTION_TAGS:
        return bytes((tag, 0))
    raise ValueError(f"cannot encode tag 0x{tag:02x}")


def encode_varbind(oid: Oid | bytes, tag: int, value: Value) -> bytes:
    raw = oid if isinstance(oid, bytes) else w.encode_oid(oid)
    return tlv(w.SEQUENCE, tlv(w.OBJECT_ID, raw) + encode_value(tag, value))


def encode_response(version: int, community: bytes, request_id: int,
                    varbinds: Sequence[bytes], error_status: int = 0,
                    error_index: int = 0) -> bytes:
    """A Response-PDU message from already encoded varbinds."""
    pdu = tlv(w.PDU_RESPONSE, encode_value(w.INTEGER, request_id)
               + encode_value(w.INTEGER, error_status) + encode_value(w.INTEGER, error_index)
               + tlv(w.SEQUENCE, b"".join(varbinds)))
    return tlv(w.SEQUENCE, encode_value(w.INTEGER, version)
                + tlv(w.OCTET_STRING, community) + pdu)


# ---------------------------------------------------------------------------- the MIB

#: a value computed when asked; gets seconds since the device (re)booted
Getter = Callable[[float], tuple[int, Value]]


class Mib:
    """One agent's objects, kept in lexicographic OID order (tuples sort that way)."""

    def __init__(self) -> None:
        self._values: dict[Oid, Getter] = {}
        self._objects: set[Oid] = set()     # scalars and columns: "the object exists"
        self._keys: list[Oid] = []
        self._encoded: dict[Oid, bytes] = {}

    def add(self, obj: Oid, instance: Oid, getter: Getter) -> None:
        oid = obj + instance
        self._objects.add(obj)
        self._values[oid] = getter
        self._encoded[oid] = w.encode_oid(oid)

    def scalar(self, obj: str, getter: Getter) -> None:
        self.add(w.parse_oid(obj), (0,), getter)

    def freeze(self) -> None:
        self._keys = sorted(self._values)

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, oid: Oid, uptime: float) -> tuple[int, Value]:
        getter = self._values.get(oid)
        if getter is not None:
            return getter(uptime)
        if any(oid[:k] in self._objects for k in range(1, len(oid))):
            return w.NO_SUCH_INSTANCE, None
        return w.NO_SUCH_OBJECT, None

    def next(self, oid: Oid, uptime: float) -> tuple[Oid, int, Value]:
        """The first object after ``oid``; (oid, endOfMibView) past the end."""
        k = bisect.bisect_right(self._keys, oid)
        if k >= len(self._keys):
            return oid, w.END_OF_MIB_VIEW, None
        nxt = self._keys[k]
        tag, value = self._values[nxt](uptime)
        return nxt, tag, value

    def varbind(self, oid: Oid, tag: int, value: Value) -> bytes:
        return encode_varbind(self._encoded.get(oid) or w.encode_oid(oid), tag, value)


def answer(mib: Mib, req: Request, uptime: float, max_message: int = MAX_MESSAGE) -> bytes:
    """The response to one decoded request, at most ``max_message`` bytes."""
    overhead = len(encode_response(req.version, req.community, req.request_id, [])) + 8
    budget = max_message - overhead
    vbs: list[bytes] = []
    used = 0

    def fits(vb: bytes) -> bool:
        nonlocal used
        if used + len(vb) > budget:
            return False
        vbs.append(vb)
        used += len(vb)
        return True

    too_big = False
    if req.pdu_type == w.PDU_GET:
        for oid in req.oids:
            tag, value = mib.get(oid, uptime)
            if not fits(mib.varbind(oid, tag, value)):
                too_big = True
                break
    elif req.pdu_type == w.PDU_GETNEXT:
        for oid in req.oids:
            if not fits(mib.varbind(*mib.next(oid, uptime))):
                too_big = True
                break
    else:
        too_big = not _bulk(mib, req, uptime, fits)
    if too_big:
        # RFC 3416 §4.2.1: tooBig with the request's variables (values NULL) if they fit
        vbs = [encode_varbind(o, w.NULL, None) for o in req.oids]
        if sum(map(len, vbs)) > budget:
            vbs = []
        return encode_response(req.version, req.community, req.request_id, vbs,
                               ERR_TOO_BIG, 0)
    return encode_response(req.version, req.community, req.request_id, vbs)


def _bulk(mib: Mib, req: Request, uptime: float, fits: Callable[[bytes], bool]) -> bool:
    """GETBULK (RFC 3416 §4.2.3): non-repeaters once, then max-repetitions rows of the
    rest.  Stops early when a row is all endOfMibView or the next varbind does not fit;
    False only when not even the non-repeaters fit."""
    n = min(max(req.non_repeaters, 0), len(req.oids))
    reps = max(req.max_repetitions, 0)
    for oid in req.oids[:n]:
        if not fits(mib.varbind(*mib.next(oid, uptime))):
            return False
    cursor = list(req.oids[n:])
    if not cursor:
        return True
    for _ in range(min(reps, MAX_MESSAGE)):   # bounded: each varbind is > 1 byte anyway
        ended = 0
        for k, oid in enumerate(cursor):
            nxt, tag, value = mib.next(oid, uptime)
            if tag == w.END_OF_MIB_VIEW:
                ended += 1
            if not fits(mib.varbind(nxt, tag, value)):
                return True
            cursor[k] = nxt
        if ended == len(cursor):
            break
    return True
