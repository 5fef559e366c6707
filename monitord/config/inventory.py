"""The inventory import: OBEC school lists and device lists as CSV → the inventory YAML
file the main config includes (``include: [inventory.yaml]``), and back (export).

YAML stays the single source of truth: an import validates every cell with the rules
the config applies (the same pydantic models), upserts the good rows by key (SMIS code,
device id) into the inventory file, checks the resulting whole config with the same
loader ``monitord check`` uses, and only then writes the file (a temporary file renamed
over it; the previous version kept as ``<file>.bak``).  Keys not in the CSV stay, and so
do the keys of an entry the CSV has no column for (probes, schedules, SNMP settings).

Reading: UTF-8 with or without BOM, else Windows-874/TIS-620 (Excel's Thai encoding);
comma, semicolon or tab separated; Thai or English headers (:data:`ALIASES`), compared
without case, spaces or underscores.  Rows are numbered as a spreadsheet shows them
(the header is row 1).

Export: every school or device of the config (the main file and its includes), in the
config's order, as UTF-8 with BOM (Excel opens Thai correctly) and English headers.  An
imported row equal to an entry of the main config (or of another included file) is
"unchanged"; one that differs is a problem (change it where it is defined), so an
export imports back without changing anything.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from monitord.config.devices import Device, School
from monitord.config.loader import include_paths, load_config, read_text
from monitord.config.model import Config
from monitord.config.problems import ConfigError
from monitord.config.reader import read_yaml
from monitord.config.settings import DeviceKind

KINDS = ("schools", "devices")

#: the columns of each kind, in export order
COLUMNS: dict[str, tuple[str, ...]] = {
    "schools": ("smis", "name", "district", "subdistrict", "isp", "lat", "lon", "percode"),
    "devices": ("school", "id", "kind", "name", "address", "parent", "hostname",
                "brand_model", "serial", "unit"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "schools": ("smis", "name", "district"),
    "devices": ("id", "kind", "address"),
}
#: accepted headers (besides the column's own name), Thai and English
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "schools": {
        "smis": ("รหัส SMIS", "รหัสโรงเรียน", "รหัส smis 8 หลัก", "smis code", "school code",
                 "code"),
        "name": ("ชื่อโรงเรียน", "ชื่อสถานศึกษา", "school name", "school"),
        "district": ("อำเภอ", "amphoe"),
        "subdistrict": ("ตำบล", "sub-district", "tambon"),
        "isp": ("ผู้ให้บริการอินเทอร์เน็ต", "ผู้ให้บริการ", "internet provider"),
        "lat": ("ละติจูด", "latitude"),
        "lon": ("ลองจิจูด", "longitude", "lng"),
        "percode": ("รหัส percode", "เพอร์โค้ด", "per code"),
    },
    "devices": {
        "school": ("โรงเรียน", "รหัสโรงเรียน", "รหัส SMIS", "smis"),
        "id": ("รหัสอุปกรณ์", "device id", "device"),
        "kind": ("ประเภท", "ประเภทอุปกรณ์", "ชนิด", "type"),
        "name": ("ชื่ออุปกรณ์", "ชื่อ", "device name"),
        "address": ("ที่อยู่ IP", "ไอพี", "ip", "ip address", "host"),
        "parent": ("อุปกรณ์ต้นทาง", "เชื่อมต่อกับ", "upstream"),
        "hostname": ("ชื่อโฮสต์", "host name"),
        "brand_model": ("ยี่ห้อ/รุ่น", "ยี่ห้อ", "รุ่น", "brand/model", "model"),
        "serial": ("หมายเลขเครื่อง", "serial number", "serial no", "s/n"),
        "unit": ("กลุ่มงาน", "work unit"),
    },
}
MAX_CSV_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
#: Thailand, roughly: a school outside it is probably a swapped lat/lon
THAILAND = ((5.5, 20.5), (97.3, 105.7))
INVENTORY_HEADER = ("# monitord inventory: written by `monitord import` (the main config "
                    "includes it).\n# Hand edits are kept, comments are not.\n")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad cell: printed as ``FILE:ROW: column: message``."""

    row: int
    column: str
    message: str


@dataclass(slots=True)
class ImportReport:
    """What an import found and did."""

    kind: str                     # "schools" or "devices"
    source: str                   # the file's name, for messages
    rows: int = 0                 # data rows read
    applied: bool = False         # the inventory file was written
    added: list[str] = field(default_factory=list)     # keys (SMIS / device ids)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)   # rows left out (--skip-bad)
    inventory_path: str = ""
    encoding: str = ""
    #: doubtful but accepted cells (a school outside Thailand, an SMIS code of another area)
    warnings: list[RowProblem] = field(default_factory=list)
    #: why the resulting config would not load (``FILE:LINE: key: message``): not written
    config_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing stands in the way (problems skipped with skip_bad do not count)."""
        return not self.config_problems and (not self.problems or (bool(self.skipped)
                                             and all(p.row in self.skipped
                                                     for p in self.problems)))


class InventoryError(Exception):
    """The import cannot start: no inventory file, the config does not load, a file that
    is not a CSV.  ``problems`` holds the config's problems when it does not load."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


# -- reading the CSV ---------------------------------------------------------------------

def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding's name: UTF-8 (with or without BOM), else Windows-874."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "UTF-8 (BOM)"
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8"), "UTF-8"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("cp874"), "Windows-874"
    except UnicodeDecodeError as exc:
        raise InventoryError(f"neither UTF-8 nor Windows-874 (TIS-620) text (byte "
                             f"{exc.start}): save the sheet as CSV UTF-8") from None


def _norm(header: str) -> str:
    return re.sub(r"[\s_]+", "", header.replace("\ufeff", "")).lower()


def header_map(kind: str) -> dict[str, str]:
    """Normalised header → column."""
    out: dict[str, str] = {}
    for column, aliases in ALIASES[kind].items():
        for name in (column, *aliases):
            out.setdefault(_norm(name), column)
    return out


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class Sheet:
    """A CSV read: its encoding, its columns (None: a column not understood) and the
    data rows as (row number, column → cell)."""

    encoding: str
    columns: list[str | None]
    rows: list[tuple[int, dict[str, str]]]
    problems: list[RowProblem]
    #: a required column is missing: the rows are not checked (each would say so)
    incomplete: bool = False


def read_sheet(data: bytes, kind: str) -> Sheet:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if len(data) > MAX_CSV_BYTES:
        raise InventoryError(f"larger than {MAX_CSV_BYTES} bytes: not a school or device list")
    text, encoding = decode(data)
    lines = text.splitlines()
    delimiter = _delimiter(lines[0] if lines else "")
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    sheet = Sheet(encoding, [], [], [])
    known = header_map(kind)
    try:
        header = next(records, None)
        if header is None or not any(h.strip() for h in header):
            sheet.problems.append(RowProblem(1, "(header)", "the file has no header row"))
            return sheet
        unknown: list[str] = []
        seen: dict[str, str] = {}
        for name in header:
            column = known.get(_norm(name))
            if column is None and name.strip():
                unknown.append(name.strip())
            if column is not None and column in seen:
                sheet.problems.append(RowProblem(1, column, f"two columns mean {column}: "
                                                 f"{seen[column]!r} and {name.strip()!r}"))
                column = None
            if column is not None:
                seen[column] = name.strip()
            sheet.columns.append(column)
        if unknown:
            sheet.problems.append(RowProblem(
                1, ", ".join(unknown)[:200],
                f"unknown column{'s' if len(unknown) > 1 else ''}; the columns are "
                f"{', '.join(COLUMNS[kind])} (or their Thai names)"))
        for column in REQUIRED[kind]:
            if column not in seen:
                thai = ALIASES[kind][column][0]
                sheet.problems.append(RowProblem(1, column, f"required column missing "
                                                 f"({column} or {thai})"))
                sheet.incomplete = True
        for number, record in enumerate(records, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(sheet.rows) >= MAX_ROWS:
                raise InventoryError(f"more than {MAX_ROWS} rows")
            if len(record) > len(header) and any(c.strip() for c in record[len(header):]):
                sheet.problems.append(RowProblem(number, "(row)", f"{len(record)} cells but "
                                                 f"{len(header)} columns"))
            row = {col: unguard(cell.strip())
                   for col, cell in zip(sheet.columns, record, strict=False)
                   if col is not None}
            sheet.rows.append((number, row))
    except csv.Error as exc:
        raise InventoryError(f"not a readable CSV: {exc}") from None
    return sheet


# -- validating rows ---------------------------------------------------------------------

def _pydantic(exc: ValidationError, columns: Mapping[str, str]) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if isinstance(p, str)]
        column = columns.get(loc[0], loc[0]) if loc else "(row)"
        if loc[:1] == ["location"] and len(loc) > 1:
            column = loc[1]
        msg = err["msg"].removeprefix("Value error, ")
        out.append((column, msg))
    return out


def _num(value: float) -> str:
    return repr(float(value))


def school_row(smis: str, school: School) -> dict[str, str]:
    loc = school.location
    return {"smis": smis, "name": school.name, "district": school.district,
            "subdistrict": school.subdistrict, "isp": school.isp,
            "lat": _num(loc.lat) if loc else "", "lon": _num(loc.lon) if loc else "",
            "percode": school.percode or ""}


def device_row(dev: Device) -> dict[str, str]:
    return {"school": dev.school or "", "id": dev.id, "kind": dev.kind.value,
            "name": dev.name, "address": dev.address, "parent": dev.parent or "",
            "hostname": dev.hostname, "brand_model": dev.brand_model, "serial": dev.serial,
            "unit": dev.unit}


def _school_entry(row: Mapping[str, str], problems: list[tuple[str, str]],
                  warnings: list[tuple[str, str]], area: str) -> dict[str, Any]:
    """The YAML fields of a school row (only the columns the CSV has)."""
    smis = row.get("smis", "")
    if not re.fullmatch(r"\d{8}", smis):
        hint = (" (Excel may have dropped a leading zero: format the column as text)"
                if re.fullmatch(r"\d{7}", smis) else "")
        problems.append(("smis", f"SMIS code must be 8 digits, got {smis!r}{hint}"
                         if smis else "empty: every school needs its SMIS code"))
    elif area and not smis.startswith(area):
        warnings.append(("smis", f"does not start with the office area code {area}"))
    entry: dict[str, Any] = {}
    for column in ("name", "district", "subdistrict", "isp", "percode"):
        if column not in row:
            continue
        value = row[column]
        if column in ("name", "district") and not value:
            problems.append((column, "empty: required"))
        if column == "percode" and value and not re.fullmatch(r"\d{6}", value):
            hint = (" (Excel may have dropped a leading zero: format the column as text)"
                    if re.fullmatch(r"\d{5}", value) else "")
            problems.append((column, f"percode must be 6 digits, got {value!r}{hint}"))
            continue
        entry[column] = value
    coords: dict[str, float] = {}
    for column, (low, high) in (("lat", (-90, 90)), ("lon", (-180, 180))):
        value = row.get(column, "")
        if not value:
            continue
        try:
            number = float(value.replace(",", "."))
        except ValueError:
            problems.append((column, f"not a number: {value!r}"))
            continue
        if not math.isfinite(number) or not low <= number <= high:
            problems.append((column, f"must be between {low} and {high}, got {value}"))
            continue
        coords[column] = number
    if ("lat" in row or "lon" in row) and bool(row.get("lat")) != bool(row.get("lon")):
        missing = "lon" if row.get("lat") else "lat"
        problems.append((missing, "empty while the other coordinate is given: give both "
                         "or neither"))
    elif len(coords) == 2:
        (lat_lo, lat_hi), (lon_lo, lon_hi) = THAILAND
        if not (lat_lo <= coords["lat"] <= lat_hi and lon_lo <= coords["lon"] <= lon_hi):
            warnings.append(("lat", f"{coords['lat']}, {coords['lon']} is outside Thailand "
                             "(lat and lon swapped?)"))
        entry["location"] = {"lat": coords["lat"], "lon": coords["lon"]}
    elif "lat" in row or "lon" in row:
        entry["location"] = None
    return entry


def _device_entry(row: Mapping[str, str], problems: list[tuple[str, str]]
                  ) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for column in COLUMNS["devices"]:
        if column not in row:
            continue
        value = row[column]
        if column in REQUIRED["devices"] and not value:
            problems.append((column, "empty: required"))
            continue
        if column == "kind" and value not in {k.value for k in DeviceKind}:
            problems.append((column, f"unknown kind {value!r} (one of "
                             f"{', '.join(k.value for k in DeviceKind)})"))
            continue
        if column == "school" and value and not re.fullmatch(r"\d{8}", value):
            problems.append((column, f"SMIS code must be 8 digits, got {value!r}"))
            continue
        entry[column] = value if value else None
    return entry


def _merge(existing: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The entry after the import: the CSV's columns set (an empty cell removes the
    key), every other key kept."""
    out = dict(existing or {})
    for key, value in fields.items():
        if value is None or value == "":
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _school_model(entry: Mapping[str, Any]) -> School:
    return School.model_validate(entry)


def _device_model(entry: Mapping[str, Any]) -> Device:
    return Device.model_validate(entry)


# -- the inventory file --------------------------------------------------------------------

def find_inventory(config_path: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The inventory file the config includes (as problems name it): the only one, else
    the one whose name starts with "inventory", else ``explicit`` (which must be one of
    the included files)."""
    file = os.fspath(config_path)
    try:
        doc = read_yaml(read_text(file), file)
    except ConfigError as exc:
        raise InventoryError(f"{file}: the config cannot be read",
                             [str(p) for p in exc.problems]) from None
    paths = include_paths(file, doc.data)
    if explicit is not None:
        for path in paths:
            if os.path.abspath(path) == os.path.abspath(explicit) or \
                    os.path.abspath(path) == os.path.abspath(os.path.join(
                        os.path.dirname(file), explicit)):
                return path
        raise InventoryError(f"{explicit} is not among the files {file} includes "
                             f"({', '.join(paths) or 'none'})")
    if not paths:
        raise InventoryError(
            f"{file} includes no inventory file: add `include: [inventory.yaml]` to it and "
            f"create {os.path.join(os.path.dirname(file), 'inventory.yaml')} (it may be "
            "empty)")
    if len(paths) == 1:
        return paths[0]
    named = [p for p in paths if os.path.basename(p).startswith("inventory")]
    if len(named) == 1:
        return named[0]
    raise InventoryError(f"{file} includes several files ({', '.join(paths)}): choose one "
                         "with --inventory FILE")


def _raw(file: str) -> dict[str, Any]:
    """An included file's data ({} when missing or empty)."""
    if not os.path.exists(file):
        return {}
    text = read_text(file)
    if all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        return {}
    data: dict[str, Any] = read_yaml(text, file).data
    return data


def dump_inventory(data: Mapping[str, Any]) -> str:
    body = yaml.safe_dump(dict(data), allow_unicode=True, sort_keys=False, width=100,
                          default_flow_style=False)
    return INVENTORY_HEADER + body


def write_atomic(path: str, text: str) -> None:
    """Write ``path`` through a temporary file renamed over it; the previous version
    becomes ``path.bak`` (one kept)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".inventory-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(path):
            shutil.copymode(path, tmp)
            shutil.copy2(path, path + ".bak")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- import and export ---------------------------------------------------------------------

def _load(config_path: str, missing_inventory: str | None = None) -> Config:
    """The config in force; an included inventory file that does not exist yet counts as
    empty (the import creates it)."""
    overrides = ({missing_inventory: ""} if missing_inventory is not None
                 and not os.path.exists(missing_inventory) else None)
    try:
        return load_config(config_path, overrides).config
    except ConfigError as exc:
        raise InventoryError(f"{config_path} does not load: fix it first (`monitord check "
                             f"--config {config_path}`)",
                             [str(p) for p in exc.problems]) from None


def import_csv(config_path: str | os.PathLike[str], kind: str, data: bytes, source: str, *,
               inventory: str | None = None, dry_run: bool = False,
               skip_bad: bool = False) -> ImportReport:
    """Import a schools/devices CSV into the inventory file the config includes.

    Nothing is written while a row is bad (unless ``skip_bad``: the bad rows are left out
    and listed), with ``dry_run``, when nothing changes, or when the resulting config
    would not load (``config_problems``).  Raises :class:`InventoryError` when the import
    cannot start (no inventory file, the config does not load, not a CSV).

    Two imports at once (the CLI and the upload page) take turns: the inventory's
    directory is locked from reading the inventory to writing it."""
    config_file = os.fspath(config_path)
    target = find_inventory(config_file, inventory)
    with _locked(os.path.dirname(os.path.abspath(target))):
        return _import(config_file, target, kind, data, source, dry_run=dry_run,
                       skip_bad=skip_bad)


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _import(config_file: str, target: str, kind: str, data: bytes, source: str, *,
            dry_run: bool, skip_bad: bool) -> ImportReport:
    cfg = _load(config_file, target)
    report = ImportReport(kind, source, inventory_path=target)
    sheet = read_sheet(data, kind)
    report.encoding = sheet.encoding
    report.rows = len(sheet.rows)
    report.problems.extend(sheet.problems)
    if sheet.incomplete:
        return report
    try:
        inv = _raw(target)
    except ConfigError as exc:
        raise InventoryError(f"{target} cannot be read",
                             [str(p) for p in exc.problems]) from None
    # where each key is defined now: the inventory, else another file
    main_file = cfg.source or config_file
    raw_schools, raw_devices = inv.get("schools"), inv.get("devices")
    in_inventory_schools: dict[str, Any] = raw_schools if isinstance(raw_schools, dict) else {}
    inv_devices: list[Any] = raw_devices if isinstance(raw_devices, list) else []
    inv_device_index = {str(d.get("id")): i for i, d in enumerate(inv_devices)
                        if isinstance(d, dict)}
    others = [f for f in (main_file, *cfg.includes)
              if os.path.abspath(f) != os.path.abspath(target)]

    def defined_elsewhere(key: str) -> str:
        for other in others:
            try:
                raw = _raw(other)
            except ConfigError:
                continue
            if kind == "schools" and key in (raw.get("schools") or {}):
                return other
            if kind == "devices" and any(isinstance(d, dict) and str(d.get("id")) == key
                                         for d in raw.get("devices") or []):
                return other
        return main_file

    bad_rows: set[int] = {p.row for p in sheet.problems if p.row > 1}
    header_bad = any(p.row <= 1 for p in sheet.problems)
    first_row: dict[str, int] = {}
    keys: list[tuple[int, str]] = []
    key_column = "smis" if kind == "schools" else "id"
    for number, row in sheet.rows:
        key = row.get(key_column, "")
        if key:
            keys.append((number, key))
    counts: dict[str, list[int]] = {}
    for number, key in keys:
        counts.setdefault(key, []).append(number)
    csv_ids = set(counts)
    area = cfg.office.area_code
    known_devices = cfg.device_map()
    updates: list[tuple[int, str, dict[str, Any]]] = []
    for number, row in sheet.rows:
        cell_problems: list[tuple[str, str]] = []
        cell_warnings: list[tuple[str, str]] = []
        key = row.get(key_column, "")
        if key and len(counts[key]) > 1:
            others_rows = [str(n) for n in counts[key] if n != number]
            cell_problems.append((key_column, f"{key!r} is also in row "
                                  f"{', '.join(others_rows)}"))
        first_row.setdefault(key, number)
        if kind == "schools":
            fields = _school_entry(row, cell_problems, cell_warnings, area)
        else:
            fields = _device_entry(row, cell_problems)
            school = fields.get("school")
            if school and school not in cfg.schools:
                cell_problems.append(("school", f"unknown school {school!r} (import the "
                                      "schools first)"))
            parent = fields.get("parent")
            if parent:
                if parent == key:
                    cell_problems.append(("parent", "a device cannot be its own parent"))
                elif parent not in csv_ids and parent not in known_devices:
                    cell_problems.append(("parent", f"unknown device {parent!r}"))
        existing: dict[str, Any] | None = None
        if kind == "schools" and key in in_inventory_schools:
            existing = in_inventory_schools[key]
        elif kind == "devices" and key in inv_device_index:
            existing = inv_devices[inv_device_index[key]]
        merged = _merge(existing if isinstance(existing, dict) else None, fields)
        if kind == "devices":
            merged = {"id": key, **{k: v for k, v in merged.items() if k != "id"}} \
                if existing is None else merged
        if not cell_problems:
            try:
                model: School | Device = (_school_model(merged) if kind == "schools"
                                          else _device_model(merged))
            except ValidationError as exc:
                cell_problems += _pydantic(exc, {})
            else:
                new_row = (school_row(key, model) if isinstance(model, School)
                           else device_row(model))
                if existing is None and key and (key in cfg.schools if kind == "schools"
                                                 else key in known_devices):
                    current = (school_row(key, cfg.schools[key]) if kind == "schools"
                               else device_row(known_devices[key]))
                    if all(new_row[c] == current[c] for c in row if c in new_row):
                        report.unchanged += 1
                    else:
                        cell_problems.append((key_column, f"{key!r} is defined in "
                                              f"{defined_elsewhere(key)}: change it there"))
                else:
                    updates.append((number, key, merged))
        for column, message in cell_problems:
            report.problems.append(RowProblem(number, column, message))
            bad_rows.add(number)
        for column, message in cell_warnings:
            report.warnings.append(RowProblem(number, column, message))
    order = {c: i for i, c in enumerate(COLUMNS[kind])}
    report.problems.sort(key=lambda p: (p.row, order.get(p.column, len(order))))
    good = [(n, k, m) for n, k, m in updates if n not in bad_rows]
    new_schools = dict(in_inventory_schools)
    new_devices = list(inv_devices)
    for _, key, merged in good:
        if kind == "schools":
            before = in_inventory_schools.get(key)
            new_schools[key] = merged
        else:
            idx = inv_device_index.get(key)
            before = inv_devices[idx] if idx is not None else None
            if idx is None:
                inv_device_index[key] = len(new_devices)
                new_devices.append(merged)
            else:
                new_devices[idx] = merged
        if before is None:
            report.added.append(key)
        elif _same(kind, key, before, merged):
            report.unchanged += 1
        else:
            report.changed.append(key)
    if report.problems and (not skip_bad or header_bad):
        return report
    report.skipped = sorted(bad_rows)
    if not report.added and not report.changed:
        return report
    out: dict[str, Any] = dict(inv)
    if kind == "schools":
        out["schools"] = new_schools
        out.setdefault("devices", inv.get("devices", []))
    else:
        out.setdefault("schools", inv.get("schools", {}))
        out["devices"] = new_devices
    out = {k: out[k] for k in ("schools", "devices") if k in out} | {
        k: v for k, v in out.items() if k not in ("schools", "devices")}
    text = dump_inventory(out)
    try:
        load_config(config_file, overrides={target: text})
    except ConfigError as exc:
        report.config_problems = [str(p) for p in exc.problems if not p.warning]
        return report
    if dry_run:
        return report
    write_atomic(target, text)
    report.applied = True
    return report


def _same(kind: str, key: str, before: Any, after: Mapping[str, Any]) -> bool:
    if before == after:
        return True
    try:
        if kind == "schools":
            return school_row(key, _school_model(before)) == school_row(
                key, _school_model(after)) and set(before) == set(after)
        return device_row(_device_model(before)) == device_row(_device_model(after)) and \
            set(before) == set(after)
    except (ValidationError, TypeError):
        return False


def export_config(cfg: Config, kind: str) -> bytes:
    """Every school or device of the config as the CSV the import reads (UTF-8 with BOM,
    English headers, CRLF as Excel writes)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    columns = COLUMNS[kind]
    writer.writerow(columns)
    rows = ([school_row(smis, s) for smis, s in cfg.schools.items()] if kind == "schools"
            else [device_row(d) for d in cfg.devices])
    for row in rows:
        writer.writerow([guard(row[c]) for c in columns])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


#: a cell starting with one of these is a formula to Excel/LibreOffice (CSV injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guard(cell: str) -> str:
    """An exported cell that a spreadsheet would run as a formula gets a leading ``'``
    (OWASP's advice); :func:`unguard` takes it off again on import, so export → import
    stays a round trip."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def export_csv(config_path: str | os.PathLike[str], kind: str) -> bytes:
    file = os.fspath(config_path)
    try:
        target: str | None = find_inventory(file)
    except InventoryError:  # no inventory (or several): export the config as it is
        target = None
    return export_config(_load(file, target), kind)
