"""Hostile and broken config files: a clear ``FILE:LINE: key.path: message``, exit 2,
bounded time and memory — through ``monitord check`` and through a SIGHUP reload of a
running daemon, which keeps monitoring with the config it has and says the reload failed.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitord.config import ConfigError, parse_config
from tests.daemon_lab import (
    MONITORD,
    ROOT,
    DaemonProcess,
    base_config,
    http_get,
    require_root,
    wait_for,
    write_config,
)

GOOD = base_config([
    {"id": "62020001-rtr", "school": "62020001", "kind": "router", "address": "127.88.0.1"},
    {"id": "office-web", "kind": "server", "address": "127.88.0.2"},
])
GOOD_TEXT = yaml.safe_dump(GOOD, allow_unicode=True, sort_keys=False)
# Line numbers below count from the end of GOOD_TEXT.
BASE_LINES = GOOD_TEXT.count("\n")

# The audit's "billion laughs": under 400 bytes that expand to 10^9 values.
ALIAS_BOMB = "".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'] + [
        f"{c}: &{c} [{','.join([f'*{p}'] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ])


@dataclass(frozen=True)
class Case:
    name: str
    content: bytes
    line: int  # expected line of the (first) problem
    where: str  # expected key path, or "(yaml)" / "(file)"
    says: str  # a fragment of the message


def _appended(extra: str) -> bytes:
    return (GOOD_TEXT + extra).encode()


HOSTILE = [
    # f would be 1.1 million values: refused at its first alias, on line 6.
    Case("alias_bomb", ALIAS_BOMB.encode(), 6, "f[", "alias bomb"),
    Case("nul_character", GOOD_TEXT.replace(
        "name: โรงเรียนบ้านทดสอบ", "name: โรงเรียน\x00บ้านทดสอบ").encode(),
        GOOD_TEXT[:GOOD_TEXT.index("name: โรงเรียนบ้านทดสอบ")].count("\n") + 1,
        "(yaml)", "unacceptable character #x0000"),
    Case("impossible_date", _appended("holidays:\n  - date: 2024-02-30\n"),
         BASE_LINES + 2, "holidays[0].date", "2024-02-30"),
    Case("long_integer", _appended("storage:\n  retention_days: " + "9" * 5000 + "\n"),
         BASE_LINES + 2, "storage.retention_days", "digits"),
    Case("deep_flow_nesting", _appended("schedules: " + "[" * 5000 + "]" * 5000 + "\n"),
         BASE_LINES + 1, "schedules[0][0]", "nested more than 64 levels"),
    Case("deep_block_nesting", _appended("kinds:\n" + "".join(
        " " * i + "-\n" for i in range(1, 200))),
         BASE_LINES + 65, "kinds[0][0]", "nested more than 64 levels"),
    Case("recursive_alias", _appended("schedules: &loop [*loop]\n"),
         BASE_LINES + 1, "schedules[0]", "recursive"),
    Case("not_utf8", GOOD_TEXT.encode().replace("คลองลาน".encode(), b"\xff\xfe"),
         GOOD_TEXT[:GOOD_TEXT.index("คลองลาน")].count("\n") + 1, "(file)", "not UTF-8"),
    Case("too_large", _appended("# " + "x" * (10 * 1024 * 1024) + "\n"),
         1, "(file)", "larger than"),
    Case("nan_duration", GOOD_TEXT.replace("interval: 1s", "interval: .nan").encode(),
         GOOD_TEXT[:GOOD_TEXT.index("interval: 1s")].count("\n") + 1,
         "defaults.interval", "greater than zero"),
    Case("maintenance_devices_not_a_list", _appended(
        "maintenance:\n  - {name: x, start: 2026-01-01T08:00:00, end: 2026-01-01T09:00:00,"
        " devices: 1.5}\n"), BASE_LINES + 2, "maintenance[0].devices", "valid list"),
    Case("maintenance_year_one", _appended(
        "maintenance:\n  - {name: x, start: 0001-01-01T08:00:00, end: 2026-01-01T09:00:00}\n"),
        BASE_LINES + 2, "maintenance[0].start", "outside 2000-01-01..2100-12-31"),
    Case("ip_address_as_device_id", GOOD_TEXT.replace("id: 62020001-rtr", "id: 10.1.2.3")
         .replace("62020001-rtr", "10.1.2.3").encode(),
         GOOD_TEXT[:GOOD_TEXT.index("id: 62020001-rtr")].count("\n") + 1,
         "devices[0].id", "device ids are shown publicly"),
]

LINE_RE = r"^{file}:(\d+): (\S.*?): (.+)$"


@dataclass
class CheckRun:
    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float


# ``monitord check`` measured by a small wrapper process, not by pytest itself: a child
# forked from a process inherits its peak RSS (the kernel keeps the pre-exec high-water
# mark), so wait4 from a pytest grown to 300 MB over the suite would report 300 MB.
_MEASURE = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    # a safety net for the machine running the tests: a bomb fails, it doesn't swap
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_check(path: Path, timeout: float = 60) -> CheckRun:
    """``monitord check`` with its own wall time and peak memory (wait4's rusage)."""
    out, err, rss = (path.with_suffix(s) for s in (".out", ".err", ".rss"))
    with out.open("wb") as fo, err.open("wb") as fe:
        start = time.monotonic()
        proc = subprocess.Popen(
            [*MONITORD[:1], "-c", _MEASURE, str(rss), *MONITORD[1:], "check", "--config",
             str(path)], stdout=fo, stderr=fe, cwd=ROOT, start_new_session=True)
        killer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            code = proc.wait()
        finally:
            killer.cancel()
        seconds = time.monotonic() - start
    return CheckRun(code, out.read_text("utf-8", "replace"),
                    err.read_text("utf-8", "replace"), seconds, int(rss.read_text()) / 1024)


@pytest.mark.parametrize("case", HOSTILE, ids=[c.name for c in HOSTILE])
def test_check_rejects_hostile_yaml(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(case.content)
    res = run_check(path)
    assert "Traceback" not in res.stdout + res.stderr
    assert res.code == 2, res.stdout + res.stderr
    # Python's start-up is most of it (~1 s); the original code needed minutes and GBs.
    assert res.seconds < 10, f"took {res.seconds:.1f}s"
    assert res.max_rss_mb < 200, f"used {res.max_rss_mb:.0f} MB"
    lines = res.stdout.splitlines()
    assert lines, res.stderr
    for line in lines:  # one line per problem, each FILE:LINE: key.path: message
        assert re.match(LINE_RE.format(file=re.escape(str(path))), line), line
        assert len(line) < 500
    first = re.match(LINE_RE.format(file=re.escape(str(path))), lines[0])
    assert first is not None
    assert int(first.group(1)) == case.line, lines[0]
    assert first.group(2).startswith(case.where), lines[0]
    assert case.says in first.group(3), lines[0]


@pytest.mark.parametrize("case", [c for c in HOSTILE if c.name in
                                  ("alias_bomb", "impossible_date", "deep_flow_nesting")],
                         ids=lambda c: c.name)
def test_daemon_start_on_hostile_yaml_exits_2(tmp_path: Path, case: Case) -> None:
    """Exit 2 (which the systemd unit does not restart), not a traceback and exit 1."""
    path = tmp_path / "hostile.yaml"
    path.write_bytes(case.content)
    res = subprocess.run([*MONITORD, "run", "--config", str(path), "--db",
                          str(tmp_path / "m.db"), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"{path}:{case.line}: {case.where}" in res.stderr


@pytest.mark.parametrize("device_id", ["10.1.2.3", "10-1-2-3", "10_1_2_3", "fe80::1",
                                       "2001:db8::7", "rtr-192.168.1.1", "rtr_fe80::1"])
def test_check_rejects_ip_shaped_device_ids(tmp_path: Path, device_id: str) -> None:
    data = copy.deepcopy(GOOD)
    data["devices"][1]["id"] = device_id
    path = write_config(tmp_path / "ids.yaml", data)
    res = run_check(path)
    assert res.code == 2
    assert (f"{path}:{GOOD_TEXT[:GOOD_TEXT.index('id: office-web')].count(chr(10)) + 1}: "
            f"devices[1].id: '{device_id}' looks like an IP address; device ids are shown "
            "publicly, so use a name like school-62020001-router") in res.stdout


@pytest.mark.parametrize("device_id", ["62020001-sw", "office-srv", "rx1.school",
                                       "school-62020001-router", "ap-1-2", "sw-101-2-3",
                                       "ups:main", "62020001-ap-1-2-3"])
def test_named_device_ids_stay_valid(device_id: str) -> None:
    data = copy.deepcopy(GOOD)
    data["devices"][1]["id"] = device_id
    parse_config(yaml.safe_dump(data, allow_unicode=True), "ok.yaml")


def test_shipped_configs_use_no_ip_shaped_ids() -> None:
    from monitord.demo.office import build_lab

    parse_config((ROOT / "config" / "example.yaml").read_text(encoding="utf-8"), "example")
    parse_config(yaml.safe_dump(build_lab(36).config, allow_unicode=True), "demo")


def _mutations(rng: random.Random, text: str, data: dict[str, Any]) -> str:
    """Either a byte-level edit of the text or a value swapped for a hostile one."""
    if rng.random() < 0.5:
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            op = rng.randrange(3)
            if op == 0:
                chars.insert(pos, rng.choice(["\x00", "\x07", "&a ", "*a", "[", "{", ":",
                                              "- ", "\t", "!!python/name:os.system ",
                                              "\ufeff", "? ", "<<: *a\n", "%YAML 1.1\n"]))
            elif op == 1:
                del chars[pos]
            else:
                chars[pos:pos] = chars[pos:pos + rng.randint(1, 40)]
        return "".join(chars)
    values: list[Any] = [None, 0, -1, 10**30, 1.5, float("nan"), float("inf"), True, "", [],
                         {}, [1, "a"], {"a": 1}, {"env": "X"}, "x" * 300, "0001-01-01",
                         "2024-02-29", "99:99-25:00", "mon-xyz", "::1", "-5s", "1e9d"]
    doc = copy.deepcopy(data)
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if path:
            paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = copy.deepcopy(rng.choice(values))
        paths = []
        walk(doc, ())
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def test_fuzzed_configs_raise_only_config_errors() -> None:
    """150 mutations of the example config (fixed seed): a result or a ConfigError with
    one-line problems — no other exception, whatever the file holds."""
    text = (ROOT / "config" / "example.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    rng = random.Random(20260312)
    rejected = 0
    deadline = time.monotonic() + 120
    for n in range(150):
        assert time.monotonic() < deadline, f"too slow: {n} inputs in 120s"
        mutated = _mutations(rng, text, data)
        try:
            parse_config(mutated, "fuzz.yaml")
        except ConfigError as exc:
            rejected += 1
            assert exc.problems
            for problem in exc.problems:
                assert "\n" not in str(problem) and str(problem).startswith("fuzz.yaml:")
    assert rejected > 75  # the mutations mostly break the file


# ----------------------------------------------------------------------------- SIGHUP


def _health(d: DaemonProcess) -> dict[str, Any]:
    status, body = http_get(d.url + "/healthz")
    assert status == 200, body
    report: dict[str, Any] = json.loads(body)
    return report


def test_sighup_reload_of_hostile_yaml_keeps_monitoring(
        tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    require_root()
    config = write_config(tmp_path / "monitord.yaml", GOOD)
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()

    def up() -> dict[str, float]:
        return d.metrics().by_label("monitord_device_up", "device")

    wait_for(lambda: up() == {"62020001-rtr": 1.0, "office-web": 1.0}, 30, "devices up")
    assert d.metrics()("monitord_config_last_reload_success") == 1

    for n, case in enumerate(HOSTILE, start=1):
        config.write_bytes(case.content)
        observed = d.metrics()("monitord_observations_total", probe="icmp", result="ok")
        d.signal(signal.SIGHUP)
        wait_for(lambda n=n: d.metrics()("monitord_config_reloads_total",  # type: ignore[misc]
                                         result="failure") == n, 20, f"{case.name} rejected")
        m = d.metrics()
        assert m("monitord_config_last_reload_success") == 0, case.name
        health = _health(d)
        assert health["status"] == "ok"
        assert health["config"]["last_reload_ok"] is False, case.name
        error = health["config"]["last_reload_error"]
        assert error.startswith(f"{config}:{case.line}: {case.where}"), (case.name, error)
        assert "10.1.2.3" not in error  # /healthz is public: values are elided
        # Still monitoring with the running config.
        wait_for(lambda observed=observed: d.metrics()(  # type: ignore[misc]
            "monitord_observations_total", probe="icmp", result="ok") > observed,
            20, f"probing goes on after {case.name}")
        assert up() == {"62020001-rtr": 1.0, "office-web": 1.0}

    log = d.log()
    assert "Traceback" not in log
    assert log.count("new configuration rejected, keeping the running one") == len(HOSTILE)
    assert f"{config}:" in log and "devices[0].id: '10.1.2.3' looks like an IP address" in log

    # A good file is adopted again and the failure clears.
    fixed = copy.deepcopy(GOOD)
    fixed["devices"].append({"id": "office-sw", "kind": "switch", "address": "127.88.0.3"})
    write_config(config, fixed)
    d.signal(signal.SIGHUP)
    wait_for(lambda: up().get("office-sw") == 1, 30, "new device probed")
    m = d.metrics()
    assert m("monitord_config_last_reload_success") == 1
    assert m("monitord_config_reloads_total", result="success") == 1
    health = _health(d)
    assert health["config"]["last_reload_ok"] is True
    assert "last_reload_error" not in health["config"]
    assert d.stop() == 0
