"""Active hours, holidays and maintenance windows (Asia/Bangkok)."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitord.config import ConfigError, parse_config
from monitord.domain.activehours import (
    Calendar,
    Holiday,
    Schedule,
    WeeklyWindow,
    active_seconds,
    in_maintenance,
    parse_days,
    parse_hours,
)

BKK = ZoneInfo("Asia/Bangkok")
SCHOOL = Schedule("school", (WeeklyWindow(parse_days(["mon-fri"]), *parse_hours("08:00-16:00")),),
                  skip_holidays=True)
CAL = Calendar((Holiday(date(2026, 12, 7), date(2026, 12, 7), "ชดเชยวันพ่อแห่งชาติ"),
                Holiday(date(2026, 10, 10), date(2026, 10, 31), "ปิดภาคเรียนที่ 1")))


def bkk(*args: int) -> datetime:
    return datetime(*args, tzinfo=BKK)  # type: ignore[misc]


def test_days_and_hours_parsing() -> None:
    assert parse_days(["mon-fri"]) == frozenset(range(5))
    assert parse_days(["sat", "sunday"]) == frozenset({5, 6})
    assert parse_days(["fri-mon"]) == frozenset({4, 5, 6, 0})
    with pytest.raises(ValueError):
        parse_days(["funday"])
    with pytest.raises(ValueError):
        parse_hours("8-16")
    with pytest.raises(ValueError):
        parse_hours("25:00-26:00")


@pytest.mark.parametrize(("when", "active"), [
    (bkk(2026, 11, 23, 8, 0), True),     # Monday 08:00
    (bkk(2026, 11, 23, 15, 59), True),
    (bkk(2026, 11, 23, 16, 0), False),   # end is exclusive
    (bkk(2026, 11, 23, 7, 59), False),
    (bkk(2026, 11, 28, 10, 0), False),   # Saturday
    (bkk(2026, 12, 7, 10, 0), False),    # holiday (Monday)
    (bkk(2026, 10, 20, 10, 0), False),   # term break (Tuesday)
    (bkk(2026, 11, 2, 10, 0), True),     # first Monday after the break
])
def test_school_hours(when: datetime, active: bool) -> None:
    assert SCHOOL.active(when, CAL) is active


def test_utc_input_is_judged_in_bangkok_time() -> None:
    # 01:30 UTC on Monday is 08:30 in Bangkok.
    when = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
    assert SCHOOL.active(when.astimezone(BKK), CAL)


def test_window_across_midnight() -> None:
    night = Schedule("night", (WeeklyWindow(parse_days(["fri"]), *parse_hours("22:00-06:00")),))
    assert night.active(bkk(2026, 11, 27, 23, 0), CAL)      # Friday 23:00
    assert night.active(bkk(2026, 11, 28, 5, 59), CAL)      # Saturday 05:59 (Friday's window)
    assert not night.active(bkk(2026, 11, 28, 23, 0), CAL)  # Saturday 23:00
    assert not night.active(bkk(2026, 11, 27, 5, 0), CAL)   # Friday 05:00 (Thursday's)


def test_active_seconds_counts_only_school_hours() -> None:
    # Monday 00:00 → Saturday 00:00 of a normal week: 5 days × 8 h.
    start, end = bkk(2026, 11, 23), bkk(2026, 11, 28)
    assert active_seconds(SCHOOL, CAL, start, end, tz=BKK) == 5 * 8 * 3600
    # The week with the 7 December holiday has one school day less.
    start = bkk(2026, 12, 7)
    assert active_seconds(SCHOOL, CAL, start, start + timedelta(days=5), tz=BKK) == 4 * 8 * 3600


CONFIG = textwrap.dedent("""\
    office: {name: x, area_code: "6202"}
    schedules:
      school_hours: {days: [mon-fri], hours: ["08:00-16:00"], skip_holidays: true}
    holidays:
      - {date: 2026-12-07, name: ชดเชยวันพ่อแห่งชาติ}
      - {from: 2026-10-10, to: 2026-10-31, name: ปิดภาคเรียนที่ 1}
    kinds:
      dltv_receiver: {schedule: school_hours}
    schools:
      62020001: {name: a, district: b}
      62020002: {name: c, district: d, schedule: school_hours}
    devices:
      - {id: rx, school: 62020001, kind: dltv_receiver, address: 127.0.0.1}
      - {id: r1, school: 62020001, kind: router, address: 127.0.0.2}
      - {id: r2, school: 62020002, kind: router, address: 127.0.0.3}
      - {id: r3, school: 62020002, kind: router, address: 127.0.0.4, schedule: always}
    maintenance:
      - {name: ย้ายตู้แร็ค, start: "2026-12-01 08:00", end: "2026-12-01 12:00", schools: [62020001]}
      - {name: backup, weekly: {days: [sun], hours: ["02:00-04:00"]}, kinds: [server]}
    """)


def test_config_schedule_cascade_and_maintenance() -> None:
    cfg = parse_config(CONFIG).config
    devs = cfg.device_map()
    assert cfg.effective(devs["rx"]).schedule == "school_hours"   # by kind
    assert cfg.effective(devs["r1"]).schedule == "always"         # default
    assert cfg.effective(devs["r2"]).schedule == "school_hours"   # by school
    assert cfg.effective(devs["r3"]).schedule == "always"         # device wins
    assert set(cfg.schedule_map()) == {"always", "school_hours"}
    assert cfg.calendar().holiday(date(2026, 10, 15)) is not None
    windows = cfg.maintenance_windows()
    # Naive times are office (Bangkok) time.
    assert windows[0].start == bkk(2026, 12, 1, 8, 0)
    hit = in_maintenance(windows, bkk(2026, 12, 1, 9, 0), BKK, device="r1", school="62020001",
                         kind="router")
    assert hit is not None and hit.name == "ย้ายตู้แร็ค"
    assert in_maintenance(windows, bkk(2026, 12, 1, 9, 0), BKK, device="r2", school="62020002",
                          kind="router") is None
    assert in_maintenance(windows, bkk(2026, 11, 29, 3, 0), BKK, device="web", school=None,
                          kind="server") is not None


def test_config_schedule_errors_are_reported() -> None:
    bad = (CONFIG.replace("dltv_receiver: {schedule: school_hours}",
                          "dltv_receiver: {schedule: school_hour}")
           .replace("schools: [62020001]}", "schools: [62029999]}")
           .replace('end: "2026-12-01 12:00"', 'end: "2026-12-01 07:00"'))
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "c.yaml")
    text = str(err.value)
    assert "c.yaml:8: kinds.dltv_receiver.schedule: unknown schedule 'school_hour'" in text
    assert "c.yaml:18: maintenance[0].schools[0]: unknown school '62029999'" in text
    assert "c.yaml:18: maintenance[0]: 'end' must be after 'start'" in text
