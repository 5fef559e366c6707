"""Prometheus exposition: one custom collector that reads current state at scrape time.

No metric object exists per device: every scrape walks the daemon's current view (config,
state tracker, scheduler and engine counters) and yields metric families.  A reload that
removes a device therefore removes its series at once, and 10,000 devices cost nothing
between scrapes.

Metric names are a contract (Grafana dashboards and alert rules use them): see README.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

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

from monitord.domain.school import school_up
from monitord.domain.state import DeviceStatus, State
from monitord.probes import registry
from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily
from monitord.probes.mqtt.metrics import VALUE_GAUGES as MQTT_VALUES
from monitord.probes.snmp.metrics import INTERFACE_COUNTERS, INTERFACE_GAUGES, SNMP_VALUES

__all__ = ["CONTENT_TYPE", "COUNTERS", "GAUGES", "INTERFACE_COUNTERS", "INTERFACE_GAUGES",
           "MQTT_VALUES", "SNMP_VALUES", "DeviceLabels", "LagHistogram", "MetricsView",
           "MonitordCollector", "RoundInfo", "SchoolLabels", "build_registry", "render"]

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



class MonitordCollector(Collector):
    """Renders the daemon's own families and, generically, every probe's (see
    :mod:`monitord.probes.registry`): a probe's names and help texts live with it."""

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
        latest: dict[str, list[tuple[DeviceKey, Observation]]] = {
            name: [] for name in registry.PROBES}
        yield from self._device_metrics(latest)
        # Probes may share a family (the TLS certificate's not-after: http, tcp with
        # tls, labelled by probe): their samples merge into one family.
        merged: dict[str, MetricFamily] = {}
        for name, kind in registry.PROBES.items():
            for pfam in kind.observation_metrics(latest[name]):
                prev = merged.get(pfam.name)
                merged[pfam.name] = pfam if prev is None else replace(
                    prev, samples={**prev.samples, **pfam.samples})
        yield from map(_render, merged.values())
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

    def _device_metrics(self, latest: dict[str, list[tuple[DeviceKey, Observation]]]
                        ) -> Iterator[Metric]:
        """State of every device; fills ``latest`` (probe → each device's last
        observation) for the probes' own per-device families."""
        dl = ["device", "school", "kind"]
        up = GaugeMetricFamily(
            "monitord_device_up",
            "1 when the device is UP or DEGRADED, 0 when DOWN or UNREACHABLE; absent while "
            "UNKNOWN or in MAINTENANCE.",
            labels=dl,
        )
        state = GaugeMetricFamily(
            "monitord_device_state", "1 for the state the device is in.", labels=["device", "state"]
        )
        since = GaugeMetricFamily(
            "monitord_device_state_since_timestamp_seconds",
            "When the device entered its current state (Unix).",
            labels=dl,
        )
        w_loss = GaugeMetricFamily(
            "monitord_icmp_window_loss_ratio",
            "Share of ICMP echo requests unanswered over the loss window (the last "
            "window_rounds rounds; what DEGRADED is judged on), 0–1.",
            labels=dl,
        )
        w_rtt = GaugeMetricFamily(
            "monitord_icmp_window_rtt_seconds",
            "Mean ICMP round-trip time of the replies in the loss window.",
            labels=dl,
        )
        w_rounds = GaugeMetricFamily(
            "monitord_icmp_window_rounds",
            "Rounds in the loss window now (it refills after an outage).",
            labels=dl,
        )
        flapping = GaugeMetricFamily(
            "monitord_device_flapping",
            "1 while the device is flapping (percent state change above the high threshold).",
            labels=dl,
        )
        last = GaugeMetricFamily(
            "monitord_device_last_probe_timestamp_seconds",
            "When the device was last probed (Unix).",
            labels=[*dl, "probe"],
        )
        for lab in self._view.device_labels():
            st = self._view.device_status(lab.device)
            if st is None:
                continue
            key = (lab.device, lab.school, lab.kind)
            values = list(key)
            current = self._view.effective_state(lab.device)
            if current in (State.UP, State.DEGRADED):
                up.add_metric(values, 1)
            elif current in (State.DOWN, State.UNREACHABLE):
                up.add_metric(values, 0)
            for s in State:
                state.add_metric([lab.device, s.value], 1 if current is s else 0)
            if st.flapping:
                flapping.add_metric(values, 1)
            since.add_metric(values, st.since)
            for probe, obs in st.latest.items():
                last.add_metric([*values, probe], obs.ts)
                rows = latest.get(probe)
                if rows is not None:
                    rows.append((key, obs))
            if (wl := st.window.loss_ratio) is not None:
                w_loss.add_metric(values, wl)
                w_rounds.add_metric(values, len(st.window))
                if (wr := st.window.rtt_avg) is not None:
                    w_rtt.add_metric(values, wr)
        yield from (up, state, since, flapping, w_loss, w_rtt, w_rounds, last)
        tickets = GaugeMetricFamily(
            "monitord_tickets_open",
            "Repair tickets not yet repaired or closed, by school ('office', 'upstream').",
            labels=["school"],
        )
        for school, n in sorted(self._view.ticket_counts().items()):
            tickets.add_metric([school], n)
        yield tickets
        yield GaugeMetricFamily("monitord_incidents_open", "Open incidents (root causes).",
                                value=self._view.incidents_open())

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


def build_registry(view: MetricsView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitordCollector(view))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


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
