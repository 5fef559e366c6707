"""The typed event constructors, for the notifier's side: defined in
:mod:`monitord.domain.notifications` (pure, so that storage — officers' ticket changes —
and the application's pipeline build events with the same constructors)."""

from __future__ import annotations

from monitord.domain.notifications import (
    EVENT_KINDS,
    Cause,
    DeviceCause,
    NotificationEvent,
    SummaryTicket,
    TicketChange,
    TicketSubject,
    UpstreamCause,
    broker_restored,
    broker_unreachable,
    daily_summary,
    event_key,
    storage_failing,
    storage_restored,
    ticket_changed,
    ticket_closed_by,
    ticket_escalated,
    ticket_opened,
    ticket_reminder,
    ticket_scheduled,
    upstream_ended,
    upstream_started,
)

__all__ = [
    "EVENT_KINDS", "Cause", "DeviceCause", "NotificationEvent", "SummaryTicket",
    "TicketChange", "TicketSubject", "UpstreamCause", "broker_restored",
    "broker_unreachable", "daily_summary", "event_key", "storage_failing",
    "storage_restored", "ticket_changed", "ticket_closed_by", "ticket_escalated",
    "ticket_opened", "ticket_reminder", "ticket_scheduled", "upstream_ended",
    "upstream_started",
]
