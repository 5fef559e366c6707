"""Application commands: officers' changes to tickets and maintenance windows, and the
admin's changes to console users.

The JSON API, the console and the CLI (``monitord tickets schedule|update|close``,
``monitord maintenance add|delete``, ``monitord users add|passwd|disable|enable``) all
go through :class:`AppCommands` — same validation, same ticket history rows, the same
log lines.  It implements :class:`monitord.http.ports.Commands`.

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

from monitord.domain.access import ROLES, Role, User
from monitord.domain.activehours import parse_days, parse_hours
from monitord.domain.passwords import hash_password, name_problem, password_problem
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
#: a school code as a user's school (SMIS: 8 digits; other codes stay possible offline)
SCHOOL_CODE = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
#: schools one ``school`` user may have
MAX_USER_SCHOOLS = 200
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
            why = check_reporter_name(assignee)
            if why is not None:
                raise Invalid(f"assigned_to: {why}", [(("assigned_to",), why, "value_error")])
        if len(note) > NOTE_MAX:
            raise Invalid("note too long", [(("note",), f"at most {NOTE_MAX} characters",
                                            "string_too_long")])
        async with self._store() as store:
            if assignee is not None:
                await _check_assignee(store, assignee)
            try:
                ticket = await store.assign_ticket(ticket_id, actor, assignee, note)
            except TicketError as exc:
                raise _ticket_error(exc) from None
        log.info("ticket %d assigned to %s by %s", ticket_id, assignee or "nobody", actor)
        return ticket

    # -- console users ---------------------------------------------------------------

    async def add_user(self, actor: str, name: str, role: str, schools: Sequence[str],
                       display_name: str, password: str) -> User:
        """A new console user (``monitord users add``, the console's users page); the
        password is hashed (Argon2, slow on purpose) in a thread."""
        name, display_name = name.strip(), display_name.strip()
        codes = clean_schools(schools)
        problems = user_problems(name, role, codes, display_name, self._config())
        if (why := password_problem(password, name)) is not None:
            problems.append((("password",), why, "value_error"))
        if problems:
            raise _invalid_user(problems)
        async with self._store() as store:
            if await store.get_user(name) is not None:
                raise Conflict(_exists(name))
        hashed = await asyncio.to_thread(hash_password, password)
        from monitord.storage.users import UserExists

        async with self._store() as store:
            try:
                user = await store.add_user(name, Role(role), hashed, schools=codes,
                                            display_name=display_name)
            except UserExists:
                raise Conflict(_exists(name)) from None
        log.info("console user %s added (%s%s) by %s", name, role,
                 f": {', '.join(codes)}" if codes else "", actor)
        return user

    async def set_password(self, actor: str, name: str, password: str) -> User:
        """A new password (hashed in a thread); the storage ends every session of the
        user in the same transaction."""
        name = name.strip()
        if (why := password_problem(password, name)) is not None:
            raise Invalid(f"password: {why}", [(("password",), why, "value_error")])
        async with self._store() as store:
            if await store.get_user(name) is None:
                raise NotFound(_no_user(name))
        hashed = await asyncio.to_thread(hash_password, password)
        async with self._store() as store:
            if not await store.set_password(name, hashed):
                raise NotFound(_no_user(name))
            user = await store.get_user(name)
        if user is None:
            raise NotFound(_no_user(name))
        log.info("console user %s: password changed by %s; their sessions ended", name,
                 actor)
        return user

    async def set_disabled(self, actor: str, name: str, disabled: bool) -> User:
        """Disable (ending every session of the user) or enable; an admin cannot disable
        themself, nor anyone the last enabled admin."""
        name = name.strip()
        async with self._store() as store:
            users = await store.list_users()
            target = next((u for u in users if u.name == name), None)
            if target is None:
                raise NotFound(_no_user(name))
            if disabled:
                if actor == name:
                    raise Conflict("ผู้ใช้ปิดการใช้งานบัญชีของตนเองไม่ได้ / you cannot "
                                   "disable your own account")
                _keep_an_admin(users, target)
            if not await store.set_disabled(name, disabled):
                raise NotFound(_no_user(name))
            user = await store.get_user(name)
        if user is None:
            raise NotFound(_no_user(name))
        log.info("console user %s %s by %s", name,
                 "disabled (their sessions ended)" if disabled else "enabled", actor)
        return user

    async def set_role(self, actor: str, name: str, role: str, schools: Sequence[str]
                       ) -> User:
        """A new role and schools (the user's sessions read them at their next request);
        an admin cannot take the admin role from themself, nor from the last enabled
        admin."""
        name = name.strip()
        codes = clean_schools(schools)
        problems = user_problems(None, role, codes, None, self._config())
        if problems:
            raise _invalid_user(problems)
        async with self._store() as store:
            users = await store.list_users()
            target = next((u for u in users if u.name == name), None)
            if target is None:
                raise NotFound(_no_user(name))
            if target.role is Role.ADMIN and role != Role.ADMIN:
                if actor == name:
                    raise Conflict("ผู้ดูแลระบบเปลี่ยนบทบาทของตนเองไม่ได้ / you cannot take "
                                   "the admin role from yourself")
                _keep_an_admin(users, target)
            if not await store.set_role(name, Role(role), codes):
                raise NotFound(_no_user(name))
            user = await store.get_user(name)
        if user is None:
            raise NotFound(_no_user(name))
        log.info("console user %s: role %s%s (was %s) set by %s", name, role,
                 f": {', '.join(codes)}" if codes else "", target.role.value, actor)
        return user

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


#: the roles a ticket can be assigned to (they can act on it: domain.access.can_act)
ASSIGNABLE = (Role.TECHNICIAN, Role.OFFICER, Role.ADMIN)


async def _check_assignee(store: Storage, name: str) -> None:
    """Once the office uses console users, a ticket goes to one of them (an enabled
    technician, officer or admin: the one who then sees it in the console); without any
    users (CLI-only offices) any name is accepted."""
    if not await store.list_users():
        return
    user = await store.get_user(name)
    if user is None or user.disabled or user.role not in ASSIGNABLE:
        why = "not an enabled technician, officer or admin user"
        raise Invalid(f"assigned_to: {name!r} is {why}",
                      [(("assigned_to",), why, "unknown_reference")])


# -- console users: the rules shared by the console and ``monitord users`` -----------------

def clean_schools(schools: Sequence[str]) -> list[str]:
    """The school codes as given, trimmed, without blanks and repeats, in order."""
    return list(dict.fromkeys(s.strip() for s in schools if s.strip()))


def user_problems(name: str | None, role: str, schools: Sequence[str],
                  display_name: str | None, cfg: Config | None) -> Problems:
    """What is wrong with a user's name, role, schools and display name (``None``: not
    checked), per field, in Thai and English; the schools must be configured when the
    config is known (``cfg``)."""
    problems: Problems = []
    if name is not None and (why := name_problem(name)) is not None:
        problems.append((("name",), why, "value_error"))
    if role not in ROLES:
        problems.append((("role",), f"ไม่รู้จักบทบาท {role[:40]!r} / unknown role "
                         f"{role[:40]!r}: use one of {', '.join(ROLES)}", "enum"))
    elif role == Role.SCHOOL and not schools:
        problems.append((("schools",), "ผู้ใช้บทบาทโรงเรียนต้องมีโรงเรียนอย่างน้อย 1 โรงเรียน / "
                         "a user of role school needs at least one school (SMIS code)",
                         "missing"))
    elif role != Role.SCHOOL and schools:
        problems.append((("schools",), f"ระบุโรงเรียนได้เฉพาะผู้ใช้บทบาทโรงเรียน / schools are "
                         f"only for users of role school, not {role}", "value_error"))
    if len(schools) > MAX_USER_SCHOOLS:
        problems.append((("schools",), f"at most {MAX_USER_SCHOOLS} schools",
                         "too_long"))
    for i, code in enumerate(schools[:MAX_USER_SCHOOLS]):
        if not SCHOOL_CODE.fullmatch(code):
            problems.append((("schools", i), f"{code[:40]!r}: ไม่ใช่รหัสโรงเรียน / not a "
                             "school code (SMIS)", "value_error"))
        elif cfg is not None and code not in cfg.schools:
            problems.append((("schools", i), f"ไม่พบโรงเรียนรหัส {code} / unknown school "
                             f"{code!r}", "unknown_reference"))
    if display_name is not None and (len(display_name) > NAME_MAX
                                     or _CONTROL.search(display_name)):
        problems.append((("display_name",), f"ชื่อที่แสดงยาวไม่เกิน {NAME_MAX} ตัวอักษร / at "
                         f"most {NAME_MAX} characters, no control characters",
                         "value_error"))
    return problems


def _invalid_user(problems: Problems) -> Invalid:
    return Invalid("; ".join(f"{'.'.join(str(p) for p in where)}: {msg}"
                             for where, msg, _ in problems), problems)


def _keep_an_admin(users: Sequence[User], target: User) -> None:
    """Conflict when ``target`` is the last enabled admin."""
    if target.role is not Role.ADMIN or target.disabled:
        return
    if not any(u.role is Role.ADMIN and not u.disabled and u.name != target.name
               for u in users):
        raise Conflict(f"{target.name} เป็นผู้ดูแลระบบคนสุดท้ายที่ใช้งานได้ / {target.name} is "
                       "the last enabled admin: add or enable another admin first")


def _exists(name: str) -> str:
    return f"มีผู้ใช้ชื่อ {name!r} แล้ว / a user named {name!r} already exists"


def _no_user(name: str) -> str:
    return f"ไม่พบผู้ใช้ {name[:70]!r} / no user named {name[:70]!r}"


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
