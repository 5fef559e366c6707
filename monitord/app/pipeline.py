"""The observation pipeline: observations → state tracker → incident engine → batch writer.

One way only: probes hand observations in (:meth:`Pipeline.apply`), the tracker turns them
into state transitions, the engine turns those into incidents and tickets, and every
transition goes to the database together with what it caused (ticket context frozen from
the config, outbox notifications) as one unit of work through the :class:`StateWriter`.
Timers (ticket delays, active hours, auto-close), officers' edits read back from the
database, reminders and the broker/storage alerts run in :meth:`Pipeline.tick`.

Conditions (standing problems of a device that works, ``Observation.conditions``) are
tracked per device and key with the probes that report them: a report starts (or
renews) the engine's condition incident; an observation of a reporting probe that
answers without it takes that probe off, and with no probe left the condition ends.
Failed observations (the device DOWN, unreachable, a timeout) change nothing.  After a
restart the reporters are not known: every probe of the device counts as one until it
has answered.

No sockets here: the pipeline is built in-process with an injected clock (``now``), which
is how the unit tests drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from monitord.app.compile import (
    Labels,
    Prepared,
    prepare,
    ticket_context,
)
from monitord.app.writer import StateWriter
from monitord.config import Config
from monitord.domain import notifications as events
from monitord.domain.activehours import MaintenanceWindow
from monitord.domain.incidents import (
    Change,
    Incident,
    IncidentClosed,
    IncidentEngine,
    IncidentOpened,
    TicketAutoClosed,
    TicketInfo,
    TicketJoined,
    TicketOpen,
    TicketRecovered,
    TicketRelapsed,
    condition_of,
    root_device,
)
from monitord.domain.notifications import TicketSubject
from monitord.domain.school import school_offline
from monitord.domain.state import DeviceStatus, State, StateTracker, StoredState, Transition
from monitord.domain.tickets import TicketContext
from monitord.notify import (
    Channel,
    Deliverer,
    NotificationEvent,
    Reminders,
    render_message,
    send,
    timed_events,
)
from monitord.probes.base import Observation, RoundStats
from monitord.probes.mqtt import MqttSource
from monitord.probes.snmp.traps import TrapEvent, TrapReceiver
from monitord.storage import Storage, is_storage_error
from monitord.storage.maintenance import db_window
from monitord.values import one_line

log = logging.getLogger("monitord")

TICK_SECONDS = 2.0
#: a broker's or a loader's error text at most this long in /healthz and messages
REASON_LIMIT = 160
#: attempts to send a storage alert straight through a channel (no outbox)
DIRECT_ATTEMPTS = 5
#: reminders, escalations and the daily summary are looked at this often (seconds)
TIMED_EVERY_SECONDS = 30.0
#: the event log's kind for SNMP traps; detail is "DEVICE_ID TRAP [ifIndex N]"
TRAP_EVENT_KIND = "snmp_trap"
#: the same trap from the same device is recorded at most this often (seconds)
TRAP_EVENT_SECONDS = 5.0

Counters = defaultdict[str, Counter[tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Saved:
    """What the database holds at start: where the pipeline carries on from."""

    states: Mapping[str, StoredState]
    incidents: Sequence[Incident]
    tickets: Sequence[TicketInfo]
    next_ticket: int


class ChangeFeed:
    """Which devices' status or effective state may have changed since the reader last
    asked (``/metrics`` re-renders only those): every observation marks its device, a state
    change its descendants too (UNREACHABLE follows a parent), a reload or a maintenance
    window starting or ending marks everything."""

    def __init__(self) -> None:
        self._devices: set[str] = set()
        self._all = True

    def mark(self, device_id: str) -> None:
        self._devices.add(device_id)

    def mark_many(self, device_ids: Iterable[str]) -> None:
        self._devices.update(device_ids)

    def mark_all(self) -> None:
        self._all = True
        self._devices = set()

    def take(self) -> tuple[bool, set[str]]:
        """(everything changed, the devices that did) — and start afresh."""
        out = (self._all, self._devices)
        self._all, self._devices = False, set()
        return out


class Pipeline:
    """Observations in; transitions, incidents, tickets and notifications out (queued on
    the writer).  ``storage``, ``writer``, ``deliverer`` and ``mqtt`` are attached by the
    daemon once open; without a writer nothing is queued (the state is still tracked)."""

    def __init__(self, *, now: Callable[[], float] = time.time,
                 tz: ZoneInfo | None = None) -> None:
        self.now = now
        self.tracker = StateTracker(clock=now)
        self.engine = IncidentEngine(tz or ZoneInfo("Asia/Bangkok"))
        self.config: Config | None = None
        self.labels = Labels([], [], {})
        #: what changed for /metrics (see ChangeFeed)
        self.changes = ChangeFeed()
        self._maintenance_sig: tuple[tuple[MaintenanceWindow, bool], ...] = ()
        self.storage: Storage | None = None
        self.writer: StateWriter | None = None
        self.deliverer: Deliverer | None = None
        self.mqtt: MqttSource | None = None
        self.traps: TrapReceiver | None = None
        #: why the enabled trap receiver is not running ("" when it is or is disabled)
        self.traps_error = ""
        #: (device, trap summary) → when its last event was recorded (trap storms)
        self._trap_events: dict[tuple[str, str], float] = {}
        #: set when the daemon stops (direct alerts stop retrying)
        self.stop_event = asyncio.Event()
        #: counters exported by name (monitord_observations_total, ...)
        self.counters: Counters = defaultdict(Counter)
        #: maintenance windows added with the CLI or the API (read from the database)
        self.db_windows: list[MaintenanceWindow] = []
        self._last_timed = -float("inf")
        self._tasks: set[asyncio.Future[None]] = set()
        self._broker_alerted_since: float | None = None
        self._storage_alerted_since: float | None = None
        #: the engine carries on from the database (ticket numbers can be handed out)
        self.restored = False
        #: device → condition key → the probes whose last answer reported it
        self.conditions: dict[str, dict[str, set[str]]] = {}

    # -- configuration ---------------------------------------------------------------

    def configure(self, cfg: Config, prepared: Prepared | None = None) -> list[str]:
        """Adopt a (re)loaded config; returns the ids of devices that were removed.
        ``prepared``: what :func:`~monitord.app.compile.prepare` built from it already."""
        p = prepared if prepared is not None else prepare(cfg)
        self.config = cfg
        self.labels = p.labels
        self.changes.mark_all()
        removed = self.tracker.configure(p.specs)
        self.adopt_conditions(cfg)
        self.engine.tz = cfg.tz
        self.engine.configure(p.nodes, cfg.calendar(),
                              [*cfg.maintenance_windows(), *self.db_windows], p.policy)
        return removed

    def adopt_conditions(self, cfg: Config) -> None:
        """A reload: forget the conditions of removed devices; a condition whose reporting
        probes were all removed waits for each remaining probe to answer without it (as
        after a restart) instead of staying open for ever."""
        devices = cfg.device_map()
        for dev_id in list(self.conditions):
            dev = devices.get(dev_id)
            if dev is None:
                del self.conditions[dev_id]
                continue
            probes = set(dev.probe_names)
            for holders in self.conditions[dev_id].values():
                kept = holders & probes
                holders.clear()
                holders.update(kept or probes)

    def attach(self, storage: Storage, writer: StateWriter,
               deliverer: Deliverer | None = None) -> None:
        self.storage, self.writer, self.deliverer = storage, writer, deliverer

    @staticmethod
    async def load_saved(storage: Storage) -> Saved:
        """States, open incidents and tickets as the database has them (at start)."""
        return Saved(await storage.load_states(), await storage.open_incidents(),
                     await storage.ticket_infos(), await storage.next_ticket_id())

    def restore(self, saved: Saved) -> None:
        """Carry on from the saved state (after :meth:`configure`)."""
        self.changes.mark_all()
        self.tracker.restore(saved.states)
        self.engine.restore(saved.incidents, saved.tickets,
                            {dev: st.state for dev, st in saved.states.items()},
                            saved.next_ticket)
        devices = self.config.device_map() if self.config is not None else {}
        for dev_id, key in self.engine.open_conditions():
            dev = devices.get(dev_id)
            # who reported it is not stored: each probe of the device, until it answers
            self.conditions.setdefault(dev_id, {})[key] = set(
                dev.probe_names if dev is not None else ())
        self.restored = True

    # -- manual tickets ----------------------------------------------------------------

    def allocate_ticket(self, school: str | None, devices: Sequence[str]) -> int:
        """The application commands' hook: number a manual ticket from the engine's
        sequence (shared with automatic tickets) and let the engine know what it covers."""
        if not self.restored:
            raise RuntimeError("the daemon is starting")
        tid = self.engine.open_manual(school, devices)
        log.info("ticket %d numbered for a manual report (%s)", tid,
                 ", ".join(devices) or school or "office")
        return tid

    def release_ticket(self, ticket_id: int) -> None:
        self.engine.release_manual(ticket_id)

    # -- reads -------------------------------------------------------------------------

    def status(self, device_id: str) -> DeviceStatus | None:
        return self.tracker.status(device_id)

    def effective_state(self, device_id: str, now: float | None = None) -> State:
        return self.engine.effective_state(device_id, self.now() if now is None else now)

    # -- observations ------------------------------------------------------------------

    async def on_results(self, observations: list[Observation], stats: RoundStats) -> None:
        """A probe round's results (the scheduler's callback)."""
        if not stats.complete:
            self.counters["monitord_probe_rounds_incomplete_total"][(stats.probe,)] += 1
            log.warning("%s round of %d targets incomplete: %s", stats.probe, stats.targets,
                        stats.reason or "local limit")
        self.apply(observations)

    async def on_mqtt(self, observations: list[Observation]) -> None:
        """Observations pushed by the MQTT source (messages, staleness, broker outages)."""
        self.apply(observations)

    def on_trap(self, event: TrapEvent) -> None:
        """An SNMP trap from a configured device: one event per device in the event log
        (the wall's recent events), at most one per device and trap every
        ``TRAP_EVENT_SECONDS``; ``other`` traps are only counted (by the receiver)."""
        if not event.actionable:
            return
        now = self.now()
        if len(self._trap_events) > 10_000:
            self._trap_events = {k: t for k, t in self._trap_events.items()
                                 if now - t < TRAP_EVENT_SECONDS}
        for dev in event.device_ids:
            key = (dev, event.summary)
            if now - self._trap_events.get(key, -float("inf")) < TRAP_EVENT_SECONDS:
                continue
            self._trap_events[key] = now
            log.info("SNMP trap %s from %s (device %s)", event.summary, event.source, dev)
            self._background(self.record_event(TRAP_EVENT_KIND, f"{dev} {event.summary}"))

    def apply(self, observations: list[Observation]) -> None:
        obs_counter = self.counters["monitord_observations_total"]
        trans_counter = self.counters["monitord_state_transitions_total"]
        snmp_events = self.counters["monitord_device_events_total"]
        transitions: list[Transition] = []
        changes: list[Change] = []
        for raw in observations:
            obs = raw
            if raw.reason == "powered_off" and not self.engine.active(raw.device_id, raw.ts):
                # A classroom TV switched off at night or on a holiday is no fault.
                obs = replace(raw, ok=True, reason="",
                              info={**raw.info, "note": "powered off outside active hours"})
            result = "ok" if obs.ok else "fail" if obs.complete else "incomplete"
            obs_counter[(obs.probe, result)] += 1
            for event in obs.events:
                snmp_events[(obs.probe, event)] += 1
                if event == "reboot":
                    log.warning("device %s rebooted (sysUpTime went back)", obs.device_id)
                    self._background(self.record_event("device_rebooted", obs.device_id))
            status = self.tracker.status(obs.device_id)
            was_flapping = status.flapping if status is not None else False
            tr = self.tracker.apply(obs)
            if status is None:
                continue
            self.changes.mark(obs.device_id)
            if tr is not None:
                self.changes.mark_many(self.engine.descendants(obs.device_id))
                transitions.append(tr)
                trans_counter[(tr.new.value,)] += 1
                # first sight (unknown → up) is routine: 20,000 lines at every start
                log.log(logging.DEBUG if tr.old is State.UNKNOWN and tr.new is State.UP
                        else logging.INFO, "device %s: %s → %s (%s)", tr.device_id,
                        tr.old.value, tr.new.value, tr.reason)
            if status.flapping != was_flapping:
                log.warning("device %s %s flapping (%.0f%% state change)", obs.device_id,
                            "started" if status.flapping else "stopped", status.flap_percent)
            if tr is not None or status.flapping != was_flapping:
                changes += self.engine.on_state(obs.device_id, status.state, obs.ts,
                                                status.reason, status.flapping)
            if obs.conditions or obs.device_id in self.conditions:
                changes += self.track_conditions(obs)
        self.record(transitions, changes)

    def track_conditions(self, obs: Observation) -> list[Change]:
        """Start, renew or end the device's conditions from one observation."""
        changes: list[Change] = []
        held = self.conditions.setdefault(obs.device_id, {})
        for key, reason in obs.conditions.items():
            if not key:
                continue
            held.setdefault(key, set()).add(obs.probe)
            changes += self.engine.condition_started(obs.device_id, key,
                                                     one_line(reason, REASON_LIMIT * 2), obs.ts)
        if obs.ok and obs.complete and not obs.unknown:  # it answered: what it left out ended
            for key in [k for k, probes in held.items()
                        if obs.probe in probes and k not in obs.conditions]:
                held[key].discard(obs.probe)
                if not held[key]:
                    del held[key]
                    log.info("device %s: condition %s ended", obs.device_id, key)
                    changes += self.engine.condition_ended(obs.device_id, key, obs.ts)
        if not held:
            del self.conditions[obs.device_id]
        return changes

    def record(self, transitions: list[Transition], changes: list[Change]) -> None:
        """Queue transitions and their consequences as one unit of work."""
        contexts: dict[int, TicketContext] = {}
        for ch in changes:
            if isinstance(ch, TicketOpen) and self.config is not None:
                contexts[ch.ticket_id] = ticket_context(self.config, ch)
                log.warning("ticket %d opened for %s (%s)", ch.ticket_id, ch.incident.root,
                            ch.incident.hypothesis)
            elif isinstance(ch, TicketJoined):
                log.warning("%s is down: joins manual ticket %d", ch.incident.root,
                            ch.ticket_id)
        notes = [n for ch in changes if (n := self.notification(ch, contexts)) is not None]
        if self.writer is not None:
            self.writer.enqueue(transitions, changes, contexts, notes)

    async def record_event(self, kind: str, detail: str) -> None:
        """One row in the event log (started, reloaded, device rebooted, ...)."""
        if self.storage is None:
            return
        try:
            await self.storage.record_event(kind, detail)
        except Exception as exc:
            if self.writer is not None and is_storage_error(exc):
                self.writer.report_failure(exc)  # counted, logged rate-limited
            else:
                log.error("cannot record event %s: %s", kind, exc)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- changes → notifications -------------------------------------------------------

    def subject(self, ticket_id: int, root: str, served_unit: str | None = None
                ) -> TicketSubject:
        """What a ticket is about, as messages name it and channels filter it."""
        cfg = self.config
        dev = cfg.device_map().get(root_device(root)) if cfg is not None else None
        school = cfg.schools.get(dev.school or "") if cfg is not None and dev else None
        if served_unit is None:
            served_unit = school.name if school else (dev.unit if dev else root)
        return TicketSubject(ticket_id, root, dev.display_name if dev else root,
                             served_unit, dev.school if dev else None,
                             school.district if school else "", dev.kind.value if dev else "")

    def notification(self, ch: Change, contexts: Mapping[int, TicketContext]
                     ) -> NotificationEvent | None:
        """The message-worthy changes, as outbox events with idempotency keys."""
        if isinstance(ch, TicketOpen):
            ctx = contexts.get(ch.ticket_id)
            subject = self.subject(ch.ticket_id, ch.incident.root,
                                   ctx.served_unit if ctx is not None else None)
            return events.ticket_opened(subject, ch.incident.id, ch.ts, ch.incident.opened_at,
                                        ch.incident.hypothesis, self.cause(ch.incident))
        if isinstance(ch, TicketRecovered | TicketRelapsed | TicketAutoClosed):
            info = self.engine.ticket(ch.ticket_id)
            kind: events.TicketChange = (
                "ticket_repaired" if isinstance(ch, TicketRecovered)
                else "ticket_reopened" if isinstance(ch, TicketRelapsed) else "ticket_closed")
            return events.ticket_changed(kind, self.subject(ch.ticket_id,
                                                            info.root if info else ""), ch.ts)
        if isinstance(ch, IncidentOpened | IncidentClosed) and ch.incident.kind == "upstream":
            live = self.engine.incident_for(ch.incident.root) or ch.incident
            cause = self.upstream_cause(live)
            if isinstance(ch, IncidentOpened):
                return events.upstream_started(ch.incident.id, ch.incident.opened_at,
                                               live.hypothesis, cause)
            return events.upstream_ended(ch.incident.id, ch.incident.closed_at or self.now(),
                                         live.hypothesis, cause)
        return None

    def upstream_cause(self, inc: Incident) -> events.UpstreamCause:
        return events.UpstreamCause(inc.root, len(inc.affected), self.engine.group_size(inc.root))

    def cause(self, inc: Incident) -> events.Cause:
        """The facts a message words its hypothesis from (in notify.lang), with one count
        of what is affected: the incident's affected devices, which are also the ticket's
        equipment list after its root (device tickets), or its schools (upstream)."""
        if inc.kind == "upstream":
            return self.upstream_cause(inc)
        if inc.kind == "condition":
            cond = condition_of(inc.root)
            return events.ConditionCause(cond[1] if cond else "", inc.reason)
        node = self.engine.node(inc.root)
        return events.DeviceCause(len(inc.affected),
                                  node.is_school_gateway if node is not None else False,
                                  node.isp if node is not None else "")

    # -- timers ------------------------------------------------------------------------

    async def maintenance_changed(self) -> None:
        """Put the maintenance windows in the database in force now (the application
        commands call this after adding or deleting one) instead of at the next tick."""
        if self.storage is None:
            return
        self.db_windows = [db_window(w) for w in await self.storage.maintenance()]
        if self.config is not None:
            self.engine.set_maintenance([*self.config.maintenance_windows(), *self.db_windows])
        self.maintenance_tick()

    def maintenance_tick(self) -> None:
        """Everything's effective state is to be read again when a maintenance window
        started, ended, was added or deleted."""
        sig = self.engine.maintenance_signature(self.now())
        if sig != self._maintenance_sig:
            self._maintenance_sig = sig
            self.changes.mark_all()

    async def tick(self) -> None:
        """One turn of the timers: officers' edits read back, ticket delays, active hours,
        auto-close, broker and storage alerts, reminders."""
        if self.storage is not None:
            try:
                # Not while ticket changes wait to be written (a storage outage): the
                # database's older statuses would undo them in memory.
                if self.writer is None or self.writer.pending == 0:
                    infos = await self.storage.ticket_infos()
                    self.engine.sync_tickets(infos, await self.storage.next_ticket_id())
                await self.maintenance_changed()
            except Exception as exc:
                log.error("reading tickets/maintenance from the database failed: %s", exc)
        self.record([], self.engine.tick(self.now()))
        self.broker_notifications(self.now())
        self.storage_notifications(self.now())
        await self.timed_notifications()

    async def tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)

    def broker_notifications(self, now: float) -> None:
        """One alertable condition for an unreachable MQTT broker (after a grace period),
        and one message when it is back."""
        src = self.mqtt
        if src is None or self.writer is None:
            return
        st = src.stats
        if not st.broker_up and st.broker_since and \
                now - st.broker_since >= src.settings.alert_after:
            if self._broker_alerted_since != st.broker_since:
                self._broker_alerted_since = st.broker_since
                s = src.settings
                log.error("MQTT broker %s:%d unreachable for %.0f s: %s", s.host, s.port,
                          now - st.broker_since, st.last_error)
                self.writer.enqueue([], [], {}, [events.broker_unreachable(
                    st.broker_since, one_line(st.last_error, REASON_LIMIT))])
        elif st.broker_up and self._broker_alerted_since is not None:
            down_since = self._broker_alerted_since
            self._broker_alerted_since = None
            self.writer.enqueue([], [], {}, [events.broker_restored(down_since,
                                                                    st.broker_since)])

    def storage_notifications(self, now: float) -> None:
        """One ``storage_failing`` message per episode of failed database writes, and one
        ``storage_restored`` when everything queued is on disk.  Both go straight through
        the channels: the outbox lives in the very database that cannot be written."""
        w = self.writer
        if w is None:
            return
        if not w.up and w.failing_since is not None and self._storage_alerted_since is None:
            since = self._storage_alerted_since = w.failing_since
            self._background(self.alert_directly(events.storage_failing(since, w.last_error)))
        elif w.up and self._storage_alerted_since is not None:
            since, self._storage_alerted_since = self._storage_alerted_since, None
            self._background(self.alert_directly(events.storage_restored(since, now)))

    async def alert_directly(self, event: NotificationEvent) -> None:
        """Send one event to every channel that wants it, now, with a few retries."""
        dl = self.deliverer
        if dl is None:
            return
        title, body = render_message([event], dl.policy, dl.office)

        async def one(ch: Channel) -> None:
            for attempt in range(1, DIRECT_ATTEMPTS + 1):
                try:
                    ok = await send(ch.url, title, body)
                except Exception:  # a broken URL or library error: retried like a refusal
                    ok = False
                if ok:
                    dl.results[(ch.name, "success")] += 1
                    log.info("notification to %s: %s sent", ch.name, event.kind)
                    return
                if attempt == DIRECT_ATTEMPTS:
                    break
                dl.results[(ch.name, "retry")] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), timeout=5.0 * 2 ** attempt)
                if self.stop_event.is_set():
                    break
            dl.results[(ch.name, "failed")] += 1
            log.error("notification to %s: %s not sent", ch.name, event.kind)

        await asyncio.gather(*(one(ch) for ch in dl.channels if ch.wants(event, dl.calendar)))

    async def timed_notifications(self) -> None:
        """Reminders, escalations and the daily summary (idempotent keys: safe to repeat)."""
        now = self.now()
        if self.config is None or self.storage is None or \
                now - self._last_timed < TIMED_EVERY_SECONDS:
            return
        self._last_timed = now
        n = self.config.notify
        try:
            open_tickets = await self.storage.list_tickets()
        except Exception as exc:
            log.error("reading tickets for reminders failed: %s", exc)
            return
        offline = [s.name for s in self.labels.schools
                   if school_offline(self.effective_state(g, now) for g in s.gateways)]
        events = timed_events(open_tickets, offline, now,
                              Reminders(n.remind_every, n.escalate_after, n.daily_summary_at))
        if events and self.writer is not None:
            self.writer.enqueue([], [], {}, events)
