"""The write-behind queue between the pipeline and the database (:class:`StateWriter`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from monitord.domain.incidents import Change
from monitord.domain.state import Transition
from monitord.domain.tickets import TicketContext
from monitord.notify import NotificationEvent
from monitord.storage import Storage, error_reason, error_text, is_storage_error

log = logging.getLogger("monitord")

#: queued database writes beyond which the writer compacts its queue (see StateWriter)
MAX_PENDING_WRITES = 10_000
RETRY_MAX_SECONDS = 10.0


@dataclass
class _Batch:
    transitions: list[Transition]
    changes: list[Change]
    contexts: dict[int, TicketContext]
    notifications: list[NotificationEvent]


class StateWriter:
    """Write-behind queue that never loses a state change's outcome or what it caused.

    Each batch — transitions plus the incident/ticket changes they caused — is committed
    in one transaction.  A failed write (disk full, read-only, database locked too long)
    is counted by reason and retried with backoff (1 s, doubling, at most
    ``RETRY_MAX_SECONDS``); batches stay queued in order until they are on disk.

    The queue is bounded.  When more than ``max_pending`` items wait, the queued batches
    are merged into one and each device's queued transitions collapse into one, from the
    state on disk to the latest (none when it is back where it was): current states stay
    exact, the intermediate flaps are dropped from the history and counted in
    ``transitions_dropped``.  Ticket and incident changes are always kept; a notification
    whose idempotency key is already queued is not queued twice.  Memory is thus bounded
    by ``max_pending`` plus one transition per device plus the ticket changes.

    ``up`` is False from the first failed write (here, or reported by another writer
    through :meth:`report_failure`) until everything queued is on disk and a
    ``storage_restored`` event row has been written.
    """

    def __init__(self, storage: Storage, max_pending: int = MAX_PENDING_WRITES) -> None:
        self._storage = storage
        self.max_pending = max_pending
        self._pending: list[_Batch] = []
        self._inflight: _Batch | None = None
        self._keys: set[str] = set()
        self._compact_at = max_pending
        self._wake = asyncio.Event()
        self.errors = 0
        self.write_errors: Counter[str] = Counter()
        self.transitions_dropped = 0
        self.up = True
        self.failing_since: float | None = None
        self.last_error = ""
        self._last_error_log = 0.0
        self._last_compact_log = -60.0

    @property
    def pending(self) -> int:
        batches = [*self._pending, *([self._inflight] if self._inflight else [])]
        return sum(len(b.transitions) + len(b.changes) + len(b.notifications)
                   for b in batches)

    def enqueue(self, transitions: Iterable[Transition], changes: Iterable[Change] = (),
                contexts: Mapping[int, TicketContext] | None = None,
                notifications: Iterable[NotificationEvent] = ()) -> None:
        notes = []
        for n in notifications:
            if n.key not in self._keys:
                self._keys.add(n.key)
                notes.append(n)
        batch = _Batch(list(transitions), list(changes), dict(contexts or {}), notes)
        if batch.transitions or batch.changes or batch.notifications:
            self._pending.append(batch)
            self._wake.set()
            if self.pending > self._compact_at:
                self._compact()

    def _compact(self) -> None:
        """Merge the queued batches (not the one being written) into one; collapse each
        device's transitions to one."""
        merged = _Batch([], [], {}, [])
        runs: dict[str, list[Transition]] = {}
        for b in self._pending:
            merged.changes += b.changes
            merged.contexts.update(b.contexts)
            merged.notifications += b.notifications
            for t in b.transitions:
                runs.setdefault(t.device_id, []).append(t)
        for run in runs.values():
            first, last = run[0], run[-1]
            kept = [replace(last, old=first.old)] if first.old != last.new else []
            merged.transitions += kept
            self.transitions_dropped += len(run) - len(kept)
        merged.transitions.sort(key=lambda t: t.ts)
        self._pending = [merged]
        # Ticket changes are never dropped: if they alone exceed the bound, compact again
        # only once the queue has doubled (not on every enqueue).
        self._compact_at = max(self.max_pending, 2 * self.pending)
        now = time.monotonic()
        if now - self._last_compact_log > 60:
            self._last_compact_log = now
            log.warning("database writes queued beyond %d: history compacted, %d intermediate "
                        "state changes dropped so far (current states kept)",
                        self.max_pending, self.transitions_dropped)

    def report_failure(self, exc: BaseException) -> None:
        """A database write failed (here or elsewhere): storage is down until writes work."""
        if not is_storage_error(exc):
            return
        self.errors += 1
        self.write_errors[error_reason(exc)] += 1
        self.last_error = error_text(exc)
        now = time.monotonic()
        if self.up:
            self.up = False
            self.failing_since = time.time()
            self._last_error_log = 0.0
            self._wake.set()  # start retrying, even with nothing queued
        if now - self._last_error_log > 30:
            self._last_error_log = now
            log.error("cannot write to the database %s: %s (%d changes kept in memory, "
                      "retrying)", self._storage.path, self.last_error, self.pending)

    async def flush(self) -> bool:
        while self._pending:
            batch = self._inflight = self._pending.pop(0)
            try:
                await self._storage.commit(batch.transitions, batch.changes, batch.contexts,
                                           batch.notifications)
            except Exception as exc:
                self._pending.insert(0, batch)
                self.report_failure(exc)
                return False
            finally:
                self._inflight = None
            self._keys.difference_update(n.key for n in batch.notifications)
        if not self._pending:
            self._compact_at = self.max_pending
        if not self.up:
            since = self.failing_since or time.time()
            try:  # also the probe that the database takes writes again
                await self._storage.record_event(
                    "storage_restored", f"writes failed for {time.time() - since:.0f} s "
                    f"({self.last_error}); {self.transitions_dropped} intermediate state "
                    "changes dropped so far")
            except Exception as exc:
                self.report_failure(exc)
                return False
            self.up = True
            self.failing_since = None
            log.warning("database %s writable again: every queued change is written",
                        self._storage.path)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            self._wake.clear()
            if await self.flush():
                backoff = 1.0
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, RETRY_MAX_SECONDS)
            self._wake.set()

