"""The incident engine and manual tickets (รับแจ้ง): one numbering for both kinds, an
automatic ticket joining an active manual one that covers its device, a manual ticket
never repaired by the engine, and what a restart and the database sync keep."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from monitord.domain.activehours import Calendar
from monitord.domain.incidents import (
    Change,
    IncidentEngine,
    Node,
    Policy,
    TicketDeviceBack,
    TicketInfo,
    TicketJoined,
    TicketOpen,
    TicketRecovered,
)
from monitord.domain.state import State
from monitord.domain.tickets import TicketStatus

C = TypeVar("C")
BKK = ZoneInfo("Asia/Bangkok")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=BKK).timestamp()


def school(smis: str) -> list[Node]:
    return [
        Node(f"{smis}-rtr", "router", smis, None, ticket_delay=60.0, isp="NT"),
        Node(f"{smis}-sw", "switch", smis, f"{smis}-rtr", ticket_delay=60.0, isp="NT"),
        Node(f"{smis}-proj", "projector", smis, f"{smis}-sw", ticket_delay=60.0, isp="NT"),
    ]


def engine(*smis: str) -> IncidentEngine:
    e = IncidentEngine(BKK, Policy(group_by=""))
    e.configure([n for s in smis for n in school(s)], Calendar(), [])
    return e


def of(changes: list[Change], kind: type[C]) -> list[C]:
    return [c for c in changes if isinstance(c, kind)]


def down_and_due(e: IncidentEngine, dev: str, t: float) -> list[Change]:
    out = e.on_state(dev, State.DOWN, t, "icmp: 3 consecutive failures", False)
    return out + e.tick(t + 61)


def test_manual_and_automatic_tickets_share_the_numbers() -> None:
    e = engine("62020001", "62020002")
    e.restore([], [], {}, next_ticket_id=5)
    assert e.open_manual("62020001", ["62020001-proj"]) == 5
    (opened,) = of(down_and_due(e, "62020002-rtr", T0), TicketOpen)
    assert opened.ticket_id == 6
    assert e.open_manual("62020002", []) == 7
    info = e.ticket(7)
    assert info is not None and info.manual and info.school == "62020002"
    assert info.root == "school:62020002"


def test_device_of_a_manual_ticket_joins_it_and_is_not_repaired() -> None:
    e = engine("62020001")
    tid = e.open_manual("62020001", ["62020001-proj"])
    out = down_and_due(e, "62020001-proj", T0)
    assert of(out, TicketOpen) == []
    (joined,) = of(out, TicketJoined)
    assert joined.ticket_id == tid and joined.incident.root == "62020001-proj"
    inc = e.incident_for("62020001-proj")
    assert inc is not None and inc.ticket_id == tid
    assert e.tick(T0 + 200) == []  # not again
    back = e.on_state("62020001-proj", State.UP, T0 + 300, "", False)
    assert of(back, TicketRecovered) == []
    (note,) = of(back, TicketDeviceBack)
    assert note.ticket_id == tid and note.device_id == "62020001-proj"
    assert note.down_seconds == 300
    info = e.ticket(tid)
    assert info is not None and info.status == TicketStatus.OPEN  # a person closes it


def test_whole_school_manual_ticket_covers_every_device_of_the_school() -> None:
    e = engine("62020001", "62020002")
    tid = e.open_manual("62020001", [])
    (joined,) = of(down_and_due(e, "62020001-rtr", T0), TicketJoined)
    assert joined.ticket_id == tid
    # another school's router is not covered: a ticket of its own
    (opened,) = of(down_and_due(e, "62020002-rtr", T0), TicketOpen)
    assert opened.ticket_id == tid + 1


def test_a_manual_ticket_for_another_device_does_not_catch_the_router() -> None:
    e = engine("62020001")
    e.open_manual("62020001", ["62020001-proj"])
    out = down_and_due(e, "62020001-rtr", T0)
    assert len(of(out, TicketOpen)) == 1 and of(out, TicketJoined) == []


def test_closed_or_repaired_manual_ticket_is_not_joined() -> None:
    e = engine("62020001")
    tid = e.open_manual("62020001", ["62020001-proj"])
    # the database says it was repaired by an officer: no longer active
    e.sync_tickets([TicketInfo(tid, "62020001-proj", TicketStatus.REPAIRED, T0 - 10,
                               manual=True, devices=frozenset({"62020001-proj"}))])
    out = down_and_due(e, "62020001-proj", T0)
    assert [c.ticket_id for c in of(out, TicketOpen)] == [tid + 1]


def test_sync_forgets_closed_manual_tickets_but_not_unstored_ones() -> None:
    e = engine("62020001")
    stored = e.open_manual("62020001", ["62020001-proj"])
    pending = e.open_manual("62020001", ["62020001-sw"])
    info = e.ticket(stored)
    assert info is not None
    e.sync_tickets([info])  # the second is numbered but not written yet
    assert e.ticket(pending) is not None
    e.sync_tickets([])  # the first was closed (closed tickets are not listed)
    assert e.ticket(stored) is None and e.ticket(pending) is not None
    e.release_manual(pending)  # could not be stored
    assert e.ticket(pending) is None
    # numbers are never handed out twice, and follow the database (CLI reports)
    e.sync_tickets([], next_ticket_id=40)
    assert e.open_manual("62020001", []) == 40


def test_restore_knows_manual_tickets() -> None:
    e = engine("62020001")
    manual = TicketInfo(3, "school:62020001", TicketStatus.SCHEDULED, manual=True,
                        devices=frozenset({"62020001-rtr", "62020001-sw"}),
                        school="62020001")
    e.restore([], [manual], {}, next_ticket_id=4)
    (joined,) = of(down_and_due(e, "62020001-sw", T0), TicketJoined)
    assert joined.ticket_id == 3
    assert e.open_manual(None, ["x"]) == 4
