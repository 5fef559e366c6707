"""Runs every (device, probe) job at its own interval, batching what falls due together.

* Monotonic clock only: wall-clock jumps (NTP, DST-less Bangkok or not) never bunch or
  stall rounds.
* Each job gets a random phase inside its interval at first sight and a small jitter on
  every run, so 10,000 devices with a 60 s interval spread over the minute instead of
  bursting at once.
* Jobs due within ``batch_window`` of each other are handed to their probe as one batch
  (the ICMP engine pings a batch over shared sockets); a job joins a batch early by at
  most a tenth of its interval.
* A job never overlaps itself: while its previous run is still in flight, the due run is
  skipped and counted (``skipped``), and it is rescheduled one interval later.
* Fixed-rate timing: the next run is due one interval after the previous *due* time, not
  after the previous run finished, so a slow round does not make every later round late.
* :meth:`Scheduler.poll_now` brings a device's jobs forward (an SNMP trap said its link
  dropped): they run within the batch window and carry on one interval later; early polls
  of one device are rate limited.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from monitord.probes.base import Observation, Prober, RoundStats, Target

log = logging.getLogger(__name__)

JobKey = tuple[str, str]  # (device_id, probe)
Sink = Callable[[list[Observation], RoundStats], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    target: Target
    probe: str
    interval: float

    @property
    def key(self) -> JobKey:
        return (self.target.device_id, self.probe)


class Scheduler:
    def __init__(
        self,
        probers: Mapping[str, Prober],
        sink: Sink,
        *,
        batch_window: float = 0.25,
        jitter_ratio: float = 0.02,
        max_batches_in_flight: int = 256,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._probers = dict(probers)
        self._sink = sink
        self._window = batch_window
        self._jitter = jitter_ratio
        self._clock = clock
        self._rng = rng or random.Random()
        self._jobs: dict[JobKey, Job] = {}
        self._by_device: dict[str, list[JobKey]] = {}
        self._due: dict[JobKey, float] = {}
        self._heap: list[tuple[float, JobKey]] = []
        self._in_flight: set[JobKey] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch_slots = asyncio.Semaphore(max_batches_in_flight)
        self._wake = asyncio.Event()
        self.skipped: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.rounds: Counter[str] = Counter()
        self.last_round: dict[str, RoundStats] = {}
        self.last_round_end: dict[str, float] = {}
        #: device → when it was last polled early (:meth:`poll_now`)
        self._early: dict[str, float] = {}
        self.early_polls: Counter[str] = Counter()
        self.running = False

    # -- jobs ----------------------------------------------------------------------

    def set_jobs(self, jobs: Iterable[Job]) -> None:
        """Replace the job list (start-up or reload); keep the phase of unchanged jobs."""
        now = self._clock()
        new = {j.key: j for j in jobs}
        for key, job in new.items():
            old = self._jobs.get(key)
            if old is None or old.interval != job.interval:
                due = now + self._rng.uniform(0, job.interval)
                self._due[key] = due
                heapq.heappush(self._heap, (due, key))
        for key in self._jobs.keys() - new.keys():
            self._due.pop(key, None)
        self._jobs = new
        self._by_device = {}
        for key in new:
            self._by_device.setdefault(key[0], []).append(key)
        self._early = {d: t for d, t in self._early.items() if d in self._by_device}
        self._wake.set()

    @property
    def jobs(self) -> Mapping[JobKey, Job]:
        return self._jobs

    def poll_now(self, device_id: str, min_interval: float = 10.0) -> list[str]:
        """Run every job of ``device_id`` now (within the batch window) instead of at its
        next due time; its later runs follow one interval after this one.  At most once
        per ``min_interval`` per device; a job already in flight is left alone.  Returns
        the probes brought forward (empty when rate limited or unknown)."""
        now = self._clock()
        last = self._early.get(device_id)
        if last is not None and now - last < min_interval:
            return []
        keys = self._by_device.get(device_id)
        if not keys:
            return []
        self._early[device_id] = now
        probes = []
        for key in keys:
            if key in self._in_flight:
                continue
            self._due[key] = now
            heapq.heappush(self._heap, (now, key))
            probes.append(key[1])
            self.early_polls[key[1]] += 1
        self._wake.set()
        return probes

    # -- main loop -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.running = True
        try:
            while not stop.is_set():
                timeout = self._seconds_to_next()
                self._wake.clear()
                if timeout > 0:
                    waiters = [
                        asyncio.ensure_future(stop.wait()),
                        asyncio.ensure_future(self._wake.wait()),
                    ]
                    try:
                        await asyncio.wait(
                            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        for w in waiters:
                            w.cancel()
                    continue
                self._dispatch_due()
        finally:
            self.running = False
            await self._drain()

    def _seconds_to_next(self) -> float:
        while self._heap:
            due, key = self._heap[0]
            if self._due.get(key) != due:  # stale heap entry (rescheduled or removed)
                heapq.heappop(self._heap)
                continue
            return max(0.0, due - self._clock())
        return 3600.0

    def _dispatch_due(self) -> None:
        now = self._clock()
        horizon = now + self._window
        batches: dict[str, list[Job]] = {}
        not_yet: list[tuple[float, JobKey]] = []
        while self._heap and self._heap[0][0] <= horizon:
            due, key = heapq.heappop(self._heap)
            if self._due.get(key) != due:
                continue
            job = self._jobs[key]
            if due - now > job.interval * 0.1:  # joining early would distort its interval
                not_yet.append((due, key))
                continue
            nxt = due + job.interval
            if nxt <= now:  # fell more than an interval behind: skip ahead, count it
                self.late[job.probe] += 1
                nxt = now + job.interval
            nxt += self._rng.uniform(-self._jitter, self._jitter) * job.interval
            self._due[key] = nxt
            heapq.heappush(self._heap, (nxt, key))
            if key in self._in_flight:
                self.skipped[job.probe] += 1
                continue
            batches.setdefault(job.probe, []).append(job)
        for item in not_yet:
            heapq.heappush(self._heap, item)
        for probe, batch in batches.items():
            for job in batch:
                self._in_flight.add(job.key)
            task = asyncio.create_task(self._run_batch(probe, batch), name=f"probe-{probe}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, probe: str, batch: list[Job]) -> None:
        prober = self._probers.get(probe)
        try:
            if prober is None:
                log.error("no probe module named %r; %d jobs not run", probe, len(batch))
                return
            async with self._batch_slots:
                start = self._clock()
                try:
                    observations, stats = await prober.probe([j.target for j in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # A probe bug must not take the daemon down: every job in the batch
                    # gets an incomplete observation, which never turns a device DOWN.
                    log.exception("probe %s failed on a batch of %d", probe, len(batch))
                    observations = [
                        Observation(j.target.device_id, probe, ok=False, complete=False,
                                    reason=f"probe_error: {type(exc).__name__}")
                        for j in batch
                    ]
                    stats = RoundStats(probe, len(batch), self._clock() - start, False,
                                       "probe_error")
            self.rounds[probe] += 1
            self.last_round[probe] = stats
            self.last_round_end[probe] = time.time()
            await self._sink(observations, stats)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling results of probe %s failed", probe)
        finally:
            for job in batch:
                self._in_flight.discard(job.key)

    async def _drain(self) -> None:
        """On shutdown let running batches finish briefly, then cancel them."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=5.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
