"""Prometheus exposition: one custom collector that reads current state at scrape time.

No metric object exists per device: every scrape walks the daemon's current view (config,
state tracker, scheduler and engine counters) and yields metric families.  A reload that
removes a device therefore removes its series at once, and 10,000 devices cost nothing
between scrapes.

Metric names are a contract (Grafana dashboards and alert rules use them): see README.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from monitord.domain.school import school_up
from monitord.domain.state import DeviceStatus, State
from monitord.probes.mqtt import VALUE_GAUGES as MQTT_VALUES

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
    "monitord_icmp_packets_sent_total": ("ICMP echo requests sent.", ()),
    "monitord_icmp_packets_received_total": ("ICMP echo replies matched.", ()),
    "monitord_icmp_send_errors_total": ("ICMP sends that failed locally.", ()),
    "monitord_icmp_socket_drops_total": (
        "Kernel receive-buffer overruns on the ICMP sockets (a sign of overload; affected "
        "hosts are probed again, so it is not a count of lost replies).",
        (),
    ),
    "monitord_icmp_replies_ignored_total": (
        "ICMP packets received but not counted, by reason.",
        ("reason",),
    ),
    "monitord_config_reloads_total": ("Configuration reloads by result.", ("result",)),
    "monitord_storage_errors_total": ("Database writes that failed (will be retried).", ()),
    "monitord_http_requests_rejected_total": (
        "HTTP requests refused, by reason (unauthorized, bad_request, sse_limit).",
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
    "monitord_snmp_errors_total": ("SNMP poll errors by device and reason (timeout, "
                                   "auth_failed, no_such_object, malformed, walk_loop …).",
                                   ("device", "reason")),
    "monitord_snmp_reboots_total": ("Reboots seen by SNMP (sysUpTime decreased).", ("device",)),
    "monitord_snmp_counter_wraps_total": ("32-bit interface counter wraps handled.",
                                          ("device",)),
    "monitord_snmp_counter_resets_total": ("Interface counter resets handled (reboot, "
                                           "cleared counters).", ("device",)),
    "monitord_snmp_bulk_fallbacks_total": ("Agents switched from GETBULK to GETNEXT because "
                                           "they mishandled GETBULK.", ("device",)),
    "monitord_snmp_polls_total": ("SNMP device polls.", ()),
    "monitord_snmp_requests_total": ("SNMP requests sent (retries included).", ()),
    "monitord_snmp_requests_unanswered_total": ("SNMP requests unanswered after all retries.",
                                                ()),
    "monitord_snmp_datagrams_dropped_total": ("SNMP datagrams dropped: malformed, unmatched "
                                              "(late, duplicate, guessed request-id), "
                                              "wrong_source, wrong_version, wrong_community "
                                              "(spoofed).", ("reason",)),
    "monitord_mqtt_messages_received_total": ("MQTT messages received.", ()),
    "monitord_mqtt_messages_applied_total": ("MQTT messages that updated a device's state.", ()),
    "monitord_mqtt_messages_rejected_total": ("MQTT messages rejected as unusable, by reason.",
                                              ("reason",)),
    "monitord_mqtt_messages_ignored_total": ("Valid MQTT messages that carried no fresh news, "
                                             "by reason.", ("reason",)),
    "monitord_mqtt_reconnects_total": ("Successful MQTT reconnections after the first "
                                       "connection.", ()),
    "monitord_mqtt_connect_failures_total": ("Failed MQTT connection attempts and dropped "
                                             "sessions.", ()),
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
    "monitord_mqtt_broker_up": ("1 while connected to the MQTT broker (alert on 0).", ()),
    "monitord_mqtt_last_message_timestamp_seconds": ("When the last MQTT message arrived.",
                                                     ()),
}

#: SNMP observation values → (metric, help); label: device.
SNMP_VALUES: dict[str, tuple[str, str]] = {
    "sys_uptime_seconds": ("monitord_snmp_uptime_seconds", "sysUpTime of the agent, seconds."),
    "uplink_oper_status": ("monitord_snmp_uplink_oper_status", "ifOperStatus of the "
                           "configured uplink interface (1 up, 2 down, 7 lowerLayerDown …)."),
    "cpu_load_ratio": ("monitord_cpu_load_ratio", "Mean processor load (hrProcessorLoad), 0–1."),
    "cpu_count": ("monitord_cpu_cores", "Processors (cores, threads) in HOST-RESOURCES-MIB's "
                  "hrProcessorTable."),
    "memory_used_ratio": ("monitord_memory_used_ratio", "Share of RAM in use (hrStorageRam)."),
    "load1": ("monitord_load1", "UCD-SNMP load average over 1 minute."),
    "load5": ("monitord_load5", "UCD-SNMP load average over 5 minutes."),
    "load15": ("monitord_load15", "UCD-SNMP load average over 15 minutes."),
    "ups_battery_status": ("monitord_ups_battery_status", "UPS battery status (1 unknown, 2 "
                           "normal, 3 low, 4 depleted)."),
    "ups_on_battery": ("monitord_ups_on_battery", "1 while the UPS runs on battery (mains "
                       "power cut)."),
    "ups_runtime_remaining_seconds": ("monitord_ups_runtime_remaining_seconds", "Estimated "
                                      "battery run time left, seconds."),
    "ups_charge_ratio": ("monitord_ups_charge_ratio", "Battery charge remaining, 0–1."),
}
#: interface table columns that are counters → (metric, help)
INTERFACE_COUNTERS: dict[str, tuple[str, str]] = {
    "in_octets": ("monitord_interface_receive_bytes", "Bytes received (ifHCInOctets, 32-bit "
                  "fallback; wraps and resets handled)."),
    "out_octets": ("monitord_interface_transmit_bytes", "Bytes transmitted (ifHCOutOctets, "
                   "32-bit fallback; wraps and resets handled)."),
    "in_errors": ("monitord_interface_receive_errors", "Inbound packets with errors."),
    "out_errors": ("monitord_interface_transmit_errors", "Outbound packets with errors."),
    "in_discards": ("monitord_interface_receive_discards", "Inbound packets discarded."),
    "out_discards": ("monitord_interface_transmit_discards", "Outbound packets discarded."),
}
INTERFACE_GAUGES: dict[str, tuple[str, str]] = {
    "oper_status": ("monitord_interface_oper_status", "ifOperStatus (1 up, 2 down, 3 testing, "
                    "5 dormant, 7 lowerLayerDown)."),
    "admin_status": ("monitord_interface_admin_status", "ifAdminStatus (1 up, 2 down)."),
    "speed_bps": ("monitord_interface_speed_bps", "Interface speed, bits per second "
                  "(ifHighSpeed, else ifSpeed)."),
}


class MonitordCollector(Collector):
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
        yield from self._device_metrics()
        yield from self._snmp_metrics()
        yield from self._mqtt_metrics()
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

    def _device_metrics(self) -> Iterator[Metric]:
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
        rtt = GaugeMetricFamily(
            "monitord_icmp_rtt_seconds",
            "ICMP round-trip time of the last round (min, avg, max).",
            labels=[*dl, "stat"],
        )
        jitter = GaugeMetricFamily(
            "monitord_icmp_jitter_seconds",
            "Mean absolute difference of successive ICMP round-trip times, last round.",
            labels=dl,
        )
        loss = GaugeMetricFamily(
            "monitord_icmp_packet_loss_ratio",
            "Share of ICMP echo requests unanswered in the last round (0–1).",
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
            values = [lab.device, lab.school, lab.kind]
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
            icmp = st.latest.get("icmp")
            if icmp is not None and icmp.complete:
                v = icmp.values
                if "loss_ratio" in v:
                    loss.add_metric(values, v["loss_ratio"])
                for stat in ("min", "avg", "max"):
                    if (x := v.get(f"rtt_{stat}_seconds")) is not None:
                        rtt.add_metric([*values, stat], x)
                if (j := v.get("jitter_seconds")) is not None:
                    jitter.add_metric(values, j)
            if (wl := st.window.loss_ratio) is not None:
                w_loss.add_metric(values, wl)
                w_rounds.add_metric(values, len(st.window))
                if (wr := st.window.rtt_avg) is not None:
                    w_rtt.add_metric(values, wr)
        yield from (up, state, since, flapping, rtt, jitter, loss, w_loss, w_rtt, w_rounds, last)
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

    def _snmp_metrics(self) -> Iterator[Metric]:
        """What the last SNMP poll of each device read (nothing for a failed poll: its
        series go stale in Prometheus rather than repeating old numbers)."""
        up = GaugeMetricFamily("monitord_snmp_up", "1 when the device's agent answered the "
                               "last SNMP poll (0: SNMP failing).", labels=["device"])
        dur = GaugeMetricFamily("monitord_snmp_poll_duration_seconds",
                                "Duration of the device's last SNMP poll.", labels=["device"])
        info = GaugeMetricFamily("monitord_snmp_device_info", "Always 1: what the agent says "
                                 "it is (sysName, sysObjectID, sysDescr).",
                                 labels=["device", "sys_name", "sys_object_id", "sys_descr"])
        values = {k: GaugeMetricFamily(name, doc, labels=["device"])
                  for k, (name, doc) in SNMP_VALUES.items()}
        if_l = ["device", "interface"]
        counters = {k: CounterMetricFamily(name, doc, labels=if_l)
                    for k, (name, doc) in INTERFACE_COUNTERS.items()}
        gauges = {k: GaugeMetricFamily(name, doc, labels=if_l)
                  for k, (name, doc) in INTERFACE_GAUGES.items()}
        util = GaugeMetricFamily("monitord_interface_utilisation_ratio", "Share of the "
                                 "interface speed used since the previous poll, 0–1.",
                                 labels=[*if_l, "direction"])
        st_l = ["device", "storage"]
        st_used = GaugeMetricFamily("monitord_storage_used_ratio", "Share of a storage area "
                                    "(disk, RAM, swap) in use (hrStorage).", labels=st_l)
        st_size = GaugeMetricFamily("monitord_storage_size_bytes", "Size of a storage area.",
                                    labels=st_l)
        st_bytes = GaugeMetricFamily("monitord_storage_used_bytes",
                                     "Bytes in use in a storage area.", labels=st_l)
        for lab in self._view.device_labels():
            st = self._view.device_status(lab.device)
            obs = st.latest.get("snmp") if st is not None else None
            if obs is None or not obs.complete:
                continue
            dev = lab.device
            up.add_metric([dev], 1 if obs.ok else 0)
            dur.add_metric([dev], obs.duration_seconds)
            if not obs.ok:
                continue
            if obs.info.get("sys_name") or obs.info.get("sys_object_id"):
                info.add_metric([dev, obs.info.get("sys_name", ""),
                                 obs.info.get("sys_object_id", ""),
                                 obs.info.get("sys_descr", "")[:200]], 1)
            for key, fam in values.items():
                if (x := obs.values.get(key)) is not None:
                    fam.add_metric([dev], x)
            for name, row in obs.tables.get("interface", {}).items():
                for key, cfam in counters.items():
                    if (x := row.get(key)) is not None:
                        cfam.add_metric([dev, name], x)
                for key, gfam in gauges.items():
                    if (x := row.get(key)) is not None:
                        gfam.add_metric([dev, name], x)
                for direction in ("in", "out"):
                    if (x := row.get(f"utilisation_{direction}_ratio")) is not None:
                        util.add_metric([dev, name, direction], x)
            for name, row in obs.tables.get("storage", {}).items():
                for key, sfam in (("used_ratio", st_used), ("size_bytes", st_size),
                                  ("used_bytes", st_bytes)):
                    if (x := row.get(key)) is not None:
                        sfam.add_metric([dev, name], x)
        yield from (up, dur, info, *values.values(), *counters.values(), *gauges.values(),
                    util, st_used, st_size, st_bytes)

    def _mqtt_metrics(self) -> Iterator[Metric]:
        """Readings of the last MQTT report of each device (DLTV signal, TV power …)."""
        fams = {k: GaugeMetricFamily(name, doc, labels=["device"])
                for k, (name, doc) in MQTT_VALUES.items()}
        for lab in self._view.device_labels():
            st = self._view.device_status(lab.device)
            obs = st.latest.get("mqtt") if st is not None else None
            if obs is None or obs.unknown:
                continue
            for key, fam in fams.items():
                if (x := obs.values.get(key)) is not None:
                    fam.add_metric([lab.device], x)
        yield from fams.values()

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
