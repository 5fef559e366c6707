"""Recent events for the wall display: the last state transitions, the last real
status changes of tickets and the last SNMP traps from devices, read-only.

First sightings (UNKNOWN → UP at start-up) are noise on a wall and are left out; an
officer's edit that repeats a ticket's current status is not a status change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiosqlite

from monitord.domain.state import State
from monitord.storage.store import Storage

TRANSITIONS_SQL = (
    "SELECT id, device_id, old_state, new_state, ts FROM state_transition "
    "WHERE NOT (old_state = 'unknown' AND new_state = 'up') ORDER BY id DESC LIMIT ?")
TICKET_EVENTS_SQL = (
    "SELECT id, ticket_id, ts, status, root FROM ("
    " SELECT e.id, e.ticket_id, e.ts, e.status, t.root,"
    "  LAG(e.status) OVER (PARTITION BY e.ticket_id ORDER BY e.id) AS prev"
    " FROM ticket_event e JOIN ticket t ON t.id = e.ticket_id)"
    " WHERE prev IS NULL OR prev <> status ORDER BY id DESC LIMIT ?")
TRAP_EVENTS_SQL = (
    "SELECT id, ts, detail FROM event WHERE kind = 'snmp_trap' ORDER BY id DESC LIMIT ?")

#: transitions read per event shown: devices removed from the config are skipped later
TRANSITIONS_PER_ROW = 3


@dataclass(frozen=True, slots=True)
class StateEvent:
    """A device changed state (``state_transition`` row ``id``)."""

    id: int
    device_id: str
    new: State
    ts: float


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """A ticket's status changed (``ticket_event`` row ``id``); ``status`` is the stored
    text (a :class:`~monitord.domain.tickets.TicketStatus` value)."""

    id: int
    ticket_id: int
    ts: float
    status: str
    root: str


@dataclass(frozen=True, slots=True)
class TrapRecord:
    """A device sent an SNMP trap (``event`` row ``id``, kind ``snmp_trap``): ``what`` is
    the trap (``linkDown ifIndex 2``)."""

    id: int
    device_id: str
    ts: float
    what: str


@dataclass(frozen=True, slots=True)
class RecentEvents:
    """Newest first, each list on its own; the caller merges and cuts."""

    states: list[StateEvent]
    tickets: list[TicketEvent]
    traps: list[TrapRecord] = field(default_factory=list)


async def recent_events(source: Storage | aiosqlite.Connection, limit: int) -> RecentEvents:
    """Up to ``limit`` ticket status changes and ``3 × limit`` state transitions (rows
    with a state this monitord does not know are skipped).  Raises what the database
    raises: a wall catches it and keeps running."""
    db = source.connection if isinstance(source, Storage) else source
    async with db.execute(TRANSITIONS_SQL, (limit * TRANSITIONS_PER_ROW,)) as cur:
        transitions = list(await cur.fetchall())
    async with db.execute(TICKET_EVENTS_SQL, (limit,)) as cur:
        ticket_rows = list(await cur.fetchall())
    async with db.execute(TRAP_EVENTS_SQL, (limit,)) as cur:
        trap_rows = list(await cur.fetchall())
    state_events = []
    for r in transitions:
        try:
            new = State(r["new_state"])
        except ValueError:
            continue
        state_events.append(StateEvent(int(r["id"]), str(r["device_id"]), new, float(r["ts"])))
    return RecentEvents(
        state_events,
        [TicketEvent(int(r["id"]), int(r["ticket_id"]), float(r["ts"]), str(r["status"]),
                     str(r["root"])) for r in ticket_rows],
        [TrapRecord(int(r["id"]), dev, float(r["ts"]), what) for r in trap_rows
         for dev, _, what in [str(r["detail"]).partition(" ")] if dev and what])
