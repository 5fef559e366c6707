"""ICMP echo wire format and socket plumbing for :mod:`monitord.probes.icmp`.

Everything here is cheap, pure and separately testable: the payload layout, the
incremental checksum, the kernel receive filters and the per-socket drop counters.  The
engine in :mod:`monitord.probes.icmp` owns batching, pacing and matching.

Payload layout (all fields start on a 16-bit boundary, which the checksum trick needs)::

    offset  size  field
    0       8     cookie     random per engine: tells our replies from everyone else's
    8       4     round id   which batch the request belongs to
    12      4     host index position of the host in that batch
    16      2     ping no    0 … count-1
    18      8     tx_wall    time.time_ns() at send (pairs with kernel SO_TIMESTAMPNS)
    26      8     tx_mono    time.monotonic_ns() at send (fallback when the wall clock steps)
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_TIME_EXCEEDED = 11
ICMP6_DEST_UNREACH = 1
ICMP6_TIME_EXCEEDED = 3
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

SOL_RAW = 255  # socket level of ICMP_FILTER (linux/in.h); not exported by Python
ICMP_FILTER = 1  # linux/icmp.h
ICMP6_FILTER = 1  # linux/icmpv6.h, level IPPROTO_ICMPV6
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
PACKET = struct.Struct("!BBHHH8sIIHQQ")  # header + payload, built in one call
PAYLOAD_TAIL = struct.Struct("!IIHQQ")  # round id, host index, ping no, tx_wall, tx_mono
TIMESPEC = struct.Struct("@qq")  # struct timespec from SCM_TIMESTAMPNS
COOKIE_LEN = 8
PAYLOAD_LEN = COOKIE_LEN + PAYLOAD_TAIL.size  # 34 bytes
PACKET_LEN = HEADER.size + PAYLOAD_LEN  # 42 bytes
MAX_ROUND_ID = 0xFFFFFFFF


def words_sum(data: bytes) -> int:
    """Sum of ``data``'s big-endian 16-bit words modulo 0xffff (ones' complement sum).

    Because 2**16 ≡ 1 (mod 0xffff), a big-endian integer taken modulo 0xffff equals the
    ones' complement sum of its 16-bit words.  That lets the sender fold whole 32/64-bit
    fields into the checksum with one addition each instead of summing words.
    """
    if len(data) % 2:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


def finish_checksum(partial: int) -> int:
    """Turn a ``words_sum``-style partial sum into the ICMP checksum field.

    A zero residue means the true ones' complement sum is 0xffff (the data is never all
    zeros), whose complement is 0.
    """
    s = partial % 0xFFFF
    return 0xFFFF - s if s else 0


def icmp_checksum(packet: bytes) -> int:
    """Reference RFC 1071 checksum of a whole ICMP message (checksum field zeroed)."""
    return finish_checksum(words_sum(packet))


def checksum_base(ident: int, cookie: bytes) -> int:
    """The constant part of every request's checksum sum: type/code, identifier, cookie."""
    return (ICMP_ECHO_REQUEST << 8) + ident + words_sum(cookie)


def build_request(
    v6: bool,
    ident: int,
    cookie: bytes,
    *,
    round_id: int,
    index: int,
    ping: int,
    tx_wall: int,
    tx_mono: int,
    with_checksum: bool,
) -> bytes:
    """Build one echo request (reference implementation; the engine inlines this).

    ``with_checksum`` is only needed for raw IPv4: the kernel computes ICMPv6 checksums
    on raw sockets and fills checksum and identifier for datagram "ping" sockets.
    """
    seq = ping  # informative in tcpdump; matching uses the payload, not the header
    csum = 0
    if with_checksum and not v6:
        base = checksum_base(ident, cookie)
        csum = finish_checksum(base + 2 * ping + round_id + index + tx_wall + tx_mono)
    icmp_type = ICMP6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    return PACKET.pack(icmp_type, 0, csum, ident, seq, cookie, round_id, index, ping,
                       tx_wall, tx_mono)


@dataclass(frozen=True, slots=True)
class ParsedEcho:
    """Fields of one echo reply payload (reference parser; the engine inlines this)."""

    round_id: int
    index: int
    ping: int
    tx_wall: int
    tx_mono: int


def parse_reply(data: bytes, cookie: bytes, *, ip_header: bool, v6: bool) -> ParsedEcho | None:
    """Parse an echo reply as read from a socket; None when it is not one of ours."""
    off = (data[0] & 0x0F) << 2 if ip_header and data else 0
    if len(data) < off + PACKET_LEN:
        return None
    if data[off] != (ICMP6_ECHO_REPLY if v6 else ICMP_ECHO_REPLY):
        return None
    if data[off + 8 : off + 16] != cookie:
        return None
    rid, idx, ping, wall, mono = PAYLOAD_TAIL.unpack_from(data, off + 16)
    return ParsedEcho(rid, idx, ping, wall, mono)


def icmp4_filter(*allowed: int) -> bytes:
    """ICMP_FILTER value for a raw IPv4 socket: a set bit *blocks* that type."""
    mask = 0xFFFFFFFF
    for t in allowed:
        mask &= ~(1 << t)
    return struct.pack("=I", mask & 0xFFFFFFFF)


def icmp6_filter(*allowed: int) -> bytes:
    """ICMP6_FILTER value (struct icmp6_filter, 256 bits): a set bit *blocks* that type."""
    words = [0xFFFFFFFF] * 8
    for t in allowed:
        words[t >> 5] &= ~(1 << (t & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


PROC_TABLES: dict[tuple[str, int], str] = {
    ("raw", socket.AF_INET): "/proc/net/raw",
    ("raw", socket.AF_INET6): "/proc/net/raw6",
    ("dgram", socket.AF_INET): "/proc/net/icmp",
    ("dgram", socket.AF_INET6): "/proc/net/icmp6",
}


def socket_drops(table: str, inode: int) -> int | None:
    """The kernel's ``drops`` counter of one socket, from ``/proc/net/{raw,icmp}[6]``.

    It counts packets the kernel discarded for this socket because its receive queue was
    full (or memory was short) — exactly the local loss that must not look like a dead
    host.  None when the socket is not listed (then the caller must assume the worst).
    """
    try:
        with open(table, encoding="ascii") as fh:
            next(fh, None)  # header
            want = str(inode)
            for line in fh:
                parts = line.split()
                if len(parts) >= 13 and parts[9] == want:
                    return int(parts[12])
    except OSError:
        return None
    return None


def socket_inode(sock: socket.socket) -> int:
    """Inode number that identifies ``sock`` in the /proc/net tables."""
    return os.fstat(sock.fileno()).st_ino


def ip_literal(address: str) -> tuple[int, str] | None:
    """(family, canonical text) for an IPv4/IPv6 literal, else None.

    Canonical text is what the kernel reports as a reply's source (``inet_ntop``), so
    matching a reply to its host is a plain string comparison.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return family, socket.inet_ntop(family, socket.inet_pton(family, address))
        except (OSError, ValueError):
            continue
    return None
