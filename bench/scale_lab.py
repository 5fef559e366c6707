"""The generated office of bench/daemon_scale.py and its lab subprocesses.

* :func:`build_office` — N devices as N/10 schools of 10 (router, switch, access point,
  3 DLTV receivers, 3 TVs, projector), 2 % dead (half as whole schools, half as single
  non-router devices) and 1 % flapping (single non-router devices), written as a
  monitord config (:func:`write_config`).
* ``python bench/scale_lab.py snmp PLAN READY`` — the simulated SNMP agents
  (:class:`monitord.demo.snmp_agent.SnmpLab`, one UDP socket per live/flapping router and
  switch), community from ``$MONITORD_BENCH_SNMP_COMMUNITY``; writes READY when listening.
* ``python bench/scale_lab.py mqtt PLAN`` — ONE aiomqtt connection publishing a report in
  the monitord schema for every live DLTV receiver and TV every period, each at its own
  random phase; flapping devices stay silent while the flag file named in PLAN exists.

Both run until SIGTERM/SIGINT (or their parent dies: the bench spawns them with
``PR_SET_PDEATHSIG``).  Addresses (chosen not to overlap with the demo's 127.64/16 or a
parallel lab on 127.100–127.107): live devices 127.110.0.0 upwards (250 schools per
/16), dead ones 127.98.0.0/16, flapping ones 127.99.0.0/16.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import os
import random
import resource
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("scale_lab")

AREA = "6202"
LIVE_FIRST_OCTET2 = 110           # 127.110.x.y …
DEAD_NET = "127.98"
FLAP_NET = "127.99"
#: the iptables jump covers both the dead and the flapping block
BENCH_BLOCK = "127.96.0.0/14"
DEAD_BLOCK = f"{DEAD_NET}.0.0/16"
COMMUNITY_ENV = "MONITORD_BENCH_SNMP_COMMUNITY"
DEFAULT_COMMUNITY = "bench-public"
INTERVAL = 60.0
FAILURE_THRESHOLD = 2
TICKET_DELAY = 30.0
MQTT_PERIOD = 60.0
DISTRICTS = ["คลองขลุง", "ขาณุวรลักษบุรี", "คลองลาน", "ปางศิลาทอง", "บึงสามัคคี", "ทรายทองวัฒนา"]
ISPS = ["NT", "TRUE", "AIS Fibre", "3BB"]
# (suffix, kind, brand/model, parent suffix, probes)
SCHOOL_DEVICES: list[tuple[str, str, str, str | None, tuple[str, ...]]] = [
    ("rtr", "router", "Huawei HG8145V5", None, ("icmp", "snmp")),
    ("sw", "switch", "Cisco Catalyst 2960", "rtr", ("icmp", "snmp")),
    ("ap", "access_point", "Ubiquiti UniFi AP AC Lite", "sw", ("icmp",)),
    ("rx1", "dltv_receiver", "PSI S2X", "sw", ("icmp", "mqtt")),
    ("rx2", "dltv_receiver", "PSI S2X", "sw", ("icmp", "mqtt")),
    ("rx3", "dltv_receiver", "PSI S2X", "sw", ("icmp", "mqtt")),
    ("tv1", "tv", "Samsung UA50", "sw", ("icmp", "mqtt")),
    ("tv2", "tv", "Samsung UA50", "sw", ("icmp", "mqtt")),
    ("tv3", "tv", "Samsung UA50", "sw", ("icmp", "mqtt")),
    ("prj", "projector", "Epson EB-X51", "sw", ("icmp",)),
]
SNMP_KINDS = ("router", "switch")
MQTT_KINDS = ("dltv_receiver", "tv")


@dataclass(frozen=True)
class Office:
    config: dict[str, Any]
    #: dead device ids (whole schools and single devices)
    dead: frozenset[str]
    dead_schools: tuple[str, ...]
    #: flapping device id → address
    flapping: dict[str, str]

    @property
    def devices(self) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = self.config["devices"]
        return devices

    def addresses(self) -> list[str]:
        return [str(d["address"]) for d in self.devices]

    def snmp_devices(self) -> list[dict[str, Any]]:
        """Routers and switches that answer SNMP (live and flapping ones)."""
        return [d for d in self.devices if d["kind"] in SNMP_KINDS and d["id"] not in self.dead]

    def mqtt_agents(self) -> list[dict[str, Any]]:
        """Receivers and TVs whose agent publishes (live and flapping ones)."""
        return [{"id": d["id"], "smis": d["school"], "kind": d["kind"],
                 "flapping": d["id"] in self.flapping}
                for d in self.devices if d["kind"] in MQTT_KINDS and d["id"] not in self.dead]


def _block_address(net: str, k: int) -> str:
    return f"{net}.{k // 250}.{k % 250 + 1}"


def build_office(devices: int, mqtt_port: int, snmp_port: int, seed: int = 2026) -> Office:
    """The office of ``devices`` devices (a multiple of 10)."""
    schools = devices // 10
    rng = random.Random(seed + devices)
    n_dead_schools = max(1, round(devices * 0.01 / 10))
    n_dead_single = max(1, round(devices * 0.01))
    n_flapping = max(1, round(devices * 0.01))
    order = list(range(schools))
    rng.shuffle(order)
    dead_schools = set(order[:n_dead_schools])
    # single devices: not routers, each in a school of its own that is not dead — so
    # every one is its own root cause (a flapping TV behind a dead or flapping switch
    # would be UNREACHABLE, without a ticket of its own)
    singles = order[n_dead_schools:n_dead_schools + n_dead_single + n_flapping]
    if len(singles) < n_dead_single + n_flapping:
        raise ValueError(f"{devices} devices: too few schools for the dead and flapping ones")
    picks = [(s, rng.randrange(1, len(SCHOOL_DEVICES))) for s in singles]
    dead_single = set(picks[:n_dead_single])
    flap_single = set(picks[n_dead_single:])
    cfg: dict[str, Any] = {
        "office": {"name": f"สำนักงานทดสอบ {devices} อุปกรณ์", "short_name": "bench",
                   "area_code": AREA},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port,
                 "client_id": f"monitord-bench-{os.getpid()}-{devices}"},
        "defaults": {
            "interval": f"{INTERVAL:g}s",
            "failure_threshold": FAILURE_THRESHOLD,
            "success_threshold": 2,
            "ticket_delay": f"{TICKET_DELAY:g}s",
            "icmp": {"count": 3, "timeout": "1s"},
            "snmp": {"community": {"env": COMMUNITY_ENV}, "port": snmp_port,
                     "interval": "5m", "timeout": 1.0, "retries": 1},
        },
        "kinds": {"router": {"snmp": {"uplink": "wan"}}},
        "schools": {},
        "devices": [],
    }
    dead: set[str] = set()
    flapping: dict[str, str] = {}
    dead_seq = flap_seq = 0
    dead_smis: list[str] = []
    for s in range(schools):
        smis = f"{AREA}{s + 1:04d}"
        cfg["schools"][smis] = {
            "name": f"โรงเรียนทดสอบ {s + 1}",
            "district": DISTRICTS[s % len(DISTRICTS)],
            "isp": ISPS[s % len(ISPS)],
        }
        if s in dead_schools:
            dead_smis.append(smis)
        for d, (suffix, kind, model, parent, probes) in enumerate(SCHOOL_DEVICES):
            dev_id = f"{smis}-{suffix}"
            if s in dead_schools or (s, d) in dead_single:
                address = _block_address(DEAD_NET, dead_seq)
                dead_seq += 1
                dead.add(dev_id)
            elif (s, d) in flap_single:
                address = _block_address(FLAP_NET, flap_seq)
                flap_seq += 1
                flapping[dev_id] = address
            else:
                address = f"127.{LIVE_FIRST_OCTET2 + s // 250}.{s % 250}.{d + 1}"
            entry: dict[str, Any] = {"id": dev_id, "school": smis, "kind": kind,
                                     "address": address, "brand_model": model}
            if parent:
                entry["parent"] = f"{smis}-{parent}"
            entry["probes"] = {p: ({"period": f"{MQTT_PERIOD:g}s"} if p == "mqtt" else None)
                               for p in probes}
            cfg["devices"].append(entry)
    return Office(cfg, frozenset(dead), tuple(dead_smis), flapping)


def write_config(office: Office, path: Path, db: Path) -> None:
    data = {**office.config, "storage": {"db": str(db)}}
    path.write_text("# generated by bench/daemon_scale.py\n"
                    + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


# ---------------------------------------------------------------------------- subprocesses


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_snmp(plan: dict[str, Any], ready: Path) -> None:
    from monitord.demo.snmp_agent import SnmpLab
    from monitord.demo.snmp_devices import agent_for

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = _stop_event()
    lab = SnmpLab([agent_for(d) for d in plan["devices"]],
                  os.environ.get(COMMUNITY_ENV, DEFAULT_COMMUNITY), port=int(plan["port"]))
    await lab.start()
    try:
        ready.write_text(f"{len(plan['devices'])}\n", encoding="utf-8")
        await stop.wait()
    finally:
        lab.close()
        log.info("snmp agents: %d requests, %d answered, %d dropped", lab.requests,
                 lab.answered, lab.dropped)


async def publish_mqtt(plan: dict[str, Any]) -> None:
    import aiomqtt

    from monitord.demo.agents import Agent, report

    stop = _stop_event()
    period = float(plan["period"])
    flag = Path(plan["down_flag"])
    rng = random.Random(7)
    agents = [(Agent(a["id"], a["smis"], a["kind"], "normal"), bool(a["flapping"]))
              for a in plan["agents"]]
    published = skipped = 0
    delay = 0.5
    deadline = time.monotonic() + float(plan.get("max_seconds", 86400))
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            async with aiomqtt.Client("127.0.0.1", int(plan["port"]),
                                      identifier=f"bench-agents-{os.getpid()}") as client:
                delay = 0.5
                for a, _ in agents:
                    await client.publish(a.availability_topic, "online", qos=1, retain=True)
                start = time.monotonic()
                due = [(start + rng.uniform(0, period), i) for i in range(len(agents))]
                heapq.heapify(due)
                flag_at, down = 0.0, False
                while not stop.is_set() and time.monotonic() < deadline:
                    now = time.monotonic()
                    if now - flag_at > 0.5:
                        flag_at, down = now, flag.exists()
                    while due and due[0][0] <= now:
                        at, i = heapq.heappop(due)
                        heapq.heappush(due, (at + period, i))
                        agent, flapping = agents[i]
                        if flapping and down:
                            skipped += 1
                            continue
                        body = report(agent, time.time(), rng)
                        if body is not None:
                            await client.publish(agent.state_topic, json.dumps(body), qos=1)
                            published += 1
                    wait = min(0.5, max(0.0, due[0][0] - time.monotonic())) if due else 0.5
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
        except aiomqtt.MqttError as exc:
            log.warning("mqtt publisher: %s; retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
    log.info("mqtt publisher: %d reports published, %d skipped (flap down)", published,
             skipped)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(argv) >= 3 and argv[0] == "snmp":
        plan = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        asyncio.run(serve_snmp(plan, Path(argv[2])))
        return 0
    if len(argv) >= 2 and argv[0] == "mqtt":
        plan = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        asyncio.run(publish_mqtt(plan))
        return 0
    print("usage: scale_lab.py snmp PLAN READY | mqtt PLAN", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
