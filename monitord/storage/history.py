"""Reading history for availability (a read-only, blocking SQLite connection: reports and
the status page's figures run in a worker thread) and the status page's figures cache.

The computation itself is pure: :mod:`monitord.domain.availability`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time as _time
from collections.abc import Iterator
from pathlib import Path

from monitord.domain.availability import (
    FleetConfig,
    History,
    HistoryLoader,
    Interval,
    Snapshot,
    merge,
    snapshot,
    snapshot_span,
)
from monitord.domain.state import State
from monitord.storage.db import readonly_uri
from monitord.storage.maintenance import readable_window

log = logging.getLogger(__name__)

#: the type of a read-only connection :func:`open_readonly` gives
ReadConnection = sqlite3.Connection


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (safe while the daemon writes: WAL)."""
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(readonly_uri(path), uri=True, timeout=10.0)
    conn.row_factory = sqlite3.Row
    return conn


def _state(text: str) -> State | None:
    try:
        return State(text)
    except ValueError:
        return None


def load_history(conn: sqlite3.Connection, start: float, end: float) -> History:
    """Read transitions, the state at ``start``, monitoring gaps and CLI maintenance
    windows for ``[start, end)`` (a few indexed queries)."""
    initial: dict[str, State] = {}
    # SQLite returns the row holding MAX(ts) for the bare column (documented behaviour).
    for r in conn.execute("SELECT device_id, new_state, MAX(ts) FROM state_transition "
                          "WHERE ts <= ? GROUP BY device_id", (start,)):
        if (st := _state(r[1])) is not None:
            initial[r[0]] = st
    changes: dict[str, list[tuple[float, State]]] = {}
    first_old: dict[str, State] = {}
    for r in conn.execute("SELECT device_id, old_state, new_state, ts FROM state_transition "
                          "WHERE ts > ? AND ts < ? ORDER BY ts, id", (start, end)):
        dev = r[0]
        old, new = _state(r[1]), _state(r[2])
        if new is None:
            continue
        if dev not in changes and old is not None:
            first_old[dev] = old
        changes.setdefault(dev, []).append((float(r[3]), new))
    # History pruned (retention) or a device without a transition before the span:
    # the current row says what held since when; else the first change's old state.
    for r in conn.execute("SELECT device_id, state, since FROM device_state"):
        dev = r[0]
        if dev in initial:
            continue
        st = _state(r[1])
        if st is not None and dev not in changes and float(r[2]) <= start:
            initial[dev] = st
    for dev, old in first_old.items():
        initial.setdefault(dev, old)
    gaps: list[Interval] = []
    stopped: float | None = None
    for r in conn.execute("SELECT ts, kind FROM event WHERE kind IN "
                          "('daemon_started', 'daemon_stopped') AND ts < ? ORDER BY ts, id",
                          (end,)):
        ts, kind = float(r[0]), r[1]
        if kind == "daemon_stopped":
            stopped = ts
        elif stopped is not None:
            gaps.append((max(stopped, start), min(ts, end)))
            stopped = None
    if stopped is not None:  # stopped and not (yet) started again
        gaps.append((max(stopped, start), end))
    windows = [w for r in conn.execute("SELECT * FROM maintenance_window")
               if (w := readable_window(r)) is not None]
    return History(start, end, initial, changes, merge(gaps), windows)


@contextlib.contextmanager
def history_reader(path: Path) -> Iterator[HistoryLoader]:
    """A loader of :class:`History` spans from the database at ``path`` (one read-only
    connection, closed on leaving); FileNotFoundError when there is no database."""
    conn = open_readonly(path)
    try:
        yield lambda start, end: load_history(conn, start, end)
    finally:
        conn.close()


def compute_snapshot(config: FleetConfig, db_path: Path, now: float, days: int = 30
                     ) -> Snapshot:
    """The last ``days`` office-local days (today so far included) for every school and
    device.  Blocking: run it in a thread."""
    start = snapshot_span(config.tz, now, days)[1]
    with history_reader(db_path) as load:
        history = load(start, now)
    return snapshot(config, history, now, days)


class AvailabilityCache:
    """Keeps the status page fast: figures are recomputed in a thread at most every
    ``max_age`` seconds (or at once after a config reload), never per request."""

    def __init__(self, days: int = 30, max_age: float = 300.0) -> None:
        self.days = days
        self.max_age = max_age
        self.snapshot: Snapshot | None = None
        self._config: FleetConfig | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_try = 0.0

    def current(self, config: FleetConfig | None, db_path: Path | None,
                now: float | None = None) -> Snapshot | None:
        """The latest figures (None until the first computation finished); starts a
        refresh in the background when they are stale.  Call from the event loop."""
        now = _time.time() if now is None else now
        snap = self.snapshot
        stale = (snap is None or now - snap.computed_at >= self.max_age
                 or config is not self._config)
        if (stale and config is not None and db_path is not None
                and (self._task is None or self._task.done())
                and now - self._last_try >= min(self.max_age, 30.0)):
            self._last_try = now
            with contextlib.suppress(RuntimeError):  # no running loop: stay stale
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self.refresh(config, db_path, now),
                                              name="availability")
        # After a config reload the old figures stay on the page until the new ones are in.
        return snap

    async def refresh(self, config: FleetConfig, db_path: Path, now: float) -> None:
        try:
            self.snapshot = await asyncio.to_thread(compute_snapshot, config, db_path, now,
                                                    self.days)
            self._config = config
        except Exception as exc:  # the page works without the bar
            log.warning("availability figures not computed: %s", exc)
