"""What the ``pjlink`` probe exports: engine counters and each projector's last reading.

``monitord_pjlink_power_state`` uses PJLink's own POWR values: 0 off/standby, 1 on,
2 cooling down, 3 warming up.  ``monitord_pjlink_error{part}`` is the ERST digit of the
part (fan, lamp, temperature, cover, filter, other): 0 ok, 1 warning, 2 error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge

POLLS = counter("monitord_pjlink_polls_total", "PJLink projector polls (sessions).")
ERRORS = counter("monitord_pjlink_errors_total", "PJLink poll failures by device and "
                 "reason (timeout, refused, closed, auth_failed, malformed, busy …).",
                 "device", "reason")

SPECS: Final[tuple[MetricSpec, ...]] = (POLLS, ERRORS)


@dataclass(slots=True)
class PjlinkStats:
    polls: int = 0
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)


def families(stats: PjlinkStats) -> list[MetricFamily]:
    return [POLLS.family({(): float(stats.polls)}),
            ERRORS.family({k: float(n) for k, n in stats.errors.items()})]


UP = gauge("monitord_pjlink_up", "1 when the projector answered the last PJLink poll "
           "completely (0: failing, see monitord_pjlink_errors_total).", "device")
POWER_STATE = gauge("monitord_pjlink_power_state", "PJLink power state: 0 off/standby, "
                    "1 on, 2 cooling down, 3 warming up.", "device")
LAMP_HOURS = gauge("monitord_pjlink_lamp_hours", "Cumulative lighting hours of a lamp "
                   "(1 = first lamp).", "device", "lamp")
LAMP_ON = gauge("monitord_pjlink_lamp_on", "1 while the lamp is lit.", "device", "lamp")
ERROR = gauge("monitord_pjlink_error", "PJLink error status of a part (fan, lamp, "
              "temperature, cover, filter, other): 0 ok, 1 warning, 2 error.",
              "device", "part")
INFO = gauge("monitord_pjlink_info", "Always 1: what the projector says it is.",
             "device", "manufacturer", "model", "serial", "input", "pjlink_class")


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    """Each projector's last PJLink reading; nothing but ``up`` for a failed poll."""
    up: dict[tuple[str, ...], float] = {}
    power: dict[tuple[str, ...], float] = {}
    hours: dict[tuple[str, ...], float] = {}
    lit: dict[tuple[str, ...], float] = {}
    errors: dict[tuple[str, ...], float] = {}
    info: dict[tuple[str, ...], float] = {}
    for (dev, _school, _kind), obs in latest:
        if not obs.complete:
            continue
        up[(dev,)] = 1 if obs.ok else 0
        if not obs.ok:
            continue
        if (x := obs.values.get("power_state")) is not None:
            power[(dev,)] = x
        for lamp, row in obs.tables.get("lamp", {}).items():
            if (x := row.get("hours")) is not None:
                hours[(dev, lamp)] = x
            if (x := row.get("on")) is not None:
                lit[(dev, lamp)] = x
        for part, row in obs.tables.get("error", {}).items():
            if (x := row.get("status")) is not None:
                errors[(dev, part)] = x
        i = obs.info
        info[(dev, i.get("manufacturer", "")[:64], i.get("model", "")[:64],
              i.get("serial", "")[:64], i.get("input", ""), i.get("pjlink_class", ""))] = 1
    return [UP.family(up), POWER_STATE.family(power), LAMP_HOURS.family(hours),
            LAMP_ON.family(lit), ERROR.family(errors), INFO.family(info)]
