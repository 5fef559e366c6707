"""Notification events: the plain data the incident pipeline records in the outbox and the
notifier delivers (``monitord.storage.outbox`` stores them, ``monitord.notify`` sends them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EVENT_KINDS = ("ticket_opened", "ticket_scheduled", "ticket_repaired", "ticket_reopened",
               "ticket_closed", "ticket_reminder", "ticket_escalated", "upstream_started",
               "upstream_ended", "broker_unreachable", "broker_restored", "daily_summary",
               "test", "storage_failing", "storage_restored")


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """Something people should hear about; ``key`` makes recording it idempotent."""

    key: str
    kind: str
    ts: float
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def school(self) -> str | None:
        value = self.data.get("school")
        return str(value) if value else None


def event_key(*parts: object) -> str:
    """A stable idempotency key from the parts that identify an event."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]
