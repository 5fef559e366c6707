"""When a device matters: active hours, the holiday calendar and maintenance windows.

A DLTV receiver that is off at 18:00 or during the October term break is not a fault;
the same receiver dark at 10:00 on a school day is.  This module answers, for a moment in
time, "is this device inside its active hours?" and "is it under maintenance?", and how
many active seconds lie in an interval (availability is counted in school hours only).

Pure functions of wall-clock time in the office's time zone (Asia/Bangkok by default);
no I/O, so the incident engine and tests drive it with any clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_days(days: Iterable[str]) -> frozenset[int]:
    """``["mon", "tue"]`` or ``["mon-fri"]`` → weekday numbers (Monday = 0)."""
    out: set[int] = set()
    for raw in days:
        item = raw.strip().lower()
        if "-" in item:
            first, last = (part.strip()[:3] for part in item.split("-", 1))
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ValueError(f"unknown day range {item!r}; use e.g. mon-fri")
            a, b = DAY_NAMES.index(first), DAY_NAMES.index(last)
            out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif item[:3] in DAY_NAMES:
            out.add(DAY_NAMES.index(item[:3]))
        else:
            raise ValueError(f"unknown day {item!r}; use mon, tue, … sun")
    return frozenset(out)


def parse_hours(text: str) -> tuple[time, time]:
    """``"08:00-16:00"`` → (08:00, 16:00); ``"22:00-06:00"`` crosses midnight."""
    m = _HOURS_RE.match(text)
    if not m:
        raise ValueError(f"expected hours like 08:00-16:00, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1 == 24 and m1) or (h2 == 24 and m2):
        raise ValueError(f"invalid time in {text!r}")
    start = time(h1 % 24, m1)
    end = time.max if (h2, m2) == (24, 0) else time(h2, m2)
    if start == end:
        raise ValueError(f"empty hours {text!r}")
    return start, end


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """Days of the week and a time-of-day range (may cross midnight)."""

    days: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        t = local.time()
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # Crosses midnight: the part after midnight belongs to the previous day's window.
        if t >= self.start:
            return local.weekday() in self.days
        return t < self.end and (local.weekday() - 1) % 7 in self.days


@dataclass(frozen=True, slots=True)
class Holiday:
    first: date
    last: date
    name: str = ""

    def contains(self, day: date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True, slots=True)
class Calendar:
    """Public holidays and term breaks: days on which school schedules do not apply."""

    holidays: tuple[Holiday, ...] = ()

    def holiday(self, day: date) -> Holiday | None:
        for h in self.holidays:
            if h.contains(day):
                return h
        return None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Active hours.  No windows = always active."""

    name: str
    windows: tuple[WeeklyWindow, ...] = ()
    skip_holidays: bool = False

    @property
    def always(self) -> bool:
        return not self.windows

    def active(self, local: datetime, calendar: Calendar) -> bool:
        if self.always:
            return True
        if self.skip_holidays and calendar.holiday(_window_day(local, self.windows)) is not None:
            return False
        return any(w.contains(local) for w in self.windows)


def _window_day(local: datetime, windows: Sequence[WeeklyWindow]) -> date:
    """The calendar day a moment belongs to: after-midnight parts belong to the day before."""
    t = local.time()
    for w in windows:
        if w.start > w.end and t < w.end:
            return (local - timedelta(days=1)).date()
    return local.date()


ALWAYS = Schedule("always")


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Planned work: one-off (``start``/``end``) or weekly (``weekly`` + ``duration``).

    Scope: devices, schools (SMIS) and kinds; an empty scope list matches everything of
    that dimension, and a window with every list empty covers the whole office.
    """

    name: str
    start: datetime | None = None  # one-off, aware
    end: datetime | None = None
    weekly: WeeklyWindow | None = None
    devices: frozenset[str] = field(default_factory=frozenset)
    schools: frozenset[str] = field(default_factory=frozenset)
    kinds: frozenset[str] = field(default_factory=frozenset)
    reason: str = ""

    def covers(self, device: str, school: str | None, kind: str) -> bool:
        return (
            (not self.devices or device in self.devices)
            and (not self.schools or (school is not None and school in self.schools))
            and (not self.kinds or kind in self.kinds)
        )

    def active(self, when: datetime, tz: ZoneInfo) -> bool:
        if self.weekly is not None:
            return self.weekly.contains(when.astimezone(tz))
        assert self.start is not None and self.end is not None
        return self.start <= when < self.end


def in_maintenance(
    windows: Iterable[MaintenanceWindow], when: datetime, tz: ZoneInfo, *,
    device: str, school: str | None, kind: str,
) -> MaintenanceWindow | None:
    """The first window covering this device at ``when``, if any."""
    for w in windows:
        if w.covers(device, school, kind) and w.active(when, tz):
            return w
    return None


def active_seconds(
    schedule: Schedule, calendar: Calendar, start: datetime, end: datetime, *,
    tz: ZoneInfo, step: timedelta = timedelta(minutes=1),
) -> float:
    """Seconds of ``[start, end)`` inside the schedule (availability in school hours).

    Evaluated at ``step`` resolution (one minute by default), which is what a monthly
    availability figure needs; the loop is bounded by the interval length.
    """
    if end <= start:
        return 0.0
    if schedule.always:
        return (end - start).total_seconds()
    total = 0.0
    cur = start
    while cur < end:
        nxt = min(cur + step, end)
        if schedule.active(cur.astimezone(tz), calendar):
            total += (nxt - cur).total_seconds()
        cur = nxt
    return total
