"""The daemon: wires config → scheduler → probes → state → storage/metrics, and runs it.

Data flows one way: probes return observations, the state tracker turns them into
transitions, and transitions go to storage (and later to incidents and notifications).
The HTTP exporter only *reads* the current view at scrape time.

Signals: SIGTERM/SIGINT stop gracefully (running rounds finish or are cancelled within
seconds, pending state changes are flushed); SIGHUP reloads the config — an invalid new
file is rejected with every problem logged and the running config stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.routing import BaseRoute

from monitord import __version__
from monitord.config import Config, ConfigError, Device, Problem, load_config, parse_listen
from monitord.domain.activehours import MaintenanceWindow
from monitord.domain.incidents import (
    Change,
    Incident,
    IncidentClosed,
    IncidentEngine,
    IncidentOpened,
    Node,
    Policy,
    TicketAutoClosed,
    TicketOpen,
    TicketRecovered,
    TicketRelapsed,
    group_label,
)
from monitord.domain.labels import KIND_TEXT
from monitord.domain.links import LinkSecretError, LinkSigner, load_secret
from monitord.domain.school import link_devices, school_offline, school_state
from monitord.domain.state import DeviceSpec, DeviceStatus, State, StateTracker, Transition
from monitord.domain.tickets import ACTIVE as ACTIVE_TICKET
from monitord.domain.tickets import Equipment, TicketContext, TicketError
from monitord.http.metrics import DeviceLabels, RoundInfo, SchoolLabels, build_registry
from monitord.http.server import (
    HttpServer,
    bind,
    build_app,
    default_concurrency,
    raise_open_files_limit,
)
from monitord.http.status import DeviceRow, SchoolRow, StatusData
from monitord.notify import (
    Channel,
    Deliverer,
    NotificationEvent,
    NotifyPolicy,
    Reminders,
    event_key,
    render_message,
    send,
    timed_events,
)
from monitord.probes import registry as probe_registry
from monitord.probes.base import Observation, Prober, ProbeSetupError, RoundStats, Target
from monitord.probes.metrics import MetricFamily
from monitord.probes.mqtt import MqttDevice, MqttSettings, MqttSource
from monitord.probes.scheduler import Job, Scheduler
from monitord.storage import (
    Storage,
    default_data_dir,
    error_reason,
    error_text,
    is_storage_error,
)
from monitord.storage.history import AvailabilityCache
from monitord.storage.maintenance import db_window
from monitord.values import one_line

log = logging.getLogger("monitord")

PRUNE_EVERY_SECONDS = 3600.0
TICK_SECONDS = 2.0
#: a broker's or a loader's error text at most this long in /healthz and messages
REASON_LIMIT = 160
#: queued database writes beyond which the writer compacts its queue (see StateWriter)
MAX_PENDING_WRITES = 10_000
RETRY_MAX_SECONDS = 10.0
#: attempts to send a storage alert straight through a channel (no outbox)
DIRECT_ATTEMPTS = 5
#: what to do when the database cannot be opened at start, by error reason
OPEN_HINTS = {
    "corrupt": " (damaged or not a database: see `monitord db check`; restore a copy made "
               "with `monitord db backup`)",
    "read_only": " (the database, its directory and file system must be writable by "
                 "monitord)",
    "cannot_open": " (the database's directory must exist and be writable by monitord)",
    "disk_full": " (the disk is full: free space, then start again)",
}


@dataclass
class DaemonOptions:
    config_path: Path
    db_path: Path | None = None
    listen: str | None = None
    extra_banner: list[str] = field(default_factory=list)
    notify_urls: list[str] = field(default_factory=list)


def resolve_db_path(cfg: Config, override: Path | None) -> Path:
    if override is not None:
        return override
    if cfg.storage.db is not None:
        return cfg.storage.db
    return (cfg.storage.data_dir or default_data_dir()) / "monitord.db"


def make_probers(cfg: Config) -> dict[str, Prober]:
    """Every polled probe of the registry, built from its ``engines.<name>`` settings."""
    out: dict[str, Prober] = {}
    for name in probe_registry.polled():
        engine = getattr(cfg.engines, name, None)
        out[name] = probe_registry.build(name, **(engine.model_dump() if engine else {}))
    return out


def build_jobs(cfg: Config) -> list[Job]:
    jobs: list[Job] = []
    for dev in cfg.devices:
        eff = cfg.effective(dev)
        for probe in dev.probe_names:
            params: dict[str, Any] = {}
            interval = eff.interval
            if probe == "mqtt":
                continue  # pushed by agents, not polled: see mqtt_devices()
            if probe == "snmp" and eff.snmp is not None:
                params = eff.snmp.model_dump()
                interval = eff.snmp_interval or eff.interval
            elif probe == "icmp":
                params = {
                    "count": eff.icmp.count,
                    "timeout": eff.icmp.timeout,
                    "period": eff.icmp.period,
                }
            jobs.append(Job(Target(dev.id, dev.address, params), probe, interval))
    return jobs


def mqtt_devices(cfg: Config) -> list[MqttDevice]:
    return [MqttDevice(dev.id, dev.school, dev.kind.value, eff.mqtt)
            for dev in cfg.devices if "mqtt" in dev.probe_names
            and (eff := cfg.effective(dev)).mqtt is not None]


def mqtt_settings(cfg: Config) -> MqttSettings:
    return cfg.mqtt if cfg.mqtt is not None else MqttSettings()


def build_specs(cfg: Config) -> list[DeviceSpec]:
    specs = []
    for dev in cfg.devices:
        eff = cfg.effective(dev)
        probes = dev.probe_names
        reach = "icmp" if "icmp" in probes else (probes[0] if probes else "icmp")
        flap = cfg.incidents.flapping
        fail = eff.failure_threshold
        if reach == "mqtt" and not eff.failure_threshold_set:
            # "stale" already means several silent periods and "offline" is the agent's
            # own last will: both are sustained facts, not single lost packets.
            fail = 1
        icmp = eff.icmp if reach == "icmp" else None  # loss and rtt judged on a window
        specs.append(DeviceSpec(dev.id, reach, fail, eff.success_threshold,
                                flap.high_percent, flap.low_percent,
                                icmp.window_rounds if icmp else 1,
                                icmp.loss_degraded if icmp else None,
                                icmp.rtt_degraded if icmp else None))
    return specs


def build_nodes(cfg: Config) -> list[Node]:
    schedules = cfg.schedule_map()
    nodes = []
    for dev in cfg.devices:
        eff = cfg.effective(dev)
        school = cfg.schools.get(dev.school) if dev.school else None
        nodes.append(Node(dev.id, dev.kind.value, dev.school, dev.parent,
                          schedules[eff.schedule], eff.ticket_delay,
                          school.isp if school else "", school.district if school else ""))
    return nodes


def build_policy(cfg: Config) -> Policy:
    corr = cfg.incidents.correlation
    return Policy(
        relapse_window=cfg.tickets.relapse_window,
        group_by="" if corr.group_by == "none" else corr.group_by,
        group_min_schools=corr.min_schools,
        group_min_share=corr.min_share,
        group_window=corr.window,
        auto_close_after=cfg.tickets.auto_close_after,
    )


def build_channels(cfg: Config, extra_urls: Iterable[str]) -> list[Channel]:
    """Channels from the config (secrets revealed here, never logged) plus ``--notify``."""
    out: list[Channel] = []
    for ch in cfg.notify.channels:
        try:
            url = ch.url if isinstance(ch.url, str) else ch.url.reveal()
        except (LookupError, OSError) as exc:
            log.error("notification channel %s disabled: %s", ch.name, exc)
            continue
        out.append(Channel(ch.name, url, frozenset(ch.events), frozenset(ch.schools),
                           frozenset(ch.districts), frozenset(k.value for k in ch.kinds),
                           ch.on_duty.build("on_duty") if ch.on_duty else None,
                           ch.quiet.build("quiet") if ch.quiet else None,
                           ch.max_per_hour, ch.escalation))
    for i, url in enumerate(extra_urls, start=1):
        out.append(Channel(f"cli-{i}", url))
    return out


def build_notify_policy(cfg: Config, links: LinkSigner | None = None) -> NotifyPolicy:
    n = cfg.notify
    return NotifyPolicy(n.group_window, n.max_attempts, n.backoff_initial, n.backoff_max,
                        n.base_url, n.lang, links=links)


def ticket_context(cfg: Config, change: TicketOpen) -> TicketContext:
    """Freeze what the repair report needs from the config at the moment a ticket opens."""
    inc = change.incident
    devices = cfg.device_map()

    def equipment(dev: Device, remark: str = "") -> Equipment:
        return Equipment(dev.id, dev.display_name, dev.hostname, dev.brand_model, dev.serial,
                         remark)

    items: list[Equipment] = []
    if inc.kind == "upstream":
        for dev_id in sorted(inc.affected):
            if (dev := devices.get(dev_id)) is not None:
                school = cfg.schools.get(dev.school or "")
                items.append(equipment(dev, school.name if school else ""))
        served = f"โรงเรียน {len(items)} แห่ง ({group_label(inc.root)})"
        return TicketContext("school", served, None, cfg.office.name, cfg.office.group_name,
                             cfg.tickets.reporter.name, cfg.tickets.reporter.position, items)
    root = devices.get(inc.root)
    if root is not None:
        items.append(equipment(root, "ต้นเหตุ"))
    for dev_id in sorted(inc.affected):
        if (dev := devices.get(dev_id)) is not None:
            items.append(equipment(dev, "ได้รับผลกระทบ"))
    school = cfg.schools.get(root.school or "") if root is not None else None
    if school is not None:
        variant, served = "school", school.name
    else:
        variant, served = "office", (root.unit if root is not None and root.unit
                                     else cfg.office.group_name)
    return TicketContext(variant, served, root.school if root else None, cfg.office.name,
                         cfg.office.group_name, cfg.tickets.reporter.name,
                         cfg.tickets.reporter.position, items)


@dataclass
class _Batch:
    transitions: list[Transition]
    changes: list[Change]
    contexts: dict[int, TicketContext]
    notifications: list[NotificationEvent]


class StateWriter:
    """Write-behind queue that never loses a state change's outcome or what it caused.

    Each batch — transitions plus the incident/ticket changes they caused — is committed
    in one transaction.  A failed write (disk full, read-only, database locked too long)
    is counted by reason and retried with backoff (1 s, doubling, at most
    ``RETRY_MAX_SECONDS``); batches stay queued in order until they are on disk.

    The queue is bounded.  When more than ``max_pending`` items wait, the queued batches
    are merged into one and each device's queued transitions collapse into one, from the
    state on disk to the latest (none when it is back where it was): current states stay
    exact, the intermediate flaps are dropped from the history and counted in
    ``transitions_dropped``.  Ticket and incident changes are always kept; a notification
    whose idempotency key is already queued is not queued twice.  Memory is thus bounded
    by ``max_pending`` plus one transition per device plus the ticket changes.

    ``up`` is False from the first failed write (here, or reported by another writer
    through :meth:`report_failure`) until everything queued is on disk and a
    ``storage_restored`` event row has been written.
    """

    def __init__(self, storage: Storage, max_pending: int = MAX_PENDING_WRITES) -> None:
        self._storage = storage
        self.max_pending = max_pending
        self._pending: list[_Batch] = []
        self._inflight: _Batch | None = None
        self._keys: set[str] = set()
        self._compact_at = max_pending
        self._wake = asyncio.Event()
        self.errors = 0
        self.write_errors: Counter[str] = Counter()
        self.transitions_dropped = 0
        self.up = True
        self.failing_since: float | None = None
        self.last_error = ""
        self._last_error_log = 0.0
        self._last_compact_log = -60.0

    @property
    def pending(self) -> int:
        batches = [*self._pending, *([self._inflight] if self._inflight else [])]
        return sum(len(b.transitions) + len(b.changes) + len(b.notifications)
                   for b in batches)

    def enqueue(self, transitions: Iterable[Transition], changes: Iterable[Change] = (),
                contexts: Mapping[int, TicketContext] | None = None,
                notifications: Iterable[NotificationEvent] = ()) -> None:
        notes = []
        for n in notifications:
            if n.key not in self._keys:
                self._keys.add(n.key)
                notes.append(n)
        batch = _Batch(list(transitions), list(changes), dict(contexts or {}), notes)
        if batch.transitions or batch.changes or batch.notifications:
            self._pending.append(batch)
            self._wake.set()
            if self.pending > self._compact_at:
                self._compact()

    def _compact(self) -> None:
        """Merge the queued batches (not the one being written) into one; collapse each
        device's transitions to one."""
        merged = _Batch([], [], {}, [])
        runs: dict[str, list[Transition]] = {}
        for b in self._pending:
            merged.changes += b.changes
            merged.contexts.update(b.contexts)
            merged.notifications += b.notifications
            for t in b.transitions:
                runs.setdefault(t.device_id, []).append(t)
        for run in runs.values():
            first, last = run[0], run[-1]
            kept = [replace(last, old=first.old)] if first.old != last.new else []
            merged.transitions += kept
            self.transitions_dropped += len(run) - len(kept)
        merged.transitions.sort(key=lambda t: t.ts)
        self._pending = [merged]
        # Ticket changes are never dropped: if they alone exceed the bound, compact again
        # only once the queue has doubled (not on every enqueue).
        self._compact_at = max(self.max_pending, 2 * self.pending)
        now = time.monotonic()
        if now - self._last_compact_log > 60:
            self._last_compact_log = now
            log.warning("database writes queued beyond %d: history compacted, %d intermediate "
                        "state changes dropped so far (current states kept)",
                        self.max_pending, self.transitions_dropped)

    def report_failure(self, exc: BaseException) -> None:
        """A database write failed (here or elsewhere): storage is down until writes work."""
        if not is_storage_error(exc):
            return
        self.errors += 1
        self.write_errors[error_reason(exc)] += 1
        self.last_error = error_text(exc)
        now = time.monotonic()
        if self.up:
            self.up = False
            self.failing_since = time.time()
            self._last_error_log = 0.0
            self._wake.set()  # start retrying, even with nothing queued
        if now - self._last_error_log > 30:
            self._last_error_log = now
            log.error("cannot write to the database %s: %s (%d changes kept in memory, "
                      "retrying)", self._storage.path, self.last_error, self.pending)

    async def flush(self) -> bool:
        while self._pending:
            batch = self._inflight = self._pending.pop(0)
            try:
                await self._storage.commit(batch.transitions, batch.changes, batch.contexts,
                                           batch.notifications)
            except Exception as exc:
                self._pending.insert(0, batch)
                self.report_failure(exc)
                return False
            finally:
                self._inflight = None
            self._keys.difference_update(n.key for n in batch.notifications)
        if not self._pending:
            self._compact_at = self.max_pending
        if not self.up:
            since = self.failing_since or time.time()
            try:  # also the probe that the database takes writes again
                await self._storage.record_event(
                    "storage_restored", f"writes failed for {time.time() - since:.0f} s "
                    f"({self.last_error}); {self.transitions_dropped} intermediate state "
                    "changes dropped so far")
            except Exception as exc:
                self.report_failure(exc)
                return False
            self.up = True
            self.failing_since = None
            log.warning("database %s writable again: every queued change is written",
                        self._storage.path)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            self._wake.clear()
            if await self.flush():
                backoff = 1.0
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, RETRY_MAX_SECONDS)
            self._wake.set()


class Daemon:
    version = __version__

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.start_time = time.time()
        self.config: Config | None = None
        self.config_loaded_at = 0.0
        self.last_reload_ok = True
        #: why the last reload was rejected (quoted values elided: /healthz is public)
        self.last_reload_error = ""
        self.last_reload_attempt_at = 0.0
        self.tracker = StateTracker()
        self.engine = IncidentEngine(ZoneInfo("Asia/Bangkok"))
        self.scheduler: Scheduler | None = None
        self.probers: dict[str, Prober] = {}
        self.probe_up: dict[str, bool] = {}
        self.storage: Storage | None = None
        self.writer: StateWriter | None = None
        self.deliverer: Deliverer | None = None
        self._notify_store: Storage | None = None
        self.http: HttpServer | None = None
        #: signs the ticket links in notifications (http.link_secret / the data dir's key)
        self.links: LinkSigner | None = None
        self.stop_event = asyncio.Event()
        self._counters: defaultdict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        self._labels: list[DeviceLabels] = []
        self._school_of: dict[str, str] = {}
        self._school_labels: list[SchoolLabels] = []
        self._db_windows: list[MaintenanceWindow] = []
        self._last_timed = 0.0
        self._reload_lock = asyncio.Lock()
        self.mqtt: MqttSource | None = None
        #: 30-day availability for the status page, refreshed in a thread every few minutes
        self._availability = AvailabilityCache()
        self._tasks: set[asyncio.Future[None]] = set()
        self._broker_alerted_since: float | None = None
        self._storage_alerted_since: float | None = None

    # -- MetricsView -----------------------------------------------------------------

    def device_labels(self) -> Iterable[DeviceLabels]:
        return self._labels

    def school_labels(self) -> Iterable[SchoolLabels]:
        return self._school_labels

    def status_data(self) -> StatusData:
        """What the public status page may show: schools and states, no addresses."""
        cfg = self.config
        if cfg is None:
            return StatusData("", [])
        now = time.time()
        # Figures from the database, recomputed in a thread at most every 5 minutes.
        snap = self._availability.current(cfg, self.storage.path if self.storage else None,
                                          now)
        by_school: dict[str, list[Device]] = {}
        for dev in cfg.devices:
            if dev.school is not None:
                by_school.setdefault(dev.school, []).append(dev)
        rows = []
        for sch in self._school_labels:
            devices = by_school.get(sch.school, [])
            device_rows = []
            for n, dev in enumerate(devices, start=1):
                st = self.tracker.status(dev.id)
                device_rows.append(DeviceRow(
                    dev.kind.value, dev.name or f"{KIND_TEXT['th'][dev.kind.value]} {n}",
                    self.engine.effective_state(dev.id, now), st.since if st else now,
                    snap.devices.get(dev.id) if snap else None))
            link_states = [self.engine.effective_state(g, now) for g in sch.gateways]
            state = school_state(link_states) if link_states else State.UNKNOWN
            gateway_status = [st for g in sch.gateways if (st := self.tracker.status(g))]
            since = max((st.since for st in gateway_status), default=now)
            rows.append(SchoolRow(sch.school, sch.name, sch.district, sch.isp, state, since,
                                  device_rows, snap.schools.get(sch.school) if snap else None))
        return StatusData(cfg.office.name, rows)

    def _ticket_access(self, request: Request, ticket_id: int) -> bool:
        """Ticket pages (personal data): a signed link from a notification or an API
        bearer token; refusals are counted."""
        from monitord.http.api.routes import token_holder, usable_tokens

        if self.links is not None and self.links.verify(ticket_id, request.query_params):
            return True
        header = request.headers.get("authorization")
        if header is not None and token_holder(header, usable_tokens(self.config)):
            return True
        self.count_http_rejected("unauthorized")
        return False

    def count_http_rejected(self, reason: str) -> None:
        """An HTTP request refused (unauthorized, bad_request, sse_limit)."""
        self._counters["monitord_http_requests_rejected_total"][(reason,)] += 1

    async def _ticket_for_web(self, ticket_id: int) -> dict[str, Any] | None:
        if self.storage is None:
            return None
        try:
            return await self.storage.get_ticket(ticket_id)
        except TicketError:
            return None

    def upstream_outages(self) -> Mapping[str, int]:
        return {inc.root: len(inc.affected) for inc in self.engine.open_incidents()
                if inc.kind == "upstream"}

    def device_status(self, device_id: str) -> DeviceStatus | None:
        return self.tracker.status(device_id)

    def effective_state(self, device_id: str) -> State:
        return self.engine.effective_state(device_id, time.time())

    def ticket_counts(self) -> Mapping[str, int]:
        """Open (not repaired/closed) tickets by school ('office' for office devices)."""
        out: Counter[str] = Counter()
        for info in self.engine.tickets():
            if info.status in ACTIVE_TICKET:
                out[self._school_of.get(info.root, "upstream" if ":" in info.root
                                        else "office")] += 1
        return out

    def incidents_open(self) -> int:
        return len(self.engine.open_incidents())

    def round_info(self) -> Mapping[str, RoundInfo]:
        if self.scheduler is None:
            return {}
        sch = self.scheduler
        return {
            probe: RoundInfo(r.duration_seconds, r.targets, r.complete,
                             sch.last_round_end.get(probe, 0.0))
            for probe, r in sch.last_round.items()
        }

    def counters(self) -> Mapping[str, Mapping[tuple[str, ...], float]]:
        out: dict[str, dict[tuple[str, ...], float]] = {
            k: dict(v) for k, v in self._counters.items()
        }
        if self.scheduler is not None:
            for name, counter in (
                ("monitord_probe_rounds_total", self.scheduler.rounds),
                ("monitord_probe_skipped_total", self.scheduler.skipped),
                ("monitord_probe_late_total", self.scheduler.late),
            ):
                out[name] = {(probe,): float(n) for probe, n in counter.items()}
        for probe in self.probers:
            for name in ("monitord_probe_rounds_total", "monitord_probe_skipped_total",
                         "monitord_probe_late_total", "monitord_probe_rounds_incomplete_total"):
                out.setdefault(name, {}).setdefault((probe,), 0.0)
        if self.deliverer is not None:
            out["monitord_notifications_total"] = {
                key: float(n) for key, n in self.deliverer.results.items()}
        out["monitord_storage_errors_total"] = {
            (): float(self.writer.errors if self.writer else 0)
        }
        if self.writer is not None:
            out["monitord_storage_write_errors_total"] = {
                (reason,): float(n) for reason, n in self.writer.write_errors.items()}
            out["monitord_storage_transitions_dropped_total"] = {
                (): float(self.writer.transitions_dropped)}
        return out

    def gauges(self) -> Mapping[str, Mapping[tuple[str, ...], float]]:
        kinds: Counter[str] = Counter(lab.kind for lab in self._labels)
        return {
            "monitord_probe_up": {(p,): float(up) for p, up in self.probe_up.items()},
            "monitord_config_last_reload_success": {(): float(self.last_reload_ok)},
            "monitord_config_last_reload_timestamp_seconds": {(): self.config_loaded_at},
            "monitord_storage_pending_writes": {
                (): float(self.writer.pending if self.writer else 0)
            },
            "monitord_storage_up": {(): float(self.writer.up if self.writer else 0)},
            "monitord_devices_configured": {(k,): float(n) for k, n in kinds.items()},
            "monitord_schools_configured": {
                (): float(len(self.config.schools) if self.config else 0)
            },
        }

    def probe_metrics(self) -> list[MetricFamily]:
        """Each prober's (and the MQTT source's) own families (monitord.probes.metrics)."""
        out = [fam for prober in self.probers.values() for fam in prober.metrics()]
        if self.mqtt is not None:
            out += self.mqtt.metrics()
        return out

    def health(self) -> dict[str, Any]:
        sch = self.scheduler
        running = sch is not None and sch.running
        probes: dict[str, Any] = {}
        for name, prober in self.probers.items():
            entry: dict[str, Any] = {"up": self.probe_up.get(name, False)}
            mode = getattr(prober, "mode", None)
            if mode:
                entry["mode"] = str(mode)
            if sch is not None and name in sch.last_round_end:
                entry["last_round_age_seconds"] = round(time.time() - sch.last_round_end[name], 3)
            probes[name] = entry
        if self.mqtt is not None:
            st = self.mqtt.stats
            probes["mqtt"] = {"up": st.broker_up, "broker_since": st.broker_since,
                              **({"last_error": one_line(st.last_error, REASON_LIMIT)}
                                 if not st.broker_up and st.last_error else {})}
        storage_up = self.writer is not None and self.writer.up
        return {
            # degraded: monitoring goes on but the database cannot be written (a restart
            # would not help and would lose the changes queued in memory: still HTTP 200)
            "status": ("ok" if storage_up else "degraded") if running
            else "starting" if not self.stop_event.is_set() else "stopping",
            "version": self.version,
            "uptime_seconds": round(time.time() - self.start_time, 3),
            "devices": len(self._labels),
            "states": {s.value: n for s, n in self.tracker.counts().items()},
            "probes": probes,
            "config": {"loaded_at": self.config_loaded_at, "last_reload_ok": self.last_reload_ok,
                       "last_reload_at": self.last_reload_attempt_at or self.config_loaded_at,
                       **({"last_reload_error": self.last_reload_error}
                          if not self.last_reload_ok else {})},
            "storage": {
                "up": storage_up,
                "pending_writes": self.writer.pending if self.writer else 0,
                "errors": self.writer.errors if self.writer else 0,
                **({"failing_since": self.writer.failing_since,
                    "last_error": self.writer.last_error}
                   if self.writer is not None and not self.writer.up else {}),
            },
        }

    # -- lifecycle -------------------------------------------------------------------

    def _adopt(self, cfg: Config) -> list[str]:
        self.config = cfg
        self.config_loaded_at = time.time()
        self._labels = [
            DeviceLabels(d.id, d.school or "office", d.kind.value) for d in cfg.devices
        ]
        self._school_of = {d.id: d.school or "office" for d in cfg.devices}
        gateways = link_devices(cfg.devices)
        self._school_labels = [
            SchoolLabels(smis, sch.name, sch.district, sch.isp,
                         f"{sch.location.lat}" if sch.location else "",
                         f"{sch.location.lon}" if sch.location else "",
                         tuple(gateways.get(smis, ())))
            for smis, sch in cfg.schools.items()
        ]
        removed = self.tracker.configure(build_specs(cfg))
        self.engine.tz = cfg.tz
        self.engine.configure(build_nodes(cfg), cfg.calendar(),
                              [*cfg.maintenance_windows(), *self._db_windows],
                              build_policy(cfg))
        if self.scheduler is not None:
            self.scheduler.set_jobs(
                [j for j in build_jobs(cfg) if self.probe_up.get(j.probe, False)]
            )
        if self.mqtt is not None:
            self.mqtt.set_devices(mqtt_devices(cfg))
        snmp = self.probers.get("snmp")
        forget = getattr(snmp, "forget", None)
        if forget is not None:
            for dev_id in removed:
                forget(dev_id)
        return removed

    async def _on_results(self, observations: list[Observation], stats: RoundStats) -> None:
        if not stats.complete:
            self._counters["monitord_probe_rounds_incomplete_total"][(stats.probe,)] += 1
            log.warning("%s round of %d targets incomplete: %s", stats.probe, stats.targets,
                        stats.reason or "local limit")
        self._apply(observations)

    async def _on_mqtt(self, observations: list[Observation]) -> None:
        """Observations pushed by the MQTT source (messages, staleness, broker outages)."""
        self._apply(observations)

    def _apply(self, observations: list[Observation]) -> None:
        obs_counter = self._counters["monitord_observations_total"]
        trans_counter = self._counters["monitord_state_transitions_total"]
        snmp_events = self._counters["monitord_device_events_total"]
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
                    self._background(self._event("device_rebooted", obs.device_id))
            status = self.tracker.status(obs.device_id)
            was_flapping = status.flapping if status is not None else False
            tr = self.tracker.apply(obs)
            if status is None:
                continue
            if tr is not None:
                transitions.append(tr)
                trans_counter[(tr.new.value,)] += 1
                log.info("device %s: %s → %s (%s)", tr.device_id, tr.old.value, tr.new.value,
                         tr.reason)
            if status.flapping != was_flapping:
                log.warning("device %s %s flapping (%.0f%% state change)", obs.device_id,
                            "started" if status.flapping else "stopped", status.flap_percent)
            if tr is not None or status.flapping != was_flapping:
                changes += self.engine.on_state(obs.device_id, status.state, obs.ts,
                                                status.reason, status.flapping)
        self._record(transitions, changes)

    def _record(self, transitions: list[Transition], changes: list[Change]) -> None:
        """Queue transitions and their consequences as one unit of work."""
        contexts: dict[int, TicketContext] = {}
        for ch in changes:
            if isinstance(ch, TicketOpen) and self.config is not None:
                contexts[ch.ticket_id] = ticket_context(self.config, ch)
                log.warning("ticket %d opened for %s (%s)", ch.ticket_id, ch.incident.root,
                            ch.incident.hypothesis)
        notes = [n for ch in changes if (n := self._notification(ch, contexts)) is not None]
        if self.writer is not None:
            self.writer.enqueue(transitions, changes, contexts, notes)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _broker_notifications(self, now: float) -> None:
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
                self.writer.enqueue([], [], {}, [NotificationEvent(
                    event_key("broker_unreachable", st.broker_since), "broker_unreachable",
                    st.broker_since, {"reason": one_line(st.last_error, REASON_LIMIT),
                                      "since": st.broker_since})])
        elif st.broker_up and self._broker_alerted_since is not None:
            down_since = self._broker_alerted_since
            self._broker_alerted_since = None
            self.writer.enqueue([], [], {}, [NotificationEvent(
                event_key("broker_restored", down_since), "broker_restored", st.broker_since,
                {"age": max(0.0, st.broker_since - down_since)})])

    def _storage_notifications(self, now: float) -> None:
        """One ``storage_failing`` message per episode of failed database writes, and one
        ``storage_restored`` when everything queued is on disk.  Both go straight through
        the channels: the outbox lives in the very database that cannot be written."""
        w = self.writer
        if w is None:
            return
        if not w.up and w.failing_since is not None and self._storage_alerted_since is None:
            since = self._storage_alerted_since = w.failing_since
            self._background(self._alert_directly(NotificationEvent(
                event_key("storage_failing", since), "storage_failing", since,
                {"reason": w.last_error, "since": since})))
        elif w.up and self._storage_alerted_since is not None:
            since, self._storage_alerted_since = self._storage_alerted_since, None
            self._background(self._alert_directly(NotificationEvent(
                event_key("storage_restored", since), "storage_restored", now,
                {"age": max(0.0, now - since)})))

    async def _alert_directly(self, event: NotificationEvent) -> None:
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

    async def _timed_notifications(self) -> None:
        """Reminders, escalations and the daily summary (idempotent keys: safe to repeat)."""
        now = time.time()
        if self.config is None or self.storage is None or now - self._last_timed < 30:
            return
        self._last_timed = now
        n = self.config.notify
        try:
            open_tickets = await self.storage.list_tickets()
        except Exception as exc:
            log.error("reading tickets for reminders failed: %s", exc)
            return
        offline = [s.name for s in self._school_labels
                   if school_offline(self.effective_state(g) for g in s.gateways)]
        events = timed_events(open_tickets, offline, now,
                              Reminders(n.remind_every, n.escalate_after, n.daily_summary_at))
        if events and self.writer is not None:
            self.writer.enqueue([], [], {}, events)

    def _ticket_data(self, ticket_id: int, root: str) -> dict[str, Any]:
        cfg = self.config
        dev = cfg.device_map().get(root) if cfg is not None else None
        school = cfg.schools.get(dev.school or "") if cfg is not None and dev else None
        return {"ticket_id": ticket_id, "root": root,
                "root_name": dev.display_name if dev else root,
                "school": dev.school if dev else None,
                "district": school.district if school else "",
                "kind": dev.kind.value if dev else "",
                "served_unit": school.name if school else (dev.unit if dev else root)}

    def _notification(self, ch: Change, contexts: Mapping[int, TicketContext]
                      ) -> NotificationEvent | None:
        """The message-worthy changes, as outbox events with idempotency keys."""
        if isinstance(ch, TicketOpen):
            data = self._ticket_data(ch.ticket_id, ch.incident.root)
            ctx = contexts.get(ch.ticket_id)
            if ctx is not None:
                data["served_unit"] = ctx.served_unit
            data.update(down_since=ch.incident.opened_at, hypothesis=ch.incident.hypothesis)
            data.update(self._cause(ch.incident))
            return NotificationEvent(event_key("open", ch.ticket_id, ch.incident.id),
                                     "ticket_opened", ch.ts, data)
        if isinstance(ch, TicketRecovered | TicketRelapsed | TicketAutoClosed):
            info = self.engine.ticket(ch.ticket_id)
            data = self._ticket_data(ch.ticket_id, info.root if info else "")
            kind = {TicketRecovered: "ticket_repaired", TicketRelapsed: "ticket_reopened",
                    TicketAutoClosed: "ticket_closed"}[type(ch)]
            return NotificationEvent(event_key(kind, ch.ticket_id, ch.ts), kind, ch.ts, data)
        if isinstance(ch, IncidentOpened | IncidentClosed) and ch.incident.kind == "upstream":
            live = self.engine.incident_for(ch.incident.root) or ch.incident
            started = isinstance(ch, IncidentOpened)
            kind = "upstream_started" if started else "upstream_ended"
            ts = ch.incident.opened_at if started else (ch.incident.closed_at or time.time())
            return NotificationEvent(
                event_key(kind, ch.incident.id), kind, ts,
                {"hypothesis": live.hypothesis, **self._cause(live)})
        return None

    def _cause(self, inc: Incident) -> dict[str, Any]:
        """The facts a message words its hypothesis from (in notify.lang), with one count
        of what is affected: the incident's affected devices, which are also the ticket's
        equipment list after its root (device tickets), or its schools (upstream)."""
        if inc.kind == "upstream":
            return {"group": inc.root, "schools": len(inc.affected),
                    "total": self.engine.group_size(inc.root)}
        node = self.engine.node(inc.root)
        return {"affected": len(inc.affected),
                "gateway": node.is_school_gateway if node is not None else False,
                "isp": node.isp if node is not None else ""}

    async def _tick_loop(self) -> None:
        """Timers (ticket delays, active hours, auto-close) and officers' edits (tickets,
        maintenance windows added with the CLI) read back from the database."""
        while not self.stop_event.is_set():
            if self.storage is not None:
                try:
                    # Not while ticket changes wait to be written (a storage outage): the
                    # database's older statuses would undo them in memory.
                    if self.writer is None or self.writer.pending == 0:
                        self.engine.sync_tickets(await self.storage.ticket_infos())
                    self._db_windows = [db_window(w) for w in await self.storage.maintenance()]
                    if self.config is not None:
                        self.engine.set_maintenance(
                            [*self.config.maintenance_windows(), *self._db_windows])
                except Exception as exc:
                    log.error("reading tickets/maintenance from the database failed: %s", exc)
            self._record([], self.engine.tick(time.time()))
            self._broker_notifications(time.time())
            self._storage_notifications(time.time())
            await self._timed_notifications()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=TICK_SECONDS)

    async def reload(self) -> bool:
        """Load the config file again; on any failure keep the running config and say so
        (log, ``/healthz``, ``monitord_config_last_reload_success 0``)."""
        async with self._reload_lock:
            path = self.options.config_path
            log.info("reloading configuration from %s", path)
            self.last_reload_attempt_at = time.time()
            try:
                result = await asyncio.to_thread(load_config, path)
            except ConfigError as exc:
                return await self._reload_failed(exc.problems)
            except Exception as exc:  # load_config maps everything; this is a last guard
                log.exception("reading the new configuration failed")
                return await self._reload_failed(
                    [Problem(str(path), 1, "(top)", one_line(f"{exc!r}", REASON_LIMIT))])
            for warning in result.warnings:
                log.warning("%s", warning)
            old = self.config
            try:
                removed = self._adopt(result.config)
            except Exception as exc:
                log.exception("applying the new configuration failed")
                if old is not None:
                    self._adopt(old)
                return await self._reload_failed(
                    [Problem(str(path), 1, "(top)",
                             one_line(f"cannot apply: {exc!r}", REASON_LIMIT))])
            if old is not None and (old.storage != result.config.storage
                                    or old.http != result.config.http
                                    or old.engines != result.config.engines):
                log.warning("storage/http/engines settings changed: they apply after a restart")
            if old is not None and old.mqtt != result.config.mqtt:
                log.warning("mqtt broker settings changed: they apply after a restart")
            if self.mqtt is None and mqtt_devices(result.config):
                log.warning("devices watched over MQTT were added: restart monitord to "
                            "connect to the broker")
            if self.deliverer is not None:
                self.deliverer.configure(
                    build_channels(result.config, self.options.notify_urls),
                    build_notify_policy(result.config, self.links),
                    result.config.office.short_name
                    or result.config.office.name)
                self.deliverer.calendar = result.config.calendar()
            if removed and self.storage is not None:
                try:
                    await self.storage.forget_devices(removed)
                except Exception as exc:
                    log.error("cannot forget removed devices: %s", exc)
            self.last_reload_ok = True
            self.last_reload_error = ""
            self._counters["monitord_config_reloads_total"][("success",)] += 1
            log.info("configuration reloaded: %d schools, %d devices",
                     len(result.config.schools), len(result.config.devices))
            await self._event("config_reloaded", f"{len(result.config.devices)} devices")
            return True

    async def _reload_failed(self, problems: list[Problem]) -> bool:
        self.last_reload_ok = False
        more = f" (and {len(problems) - 1} more; see the log)" if len(problems) > 1 else ""
        self.last_reload_error = one_line(
            (problems[0].without_values() if problems else "rejected") + more, 300)
        self._counters["monitord_config_reloads_total"][("failure",)] += 1
        log.error("new configuration rejected, keeping the running one:")
        for problem in problems:
            log.error("  %s", problem)
        await self._event("config_rejected", f"{len(problems)} problems")
        return False

    async def _event(self, kind: str, detail: str) -> None:
        if self.storage is None:
            return
        try:
            await self.storage.record_event(kind, detail)
        except Exception as exc:
            if self.writer is not None and is_storage_error(exc):
                self.writer.report_failure(exc)  # counted, logged rate-limited
            else:
                log.error("cannot record event %s: %s", kind, exc)

    async def _prune_loop(self, retention_days: int) -> None:
        while not self.stop_event.is_set():
            if self.storage is not None:
                try:
                    n = await self.storage.prune(retention_days)
                    if n:
                        log.info("pruned %d history rows older than %d days", n, retention_days)
                except Exception as exc:
                    log.error("pruning history failed: %s", exc)
                    if self.writer is not None:
                        self.writer.report_failure(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=PRUNE_EVERY_SECONDS)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code."""
        try:
            result = await asyncio.to_thread(load_config, self.options.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            log.error("configuration invalid, not starting")
            return 2
        cfg = result.config
        for warning in result.warnings:
            log.warning("%s", warning)

        db_path = resolve_db_path(cfg, self.options.db_path)
        open_files = raise_open_files_limit()
        listen = self.options.listen or cfg.http.listen
        try:
            host, port = parse_listen(listen)
            sock = bind(host, port)
        except (OSError, ValueError) as exc:
            log.error("%s", exc)
            return 1
        try:
            self.storage = await Storage.open(db_path)
            # The outbox worker gets its own connection: its transactions must not
            # interleave with the state writer's on one connection.
            self._notify_store = await Storage.open(db_path)
            stored = await self.storage.load_states()
            restored = (await self.storage.open_incidents(), await self.storage.ticket_infos(),
                        await self.storage.next_ticket_id())
            self.links = LinkSigner(await asyncio.to_thread(
                load_secret, cfg.http.link_secret, db_path.parent), cfg.http.link_ttl)
        except Exception as exc:
            sock.close()
            for store in (self.storage, self._notify_store):
                if store is not None:
                    with contextlib.suppress(Exception):
                        await store.close()
            if isinstance(exc, LinkSecretError):
                log.error("%s", exc)
            else:
                log.error("cannot open database %s: %s%s", db_path, error_text(exc),
                          OPEN_HINTS.get(error_reason(exc), ""))
            return 1
        self.writer = StateWriter(self.storage)
        self.deliverer = Deliverer(self._notify_store.connection,
                                   build_channels(cfg, self.options.notify_urls),
                                   build_notify_policy(cfg, self.links),
                                   cfg.office.short_name or cfg.office.name)
        self.deliverer.calendar = cfg.calendar()
        # While the database cannot be written, the outbox worker waits: a message sent
        # but not marked sent would go out again every second.
        writer = self.writer
        self.deliverer.hold = lambda: not writer.up
        self.deliverer.on_error = writer.report_failure

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        reload_tasks: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = asyncio.create_task(self.reload())
            reload_tasks.add(task)
            task.add_done_callback(reload_tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)

        self.probers = make_probers(cfg)
        for name, prober in self.probers.items():
            try:
                await prober.start()
                self.probe_up[name] = True
            except ProbeSetupError as exc:
                self.probe_up[name] = False
                log.error("probe %s cannot start: %s — its devices stay UNKNOWN", name, exc)

        self.scheduler = Scheduler(self.probers, self._on_results)
        mqtt_count = len(mqtt_devices(cfg))
        if mqtt_count or cfg.mqtt is not None:
            self.mqtt = MqttSource(mqtt_settings(cfg), self._on_mqtt)
        self._adopt(cfg)
        self.tracker.restore(stored)
        incidents, infos, next_ticket = restored
        self.engine.restore(incidents, infos, {dev: st.state for dev, st in stored.items()},
                            next_ticket)

        registry = build_registry(self)
        connections = cfg.http.limit_concurrency or default_concurrency(open_files)
        log.info("open files limit %d: HTTP connections at most %d", open_files, connections)
        self.http = HttpServer(build_app(registry, self.health, self.status_data,
                                         self._ticket_for_web, web_routes(self),
                                         ticket_access=self._ticket_access), sock,
                               limit_concurrency=connections)
        await self.http.start()
        self.status_data()  # starts computing the status page's availability figures
        h, p = self.http.address
        base = f"http://{h if ':' not in h else f'[{h}]'}:{p}"
        log.info("monitord %s: %d schools, %d devices; database %s", self.version,
                 len(cfg.schools), len(cfg.devices), db_path)
        log.info("metrics: %s/metrics  health: %s/healthz", base, base)
        for line in self.options.extra_banner:
            log.info("%s", line.format(base=base))
        await self._event("daemon_started", f"version {self.version}")

        tasks = [
            asyncio.create_task(self.scheduler.run(self.stop_event), name="scheduler"),
            asyncio.create_task(self.writer.run(self.stop_event), name="writer"),
            asyncio.create_task(self._prune_loop(cfg.storage.retention_days), name="prune"),
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self.deliverer.run(self.stop_event), name="notify"),
        ]
        if self.mqtt is not None:
            s = self.mqtt.settings
            log.info("mqtt: %d devices from broker %s:%d", mqtt_count, s.host, s.port)
            tasks.append(asyncio.create_task(self.mqtt.run(self.stop_event), name="mqtt"))
        await self.stop_event.wait()
        log.info("stopping")
        await asyncio.gather(*tasks, return_exceptions=True)
        for prober in self.probers.values():
            try:
                await prober.close()
            except Exception as exc:
                log.warning("closing probe %s: %s", getattr(prober, "name", "?"), exc)
        await self.http.stop()
        if not await self.writer.flush():
            log.error("%d state changes could not be written before exit", self.writer.pending)
        await self._event("daemon_stopped", "")
        await self.storage.close()
        await self._notify_store.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0


class _ApiView:
    """TEMPORARY (h-api): what the API reads of the daemon until the read model
    (monitord.app.readmodel) replaces this; the lead drops it when merging h-app."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.status_data = daemon.status_data
        self.device_status = daemon.device_status

    @property
    def config(self) -> Config | None:
        return self._d.config

    @property
    def storage(self) -> Storage | None:
        return self._d.storage

    def effective_state(self, device_id: str, now: float) -> State:
        return self._d.engine.effective_state(device_id, now)

    def in_maintenance(self, device_id: str, now: float) -> MaintenanceWindow | None:
        return self._d.engine.in_maintenance(device_id, now)

    def open_incidents(self) -> list[Incident]:
        return self._d.engine.open_incidents()


def web_routes(daemon: Daemon) -> list[BaseRoute]:
    """Pages and APIs that read the running daemon (each module owns its routes)."""
    from typing import cast

    from monitord.app.commands import AppCommands
    from monitord.http.api.routes import routes as api_routes
    from monitord.http.ports import View
    from monitord.http.reports import routes as report_routes
    from monitord.http.wall import routes as wall_routes

    async def maintenance_changed() -> None:
        # was monitord.http.api.routes.refresh_maintenance: the windows in force now
        # instead of at the daemon's next tick
        if daemon.storage is None or daemon.config is None:
            return
        daemon._db_windows = [db_window(w) for w in await daemon.storage.maintenance()]
        daemon.engine.set_maintenance(
            [*daemon.config.maintenance_windows(), *daemon._db_windows])

    commands = AppCommands.for_daemon(lambda: daemon.storage, lambda: daemon.config,
                                      maintenance_changed)
    view = cast(View, _ApiView(daemon))
    return [*wall_routes(daemon), *api_routes(view, commands), *report_routes(daemon)]

