"""What the web layer needs from the running application, as protocols.

``monitord.http`` never imports ``monitord.app``: the app passes a read model (``View``)
and the application commands (``Commands``) to ``build_app``; pages read the view and
write only through the commands (the same ones the CLI uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.requests import Request

from monitord.http.metrics import MetricsView

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.domain.incidents import Incident
    from monitord.domain.state import State
    from monitord.http.status import StatusData
    from monitord.storage import Storage


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RecentEvents:
    """The wall's event list, newest first."""

    #: rows with id, device_id, old_state, new_state, ts (unknown → up left out)
    transitions: Sequence[Mapping[str, Any]]
    #: rows with id, ticket_id, ts, status, root: one per change of a ticket's status
    tickets: Sequence[Mapping[str, Any]]


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
    def open_incidents(self) -> Sequence[Incident]: ...
    def ticket_counts(self) -> Mapping[str, int]: ...
    def count_http_rejected(self, reason: str) -> None: ...
    def ticket_access(self, request: Request, ticket_id: int) -> bool: ...
    async def ticket_for_web(self, ticket_id: int) -> dict[str, Any] | None: ...
    async def recent_events(self, transitions: int, tickets: int) -> RecentEvents: ...
    async def read_history(self, fn: Callable[[Config, Any], T]) -> T:
        """``fn(config, a read-only database connection)`` in a thread (reports); raises
        RuntimeError when not ready or the database fails, passes ``fn``'s ValueError."""
        ...


class Commands(Protocol):
    """Application commands (monitord.app.commands): the only way pages change state.
    The API helper fills this in (tickets: schedule/update/close; maintenance: add/delete)."""
