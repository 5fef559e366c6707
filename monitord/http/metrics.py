"""Prometheus exposition: one custom collector that reads current state at scrape time.

No metric object exists per device: every scrape walks the daemon's current view (config,
state tracker, scheduler and engine counters) and yields metric families.  A reload that
removes a device therefore removes its series at once, and 10,000 devices cost nothing
between scrapes.

Metric names are a contract (Grafana dashboards and alert rules use them): see README.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Protocol, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _go_float

from monitord.domain.school import school_up
from monitord.domain.state import DeviceStatus, State
from monitord.probes import registry
from monitord.probes.base import Observation
from monitord.probes.metrics import MetricFamily
from monitord.probes.mqtt.metrics import VALUE_GAUGES as MQTT_VALUES
from monitord.probes.snmp.metrics import INTERFACE_COUNTERS, INTERFACE_GAUGES, SNMP_VALUES

__all__ = [
    "CONTENT_TYPE",
    "COUNTERS",
    "GAUGES",
    "INTERFACE_COUNTERS",
    "INTERFACE_GAUGES",
    "MQTT_VALUES",
    "SNMP_VALUES",
    "DeviceLabels",
    "DeviceSection",
    "Exposition",
    "LagHistogram",
    "MetricsView",
    "MonitordCollector",
    "RoundInfo",
    "SchoolLabels",
    "build_registry",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class DeviceLabels:
    device: str
    school: str
    kind: str


@dataclass(frozen=True, slots=True)
class SchoolLabels:
    school: str
    name: str
    district: str
    isp: str
    latitude: str
    longitude: str
    gateways: tuple[str, ...]  # devices without a parent: they carry the school's link


@dataclass(frozen=True, slots=True)
class LagHistogram:
    """The event loop's lag samples: (upper bound, cumulative count) per bucket."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum: float


@dataclass(frozen=True, slots=True)
class RoundInfo:
    duration_seconds: float
    targets: int
    complete: bool
    end_timestamp: float


class MetricsView(Protocol):
    """What the collector needs from the daemon (read-only)."""

    version: str
    start_time: float

    def device_labels(self) -> Iterable[DeviceLabels]: ...
    def school_labels(self) -> Iterable[SchoolLabels]: ...
    def upstream_outages(self) -> Mapping[str, int]: ...
    def device_status(self, device_id: str) -> DeviceStatus | None: ...
    def effective_state(self, device_id: str) -> State: ...
    def ticket_counts(self) -> Mapping[str, int]: ...
    def incidents_open(self) -> int: ...
    def round_info(self) -> Mapping[str, RoundInfo]: ...
    def counters(self) -> Mapping[str, Mapping[tuple[str, ...], float]]: ...
    def gauges(self) -> Mapping[str, Mapping[tuple[str, ...], float]]: ...
    def loop_lag(self) -> LagHistogram | None: ...
    def take_changes(self) -> tuple[bool, Collection[str]]:
        """(everything may have changed, the devices that did) since the last call."""
        ...
    def probe_metrics(self) -> Iterable[MetricFamily]:
        """What every running prober's (and the MQTT source's) ``metrics()`` reports."""
        ...


# name → (help, label names) for the counters and gauges the daemon reports by name.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "monitord_probe_rounds_total": ("Probe rounds (batches) run.", ("probe",)),
    "monitord_probe_rounds_incomplete_total": (
        "Probe rounds whose results were not fully trustworthy because of a local limit.",
        ("probe",),
    ),
    "monitord_probe_skipped_total": (
        "Runs skipped because the previous run of the same device and probe was in flight.",
        ("probe",),
    ),
    "monitord_probe_late_total": (
        "Runs that fell more than one interval behind schedule.",
        ("probe",),
    ),
    "monitord_observations_total": ("Probe results by outcome.", ("probe", "result")),
    "monitord_state_transitions_total": ("Device state changes.", ("state",)),
    "monitord_config_reloads_total": ("Configuration reloads by result.", ("result",)),
    "monitord_storage_errors_total": ("Database writes that failed (will be retried).", ()),
    "monitord_http_requests_rejected_total": (
        "HTTP requests refused, by reason (unauthorized, forbidden, bad_request, "
        "sse_limit, signin_throttled).",
        ("reason",)),
    "monitord_storage_write_errors_total": (
        "Database writes that failed, by reason (disk_full, read_only, locked, io_error, "
        "corrupt, cannot_open, other).", ("reason",)),
    "monitord_storage_transitions_dropped_total": (
        "Intermediate state changes left out of the history because the write queue was "
        "full while the database could not be written (current states are kept).", ()),
    "monitord_notifications_total": (
        "Notification messages by channel and result (success, retry, failed).",
        ("channel", "result"),
    ),
    "monitord_device_events_total": (
        "Events probes reported (e.g. snmp reboot: sysUpTime went back).", ("probe", "event")),
}

GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "monitord_probe_up": ("1 when the probe module started and can probe.", ("probe",)),
    "monitord_config_last_reload_success": (
        "1 when the last configuration (re)load succeeded.",
        (),
    ),
    "monitord_config_last_reload_timestamp_seconds": (
        "When the configuration in force was loaded.",
        (),
    ),
    "monitord_storage_pending_writes": ("State changes waiting to be written.", ()),
    "monitord_storage_up": ("1 while the database takes writes, 0 while writes fail (disk "
                            "full, read-only): changes wait in memory.", ()),
    "monitord_devices_configured": ("Devices in the configuration, by kind.", ("kind",)),
    "monitord_schools_configured": ("Schools in the configuration.", ()),
}



#: the per-device families the daemon itself reports: name → help (all gauges)
_DEVICE_HELP: dict[str, str] = {
    "monitord_device_up": "1 when the device is UP or DEGRADED, 0 when DOWN or UNREACHABLE; "
                          "absent while UNKNOWN or in MAINTENANCE.",
    "monitord_device_state": "1 for the state the device is in.",
    "monitord_device_state_since_timestamp_seconds":
        "When the device entered its current state (Unix).",
    "monitord_device_flapping":
        "1 while the device is flapping (percent state change above the high threshold).",
    "monitord_icmp_window_loss_ratio":
        "Share of ICMP echo requests unanswered over the loss window (the last "
        "window_rounds rounds; what DEGRADED is judged on), 0–1.",
    "monitord_icmp_window_rtt_seconds":
        "Mean ICMP round-trip time of the replies in the loss window.",
    "monitord_icmp_window_rounds": "Rounds in the loss window now (it refills after an outage).",
    "monitord_device_last_probe_timestamp_seconds": "When the device was last probed (Unix).",
}
_STATES = tuple(State)
_UP = frozenset({State.UP, State.DEGRADED})
_NOT_UP = frozenset({State.DOWN, State.UNREACHABLE})


#: a sample value as prometheus_client writes it (``1.0``, ``+Inf``, ``1.7e+09``)
floatToGoString = cast(Callable[[float], str], _go_float)


def _escape_label(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value  # nearly always: three scans in C instead of three new strings
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=False))


def _header(name: str, help_text: str, kind: str) -> str:
    shown = _exposed(name, kind)
    text = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {shown} {text}\n# TYPE {shown} {kind}\n"


#: devices rendered between two yields to the event loop (a scrape never holds it long)
SLICE = 1000
#: how often changed devices' rows are rendered between scrapes
FLUSH_SECONDS = 1.0
log = logging.getLogger(__name__)
_STATE_FAMILIES = ("monitord_device_up", "monitord_device_state",
                   "monitord_device_state_since_timestamp_seconds", "monitord_device_flapping")
_VOLATILE_FAMILIES = ("monitord_icmp_window_loss_ratio", "monitord_icmp_window_rtt_seconds",
                      "monitord_icmp_window_rounds",
                      "monitord_device_last_probe_timestamp_seconds")


class DeviceSection:
    """The per-device families as bytes, one row per device and family, re-rendered only
    for the devices that changed.

    At 20,000 devices these are nearly all of ``/metrics`` (a million samples with SNMP
    interface tables); building them as objects for every scrape took seconds.  The read
    model says which devices changed (:meth:`MetricsView.take_changes`: a new observation,
    a parent's state change — UNREACHABLE —, a maintenance window; a reload changes
    everything); only their rows are rendered again, and a probe's rows only when that
    probe brought a new observation (a ping does not re-render an interface table).  A
    scrape renders what changed since the last one, in slices that yield to the event
    loop, then joins each family's rows.  Probe families come from the registry
    (``observation_metrics`` of each device's last observation), so probes sharing a
    family still merge into one.
    """

    def __init__(self, view: MetricsView) -> None:
        self._view = view
        self._labels: list[DeviceLabels] = []
        self._source: Iterable[DeviceLabels] | None = None
        self._index: dict[str, int] = {}
        #: family → one row per device (b"" where a device has no sample)
        self._rows: dict[str, list[bytes]] = {}
        #: (device, probe) → the observation its rows were rendered from
        self._seen: dict[tuple[str, str], Observation] = {}
        #: every family's HELP/TYPE lines, in the order they are written
        self._headers: dict[str, bytes] = {
            name: _header(name, text, "gauge").encode() for name, text in _DEVICE_HELP.items()}
        for kind in registry.PROBES.values():
            for fam in kind.observation_metrics([]):
                self._headers.setdefault(fam.name,
                                         _header(fam.name, fam.help, fam.type).encode())
        self._pending: set[str] = set()
        #: (device, probe) → the families its last rows went to
        self._probe_names: dict[tuple[str, str], tuple[str, ...]] = {}
        #: device → (effective state, since, flapping) its state rows show
        self._state_keys: dict[str, tuple[State, float, bool]] = {}

    def update(self) -> Iterator[None]:
        """Render the rows of what changed; yields between slices of devices."""
        everything, changed = self._view.take_changes()
        # The read model hands out the same list until a reload builds a new one: an
        # identity check, not a comparison of 20,000 labels every second.
        source = self._view.device_labels()
        if everything or source is not self._source:
            self._source = source
            labels = self._labels = list(source)
            self._index = {lab.device: i for i, lab in enumerate(labels)}
            self._rows = {name: [b""] * len(labels) for name in self._headers}
            self._seen = {}
            self._probe_names = {}
            self._state_keys = {}
            todo = [lab.device for lab in labels]
            self._pending = set()
        else:
            self._pending.update(changed)
            todo = list(self._pending)
        for start in range(0, len(todo), SLICE):
            if start:
                yield None
            for dev in todo[start:start + SLICE]:
                self._pending.discard(dev)
                i = self._index.get(dev)
                if i is not None:
                    self._render(i, self._labels[i])

    def snapshot(self, wanted: Callable[[str], bool] | None = None
                 ) -> list[tuple[bytes, list[bytes]]]:
        """Each family's header and a copy of its rows (the list, not the bytes): what a
        scrape writes even while rows change under it.  ``wanted``: which families."""
        return [(header, list(self._rows.get(name, ()))) for name, header in
                self._headers.items() if wanted is None or wanted(name)]

    def pieces(self) -> list[bytes]:
        return [b"".join(chunks(self.snapshot()))]

    def render(self) -> Iterator[list[bytes] | None]:
        """Yields None between slices of devices, then the section's pieces (a list)."""
        yield from self.update()
        yield self.pieces()


    def _row(self, name: str) -> list[bytes]:
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = [b""] * len(self._labels)
        return rows

    def _render(self, i: int, lab: DeviceLabels) -> None:
        view, dev = self._view, lab.device
        st = view.device_status(dev)
        if st is None:
            for rows in self._rows.values():
                rows[i] = b""
            return
        latest = list(st.latest.items())  # one step under the GIL
        skey = (view.effective_state(dev), st.since, st.flapping)
        if self._state_keys.get(dev) != skey:  # state lines: only when the state changed
            self._state_keys[dev] = skey
            own = _state_lines(lab, *skey)
            for name in _STATE_FAMILIES:
                self._row(name)[i] = own.get(name, b"")
        own = _volatile_lines(lab, st, latest)
        for name in _VOLATILE_FAMILIES:
            self._row(name)[i] = own.get(name, b"")
        for probe, obs in latest:
            key = (dev, probe)
            if self._seen.get(key) is obs:
                continue
            old = self._probe_names.get(key, ())
            fresh = self._probe_lines(lab, probe, obs)
            for name in old:
                if name not in fresh:
                    self._row(name)[i] = b""
            for name, text in fresh.items():
                self._row(name)[i] = text
            self._probe_names[key] = tuple(fresh)
            self._seen[key] = obs

    def _probe_lines(self, lab: DeviceLabels, probe: str, obs: Observation
                     ) -> dict[str, bytes]:
        kind = registry.PROBES.get(probe)
        if kind is None:
            return {}
        out: dict[str, bytes] = {}
        for fam in kind.observation_metrics([((lab.device, lab.school, lab.kind), obs)]):
            if not fam.samples:
                continue
            if fam.name not in self._headers:
                self._headers[fam.name] = _header(fam.name, fam.help, fam.type).encode()
            out[fam.name] = _sample_lines(fam)
        return out


def _interface_family(name: str) -> bool:
    return name.startswith(INTERFACE_PREFIX)


#: the per-interface families (SNMP interface tables): at 20,000 devices with managed
#: switches most of the samples, and they change only at each SNMP poll (5 min)
INTERFACE_PREFIX = "monitord_interface_"
#: ``/metrics?part=…``: all (the default), ``interfaces`` (only the interface tables) or
#: ``no_interfaces`` (everything else), so that a large office can scrape the interface
#: tables in a job of their own at a longer interval (docs/deploy.md)
PARTS: dict[str, Callable[[str], bool] | None] = {
    "all": None,
    "interfaces": _interface_family,
    "no_interfaces": lambda name: not _interface_family(name),
}

#: rows joined into one chunk of a streamed scrape
CHUNK_ROWS = 2000


def chunks(families: list[tuple[bytes, list[bytes]]]) -> Iterator[bytes]:
    """The text of the families, in chunks of at most :data:`CHUNK_ROWS` rows (a scrape
    of 80 MB is streamed, never held whole in memory)."""
    for header, rows in families:
        if len(rows) <= CHUNK_ROWS:
            yield header + b"".join(rows)
            continue
        yield header
        for start in range(0, len(rows), CHUNK_ROWS):
            yield b"".join(rows[start:start + CHUNK_ROWS])

def _exposed(name: str, kind: str) -> str:
    """A family's name as written: counters always end in ``_total`` (as prometheus_client
    writes them, whether the name was declared with it or not)."""
    return name.removesuffix("_total") + "_total" if kind == "counter" else name


def _sample_lines(fam: MetricFamily) -> bytes:
    name = _exposed(fam.name, fam.type)
    if not fam.labels:
        return "".join(f"{name} {floatToGoString(value)}\n"
                       for value in fam.samples.values()).encode()
    return "".join(f"{name}{{{_labels(fam.labels, values)}}} {floatToGoString(value)}\n"
                   for values, value in fam.samples.items()).encode()


def family_bytes(fam: MetricFamily) -> bytes:
    """A family (monitord.probes.metrics) in the text format, without prometheus_client's
    objects (thousands of per-device samples)."""
    return _header(fam.name, fam.help, fam.type).encode() + _sample_lines(fam)


def _state_lines(lab: DeviceLabels, current: State, since: float, flapping: bool
                 ) -> dict[str, bytes]:
    base = _labels(("device", "school", "kind"), (lab.device, lab.school, lab.kind))
    dev = _labels(("device",), (lab.device,))
    out = {
        "monitord_device_state": "".join(
            f'monitord_device_state{{{dev},state="{s.value}"}} '
            f'{"1.0" if current is s else "0.0"}\n' for s in _STATES).encode(),
        "monitord_device_state_since_timestamp_seconds":
            f"monitord_device_state_since_timestamp_seconds{{{base}}} "
            f"{floatToGoString(since)}\n".encode(),
    }
    if current in _UP or current in _NOT_UP:
        out["monitord_device_up"] = (f"monitord_device_up{{{base}}} "
                                     f"{'1.0' if current in _UP else '0.0'}\n").encode()
    if flapping:
        out["monitord_device_flapping"] = f"monitord_device_flapping{{{base}}} 1.0\n".encode()
    return out


def _volatile_lines(lab: DeviceLabels, st: DeviceStatus, latest: list[tuple[str, Observation]]
                    ) -> dict[str, bytes]:
    base = _labels(("device", "school", "kind"), (lab.device, lab.school, lab.kind))
    out: dict[str, bytes] = {}
    if (wl := st.window.loss_ratio) is not None:
        out["monitord_icmp_window_loss_ratio"] = (
            f"monitord_icmp_window_loss_ratio{{{base}}} {floatToGoString(wl)}\n").encode()
        out["monitord_icmp_window_rounds"] = (
            f"monitord_icmp_window_rounds{{{base}}} {floatToGoString(len(st.window))}\n"
        ).encode()
        if (wr := st.window.rtt_avg) is not None:
            out["monitord_icmp_window_rtt_seconds"] = (
                f"monitord_icmp_window_rtt_seconds{{{base}}} {floatToGoString(wr)}\n").encode()
    if latest:
        out["monitord_device_last_probe_timestamp_seconds"] = "".join(
            f'monitord_device_last_probe_timestamp_seconds{{{base},probe="{_escape_label(p)}"}} '
            f"{floatToGoString(obs.ts)}\n" for p, obs in latest).encode()
    return out


class Exposition:
    """``/metrics``: the per-device families from the :class:`DeviceSection` caches, every
    probe's families rendered directly, the daemon's own few through prometheus_client
    (with its process and platform collectors)."""

    def __init__(self, view: MetricsView) -> None:
        self._view = view
        self._collector = MonitordCollector(view)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self._collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.devices = DeviceSection(view)
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def render(self) -> bytes:
        """The whole body at once (tests, tools); the daemon streams :meth:`stream`."""
        for _ in self.devices.update():
            pass
        return b"".join([*chunks(self.devices.snapshot()), self._tail()])

    def _tail(self) -> bytes:
        return (b"".join(family_bytes(fam) for fam in self._collector.probe_families())
                + generate_latest(self.registry))

    async def stream(self, part: str = "all") -> AsyncIterator[bytes]:
        """The body in chunks: changed devices rendered on the event loop in slices
        (``await sleep(0)`` between them: no thread reading state while probes change
        it, no slice holding the loop long), then the rows as they are at that moment,
        written at the pace the scraper reads them.  The first scrape starts a
        background task that renders changed devices every :data:`FLUSH_SECONDS`, so a
        scrape mostly writes rows already rendered."""
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="metrics-rows")
        async with self._lock:
            for _ in self.devices.update():
                await asyncio.sleep(0)
            families = self.devices.snapshot(PARTS[part])
        tail = self._tail() if part != "interfaces" else b""
        for n, chunk in enumerate(chunks(families)):
            if n % 16 == 15:
                await asyncio.sleep(0)
            yield chunk
        yield tail

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                async with self._lock:
                    for _ in self.devices.update():
                        await asyncio.sleep(0)
            except Exception:  # a bug here must not end the rows' upkeep
                log.exception("rendering device metrics failed")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None


class MonitordCollector(Collector):
    """Renders the daemon's own families except the per-device ones (:class:`DeviceSection`)
    and, generically, every probe's (see :mod:`monitord.probes.registry`): a probe's names
    and help texts live with it."""

    def __init__(self, view: MetricsView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view
        info = GaugeMetricFamily("monitord_build_info", "monitord version.", labels=["version"])
        info.add_metric([view.version], 1)
        yield info
        yield GaugeMetricFamily(
            "monitord_start_time_seconds", "Daemon start time (Unix).", value=view.start_time
        )
        tickets = GaugeMetricFamily(
            "monitord_tickets_open",
            "Repair tickets not yet repaired or closed, by school ('office', 'upstream').",
            labels=["school"],
        )
        for school, n in sorted(view.ticket_counts().items()):
            tickets.add_metric([school], n)
        yield tickets
        yield GaugeMetricFamily("monitord_incidents_open", "Open incidents (root causes).",
                                value=view.incidents_open())
        yield from self._school_metrics()
        yield from self._round_metrics()
        counters = view.counters()
        for name, (doc, labels) in COUNTERS.items():
            fam = CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(labels))
            for key, value in counters.get(name, {}).items():
                fam.add_metric(list(key), value)
            yield fam
        gauges = view.gauges()
        for name, (doc, labels) in GAUGES.items():
            gfam = GaugeMetricFamily(name, doc, labels=list(labels))
            for key, value in gauges.get(name, {}).items():
                gfam.add_metric(list(key), value)
            yield gfam
        if (lag := view.loop_lag()) is not None:
            hist = HistogramMetricFamily(
                "monitord_event_loop_lag_seconds",
                "How much later than due the event loop ran a task (sampled every 0.1 s): "
                "probes, pages and MQTT messages wait this long.")
            hist.add_metric([], [(_bound(b), float(n)) for b, n in lag.buckets]
                            + [("+Inf", float(lag.count))], lag.sum)
            yield hist

    def probe_families(self) -> Iterator[MetricFamily]:
        """Every probe's declared families, with what the running probers report (a probe
        not running still gets its HELP/TYPE lines, without samples)."""
        counters, gauges = self._view.counters(), self._view.gauges()
        reported = {fam.name: fam for fam in self._view.probe_metrics()}
        for spec in registry.metric_specs():
            fam = reported.pop(spec.name, None)
            if fam is None:
                legacy = counters if spec.type == "counter" else gauges
                fam = spec.family(legacy.get(spec.name, {}))
            yield fam
        yield from reported.values()  # reported but not declared

    def _school_metrics(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "monitord_school_info",
            "Always 1; the school's name, district, ISP and coordinates as labels (Geomap).",
            labels=["school", "name", "district", "isp", "latitude", "longitude"],
        )
        up = GaugeMetricFamily(
            "monitord_school_up",
            "1 when every device that carries the school's link (no parent) is up, 0 when one "
            "is down or unreachable; absent while unknown or in maintenance.",
            labels=["school"],
        )
        for sch in self._view.school_labels():
            info.add_metric([sch.school, sch.name, sch.district, sch.isp, sch.latitude,
                             sch.longitude], 1)
            online = school_up([self._view.effective_state(g) for g in sch.gateways])
            if online is not None:
                up.add_metric([sch.school], 1 if online else 0)
        upstream = GaugeMetricFamily(
            "monitord_upstream_outages_open",
            "Open upstream outages (many schools of one ISP or district down together), by "
            "group; the value is the number of schools affected.",
            labels=["group"],
        )
        for group, n in sorted(self._view.upstream_outages().items()):
            upstream.add_metric([group], n)
        yield from (info, up, upstream)

    def _round_metrics(self) -> Iterator[Metric]:
        dur = GaugeMetricFamily(
            "monitord_probe_round_duration_seconds",
            "Duration of the last probe round (batch).",
            labels=["probe"],
        )
        size = GaugeMetricFamily(
            "monitord_probe_round_targets", "Targets in the last probe round.", labels=["probe"]
        )
        end = GaugeMetricFamily(
            "monitord_probe_last_round_timestamp_seconds",
            "When the last probe round ended (Unix).",
            labels=["probe"],
        )
        for probe, r in self._view.round_info().items():
            dur.add_metric([probe], r.duration_seconds)
            size.add_metric([probe], r.targets)
            end.add_metric([probe], r.end_timestamp)
        yield from (dur, size, end)


def build_registry(view: MetricsView) -> Exposition:
    return Exposition(view)


def render(exposition: Exposition) -> bytes:
    return exposition.render()


def _bound(value: float) -> str:
    return repr(float(value))
