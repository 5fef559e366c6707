"""One shared asyncio UDP socket per address family for every SNMPv1/v2c request.

Replies are only accepted from the request's target address and port, with the request's
version and community, for a request-id that is random per request (31 bits, from the
system's CSPRNG): see :class:`SnmpSocket`.  Messages are built and read by the pure
codec in :mod:`monitord.probes.snmp.codec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from monitord.probes.snmp.codec import Builder, MalformedReply, peek_header


class RequestTimeout(Exception):
    """No answer within the timeout (after all retries)."""


Address = tuple[str | int, ...]


class _Protocol(asyncio.DatagramProtocol):
    """Hands every datagram and socket error to the callbacks of its :class:`SnmpSocket`."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None],
                 on_error: Callable[[Exception], None]) -> None:
        self.on_datagram = on_datagram
        self.on_error = on_error

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.on_error(exc)


#: why a received datagram was dropped (``monitord_snmp_datagrams_dropped_total{reason}``)
DROP_REASONS: Final = (
    "malformed",        # not a v1/v2c Response message at all
    "unmatched",        # no request waits for its request-id (late, duplicate, guessed)
    "wrong_source",     # request-id of a pending request, but not from its address:port
    "wrong_version",    # from the right agent, but not the request's SNMP version
    "wrong_community",  # from the right agent, but not the request's community
)


@dataclass(slots=True)
class _Pending:
    """One outstanding request (shared by the request-ids of its retries)."""

    addr: tuple[str, int]
    version: int
    community: bytes
    fut: asyncio.Future[bytes]


class SnmpSocket:
    """One UDP socket per address family, shared by every v1/v2c request.

    Every request gets a random 31-bit request-id (``secrets``: the system CSPRNG, never
    one already in flight), so an off-path sender cannot guess it.  A reply completes its
    request only if it comes from the request's target address *and* port and carries
    the request's version and community; a stray, late or spoofed datagram is dropped
    and counted in :attr:`dropped` by reason (:data:`DROP_REASONS`), and the genuine
    reply is still accepted when it arrives.
    """

    def __init__(self, rcvbuf: int = 8 << 20) -> None:
        self.rcvbuf = rcvbuf
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._pending: dict[int, _Pending] = {}
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.socket_errors = 0

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        tr = self._transports.get(family)
        if tr is not None:
            return tr
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        # many replies can arrive in a burst: a large receive buffer avoids silent drops
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, self.rcvbuf)
                break
            except OSError:
                continue
        sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
        loop = asyncio.get_running_loop()
        tr, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._deliver, self._socket_error), sock=sock)
        self._transports[family] = tr
        return tr

    async def open(self, family: int = socket.AF_INET) -> None:
        """Open the socket of ``family`` now (it opens on first use otherwise)."""
        await self._transport(family)

    def _socket_error(self, exc: Exception) -> None:
        # ICMP port unreachable etc. on an unconnected socket: requests time out instead
        self.socket_errors += 1

    def next_request_id(self) -> int:
        """A random request-id in 1 … 2^31-1 that no pending request uses."""
        for _ in range(64):  # the chance of even one collision is in-flight / 2^31
            rid = secrets.randbelow(0x7FFFFFFF) + 1
            if rid not in self._pending:
                return rid
        raise RuntimeError("no free SNMP request-id")  # unreachable in practice

    async def request(self, addr: tuple[str, int], family: int, build: Builder,
                      timeout: float, retries: int) -> bytes:  # noqa: ASYNC109
        """Send a request built for a fresh request-id; return the raw reply.

        Each retry uses a new request-id so a late answer to an earlier try is still
        accepted (it is the same question) but never confused with another request.
        """
        tr = await self._transport(family)
        loop = asyncio.get_running_loop()
        version, community, _ = build.head
        pending = _Pending(addr, version, community, loop.create_future())
        rids: list[int] = []
        try:
            for _ in range(retries + 1):
                rid = self.next_request_id()
                rids.append(rid)
                self._pending[rid] = pending
                tr.sendto(build(rid), addr)
                handle = loop.call_later(timeout, _expire, pending.fut)
                try:
                    return await pending.fut
                except _TryExpired:
                    pending.fut = loop.create_future()
                finally:
                    handle.cancel()
            raise RequestTimeout()
        finally:
            for r in rids:
                self._pending.pop(r, None)

    def _deliver(self, data: bytes, addr: Address) -> None:
        try:
            version, community, rid = peek_header(data)
        except MalformedReply:
            self.dropped["malformed"] += 1
            return
        p = self._pending.get(rid)
        if p is None or p.fut.done():
            reason = "unmatched"
        elif (addr[0], addr[1]) != p.addr and not _same_host(p.addr, addr):
            reason = "wrong_source"
        elif version != p.version:
            reason = "wrong_version"
        elif not hmac.compare_digest(community, p.community):
            reason = "wrong_community"
        else:
            p.fut.set_result(data)
            return
        self.dropped[reason] += 1

    def close(self) -> None:
        for tr in self._transports.values():
            tr.close()
        self._transports.clear()
        for p in list(self._pending.values()):
            if not p.fut.done():
                p.fut.cancel()
        self._pending.clear()


class _TryExpired(Exception):
    pass


def _expire(fut: asyncio.Future[bytes]) -> None:
    if not fut.done():
        fut.set_exception(_TryExpired())


def _same_host(want: tuple[str, int], got: Address) -> bool:
    """IPv4-mapped IPv6 and scope suffixes compare equal to the plain address."""
    host = str(got[0])
    with contextlib.suppress(ValueError):
        if host.startswith("::ffff:"):
            host = host[7:]
    return host.split("%")[0] == want[0] and got[1] == want[1]

