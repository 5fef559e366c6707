"""Request and response models of the JSON API (``/api/v1``).

FastAPI generates the OpenAPI document from these models (:mod:`monitord.http.api.openapi`)
and every response is built from them, so the document and the code cannot drift apart.

Conventions: instants are Unix seconds (float, UTC epoch); fields marked *token only*
are present only in answers to requests carrying a valid bearer token (addresses, host
names, serial numbers, people's names and officers' free texts are not public — PDPA).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from monitord.config import DeviceKind
from monitord.domain.activehours import parse_days, parse_hours
from monitord.domain.state import State
from monitord.domain.tickets import (
    ASSIGNEE_MAX,
    PHONE_MAX,
    PROBLEM_MAX,
    REPORTER_NAME_MAX,
    REPORTER_POSITION_MAX,
    TicketStatus,
)
from monitord.values import SaneDateTime

TOKEN_ONLY = "only with a valid bearer token"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(_Out):
    loc: list[str | int] = Field(description="where: body/query key path")
    msg: str
    type: str


class Problem(_Out):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(description="a URI naming the problem type; about:blank for plain "
                                  "HTTP status problems")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] | None = Field(None, description="validation problems (400, 422)")


# -- reads ---------------------------------------------------------------------------


class Location(_Out):
    lat: float
    lon: float


class SchoolOut(_Out):
    smis: str = Field(description="the school's SMIS code")
    name: str
    district: str = Field(description="อำเภอ")
    isp: str
    location: Location | None
    state: State = Field(description="from the school's link devices (those without parent)")
    state_text: str = Field(description="the state in Thai")
    since: float = Field(description="when the current state began (Unix seconds)")
    device_count: int = Field(ge=0)
    devices_down: int = Field(ge=0, description="devices DOWN or UNREACHABLE")


class DeviceOut(_Out):
    id: str
    name: str
    kind: DeviceKind
    school: str | None = Field(description="SMIS code; null for office devices")
    parent: str | None
    state: State = Field(description="effective state: UNREACHABLE below a down parent, "
                                     "MAINTENANCE inside a maintenance window")
    state_text: str = Field(description="the state in Thai")
    since: float | None = Field(description="when the observed state began; null before "
                                            "the first probe")
    reason: str
    flapping: bool
    maintenance: str | None = Field(description="name of the maintenance window in force")
    address: str | None = Field(None, description=TOKEN_ONLY)
    hostname: str | None = Field(None, description=TOKEN_ONLY)
    serial: str | None = Field(None, description=TOKEN_ONLY)
    brand_model: str | None = Field(None, description=TOKEN_ONLY)
    unit: str | None = Field(None, description=TOKEN_ONLY + "; office work unit served")
    probes: list[str] | None = Field(None, description=TOKEN_ONLY)


class SchoolDetail(SchoolOut):
    devices: list[DeviceOut]


class IncidentOut(_Out):
    id: str
    kind: str = Field(description="device, upstream or condition")
    root: str = Field(description="root-cause device id, isp:NAME / district:NAME, or "
                                  "DEVICE#KEY (a condition: a standing problem of a device "
                                  "that works, e.g. web-portal#tls_cert_expiring)")
    school: str | None
    opened_at: float
    closed_at: float | None
    reason: str
    hypothesis: str
    affected: list[str] = Field(description="devices (or, upstream, routers) affected")
    members: list[str] = Field(description="upstream: the member incidents")
    parent_incident: str | None
    ticket_id: int | None


class EquipmentOut(_Out):
    device_id: str
    name: str
    remark: str
    hostname: str | None = Field(None, description=TOKEN_ONLY)
    brand_model: str | None = Field(None, description=TOKEN_ONLY)
    serial: str | None = Field(None, description=TOKEN_ONLY)


class TicketEventOut(_Out):
    ts: float
    status: TicketStatus
    status_th: str
    actor: str | None = Field(None, description=TOKEN_ONLY)
    note: str | None = Field(None, description=TOKEN_ONLY)


class TicketOut(_Out):
    id: int
    incident_id: str
    root: str
    school: str | None
    variant: str = Field(description="school or office (the repair report form)")
    served_unit: str
    status: TicketStatus
    status_th: str
    opened_at: float
    down_since: float
    scheduled_for: float | None
    repair_started: float | None
    repair_finished: float | None
    repaired_at: float | None
    closed_at: float | None
    recovery_seconds: float | None
    reason: str
    hypothesis: str
    relapses: int
    updated_at: float
    office_name: str
    group_name: str
    equipment: list[EquipmentOut]
    origin: Literal["auto", "manual"] = Field(
        description="auto: opened by monitord (ระบบตรวจพบ); manual: a report received "
                    "from a person (รับแจ้ง)")
    report_source: Literal["phone", "line", "letter", "walk_in"] | None = Field(
        description="manual tickets: how the report came in")
    acknowledged_at: float | None = Field(description="รับทราบ: reminders and escalation "
                                                      "stopped")
    event_text: str | None = Field(None, description=TOKEN_ONLY)
    cause: str | None = Field(None, description=TOKEN_ONLY)
    fix: str | None = Field(None, description=TOKEN_ONLY)
    summary: str | None = Field(None, description=TOKEN_ONLY)
    reporter_name: str | None = Field(None, description=TOKEN_ONLY)
    reporter_position: str | None = Field(None, description=TOKEN_ONLY)
    repairer_name: str | None = Field(None, description=TOKEN_ONLY)
    repairer_position: str | None = Field(None, description=TOKEN_ONLY)
    reporter_phone: str | None = Field(None, description=TOKEN_ONLY)
    problem: str | None = Field(None, description=TOKEN_ONLY + "; manual tickets: the "
                                                              "problem as reported")
    assigned_to: str | None = Field(None, description=TOKEN_ONLY + "; null: nobody")
    acknowledged_by: str | None = Field(None, description=TOKEN_ONLY)
    created_by: str | None = Field(None, description=TOKEN_ONLY + "; manual tickets: who "
                                                                 "received the report")


class TicketDetail(TicketOut):
    affected: list[str]
    history: list[TicketEventOut]


class WeeklyOut(_Out):
    days: list[str]
    hours: str


class MaintenanceOut(_Out):
    id: int | None = Field(description="database windows (API/CLI); null for config windows")
    source: Literal["config", "database"]
    name: str
    start: float | None
    end: float | None
    weekly: WeeklyOut | None
    devices: list[str]
    schools: list[str]
    kinds: list[str]
    reason: str
    active: bool = Field(description="in force now")
    created_by: str | None = Field(None, description=TOKEN_ONLY + "; database windows")
    created_at: float | None = Field(None, description=TOKEN_ONLY + "; database windows")


class SchoolList(_Out):
    count: int
    items: list[SchoolOut]


class DeviceList(_Out):
    count: int
    items: list[DeviceOut]


class IncidentList(_Out):
    count: int
    items: list[IncidentOut]


class TicketList(_Out):
    count: int
    items: list[TicketOut]


class MaintenanceList(_Out):
    count: int
    items: list[MaintenanceOut]


class OpenApiDocument(BaseModel):
    """This document."""

    model_config = ConfigDict(extra="allow")
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


# -- query parameters ----------------------------------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SchoolQuery(_Query):
    district: str | None = Field(None, max_length=200, description="only this district")
    isp: str | None = Field(None, max_length=200, description="only this ISP")
    state: State | None = Field(None, description="only schools in this state")


class DeviceQuery(_Query):
    school: str | None = Field(None, max_length=64,
                               description="SMIS code, or 'office' for office devices")
    kind: DeviceKind | None = None
    state: State | None = Field(None, description="effective state")


class IncidentQuery(_Query):
    all: bool = Field(False, description="true: open and closed incidents from the database, "
                                         "newest first")
    limit: int = Field(100, ge=1, le=1000, description="with all=true: at most this many")


class TicketQuery(_Query):
    status: TicketStatus | None = None
    all: bool = Field(False, description="include closed tickets")
    school: str | None = Field(None, max_length=64, description="only this school's (SMIS)")
    assigned_to: str | None = Field(None, max_length=ASSIGNEE_MAX,
                                    description="only those assigned to this user")


class MaintenanceQuery(_Query):
    all: bool = Field(False, description="include past one-off windows")


# -- writes --------------------------------------------------------------------------

_TEXT = 4000
_NAME = 200

class TicketPatch(BaseModel):
    """An officer's change, as ``monitord tickets update/schedule/close`` allow.

    Setting ``scheduled_for`` on an open ticket makes it ``scheduled``; ``in_repair``
    sets ``repair_started`` (unless given), ``repaired`` sets ``repair_finished`` and
    ``closed`` the closing time.  A closed ticket cannot change status again (409).
    ``assigned_to`` (มอบหมาย) is applied first, as ``monitord tickets assign``.
    Naive date-times are office local time (Asia/Bangkok)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    status: TicketStatus | None = None
    scheduled_for: SaneDateTime | None = Field(None, description="นัดหมาย: inspection time")
    cause: str | None = Field(None, max_length=_TEXT)
    fix: str | None = Field(None, max_length=_TEXT)
    summary: str | None = Field(None, max_length=_TEXT)
    event_text: str | None = Field(None, max_length=_TEXT,
                                   description="overrides the observed problem text")
    repairer_name: str | None = Field(None, max_length=_NAME)
    repairer_position: str | None = Field(None, max_length=_NAME)
    repair_started: SaneDateTime | None = None
    repair_finished: SaneDateTime | None = None
    assigned_to: str | None = Field(None, max_length=ASSIGNEE_MAX,
                                    description="มอบหมาย: a user's name; null or \"\" "
                                                "takes the assignment away")
    note: str = Field("", max_length=_TEXT, description="for the ticket's history")

    @model_validator(mode="after")
    def _something(self) -> TicketPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class TicketReport(BaseModel):
    """รับแจ้ง: a problem reported by a person (phone, LINE, letter, walk-in) for devices
    of a school, a whole school (``devices`` empty) or office equipment (``school`` null
    or left out, ``devices`` given).  Devices must be configured and belong to the
    school (422 otherwise).  Numbered, notified and reported like automatic tickets."""

    model_config = ConfigDict(extra="forbid")
    school: str | None = Field(None, min_length=1, max_length=64,
                               description="SMIS code; null: office equipment")
    devices: list[str] = Field(default_factory=list, max_length=200,
                               description="device ids; empty: the whole school")
    source: Literal["phone", "line", "letter", "walk_in"]
    reporter_name: str = Field(min_length=1, max_length=REPORTER_NAME_MAX,
                               pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$",
                               description="no control characters")
    reporter_phone: str = Field("", max_length=PHONE_MAX, pattern=r"^[0-9+\- ()#]*$")
    reporter_position: str = Field("", max_length=REPORTER_POSITION_MAX,
                                   pattern=r"^[^\x00-\x1f\x7f]*$")
    problem: str = Field(min_length=1, max_length=PROBLEM_MAX,
                         description="what is wrong, as reported")


class TicketAck(BaseModel):
    """รับทราบ: reminders and escalation of the ticket stop."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=_TEXT, description="for the ticket's history")


class WeeklyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: list[str] = Field(min_length=1, max_length=7,
                            description="e.g. [sun] or [mon-fri] or [sat, sun]")
    hours: str = Field(max_length=20, description="HH:MM-HH:MM, office local time")

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        parse_days(v)
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: str) -> str:
        parse_hours(v)
        return v


class MaintenanceCreate(BaseModel):
    """A one-off (``start`` and ``end``) or weekly (``weekly``) maintenance window, as
    ``monitord maintenance add``.  Empty scope lists match everything of that dimension.
    Naive date-times are office local time (Asia/Bangkok)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["start", "end"], "not": {"required": ["weekly"]}},
        {"required": ["weekly"], "not": {"anyOf": [{"required": ["start"]},
                                                   {"required": ["end"]}]}},
    ]})
    name: str = Field(min_length=1, max_length=_NAME, pattern=r"^[^\x00-\x1f\x7f]+$",
                      description="no control characters")
    start: SaneDateTime | SkipJsonSchema[None] = None
    end: SaneDateTime | SkipJsonSchema[None] = None
    weekly: WeeklyIn | SkipJsonSchema[None] = None
    devices: list[str] = Field(default_factory=list, max_length=1000)
    schools: list[str] = Field(default_factory=list, max_length=1000)
    kinds: list[DeviceKind] = Field(default_factory=list, max_length=20)
    reason: str = Field("", max_length=_TEXT)

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceCreate:
        given = self.model_fields_set
        for key in ("start", "end", "weekly"):
            if key in given and getattr(self, key) is None:
                raise ValueError(f"'{key}' must not be null (leave it out instead)")
        one_off = "start" in given or "end" in given
        if one_off == ("weekly" in given):
            raise ValueError("give either 'start' and 'end', or 'weekly'")
        if one_off and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs both 'start' and 'end'")
        return self
