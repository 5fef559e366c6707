"""Scheduler: intervals, batching, no overlap, graceful stop."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from monitord.probes.base import Observation, RoundStats, Target
from monitord.probes.metrics import MetricFamily
from monitord.probes.scheduler import Job, Scheduler


class RecordingProber:
    """A probe module double: records when each target was probed."""

    name = "fake"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[float, list[str]]] = []
        self.running: set[str] = set()
        self.overlaps = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def metrics(self) -> list[MetricFamily]:
        return []

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        ids = [t.device_id for t in targets]
        self.calls.append((time.monotonic(), ids))
        if self.running & set(ids):
            self.overlaps += 1
        self.running |= set(ids)
        await asyncio.sleep(self.delay)
        self.running -= set(ids)
        return ([Observation(i, "fake", ok=True) for i in ids],
                RoundStats("fake", len(ids), self.delay))


async def run_for(sched: Scheduler, until: asyncio.Event, timeout: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    try:
        await asyncio.wait_for(until.wait(), timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_each_job_runs_at_its_interval_and_batches() -> None:
    prober = RecordingProber()
    results: list[Observation] = []
    enough = asyncio.Event()

    async def sink(obs: list[Observation], _: RoundStats) -> None:
        results.extend(obs)
        if sum(1 for o in results if o.device_id == "slow") >= 2:
            enough.set()

    sched = Scheduler({"fake": prober}, sink, batch_window=0.5, rng=random.Random(1))
    sched.set_jobs([Job(Target(f"d{i}", "x"), "fake", 0.2) for i in range(20)]
                   + [Job(Target("slow", "x"), "fake", 1.0)])
    await run_for(sched, enough, 10)
    fast_runs = sum(1 for o in results if o.device_id == "d0")
    # d0 (0.2 s) ran several times while "slow" (1 s) ran twice, one interval apart
    # (minus at most 2 % jitter and a tenth of the interval for joining a batch early).
    assert fast_runs >= 4
    slow = [t for t, ids in prober.calls if "slow" in ids]
    assert len(slow) == 2 and 0.85 <= slow[1] - slow[0] <= 2.0
    # 20 jobs due within half a second were batched, not probed one by one.
    assert max(len(ids) for _, ids in prober.calls) > 5
    assert sched.rounds["fake"] == len(prober.calls)


async def test_no_overlapping_runs_of_the_same_job() -> None:
    prober = RecordingProber(delay=0.5)  # slower than the interval
    done = asyncio.Event()

    async def sink(_: list[Observation], __: RoundStats) -> None:
        if len(prober.calls) >= 3:
            done.set()

    sched = Scheduler({"fake": prober}, sink, batch_window=0.0)
    sched.set_jobs([Job(Target("d", "x"), "fake", 0.1)])
    await run_for(sched, done, 10)
    assert prober.overlaps == 0
    assert sched.skipped["fake"] > 0


async def test_failing_probe_gives_incomplete_observations() -> None:
    class Broken(RecordingProber):
        async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
            raise RuntimeError("bug")

    got: list[Observation] = []
    done = asyncio.Event()

    async def sink(obs: list[Observation], stats: RoundStats) -> None:
        got.extend(obs)
        assert not stats.complete
        done.set()

    sched = Scheduler({"fake": Broken()}, sink)
    sched.set_jobs([Job(Target("d", "x"), "fake", 0.1)])
    await run_for(sched, done, 10)
    assert got and all(not o.ok and not o.complete for o in got)
    assert got[0].reason == "probe_error: RuntimeError"


async def test_reload_keeps_phase_of_unchanged_jobs() -> None:
    prober = RecordingProber()

    async def sink(_: list[Observation], __: RoundStats) -> None:
        pass

    sched = Scheduler({"fake": prober}, sink)
    sched.set_jobs([Job(Target("a", "x"), "fake", 60), Job(Target("b", "x"), "fake", 60)])
    before = dict(sched._due)
    sched.set_jobs([Job(Target("a", "x"), "fake", 60), Job(Target("c", "x"), "fake", 60)])
    assert sched._due[("a", "fake")] == before[("a", "fake")]
    assert ("b", "fake") not in sched._due and ("c", "fake") in sched._due
    assert all(0 <= d - time.monotonic() <= 60 for d in sched._due.values())
