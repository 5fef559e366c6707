"""The retry stage: what a failed attempt leads to.

A failed attempt is retried after an exponential backoff with ±20 % jitter
(``backoff_initial`` · 2^(attempts−1), at most ``backoff_max``) until ``max_attempts``,
then given up (status ``failed``, ``last_error`` says why).  Messages that bypass the
outbox (``storage_failing``: the outbox lives in the database that fails) are retried
in memory by :func:`send_directly`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from monitord.notify.channel import NotifyPolicy
from monitord.notify.send import Sender, attempt

#: attempts of a message sent directly (not through the outbox)
DIRECT_ATTEMPTS = 5


class Backoff:
    """Exponential backoff with jitter, after the policy."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def delay(self, policy: NotifyPolicy, attempts: int) -> float:
        """The wait after the ``attempts``-th attempt (1, 2, …)."""
        delay = min(policy.backoff_max, policy.backoff_initial * 2 ** (attempts - 1))
        return float(delay * self._rng.uniform(0.8, 1.2))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What becomes of deliveries whose ``attempts``-th attempt failed."""

    status: Literal["pending", "failed"]
    next_attempt: float  # when to retry; the time given up for "failed"
    result: Literal["retry", "failed"]  # the monitord_notifications_total result


def after_failure(policy: NotifyPolicy, backoff: Backoff, attempts: int, now: float
                  ) -> Verdict:
    """Retry later with backoff, or give up after ``max_attempts``."""
    if attempts >= policy.max_attempts:
        return Verdict("failed", now, "failed")
    return Verdict("pending", now + backoff.delay(policy, attempts), "retry")


async def send_directly(sender: Sender, url: str, title: str, body: str,
                        stop: asyncio.Event, count: Callable[[str], None],
                        attempts: int = DIRECT_ATTEMPTS, wait: float = 5.0) -> bool:
    """Send now, retrying in memory (waits ``wait``·2, ·4, … between attempts, cut short
    by ``stop``); True when acknowledged.  ``count`` is told each result as it happens:
    "retry", then "success" or "failed"."""
    for n in range(1, attempts + 1):
        if not await attempt(sender, url, title, body, None):
            count("success")
            return True
        if n == attempts:
            break
        count("retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait * 2 ** n)
        if stop.is_set():
            break
    count("failed")
    return False
