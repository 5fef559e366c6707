"""What every console page shares: the Jinja2 environment, the Thai/English words,
Buddhist-era dates, the base context (user, CSRF token, language, navigation) and the
checks of a form post (size, CSRF token).

Pages look like ``/status`` (``console/_layout.html`` reuses its CSS); Thai by default,
English with ``?lang=en`` (remembered in the ``lang`` cookie).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from monitord.domain.access import ROLE_TH, Perm, Role, User, can
from monitord.domain.labels import KIND_TEXT, TICKET_STATUS_TEXT
from monitord.http.console.guard import (
    CSRF_FIELD,
    CSRF_HEADER,
    Forbidden,
    TooLarge,
    csrf_of,
    lang_of,
)
from monitord.http.ports import View
from monitord.http.status import TEMPLATES, duration_text
from monitord.thaidate import BANGKOK, format_date, format_timestamp, from_timestamp

#: a console form is small: anything bigger is refused before it is parsed
MAX_FORM_BYTES = 64 * 1024

ROLE_EN: dict[str, str] = {"admin": "administrator", "officer": "officer",
                           "technician": "technician", "school": "school ICT teacher",
                           "viewer": "director (read only)"}

#: how a problem was reported (domain.tickets.SOURCES, issue 14)
SOURCE_TEXT: dict[str, dict[str, str]] = {
    "th": {"phone": "โทรศัพท์", "line": "LINE", "letter": "หนังสือ",
           "walk_in": "มาติดต่อด้วยตนเอง"},
    "en": {"phone": "phone", "line": "LINE", "letter": "letter", "walk_in": "walk-in"},
}
ORIGIN_TEXT: dict[str, dict[str, str]] = {
    "th": {"auto": "ระบบตรวจพบ", "manual": "รับแจ้ง"},
    "en": {"auto": "detected", "manual": "reported"},
}

LABELS: dict[str, dict[str, str]] = {
    "th": {
        "console": "ระบบแจ้งซ่อมและติดตามเครือข่าย", "tickets": "ใบแจ้งซ่อม", "new": "รับแจ้งปัญหา",
        "new_school": "แจ้งปัญหา",
        "maintenance": "ปิดปรับปรุง", "import": "นำเข้าข้อมูล", "status": "สถานะโรงเรียน",
        "users": "ผู้ใช้งาน",
        "signout": "ออกจากระบบ", "other_lang": "English", "nav": "เมนูหลัก",
        "signed_in_as": "ผู้ใช้", "skip": "ข้ามไปยังเนื้อหา",
        "signout_all": "ออกจากระบบทุกเครื่อง", "whole_school_short": "ทั้งโรงเรียน",
        # list
        "filters": "ตัวกรอง", "f_status": "สถานะ", "active": "ยังไม่ปิด", "all": "ทั้งหมด",
        "district": "อำเภอ", "school": "โรงเรียน", "kind": "ชนิดอุปกรณ์",
        "age": "เปิดมาแล้วอย่างน้อย (วัน)", "assigned": "ผู้รับผิดชอบ",
        "assigned_hint": "ชื่อผู้ใช้, me = ของฉัน, - = ยังไม่มอบหมาย", "origin": "ที่มา",
        "any": "ทั้งหมด", "apply": "กรอง", "reset": "ล้างตัวกรอง", "no_tickets": "ไม่มีใบแจ้งซ่อม",
        "shown": "แสดง", "of": "จาก", "n_items": "รายการ",
        "no": "เลขที่", "device": "อุปกรณ์", "opened": "วันที่รับแจ้ง", "age_col": "ผ่านมา",
        "ack": "รับทราบ", "acked": "รับทราบแล้ว", "not_acked": "ยังไม่รับทราบ",
        "office": "สำนักงานเขต", "nobody": "-", "count_by_status": "จำนวนตามสถานะ",
        # detail
        "ticket": "ใบแจ้งซ่อมเลขที่", "facts": "รายละเอียด", "served": "หน่วยงานที่ให้บริการ",
        "equipment": "รายละเอียดอุปกรณ์", "eq_no": "ลำดับที่", "eq_name": "ชื่ออุปกรณ์",
        "hostname": "Hostname", "brand_model": "ยี่ห้อ/รุ่น", "serial": "หมายเลขเครื่อง",
        "remark": "หมายเหตุ", "reporter": "ผู้แจ้ง", "position": "ตำแหน่ง", "phone": "โทรศัพท์",
        "source": "ช่องทางที่รับแจ้ง", "problem": "ปัญหาที่แจ้ง",
        "reason": "สิ่งที่ระบบตรวจพบ", "hypothesis": "ข้อสมมุติฐาน",
        "event_text": "เหตุการณ์ / ปัญหา", "appointment": "นัดหมาย",
        "repair_started": "เริ่มซ่อม", "repair_finished": "ซ่อมเสร็จ",
        "cause": "สาเหตุ", "fix": "การแก้ไข", "summary": "สรุปผลการปฏิบัติงาน",
        "repairer_name": "ผู้ทำการซ่อม / แก้ไข", "repairer_position": "ตำแหน่งผู้ซ่อม",
        "created_by": "ผู้บันทึกรับแจ้ง", "timeline": "ลำดับเหตุการณ์", "when": "เมื่อ",
        "who": "ผู้ดำเนินการ", "note": "บันทึก", "actions": "ดำเนินการ",
        "pdf": "พิมพ์รายงานการซ่อมแซมแก้ไข (PDF)", "back": "กลับไปรายการใบแจ้งซ่อม",
        "date": "วันที่", "time": "เวลา", "bangkok": "เวลาประเทศไทย",
        "a_acknowledge": "รับทราบ", "a_assign": "มอบหมาย", "a_schedule": "นัดหมาย",
        "a_start": "เริ่มซ่อม", "a_finish": "ซ่อมเสร็จ", "a_record": "บันทึกผลการซ่อม",
        "a_close": "ปิดใบแจ้งซ่อม", "a_confirm": "ยืนยันว่าใช้งานได้แล้ว",
        "assignee": "มอบหมายให้", "unassign": "(ไม่มอบหมาย)",
        "confirm_close": "ปิดใบแจ้งซ่อมนี้?", "optional": "ไม่บังคับ",
        "ok_acknowledge": "บันทึกการรับทราบแล้ว", "ok_assign": "มอบหมายแล้ว",
        "ok_schedule": "บันทึกนัดหมายแล้ว", "ok_start": "บันทึกการเริ่มซ่อมแล้ว",
        "ok_finish": "บันทึกการซ่อมเสร็จแล้ว", "ok_record": "บันทึกผลการซ่อมแล้ว",
        "ok_close": "ปิดใบแจ้งซ่อมแล้ว", "ok_confirm": "ยืนยันแล้ว ขอบคุณครับ/ค่ะ",
        "ok_new": "รับแจ้งแล้ว: เปิดใบแจ้งซ่อมใหม่", "error": "ทำรายการไม่สำเร็จ",
        "not_repaired": "ยืนยันได้เมื่อใบแจ้งซ่อมอยู่ในสถานะซ่อมเสร็จเท่านั้น",
        "closed_note": "ใบแจ้งซ่อมนี้ปิดแล้ว",
        # new report
        "new_title": "รับแจ้งปัญหา", "choose_school": "เลือกโรงเรียน", "whole_school":
        "ถ้าไม่เลือกอุปกรณ์ = แจ้งปัญหาของทั้งโรงเรียน", "show_devices": "แสดงอุปกรณ์ของโรงเรียนนี้",
        "devices": "อุปกรณ์ที่มีปัญหา",
        "school_hint": "เมื่อเลือกโรงเรียน หน้านี้จะโหลดใหม่เพื่อแสดงอุปกรณ์ของโรงเรียนนั้น "
                       "(ข้อมูลที่กรอกไว้ยังอยู่)",
        "office_eq": "อุปกรณ์ของสำนักงานเขต",
        "reporter_name": "ชื่อผู้แจ้ง", "reporter_position": "ตำแหน่งผู้แจ้ง",
        "reporter_phone": "โทรศัพท์ผู้แจ้ง", "submit_report": "บันทึกรับแจ้ง",
        "required": "จำเป็น", "no_devices": "ไม่มีอุปกรณ์ที่ลงทะเบียนไว้",
        # maintenance
        "m_title": "ช่วงปิดปรับปรุง", "m_name": "ชื่อ", "m_when": "ช่วงเวลา",
        "m_scope": "ขอบเขต", "m_reason": "เหตุผล", "m_by": "ผู้เพิ่ม", "m_state": "สถานะ",
        "m_now": "กำลังปิดปรับปรุง", "m_future": "ยังไม่ถึงเวลา", "m_past": "สิ้นสุดแล้ว",
        "m_weekly_on": "ทุกสัปดาห์", "m_from_config": "กำหนดในไฟล์ตั้งค่า",
        "m_end": "สิ้นสุดเดี๋ยวนี้ (ลบ)", "m_confirm_end": "ลบช่วงปิดปรับปรุงนี้?",
        "m_show_all": "แสดงที่สิ้นสุดแล้วด้วย", "m_show_current": "แสดงเฉพาะปัจจุบันและอนาคต",
        "m_none": "ไม่มีช่วงปิดปรับปรุง", "m_add": "เพิ่มช่วงปิดปรับปรุง",
        "m_type": "รูปแบบ", "m_once": "ครั้งเดียว", "m_weekly": "ทุกสัปดาห์",
        "m_start": "เริ่ม", "m_end_at": "สิ้นสุด", "m_days": "วัน", "m_hours": "ช่วงเวลา",
        "m_from": "ตั้งแต่", "m_to": "ถึง", "m_devices": "รหัสอุปกรณ์ (คั่นด้วยเว้นวรรคหรือจุลภาค)",
        "m_schools": "รหัส SMIS ของโรงเรียน (คั่นด้วยเว้นวรรคหรือจุลภาค)",
        "m_kinds": "ชนิดอุปกรณ์", "m_everything": "ทุกอุปกรณ์ของสำนักงานเขต",
        "m_scope_hint": "เว้นว่างทั้งหมด = ทุกอุปกรณ์", "m_save": "เพิ่ม",
        "ok_m_add": "เพิ่มช่วงปิดปรับปรุงแล้ว", "ok_m_end": "ลบช่วงปิดปรับปรุงแล้ว",
    },
    "en": {
        "console": "Repair tickets and network console", "tickets": "Tickets",
        "new": "Receive a report", "new_school": "Report a problem",
        "maintenance": "Maintenance", "import": "Import", "status": "Schools' status",
        "users": "Users",
        "signout": "Sign out", "other_lang": "ภาษาไทย", "nav": "Main menu",
        "signed_in_as": "Signed in as", "skip": "Skip to content",
        "signout_all": "Sign out everywhere", "whole_school_short": "whole school",
        "filters": "Filters", "f_status": "Status", "active": "not closed", "all": "all",
        "district": "District", "school": "School", "kind": "Device kind",
        "age": "Open for at least (days)", "assigned": "Assigned to",
        "assigned_hint": "user name, me = mine, - = nobody", "origin": "Origin",
        "any": "any", "apply": "Filter", "reset": "Clear filters", "no_tickets": "No tickets",
        "shown": "Showing", "of": "of", "n_items": "items",
        "no": "No.", "device": "Device", "opened": "Reported", "age_col": "Age",
        "ack": "Ack", "acked": "acknowledged", "not_acked": "not acknowledged",
        "office": "Area office", "nobody": "-", "count_by_status": "By status",
        "ticket": "Ticket", "facts": "Details", "served": "Served",
        "equipment": "Equipment", "eq_no": "No.", "eq_name": "Device name",
        "hostname": "Hostname", "brand_model": "Brand/model", "serial": "Serial no.",
        "remark": "Remarks", "reporter": "Reported by", "position": "Position",
        "phone": "Phone", "source": "Reported through", "problem": "Problem reported",
        "reason": "What monitord observed", "hypothesis": "Hypothesis",
        "event_text": "Event / problem", "appointment": "Appointment",
        "repair_started": "Repair started", "repair_finished": "Repair finished",
        "cause": "Cause", "fix": "Fix", "summary": "Work summary",
        "repairer_name": "Repaired by", "repairer_position": "Repairer's position",
        "created_by": "Recorded by", "timeline": "Timeline", "when": "When",
        "who": "Who", "note": "Note", "actions": "Actions",
        "pdf": "Print the repair report (PDF)", "back": "Back to the tickets",
        "date": "Date", "time": "Time", "bangkok": "Thailand time",
        "a_acknowledge": "Acknowledge", "a_assign": "Assign", "a_schedule": "Schedule",
        "a_start": "Start repair", "a_finish": "Repair finished", "a_record": "Record repair",
        "a_close": "Close ticket", "a_confirm": "Confirm it works again",
        "assignee": "Assign to", "unassign": "(nobody)",
        "confirm_close": "Close this ticket?", "optional": "optional",
        "ok_acknowledge": "Acknowledged", "ok_assign": "Assigned",
        "ok_schedule": "Appointment saved", "ok_start": "Repair started",
        "ok_finish": "Repair finished", "ok_record": "Repair recorded",
        "ok_close": "Ticket closed", "ok_confirm": "Confirmed, thank you",
        "ok_new": "Problem received: a new ticket", "error": "Could not do this",
        "not_repaired": "Only a repaired ticket can be confirmed",
        "closed_note": "This ticket is closed",
        "new_title": "Report a problem", "choose_school": "Choose the school",
        "whole_school": "No device chosen = the whole school",
        "show_devices": "Show this school's devices",
        "devices": "Devices with the problem",
        "school_hint": "Choosing a school reloads this page with its devices (what you typed "
                       "stays)", "office_eq": "The area office's equipment",
        "reporter_name": "Reporter's name", "reporter_position": "Reporter's position",
        "reporter_phone": "Reporter's phone", "submit_report": "Save the report",
        "required": "required", "no_devices": "No registered devices",
        "m_title": "Maintenance windows", "m_name": "Name", "m_when": "When",
        "m_scope": "Scope", "m_reason": "Reason", "m_by": "Added by", "m_state": "State",
        "m_now": "in force", "m_future": "upcoming", "m_past": "ended",
        "m_weekly_on": "weekly", "m_from_config": "in the config file",
        "m_end": "End now (delete)", "m_confirm_end": "Delete this maintenance window?",
        "m_show_all": "Show ended windows too", "m_show_current": "Current and future only",
        "m_none": "No maintenance windows", "m_add": "Add a maintenance window",
        "m_type": "Type", "m_once": "one-off", "m_weekly": "weekly",
        "m_start": "Start", "m_end_at": "End", "m_days": "Days", "m_hours": "Hours",
        "m_from": "from", "m_to": "to", "m_devices": "Device ids (space or comma separated)",
        "m_schools": "School SMIS codes (space or comma separated)",
        "m_kinds": "Device kinds", "m_everything": "every device of the office",
        "m_scope_hint": "all empty = every device", "m_save": "Add",
        "ok_m_add": "Maintenance window added", "ok_m_end": "Maintenance window deleted",
    },
}

DAY_TEXT: dict[str, dict[str, str]] = {
    "th": {"mon": "จันทร์", "tue": "อังคาร", "wed": "พุธ", "thu": "พฤหัสบดี", "fri": "ศุกร์",
           "sat": "เสาร์", "sun": "อาทิตย์"},
    "en": {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri",
           "sat": "Sat", "sun": "Sun"},
}


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.StrictUndefined)


ENV = _env()


def when_text(ts: float | None, lang: str) -> str:
    """A stored instant as the office reads it: "2 ธ.ค. 2569 เวลา 14:05 น." (Bangkok,
    Buddhist era) or "2026-12-02 14:05"; "-" for none, "?" when out of range."""
    if ts is None:
        return "-"
    if lang != "en":
        return format_timestamp(ts, abbreviated=True)
    moment = from_timestamp(ts)
    return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def date_text(ts: float | None, lang: str) -> str:
    if ts is None:
        return "-"
    moment = from_timestamp(ts)
    if moment is None:
        return "?"
    return format_date(moment, abbreviated=True) if lang != "en" else f"{moment:%Y-%m-%d}"


def age_text(seconds: float, lang: str) -> str:
    days = int(max(seconds, 0) // 86400)
    if days >= 1:
        return f"{days} วัน" if lang != "en" else f"{days} d"
    return duration_text(seconds, lang)


def local_inputs(ts: float | None) -> tuple[str, str]:
    """(date, time) values for ``<input type=date/time>`` in Bangkok time."""
    moment = from_timestamp(ts) if ts is not None else None
    if moment is None:
        return "", ""
    return f"{moment:%Y-%m-%d}", f"{moment:%H:%M}"


@dataclass(frozen=True, slots=True)
class NavLink:
    href: str
    label: str
    current: bool


def can_see_maintenance(user: User | None) -> bool:
    return can(user, Perm.MAINTENANCE) or can(user, Perm.DEVICES_ALL)


def nav(user: User, lang: str, path: str) -> list[NavLink]:
    L = LABELS[lang]
    links = [("/console/tickets", L["tickets"], True)]
    links.append(("/console/tickets/new", L["new_school"] if user.role is Role.SCHOOL
                  else L["new"], can(user, Perm.REPORT)))
    links.append(("/console/maintenance", L["maintenance"], can_see_maintenance(user)))
    links.append(("/console/import", L["import"], can(user, Perm.INVENTORY)))
    links.append(("/console/users", L["users"], can(user, Perm.USERS)))
    links.append(("/status", L["status"], True))
    out = []
    for href, label, shown in links:
        if not shown:
            continue
        current = path == href or (href == "/console/tickets" and path.startswith(href)
                                   and not path.startswith("/console/tickets/new"))
        out.append(NavLink(href, label, current))
    return out


def office_name(view: View) -> str:
    cfg = view.config
    return cfg.office.name if cfg is not None else "monitord"


def context(request: Request, view: View, user: User) -> dict[str, Any]:
    """What ``console/_layout.html`` needs, and the helpers every page uses."""
    lang = lang_of(request)
    role = user.role.value
    return {
        "lang": lang, "L": LABELS[lang], "user": user, "csrf": csrf_of(request),
        "csrf_field": CSRF_FIELD, "office": office_name(view),
        "role_text": ROLE_TH.get(role, role) if lang != "en" else ROLE_EN.get(role, role),
        "nav": nav(user, lang, request.url.path),
        "status_text": TICKET_STATUS_TEXT[lang], "kind_text": KIND_TEXT[lang],
        "source_text": SOURCE_TEXT[lang], "origin_text": ORIGIN_TEXT[lang],
        "day_text": DAY_TEXT[lang],
        "when": lambda ts: when_text(ts, lang), "day": lambda ts: date_text(ts, lang),
        "other_lang": "th" if lang == "en" else "en",
        "switch_url": str(request.url.include_query_params(
            lang="th" if lang == "en" else "en").replace(scheme="", netloc=""))
        .removeprefix("//"),
    }


def render(request: Request, view: View, user: User, template: str, status: int = 200,
           **values: Any) -> HTMLResponse:
    ctx = context(request, view, user)
    ctx.update(values)
    # personal data (names, phone numbers, serials): never kept in a cache
    response = HTMLResponse(ENV.get_template(template).render(**ctx), status_code=status,
                            headers={"Cache-Control": "no-store"})
    wanted = request.query_params.get("lang")
    if wanted in ("th", "en") and request.cookies.get("lang") != wanted:
        response.set_cookie("lang", wanted, max_age=365 * 86400, path="/", samesite="lax",
                            httponly=True, secure=request.url.scheme == "https")
    return response


async def read_form(request: Request) -> FormData:
    """The posted form after the size and CSRF checks (the session middleware checks the
    token too; a page never acts on a post without it)."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise TooLarge()  # → 413 page (guard.too_large)
    form = await request.form(max_files=0, max_fields=200)
    expected = csrf_of(request)
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), expected.encode()):
        raise Forbidden()
    return form


def text(form: FormData | Mapping[str, Any], key: str, limit: int = 2000) -> str:
    """One text field, trimmed and cut to ``limit`` characters (the commands validate)."""
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def parse_local(day: str, clock: str, tz: Any = BANGKOK) -> float:
    """``YYYY-MM-DD`` + ``HH:MM`` in Bangkok time as Unix seconds; ValueError (in Thai)
    when missing, malformed or outside 2000..2100."""
    from monitord.thaidate import check_sane

    if not day or not clock:
        raise ValueError("กรุณาระบุทั้งวันที่และเวลา")
    try:
        moment = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    except ValueError:
        raise ValueError("วันที่หรือเวลาไม่ถูกต้อง (ปปปป-ดด-วว ชช:นน)") from None
    try:
        check_sane(moment)
    except ValueError:
        raise ValueError("วันที่ต้องอยู่ระหว่างปี ค.ศ. 2000 ถึง 2100") from None
    return moment.timestamp()
