"""Simulated SNMP v2c agents for ``monitord demo``, on the probe's own BER codec.

Each simulated device gets one UDP socket bound to its own loopback address on
:data:`SNMP_PORT`, so replies come from the address that was asked (the prober checks
the source).  The agents answer GET, GETNEXT and GETBULK the way net-snmp does:
lexicographic OID order, ``noSuchObject``/``noSuchInstance`` for GET, ``endOfMibView``
past the end, max-repetitions respected and responses capped at :data:`MAX_MESSAGE`
bytes (``tooBig`` when not even one variable fits).  Requests with another community,
another version than v2c, or that do not parse are dropped silently, like a real agent.

What the lab simulates (values are computed from the clock when asked, nothing runs
between requests, so the simulator costs no CPU while idle):

* routers, switches, access points — IF-MIB ``ifTable`` + ``ifXTable`` with 32- and 64-bit
  octet counters growing at a per-device rate that swings over the day;
* servers — HOST-RESOURCES-MIB ``hrProcessorLoad`` and ``hrStorage`` (RAM + disks), UCD
  ``laLoad`` (net-snmp on Linux; the Mikrotik has no UCD-MIB, as in real life);
* UPSes — UPS-MIB (RFC 1628) battery group and output source; a UPS can be given a
  mains-failure cycle (on battery for a while every few minutes);
* every device — the system group (sysDescr, sysObjectID, sysUpTime, sysName …); a device
  can "reboot" periodically (sysUpTime and its counters restart).

Devices in the dead block get no socket: they do not answer SNMP either.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from monitord.probes.snmp import codec as w
from monitord.probes.snmp.codec import MalformedReply, Oid, Value

log = logging.getLogger(__name__)

#: UDP port of every simulated agent (unprivileged, so the demo needs no root for SNMP)
SNMP_PORT: Final = 16161
#: the environment variable that carries the demo's community (config: ``{env: …}``)
COMMUNITY_ENV: Final = "MONITORD_DEMO_SNMP_COMMUNITY"
DEFAULT_COMMUNITY: Final = "demo-public"
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


def _tlv(tag: int, body: bytes) -> bytes:
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
        return _tlv(tag, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))
    if tag in (w.COUNTER32, w.GAUGE32, w.TIMETICKS, w.COUNTER64):
        assert isinstance(value, int) and value >= 0
        limit = 1 << (64 if tag == w.COUNTER64 else 32)
        value %= limit
        return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))
    if tag in (w.OCTET_STRING, w.IP_ADDRESS, w.OPAQUE):
        assert isinstance(value, bytes)
        return _tlv(tag, value)
    if tag == w.OBJECT_ID:
        assert isinstance(value, tuple)
        return _tlv(tag, w.encode_oid(value))
    if tag == w.NULL or tag in w.EXCEPTION_TAGS:
        return bytes((tag, 0))
    raise ValueError(f"cannot encode tag 0x{tag:02x}")


def encode_varbind(oid: Oid | bytes, tag: int, value: Value) -> bytes:
    raw = oid if isinstance(oid, bytes) else w.encode_oid(oid)
    return _tlv(w.SEQUENCE, _tlv(w.OBJECT_ID, raw) + encode_value(tag, value))


def encode_response(version: int, community: bytes, request_id: int,
                    varbinds: Sequence[bytes], error_status: int = 0,
                    error_index: int = 0) -> bytes:
    """A Response-PDU message from already encoded varbinds."""
    pdu = _tlv(w.PDU_RESPONSE, encode_value(w.INTEGER, request_id)
               + encode_value(w.INTEGER, error_status) + encode_value(w.INTEGER, error_index)
               + _tlv(w.SEQUENCE, b"".join(varbinds)))
    return _tlv(w.SEQUENCE, encode_value(w.INTEGER, version)
                + _tlv(w.OCTET_STRING, community) + pdu)


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


# ---------------------------------------------------------------------------- devices

SYS = "1.3.6.1.2.1.1."
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
HR_STORAGE_TABLE = (1, 3, 6, 1, 2, 1, 25, 2, 3, 1)
HR_PROCESSOR_LOAD = (1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2)
HR_STORAGE_TYPES = {
    "other": (1, 3, 6, 1, 2, 1, 25, 2, 1, 1), "ram": (1, 3, 6, 1, 2, 1, 25, 2, 1, 2),
    "virtual": (1, 3, 6, 1, 2, 1, 25, 2, 1, 3), "disk": (1, 3, 6, 1, 2, 1, 25, 2, 1, 4),
}
IF_TYPES = {"ethernet": 6, "gpon": 250, "wifi": 71, "vlan": 53, "loopback": 24, "other": 1}
DAY: Final = 86400.0


def _seed(text: str) -> int:
    """A stable small number from a name (hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _swing(t: float, period: float, phase: float) -> float:
    """Integral of (1 + 0.5·sin) over [0, t]: a counter whose rate swings by ±50 %."""
    omega = 2 * math.pi / period
    return t + 0.5 / omega * (math.cos(phase) - math.cos(omega * t + phase))


@dataclass(frozen=True, slots=True)
class Interface:
    index: int
    name: str                 # ifName (short: "wan", "Fa0/1")
    descr: str                # ifDescr
    speed_mbps: int
    kind: str = "ethernet"
    up: bool = True
    in_rate: float = 0.0      # mean bytes per second received
    out_rate: float = 0.0
    error_every: float = 0.0  # seconds per input error (0: none)


@dataclass(slots=True)
class SimAgent:
    """One simulated device: what it says about itself and how it behaves over time."""

    device_id: str
    address: str
    sys_name: str
    sys_descr: str
    sys_object_id: Oid
    location: str = ""
    profile: str = "basic"
    interfaces: list[Interface] = field(default_factory=list)
    cpus: int = 0
    ram_kib: int = 0
    disks: list[tuple[str, int]] = field(default_factory=list)  # (mount, bytes)
    ucd: bool = False         # net-snmp's UCD-SNMP-MIB (laLoad)
    ups: bool = False
    #: mains fails for ``battery_seconds`` at the end of every ``battery_cycle`` seconds
    battery_cycle: float = 0.0
    battery_seconds: float = 0.0
    battery_offset: float = 0.0
    #: sysUpTime restarts every this many seconds (0: never)
    reboot_every: float = 0.0
    #: uptime (seconds) when the simulator starts
    initial_uptime: float = 0.0
    started: float = 0.0
    mib: Mib = field(default_factory=Mib)

    # -- time

    def uptime(self, now: float | None = None) -> float:
        """Seconds since this device last booted."""
        t = (time.monotonic() if now is None else now) - self.started + self.initial_uptime
        if self.reboot_every > 0:
            return t % self.reboot_every
        return t

    def boots(self, now: float | None = None) -> int:
        """How many times the device has rebooted since the simulator started."""
        if self.reboot_every <= 0:
            return 0
        t = (time.monotonic() if now is None else now) - self.started + self.initial_uptime
        return int(t // self.reboot_every) - int(self.initial_uptime // self.reboot_every)

    def on_battery_for(self, now: float | None = None) -> float:
        """Seconds the UPS has been on battery (0: on mains)."""
        if self.battery_cycle <= 0:
            return 0.0
        t = (time.monotonic() if now is None else now) - self.started + self.battery_offset
        pos = t % self.battery_cycle
        start = self.battery_cycle - self.battery_seconds
        return pos - start if pos >= start else 0.0

    # -- building the MIB

    def build(self) -> SimAgent:
        m = self.mib
        seed = _seed(self.device_id)
        m.scalar(SYS + "1", _const(w.OCTET_STRING, self.sys_descr.encode()))
        m.scalar(SYS + "2", _const(w.OBJECT_ID, self.sys_object_id))
        m.scalar(SYS + "3", lambda up: (w.TIMETICKS, int(up * 100)))
        m.scalar(SYS + "4", _const(w.OCTET_STRING, b"DLICT <dlict@demo.invalid>"))
        m.scalar(SYS + "5", _const(w.OCTET_STRING, self.sys_name.encode()))
        m.scalar(SYS + "6", _const(w.OCTET_STRING, self.location.encode()))
        m.scalar(SYS + "7", _const(w.INTEGER, 72 if self.profile == "server" else 6))
        if self.interfaces:
            self._build_interfaces(seed)
        if self.cpus:
            self._build_host(seed)
        if self.ups:
            self._build_ups()
        m.freeze()
        return self

    def _build_interfaces(self, seed: int) -> None:
        m = self.mib
        m.scalar("1.3.6.1.2.1.2.1", _const(w.INTEGER, len(self.interfaces)))
        for n, itf in enumerate(self.interfaces):
            i = (itf.index,)
            mac = bytes((0x02, 0x64, (seed >> 8) & 0xFF, seed & 0xFF, n >> 8, n & 0xFF))
            status = 1 if itf.up else 2
            phase = (seed % 628) / 100 + n
            octets_in = _octets(itf.in_rate if itf.up else 0.0, phase, seed + n)
            octets_out = _octets(itf.out_rate if itf.up else 0.0, phase + 1.3, seed + 2 * n)
            pkts_in = _scaled(octets_in, 1 / 700)
            pkts_out = _scaled(octets_out, 1 / 900)
            errors = _every(itf.error_every)
            speed32 = min(itf.speed_mbps * 1_000_000, 0xFFFFFFFF)
            cols: list[tuple[Oid, int, Getter]] = [
                (IF_TABLE, 1, _const(w.INTEGER, itf.index)),
                (IF_TABLE, 2, _const(w.OCTET_STRING, itf.descr.encode())),
                (IF_TABLE, 3, _const(w.INTEGER, IF_TYPES.get(itf.kind, 1))),
                (IF_TABLE, 4, _const(w.INTEGER, 1500)),
                (IF_TABLE, 5, _const(w.GAUGE32, speed32)),
                (IF_TABLE, 6, _const(w.OCTET_STRING, mac)),
                (IF_TABLE, 7, _const(w.INTEGER, 1)),
                (IF_TABLE, 8, _const(w.INTEGER, status)),
                (IF_TABLE, 9, _const(w.TIMETICKS, 0)),
                (IF_TABLE, 10, _counter32(octets_in)),
                (IF_TABLE, 11, _counter32(pkts_in)),
                (IF_TABLE, 13, _const(w.COUNTER32, 0)),
                (IF_TABLE, 14, _counter32(errors)),
                (IF_TABLE, 16, _counter32(octets_out)),
                (IF_TABLE, 17, _counter32(pkts_out)),
                (IF_TABLE, 19, _const(w.COUNTER32, 0)),
                (IF_TABLE, 20, _const(w.COUNTER32, 0)),
                (IFX_TABLE, 1, _const(w.OCTET_STRING, itf.name.encode())),
                (IFX_TABLE, 6, _counter64(octets_in)),
                (IFX_TABLE, 7, _counter64(pkts_in)),
                (IFX_TABLE, 10, _counter64(octets_out)),
                (IFX_TABLE, 11, _counter64(pkts_out)),
                (IFX_TABLE, 15, _const(w.GAUGE32, itf.speed_mbps)),
                (IFX_TABLE, 18, _const(w.OCTET_STRING, b"")),
            ]
            for table, column, getter in cols:
                m.add((*table, column), i, getter)

    def _build_host(self, seed: int) -> None:
        m = self.mib
        base = 0.08 + (seed % 30) / 100
        for c in range(self.cpus):
            def load(up: float, c: int = c) -> tuple[int, Value]:
                swing = 0.5 + 0.5 * math.sin(up / 300 + c)
                return w.INTEGER, int(min(100, 100 * base * (0.6 + swing)))
            m.add(HR_PROCESSOR_LOAD, (196608 + c,), load)
        # (hrStorageIndex, type, descr, allocation unit, size in units, used(uptime))
        rows: list[tuple[int, str, str, int, int, Callable[[float], int]]] = []
        if self.ram_kib:
            ram = self.ram_kib
            rows.append((1, "ram", "Physical memory", 1024, ram,
                         lambda up: int(ram * (0.55 + 0.1 * math.sin(up / 900)))))
            rows.append((3, "virtual", "Virtual memory", 1024, 2 * ram,
                         lambda up: int(ram * (0.6 + 0.1 * math.sin(up / 900)))))
            rows.append((6, "other", "Memory buffers", 1024, ram, lambda up: ram // 30))
        for k, (mount, size) in enumerate(self.disks):
            fill = 0.35 + ((seed >> k) % 40) / 100
            blocks = size // 4096
            rows.append((31 + k, "disk", mount, 4096, blocks, _filling(blocks, fill)))
        for index, typ, descr, unit, size, used in rows:
            i = (index,)
            m.add((*HR_STORAGE_TABLE, 1), i, _const(w.INTEGER, index))
            m.add((*HR_STORAGE_TABLE, 2), i, _const(w.OBJECT_ID, HR_STORAGE_TYPES[typ]))
            m.add((*HR_STORAGE_TABLE, 3), i, _const(w.OCTET_STRING, descr.encode()))
            m.add((*HR_STORAGE_TABLE, 4), i, _const(w.INTEGER, unit))
            m.add((*HR_STORAGE_TABLE, 5), i, _const(w.INTEGER, size))
            m.add((*HR_STORAGE_TABLE, 6), i, _capped(used, size))
        if self.ucd:
            for k, minutes in enumerate((1, 5, 15), start=1):
                def la(up: float, minutes: int = minutes) -> tuple[int, Value]:
                    value = self.cpus * base * (1 + 0.4 * math.sin(up / (120 * minutes)))
                    return w.OCTET_STRING, f"{value:.2f}".encode()
                m.add((1, 3, 6, 1, 4, 1, 2021, 10, 1, 2), (k,),
                      _const(w.OCTET_STRING, f"Load-{minutes}".encode()))
                m.add((1, 3, 6, 1, 4, 1, 2021, 10, 1, 3), (k,), la)

    def _build_ups(self) -> None:
        m = self.mib
        ups = "1.3.6.1.2.1.33.1."

        def on_battery(up: float) -> float:
            return self.on_battery_for()

        def charge(up: float) -> int:
            return max(20, int(100 - on_battery(up) / 3))

        m.scalar(ups + "1.1", _const(w.OCTET_STRING, b"APC"))
        m.scalar(ups + "1.2", _const(w.OCTET_STRING, b"Smart-UPS 3000"))
        m.scalar(ups + "2.1", lambda up: (w.INTEGER, 2 if charge(up) > 25 else 3))
        m.scalar(ups + "2.2", lambda up: (w.INTEGER, int(on_battery(up))))
        m.scalar(ups + "2.3", lambda up: (w.INTEGER, max(1, int(42 * charge(up) / 100))))
        m.scalar(ups + "2.4", lambda up: (w.INTEGER, charge(up)))
        m.scalar(ups + "2.5", _const(w.INTEGER, 546))   # battery voltage, 0.1 V
        m.scalar(ups + "4.1", lambda up: (w.INTEGER, 5 if on_battery(up) > 0 else 3))
        m.scalar(ups + "4.2", _const(w.INTEGER, 500))   # output frequency, 0.1 Hz


def _const(tag: int, value: Value) -> Getter:
    pair = (tag, value)
    return lambda up: pair


def _filling(blocks: int, fill: float) -> Callable[[float], int]:
    """Disk blocks used: a share of the disk, growing a block a minute (logs)."""
    return lambda up: int(blocks * fill + up / 60)


def _capped(used: Callable[[float], int], size: int) -> Getter:
    return lambda up: (w.INTEGER, min(size, used(up)))


def _octets(rate: float, phase: float, seed: int) -> Callable[[float], int]:
    """Total octets after ``up`` seconds at a mean ``rate`` swinging over the day."""
    if rate <= 0:
        return lambda up: 0
    start = seed % 100_000

    def total(up: float) -> int:
        return start + int(rate * _swing(up, DAY / 4, phase))
    return total


def _scaled(f: Callable[[float], int], k: float) -> Callable[[float], int]:
    return lambda up: int(f(up) * k)


def _every(seconds: float) -> Callable[[float], int]:
    if seconds <= 0:
        return lambda up: 0
    return lambda up: int(up / seconds)


def _counter32(f: Callable[[float], int]) -> Getter:
    """A 32-bit counter: the total modulo 2³² (it wraps, as real ones do)."""
    return lambda up: (w.COUNTER32, f(up) & 0xFFFFFFFF)


def _counter64(f: Callable[[float], int]) -> Getter:
    return lambda up: (w.COUNTER64, f(up) & 0xFFFFFFFFFFFFFFFF)


# ---------------------------------------------------------------------------- the lab's agents

_SYS_OBJECT_IDS: Final[dict[str, Oid]] = {
    "huawei": (1, 3, 6, 1, 4, 1, 2011, 2, 248),
    "cisco-isr": (1, 3, 6, 1, 4, 1, 9, 1, 2068),
    "cisco-2960": (1, 3, 6, 1, 4, 1, 9, 1, 1208),
    "ubiquiti": (1, 3, 6, 1, 4, 1, 41112, 1, 6),
    "linux": (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10),
    "mikrotik": (1, 3, 6, 1, 4, 1, 14988, 1),
    "apc": (1, 3, 6, 1, 4, 1, 318, 1, 3, 27),
    "other": (1, 3, 6, 1, 4, 1, 8072, 3, 2, 255),
}


def agent_for(device: Mapping[str, Any], *, reboot_every: float = 0.0,
              battery_cycle: float = 0.0, battery_seconds: float = 0.0,
              battery_offset: float = 0.0) -> SimAgent:
    """A simulated agent for one lab device (a config entry: id, kind, address …)."""
    dev_id = str(device["id"])
    kind = str(device.get("kind", "other"))
    model = str(device.get("brand_model", ""))
    seed = _seed(dev_id)
    name = str(device.get("hostname") or dev_id)
    location = str(device.get("name", ""))
    initial = float(3 * 3600 + seed % (40 * 86400))     # up for hours to weeks
    if reboot_every > 0:
        initial = reboot_every * 0.8   # the first reboot comes soon after the demo starts
    agent = SimAgent(dev_id, str(device["address"]), name, "", _SYS_OBJECT_IDS["other"],
                     location=location, initial_uptime=initial, reboot_every=reboot_every,
                     battery_cycle=battery_cycle, battery_seconds=battery_seconds,
                     battery_offset=battery_offset)
    if kind == "router" and "Cisco" in model:
        agent.profile = "router"
        agent.sys_descr = ("Cisco IOS Software [Amsterdam], ISR Software "
                           "(X86_64_LINUX_IOSD-UNIVERSALK9-M), Version 17.3.4a")
        agent.sys_object_id = _SYS_OBJECT_IDS["cisco-isr"]
        agent.interfaces = [
            Interface(1, "Gi0/0/0", "GigabitEthernet0/0/0", 1000, in_rate=4.0e6,
                      out_rate=1.2e6, error_every=900),
            Interface(2, "Gi0/0/1", "GigabitEthernet0/0/1", 1000, in_rate=1.1e6,
                      out_rate=3.6e6),
            Interface(3, "Gi0/0/2", "GigabitEthernet0/0/2", 1000, up=False),
            Interface(4, "Nu0", "Null0", 10000, kind="other"),
        ]
    elif kind == "router":
        agent.profile = "router"
        agent.sys_descr = f"{model} EchoLife GPON Terminal V5R020C10S115"
        agent.sys_object_id = _SYS_OBJECT_IDS["huawei"]
        lans = 2 + seed % 3                 # 4–6 interfaces in all
        down_in = 0.3e6 + (seed % 2000) * 1.0e3   # 0.3–2.3 MB/s (2–18 Mbit/s) downstream
        agent.interfaces = [Interface(1, "wan", "GPON WAN", 1000, kind="gpon",
                                      in_rate=down_in, out_rate=down_in / 5,
                                      error_every=1800)]
        for k in range(1, lans + 1):
            up = k < lans or seed % 2 == 0       # the last LAN port is often empty
            agent.interfaces.append(Interface(1 + k, f"lan{k}", f"LAN{k}", 1000, up=up,
                                              in_rate=down_in / 5 / lans,
                                              out_rate=down_in / lans))
        agent.interfaces.append(Interface(2 + lans, "wlan0", "WLAN 2.4G", 300, kind="wifi",
                                          in_rate=down_in / 20, out_rate=down_in / 6))
    elif kind == "switch":
        agent.profile = "switch"
        agent.sys_descr = ("Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), "
                           "Version 15.0(2)SE11")
        agent.sys_object_id = _SYS_OBJECT_IDS["cisco-2960"]
        agent.interfaces = [Interface(1, "Vl1", "Vlan1", 1000, kind="vlan", in_rate=2.0e3,
                                      out_rate=1.0e3)]
        for port in range(1, 25):
            up = (seed >> port) % 4 != 0
            rate = 2.0e4 + ((seed >> (port % 16)) % 50) * 4.0e3
            agent.interfaces.append(Interface(10000 + port, f"Fa0/{port}",
                                              f"FastEthernet0/{port}", 100, up=up,
                                              in_rate=rate, out_rate=rate * 3))
        for port in (1, 2):
            agent.interfaces.append(Interface(10100 + port, f"Gi0/{port}",
                                              f"GigabitEthernet0/{port}", 1000,
                                              up=port == 1, in_rate=3.0e6, out_rate=1.0e6))
    elif kind == "access_point":
        agent.profile = "access_point"
        agent.sys_descr = "Linux U6-Pro 4.4.153 #1 SMP PREEMPT aarch64 (UniFi 6.5.54)"
        agent.sys_object_id = _SYS_OBJECT_IDS["ubiquiti"]
        agent.interfaces = [
            Interface(1, "lo", "lo", 10, kind="loopback", in_rate=50, out_rate=50),
            Interface(2, "eth0", "eth0", 1000, in_rate=1.5e6, out_rate=4.0e5),
            Interface(3, "wifi0", "wifi0", 574, kind="wifi", in_rate=3.0e5, out_rate=1.2e6),
            Interface(4, "wifi1", "wifi1", 2402, kind="wifi", in_rate=1.0e5, out_rate=3.0e5),
        ]
    elif kind == "server" and "Mikrotik" in model:
        agent.profile = "server"
        agent.sys_descr = "RouterOS CCR2004-16G-2S+"
        agent.sys_object_id = _SYS_OBJECT_IDS["mikrotik"]
        agent.cpus, agent.ram_kib = 4, 4 * 1024 * 1024
        agent.disks = [("system", 128 * 1024 ** 2)]
    elif kind == "server":
        agent.profile = "server"
        agent.sys_descr = ("Linux " + name.split(".", maxsplit=1)[0]
                           + " 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 x86_64")
        agent.sys_object_id = _SYS_OBJECT_IDS["linux"]
        agent.cpus = 8 if seed % 2 else 16
        agent.ram_kib = (32 if seed % 2 else 64) * 1024 * 1024
        agent.disks = [("/", 100 * 1024 ** 3), ("/var", 900 * 1024 ** 3)]
        agent.ucd = True
    elif kind == "ups":
        agent.profile = "ups"
        agent.sys_descr = f"APC Web/SNMP Management Card (MB:v4.1.0 PF:v6.9.6) {model}"
        agent.sys_object_id = _SYS_OBJECT_IDS["apc"]
        agent.ups = True
    else:
        agent.sys_descr = f"{model} (embedded Linux)"
    return agent.build()


# ---------------------------------------------------------------------------- the responder


class _AgentProtocol(asyncio.DatagramProtocol):
    def __init__(self, lab: SnmpLab, agent: SimAgent) -> None:
        self.lab = lab
        self.agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self.lab.handle(self.agent, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        self.lab.errors += 1


class SnmpLab:
    """The running simulated agents: one UDP socket per device address.

    Use :meth:`start` inside the event loop that should serve them and :meth:`close` when
    done.  Counters (``requests``, ``answered``, ``dropped``) are for tests and logs.
    """

    def __init__(self, agents: Iterable[SimAgent], community: str,
                 port: int = SNMP_PORT, max_message: int = MAX_MESSAGE) -> None:
        self.agents = {a.address: a for a in agents}
        self.community = community.encode()
        self.port = port
        self.max_message = max_message
        self.requests = 0
        self.answered = 0
        self.dropped = 0
        self.errors = 0
        self._transports: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        try:
            for address, agent in self.agents.items():
                agent.started = now
                tr, _ = await loop.create_datagram_endpoint(
                    functools.partial(_AgentProtocol, self, agent),
                    local_addr=(address, self.port))
                self._transports.append(tr)
        except OSError:
            self.close()
            raise
        log.info("demo: %d simulated SNMP agents on udp port %d", len(self._transports),
                 self.port)

    def handle(self, agent: SimAgent, data: bytes) -> bytes | None:
        self.requests += 1
        try:
            req = decode_request(data)
        except MalformedReply:
            self.dropped += 1
            return None
        if req.version != 1 or req.community != self.community:
            self.dropped += 1   # v2c only; a wrong community is silence, as with snmpd
            return None
        self.answered += 1
        return answer(agent.mib, req, agent.uptime(), self.max_message)

    def close(self) -> None:
        for tr in self._transports:
            tr.close()
        self._transports.clear()

    async def __aenter__(self) -> SnmpLab:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
