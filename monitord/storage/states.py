"""Device states, their transitions and the daemon's events (tables ``device_state``,
``state_transition``, ``event``).

Only *changes* are stored, never every sample: samples live in Prometheus.  History
older than ``retention_days`` is pruned by the daemon (:func:`prune`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from monitord.domain.state import State, StoredState, Transition
from monitord.storage.tx import transaction

log = logging.getLogger("monitord.storage")


@dataclass(frozen=True, slots=True)
class TransitionRow:
    id: int
    device_id: str
    old: State
    new: State
    ts: float
    reason: str


async def write_transitions(db: aiosqlite.Connection, transitions: Sequence[Transition],
                            now: float) -> None:
    """Append the transitions and update the current states (in the caller's
    transaction)."""
    if not transitions:
        return
    await db.executemany(
        "INSERT INTO state_transition (device_id, old_state, new_state, ts, reason)"
        " VALUES (?, ?, ?, ?, ?)",
        [(t.device_id, t.old.value, t.new.value, t.ts, t.reason) for t in transitions],
    )
    await db.executemany(
        "INSERT INTO device_state (device_id, state, since, reason, updated)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
        " state = excluded.state, since = excluded.since,"
        " reason = excluded.reason, updated = excluded.updated",
        [(t.device_id, t.new.value, t.ts, t.reason, now) for t in transitions],
    )


async def load_states(db: aiosqlite.Connection) -> dict[str, StoredState]:
    async with db.execute("SELECT device_id, state, since, reason FROM device_state") as cur:
        rows = await cur.fetchall()
    out: dict[str, StoredState] = {}
    for r in rows:
        try:
            out[r["device_id"]] = StoredState(
                r["device_id"], State(r["state"]), r["since"], r["reason"]
            )
        except ValueError:
            log.warning("ignoring unknown stored state %r of %s", r["state"], r["device_id"])
    return out


async def transitions(db: aiosqlite.Connection, device_id: str | None = None,
                      since: float | None = None, limit: int = 1000) -> list[TransitionRow]:
    sql = "SELECT id, device_id, old_state, new_state, ts, reason FROM state_transition"
    where: list[str] = []
    args: list[Any] = []
    if device_id is not None:
        where.append("device_id = ?")
        args.append(device_id)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    async with db.execute(sql, args) as cur:
        rows = await cur.fetchall()
    return [
        TransitionRow(
            r["id"], r["device_id"], State(r["old_state"]), State(r["new_state"]),
            r["ts"], r["reason"],
        )
        for r in rows
    ]


async def forget_devices(db: aiosqlite.Connection, device_ids: Sequence[str]) -> None:
    """Drop the current state of devices removed from the config (history stays)."""
    await db.executemany(
        "DELETE FROM device_state WHERE device_id = ?", [(d,) for d in device_ids]
    )


async def record_event(db: aiosqlite.Connection, kind: str, detail: str = "",
                       ts: float | None = None) -> None:
    await db.execute(
        "INSERT INTO event (ts, kind, detail) VALUES (?, ?, ?)",
        (time.time() if ts is None else ts, kind, detail),
    )


async def events(db: aiosqlite.Connection, limit: int = 100) -> list[tuple[float, str, str]]:
    async with db.execute(
        "SELECT ts, kind, detail FROM event ORDER BY id DESC LIMIT ?", (limit,)
    ) as cur:
        rows = await cur.fetchall()
    return [(r["ts"], r["kind"], r["detail"]) for r in rows]


async def incidents(db: aiosqlite.Connection, limit: int = 100) -> list[dict[str, Any]]:
    async with db.execute(
        "SELECT * FROM incident ORDER BY opened_at DESC LIMIT ?", (limit,)
    ) as cur:
        return [dict(r) for r in await cur.fetchall()]


async def prune(db: aiosqlite.Connection, retention_days: int, now: float | None = None) -> int:
    """Delete history older than the retention period; return rows deleted."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    deleted = 0
    async with transaction(db):
        for table in ("state_transition", "event"):  # tickets are records: kept
            cur = await db.execute(f"DELETE FROM {table} WHERE ts < ?", (cutoff,))
            deleted += max(cur.rowcount, 0)
    return deleted
