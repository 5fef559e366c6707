"""Who may see and do what in the officers' console and the API: roles, pure rules.

Roles (issue 14):

- ``admin``: users and the inventory, and everything an officer may do;
- ``officer``: all tickets (every action), maintenance windows, reports;
- ``technician``: the tickets assigned to them (acknowledge, schedule, start, finish,
  record what was found and done), reports of problems;
- ``school``: only their own school(s): devices, tickets, report a problem, confirm a
  repair (which closes the ticket);
- ``viewer`` (the director): reads everything, changes nothing.

An API bearer token (``http.api_tokens``) acts as an officer.  The web layer enforces
these rules on every page, action and API route (403); the storage layer does not know
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ADMIN = "admin"
    OFFICER = "officer"
    TECHNICIAN = "technician"
    SCHOOL = "school"
    VIEWER = "viewer"


ROLES: tuple[Role, ...] = tuple(Role)
ROLE_TH: dict[str, str] = {
    Role.ADMIN: "ผู้ดูแลระบบ",
    Role.OFFICER: "เจ้าหน้าที่",
    Role.TECHNICIAN: "ช่างเทคนิค",
    Role.SCHOOL: "ครูผู้รับผิดชอบ ICT ของโรงเรียน",
    Role.VIEWER: "ผู้บริหาร (ดูอย่างเดียว)",
}


class Action(StrEnum):
    """What can be done to a ticket (the console's buttons, the API's writes)."""

    ACKNOWLEDGE = "acknowledge"  # รับทราบ: stops reminders and escalation
    ASSIGN = "assign"            # มอบหมาย
    SCHEDULE = "schedule"        # นัดหมาย
    START = "start"              # เริ่มซ่อม
    FINISH = "finish"            # ซ่อมเสร็จ
    RECORD = "record"            # สาเหตุ / การแก้ไข / สรุปผล
    CLOSE = "close"              # ปิด
    CONFIRM = "confirm"          # โรงเรียนยืนยันว่าใช้งานได้แล้ว (closes a repaired ticket)


class Perm(StrEnum):
    """Permissions that do not depend on one ticket."""

    TICKETS_ALL = "tickets_all"    # see every ticket
    REPORT = "report"              # receive / report a problem (school: own schools only)
    MAINTENANCE = "maintenance"    # add and end maintenance windows
    REPORTS = "reports"            # availability / daily reports
    USERS = "users"                # manage users
    INVENTORY = "inventory"        # import / export schools and devices
    DEVICES_ALL = "devices_all"    # see every device with its non-public fields


_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.OFFICER: frozenset({Perm.TICKETS_ALL, Perm.REPORT, Perm.MAINTENANCE, Perm.REPORTS,
                             Perm.DEVICES_ALL}),
    Role.TECHNICIAN: frozenset({Perm.REPORT, Perm.REPORTS, Perm.DEVICES_ALL}),
    Role.SCHOOL: frozenset({Perm.REPORT}),
    Role.VIEWER: frozenset({Perm.TICKETS_ALL, Perm.REPORTS, Perm.DEVICES_ALL}),
}

_TECHNICIAN_ACTIONS = frozenset({Action.ACKNOWLEDGE, Action.SCHEDULE, Action.START,
                                 Action.FINISH, Action.RECORD})


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in person (or an API token, as an officer)."""

    id: int
    name: str
    role: Role
    schools: tuple[str, ...] = ()
    disabled: bool = False
    display_name: str = ""

    @property
    def label(self) -> str:
        return self.display_name or self.name


def token_user(name: str) -> User:
    """The user an API bearer token acts as: an officer named after the token."""
    return User(0, name, Role.OFFICER)


def can(user: User | None, perm: Perm) -> bool:
    return user is not None and not user.disabled and perm in _PERMS[user.role]


def can_see_school(user: User | None, school: str | None) -> bool:
    """May ``user`` see this school's devices and tickets (``None``: the office's own)?"""
    if user is None or user.disabled:
        return False
    if user.role is Role.SCHOOL:
        return school is not None and school in user.schools
    return True


def can_report(user: User | None, school: str | None) -> bool:
    """May ``user`` receive or file a problem report for ``school`` (None: office)?"""
    return can(user, Perm.REPORT) and can_see_school(user, school)


def can_see_ticket(user: User | None, ticket: Mapping[str, Any]) -> bool:
    """``ticket``: a stored ticket (``school``, ``assigned_to``)."""
    if user is None or user.disabled:
        return False
    if can(user, Perm.TICKETS_ALL):
        return True
    if user.role is Role.TECHNICIAN:
        return bool(ticket.get("assigned_to")) and ticket.get("assigned_to") == user.name
    if user.role is Role.SCHOOL:
        return can_see_school(user, ticket.get("school"))
    return False


def can_act(user: User | None, ticket: Mapping[str, Any], action: Action) -> bool:
    """May ``user`` take ``action`` on ``ticket`` (whatever its status: the command
    decides whether the transition is possible)?"""
    if user is None or user.disabled or not can_see_ticket(user, ticket):
        return False
    if user.role in (Role.ADMIN, Role.OFFICER):
        return True
    if user.role is Role.TECHNICIAN:
        return action in _TECHNICIAN_ACTIONS
    if user.role is Role.SCHOOL:
        return action is Action.CONFIRM
    return False


@dataclass(frozen=True, slots=True)
class TicketScope:
    """Which tickets a list may show: ``schools`` (None: any) and ``assigned_to``
    (None: anyone's)."""

    schools: tuple[str, ...] | None = None
    assigned_to: str | None = None
    nothing: bool = False


def ticket_scope(user: User | None) -> TicketScope:
    if user is None or user.disabled:
        return TicketScope(nothing=True)
    if can(user, Perm.TICKETS_ALL):
        return TicketScope()
    if user.role is Role.TECHNICIAN:
        return TicketScope(assigned_to=user.name)
    if user.role is Role.SCHOOL:
        return TicketScope(schools=user.schools)
    return TicketScope(nothing=True)
