"""Rate-limited log lines for per-device / per-message paths.

A broken agent polled every few seconds, or a publisher flooding bad messages, must not
turn the log into a firehose: each :class:`RateLimitedLog` writes at most ``per_minute``
lines a minute and summarises the rest in one line when the next minute starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``per_minute`` lines a minute through ``logger``; the rest are counted."""

    def __init__(self, logger: logging.Logger, per_minute: int, what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._per_minute = per_minute
        self._what = what
        self._clock = clock
        self._window = -1e18
        self._used = 0
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless this minute's budget is spent; True if the line was written."""
        now = self._clock()
        if now - self._window >= 60.0:
            if self.suppressed:
                self._log.log(level, "%s: %d more not logged in the last minute",
                              self._what, self.suppressed)
            self._window, self._used, self.suppressed = now, 0, 0
        if self._used >= self._per_minute:
            self.suppressed += 1
            return False
        self._used += 1
        self._log.log(level, msg, *args, exc_info=exc_info)
        return True
