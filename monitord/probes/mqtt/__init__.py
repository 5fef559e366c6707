"""MQTT: school agents publish, monitord subscribes and turns messages into state.

* :mod:`.settings` — broker settings and each device's typed parameters;
* :mod:`.decode`   — payload decoding (presets, JSON paths, conversions), fuzz-tested;
* :mod:`.devices`  — topic templates and each device's runtime state;
* :mod:`.client`   — the broker connection's read-ahead socket and bounded queue;
* :mod:`.source`   — :class:`MqttSource`, one broker session feeding observations;
* :mod:`.metrics`  — what it counts and exports.

See docs/mqtt.md.
"""

from monitord.probes.mqtt.decode import BOOL_FIELDS, FIELD_NAMES, REJECT_REASONS
from monitord.probes.mqtt.metrics import IGNORE_REASONS, VALUE_GAUGES, MqttStats
from monitord.probes.mqtt.settings import MqttDevice, MqttDeviceParams, MqttSettings, MqttTls
from monitord.probes.mqtt.source import PROBE, MqttSource, Sink

__all__ = [
    "BOOL_FIELDS",
    "FIELD_NAMES",
    "IGNORE_REASONS",
    "PROBE",
    "REJECT_REASONS",
    "VALUE_GAUGES",
    "MqttDevice",
    "MqttDeviceParams",
    "MqttSettings",
    "MqttSource",
    "MqttStats",
    "MqttTls",
    "Sink",
]
