"""Notification events, built in one place: one typed constructor per kind.

Every event's payload (``data``) is made here, from typed facts, so what an event carries
and what :mod:`monitord.notify.render` words from it agree.  Keys are the idempotency
keys the outbox dedupes on; they are derived exactly as before the split (an event
recorded by an older version is not recorded again after an upgrade).

Callers (the application's pipeline, the ticket storage recording officers' changes,
the notifier's clock) gather the facts — a :class:`TicketSubject`, a
:class:`DeviceCause` or :class:`UpstreamCause` — and call the constructor; they never
build a ``data`` dict themselves.  Pure (domain): every layer that makes events can
import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from monitord.domain.events import EVENT_KINDS, NotificationEvent, event_key

__all__ = [
    "EVENT_KINDS", "Cause", "ConditionCause", "DeviceCause", "NotificationEvent", "SummaryTicket",
    "TicketChange", "TicketSubject", "UpstreamCause", "broker_restored",
    "broker_unreachable", "daily_summary", "event_key", "storage_failing",
    "storage_restored", "ticket_changed", "ticket_closed_by", "ticket_escalated",
    "ticket_opened", "ticket_reminder", "ticket_reported", "ticket_scheduled",
    "upstream_ended",
    "upstream_started",
]

TicketChange = Literal["ticket_repaired", "ticket_reopened", "ticket_closed"]


@dataclass(frozen=True, slots=True)
class TicketSubject:
    """What a ticket is about, as messages name it and channels filter it.

    ``district`` and ``kind`` (the root device's kind) feed the channels' ``districts`` and
    ``kinds`` filters; None: not known where the event is made (then it is left out of
    the payload, as it always was for officers' changes and reminders).
    """

    ticket_id: int
    root: str
    root_name: str
    served_unit: str = ""
    school: str | None = None
    district: str | None = None
    kind: str | None = None

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ticket_id": self.ticket_id, "root": self.root,
                               "root_name": self.root_name, "school": self.school}
        if self.district is not None:
            out["district"] = self.district
        if self.kind is not None:
            out["kind"] = self.kind
        out["served_unit"] = self.served_unit
        return out


@dataclass(frozen=True, slots=True)
class DeviceCause:
    """The facts a device ticket's hypothesis is worded from, and its one count of what
    is affected (the ticket's equipment list after its root)."""

    affected: int
    gateway: bool
    isp: str

    def data(self) -> dict[str, Any]:
        return {"affected": self.affected, "gateway": self.gateway, "isp": self.isp}


@dataclass(frozen=True, slots=True)
class UpstreamCause:
    """An upstream outage: its group key ("isp:NT", "district:…"), the schools down in it
    and the group's size."""

    group: str
    schools: int
    total: int

    def data(self) -> dict[str, Any]:
        return {"group": self.group, "schools": self.schools, "total": self.total}


@dataclass(frozen=True, slots=True)
class ConditionCause:
    """A standing problem of a device that works (its key, e.g. ``tls_cert_expiring``,
    and the probe's reason text, which says what to do)."""

    condition: str
    reason: str

    def data(self) -> dict[str, Any]:
        return {"condition": self.condition, "reason": self.reason}


Cause = DeviceCause | UpstreamCause | ConditionCause


@dataclass(frozen=True, slots=True)
class SummaryTicket:
    """One open ticket in the daily summary."""

    id: int
    served_unit: str
    opened_at: float


# -- tickets (from the incident engine) ------------------------------------------------


def ticket_opened(subject: TicketSubject, incident_id: str, ts: float, down_since: float,
                  hypothesis: str, cause: Cause) -> NotificationEvent:
    """A ticket opened for an incident (a device's, or an upstream outage's)."""
    data = {**subject.data(), "down_since": down_since, "hypothesis": hypothesis,
            **cause.data()}
    return NotificationEvent(event_key("open", subject.ticket_id, incident_id),
                             "ticket_opened", ts, data)


#: at most this much of a manual report's problem goes into a message
PROBLEM_IN_MESSAGE = 200


def ticket_reported(subject: TicketSubject, ts: float, source: str, problem: str
                    ) -> NotificationEvent:
    """A manual ticket (รับแจ้ง) opened: the same ``ticket_opened`` kind as an automatic
    one (channels subscribe to both at once), worded from ``origin``, ``source`` (a
    :data:`monitord.domain.tickets.SOURCES` value) and the reported problem (one line,
    shortened).  The reporter's name and phone stay out of messages (PDPA)."""
    text = " ".join(problem.split())
    if len(text) > PROBLEM_IN_MESSAGE:
        text = text[:PROBLEM_IN_MESSAGE - 1] + "…"
    data = {**subject.data(), "origin": "manual", "source": source, "problem": text,
            "down_since": ts}
    return NotificationEvent(event_key("open", subject.ticket_id, "manual"),
                             "ticket_opened", ts, data)


def ticket_changed(kind: TicketChange, subject: TicketSubject, ts: float
                   ) -> NotificationEvent:
    """A ticket's device is back (repaired), failed again (reopened) or the ticket closed
    itself (auto-close)."""
    return NotificationEvent(event_key(kind, subject.ticket_id, ts), kind, ts, subject.data())


# -- tickets (officers' changes) -------------------------------------------------------


def ticket_scheduled(subject: TicketSubject, actor: str, scheduled_for: float, now: float
                     ) -> NotificationEvent:
    """An officer scheduled the repair."""
    return NotificationEvent(event_key("scheduled", subject.ticket_id, scheduled_for),
                             "ticket_scheduled", now,
                             {**subject.data(), "actor": actor, "scheduled_for": scheduled_for})


def ticket_closed_by(subject: TicketSubject, actor: str, now: float) -> NotificationEvent:
    """An officer closed the ticket."""
    return NotificationEvent(event_key("closed", subject.ticket_id), "ticket_closed", now,
                             {**subject.data(), "actor": actor})


# -- tickets (from the clock) ----------------------------------------------------------


def ticket_reminder(subject: TicketSubject, n: int, ts: float, age: float
                    ) -> NotificationEvent:
    """The ``n``-th reminder of a ticket still open (``ts``: when it fell due)."""
    return NotificationEvent(event_key("remind", subject.ticket_id, n), "ticket_reminder", ts,
                             {**subject.data(), "age": age})


def ticket_escalated(subject: TicketSubject, ts: float, age: float) -> NotificationEvent:
    """A ticket open past ``escalate_after`` (once per ticket)."""
    return NotificationEvent(event_key("escalate", subject.ticket_id), "ticket_escalated", ts,
                             {**subject.data(), "age": age})


def daily_summary(day: date, ts: float, offline_schools: Sequence[str],
                  open_tickets: Sequence[SummaryTicket]) -> NotificationEvent:
    """The day's summary (once per date): schools offline, open tickets as given."""
    return NotificationEvent(
        event_key("daily", day.isoformat()), "daily_summary", ts,
        {"offline_schools": list(offline_schools),
         "open_tickets": [{"id": t.id, "served_unit": t.served_unit, "opened_at": t.opened_at}
                          for t in open_tickets]})


# -- upstream outages ------------------------------------------------------------------


def upstream_started(incident_id: str, ts: float, hypothesis: str, cause: UpstreamCause
                     ) -> NotificationEvent:
    return NotificationEvent(event_key("upstream_started", incident_id), "upstream_started",
                             ts, {"hypothesis": hypothesis, **cause.data()})


def upstream_ended(incident_id: str, ts: float, hypothesis: str, cause: UpstreamCause
                   ) -> NotificationEvent:
    return NotificationEvent(event_key("upstream_ended", incident_id), "upstream_ended", ts,
                             {"hypothesis": hypothesis, **cause.data()})


# -- monitord itself -------------------------------------------------------------------


def broker_unreachable(since: float, reason: str) -> NotificationEvent:
    """The MQTT broker unreachable since ``since`` (past ``mqtt.alert_after``)."""
    return NotificationEvent(event_key("broker_unreachable", since), "broker_unreachable",
                             since, {"reason": reason, "since": since})


def broker_restored(down_since: float, back_since: float) -> NotificationEvent:
    """The broker reachable again since ``back_since`` after the outage from
    ``down_since`` (the key of the outage's ``broker_unreachable``)."""
    return NotificationEvent(event_key("broker_restored", down_since), "broker_restored",
                             back_since, {"age": max(0.0, back_since - down_since)})


def storage_failing(since: float, reason: str) -> NotificationEvent:
    """Database writes failing since ``since`` (sent directly, not through the outbox)."""
    return NotificationEvent(event_key("storage_failing", since), "storage_failing", since,
                             {"reason": reason, "since": since})


def storage_restored(since: float, now: float) -> NotificationEvent:
    """Database writes work again (the episode that began at ``since``)."""
    return NotificationEvent(event_key("storage_restored", since), "storage_restored", now,
                             {"age": max(0.0, now - since)})
