"""What the web layer needs from the running application, as protocols.

``monitord.http`` never imports ``monitord.app``: the app passes a read model (``View``)
and the application commands (``Commands``) to ``build_app``; pages read the view and
write only through the commands (the same ones the CLI uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.domain.incidents import Incident
    from monitord.domain.state import DeviceStatus, State
    from monitord.http.metrics import SchoolLabels
    from monitord.http.status import StatusData
    from monitord.storage import Storage


class View(Protocol):
    """The read model: what pages, the wall, reports and the API read."""

    @property
    def config(self) -> Config | None: ...
    @property
    def storage(self) -> Storage | None: ...
    @property
    def stopping(self) -> asyncio.Event: ...
    def status_data(self) -> StatusData: ...
    def health(self) -> Mapping[str, Any]: ...
    def school_labels(self) -> Iterable[SchoolLabels]: ...
    def device_status(self, device_id: str) -> DeviceStatus | None: ...
    def effective_state(self, device_id: str, now: float) -> State: ...
    def open_incidents(self) -> Sequence[Incident]: ...
    def ticket_counts(self) -> Mapping[str, int]: ...
    def count_http_rejected(self, reason: str) -> None: ...
    def ticket_access(self, request: Request, ticket_id: int) -> bool: ...
    async def ticket_for_web(self, ticket_id: int) -> dict[str, Any] | None: ...


class Commands(Protocol):
    """Application commands (monitord.app.commands): the only way pages change state.
    The API helper fills this in (tickets: schedule/update/close; maintenance: add/delete)."""
