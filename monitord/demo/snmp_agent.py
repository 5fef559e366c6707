"""Simulated SNMP v2c agents for ``monitord demo``: the UDP responder.

Each simulated device (:mod:`monitord.demo.snmp_devices`) gets one UDP socket bound to
its own loopback address on :data:`SNMP_PORT`, so replies come from the address that was
asked (the prober checks the source).  Requests with another community, another version
than v2c, or that do not parse are dropped silently, like a real agent
(:mod:`monitord.demo.snmp_mib` answers the others).  Devices in the dead block get no
socket: they do not answer SNMP either.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from typing import Final, cast

from monitord.demo.snmp_devices import SimAgent
from monitord.demo.snmp_mib import MAX_MESSAGE, answer, decode_request
from monitord.probes.snmp.codec import MalformedReply

log = logging.getLogger(__name__)

#: UDP port of every simulated agent (unprivileged, so the demo needs no root for SNMP)
SNMP_PORT: Final = 16161
#: the environment variable that carries the demo's community (config: ``{env: …}``)
COMMUNITY_ENV: Final = "MONITORD_DEMO_SNMP_COMMUNITY"
DEFAULT_COMMUNITY: Final = "demo-public"


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
