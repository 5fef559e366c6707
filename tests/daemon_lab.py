"""The daemon lab: real daemons as processes, real iptables rules, bounded waits, the CLI.

The labs are pytest plugins registered here (``pytest_plugins``), so a test gets their
fixtures (``broker``, ``snmpd``, ``snmpsim_factory``, ``bad_agent``, ``scripted_agent``,
``webhook``, ``mailbox``) by naming them, never by importing them.  Child processes are
started, awaited and stopped with :mod:`monitord.demo.processes`, as the demo does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from monitord.demo import processes

ROOT = Path(__file__).resolve().parent.parent
MONITORD = [sys.executable, "-m", "monitord"]
T = TypeVar("T")


def require_root() -> None:
    """Tests that need raw sockets or iptables fail (not skip) without root."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (raw ICMP sockets, iptables); run the suite as root")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds.

    An exception from the predicate (a server still starting) counts as "not yet".
    """
    try:
        return processes.wait_until(predicate, timeout, what, interval=interval)
    except processes.NotReady as exc:
        raise AssertionError(str(exc)) from None


def wait_value(fetch: Callable[[], T], accept: Callable[[T], bool], timeout: float,
               what: str) -> T:
    """Fetch until ``accept(value)`` holds; return that value (fail after ``timeout``)."""
    box: list[T] = []

    def check() -> bool:
        value = fetch()
        if accept(value):
            box.append(value)
            return True
        return False

    wait_for(check, timeout, what)
    return box[0]


def cli(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``monitord`` command line; output as text."""
    return subprocess.run([*MONITORD, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def db_tickets(db: Path, *extra: str) -> list[dict[str, Any]]:
    """``monitord tickets list --format json`` on ``db`` (``extra``: e.g. ``--all``)."""
    res = cli("tickets", "list", "--db", str(db), "--format", "json", *extra)
    assert res.returncode == 0, res.stderr
    out: list[dict[str, Any]] = json.loads(res.stdout)
    return out


def free_port() -> int:
    return processes.free_port()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """Parsed exposition: look samples up by name and labels, in any label order."""

    def get_sample(self, metric: str, /, **labels: str) -> float | None:
        return super().get((metric, frozenset(labels.items())))

    def __call__(self, metric: str, /, **labels: str) -> float:
        value = self.get_sample(metric, **labels)
        if value is None:
            raise KeyError(f"no sample {metric}{labels}")
        return value

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(lab), v) for (n, lab), v in self.items() if n == name]

    def by_label(self, name: str, label: str) -> dict[str, float]:
        return {lab[label]: v for lab, v in self.samples(name)}


def parse_metrics(text: str) -> Metrics:
    out = Metrics()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable sample line {line!r}"
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class IptablesDrop:
    """ICMP DROP rules on loopback blocks, always removed at the end of the test."""

    def __init__(self, tag: str) -> None:
        self.comment = f"monitord-test-{tag}-{os.getpid()}"
        self.rules: list[list[str]] = []

    def drop(self, cidr: str, probability: float | None = None,
             nth: tuple[int, int] | None = None) -> None:
        """Drop ICMP to ``cidr``: all of it, a random share (``probability``), or packet
        ``nth[1]`` of every ``nth[0]`` that reach this rule (deterministic).  Rules are
        inserted at the top: the last one added sees the packets first."""
        rule = ["INPUT", "-d", cidr, "-p", "icmp"]
        if probability is not None:
            rule += ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
        if nth is not None:
            rule += ["-m", "statistic", "--mode", "nth", "--every", str(nth[0]),
                     "--packet", str(nth[1])]
        rule += ["-m", "comment", "--comment", self.comment, "-j", "DROP"]
        subprocess.run(["iptables", "-w", "5", "-I", *rule], check=True, timeout=30)
        self.rules.append(rule)

    def undrop(self, cidr: str) -> None:
        for rule in [r for r in self.rules if r[2] == cidr]:
            subprocess.run(["iptables", "-w", "5", "-D", *rule], check=False, timeout=30)
            self.rules.remove(rule)

    def clear(self) -> None:
        for rule in self.rules:
            subprocess.run(["iptables", "-w", "5", "-D", *rule], check=False, timeout=30)
        self.rules.clear()


@pytest.fixture
def iptables(request: pytest.FixtureRequest) -> Iterator[IptablesDrop]:
    require_root()
    ipt = IptablesDrop(request.node.name[:20])
    try:
        yield ipt
    finally:
        ipt.clear()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def base_config(devices: list[dict[str, Any]], **defaults: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "interval": "1s", "failure_threshold": 2, "success_threshold": 1,
        "icmp": {"count": 2, "timeout": "300ms", "period": "20ms"},
    }
    d.update(defaults)
    return {
        "office": {"name": "สำนักงานเขตพื้นที่การศึกษาประถมศึกษาทดสอบ เขต 1", "area_code": "6202"},
        "defaults": d,
        "schools": {
            "62020001": {"name": "โรงเรียนบ้านทดสอบ", "district": "คลองขลุง", "isp": "NT"},
            "62020002": {"name": "โรงเรียนวัดทดสอบ", "district": "คลองลาน", "isp": "TRUE"},
        },
        "devices": devices,
    }


class DaemonProcess:
    """A real ``monitord`` process with its HTTP port, log file and database."""

    def __init__(self, args: list[str], port: int, log_path: Path, db: Path) -> None:
        self.port = port
        self.db = db
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = processes.spawn(
            [*MONITORD, *args, "--listen", f"127.0.0.1:{port}", "--db", str(db)],
            output=self._log, cwd=ROOT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            return http_get(self.url + "/healthz")[0] == 200

        wait_for(ready, timeout, "daemon /healthz")

    def metrics(self) -> Metrics:
        status, body = http_get(self.url + "/metrics")
        assert status == 200
        return parse_metrics(body)

    def metrics_text(self) -> str:
        return http_get(self.url + "/metrics")[1]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        processes.stop(self.proc, timeout)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(*args: str, db: Path | None = None) -> DaemonProcess:
        d = DaemonProcess(list(args), free_port(), tmp_path / f"daemon{len(started)}.log",
                          db or tmp_path / "monitord.db")
        started.append(d)
        return d

    try:
        yield start
    finally:
        for d in started:
            with contextlib.suppress(Exception):
                d.stop()
