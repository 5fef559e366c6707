"""The notification outbox: ``notification_event`` rows (recorded in the same transaction as
the change that caused them) and ``notification_delivery`` rows (one per event and channel).

All of the outbox's SQL lives here; :mod:`monitord.notify` decides what to route where and
when, renders and sends, and calls these functions to read and write the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

from monitord.domain.events import NotificationEvent
from monitord.storage.tx import transaction

#: the connection type the outbox functions take (callers need not import aiosqlite)
Connection = aiosqlite.Connection

#: a stored delivery joined with its event: id, attempts, message_key, key, kind, ts, data
DeliveryRow = Any


async def record(db: aiosqlite.Connection, events: Iterable[NotificationEvent]) -> None:
    """Record events (inside the caller's transaction); a key seen before is skipped."""
    await db.executemany(
        "INSERT INTO notification_event (key, kind, ts, data) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        [(e.key, e.kind, e.ts, json.dumps(dict(e.data), ensure_ascii=False)) for e in events],
    )


def event_of(row: Any) -> NotificationEvent:
    """A stored event (a row with key, kind, ts, data); ValueError when data is unreadable."""
    data = json.loads(row["data"])
    if not isinstance(data, dict):
        raise ValueError(f"event data is a {type(data).__name__}, not an object")
    return NotificationEvent(row["key"], row["kind"], row["ts"], data)


async def route_events(db: aiosqlite.Connection,
                       targets: Callable[[NotificationEvent], Iterable[tuple[str, float]]],
                       limit: int = 1000) -> int:
    """Fan events not routed yet out to deliveries, in one transaction.

    ``targets(event)`` gives the (channel, first attempt time) pairs the event goes to; an
    event whose data cannot be read is routed without its data (it fails alone later).
    Returns the number of deliveries asked for."""
    made = 0
    async with transaction(db):
        async with db.execute(
            "SELECT id, key, kind, ts, data FROM notification_event WHERE routed = 0"
            " ORDER BY id LIMIT ?", (limit,)
        ) as cur:
            rows = await cur.fetchall()
        for r in rows:
            try:
                ev = event_of(r)
            except ValueError:  # unreadable (old or damaged row): routed without its
                ev = NotificationEvent(r["key"], r["kind"], r["ts"])  # data, fails alone
            for channel, first_attempt in targets(ev):
                await db.execute(
                    "INSERT INTO notification_delivery (event_id, channel, status,"
                    " attempts, next_attempt) VALUES (?, ?, 'pending', 0, ?)"
                    " ON CONFLICT (event_id, channel) DO NOTHING",
                    (r["id"], channel, first_attempt),
                )
                made += 1
            await db.execute("UPDATE notification_event SET routed = 1 WHERE id = ?",
                             (r["id"],))
    return made


async def due_deliveries(db: aiosqlite.Connection, channel: str, now: float
                         ) -> list[DeliveryRow]:
    """The next message's deliveries: an unfinished message first (same rows, same
    key), else up to 200 due deliveries not yet in a message."""
    select = ("SELECT d.id, d.attempts, d.message_key, e.key, e.kind, e.ts, e.data"
              " FROM notification_delivery d JOIN notification_event e"
              " ON e.id = d.event_id WHERE d.channel = ? AND d.status = 'pending'")
    async with db.execute(
            "SELECT message_key FROM notification_delivery WHERE channel = ?"
            " AND status = 'pending' AND next_attempt <= ? AND message_key IS NOT NULL"
            " LIMIT 1", (channel, now)) as cur:
        unfinished = await cur.fetchone()
    if unfinished is not None:
        async with db.execute(
                select + " AND d.message_key = ? AND d.next_attempt <= ? ORDER BY e.ts",
                (channel, unfinished[0], now)) as cur:
            return list(await cur.fetchall())
    async with db.execute(
            select + " AND d.message_key IS NULL AND d.next_attempt <= ?"
            " ORDER BY e.ts LIMIT 200", (channel, now)) as cur:
        return list(await cur.fetchall())


async def update_deliveries(db: aiosqlite.Connection, ids: Sequence[int], status: str,
                            when: float, attempts: int, error: str | None,
                            key: str | None = None) -> None:
    """Set the deliveries' status in one transaction (``error``/``key`` None: keep the
    stored value); ``sent_at`` is ``when`` for status ``sent``."""
    async with transaction(db):
        await db.executemany(
            "UPDATE notification_delivery SET status = ?, attempts = ?,"
            " last_error = COALESCE(?, last_error), next_attempt = ?,"
            " message_key = COALESCE(?, message_key),"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
            [(status, attempts, error, when, key, status, when, i) for i in ids],
        )
