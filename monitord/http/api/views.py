"""What the API answers, built from the read model: the PDPA rules live here.

Without a token (``caller.full`` false) the token-only fields are left unset — and so
out of the JSON — and probe reasons are scrubbed of IP addresses and the device's own
address, host name and serial.  Secrets are never read here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from monitord.config import Device
from monitord.domain.incidents import root_device
from monitord.domain.labels import STATE_TEXT
from monitord.domain.state import State
from monitord.domain.tickets import STATUS_TH
from monitord.http.api.auth import Caller
from monitord.http.api.models import (
    DeviceOut,
    EquipmentOut,
    IncidentOut,
    Location,
    MaintenanceOut,
    SchoolOut,
    TicketDetail,
    TicketEventOut,
    WeeklyOut,
)
from monitord.storage.maintenance import db_window

_IPV4 = re.compile(r"(?<![0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:])")
REDACTED = "[…]"


def scrub(text: str, own: Iterable[str] = ()) -> str:
    """Remove IP addresses and the device's own address, host name and serial from a
    probe's reason before it goes to an anonymous reader."""
    for secret in own:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)

    def ip(m: re.Match[str]) -> str:
        try:
            ipaddress.ip_address(m.group(0))
        except ValueError:
            return m.group(0)
        return REDACTED

    return _IPV6.sub(ip, _IPV4.sub(ip, text))


def _private(dev: Device | None) -> tuple[str, ...]:
    if dev is None:
        return ()
    return dev.address, dev.hostname, dev.serial


def device_out(caller: Caller, dev: Device, now: float) -> DeviceOut:
    view = caller.view
    st = view.device_status(dev.id)
    state = view.effective_state(dev.id, now)
    window = view.in_maintenance(dev.id, now)
    reason = st.reason if st is not None else ""
    out = DeviceOut(
        id=dev.id, name=dev.display_name, kind=dev.kind, school=dev.school, parent=dev.parent,
        state=state, state_text=STATE_TEXT["th"][state],
        since=st.since if st is not None and st.since > 0 else None,
        reason=reason if caller.full else scrub(reason, _private(dev)),
        flapping=st.flapping if st is not None else False,
        maintenance=window.name if window is not None else None)
    if caller.full:
        out.address = dev.address
        out.hostname = dev.hostname
        out.serial = dev.serial
        out.brand_model = dev.brand_model
        out.unit = dev.unit
        out.probes = dev.probe_names
    return out


def school_views(caller: Caller) -> list[SchoolOut]:
    cfg = caller.config
    data = caller.view.status_data()
    out = []
    for row in data.schools:
        school = cfg.schools.get(row.smis)
        loc = school.location if school is not None else None
        down = sum(1 for dr in row.devices if dr.state in (State.DOWN, State.UNREACHABLE))
        out.append(SchoolOut(
            smis=row.smis, name=row.name, district=row.district, isp=row.isp,
            location=Location(lat=loc.lat, lon=loc.lon) if loc is not None else None,
            state=row.state, state_text=STATE_TEXT["th"][row.state], since=row.since,
            device_count=len(row.devices), devices_down=down))
    return out


def incident_out(caller: Caller, row: Mapping[str, Any]) -> IncidentOut:
    def ids(value: Any) -> list[str]:
        items = json.loads(value) if isinstance(value, str) else value
        return sorted(str(x) for x in items)

    root = str(row["root"])
    reason = str(row["reason"])
    if not caller.full:
        reason = scrub(reason, _private(caller.config.device_map().get(root_device(root))))
    return IncidentOut(
        id=row["id"], kind=row["kind"], root=root, school=row["school"],
        opened_at=row["opened_at"], closed_at=row["closed_at"], reason=reason,
        hypothesis=row["hypothesis"], affected=ids(row["affected"]),
        members=ids(row["members"]), parent_incident=row["parent_incident"],
        ticket_id=row["ticket_id"])


_TICKET_PUBLIC = ("id", "incident_id", "root", "school", "variant", "served_unit", "status",
                  "status_th", "opened_at", "down_since", "scheduled_for", "repair_started",
                  "repair_finished", "repaired_at", "closed_at", "recovery_seconds",
                  "reason", "hypothesis", "relapses", "updated_at", "office_name",
                  "group_name", "origin", "report_source", "acknowledged_at")
_TICKET_PRIVATE = ("event_text", "cause", "fix", "summary", "reporter_name",
                   "reporter_position", "repairer_name", "repairer_position",
                   "reporter_phone", "problem", "assigned_to", "acknowledged_by",
                   "created_by")


def ticket_fields(caller: Caller, t: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {k: t[k] for k in _TICKET_PUBLIC}
    equipment = []
    for e in t.get("equipment") or []:
        item = EquipmentOut(device_id=str(e.get("device_id", "")), name=str(e.get("name", "")),
                            remark=str(e.get("remark", "")))
        if caller.full:
            item.hostname = str(e.get("hostname", ""))
            item.brand_model = str(e.get("brand_model", ""))
            item.serial = str(e.get("serial", ""))
        equipment.append(item)
    data["equipment"] = equipment
    if caller.full:
        data.update({k: t[k] for k in _TICKET_PRIVATE})
    else:
        own = _private(caller.config.device_map().get(root_device(str(t["root"]))))
        data["reason"] = scrub(str(t["reason"]), own)
        data["hypothesis"] = scrub(str(t["hypothesis"]), own)
    return data


def ticket_detail(caller: Caller, t: Mapping[str, Any]) -> TicketDetail:
    history = []
    for h in t.get("history") or []:
        ev = TicketEventOut(ts=h["ts"], status=h["status"],
                            status_th=STATUS_TH.get(h["status"], h["status"]))
        if caller.full:
            ev.actor = h["actor"]
            ev.note = h["note"]
        history.append(ev)
    return TicketDetail(**ticket_fields(caller, t), affected=[str(a) for a in t["affected"]],
                        history=history)


def maintenance_db_out(caller: Caller, row: Mapping[str, Any], now: float) -> MaintenanceOut:
    cfg = caller.config
    weekly = row["weekly"]
    try:
        active = db_window(row).active(dt.datetime.fromtimestamp(now, dt.UTC), cfg.tz)
    except (ValueError, KeyError, TypeError):
        active = False
    out = MaintenanceOut(
        id=row["id"], source="database", name=row["name"], start=row["start"], end=row["end"],
        weekly=WeeklyOut(days=[str(d) for d in weekly["days"]], hours=str(weekly["hours"]))
        if weekly else None,
        devices=list(row["devices"]), schools=list(row["schools"]), kinds=list(row["kinds"]),
        reason=row["reason"], active=active)
    if caller.full:
        out.created_by = row["created_by"]
        out.created_at = row["created_at"]
    return out


def maintenance_config_out(caller: Caller, now: float, include_past: bool
                           ) -> list[MaintenanceOut]:
    """The windows written in the config file (no id; cannot be deleted here)."""
    cfg = caller.config
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    items = []
    for mc, window in zip(cfg.maintenance, cfg.maintenance_windows(), strict=True):
        end = window.end.timestamp() if window.end is not None else None
        if not include_past and end is not None and end <= now:
            continue
        items.append(MaintenanceOut(
            id=None, source="config", name=mc.name,
            start=window.start.timestamp() if window.start is not None else None, end=end,
            weekly=WeeklyOut(days=list(mc.weekly.days), hours=mc.weekly.hours[0])
            if mc.weekly is not None else None,
            devices=list(mc.devices), schools=list(mc.schools),
            kinds=[k.value for k in mc.kinds], reason=mc.reason,
            active=window.active(when, cfg.tz)))
    return items
