"""The ``icmp`` probe: device targets in, observations out, over one shared engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from monitord.probes.base import Observation, RoundStats, Target
from monitord.probes.icmp.engine import (
    DEFAULT_COUNT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PERIOD,
    DEFAULT_RATE_PPS,
    DEFAULT_RCVBUF_BYTES,
    DEFAULT_TIMEOUT,
    IcmpEngine,
    Mode,
)
from monitord.probes.icmp.metrics import families
from monitord.probes.icmp.pacing import PingParams
from monitord.probes.icmp.results import HostResult, IcmpStats
from monitord.probes.metrics import MetricFamily


def ping_params(params: Mapping[str, Any]) -> PingParams:
    """A target's typed ICMP parameters (``count``, ``timeout``, ``period``)."""
    return PingParams(int(params.get("count", DEFAULT_COUNT)),
                      float(params.get("timeout", DEFAULT_TIMEOUT)),
                      float(params.get("period", DEFAULT_PERIOD)))


class IcmpProber:
    """The ``icmp`` probe (monitord.probes.base.Prober) on top of one shared :class:`IcmpEngine`.

    Target params: ``count`` (pings), ``timeout`` and ``period`` (seconds).  Targets with
    equal params share one engine round; different groups run concurrently.  Observation
    values: ``rtt_{min,avg,max}_seconds`` and ``jitter_seconds`` (only when a reply came),
    ``loss_ratio``, ``sent``, ``received``.  The prober reports one round as it was; the
    state tracker judges loss and latency over a window of rounds (monitord.domain.state).
    """

    name = "icmp"

    def __init__(self, mode: Mode = "auto", rate_pps: int = DEFAULT_RATE_PPS,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES) -> None:
        self.engine = IcmpEngine(mode, rate_pps, max_in_flight, rcvbuf_bytes)

    @property
    def mode(self) -> str | None:
        """``"raw"`` or ``"dgram"`` once started, None before."""
        return self.engine.mode

    @property
    def stats(self) -> IcmpStats:
        return self.engine.stats

    async def start(self) -> None:
        await self.engine.start()

    async def close(self) -> None:
        await self.engine.close()

    def metrics(self) -> list[MetricFamily]:
        """The engine's counters (``monitord_icmp_*``) as exported families."""
        return families(self.engine.stats)

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        t0 = time.monotonic()
        groups: dict[PingParams, list[int]] = {}
        for i, t in enumerate(targets):
            groups.setdefault(ping_params(t.params), []).append(i)
        keys = list(groups)
        rounds = await asyncio.gather(*(
            self.engine.ping([targets[i].address for i in groups[p]], count=p.count,
                             timeout=p.timeout, period=p.period) for p in keys))
        obs: list[Observation | None] = [None] * len(targets)
        reasons: list[str] = []
        for p, rnd in zip(keys, rounds, strict=True):
            if rnd.incomplete:
                reasons.append(rnd.reason)
            for i, res in zip(groups[p], rnd.results, strict=True):
                obs[i] = _observation(targets[i].device_id, self.name, res, rnd.duration)
        stats = RoundStats(self.name, len(targets), time.monotonic() - t0,
                           complete=not reasons, reason="; ".join(reasons))
        return [o for o in obs if o is not None], stats


def _observation(device_id: str, probe: str, r: HostResult, duration: float) -> Observation:
    values: dict[str, float] = {"sent": float(r.sent), "received": float(r.received),
                                "loss_ratio": r.loss_ratio}
    if r.received:
        values.update(rtt_min_seconds=r.rtt_min or 0.0, rtt_avg_seconds=r.rtt_avg or 0.0,
                      rtt_max_seconds=r.rtt_max or 0.0, jitter_seconds=r.jitter or 0.0)
    return Observation(device_id, probe, r.ok, duration_seconds=duration, values=values,
                       reason=r.reason, complete=r.complete)
