"""SNMP traps from the demo's school routers: a WAN link that flaps now and then.

The demo enables the daemon's trap receiver (``snmp_traps:``) on a free high loopback port.
:class:`TrapSender` sends, from a couple of live school routers in turn, a v2c linkDown
trap for the router's WAN interface (ifIndex 1) and, a few seconds later, the matching
linkUp: the first :data:`FIRST_AFTER` seconds after the start, then every
:data:`EVERY` seconds.  Each trap leaves from the router's own loopback address (the
socket is bound to it), so the receiver maps its source to that device, polls it at once
and shows the trap on the wall.  The community is the demo's SNMP community.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from typing import Final

from monitord.probes.snmp.codec import INTEGER, SNMP_TRAPS, encode_trap_v2

log = logging.getLogger(__name__)

#: seconds after the start of the first linkDown, between two flaps, and of each outage
FIRST_AFTER: Final = 20.0
EVERY: Final = 180.0
DOWN_FOR: Final = 5.0
#: school routers that send traps (the first live ones)
ROUTERS: Final = 2

LINK_DOWN: Final = (*SNMP_TRAPS, 3)
LINK_UP: Final = (*SNMP_TRAPS, 4)
IF_INDEX: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
IF_ADMIN_STATUS: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 7)
IF_OPER_STATUS: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
WAN_IF_INDEX: Final = 1


def link_trap(community: bytes, up: bool, uptime: int, request_id: int,
              if_index: int = WAN_IF_INDEX) -> bytes:
    """A v2c linkDown/linkUp (RFC 2863) for ``if_index``."""
    return encode_trap_v2(
        community, LINK_UP if up else LINK_DOWN,
        [((*IF_INDEX, if_index), INTEGER, if_index),
         ((*IF_ADMIN_STATUS, if_index), INTEGER, 1),
         ((*IF_OPER_STATUS, if_index), INTEGER, 1 if up else 2)],
        uptime=uptime, request_id=request_id)


class TrapSender:
    """Sends the routers' link traps to ``host:port`` until stopped.

    ``routers`` are ``(device id, address)``; ``sent`` counts datagrams sent, ``errors``
    the ones that could not be (logged once each).
    """

    def __init__(self, routers: Sequence[tuple[str, str]], community: str, port: int,
                 host: str = "127.0.0.1", first_after: float = FIRST_AFTER,
                 every: float = EVERY, down_for: float = DOWN_FOR) -> None:
        self.routers = list(routers)
        self.community = community.encode()
        self.dest = (host, port)
        self.first_after = first_after
        self.every = every
        self.down_for = down_for
        self.sent = 0
        self.errors = 0
        self._started = time.monotonic()

    def send(self, address: str, up: bool) -> bool:
        """One linkDown/linkUp from ``address`` (bound, so the source is the router)."""
        uptime = int((time.monotonic() - self._started) * 100) + 360_000
        msg = link_trap(self.community, up, uptime, request_id=self.sent + 1)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((address, 0))
                s.sendto(msg, self.dest)
        except OSError as exc:
            self.errors += 1
            log.warning("demo: trap from %s to %s:%d not sent: %s", address, *self.dest, exc)
            return False
        self.sent += 1
        return True

    async def run(self, stop: asyncio.Event) -> None:
        if not self.routers:
            return
        wait = self.first_after
        for n in range(1 << 30):   # bounded by stop
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return
            device, address = self.routers[n % len(self.routers)]
            if self.send(address, up=False):
                log.info("demo: %s sends linkDown (WAN) to the trap receiver", device)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.down_for)
            self.send(address, up=True)
            wait = self.every
