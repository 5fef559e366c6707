"""The group stage: a channel's due deliveries become ONE message.

Forty schools dropping at once is one message, not forty.  The message is identified by
an idempotency key (:func:`monitord.notify.send.message_key`) stable per (events,
channel); deliveries already fixed in an unfinished message (a failed attempt, a kill -9
while the channel answered) keep that message's key, so the retry is the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitord.domain.events import NotificationEvent
from monitord.notify.send import message_key


@dataclass(frozen=True, slots=True)
class Pending:
    """A due delivery: its id, attempts so far, the message it is fixed in (None: not
    yet), and its event (None: the stored event cannot be read — ``error`` says why)."""

    id: int
    attempts: int
    message_key: str | None
    event: NotificationEvent | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """Deliveries to one channel sent as one message, and the attempt it is about to be."""

    channel: str
    ids: tuple[int, ...]
    events: tuple[NotificationEvent, ...]
    key: str
    attempts: int


def group(channel: str, due: Sequence[Pending]) -> Message | None:
    """``due`` (deliveries of one channel, all readable) as one message; None if empty."""
    events = [p.event for p in due if p.event is not None]
    if len(events) != len(due):
        raise ValueError("an unreadable delivery cannot be grouped (render stage first)")
    if not due:
        return None
    key = due[0].message_key or message_key(channel, (e.key for e in events))
    return Message(channel, tuple(p.id for p in due), tuple(events), key,
                   max(p.attempts for p in due) + 1)
