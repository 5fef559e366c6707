#!/usr/bin/env python3
"""What the whole daemon costs at 1k → 5k → 20k devices: the real ``monitord run``.

For each size N (``--devices``, default 1,000, 5,000 and 20,000) the bench generates an
office of N/10 schools (bench/scale_lab.py: router, switch, access point, 3 DLTV
receivers, 3 TVs, projector per school) on loopback and runs ``python -m monitord run``
on it for ``--duration`` seconds (default 600):

* every device pinged (60 s interval, 3 packets, 1 s timeout); routers and switches
  polled over SNMP every 5 min (their profiles' full interface walk) against simulated
  v2c agents (``monitord.demo.snmp_agent``, a subprocess, one UDP socket per address);
  receivers and TVs report over MQTT every 60 s, each at its own phase, through a real
  mosquitto (one publisher connection, a subprocess);
* live devices on 127.110.0.0 upwards; 2 % of the devices dead (half as whole schools,
  half as single non-router devices; addresses in 127.98.0.0/16) and 1 % flapping
  (single non-router devices in 127.99.0.0/16: down 180 s, up 120 s, first down 60 s
  after the daemon's start).  Every single dead or flapping device is in a school of its
  own, so each is its own root cause with its own ticket.  Dead and flapping are iptables
  DROP rules in a chain of this process (``MDBENCH_<pid>``, jumped to from INPUT for
  127.96.0.0/14; removed on exit, stale ones of dead bench processes removed at start);
* a real Prometheus scrapes ``/metrics`` every 15 s — set up as docs/deploy.md says for
  a large office: ``/metrics?part=no_interfaces`` every 15 s and the SNMP interface tables
  (``?part=interfaces``, they change at each 5-min poll) in a second job every 60 s —; the
  bench reads ``/status`` and ``/wall`` every 15 s.

Measured on the daemon process only, over the window from 60 s after its start to the
end: CPU (``/proc/PID/stat`` every 1 s → per-second % of one core → mean and p99), peak
RSS, ``/metrics`` scrape time p50/p99 (Prometheus' own ``scrape_duration_seconds`` of the
15 s job; the interface job's on a ``#`` line),
event-loop lag p99 (the daemon's ``monitord_event_loop_lag_seconds`` histogram, difference
between window start and end), and the time from a flapping device going dead to its
ticket: P = the first poll (every 0.5 s) at which the device's DROP rule has counted a
packet (the first probe that found it dead), T = the first poll of the daemon's SQLite
database (read-only) that shows a new ticket for it; latency = T − P − (failure_threshold
− 1) × interval − ticket_delay.  That includes the ICMP round (~1 s), the scheduler's
jitter (± 2 % of 60 s) and the 0.5 s polling.  Only new tickets count (a device's first
flap): on later flaps the daemon reopens the repaired ticket at once when the device is
DOWN again (relapse, no ticket_delay); those are reported apart as "relapse" latency
(T − P − (failure_threshold − 1) × interval).

Startup and reload (``#`` lines): ``monitord check --config`` wall time; spawn → first
ICMP round (``/healthz`` shows the icmp probe's ``last_round_age_seconds``: the same
moment ``monitord_probe_rounds_total{probe="icmp"}`` becomes 1, polled every 0.2 s); a
SIGHUP in the middle of the window: signal → the log line "configuration reloaded"
(the log file is read every 0.1 s);
``monitord_probe_late_total``/``…_skipped_total`` deltas over the window (0 expected) and
the largest event-loop lag bucket filled around the reload.

Then the reference stack operators use today for the ICMP part of the same office
(lab processes stopped, the dead block still dropped, flapping devices up):
``prometheus-blackbox-exporter`` (module icmp, ip4, timeout 5 s) + a Prometheus scraping
``/probe?module=icmp&target=ADDR`` for all N addresses every 60 s; 60 s warm-up, then both
processes' CPU and RSS for min(duration, 300) s.  blackbox sends one echo request per probe
where monitord sends three.

Output: ``#`` comment lines per size, then one result line per size (ascending), e.g.::

    daemon_scale devices=20000 cpu_pct=… cpu_p99_pct=… rss_mb=… scrape_p99_ms=… \
loop_lag_p99_ms=… ticket_latency_p99_s=… ref_cpu_pct=… cpu_ratio=…

(cpu_ratio = monitord's CPU for everything ÷ the reference stack's CPU for ICMP only) and a
PNG plot (``--plot``, default docs/daemon_scale.png; ``--no-plot``).

    sudo .venv/bin/python bench/daemon_scale.py [--devices N]… [--duration S] [--keep]

The bench itself GETs ``/metrics`` 4 times per size (window start and end, around the
reload) next to Prometheus' scrapes; the per-second CPU series is left in the work dir
(``monitord_cpu.csv``, with ``--keep``).

Caveats: the machine's 2 cores are shared with mosquitto, the SNMP agents, the MQTT
publisher, Prometheus and the bench itself (and whatever else runs): the daemon's CPU is
its own, but it competes for the cores.  Needs root (iptables, raw ICMP sockets).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_lab  # noqa: E402  (bench/, the script's own directory)

from monitord.demo import processes  # noqa: E402
from monitord.demo.broker import DemoBroker  # noqa: E402

WARMUP = 60.0                 # measurement window starts this long after the daemon's spawn
FLAP_FIRST = 60.0
FLAP_DOWN = 180.0
FLAP_UP = 120.0
POLL = 0.5                    # iptables counters + ticket DB
PAGE_EVERY = 15.0
PROM_SCRAPE = 15.0
#: the interface tables' job (/metrics?part=interfaces): they change at each 5-min SNMP poll
IF_SCRAPE = 60.0
REF_WARMUP = 60.0
REF_MAX = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
ACTIVE_TICKET = ("open", "scheduled", "in_repair")


def note(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


# ---------------------------------------------------------------------------- iptables


def _ipt(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                          timeout=30, check=check)


class Firewall:
    """The bench's own chain: DROP for the dead /16, one DROP per flapping address while
    its flap is down; jumped to from INPUT for the bench block.  Removed on exit."""

    PREFIX = "MDBENCH_"

    def __init__(self) -> None:
        self.chain = f"{self.PREFIX}{os.getpid()}"
        self.installed = False

    def _jump(self, chain: str) -> list[str]:
        return ["INPUT", "-d", scale_lab.BENCH_BLOCK, "-j", chain]

    def remove_stale(self) -> None:
        res = _ipt("-S")
        for pid in set(re.findall(rf"^-N {self.PREFIX}(\d+)$", res.stdout, re.M)):
            if Path(f"/proc/{pid}").exists():
                continue
            note(f"removing the stale chain {self.PREFIX}{pid} of a bench that is gone")
            self._drop_chain(f"{self.PREFIX}{pid}")

    def _drop_chain(self, chain: str) -> None:
        for _ in range(20):  # bounded: one jump, inserted once
            if _ipt("-D", *self._jump(chain)).returncode != 0:
                break
        _ipt("-F", chain)
        _ipt("-X", chain)

    def install(self) -> None:
        self.remove_stale()
        _ipt("-N", self.chain, check=True)
        self.installed = True
        _ipt("-A", self.chain, "-d", scale_lab.DEAD_BLOCK, "-j", "DROP", check=True)
        _ipt("-I", *self._jump(self.chain), check=True)

    def _restore(self, lines: list[str]) -> None:
        if not lines:
            return
        text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        subprocess.run(["iptables-restore", "-w", "5", "--noflush"], input=text, text=True,
                       capture_output=True, timeout=60, check=True)

    def flap_down(self, addresses: Sequence[str]) -> None:
        self._restore([f"-I {self.chain} -d {a}/32 -j DROP" for a in addresses])

    def flap_up(self, addresses: Sequence[str]) -> None:
        self._restore([f"-D {self.chain} -d {a}/32 -j DROP" for a in addresses])

    def packets(self) -> dict[str, int]:
        """Packets counted per destination of the chain's rules."""
        res = _ipt("-nvxL", self.chain)
        out: dict[str, int] = {}
        for line in res.stdout.splitlines()[2:]:
            f = line.split()
            if len(f) >= 9 and f[0].isdigit():
                out[f[8].removesuffix("/32")] = int(f[0])
        return out

    def remove(self) -> None:
        if self.installed:
            self._drop_chain(self.chain)
            self.installed = False


# ---------------------------------------------------------------------------- processes


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        processes.stop(self.proc, timeout=timeout, sig=sig)
        self.log.close()


class Lab:
    """Everything started for one size; stopped in reverse order (bounded waits)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.children: list[Child] = []
        self.broker: DemoBroker | None = None

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
              ) -> Child:
        log = (self.work / f"{name}.log").open("wb")
        proc = processes.spawn(argv, output=log, env=env, cwd=ROOT, new_session=True)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, name: str) -> None:
        for child in list(self.children):
            if child.name == name:
                child.stop()
                self.children.remove(child)

    def stop_all(self) -> None:
        while self.children:
            self.children.pop().stop()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
            self.broker = None


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                      if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def http_get(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> Any:
    return processes.wait_until(pred, timeout, what, interval=interval, proc=proc, log=log)


# ---------------------------------------------------------------------------- /proc


def proc_cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class CpuMeter:
    """Per-second CPU % (of one core) and RSS of some processes, sampled every second."""

    pids: dict[str, int]
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (t, %)
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (t, MB)
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)
    next_at: float = 0.0

    def sample(self, now: float) -> None:
        if now < self.next_at:
            return
        self.next_at = now + 1.0
        for name, pid in self.pids.items():
            try:
                c, r = proc_cpu_seconds(pid), proc_rss_mb(pid)
            except (OSError, ValueError, IndexError):
                continue
            if name in self._last:
                t0, c0 = self._last[name]
                if now > t0:
                    self.cpu.setdefault(name, []).append((now, 100 * (c - c0) / (now - t0)))
            self._last[name] = (now, c)
            self.rss.setdefault(name, []).append((now, r))

    def cpu_in(self, name: str, start: float, end: float) -> list[float]:
        return [v for t, v in self.cpu.get(name, []) if start <= t <= end]

    def rss_max(self, name: str, start: float, end: float) -> float:
        return max((v for t, v in self.rss.get(name, []) if start <= t <= end), default=0.0)


# ---------------------------------------------------------------------------- metrics


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)')


def parse_metrics(text: str, names: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    """``name → [(labels text, value)]`` for the families in ``names`` only."""
    out: dict[str, list[tuple[str, float]]] = {n: [] for n in names}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if m and m.group(1) in out:
            out[m.group(1)].append((m.group(2) or "", float(m.group(3))))
    return out


LAG = "monitord_event_loop_lag_seconds_bucket"
WANTED = (LAG, "monitord_probe_late_total", "monitord_probe_skipped_total",
          "monitord_probe_rounds_total", "monitord_device_up", "monitord_snmp_up",
          "monitord_mqtt_messages_received_total", "monitord_snmp_requests_total",
          "monitord_tickets_open", "monitord_snmp_errors_total")


@dataclass
class Snapshot:
    lag: list[tuple[float, float]]          # (le, cumulative count), +Inf last
    late: float
    skipped: float
    icmp_rounds: float
    #: sanity figures: devices up/down, SNMP agents answering, MQTT messages, tickets
    sanity: str = ""

    @classmethod
    def fetch(cls, base: str) -> Snapshot:
        # everything but the interface tables: what the snapshot reads is all there
        m = parse_metrics(http_get(base + "/metrics?part=no_interfaces", timeout=60).decode(),
                          WANTED)
        lag = sorted((float(re.search(r'le="([^"]+)"', lab).group(1)), v)  # type: ignore[union-attr]
                     for lab, v in m[LAG])
        up = [v for _, v in m["monitord_device_up"]]
        sanity = (f"devices_up={sum(up):.0f} devices_down={len(up) - sum(up):.0f} "
                  f"snmp_up={sum(v for _, v in m['monitord_snmp_up']):.0f}"
                  f"/{len(m['monitord_snmp_up'])} "
                  f"snmp_requests={sum(v for _, v in m['monitord_snmp_requests_total']):.0f} "
                  "mqtt_received="
                  f"{sum(v for _, v in m['monitord_mqtt_messages_received_total']):.0f} "
                  f"tickets_open={sum(v for _, v in m['monitord_tickets_open']):.0f} "
                  f"snmp_errors={_by_reason(m['monitord_snmp_errors_total'])}")
        return cls(lag, sum(v for _, v in m["monitord_probe_late_total"]),
                   sum(v for _, v in m["monitord_probe_skipped_total"]),
                   sum(v for lab, v in m["monitord_probe_rounds_total"] if '"icmp"' in lab),
                   sanity)


def _by_reason(samples: list[tuple[str, float]]) -> str:
    out: dict[str, float] = {}
    for labels, v in samples:
        m = re.search(r'reason="([^"]*)"', labels)
        out[m.group(1) if m else "?"] = out.get(m.group(1) if m else "?", 0.0) + v
    return ",".join(f"{k}:{v:.0f}" for k, v in sorted(out.items()) if v) or "0"


def lag_delta(a: Snapshot, b: Snapshot) -> list[tuple[float, float]]:
    before = dict(a.lag)
    return [(le, n - before.get(le, 0.0)) for le, n in b.lag]


def hist_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Like PromQL's histogram_quantile over cumulative (le, count) buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return prev_le


def hist_max_bucket(buckets: list[tuple[float, float]]) -> str:
    """The upper bound of the highest bucket that got a sample ("≤ X s")."""
    prev = 0.0
    top = "0"
    for le, n in buckets:
        if n > prev:
            top = "+Inf" if math.isinf(le) else f"{le:g}"
        prev = n
    return top


# ---------------------------------------------------------------------------- Prometheus


class Prometheus:
    def __init__(self, lab: Lab, name: str, scrape_configs: list[dict[str, Any]]) -> None:
        self.port = processes.free_port()
        work = lab.work / name
        work.mkdir(parents=True, exist_ok=True)
        cfg = {"global": {"scrape_interval": "15s", "scrape_timeout": "10s",
                          "evaluation_interval": "1m"},
               "scrape_configs": scrape_configs}
        path = work / "prometheus.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        self.log_path = lab.work / f"{name}.log"
        self.child = lab.spawn(name, [
            shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={path}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d", "--log.level=warn"])
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: http_get(self.url + "/-/ready", timeout=2), timeout,
                   "prometheus /-/ready", proc=self.child.proc, log=self.log_path)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[float]:
        q = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}",
                                    "end": f"{end:.3f}", "step": f"{step:g}"})
        doc = json.loads(http_get(f"{self.url}/api/v1/query_range?{q}"))
        return [float(v) for series in doc["data"]["result"] for _, v in series["values"]]


# ---------------------------------------------------------------------------- pages


class PageReader(threading.Thread):
    """GETs /status and /wall every PAGE_EVERY seconds until stopped (or its deadline)."""

    def __init__(self, base: str, deadline: float) -> None:
        super().__init__(daemon=True, name="pages")
        self.base = base
        self.deadline = deadline
        self.halt = threading.Event()
        self.times: dict[str, list[tuple[float, float]]] = {"/status": [], "/wall": []}
        self.errors = 0

    def run(self) -> None:
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            for path, out in self.times.items():
                t0 = time.monotonic()
                try:
                    http_get(self.base + path, timeout=30)
                    out.append((t0, (time.monotonic() - t0) * 1000))
                except OSError:
                    self.errors += 1
            self.halt.wait(PAGE_EVERY)


# ---------------------------------------------------------------------------- tickets


@dataclass
class Flap:
    device: str
    address: str
    down_at: float
    baseline: tuple[int, int, str] | None   # (ticket id, relapses, status) at flap start
    p: float | None = None
    t: float | None = None

    @property
    def measurable(self) -> bool:
        return self.baseline is None or self.baseline[2] not in ACTIVE_TICKET

    @property
    def relapse(self) -> bool:
        return self.baseline is not None


class TicketWatch:
    def __init__(self, db: Path, flapping: dict[str, str]) -> None:
        self.db = db
        self.flapping = flapping
        self.flaps: list[Flap] = []
        self.current: list[Flap] = []
        self._conn: sqlite3.Connection | None = None

    def _tickets(self) -> dict[str, tuple[int, int, str]]:
        """Latest ticket per flapping root: (id, relapses, status)."""
        if self._conn is None:
            if not self.db.exists():
                return {}
            self._conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=2)
        roots = list(self.flapping)
        try:
            rows = self._conn.execute(
                f"SELECT root, id, relapses, status FROM ticket WHERE root IN "
                f"({','.join('?' * len(roots))}) ORDER BY id", roots).fetchall()
        except sqlite3.Error:
            return {}
        return {r[0]: (int(r[1]), int(r[2]), str(r[3])) for r in rows}

    def flap_down(self, now: float) -> None:
        known = self._tickets()
        self.current = [Flap(d, a, now, known.get(d)) for d, a in self.flapping.items()]
        self.flaps += self.current

    def flap_up(self) -> None:
        self.current = []

    def poll(self, now: float, packets: Callable[[], dict[str, int]]) -> None:
        open_p = [f for f in self.current if f.p is None]
        if open_p:
            counts = packets()
            for f in open_p:
                if counts.get(f.address, 0) > 0:
                    f.p = now
        waiting = [f for f in self.current if f.p is not None and f.t is None and f.measurable]
        if waiting:
            known = self._tickets()
            for f in waiting:
                row = known.get(f.device)
                if row is None or row[2] not in ACTIVE_TICKET:
                    continue
                if f.baseline is None or row[:2] != f.baseline[:2]:
                    f.t = now

    def latencies(self, relapse: bool) -> list[float]:
        base = (scale_lab.FAILURE_THRESHOLD - 1) * scale_lab.INTERVAL
        if not relapse:
            base += scale_lab.TICKET_DELAY
        return [f.t - f.p - base for f in self.flaps
                if f.t is not None and f.p is not None and f.relapse == relapse]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


# ---------------------------------------------------------------------------- one size


@dataclass
class Result:
    devices: int
    comments: list[str] = field(default_factory=list)
    cpu_pct: float = math.nan
    cpu_p99: float = math.nan
    rss_mb: float = math.nan
    scrape_p50_ms: float = math.nan
    scrape_p99_ms: float = math.nan
    lag_p99_ms: float = math.nan
    ticket_p99_s: float = math.nan
    ref_cpu_pct: float = math.nan
    ref_rss_mb: float = math.nan

    def line(self) -> str:
        ratio = self.cpu_pct / self.ref_cpu_pct if self.ref_cpu_pct > 0 else math.nan
        return (f"daemon_scale devices={self.devices} cpu_pct={self.cpu_pct:.1f} "
                f"cpu_p99_pct={self.cpu_p99:.1f} rss_mb={_int(self.rss_mb)} "
                f"scrape_p99_ms={_int(self.scrape_p99_ms)} "
                f"loop_lag_p99_ms={_int(self.lag_p99_ms)} "
                f"ticket_latency_p99_s={self.ticket_p99_s:.2f} "
                f"ref_cpu_pct={self.ref_cpu_pct:.1f} cpu_ratio={ratio:.2f}")


def _int(x: float) -> str:
    return "nan" if math.isnan(x) else str(round(x))


def flap_is_down(t: float) -> bool:
    if t < FLAP_FIRST:
        return False
    return (t - FLAP_FIRST) % (FLAP_DOWN + FLAP_UP) < FLAP_DOWN


def run_size(n: int, args: argparse.Namespace, fw: Firewall, root: Path) -> Result:
    res = Result(n)
    c = res.comments
    work = root / f"n{n}"
    work.mkdir(parents=True, exist_ok=True)
    lab = Lab(work)
    watch: TicketWatch | None = None
    pages: PageReader | None = None
    office: scale_lab.Office | None = None
    flaps_down = False
    try:
        # --- the lab: broker, SNMP agents, MQTT publisher
        lab.broker = DemoBroker(work / "mosquitto")
        if not lab.broker.start():
            raise RuntimeError(f"mosquitto: {lab.broker.why_not}")
        snmp_port = processes.free_port(kind=socket.SOCK_DGRAM)
        office = scale_lab.build_office(n, lab.broker.port, snmp_port)
        cfg_path, db = work / "monitord.yaml", work / "monitord.db"
        scale_lab.write_config(office, cfg_path, db)
        community = os.environ.get(scale_lab.COMMUNITY_ENV, scale_lab.DEFAULT_COMMUNITY)
        env = child_env(**{scale_lab.COMMUNITY_ENV: community,
                           "MONITORD_DATA_DIR": str(work / "data")})
        snmp_plan, ready = work / "snmp_plan.json", work / "snmp.ready"
        snmp_plan.write_text(json.dumps({"port": snmp_port,
                                         "devices": office.snmp_devices()}), encoding="utf-8")
        agents = lab.spawn("snmp_agents", [sys.executable, str(Path(__file__).parent /
                                                              "scale_lab.py"),
                                           "snmp", str(snmp_plan), str(ready)], env=env)
        down_flag = work / "flaps.down"
        mqtt_plan = work / "mqtt_plan.json"
        mqtt_plan.write_text(json.dumps({
            "port": lab.broker.port, "period": scale_lab.MQTT_PERIOD,
            "down_flag": str(down_flag), "agents": office.mqtt_agents(),
            "max_seconds": args.duration + 600}), encoding="utf-8")
        wait_until(ready.exists, 120, "the SNMP agents", proc=agents.proc,
                   log=work / "snmp_agents.log")
        lab.spawn("mqtt_publisher", [
            sys.executable, str(Path(__file__).parent / "scale_lab.py"), "mqtt",
            str(mqtt_plan)], env=env)
        c.append(f"# devices={n}: {len(office.config['schools'])} schools, "
                 f"{len(office.dead)} dead ({len(office.dead_schools)} whole schools), "
                 f"{len(office.flapping)} flapping, {len(office.snmp_devices())} SNMP agents, "
                 f"{len(office.mqtt_agents())} MQTT agents")

        # --- monitord check
        t0 = time.monotonic()
        chk = subprocess.run([sys.executable, "-m", "monitord", "check", "--config",
                              str(cfg_path)], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=600, check=False)
        check_s = time.monotonic() - t0
        if chk.returncode != 0:
            raise RuntimeError(f"monitord check failed: {chk.stdout}{chk.stderr}")
        c.append(f"# devices={n} check_s={check_s:.2f} (monitord check --config)")

        # --- Prometheus scraping monitord, then the daemon
        port = processes.free_port()
        base = f"http://127.0.0.1:{port}"
        # Two jobs, as docs/deploy.md sets up a large office: everything but the SNMP
        # interface tables every 15 s, the interface tables (which change at each 5-min
        # SNMP poll) every 60 s.
        prom = Prometheus(lab, "prometheus", [{
            "job_name": "monitord", "scrape_interval": f"{PROM_SCRAPE:g}s",
            "scrape_timeout": "10s", "params": {"part": ["no_interfaces"]},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}, {
            "job_name": "monitord_interfaces", "scrape_interval": f"{IF_SCRAPE:g}s",
            "scrape_timeout": "30s", "params": {"part": ["interfaces"]},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}])
        prom.wait_ready()
        spawn_at = time.monotonic()
        daemon = lab.spawn("monitord", [
            sys.executable, "-m", "monitord", "run", "--config", str(cfg_path), "--db",
            str(db), "--listen", f"127.0.0.1:{port}", "--log-level", "info"], env=env)
        pid = daemon.proc.pid
        meter = CpuMeter({"monitord": pid})
        daemon_log = work / "monitord.log"

        def first_round() -> bool:
            # /healthz names the ICMP probe's last round once one has ended (the moment
            # monitord_probe_rounds_total{probe="icmp"} becomes 1), and costs next to
            # nothing: polling /metrics 5 times a second would load a 20k daemon while it
            # starts
            meter.sample(time.monotonic())
            health = json.loads(http_get(base + "/healthz", timeout=5))
            return "last_round_age_seconds" in health.get("probes", {}).get("icmp", {})

        wait_until(first_round, 300, "the daemon's first ICMP round", proc=daemon.proc,
                   log=daemon_log)
        first_s = time.monotonic() - spawn_at
        c.append(f"# devices={n} start_to_first_icmp_round_s={first_s:.2f}")
        note(f"{n}: daemon pid {pid} up, first ICMP round after {first_s:.1f} s")

        watch = TicketWatch(db, office.flapping)
        end = spawn_at + args.duration
        win_start = spawn_at + WARMUP
        reload_at = win_start + (end - win_start) / 2
        pages = PageReader(base, end + 30)
        pages.start()
        snap_start: Snapshot | None = None
        snap_before_reload: Snapshot | None = None
        snap_after_reload: Snapshot | None = None
        after_reload: concurrent.futures.Future[Snapshot] | None = None
        fetcher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        hup_at: float | None = None
        reload_s: float | None = None
        log_seen = 0
        next_poll = next_progress = 0.0
        wall_start = wall_end = 0.0
        while True:   # bounded: ends at `end`
            now = time.monotonic()
            if now >= end:
                break
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"monitord exited with {daemon.proc.returncode} "
                                   f"(see {daemon_log})")
            meter.sample(now)
            t = now - spawn_at
            want_down = flap_is_down(t)
            if want_down != flaps_down:
                if want_down:
                    fw.flap_down(list(office.flapping.values()))
                    down_flag.touch()
                    watch.flap_down(now)
                else:
                    fw.flap_up(list(office.flapping.values()))
                    down_flag.unlink(missing_ok=True)
                    watch.flap_up()
                flaps_down = want_down
                note(f"{n}: t={t:.0f}s flapping devices {'down' if want_down else 'up'}")
            if now >= next_poll:
                next_poll = now + POLL
                if flaps_down:
                    watch.poll(now, fw.packets)
            if snap_start is None and now >= win_start:
                snap_start = Snapshot.fetch(base)
                wall_start = time.time()
            if hup_at is None and now >= reload_at:
                snap_before_reload = Snapshot.fetch(base)
                log_seen = daemon_log.stat().st_size
                hup_at = time.monotonic()
                daemon.proc.send_signal(signal.SIGHUP)
                note(f"{n}: SIGHUP sent")
            if hup_at is not None and reload_s is None:
                with daemon_log.open("rb") as fh:
                    fh.seek(log_seen)
                    if b"configuration reloaded" in fh.read():
                        reload_s = time.monotonic() - hup_at
                        note(f"{n}: reloaded in {reload_s:.2f} s")
            if (reload_s is not None and hup_at is not None and after_reload is None
                    and now >= hup_at + reload_s + 5):
                # in a thread: the daemon is still busy after a reload, and this loop must
                # keep polling the tickets and packet counters meanwhile (a synchronous read
                # here once delayed the tickets' T by tens of seconds)
                after_reload = fetcher.submit(Snapshot.fetch, base)
            if now >= next_progress:
                next_progress = now + 60
                cpu = meter.cpu_in("monitord", now - 60, now)
                note(f"{n}: t={t:.0f}s/{args.duration:.0f}s cpu(last 60 s)="
                     f"{sum(cpu) / max(1, len(cpu)):.1f}% rss={proc_rss_mb(pid):.0f} MB")
            time.sleep(max(0.0, min(0.1, end - time.monotonic())))
        snap_end = Snapshot.fetch(base)
        wall_end = time.time()
        if after_reload is not None:
            snap_after_reload = after_reload.result(timeout=120)
        fetcher.shutdown(wait=False)
        win_end = time.monotonic()
        pages.halt.set()
        meter.sample(time.monotonic())

        # --- the daemon's figures (the per-second series stays in the work dir: --keep)
        with (work / "monitord_cpu.csv").open("w", encoding="utf-8") as csv:
            csv.write("t_s,cpu_pct,rss_mb\n")
            for (t1, v), (_, r) in zip(meter.cpu.get("monitord", []),
                                       meter.rss.get("monitord", [])[1:], strict=False):
                csv.write(f"{t1 - spawn_at:.1f},{v:.1f},{r:.1f}\n")
        cpu = meter.cpu_in("monitord", win_start, win_end)
        res.cpu_pct = sum(cpu) / len(cpu) if cpu else math.nan
        res.cpu_p99 = pct(cpu, 99)
        res.rss_mb = meter.rss_max("monitord", win_start, win_end)
        if snap_start is not None:
            delta = lag_delta(snap_start, snap_end)
            res.lag_p99_ms = hist_quantile(0.99, delta) * 1000
            c.append(f"# devices={n} loop_lag_p50_ms={hist_quantile(0.5, delta) * 1000:.2f} "
                     f"p99_ms={res.lag_p99_ms:.2f} max_bucket_s={hist_max_bucket(delta)} "
                     f"samples={delta[-1][1]:.0f}")
            c.append(f"# devices={n} probe_late_delta={snap_end.late - snap_start.late:.0f} "
                     f"probe_skipped_delta={snap_end.skipped - snap_start.skipped:.0f} "
                     f"icmp_rounds={snap_end.icmp_rounds - snap_start.icmp_rounds:.0f} "
                     "(window)")
            c.append(f"# devices={n} at the end: {snap_end.sanity}")
        if hup_at is None:
            c.append(f"# devices={n} reload: no SIGHUP sent (window too short)")
        else:
            around = (hist_max_bucket(lag_delta(snap_before_reload, snap_after_reload))
                      if snap_before_reload and snap_after_reload else "?")
            c.append(f"# devices={n} reload_s="
                     + (f"{reload_s:.2f}" if reload_s is not None else "none-seen")
                     + f" (SIGHUP → 'configuration reloaded'); loop lag max bucket around "
                     f"the reload ≤ {around} s")
        scrapes = prom.query_range('scrape_duration_seconds{job="monitord"}', wall_start,
                                   wall_end, PROM_SCRAPE)
        samples = prom.query_range('scrape_samples_scraped{job="monitord"}', wall_start,
                                   wall_end, PROM_SCRAPE)
        ups = prom.query_range('up{job="monitord"}', wall_start, wall_end, PROM_SCRAPE)
        res.scrape_p50_ms = pct(scrapes, 50) * 1000
        res.scrape_p99_ms = pct(scrapes, 99) * 1000
        c.append(f"# devices={n} scrape_p50_ms={res.scrape_p50_ms:.0f} "
                 f"scrape_p99_ms={res.scrape_p99_ms:.0f} scrapes={len(scrapes)} "
                 f"failed={sum(v == 0 for v in ups)} "
                 f"scrape_samples_scraped={max(samples, default=0):.0f}")
        if_scrapes = prom.query_range('scrape_duration_seconds{job="monitord_interfaces"}',
                                      wall_start, wall_end, IF_SCRAPE)
        if_samples = prom.query_range('scrape_samples_scraped{job="monitord_interfaces"}',
                                      wall_start, wall_end, IF_SCRAPE)
        if_ups = prom.query_range('up{job="monitord_interfaces"}', wall_start, wall_end,
                                  IF_SCRAPE)
        c.append(f"# devices={n} interfaces_scrape_p50_ms={pct(if_scrapes, 50) * 1000:.0f} "
                 f"p99_ms={pct(if_scrapes, 99) * 1000:.0f} scrapes={len(if_scrapes)} "
                 f"failed={sum(v == 0 for v in if_ups)} "
                 f"scrape_samples_scraped={max(if_samples, default=0):.0f} "
                 f"(/metrics?part=interfaces every {IF_SCRAPE:g} s)")
        for path, times in pages.times.items():
            ms = [v for t0, v in times if win_start <= t0 <= win_end]
            c.append(f"# devices={n} page {path} p50_ms={pct(ms, 50):.0f} "
                     f"p99_ms={pct(ms, 99):.0f} reads={len(ms)} errors={pages.errors}")
        new = watch.latencies(relapse=False)
        rel = watch.latencies(relapse=True)
        firsts = [f for f in watch.flaps if not f.relapse]
        res.ticket_p99_s = pct(new, 99)
        c.append(f"# devices={n} ticket_latency (new tickets) measured={len(new)}"
                 f"/{len(firsts)} first flaps (P seen: {sum(f.p is not None for f in firsts)})"
                 f" p50_s={pct(new, 50):.2f} p99_s={pct(new, 99):.2f} "
                 f"max_s={max(new, default=math.nan):.2f}")
        later = [f for f in watch.flaps if f.relapse]
        c.append(f"# devices={n} relapse_latency (ticket reopened, no ticket_delay) "
                 f"measured={len(rel)}/{len(later)} later flaps "
                 f"(still open at flap start: {sum(not f.measurable for f in later)}) "
                 f"p50_s={pct(rel, 50):.2f} max_s={max(rel, default=math.nan):.2f}")
        c.append(f"# devices={n} monitord cpu_pct={res.cpu_pct:.1f} "
                 f"cpu_p99_pct={res.cpu_p99:.1f} rss_max_mb={res.rss_mb:.0f} "
                 f"window_s={win_end - win_start:.0f}")
        note(f"{n}: monitord phase done: cpu {res.cpu_pct:.1f}% rss {res.rss_mb:.0f} MB")
        watch.close()
        watch = None

        # --- stop the lab (keep the dead rule), then the reference stack
        if pages is not None:
            pages.halt.set()
        for name in ("monitord", "prometheus", "mqtt_publisher", "snmp_agents"):
            lab.stop(name)
        if flaps_down:
            fw.flap_up(list(office.flapping.values()))
            flaps_down = False
        if lab.broker is not None:
            lab.broker.stop()
            lab.broker = None
        reference(n, office, args, lab, res)
    finally:
        if pages is not None:
            pages.halt.set()
        if watch is not None:
            watch.close()
        lab.stop_all()
        if flaps_down and office is not None:
            with contextlib.suppress(Exception):
                fw.flap_up(list(office.flapping.values()))
    return res


BLACKBOX_YML = """\
modules:
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
"""


def reference(n: int, office: scale_lab.Office, args: argparse.Namespace, lab: Lab,
              res: Result) -> None:
    exe = shutil.which("prometheus-blackbox-exporter")
    if exe is None:
        res.comments.append(f"# devices={n} reference: prometheus-blackbox-exporter missing "
                            "(scripts/setup-services.sh)")
        return
    conf = lab.work / "blackbox.yml"
    conf.write_text(BLACKBOX_YML, encoding="utf-8")
    bport = processes.free_port()
    bb = lab.spawn("blackbox", [exe, f"--config.file={conf}",
                                f"--web.listen-address=127.0.0.1:{bport}"])
    processes.wait_port(bport, 30, proc=bb.proc, log=lab.work / "blackbox.log",
                        what="blackbox_exporter")
    prom = Prometheus(lab, "ref_prometheus", [{
        "job_name": "blackbox_icmp", "scrape_interval": f"{scale_lab.INTERVAL:g}s",
        "scrape_timeout": "10s", "metrics_path": "/probe", "params": {"module": ["icmp"]},
        "static_configs": [{"targets": office.addresses()}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": f"127.0.0.1:{bport}"},
        ]}])
    prom.wait_ready()
    meter = CpuMeter({"blackbox": bb.proc.pid, "prometheus": prom.child.proc.pid})
    start = time.monotonic()
    win_start = start + REF_WARMUP
    end = win_start + min(args.duration, REF_MAX)
    note(f"{n}: reference stack up (blackbox + prometheus, {len(office.addresses())} "
         f"targets), measuring until +{end - start:.0f} s")
    while time.monotonic() < end:   # bounded by `end`
        for child in (bb, prom.child):
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}")
        meter.sample(time.monotonic())
        time.sleep(0.1)
    win_end = time.monotonic()
    probes = 0.0
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
        doc = json.loads(http_get(prom.url + "/api/v1/query?query="
                                  + urllib.parse.quote('sum(probe_success{job="blackbox_icmp"})'
                                                       ' or vector(0)')))
        probes = float(doc["data"]["result"][0]["value"][1])
    parts = []
    total_cpu = total_rss = 0.0
    for name in ("blackbox", "prometheus"):
        cpu = meter.cpu_in(name, win_start, win_end)
        avg = sum(cpu) / len(cpu) if cpu else math.nan
        rss = meter.rss_max(name, win_start, win_end)
        total_cpu += avg
        total_rss += rss
        parts.append(f"{name}_cpu_pct={avg:.1f} {name}_cpu_p99_pct={pct(cpu, 99):.1f} "
                     f"{name}_rss_mb={rss:.0f}")
    res.ref_cpu_pct, res.ref_rss_mb = total_cpu, total_rss
    res.comments.append(f"# devices={n} reference (ICMP only, 1 packet per probe) "
                        f"ref_cpu_pct={total_cpu:.1f} ref_rss_mb={total_rss:.0f} "
                        + " ".join(parts) + f" probe_success_now={probes:.0f}/{n} "
                        f"window_s={win_end - win_start:.0f}")
    note(f"{n}: reference done: cpu {total_cpu:.1f}% rss {total_rss:.0f} MB")
    lab.stop("ref_prometheus")
    lab.stop("blackbox")


# ---------------------------------------------------------------------------- plot, main


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r.devices for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    ax.plot(xs, [r.cpu_pct for r in results], "o-", label="monitord (all probes) mean")
    ax.plot(xs, [r.cpu_p99 for r in results], "o--", label="monitord p99 (per second)")
    ax.plot(xs, [r.ref_cpu_pct for r in results], "s-",
            label="blackbox + Prometheus (ICMP only)")
    ax.set_title("CPU (% of one core)")
    ax = axes[1]
    ax.plot(xs, [r.rss_mb for r in results], "o-", label="monitord")
    ax.plot(xs, [r.ref_rss_mb for r in results], "s-", label="blackbox + Prometheus")
    ax.set_title("RSS (MB, max)")
    ax = axes[2]
    ax.plot(xs, [r.scrape_p50_ms for r in results], "o-", label="p50")
    ax.plot(xs, [r.scrape_p99_ms for r in results], "o--", label="p99")
    ax.set_title("/metrics scrape time (ms)")
    for ax in axes:
        ax.set_xlabel("devices")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle("monitord run: cost against office size (bench/daemon_scale.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--devices", type=int, action="append", metavar="N",
                    help="office size (a multiple of 10, ≥ 100); repeatable "
                         "(default: 1000, 5000, 20000)")
    ap.add_argument("--duration", type=float, default=600.0, metavar="SECONDS",
                    help="monitord phase per size (the window starts 60 s in)")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "daemon_scale.png")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--keep", action="store_true", help="leave the temp directory")
    args = ap.parse_args(argv)
    args.devices = sorted(set(args.devices or [1000, 5000, 20000]))
    if any(n < 100 or n % 10 for n in args.devices):
        ap.error("--devices: multiples of 10, at least 100")
    if args.duration < WARMUP + 30:
        ap.error(f"--duration: at least {WARMUP + 30:g} s")
    return args


def _bail(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signals_to_exit() -> Iterator[None]:
    old = {s: signal.signal(s, _bail) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("daemon_scale: needs root (iptables rules, raw ICMP sockets for monitord and "
              "blackbox_exporter)", file=sys.stderr)
        return 2
    for exe in ("iptables", "iptables-restore", "prometheus"):
        if shutil.which(exe) is None:
            print(f"daemon_scale: {exe} missing (scripts/setup.sh --dev)", file=sys.stderr)
            return 2
    root = Path(tempfile.mkdtemp(prefix="daemon_scale_"))
    fw = Firewall()
    results: list[Result] = []
    try:
        with signals_to_exit():
            fw.install()
            note(f"work dir {root}; iptables chain {fw.chain}")
            for n in args.devices:
                note(f"--- {n} devices: monitord phase {args.duration:.0f} s, then the "
                     f"reference stack {REF_WARMUP + min(args.duration, REF_MAX):.0f} s")
                try:
                    res = run_size(n, args, fw, root)
                except (RuntimeError, OSError, ValueError, subprocess.SubprocessError,
                        processes.NotReady) as exc:
                    note(f"{n}: failed: {exc}")
                    res = Result(n, [f"# devices={n} FAILED: {str(exc).splitlines()[0]}"])
                results.append(res)
                for line in res.comments:
                    print(line, flush=True)
    finally:
        fw.remove()
        if args.keep:
            note(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if len(results) >= 2:
        a, b = results[0], results[-1]
        k = (b.devices - a.devices) / 1000
        print(f"# slope {a.devices}→{b.devices}: cpu_pct_per_1k={(b.cpu_pct - a.cpu_pct) / k:.2f}"
              f" rss_mb_per_1k={(b.rss_mb - a.rss_mb) / k:.1f}", flush=True)
    if not args.no_plot and results:
        plot(results, args.plot)
        print(f"# plot: {args.plot}", flush=True)
    for res in results:
        print(res.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
