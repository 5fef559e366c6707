"""Repair tickets (ใบแจ้งซ่อม): statuses, the officer's vocabulary, the facts frozen into a
ticket when it opens.  Pure data; the SQL that stores tickets is
:mod:`monitord.storage.tickets`.

Workflow (shared/domain.md): เปิด (open, received) → นัดหมายแล้ว (scheduled) → กำลังซ่อม
(in repair) → ซ่อมเสร็จ (repaired) → ปิด (closed).  Every status change is a row in
``ticket_event`` with the time and who did it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TicketStatus(StrEnum):
    """A ticket's status; the values are what is stored and shown in JSON."""

    OPEN = "open"
    SCHEDULED = "scheduled"
    IN_REPAIR = "in_repair"
    REPAIRED = "repaired"
    CLOSED = "closed"


STATUSES: tuple[TicketStatus, ...] = tuple(TicketStatus)
STATUS_TH: dict[str, str] = {
    TicketStatus.OPEN: "เปิด",
    TicketStatus.SCHEDULED: "นัดหมายแล้ว",
    TicketStatus.IN_REPAIR: "กำลังซ่อม",
    TicketStatus.REPAIRED: "ซ่อมเสร็จ",
    TicketStatus.CLOSED: "ปิด",
}
SYSTEM_ACTOR = "monitord"
#: statuses in which the fault is still being worked on (reminders, escalations)
ACTIVE: tuple[TicketStatus, ...] = (TicketStatus.OPEN, TicketStatus.SCHEDULED,
                                    TicketStatus.IN_REPAIR)


class TicketError(ValueError):
    """An officer's request that cannot be applied (unknown ticket, bad transition)."""


@dataclass(frozen=True, slots=True)
class Equipment:
    device_id: str
    name: str
    hostname: str
    brand_model: str
    serial: str
    remark: str = ""


@dataclass(frozen=True, slots=True)
class TicketContext:
    """Facts from the config frozen into the ticket when it opens (the report is a record:
    it must not change when the config is edited later)."""

    variant: str  # "school" or "office"
    served_unit: str
    school: str | None
    office_name: str
    group_name: str
    reporter_name: str
    reporter_position: str
    equipment: list[Equipment] = field(default_factory=list)
