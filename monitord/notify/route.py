"""The route stage: fan an event out to the channels that want it.

Each event goes to every channel whose filters match (:meth:`Channel.wants`: escalation,
duty roster, event kinds, schools, districts, device kinds), as one delivery per
(event, channel).  A delivery's first attempt is one ``group_window`` after the event
(or after now, for an event routed late), so that what happens together is sent
together; a ``test`` event goes out at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitord.domain.activehours import Calendar
from monitord.domain.events import NotificationEvent
from monitord.notify.channel import NO_HOLIDAYS, Channel, NotifyPolicy


def first_attempt(event: NotificationEvent, now: float, policy: NotifyPolicy) -> float:
    """When a new delivery of ``event`` may first be sent."""
    if event.kind == "test":
        return now
    return max(now, event.ts) + policy.group_window


def targets(event: NotificationEvent, channels: Sequence[Channel], now: float,
            policy: NotifyPolicy, calendar: Calendar = NO_HOLIDAYS
            ) -> list[tuple[str, float]]:
    """The (channel name, first attempt) of each delivery ``event`` makes."""
    first = first_attempt(event, now, policy)
    return [(ch.name, first) for ch in channels if ch.wants(event, calendar)]
