"""Incidents: from device states to one problem per root cause, and when to ticket it.

Input: the *observed* state of every device (from :mod:`monitord.domain.state`) and the
topology (parents, schools, ISPs).  Output: *effective* states (UNREACHABLE when an
ancestor is down, MAINTENANCE inside a window) and :class:`Change` records — incident
opened/updated/closed, ticket to open, ticket recovered or relapsed — which the daemon
commits to SQLite in the same transaction as the state change that caused them.

Rules:

* A device that is DOWN while no ancestor is DOWN is a **root cause**: it gets an
  incident.  Its DOWN or UNREACHABLE descendants are listed as *affected* and get no
  incident (and no ticket) of their own.
* When ``min_schools`` school routers on the same ISP (or in the same district) go DOWN
  within ``window`` — and they are at least ``min_share`` of that ISP's schools — their
  incidents are grouped under one **upstream** incident whose hypothesis says so; the
  upstream incident gets the one ticket.
* A ticket is due when a root incident has been open ≥ the device kind's ``ticket_delay``
  and the root device is inside its active hours and not under maintenance.
* A device that recovers closes its incident — unless it is *flapping* (see
  :mod:`monitord.domain.state`), in which case the incident stays open until it settles.  The
  ticket is then marked repaired; if the same device fails again within
  ``relapse_window`` the same ticket is reopened instead of a new one.
* A **condition** is a standing problem of a device that works (a TLS certificate that
  expires within the warning window: "renew the certificate").  A probe reports it by
  key (:attr:`monitord.probes.base.Observation.conditions`); it gets an incident of kind
  ``condition`` whose root is ``<device>#<key>`` (``#`` never occurs in a device id), so
  it never collides with the device's own incident: the device may be DOWN too, and
  neither supersedes the other.  Its ticket falls due like a device's (the device's
  ``ticket_delay``, active hours, maintenance), it is never grouped upstream nor joins a
  manual ticket, and it is repaired when the condition ends
  (:meth:`IncidentEngine.condition_ended`), then auto-closed like any other.
* Manual tickets (รับแจ้ง: a person reported a fault by phone, LINE, …) take their number
  from the same counter (:meth:`IncidentEngine.open_manual`).  When a ticket falls due
  for a device that an active manual ticket covers (the device is in its equipment, or
  the manual ticket covers the device's whole school), the incident *joins* that ticket
  instead of opening a second one.  A manual ticket is never marked repaired by the
  engine: when its device comes back that is only noted (a person closes it).

The engine is synchronous, does no I/O and takes the time as an argument, so tests
drive it with an injected clock and the daemon can call it from its event loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from monitord.domain.activehours import (
    ALWAYS,
    Calendar,
    MaintenanceWindow,
    Schedule,
    in_maintenance,
)
from monitord.domain.state import State
from monitord.domain.tickets import ACTIVE, TicketStatus, school_root

DOWNISH = (State.DOWN, State.UNREACHABLE)


@dataclass(frozen=True, slots=True)
class Node:
    """A device as the incident engine sees it."""

    device_id: str
    kind: str
    school: str | None
    parent: str | None
    schedule: Schedule = ALWAYS
    ticket_delay: float = 600.0
    isp: str = ""
    district: str = ""

    @property
    def is_school_gateway(self) -> bool:
        """A school's top device (no parent): it stands for the school's connectivity."""
        return self.school is not None and self.parent is None


@dataclass(frozen=True, slots=True)
class Policy:
    relapse_window: float = 86400.0
    group_by: str = "isp"  # "isp", "district" or "" (no upstream grouping)
    group_min_schools: int = 5
    group_min_share: float = 0.3
    group_window: float = 300.0
    auto_close_after: float | None = None  # close repaired tickets after this long


@dataclass(slots=True)
class Incident:
    id: str
    kind: str  # "device", "upstream" or "condition"
    root: str  # device id, "isp:<name>" / "district:<name>", or "<device>#<condition key>"
    opened_at: float
    reason: str = ""
    hypothesis: str = ""
    school: str | None = None
    affected: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=set)  # upstream: member incident ids
    parent_incident: str | None = None
    closed_at: float | None = None
    ticket_id: int | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """What the engine remembers of a ticket (officers own the rest, in the database)."""

    id: int
    root: str
    status: str  # a TicketStatus value
    repaired_at: float | None = None
    #: a manual ticket (รับแจ้ง): never repaired by the engine; automatic tickets for
    #: the devices it covers join it
    manual: bool = False
    #: manual: the devices it covers (its equipment)
    devices: frozenset[str] = frozenset()
    #: manual: the school it covers as a whole (every device of the school)
    school: str | None = None

    def covers(self, node: Node) -> bool:
        """Does this manual ticket cover the device?"""
        return self.manual and (node.device_id in self.devices
                                or (self.school is not None and node.school == self.school))


# -- changes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentOpened:
    incident: Incident


@dataclass(frozen=True, slots=True)
class IncidentUpdated:
    incident: Incident


@dataclass(frozen=True, slots=True)
class IncidentClosed:
    incident: Incident


@dataclass(frozen=True, slots=True)
class TicketOpen:
    ticket_id: int
    incident: Incident
    ts: float


@dataclass(frozen=True, slots=True)
class TicketRecovered:
    ticket_id: int
    ts: float
    down_seconds: float
    #: a condition's ticket: its key (the condition is no longer seen), else ""
    condition: str = ""


@dataclass(frozen=True, slots=True)
class TicketRelapsed:
    ticket_id: int
    incident: Incident
    ts: float


@dataclass(frozen=True, slots=True)
class TicketAutoClosed:
    ticket_id: int
    ts: float


@dataclass(frozen=True, slots=True)
class TicketJoined:
    """A ticket was due for ``incident``, whose root device an active manual ticket
    covers: the incident joins that ticket instead of opening another."""

    ticket_id: int
    incident: Incident
    ts: float


@dataclass(frozen=True, slots=True)
class TicketDeviceBack:
    """The device of an incident that joined a manual ticket works again; the manual
    ticket stays as it is (a person closes it)."""

    ticket_id: int
    device_id: str
    ts: float
    down_seconds: float


Change = (IncidentOpened | IncidentUpdated | IncidentClosed | TicketOpen | TicketRecovered
          | TicketRelapsed | TicketAutoClosed | TicketJoined | TicketDeviceBack)


def _snapshot(inc: Incident) -> Incident:
    return replace(inc, affected=set(inc.affected), members=set(inc.members))


class IncidentEngine:
    def __init__(self, tz: ZoneInfo, policy: Policy | None = None) -> None:
        self.tz = tz
        self.policy = policy or Policy()
        self._nodes: dict[str, Node] = {}
        self._children: dict[str, list[str]] = {}
        self._calendar = Calendar()
        self._maintenance: list[MaintenanceWindow] = []
        self._observed: dict[str, State] = {}
        self._flapping: set[str] = set()
        self._by_root: dict[str, Incident] = {}  # open incidents by root
        self._incidents: dict[str, Incident] = {}  # open incidents by id
        self._tickets: dict[int, TicketInfo] = {}
        self._last_ticket_of_root: dict[str, int] = {}
        self._down_since: dict[str, float] = {}  # school gateways currently down
        self._next_ticket = 1
        #: manual tickets numbered here but not yet seen in the database
        self._unstored: set[int] = set()
        self._ids = itertools.count(1)

    # -- configuration -------------------------------------------------------------

    def configure(self, nodes: Iterable[Node], calendar: Calendar,
                  maintenance: Sequence[MaintenanceWindow], policy: Policy | None = None
                  ) -> None:
        self._nodes = {n.device_id: n for n in nodes}
        self._children = {}
        for n in self._nodes.values():
            if n.parent is not None and n.parent in self._nodes:
                self._children.setdefault(n.parent, []).append(n.device_id)
        self._calendar = calendar
        self._maintenance = list(maintenance)
        if policy is not None:
            self.policy = policy

    def set_maintenance(self, maintenance: Sequence[MaintenanceWindow]) -> None:
        self._maintenance = list(maintenance)

    def restore(self, incidents: Iterable[Incident], tickets: Iterable[TicketInfo],
                observed: Mapping[str, State], next_ticket_id: int) -> None:
        """Resume open incidents and ticket knowledge persisted by an earlier run."""
        self._observed = dict(observed)
        for inc in incidents:
            if inc.open:
                self._incidents[inc.id] = inc
                self._by_root[inc.root] = inc
        for t in tickets:
            self._tickets[t.id] = t
            if t.manual:
                continue
            prev = self._last_ticket_of_root.get(t.root)
            if prev is None or prev < t.id:
                self._last_ticket_of_root[t.root] = t.id
        self._next_ticket = max(self._next_ticket, next_ticket_id)
        for dev, st in self._observed.items():
            node = self._nodes.get(dev)
            if node is not None and node.is_school_gateway and st is State.DOWN:
                found = self._by_root.get(dev)
                self._down_since[dev] = found.opened_at if found else 0.0

    def sync_tickets(self, tickets: Iterable[TicketInfo], next_ticket_id: int | None = None
                     ) -> None:
        """Adopt ticket statuses changed by officers (CLI/API) in the database.

        ``tickets``: every ticket that is not closed.  Manual tickets missing from it were
        closed (or never stored) and are forgotten, except those numbered here a moment
        ago and not written yet.  ``next_ticket_id``: the database's next free number
        (a manual ticket stored by the CLI took one)."""
        seen: set[int] = set()
        for t in tickets:
            self._tickets[t.id] = t
            seen.add(t.id)
            self._unstored.discard(t.id)
        for tid, info in list(self._tickets.items()):
            if info.manual and tid not in seen and tid not in self._unstored:
                del self._tickets[tid]
        if next_ticket_id is not None:
            self._next_ticket = max(self._next_ticket, next_ticket_id)

    def open_manual(self, school: str | None, devices: Iterable[str] = ()) -> int:
        """Number a manual ticket (รับแจ้ง) from the same counter as automatic ones and
        remember what it covers: ``devices``, or the whole ``school`` when there are
        none.  The caller stores it (or gives the number back: :meth:`release_manual`)."""
        devs = tuple(devices)
        tid = self._next_ticket
        self._next_ticket += 1
        root = devs[0] if devs else school_root(school) if school else "office"
        self._tickets[tid] = TicketInfo(tid, root, TicketStatus.OPEN, manual=True,
                                        devices=frozenset(devs),
                                        school=school if not devs else None)
        self._unstored.add(tid)
        return tid

    def release_manual(self, ticket_id: int) -> None:
        """A manual ticket numbered by :meth:`open_manual` was not stored after all."""
        self._unstored.discard(ticket_id)
        info = self._tickets.get(ticket_id)
        if info is not None and info.manual:
            del self._tickets[ticket_id]

    def manual_ticket_for(self, device_id: str) -> TicketInfo | None:
        """The newest active manual ticket that covers the device, if any."""
        node = self._nodes.get(device_id)
        if node is None:
            return None
        found = [t for t in self._tickets.values()
                 if t.manual and t.status in ACTIVE and t.covers(node)]
        return max(found, key=lambda t: t.id) if found else None

    # -- queries -------------------------------------------------------------------

    def open_incidents(self) -> list[Incident]:
        return list(self._incidents.values())

    def incident_for(self, device_id: str) -> Incident | None:
        return self._by_root.get(device_id)

    def ticket(self, ticket_id: int) -> TicketInfo | None:
        return self._tickets.get(ticket_id)

    def tickets(self) -> list[TicketInfo]:
        return list(self._tickets.values())

    def node(self, device_id: str) -> Node | None:
        return self._nodes.get(device_id)

    def group_size(self, key: str) -> int:
        """How many school gateways an upstream group (``isp:NT``) has."""
        return sum(1 for n in self._nodes.values()
                   if n.is_school_gateway and self._group_key(n) == key)

    def in_maintenance(self, device_id: str, now: float) -> MaintenanceWindow | None:
        if not self._maintenance:  # the usual case: no date to work out per device
            return None
        node = self._nodes.get(device_id)
        if node is None:
            return None
        return in_maintenance(self._maintenance, datetime.fromtimestamp(now, self.tz), self.tz,
                              device=node.device_id, school=node.school, kind=node.kind)

    def active(self, device_id: str, now: float) -> bool:
        node = self._nodes.get(device_id)
        if node is None:
            return False
        return node.schedule.active(datetime.fromtimestamp(now, self.tz), self._calendar)

    def effective_state(self, device_id: str, now: float) -> State:
        """Observed state, with UNREACHABLE below a down ancestor and MAINTENANCE."""
        observed = self._observed.get(device_id, State.UNKNOWN)
        if self.in_maintenance(device_id, now) is not None:
            return State.MAINTENANCE
        if observed in DOWNISH and self._down_ancestor(device_id) is not None:
            return State.UNREACHABLE
        return observed

    def _down_ancestor(self, device_id: str) -> str | None:
        """The topmost DOWN ancestor, if any (bounded by the number of devices)."""
        found = None
        node = self._nodes.get(device_id)
        for _ in range(len(self._nodes)):
            if node is None or node.parent is None:
                break
            parent = self._nodes.get(node.parent)
            if parent is None:
                break
            if self._observed.get(parent.device_id) is State.DOWN:
                found = parent.device_id
            node = parent
        return found

    def descendants(self, device_id: str) -> list[str]:
        """Every device below ``device_id`` (their effective state follows its state)."""
        return self._descendants(device_id)

    def maintenance_signature(self, now: float) -> tuple[tuple[MaintenanceWindow, bool], ...]:
        """The maintenance windows and which are in force at ``now``: when this changes,
        devices' effective states may have (MAINTENANCE)."""
        if not self._maintenance:
            return ()
        when = datetime.fromtimestamp(now, self.tz)
        return tuple((w, w.active(when, self.tz)) for w in self._maintenance)

    def _descendants(self, device_id: str) -> list[str]:
        out: list[str] = []
        stack = list(self._children.get(device_id, ()))
        seen: set[str] = set()
        while stack:
            dev = stack.pop()
            if dev in seen:
                continue
            seen.add(dev)
            out.append(dev)
            stack.extend(self._children.get(dev, ()))
        return out

    # -- events --------------------------------------------------------------------

    def on_state(self, device_id: str, new: State, ts: float, reason: str,
                 flapping: bool) -> list[Change]:
        """A device's observed state changed (or its flapping flag did)."""
        if device_id not in self._nodes:
            return []
        old = self._observed.get(device_id, State.UNKNOWN)
        self._observed[device_id] = new
        if flapping:
            self._flapping.add(device_id)
        else:
            self._flapping.discard(device_id)
        changes: list[Change] = []
        working = new in (State.UP, State.DEGRADED)
        if new is State.DOWN and old is not State.DOWN:
            changes += self._went_down(device_id, ts, reason)
        elif working and old is State.DOWN:
            changes += self._came_back(device_id, ts)
        if working and not flapping:
            changes += self._maybe_close(device_id, ts)
        return changes

    def condition_started(self, device_id: str, key: str, reason: str, ts: float
                          ) -> list[Change]:
        """A probe reports a standing problem ``key`` of the device (again): open its
        incident (reopening the ticket repaired within the relapse window), or note a new
        ``reason`` text (the days left) on the open one.  Idempotent."""
        node = self._nodes.get(device_id)
        if node is None:
            return []
        root = condition_root(device_id, key)
        inc = self._by_root.get(root)
        if inc is not None:
            if not reason or reason == inc.reason:
                return []
            inc.reason = reason
            return [IncidentUpdated(_snapshot(inc))]
        inc = Incident(self._new_id(ts), "condition", root, ts, reason=reason or key,
                       hypothesis=condition_hypothesis(), school=node.school)
        self._incidents[inc.id] = inc
        self._by_root[root] = inc
        changes: list[Change] = [IncidentOpened(_snapshot(inc))]
        changes += self._relapse(inc, ts)
        return changes

    def condition_ended(self, device_id: str, key: str, ts: float) -> list[Change]:
        """The probe that reported ``key`` answered without it: close the incident and
        mark its ticket repaired (auto-closed later like any other)."""
        inc = self._by_root.get(condition_root(device_id, key))
        if inc is None or inc.kind != "condition":
            return []
        return self._close(inc, ts)

    def open_conditions(self) -> list[tuple[str, str]]:
        """(device, key) of every open condition incident (after a restore: what the
        pipeline must watch for an end)."""
        out = []
        for inc in self._incidents.values():
            if inc.kind == "condition" and (cond := condition_of(inc.root)) is not None:
                out.append(cond)
        return sorted(out)

    def _went_down(self, device_id: str, ts: float, reason: str) -> list[Change]:
        node = self._nodes[device_id]
        changes: list[Change] = []
        if node.is_school_gateway:
            self._down_since[device_id] = ts
        ancestor = self._down_ancestor(device_id)
        if ancestor is not None:
            # Not a root cause: the ancestor's incident lists it as affected.
            root_inc = self._by_root.get(ancestor)
            if root_inc is not None and device_id not in root_inc.affected:
                root_inc.affected.add(device_id)
                changes.append(IncidentUpdated(_snapshot(root_inc)))
            return changes
        inc = self._by_root.get(device_id)
        if inc is None:
            inc = Incident(self._new_id(ts), "device", device_id, ts, reason=reason,
                           school=node.school)
            inc.affected = {d for d in self._descendants(device_id)
                            if self._observed.get(d) in DOWNISH}
            inc.hypothesis = device_hypothesis(node.is_school_gateway, node.isp)
            self._incidents[inc.id] = inc
            self._by_root[device_id] = inc
            changes.append(IncidentOpened(_snapshot(inc)))
            # Descendants that had incidents of their own are now explained by this one.
            for dev in self._descendants(device_id):
                child_inc = self._by_root.get(dev)
                if child_inc is not None and child_inc.ticket_id is None:
                    changes += self._close(child_inc, ts, superseded_by=inc)
            changes += self._relapse(inc, ts)
        if node.is_school_gateway:
            changes += self._group_upstream(node, ts)
        return changes

    def _relapse(self, inc: Incident, ts: float) -> list[Change]:
        """Reopen the device's last ticket if it was repaired within the relapse window."""
        tid = self._last_ticket_of_root.get(inc.root)
        info = self._tickets.get(tid) if tid is not None else None
        if (info is None or info.status != TicketStatus.REPAIRED or info.repaired_at is None
                or ts - info.repaired_at > self.policy.relapse_window):
            return []
        inc.ticket_id = info.id
        self._tickets[info.id] = replace(info, status=TicketStatus.OPEN, repaired_at=None)
        return [TicketRelapsed(info.id, _snapshot(inc), ts)]

    def _came_back(self, device_id: str, ts: float) -> list[Change]:
        changes: list[Change] = []
        self._down_since.pop(device_id, None)
        # Devices below it that are still down may be root causes of their own now.
        for dev in self._descendants(device_id):
            if self._observed.get(dev) is State.DOWN and self._down_ancestor(dev) is None \
                    and dev not in self._by_root:
                changes += self._went_down(dev, ts, "still down after its parent recovered")
        return changes

    def _maybe_close(self, device_id: str, ts: float) -> list[Change]:
        inc = self._by_root.get(device_id)
        if inc is None or device_id in self._flapping:
            return []
        return self._close(inc, ts)

    def _close(self, inc: Incident, ts: float, superseded_by: Incident | None = None
               ) -> list[Change]:
        changes: list[Change] = []
        inc.closed_at = ts
        self._incidents.pop(inc.id, None)
        if self._by_root.get(inc.root) is inc:
            del self._by_root[inc.root]
        if superseded_by is not None:
            inc.parent_incident = superseded_by.id
        changes.append(IncidentClosed(_snapshot(inc)))
        if inc.ticket_id is not None:
            info = self._tickets.get(inc.ticket_id)
            if info is not None and info.manual:
                if info.status in ACTIVE:  # a person reported it: a person closes it
                    changes.append(TicketDeviceBack(info.id, inc.root, ts, ts - inc.opened_at))
            elif info is not None and info.status not in (TicketStatus.CLOSED,
                                                          TicketStatus.REPAIRED):
                self._tickets[info.id] = replace(info, status=TicketStatus.REPAIRED, repaired_at=ts)
                cond = condition_of(inc.root) if inc.kind == "condition" else None
                changes.append(TicketRecovered(info.id, ts, ts - inc.opened_at,
                                               cond[1] if cond else ""))
        if inc.parent_incident is not None and superseded_by is None:
            parent = self._incidents.get(inc.parent_incident)
            if parent is not None:
                parent.members.discard(inc.id)
                parent.affected.discard(inc.root)
                if parent.members:
                    changes.append(IncidentUpdated(_snapshot(parent)))
                else:
                    changes += self._close(parent, ts)
        return changes

    # -- upstream grouping ---------------------------------------------------------

    def _group_key(self, node: Node) -> str:
        if self.policy.group_by == "isp" and node.isp:
            return f"isp:{node.isp}"
        if self.policy.group_by == "district" and node.district:
            return f"district:{node.district}"
        return ""

    def _group_upstream(self, node: Node, ts: float) -> list[Change]:
        key = self._group_key(node)
        if not key:
            return []
        peers = [n for n in self._nodes.values()
                 if n.is_school_gateway and self._group_key(n) == key]
        recent = [n for n in peers
                  if n.device_id in self._down_since
                  and ts - self._down_since[n.device_id] <= self.policy.group_window]
        upstream = self._by_root.get(key)
        if upstream is None:
            if (len(recent) < self.policy.group_min_schools
                    or len(recent) < self.policy.group_min_share * len(peers)):
                return []
            upstream = Incident(self._new_id(ts), "upstream", key, ts)
            self._incidents[upstream.id] = upstream
            self._by_root[key] = upstream
            changes: list[Change] = [IncidentOpened(_snapshot(upstream))]
            members = recent
        else:
            changes = []
            members = [node]
        for n in members:
            inc = self._by_root.get(n.device_id)
            if inc is None or inc.parent_incident == upstream.id:
                continue
            inc.parent_incident = upstream.id
            upstream.members.add(inc.id)
            upstream.affected.add(n.device_id)
            changes.append(IncidentUpdated(_snapshot(inc)))
        upstream.hypothesis = upstream_hypothesis(key, len(upstream.affected), len(peers))
        changes.append(IncidentUpdated(_snapshot(upstream)))
        return changes

    # -- timers --------------------------------------------------------------------

    def tick(self, now: float) -> list[Change]:
        """Open tickets that are due; auto-close repaired tickets that stayed well."""
        changes: list[Change] = []
        for inc in list(self._incidents.values()):
            if inc.ticket_id is not None or inc.parent_incident is not None:
                continue
            if self._ticket_due(inc, now):
                manual = (self.manual_ticket_for(inc.root) if inc.kind == "device"
                          else None)
                if manual is not None:
                    inc.ticket_id = manual.id
                    changes.append(TicketJoined(manual.id, _snapshot(inc), now))
                    continue
                inc.ticket_id = self._next_ticket
                self._next_ticket += 1
                self._tickets[inc.ticket_id] = TicketInfo(inc.ticket_id, inc.root,
                                                           TicketStatus.OPEN)
                self._last_ticket_of_root[inc.root] = inc.ticket_id
                changes.append(TicketOpen(inc.ticket_id, _snapshot(inc), now))
        limit = self.policy.auto_close_after
        if limit is not None:
            for info in list(self._tickets.values()):
                if (info.status == TicketStatus.REPAIRED and info.repaired_at is not None
                        and now - info.repaired_at >= limit):
                    self._tickets[info.id] = replace(info, status=TicketStatus.CLOSED)
                    changes.append(TicketAutoClosed(info.id, now))
        return changes

    def _ticket_due(self, inc: Incident, now: float) -> bool:
        if inc.kind == "upstream":
            member_nodes = [self._nodes[d] for d in inc.affected if d in self._nodes]
            delay = min((n.ticket_delay for n in member_nodes), default=600.0)
            active = any(self.active(n.device_id, now) for n in member_nodes)
            return active and now - inc.opened_at >= delay
        node = self._nodes.get(root_device(inc.root))
        if node is None:
            return False
        return (now - inc.opened_at >= node.ticket_delay and self.active(node.device_id, now)
                and self.in_maintenance(node.device_id, now) is None)

    # -- text ----------------------------------------------------------------------

    def _new_id(self, ts: float) -> str:
        return f"{int(ts)}-{next(self._ids)}"


# -- words ---------------------------------------------------------------------------
# Hypotheses are stored in Thai (the repair report is a Thai form); notifications word
# them again in their own language (``notify.lang``) from the same facts.  Each says one
# thing once: how many devices are affected is said by the message or the report's
# equipment list, never again here.

_WORDS: dict[str, dict[str, str]] = {
    "th": {
        "isp": "ผู้ให้บริการ {name}",
        "district": "อำเภอ{name}",
        "gateway": "เราเตอร์/อุปกรณ์หลักของโรงเรียนไม่ตอบสนอง: ตรวจสอบไฟฟ้า อุปกรณ์ "
                   "และสัญญาณอินเทอร์เน็ตจาก{isp}",
        "any_isp": "ผู้ให้บริการ",
        "device": "อุปกรณ์ไม่ตอบสนองขณะที่อุปกรณ์ต้นทางยังทำงานปกติ: ตรวจสอบไฟฟ้าและสายสัญญาณ",
        "upstream_isp": "โรงเรียนที่ใช้{group} ขัดข้องพร้อมกัน {down} จาก {total} แห่ง → "
                        "น่าจะเป็นเหตุขัดข้องของผู้ให้บริการ ไม่ใช่อุปกรณ์ของโรงเรียน: "
                        "แจ้งผู้ให้บริการ",
        "upstream_district": "โรงเรียนใน{group} ขัดข้องพร้อมกัน {down} จาก {total} แห่ง → "
                             "น่าจะเป็นไฟฟ้าดับหรือโครงข่ายในพื้นที่ขัดข้อง",
        "condition": "อุปกรณ์ยังใช้งานได้ แต่ตรวจพบปัญหาที่ต้องแก้ไขก่อนจะใช้งานไม่ได้: "
                     "ดำเนินการตามที่ระบุในเหตุการณ์/ปัญหา",
    },
    "en": {
        "isp": "provider {name}",
        "district": "district {name}",
        "gateway": "the school's router does not answer: check power, the equipment and "
                   "the internet link from {isp}",
        "any_isp": "the provider",
        "device": "the device does not answer while the devices above it work: check power "
                  "and cabling",
        "upstream_isp": "{down} of {total} schools on {group} are down at once → most likely "
                        "the provider's outage, not the schools' equipment: tell the provider",
        "upstream_district": "{down} of {total} schools in {group} are down at once → most "
                             "likely a power cut or a local network outage",
        "condition": "the device still works, but a problem was found that must be fixed "
                     "before it stops working: do what the problem says",
    },
}


def _words(lang: str) -> dict[str, str]:
    return _WORDS["en" if lang == "en" else "th"]


def group_label(key: str, lang: str = "th") -> str:
    """An upstream group in words: ``isp:NT`` → "ผู้ให้บริการ NT" / "provider NT"."""
    kind, _, name = key.partition(":")
    template = _words(lang).get(kind) if kind in ("isp", "district") else None
    return template.format(name=name) if template else key


#: separates a condition incident's device from its key: ``web-portal#tls_cert_expiring``
CONDITION_SEP = "#"


def condition_root(device_id: str, key: str) -> str:
    """A condition incident's root (``#`` is never part of a device id)."""
    return f"{device_id}{CONDITION_SEP}{key}"


def condition_of(root: str) -> tuple[str, str] | None:
    """(device, key) of a condition root, else None."""
    device, sep, key = root.partition(CONDITION_SEP)
    return (device, key) if sep and device and key else None


def root_device(root: str) -> str:
    """The device an incident's or ticket's root names: the root itself, or a condition
    root's device (an upstream or whole-school root names none: returned as it is)."""
    cond = condition_of(root)
    return cond[0] if cond else root


def condition_hypothesis(lang: str = "th") -> str:
    return _words(lang)["condition"]


def is_group_key(key: str) -> bool:
    """True for an upstream incident's root (``isp:NT``, ``district:X``), not a device id."""
    return key.partition(":")[0] in ("isp", "district") and ":" in key


def device_hypothesis(school_gateway: bool, isp: str, lang: str = "th") -> str:
    w = _words(lang)
    if school_gateway:
        return w["gateway"].format(isp=w["isp"].format(name=isp) if isp else w["any_isp"])
    return w["device"]


def upstream_hypothesis(key: str, down: int, total: int, lang: str = "th") -> str:
    kind = "upstream_isp" if key.startswith("isp:") else "upstream_district"
    return _words(lang)[kind].format(group=group_label(key, lang), down=down, total=total)
