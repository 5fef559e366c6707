"""What the connectivity reports share: output formats, Thai/English words, numbers.

HTML is one self-contained page (CSS inlined); PDF is the same HTML laid out by
WeasyPrint with the repair report's Thai fonts and its text-extraction fix (so a PDF's
Thai text can be searched and copied); CSV is UTF-8 *with a byte-order mark* so that
Excel, which Thai offices open CSV files with, reads Thai instead of mojibake.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import jinja2

from monitord import thaidate
from monitord.domain.state import State

TEMPLATE_DIR = Path(__file__).with_name("templates")
Format = Literal["html", "csv", "pdf"]
Lang = Literal["th", "en"]
FORMATS: tuple[Format, ...] = ("html", "csv", "pdf")

MEDIA_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "pdf": "application/pdf",
}

EN_MONTHS_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                  "Nov", "Dec")
EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")

STATE_WORDS: dict[Lang, dict[State, str]] = {
    "th": {State.UP: "ออนไลน์", State.DEGRADED: "ออนไลน์ (ช้า/ไม่เสถียร)",
           State.DOWN: "ออฟไลน์", State.UNREACHABLE: "ออฟไลน์",
           State.MAINTENANCE: "ปิดปรับปรุง", State.UNKNOWN: "ไม่ทราบสถานะ"},
    "en": {State.UP: "online", State.DEGRADED: "online (degraded)", State.DOWN: "offline",
           State.UNREACHABLE: "offline", State.MAINTENANCE: "maintenance",
           State.UNKNOWN: "unknown"},
}

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,  # school names come from the config: always escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def lang_of(value: str | None) -> Lang:
    return "en" if value == "en" else "th"


def render_template(name: str, context: dict[str, Any]) -> str:
    return _ENV.get_template(name).render(context)


def to_pdf(html: str) -> bytes:
    """HTML → PDF through WeasyPrint (Pango/HarfBuzz shape Thai; TLWG fonts)."""
    import weasyprint  # type: ignore[import-untyped]

    from monitord.reports import pdftext

    pdftext.install()
    pdf: bytes = weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf()
    return pdf


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM (Excel), CRLF line ends, every field quoted as needed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def pct(ratio: float | None) -> str:
    """"99.52" (rounded down: short of 100 % never prints as 100), "" when no data."""
    if ratio is None:
        return ""
    if ratio >= 1.0:
        return "100.00"
    return f"{math.floor(ratio * 10000) / 100:.2f}"


def pct_text(ratio: float | None, lang: Lang) -> str:
    if ratio is None:
        return "–"
    return pct(ratio) + "%"


def minutes(seconds: float) -> int:
    return round(seconds / 60)


def duration(seconds: float, lang: Lang) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return "–" if seconds == 0 else ("< 1 นาที" if lang == "th" else "< 1 min")
    if lang == "th":
        return thaidate.format_duration(seconds)
    total_min = int(seconds // 60)
    days, rest = divmod(total_min, 1440)
    h, m = divmod(rest, 60)
    parts = [f"{n} {u}" for n, u in ((days, "d"), (h, "h"), (m, "min")) if n]
    return " ".join(parts)


def long_date(day: date, lang: Lang) -> str:
    """"25 พฤศจิกายน พ.ศ. 2569" / "25 November 2026"."""
    if lang == "en":
        return f"{day.day} {EN_MONTHS[day.month - 1]} {day.year}"
    return thaidate.format_date(day)


def moment(ts: float, lang: Lang, *, with_date: bool = True) -> str:
    """A time in Bangkok: "25 พ.ย. 2569 14:05 น." / "25 Nov 2026 14:05"."""
    when = datetime.fromtimestamp(ts, UTC)
    local = thaidate.to_bangkok(when)
    if lang == "en":
        return f"{local.day} {EN_MONTHS_ABBR[local.month - 1]} {local.year} {local:%H:%M}" \
            if with_date else f"{local:%H:%M}"
    if not with_date:
        return thaidate.format_time(when)
    return f"{thaidate.format_date(when, abbreviated=True)} {thaidate.format_time(when)}"


def iso_local(ts: float | None) -> str:
    """For CSV: "2026-11-25 14:05" in Bangkok time (sortable, what spreadsheets parse)."""
    if ts is None:
        return ""
    return thaidate.to_bangkok(datetime.fromtimestamp(ts, UTC)).strftime("%Y-%m-%d %H:%M")


def month_label(year: int, month: int, lang: Lang) -> str:
    """"ต.ค. 68" / "Oct 2025": a month column's heading."""
    if lang == "en":
        return f"{EN_MONTHS_ABBR[month - 1]} {year}"
    return f"{thaidate.month_name(month, abbreviated=True)} {thaidate.be_year(year) % 100:02d}"


def month_long(year: int, month: int, lang: Lang) -> str:
    if lang == "en":
        return f"{EN_MONTHS[month - 1]} {year}"
    return f"{thaidate.month_name(month)} {thaidate.be_year(year)}"
