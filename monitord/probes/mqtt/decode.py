"""Pure decoding for the MQTT source: field paths, format presets, value conversion.

Nothing here does I/O or keeps time, so the hot path can be fuzzed in isolation
(tests/integration/test_mqtt.py feeds it arbitrary payloads with hypothesis;
tests/integration/test_mqtt_hardening.py feeds :func:`decode_json`/:func:`extract`,
:func:`decode_scalar`/:func:`convert`/:func:`to_timestamp` 20,000+ generated inputs).
Every way a payload can be wrong ends in :class:`Rejected` with one reason from
:data:`REJECT_REASONS` (the only exception these functions raise on bad input): the
reasons are a fixed set because they become a metric label.  Messages never quote a
payload value whole: :func:`describe` gives a short, non-recursive description, so a
hostile value (1,000 levels deep, 16 KiB long) costs no more than a small one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

try:  # orjson decodes the small agent payloads 3-5x faster; the stdlib is the fallback.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson installed
    _loads = json.loads

# ------------------------------------------------------------------------- vocabulary

#: Why a message was rejected (label values of monitord_mqtt_messages_rejected_total).
REJECT_REASONS: Final = (
    "oversized",          # payload longer than max_payload_bytes
    "malformed_json",     # not JSON (or not UTF-8)
    "not_an_object",      # JSON, but not an object where the format expects one
    "wrong_type",         # a mapped field has a value of the wrong type (or NaN/inf)
    "bad_timestamp",      # the timestamp field cannot be read as a time
    "future_timestamp",   # the timestamp is later than now + max_clock_skew
    "unknown_device",     # a topic under a subscribed filter that no device claims
    "bad_availability",   # an availability payload that is neither online nor offline
    "overload",           # dropped: the incoming queue (max_queued_incoming_messages) was full
)
#: JSON nested deeper than this is rejected (malformed_json); agent payloads are 1-3 deep.
MAX_DEPTH: Final = 32

BOOL_FIELDS: Final = frozenset({"signal_lock", "tv_power", "receiver_power"})
NUMBER_FIELDS: Final = frozenset({
    "signal_strength_db", "signal_quality_db", "channel", "temperature_celsius",
    "power_watts", "uptime_seconds",
})
#: Field names an agent may send (and a device's ``fields`` mapping may map).
FIELD_NAMES: Final = frozenset({"ts"}) | BOOL_FIELDS | NUMBER_FIELDS

FieldName = Literal[
    "ts", "signal_lock", "tv_power", "receiver_power", "signal_strength_db",
    "signal_quality_db", "channel", "temperature_celsius", "power_watts", "uptime_seconds",
]
Format = Literal["monitord", "tasmota", "esphome", "shelly"]

_TRUE: Final = frozenset({"1", "true", "on", "yes", "locked", "lock", "online"})
_FALSE: Final = frozenset({"0", "false", "off", "no", "unlocked", "nolock", "offline"})


class Rejected(Exception):
    """The message is unusable; ``reason`` is one of :data:`REJECT_REASONS`.

    This is the only exception the decoding functions here raise for bad input.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# ------------------------------------------------------------------------- presets


@dataclass(frozen=True, slots=True)
class Preset:
    """Topic layout and field mapping of a well-known firmware."""

    state_topic: str
    availability_topic: str
    payload_online: str
    payload_offline: str
    fields: Mapping[str, str]


PRESETS: Final[Mapping[str, Preset]] = {
    # Our own agents: one JSON object per report, field names as in docs/mqtt.md.
    "monitord": Preset(
        "{base}/{smis}/{device}/state", "{base}/{smis}/{device}/availability",
        "online", "offline",
        {name: name for name in sorted(FIELD_NAMES)},
    ),
    # Tasmota plug powering a TV: tele/<topic>/STATE every TelePeriod (300 s by default),
    # LWT "Online"/"Offline" (retained) on tele/<topic>/LWT.  Time is local, no offset.
    "tasmota": Preset(
        "tele/{device}/STATE", "tele/{device}/LWT", "Online", "Offline",
        {"ts": "Time", "tv_power": "POWER", "uptime_seconds": "UptimeSec"},
    ),
    # ESPHome publishes one plain value per entity: <node>/<component>/<object_id>/state
    # and <node>/status "online"/"offline".  {field} is replaced by each mapped value,
    # e.g. fields: {signal_quality_db: "sensor/dltv_snr", signal_lock: "binary_sensor/lock"}.
    "esphome": Preset(
        "{device}/{field}/state", "{device}/status", "online", "offline",
        {"temperature_celsius": "sensor/temperature"},
    ),
    # Shelly Gen2+ (Plus/Pro): <id>/status/switch:0 JSON, <id>/online "true"/"false".
    "shelly": Preset(
        "{device}/status/switch:0", "{device}/online", "true", "false",
        {"tv_power": "output", "power_watts": "apower", "temperature_celsius": "temperature.tC"},
    ),
}

# ------------------------------------------------------------------------- paths

PathKey = str | int
Path = tuple[PathKey, ...]
_PATH_TOKEN = re.compile(r"""\.?([^.\[\]]+)|\[(\d+)\]|\[["']([^"']*)["']\]""")


def parse_path(text: str) -> Path:
    """``a.b[0].c`` / ``StatusSNS["DS18B20"].Temperature`` → ``("a", "b", 0, "c")``.

    A small subset of JSONPath (dots, list indices, quoted keys) is all that the
    payloads of Tasmota, ESPHome and Shelly need; a leading ``$.`` is accepted.
    """
    text = text.strip()
    if text.startswith("$"):
        text = text[1:]
    if not text:
        raise ValueError("empty path")
    out: list[PathKey] = []
    pos = 0
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot parse path {text!r} at position {pos}")
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(m.group(3))
        pos = m.end()
    return tuple(out)


_MISSING: Final = object()


def get_path(obj: Any, path: Path) -> Any:
    """The value at ``path`` or ``_MISSING``; a step into a scalar is a wrong type."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list):
                if isinstance(obj, dict):
                    return _MISSING
                raise Rejected("wrong_type", f"cannot index {type(obj).__name__}")
            if key >= len(obj):
                return _MISSING
            obj = obj[key]
        else:
            if not isinstance(obj, dict):
                raise Rejected("wrong_type", f"cannot look up {key!r} in "
                               f"{type(obj).__name__}")
            obj = obj.get(key, _MISSING)
            if obj is _MISSING:
                return _MISSING
    return obj


# ------------------------------------------------------------------------- values


def describe(value: Any, limit: int = 40) -> str:
    """A short description of a decoded JSON value for messages and logs.

    Never recursive and never longer than about ``limit`` characters: containers are
    described by type and size, strings are cut before ``repr`` (``repr`` of a deeply
    nested value raises RecursionError; of a long one it costs its length).
    """
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -10**20 < value < 10**20 else "a huge integer"
    return type(value).__name__


def _as_float(value: int | float) -> float:
    """``float(value)``, but infinity for an integer too large for a float (the stdlib
    JSON fallback returns them; ``float()`` would raise OverflowError)."""
    if isinstance(value, int) and not -10**300 < value < 10**300:
        return math.inf
    return float(value)


def to_bool(name: str, value: Any) -> float:
    """Agents say true/1/"ON"/"on"/"locked" …; anything else is a wrong type."""
    if value is True or value is False:
        return 1.0 if value else 0.0
    if isinstance(value, int) and value in (0, 1):
        return float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return 1.0
        if low in _FALSE:
            return 0.0
    raise Rejected("wrong_type", f"{name}: expected a boolean, got {describe(value)}")


def to_number(name: str, value: Any) -> float:
    """Numbers (or numeric strings, as per-entity ESPHome topics send); finite only."""
    if isinstance(value, bool):
        raise Rejected("wrong_type", f"{name}: expected a number, got a boolean")
    if isinstance(value, int | float):
        out = _as_float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise Rejected("wrong_type", f"{name}: expected a number, got "
                           f"{describe(value)}") from None
    else:
        raise Rejected("wrong_type", f"{name}: expected a number, got {describe(value)}")
    if not math.isfinite(out):
        raise Rejected("wrong_type", f"{name}: not a finite number")
    return out


def to_timestamp(value: Any, tz: ZoneInfo) -> float:
    """Unix seconds (milliseconds when > 1e11, as ESP32 ``millis``-style agents send)
    or ISO 8601; an ISO time without an offset is office-local (Tasmota's ``Time``)."""
    if isinstance(value, bool):
        raise Rejected("bad_timestamp", "timestamp is a boolean")
    if isinstance(value, int | float):
        ts = _as_float(value)
        if not math.isfinite(ts) or ts < 0:
            raise Rejected("bad_timestamp", f"timestamp {describe(value)}")
        return ts / 1000.0 if ts > 1e11 else ts
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Rejected("bad_timestamp", f"timestamp {describe(value)}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        return when.timestamp()
    raise Rejected("bad_timestamp", f"timestamp is {describe(value)}")


def convert(name: str, value: Any) -> float:
    """One of our fields → its numeric value (booleans as 1/0)."""
    if name in BOOL_FIELDS:
        return to_bool(name, value)
    return to_number(name, value)


def decode_json(payload: bytes) -> Any:
    """JSON → Python, every failure (bad UTF-8, too deep, not JSON) as one reason.

    Nesting deeper than :data:`MAX_DEPTH` is rejected too, so no later step (nor a
    careless ``repr``) ever meets a deep value.  The depth walk only runs for payloads
    with more than MAX_DEPTH brackets: the agents' flat reports never pay for it.
    """
    try:
        obj = _loads(payload)
    except (ValueError, RecursionError):
        raise Rejected("malformed_json") from None
    if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH and _too_deep(obj):
        raise Rejected("malformed_json", f"nested deeper than {MAX_DEPTH} levels")
    return obj


def _too_deep(obj: Any) -> bool:
    """Whether containers nest deeper than MAX_DEPTH (an explicit stack, no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
    return False


def decode_scalar(payload: bytes) -> Any:
    """A per-entity payload (ESPHome ``23.5``, ``ON``): JSON scalar or plain text."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Rejected("malformed_json", "not UTF-8") from None
    if text[:1] in ('"', "{", "[") or text in ("true", "false", "null"):
        return decode_json(payload)
    return text


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One mapped field: our name and where it sits in the payload."""

    name: str
    path: Path


def compile_fields(mapping: Mapping[str, str]) -> tuple[FieldSpec | None, tuple[FieldSpec, ...]]:
    """→ (timestamp field, value fields), paths parsed once at configuration time (and
    once for all devices that map their fields alike: 12,000 receivers share one)."""
    return _compile_fields(tuple(mapping.items()))


@functools.lru_cache(maxsize=1024)
def _compile_fields(items: tuple[tuple[str, str], ...]
                    ) -> tuple[FieldSpec | None, tuple[FieldSpec, ...]]:
    ts: FieldSpec | None = None
    values: list[FieldSpec] = []
    for name, text in items:
        spec = FieldSpec(name, parse_path(text))
        if name == "ts":
            ts = spec
        else:
            values.append(spec)
    return ts, tuple(values)


def extract(obj: Any, ts_field: FieldSpec | None, fields: tuple[FieldSpec, ...],
            tz: ZoneInfo) -> tuple[float | None, dict[str, float]]:
    """A decoded JSON object → (payload timestamp or None, values by field name).

    A field that is absent (or JSON null) is simply not reported; a field of the wrong
    type rejects the whole message, so a half-broken agent never looks healthy.
    """
    if not isinstance(obj, dict):
        raise Rejected("not_an_object")
    ts: float | None = None
    if ts_field is not None:
        raw = obj.get(ts_field.path[0], _MISSING) if len(ts_field.path) == 1 \
            else get_path(obj, ts_field.path)
        if raw is not _MISSING and raw is not None:
            ts = to_timestamp(raw, tz)
    values: dict[str, float] = {}
    for spec in fields:
        path = spec.path
        raw = obj.get(path[0], _MISSING) if len(path) == 1 else get_path(obj, path)
        if raw is _MISSING or raw is None:
            continue
        name = spec.name
        if name in BOOL_FIELDS:
            values[name] = to_bool(name, raw)
        else:
            values[name] = to_number(name, raw)
    return ts, values
