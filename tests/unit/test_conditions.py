"""Conditions in the incident engine (injected clock): a standing problem of a device that
works — a TLS certificate about to expire — opens its own incident and ticket, and the
ticket is repaired when the condition ends, then auto-closed."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from monitord.domain.activehours import (
    ALWAYS,
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
    IncidentUpdated,
    Node,
    Policy,
    TicketAutoClosed,
    TicketInfo,
    TicketOpen,
    TicketRecovered,
    TicketRelapsed,
    condition_of,
    condition_root,
    root_device,
)
from monitord.domain.state import State

C = TypeVar("C")
BKK = ZoneInfo("Asia/Bangkok")
OFFICE_HOURS = Schedule("office", (WeeklyWindow(parse_days(["mon-fri"]),
                                                *parse_hours("08:30-16:30")),))
MON_9 = datetime(2026, 11, 23, 9, 0, tzinfo=BKK).timestamp()  # a Monday, office hours
KEY = "tls_cert_expiring"
REASON = "ใบรับรอง TLS ของ portal.example หมดอายุใน 9 วัน (2 ธ.ค. 2569): ต่ออายุใบรับรอง"
ROOT = "web-portal#tls_cert_expiring"


def nodes(schedule: Schedule | None = None) -> list[Node]:
    """An office switch with the web portal behind it (no school: office equipment)."""
    return [Node("core-sw", "switch", None, None, ticket_delay=60.0),
            Node("web-portal", "service", None, "core-sw", schedule or ALWAYS,
                 ticket_delay=600.0)]


def engine(ns: list[Node] | None = None, policy: Policy | None = None,
           maintenance: list[MaintenanceWindow] | None = None) -> IncidentEngine:
    e = IncidentEngine(BKK, policy or Policy(auto_close_after=3600.0))
    e.configure(ns or nodes(), Calendar(), maintenance or [])
    return e


def of(changes: list[Change], kind: type[C]) -> list[C]:
    return [c for c in changes if isinstance(c, kind)]


def test_roots() -> None:
    assert condition_root("web-portal", KEY) == ROOT
    assert condition_of(ROOT) == ("web-portal", KEY)
    assert condition_of("web-portal") is None and condition_of("isp:NT") is None
    assert root_device(ROOT) == "web-portal" and root_device("isp:NT") == "isp:NT"


def test_start_ticket_after_delay_end_repaired_then_auto_closed() -> None:
    e = engine()
    t = MON_9
    out = e.condition_started("web-portal", KEY, REASON, t)
    (opened,) = of(out, IncidentOpened)
    inc = opened.incident
    assert (inc.kind, inc.root, inc.reason, inc.school) == ("condition", ROOT, REASON, None)
    assert inc.hypothesis  # what kind of problem it is, in Thai
    assert e.condition_started("web-portal", KEY, REASON, t + 10) == []  # idempotent
    # the days left change: the open incident takes the new text (persisted)
    later = REASON.replace("9 วัน", "8 วัน")
    (upd,) = of(e.condition_started("web-portal", KEY, later, t + 20), IncidentUpdated)
    assert upd.incident.reason == later
    assert e.effective_state("web-portal", t) is State.UNKNOWN  # the state is untouched
    assert e.tick(t + 599) == []  # the device kind's ticket_delay
    (ticket,) = of(e.tick(t + 601), TicketOpen)
    assert ticket.incident.root == ROOT and ticket.incident.reason == later
    assert e.tick(t + 900) == []  # one ticket
    assert e.open_conditions() == [("web-portal", KEY)]

    out = e.condition_ended("web-portal", KEY, t + 1000)
    (closed,) = of(out, IncidentClosed)
    assert closed.incident.root == ROOT
    (rec,) = of(out, TicketRecovered)
    assert (rec.ticket_id, rec.down_seconds, rec.condition) == (ticket.ticket_id, 1000, KEY)
    info = e.ticket(ticket.ticket_id)
    assert info is not None and (info.status, info.root) == ("repaired", ROOT)
    assert e.condition_ended("web-portal", KEY, t + 1001) == []  # already ended
    assert e.open_conditions() == []
    assert e.tick(t + 1000 + 3599) == []
    (auto,) = of(e.tick(t + 1000 + 3600), TicketAutoClosed)
    assert auto.ticket_id == ticket.ticket_id


def test_ended_before_its_ticket_is_due_leaves_no_ticket() -> None:
    e = engine()
    e.condition_started("web-portal", KEY, REASON, MON_9)
    out = e.condition_ended("web-portal", KEY, MON_9 + 60)
    assert len(of(out, IncidentClosed)) == 1 and of(out, TicketRecovered) == []
    assert e.tick(MON_9 + 3600) == []


def test_seen_again_within_the_relapse_window_reopens_the_ticket() -> None:
    e = engine(policy=Policy(relapse_window=3600.0))
    e.condition_started("web-portal", KEY, REASON, MON_9)
    (ticket,) = of(e.tick(MON_9 + 601), TicketOpen)
    e.condition_ended("web-portal", KEY, MON_9 + 700)
    (rel,) = of(e.condition_started("web-portal", KEY, REASON, MON_9 + 800), TicketRelapsed)
    assert rel.ticket_id == ticket.ticket_id
    assert of(e.tick(MON_9 + 2000), TicketOpen) == []


def test_device_down_and_condition_are_independent() -> None:
    e = engine()
    t = MON_9
    e.condition_started("web-portal", KEY, REASON, t)
    # the portal stops answering: its own incident; the condition's stays open
    out = e.on_state("web-portal", State.DOWN, t + 5, "http: 3 consecutive failures", False)
    assert [i.incident.root for i in of(out, IncidentOpened)] == ["web-portal"]
    assert of(out, IncidentClosed) == []
    assert sorted(i.root for i in e.open_incidents()) == ["web-portal", ROOT]
    tickets = of(e.tick(t + 605), TicketOpen)
    assert sorted(x.incident.root for x in tickets) == ["web-portal", ROOT]
    # the switch above goes down: the portal's DOWN incident is explained by it (it has a
    # ticket, so it stays), the condition is no device incident and is never superseded
    e.on_state("core-sw", State.DOWN, t + 700, "", False)
    assert ROOT in {i.root for i in e.open_incidents()}
    # back up: the device incident closes, the condition does not (the cert is not renewed)
    e.on_state("core-sw", State.UP, t + 800, "", False)
    out = e.on_state("web-portal", State.UP, t + 800, "", False)
    assert [c.incident.root for c in of(out, IncidentClosed)] == ["web-portal"]
    assert [i.root for i in e.open_incidents()] == [ROOT]
    out = e.condition_ended("web-portal", KEY, t + 900)
    assert [c.incident.root for c in of(out, IncidentClosed)] == [ROOT]
    assert e.open_incidents() == []


def test_no_ticket_outside_active_hours_or_in_maintenance() -> None:
    sat = datetime(2026, 11, 28, 10, 0, tzinfo=BKK).timestamp()
    e = engine(nodes(OFFICE_HOURS))
    e.condition_started("web-portal", KEY, REASON, sat)
    assert e.tick(sat + 7200) == []  # a Saturday: outside the device's active hours
    mon = datetime(2026, 11, 30, 8, 30, tzinfo=BKK).timestamp()
    assert len(of(e.tick(mon + 1), TicketOpen)) == 1

    window = MaintenanceWindow("ย้ายเครื่องแม่ข่าย", datetime(2026, 11, 23, 8, 0, tzinfo=BKK),
                               datetime(2026, 11, 23, 12, 0, tzinfo=BKK),
                               devices=frozenset({"web-portal"}))
    e2 = engine(maintenance=[window])
    e2.condition_started("web-portal", KEY, REASON, MON_9)
    assert e2.tick(MON_9 + 3600) == []  # maintenance suppresses the ticket
    noon = datetime(2026, 11, 23, 12, 0, tzinfo=BKK).timestamp()
    (ticket,) = of(e2.tick(noon + 1), TicketOpen)
    assert ticket.incident.root == ROOT


def test_unknown_device_and_grouping() -> None:
    e = engine()
    assert e.condition_started("gone", KEY, REASON, MON_9) == []
    assert e.condition_ended("gone", KEY, MON_9) == []
    # a device incident is never ended as a condition
    e.on_state("web-portal", State.DOWN, MON_9, "", False)
    assert e.condition_ended("web-portal", KEY, MON_9 + 1) == []


def test_restore_resumes_the_condition() -> None:
    e = engine()
    e.condition_started("web-portal", KEY, REASON, MON_9)
    (ticket,) = of(e.tick(MON_9 + 601), TicketOpen)
    stored = e.open_incidents()
    # a restart: the incident and its ticket come back from the database
    e2 = engine()
    e2.restore(stored, [TicketInfo(ticket.ticket_id, ROOT, "open")], {},
               next_ticket_id=ticket.ticket_id + 1)
    assert e2.open_conditions() == [("web-portal", KEY)]
    assert e2.condition_started("web-portal", KEY, REASON, MON_9 + 700) == []
    assert e2.tick(MON_9 + 800) == []  # no second ticket
    (rec,) = of(e2.condition_ended("web-portal", KEY, MON_9 + 900), TicketRecovered)
    assert rec.ticket_id == ticket.ticket_id

    # restored before its ticket was due: due at the stored time + delay
    e3 = engine()
    e3.condition_started("web-portal", KEY, REASON, MON_9)
    e4 = engine()
    e4.restore(e3.open_incidents(), [], {}, next_ticket_id=5)
    assert e4.tick(MON_9 + 599) == []
    (opened,) = of(e4.tick(MON_9 + 601), TicketOpen)
    assert opened.ticket_id == 5 and opened.incident.root == ROOT


def test_tls_cert_expiring_wording() -> None:
    from monitord.probes.conditions import TLS_CERT_EXPIRING, tls_cert_expiring

    not_after = datetime(2026, 12, 2, 12, 0, tzinfo=BKK).timestamp()
    warn = 21 * 86400.0
    assert tls_cert_expiring("portal.example", not_after, not_after - 30 * 86400, warn) == {}
    (key, text), = tls_cert_expiring("portal.example", not_after,
                                     not_after - 9.5 * 86400, warn).items()
    assert key == TLS_CERT_EXPIRING == KEY
    assert text == ("ใบรับรอง TLS ของ portal.example หมดอายุใน 9 วัน (2 ธ.ค. 2569): "
                    "ต่ออายุใบรับรอง")
    assert "หมดอายุใน 1 วัน" in tls_cert_expiring("h", not_after, not_after - 60, warn)[KEY]
    assert "หมดอายุแล้วเมื่อ 2 ธ.ค. 2569" in tls_cert_expiring("h", not_after, not_after + 1,
                                                             warn)[KEY]
