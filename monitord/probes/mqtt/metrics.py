"""What the MQTT source counts and exports: its counters, the broker gauges and each
device's last readings (DLTV signal, TV power …), names and help texts together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge
from monitord.probes.mqtt.decode import REJECT_REASONS

#: Why a message was received but did not change state (monitord_mqtt_messages_ignored_total).
IGNORE_REASONS: Final = (
    "old",                  # its timestamp is older than period × stale_factor
    "retained_unverified",  # retained and without a timestamp: its age is unknown
    "out_of_order",         # older than a report already applied (QoS 1 redelivery)
    "while_offline",        # a retained report while availability says offline
)


@dataclass(slots=True)
class MqttStats:
    """Counters for the exporter (see docs/mqtt.md § Metrics)."""

    messages_received: int = 0
    messages_applied: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    ignored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IGNORE_REASONS, 0))
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    broker_up: bool = False
    broker_since: float = 0.0
    last_error: str = ""
    last_message_time: float | None = None
    batches: int = 0


RECEIVED = counter("monitord_mqtt_messages_received_total", "MQTT messages received.")
APPLIED = counter("monitord_mqtt_messages_applied_total",
                  "MQTT messages that updated a device's state.")
REJECTED = counter("monitord_mqtt_messages_rejected_total",
                   "MQTT messages rejected as unusable, by reason.", "reason")
IGNORED = counter("monitord_mqtt_messages_ignored_total",
                  "Valid MQTT messages that carried no fresh news, by reason.", "reason")
RECONNECTS = counter("monitord_mqtt_reconnects_total",
                     "Successful MQTT reconnections after the first connection.")
CONNECT_FAILURES = counter("monitord_mqtt_connect_failures_total",
                           "Failed MQTT connection attempts and dropped sessions.")
BROKER_UP = gauge("monitord_mqtt_broker_up",
                  "1 while connected to the MQTT broker (alert on 0).")
LAST_MESSAGE = gauge("monitord_mqtt_last_message_timestamp_seconds",
                     "When the last MQTT message arrived.")

SPECS: Final[tuple[MetricSpec, ...]] = (RECEIVED, APPLIED, REJECTED, IGNORED, RECONNECTS,
                                        CONNECT_FAILURES, BROKER_UP, LAST_MESSAGE)


def families(st: MqttStats) -> list[MetricFamily]:
    """The source's counters and broker gauges, as exported families."""
    return [
        RECEIVED.family({(): float(st.messages_received)}),
        APPLIED.family({(): float(st.messages_applied)}),
        REJECTED.family({(r,): float(n) for r, n in st.rejected.items()}),
        IGNORED.family({(r,): float(n) for r, n in st.ignored.items()}),
        RECONNECTS.family({(): float(st.reconnects)}),
        CONNECT_FAILURES.family({(): float(st.connect_failures)}),
        BROKER_UP.family({(): float(st.broker_up)}),
        LAST_MESSAGE.family({} if st.last_message_time is None
                            else {(): st.last_message_time}),
    ]


#: Gauges the exporter builds from Observation.values (label: device).
VALUE_GAUGES: Final[Mapping[str, tuple[str, str]]] = {
    "signal_lock": ("monitord_dltv_signal_lock",
                    "1 when the DLTV satellite receiver reports signal lock, else 0."),
    "signal_strength_db": ("monitord_dltv_signal_strength_db",
                           "DLTV receiver RF input level in dBµV, as its agent reports it."),
    "signal_quality_db": ("monitord_dltv_signal_quality_db",
                          "DLTV receiver signal quality (carrier-to-noise ratio) in dB."),
    "channel": ("monitord_dltv_channel", "DLTV channel number the receiver is tuned to."),
    "receiver_power": ("monitord_dltv_receiver_power",
                       "1 when the DLTV receiver is powered on, else 0."),
    "tv_power": ("monitord_tv_power", "1 when the classroom TV is powered on, else 0."),
    "temperature_celsius": ("monitord_device_temperature_celsius",
                            "Device temperature reported by its agent, in °C."),
    "power_watts": ("monitord_device_power_watts",
                    "Electrical power drawn, from a smart plug, in watts."),
    "uptime_seconds": ("monitord_agent_uptime_seconds",
                       "Uptime of the school agent, in seconds."),
    "message_age_seconds": ("monitord_mqtt_message_age_seconds",
                            "Age of the device's last MQTT report when it was applied."),
}


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    """Readings of the last MQTT report of each device (``((device, school, kind), obs)``)."""
    samples: dict[str, dict[tuple[str, ...], float]] = {k: {} for k in VALUE_GAUGES}
    for (dev, _school, _kind), obs in latest:
        if obs.unknown:
            continue
        for key, fam in samples.items():
            if (x := obs.values.get(key)) is not None:
                fam[(dev,)] = x
    return [MetricFamily(name, doc, "gauge", ("device",), samples[k])
            for k, (name, doc) in VALUE_GAUGES.items()]
