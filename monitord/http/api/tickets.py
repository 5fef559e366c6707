"""Repair tickets: ``GET/POST /tickets``, ``GET/PATCH /tickets/{id}``,
``POST /tickets/{id}/acknowledge``.

A PATCH is the officer's change ``monitord tickets update/schedule/close/assign`` makes,
through the same application commands (:meth:`monitord.http.ports.Commands.update_ticket`,
``assign_ticket``); a POST to ``/tickets`` receives a report from a person (รับแจ้ง:
``report_problem``), ``/acknowledge`` is ``monitord tickets ack``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from monitord.domain.tickets import TicketError
from monitord.http.api.auth import Reader, Writer
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
from monitord.http.api.openapi import CREATED, READ, body, problems
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
            response_description="OK", responses=problems(400, 401), openapi_extra=READ)
async def list_tickets(caller: Reader, q: Annotated[TicketQuery, Query()]) -> Response:
    rows = await caller.storage.list_tickets(
        q.status, include_closed=q.all, schools=[q.school] if q.school is not None else None,
        assigned_to=q.assigned_to)
    items = [TicketOut(**ticket_fields(caller, t)) for t in rows]
    return ok(TicketList(count=len(items), items=items))


@router.get("/tickets/{id}", operation_id="getTicket",
            summary="One repair ticket with its history", response_model=TicketDetail,
            response_description="OK", responses=problems(401, 404), openapi_extra=READ)
async def get_ticket(caller: Reader, raw_id: TicketId) -> Response:
    tid = path_id(raw_id, "ticket")
    try:
        t = await caller.storage.get_ticket(tid)
    except TicketError:
        raise ApiError(404, f"no ticket {tid}") from None
    return ok(ticket_detail(caller, t))


@router.patch("/tickets/{id}", operation_id="updateTicket",
              summary="An officer's change to a ticket (status, appointment, findings)",
              description="As `monitord tickets update/schedule/close`; the token's name is "
                          "recorded as the actor in the ticket's history.",
              response_model=TicketDetail, response_description="OK",
              responses=problems(400, 401, 404, 409, 413, 415, 422),
              openapi_extra=body(TicketPatch))
async def patch_ticket(caller: Writer, raw_id: TicketId,
                       patch: Annotated[TicketPatch, Depends(json_body(TicketPatch))]
                       ) -> Response:
    tid = path_id(raw_id, "ticket")
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
    return ok(ticket_detail(caller, t))


@router.post("/tickets", operation_id="reportProblem",
             summary="Receive a problem reported by a person (รับแจ้ง): a manual ticket",
             description="For devices of a school, a whole school (no devices) or office "
                         "equipment (no school).  Manual and automatic tickets share one "
                         "numbering, the repair report form and the notifications; a "
                         "device that then goes down joins this ticket instead of opening "
                         "another.  The token's name is recorded as who received it.",
             status_code=201, response_model=TicketDetail, response_description="Created",
             responses={201: CREATED, **problems(400, 401, 409, 413, 415, 422)},
             openapi_extra=body(TicketReport))
async def report_problem(caller: Writer,
                         report: Annotated[TicketReport, Depends(json_body(TicketReport))]
                         ) -> Response:
    caller.config  # noqa: B018 -- 503 while the daemon is starting
    t = await caller.commands.report_problem(
        caller.officer, school=report.school, devices=report.devices, source=report.source,
        reporter_name=report.reporter_name, reporter_phone=report.reporter_phone,
        reporter_position=report.reporter_position, problem=report.problem)
    return ok(ticket_detail(caller, t), 201, {"Location": f"{PREFIX}/tickets/{t['id']}"})


@router.post("/tickets/{id}/acknowledge", operation_id="acknowledgeTicket",
             summary="รับทราบ: acknowledge a ticket (its reminders and escalation stop)",
             description="As `monitord tickets ack`; acknowledging again changes nothing.  "
                         "A closed ticket cannot be acknowledged (409).",
             response_model=TicketDetail, response_description="OK",
             responses=problems(400, 401, 404, 409, 413, 415, 422),
             openapi_extra=body(TicketAck))
async def acknowledge_ticket(caller: Writer, raw_id: TicketId,
                             ack: Annotated[TicketAck, Depends(json_body(TicketAck))]
                             ) -> Response:
    tid = path_id(raw_id, "ticket")
    t = await caller.commands.acknowledge_ticket(tid, caller.officer, note=ack.note)
    return ok(ticket_detail(caller, t))
