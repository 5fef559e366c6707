#!/usr/bin/env python3
"""ICMP sweep benchmark: monitord's engine against ``fping -i0`` on the same hosts.

Pings ``--hosts`` loopback addresses, ``--dead`` of which are made dead by one iptables
DROP rule (removed on exit, on exceptions and on SIGINT/SIGTERM), first with monitord's
:class:`monitord.probes.icmp.IcmpEngine`, then with fping using the same packets per host, timeout
and per-host period.  The last line is machine-readable::

    icmp_sweep hosts=10000 dead_expected=500 dead_found=500 wrong=0 wall_s=X \
fping_wall_s=Y ratio=X/Y cpu_s=Z

``cpu_s`` is this process's user+sys CPU time for the monitord sweep only (the kernel's
work of answering loopback pings is charged to the sender, as it is for fping).  ``wrong``
counts live hosts reported dead plus dead hosts reported alive; it must always be 0.
Exit status 1 when ``wrong`` is not 0.  Needs root (raw sockets, iptables).

    .venv/bin/python bench/icmp_sweep.py --hosts 10000 --dead 500 --count 1 --timeout 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitord.probes.icmp import DEFAULT_RATE_PPS, IcmpEngine, IcmpRound

LIVE_NET = ipaddress.ip_network("127.201.0.0/16")
DEAD_NET = ipaddress.ip_network("127.202.0.0/16")
COMMENT = f"monitord-bench-icmp-{os.getpid()}"
RULE = ["INPUT", "-d", str(DEAD_NET), "-p", "icmp", "-m", "comment", "--comment", COMMENT,
        "-j", "DROP"]
FPING_LINE = re.compile(r"^(\S+)\s+: xmt/rcv/%loss = (\d+)/(\d+)/")


@dataclass
class Sweep:
    wall_s: float
    cpu_s: float
    dead: set[str]
    incomplete_hosts: int = 0
    note: str = ""


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--dead", type=int, default=500)
    ap.add_argument("--count", type=int, default=1, help="echo requests per host")
    ap.add_argument("--timeout", type=float, default=0.5, help="seconds per request")
    ap.add_argument("--period", type=float, default=0.2,
                    help="seconds between requests to the same host (count > 1)")
    ap.add_argument("--rate", type=int, default=DEFAULT_RATE_PPS, help="engine rate_pps")
    ap.add_argument("--max-in-flight", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42, help="shuffles live and dead hosts")
    args = ap.parse_args()
    if not 0 <= args.dead <= args.hosts or args.hosts > 60_000:
        ap.error("need 0 <= --dead <= --hosts <= 60000")
    return args


def host_list(hosts: int, dead: int, seed: int) -> tuple[list[str], set[str]]:
    """Live hosts from 127.201/16, dead ones from 127.202/16, shuffled together."""
    live = [str(LIVE_NET.network_address + i) for i in range(1, hosts - dead + 1)]
    gone = [str(DEAD_NET.network_address + i) for i in range(1, dead + 1)]
    both = live + gone
    random.Random(seed).shuffle(both)
    return both, set(gone)


@contextlib.contextmanager
def dead_block() -> Iterator[None]:
    """The DROP rule, guaranteed to go away: finally + SIGINT/SIGTERM → SystemExit."""
    def bail(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, bail) for s in (signal.SIGINT, signal.SIGTERM)}
    subprocess.run(["iptables", "-w", "5", "-I", *RULE], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-w", "5", "-D", *RULE], check=False, timeout=30)
        for s, h in old.items():
            signal.signal(s, h)


def cpu_now() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def monitord_sweep(addrs: list[str], args: argparse.Namespace) -> tuple[Sweep, str]:
    engine = IcmpEngine(mode="auto", rate_pps=args.rate, max_in_flight=args.max_in_flight)
    await engine.start()  # socket set-up is not part of the sweep
    try:
        cpu0, t0 = cpu_now(), time.perf_counter()
        rnd: IcmpRound = await engine.ping(addrs, count=args.count, timeout=args.timeout,
                                           period=args.period)
        wall, cpu = time.perf_counter() - t0, cpu_now() - cpu0
    finally:
        await engine.close()
    dead = {r.address for r in rnd.results if not r.ok and r.complete}
    note = (f"mode={engine.mode} rate_pps={args.rate} max_in_flight={args.max_in_flight} "
            f"socket_drops={rnd.socket_drops} reprobed={rnd.reprobed_hosts} "
            f"incomplete={rnd.incomplete} stats={engine.stats.as_dict()}")
    return Sweep(wall, cpu, dead, sum(not r.complete for r in rnd.results)), note


def fping_sweep(addrs: list[str], args: argparse.Namespace) -> Sweep:
    with tempfile.NamedTemporaryFile("w", prefix="icmp_sweep_", suffix=".txt") as fh:
        fh.write("\n".join(addrs) + "\n")
        fh.flush()
        cmd = ["fping", "-q", "-c", str(args.count), "-i0",
               "-t", str(round(args.timeout * 1000)), "-p", str(round(args.period * 1000)),
               "-f", fh.name]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        wall = time.perf_counter() - t0
    dead, seen = set(), 0
    for line in proc.stderr.splitlines():
        m = FPING_LINE.match(line)
        if m:
            seen += 1
            if int(m.group(3)) == 0:
                dead.add(m.group(1))
    if seen != len(addrs):
        raise RuntimeError(f"fping reported {seen} of {len(addrs)} hosts: {proc.stderr[-500:]}")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Sweep(wall, ru.ru_utime + ru.ru_stime, dead, note=" ".join(cmd))


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("icmp_sweep: needs root (raw ICMP sockets and iptables)", file=sys.stderr)
        return 2
    addrs, expected = host_list(args.hosts, args.dead, args.seed)
    with dead_block():
        ours, note = asyncio.run(monitord_sweep(addrs, args))
        theirs = fping_sweep(addrs, args)
    wrong = len(ours.dead ^ expected)
    fping_wrong = len(theirs.dead ^ expected)
    ratio = ours.wall_s / theirs.wall_s
    print(f"# machine: {os.cpu_count()} cores, {os.uname().release}; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# monitord: {note}")
    print(f"# monitord: wall_s={ours.wall_s:.3f} cpu_s={ours.cpu_s:.3f} "
          f"dead_found={len(ours.dead)} incomplete_hosts={ours.incomplete_hosts}")
    print(f"# fping:    {theirs.note}")
    print(f"# fping:    wall_s={theirs.wall_s:.3f} cpu_s={theirs.cpu_s:.3f} "
          f"dead_found={len(theirs.dead)} wrong={fping_wrong}")
    print(f"# goals:    wrong=0 {'ok' if wrong == 0 else 'FAIL'}; ratio<=1.5 "
          f"{'ok' if ratio <= 1.5 else 'MISSED'}; cpu_s<=0.5 "
          f"{'ok' if ours.cpu_s <= 0.5 else 'MISSED'}")
    print(f"icmp_sweep hosts={args.hosts} dead_expected={len(expected)} "
          f"dead_found={len(ours.dead)} wrong={wrong} wall_s={ours.wall_s:.3f} "
          f"fping_wall_s={theirs.wall_s:.3f} ratio={ratio:.2f} cpu_s={ours.cpu_s:.3f}")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
