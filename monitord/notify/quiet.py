"""The quiet-hours stage: during a channel's ``quiet`` schedule nothing is sent to it.

Its deliveries stay pending; when the quiet hours end they are due and go out grouped as
one message (Alertmanager's mute-time stage).
"""

from __future__ import annotations

from datetime import datetime

from monitord.domain.activehours import Calendar
from monitord.notify.channel import BANGKOK, NO_HOLIDAYS, Channel


def quiet_now(channel: Channel, now: float, calendar: Calendar = NO_HOLIDAYS) -> bool:
    """True while the channel's quiet hours hold (holidays from ``calendar``)."""
    return channel.quiet is not None and channel.quiet.active(
        datetime.fromtimestamp(now, BANGKOK), calendar)
