"""Reading agents' answers: labels, speeds, the uplink, load averages, UPS values."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from monitord.probes.base import Observation
from monitord.probes.snmp import codec as w
from monitord.probes.snmp.oids import IF_COLUMNS
from monitord.probes.snmp.state import DeviceState


def text(v: bytes) -> str:
    return v.rstrip(b"\x00").decode("utf-8", errors="replace").strip()


def int_of(entry: tuple[int, w.Value] | None) -> int | None:
    if entry is None:
        return None
    tag, v = entry
    return v if isinstance(v, int) and tag not in w.EXCEPTION_TAGS else None


def if_label(by: Mapping[str, Mapping[w.Oid, Any]], index: w.Oid, i: int) -> str:
    """ifName, else ifDescr, else the index: what an officer recognises."""
    for key in ("name", "descr"):
        entry = by.get(key, {}).get(index)
        if entry is not None and isinstance(entry[1], bytes):
            label = text(entry[1])
            if label:
                return label
    return str(i)


def speed_bps(by: Mapping[str, Mapping[w.Oid, Any]], index: w.Oid) -> float | None:
    high = int_of(by.get("high_speed", {}).get(index))
    if high:
        return high * 1_000_000.0
    low = int_of(by["speed"].get(index))
    return float(low) if low else None


def is_uplink(uplink: str | int | None, i: int, by: Mapping[str, Mapping[w.Oid, Any]],
               index: w.Oid) -> bool:
    if uplink is None:
        return False
    if isinstance(uplink, int) or uplink.isdigit():
        return int(uplink) == i
    for key in ("name", "descr"):
        entry = by.get(key, {}).get(index)
        if entry is not None and isinstance(entry[1], bytes) and text(entry[1]) == uplink:
            return True
    return False


def find_uplink(uplink: str | int | None, cols: Mapping[bytes, Mapping[w.Oid, Any]]
                 ) -> int | None:
    by = {"name": cols[IF_COLUMNS["name"]], "descr": cols[IF_COLUMNS["descr"]]}
    for index in sorted(set(by["name"]) | set(by["descr"])):
        if len(index) == 1 and is_uplink(uplink, index[0], by, index):
            return index[0]
    return None


def light_uplink_label(st: DeviceState) -> str:
    """Interface label of a light (GET-only) uplink: the configured name or the index."""
    return str(st.params.uplink) if st.params.uplink is not None else str(st.uplink_index)


def uplink_degraded(obs: Observation) -> None:
    if obs.values.get("uplink_oper_status") not in (None, 1.0):
        obs.degraded = obs.degraded or "uplink_down"


def load_average(vals: Sequence[tuple[int, w.Value]], obs: Observation) -> None:
    for key, (tag, v) in zip(("load1", "load5", "load15"), vals, strict=True):
        if isinstance(v, bytes) and tag == w.OCTET_STRING:
            with contextlib.suppress(ValueError):
                obs.values[key] = float(text(v))


def ups_values(vals: Mapping[str, tuple[int, w.Value]], obs: Observation) -> None:
    """UPS-MIB first, XUPS-MIB (Eaton/Powerware) where the standard MIB is absent."""
    def num(key: str) -> int | None:
        return int_of(vals.get(key))

    status = num("battery_status")
    if status is not None:
        obs.values["ups_battery_status"] = float(status)
    minutes = num("minutes_remaining")
    runtime = minutes * 60 if minutes is not None else num("x_seconds_remaining")
    if runtime is not None:
        obs.values["ups_runtime_remaining_seconds"] = float(runtime)
    charge = num("charge_percent")
    if charge is None:
        charge = num("x_charge_percent")
    if charge is not None:
        obs.values["ups_charge_ratio"] = charge / 100.0
    source = num("output_source")
    if source is None:
        source = num("x_output_source")
    on_battery = None
    if source is not None:
        on_battery = source == 5
    secs_on = num("seconds_on_battery")
    if secs_on is not None:
        on_battery = bool(on_battery) or secs_on > 0
    if on_battery is not None:
        obs.values["ups_on_battery"] = 1.0 if on_battery else 0.0
        if on_battery:
            obs.degraded = "ups_on_battery"
    if status in (3, 4):
        obs.degraded = "ups_battery_low"
