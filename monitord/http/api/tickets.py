"""Repair tickets: ``GET/POST /tickets``, ``GET/PATCH /tickets/{id}``,
``POST /tickets/{id}/acknowledge``.

A PATCH is the officer's change ``monitord tickets update/schedule/close/assign`` makes,
through the same application commands (:meth:`monitord.http.ports.Commands.update_ticket`,
``assign_ticket``); a POST to ``/tickets`` receives a report from a person (รับแจ้ง:
``report_problem``), ``/acknowledge`` is ``monitord tickets ack``.

Every operation needs a caller (a token or a console session: 401 otherwise) and is
scoped by role (:mod:`monitord.domain.access`): lists show only the tickets the caller
may see, one ticket the caller may not see is 403, and a change needs the right to each
action it makes (schedule, start, finish, record, close)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from monitord.domain.access import Action, can_act, can_report, can_see_ticket
from monitord.domain.tickets import TicketError, TicketStatus
from monitord.http.api.auth import Caller, Reader, Writer
from monitord.http.api.errors import (
    ID_SCHEMA,
    PREFIX,
    VALIDATION,
    ApiError,
    json_body,
    ok,
    path_id,
)
from monitord.http.api.models import (
    FieldError,
    TicketAck,
    TicketDetail,
    TicketList,
    TicketOut,
    TicketPatch,
    TicketQuery,
    TicketReport,
)
from monitord.http.api.openapi import CREATED, body, problems
from monitord.http.api.views import ticket_detail, ticket_fields

router = APIRouter(tags=["tickets"])

TicketId = Annotated[str, Path(alias="id", description="ticket id",
                               json_schema_extra=ID_SCHEMA)]


def instant(value: dt.datetime, tz: dt.tzinfo, what: str) -> float:
    """A request's date-time as Unix seconds (naive: office local time); 422 if no
    calendar can hold it."""
    try:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=tz)
        return aware.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ApiError(422, f"{what}: date-time out of range", type_=VALIDATION,
                       errors=[FieldError(loc=["body", what], msg="date-time out of range",
                                          type="value_error")]) from None


@router.get("/tickets", operation_id="listTickets",
            summary="Repair tickets (not closed, unless asked)", response_model=TicketList,
            response_description="OK", responses=problems(400, 401))
async def list_tickets(caller: Reader, q: Annotated[TicketQuery, Query()]) -> Response:
    user = caller.need_user()
    rows = await caller.storage.list_tickets(
        q.status, include_closed=q.all, schools=[q.school] if q.school is not None else None,
        assigned_to=q.assigned_to)
    items = [TicketOut(**ticket_fields(caller.for_school(t["school"]), t)) for t in rows
             if can_see_ticket(user, t)]
    return ok(TicketList(count=len(items), items=items))


@router.get("/tickets/{id}", operation_id="getTicket",
            summary="One repair ticket with its history", response_model=TicketDetail,
            response_description="OK", responses=problems(401, 403, 404))
async def get_ticket(caller: Reader, raw_id: TicketId) -> Response:
    t = await _ticket_for(caller, raw_id)
    return ok(ticket_detail(caller.for_school(t["school"]), t))


async def _ticket_for(caller: Caller, raw_id: str, actions: Iterable[Action] = ()
                      ) -> dict[str, Any]:
    """The ticket, if the caller may see it (403 otherwise) and take every one of
    ``actions`` on it (403 naming the refused ones); 401 without a caller, 404 if none."""
    user = caller.need_user()
    tid = path_id(raw_id, "ticket")
    try:
        t = await caller.storage.get_ticket(tid)
    except TicketError:
        raise ApiError(404, f"no ticket {tid}") from None
    if not can_see_ticket(user, t):
        raise ApiError(403, "you may not see this ticket")
    refused = sorted(a.value for a in actions if not can_act(user, t, a))
    if refused:
        raise ApiError(403, f"the role {user.role} may not {', '.join(refused)} this ticket")
    return t


def patch_actions(patch: TicketPatch) -> set[Action]:
    """What a PATCH does, as the actions of domain.access."""
    actions: set[Action] = set()
    if patch.scheduled_for is not None or patch.status == TicketStatus.SCHEDULED:
        actions.add(Action.SCHEDULE)
    if patch.status == TicketStatus.IN_REPAIR or patch.repair_started is not None:
        actions.add(Action.START)
    if patch.status == TicketStatus.REPAIRED or patch.repair_finished is not None:
        actions.add(Action.FINISH)
    if patch.status == TicketStatus.CLOSED:
        actions.add(Action.CLOSE)
    if patch.status == TicketStatus.OPEN or "assigned_to" in patch.model_fields_set:
        actions.add(Action.ASSIGN)  # (reopening: an officer's decision too)
    if any(getattr(patch, k) is not None for k in (
            "cause", "fix", "summary", "event_text", "repairer_name", "repairer_position")):
        actions.add(Action.RECORD)
    return actions or {Action.RECORD}


@router.patch("/tickets/{id}", operation_id="updateTicket",
              summary="An officer's change to a ticket (status, appointment, findings)",
              description="As `monitord tickets update/schedule/close`; the token's name is "
                          "recorded as the actor in the ticket's history.",
              response_model=TicketDetail, response_description="OK",
              responses=problems(400, 401, 403, 404, 409, 413, 415, 422),
              openapi_extra=body(TicketPatch))
async def patch_ticket(caller: Writer, raw_id: TicketId,
                       patch: Annotated[TicketPatch, Depends(json_body(TicketPatch))]
                       ) -> Response:
    t = await _ticket_for(caller, raw_id, patch_actions(patch))
    tid = int(t["id"])
    tz = caller.config.tz
    fields: dict[str, Any] = {k: getattr(patch, k) for k in (
        "cause", "fix", "summary", "event_text", "repairer_name", "repairer_position")
        if getattr(patch, k) is not None}
    for k in ("repair_started", "repair_finished"):
        value = getattr(patch, k)
        if value is not None:
            fields[k] = instant(value, tz, k)
    scheduled = (instant(patch.scheduled_for, tz, "scheduled_for")
                 if patch.scheduled_for is not None else None)
    given = patch.model_fields_set
    if "assigned_to" in given:  # before a status change that may close the ticket
        t = await caller.commands.assign_ticket(
            tid, caller.officer, patch.assigned_to,
            note=patch.note if given == {"assigned_to", "note"} else "")
    if given - {"assigned_to"} and given != {"assigned_to", "note"}:
        t = await caller.commands.update_ticket(tid, caller.officer, status=patch.status,
                                                scheduled_for=scheduled, note=patch.note,
                                                fields=fields)
    return ok(ticket_detail(caller.for_school(t["school"]), t))


@router.post("/tickets", operation_id="reportProblem",
             summary="Receive a problem reported by a person (รับแจ้ง): a manual ticket",
             description="For devices of a school, a whole school (no devices) or office "
                         "equipment (no school).  Manual and automatic tickets share one "
                         "numbering, the repair report form and the notifications; a "
                         "device that then goes down joins this ticket instead of opening "
                         "another.  The caller's name is recorded as who received it; a "
                         "school user may report only for their own school(s).",
             status_code=201, response_model=TicketDetail, response_description="Created",
             responses={201: CREATED, **problems(400, 401, 403, 409, 413, 415, 422)},
             openapi_extra=body(TicketReport))
async def report_problem(caller: Writer,
                         report: Annotated[TicketReport, Depends(json_body(TicketReport))]
                         ) -> Response:
    user = caller.need_user()
    if not can_report(user, report.school):
        raise ApiError(403, f"the role {user.role} may not report a problem here")
    caller.config  # noqa: B018 -- 503 while the daemon is starting
    t = await caller.commands.report_problem(
        caller.officer, school=report.school, devices=report.devices, source=report.source,
        reporter_name=report.reporter_name, reporter_phone=report.reporter_phone,
        reporter_position=report.reporter_position, problem=report.problem)
    return ok(ticket_detail(caller.for_school(t["school"]), t), 201,
              {"Location": f"{PREFIX}/tickets/{t['id']}"})


@router.post("/tickets/{id}/acknowledge", operation_id="acknowledgeTicket",
             summary="รับทราบ: acknowledge a ticket (its reminders and escalation stop)",
             description="As `monitord tickets ack`; acknowledging again changes nothing.  "
                         "A closed ticket cannot be acknowledged (409).",
             response_model=TicketDetail, response_description="OK",
             responses=problems(400, 401, 403, 404, 409, 413, 415, 422),
             openapi_extra=body(TicketAck))
async def acknowledge_ticket(caller: Writer, raw_id: TicketId,
                             ack: Annotated[TicketAck, Depends(json_body(TicketAck))]
                             ) -> Response:
    t = await _ticket_for(caller, raw_id, [Action.ACKNOWLEDGE])
    t = await caller.commands.acknowledge_ticket(int(t["id"]), caller.officer, note=ack.note)
    return ok(ticket_detail(caller.for_school(t["school"]), t))
