"""What the ``snmp`` probe exports: engine counters and the readings of each device's poll.

Engine-wide counters come from :meth:`SnmpProber.metrics`; the per-device readings
(uptime, interfaces, storage, UPS …) are built from each device's last observation by
:func:`observation_families`, at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge
from monitord.probes.snmp.state import SnmpStats

ERRORS = counter("monitord_snmp_errors_total", "SNMP poll errors by device and reason "
                 "(timeout, auth_failed, no_such_object, malformed, walk_loop …).",
                 "device", "reason")
REBOOTS = counter("monitord_snmp_reboots_total", "Reboots seen by SNMP (sysUpTime "
                  "decreased).", "device")
COUNTER_WRAPS = counter("monitord_snmp_counter_wraps_total",
                        "32-bit interface counter wraps handled.", "device")
COUNTER_RESETS = counter("monitord_snmp_counter_resets_total", "Interface counter resets "
                         "handled (reboot, cleared counters).", "device")
BULK_FALLBACKS = counter("monitord_snmp_bulk_fallbacks_total", "Agents switched from "
                         "GETBULK to GETNEXT because they mishandled GETBULK.", "device")
POLLS = counter("monitord_snmp_polls_total", "SNMP device polls.")
REQUESTS = counter("monitord_snmp_requests_total", "SNMP requests sent (retries included).")
UNANSWERED = counter("monitord_snmp_requests_unanswered_total",
                     "SNMP requests unanswered after all retries.")
DATAGRAMS_DROPPED = counter("monitord_snmp_datagrams_dropped_total", "SNMP datagrams "
                            "dropped: malformed, unmatched (late, duplicate, guessed "
                            "request-id), wrong_source, wrong_version, wrong_community "
                            "(spoofed).", "reason")

TRAPS = counter("monitord_snmp_traps_total", "SNMP traps and informs received, by trap "
                "(linkDown, linkUp, coldStart, warmStart, authenticationFailure, "
                "upsOnBattery, other) and result (accepted, bad_community, unknown_source, "
                "malformed).", "trap", "result")

SPECS: Final[tuple[MetricSpec, ...]] = (ERRORS, REBOOTS, COUNTER_WRAPS, COUNTER_RESETS,
                                        BULK_FALLBACKS, POLLS, REQUESTS, UNANSWERED,
                                        DATAGRAMS_DROPPED, TRAPS)


def families(stats: SnmpStats, dropped: Mapping[str, int]) -> list[MetricFamily]:
    """The engine's counters since start, as exported families."""
    return [
        ERRORS.family({k: float(n) for k, n in stats.errors.items()}),
        REBOOTS.family({(d,): float(n) for d, n in stats.reboots.items()}),
        COUNTER_WRAPS.family({(d,): float(n) for d, n in stats.counter_wraps.items()}),
        COUNTER_RESETS.family({(d,): float(n) for d, n in stats.counter_resets.items()}),
        BULK_FALLBACKS.family({(d,): float(n) for d, n in stats.bulk_fallbacks.items()}),
        POLLS.family({(): float(stats.polls)}),
        REQUESTS.family({(): float(stats.requests.requests)}),
        UNANSWERED.family({(): float(stats.requests.retries_exhausted)}),
        DATAGRAMS_DROPPED.family({(r,): float(n) for r, n in dropped.items()}),
    ]


# ---------------------------------------------------------------------------- readings

#: SNMP observation values → (metric, help); label: device.
SNMP_VALUES: Final[dict[str, tuple[str, str]]] = {
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
INTERFACE_COUNTERS: Final[dict[str, tuple[str, str]]] = {
    "in_octets": ("monitord_interface_receive_bytes", "Bytes received (ifHCInOctets, 32-bit "
                  "fallback; wraps and resets handled)."),
    "out_octets": ("monitord_interface_transmit_bytes", "Bytes transmitted (ifHCOutOctets, "
                   "32-bit fallback; wraps and resets handled)."),
    "in_errors": ("monitord_interface_receive_errors", "Inbound packets with errors."),
    "out_errors": ("monitord_interface_transmit_errors", "Outbound packets with errors."),
    "in_discards": ("monitord_interface_receive_discards", "Inbound packets discarded."),
    "out_discards": ("monitord_interface_transmit_discards", "Outbound packets discarded."),
}
INTERFACE_GAUGES: Final[dict[str, tuple[str, str]]] = {
    "oper_status": ("monitord_interface_oper_status", "ifOperStatus (1 up, 2 down, 3 testing, "
                    "5 dormant, 7 lowerLayerDown)."),
    "admin_status": ("monitord_interface_admin_status", "ifAdminStatus (1 up, 2 down)."),
    "speed_bps": ("monitord_interface_speed_bps", "Interface speed, bits per second "
                  "(ifHighSpeed, else ifSpeed)."),
}

UP = gauge("monitord_snmp_up", "1 when the device's agent answered the last SNMP poll "
           "(0: SNMP failing).", "device")
POLL_DURATION = gauge("monitord_snmp_poll_duration_seconds",
                      "Duration of the device's last SNMP poll.", "device")
DEVICE_INFO = gauge("monitord_snmp_device_info", "Always 1: what the agent says it is "
                    "(sysName, sysObjectID, sysDescr).",
                    "device", "sys_name", "sys_object_id", "sys_descr")
UTILISATION = gauge("monitord_interface_utilisation_ratio", "Share of the interface speed "
                    "used since the previous poll, 0–1.", "device", "interface", "direction")
STORAGE_USED_RATIO = gauge("monitord_storage_used_ratio", "Share of a storage area (disk, "
                           "RAM, swap) in use (hrStorage).", "device", "storage")
STORAGE_SIZE = gauge("monitord_storage_size_bytes", "Size of a storage area.",
                     "device", "storage")
STORAGE_USED = gauge("monitord_storage_used_bytes", "Bytes in use in a storage area.",
                     "device", "storage")


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    """What the last SNMP poll of each device read (``((device, school, kind), obs)``).

    Nothing for a failed or incomplete poll: its series go stale in Prometheus rather
    than repeating old numbers.
    """
    up: dict[tuple[str, ...], float] = {}
    dur: dict[tuple[str, ...], float] = {}
    info: dict[tuple[str, ...], float] = {}
    values: dict[str, dict[tuple[str, ...], float]] = {k: {} for k in SNMP_VALUES}
    counters: dict[str, dict[tuple[str, ...], float]] = {k: {} for k in INTERFACE_COUNTERS}
    gauges: dict[str, dict[tuple[str, ...], float]] = {k: {} for k in INTERFACE_GAUGES}
    util: dict[tuple[str, ...], float] = {}
    storage: dict[str, dict[tuple[str, ...], float]] = {
        "used_ratio": {}, "size_bytes": {}, "used_bytes": {}}
    for (dev, _school, _kind), obs in latest:
        if not obs.complete:
            continue
        up[(dev,)] = 1 if obs.ok else 0
        dur[(dev,)] = obs.duration_seconds
        if not obs.ok:
            continue
        if obs.info.get("sys_name") or obs.info.get("sys_object_id"):
            info[(dev, obs.info.get("sys_name", ""), obs.info.get("sys_object_id", ""),
                  obs.info.get("sys_descr", "")[:200])] = 1
        for key, samples in values.items():
            if (x := obs.values.get(key)) is not None:
                samples[(dev,)] = x
        for name, row in obs.tables.get("interface", {}).items():
            for table in (counters, gauges):
                for key, samples in table.items():
                    if (x := row.get(key)) is not None:
                        samples[(dev, name)] = x
            for direction in ("in", "out"):
                if (x := row.get(f"utilisation_{direction}_ratio")) is not None:
                    util[(dev, name, direction)] = x
        for name, row in obs.tables.get("storage", {}).items():
            for key, samples in storage.items():
                if (x := row.get(key)) is not None:
                    samples[(dev, name)] = x
    if_l = ("device", "interface")
    return [
        UP.family(up), POLL_DURATION.family(dur), DEVICE_INFO.family(info),
        *(MetricFamily(name, doc, "gauge", ("device",), values[k])
          for k, (name, doc) in SNMP_VALUES.items()),
        *(MetricFamily(name, doc, "counter", if_l, counters[k])
          for k, (name, doc) in INTERFACE_COUNTERS.items()),
        *(MetricFamily(name, doc, "gauge", if_l, gauges[k])
          for k, (name, doc) in INTERFACE_GAUGES.items()),
        UTILISATION.family(util), STORAGE_USED_RATIO.family(storage["used_ratio"]),
        STORAGE_SIZE.family(storage["size_bytes"]), STORAGE_USED.family(storage["used_bytes"]),
    ]
