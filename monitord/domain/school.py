"""A school's connectivity from its link devices — one rule, used by the status page, the
wall, the metrics, the notifications and availability.

A school's **link devices** (its gateways) are its devices with no parent: normally its
router, the device that carries the school's internet link.  The school's state at any
moment is the worst of their states; it is *offline* while one of them is down or
unreachable and *online* while all of them are up (or degraded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from monitord.domain.state import State

#: worst first: the first of these found among the link devices' states is the school's
SEVERITY_ORDER = (State.DOWN, State.UNREACHABLE, State.DEGRADED, State.MAINTENANCE,
                  State.UNKNOWN, State.UP)
ONLINE_STATES = frozenset({State.UP, State.DEGRADED})
OFFLINE_STATES = frozenset({State.DOWN, State.UNREACHABLE})


class LinkCandidate(Protocol):
    """What the rule needs of a configured device."""

    @property
    def id(self) -> str: ...
    @property
    def school(self) -> str | None: ...
    @property
    def parent(self) -> str | None: ...


def is_link_device(school: str | None, parent: str | None) -> bool:
    """A device carries its school's link when it belongs to a school and has no parent."""
    return school is not None and parent is None


def link_devices(devices: Iterable[LinkCandidate]) -> dict[str, list[str]]:
    """Each school's link devices (ids, in config order); schools without one absent."""
    out: dict[str, list[str]] = {}
    for d in devices:
        if d.school is not None and is_link_device(d.school, d.parent):
            out.setdefault(d.school, []).append(d.id)
    return out


def school_state(states: Sequence[State]) -> State:
    """A school's state from its link devices: the worst one counts (UNKNOWN: none)."""
    for st in SEVERITY_ORDER:
        if st in states:
            return st
    return State.UNKNOWN


def school_offline(states: Iterable[State]) -> bool:
    """True while one of the school's link devices is down or unreachable."""
    return any(st in OFFLINE_STATES for st in states)


def school_up(states: Sequence[State]) -> bool | None:
    """True: every link device up (or degraded); False: one is down or unreachable;
    None: not known (no link device, unknown, in maintenance)."""
    if school_offline(states):
        return False
    if states and all(st in ONLINE_STATES for st in states):
        return True
    return None
