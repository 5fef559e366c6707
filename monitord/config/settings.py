"""Settings that cascade ``defaults`` → ``kinds.<kind>`` → the device, and active hours."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from monitord.domain.activehours import (
    Holiday,
    MaintenanceWindow,
    Schedule,
    WeeklyWindow,
    parse_days,
    parse_hours,
)
from monitord.probes.mqtt import MqttDeviceParams
from monitord.probes.pjlink import PjlinkParams
from monitord.probes.snmp import SnmpParams
from monitord.values import Duration, SaneDateTime, code_string

UTC = dt.UTC


class DeviceKind(StrEnum):
    ROUTER = "router"
    SWITCH = "switch"
    ACCESS_POINT = "access_point"
    SERVER = "server"
    DLTV_RECEIVER = "dltv_receiver"
    TV = "tv"
    PROJECTOR = "projector"
    UPS = "ups"
    SERVICE = "service"             # an office service (website, e-mail, DNS): http/tcp/dns
    OTHER = "other"


KNOWN_PROBES = ("icmp", "snmp", "mqtt", "pjlink", "http", "tcp", "dns")
#: service checks: settings cascade like snmp (defaults → kinds → probes.<probe>)
SERVICE_PROBES = ("http", "tcp", "dns")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IcmpParams(Strict):
    """Per-device ICMP settings."""

    count: int = Field(3, ge=1, le=100, description="echo requests per round")
    timeout: Duration = Field(1.0, description="wait for the last reply")
    period: Duration = Field(0.2, description="gap between pings to the same host")
    loss_degraded: float = Field(0.2, ge=0, le=1, description="loss ratio that degrades")
    rtt_degraded: Duration = Field(0.3, description="average rtt that degrades")
    window_rounds: int = Field(20, ge=1, le=100, description="rounds over which loss and "
                               "rtt are judged (a sliding window)")


class ScheduleConfig(Strict):
    """Active hours: ``days: [mon-fri]``, ``hours: ["08:00-16:00"]``."""

    days: list[str] = Field(default_factory=lambda: ["mon-sun"])
    hours: list[str] = Field(default_factory=lambda: ["00:00-24:00"])
    skip_holidays: bool = False

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        parse_days(v)
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: list[str]) -> list[str]:
        for item in v:
            parse_hours(item)
        return v

    def build(self, name: str) -> Schedule:
        days = parse_days(self.days)
        return Schedule(
            name,
            tuple(WeeklyWindow(days, *parse_hours(h)) for h in self.hours),
            self.skip_holidays,
        )


class HolidayConfig(Strict):
    """One day (``date``) or a range (``from``/``to``, inclusive), e.g. a term break."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    date: dt.date | None = None
    first: dt.date | None = Field(None, alias="from")
    last: dt.date | None = Field(None, alias="to")
    name: str = ""

    def model_post_init(self, __context: Any) -> None:
        if self.date is None and (self.first is None or self.last is None):
            raise ValueError("give 'date', or both 'from' and 'to'")
        if self.date is not None and (self.first is not None or self.last is not None):
            raise ValueError("give either 'date' or 'from'/'to', not both")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError("'to' is before 'from'")

    def build(self) -> Holiday:
        if self.date is not None:
            return Holiday(self.date, self.date, self.name)
        assert self.first is not None and self.last is not None
        return Holiday(self.first, self.last, self.name)


class MaintenanceConfig(Strict):
    """Planned maintenance: one-off ``start``/``end`` (office local time when no offset)
    or ``weekly: {days, hours}``; scoped by ``devices``, ``schools`` and ``kinds``."""

    name: str = Field(min_length=1)
    start: SaneDateTime | None = None
    end: SaneDateTime | None = None
    weekly: ScheduleConfig | None = None
    devices: list[str] = Field(default_factory=list)
    schools: list[Annotated[str, BeforeValidator(code_string)]] = Field(default_factory=list)
    kinds: list[DeviceKind] = Field(default_factory=list)
    reason: str = ""

    def model_post_init(self, __context: Any) -> None:
        one_off = self.start is not None or self.end is not None
        if one_off == (self.weekly is not None):
            raise ValueError("give either 'start' and 'end', or 'weekly'")
        if one_off and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs both 'start' and 'end'")
        if (self.start is not None and self.end is not None
                and _aware(self.start, UTC) >= _aware(self.end, UTC)):
            raise ValueError("'end' must be after 'start'")
        if self.weekly is not None and len(self.weekly.hours) != 1:
            raise ValueError("a weekly window takes exactly one 'hours' range")

    def build(self, tz: ZoneInfo) -> MaintenanceWindow:
        weekly = None
        if self.weekly is not None:
            weekly = self.weekly.build(self.name).windows[0]
        return MaintenanceWindow(
            self.name,
            _aware(self.start, tz) if self.start else None,
            _aware(self.end, tz) if self.end else None,
            weekly,
            frozenset(self.devices),
            frozenset(self.schools),
            frozenset(k.value for k in self.kinds),
            self.reason,
        )


def _aware(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


class Settings(Strict):
    """Settings that ``kinds`` and devices may override; every field optional here."""

    interval: Duration | None = None
    failure_threshold: int | None = Field(None, ge=1, le=100)
    success_threshold: int | None = Field(None, ge=1, le=100)
    schedule: str | None = Field(None, description="name of an entry in `schedules`")
    ticket_delay: Duration | None = Field(None, description="down this long → ticket")
    icmp: IcmpParams | None = None
    snmp: dict[str, Any] | None = Field(None, description="SNMP settings (docs/snmp.md), "
                                        "merged under a device's monitord.probes.snmp")
    mqtt: dict[str, Any] | None = Field(None, description="MQTT device settings "
                                        "(docs/mqtt.md), merged under monitord.probes.mqtt")
    pjlink: dict[str, Any] | None = Field(None, description="PJLink projector settings "
                                          "(docs/pjlink.md), merged under "
                                          "monitord.probes.pjlink")
    http: dict[str, Any] | None = Field(None, description="HTTP check settings, merged "
                                        "under a device's probes.http")
    tcp: dict[str, Any] | None = Field(None, description="TCP check settings, merged "
                                       "under a device's probes.tcp")
    dns: dict[str, Any] | None = Field(None, description="DNS check settings, merged "
                                       "under a device's probes.dns")


class Defaults(Strict):
    interval: Duration = 60.0
    failure_threshold: int = Field(3, ge=1, le=100)
    success_threshold: int = Field(2, ge=1, le=100)
    schedule: str = "always"
    ticket_delay: Duration = 600.0
    icmp: IcmpParams = IcmpParams()
    snmp: dict[str, Any] | None = None
    mqtt: dict[str, Any] | None = None
    pjlink: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    tcp: dict[str, Any] | None = None
    dns: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """What actually applies to one device after the cascade."""

    interval: float
    failure_threshold: int
    success_threshold: int
    icmp: IcmpParams
    schedule: str
    ticket_delay: float
    snmp: SnmpParams | None = None
    snmp_interval: float | None = None
    mqtt: MqttDeviceParams | None = None
    failure_threshold_set: bool = False
    pjlink: PjlinkParams | None = None
    pjlink_interval: float | None = None
