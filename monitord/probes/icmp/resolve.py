"""Address resolution for the ICMP engine: IP literals inline, names via getaddrinfo.

Literals are parsed once (the daemon pings the same addresses every round); names are
resolved concurrently and cached briefly, a temporary DNS failure making the host's
result incomplete rather than DOWN.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence

from monitord.probes.icmp import packet as pkt
from monitord.probes.icmp.pacing import Dest

RESOLVE_TTL_S = 30.0
RESOLVE_NEGATIVE_TTL_S = 5.0
RESOLVE_TIMEOUT_S = 5.0
RESOLVE_CONCURRENCY = 32

#: a host that cannot be pinged this round: (reason, complete)
Unresolved = tuple[str, bool]


class Resolver:
    """Resolves addresses to :class:`Dest`.

    ``channels`` is the engine's live list of sockets by slot (0 = IPv4, 1 = IPv6, None
    when closed or unavailable): a host of a family without a socket cannot be pinged.
    """

    def __init__(self, channels: Sequence[object | None]) -> None:
        self._channels = channels
        self._dns: dict[str, tuple[float, Dest | None, bool]] = {}
        self._literals: dict[str, Dest] = {}
        self._dns_sem = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def resolve_all(self, addresses: list[str]) -> list[Dest | Unresolved]:
        """Resolve every address: literals inline, names concurrently via getaddrinfo."""
        out: list[Dest | Unresolved] = []
        names: dict[str, list[int]] = {}
        literals, channels = self._literals, self._channels
        for i, addr in enumerate(addresses):
            dest = literals.get(addr)
            if dest is None:
                dest = self._literal(addr)
            if dest is None:
                names.setdefault(addr, []).append(i)
                out.append(("resolve_failed", True))
            elif channels[dest.slot] is None:
                out.append(("unsupported_family", False))
            else:
                out.append(dest)
        if names:
            found = await asyncio.gather(*(self._resolve(n) for n in names))
            for (_name, idxs), res in zip(names.items(), found, strict=True):
                for i in idxs:
                    out[i] = res
        return out

    def _literal(self, addr: str) -> Dest | None:
        """Parse an IP literal once; the daemon pings the same addresses every round."""
        lit = pkt.ip_literal(addr)
        if lit is None:
            return None
        family, ip = lit
        dest = Dest(0 if family == socket.AF_INET else 1, ip, (ip, 0))
        if len(self._literals) >= 1 << 18:
            self._literals.clear()
        self._literals[addr] = dest
        return dest

    async def _resolve(self, name: str) -> Dest | Unresolved:
        """Resolve one name (cached briefly).  Temporary DNS failure → incomplete."""
        now = time.monotonic()
        cached = self._dns.get(name)
        if cached is not None and cached[0] > now:
            return cached[1] if cached[1] is not None else ("resolve_failed", cached[2])
        dest: Dest | None = None
        definitive = True
        loop = asyncio.get_running_loop()
        try:
            async with self._dns_sem:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(name, None, type=socket.SOCK_RAW), RESOLVE_TIMEOUT_S)
            for family, _t, _p, _c, sockaddr in infos:
                slot = {socket.AF_INET: 0, socket.AF_INET6: 1}.get(family)
                if slot is not None and self._channels[slot] is not None:
                    ip = str(sockaddr[0])
                    dest = Dest(slot, ip, (ip, 0) if slot == 0 else tuple(sockaddr))
                    break
        except socket.gaierror as exc:
            definitive = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
        except (TimeoutError, OSError, UnicodeError):
            definitive = False
        ttl = RESOLVE_TTL_S if dest is not None else RESOLVE_NEGATIVE_TTL_S
        if len(self._dns) > 100_000:
            self._dns.clear()
        self._dns[name] = (now + ttl, dest, definitive)
        return dest if dest is not None else ("resolve_failed", definitive)


def same_ip(a: str, b: str) -> bool:
    """Compare reply source and host address ignoring an IPv6 ``%scope`` suffix."""
    return a.partition("%")[0] == b.partition("%")[0]
