"""PJLink lab: simulated projectors (monitord.demo.pjlink_sim) on loopback.

``pjlink_projector`` starts one in the test's event loop (stopped after the test);
``pjlink_sim_process`` runs several as a separate process (for tests of the daemon).
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitord.demo import processes
from monitord.demo.pjlink_sim import PjlinkSimulator, Projector
from tests.daemon_lab import ROOT, wait_for

StartProjector = Callable[..., Awaitable[PjlinkSimulator]]


@pytest.fixture
async def pjlink_projector() -> AsyncIterator[StartProjector]:
    """``await pjlink_projector(**Projector fields)`` → a running simulator (free port)."""
    made: list[PjlinkSimulator] = []

    async def start(**fields: Any) -> PjlinkSimulator:
        sim = PjlinkSimulator(Projector(**fields), "127.0.0.1", 0)
        await sim.start()
        made.append(sim)
        return sim

    try:
        yield start
    finally:
        for sim in made:
            await sim.stop()


@pytest.fixture
def pjlink_sim_process(tmp_path: Path) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Start ``python -m monitord.demo.pjlink_sim`` with these projectors (each with
    ``port``) and wait until every port listens."""
    procs: list[Any] = []

    def start(specs: list[dict[str, Any]]) -> None:
        conf = tmp_path / f"pjlink{len(procs)}.json"
        conf.write_text(json.dumps(specs), encoding="utf-8")
        log = (tmp_path / f"pjlink{len(procs)}.log").open("wb")
        procs.append(processes.spawn([sys.executable, "-m", "monitord.demo.pjlink_sim",
                                      str(conf)], output=log, cwd=ROOT))
        for s in specs:
            port = int(s["port"])
            wait_for(lambda port=port: processes.tcp_listening(port),  # type: ignore[misc]
                     10, f"pjlink_sim on port {port}")

    try:
        yield start
    finally:
        for proc in procs:
            processes.stop(proc)
