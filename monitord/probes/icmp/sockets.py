"""The ICMP engine's shared sockets: opening one per address family, with clear errors.

icmplib provides socket creation with clear permission errors; buffers, kernel filters
and receive timestamps are set here.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from icmplib import ICMPv4Socket, ICMPv6Socket
from icmplib.exceptions import ICMPLibError, SocketPermissionError

from monitord.probes.icmp import packet as pkt

log = logging.getLogger("monitord.probes.icmp")


@dataclass(slots=True)
class Channel:
    """One shared socket (one address family) and what is needed to read it fast."""

    family: int
    sock: socket.socket
    holder: Any  # the icmplib socket object that owns ``sock``; kept alive with it
    ip_header: bool  # raw IPv4 sockets deliver the IP header too
    request_type: int
    reply_type: int
    error_types: frozenset[int]
    proc_table: str
    inode: int
    drops_visible: bool = True



def open_channel(mode: str, family: int, rcvbuf_bytes: int) -> Channel:
    """One shared socket of ``family`` in ``mode`` (raw or dgram), ready to read fast."""
    raw = mode == "raw"
    v6 = family == socket.AF_INET6
    cls = ICMPv6Socket if v6 else ICMPv4Socket
    try:
        holder = cls(privileged=raw)
    except SocketPermissionError as exc:
        raise PermissionError(errno.EPERM, str(exc)) from exc
    except ICMPLibError as exc:
        raise OSError(errno.EINVAL, str(exc)) from exc
    sock: socket.socket = holder.sock
    sock.setblocking(False)
    if not raw:
        # A ping socket only appears in /proc/net/icmp[6] (where its drop counter
        # is) once bound; binding also makes the kernel pick its identifier now.
        sock.bind(("::", 0) if v6 else ("0.0.0.0", 0))
    set_buffers(sock, rcvbuf_bytes)
    sock.setsockopt(socket.SOL_SOCKET, pkt.SO_TIMESTAMPNS, 1)
    if v6:
        errs = frozenset({pkt.ICMP6_DEST_UNREACH, pkt.ICMP6_TIME_EXCEEDED})
        if raw:
            sock.setsockopt(socket.IPPROTO_ICMPV6, pkt.ICMP6_FILTER,
                            pkt.icmp6_filter(pkt.ICMP6_ECHO_REPLY, *errs))
        req, rep = pkt.ICMP6_ECHO_REQUEST, pkt.ICMP6_ECHO_REPLY
    else:
        errs = frozenset({pkt.ICMP_DEST_UNREACH, pkt.ICMP_TIME_EXCEEDED})
        if raw:
            sock.setsockopt(pkt.SOL_RAW, pkt.ICMP_FILTER,
                            pkt.icmp4_filter(pkt.ICMP_ECHO_REPLY, *errs))
        req, rep = pkt.ICMP_ECHO_REQUEST, pkt.ICMP_ECHO_REPLY
    table = pkt.PROC_TABLES[(mode, family)]
    inode = pkt.socket_inode(sock)
    visible = pkt.socket_drops(table, inode) is not None
    if not visible:
        log.warning("ICMP engine: socket not found in %s; local drops are undetectable "
                    "and every lossy result will be marked incomplete", table)
    return Channel(family, sock, holder, raw and not v6, req, rep,
                    errs if raw else frozenset(), table, inode, visible)


def set_buffers(sock: socket.socket, rcvbuf_bytes: int) -> None:
    """Large buffers: forced past the sysctl limits when privileged, else best effort."""
    for force, plain in ((pkt.SO_RCVBUFFORCE, socket.SO_RCVBUF),
                         (pkt.SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        size = rcvbuf_bytes if plain == socket.SO_RCVBUF else 4 << 20
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)


def setup_help(errors: list[str]) -> str:
    """The message of a ProbeSetupError: what failed and the ways to fix it."""
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as fh:
            groups = fh.read().strip()
    except OSError:
        groups = "unknown"
    return (
        "ICMP probe cannot open a socket ("
        + "; ".join(errors)
        + "). Fix one of: run monitord as root, or give it CAP_NET_RAW "
        "(`setcap cap_net_raw+ep` on the Python interpreter, or "
        "AmbientCapabilities=CAP_NET_RAW in the systemd unit); or allow unprivileged "
        'ping sockets with `sysctl -w net.ipv4.ping_group_range="0 2147483647"` '
        f"(currently {groups!r}; this process has gid {os.getgid()}, groups "
        f"{sorted(os.getgroups())})."
    )


def read_drops(channels: Sequence[Channel | None]) -> int | None:
    """The kernel's drop counters of the open sockets, summed; None if one is unknown."""
    total = 0
    for ch in channels:
        if ch is None:
            continue
        d = pkt.socket_drops(ch.proc_table, ch.inode)
        if d is None:
            return None
        total += d
    return total
