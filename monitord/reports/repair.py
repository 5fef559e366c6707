"""Repair report (รายงานการซ่อมแซมแก้ไข) as printable HTML and as PDF.

The office files a repair report for every job; the DLICT group's paper form has two
variants (school equipment, office equipment) with the same body.  This module lays out
a :class:`RepairReport` on that form; it does not read tickets or config itself (the
ticket engine and CLI build the report), so it can be tested and customised alone.

One Jinja2 template serves both outputs: :func:`render_repair_html` returns it as a
self-contained page, :func:`render_repair_pdf` hands the same HTML to WeasyPrint.
WeasyPrint lays text out with Pango and HarfBuzz, which place Thai above/below vowels
and tone marks correctly and break lines between Thai words (through libthai; Thai
writes no spaces between words), and it repeats the equipment table's header row on
every page when the table runs long.  Labels are verbatim from shared/domain.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import jinja2

from monitord import thaidate
from monitord.reports import pdftext

TEMPLATE_DIR = Path(__file__).with_name("templates")
"""Where ``repair.html`` and ``repair.css`` live; see docs/repair-report.md to customise."""

Variant = Literal["school", "office"]
Lang = Literal["th", "en"]

SYSTEM_REPORTER_NAME = "ระบบ monitord"
"""Reporter name for tickets the daemon opened itself (no duty officer configured)."""

BLANK = "." * 30
"""A dotted blank, as on the paper form, for a value nobody has filled in yet."""

TITLES: dict[Lang, dict[Variant, str]] = {
    "th": {
        "office": "รายงานการซ่อมแซมแก้ไข คอมพิวเตอร์ โปรแกรมและอุปกรณ์ต่อพ่วงอื่นๆ",
        "school": "รายงานการซ่อมแซมแก้ไข DLTV, DLIT, คอมพิวเตอร์ โปรแกรมและอุปกรณ์ต่อพ่วงอื่นๆ",
    },
    "en": {
        "office": "Repair Report: Computers, Software and Other Peripherals",
        "school": "Repair Report: DLTV, DLIT, Computers, Software and Other Peripherals",
    },
}

SERVED_LABELS: dict[Lang, dict[Variant, str]] = {
    "th": {"office": "กลุ่มงานที่ให้บริการ", "school": "โรงเรียนที่ให้บริการ"},
    "en": {"office": "Office work unit served", "school": "School served"},
}

LABELS: dict[Lang, dict[str, str]] = {
    "th": {
        "ticket_no": "ใบแจ้งซ่อมเลขที่",
        "reported_at": "วันที่รับแจ้ง",
        "at_time": "เวลา",
        "equipment": "รายละเอียดอุปกรณ์",
        "col_no": "ลำดับที่",
        "col_name": "ชื่ออุปกรณ์",
        "col_hostname": "Hostname",
        "col_brand_model": "ยี่ห้อ/รุ่น",
        "col_serial": "หมายเลขเครื่อง",
        "col_remark": "หมายเหตุ",
        "summary": "สรุปผลการปฏิบัติงาน",
        "repair_date": "วันที่ซ่อมแซมแก้ไข",
        "day": "วันที่",
        "month": "เดือน",
        "year": "พ.ศ.",
        "repair_time": "เวลาซ่อมแซมแก้ไข",
        "started": "เริ่มเวลา",
        "finished": "แล้วเสร็จ",
        "event": "เหตุการณ์ / ปัญหา / สาเหตุ",
        "hypothesis": "ข้อสมมุติฐาน / การแก้ไข",
        "sign": "ลงชื่อ",
        "position": "ตำแหน่ง",
        "reporter": "ผู้แจ้งซ่อม",
        "repairer": "ผู้ทำการซ่อม / แก้ไข",
        "page": "หน้า",
    },
    "en": {
        "ticket_no": "Ticket no.",
        "reported_at": "Date reported",
        "at_time": "at",
        "equipment": "Equipment details",
        "col_no": "No.",
        "col_name": "Device name",
        "col_hostname": "Hostname",
        "col_brand_model": "Brand/Model",
        "col_serial": "Serial no.",
        "col_remark": "Remarks",
        "summary": "Work summary",
        "repair_date": "Repair date",
        "day": "day",
        "month": "month",
        "year": "year",
        "repair_time": "Repair time",
        "started": "started",
        "finished": "finished",
        "event": "Event / Problem / Cause",
        "hypothesis": "Hypothesis / Fix",
        "sign": "Signed",
        "position": "Position",
        "reporter": "Reported by",
        "repairer": "Repaired by",
        "page": "Page",
    },
}

_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July",
              "August", "September", "October", "November", "December")


@dataclass(frozen=True, slots=True)
class RepairEquipment:
    """One row of the equipment table (รายละเอียดอุปกรณ์); empty strings print as blank."""

    name: str
    hostname: str = ""
    brand_model: str = ""
    serial: str = ""
    remark: str = ""


@dataclass(frozen=True, slots=True)
class Signatory:
    """A person in a signature block: printed name in brackets under the signature line."""

    name: str
    position: str = ""


@dataclass(frozen=True, slots=True)
class RepairReport:
    """Everything the repair report shows, already decided by the ticket engine.

    Times must be timezone-aware (they print in Asia/Bangkok); ``repair_started`` and
    ``repair_finished`` may be unknown, and then print as dotted blanks for the officer
    to fill in by hand.  ``equipment`` lists the root device first, then the affected
    ones, in the order they should be numbered.
    """

    office_name: str
    group_name: str
    variant: Variant
    served_unit: str
    ticket_id: int | str
    reported_at: datetime
    repair_started: datetime | None = None
    repair_finished: datetime | None = None
    equipment: list[RepairEquipment] = field(default_factory=list)
    event_text: str = ""
    hypothesis_text: str = ""
    summary_text: str = ""
    reporter: Signatory = field(default_factory=lambda: Signatory(SYSTEM_REPORTER_NAME))
    repairer: Signatory | None = None
    thai_digits: bool = False
    lang: Lang = "th"

    def __post_init__(self) -> None:
        # Fail when the report is built, not halfway through rendering a PDF.
        if self.variant not in ("school", "office"):
            raise ValueError(f"variant must be 'school' or 'office', got {self.variant!r}")
        if self.lang not in ("th", "en"):
            raise ValueError(f"lang must be 'th' or 'en', got {self.lang!r}")
        for name in ("reported_at", "repair_started", "repair_finished"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class _Row:
    no: str
    item: RepairEquipment


def _num(report: RepairReport, value: int | str) -> str:
    """A number as the report prints it: Thai digits when asked (Thai labels only)."""
    text = str(value)
    return thaidate.thai_digits(text) if report.thai_digits and report.lang == "th" else text


def _date(report: RepairReport, moment: datetime) -> str:
    if report.lang == "en":
        local = thaidate.to_bangkok(moment)
        return f"{local.day} {_EN_MONTHS[local.month - 1]} {local.year}"
    return thaidate.format_date(moment, digits=report.thai_digits)


def _time(report: RepairReport, moment: datetime) -> str:
    if report.lang == "en":
        return thaidate.format_time(moment, suffix=False)
    return thaidate.format_time(moment, digits=report.thai_digits)


def _date_parts(report: RepairReport, moment: datetime | None) -> tuple[str, str, str] | None:
    """Day, month name and year for the repair-date line (BE in Thai, CE in English)."""
    if moment is None:
        return None
    if report.lang == "en":
        local = thaidate.to_bangkok(moment)
        return str(local.day), _EN_MONTHS[local.month - 1], str(local.year)
    return thaidate.date_parts(moment, digits=report.thai_digits)


def _finish_text(report: RepairReport) -> str | None:
    """Finish time; with its date when the repair ran past midnight (Bangkok)."""
    done, start = report.repair_finished, report.repair_started
    if done is None:
        return None
    text = _time(report, done)
    if start is not None and thaidate.to_bangkok(start).date() != thaidate.to_bangkok(done).date():
        text = f"{text} ({_date(report, done)})"
    return text


def _context(report: RepairReport) -> dict[str, object]:
    """Everything the template prints, already formatted, so the template stays layout."""
    lang = report.lang
    repair_day = report.repair_started or report.repair_finished
    return {
        "r": report,
        "lang": lang,
        "L": LABELS[lang],
        "title": TITLES[lang][report.variant],
        "served_label": SERVED_LABELS[lang][report.variant],
        "blank": BLANK,
        "ticket_no": _num(report, report.ticket_id),
        "reported_date": _date(report, report.reported_at),
        "reported_time": _time(report, report.reported_at),
        "rows": [_Row(_num(report, i), item) for i, item in enumerate(report.equipment, 1)],
        "repair_date": _date_parts(report, repair_day),
        "started": _time(report, report.repair_started) if report.repair_started else None,
        "finished": _finish_text(report),
        "page_counter": "thai" if report.thai_digits and lang == "th" else "decimal",
    }


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    # Names come from the config and from officers: always escape, never trust.
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_repair_html(report: RepairReport) -> str:
    """The report as one self-contained HTML page (CSS inlined, no external assets).

    Printable from a browser on A4 as it is; every value is HTML-escaped.
    """
    return _ENV.get_template("repair.html").render(_context(report))


def render_repair_pdf(report: RepairReport) -> bytes:
    """The report as an A4 PDF, laid out by WeasyPrint from the same HTML.

    WeasyPrint is imported here, not at module load: it is slow to import and the HTML
    path (and whoever only imports the dataclasses) does not need it.
    """
    import weasyprint  # type: ignore[import-untyped]

    pdftext.install()
    html = weasyprint.HTML(string=render_repair_html(report), base_url=str(TEMPLATE_DIR))
    pdf: bytes = html.write_pdf()
    return pdf
