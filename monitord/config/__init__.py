"""The YAML configuration: one file describing the office, its schools and devices.

Loading is all-or-nothing: :func:`load_config` either returns a fully validated
:class:`Config` or raises :class:`ConfigError` carrying *every* problem found, each with
the file, the line and the key path (``FILE:LINE: key.path: message``), so an officer can
fix a broken file in one pass.  Nothing half-valid ever reaches the running daemon.

Settings cascade ``defaults`` → ``kinds.<kind>`` → the device itself.

The package is a layer of its own: it reads domain types (active hours) and the probes'
parameter models, and imports nothing from app, http, storage, notify or reports.

- :mod:`~monitord.config.problems`: :class:`Problem`, :class:`ConfigError`
- :mod:`~monitord.config.reader`: bounded YAML reading with the line of every key
- :mod:`~monitord.config.settings`: cascading settings, schedules, holidays, maintenance
- :mod:`~monitord.config.devices`: office, schools, devices
- :mod:`~monitord.config.sections`: storage, http, engines, tickets, incidents, notify
- :mod:`~monitord.config.model`: :class:`Config` and the cascade
- :mod:`~monitord.config.checks`: cross-entity checks on the raw document
- :mod:`~monitord.config.loader`: :func:`load_config`, :func:`parse_config`
"""

from monitord.config.devices import (
    Device,
    Location,
    Office,
    ProbeList,
    ProbeName,
    School,
)
from monitord.config.loader import LoadResult, load_config, parse_config
from monitord.config.model import Config, devices_by_school
from monitord.config.problems import MESSAGE_LIMIT, ConfigError, KeyPath, Problem, format_path
from monitord.config.reader import (
    MAX_CONFIG_BYTES,
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
)
from monitord.config.sections import (
    ApiToken,
    ChannelConfig,
    CorrelationConfig,
    EnginesConfig,
    FlappingConfig,
    HttpConfig,
    IcmpEngineConfig,
    IncidentsConfig,
    NotifyConfig,
    Signatory,
    SnmpEngineConfig,
    StorageConfig,
    TicketsConfig,
    parse_listen,
)
from monitord.config.settings import (
    KNOWN_PROBES,
    Defaults,
    DeviceKind,
    EffectiveSettings,
    HolidayConfig,
    IcmpParams,
    MaintenanceConfig,
    ScheduleConfig,
    Settings,
)
from monitord.values import parse_duration

__all__ = [
    "KNOWN_PROBES",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_ALIASES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "MESSAGE_LIMIT",
    "ApiToken",
    "ChannelConfig",
    "Config",
    "ConfigError",
    "CorrelationConfig",
    "Defaults",
    "Device",
    "DeviceKind",
    "EffectiveSettings",
    "EnginesConfig",
    "FlappingConfig",
    "HolidayConfig",
    "HttpConfig",
    "IcmpEngineConfig",
    "IcmpParams",
    "IncidentsConfig",
    "KeyPath",
    "LoadResult",
    "Location",
    "MaintenanceConfig",
    "NotifyConfig",
    "Office",
    "ProbeList",
    "ProbeName",
    "Problem",
    "ScheduleConfig",
    "School",
    "Settings",
    "Signatory",
    "SnmpEngineConfig",
    "StorageConfig",
    "TicketsConfig",
    "devices_by_school",
    "format_path",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_listen",
]
