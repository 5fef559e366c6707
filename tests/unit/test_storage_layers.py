"""The storage modules one by one (wall events, maintenance rows, the outbox) and the pure
domain rules they serve (the school rule, ticket statuses)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitord.domain.events import NotificationEvent, event_key
from monitord.domain.incidents import Incident, IncidentOpened, TicketOpen
from monitord.domain.school import link_devices, school_offline, school_state, school_up
from monitord.domain.state import State, Transition
from monitord.domain.tickets import ACTIVE, STATUS_TH, TicketStatus
from monitord.storage import Storage, outbox
from monitord.storage.events import recent_events
from monitord.storage.maintenance import db_window, readable_window


def test_school_rule() -> None:
    class Dev:
        def __init__(self, id: str, school: str | None, parent: str | None) -> None:
            self.id, self.school, self.parent = id, school, parent

    devices = [Dev("r1", "s1", None), Dev("ap", "s1", "r1"), Dev("r2", "s1", None),
               Dev("core", None, None), Dev("r3", "s2", None)]
    assert link_devices(devices) == {"s1": ["r1", "r2"], "s2": ["r3"]}
    assert school_state([State.UP, State.DOWN, State.DEGRADED]) is State.DOWN
    assert school_state([State.UP, State.MAINTENANCE]) is State.MAINTENANCE
    assert school_state([]) is State.UNKNOWN
    assert school_offline([State.UP, State.UNREACHABLE])
    assert school_up([State.UP, State.DEGRADED]) is True
    assert school_up([State.UP, State.DOWN]) is False
    assert school_up([State.UP, State.UNKNOWN]) is None and school_up([]) is None


def test_ticket_status_values_are_the_stored_strings() -> None:
    assert [str(s) for s in TicketStatus] == ["open", "scheduled", "in_repair", "repaired",
                                              "closed"]
    assert json.dumps({"s": TicketStatus.IN_REPAIR}) == '{"s": "in_repair"}'
    assert "scheduled" in ACTIVE and "closed" not in ACTIVE
    assert STATUS_TH["repaired"] == "ซ่อมเสร็จ"


async def test_recent_events_skip_first_sightings_and_repeated_statuses(tmp_path: Path
                                                                      ) -> None:
    store = await Storage.open(tmp_path / "m.db")
    try:
        await store.record_transitions([
            Transition("a", State.UNKNOWN, State.UP, 10.0, ""),  # first sighting: noise
            Transition("a", State.UP, State.DOWN, 20.0, "3 failures"),
        ])
        inc = Incident("i1", "device", "a", 20.0)
        await store.commit([], [IncidentOpened(inc), TicketOpen(1, inc, 30.0)], {})
        await store.update_ticket(1, "officer", note="called the school")  # same status
        await store.update_ticket(1, "officer", status="in_repair")
        got = await recent_events(store, 10)
        assert [(e.device_id, e.new, e.ts) for e in got.states] == [("a", State.DOWN, 20.0)]
        assert [(e.ticket_id, e.status, e.root) for e in got.tickets] == [
            (1, "in_repair", "a"), (1, "open", "a")]
        assert (await recent_events(store.connection, 1)).tickets[0].status == "in_repair"
    finally:
        await store.close()


async def test_maintenance_rows_become_domain_windows(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "m.db")
    try:
        await store.add_maintenance("weekly", None, None,
                                    weekly={"days": ["sat"], "hours": "02:00-04:00"},
                                    schools=["s1"], reason="backup")
        await store.add_maintenance("once", 1.0e9, 4.0e9, devices=["a"])
        await store.connection.execute(
            "INSERT INTO maintenance_window (name, weekly, created_at)"
            " VALUES ('broken', '{\"days\": 1}', 0)")
        rows = await store.maintenance()
        assert {r["name"] for r in rows} == {"weekly", "once", "broken"}
        once = db_window(next(r for r in rows if r["name"] == "once"))
        assert once.start == datetime.fromtimestamp(1.0e9, UTC) and once.devices == {"a"}
        windows = await store.maintenance_windows()  # the unreadable one is left out
        assert sorted(w.name for w in windows) == ["once", "weekly"]
        weekly = next(w for w in windows if w.name == "weekly")
        assert weekly.weekly is not None and weekly.schools == {"s1"}
        assert readable_window({"id": 9, "name": "x", "start": None, "end": None,
                                "weekly": None, "devices": "[]", "schools": "[]",
                                "kinds": "[]", "reason": ""}) is None
    finally:
        await store.close()


async def test_outbox_records_once_routes_and_updates(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "m.db")
    db = store.connection
    try:
        ev = NotificationEvent(event_key("t", 1), "test", 5.0, {"message": "hi"})
        await store.commit([], [], {}, [ev, ev])
        await store.commit([], [], {}, [ev])  # same key: recorded once
        made = await outbox.route_events(db, lambda e: [("a", e.ts), ("b", e.ts + 60)])
        assert made == 2
        assert await outbox.route_events(db, lambda e: [("a", 0.0)]) == 0  # routed
        due = await outbox.due_deliveries(db, "a", 10.0)
        assert [outbox.event_of(r) for r in due] == [ev]
        assert await outbox.due_deliveries(db, "b", 10.0) == []
        await outbox.update_deliveries(db, [due[0]["id"]], "pending", 20.0, 1, None, "k1")
        assert await outbox.due_deliveries(db, "a", 10.0) == []
        again = await outbox.due_deliveries(db, "a", 20.0)  # the unfinished message first
        assert [r["message_key"] for r in again] == ["k1"]
        await outbox.update_deliveries(db, [again[0]["id"]], "sent", 21.0, 1, "")
        assert await outbox.due_deliveries(db, "a", 99.0) == []
    finally:
        await store.close()
