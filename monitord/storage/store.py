""":class:`Storage`: one aiosqlite connection in WAL mode, all writes in short transactions.

WAL mode lets ``monitord status --db …`` and other readers work while the daemon writes.
The SQL itself lives in the modules of this package, one per table set: states, tickets,
outbox, maintenance, events; :class:`Storage` opens the file, migrates it and forwards.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from monitord.domain.activehours import MaintenanceWindow
from monitord.domain.events import NotificationEvent
from monitord.domain.incidents import Change, Incident, TicketInfo
from monitord.domain.state import StoredState, Transition
from monitord.domain.tickets import TicketContext
from monitord.storage import maintenance, outbox, states, tickets
from monitord.storage.db import _create_files, _restrict_files, readonly_uri
from monitord.storage.errors import StorageError
from monitord.storage.migrations import migrate, schema_version
from monitord.storage.states import TransitionRow
from monitord.storage.tx import transaction


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
                await migrate(db, path)
        except BaseException:
            await db.close()
            raise
        if not readonly:
            _restrict_files(path)
        return store

    async def close(self) -> None:
        await self._db.close()

    @property
    def connection(self) -> aiosqlite.Connection:
        """For workers that own a table set (the notification outbox)."""
        return self._db

    async def schema_version(self) -> int:
        return await schema_version(self._db)

    async def journal_mode(self) -> str:
        async with self._db.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else ""

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
        async with transaction(self._db):
            await states.write_transitions(self._db, transitions, now)
            await tickets.apply_changes(self._db, changes, contexts, now)
            await outbox.record(self._db, notifications)

    async def record_event(self, kind: str, detail: str = "", ts: float | None = None) -> None:
        await states.record_event(self._db, kind, detail, ts)

    async def forget_devices(self, device_ids: Sequence[str]) -> None:
        """Drop the current state of devices removed from the config (history stays)."""
        await states.forget_devices(self._db, device_ids)

    async def prune(self, retention_days: int, now: float | None = None) -> int:
        """Delete history older than the retention period; return rows deleted."""
        return await states.prune(self._db, retention_days, now)

    # -- tickets and incidents -------------------------------------------------------

    async def list_tickets(self, status: str | None = None, include_closed: bool = False,
                           *, schools: Sequence[str] | None = None,
                           assigned_to: str | None = None) -> list[dict[str, Any]]:
        """Tickets (not closed unless asked); ``schools``: only these schools' (an empty
        list: none); ``assigned_to``: only those assigned to this user."""
        return await tickets.list_tickets(self._db, status, include_closed, schools=schools,
                                          assigned_to=assigned_to)

    async def insert_manual_ticket(self, ctx: TicketContext, *, root: str, source: str,
                                   reporter_phone: str, problem: str, actor: str,
                                   ticket_id: int | None = None,
                                   district: str | None = None, kind: str | None = None,
                                   now: float | None = None) -> int:
        """A manual ticket (รับแจ้ง) with its history row and "ticket opened" message;
        ``ticket_id`` None: the next free number.  Returns the number."""
        return await tickets.insert_manual(
            self._db, ctx, root=root, source=source, reporter_phone=reporter_phone,
            problem=problem, actor=actor, ticket_id=ticket_id, district=district, kind=kind,
            now=now)

    async def acknowledge_ticket(self, ticket_id: int, actor: str, note: str = "",
                                 now: float | None = None) -> dict[str, Any]:
        return await tickets.acknowledge(self._db, ticket_id, actor, note, now)

    async def assign_ticket(self, ticket_id: int, actor: str, assignee: str | None,
                            note: str = "", now: float | None = None) -> dict[str, Any]:
        return await tickets.assign(self._db, ticket_id, actor, assignee, note, now)

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

    async def incidents(self, limit: int = 100) -> list[dict[str, Any]]:
        return await states.incidents(self._db, limit)

    # -- maintenance windows -------------------------------------------------------------

    async def add_maintenance(self, name: str, start: float | None, end: float | None, *,
                              weekly: Mapping[str, Any] | None = None,
                              devices: Sequence[str] = (), schools: Sequence[str] = (),
                              kinds: Sequence[str] = (), reason: str = "",
                              created_by: str = "") -> int:
        """A one-off (start/end) or weekly (``{"days": [...], "hours": "02:00-04:00"}``)
        maintenance window added by an officer."""
        return await maintenance.add(self._db, name, start, end, weekly=weekly,
                                     devices=devices, schools=schools, kinds=kinds,
                                     reason=reason, created_by=created_by)

    async def delete_maintenance(self, window_id: int) -> bool:
        return await maintenance.delete(self._db, window_id)

    async def maintenance(self, include_past: bool = False) -> list[dict[str, Any]]:
        """The stored windows as dicts (JSON columns decoded)."""
        return await maintenance.rows(self._db, include_past)

    async def maintenance_windows(self, include_past: bool = False
                                  ) -> list[MaintenanceWindow]:
        """The stored windows as domain objects (unreadable ones skipped, logged)."""
        return await maintenance.windows(self._db, include_past)

    # -- reads ---------------------------------------------------------------------

    async def load_states(self) -> dict[str, StoredState]:
        return await states.load_states(self._db)

    async def transitions(
        self, device_id: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[TransitionRow]:
        return await states.transitions(self._db, device_id, since, limit)

    async def events(self, limit: int = 100) -> list[tuple[float, str, str]]:
        return await states.events(self._db, limit)
