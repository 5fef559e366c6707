"""Repair tickets (ใบแจ้งซ่อม): statuses, the officer's vocabulary, the facts frozen into a
ticket when it opens.  Pure data; the SQL that stores tickets is
:mod:`monitord.storage.tickets`.

Workflow (shared/domain.md): เปิด (open, received) → นัดหมายแล้ว (scheduled) → กำลังซ่อม
(in repair) → ซ่อมเสร็จ (repaired) → ปิด (closed).  Every status change is a row in
``ticket_event`` with the time and who did it.
"""

from __future__ import annotations

import re
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


# -- manual reports (รับแจ้ง) and where a ticket came from ---------------------------------

#: how a manual report reached the office
SOURCES: tuple[str, ...] = ("phone", "line", "letter", "walk_in")
SOURCE_TH: dict[str, str] = {"phone": "โทรศัพท์", "line": "LINE", "letter": "หนังสือ",
                             "walk_in": "มาติดต่อด้วยตนเอง"}
SOURCE_EN: dict[str, str] = {"phone": "phone", "line": "LINE", "letter": "letter",
                             "walk_in": "walk-in"}
#: a ticket's origin: opened by the incident engine, or received from a person
ORIGINS: tuple[str, ...] = ("auto", "manual")
ORIGIN_TH: dict[str, str] = {"auto": "ระบบตรวจพบ", "manual": "รับแจ้ง"}

REPORTER_NAME_MAX = 200
REPORTER_POSITION_MAX = 200
PROBLEM_MAX = 2000
PHONE_MAX = 40
ASSIGNEE_MAX = 200
_PHONE = re.compile(r"[0-9+\- ()#]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")

#: the root of a manual ticket that covers a whole school: ``school:<SMIS>``
SCHOOL_ROOT = "school:"


def school_root(smis: str) -> str:
    return f"{SCHOOL_ROOT}{smis}"


def root_school(root: str) -> str | None:
    """The SMIS code of a whole-school root (``school:<SMIS>``), else None."""
    return root[len(SCHOOL_ROOT):] if root.startswith(SCHOOL_ROOT) else None


def check_reporter_name(value: str) -> str | None:
    """Why ``value`` is not a reporter's (or assignee's) name; None when it is."""
    text = value.strip()
    if not text or len(text) > REPORTER_NAME_MAX:
        return f"1 to {REPORTER_NAME_MAX} characters"
    if _CONTROL_LINE.search(text):
        return "no control characters"
    return None


def check_position(value: str) -> str | None:
    if len(value) > REPORTER_POSITION_MAX:
        return f"at most {REPORTER_POSITION_MAX} characters"
    if _CONTROL_LINE.search(value):
        return "no control characters"
    return None


def check_phone(value: str) -> str | None:
    if len(value) > PHONE_MAX:
        return f"at most {PHONE_MAX} characters"
    if not _PHONE.fullmatch(value):
        return "only digits, spaces and + - ( ) #"
    return None


def check_problem(value: str) -> str | None:
    text = value.strip()
    if not text or len(text) > PROBLEM_MAX:
        return f"1 to {PROBLEM_MAX} characters"
    if _CONTROL.search(text):
        return "no control characters (new lines and tabs are fine)"
    return None


def check_source(value: str) -> str | None:
    return None if value in SOURCES else f"one of {', '.join(SOURCES)}"


def received_note(source: str, reporter_name: str) -> str:
    """The history row of a manual report: "รับแจ้งทาง โทรศัพท์ จาก …"."""
    return f"รับแจ้งทาง {SOURCE_TH.get(source, source)} จาก {reporter_name}"
