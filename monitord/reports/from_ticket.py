"""Turn a stored ticket into the repair report (รายงานการซ่อมแซมแก้ไข).

The ticket froze the office names and the equipment when it opened; what the system
observed (first failure, duration, detecting probe, affected devices) pre-fills
เหตุการณ์ / ปัญหา / สาเหตุ unless an officer wrote their own text, and the engine's
hypothesis pre-fills ข้อสมมุติฐาน / การแก้ไข, followed by the officer's cause and fix.

A manual ticket (รับแจ้ง) prints the person who reported it as ผู้แจ้งซ่อม and the problem
as reported in เหตุการณ์ / ปัญหา, followed by what monitord observed when a device of the
ticket went down and joined it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from monitord.domain.incidents import condition_of
from monitord.reports.repair import RepairEquipment, RepairReport, Signatory
from monitord.thaidate import format_duration, format_timestamp, from_timestamp


def _dt(ts: float | None) -> datetime | None:
    """A stored time for the form; one out of any calendar's range leaves the blank empty."""
    return None if ts is None else from_timestamp(ts)


def condition_event_text(ticket: dict[str, Any]) -> str:
    """A condition's ticket (a device that works with a standing problem, e.g. a TLS
    certificate about to expire): the problem as the probe worded it, what to do included."""
    since = float(ticket["down_since"])
    equipment = ticket.get("equipment") or []
    cond = condition_of(str(ticket["root"]))
    name = equipment[0]["name"] if equipment else cond[0] if cond else str(ticket["root"])
    parts = [f"ระบบตรวจพบปัญหาของ {name} ตั้งแต่ {format_timestamp(since)} "
             f"(อุปกรณ์ยังใช้งานได้): {ticket.get('reason') or ''}".rstrip(": ")]
    if ticket.get("repaired_at"):
        parts.append(f"แก้ไขแล้ว ไม่พบปัญหานี้อีกหลังจาก "
                     f"{format_duration(float(ticket['repaired_at']) - since)}")
    if ticket.get("relapses"):
        parts.append(f"พบซ้ำ {ticket['relapses']} ครั้งหลังแก้ไข")
    return " ".join(parts)


def observed_event_text(ticket: dict[str, Any], now: float | None = None) -> str:
    """What monitord saw, in Thai, for the เหตุการณ์ / ปัญหา / สาเหตุ section."""
    if condition_of(str(ticket.get("root") or "")) is not None:
        return condition_event_text(ticket)
    down_since = float(ticket["down_since"])
    end = ticket.get("repaired_at") or (time.time() if now is None else now)
    equipment = ticket.get("equipment") or []
    seen = ticket.get("incident_root")
    named = [e["name"] for e in equipment if seen and e.get("device_id") == seen]
    root = (named[0] if named else seen if seen and ticket.get("origin") == "manual"
            else equipment[0]["name"] if equipment else ticket["root"])
    parts = [f"ระบบตรวจพบว่า {root} ไม่ตอบสนองตั้งแต่ "
             f"{format_timestamp(down_since)}"]
    if ticket.get("repaired_at"):
        parts.append(f"กลับมาใช้งานได้หลังขัดข้อง {format_duration(end - down_since)}")
    else:
        parts.append(f"ขัดข้องมาแล้ว {format_duration(end - down_since)}")
    if ticket.get("reason"):
        parts.append(f"การตรวจสอบที่ล้มเหลว: {ticket['reason']}")
    affected = ([] if ticket.get("origin") == "manual"  # its equipment is what was reported
                else [e["name"] for e in equipment[1:]])
    if affected:
        parts.append(f"อุปกรณ์ที่ได้รับผลกระทบ {len(affected)} รายการ: " + ", ".join(affected))
    if ticket.get("relapses"):
        parts.append(f"ขัดข้องซ้ำ {ticket['relapses']} ครั้งหลังซ่อมเสร็จ")
    return " ".join(parts)


def report_from_ticket(ticket: dict[str, Any], *, lang: str = "th",
                       thai_digits: bool = False, now: float | None = None) -> RepairReport:
    if ticket.get("origin") == "manual":
        event = ticket.get("event_text") or ticket.get("problem") or ""
        if ticket.get("incident_id"):  # a device of it went down: what monitord saw
            event += " " + observed_event_text(ticket, now)
    else:
        event = ticket.get("event_text") or observed_event_text(ticket, now)
    if ticket.get("cause"):
        event += f" สาเหตุ: {ticket['cause']}"
    hypothesis = ticket.get("hypothesis") or ""
    if ticket.get("fix"):
        hypothesis = (hypothesis + " " if hypothesis else "") + f"การแก้ไข: {ticket['fix']}"
    repairer = None
    if ticket.get("repairer_name"):
        repairer = Signatory(ticket["repairer_name"], ticket.get("repairer_position") or "")
    return RepairReport(
        office_name=ticket.get("office_name") or "",
        group_name=ticket.get("group_name") or "",
        variant="school" if ticket.get("variant") == "school" else "office",
        served_unit=ticket.get("served_unit") or "",
        ticket_id=ticket["id"],
        reported_at=datetime.fromtimestamp(float(ticket["opened_at"]), UTC),
        repair_started=_dt(ticket.get("repair_started")),
        repair_finished=_dt(ticket.get("repair_finished")),
        equipment=[RepairEquipment(e["name"], e.get("hostname", ""), e.get("brand_model", ""),
                                   e.get("serial", ""), e.get("remark", ""))
                   for e in ticket.get("equipment") or []],
        event_text=event,
        hypothesis_text=hypothesis,
        summary_text=ticket.get("summary") or "",
        reporter=Signatory(ticket.get("reporter_name") or "ระบบ monitord",
                           ticket.get("reporter_position") or ""),
        repairer=repairer,
        thai_digits=thai_digits,
        lang="en" if lang == "en" else "th",
    )
