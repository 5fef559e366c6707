"""The incident engine with an injected clock: root causes, grouping, tickets, relapse."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from monitord.domain.activehours import (
    Calendar,
    MaintenanceWindow,
    Schedule,
    WeeklyWindow,
    parse_days,
    parse_hours,
)
from monitord.domain.incidents import (
    Change,
    IncidentClosed,
    IncidentEngine,
    IncidentOpened,
    Node,
    Policy,
    TicketInfo,
    TicketOpen,
    TicketRecovered,
    TicketRelapsed,
)
from monitord.domain.state import State

C = TypeVar("C")
BKK = ZoneInfo("Asia/Bangkok")
SCHOOL_HOURS = Schedule("school", (WeeklyWindow(parse_days(["mon-fri"]),
                                                *parse_hours("08:00-16:00")),))
MON_9 = datetime(2026, 11, 23, 9, 0, tzinfo=BKK).timestamp()  # a Monday, school hours


def school(smis: str, isp: str = "NT", delay: float = 60.0) -> list[Node]:
    return [
        Node(f"{smis}-rtr", "router", smis, None, ticket_delay=delay, isp=isp, district="d"),
        Node(f"{smis}-sw", "switch", smis, f"{smis}-rtr", ticket_delay=delay, isp=isp),
        Node(f"{smis}-tv", "tv", smis, f"{smis}-sw", SCHOOL_HOURS, ticket_delay=delay, isp=isp),
    ]


def engine(nodes: list[Node], policy: Policy | None = None,
           maintenance: list[MaintenanceWindow] | None = None) -> IncidentEngine:
    e = IncidentEngine(BKK, policy or Policy(group_min_schools=5, group_min_share=0.3))
    e.configure(nodes, Calendar(), maintenance or [])
    return e


def of(changes: list[Change], kind: type[C]) -> list[C]:
    return [c for c in changes if isinstance(c, kind)]


def test_parent_down_children_unreachable_one_incident() -> None:
    e = engine(school("62020001"))
    t = MON_9
    out = e.on_state("62020001-rtr", State.DOWN, t, "icmp: 3 consecutive failures", False)
    out += e.on_state("62020001-sw", State.DOWN, t + 1, "", False)
    out += e.on_state("62020001-tv", State.DOWN, t + 2, "", False)
    opened = of(out, IncidentOpened)
    assert len(opened) == 1 and opened[0].incident.root == "62020001-rtr"
    (inc,) = e.open_incidents()
    assert inc.affected == {"62020001-sw", "62020001-tv"}
    assert e.effective_state("62020001-rtr", t) is State.DOWN
    assert e.effective_state("62020001-sw", t) is State.UNREACHABLE
    assert e.effective_state("62020001-tv", t) is State.UNREACHABLE
    # One ticket, after the delay, listing the root cause only once.
    assert e.tick(t + 30) == []
    tickets = of(e.tick(t + 61), TicketOpen)
    assert len(tickets) == 1 and tickets[0].incident.root == "62020001-rtr"
    assert e.tick(t + 120) == []  # not twice


def test_child_first_then_parent_supersedes_child_incident() -> None:
    e = engine(school("62020001"))
    t = MON_9
    e.on_state("62020001-tv", State.DOWN, t, "", False)
    assert [i.root for i in e.open_incidents()] == ["62020001-tv"]
    out = e.on_state("62020001-rtr", State.DOWN, t + 5, "", False)
    closed = of(out, IncidentClosed)
    assert [c.incident.root for c in closed] == ["62020001-tv"]
    assert [i.root for i in e.open_incidents()] == ["62020001-rtr"]
    assert e.open_incidents()[0].affected == {"62020001-tv"}


def test_parent_recovers_child_still_down_becomes_root() -> None:
    e = engine(school("62020001"))
    t = MON_9
    e.on_state("62020001-rtr", State.DOWN, t, "", False)
    e.on_state("62020001-tv", State.DOWN, t + 1, "", False)
    e.on_state("62020001-rtr", State.UP, t + 100, "", False)
    assert [i.root for i in e.open_incidents()] == ["62020001-tv"]
    assert e.effective_state("62020001-tv", t + 100) is State.DOWN


def test_no_ticket_outside_active_hours_or_in_maintenance() -> None:
    sat = datetime(2026, 11, 28, 10, 0, tzinfo=BKK).timestamp()
    e = engine(school("62020001"))
    e.on_state("62020001-tv", State.DOWN, sat, "", False)
    assert e.tick(sat + 3600) == []  # Saturday: TVs are not expected on
    mon_8 = datetime(2026, 11, 30, 8, 0, tzinfo=BKK).timestamp()
    assert len(of(e.tick(mon_8 + 1), TicketOpen)) == 1  # Monday morning it is due
    # A maintenance window over the school suppresses tickets and shows MAINTENANCE.
    window = MaintenanceWindow("ย้ายตู้", datetime(2026, 11, 23, 8, 0, tzinfo=BKK),
                               datetime(2026, 11, 23, 12, 0, tzinfo=BKK),
                               schools=frozenset({"62020002"}))
    e2 = engine(school("62020002"), maintenance=[window])
    e2.on_state("62020002-rtr", State.DOWN, MON_9, "", False)
    assert e2.effective_state("62020002-rtr", MON_9) is State.MAINTENANCE
    assert e2.tick(MON_9 + 3600) == []
    noon = datetime(2026, 11, 23, 12, 0, tzinfo=BKK).timestamp()
    assert len(of(e2.tick(noon + 1), TicketOpen)) == 1


def test_recovery_then_relapse_reopens_same_ticket() -> None:
    e = engine(school("62020001"), Policy(relapse_window=3600))
    t = MON_9
    e.on_state("62020001-rtr", State.DOWN, t, "", False)
    (opened,) = of(e.tick(t + 61), TicketOpen)
    tid = opened.ticket_id
    (rec,) = of(e.on_state("62020001-rtr", State.UP, t + 300, "", False), TicketRecovered)
    assert rec.ticket_id == tid and rec.down_seconds == 300
    info = e.ticket(tid)
    assert info is not None and info.status == "repaired"
    (rel,) = of(e.on_state("62020001-rtr", State.DOWN, t + 900, "", False), TicketRelapsed)
    assert rel.ticket_id == tid
    assert of(e.tick(t + 2000), TicketOpen) == []  # no second ticket
    # After the relapse window a new failure is a new ticket.
    e.on_state("62020001-rtr", State.UP, t + 3000, "", False)
    e.on_state("62020001-rtr", State.DOWN, t + 3000 + 3601, "", False)
    (second,) = of(e.tick(t + 3000 + 3601 + 61), TicketOpen)
    assert second.ticket_id == tid + 1


def test_officer_closed_ticket_is_not_reopened() -> None:
    e = engine(school("62020001"), Policy(relapse_window=3600))
    e.on_state("62020001-rtr", State.DOWN, MON_9, "", False)
    (opened,) = of(e.tick(MON_9 + 61), TicketOpen)
    tid = opened.ticket_id
    e.on_state("62020001-rtr", State.UP, MON_9 + 100, "", False)
    e.sync_tickets([TicketInfo(tid, "62020001-rtr", "closed")])
    assert of(e.on_state("62020001-rtr", State.DOWN, MON_9 + 200, "", False),
              TicketRelapsed) == []


def test_flapping_device_stays_in_one_incident() -> None:
    e = engine(school("62020001"))
    t = MON_9
    opened = 0
    for i in range(10):
        out = e.on_state("62020001-sw", State.DOWN if i % 2 == 0 else State.UP, t + i, "", True)
        opened += len(of(out, IncidentOpened))
        assert not of(out, IncidentClosed)
    assert opened == 1
    # It settles UP and stops flapping: now the incident closes.
    out = e.on_state("62020001-sw", State.UP, t + 20, "", False)
    assert len(of(out, IncidentClosed)) == 1


def test_many_schools_on_one_isp_are_one_upstream_incident() -> None:
    nodes: list[Node] = []
    for i in range(1, 13):
        nodes += school(f"620200{i:02d}", isp="NT" if i <= 10 else "TRUE")
    e = engine(nodes)
    t = MON_9
    for i in range(1, 11):
        e.on_state(f"620200{i:02d}-rtr", State.DOWN, t + i, "", False)
    upstream = [i for i in e.open_incidents() if i.kind == "upstream"]
    assert len(upstream) == 1 and upstream[0].root == "isp:NT"
    assert len(upstream[0].affected) == 10
    assert "NT" in upstream[0].hypothesis and "10 จาก 10" in upstream[0].hypothesis
    tickets = of(e.tick(t + 200), TicketOpen)
    assert [c.incident.root for c in tickets] == ["isp:NT"]
    # A school on another ISP still gets its own ticket.
    e.on_state("62020011-rtr", State.DOWN, t + 300, "", False)
    assert [c.incident.root for c in of(e.tick(t + 400), TicketOpen)] == ["62020011-rtr"]
    # All NT schools recover: the upstream incident closes and its ticket is repaired.
    out: list[Change] = []
    for i in range(1, 11):
        out += e.on_state(f"620200{i:02d}-rtr", State.UP, t + 1000 + i, "", False)
    assert any(isinstance(c, IncidentClosed) and c.incident.root == "isp:NT" for c in out)
    assert len(of(out, TicketRecovered)) == 1


def test_restore_resumes_timers_from_stored_times() -> None:
    e = engine(school("62020001"))
    e.on_state("62020001-rtr", State.DOWN, MON_9, "", False)
    stored = e.open_incidents()
    # A new engine after a restart: the ticket is due at the stored time + delay.
    e2 = engine(school("62020001"))
    e2.restore(stored, [], {"62020001-rtr": State.DOWN}, next_ticket_id=7)
    assert e2.tick(MON_9 + 59) == []
    (opened,) = of(e2.tick(MON_9 + 61), TicketOpen)
    assert opened.ticket_id == 7
