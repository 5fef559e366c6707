"""Thai dates and times as Thai government documents write them.

Official Thai paperwork (repair reports, annual summaries) counts years in the Buddhist
era (พ.ศ. = CE + 543), spells months out in Thai, writes times as "14:05 น." and may use
Thai digits (๐–๙).  Budgets and the annual report run by fiscal year (ปีงบประมาณ), which
starts on 1 October: FY 2570 is 1 Oct 2026 – 30 Sep 2027.

Every function takes *aware* datetimes and shows them in Asia/Bangkok: the daemon stores
UTC, but a form that says a router died at 07:05 when the school saw it at 14:05 is
wrong.  Naive datetimes are refused rather than guessed at.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BE_OFFSET = 543
"""Buddhist-era year minus common-era year (the Thai calendar since 1941 starts in January)."""


def _bangkok_zone() -> tzinfo:
    """Asia/Bangkok from the system tz database, or a fixed UTC+7 when there is none.

    Thailand has kept UTC+7 without daylight saving since 1920, so the fallback gives the
    same answer for every date a monitoring record can hold; it only spares a minimal
    container without tzdata from crashing.
    """
    try:
        return ZoneInfo("Asia/Bangkok")
    except ZoneInfoNotFoundError:  # pragma: no cover - depends on the host
        return timezone(timedelta(hours=7), "ICT")


BANGKOK: tzinfo = _bangkok_zone()

THAI_MONTHS: tuple[str, ...] = (
    "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
    "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
)
"""Full month names, January first (index = month - 1)."""

THAI_MONTHS_ABBR: tuple[str, ...] = (
    "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
    "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
)
"""Abbreviated month names as used in tables and short dates."""

_TO_THAI_DIGITS = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")


def thai_digits(text: str) -> str:
    """Replace the ASCII digits 0–9 in ``text`` with Thai digits ๐–๙ (nothing else changes)."""
    return text.translate(_TO_THAI_DIGITS)


def _digits(text: str, digits: bool) -> str:
    return thai_digits(text) if digits else text


def be_year(ce_year: int) -> int:
    """Buddhist-era year for a common-era year: 2026 → 2569."""
    return ce_year + BE_OFFSET


def ce_year(be: int) -> int:
    """Common-era year for a Buddhist-era year: 2569 → 2026."""
    return be - BE_OFFSET


def month_name(month: int, *, abbreviated: bool = False) -> str:
    """Thai name of ``month`` (1–12): 11 → "พฤศจิกายน", or "พ.ย." when abbreviated."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    return (THAI_MONTHS_ABBR if abbreviated else THAI_MONTHS)[month - 1]


def to_bangkok(moment: datetime) -> datetime:
    """``moment`` converted to Asia/Bangkok; a naive datetime is an error.

    Naive values are refused because the daemon works in UTC and a silent guess would
    shift every time on a form by seven hours.  A moment so close to year 9999 that its
    Bangkok time has no calendar date is returned as it is (shown, not crashed on).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass an aware datetime")
    try:
        return moment.astimezone(BANGKOK)
    except OverflowError:
        return moment


SANE_FIRST = date(2000, 1, 1)
SANE_LAST = date(2100, 12, 31)
"""The dates an officer may enter (schedules, repair times, maintenance windows): anything
outside is a typo or hostile input, and refused where it comes in."""


def check_sane(moment: datetime, what: str = "date") -> datetime:
    """``moment`` itself when its (local) date lies in 2000-01-01..2100-12-31, else a
    ValueError that says so."""
    if not SANE_FIRST <= moment.date() <= SANE_LAST:
        raise ValueError(f"{what} {moment.date().isoformat()} is outside "
                         f"{SANE_FIRST.isoformat()}..{SANE_LAST.isoformat()}")
    return moment


def from_timestamp(ts: float) -> datetime | None:
    """Unix time as an aware Bangkok datetime, or None when no calendar date can hold it.

    Stored times come from old databases and earlier versions too; one that is out of
    range (year 0, NaN) must show as "?" on a page or in a message, not crash it.
    """
    try:
        return datetime.fromtimestamp(float(ts), UTC).astimezone(BANGKOK)
    except (OverflowError, ValueError, OSError):
        return None


def _local_date(day: date | datetime) -> date:
    """The Bangkok calendar date of an aware datetime, or a plain date as it is."""
    if isinstance(day, datetime):
        return to_bangkok(day).date()
    return day


def date_parts(day: date | datetime, *, digits: bool = False) -> tuple[str, str, str]:
    """(day, full month name, BE year) as the separate blanks of a paper form fill them:
    "วันที่ 23 เดือน พฤศจิกายน พ.ศ. 2569" → ("23", "พฤศจิกายน", "2569")."""
    d = _local_date(day)
    return (_digits(str(d.day), digits), month_name(d.month),
            _digits(str(be_year(d.year)), digits))


def format_date(day: date | datetime, *, abbreviated: bool = False, digits: bool = False,
                era: bool = True) -> str:
    """Thai date: "23 พฤศจิกายน พ.ศ. 2569", abbreviated "23 พ.ย. 2569".

    ``era`` writes "พ.ศ." before the year; abbreviated dates leave it out, as tables do.
    """
    d = _local_date(day)
    year = str(be_year(d.year))
    if era and not abbreviated:
        year = f"พ.ศ. {year}"
    text = f"{d.day} {month_name(d.month, abbreviated=abbreviated)} {year}"
    return _digits(text, digits)


def format_time(moment: datetime, *, digits: bool = False, suffix: bool = True) -> str:
    """Bangkok wall-clock time "14:05 น." (น. = นาฬิกา, o'clock); 24-hour, as forms use."""
    local = to_bangkok(moment)
    text = f"{local:%H:%M}" + (" น." if suffix else "")
    return _digits(text, digits)


def format_datetime(moment: datetime, *, abbreviated: bool = False,
                    digits: bool = False) -> str:
    """"23 พฤศจิกายน พ.ศ. 2569 เวลา 14:05 น." in Asia/Bangkok."""
    return (f"{format_date(moment, abbreviated=abbreviated, digits=digits)} "
            f"เวลา {format_time(moment, digits=digits)}")


def fiscal_year(day: date | datetime) -> int:
    """Thai fiscal year (ปีงบประมาณ, BE) containing ``day``: it starts on 1 October, so
    1 Oct 2026 – 30 Sep 2027 is FY 2570.  Aware datetimes count by the Bangkok date."""
    d = _local_date(day)
    return be_year(d.year + 1 if d.month >= 10 else d.year)


def fiscal_year_bounds(fy_be: int) -> tuple[date, date]:
    """First and last day of Thai fiscal year ``fy_be``: 2570 → (2026-10-01, 2027-09-30)."""
    end_ce = ce_year(fy_be)
    return date(end_ce - 1, 10, 1), date(end_ce, 9, 30)


def format_timestamp(ts: float | None, *, abbreviated: bool = False,
                     digits: bool = False) -> str:
    """:func:`format_datetime` of a stored Unix time; "-" for none, "?" when out of range."""
    if ts is None:
        return "-"
    moment = from_timestamp(ts)
    if moment is None:
        return "?"
    return format_datetime(moment, abbreviated=abbreviated, digits=digits)


def format_duration(span: timedelta | float, *, digits: bool = False) -> str:
    """A duration in Thai: "2 ชั่วโมง 15 นาที", "1 วัน 3 ชั่วโมง", "45 วินาที".

    Days, hours and minutes, dropping the zero ones; seconds only when the whole span is
    under a minute (an outage report does not need them otherwise).  Accepts a timedelta
    or seconds; a negative span is a bug upstream and raises.
    """
    total = span.total_seconds() if isinstance(span, timedelta) else float(span)
    if total < 0:
        raise ValueError(f"negative duration: {total} s")
    secs = int(total)
    if secs < 60:
        return _digits(f"{secs} วินาที", digits)
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{n} {unit}" for n, unit in ((days, "วัน"), (hours, "ชั่วโมง"), (minutes, "นาที"))
             if n]
    return _digits(" ".join(parts), digits)
