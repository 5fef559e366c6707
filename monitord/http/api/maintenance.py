"""Maintenance windows: ``GET/POST /maintenance``, ``GET/DELETE /maintenance/{id}``.

Writes are ``monitord maintenance add/delete`` through the same application commands
(:meth:`monitord.http.ports.Commands.add_maintenance`), in force at once; they need the
maintenance right (a token, an officer or admin: 403 otherwise)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from monitord.domain.access import Perm
from monitord.http.api.auth import Reader, Writer
from monitord.http.api.errors import ID_SCHEMA, PREFIX, ApiError, json_body, ok, path_id
from monitord.http.api.models import (
    MaintenanceCreate,
    MaintenanceList,
    MaintenanceOut,
    MaintenanceQuery,
)
from monitord.http.api.openapi import CREATED, READ, body, problems
from monitord.http.api.tickets import instant
from monitord.http.api.views import maintenance_config_out, maintenance_db_out
from monitord.storage import Storage

router = APIRouter(tags=["maintenance"])

WindowId = Annotated[str, Path(alias="id",
                               description="maintenance window id (database windows)",
                               json_schema_extra=ID_SCHEMA)]
WHAT = "maintenance window"


async def _stored(store: Storage, wid: int) -> Mapping[str, Any] | None:
    for row in await store.maintenance(include_past=True):
        if row["id"] == wid:
            return row
    return None


@router.get("/maintenance", operation_id="listMaintenance",
            summary="Maintenance windows: from the config and from the database",
            response_model=MaintenanceList, response_description="OK",
            responses=problems(400, 401), openapi_extra=READ)
async def list_maintenance(caller: Reader, q: Annotated[MaintenanceQuery, Query()]
                           ) -> Response:
    now = time.time()
    items = maintenance_config_out(caller, now, include_past=q.all)
    for row in await caller.storage.maintenance(include_past=q.all):
        items.append(maintenance_db_out(caller, row, now))
    return ok(MaintenanceList(count=len(items), items=items))


@router.post("/maintenance", operation_id="createMaintenance",
             summary="Add a maintenance window",
             description="As `monitord maintenance add`; in force at once.  Devices and "
                         "schools must exist in the config (422 otherwise).",
             status_code=201, response_model=MaintenanceOut, response_description="Created",
             responses={201: CREATED, **problems(400, 401, 403, 413, 415, 422)},
             openapi_extra=body(MaintenanceCreate))
async def create_maintenance(
        caller: Writer,
        window: Annotated[MaintenanceCreate, Depends(json_body(MaintenanceCreate))]
) -> Response:
    caller.need(Perm.MAINTENANCE)
    tz = caller.config.tz
    start = instant(window.start, tz, "start") if window.start is not None else None
    end = instant(window.end, tz, "end") if window.end is not None else None
    weekly = ((window.weekly.days, window.weekly.hours)
              if window.weekly is not None else None)
    row = await caller.commands.add_maintenance(
        window.name, caller.officer, start=start, end=end, weekly=weekly,
        devices=window.devices, schools=window.schools,
        kinds=[k.value for k in window.kinds], reason=window.reason)
    return ok(maintenance_db_out(caller, row, time.time()), 201,
              {"Location": f"{PREFIX}/maintenance/{row['id']}"})


@router.get("/maintenance/{id}", operation_id="getMaintenance",
            summary="One database maintenance window", response_model=MaintenanceOut,
            response_description="OK", responses=problems(401, 404), openapi_extra=READ)
async def get_maintenance(caller: Reader, raw_id: WindowId) -> Response:
    wid = path_id(raw_id, WHAT)
    row = await _stored(caller.storage, wid)
    if row is None:
        raise ApiError(404, f"no maintenance window {wid} in the database")
    return ok(maintenance_db_out(caller, row, time.time()))


@router.delete("/maintenance/{id}", operation_id="deleteMaintenance",
               summary="Delete a database maintenance window",
               description="Windows written in the config file cannot be deleted here.",
               status_code=204, response_class=Response, response_description="No Content",
               responses=problems(401, 403, 404))
async def delete_maintenance(caller: Writer, raw_id: WindowId) -> Response:
    caller.need(Perm.MAINTENANCE)
    wid = path_id(raw_id, WHAT)
    await caller.commands.delete_maintenance(wid, caller.officer)
    return ok(None, 204)
