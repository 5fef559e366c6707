"""Alert notifications: a durable outbox delivered through apprise.

After Alertmanager's ``notify.go``: **record → route → quiet → rate limit → group →
render → send → retry**, each a small module testable alone; the order is the policy
and :mod:`monitord.notify.pipeline` documents it.

* *Record* (:mod:`monitord.storage.outbox`).  Every notification event is a row in
  ``notification_event``, written in the same transaction as the state or ticket change
  that caused it, with a unique idempotency ``key`` — so kill -9 can neither lose it nor
  record it twice.  Event payloads are built by the typed constructors of
  :mod:`monitord.domain.notifications`, in one place; the clock's (reminders, escalations, the
  daily summary) by :mod:`monitord.notify.timed`.
* *Route* (:mod:`~monitord.notify.route`).  Each new event fans out to the channels
  whose filters match (event kinds, schools, districts, device kinds, duty roster,
  escalation), one ``notification_delivery`` row per (event, channel), first sendable
  ``group_window`` after the event.
* *Quiet hours* (:mod:`~monitord.notify.quiet`), *rate limit*
  (:mod:`~monitord.notify.ratelimit`): a channel in either waits; what is due meanwhile
  goes out grouped afterwards.
* *Group* (:mod:`~monitord.notify.group`).  All deliveries of one channel that are due
  together go out as ONE message with a stable idempotency key: forty schools dropping at
  once is one message, not forty.
* *Render* (:mod:`~monitord.notify.render`): Thai (English optional), with links to the
  ticket's repair report and the status page when ``notify.base_url`` is set.
* *Send* (:mod:`~monitord.notify.send`) through apprise; *retry*
  (:mod:`~monitord.notify.retry`) with exponential backoff and jitter up to
  ``max_attempts``; the rows are marked sent after the channel acknowledged.  Results are
  counted in ``monitord_notifications_total``.  At least once, with an idempotency key:
  see :class:`~monitord.notify.deliverer.Deliverer`.

Channel URLs may hold tokens: they are given by reference (``{env: NAME}``/``{file:
PATH}``) and only the channel *name* ever appears in logs, metrics or messages.

Adding things: a new *channel type* is an apprise URL, nothing to write here.  A new
*event kind*: its name in ``EVENT_KINDS`` (:mod:`monitord.domain.events`), a typed
constructor in :mod:`monitord.domain.notifications`, its line in both languages in
:data:`monitord.notify.render.LINES`.  A new *stage*: a module with the rule, a small
``(Turn, Context) -> bool`` function in :mod:`monitord.notify.pipeline`, and its place
in ``STAGES`` (the order is the policy; say why in the module's list).
"""

from __future__ import annotations

from monitord.domain.events import EVENT_KINDS as EVENT_KINDS
from monitord.domain.events import NotificationEvent as NotificationEvent
from monitord.domain.events import event_key as event_key
from monitord.notify.channel import Channel as Channel
from monitord.notify.channel import NotifyPolicy as NotifyPolicy
from monitord.notify.deliverer import Deliverer as Deliverer
from monitord.notify.render import LINES as LINES
from monitord.notify.render import render_line as render_line
from monitord.notify.render import render_message as render_message
from monitord.notify.send import keyed_url as keyed_url
from monitord.notify.send import message_key as message_key
from monitord.notify.send import send as send
from monitord.notify.timed import Reminders as Reminders
from monitord.notify.timed import timed_events as timed_events
from monitord.storage.outbox import record as record
