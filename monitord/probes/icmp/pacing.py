"""Send pacing and per-batch bookkeeping of the ICMP engine.

:class:`Pacer` is the token bucket that bounds the send rate; :class:`Batch` is one pass
of ``count`` pings over a list of hosts (a round or a re-probe), in flat arrays so that
matching a reply and summarising a host cost a couple of list operations.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from monitord.probes.icmp.results import HostResult

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Dest:
    """A resolved host: family slot (0 = IPv4, 1 = IPv6), canonical text, sockaddr."""

    slot: int
    ip: str
    sockaddr: tuple[Any, ...]



@dataclass(frozen=True, slots=True)
class PingParams:
    """Per-round settings: pings per host, per-request timeout and per-host gap (s)."""

    count: int
    timeout: float
    period: float


class Pacer:
    """Token bucket: ``rate`` packets per second, at most ``burst`` at once.

    Requests are granted in chunks of at least ``2/5 burst`` (about 2 ms of traffic):
    many tiny bursts would each cost an event-loop iteration, which at 50k pps costs
    more CPU than the sends themselves.
    """

    __slots__ = ("burst", "chunk", "rate", "stamp", "tokens")

    def __init__(self, rate_pps: float, burst: int) -> None:
        self.rate = float(rate_pps)
        self.burst = max(1, burst)
        self.chunk = max(1, self.burst * 2 // 5)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic_ns()

    def available(self, now: int, want: int) -> int:
        """Tokens usable now for ``want`` requests: 0 until a whole chunk is ready."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate / NS)
        self.stamp = now
        have = int(self.tokens)
        return have if have >= min(want, self.chunk) else 0

    def take(self, n: int) -> None:
        self.tokens -= n

    def wait_s(self) -> float:
        """How long until a chunk is ready; never under 1 ms (the loop's timer grain)."""
        return max(0.001, (self.chunk - self.tokens) / self.rate)


class Batch:
    """One pass of ``count`` pings over a list of hosts (a round or one re-probe).

    Per-ping state lives in flat arrays indexed ``pos = ping * n + host`` so that the
    requests of one wave are contiguous: the in-flight accounting can then expire a
    whole burst with one ``bytearray.count``.
    """

    __slots__ = (
        "aborted",
        "bursts",
        "count",
        "dests",
        "done",
        "drops",
        "duplicates",
        "expired_pos",
        "flags",
        "invalid",
        "ips",
        "last_tx",
        "late",
        "max_tx",
        "n",
        "pacer",
        "period_ns",
        "received",
        "rid",
        "rtt",
        "send_failed",
        "sending_done",
        "sent",
        "sent_total",
        "start_mono",
        "timeout_ns",
        "unreachable",
    )

    def __init__(self, rid: int, dests: list[Dest], p: PingParams,
                 pacer: Pacer | None) -> None:
        self.rid = rid
        self.dests = dests
        self.ips = [d.ip for d in dests]
        self.n = n = len(dests)
        self.count = count = p.count
        self.timeout_ns = int(p.timeout * NS)
        self.period_ns = int(p.period * NS)
        self.pacer = pacer
        self.flags = bytearray(n * count)  # 1 = answered in time
        self.rtt = [0] * (n * count)  # ns
        self.sent = [0] * n
        self.last_tx = [0] * n
        self.send_failed = bytearray(n)  # local send error: result untrustworthy
        self.unreachable = bytearray(n)  # no route / ICMP destination unreachable
        self.received = 0
        self.sent_total = 0
        self.max_tx = 0
        self.sending_done = False
        self.aborted = False
        self.done = asyncio.Event()
        self.start_mono = time.monotonic_ns()
        self.bursts: deque[tuple[int, int, int, int]] = deque()  # deadline, lo, hi, nsent
        self.expired_pos = 0
        self.drops = 0
        self.invalid = 0
        self.late = 0
        self.duplicates = 0

    def results(self, addresses: list[str]) -> list[HostResult]:
        """Summarise every host (``addresses[i]`` is host i's name as given).

        Walks the wave-major arrays column-wise (one tuple per host) because this runs
        once per host per round: at 10,000 hosts it must cost microseconds, not tens.
        """
        n, count, ns = self.n, self.count, float(NS)
        rtt_cols = zip(*(self.rtt[k * n:(k + 1) * n] for k in range(count)), strict=True)
        flag_cols = zip(*(self.flags[k * n:(k + 1) * n] for k in range(count)), strict=True)
        out: list[HostResult] = []
        for i, (rs, fs) in enumerate(zip(rtt_cols, flag_cols, strict=True)):
            rtts = rs if fs.count(1) == count else [r for r, f in zip(rs, fs, strict=True) if f]
            got = len(rtts)
            sent = self.sent[i]
            loss = 1.0 - got / sent if sent else 1.0
            if got:
                jitter = (sum(map(abs, map(operator.sub, rtts[1:], rtts[:-1]))) / (got - 1)
                          if got > 1 else 0)
                out.append(HostResult(addresses[i], self.dests[i].ip, sent, got, loss,
                                      min(rtts) / ns, sum(rtts) / got / ns, max(rtts) / ns,
                                      jitter / ns, not (self.send_failed[i] or self.aborted)))
            else:
                out.append(self._failed(i, addresses[i], sent))
        return out

    def _failed(self, i: int, address: str, sent: int) -> HostResult:
        """Result of a host that never answered, with the most specific reason."""
        if self.aborted:
            return HostResult(address, self.dests[i].ip, sent, 0, 1.0, complete=False,
                              reason="engine_closed")
        if self.send_failed[i]:
            return HostResult(address, self.dests[i].ip, sent, 0, 1.0, complete=False,
                              reason="send_failed")
        reason = "unreachable" if self.unreachable[i] else "timeout"
        return HostResult(address, self.dests[i].ip, sent, 0, 1.0, reason=reason)
