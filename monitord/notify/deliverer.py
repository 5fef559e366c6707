"""The notification worker: route new events, then each channel's turn through the
pipeline (:mod:`monitord.notify.pipeline`), every second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

from monitord.domain.activehours import Calendar
from monitord.domain.events import NotificationEvent
from monitord.notify.channel import Channel, NotifyPolicy
from monitord.notify.outbox import Outbox, StoredOutbox
from monitord.notify.pipeline import Context, Turn, run
from monitord.notify.render import render_message
from monitord.notify.retry import Backoff, send_directly
from monitord.notify.route import targets
from monitord.notify.send import Sender, send
from monitord.storage.outbox import Connection

log = logging.getLogger("monitord.notify")


class Deliverer:
    """The worker: route new events, group what is due per channel, send with retries.

    Delivery is at least once, with an idempotency key: a group of deliveries is fixed as
    one message (``message_key``) and its attempt counted *before* it is sent, so a retry
    — after a failure or a kill -9 while the channel was answering — resends the same
    message with the same key.  Per channel at most one message is in flight, so a crash
    can repeat at most that one message; receivers that dedupe on the key see each
    message exactly once.

    ``db``: the outbox's database connection; ``outbox`` replaces it (tests: in memory).
    ``sender``: how a message is sent (default: apprise).
    """

    def __init__(self, db: Connection | None, channels: Sequence[Channel],
                 policy: NotifyPolicy, office: str, *, outbox: Outbox | None = None,
                 sender: Sender = send, rng: random.Random | None = None) -> None:
        if outbox is None:
            if db is None:
                raise ValueError("a Deliverer needs a database or an outbox")
            outbox = StoredOutbox(db)
        self.channels = list(channels)
        self._ctx = Context(outbox, policy, office, sender, backoff=Backoff(rng))
        #: the worker waits while this says so (the daemon: while the database fails)
        self.hold: Callable[[], bool] = lambda: False
        #: told about the worker's errors (the daemon counts database failures)
        self.on_error: Callable[[Exception], None] = lambda exc: None

    @property
    def policy(self) -> NotifyPolicy:
        return self._ctx.policy

    @property
    def office(self) -> str:
        return self._ctx.office

    @property
    def calendar(self) -> Calendar:
        return self._ctx.calendar

    @calendar.setter
    def calendar(self, calendar: Calendar) -> None:
        self._ctx.calendar = calendar

    @property
    def results(self) -> Counter[tuple[str, str]]:
        """``monitord_notifications_total``: (channel, result) → count."""
        return self._ctx.results

    def configure(self, channels: Sequence[Channel], policy: NotifyPolicy, office: str) -> None:
        self.channels = list(channels)
        self._ctx.policy, self._ctx.office = policy, office

    async def route(self, now: float) -> int:
        """Create deliveries for events not routed yet (one transaction)."""
        ctx = self._ctx
        return await ctx.outbox.route(
            lambda ev: targets(ev, self.channels, now, ctx.policy, ctx.calendar))

    async def deliver(self, now: float) -> None:
        """Each channel's turn through the pipeline: its due deliveries as one message."""
        for ch in self.channels:
            await run(Turn(ch, now), self._ctx)

    async def alert_directly(self, event: NotificationEvent, stop: asyncio.Event) -> None:
        """Send one event to every channel that wants it, now, with a few retries in
        memory — for what cannot wait in the outbox (``storage_failing``: the outbox
        lives in the database that cannot be written).  Counted like the others."""
        ctx = self._ctx
        title, body = render_message([event], ctx.policy, ctx.office)

        async def one(ch: Channel) -> None:
            def count(result: str) -> None:
                ctx.results[(ch.name, result)] += 1

            if await send_directly(ctx.sender, ch.url, title, body, stop, count):
                log.info("notification to %s: %s sent", ch.name, event.kind)
            else:
                log.error("notification to %s: %s not sent", ch.name, event.kind)

        await asyncio.gather(*(one(ch) for ch in self.channels
                               if ch.wants(event, ctx.calendar)))

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            try:
                if not self.hold():
                    now = time.time()
                    await self.route(now)
                    await self.deliver(now)
            except Exception as exc:
                log.error("notification worker: %s", exc)
                self.on_error(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
