"""What the web layer needs from the running application, as protocols.

``monitord.http`` never imports ``monitord.app``: the app passes a read model (``View``)
and the application commands (``Commands``) to ``build_app``; pages read the view and
write only through the commands (the same ones the CLI uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.requests import Request

from monitord.http.metrics import MetricsView

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.config.inventory import ImportReport
    from monitord.domain.access import User
    from monitord.domain.activehours import MaintenanceWindow
    from monitord.domain.availability import HistoryLoader
    from monitord.domain.incidents import Incident
    from monitord.domain.state import State
    from monitord.http.status import StatusData
    from monitord.storage import Storage
    from monitord.storage.events import RecentEvents


T = TypeVar("T")


class View(MetricsView, Protocol):
    """The read model (monitord.app.readmodel.ReadModel): what pages, the wall, reports
    and the API read.  It also satisfies monitord.http.metrics.MetricsView."""

    @property
    def config(self) -> Config | None: ...
    @property
    def storage(self) -> Storage | None: ...
    @property
    def stopping(self) -> asyncio.Event: ...
    def status_data(self) -> StatusData: ...
    def health(self) -> Mapping[str, Any]: ...
    def effective_state(self, device_id: str, now: float | None = None) -> State: ...
    def in_maintenance(self, device_id: str, now: float | None = None
                       ) -> MaintenanceWindow | None:
        """The maintenance window the engine holds the device in (the API's
        ``maintenance`` field)."""
        ...
    def open_incidents(self) -> Sequence[Incident]: ...
    def ticket_counts(self) -> Mapping[str, int]: ...
    def count_http_rejected(self, reason: str) -> None: ...
    def ticket_access(self, request: Request, ticket_id: int) -> bool: ...
    async def ticket_for_web(self, ticket_id: int) -> dict[str, Any] | None: ...
    async def recent_events(self, limit: int) -> RecentEvents:
        """For the wall (monitord.storage.events.recent_events); raises when the
        database fails."""
        ...
    async def read_history(self, fn: Callable[[Config, HistoryLoader], T]) -> T:
        """``fn(config, a read-only database connection)`` in a thread (reports); raises
        RuntimeError when not ready or the database fails, passes ``fn``'s ValueError."""
        ...


class CommandError(ValueError):
    """A command that cannot be applied; ``str(exc)`` says why (API: problem JSON,
    CLI: ``monitord: …`` and exit 2)."""


class NotFound(CommandError):
    """No such ticket / maintenance window (404)."""


class Conflict(CommandError):
    """The change conflicts with the stored state, e.g. a closed ticket (409)."""


class Invalid(CommandError):
    """The request is not valid (422).  ``problems``: (where, message, type) per field,
    where is a key path such as ``("devices", 0)`` or ``("end",)``."""

    def __init__(self, message: str,
                 problems: Sequence[tuple[tuple[str | int, ...], str, str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class Unavailable(CommandError):
    """The application cannot take writes yet (starting, database not open) (503)."""


class Commands(Protocol):
    """Application commands (:mod:`monitord.app.commands`): the only way pages change
    state, and the same path the CLI (``monitord tickets …``, ``monitord maintenance …``)
    takes: same validation, same ticket history rows.

    Instants are Unix seconds (callers turn local date-times into instants).  Tickets
    are returned as :meth:`monitord.storage.Storage.get_ticket` dicts (with ``history``),
    maintenance windows as :meth:`monitord.storage.Storage.maintenance` rows.  Errors are
    :class:`CommandError` subclasses; a running daemon's engine learns about maintenance
    changes at once (not at its next tick)."""

    async def schedule_ticket(self, ticket_id: int, actor: str, when: float,
                              note: str = "") -> dict[str, Any]:
        """Set the inspection appointment (นัดหมาย); an open ticket becomes scheduled."""
        ...

    async def update_ticket(self, ticket_id: int, actor: str, *, status: str | None = None,
                            scheduled_for: float | None = None, note: str = "",
                            fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """An officer's change: status, appointment and the free-text/time ``fields``
        (cause, fix, summary, event_text, repairer_name, repairer_position,
        repair_started, repair_finished)."""
        ...

    async def close_ticket(self, ticket_id: int, actor: str, note: str = "") -> dict[str, Any]:
        ...

    async def add_maintenance(self, name: str, actor: str, *, start: float | None = None,
                              end: float | None = None,
                              weekly: tuple[Sequence[str], str] | None = None,
                              devices: Sequence[str] = (), schools: Sequence[str] = (),
                              kinds: Sequence[str] = (), reason: str = ""
                              ) -> dict[str, Any]:
        """A one-off (``start`` < ``end``) or weekly (``(days, "HH:MM-HH:MM")``) window;
        returns the stored row (with ``id``).  Devices and schools must be configured
        when the application knows its config."""
        ...

    async def delete_maintenance(self, window_id: int, actor: str) -> None:
        """Raises :class:`NotFound` for an unknown id."""
        ...

    # -- issue 14: the console ------------------------------------------------------

    async def report_problem(self, actor: str, *, school: str | None,
                             devices: Sequence[str] = (), source: str,
                             reporter_name: str, reporter_phone: str = "",
                             reporter_position: str = "", problem: str) -> dict[str, Any]:
        """รับแจ้ง: open a manual ticket for devices of a school (or the whole school when
        ``devices`` is empty; ``school`` None: the office's own equipment).  ``source``:
        one of :data:`monitord.domain.tickets.SOURCES`.  Same numbering, form and
        notifications as automatic tickets.  Returns the stored ticket."""
        ...

    async def acknowledge_ticket(self, ticket_id: int, actor: str, note: str = ""
                                 ) -> dict[str, Any]:
        """รับทราบ: stops the ticket's reminders and escalation."""
        ...

    async def assign_ticket(self, ticket_id: int, actor: str, assignee: str | None,
                            note: str = "") -> dict[str, Any]:
        """มอบหมาย to a user (a technician or officer); None takes the assignment away."""
        ...

    async def import_inventory(self, kind: str, data: bytes, source: str, actor: str, *,
                               dry_run: bool = False, skip_bad: bool = False
                               ) -> ImportReport:
        """Import a schools/devices CSV into the inventory file the config includes (the
        daemon then reloads it); nothing is written when a row is bad unless
        ``skip_bad``, nor with ``dry_run`` (the preview)."""
        ...

    async def export_inventory(self, kind: str) -> bytes:
        """The inventory as the same CSV the import reads (UTF-8 with BOM)."""
        ...

    # -- console users (admin: domain.access.Perm.USERS) ------------------------------

    async def add_user(self, actor: str, name: str, role: str, schools: Sequence[str],
                       display_name: str, password: str) -> User:
        """A new console user, with the rules of ``monitord users add``: the name
        (:func:`monitord.domain.passwords.name_problem`), a known role, the schools of a
        ``school`` user (at least one; configured ones when the config is known; none for
        other roles), the password (:func:`~monitord.domain.passwords.password_problem`).
        :class:`Invalid` per field (``name``, ``role``, ``schools``, ``display_name``,
        ``password``), :class:`Conflict` when the name is taken."""
        ...

    async def set_password(self, actor: str, name: str, password: str) -> User:
        """A new password; every session of the user ends.  :class:`Invalid`
        (``password``), :class:`NotFound`."""
        ...

    async def set_disabled(self, actor: str, name: str, disabled: bool) -> User:
        """Disable (every session ends) or enable a user.  :class:`Conflict` when an
        admin disables themself or the last enabled admin would go; :class:`NotFound`."""
        ...

    async def set_role(self, actor: str, name: str, role: str, schools: Sequence[str]
                       ) -> User:
        """A new role (and schools, for ``school``), in force at the user's next request.
        :class:`Invalid` (``role``, ``schools``), :class:`Conflict` when an admin
        demotes themself or the last enabled admin, :class:`NotFound`."""
        ...
