"""The YAML configuration: one file describing the office, its schools and devices.

Loading is all-or-nothing: :func:`load_config` either returns a fully validated
:class:`Config` or raises :class:`ConfigError` carrying *every* problem found, each with
the file, the line and the key path (``FILE:LINE: key.path: message``), so an officer can
fix a broken file in one pass.  Nothing half-valid ever reaches the running daemon.

Settings cascade ``defaults`` → ``kinds.<kind>`` → the device itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeAlias
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from monitord.domain.activehours import (
    ALWAYS,
    Calendar,
    Holiday,
    MaintenanceWindow,
    Schedule,
    WeeklyWindow,
    parse_days,
    parse_hours,
)
from monitord.probes.mqtt import MqttDeviceParams, MqttSettings
from monitord.probes.snmp import SnmpParams, profile_for_kind
from monitord.values import (
    Duration,
    SaneDateTime,
    SecretRef,
    TimeZoneName,
    code_string,
    one_line,
    parse_duration,
)

UTC = dt.UTC
log = logging.getLogger(__name__)
KeyPath: TypeAlias = tuple[str | int, ...]


class DeviceKind(StrEnum):
    ROUTER = "router"
    SWITCH = "switch"
    ACCESS_POINT = "access_point"
    SERVER = "server"
    DLTV_RECEIVER = "dltv_receiver"
    TV = "tv"
    PROJECTOR = "projector"
    UPS = "ups"
    OTHER = "other"


KNOWN_PROBES = ("icmp", "snmp", "mqtt")

# Bounds on what the YAML loader accepts, so that a hostile or broken file (an alias
# bomb, thousands of nested brackets, a huge file) is rejected in well under a second
# instead of eating memory and CPU.  A real office (3,000 devices) needs ~60,000 nodes,
# depth 7 and under 1 MiB.
MAX_CONFIG_BYTES = 10 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 250_000  # counting every use of an alias with the size of what it names
MAX_YAML_ALIASES = 20_000

# ---------------------------------------------------------------------------- settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IcmpParams(_Strict):
    """Per-device ICMP settings."""

    count: int = Field(3, ge=1, le=100, description="echo requests per round")
    timeout: Duration = Field(1.0, description="wait for the last reply")
    period: Duration = Field(0.2, description="gap between pings to the same host")
    loss_degraded: float = Field(0.2, ge=0, le=1, description="loss ratio that degrades")
    rtt_degraded: Duration = Field(0.3, description="average rtt that degrades")
    window_rounds: int = Field(20, ge=1, le=100, description="rounds over which loss and "
                               "rtt are judged (a sliding window)")


class ScheduleConfig(_Strict):
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


class HolidayConfig(_Strict):
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


class MaintenanceConfig(_Strict):
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


class Settings(_Strict):
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


class Defaults(_Strict):
    interval: Duration = 60.0
    failure_threshold: int = Field(3, ge=1, le=100)
    success_threshold: int = Field(2, ge=1, le=100)
    schedule: str = "always"
    ticket_delay: Duration = 600.0
    icmp: IcmpParams = IcmpParams()
    snmp: dict[str, Any] | None = None
    mqtt: dict[str, Any] | None = None


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


# ---------------------------------------------------------------------------- entities


class Office(_Strict):
    name: str = Field(min_length=1, description="full name of the area office")
    short_name: str = ""
    area_code: Annotated[str, BeforeValidator(code_string)] = Field(pattern=r"^\d{4}$")
    group_name: str = "กลุ่มส่งเสริมการศึกษาทางไกล เทคโนโลยีสารสนเทศและการสื่อสาร"
    timezone: TimeZoneName = "Asia/Bangkok"


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class School(_Strict):
    name: str = Field(min_length=1)
    district: str = Field(min_length=1, description="อำเภอ")
    isp: str = Field("", description="ผู้ให้บริการอินเทอร์เน็ต")
    percode: Annotated[str, BeforeValidator(code_string)] | None = Field(
        None, pattern=r"^\d{6}$"
    )
    location: Location | None = None
    schedule: str | None = Field(None, description="active hours for this school's devices")


def _validate_address(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("address must not be empty")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", value) or not re.fullmatch(
        r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?",
        value,
    ):
        raise ValueError(f"{value!r} is neither an IP address nor a valid host name")
    return value


ProbeName = Literal["icmp", "snmp", "mqtt"]
ProbeList = list[ProbeName] | dict[ProbeName, dict[str, Any] | None]


def _default_probes() -> list[ProbeName]:
    return ["icmp"]


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_IN_ID = re.compile(rf"(?<![0-9]){_OCTET}([._-]){_OCTET}\1{_OCTET}\1{_OCTET}(?![0-9])")


def _validate_device_id(value: str) -> str:
    """Device ids are public (status API, /metrics): they must not carry an IP address."""
    looks_like_ip = _IPV4_IN_ID.search(value) is not None
    if ":" in value:
        for part in {value, *re.split(r"[_-]", value)}:
            try:
                ipaddress.ip_address(part)
            except ValueError:
                continue
            looks_like_ip = True
    if looks_like_ip:
        raise ValueError(f"{value!r} looks like an IP address; device ids are shown "
                         "publicly, so use a name like school-62020001-router")
    return value


class Device(Settings):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
                    description="shown publicly: a name, never an IP address")
    name: str = ""
    school: Annotated[str, BeforeValidator(code_string)] | None = Field(
        None, description="SMIS code; omit for office devices"
    )
    unit: str = Field("", description="office work unit (กลุ่มงาน) served, office devices")
    kind: DeviceKind
    address: Annotated[str, BeforeValidator(str)]
    hostname: str = ""
    brand_model: str = ""
    serial: str = ""
    parent: str | None = None
    probes: ProbeList = Field(default_factory=_default_probes)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return _validate_address(v)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _validate_device_id(v)

    @property
    def probe_names(self) -> list[str]:
        return list(self.probes)

    @property
    def display_name(self) -> str:
        return self.name or self.id


class StorageConfig(_Strict):
    data_dir: Path | None = None
    db: Path | None = None
    retention_days: int = Field(
        90, ge=1, le=3650, description="history kept (Computer Crime Act: at least 90)"
    )


class ApiToken(_Strict):
    """A bearer token that may write through ``/api/v1`` (ticket updates, maintenance)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                      description="who holds it: recorded as the actor of every change")
    token: SecretRef = Field(description="{env: NAME} or {file: PATH}; at least 16 chars")


class HttpConfig(_Strict):
    listen: str = "127.0.0.1:9847"
    api_tokens: list[ApiToken] = Field(default_factory=list, description="bearer tokens "
                                       "for /api/v1 writes; none: the API is read-only")
    link_secret: SecretRef | None = Field(None, description="key of the signed ticket "
                                          "links in notifications ({env|file}, >= 32 "
                                          "chars); default: generated into the data dir")
    link_ttl: Duration = Field(7 * 86400.0, le=366 * 86400.0,
                               description="how long a signed ticket link is valid")
    max_sse_clients: int = Field(100, ge=1, le=10_000, description="open /wall/events "
                                 "streams at most; more get 429")
    limit_concurrency: int | None = Field(None, ge=8, le=1_000_000, description="HTTP "
                                          "connections at most (503 beyond); default: "
                                          "half the open-files limit")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


class IcmpEngineConfig(_Strict):
    mode: Literal["auto", "raw", "dgram"] = "auto"
    rate_pps: int = Field(50000, ge=10, le=1_000_000)
    max_in_flight: int = Field(20000, ge=10, le=1_000_000)


class Signatory(_Strict):
    name: str = "ระบบ monitord"
    position: str = "ระบบเฝ้าระวังเครือข่ายอัตโนมัติ"


class TicketsConfig(_Strict):
    relapse_window: Duration = Field(86400.0, description="a failure this soon after repair "
                                     "reopens the same ticket")
    auto_close_after: Duration | None = Field(259200.0, description="close a repaired ticket "
                                              "that stayed well this long; null: officers close")
    reporter: Signatory = Signatory()


class CorrelationConfig(_Strict):
    group_by: Literal["isp", "district", "none"] = "isp"
    min_schools: int = Field(5, ge=2)
    min_share: float = Field(0.3, ge=0, le=1)
    window: Duration = 300.0


class FlappingConfig(_Strict):
    high_percent: float = Field(50.0, gt=0, le=100)
    low_percent: float = Field(25.0, ge=0, le=100)


class IncidentsConfig(_Strict):
    correlation: CorrelationConfig = CorrelationConfig()
    flapping: FlappingConfig = FlappingConfig()


class ChannelConfig(_Strict):
    """One notification channel: an apprise URL (by reference when it holds a token)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: SecretRef | str
    events: list[Literal["ticket_opened", "ticket_scheduled", "ticket_repaired",
                         "ticket_reopened", "ticket_closed", "upstream_started",
                         "upstream_ended", "broker_unreachable", "broker_restored",
                         "storage_failing", "storage_restored"]
                ] = Field(default_factory=list)
    schools: list[Annotated[str, BeforeValidator(code_string)]] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    kinds: list[DeviceKind] = Field(default_factory=list)
    on_duty: ScheduleConfig | None = Field(None, description="duty roster: days/hours this "
                                           "officer is on duty (skip_holidays honoured)")
    quiet: ScheduleConfig | None = Field(None, description="hours in which nothing is sent")
    max_per_hour: int | None = Field(None, ge=1)
    escalation: bool = Field(False, description="receives only escalations")


class NotifyConfig(_Strict):
    base_url: str = Field("", description="where people reach this monitord (links)")
    group_window: Duration = 30.0
    max_attempts: int = Field(12, ge=1, le=1000)
    backoff_initial: Duration = 5.0
    backoff_max: Duration = 1800.0
    lang: Literal["th", "en"] = "th"
    remind_every: Duration | None = Field(14400.0, description="repeat open tickets")
    escalate_after: Duration | None = Field(172800.0, description="escalate open tickets")
    daily_summary_at: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    channels: list[ChannelConfig] = Field(default_factory=list)


class SnmpEngineConfig(_Strict):
    max_in_flight: int = Field(64, ge=1, le=10_000, description="SNMP requests outstanding "
                               "at once (UDP receive buffers overflow silently otherwise)")
    rcvbuf: int = Field(8 << 20, ge=65536, le=1 << 30, description="receive buffer, bytes")


class EnginesConfig(_Strict):
    icmp: IcmpEngineConfig = IcmpEngineConfig()
    snmp: SnmpEngineConfig = SnmpEngineConfig()


class Config(_Strict):
    office: Office
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    engines: EnginesConfig = EnginesConfig()
    mqtt: MqttSettings | None = Field(None, description="the MQTT broker (docs/mqtt.md); "
                                      "127.0.0.1:1883 when devices use mqtt and this is unset")
    tickets: TicketsConfig = TicketsConfig()
    notify: NotifyConfig = NotifyConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    defaults: Defaults = Defaults()
    kinds: dict[DeviceKind, Settings] = Field(default_factory=dict)
    schools: dict[Annotated[str, BeforeValidator(code_string)], School] = Field(
        default_factory=dict
    )
    devices: list[Device] = Field(default_factory=list)
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict)
    holidays: list[HolidayConfig] = Field(default_factory=list)
    maintenance: list[MaintenanceConfig] = Field(default_factory=list)

    # Filled by load_config (not part of the YAML).
    source: str = Field("", exclude=True)

    def device_map(self) -> dict[str, Device]:
        return {d.id: d for d in self.devices}

    def effective(self, device: Device) -> EffectiveSettings:
        """Cascade defaults → kind → device (and, for the schedule, → school → device)."""
        layers: list[Settings] = []
        if (kind := self.kinds.get(device.kind)) is not None:
            layers.append(kind)
        layers.append(device)
        interval = self.defaults.interval
        fail = self.defaults.failure_threshold
        ok = self.defaults.success_threshold
        schedule = self.defaults.schedule
        delay = self.defaults.ticket_delay
        icmp = self.defaults.icmp.model_dump()
        for layer in layers:
            interval = layer.interval if layer.interval is not None else interval
            fail = layer.failure_threshold if layer.failure_threshold is not None else fail
            ok = layer.success_threshold if layer.success_threshold is not None else ok
            if layer is device and device.school in self.schools:
                school_schedule = self.schools[device.school].schedule
                schedule = school_schedule if school_schedule is not None else schedule
            schedule = layer.schedule if layer.schedule is not None else schedule
            delay = layer.ticket_delay if layer.ticket_delay is not None else delay
            if layer.icmp is not None:
                icmp.update(layer.icmp.model_dump(exclude_unset=True))
        if isinstance(device.probes, dict) and device.probes.get("icmp"):
            icmp.update(device.probes["icmp"] or {})
        snmp = snmp_interval = mqtt = None
        if "snmp" in device.probe_names:
            raw = self.probe_settings(device, "snmp")
            snmp_interval = raw.pop("interval", None)
            raw.setdefault("profile", profile_for_kind(device.kind.value))
            snmp = SnmpParams.model_validate(raw)
            snmp_interval = parse_duration(snmp_interval) if snmp_interval else None
        if "mqtt" in device.probe_names:
            mqtt = MqttDeviceParams.model_validate(self.probe_settings(device, "mqtt"))
        return EffectiveSettings(interval, fail, ok, IcmpParams.model_validate(icmp), schedule,
                                 delay, snmp, snmp_interval, mqtt,
                                 any(la.failure_threshold is not None for la in layers))

    def probe_settings(self, device: Device, probe: Literal["snmp", "mqtt"]) -> dict[str, Any]:
        """The raw ``snmp``/``mqtt`` settings of a device: defaults → kind → probes.<p>.

        Nested blocks (``v3``, ``fields``, ``tls``) merge key by key too, so a community or
        a v3 user set once in ``defaults`` needs no repeating.
        """
        layers = [getattr(self.defaults, probe)]
        if (kind := self.kinds.get(device.kind)) is not None:
            layers.append(getattr(kind, probe))
        layers.append(getattr(device, probe))
        if isinstance(device.probes, dict):
            layers.append(device.probes.get(probe))
        return _deep_merge(layers)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.office.timezone)

    def schedule_map(self) -> dict[str, Schedule]:
        out = {"always": ALWAYS}
        out.update({name: sc.build(name) for name, sc in self.schedules.items()})
        return out

    def calendar(self) -> Calendar:
        return Calendar(tuple(h.build() for h in self.holidays))

    def maintenance_windows(self) -> list[MaintenanceWindow]:
        return [m.build(self.tz) for m in self.maintenance]


def _deep_merge(layers: list[dict[str, Any] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _deep_merge([out[key], value])
            else:
                out[key] = value
    return out


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value.strip())
    if not m:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = m.group(1) or m.group(3) or "0.0.0.0"
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {value!r}")
    return host, port


# ---------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}: {self.path}: {prefix}{self.message}"

    def without_values(self) -> str:
        """The problem with quoted values elided, for where anyone may read it
        (``/healthz``): a message may quote an address or a host name."""
        return str(replace(self, message=_QUOTED.sub("'…'", self.message)))


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class ConfigError(Exception):
    """The config is invalid; ``problems`` lists every error (not only the first)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


# ---------------------------------------------------------------------------- YAML with marks


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false) and bounds on the document.

    YAML 1.1 also reads yes/no/on/off/TRUE as booleans, which turns an ISP named
    ``TRUE`` into ``True`` (the "Norway problem").

    The composer is bounded: nesting depth, the number of aliases, and the number of
    nodes counting each alias as the size of the node it names (so an alias bomb, tiny
    on disk but exponential once expanded, fails after a few levels); an alias inside
    the node it names (a recursive structure) is refused.  Constructing a scalar that
    Python refuses (``2024-02-30``, an integer of 5,000 digits) becomes a YAML error at
    that node instead of a bare ``ValueError``.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | int] = []
        self._nodes = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(anchored node) → its expanded size
        #: where the document broke a bound, or the node Python could not construct
        self.refused_at: KeyPath | None = None
        self.bad_node: yaml.Node | None = None

    def _refuse(self, message: str, mark: Any) -> NoReturn:
        self.refused_at = tuple(p for p in self._path if p != "")
        raise yaml.composer.ComposerError(None, None, message, mark)

    def _count(self, size: int, mark: Any) -> None:
        self._nodes += size
        if self._nodes > MAX_YAML_NODES:
            self._refuse(f"more than {MAX_YAML_NODES} values (counting every use of an "
                         "alias in full): an alias bomb or a runaway file", mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.ScalarNode):
            self._path.append(str(index.value))
        elif isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            self._path.append(index)
        else:  # the document root, or a mapping key (reported at its mapping)
            self._path.append("")
        try:
            if isinstance(event, yaml.AliasEvent):
                target = self.anchors.get(event.anchor)
                if target is not None:  # an undefined alias is the composer's error
                    size = self._sizes.get(id(target))
                    if size is None:
                        self._refuse(f"alias *{event.anchor} is used inside the node it "
                                     "names (a recursive structure)", event.start_mark)
                    self._aliases += 1
                    if self._aliases > MAX_YAML_ALIASES:
                        self._refuse(f"more than {MAX_YAML_ALIASES} aliases",
                                     event.start_mark)
                    self._count(size, event.start_mark)
                return super().compose_node(parent, index)
            if len(self._path) > MAX_YAML_DEPTH:
                self._refuse(f"nested more than {MAX_YAML_DEPTH} levels deep",
                             event.start_mark)
            before = self._nodes
            self._count(1, event.start_mark)
            node = super().compose_node(parent, index)
            if getattr(event, "anchor", None) is not None:
                self._sizes[id(node)] = self._nodes - before
            return node
        finally:
            self._path.pop()

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # ValueError of a date or a long integer, OverflowError
            self.bad_node = node
            what = node.tag.rsplit(":", 1)[-1]
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            shown = value if len(value) <= 40 else f"{value[:20]}… ({len(value)} characters)"
            raise yaml.constructor.ConstructorError(
                None, None,
                one_line(f"cannot read {what} {shown}: " + str(exc).split("; use sys.", 1)[0],
                         MESSAGE_LIMIT),
                node.start_mark
            ) from None


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|false|False)$"), list("tTfF")
)


def _walk_marks(
    node: yaml.Node, path: KeyPath, marks: dict[KeyPath, int], dups: list[tuple[KeyPath, int]]
) -> None:
    """Record the line of every key path; collect duplicate mapping keys."""
    marks.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dups.append(((*path, key), line))
            seen.add(key)
            marks[(*path, key)] = line
            _walk_marks(value_node, (*path, key), marks, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[(*path, i)] = item.start_mark.line + 1
            _walk_marks(item, (*path, i), marks, dups)


@dataclass
class _Doc:
    file: str
    data: Any
    marks: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int:
        for n in range(len(path), -1, -1):
            prefix = tuple(str(p) if not isinstance(p, int) else p for p in path[:n])
            if prefix in self.marks:
                return self.marks[prefix]
        return 1

    def problem(self, path: KeyPath, message: str, warning: bool = False) -> Problem:
        return Problem(self.file, self.line(path), format_path(path), message, warning)


def _str_keys(data: Any) -> Any:
    """Mapping keys as strings: ``62020001:`` is an SMIS code, not a number."""
    if isinstance(data, dict):
        return {str(k): _str_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_str_keys(v) for v in data]
    return data


#: a problem's message at most this long (one line)
MESSAGE_LIMIT = 300


def _node_path(root: yaml.Node, target: yaml.Node) -> KeyPath | None:
    """The key path of ``target`` in the composed tree (for errors found constructing)."""
    seen: set[int] = set()
    todo: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo += [(v, (*path, str(k.value))) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(v, (*path, i)) for i, v in enumerate(node.value)]
    return None


def _read_yaml(text: str, file: str) -> _Doc:
    """Parse within the loader's bounds; every failure is a ConfigError with a line."""
    loader: _Loader | None = None
    path: KeyPath | None = None
    node: yaml.Node | None = None
    try:
        loader = _Loader(text)  # checks the characters already
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([Problem(file, 1, "(top)", "the file is empty")])
        data = loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            [Problem(file, line, "(yaml)",
                     one_line(str(exc).splitlines()[0], MESSAGE_LIMIT))]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        if loader is not None and loader.bad_node is not None and node is not None:
            path = _node_path(node, loader.bad_node)
        elif loader is not None:
            path = loader.refused_at
        where = "(yaml)" if not path else format_path(path[:12]) + ("…" if path[12:] else "")
        raise ConfigError(
            [Problem(file, line, where,
                     one_line(f"{exc.problem or exc}", MESSAGE_LIMIT))]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            [Problem(file, 1, "(yaml)", one_line(str(exc), MESSAGE_LIMIT))]) from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = _Doc(file, _str_keys(data))
    dups: list[tuple[KeyPath, int]] = []
    _walk_marks(node, (), doc.marks, dups)
    if dups:
        raise ConfigError(
            [Problem(file, line, format_path(p), "duplicate key") for p, line in dups]
        )
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(file, 1, "(top)", "expected a mapping at the top level")])
    return doc


def _pydantic_problems(doc: _Doc, exc: ValidationError) -> Iterator[Problem]:
    for err in exc.errors(include_url=False):
        loc: KeyPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
        # pydantic adds union/enum branch names (e.g. "list[...]") to loc: drop them.
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or "(" in p)))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        yield doc.problem(loc, msg)


def _semantic_problems(doc: _Doc) -> Iterator[Problem]:
    """Checks that span several entities: references, uniqueness, cycles.

    They run on the raw data, defensively, so that they are reported together with
    type errors in one pass.
    """
    data = doc.data
    office = data.get("office") if isinstance(data.get("office"), dict) else {}
    area = str(office.get("area_code", ""))
    schools = data.get("schools") if isinstance(data.get("schools"), dict) else {}
    raw_devices = data.get("devices") if isinstance(data.get("devices"), list) else []
    devices = [(i, d) for i, d in enumerate(raw_devices) if isinstance(d, dict)]
    ids: dict[str, int] = {}
    for i, dev in devices:
        dev_id = str(dev.get("id", ""))
        if not dev_id:
            continue
        if dev_id in ids:
            yield doc.problem(
                ("devices", i, "id"),
                f"duplicate device id {dev_id!r} (first at devices[{ids[dev_id]}])",
            )
        else:
            ids[dev_id] = i
    for smis in schools:
        if not re.fullmatch(r"\d{8}", smis):
            yield doc.problem(("schools", smis), "SMIS code must be 8 digits")
        elif re.fullmatch(r"\d{4}", area) and not smis.startswith(area):
            yield doc.problem(
                ("schools", smis),
                f"SMIS code does not start with the office area code {area}",
                warning=True,
            )
    parents: dict[str, str | None] = {}
    for i, dev in devices:
        dev_id = str(dev.get("id", ""))
        school, parent = dev.get("school"), dev.get("parent")
        if school is not None and str(school) not in schools:
            yield doc.problem(("devices", i, "school"), f"unknown school {str(school)!r}")
        if parent is not None:
            parent = str(parent)
            if parent == dev_id:
                yield doc.problem(("devices", i, "parent"), "a device cannot be its own parent")
            elif parent not in ids:
                yield doc.problem(("devices", i, "parent"), f"unknown device {parent!r}")
        parents.setdefault(dev_id, parent)
        probes = dev.get("probes")
        if isinstance(probes, dict) and isinstance(probes.get("icmp"), dict):
            try:
                IcmpParams.model_validate(probes["icmp"])
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    sub = tuple(p for p in err["loc"] if isinstance(p, str | int))
                    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                    yield doc.problem(("devices", i, "probes", "icmp", *sub), msg)
    # Parent cycles (a → b → a): follow each chain, bounded by the number of devices.
    in_cycle: set[str] = set()
    for i, dev in devices:
        start = str(dev.get("id", ""))
        chain = [start]
        cur = parents.get(start)
        while cur is not None and cur != start and cur in parents and len(chain) <= len(parents):
            chain.append(cur)
            cur = parents.get(cur)
        if cur == start and start != parents.get(start) and start not in in_cycle:
            in_cycle.update(chain)
            yield doc.problem(
                ("devices", i, "parent"), "parent cycle: " + " → ".join([*chain, start])
            )
    yield from _reference_problems(doc, schools, ids)
    storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
    retention = storage.get("retention_days")
    if isinstance(retention, int) and 0 < retention < 90:
        yield doc.problem(
            ("storage", "retention_days"),
            "less than the 90 days the Computer Crime Act asks records to be kept",
            warning=True,
        )


def _reference_problems(
    doc: _Doc, schools: Mapping[str, Any], device_ids: Mapping[str, int]
) -> Iterator[Problem]:
    """Schedule names and maintenance scopes must name things that exist."""
    data = doc.data
    known = {"always"} | set(data.get("schedules") or {} if isinstance(
        data.get("schedules"), dict) else set())
    places: list[tuple[KeyPath, Any]] = []
    if isinstance(data.get("defaults"), dict):
        places.append((("defaults", "schedule"), data["defaults"].get("schedule")))
    if isinstance(data.get("kinds"), dict):
        places += [(("kinds", k, "schedule"), v.get("schedule"))
                   for k, v in data["kinds"].items() if isinstance(v, dict)]
    places += [(("schools", k, "schedule"), v.get("schedule"))
               for k, v in schools.items() if isinstance(v, dict)]
    if isinstance(data.get("devices"), list):
        places += [(("devices", i, "schedule"), d.get("schedule"))
                   for i, d in enumerate(data["devices"]) if isinstance(d, dict)]
    for path, name in places:
        if name is not None and str(name) not in known:
            yield doc.problem(path, f"unknown schedule {name!r} (known: "
                              f"{', '.join(sorted(known))})")
    windows = data.get("maintenance") if isinstance(data.get("maintenance"), list) else []
    for i, win in enumerate(windows):
        if not isinstance(win, dict):
            continue
        # Not a list: a type error that validation reports.
        devices, smis_codes = win.get("devices"), win.get("schools")
        for j, dev in enumerate(devices if isinstance(devices, list) else []):
            if str(dev) not in device_ids:
                yield doc.problem(("maintenance", i, "devices", j), f"unknown device {str(dev)!r}")
        for j, smis in enumerate(smis_codes if isinstance(smis_codes, list) else []):
            if str(smis) not in schools:
                yield doc.problem(("maintenance", i, "schools", j), f"unknown school {str(smis)!r}")


@dataclass
class LoadResult:
    config: Config
    warnings: list[Problem]


def _probe_problems(doc: _Doc) -> Iterator[Problem]:
    """Validate the SNMP/MQTT settings as each device ends up with them after the cascade.

    Each block (``defaults``, ``kinds.<kind>``, the device, its ``probes.<probe>``) is
    checked for unknown keys and a bad ``interval`` where it is written; the merged result
    (where required keys such as a community must be present) is checked per device and
    reported at the device's ``probes.<probe>`` block.  Works on the raw data, so these
    problems come in the same pass as all others.
    """
    def block(value: Any) -> dict[str, Any] | None:
        return value if isinstance(value, dict) else None

    data = doc.data
    defaults = block(data.get("defaults")) or {}
    kinds = block(data.get("kinds")) or {}
    raw_devices = data.get("devices") if isinstance(data.get("devices"), list) else []
    models: dict[str, type[BaseModel]] = {"snmp": SnmpParams, "mqtt": MqttDeviceParams}
    allowed = {"snmp": set(SnmpParams.model_fields) | {"interval"},
               "mqtt": set(MqttDeviceParams.model_fields)}

    def check_block(path: KeyPath, part: Any, probe: str) -> Iterator[Problem]:
        for key, value in (block(part) or {}).items():
            if key not in allowed[probe]:
                yield doc.problem((*path, key), "unknown key")
            elif key == "interval":
                try:
                    parse_duration(value)
                except ValueError as exc:
                    yield doc.problem((*path, key), str(exc))

    for probe in models:
        yield from check_block(("defaults", probe), defaults.get(probe), probe)
        for k, v in kinds.items():
            yield from check_block(("kinds", k, probe), (block(v) or {}).get(probe), probe)
    for i, dev in enumerate(raw_devices):
        if not isinstance(dev, dict):
            continue
        probes = dev.get("probes")
        names = list(probes) if isinstance(probes, list | dict) else []
        kind = block(kinds.get(str(dev.get("kind")))) or {}
        for probe, model in models.items():
            own = block(probes.get(probe)) if isinstance(probes, dict) else None
            yield from check_block(("devices", i, probe), dev.get(probe), probe)
            if probe not in names:
                continue
            base: KeyPath = ("devices", i, "probes", probe) if isinstance(probes, dict) \
                else ("devices", i, "probes")
            yield from check_block(base, own, probe)
            raw = _deep_merge([block(defaults.get(probe)), block(kind.get(probe)),
                               block(dev.get(probe)), own])
            raw = {k: v for k, v in raw.items() if k in allowed[probe] and k != "interval"}
            if probe == "snmp":
                raw.setdefault("profile", profile_for_kind(str(dev.get("kind"))))
            try:
                model.model_validate(raw)
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    sub = tuple(p for p in err["loc"] if isinstance(p, str | int)
                                and not (isinstance(p, str) and ("[" in p or "(" in p)))
                    msg = err["msg"]
                    if err["type"] == "extra_forbidden":
                        msg = "unknown key"
                    elif err["type"] == "missing":
                        msg = "required key is missing"
                    msg = msg.removeprefix("Value error, ")
                    if not isinstance(probes, dict):
                        msg = f"{probe}: {msg}"
                    yield doc.problem((*base, *sub), msg)


def parse_config(text: str, file: str = "<config>") -> LoadResult:
    doc = _read_yaml(text, file)
    problems = [*_semantic_problems(doc), *_probe_problems(doc)]
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(doc, exc))
    if cfg is None or any(not p.warning for p in problems):
        unique = dict.fromkeys(sorted(problems, key=lambda p: (p.line, p.path)))
        raise ConfigError(list(unique))
    return LoadResult(cfg.model_copy(update={"source": file}), problems)


def load_config(path: str | os.PathLike[str]) -> LoadResult:
    """Read and fully validate a config file; raise ConfigError listing every problem.

    Nothing else escapes: whatever the file holds, the caller gets a ConfigError with
    ``FILE:LINE: key.path: message`` lines (``monitord check`` exits 2, a reload is
    rejected), never a traceback.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Problem(file, 0, "(file)", exc.strerror or str(exc))]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(file, 1, "(file)", f"larger than {MAX_CONFIG_BYTES} "
                                   "bytes: not a monitord config")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(file, line, "(file)", f"not UTF-8 text: {exc.reason} "
                                   f"(byte {exc.start})")]) from None
    try:
        return parse_config(text, file)
    except ConfigError:
        raise
    except Exception as exc:  # a gap in the checks must still read as a rejected file
        log.debug("checking %s failed unexpectedly", file, exc_info=True)
        reason = one_line(f"{type(exc).__name__}: {exc}", MESSAGE_LIMIT)
        raise ConfigError([Problem(file, 1, "(top)", f"cannot be checked: {reason}")]) from None


def devices_by_school(cfg: Config) -> Mapping[str | None, list[Device]]:
    out: dict[str | None, list[Device]] = {}
    for dev in cfg.devices:
        out.setdefault(dev.school, []).append(dev)
    return out
