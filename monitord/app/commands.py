"""Application commands: officers' changes to tickets and maintenance windows.

The JSON API and the CLI (``monitord tickets schedule|update|close``, ``monitord
maintenance add|delete``) both go through :class:`AppCommands` — same validation, same
ticket history rows.  It implements :class:`monitord.http.ports.Commands`.

In the daemon every write runs on a database connection of its own (an officer's
transaction must not interleave with the state writer's on the daemon's connection),
one at a time, and a maintenance change is passed on to the running engine at once
through ``maintenance_changed`` instead of at the daemon's next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitord.domain.activehours import parse_days, parse_hours
from monitord.domain.tickets import STATUSES, TicketError, TicketStatus
from monitord.http.ports import Conflict, Invalid, NotFound, Unavailable
from monitord.storage import Storage

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.config.inventory import ImportReport

log = logging.getLogger(__name__)

#: the fields an officer may fill in (besides status, appointment and note)
TICKET_FIELDS = ("cause", "fix", "summary", "event_text", "repairer_name",
                 "repairer_position", "repair_started", "repair_finished")
NAME_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Connect = Callable[[], contextlib.AbstractAsyncContextManager[Storage]]


class AppCommands:
    """Implements :class:`monitord.http.ports.Commands` on the database.

    ``connect`` yields the connection a command writes on; ``config`` gives the config
    in force (None: references to devices and schools are not checked, as in the CLI,
    which has no config); ``maintenance_changed`` is awaited after a maintenance window
    was added or deleted (the daemon re-reads its windows into the engine)."""

    def __init__(self, connect: Connect, *,
                 config: Callable[[], Config | None] = lambda: None,
                 maintenance_changed: Callable[[], Awaitable[None]] | None = None,
                 config_path: Path | None = None,
                 inventory_changed: Callable[[], Awaitable[object]] | None = None) -> None:
        self._connect = connect
        self._config = config
        self._maintenance_changed = maintenance_changed
        #: the daemon's config file (the inventory it includes is what imports write)
        self._config_path = config_path
        #: awaited after an import wrote the inventory (the daemon reloads at once)
        self._inventory_changed = inventory_changed
        self._lock = asyncio.Lock()
        self._inventory_lock = asyncio.Lock()

    @classmethod
    def on_store(cls, store: Storage) -> AppCommands:
        """Commands on an open database (the CLI's): the caller closes it."""

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Storage]:
            yield store

        return cls(connect)

    @classmethod
    def for_daemon(cls, storage: Callable[[], Storage | None],
                   config: Callable[[], Config | None],
                   maintenance_changed: Callable[[], Awaitable[None]] | None = None,
                   config_path: Path | None = None,
                   inventory_changed: Callable[[], Awaitable[object]] | None = None
                   ) -> AppCommands:
        """Commands of the running daemon: each write on a connection of its own to the
        daemon's database (``storage()``: the daemon's open storage, None while starting)."""

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Storage]:
            main = storage()
            if main is None:
                raise Unavailable("the database is not open yet")
            store = await Storage.open(main.path)
            try:
                yield store
            finally:
                await store.close()

        return cls(connect, config=config, maintenance_changed=maintenance_changed,
                   config_path=config_path, inventory_changed=inventory_changed)

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[Storage]:
        async with self._lock, self._connect() as store:
            yield store

    # -- tickets -------------------------------------------------------------------

    async def schedule_ticket(self, ticket_id: int, actor: str, when: float,
                              note: str = "") -> dict[str, Any]:
        return await self.update_ticket(ticket_id, actor, scheduled_for=when, note=note)

    async def close_ticket(self, ticket_id: int, actor: str, note: str = "") -> dict[str, Any]:
        return await self.update_ticket(ticket_id, actor, status=TicketStatus.CLOSED, note=note)

    async def update_ticket(self, ticket_id: int, actor: str, *, status: str | None = None,
                            scheduled_for: float | None = None, note: str = "",
                            fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        changes = {k: v for k, v in (fields or {}).items() if v is not None}
        unknown = sorted(set(changes) - set(TICKET_FIELDS))
        if unknown:
            raise Invalid(f"unknown field(s): {', '.join(unknown)}",
                          [((k,), "unknown field", "extra_forbidden") for k in unknown])
        if status is not None and status not in STATUSES:
            raise Invalid(f"unknown status {status!r}; one of {', '.join(STATUSES)}",
                          [(("status",), "unknown status", "enum")])
        started, finished = changes.get("repair_started"), changes.get("repair_finished")
        if started is not None and finished is not None and finished < started:
            raise Invalid("repair_finished is before repair_started",
                          [(("repair_finished",), "before repair_started", "value_error")])
        async with self._store() as store:
            try:
                ticket = await store.update_ticket(ticket_id, actor, status=status, note=note,
                                                   scheduled_for=scheduled_for, fields=changes)
            except TicketError as exc:
                if str(exc).startswith("no ticket"):
                    raise NotFound(str(exc)) from None
                raise Conflict(str(exc)) from None
        log.info("ticket %d: %s by %s", ticket_id, ticket["status"], actor)
        return ticket

    async def report_problem(self, actor: str, *, school: str | None,
                             devices: Sequence[str] = (), source: str,
                             reporter_name: str, reporter_phone: str = "",
                             reporter_position: str = "", problem: str) -> dict[str, Any]:
        raise Unavailable("not implemented yet")  # issue 14: tickets part

    async def acknowledge_ticket(self, ticket_id: int, actor: str, note: str = ""
                                 ) -> dict[str, Any]:
        raise Unavailable("not implemented yet")  # issue 14: tickets part

    async def assign_ticket(self, ticket_id: int, actor: str, assignee: str | None,
                            note: str = "") -> dict[str, Any]:
        raise Unavailable("not implemented yet")  # issue 14: tickets part

    # -- maintenance windows ---------------------------------------------------------

    def _check_window(self, name: str, start: float | None, end: float | None,
                      weekly: tuple[Sequence[str], str] | None, devices: Sequence[str],
                      schools: Sequence[str]) -> None:
        if not name or len(name) > NAME_MAX or _CONTROL.search(name):
            raise Invalid(f"a window needs a name of 1 to {NAME_MAX} characters without "
                          "control characters", [(("name",), "not a valid name",
                                                  "value_error")])
        if weekly is not None:
            if start is not None or end is not None:
                raise Invalid("give either start and end, or weekly days and hours")
            days, hours = weekly
            try:
                parse_days(days)
            except ValueError as exc:
                raise Invalid(str(exc), [(("weekly", "days"), str(exc), "value_error")]
                              ) from None
            try:
                parse_hours(hours)
            except ValueError as exc:
                raise Invalid(str(exc), [(("weekly", "hours"), str(exc), "value_error")]
                              ) from None
        elif start is None or end is None:
            raise Invalid("a one-off window needs both start and end")
        elif end <= start:
            raise Invalid("'end' must be after 'start'",
                          [(("end",), "not after start", "value_error")])
        cfg = self._config()
        if cfg is None:
            return
        known = cfg.device_map()
        problems: list[tuple[tuple[str | int, ...], str, str]] = [
            (("devices", i), f"unknown device {d!r}", "unknown_reference")
            for i, d in enumerate(devices) if d not in known]
        problems += [(("schools", i), f"unknown school {s!r}", "unknown_reference")
                     for i, s in enumerate(schools) if s not in cfg.schools]
        if problems:
            raise Invalid("the window names devices or schools that are not configured",
                          problems)

    async def add_maintenance(self, name: str, actor: str, *, start: float | None = None,
                              end: float | None = None,
                              weekly: tuple[Sequence[str], str] | None = None,
                              devices: Sequence[str] = (), schools: Sequence[str] = (),
                              kinds: Sequence[str] = (), reason: str = ""
                              ) -> dict[str, Any]:
        self._check_window(name, start, end, weekly, devices, schools)
        stored_weekly = ({"days": list(weekly[0]), "hours": weekly[1]}
                         if weekly is not None else None)
        async with self._store() as store:
            wid = await store.add_maintenance(
                name, start, end, weekly=stored_weekly, devices=list(devices),
                schools=list(schools), kinds=list(kinds), reason=reason, created_by=actor)
            row = next((r for r in await store.maintenance(include_past=True)
                        if r["id"] == wid), None)
        await self._changed()
        if row is None:  # deleted at once by someone else
            raise NotFound(f"no maintenance window {wid}")
        log.info("maintenance window %d %r added by %s", wid, name, actor)
        return row

    async def delete_maintenance(self, window_id: int, actor: str) -> None:
        async with self._store() as store:
            found = await store.delete_maintenance(window_id)
        if not found:
            raise NotFound(f"no maintenance window {window_id}")
        await self._changed()
        log.info("maintenance window %d deleted by %s", window_id, actor)

    async def _changed(self) -> None:
        if self._maintenance_changed is not None:
            try:
                await self._maintenance_changed()
            except Exception as exc:  # the engine catches up at its next tick
                log.error("applying the maintenance windows failed: %s", exc)

    # -- inventory ---------------------------------------------------------------------

    def _inventory_config(self, kind: str) -> Path:
        from monitord.config.inventory import KINDS

        if kind not in KINDS:
            raise NotFound(f"no inventory kind {kind!r} (one of {', '.join(KINDS)})")
        if self._config_path is None:
            raise Unavailable("the inventory is only available in the daemon")
        return self._config_path

    async def import_inventory(self, kind: str, data: bytes, source: str, actor: str, *,
                               dry_run: bool = False, skip_bad: bool = False
                               ) -> ImportReport:
        """Import a CSV into the inventory file the config includes (see
        :func:`monitord.config.inventory.import_csv`); after a write the daemon reloads at
        once.  Bad rows are in the report, not raised: the caller shows them."""
        from monitord.config.inventory import InventoryError, import_csv

        path = self._inventory_config(kind)
        async with self._inventory_lock:
            try:
                report = await asyncio.to_thread(import_csv, path, kind, data, source,
                                                 dry_run=dry_run, skip_bad=skip_bad)
            except InventoryError as exc:
                raise Invalid(str(exc), [(("config",), p, "config") for p in exc.problems]
                              ) from None
            except OSError as exc:
                raise Unavailable(f"cannot write the inventory: {exc}") from None
        if report.applied:
            log.info("inventory %s imported by %s from %s: %d added, %d changed, %d skipped",
                     kind, actor, source, len(report.added), len(report.changed),
                     len(report.skipped))
            if self._inventory_changed is not None:
                try:
                    await self._inventory_changed()
                except Exception as exc:  # the file watcher reloads it too
                    log.error("reloading after the import failed: %s", exc)
        return report

    async def export_inventory(self, kind: str) -> bytes:
        """The config's schools or devices (main file and includes) as the CSV the import
        reads — from the files as they are now, so an export right after an import
        shows it."""
        from monitord.config.inventory import InventoryError, export_csv

        path = self._inventory_config(kind)
        try:
            return await asyncio.to_thread(export_csv, path, kind)
        except InventoryError as exc:
            raise Invalid(str(exc), [(("config",), p, "config") for p in exc.problems]
                          ) from None
