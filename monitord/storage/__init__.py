"""SQLite storage through aiosqlite: WAL mode, versioned migrations, transitions only.

Only *changes* are stored (state transitions and daemon events), never every sample:
samples live in Prometheus.  History older than ``retention_days`` (default 90, the
Computer Crime Act's minimum for traffic records) is pruned by the daemon.

WAL mode lets ``monitord status --db …`` and other readers work while the daemon writes.
Schema changes are numbered migrations applied in order inside ``BEGIN IMMEDIATE``; the
applied version is SQLite's ``PRAGMA user_version``.

Files: the data directory is created 0750 and the database (with its ``-wal``/``-shm``,
which SQLite creates with the database's own mode) 0640, whatever the umask; read-only
connections use a percent-escaped ``file:`` URI, so ``#``, ``?``, ``%`` and spaces in a path
are part of the file name.  :func:`check_database` and :func:`backup_database` back
``monitord db check`` and ``monitord db backup``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from monitord.domain.events import NotificationEvent
from monitord.domain.incidents import Change, Incident, TicketInfo
from monitord.domain.state import State, StoredState, Transition
from monitord.domain.tickets import TicketContext
from monitord.storage import outbox, tickets
from monitord.storage.tx import rollback

log = logging.getLogger(__name__)

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
]

SCHEMA_VERSION = len(MIGRATIONS)

DIR_MODE = 0o750
FILE_MODE = 0o640


class StorageError(RuntimeError):
    pass


def readonly_uri(path: Path) -> str:
    """A ``file:`` URI that opens ``path`` read-only.  ``Path.as_uri`` percent-escapes the
    path: a ``#``, ``?`` or ``%`` in a directory name cannot cut the URI short and open
    another (empty, writable) file."""
    return path.absolute().as_uri() + "?mode=ro"


def _create_files(path: Path) -> None:
    """Create the data directory 0750 and the database 0640 (SQLite gives ``-wal`` and
    ``-shm`` the database's mode)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))


def _restrict_files(path: Path) -> None:
    """Take group-write and world bits off database files created before (or by hand)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = name.stat().st_mode & 0o7777
            if mode & 0o027:
                os.chmod(name, mode & ~0o027)
                log.info("database file %s was mode %o, now %o", name, mode, mode & ~0o027)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, go on
            log.warning("cannot restrict the mode of %s: %s", name, exc)


#: SQLite primary result codes → the ``reason`` label of failed writes
_SQLITE_REASONS = {13: "disk_full", 8: "read_only", 5: "locked", 6: "locked", 10: "io_error",
                   11: "corrupt", 26: "corrupt", 14: "cannot_open"}


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error | OSError)


def error_reason(exc: BaseException) -> str:
    """A short, stable reason for a failed database operation (a metric label)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return _SQLITE_REASONS.get(code & 0xFF, "other") if isinstance(code, int) else "other"
    if isinstance(exc, OSError):
        return {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full",
                errno.EROFS: "read_only"}.get(exc.errno or 0, "io_error")
    return "other"


def error_text(exc: BaseException) -> str:
    """The error without file names (it may be shown on /healthz)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:200] or type(exc).__name__


@dataclass(frozen=True, slots=True)
class TransitionRow:
    id: int
    device_id: str
    old: State
    new: State
    ts: float
    reason: str


def default_data_dir() -> Path:
    """``$MONITORD_DATA_DIR``, else ``$XDG_DATA_HOME/monitord``, else ~/.local/share."""
    if env := os.environ.get("MONITORD_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "monitord"


class Storage:
    """One connection; all writes go through short transactions."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path, *, readonly: bool = False) -> Storage:
        if readonly:
            if not path.exists():
                raise StorageError(f"no database at {path}")
            db = await aiosqlite.connect(readonly_uri(path), uri=True)
        else:
            _create_files(path)
            db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = sqlite3.Row
        store = cls(db, path)
        try:
            await db.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
                await db.execute("PRAGMA foreign_keys = ON")
                await store._migrate()
        except BaseException:
            await db.close()
            raise
        if not readonly:
            _restrict_files(path)
        return store

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def journal_mode(self) -> str:
        async with self._db.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else ""

    async def _migrate(self) -> None:
        version = await self.schema_version()
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database {self.path} has schema {version}, newer than this monitord "
                f"({SCHEMA_VERSION}); upgrade monitord"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if await self.schema_version() >= number:
                    await self._db.execute("ROLLBACK")
                    continue
                for statement in _split_sql(MIGRATIONS[number - 1]):
                    await self._db.execute(statement)
                await self._db.execute(f"PRAGMA user_version = {number}")
                await self._db.execute("COMMIT")
            except BaseException:
                await rollback(self._db)
                raise
            log.info("database %s migrated to schema %d", self.path, number)

    # -- writes --------------------------------------------------------------------

    async def record_transitions(self, transitions: Sequence[Transition]) -> None:
        await self.commit(transitions, (), {})

    async def commit(self, transitions: Sequence[Transition], changes: Sequence[Change],
                     contexts: Mapping[int, TicketContext],
                     notifications: Sequence[NotificationEvent] = ()) -> None:
        """Persist state transitions and the incident/ticket changes they caused, in one
        transaction: after a crash either all of it is on disk or none of it is."""
        if not transitions and not changes and not notifications:
            return
        now = time.time()
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            if transitions:
                await self._db.executemany(
                    "INSERT INTO state_transition (device_id, old_state, new_state, ts, reason)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(t.device_id, t.old.value, t.new.value, t.ts, t.reason)
                     for t in transitions],
                )
                await self._db.executemany(
                    "INSERT INTO device_state (device_id, state, since, reason, updated)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                    " state = excluded.state, since = excluded.since,"
                    " reason = excluded.reason, updated = excluded.updated",
                    [(t.device_id, t.new.value, t.ts, t.reason, now) for t in transitions],
                )
            await tickets.apply_changes(self._db, changes, contexts, now)
            await outbox.record(self._db, notifications)
            await self._db.execute("COMMIT")
        except BaseException:
            await rollback(self._db)
            raise

    # -- tickets and incidents -------------------------------------------------------

    async def list_tickets(self, status: str | None = None, include_closed: bool = False
                           ) -> list[dict[str, Any]]:
        return await tickets.list_tickets(self._db, status, include_closed)

    async def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        return await tickets.get_ticket(self._db, ticket_id)

    async def update_ticket(self, ticket_id: int, actor: str, **kwargs: Any) -> dict[str, Any]:
        return await tickets.officer_update(self._db, ticket_id, actor, **kwargs)

    async def ticket_infos(self) -> list[TicketInfo]:
        return await tickets.ticket_infos(self._db)

    async def next_ticket_id(self) -> int:
        return await tickets.next_ticket_id(self._db)

    async def open_incidents(self) -> list[Incident]:
        return await tickets.open_incidents(self._db)

    @property
    def connection(self) -> aiosqlite.Connection:
        """For workers that own a table set (the notification outbox)."""
        return self._db

    async def add_maintenance(self, name: str, start: float | None, end: float | None, *,
                              weekly: Mapping[str, Any] | None = None,
                              devices: Sequence[str] = (), schools: Sequence[str] = (),
                              kinds: Sequence[str] = (), reason: str = "",
                              created_by: str = "") -> int:
        """A one-off (start/end) or weekly (``{"days": [...], "hours": "02:00-04:00"}``)
        maintenance window added by an officer."""
        cur = await self._db.execute(
            "INSERT INTO maintenance_window (name, start, end, weekly, devices, schools, kinds,"
            " reason, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (name, start, end, json.dumps(dict(weekly)) if weekly else None,
             json.dumps(list(devices)), json.dumps(list(schools)), json.dumps(list(kinds)),
             reason, created_by, time.time()),
        )
        return int(cur.lastrowid or 0)

    async def delete_maintenance(self, window_id: int) -> bool:
        cur = await self._db.execute("DELETE FROM maintenance_window WHERE id = ?", (window_id,))
        return cur.rowcount > 0

    async def maintenance(self, include_past: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM maintenance_window"
        args: list[Any] = []
        if not include_past:
            sql += " WHERE weekly IS NOT NULL OR end > ?"
            args.append(time.time())
        sql += " ORDER BY start"
        async with self._db.execute(sql, args) as cur:
            rows = [dict(r) for r in await cur.fetchall()]
        for r in rows:
            for key in ("devices", "schools", "kinds"):
                r[key] = json.loads(r[key])
            r["weekly"] = json.loads(r["weekly"]) if r["weekly"] else None
        return rows

    async def incidents(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._db.execute(
            "SELECT * FROM incident ORDER BY opened_at DESC LIMIT ?", (limit,)
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def record_event(self, kind: str, detail: str = "", ts: float | None = None) -> None:
        await self._db.execute(
            "INSERT INTO event (ts, kind, detail) VALUES (?, ?, ?)",
            (time.time() if ts is None else ts, kind, detail),
        )

    async def forget_devices(self, device_ids: Sequence[str]) -> None:
        """Drop the current state of devices removed from the config (history stays)."""
        await self._db.executemany(
            "DELETE FROM device_state WHERE device_id = ?", [(d,) for d in device_ids]
        )

    async def prune(self, retention_days: int, now: float | None = None) -> int:
        """Delete history older than the retention period; return rows deleted."""
        cutoff = (time.time() if now is None else now) - retention_days * 86400.0
        deleted = 0
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("state_transition", "event"):  # tickets are records: kept
                cur = await self._db.execute(f"DELETE FROM {table} WHERE ts < ?", (cutoff,))
                deleted += max(cur.rowcount, 0)
            await self._db.execute("COMMIT")
        except BaseException:
            await rollback(self._db)
            raise
        return deleted

    # -- reads ---------------------------------------------------------------------

    async def load_states(self) -> dict[str, StoredState]:
        async with self._db.execute(
            "SELECT device_id, state, since, reason FROM device_state"
        ) as cur:
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

    async def transitions(
        self, device_id: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[TransitionRow]:
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
        async with self._db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [
            TransitionRow(
                r["id"], r["device_id"], State(r["old_state"]), State(r["new_state"]),
                r["ts"], r["reason"],
            )
            for r in rows
        ]

    async def events(self, limit: int = 100) -> list[tuple[float, str, str]]:
        async with self._db.execute(
            "SELECT ts, kind, detail FROM event ORDER BY id DESC LIMIT ?", (limit,)
        ) as cur:
            rows = await cur.fetchall()
        return [(r["ts"], r["kind"], r["detail"]) for r in rows]


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# -- maintenance: `monitord db check` / `monitord db backup` ------------------------------


def _columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {t: [c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}


def _connect_for_check(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(readonly_uri(path), uri=True, timeout=10.0)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        return conn
    except sqlite3.Error as exc:
        conn.close()
        wal = Path(f"{path}-wal")
        if error_reason(exc) != "cannot_open" or (wal.exists() and wal.stat().st_size):
            raise
    # A read-only file system (a backup medium): no -shm can be created there, and with
    # no WAL content the file alone is the whole database.
    return sqlite3.connect(readonly_uri(path) + "&immutable=1", uri=True, timeout=10.0)


def check_database(path: Path) -> tuple[list[str], int]:
    """Problems found in the database at ``path`` (empty: sound) and its schema version.

    ``PRAGMA integrity_check`` and ``foreign_key_check``, then the schema: the tables and
    columns that the migrations up to the file's ``user_version`` create must be there."""
    if not path.is_file():
        return [f"no database at {path}"], 0
    try:
        conn = _connect_for_check(path)
    except sqlite3.Error as exc:
        return [str(exc)], 0
    problems: list[str] = []
    version = 0
    try:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(20)")]
        if result != ["ok"]:
            problems += result
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            problems.append(f"{len(violations)} rows refer to missing rows "
                            f"(first in table {violations[0][0]})")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            problems.append(f"schema {version} is newer than this monitord ({SCHEMA_VERSION})")
        elif version == 0:
            problems.append("not a monitord database (schema version 0, no monitord tables)")
        else:
            ref = sqlite3.connect(":memory:")
            try:
                for script in MIGRATIONS[:version]:
                    ref.executescript(script)
                expected = _columns(ref)
            finally:
                ref.close()
            found = _columns(conn)
            for table, cols in expected.items():
                if table not in found:
                    problems.append(f"table {table} is missing")
                elif missing := [c for c in cols if c not in found[table]]:
                    problems.append(f"table {table} lacks columns {', '.join(missing)}")
    except sqlite3.Error as exc:
        problems.append(str(exc))
    finally:
        conn.close()
    return problems, version


def backup_database(source: Path, target: Path) -> None:
    """An online, consistent copy of ``source`` into ``target`` (mode 0640) with SQLite's
    backup API: one read transaction, so the daemon keeps writing meanwhile (WAL).

    The copy is a single self-contained file (rollback-journal mode; the daemon switches
    it back to WAL when it opens it), checked before it replaces ``target``."""
    if not source.is_file():
        raise StorageError(f"no database at {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise StorageError("the backup file must not be the database itself")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE))
        src = sqlite3.connect(readonly_uri(source), uri=True, timeout=10.0)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode = DELETE")
                result = dst.execute("PRAGMA integrity_check").fetchone()
                if result is None or result[0] != "ok":
                    raise StorageError(f"the copy failed its integrity check: {result}")
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
