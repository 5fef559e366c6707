"""Thai dates as official documents write them: BE years, Thai months, Bangkok time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from monitord import thaidate


def test_be_year_round_trip() -> None:
    assert thaidate.be_year(2026) == 2569
    assert thaidate.ce_year(2569) == 2026
    assert thaidate.be_year(thaidate.ce_year(2500)) == 2500


def test_month_names_full_and_abbreviated() -> None:
    assert thaidate.month_name(1) == "มกราคม"
    assert thaidate.month_name(11) == "พฤศจิกายน"
    assert thaidate.month_name(12, abbreviated=True) == "ธ.ค."
    assert len(set(thaidate.THAI_MONTHS)) == 12
    assert len(set(thaidate.THAI_MONTHS_ABBR)) == 12
    with pytest.raises(ValueError):
        thaidate.month_name(13)


def test_format_date_full_abbreviated_and_digits() -> None:
    d = date(2026, 11, 23)
    assert thaidate.format_date(d) == "23 พฤศจิกายน พ.ศ. 2569"
    assert thaidate.format_date(d, abbreviated=True) == "23 พ.ย. 2569"
    assert thaidate.format_date(d, era=False) == "23 พฤศจิกายน 2569"
    assert thaidate.format_date(d, digits=True) == "๒๓ พฤศจิกายน พ.ศ. ๒๕๖๙"


def test_thai_digits_only_touch_digits() -> None:
    assert thaidate.thai_digits("0123456789") == "๐๑๒๓๔๕๖๗๘๙"
    assert thaidate.thai_digits("ห้อง ป.1 rx-02") == "ห้อง ป.๑ rx-๐๒"


def test_times_are_shown_in_bangkok_from_utc() -> None:
    utc = datetime(2026, 11, 23, 7, 5, tzinfo=UTC)
    assert thaidate.format_time(utc) == "14:05 น."
    assert thaidate.format_time(utc, digits=True) == "๑๔:๐๕ น."
    assert thaidate.format_time(utc, suffix=False) == "14:05"
    assert thaidate.format_datetime(utc) == "23 พฤศจิกายน พ.ศ. 2569 เวลา 14:05 น."


def test_date_follows_bangkok_calendar_day_not_utc() -> None:
    # 20:30 UTC on 31 Dec 2026 is already 03:30 on 1 Jan 2027 (BE 2570) in Bangkok.
    late = datetime(2026, 12, 31, 20, 30, tzinfo=UTC)
    assert thaidate.format_date(late) == "1 มกราคม พ.ศ. 2570"
    assert thaidate.date_parts(late) == ("1", "มกราคม", "2570")
    other_zone = datetime(2026, 11, 23, 9, 5, tzinfo=timezone(timedelta(hours=9)))
    assert thaidate.format_time(other_zone) == "07:05 น."


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        thaidate.format_time(datetime(2026, 11, 23, 14, 5))
    with pytest.raises(ValueError, match="naive"):
        thaidate.format_date(datetime(2026, 11, 23, 14, 5))


def test_fiscal_year_boundaries() -> None:
    assert thaidate.fiscal_year(date(2026, 9, 30)) == 2569
    assert thaidate.fiscal_year(date(2026, 10, 1)) == 2570
    assert thaidate.fiscal_year(date(2027, 9, 30)) == 2570
    assert thaidate.fiscal_year(date(2027, 10, 1)) == 2571
    assert thaidate.fiscal_year_bounds(2570) == (date(2026, 10, 1), date(2027, 9, 30))


def test_fiscal_year_counts_by_bangkok_date() -> None:
    # 18:00 UTC on 30 Sep is 01:00 on 1 Oct in Bangkok: already the next fiscal year.
    assert thaidate.fiscal_year(datetime(2026, 9, 30, 18, 0, tzinfo=UTC)) == 2570
    assert thaidate.fiscal_year(datetime(2026, 9, 30, 16, 59, tzinfo=UTC)) == 2569


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(hours=2, minutes=15), "2 ชั่วโมง 15 นาที"),
        (timedelta(days=1, hours=3), "1 วัน 3 ชั่วโมง"),
        (timedelta(minutes=5, seconds=59), "5 นาที"),
        (45, "45 วินาที"),
        (0, "0 วินาที"),
        (timedelta(days=2, minutes=1), "2 วัน 1 นาที"),
    ],
)
def test_format_duration(span: timedelta | float, text: str) -> None:
    assert thaidate.format_duration(span) == text


def test_format_duration_digits_and_negative() -> None:
    assert thaidate.format_duration(timedelta(hours=2, minutes=15), digits=True) == (
        "๒ ชั่วโมง ๑๕ นาที"
    )
    with pytest.raises(ValueError):
        thaidate.format_duration(-1)
