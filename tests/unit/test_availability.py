"""Availability in active hours: schedules, holidays, exclusions, day boundaries."""

from __future__ import annotations

import itertools
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitord.config import Config, parse_config
from monitord.domain.activehours import (
    Calendar,
    Holiday,
    Schedule,
    WeeklyWindow,
    active_seconds,
    parse_days,
    parse_hours,
)
from monitord.domain.availability import (
    History,
    Model,
    Segment,
    Tally,
    combine_links,
    day_buckets,
    days_between,
    intersect,
    merge,
    overlay,
    schedule_intervals,
    state_segments,
    tally,
)
from monitord.domain.state import State, Transition
from monitord.storage import Storage
from monitord.storage.history import compute_snapshot, load_history, open_readonly

BKK = ZoneInfo("Asia/Bangkok")
H = 3600.0


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Bangkok wall-clock time → Unix seconds."""
    return datetime(year, month, day, hour, minute, tzinfo=BKK).timestamp()


def window(days: str, hours: str) -> WeeklyWindow:
    return WeeklyWindow(parse_days(days.split(",")), *parse_hours(hours))


SCHOOL = Schedule("school", (window("mon-fri", "08:00-16:00"),), skip_holidays=True)
CAL = Calendar((Holiday(date(2026, 12, 7), date(2026, 12, 7), "ชดเชยวันพ่อแห่งชาติ"),
                Holiday(date(2026, 10, 10), date(2026, 10, 31), "ปิดภาคเรียนที่ 1")))


CONFIG = textwrap.dedent("""\
    office: {name: สพป.ทดสอบ, area_code: "6202"}
    defaults: {schedule: always}
    schedules:
      school: {days: [mon-fri], hours: ["08:00-16:00"], skip_holidays: true}
    kinds:
      dltv_receiver: {schedule: school}
    holidays:
      - {date: 2026-12-07, name: ชดเชยวันพ่อแห่งชาติ}
    maintenance:
      - {name: เปลี่ยนเราเตอร์, start: "2026-12-09 10:00", end: "2026-12-09 12:00",
         devices: [b-rtr]}
    schools:
      "62020001": {name: โรงเรียนบ้านทดสอบ, district: คลองขลุง, isp: NT, schedule: school}
      "62020002": {name: โรงเรียนวัดทดสอบ, district: คลองลาน, isp: TRUE}
    devices:
      - {id: a-rtr, school: "62020001", kind: router, address: 127.0.0.1}
      - {id: a-rx, school: "62020001", kind: dltv_receiver, address: 127.0.0.2, parent: a-rtr}
      - {id: b-rtr, school: "62020002", kind: router, address: 127.0.1.1}
      - {id: b-rtr2, school: "62020002", kind: router, address: 127.0.1.2}
      - {id: srv, kind: server, address: 127.0.2.1}
    """)


@pytest.fixture(scope="module")
def cfg() -> Config:
    return parse_config(CONFIG).config


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("sched", [
    SCHOOL,
    Schedule("night", (window("fri,sat", "22:00-06:00"),), skip_holidays=True),
    Schedule("split", (window("mon,wed", "07:30-11:45"), window("mon-fri", "13:00-24:00"))),
    Schedule("weekend", (window("sat-sun", "00:00-24:00"),)),
])
def test_schedule_intervals_match_the_schedule_minute_by_minute(sched: Schedule) -> None:
    start, end = ts(2026, 10, 1, 5, 17), ts(2026, 12, 14, 9, 3)
    exact = sum(e - s for s, e in schedule_intervals(sched, CAL, BKK, start, end))
    stepped = active_seconds(sched, CAL, datetime.fromtimestamp(start, BKK),
                             datetime.fromtimestamp(end, BKK), tz=BKK)
    assert exact == pytest.approx(stepped, abs=120)  # the reference steps by minutes
    # Each interval really is active, and the gaps really are not.
    ivs = schedule_intervals(sched, CAL, BKK, start, end)
    for s, e in ivs:
        assert sched.active(datetime.fromtimestamp(s + 1, BKK), CAL)
        assert sched.active(datetime.fromtimestamp(e - 1, BKK), CAL)
    for (_, e1), (s2, _) in itertools.pairwise(ivs):
        assert not sched.active(datetime.fromtimestamp((e1 + s2) / 2, BKK), CAL)


def test_holidays_and_term_breaks_have_no_school_hours() -> None:
    for day in (date(2026, 12, 7), date(2026, 10, 15), date(2026, 12, 12)):  # Mon, break, Sat
        s, e = ts(day.year, day.month, day.day), ts(day.year, day.month, day.day) + 24 * H
        assert schedule_intervals(SCHOOL, CAL, BKK, s, e) == []
    s = ts(2026, 12, 8)
    assert schedule_intervals(SCHOOL, CAL, BKK, s, s + 24 * H) == [
        (ts(2026, 12, 8, 8), ts(2026, 12, 8, 16))]


def test_interval_helpers() -> None:
    assert merge([(5, 6), (1, 3), (2, 4), (4, 4.5), (7, 7)]) == [(1, 4.5), (5, 6)]
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    segs = state_segments(State.UP, [(5.0, State.DOWN), (8.0, State.UP), (20.0, State.DOWN)],
                          0, 10)
    assert segs == [Segment(0, 5, State.UP), Segment(5, 8, State.DOWN), Segment(8, 10, State.UP)]
    assert overlay(segs, [(4, 6)], State.MAINTENANCE) == [
        Segment(0, 4, State.UP), Segment(4, 6, State.MAINTENANCE), Segment(6, 8, State.DOWN),
        Segment(8, 10, State.UP)]
    # A change at or before the start decides the initial state.
    assert state_segments(State.UNKNOWN, [(0.0, State.DOWN)], 0, 4) == [
        Segment(0, 4, State.DOWN)]


# -------------------------------------------------------------------- counting in hours


def test_down_across_a_weekend_counts_only_school_hours() -> None:
    # Down from Friday 15:00 to Monday 09:00: one hour on Friday, one on Monday.
    start, end = ts(2026, 12, 11), ts(2026, 12, 15)
    segs = state_segments(State.UP, [(ts(2026, 12, 11, 15), State.DOWN),
                                     (ts(2026, 12, 14, 9), State.UP)], start, end)
    days = days_between(date(2026, 12, 11), date(2026, 12, 14))
    per_day = tally(segs, schedule_intervals(SCHOOL, CAL, BKK, start, end),
                    day_buckets(days, BKK))
    assert [(t.up / H, t.down / H) for t in per_day] == [(7, 1), (0, 0), (0, 0), (7, 1)]
    assert per_day[1].ratio is None and per_day[1].active == 0  # Saturday: no hours
    whole = Tally()
    for t in per_day:
        whole.add(t)
    assert whole.ratio == pytest.approx(14 / 16)


def test_midnight_is_the_bangkok_day_boundary() -> None:
    # Down 23:00–01:00 Bangkok time (16:00–18:00 UTC): one hour on each Bangkok day.
    always = Schedule("always")
    start, end = ts(2026, 11, 23), ts(2026, 11, 25)
    segs = state_segments(State.UP, [(ts(2026, 11, 23, 23), State.DOWN),
                                     (ts(2026, 11, 24, 1), State.UP)], start, end)
    buckets = day_buckets([date(2026, 11, 23), date(2026, 11, 24)], BKK)
    assert buckets[0] == (ts(2026, 11, 23), ts(2026, 11, 24))
    assert buckets[0][1] - buckets[0][0] == 24 * H  # no daylight saving in Bangkok
    assert datetime.fromtimestamp(buckets[1][0], BKK).hour == 0
    got = tally(segs, schedule_intervals(always, CAL, BKK, start, end), buckets)
    assert [t.down / H for t in got] == [1, 1]
    assert [t.up / H for t in got] == [23, 23]


def test_unknown_and_maintenance_are_excluded_from_both_sides() -> None:
    start, end = ts(2026, 12, 8), ts(2026, 12, 9)
    segs = state_segments(State.UP, [
        (ts(2026, 12, 8, 9), State.UNKNOWN), (ts(2026, 12, 8, 10), State.DOWN),
        (ts(2026, 12, 8, 11), State.MAINTENANCE), (ts(2026, 12, 8, 13), State.DEGRADED),
        (ts(2026, 12, 8, 14), State.UNREACHABLE), (ts(2026, 12, 8, 15), State.UP)],
        start, end)
    t = tally(segs, schedule_intervals(SCHOOL, CAL, BKK, start, end), [(start, end)])[0]
    assert (t.up / H, t.down / H, t.excluded / H) == (3, 2, 3)  # 8-9,13-14,15-16 | 10-11,14-15
    assert t.ratio == pytest.approx(3 / 5)
    only_unknown = tally(state_segments(State.UNKNOWN, [], start, end),
                         [(start, end)], [(start, end)])[0]
    assert only_unknown.ratio is None and only_unknown.excluded == 24 * H


def test_school_is_down_when_a_link_is_down_or_unreachable() -> None:
    a = [Segment(0, 10, State.UP), Segment(10, 20, State.DOWN), Segment(20, 40, State.UP)]
    b = [Segment(0, 15, State.DEGRADED), Segment(15, 30, State.UNREACHABLE),
         Segment(30, 40, State.MAINTENANCE)]
    school = combine_links([a, b], 0, 40)
    assert [(s.start, s.end, s.state) for s in school] == [
        (0, 10, State.DEGRADED), (10, 20, State.DOWN), (20, 30, State.UNREACHABLE),
        (30, 40, State.MAINTENANCE)]
    t = tally(school, [(0, 40)], [(0, 40)])[0]
    assert (t.up, t.down, t.excluded) == (10, 20, 10)
    assert combine_links([], 0, 5) == [Segment(0, 5, State.UNKNOWN)]


# ------------------------------------------------------------------------ with a config


def test_model_uses_each_devices_cascaded_schedule_and_maintenance(cfg: Config) -> None:
    start, end = ts(2026, 12, 7), ts(2026, 12, 10)  # Mon (holiday), Tue, Wed
    h = History(start, end,
                initial={"a-rtr": State.UP, "a-rx": State.UP, "b-rtr": State.UP,
                         "b-rtr2": State.UP, "srv": State.UP},
                changes={"a-rx": [(ts(2026, 12, 7, 9), State.DOWN),
                                  (ts(2026, 12, 8, 9), State.UP)],
                         "b-rtr": [(ts(2026, 12, 9, 10), State.DOWN),
                                   (ts(2026, 12, 9, 13), State.UP)],
                         "srv": [(ts(2026, 12, 9, 20), State.DOWN)]})
    m = Model(cfg, h)
    days = days_between(date(2026, 12, 7), date(2026, 12, 9))
    buckets = day_buckets(days, BKK)
    # The receiver follows kinds.dltv_receiver (school hours, holidays skipped).
    rx = m.device_tallies("a-rx", buckets)
    assert [t.active / H for t in rx] == [0, 8, 8]
    assert [t.down / H for t in rx] == [0, 1, 0]
    # School 62020001's schedule applies to its router; school 62020002 is "always".
    assert [t.active / H for t in m.school_tallies("62020001", buckets)] == [0, 8, 8]
    b = m.school_tallies("62020002", buckets)
    assert [t.active / H for t in b] == [24, 24, 24]
    # b-rtr down 10:00–13:00 on the 9th, of which 10–12 is the config's maintenance.
    assert (b[2].down / H, b[2].excluded / H) == (1, 2)
    assert m.school_state_at("62020002", ts(2026, 12, 9, 12, 30)) is State.DOWN
    assert m.down_since("62020002", ts(2026, 12, 9, 12, 30)) == ts(2026, 12, 9, 12)
    assert m.down_since("62020002", ts(2026, 12, 9, 14)) is None
    # Office server: always; down from 20:00 on the 9th.
    assert m.device_tallies("srv", [(start, end)])[0].down / H == 4


async def test_history_from_storage_with_gaps_and_cli_maintenance(cfg: Config,
                                                                  tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = await Storage.open(db)
    try:
        await store.record_transitions([
            Transition("b-rtr", State.UNKNOWN, State.UP, ts(2026, 12, 1, 6), "ok"),
            Transition("b-rtr2", State.UNKNOWN, State.UP, ts(2026, 12, 1, 6), "ok"),
            Transition("b-rtr", State.UP, State.DOWN, ts(2026, 12, 8, 8), "3 failures"),
            Transition("b-rtr", State.DOWN, State.UP, ts(2026, 12, 8, 12), "ok"),
            Transition("b-rtr2", State.UP, State.DOWN, ts(2026, 12, 8, 20), "3 failures"),
        ])
        # The daemon was stopped 13:00–14:00 (nobody watched: unknown, not up).
        await store.record_event("daemon_stopped", "", ts(2026, 12, 8, 13))
        await store.record_event("daemon_started", "", ts(2026, 12, 8, 14))
        # An officer's maintenance window on b-rtr2 from 21:00 to 23:00.
        await store.add_maintenance("ย้ายตู้", ts(2026, 12, 8, 21), ts(2026, 12, 8, 23),
                                    devices=["b-rtr2"])
    finally:
        await store.close()
    conn = open_readonly(db)
    try:
        h = load_history(conn, ts(2026, 12, 8), ts(2026, 12, 9))
    finally:
        conn.close()
    assert h.initial == {"b-rtr": State.UP, "b-rtr2": State.UP}
    assert h.gaps == [(ts(2026, 12, 8, 13), ts(2026, 12, 8, 14))]
    m = Model(cfg, h)
    t = m.school_tallies("62020002", [(h.start, h.end)])[0]
    # up 0–8, 12–13, 14–20 = 15 h; down 8–12, 20–21, 23–24 = 6 h; excluded: gap + window.
    assert (t.up / H, t.down / H, t.excluded / H) == (15, 6, 3)
    # A school whose devices have no history at all: nothing counted, not 0 %.
    assert m.school_tallies("62020001", [(h.start, h.end)])[0].ratio is None


async def test_snapshot_bars_mark_days_without_school_hours(cfg: Config,
                                                            tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    now = ts(2026, 12, 14, 12)  # Monday noon
    store = await Storage.open(db)
    try:
        await store.record_transitions([
            Transition("a-rtr", State.UNKNOWN, State.UP, now - 40 * 86400, "ok"),
            Transition("a-rtr", State.UP, State.DOWN, ts(2026, 12, 14, 10), "3 failures"),
        ])
    finally:
        await store.close()
    snap = compute_snapshot(cfg, db, now, days=30)
    bar = snap.schools["62020001"]
    assert len(bar.cells) == 30 and bar.cells[-1].day == date(2026, 12, 14)
    assert bar.cells[0].day == date(2026, 12, 14) - timedelta(days=29)
    by_day = {c.day: c for c in bar.cells}
    assert not by_day[date(2026, 12, 13)].has_hours  # Sunday
    assert not by_day[date(2026, 12, 7)].has_hours   # holiday
    assert by_day[date(2026, 12, 8)].ratio == 1.0
    today = by_day[date(2026, 12, 14)]
    assert (today.up / H, today.down / H) == (2, 2)  # 08–10 up, 10–12 down, so far
    assert snap.schools["62020002"].ratio is None  # no history for its routers
    assert snap.devices["a-rtr"] is not None and snap.devices["a-rtr"] < 1
