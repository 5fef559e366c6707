"""The delivery pipeline: the order of the stages below IS the notification policy.

After Alertmanager's ``notify.go``: every event recorded in the outbox is first routed
(:mod:`~monitord.notify.route`, once, for all channels); then, every round, each channel
takes a turn through :data:`STAGES`, in this order.  A stage returns False to end the
channel's turn (nothing to send now); each stage is a small function over a
:class:`Turn`, and the rules it applies live in its own module, testable alone.

1. **quiet** — the channel's quiet hours: nothing leaves; deliveries wait, and go out
   grouped when the hours end (:mod:`~monitord.notify.quiet`).
2. **rate limit** — ``max_per_hour`` reached: wait; what accumulates goes out as one
   message (:mod:`~monitord.notify.ratelimit`).
3. **due** — the channel's due deliveries: an unfinished message's first (same rows,
   same key), else up to 200 new ones (:class:`~monitord.notify.outbox.Outbox`).
4. **render check** — a delivery whose event cannot be rendered (damaged data, a date no
   calendar holds) fails alone, with ``last_error``; the others go on
   (:mod:`~monitord.notify.render`).
5. **group** — the rest is ONE message, with a stable idempotency key and its attempt
   number (:mod:`~monitord.notify.group`).
6. **fix** — the message and its attempt are stored BEFORE it is sent: a kill -9 from
   here on is a failed attempt whose retry sends the same message under the same key
   (at least once, with an idempotency key; at most one message in flight per channel).
7. **render** — title and body (:mod:`~monitord.notify.render`).
8. **send** — through apprise, the key on webhook channels (:mod:`~monitord.notify.send`).
9. **retry** — acknowledged: marked sent in one transaction, counted ``success``;
   otherwise retried with backoff and jitter, or given up after ``max_attempts``
   (:mod:`~monitord.notify.retry`).  Results are counted in
   ``monitord_notifications_total{channel,result}``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from monitord.domain.activehours import Calendar
from monitord.notify.channel import Channel, NotifyPolicy
from monitord.notify.group import Message, Pending, group
from monitord.notify.outbox import Outbox
from monitord.notify.quiet import quiet_now
from monitord.notify.ratelimit import RateLimit
from monitord.notify.render import render_message, unrenderable
from monitord.notify.retry import Backoff, after_failure
from monitord.notify.send import Sender, attempt

log = logging.getLogger("monitord.notify")


@dataclass(slots=True)
class Context:
    """What the stages work with: the outbox, the policy, the sender and the counters."""

    outbox: Outbox
    policy: NotifyPolicy
    office: str
    sender: Sender
    calendar: Calendar = field(default_factory=Calendar)
    ratelimit: RateLimit = field(default_factory=RateLimit)
    backoff: Backoff = field(default_factory=Backoff)
    #: monitord_notifications_total: (channel, "success" | "retry" | "failed") → count
    results: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(slots=True)
class Turn:
    """One channel's turn in a round, as the stages fill it in."""

    channel: Channel
    now: float
    due: list[Pending] = field(default_factory=list)
    message: Message | None = None
    title: str = ""
    body: str = ""
    error: str = ""  # the send's outcome: "" acknowledged, else why not


Stage = Callable[[Turn, Context], Awaitable[bool]]


async def failed(ctx: Context, channel: Channel, ids: Sequence[int], attempts: int,
                 error: str, now: float) -> None:
    """The ``attempts``-th attempt of these deliveries failed: retry later, or give up."""
    verdict = after_failure(ctx.policy, ctx.backoff, attempts, now)
    await ctx.outbox.update(ids, verdict.status, verdict.next_attempt, attempts, error)
    ctx.results[(channel.name, verdict.result)] += 1
    if verdict.result == "failed":
        log.error("notification to %s given up after %d attempts: %s", channel.name,
                  attempts, error)
    else:
        log.warning("notification to %s failed (%s); retry %d in %.0fs", channel.name,
                    error, attempts, verdict.next_attempt - now)


async def quiet_stage(turn: Turn, ctx: Context) -> bool:
    return not quiet_now(turn.channel, turn.now, ctx.calendar)


async def rate_limit_stage(turn: Turn, ctx: Context) -> bool:
    return ctx.ratelimit.allows(turn.channel, turn.now)


async def due_stage(turn: Turn, ctx: Context) -> bool:
    turn.due = await ctx.outbox.due(turn.channel.name, turn.now)
    return bool(turn.due)


async def render_check_stage(turn: Turn, ctx: Context) -> bool:
    good = []
    for p in turn.due:
        error = p.error or (unrenderable(p.event, ctx.policy) if p.event is not None
                            else "cannot render: no event")
        if error:
            await failed(ctx, turn.channel, [p.id], p.attempts + 1, error, turn.now)
        else:
            good.append(p)
    turn.due = good
    return bool(good)


async def group_stage(turn: Turn, ctx: Context) -> bool:
    turn.message = group(turn.channel.name, turn.due)
    return turn.message is not None


async def fix_stage(turn: Turn, ctx: Context) -> bool:
    m = _message(turn)
    await ctx.outbox.update(m.ids, "pending",
                            turn.now + ctx.backoff.delay(ctx.policy, m.attempts),
                            m.attempts, None, m.key)
    return True


async def render_stage(turn: Turn, ctx: Context) -> bool:
    turn.title, turn.body = render_message(_message(turn).events, ctx.policy, ctx.office)
    return True


async def send_stage(turn: Turn, ctx: Context) -> bool:
    turn.error = await attempt(ctx.sender, turn.channel.url, turn.title, turn.body,
                               _message(turn).key)
    return True


async def retry_stage(turn: Turn, ctx: Context) -> bool:
    m, ch = _message(turn), turn.channel
    if turn.error:
        await failed(ctx, ch, m.ids, m.attempts, turn.error, turn.now)
        return False
    ctx.ratelimit.sent(ch, turn.now)
    await ctx.outbox.update(m.ids, "sent", turn.now, m.attempts, "")
    ctx.results[(ch.name, "success")] += 1
    log.info("notification to %s: %d event(s) sent", ch.name, len(m.ids))
    return True


def _message(turn: Turn) -> Message:
    if turn.message is None:
        raise RuntimeError("stage run before the group stage")
    return turn.message


#: The pipeline, in order (see the module's documentation for what each stage means).
STAGES: tuple[tuple[str, Stage], ...] = (
    ("quiet", quiet_stage),
    ("rate limit", rate_limit_stage),
    ("due", due_stage),
    ("render check", render_check_stage),
    ("group", group_stage),
    ("fix", fix_stage),
    ("render", render_stage),
    ("send", send_stage),
    ("retry", retry_stage),
)


async def run(turn: Turn, ctx: Context, stages: Sequence[tuple[str, Stage]] = STAGES
              ) -> str:
    """Take ``turn`` through ``stages``; the name of the stage that ended it ("" when all
    ran)."""
    for name, stage in stages:
        if not await stage(turn, ctx):
            return name
    return ""
