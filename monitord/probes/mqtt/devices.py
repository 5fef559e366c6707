"""Topic templates and the runtime state of each MQTT-watched device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.mqtt.decode import FieldSpec
from monitord.probes.mqtt.settings import MqttDevice


def expand(template: str, base: str, smis: str | None, name: str, fld: str = "") -> str:
    return template.format(base=base, smis=smis or "office", device=name, field=fld)


def filter_of(template: str, base: str) -> str:
    """A template → the subscription filter covering every device (``+`` per level)."""
    levels = template.replace("{base}", base).split("/")
    return "/".join("+" if "{" in level else level for level in levels)


STATE: Final = 0
AVAIL: Final = 1


@dataclass(slots=True)
class Route:
    """What a concrete topic means for one device."""

    dev: Dev
    kind: int
    field: str = ""  # per-field topics (ESPHome): which of our fields this topic carries


@dataclass(slots=True)
class Dev:
    """Runtime state of one device (kept across config reloads)."""

    device_id: str
    spec: MqttDevice
    stale_after: float
    period: float
    ts_field: FieldSpec | None
    fields: tuple[FieldSpec, ...]
    per_field: bool
    online: str
    offline_payload: str
    fresh_until: float = 0.0
    last_ts: float | None = None
    offline: bool = False
    stale: bool = False
    last_emit: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    last_good: Observation | None = None
    last_rejected: str = ""


