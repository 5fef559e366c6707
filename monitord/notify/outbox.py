"""The outbox as the delivery stages see it: a port, and its adapter on the database.

The stages never see rows or SQL: :class:`Outbox` is what they need, and
:class:`StoredOutbox` implements it with :mod:`monitord.storage.outbox` (which holds all
the outbox's SQL).  Unit tests give the pipeline an in-memory outbox instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from monitord.domain.events import NotificationEvent
from monitord.notify.group import Pending
from monitord.storage import outbox as rows

Targets = Callable[[NotificationEvent], Iterable[tuple[str, float]]]


class Outbox(Protocol):
    async def route(self, targets: Targets) -> int:
        """Fan the events not routed yet out to deliveries (one transaction); the number
        of deliveries asked for."""
        ...

    async def due(self, channel: str, now: float) -> list[Pending]:
        """The next message's deliveries for ``channel``: an unfinished message first,
        else up to 200 due deliveries not yet in a message, oldest event first."""
        ...

    async def update(self, ids: Sequence[int], status: str, when: float, attempts: int,
                     error: str | None, key: str | None = None) -> None:
        """Set the deliveries' status, next attempt (or sent time), attempts, last error
        and message key (``error``/``key`` None: keep the stored value); one
        transaction."""
        ...


class StoredOutbox:
    """:class:`Outbox` on the daemon's database (``notification_event`` and
    ``notification_delivery``)."""

    def __init__(self, db: rows.Connection) -> None:
        self.db = db

    async def route(self, targets: Targets) -> int:
        return await rows.route_events(self.db, targets)

    async def due(self, channel: str, now: float) -> list[Pending]:
        out = []
        for r in await rows.due_deliveries(self.db, channel, now):
            try:
                event: NotificationEvent | None = rows.event_of(r)
                error = ""
            except Exception as exc:  # damaged data: this delivery fails alone
                event, error = None, f"cannot render: {type(exc).__name__}: {exc}"[:200]
            out.append(Pending(r["id"], r["attempts"], r["message_key"], event, error))
        return out

    async def update(self, ids: Sequence[int], status: str, when: float, attempts: int,
                     error: str | None, key: str | None = None) -> None:
        await rows.update_deliveries(self.db, list(ids), status, when, attempts, error, key)
