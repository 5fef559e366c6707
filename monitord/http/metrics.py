"""Prometheus exposition: one custom collector that reads current state at scrape time.

No metric object exists per device: every scrape walks the daemon's current view (config,
state tracker, scheduler and engine counters) and yields metric families.  A reload that
removes a device therefore removes its series at once, and 10,000 devices cost nothing
between scrapes.

Metric names are a contract (Grafana dashboards and alert rules use them): see README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=False))


def _header(name: str, help_text: str, kind: str) -> str:
    shown = name.removesuffix("_total") if kind == "counter" else name
    text = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {shown} {text}\n# TYPE {shown} {kind}\n"


class DeviceSection:
    """The per-device families as text, each device's lines kept until they change.

    At 20,000 devices these are most of ``/metrics`` (half a million samples with SNMP
    interface tables); building them as objects for every scrape took seconds.  A
    device's own lines (state, since, loss window, last probe) are rendered again only
    when its status changed (:attr:`DeviceStatus.version`), its effective state did (a
    parent went down: UNREACHABLE; a maintenance window began) or its labels did (a
    reload); a probe's lines for a device only when that probe brought a new observation
    (so a ping does not re-render an interface table).  A scrape joins the cached bytes,
    family by family.  Probe families come from the registry (``observation_metrics`` of
    each device's last observation), so probes sharing a family still merge into one.
    """

    def __init__(self, view: MetricsView) -> None:
        self._view = view
        #: device → (labels, status version, effective state, family → its lines)
        self._own: dict[str, tuple[DeviceLabels, int, State, dict[str, bytes]]] = {}
        #: (device, probe) → (the observation, labels, family → its lines)
        self._probe: dict[tuple[str, str], tuple[Observation, DeviceLabels,
                                                 dict[str, bytes]]] = {}
        #: every family's HELP/TYPE lines, in the order they are written
        self._headers: dict[str, bytes] = {
            name: _header(name, text, "gauge").encode() for name, text in _DEVICE_HELP.items()}
        for kind in registry.PROBES.values():
            for fam in kind.observation_metrics([]):
                self._headers.setdefault(fam.name,
                                         _header(fam.name, fam.help, fam.type).encode())

    def render(self) -> list[bytes]:
        view = self._view
        families: dict[str, list[bytes]] = {name: [] for name in self._headers}
        own_cache, probe_cache = self._own, self._probe
        own_fresh: dict[str, tuple[DeviceLabels, int, State, dict[str, bytes]]] = {}
        probe_fresh: dict[tuple[str, str], tuple[Observation, DeviceLabels,
                                                 dict[str, bytes]]] = {}
        for lab in view.device_labels():
            dev = lab.device
            st = view.device_status(dev)
            if st is None:
                continue
            current = view.effective_state(dev)
            # list(): one step under the GIL (scrapes render in a thread while probes report)
            latest = list(st.latest.items())
            own = own_cache.get(dev)
            if own is None or own[1] != st.version or own[2] is not current or own[0] != lab:
                own = (lab, st.version, current, self._own_lines(lab, st, current, latest))
            own_fresh[dev] = own
            for name, text in own[3].items():
                families[name].append(text)
            for probe, obs in latest:
                key = (dev, probe)
                hit = probe_cache.get(key)
                if hit is None or hit[0] is not obs or hit[1] != lab:
                    hit = (obs, lab, self._probe_lines(lab, probe, obs))
                probe_fresh[key] = hit
                for name, text in hit[2].items():
                    families.setdefault(name, []).append(text)
        self._own, self._probe = own_fresh, probe_fresh  # removed devices drop out
        out: list[bytes] = []
        for name, pieces in families.items():
            out.append(self._headers[name])
            out.extend(pieces)
        return out

    @staticmethod
    def _own_lines(lab: DeviceLabels, st: DeviceStatus, current: State,
                   latest: list[tuple[str, Observation]]) -> dict[str, bytes]:
        base = _labels(("device", "school", "kind"), (lab.device, lab.school, lab.kind))
        dev = _labels(("device",), (lab.device,))
        lines: dict[str, list[str]] = {}

        def add(name: str, labels: str, value: float) -> None:
            lines.setdefault(name, []).append(f"{name}{{{labels}}} {floatToGoString(value)}\n")

        if current in _UP:
            add("monitord_device_up", base, 1)
        elif current in _NOT_UP:
            add("monitord_device_up", base, 0)
        lines["monitord_device_state"] = [
            f'monitord_device_state{{{dev},state="{s.value}"}} {"1.0" if current is s else "0.0"}\n'
            for s in _STATES]
        add("monitord_device_state_since_timestamp_seconds", base, st.since)
        if st.flapping:
            add("monitord_device_flapping", base, 1)
        if (wl := st.window.loss_ratio) is not None:
            add("monitord_icmp_window_loss_ratio", base, wl)
            add("monitord_icmp_window_rounds", base, len(st.window))
            if (wr := st.window.rtt_avg) is not None:
                add("monitord_icmp_window_rtt_seconds", base, wr)
        for probe, obs in latest:
            add("monitord_device_last_probe_timestamp_seconds",
                f'{base},probe="{_escape_label(probe)}"', obs.ts)
        return {name: "".join(v).encode() for name, v in lines.items()}

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
            out[fam.name] = "".join(
                f"{fam.name}{{{_labels(fam.labels, values)}}} {floatToGoString(value)}\n"
                if fam.labels else f"{fam.name} {floatToGoString(value)}\n"
                for values, value in fam.samples.items()).encode()
        return out


class Exposition:
    """``/metrics``: the small families through prometheus_client (its process and
    platform collectors too), the per-device ones from the :class:`DeviceSection` cache."""

    def __init__(self, view: MetricsView) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MonitordCollector(view))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.devices = DeviceSection(view)

    def render(self) -> bytes:
        pieces = self.devices.render()
        pieces.append(generate_latest(self.registry))
        return b"".join(pieces)


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
        yield from self._probe_metrics(counters, gauges)
        if (lag := view.loop_lag()) is not None:
            hist = HistogramMetricFamily(
                "monitord_event_loop_lag_seconds",
                "How much later than due the event loop ran a task (sampled every 0.1 s): "
                "probes, pages and MQTT messages wait this long.")
            hist.add_metric([], [(_bound(b), float(n)) for b, n in lag.buckets]
                            + [("+Inf", float(lag.count))], lag.sum)
            yield hist

    def _probe_metrics(self, counters: Mapping[str, Mapping[tuple[str, ...], float]],
                       gauges: Mapping[str, Mapping[tuple[str, ...], float]]
                       ) -> Iterator[Metric]:
        """Every probe's declared families, with what the running probers report (a probe
        not running still gets its HELP/TYPE lines, without samples)."""
        reported = {fam.name: fam for fam in self._view.probe_metrics()}
        for spec in registry.metric_specs():
            fam = reported.pop(spec.name, None)
            if fam is None:
                legacy = counters if spec.type == "counter" else gauges
                fam = spec.family(legacy.get(spec.name, {}))
            yield _render(fam)
        yield from map(_render, reported.values())  # reported but not declared

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


def _render(fam: MetricFamily) -> Metric:
    """A probe's family (monitord.probes.metrics) as a prometheus_client family."""
    out: Metric
    if fam.type == "counter":
        out = CounterMetricFamily(fam.name.removesuffix("_total"), fam.help,
                                  labels=list(fam.labels))
    else:
        out = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
    for key, value in fam.samples.items():
        out.add_metric(list(key), value)
    return out
