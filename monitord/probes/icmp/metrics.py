"""The ICMP engine's exported counters (``monitord_icmp_*``), help texts and values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.icmp.results import IcmpStats
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge

PACKETS_SENT = counter("monitord_icmp_packets_sent_total", "ICMP echo requests sent.")
PACKETS_RECEIVED = counter("monitord_icmp_packets_received_total",
                           "ICMP echo replies matched.")
SEND_ERRORS = counter("monitord_icmp_send_errors_total", "ICMP sends that failed locally.")
SOCKET_DROPS = counter(
    "monitord_icmp_socket_drops_total",
    "Kernel receive-buffer overruns on the ICMP sockets (a sign of overload; affected "
    "hosts are probed again, so it is not a count of lost replies).")
REPLIES_IGNORED = counter("monitord_icmp_replies_ignored_total",
                          "ICMP packets received but not counted, by reason.", "reason")

SPECS: Final[tuple[MetricSpec, ...]] = (PACKETS_SENT, PACKETS_RECEIVED, SEND_ERRORS,
                                        SOCKET_DROPS, REPLIES_IGNORED)


def families(stats: IcmpStats) -> list[MetricFamily]:
    """The engine's counters since start, as exported families."""
    return [
        PACKETS_SENT.family({(): float(stats.packets_sent)}),
        PACKETS_RECEIVED.family({(): float(stats.packets_received)}),
        SEND_ERRORS.family({(): float(stats.send_errors)}),
        SOCKET_DROPS.family({(): float(stats.socket_drops)}),
        REPLIES_IGNORED.family({
            ("invalid",): float(stats.invalid_replies),
            ("duplicate",): float(stats.duplicate_replies),
            ("late",): float(stats.late_replies),
        }),
    ]


# ---------------------------------------------------------------------------- readings

RTT = gauge("monitord_icmp_rtt_seconds",
            "ICMP round-trip time of the last round (min, avg, max).",
            "device", "school", "kind", "stat")
JITTER = gauge("monitord_icmp_jitter_seconds",
               "Mean absolute difference of successive ICMP round-trip times, last round.",
               "device", "school", "kind")
LOSS = gauge("monitord_icmp_packet_loss_ratio",
             "Share of ICMP echo requests unanswered in the last round (0–1).",
             "device", "school", "kind")


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    """Loss, round-trip times and jitter of each device's last complete ICMP round."""
    rtt: dict[tuple[str, ...], float] = {}
    jitter: dict[tuple[str, ...], float] = {}
    loss: dict[tuple[str, ...], float] = {}
    for key, obs in latest:
        if not obs.complete:
            continue
        v = obs.values
        if "loss_ratio" in v:
            loss[key] = v["loss_ratio"]
        for stat in ("min", "avg", "max"):
            if (x := v.get(f"rtt_{stat}_seconds")) is not None:
                rtt[(*key, stat)] = x
        if (j := v.get("jitter_seconds")) is not None:
            jitter[key] = j
    return [RTT.family(rtt), JITTER.family(jitter), LOSS.family(loss)]
