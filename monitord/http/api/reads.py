"""Schools, devices and incidents (reads): ``/schools``, ``/devices``, ``/incidents``.

Public; the non-public fields of a device (address, host name, serial, …) only for a
caller whose role sees every device, or a ``school`` user for their own schools."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from monitord.http.api.auth import Reader
from monitord.http.api.errors import ApiError, ok
from monitord.http.api.models import (
    DeviceList,
    DeviceOut,
    DeviceQuery,
    IncidentList,
    IncidentQuery,
    SchoolDetail,
    SchoolList,
    SchoolQuery,
)
from monitord.http.api.openapi import READ, problems
from monitord.http.api.views import device_out, incident_out, school_views

router = APIRouter()

Smis = Annotated[str, Path(description="the school's SMIS code",
                           json_schema_extra={"minLength": 1})]
DeviceId = Annotated[str, Path(alias="id", description="device id", json_schema_extra={
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"})]


@router.get("/schools", operation_id="listSchools", tags=["schools"],
            summary="Schools with their current state", response_model=SchoolList,
            response_description="OK", responses=problems(400, 401), openapi_extra=READ)
async def list_schools(caller: Reader, q: Annotated[SchoolQuery, Query()]) -> Response:
    items = [s for s in school_views(caller)
             if (q.district is None or s.district == q.district)
             and (q.isp is None or s.isp == q.isp)
             and (q.state is None or s.state == q.state)]
    return ok(SchoolList(count=len(items), items=items))


@router.get("/schools/{smis}", operation_id="getSchool", tags=["schools"],
            summary="One school with its devices", response_model=SchoolDetail,
            response_description="OK", responses=problems(401, 404), openapi_extra=READ)
async def get_school(caller: Reader, smis: Smis) -> Response:
    for s in school_views(caller):
        if s.smis == smis:
            now = time.time()
            own = caller.for_school(smis)  # a school user: their own school's details
            devices = [device_out(own, dev, now) for dev in caller.config.devices
                       if dev.school == smis]
            return ok(SchoolDetail(**dict(s), devices=devices))
    raise ApiError(404, f"no school with SMIS code {smis[:40]!r}")


@router.get("/devices", operation_id="listDevices", tags=["devices"],
            summary="Devices with their effective state", response_model=DeviceList,
            response_description="OK", responses=problems(400, 401), openapi_extra=READ)
async def list_devices(caller: Reader, q: Annotated[DeviceQuery, Query()]) -> Response:
    now = time.time()
    items = []
    for dev in caller.config.devices:
        if q.school is not None and (dev.school or "office") != q.school:
            continue
        if q.kind is not None and dev.kind != q.kind:
            continue
        out = device_out(caller.for_school(dev.school), dev, now)
        if q.state is None or out.state == q.state:
            items.append(out)
    return ok(DeviceList(count=len(items), items=items))


@router.get("/devices/{id}", operation_id="getDevice", tags=["devices"],
            summary="One device", response_model=DeviceOut,
            response_description="OK", responses=problems(401, 404), openapi_extra=READ)
async def get_device(caller: Reader, dev_id: DeviceId) -> Response:
    dev = caller.config.device_map().get(dev_id)
    if dev is None:
        raise ApiError(404, f"no device {dev_id[:80]!r}")
    return ok(device_out(caller.for_school(dev.school), dev, time.time()))


@router.get("/incidents", operation_id="listIncidents", tags=["incidents"],
            summary="Open incidents (from memory), or all recent ones from the database",
            response_model=IncidentList, response_description="OK",
            responses=problems(400, 401), openapi_extra=READ)
async def list_incidents(caller: Reader, q: Annotated[IncidentQuery, Query()]) -> Response:
    if q.all:
        rows = await caller.storage.incidents(limit=q.limit)
    else:
        rows = [{"id": i.id, "kind": i.kind, "root": i.root, "school": i.school,
                 "opened_at": i.opened_at, "closed_at": i.closed_at, "reason": i.reason,
                 "hypothesis": i.hypothesis, "affected": i.affected, "members": i.members,
                 "parent_incident": i.parent_incident, "ticket_id": i.ticket_id}
                for i in sorted(caller.view.open_incidents(),
                                key=lambda i: (i.opened_at, i.id))]
    items = [incident_out(caller, r) for r in rows]
    return ok(IncidentList(count=len(items), items=items))
