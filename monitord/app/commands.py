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
from monitord.domain.tickets import (
    STATUSES,
    Equipment,
    TicketContext,
    TicketError,
    TicketStatus,
    check_phone,
    check_position,
    check_problem,
    check_reporter_name,
    check_source,
    school_root,
)
from monitord.http.ports import CommandError, Conflict, Invalid, NotFound, Unavailable
from monitord.storage import Storage

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.config.inventory import ImportReport

log = logging.getLogger(__name__)

#: the fields an officer may fill in (besides status, appointment and note)
TICKET_FIELDS = ("cause", "fix", "summary", "event_text", "repairer_name",
                 "repairer_position", "repair_started", "repair_finished")
NAME_MAX = 200
NOTE_MAX = 4000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Connect = Callable[[], contextlib.AbstractAsyncContextManager[Storage]]
#: numbers a manual ticket in the running daemon's incident engine: (school, devices) →
#: ticket id (raises RuntimeError while the daemon is starting)
AllocateTicket = Callable[[str | None, Sequence[str]], int]
#: gives back a number the engine gave when the ticket could not be stored
ReleaseTicket = Callable[[int], None]
Problems = list[tuple[tuple[str | int, ...], str, str]]


class AppCommands:
    """Implements :class:`monitord.http.ports.Commands` on the database.

    ``connect`` yields the connection a command writes on; ``config`` gives the config
    in force (None: references to devices and schools are not checked, as in the CLI,
    which has no config); ``maintenance_changed`` is awaited after a maintenance window
    was added or deleted (the daemon re-reads its windows into the engine);
    ``allocate_ticket``/``release_ticket``: the daemon's engine numbers manual tickets
    (manual and automatic tickets share one sequence and the engine hands out automatic
    numbers before they are stored); None: the next free number in the database."""

    def __init__(self, connect: Connect, *,
                 config: Callable[[], Config | None] = lambda: None,
                 maintenance_changed: Callable[[], Awaitable[None]] | None = None,
                 allocate_ticket: AllocateTicket | None = None,
                 release_ticket: ReleaseTicket | None = None,
                 config_path: Path | None = None,
                 inventory_changed: Callable[[], Awaitable[object]] | None = None) -> None:
        self._connect = connect
        self._config = config
        self._maintenance_changed = maintenance_changed
        self._allocate_ticket = allocate_ticket
        self._release_ticket = release_ticket
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
                   maintenance_changed: Callable[[], Awaitable[None]] | None = None, *,
                   allocate_ticket: AllocateTicket | None = None,
                   release_ticket: ReleaseTicket | None = None,
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
                   allocate_ticket=allocate_ticket, release_ticket=release_ticket,
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
        """รับแจ้ง: a manual ticket for devices of a school, a whole school (no devices)
        or office equipment (``school`` None, devices named)."""
        devs = list(dict.fromkeys(d.strip() for d in devices))
        reporter_name, problem = reporter_name.strip(), problem.strip()
        reporter_phone, reporter_position = reporter_phone.strip(), reporter_position.strip()
        problems: Problems = []
        for key, why in (("source", check_source(source)),
                         ("reporter_name", check_reporter_name(reporter_name)),
                         ("reporter_phone", check_phone(reporter_phone)),
                         ("reporter_position", check_position(reporter_position)),
                         ("problem", check_problem(problem))):
            if why is not None:
                problems.append(((key,), why, "value_error"))
        if school is None and not devs:
            problems.append((("devices",), "office equipment: name the devices",
                             "value_error"))
        cfg = self._config()
        if cfg is not None:
            problems += self._check_report_scope(cfg, school, devs)
        if problems:
            raise Invalid("the report is not valid: " + "; ".join(
                f"{'.'.join(str(p) for p in where)}: {msg}" for where, msg, _ in problems),
                problems)
        ctx, district, kind = manual_context(cfg, school, devs, reporter_name,
                                             reporter_position)
        root = devs[0] if devs else school_root(school or "")
        tid: int | None = None
        if self._allocate_ticket is not None:
            try:
                tid = self._allocate_ticket(school, devs)
            except RuntimeError as exc:
                raise Unavailable(str(exc)) from None
        try:
            async with self._store() as store:
                tid = await store.insert_manual_ticket(
                    ctx, root=root, source=source, reporter_phone=reporter_phone,
                    problem=problem, actor=actor, ticket_id=tid, district=district,
                    kind=kind)
                ticket = await store.get_ticket(tid)
        except BaseException as exc:
            if tid is not None and self._allocate_ticket is not None \
                    and self._release_ticket is not None:
                self._release_ticket(tid)
            if isinstance(exc, TicketError):
                raise Conflict(str(exc)) from None
            raise
        log.info("ticket %d: manual report (%s) for %s received by %s", tid, source,
                 school or "office", actor)
        return ticket

    @staticmethod
    def _check_report_scope(cfg: Config, school: str | None, devices: Sequence[str]
                            ) -> Problems:
        problems: Problems = []
        if school is not None and school not in cfg.schools:
            problems.append((("school",), f"unknown school {school!r}", "unknown_reference"))
            return problems
        known = cfg.device_map()
        for i, d in enumerate(devices):
            dev = known.get(d)
            if dev is None:
                problems.append((("devices", i), f"unknown device {d!r}",
                                 "unknown_reference"))
            elif dev.school != school:
                where = f"school {school}" if school else "the office"
                problems.append((("devices", i), f"device {d!r} is not one of {where}'s",
                                 "value_error"))
        return problems

    async def acknowledge_ticket(self, ticket_id: int, actor: str, note: str = ""
                                 ) -> dict[str, Any]:
        """รับทราบ (reminders and escalation stop); Conflict for a closed ticket."""
        if len(note) > NOTE_MAX:
            raise Invalid("note too long", [(("note",), f"at most {NOTE_MAX} characters",
                                            "string_too_long")])
        async with self._store() as store:
            try:
                ticket = await store.acknowledge_ticket(ticket_id, actor, note)
            except TicketError as exc:
                raise _ticket_error(exc) from None
        log.info("ticket %d acknowledged by %s", ticket_id, actor)
        return ticket

    async def assign_ticket(self, ticket_id: int, actor: str, assignee: str | None,
                            note: str = "") -> dict[str, Any]:
        """มอบหมาย to a user; None or "" takes the assignment away."""
        assignee = (assignee or "").strip() or None
        if assignee is not None:
            # TODO(issue 14, coordinator): once AUTH's users are in, check the assignee
            # with Storage.get_user (exists, not disabled, role technician/officer).
            why = check_reporter_name(assignee)
            if why is not None:
                raise Invalid(f"assigned_to: {why}", [(("assigned_to",), why, "value_error")])
        if len(note) > NOTE_MAX:
            raise Invalid("note too long", [(("note",), f"at most {NOTE_MAX} characters",
                                            "string_too_long")])
        async with self._store() as store:
            try:
                ticket = await store.assign_ticket(ticket_id, actor, assignee, note)
            except TicketError as exc:
                raise _ticket_error(exc) from None
        log.info("ticket %d assigned to %s by %s", ticket_id, assignee or "nobody", actor)
        return ticket

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


def _ticket_error(exc: TicketError) -> CommandError:
    if str(exc).startswith("no ticket"):
        return NotFound(str(exc))
    return Conflict(str(exc))


def manual_context(cfg: Config | None, school: str | None, devices: Sequence[str],
                   reporter_name: str, reporter_position: str
                   ) -> tuple[TicketContext, str | None, str | None]:
    """What a manual ticket freezes from the config, as an automatic one does
    (:func:`monitord.app.compile.ticket_context`): form variant, served unit, office names,
    the equipment of the listed devices (or of all the school's devices when none are
    listed), the reporter.  Also the school's district and the first device's kind (the
    notification channels' filters)."""
    if cfg is None:
        items = [Equipment(d, d, "", "", "") for d in devices]
        variant = "school" if school else "office"
        return (TicketContext(variant, school or "", school, "", "", reporter_name,
                              reporter_position, items), None, None)
    known = cfg.device_map()
    chosen = ([known[d] for d in devices if d in known] if devices
              else [d for d in cfg.devices if d.school == school])
    items = [Equipment(d.id, d.display_name, d.hostname, d.brand_model, d.serial)
             for d in chosen]
    sch = cfg.schools.get(school) if school is not None else None
    if sch is not None:
        variant, served = "school", sch.name
    else:
        first = chosen[0] if chosen else None
        variant, served = "office", (first.unit if first is not None and first.unit
                                     else cfg.office.group_name)
    kind = known[devices[0]].kind.value if devices and devices[0] in known else None
    ctx = TicketContext(variant, served, school, cfg.office.name, cfg.office.group_name,
                        reporter_name, reporter_position, items)
    return ctx, (sch.district if sch is not None else None), kind
