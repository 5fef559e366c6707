"""Loading a config file: all-or-nothing, every problem reported in one pass.

``include:`` (a list of file names, or one) names YAML files, relative to the config's
directory, that contribute ``schools:`` and ``devices:`` (the inventory that ``monitord
import`` writes).  They are merged into the config before it is checked, and a problem in
an included file names that file, its line and its own key path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from monitord.config.checks import probe_problems, pydantic_problems, semantic_problems
from monitord.config.model import Config
from monitord.config.problems import MESSAGE_LIMIT, ConfigError, KeyPath, Problem
from monitord.config.reader import MAX_CONFIG_BYTES, Doc, read_yaml
from monitord.values import one_line

log = logging.getLogger("monitord.config")

#: the only top-level keys an included file may hold
INCLUDE_KEYS = ("schools", "devices")


@dataclass
class LoadResult:
    config: Config
    warnings: list[Problem]


def read_text(file: str) -> str:
    """A config (or included) file's text; every failure is a ConfigError naming it."""
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Problem(file, 0, "(file)", exc.strerror or str(exc))]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(file, 1, "(file)", f"larger than {MAX_CONFIG_BYTES} "
                                   "bytes: not a monitord config")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(file, line, "(file)", f"not UTF-8 text: {exc.reason} "
                                   f"(byte {exc.start})")]) from None


def _base_dir(file: str) -> str:
    return os.path.dirname(file) if not file.startswith("<") else ""


def include_names(data: Mapping[str, Any]) -> list[str] | None:
    """The ``include:`` entries of a config's data (None: not a string or a list of
    strings)."""
    value = data.get("include")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def include_paths(file: str, data: Mapping[str, Any]) -> list[str]:
    """The included files of a config, joined to its directory (as problems name them)."""
    names = include_names(data) or []
    return [os.path.join(_base_dir(file), name) for name in names]


def included_files(path: str | os.PathLike[str]) -> list[str]:
    """The files a config includes (empty when it cannot be read): what the daemon
    watches besides the config itself."""
    file = os.fspath(path)
    try:
        doc = read_yaml(read_text(file), file)
    except ConfigError:
        return []
    return include_paths(file, doc.data)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def merge_includes(doc: Doc, overrides: Mapping[str, str] | None = None) -> list[Problem]:
    """Merge the included files' schools and devices into ``doc``; return the problems
    (unreadable or looping includes, other keys, schools or devices defined twice).

    ``overrides`` maps an included file (as :func:`include_paths` names it) to the text
    to use instead of the file's (an import checks the inventory it would write)."""
    data = doc.data
    if "include" not in data:
        return []
    problems: list[Problem] = []
    names = include_names(data)
    paths = include_paths(doc.file, data) if names is not None else []
    del data["include"]
    if names is None:
        return [doc.problem(("include",), "expected a file name or a list of file names")]
    schools = data.setdefault("schools", {})
    devices = data.setdefault("devices", [])
    if not isinstance(schools, dict) or not isinstance(devices, list):
        return []  # a type error the model reports; nothing to merge into
    school_at: dict[str, tuple[str, int]] = {
        smis: (doc.file, doc.line(("schools", smis))) for smis in schools}
    device_at: dict[str, tuple[str, int]] = {}
    for i, dev in enumerate(devices):
        if isinstance(dev, dict) and dev.get("id") is not None:
            device_at.setdefault(str(dev["id"]), (doc.file, doc.line(("devices", i))))
    seen: dict[str, int] = {}
    for i, (name, file) in enumerate(zip(names, paths, strict=True)):
        line = doc.marks.get(("include", i), doc.marks.get(("include",), 1))
        where = f"include[{i}]" if ("include", i) in doc.marks else "include"
        if not name.strip():
            problems.append(Problem(doc.file, line, where, "an empty file name"))
            continue
        if not doc.file.startswith("<") and _same_file(file, doc.file):
            problems.append(Problem(doc.file, line, where,
                                    f"{name!r} is this config itself (an include loop)"))
            continue
        key = os.path.abspath(file)
        if key in seen:
            problems.append(Problem(doc.file, line, where,
                                    f"{name!r} is already included (include[{seen[key]}])"))
            continue
        seen[key] = i
        doc.includes.append(file)
        try:
            text = overrides[file] if overrides and file in overrides else read_text(file)
        except ConfigError as exc:
            problems += [Problem(doc.file, line, where, f"cannot read {name!r}: "
                                 f"{p.message}") if p.line == 0 else p for p in exc.problems]
            continue
        if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#")
                                   for ln in text.splitlines()):
            continue  # an empty inventory: nothing yet
        try:
            inc = read_yaml(text, file)
        except ConfigError as exc:
            problems += exc.problems
            continue
        problems += _merge_one(doc, inc, school_at, device_at)
    return problems


def _merge_one(doc: Doc, inc: Doc, school_at: dict[str, tuple[str, int]],
               device_at: dict[str, tuple[str, int]]) -> list[Problem]:
    problems: list[Problem] = []
    schools, devices = doc.data["schools"], doc.data["devices"]
    # the included file's marks by entry: ("schools", smis) / ("devices", j) → its paths
    entry_marks: dict[tuple[str | int, ...], list[tuple[KeyPath, int]]] = {}
    for path, mark in inc.marks.items():
        if len(path) >= 2 and path[0] in INCLUDE_KEYS:
            entry_marks.setdefault(path[:2], []).append((path, mark))
    for key in inc.data:
        if key not in INCLUDE_KEYS:
            problems.append(inc.problem(
                (key,), "an included file may hold only schools: and devices:"
                + (" (includes do not nest)" if key == "include" else "")))
    inc_schools = inc.data.get("schools")
    if inc_schools is not None and not isinstance(inc_schools, dict):
        problems.append(inc.problem(("schools",), "expected a mapping of SMIS codes to schools"))
    for smis, school in (inc_schools if isinstance(inc_schools, dict) else {}).items():
        line = inc.line(("schools", smis))
        if smis in school_at:
            first_file, first_line = school_at[smis]
            problems.append(Problem(inc.file, line, f"schools.{smis}",
                                    f"school {smis} is defined twice: here and at "
                                    f"{first_file}:{first_line}"))
            continue
        school_at[smis] = (inc.file, line)
        schools[smis] = school
        doc.school_origin[smis] = inc.file
        for path, mark in entry_marks.get(("schools", smis), []):
            doc.marks[path] = mark
    inc_devices = inc.data.get("devices")
    if inc_devices is not None and not isinstance(inc_devices, list):
        problems.append(inc.problem(("devices",), "expected a list of devices"))
    for j, dev in enumerate(inc_devices if isinstance(inc_devices, list) else []):
        line = inc.line(("devices", j))
        dev_id = str(dev.get("id")) if isinstance(dev, dict) and dev.get("id") is not None \
            else None
        if dev_id is not None and dev_id in device_at:
            first_file, first_line = device_at[dev_id]
            problems.append(Problem(inc.file, inc.line(("devices", j, "id")),
                                    f"devices[{j}].id",
                                    f"device {dev_id!r} is defined twice: here and at "
                                    f"{first_file}:{first_line}"))
            continue
        if dev_id is not None:
            device_at[dev_id] = (inc.file, line)
        n = len(devices)
        devices.append(dev)
        doc.device_origin[n] = (inc.file, j)
        for path, mark in entry_marks.get(("devices", j), []):
            doc.marks[("devices", n, *path[2:])] = mark
    return problems


def parse_config(text: str, file: str = "<config>",
                 overrides: Mapping[str, str] | None = None) -> LoadResult:
    doc = read_yaml(text, file)
    problems = merge_includes(doc, overrides)
    problems += [*semantic_problems(doc), *probe_problems(doc)]
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(doc, exc))
    order = {f: i for i, f in enumerate([file, *doc.includes])}
    if cfg is None or any(not p.warning for p in problems):
        unique = dict.fromkeys(sorted(problems, key=lambda p: (
            order.get(p.file, len(order)), p.file, p.line, p.path)))
        raise ConfigError(list(unique))
    return LoadResult(cfg.model_copy(update={"source": file, "includes": tuple(doc.includes)}),
                      problems)


def load_config(path: str | os.PathLike[str],
                overrides: Mapping[str, str] | None = None) -> LoadResult:
    """Read and fully validate a config file (with the files it includes); raise
    ConfigError listing every problem.

    Nothing else escapes: whatever the file holds, the caller gets a ConfigError with
    ``FILE:LINE: key.path: message`` lines (``monitord check`` exits 2, a reload is
    rejected), never a traceback.
    """
    file = os.fspath(path)
    text = read_text(file)
    try:
        return parse_config(text, file, overrides)
    except ConfigError:
        raise
    except Exception as exc:  # a gap in the checks must still read as a rejected file
        log.debug("checking %s failed unexpectedly", file, exc_info=True)
        reason = one_line(f"{type(exc).__name__}: {exc}", MESSAGE_LIMIT)
        raise ConfigError([Problem(file, 1, "(top)", f"cannot be checked: {reason}")]) from None
