"""Checks on the raw document, reported in the same pass as type errors.

They span several entities (references, uniqueness, cycles) or follow the SNMP/MQTT
cascade, and run defensively on the raw data so that one pass finds every problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from monitord.config.model import deep_merge
from monitord.config.problems import KeyPath, Problem
from monitord.config.reader import Doc
from monitord.config.settings import IcmpParams
from monitord.probes.dns import DnsParams
from monitord.probes.http import HttpParams
from monitord.probes.mqtt import MqttDeviceParams
from monitord.probes.pjlink import PjlinkParams
from monitord.probes.snmp import SnmpParams, profile_for_kind
from monitord.probes.tcp import TcpParams
from monitord.values import parse_duration


def pydantic_problems(doc: Doc, exc: ValidationError) -> Iterator[Problem]:
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


def semantic_problems(doc: Doc) -> Iterator[Problem]:
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
    doc: Doc, schools: Mapping[str, Any], device_ids: Mapping[str, int]
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


def probe_problems(doc: Doc) -> Iterator[Problem]:
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
    models: dict[str, type[BaseModel]] = {"snmp": SnmpParams, "mqtt": MqttDeviceParams,
                                          "pjlink": PjlinkParams, "http": HttpParams,
                                          "tcp": TcpParams, "dns": DnsParams}
    allowed = {"snmp": set(SnmpParams.model_fields) | {"interval"},
               "mqtt": set(MqttDeviceParams.model_fields),
               "pjlink": {f.alias or n for n, f in PjlinkParams.model_fields.items()}
               | {"interval"}}
    for name in ("http", "tcp", "dns"):
        allowed[name] = set(models[name].model_fields) | {"interval"}

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
        if dev.get("kind") == "service" and not {"http", "tcp", "dns"} & set(names):
            yield doc.problem(("devices", i, "probes"), "a service needs an http, tcp or dns "
                              "check: ping alone does not say it works", warning=True)
        for probe, model in models.items():
            own = block(probes.get(probe)) if isinstance(probes, dict) else None
            yield from check_block(("devices", i, probe), dev.get(probe), probe)
            if probe not in names:
                continue
            base: KeyPath = ("devices", i, "probes", probe) if isinstance(probes, dict) \
                else ("devices", i, "probes")
            yield from check_block(base, own, probe)
            raw = deep_merge([block(defaults.get(probe)), block(kind.get(probe)),
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
