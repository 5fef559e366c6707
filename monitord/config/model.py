"""The whole configuration (:class:`Config`) and the settings cascade."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, PrivateAttr

from monitord.config.devices import Device, Office, School
from monitord.config.sections import (
    ConsoleConfig,
    EnginesConfig,
    HttpConfig,
    IncidentsConfig,
    NotifyConfig,
    StorageConfig,
    TicketsConfig,
)
from monitord.config.settings import (
    Defaults,
    DeviceKind,
    EffectiveSettings,
    HolidayConfig,
    IcmpParams,
    MaintenanceConfig,
    ScheduleConfig,
    Settings,
    Strict,
)
from monitord.domain.activehours import ALWAYS, Calendar, MaintenanceWindow, Schedule
from monitord.probes.mqtt import MqttDeviceParams, MqttSettings
from monitord.probes.pjlink import PjlinkParams
from monitord.probes.snmp import SnmpParams, profile_for_kind
from monitord.probes.snmp.traps import TrapSettings
from monitord.values import code_string, parse_duration

#: what a device itself may set in the cascade (Settings' fields)
_SETTINGS_FIELDS = tuple(Settings.model_fields)


class Config(Strict):
    office: Office
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    console: ConsoleConfig = ConsoleConfig()
    engines: EnginesConfig = EnginesConfig()
    mqtt: MqttSettings | None = Field(None, description="the MQTT broker (docs/mqtt.md); "
                                      "127.0.0.1:1883 when devices use mqtt and this is unset")
    snmp_traps: TrapSettings = Field(TrapSettings(), description="the SNMP trap receiver "
                                     "(docs/snmp.md § Traps); off unless enabled")
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
    #: the files ``include:`` named (see :mod:`monitord.config.loader`)
    includes: tuple[str, ...] = Field((), exclude=True)

    _device_map: tuple[int, dict[str, Device]] | None = PrivateAttr(None)

    def device_map(self) -> Mapping[str, Device]:
        """Devices by id, built once per device list (pages and the pipeline ask often)."""
        if self._device_map is None or self._device_map[0] != id(self.devices):
            self._device_map = (id(self.devices), {d.id: d for d in self.devices})
        return self._device_map[1]

    _effective: dict[str, tuple[Device, EffectiveSettings]] = PrivateAttr(default_factory=dict)
    _alike: dict[str, EffectiveSettings] = PrivateAttr(default_factory=dict)

    def effective(self, device: Device) -> EffectiveSettings:
        """Cascade defaults → kind → device (and, for the schedule, → school → device);
        worked out once per device of this config (start-up asks for every device several
        times: jobs, specs, MQTT, tickets)."""
        hit = self._effective.get(device.id)
        if hit is not None and hit[0] is device:
            return hit[1]
        # Devices alike (same kind, school schedule, own settings and probes: most of an
        # office) share one result; the key is everything the cascade reads of the device.
        school = self.schools.get(device.school) if device.school else None
        alike = repr((device.kind, school.schedule if school else None, device.probes,
                      [getattr(device, f) for f in _SETTINGS_FIELDS]))
        settings = self._alike.get(alike)
        if settings is None:
            settings = self._alike[alike] = self._cascade(device)
        self._effective[device.id] = (device, settings)
        return settings

    def _cascade(self, device: Device) -> EffectiveSettings:
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
        pjlink = pjlink_interval = None
        if "pjlink" in device.probe_names:
            raw = self.probe_settings(device, "pjlink")
            pjlink_interval = raw.pop("interval", None)
            pjlink = PjlinkParams.model_validate(raw)
            pjlink_interval = parse_duration(pjlink_interval) if pjlink_interval else None
        return EffectiveSettings(interval, fail, ok, IcmpParams.model_validate(icmp), schedule,
                                 delay, snmp, snmp_interval, mqtt,
                                 any(la.failure_threshold is not None for la in layers),
                                 pjlink, pjlink_interval)

    def probe_settings(self, device: Device,
                       probe: Literal["snmp", "mqtt", "pjlink", "http", "tcp", "dns"]
                       ) -> dict[str, Any]:
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
        return deep_merge(layers)

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


def deep_merge(layers: list[dict[str, Any] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge([out[key], value])
            else:
                out[key] = value
    return out


def devices_by_school(cfg: Config) -> Mapping[str | None, list[Device]]:
    out: dict[str | None, list[Device]] = {}
    for dev in cfg.devices:
        out.setdefault(dev.school, []).append(dev)
    return out
