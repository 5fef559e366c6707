"""What the notifier is configured with: channels (receivers) and the delivery policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitord.domain.activehours import Calendar, Schedule
from monitord.domain.events import NotificationEvent
from monitord.domain.links import LinkSigner

BANGKOK = ZoneInfo("Asia/Bangkok")
NO_HOLIDAYS = Calendar()


@dataclass(frozen=True, slots=True)
class Channel:
    """Where messages go, and which ones.

    ``on_duty``: the officer behind this channel is on duty only then (e.g. Thursday and
    Friday): events that happen outside it go to whoever else is on duty, not here.
    ``quiet``: hours in which nothing is sent; messages wait and go out when they end.
    ``max_per_hour``: messages at most per rolling hour; the rest wait (grouped).
    ``escalation``: this channel receives only escalations (e.g. the group director).
    """

    name: str
    url: str  # may contain a token: never log it
    events: frozenset[str] = frozenset()  # empty: all
    schools: frozenset[str] = frozenset()
    districts: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    on_duty: Schedule | None = None
    quiet: Schedule | None = None
    max_per_hour: int | None = None
    escalation: bool = False

    def wants(self, event: NotificationEvent, calendar: Calendar = NO_HOLIDAYS) -> bool:
        """The channel's filters (the route stage's matcher): escalation channels take
        escalations only and the others never; the duty roster at the event's time; then
        event kinds, schools, districts and device kinds (an empty filter takes all)."""
        data = event.data
        if self.escalation != (event.kind == "ticket_escalated"):
            return False
        if self.on_duty is not None and not self.on_duty.active(
                datetime.fromtimestamp(event.ts, BANGKOK), calendar):
            return False
        return ((not self.events or event.kind in self.events)
                and (not self.schools or str(data.get("school") or "") in self.schools)
                and (not self.districts or str(data.get("district") or "") in self.districts)
                and (not self.kinds or str(data.get("kind") or "") in self.kinds))


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    group_window: float = 30.0
    max_attempts: int = 12
    backoff_initial: float = 5.0
    backoff_max: float = 1800.0
    base_url: str = ""
    lang: str = "th"
    links: LinkSigner | None = None  # signs ticket links (monitord.domain.links)
