"""Maintenance windows added by officers (``monitord maintenance add``, the API): rows of
``maintenance_window`` ↔ :class:`~monitord.domain.activehours.MaintenanceWindow`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from monitord.domain.activehours import MaintenanceWindow, WeeklyWindow, parse_days, parse_hours

log = logging.getLogger("monitord.storage")


async def add(db: aiosqlite.Connection, name: str, start: float | None, end: float | None, *,
              weekly: Mapping[str, Any] | None = None, devices: Sequence[str] = (),
              schools: Sequence[str] = (), kinds: Sequence[str] = (), reason: str = "",
              created_by: str = "") -> int:
    """A one-off (start/end) or weekly (``{"days": [...], "hours": "02:00-04:00"}``)
    maintenance window added by an officer; returns its id."""
    cur = await db.execute(
        "INSERT INTO maintenance_window (name, start, end, weekly, devices, schools, kinds,"
        " reason, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (name, start, end, json.dumps(dict(weekly)) if weekly else None,
         json.dumps(list(devices)), json.dumps(list(schools)), json.dumps(list(kinds)),
         reason, created_by, time.time()),
    )
    return int(cur.lastrowid or 0)


async def delete(db: aiosqlite.Connection, window_id: int) -> bool:
    cur = await db.execute("DELETE FROM maintenance_window WHERE id = ?", (window_id,))
    return cur.rowcount > 0


def _decoded(row: Any) -> dict[str, Any]:
    r = dict(row)
    for key in ("devices", "schools", "kinds"):
        r[key] = json.loads(r[key])
    r["weekly"] = json.loads(r["weekly"]) if r["weekly"] else None
    return r


def _select(db: aiosqlite.Connection, include_past: bool) -> aiosqlite.context.Result[Any]:
    sql = "SELECT * FROM maintenance_window"
    args: list[Any] = []
    if not include_past:
        sql += " WHERE weekly IS NOT NULL OR end > ?"
        args.append(time.time())
    return db.execute(sql + " ORDER BY start", args)


async def rows(db: aiosqlite.Connection, include_past: bool = False) -> list[dict[str, Any]]:
    """The stored windows as dicts (JSON columns decoded), ordered by start; without
    ``include_past`` only weekly ones and those not over yet."""
    async with _select(db, include_past) as cur:
        return [_decoded(r) for r in await cur.fetchall()]


def db_window(row: Mapping[str, Any]) -> MaintenanceWindow:
    """A decoded row (from :func:`rows`) as a domain window; ValueError, KeyError or
    TypeError when it cannot be read."""
    weekly = None
    if row["weekly"]:
        weekly = WeeklyWindow(parse_days(row["weekly"]["days"]),
                              *parse_hours(row["weekly"]["hours"]))
    return MaintenanceWindow(
        row["name"],
        datetime.fromtimestamp(row["start"], UTC) if row["start"] is not None else None,
        datetime.fromtimestamp(row["end"], UTC) if row["end"] is not None else None,
        weekly, devices=frozenset(row["devices"]), schools=frozenset(row["schools"]),
        kinds=frozenset(row["kinds"]), reason=row["reason"])


def readable_window(row: Any) -> MaintenanceWindow | None:
    """A raw ``maintenance_window`` row (JSON columns as text) as a domain window; None
    (logged) when it is unreadable or has neither a weekly rule nor both ends."""
    try:
        w = db_window(_decoded(row))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable maintenance window %s: %s", row["id"], exc)
        return None
    if w.weekly is None and (w.start is None or w.end is None):
        return None
    return w


async def windows(db: aiosqlite.Connection, include_past: bool = False
                  ) -> list[MaintenanceWindow]:
    """The stored windows as domain objects (unreadable ones skipped, logged)."""
    async with _select(db, include_past) as cur:
        return [w for r in await cur.fetchall() if (w := readable_window(r)) is not None]
