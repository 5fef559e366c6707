"""The read model: what pages, the API and the metrics read from the running daemon.

:class:`ReadModel` implements :class:`monitord.http.ports.View` (and the Prometheus
adapter's :class:`monitord.http.metrics.MetricsView`) over the pipeline's current state
(:class:`monitord.app.pipeline.Pipeline`) and the daemon's life cycle facts
(:class:`Runtime`).  It only reads; the one thing it counts is refused HTTP requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from starlette.requests import Request

from monitord import __version__
from monitord.app.looplag import LoopLagMonitor
from monitord.app.pipeline import REASON_LIMIT, Pipeline
from monitord.config import Config, Device
from monitord.domain.activehours import MaintenanceWindow
from monitord.domain.availability import HistoryLoader, Snapshot
from monitord.domain.incidents import Incident, root_device
from monitord.domain.labels import KIND_TEXT
from monitord.domain.links import LinkSigner
from monitord.domain.school import school_state
from monitord.domain.state import DeviceStatus, State
from monitord.domain.tickets import ACTIVE as ACTIVE_TICKET
from monitord.domain.tickets import TicketError, root_school
from monitord.http.api.auth import token_holder, usable_tokens
from monitord.http.metrics import DeviceLabels, LagHistogram, RoundInfo, SchoolLabels
from monitord.http.status import DeviceRow, SchoolRow, StatusData
from monitord.probes.base import Prober
from monitord.probes.metrics import MetricFamily
from monitord.probes.scheduler import Scheduler
from monitord.storage import Storage, is_storage_error
from monitord.storage.events import RecentEvents, recent_events
from monitord.storage.history import AvailabilityCache, load_history, open_readonly
from monitord.values import one_line

T = TypeVar("T")


@dataclass
class Runtime:
    """The daemon's life cycle facts the read model shows (the daemon sets them)."""

    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    config_loaded_at: float = 0.0
    last_reload_ok: bool = True
    #: why the last reload was rejected (quoted values elided: /healthz is public)
    last_reload_error: str = ""
    last_reload_attempt_at: float = 0.0
    scheduler: Scheduler | None = None
    probers: dict[str, Prober] = field(default_factory=dict)
    probe_up: dict[str, bool] = field(default_factory=dict)
    #: signs the ticket links in notifications (http.link_secret / the data dir's key)
    links: LinkSigner | None = None
    #: the event loop's lag (the daemon runs it; absent in tools that only read)
    loop_lag: LoopLagMonitor | None = None


class _DeviceRows(Sequence[DeviceRow]):
    """A school's device rows for :class:`StatusData`, built when first read."""

    __slots__ = ("_args", "_model", "_rows")

    def __init__(self, model: ReadModel, devices: Sequence[Device], now: float,
                 snap: Snapshot | None) -> None:
        self._model: ReadModel | None = model
        self._args = (devices, now, snap)
        self._rows: tuple[DeviceRow, ...] = ()

    def _all(self) -> tuple[DeviceRow, ...]:
        if self._model is not None:
            self._rows = self._model._device_rows(*self._args)
            self._model = None
        return self._rows

    def __len__(self) -> int:
        return len(self._args[0])

    @overload
    def __getitem__(self, index: int) -> DeviceRow: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[DeviceRow]: ...
    def __getitem__(self, index: int | slice) -> DeviceRow | Sequence[DeviceRow]:
        return self._all()[index]

    def __iter__(self) -> Iterator[DeviceRow]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _DeviceRows | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._all())


class ReadModel:
    version = __version__

    def __init__(self, pipeline: Pipeline, runtime: Runtime) -> None:
        self._p = pipeline
        self._rt = runtime
        self.start_time = time.time()
        #: 30-day availability for the status page, refreshed in a thread every few minutes
        self._availability = AvailabilityCache()
        #: reports run one at a time (each reads the whole period in a thread)
        self._history_lock = asyncio.Semaphore(1)
        #: the loaded config and its devices by school (status_data)
        self._by_school: tuple[Config, Mapping[str, tuple[Device, ...]]] | None = None

    @property
    def config(self) -> Config | None:
        return self._p.config

    @property
    def storage(self) -> Storage | None:
        return self._p.storage

    @property
    def stopping(self) -> asyncio.Event:
        return self._rt.stop_event

    def in_maintenance(self, device_id: str, now: float | None = None
                       ) -> MaintenanceWindow | None:
        return self._p.engine.in_maintenance(device_id, self._p.now() if now is None else now)

    def open_incidents(self) -> Sequence[Incident]:
        return self._p.engine.open_incidents()

    def device_labels(self) -> Iterable[DeviceLabels]:
        return self._p.labels.devices

    def school_labels(self) -> Iterable[SchoolLabels]:
        return self._p.labels.schools

    def status_data(self) -> StatusData:
        """What the public status page may show: schools and states, no addresses.

        Cheap at 20,000 devices: a school's state reads only its gateways, and its device
        rows (only a school's own page and the API read them) are built when first read
        (:class:`_DeviceRows`, at that moment's states)."""
        cfg = self.config
        if cfg is None:
            return StatusData("", [])
        now = self._p.now()
        # Figures from the database, recomputed in a thread at most every 5 minutes.
        snap = self._availability.current(cfg, self.storage.path if self.storage else None,
                                          now)
        by_school = self._devices_by_school(cfg)
        status, effective = self._p.tracker.status, self._p.engine.effective_state
        rows = []
        bars = snap.schools if snap else {}
        for sch in self._p.labels.schools:
            gateways = sch.gateways
            if len(gateways) == 1:  # most schools: one router
                st = status(gateways[0])
                state = school_state((effective(gateways[0], now),))
                since = st.since if st is not None else now
            else:
                link_states = [effective(g, now) for g in gateways]
                state = school_state(link_states) if link_states else State.UNKNOWN
                since = max((st.since for g in gateways if (st := status(g))), default=now)
            rows.append(SchoolRow(sch.school, sch.name, sch.district, sch.isp, state, since,
                                  _DeviceRows(self, by_school.get(sch.school, ()), now, snap),
                                  bars.get(sch.school)))
        return StatusData(cfg.office.name, rows)

    def _devices_by_school(self, cfg: Config) -> Mapping[str, tuple[Device, ...]]:
        """Each school's devices in config order (once per loaded config)."""
        cached = self._by_school
        if cached is not None and cached[0] is cfg:
            return cached[1]
        by_school: dict[str, list[Device]] = {}
        for dev in cfg.devices:
            if dev.school is not None:
                by_school.setdefault(dev.school, []).append(dev)
        out = {k: tuple(v) for k, v in by_school.items()}
        self._by_school = (cfg, out)
        return out

    def _device_rows(self, devices: Sequence[Device], now: float,
                     snap: Snapshot | None) -> tuple[DeviceRow, ...]:
        rows = []
        for n, dev in enumerate(devices, start=1):
            st = self._p.tracker.status(dev.id)
            rows.append(DeviceRow(
                dev.kind.value, dev.name or f"{KIND_TEXT['th'][dev.kind.value]} {n}",
                self._p.engine.effective_state(dev.id, now), st.since if st else now,
                snap.devices.get(dev.id) if snap else None))
        return tuple(rows)

    def ticket_access(self, request: Request, ticket_id: int) -> bool:
        """Ticket pages (personal data): a signed link from a notification or an API
        bearer token.  A signed-in console user without either is judged by the page
        (``domain.access.can_see_ticket``); refusals of anyone else are counted."""
        if self._rt.links is not None and self._rt.links.verify(ticket_id, request.query_params):
            return True
        header = request.headers.get("authorization")
        if header is not None and token_holder(header, usable_tokens(self.config)):
            return True
        if getattr(request.state, "user", None) is None:
            self.count_http_rejected("unauthorized")
        return False

    def count_http_rejected(self, reason: str) -> None:
        """An HTTP request refused (unauthorized, bad_request, sse_limit)."""
        self._p.counters["monitord_http_requests_rejected_total"][(reason,)] += 1

    async def ticket_for_web(self, ticket_id: int) -> dict[str, Any] | None:
        if self.storage is None:
            return None
        try:
            return await self.storage.get_ticket(ticket_id)
        except TicketError:
            return None

    def upstream_outages(self) -> Mapping[str, int]:
        return {inc.root: len(inc.affected) for inc in self._p.engine.open_incidents()
                if inc.kind == "upstream"}

    def device_status(self, device_id: str) -> DeviceStatus | None:
        return self._p.tracker.status(device_id)

    def effective_state(self, device_id: str, now: float | None = None) -> State:
        return self._p.engine.effective_state(device_id, self._p.now() if now is None else now)

    def ticket_counts(self) -> Mapping[str, int]:
        """Open (not repaired/closed) tickets by school ('office' for office devices)."""
        out: Counter[str] = Counter()
        for info in self._p.engine.tickets():
            if info.status in ACTIVE_TICKET:
                dev = root_device(info.root)  # a condition's ticket: its device's
                out[root_school(info.root)  # a manual ticket for a whole school
                    or self._p.labels.school_of.get(dev, "upstream" if ":" in dev
                                                    else "office")] += 1
        return out

    def incidents_open(self) -> int:
        return len(self._p.engine.open_incidents())

    def round_info(self) -> Mapping[str, RoundInfo]:
        if self._rt.scheduler is None:
            return {}
        sch = self._rt.scheduler
        return {
            probe: RoundInfo(r.duration_seconds, r.targets, r.complete,
                             sch.last_round_end.get(probe, 0.0))
            for probe, r in sch.last_round.items()
        }

    def counters(self) -> Mapping[str, Mapping[tuple[str, ...], float]]:
        out: dict[str, dict[tuple[str, ...], float]] = {
            k: dict(v) for k, v in self._p.counters.items()
        }
        if self._rt.scheduler is not None:
            for name, counter in (
                ("monitord_probe_rounds_total", self._rt.scheduler.rounds),
                ("monitord_probe_skipped_total", self._rt.scheduler.skipped),
                ("monitord_probe_late_total", self._rt.scheduler.late),
            ):
                out[name] = {(probe,): float(n) for probe, n in counter.items()}
        for probe in self._rt.probers:
            for name in ("monitord_probe_rounds_total", "monitord_probe_skipped_total",
                         "monitord_probe_late_total", "monitord_probe_rounds_incomplete_total"):
                out.setdefault(name, {}).setdefault((probe,), 0.0)
        if self._p.deliverer is not None:
            out["monitord_notifications_total"] = {
                key: float(n) for key, n in self._p.deliverer.results.items()}
        out["monitord_storage_errors_total"] = {
            (): float(self._p.writer.errors if self._p.writer else 0)
        }
        if self._p.writer is not None:
            out["monitord_storage_write_errors_total"] = {
                (reason,): float(n) for reason, n in self._p.writer.write_errors.items()}
            out["monitord_storage_transitions_dropped_total"] = {
                (): float(self._p.writer.transitions_dropped)}
        return out

    def gauges(self) -> Mapping[str, Mapping[tuple[str, ...], float]]:
        kinds: Counter[str] = Counter(lab.kind for lab in self._p.labels.devices)
        return {
            "monitord_probe_up": {(p,): float(up) for p, up in self._rt.probe_up.items()},
            "monitord_config_last_reload_success": {(): float(self._rt.last_reload_ok)},
            "monitord_config_last_reload_timestamp_seconds": {(): self._rt.config_loaded_at},
            "monitord_storage_pending_writes": {
                (): float(self._p.writer.pending if self._p.writer else 0)
            },
            "monitord_storage_up": {(): float(self._p.writer.up if self._p.writer else 0)},
            "monitord_devices_configured": {(k,): float(n) for k, n in kinds.items()},
            "monitord_schools_configured": {
                (): float(len(self.config.schools) if self.config else 0)
            },
        }

    def take_changes(self) -> tuple[bool, set[str]]:
        return self._p.changes.take()

    def loop_lag(self) -> LagHistogram | None:
        return self._rt.loop_lag.histogram() if self._rt.loop_lag is not None else None

    def probe_metrics(self) -> list[MetricFamily]:
        """Each prober's (and the MQTT source's) own families (monitord.probes.metrics)."""
        out = [fam for prober in self._rt.probers.values() for fam in prober.metrics()]
        if self._p.mqtt is not None:
            out += self._p.mqtt.metrics()
        if self._p.traps is not None:
            out += self._p.traps.metrics()
        return out

    def health(self) -> dict[str, Any]:
        """``/healthz``: ok, degraded (database not writable), starting or stopping."""
        rt = self._rt
        sch = self._rt.scheduler
        running = sch is not None and sch.running
        probes: dict[str, Any] = {}
        for name, prober in self._rt.probers.items():
            entry: dict[str, Any] = {"up": self._rt.probe_up.get(name, False)}
            mode = getattr(prober, "mode", None)
            if mode:
                entry["mode"] = str(mode)
            if sch is not None and name in sch.last_round_end:
                entry["last_round_age_seconds"] = round(time.time() - sch.last_round_end[name], 3)
            probes[name] = entry
        if self._p.mqtt is not None:
            st = self._p.mqtt.stats
            probes["mqtt"] = {"up": st.broker_up, "broker_since": st.broker_since,
                              **({"last_error": one_line(st.last_error, REASON_LIMIT)}
                                 if not st.broker_up and st.last_error else {})}
        if self._p.traps is not None:
            probes["snmp_traps"] = {"up": True, "listen": [
                f"{h}:{p}" for h, p in self._p.traps.addresses]}
        elif self._p.traps_error:
            probes["snmp_traps"] = {"up": False,
                                    "last_error": one_line(self._p.traps_error, REASON_LIMIT)}
        storage_up = self._p.writer is not None and self._p.writer.up
        return {
            # degraded: monitoring goes on but the database cannot be written (a restart
            # would not help and would lose the changes queued in memory: still HTTP 200)
            "status": ("ok" if storage_up else "degraded") if running
            else "starting" if not self._rt.stop_event.is_set() else "stopping",
            "version": self.version,
            "uptime_seconds": round(time.time() - self.start_time, 3),
            "devices": len(self._p.labels.devices),
            "states": {s.value: n for s, n in self._p.tracker.counts().items()},
            "probes": probes,
            "config": {"loaded_at": rt.config_loaded_at, "last_reload_ok": rt.last_reload_ok,
                       "last_reload_at": rt.last_reload_attempt_at or rt.config_loaded_at,
                       **({"last_reload_error": rt.last_reload_error}
                          if not rt.last_reload_ok else {})},
            "storage": {
                "up": storage_up,
                "pending_writes": self._p.writer.pending if self._p.writer else 0,
                "errors": self._p.writer.errors if self._p.writer else 0,
                **({"failing_since": self._p.writer.failing_since,
                    "last_error": self._p.writer.last_error}
                   if self._p.writer is not None and not self._p.writer.up else {}),
            },
        }

    # -- lifecycle -------------------------------------------------------------------

    async def recent_events(self, limit: int) -> RecentEvents:
        """The wall's event list (newest first); raises when the database fails."""
        if self.storage is None:
            return RecentEvents([], [])
        return await recent_events(self.storage, limit)

    async def read_history(self, fn: Callable[[Config, HistoryLoader], T]) -> T:
        """Run ``fn(config, read-only connection)`` in a thread, one at a time (reports).
        Raises RuntimeError when the daemon or its database is not ready; ``fn``'s own
        ValueError (a bad request) goes through."""
        cfg, storage = self.config, self.storage
        if cfg is None or storage is None:
            raise RuntimeError("not ready")
        async with self._history_lock:
            return await asyncio.to_thread(read_history, storage.path,
                                           lambda conn: fn(cfg, conn))


class HistoryError(RuntimeError):
    """The database could not be opened or read for a report."""


def read_history(path: Path, fn: Callable[[HistoryLoader], T]) -> T:
    """``fn(a loader of history spans from the database at path)`` on one read-only
    connection (blocking; safe while the daemon writes).  A database that cannot be opened
    or read raises HistoryError ("cannot open/read database PATH: why"); ``fn``'s other
    errors go through."""
    try:
        conn = open_readonly(path)
    except Exception as exc:
        if is_storage_error(exc):
            raise HistoryError(f"cannot open database {path}: {exc}") from exc
        raise
    try:
        return fn(lambda start, end: load_history(conn, start, end))
    except Exception as exc:
        if is_storage_error(exc):
            raise HistoryError(f"cannot read database {path}: {exc}") from exc
        raise
    finally:
        conn.close()
