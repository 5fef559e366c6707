"""Typed MQTT settings: the broker connection (``mqtt:``) and each device's parameters."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitord.probes.mqtt.decode import FieldName, Format, parse_path
from monitord.values import Duration, SecretRef, TimeZoneName

_PLACEHOLDERS: Final = frozenset({"smis", "device", "base", "field"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttTls(_Strict):
    """TLS to the broker; ``insecure`` skips host-name checking (self-signed lab CAs)."""

    ca_file: Path | None = Field(None, description="CA bundle; the system CAs when unset")
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="client key (mutual TLS)")
    insecure: bool = Field(False, description="do not verify the broker's host name")

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both 'cert_file' and 'key_file', or neither")
        return self


class MqttSettings(_Strict):
    """The broker connection (config: ``mqtt:`` at the top level)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("monitord", min_length=1, max_length=128,
                           description="stable: the broker keeps the persistent session "
                           "(subscriptions, queued QoS 1 messages) under this id")
    username: str | None = None
    password: SecretRef | None = None
    tls: MqttTls | None = None
    keepalive: Duration = Field(30.0, description="MQTT keepalive")
    base_topic: str = Field("monitord", min_length=1, description="{base} in templates")
    persistent_session: bool = Field(True, description="clean_session=false: the broker "
                                     "queues QoS 1 messages while monitord is away")
    reconnect_min: Duration = Field(1.0, description="first reconnect delay")
    reconnect_max: Duration = Field(60.0, description="reconnect delay cap (with jitter)")
    max_payload_bytes: int = Field(16384, ge=64, le=16 * 1024 * 1024)
    stale_factor: float = Field(2.5, ge=1.0, le=100.0,
                                description="silent for period × this → DOWN (stale)")
    max_clock_skew: Duration = Field(120.0, description="timestamps later than now + this "
                                     "are rejected (future_timestamp)")
    check_interval: Duration = Field(1.0, description="how often staleness is checked")
    rejected_log_per_minute: int = Field(10, ge=0, le=10000,
                                         description="rejected-message log lines per minute")
    max_queued_incoming_messages: int = Field(10000, ge=100, le=1_000_000,
                                              description="received messages waiting to be "
                                              "handled; beyond: dropped, counted as "
                                              "rejected{reason=overload}")
    timezone: TimeZoneName = Field("Asia/Bangkok",
                                   description="for ISO timestamps without offset")
    alert_after: Duration = Field(120.0, description="the broker unreachable this long → "
                                  "one 'broker_unreachable' notification")

    @field_validator("base_topic")
    @classmethod
    def _base(cls, v: str) -> str:
        if any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/"):
            raise ValueError("base topic must not contain + # or start/end with /")
        return v

    @model_validator(mode="after")
    def _backoff(self) -> MqttSettings:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must be >= reconnect_min")
        if self.password is not None and self.username is None:
            raise ValueError("'password' needs 'username'")
        return self


def _check_template(value: str) -> str:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"bad topic template {value!r}: {exc}") from None
    for _literal, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in _PLACEHOLDERS or spec or conv:
            raise ValueError(f"unknown placeholder {{{name}}} in {value!r}; "
                             "use {smis}, {device}, {base}, {field}")
        names.add(name)
    if any(c in value for c in "+#\0"):
        raise ValueError(f"topic template {value!r} must not contain + or #")
    return value


class MqttDeviceParams(_Strict):
    """A device's ``probes: {mqtt: {...}}``: where its agent publishes and what is bad."""

    period: Duration = Field(60.0, description="how often the agent reports")
    stale_factor: float | None = Field(None, ge=1.0, le=100.0,
                                       description="overrides mqtt.stale_factor")
    format: Format = Field("monitord", description="preset: monitord, tasmota, esphome, "
                           "shelly")
    topic_name: str | None = Field(None, description="{device} in templates (e.g. the "
                                   "Tasmota topic); the device id when unset")
    state_topic: str | None = Field(None, description="template; the preset's when unset")
    availability_topic: str | None = Field(None, description="template; '' for none")
    payload_online: str | None = None
    payload_offline: str | None = None
    fields: dict[FieldName, str] = Field(default_factory=dict,
                                         description="our field → JSON path, over the "
                                         "preset's mapping")
    signal_quality_degraded_db: float | None = Field(6.0, description="quality (C/N) "
                                                     "below this → DEGRADED; null: off")
    signal_strength_degraded_db: float | None = Field(None, description="RF level below "
                                                      "this → DEGRADED")
    temperature_degraded_celsius: float | None = Field(None, description="above → DEGRADED")
    power_off_fault: bool = Field(True, description="receiver/TV reported off → fault "
                                  "(only evaluated in the device's schedule anyway)")

    @field_validator("state_topic", "availability_topic")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return v
        return _check_template(v)

    @field_validator("topic_name")
    @classmethod
    def _topic_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c in v for c in "/+#\0")):
            raise ValueError("topic_name must be one non-empty topic level")
        return v

    @field_validator("fields")
    @classmethod
    def _paths(cls, v: dict[FieldName, str]) -> dict[FieldName, str]:
        for name, path in v.items():
            try:
                parse_path(path)
            except ValueError as exc:
                raise ValueError(f"fields.{name}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _state_topic_needed(self) -> MqttDeviceParams:
        if self.state_topic == "":
            raise ValueError("state_topic must not be empty")
        return self


@dataclass(frozen=True, slots=True)
class MqttDevice:
    """One MQTT-watched device as the daemon hands it over (``smis`` None: office)."""

    device_id: str
    smis: str | None
    kind: str
    params: MqttDeviceParams

