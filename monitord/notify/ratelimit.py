"""The rate-limit stage: at most ``max_per_hour`` messages per channel in a rolling hour.

A channel at its limit is skipped; what accumulates meanwhile goes out as one message
when the oldest send leaves the hour.  Counted in memory: a restart starts afresh.
"""

from __future__ import annotations

from monitord.notify.channel import Channel

WINDOW = 3600.0


class RateLimit:
    """The send times of the last hour, per channel."""

    def __init__(self) -> None:
        self._sent: dict[str, list[float]] = {}

    def allows(self, channel: Channel, now: float) -> bool:
        """True when one more message to ``channel`` now stays within its limit."""
        recent = [t for t in self._sent.get(channel.name, []) if now - t < WINDOW]
        self._sent[channel.name] = recent
        return channel.max_per_hour is None or len(recent) < channel.max_per_hour

    def sent(self, channel: Channel, now: float) -> None:
        """A message to ``channel`` was acknowledged at ``now``."""
        self._sent.setdefault(channel.name, []).append(now)
