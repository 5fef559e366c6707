"""Availability (อัตราการใช้งานได้) from stored state transitions, in active hours only.

The database keeps only *changes* (table ``state_transition``; ``device_state`` holds the
current state), so a device's history is a sequence of segments, each in one state.
Availability of a span is::

    up / (up + down)

counted **only inside the device's active hours** (its ``schedule``, cascading defaults →
kind → school → device, with ``skip_holidays`` honoured through the holiday calendar).
A DLTV receiver that is off on Saturday, at 18:00 or during the October term break is
not unavailable; the same receiver dark at 10:00 on a school day is.

What counts as what:

* **up**: UP and DEGRADED (it works, if below par);
* **down**: DOWN and UNREACHABLE (behind a down parent: for the people using it, the
  device is not there);
* **excluded** from both the numerator and the denominator: UNKNOWN (monitord could
  not tell — not started yet, probe or broker unavailable, the daemon stopped cleanly
  and not yet restarted) and MAINTENANCE (planned work: the windows of the config and
  those added with ``monitord maintenance add``).  A span with nothing counted has no
  availability (``None``), which is not the same as 0 %.

A **school** is online while its link devices (devices with the school set and no
parent, normally its router) are UP/DEGRADED; its state at any moment is the worst of
their states (:func:`monitord.domain.school.school_state`, as on the status page), and
its active hours are those of its link devices.

Days are calendar days in the office's time zone (Asia/Bangkok: UTC+7 all year, no
daylight saving; the code uses real zone arithmetic all the same).  Everything here is
a pure function of its inputs: the history is read by
:func:`monitord.storage.history.load_history`, the status page's few-minutes cache is
:class:`monitord.storage.history.AvailabilityCache`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from monitord.domain.activehours import (
    ALWAYS,
    Calendar,
    MaintenanceWindow,
    Schedule,
    WeeklyWindow,
)
from monitord.domain.school import OFFLINE_STATES, ONLINE_STATES, is_link_device, school_state
from monitord.domain.state import State

Interval = tuple[float, float]
"""``[start, end)`` in Unix seconds."""

UP_STATES = ONLINE_STATES  # UP, DEGRADED
DOWN_STATES = OFFLINE_STATES  # DOWN, UNREACHABLE


def counts_as(state: State) -> bool | None:
    """True: available; False: unavailable; None: not counted (UNKNOWN, MAINTENANCE)."""
    if state in UP_STATES:
        return True
    if state in DOWN_STATES:
        return False
    return None


# ------------------------------------------------------------------------------ tallies


@dataclass(slots=True)
class Tally:
    """Seconds of active hours in a span, by how they count."""

    up: float = 0.0
    down: float = 0.0
    excluded: float = 0.0

    @property
    def active(self) -> float:
        """Seconds of active hours in the span (whatever the state)."""
        return self.up + self.down + self.excluded

    @property
    def counted(self) -> float:
        return self.up + self.down

    @property
    def ratio(self) -> float | None:
        """Availability 0–1, or None when nothing was counted (no hours, all unknown)."""
        return self.up / self.counted if self.counted > 0 else None

    def add(self, other: Tally) -> None:
        self.up += other.up
        self.down += other.down
        self.excluded += other.excluded


def total(tallies: Iterable[Tally]) -> Tally:
    out = Tally()
    for t in tallies:
        out.add(t)
    return out


# ---------------------------------------------------------------------------- intervals


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted union of intervals; empty ones dropped, touching ones joined."""
    out: list[Interval] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted lists of disjoint intervals."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _at(day: date, t: time, tz: ZoneInfo) -> float:
    """The moment ``t`` on ``day`` in ``tz``; ``time.max`` means the next midnight."""
    if t == time.max:
        return datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()
    return datetime.combine(day, t, tz).timestamp()


def local_date(ts: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> Interval:
    """Local midnight to the next local midnight."""
    return (datetime.combine(day, time(0), tz).timestamp(),
            datetime.combine(day + timedelta(days=1), time(0), tz).timestamp())


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive (bounded by the span)."""
    return [first + timedelta(days=n) for n in range(max((last - first).days + 1, 0))]


def schedule_intervals(schedule: Schedule, calendar: Calendar, tz: ZoneInfo,
                       start: float, end: float) -> list[Interval]:
    """The active hours of ``schedule`` inside ``[start, end)``, computed exactly.

    Same rules as :meth:`Schedule.active`: a window that crosses midnight belongs to the
    day it starts on (its weekday and its holiday), ``24:00`` is the next midnight.
    """
    if end <= start:
        return []
    if schedule.always:
        return [(start, end)]
    out: list[Interval] = []
    # The day before: a window crossing midnight may reach into the span.
    for day in days_between(local_date(start, tz) - timedelta(days=1), local_date(end, tz)):
        if schedule.skip_holidays and calendar.holiday(day) is not None:
            continue
        out.extend(_window_on(w, day, tz) for w in schedule.windows if day.weekday() in w.days)
    return intersect(merge(out), [(start, end)])


def _window_on(w: WeeklyWindow, day: date, tz: ZoneInfo) -> Interval:
    s = _at(day, w.start, tz)
    if w.start < w.end:
        return s, _at(day, w.end, tz)
    return s, _at(day + timedelta(days=1), w.end, tz)  # crosses midnight


def maintenance_intervals(windows: Iterable[MaintenanceWindow], tz: ZoneInfo,
                          start: float, end: float, *, device: str, school: str | None,
                          kind: str) -> list[Interval]:
    """When maintenance covered this device inside ``[start, end)``."""
    out: list[Interval] = []
    for w in windows:
        if not w.covers(device, school, kind):
            continue
        if w.weekly is not None:
            out.extend(schedule_intervals(Schedule(w.name, (w.weekly,)), Calendar(), tz,
                                          start, end))
        elif w.start is not None and w.end is not None:
            out.append((max(w.start.timestamp(), start), min(w.end.timestamp(), end)))
    return merge(out)


# ----------------------------------------------------------------------------- segments


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    state: State


def state_segments(initial: State, changes: Sequence[tuple[float, State]],
                   start: float, end: float) -> list[Segment]:
    """A device's states over ``[start, end)``: ``initial`` at ``start``, then each
    ``(ts, new_state)`` change in time order (changes outside the span are ignored)."""
    out: list[Segment] = []
    cur, state = start, initial
    for ts, new in sorted(changes, key=lambda c: c[0]):
        if ts <= start:
            state = new
            continue
        if ts >= end:
            break
        if ts > cur:
            out.append(Segment(cur, ts, state))
        cur, state = ts, new
    if end > cur:
        out.append(Segment(cur, end, state))
    return _join(out)


def _join(segments: Iterable[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in segments:
        if seg.end <= seg.start:
            continue
        if out and out[-1].state is seg.state and out[-1].end == seg.start:
            out[-1] = Segment(out[-1].start, seg.end, seg.state)
        else:
            out.append(seg)
    return out


def overlay(segments: Sequence[Segment], intervals: Sequence[Interval],
            state: State) -> list[Segment]:
    """``segments`` with ``state`` in force wherever ``intervals`` (sorted, disjoint) say."""
    if not intervals:
        return list(segments)
    out: list[Segment] = []
    for seg in segments:
        cur = seg.start
        for s, e in intervals:
            if e <= cur:
                continue
            if s >= seg.end:
                break
            if s > cur:
                out.append(Segment(cur, s, seg.state))
            out.append(Segment(max(s, cur), min(e, seg.end), state))
            cur = min(e, seg.end)
        if cur < seg.end:
            out.append(Segment(cur, seg.end, seg.state))
    return _join(out)


def combine_links(timelines: Sequence[Sequence[Segment]], start: float,
                  end: float) -> list[Segment]:
    """A school's states from its link devices' timelines: the worst state counts."""
    if not timelines:
        return [Segment(start, end, State.UNKNOWN)] if end > start else []
    if len(timelines) == 1:
        return _join(Segment(max(s.start, start), min(s.end, end), s.state)
                     for s in timelines[0])
    points = sorted({start, end, *(p for tl in timelines for s in tl
                                   for p in (s.start, s.end) if start < p < end)})
    idx = [0] * len(timelines)
    out: list[Segment] = []
    for a, b in itertools.pairwise(points):
        states: list[State] = []
        for n, tl in enumerate(timelines):
            while idx[n] < len(tl) and tl[idx[n]].end <= a:
                idx[n] += 1
            inside = idx[n] < len(tl) and tl[idx[n]].start <= a
            states.append(tl[idx[n]].state if inside else State.UNKNOWN)
        out.append(Segment(a, b, school_state(states)))
    return _join(out)


def tally(segments: Sequence[Segment], active: Sequence[Interval],
          buckets: Sequence[Interval]) -> list[Tally]:
    """Seconds up/down/excluded of ``segments`` inside ``active`` hours, per bucket.

    ``segments``, ``active`` and ``buckets`` are each sorted and disjoint; time outside
    every segment (before the history starts) counts as excluded.
    """
    out = [Tally() for _ in buckets]
    pieces: list[tuple[float, float, bool | None]] = []
    first = 0  # segments before it end before the current active interval
    for s, e in active:
        cur = s
        while first < len(segments) and segments[first].end <= s:
            first += 1
        for n in range(first, len(segments)):
            seg = segments[n]
            if seg.end <= cur:
                continue
            if seg.start >= e:
                break
            if seg.start > cur:
                pieces.append((cur, seg.start, None))
            a, b = max(seg.start, cur), min(seg.end, e)
            pieces.append((a, b, counts_as(seg.state)))
            cur = b
        if cur < e:
            pieces.append((cur, e, None))
    j = 0
    for a, b, how in pieces:
        while j < len(buckets) and buckets[j][1] <= a:
            j += 1
        k = j
        while k < len(buckets) and buckets[k][0] < b:
            lo, hi = max(a, buckets[k][0]), min(b, buckets[k][1])
            if hi > lo:
                t = out[k]
                if how is True:
                    t.up += hi - lo
                elif how is False:
                    t.down += hi - lo
                else:
                    t.excluded += hi - lo
            if buckets[k][1] >= b:
                break
            k += 1
    return out


# ----------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class History:
    """What availability needs from the database for ``[start, end)``."""

    start: float
    end: float
    initial: Mapping[str, State] = field(default_factory=dict)
    """Each device's state at ``start`` (devices absent here start UNKNOWN)."""
    changes: Mapping[str, Sequence[tuple[float, State]]] = field(default_factory=dict)
    """``(ts, new_state)`` per device, in time order, ``start < ts < end``."""
    gaps: Sequence[Interval] = ()
    """Monitoring gaps (the daemon stopped): UNKNOWN for every device."""
    maintenance: Sequence[MaintenanceWindow] = ()
    """Windows added with ``monitord maintenance add`` (past ones included)."""


#: reads the :class:`History` of ``[start, end)`` (``monitord.storage.history``)
HistoryLoader = Callable[[float, float], History]


# ------------------------------------------------------------------------------- model


class _Device(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def school(self) -> str | None: ...
    @property
    def parent(self) -> str | None: ...


class _Effective(Protocol):
    @property
    def schedule(self) -> str: ...


class FleetConfig(Protocol):
    """What availability needs of the config (:class:`monitord.config.Config` is one)."""

    @property
    def tz(self) -> ZoneInfo: ...
    @property
    def schools(self) -> Mapping[str, Any]: ...
    @property
    def devices(self) -> Sequence[_Device]: ...
    def effective(self, device: Any, /) -> _Effective: ...
    def calendar(self) -> Calendar: ...
    def schedule_map(self) -> Mapping[str, Schedule]: ...
    def maintenance_windows(self) -> Sequence[MaintenanceWindow]: ...


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: str
    school: str | None
    schedule: Schedule


class Model:
    """Availability of the devices and schools of one config over one :class:`History`."""

    def __init__(self, config: FleetConfig, history: History) -> None:
        self.tz = config.tz
        self.calendar = config.calendar()
        self.history = history
        schedules = config.schedule_map()
        self.devices: dict[str, DeviceInfo] = {}
        self.links: dict[str, list[str]] = {smis: [] for smis in config.schools}
        for d in config.devices:
            sched = schedules.get(config.effective(d).schedule, ALWAYS)
            self.devices[d.id] = DeviceInfo(d.id, str(d.kind), d.school, sched)
            if d.school is not None and is_link_device(d.school, d.parent):
                self.links.setdefault(d.school, []).append(d.id)
        self.windows = [*config.maintenance_windows(), *history.maintenance]
        self._active: dict[str, list[Interval]] = {}

    def active(self, schedule: Schedule) -> list[Interval]:
        """Active hours of a schedule over the history's span (cached per schedule)."""
        got = self._active.get(schedule.name)
        if got is None:
            got = schedule_intervals(schedule, self.calendar, self.tz, self.history.start,
                                     self.history.end)
            self._active[schedule.name] = got
        return got

    def device_timeline(self, device_id: str) -> list[Segment]:
        h = self.history
        info = self.devices[device_id]
        segs = state_segments(h.initial.get(device_id, State.UNKNOWN),
                              h.changes.get(device_id, ()), h.start, h.end)
        maint = maintenance_intervals(self.windows, self.tz, h.start, h.end,
                                      device=device_id, school=info.school, kind=info.kind)
        return overlay(overlay(segs, maint, State.MAINTENANCE), h.gaps, State.UNKNOWN)

    def device_tallies(self, device_id: str, buckets: Sequence[Interval]) -> list[Tally]:
        info = self.devices[device_id]
        return tally(self.device_timeline(device_id), self.active(info.schedule), buckets)

    def school_timeline(self, smis: str) -> list[Segment]:
        h = self.history
        return combine_links([self.device_timeline(d) for d in self.links.get(smis, ())],
                             h.start, h.end)

    def school_active(self, smis: str) -> list[Interval]:
        """A school's active hours: those of its link devices (any of them)."""
        links = self.links.get(smis, [])
        if len(links) == 1:
            return self.active(self.devices[links[0]].schedule)
        return merge(i for d in links for i in self.active(self.devices[d].schedule))

    def school_tallies(self, smis: str, buckets: Sequence[Interval]) -> list[Tally]:
        if not self.links.get(smis):
            return [Tally() for _ in buckets]
        return tally(self.school_timeline(smis), self.school_active(smis), buckets)

    def school_state_at(self, smis: str, ts: float) -> State:
        """The school's state at ``ts`` (inside the history's span)."""
        timeline = self.school_timeline(smis)
        for seg in timeline:
            if seg.start <= ts < seg.end:
                return seg.state
        return timeline[-1].state if timeline and ts >= timeline[-1].end else State.UNKNOWN

    def down_since(self, smis: str, ts: float) -> float | None:
        """Start of the school's offline stretch that holds at ``ts`` (None if online);
        the history's start when it was offline all along."""
        since: float | None = None
        for seg in self.school_timeline(smis):
            if seg.start > ts:
                break
            if seg.state not in DOWN_STATES:
                since = None
            elif since is None:
                since = seg.start
        return since


# ------------------------------------------------------------------------ daily figures


@dataclass(frozen=True, slots=True)
class DayCell:
    """One day of a school's (or device's) availability bar."""

    day: date
    active: float  # seconds of school hours that day (so far, for today); 0: none
    up: float
    down: float

    @property
    def ratio(self) -> float | None:
        counted = self.up + self.down
        return self.up / counted if counted > 0 else None

    @property
    def has_hours(self) -> bool:
        return self.active > 0


@dataclass(frozen=True, slots=True)
class Bar:
    cells: tuple[DayCell, ...]

    @property
    def up(self) -> float:
        return sum(c.up for c in self.cells)

    @property
    def down(self) -> float:
        return sum(c.down for c in self.cells)

    @property
    def ratio(self) -> float | None:
        counted = self.up + self.down
        return self.up / counted if counted > 0 else None


def day_buckets(days: Sequence[date], tz: ZoneInfo, end: float | None = None
                ) -> list[Interval]:
    """Each day's ``[midnight, next midnight)``, the last one cut at ``end``."""
    out = [day_bounds(d, tz) for d in days]
    if end is not None:
        out = [(s, min(e, end)) for s, e in out if s < end]
    return out


def bar_of(days: Sequence[date], tallies: Sequence[Tally]) -> Bar:
    cells = [DayCell(d, t.active, t.up, t.down) for d, t in zip(days, tallies, strict=False)]
    cells += [DayCell(d, 0.0, 0.0, 0.0) for d in days[len(cells):]]
    return Bar(tuple(cells))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The status page's availability figures, computed every few minutes."""

    computed_at: float
    days: tuple[date, ...]
    schools: Mapping[str, Bar]
    devices: Mapping[str, float | None]  # the period's ratio per device


def snapshot_span(tz: ZoneInfo, now: float, days: int = 30) -> tuple[list[date], float]:
    """The last ``days`` office-local days (today so far included) and their start."""
    today = local_date(now, tz)
    span = days_between(today - timedelta(days=days - 1), today)
    return span, day_bounds(span[0], tz)[0]


def snapshot(config: FleetConfig, history: History, now: float, days: int = 30) -> Snapshot:
    """Every school's and device's figures over the last ``days`` days from ``history``
    (loaded for ``[snapshot_span(...)[1], now)``)."""
    tz = config.tz
    span, start = snapshot_span(tz, now, days)
    model = Model(config, history)
    buckets = day_buckets(span, tz, now)
    schools = {smis: bar_of(span, model.school_tallies(smis, buckets))
               for smis in config.schools}
    whole = [(start, now)]
    devices = {d.id: model.device_tallies(d.id, whole)[0].ratio for d in config.devices}
    return Snapshot(now, tuple(span), schools, devices)
