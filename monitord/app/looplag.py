"""How late the event loop runs what is due: the daemon's own responsiveness.

Every :data:`SAMPLE_SECONDS` a task asks to be woken and measures how much later than
asked it actually ran.  Anything that holds the loop (a slow scrape, a long batch of
state changes, a synchronous database call) shows up as lag, and every probe's timing,
every HTTP answer and every MQTT message waits that long.  The samples go into a
cumulative histogram (``monitord_event_loop_lag_seconds``), as Node.js' and Go's runtime
metrics report theirs, so a dashboard or a benchmark can take quantiles over any period.
"""

from __future__ import annotations

import asyncio
import bisect
import time

from monitord.http.metrics import LagHistogram

#: how often the loop is sampled (a sample costs a few microseconds)
SAMPLE_SECONDS = 0.1
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
           5.0)


class LoopLagMonitor:
    def __init__(self, every: float = SAMPLE_SECONDS) -> None:
        self.every = every
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self.max_seconds = 0.0

    def record(self, lag: float) -> None:
        lag = max(0.0, lag)
        self._counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self._sum += lag
        self.max_seconds = max(self.max_seconds, lag)

    def histogram(self) -> LagHistogram:
        cumulative: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip(BUCKETS, self._counts, strict=False):
            total += n
            cumulative.append((bound, total))
        return LagHistogram(tuple(cumulative), total + self._counts[-1], self._sum)

    async def run(self, stop: asyncio.Event) -> None:
        clock = time.monotonic
        while not stop.is_set():
            asked = clock() + self.every
            await asyncio.sleep(self.every)
            self.record(clock() - asked)
