"""Events from the clock: reminders, escalations and the daily summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitord.domain.notifications import (
    NotificationEvent,
    SummaryTicket,
    TicketSubject,
    daily_summary,
    ticket_escalated,
    ticket_reminder,
)
from monitord.domain.tickets import ACTIVE, root_school

BANGKOK = ZoneInfo("Asia/Bangkok")


@dataclass(frozen=True, slots=True)
class Reminders:
    remind_every: float | None = 14400.0
    escalate_after: float | None = 172800.0
    daily_summary_at: str | None = None  # "HH:MM" Bangkok time; None: no summary


def _subject(t: Mapping[str, Any]) -> TicketSubject:
    whole_school = root_school(str(t["root"])) is not None  # a manual report, no one device
    return TicketSubject(t["id"], t["root"],
                         "" if whole_school else
                         (t.get("equipment") or [{"name": t["root"]}])[0]["name"],
                         served_unit=t.get("served_unit", ""), school=t.get("school"))


def timed_events(tickets: Sequence[Mapping[str, Any]], offline_schools: Sequence[str],
                 now: float, cfg: Reminders) -> list[NotificationEvent]:
    """Reminders for tickets still open, escalations of old ones, the daily summary.

    Acknowledged tickets (รับทราบ) get no reminders or escalation; the daily summary
    still lists them (they are open).

    Keys are derived from the ticket and the reminder's ordinal (or the date), so calling
    this every few seconds records each reminder exactly once.
    """
    out: list[NotificationEvent] = []
    active = [t for t in tickets if t["status"] in ACTIVE]
    for t in active:
        if t.get("acknowledged_at") is not None:
            continue  # รับทราบ: someone has it in hand, no reminders or escalation
        opened_at = float(t["opened_at"])
        age = now - opened_at
        subject = _subject(t)
        if cfg.remind_every and age >= cfg.remind_every:
            n = int(age // cfg.remind_every)
            out.append(ticket_reminder(subject, n, opened_at + n * cfg.remind_every, age))
        if cfg.escalate_after and age >= cfg.escalate_after:
            out.append(ticket_escalated(subject, opened_at + cfg.escalate_after, age))
    if cfg.daily_summary_at:
        local = datetime.fromtimestamp(now, BANGKOK)
        hh, mm = (int(x) for x in cfg.daily_summary_at.split(":"))
        due = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if 0 <= (local - due).total_seconds() < 600:  # missed while stopped: skipped
            ordered = sorted(active, key=lambda t: float(t["opened_at"]))
            out.append(daily_summary(
                due.date(), due.timestamp(), offline_schools,
                [SummaryTicket(t["id"], t.get("served_unit", ""), t["opened_at"])
                 for t in ordered]))
    return out
