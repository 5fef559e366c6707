"""Simulated classroom projectors for ``monitord demo``: PJLink on loopback.

Every school of the demo lab has a projector (``<smis>-prj``).  The live ones are answered
by the PJLink simulator (:mod:`monitord.demo.pjlink_sim`) running in the daemon's event
loop, one TCP server per projector on its own loopback address and :data:`PJLINK_PORT`
(4352, as real projectors; :func:`pjlink_ports` falls back to a free port per projector
when 4352 is taken there, and the device's config then names that port).  They
authenticate with the demo's password, passed by reference
(``MONITORD_DEMO_PJLINK_PASSWORD``, like the SNMP community).

:func:`plan` decides, deterministically, what each projector says: a few have a lamp or a
filter error or a worn lamp (DEGRADED with that reason, never a ticket), a share is in
standby (UP: standby is not a fault), the rest are on; lamp hours are spread over the
lamp's rated life.  Projectors of dead schools (and the dead projector) get no server:
they stay silent.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from monitord.demo.pjlink_sim import PjlinkSimulator, Projector
from monitord.demo.processes import free_port

log = logging.getLogger(__name__)

#: TCP port of the simulated projectors (the PJLink port; unprivileged)
PJLINK_PORT: Final = 4352
#: the environment variable that carries the demo's PJLink password (config: ``{env: …}``)
PASSWORD_ENV: Final = "MONITORD_DEMO_PJLINK_PASSWORD"
DEFAULT_PASSWORD: Final = "demo-pjlink"
#: rated lamp life in the demo's ``kinds.projector.pjlink`` (worn past 90 % of it)
LAMP_LIFE_HOURS: Final = 3000
PJLINK_INTERVAL: Final = "30s"

Condition = Literal["on", "standby", "lamp_error", "filter_error", "lamp_worn"]
#: the ``degraded`` reason the pjlink probe gives for each faulty condition
DEGRADED_REASON: Final[Mapping[str, str]] = {
    "lamp_error": "lamp_error", "filter_error": "filter_error",
    "lamp_worn": "lamp_hours_high"}
_ERRORS: Final[Mapping[str, str]] = {   # ERST digits: fan lamp temperature cover filter other
    "lamp_error": "020000", "filter_error": "000020"}


@dataclass(frozen=True, slots=True)
class SimProjector:
    """One simulated projector of the lab."""

    device_id: str
    address: str
    port: int
    condition: Condition
    lamp_hours: int
    pjlink_class: Literal[1, 2]
    serial: str

    @property
    def degraded(self) -> bool:
        return self.condition in DEGRADED_REASON

    def projector(self, password: str) -> Projector:
        """The simulator's state for this projector."""
        return Projector(
            pjlink_class=self.pjlink_class, password=password,
            power=0 if self.condition == "standby" else 1,
            lamps=[(self.lamp_hours, self.condition != "lamp_error")],
            errors=_ERRORS.get(self.condition, "000000"),
            name=self.device_id, serial=self.serial,
            # the demo's sessions are polled one at a time; answer briskly
            single_connection=True)


def plan(devices: Iterable[Mapping[str, Any]], dead: Collection[str] = (),
         ports: Mapping[str, int] | None = None, seed: int = 15) -> list[SimProjector]:
    """The simulated projectors: one per live ``projector`` device, with a seeded share
    of faults.  ``ports`` maps an address to a port other than 4352."""
    rng = random.Random(seed)
    live = [d for d in devices if d.get("kind") == "projector" and d["id"] not in dead]
    n = len(live)
    conditions: list[Condition] = ["on"] * n
    draws: list[tuple[Condition, int]] = [
        ("lamp_error", max(1, n // 15)), ("filter_error", max(1, n // 15)),
        ("lamp_worn", 1 if n >= 6 else 0), ("standby", max(1, n // 4))]
    free = list(range(n))
    for condition, count in draws:
        for i in rng.sample(free, min(count, len(free))):
            conditions[i] = condition
            free.remove(i)
    out = []
    for i, d in enumerate(live):
        worn = conditions[i] == "lamp_worn"
        hours = rng.randint(2760, 2990) if worn else rng.randint(40, 2600)
        address = str(d["address"])
        out.append(SimProjector(
            str(d["id"]), address, (ports or {}).get(address, PJLINK_PORT), conditions[i],
            hours, 2 if i % 2 else 1, str(d.get("serial", ""))))
    return out


def pjlink_ports(addresses: Iterable[str]) -> dict[str, int]:
    """For each address whose port 4352 is taken (another demo, a real PJLink service), a
    free port on that address.  Checked now; the simulators bind a moment later."""
    out = {}
    for address in addresses:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, PJLINK_PORT))
                continue
            except OSError:
                pass
        out[address] = free_port(address)
    return out


class PjlinkLab:
    """The running simulated projectors; :meth:`start` inside the serving event loop."""

    def __init__(self, projectors: Iterable[SimProjector], password: str) -> None:
        self.sims = [PjlinkSimulator(p.projector(password), p.address, p.port)
                     for p in projectors]
        self.failed = 0

    async def start(self) -> None:
        started = 0
        for sim in self.sims:
            try:
                await sim.start()
                started += 1
            except OSError as exc:   # this one stays silent: pjlink_failing (refused)
                self.failed += 1
                log.warning("demo: simulated projector on %s:%d cannot listen: %s",
                            sim.host, sim.port, exc)
        if started:
            log.info("demo: %d simulated PJLink projectors (tcp port %d unless configured)",
                     started, PJLINK_PORT)

    async def stop(self) -> None:
        for sim in self.sims:
            with contextlib.suppress(Exception):
                await sim.stop()
