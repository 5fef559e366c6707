"""The schema: numbered migrations applied in order inside ``BEGIN IMMEDIATE``; the applied
version is SQLite's ``PRAGMA user_version``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiosqlite

from monitord.storage.errors import StorageError
from monitord.storage.tx import rollback

log = logging.getLogger("monitord.storage")

MIGRATIONS: list[str] = [
    # 1: device states, transitions, daemon events
    """
    CREATE TABLE device_state (
        device_id TEXT PRIMARY KEY,
        state     TEXT NOT NULL,
        since     REAL NOT NULL,
        reason    TEXT NOT NULL DEFAULT '',
        updated   REAL NOT NULL
    );
    CREATE TABLE state_transition (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id TEXT NOT NULL,
        old_state TEXT NOT NULL,
        new_state TEXT NOT NULL,
        ts        REAL NOT NULL,
        reason    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX state_transition_ts ON state_transition (ts);
    CREATE INDEX state_transition_device_ts ON state_transition (device_id, ts);
    CREATE TABLE event (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        ts     REAL NOT NULL,
        kind   TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX event_ts ON event (ts);
    """,
    # 2: incidents, repair tickets and their history, CLI maintenance windows
    """
    CREATE TABLE incident (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL,
        root            TEXT NOT NULL,
        school          TEXT,
        opened_at       REAL NOT NULL,
        closed_at       REAL,
        reason          TEXT NOT NULL DEFAULT '',
        hypothesis      TEXT NOT NULL DEFAULT '',
        affected        TEXT NOT NULL DEFAULT '[]',
        members         TEXT NOT NULL DEFAULT '[]',
        parent_incident TEXT,
        ticket_id       INTEGER
    );
    CREATE INDEX incident_open ON incident (closed_at);
    CREATE INDEX incident_opened ON incident (opened_at);
    CREATE TABLE ticket (
        id                INTEGER PRIMARY KEY,
        incident_id       TEXT NOT NULL,
        root              TEXT NOT NULL,
        school            TEXT,
        variant           TEXT NOT NULL DEFAULT 'school',
        served_unit       TEXT NOT NULL DEFAULT '',
        status            TEXT NOT NULL,
        opened_at         REAL NOT NULL,
        down_since        REAL NOT NULL,
        scheduled_for     REAL,
        repair_started    REAL,
        repair_finished   REAL,
        repaired_at       REAL,
        closed_at         REAL,
        recovery_seconds  REAL,
        reason            TEXT NOT NULL DEFAULT '',
        hypothesis        TEXT NOT NULL DEFAULT '',
        event_text        TEXT NOT NULL DEFAULT '',
        cause             TEXT NOT NULL DEFAULT '',
        fix               TEXT NOT NULL DEFAULT '',
        summary           TEXT NOT NULL DEFAULT '',
        reporter_name     TEXT NOT NULL DEFAULT '',
        reporter_position TEXT NOT NULL DEFAULT '',
        repairer_name     TEXT NOT NULL DEFAULT '',
        repairer_position TEXT NOT NULL DEFAULT '',
        equipment         TEXT NOT NULL DEFAULT '[]',
        office_name       TEXT NOT NULL DEFAULT '',
        group_name        TEXT NOT NULL DEFAULT '',
        relapses          INTEGER NOT NULL DEFAULT 0,
        updated_at        REAL NOT NULL
    );
    CREATE INDEX ticket_status ON ticket (status);
    CREATE INDEX ticket_root ON ticket (root);
    CREATE TABLE ticket_event (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket_id INTEGER NOT NULL REFERENCES ticket (id),
        ts        REAL NOT NULL,
        status    TEXT NOT NULL,
        actor     TEXT NOT NULL,
        note      TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ticket_event_ticket ON ticket_event (ticket_id, ts);
    CREATE TABLE maintenance_window (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL,
        start      REAL,
        end        REAL,
        weekly     TEXT,
        devices    TEXT NOT NULL DEFAULT '[]',
        schools    TEXT NOT NULL DEFAULT '[]',
        kinds      TEXT NOT NULL DEFAULT '[]',
        reason     TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE TABLE notification_event (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        key    TEXT NOT NULL UNIQUE,
        kind   TEXT NOT NULL,
        ts     REAL NOT NULL,
        data   TEXT NOT NULL DEFAULT '{}',
        routed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX notification_event_routed ON notification_event (routed);
    CREATE TABLE notification_delivery (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id     INTEGER NOT NULL REFERENCES notification_event (id),
        channel      TEXT NOT NULL,
        status       TEXT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        last_error   TEXT NOT NULL DEFAULT '',
        sent_at      REAL,
        UNIQUE (event_id, channel)
    );
    CREATE INDEX notification_delivery_due ON notification_delivery (channel, status,
                                                                   next_attempt);
    """,
    # 2: the message a delivery went out in, fixed before the first attempt, so a retry
    # after a failure or a kill -9 resends the same message with the same idempotency key
    """
    ALTER TABLE notification_delivery ADD COLUMN message_key TEXT;
    CREATE INDEX notification_delivery_message ON notification_delivery (message_key);
    """,
    # 4: manual tickets (รับแจ้ง: reported by a person, by phone/LINE/letter/walk-in),
    # acknowledgement (stops reminders and escalation) and assignment
    """
    ALTER TABLE ticket ADD COLUMN origin TEXT NOT NULL DEFAULT 'auto';
    ALTER TABLE ticket ADD COLUMN report_source TEXT;
    ALTER TABLE ticket ADD COLUMN reporter_phone TEXT NOT NULL DEFAULT '';
    ALTER TABLE ticket ADD COLUMN problem TEXT NOT NULL DEFAULT '';
    ALTER TABLE ticket ADD COLUMN assigned_to TEXT;
    ALTER TABLE ticket ADD COLUMN acknowledged_at REAL;
    ALTER TABLE ticket ADD COLUMN acknowledged_by TEXT;
    ALTER TABLE ticket ADD COLUMN created_by TEXT;
    CREATE INDEX ticket_school ON ticket (school);
    CREATE INDEX ticket_assigned ON ticket (assigned_to);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION`; :class:`StorageError` when the file
    is newer than this monitord."""
    version = await schema_version(db)
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database {path} has schema {version}, newer than this monitord "
            f"({SCHEMA_VERSION}); upgrade monitord"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        await db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if await schema_version(db) >= number:
                await db.execute("ROLLBACK")
                continue
            for statement in split_sql(MIGRATIONS[number - 1]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")
            await db.execute("COMMIT")
        except BaseException:
            await rollback(db)
            raise
        log.info("database %s migrated to schema %d", path, number)
