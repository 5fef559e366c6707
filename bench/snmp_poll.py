"""SNMP polling benchmark: monitord's engine vs prometheus-snmp-exporter, same agents, same run.

Set-up (root): a network namespace of our own with 24 veth pairs (48 real interfaces +
lo) and one net-snmp snmpd inside it answering on ``--devices`` loopback addresses
(127.0.1.1 …), each standing for one device; snmp_exporter runs in the same namespace
with a hand-written module file.  All traffic stays inside that namespace.

Workloads, each driven through the engine and through snmp_exporter:
  light  GET sysUpTime + ifOperStatus, ifHCInOctets, ifHCOutOctets of ifIndex 1
  full   walk the 14 interface-table columns the router profile reads (49 interfaces)

Usage:  sudo .venv/bin/python bench/snmp_poll.py [--devices 500] [--rounds 4]
Last line:
  snmp_poll devices=N light_per_s=X light_ratio=R full_per_s=Y full_ratio=R errors=E rss_mb=M
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import exporter_client  # noqa: E402  (bench/, the script's own directory)

IF = "1.3.6.1.2.1.2.2.1."
IFX = "1.3.6.1.2.1.31.1.1.1."
FULL_COLUMNS = [IF + c for c in ("2", "5", "7", "8", "10", "13", "14", "16", "19", "20")] + \
    [IFX + c for c in ("1", "6", "10", "15")]
LIGHT_OIDS = ["1.3.6.1.2.1.1.3.0", IF + "8.1", IFX + "6.1", IFX + "10.1"]


def address(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


# ---------------------------------------------------------------------------- outer: netns


def outer(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        sys.exit("snmp_poll: needs root (network namespace, veth pairs)")
    for exe in ("snmpd", "prometheus-snmp-exporter", "ip"):
        if shutil.which(exe) is None:
            sys.exit(f"snmp_poll: {exe} missing: run scripts/setup-snmp.sh")
    ns = f"mdsnmp{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        run = ["ip", "-n", ns]
        subprocess.run([*run, "link", "set", "lo", "up"], check=True, timeout=30)
        for k in range(args.veth):
            subprocess.run([*run, "link", "add", f"p{k}a", "type", "veth", "peer", "name",
                            f"p{k}b"], check=True, timeout=30)
            subprocess.run([*run, "link", "set", f"p{k}a", "up"], check=True, timeout=30)
            subprocess.run([*run, "link", "set", f"p{k}b", "up"], check=True, timeout=30)
        cmd = ["ip", "netns", "exec", ns, sys.executable, __file__, "--inner",
               "--devices", str(args.devices), "--rounds", str(args.rounds),
               "--concurrency", str(args.concurrency)]
        return subprocess.run(cmd, timeout=1800).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=30)


# ---------------------------------------------------------------------------- agents


def start_snmpd(work: Path, devices: int, per_agent: int = 125
                ) -> list[subprocess.Popen[bytes]]:
    """snmpd processes answering on ``devices`` addresses, ``per_agent`` each.

    net-snmp reads config lines into a ~4 KB buffer: a longer agentAddress list is cut
    silently, so the devices are split over several agents (which also spreads load).
    """
    procs = []
    for k, first in enumerate(range(0, devices, per_agent)):
        addrs = ",".join(f"udp:{address(i)}:161"
                         for i in range(first, min(devices, first + per_agent)))
        conf = work / f"snmpd{k}.conf"
        conf.write_text(f"agentAddress {addrs}\nrocommunity public 127.0.0.0/8\n")
        procs.append(subprocess.Popen(
            ["snmpd", "-f", "-Lf", str(work / f"snmpd{k}.log"), "-C", "-c", str(conf),
             "-I", "-smux,mteTrigger,mteTriggerConf", f"--persistentDir={work / 'persist'}",
             "-p", str(work / f"snmpd{k}.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"}))
    for i in (0, devices - 1):
        wait_cmd(["snmpget", "-v2c", "-c", "public", "-t", "0.5", "-r", "0",
                  f"{address(i)}:161", "1.3.6.1.2.1.1.3.0"], "snmpd", procs)
    return procs


def exporter_config() -> str:
    def metric(name: str, oid: str, typ: str, indexed: bool = True) -> str:
        idx = "\n    indexes:\n    - labelname: ifIndex\n      type: gauge" if indexed else ""
        return f"  - name: {name}\n    oid: {oid}\n    type: {typ}{idx}\n"

    names = {"2": ("ifDescr", "DisplayString"), "5": ("ifSpeed", "gauge"),
             "7": ("ifAdminStatus", "gauge"), "8": ("ifOperStatus", "gauge"),
             "10": ("ifInOctets", "counter"), "13": ("ifInDiscards", "counter"),
             "14": ("ifInErrors", "counter"), "16": ("ifOutOctets", "counter"),
             "19": ("ifOutDiscards", "counter"), "20": ("ifOutErrors", "counter")}
    xnames = {"1": ("ifName", "DisplayString"), "6": ("ifHCInOctets", "counter"),
              "10": ("ifHCOutOctets", "counter"), "15": ("ifHighSpeed", "gauge")}
    full = "".join(metric(n, IF + c, t) for c, (n, t) in names.items())
    full += "".join(metric(n, IFX + c, t) for c, (n, t) in xnames.items())
    light = (metric("sysUpTime", "1.3.6.1.2.1.1.3", "gauge", indexed=False)
             + metric("ifOperStatus", IF + "8", "gauge")
             + metric("ifHCInOctets", IFX + "6", "counter")
             + metric("ifHCOutOctets", IFX + "10", "counter"))
    auth = "  version: 2\n  max_repetitions: 25\n  retries: 1\n  timeout: 5s\n" \
           "  auth:\n    community: public\n"
    gets = "".join(f"  - {o}\n" for o in LIGHT_OIDS)
    walks = "".join(f"  - {o}\n" for o in FULL_COLUMNS)
    return (f"light:\n{auth}  get:\n{gets}  metrics:\n{light}"
            f"full:\n{auth}  walk:\n{walks}  metrics:\n{full}")


def start_exporter(work: Path, port: int) -> subprocess.Popen[bytes]:
    (work / "snmp.yml").write_text(exporter_config())
    proc = subprocess.Popen(
        ["prometheus-snmp-exporter", f"--config.file={work / 'snmp.yml'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_cmd(["curl", "-sf", "-o", "/dev/null",
              f"http://127.0.0.1:{port}/snmp?module=light&target={address(0)}"], "exporter",
             [proc])
    return proc


def wait_cmd(cmd: list[str], what: str, procs: list[subprocess.Popen[bytes]],
             timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(cmd, capture_output=True, timeout=10,
                          env={**os.environ, "MIBS": ""}).returncode == 0:
            return
        time.sleep(0.2)
    for proc in procs:
        proc.terminate()
    sys.exit(f"snmp_poll: {what} did not come up")


# ---------------------------------------------------------------------------- drivers


async def engine_run(devices: int, rounds: int, profile: str, concurrency: int
                     ) -> tuple[float, int]:
    from monitord.probes.base import Target
    from monitord.probes.snmp import SnmpProber

    prober = SnmpProber(max_in_flight=concurrency)
    await prober.start()
    params = {"community": "public", "timeout": 5.0, "retries": 1, "profile": profile,
              "max_repetitions": 25}
    if profile == "basic":
        params["uplink"] = 1
    targets = [Target(f"d{i}", address(i), dict(params)) for i in range(devices)]
    errors = 0
    await prober.probe(targets)  # warm-up round: sysName/sysDescr, first counters
    t0 = time.perf_counter()
    for _ in range(rounds):
        obs, _ = await prober.probe(targets)
        errors += sum(1 for o in obs if not o.ok or "snmp_partial" in o.info)
        if profile != "basic":
            errors += sum(1 for o in obs if len(o.tables.get("interface", {})) < 25)
    elapsed = time.perf_counter() - t0
    await prober.close()
    return devices * rounds / elapsed, errors


async def exporter_run(port: int, devices: int, rounds: int, module: str,
                       concurrency: int) -> tuple[float, int]:
    """Scrape /snmp for every device, ``concurrency`` keep-alive connections."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    errors = 0
    expect = b"ifHCInOctets" if module == "light" else b"ifHighSpeed"

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(devices * rounds + 1):
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                status, body = await exporter_client.get(
                    reader, writer, f"/snmp?module={module}&target={address(i)}")
                if b" 200 " not in status or expect not in body:
                    errors += 1
        finally:
            writer.close()

    async def one_round() -> None:
        for i in range(devices):
            queue.put_nowait(i)
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await one_round()  # warm-up, like the engine's
    t0 = time.perf_counter()
    for _ in range(rounds):
        await one_round()
    return devices * rounds / (time.perf_counter() - t0), errors


# ---------------------------------------------------------------------------- inner


def inner(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="snmp_poll."))
    agents = start_snmpd(work, args.devices)
    port = 9116
    try:
        exporter = start_exporter(work, port)
    except SystemExit:
        for proc in agents:
            proc.terminate()
        raise
    try:
        res: dict[str, tuple[float, int]] = {}
        for name, profile, module in (("light", "basic", "light"), ("full", "switch", "full")):
            res[f"{name}_engine"] = asyncio.run(engine_run(args.devices, args.rounds, profile,
                                                           args.concurrency))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            res[f"{name}_exporter"] = asyncio.run(exporter_run(port, args.devices,
                                                               args.rounds, module,
                                                               args.exporter_concurrency))
            e, x = res[f"{name}_engine"], res[f"{name}_exporter"]
            print(f"{name}: engine {e[0]:.0f}/s ({e[1]} errors)  "
                  f"snmp_exporter {x[0]:.0f}/s ({x[1]} errors)  ratio {e[0] / x[0]:.2f}",
                  flush=True)
        le, lx = res["light_engine"], res["light_exporter"]
        fe, fx = res["full_engine"], res["full_exporter"]
        print(f"snmp_poll devices={args.devices} light_per_s={le[0]:.0f} "
              f"light_ratio={le[0] / lx[0]:.2f} full_per_s={fe[0]:.0f} "
              f"full_ratio={fe[0] / fx[0]:.2f} errors={le[1] + fe[1]} rss_mb={rss:.0f}")
        return 0 if le[1] + fe[1] == 0 else 1
    finally:
        for proc in (exporter, *agents):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--veth", type=int, default=24, help="veth pairs (2 interfaces each)")
    ap.add_argument("--concurrency", type=int, default=64, help="engine max in flight")
    ap.add_argument("--exporter-concurrency", type=int, default=64,
                    help="parallel scrapes of snmp_exporter")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    return inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    sys.exit(main())
