"""The SNMP trap receiver: v1 Trap-PDUs, v2c SNMPv2-Traps and informs over UDP.

Not a polled probe: like the MQTT source it runs for the whole life of the daemon and
hands what it hears to the app (:class:`TrapEvent` through ``on_trap``), which records an
event and asks the scheduler for an early poll of the device.

Decoding is the project's own BER codec (:func:`.codec.decode_notification`); SNMPv3 traps
(USM) are not accepted: they are counted ``malformed`` (see docs/snmp.md § Traps).

Every datagram is counted once in ``monitord_snmp_traps_total{trap,result}``:

* ``malformed``      — not a v1/v2c notification (garbage, other PDUs, v3); never a crash;
* ``bad_community``  — decoded, but the community is none of the configured ones;
* ``unknown_source`` — community good, but the sender's address is no configured
  device's address (counted, logged at most once a minute with a count; never a device);
* ``accepted``       — a configured device sent it; informs are acknowledged.

Binding UDP port 162 needs root or ``CAP_NET_BIND_SERVICE`` (or a high port with an
iptables REDIRECT); a bind failure is a :class:`ProbeSetupError` with that hint.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from monitord.probes.base import ProbeSetupError
from monitord.probes.metrics import MetricFamily
from monitord.probes.ratelog import RateLimitedLog
from monitord.probes.snmp import codec
from monitord.probes.snmp.codec import Oid
from monitord.probes.snmp.metrics import TRAPS as TRAPS_SPEC
from monitord.values import Duration, SecretRef

log = logging.getLogger("monitord.snmp.traps")

_T: Final = codec.SNMP_TRAPS
#: snmpTrapOID → the ``trap`` label; anything else is ``other``
TRAP_NAMES: Final[Mapping[Oid, str]] = {
    (*_T, 1): "coldStart",
    (*_T, 2): "warmStart",
    (*_T, 3): "linkDown",
    (*_T, 4): "linkUp",
    (*_T, 5): "authenticationFailure",
    (1, 3, 6, 1, 2, 1, 33, 2, 0, 1): "upsOnBattery",   # UPS-MIB upsTrapOnBattery
    (1, 3, 6, 1, 4, 1, 318, 0, 5): "upsOnBattery",     # APC PowerNet-MIB upsOnBattery
}
TRAP_KINDS: Final = ("linkDown", "linkUp", "coldStart", "warmStart", "authenticationFailure",
                     "upsOnBattery", "other")
RESULTS: Final = ("accepted", "bad_community", "unknown_source", "malformed")
#: IF-MIB ifIndex column: linkDown/linkUp carry ifIndex.N (plus admin/oper status .N)
IF_INDEX: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
_IF_TABLE_ENTRY: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1)
#: receive buffer: a burst of traps (a switch rebooting, every port flapping) must fit
RCVBUF: Final = 1 << 20


class TrapSettings(BaseModel):
    """The trap receiver (config: ``snmp_traps:`` at the top level)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(False, description="listen for SNMP traps")
    listen: list[str] = Field(default_factory=lambda: ["0.0.0.0:162"], min_length=1,
                              description="HOST:PORT or [V6]:PORT to listen on; port 162 "
                                          "needs root or CAP_NET_BIND_SERVICE")
    communities: list[SecretRef | SecretStr] = Field(
        default_factory=list, description="communities accepted ({env|file}); a trap with "
                                          "another one is counted bad_community")
    repoll: bool = Field(True, description="poll the sending device at once on a "
                                           "link/restart/auth/UPS trap")
    repoll_min_interval: Duration = Field(10.0, ge=0.0, le=3600.0,
                                          description="early polls per device at most "
                                                      "this often")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: list[str]) -> list[str]:
        for item in v:
            split_listen(item)
        return v

    @model_validator(mode="after")
    def _communities(self) -> TrapSettings:
        if self.enabled and not self.communities:
            raise ValueError("snmp_traps is enabled but no 'communities' are given")
        return self

    def addresses(self) -> list[tuple[str, int]]:
        return [split_listen(x) for x in self.listen]

    def reveal_communities(self) -> list[bytes]:
        """The community strings (reads env/files; LookupError/OSError if missing)."""
        return [(c.reveal() if isinstance(c, SecretRef) else c.get_secret_value()).encode()
                for c in self.communities]


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port); ``:162`` means every IPv4 address."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value.strip())
    if not m:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {value!r}")
    return m.group(1) or m.group(3) or "0.0.0.0", port


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """An accepted trap from a configured device (or several sharing its address)."""

    device_ids: tuple[str, ...]
    source: str
    trap: str
    trap_oid: str
    version: str
    inform: bool
    if_index: int | None = None

    @property
    def actionable(self) -> bool:
        """Worth an early poll and an event (the named kinds; not ``other``)."""
        return self.trap != "other"

    @property
    def summary(self) -> str:
        text = self.trap if self.trap != "other" else f"other {self.trap_oid}"
        return text + (f" ifIndex {self.if_index}" if self.if_index is not None else "")


def normalize_address(host: str) -> str:
    """An IP as device addresses are written (IPv4-mapped IPv6 → IPv4)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def trap_name(trap_oid: Oid) -> str:
    return TRAP_NAMES.get(trap_oid, "other")


def if_index_of(note: codec.Notification) -> int | None:
    """The interface a linkDown/linkUp names: the ifIndex varbind's value, or the index
    suffix of any ifTable column it carries."""
    for raw, tag, value in note.varbinds:
        try:
            oid = codec.decode_oid(raw)
        except codec.MalformedReply:
            continue
        if oid[:len(IF_INDEX)] == IF_INDEX and tag == codec.INTEGER and isinstance(value, int):
            return value
        if oid[:len(_IF_TABLE_ENTRY)] == _IF_TABLE_ENTRY and len(oid) == 11:
            return oid[10]
    return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: TrapReceiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            reply = self.receiver.handle(data, str(addr[0]))
        except Exception:  # a bug here must not stop the receiver
            log.exception("handling an SNMP trap failed")
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("trap socket error: %s", exc)


class TrapReceiver:
    """Listens on ``listen``; calls ``on_trap`` for every accepted trap."""

    def __init__(self, listen: Sequence[tuple[str, int]], communities: Iterable[bytes],
                 on_trap: Callable[[TrapEvent], None], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.listen = list(listen)
        self._communities = list(communities)
        self._on_trap = on_trap
        self._by_address: dict[str, tuple[str, ...]] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self.counts: Counter[tuple[str, str]] = Counter(
            {(t, r): 0 for t in TRAP_KINDS for r in RESULTS})
        self._unknown_log = RateLimitedLog(log, 1, "SNMP traps from unknown sources", clock)
        self._community_log = RateLimitedLog(log, 1, "SNMP traps with a wrong community",
                                             clock)
        self._malformed_log = RateLimitedLog(log, 1, "malformed SNMP trap datagrams", clock)

    # -- configuration ---------------------------------------------------------------

    def set_devices(self, by_address: Mapping[str, Iterable[str]]) -> None:
        """Source address → the configured devices with that address."""
        self._by_address = {normalize_address(a): tuple(ids) for a, ids in by_address.items()}

    def set_communities(self, communities: Iterable[bytes]) -> None:
        self._communities = list(communities)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where it listens (the bound ports, after :meth:`start`)."""
        return [t.get_extra_info("sockname")[:2] for t in self._transports]

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for host, port in self.listen:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                    if family == socket.AF_INET6:  # "[::]:162" next to "0.0.0.0:162"
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((host, port))
                except OSError as exc:
                    sock.close()
                    hint = (" (ports below 1024 need root or CAP_NET_BIND_SERVICE: "
                            "`setcap cap_net_bind_service=+ep` on the interpreter, "
                            "AmbientCapabilities= in systemd, or listen on a high port "
                            "with an iptables REDIRECT from 162)"
                            if port < 1024 and isinstance(exc, PermissionError) else "")
                    raise ProbeSetupError(f"cannot listen for SNMP traps on "
                                          f"{host}:{port}: {exc.strerror or exc}{hint}"
                                          ) from exc
                sock.setblocking(False)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), sock=sock)
                self._transports.append(transport)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for t in self._transports:
            t.close()
        self._transports = []

    # -- one datagram ------------------------------------------------------------------

    def handle(self, data: bytes, host: str) -> bytes | None:
        """Count and act on one datagram from ``host``; the bytes to send back (an
        inform's acknowledgement) or None."""
        try:
            note = codec.decode_notification(data)
        except codec.MalformedReply as exc:
            self.counts[("other", "malformed")] += 1
            self._malformed_log.log(logging.WARNING, "malformed SNMP trap from %s: %s",
                                    host, exc)
            return None
        trap = trap_name(note.trap_oid)
        if not any(hmac.compare_digest(note.community, c) for c in self._communities):
            self.counts[(trap, "bad_community")] += 1
            self._community_log.log(logging.WARNING, "SNMP trap %s from %s with a wrong "
                                    "community", trap, host)
            return None
        reply = codec.encode_inform_response(note) if note.inform else None
        source = normalize_address(host)
        devices = self._by_address.get(source)
        if not devices:
            self.counts[(trap, "unknown_source")] += 1
            self._unknown_log.log(logging.WARNING, "SNMP trap %s from %s, which is no "
                                  "configured device's address: ignored", trap, source)
            return reply
        self.counts[(trap, "accepted")] += 1
        event = TrapEvent(devices, source, trap, codec.format_oid(note.trap_oid),
                          "1" if note.version == 0 else "2c", note.inform,
                          if_index_of(note) if trap in ("linkDown", "linkUp") else None)
        try:
            self._on_trap(event)
        except Exception:
            log.exception("acting on SNMP trap %s from %s failed", trap, source)
        return reply

    def metrics(self) -> list[MetricFamily]:
        return [TRAPS_SPEC.family({k: float(n) for k, n in self.counts.items()})]
