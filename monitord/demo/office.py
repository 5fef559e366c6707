"""The demo lab: a simulated area office on loopback, monitored by the real daemon.

``monitord demo`` writes a config for an office of 36 schools (10 devices each: router,
switch, Wi-Fi access point, DLTV receivers, TVs, a projector) plus the office's own
servers and services — 372 devices on 127.64.0.0/16.  A known share lives on
127.66.0.0/16, a block made dead with one iptables rule (as root) that is removed on exit:
two whole schools whose router is down, and three single devices.  Without root (or
without iptables) the demo says so and runs with every device alive.

Besides ping, the lab exercises the other probes with no outside service:

* SNMP — routers, the office switch, access point, servers and UPS are answered by
  simulated v2c agents (:mod:`monitord.demo.snmp_agent`, devices in
  :mod:`monitord.demo.snmp_devices`) running in the daemon's event loop, one socket per
  device address on :data:`~monitord.demo.snmp_agent.SNMP_PORT`; the community is
  passed by reference (``MONITORD_DEMO_SNMP_COMMUNITY``).  The office UPS loses mains
  power for two minutes every five, one school router reboots every ten minutes.
* MQTT — the demo starts its own mosquitto (:mod:`monitord.demo.broker`) on a free
  loopback port and publishes for every DLTV receiver and TV
  (:mod:`monitord.demo.agents`); those devices are watched over MQTT only.  Without
  mosquitto the demo says so and pings them instead.
* PJLink — every live school's projector is answered by the PJLink simulator
  (:mod:`monitord.demo.projectors`) on its own loopback address, port 4352, with the
  password in ``MONITORD_DEMO_PJLINK_PASSWORD``; a few have a lamp or filter error or a
  worn lamp (DEGRADED), some are in standby (UP).  Projectors are watched by icmp + pjlink.
* SNMP traps — the daemon's trap receiver listens on a free high loopback port; two school
  routers send a linkDown (then linkUp) trap for their WAN link from their own address
  (:mod:`monitord.demo.traps`), first 20 s after the start, then every three minutes.
* Office services — the website, e-office and hotspot portal over HTTPS (generated
  certificates, the e-office one expiring in 10 days: a renewal ticket) and DNS by dnsmasq
  (:mod:`monitord.demo.services`), watched as ``kind: service`` devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import yaml

from monitord.demo.agents import DOWN_BEHAVIOURS, Agent, mqtt_params, plan, run_agents
from monitord.demo.broker import DemoBroker
from monitord.demo.processes import free_port
from monitord.demo.projectors import DEFAULT_PASSWORD as DEFAULT_PJLINK_PASSWORD
from monitord.demo.projectors import (
    LAMP_LIFE_HOURS,
    PASSWORD_ENV,
    PJLINK_INTERVAL,
    PJLINK_PORT,
    PjlinkLab,
    SimProjector,
    pjlink_ports,
)
from monitord.demo.projectors import plan as plan_projectors
from monitord.demo.services import (
    EXPIRING_DAYS,
    EXPIRING_SERVICE,
    SERVICE_KIND,
    SERVICES,
    ServicePlan,
    ServicesLab,
)
from monitord.demo.snmp_agent import COMMUNITY_ENV, DEFAULT_COMMUNITY, SNMP_PORT, SnmpLab
from monitord.demo.snmp_devices import SimAgent, agent_for
from monitord.demo.traps import FIRST_AFTER as TRAP_FIRST
from monitord.demo.traps import ROUTERS as TRAP_ROUTERS
from monitord.demo.traps import TrapSender
from monitord.probes.conditions import TLS_CERT_EXPIRING

if TYPE_CHECKING:
    from monitord.app.daemon import Daemon

log = logging.getLogger(__name__)

LIVE_NET = "127.64"
DEAD_NET = "127.66"
DEAD_BLOCK = f"{DEAD_NET}.0.0/16"
RULE_COMMENT = "monitord-demo"  # + "-<pid>": each demo removes only its own rule


def _rule(comment: str) -> list[str]:
    return ["INPUT", "-d", DEAD_BLOCK, "-p", "icmp", "-m", "comment", "--comment", comment,
            "-j", "DROP"]


DISTRICTS = ["คลองขลุง", "ขาณุวรลักษบุรี", "คลองลาน", "ปางศิลาทอง", "บึงสามัคคี", "ทรายทองวัฒนา"]
ISPS = ["NT", "TRUE", "AIS Fibre", "3BB"]
SCHOOL_NAMES = [
    "บ้านหนองปลิง", "บ้านคลองน้ำไหล", "วัดคลองขลุง", "บ้านท่ามะเขือ", "บ้านวังแขม", "บ้านโป่งน้ำร้อน",
    "บ้านหัวถนน", "บ้านวังยาง", "บ้านสักงาม", "บ้านคลองแขยง", "บ้านบึงลาด", "บ้านระหาน",
    "อนุบาลคลองลาน", "บ้านหนองแม่แตง", "บ้านเกาะตาล", "บ้านไร่ดง", "บ้านบ่อถ้ำ", "บ้านวังชะโอน",
    "บ้านแสนตอ", "บ้านหนองไม้กอง", "วัดหนองเสือ", "บ้านโค้งไผ่", "บ้านทุ่งพล", "บ้านปางมะค่า",
    "บ้านคลองสมุย", "บ้านคลองเตย", "บ้านหนองหิน", "บ้านหนองตะเภา", "บ้านลานดอกไม้", "บ้านใหม่ชัยมงคล",
    "บ้านนาบ่อคำ", "บ้านเทพนิมิต", "บ้านคลองใหญ่", "บ้านวังหามแห", "บ้านเพชรนิมิต", "บ้านหนองปรือ",
]
# (suffix, kind, Thai name, brand/model, parent suffix)
SCHOOL_DEVICES: list[tuple[str, str, str, str, str | None]] = [
    ("rtr", "router", "เราเตอร์อินเทอร์เน็ต", "Huawei HG8145V5", None),
    ("sw", "switch", "สวิตช์", "TP-Link TL-SG1016D", "rtr"),
    ("ap", "access_point", "จุดกระจายสัญญาณไร้สาย", "Ubiquiti UniFi AP AC Lite", "sw"),
    ("rx1", "dltv_receiver", "เครื่องรับสัญญาณดาวเทียม ป.1", "PSI S2X", "sw"),
    ("rx2", "dltv_receiver", "เครื่องรับสัญญาณดาวเทียม ป.2", "PSI S2X", "sw"),
    ("rx3", "dltv_receiver", "เครื่องรับสัญญาณดาวเทียม ป.3", "PSI S2X", "sw"),
    ("tv1", "tv", "โทรทัศน์ ป.1", "Samsung UA50", "sw"),
    ("tv2", "tv", "โทรทัศน์ ป.2", "Samsung UA50", "sw"),
    ("tv3", "tv", "โทรทัศน์ ป.3", "Samsung UA50", "sw"),
    ("prj", "projector", "เครื่องฉายโปรเจกเตอร์", "Epson EB-X51", "sw"),
]
DEAD_SCHOOLS = (5, 17)  # whole school unreachable: its router is down
DEAD_DEVICES = ((9, "tv2"), (22, "prj"), (30, "ap"))

#: kinds answered by simulated SNMP agents (school switches are unmanaged TP-Links)
SNMP_OFFICE = ("office-rtr", "office-web", "office-eoffice", "office-hotspot", "office-ups",
               "office-ap", "office-sw")
SNMP_INTERVAL = "30s"
#: the school router that reboots every REBOOT_EVERY seconds (sysUpTime restarts)
REBOOTING_ROUTER = 3
REBOOT_EVERY = 600.0
#: the office UPS: on battery for UPS_ON_BATTERY seconds at the end of every UPS_CYCLE,
#: the first time UPS_FIRST_OUTAGE seconds after the start
UPS_CYCLE = 300.0
UPS_ON_BATTERY = 120.0
UPS_FIRST_OUTAGE = 30.0
MQTT_PERIOD = 10.0
#: databases of earlier runs kept next to the fresh one (demo-<timestamp>.db)
KEEP_OLD_DBS = 3


@dataclass(frozen=True)
class DemoLab:
    config: dict[str, Any]
    dead_devices: frozenset[str]
    #: devices polled over SNMP (the dead ones among them do not answer)
    snmp_devices: frozenset[str] = frozenset()
    #: MQTT agents of the DLTV receivers and TVs (empty: they are pinged instead)
    agents: tuple[Agent, ...] = field(default=())
    #: the simulated PJLink projectors (the live schools' projectors)
    projectors: tuple[SimProjector, ...] = field(default=())
    #: the trap receiver's UDP port on 127.0.0.1 (None: traps off)
    trap_port: int | None = None
    #: the office's services (HTTPS, DNS) and their ports (None: no service devices)
    services: ServicePlan | None = None

    @property
    def condition_tickets(self) -> list[str]:
        """Roots (``device#condition``) of the tickets for standing problems of working
        devices: the service whose certificate expires inside the warning window."""
        if self.services is None or EXPIRING_SERVICE not in self.services.ports:
            return []
        return [f"{EXPIRING_SERVICE}#{TLS_CERT_EXPIRING}"]

    @property
    def server_addresses(self) -> dict[str, str]:
        """Office device id → address (the services run on these)."""
        return {d["id"]: d["address"] for d in self.config["devices"] if not d.get("school")}

    @property
    def degraded_projectors(self) -> frozenset[str]:
        """Projectors with a lamp or filter error or a worn lamp: DEGRADED, no ticket."""
        return frozenset(p.device_id for p in self.projectors if p.degraded)

    @property
    def trap_routers(self) -> list[tuple[str, str]]:
        """``(device, address)`` of the school routers that send link traps."""
        if self.trap_port is None:
            return []
        return [(d["id"], d["address"]) for d in self.config["devices"]
                if d["kind"] == "router" and d.get("school")
                and d["id"] not in self.dead_devices][:TRAP_ROUTERS]

    @property
    def faulty_devices(self) -> frozenset[str]:
        """Alive devices whose MQTT agent reports a fault: DOWN, each a root cause."""
        return frozenset(a.device_id for a in self.agents if a.behaviour in DOWN_BEHAVIOURS
                         and a.device_id not in self.dead_devices)

    @property
    def degraded_devices(self) -> frozenset[str]:
        """Devices whose agent reports weak signal: DEGRADED (still up)."""
        return frozenset(a.device_id for a in self.agents if a.behaviour == "weak")

    @property
    def down_devices(self) -> frozenset[str]:
        """Every device that ends up DOWN or UNREACHABLE."""
        return self.dead_devices | self.faulty_devices

    @property
    def root_causes(self) -> list[str]:
        """Down devices whose parent is up: one ticket each."""
        parents = {d["id"]: d.get("parent") for d in self.config["devices"]}
        down = self.down_devices
        return sorted(d for d in down if parents.get(d) not in down)

    @property
    def device_count(self) -> int:
        return len(self.config["devices"])

    def snmp_agents(self) -> list[SimAgent]:
        """Simulated agents for the SNMP devices that are alive."""
        out = []
        for d in self.config["devices"]:
            if d["id"] not in self.snmp_devices or d["id"] in self.dead_devices:
                continue
            kw: dict[str, float] = {}
            if d["id"] == f"{self.config['office']['area_code']}{REBOOTING_ROUTER:04d}-rtr":
                kw["reboot_every"] = REBOOT_EVERY
            if d["kind"] == "ups":
                kw.update(battery_cycle=UPS_CYCLE, battery_seconds=UPS_ON_BATTERY,
                          battery_offset=UPS_CYCLE - UPS_ON_BATTERY - UPS_FIRST_OUTAGE)
            out.append(agent_for(d, **kw))
        return out


def build_lab(schools: int = 36, mqtt_port: int | None = None, trap_port: int | None = None,
              pjlink_port_map: dict[str, int] | None = None,
              services: ServicePlan | None = None) -> DemoLab:
    """The lab's config.  With ``mqtt_port`` (the demo's broker), DLTV receivers and TVs
    are watched over MQTT; without, they are pinged like everything else.  With
    ``trap_port`` the trap receiver listens on 127.0.0.1 at that UDP port.  Projectors are
    polled over PJLink on port 4352, or the port ``pjlink_port_map`` gives their address.
    ``services``: the office's service devices (kind ``service``) on those ports."""
    area = "6202"
    cfg: dict[str, Any] = {
        "office": {
            "name": "สำนักงานเขตพื้นที่การศึกษาประถมศึกษากำแพงเพชร เขต 2",
            "short_name": "สพป.กำแพงเพชร เขต 2",
            "area_code": area,
        },
        "defaults": {
            "interval": "10s",
            "failure_threshold": 2,
            "success_threshold": 2,
            "ticket_delay": "30s",  # short, so a newcomer sees tickets within two minutes
            "icmp": {"count": 3, "timeout": "1s", "period": "100ms"},
            "snmp": {"community": {"env": COMMUNITY_ENV}, "port": SNMP_PORT,
                     "interval": SNMP_INTERVAL, "timeout": 1.0, "retries": 1},
        },
        "kinds": {
            "router": {"snmp": {"uplink": "wan"}},
            "projector": {"pjlink": {"password": {"env": PASSWORD_ENV}, "port": PJLINK_PORT,
                                     "lamp_life_hours": LAMP_LIFE_HOURS,
                                     "interval": PJLINK_INTERVAL}},
        },
        "tickets": {"relapse_window": "1h", "auto_close_after": "1h"},
        "notify": {"group_window": "10s"},  # `monitord demo --notify URL`: first message <2 min
        "schools": {},
        "devices": [],
    }
    dead: set[str] = set()
    snmp: set[str] = set()
    office_devices = [
        ("office-rtr", "router", "เราเตอร์หลักสำนักงาน", "Cisco ISR 4331", None, "กลุ่ม DLICT"),
        ("office-web", "server", "เครื่องแม่ข่ายเว็บไซต์", "Dell PowerEdge R450", "office-rtr",
         "กลุ่มอำนวยการ"),
        ("office-eoffice", "server", "เครื่องแม่ข่าย e-office", "HPE ProLiant DL380",
         "office-rtr", "กลุ่มอำนวยการ"),
        ("office-hotspot", "server", "เครื่องแม่ข่าย Hotspot Login", "Mikrotik CCR2004",
         "office-rtr", "กลุ่ม DLICT"),
        ("office-vdo", "other", "ชุดประชุมทางไกล VDO Conference", "Polycom RealPresence",
         "office-rtr", "กลุ่ม DLICT"),
        ("office-ups", "ups", "เครื่องสำรองไฟห้องแม่ข่าย", "APC Smart-UPS 3000", None,
         "กลุ่ม DLICT"),
        ("office-ap", "access_point", "จุดกระจายสัญญาณไร้สายสำนักงาน", "Ubiquiti UniFi U6 Pro",
         "office-rtr", "กลุ่ม DLICT"),
        ("office-sw", "switch", "สวิตช์หลักสำนักงาน", "Cisco Catalyst 2960", "office-rtr",
         "กลุ่ม DLICT"),
    ]
    for n, (dev_id, kind, name, model, parent, unit) in enumerate(office_devices, start=1):
        entry: dict[str, Any] = {
            "id": dev_id, "name": name, "kind": kind, "unit": unit,
            "address": f"{LIVE_NET}.0.{n}", "brand_model": model,
            "hostname": f"{dev_id}.demo.invalid", "serial": f"OF{n:05d}",
        }
        if parent:
            entry["parent"] = parent
        if dev_id in SNMP_OFFICE:
            # ICMP decides reachability, SNMP adds interfaces, load, the UPS's battery
            entry["probes"] = {"icmp": None, "snmp": None}
            if dev_id == "office-rtr":
                entry["probes"]["snmp"] = {"uplink": "Gi0/0/0"}
            snmp.add(dev_id)
        cfg["devices"].append(entry)
    addresses = {d["id"]: d["address"] for d in cfg["devices"]}
    if services is not None:
        cfg["kinds"]["service"] = dict(SERVICE_KIND)
    for svc in SERVICES:
        if services is None or (port := services.ports.get(svc.device_id)) is None:
            continue
        cfg["devices"].append({
            "id": svc.device_id, "name": svc.name, "kind": "service",
            "address": addresses[svc.server], "parent": svc.server,
            "unit": "กลุ่ม DLICT", "probes": {svc.probe: {**svc.params, "port": port}}})
    for s in range(1, schools + 1):
        smis = f"{area}{s:04d}"
        cfg["schools"][smis] = {
            "name": "โรงเรียน" + SCHOOL_NAMES[(s - 1) % len(SCHOOL_NAMES)],
            "district": DISTRICTS[(s - 1) % len(DISTRICTS)],
            "isp": ISPS[(s - 1) % len(ISPS)],
            "location": {"lat": round(16.05 + 0.011 * s, 4), "lon": round(99.30 + 0.017 * s, 4)},
        }
        for d, (suffix, kind, name, model, parent) in enumerate(SCHOOL_DEVICES, start=1):
            dev_id = f"{smis}-{suffix}"
            is_dead = s in DEAD_SCHOOLS or (s, suffix) in DEAD_DEVICES
            net = DEAD_NET if is_dead else LIVE_NET
            entry = {
                "id": dev_id, "school": smis, "name": name, "kind": kind,
                "address": f"{net}.{s}.{d}", "brand_model": model,
                "hostname": f"{suffix}.{smis}.demo.invalid", "serial": f"SN{s:03d}{d:03d}",
            }
            if parent:
                entry["parent"] = f"{smis}-{parent}"
            if kind == "router":
                entry["probes"] = {"icmp": None, "snmp": None}
                snmp.add(dev_id)
            elif kind == "projector":
                entry["probes"] = {"icmp": None, "pjlink": None}
                if (port := (pjlink_port_map or {}).get(entry["address"])) is not None:
                    entry["probes"]["pjlink"] = {"port": port}
            elif kind in ("dltv_receiver", "tv") and mqtt_port is not None:
                # no ping: the agent's reports (or their absence) decide reachability
                entry["probes"] = {"mqtt": mqtt_params(MQTT_PERIOD)}
            cfg["devices"].append(entry)
            if is_dead:
                dead.add(dev_id)
    agents: tuple[Agent, ...] = ()
    top: dict[str, Any] = {}   # top-level blocks, next to each other before `defaults`
    if trap_port is not None:
        top["snmp_traps"] = {"enabled": True, "listen": [f"127.0.0.1:{trap_port}"],
                             "communities": [{"env": COMMUNITY_ENV}],
                             "repoll_min_interval": "10s"}
    if mqtt_port is not None:
        top["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port, "client_id": "monitord-demo"}
        agents = tuple(plan(cfg["devices"], dead=dead))
    if top:
        cfg = {**{k: v for k, v in cfg.items() if k != "defaults"}, **top,
               "defaults": cfg["defaults"]}
    projectors = tuple(plan_projectors(cfg["devices"], dead, pjlink_port_map))
    return DemoLab(cfg, frozenset(dead), frozenset(snmp), agents, projectors, trap_port,
                   services)


def lab_of_config(cfg: dict[str, Any]) -> DemoLab:
    """The lab a written demo config describes (the demo's own choices read back: MQTT,
    the trap port, moved PJLink ports, the services and their ports)."""
    traps = cfg.get("snmp_traps", {}).get("listen", [])
    moved = {d["address"]: d["probes"]["pjlink"]["port"] for d in cfg["devices"]
             if d["kind"] == "projector" and (d["probes"].get("pjlink") or {}).get("port")}
    return build_lab(len(cfg["schools"]), cfg["mqtt"]["port"] if "mqtt" in cfg else None,
                     int(traps[0].rsplit(":", 1)[1]) if traps else None, moved or None,
                     ServicePlan.from_devices(cfg["devices"]))


def write_config(lab: DemoLab, path: Path, db: Path) -> None:
    data = dict(lab.config)
    data["storage"] = {"db": str(db)}
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# monitord demo lab — generated by `monitord demo`; edit a copy, not this file.\n"
        f"# Devices on {DEAD_BLOCK} are made dead by an iptables rule while the demo runs.\n"
        f"# SNMP agents are simulated on udp port {SNMP_PORT} (community in ${COMMUNITY_ENV});\n"
        "# the MQTT broker and the agents publishing to it exist only while the demo runs.\n"
        f"# Projectors answer PJLink on tcp port {PJLINK_PORT} (password in ${PASSWORD_ENV});\n"
        "# school routers send link traps to the snmp_traps receiver while the demo runs.\n"
    )
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


class DeadBlock:
    """The iptables rule that makes the demo's dead block stop answering ping.

    The rule's comment carries this process's id, so two demos on one machine never
    remove each other's rule; rules left by demos that were killed are cleaned up.
    """

    def __init__(self) -> None:
        self.active = False
        self.why_not = ""
        self.comment = f"{RULE_COMMENT}-{os.getpid()}"

    @staticmethod
    def _iptables(action: str, comment: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["iptables", "-w", "5", action, *_rule(comment)], capture_output=True, text=True,
            timeout=30, check=False,
        )

    def install(self) -> bool:
        if os.geteuid() != 0:
            self.why_not = "not running as root"
        elif shutil.which("iptables") is None:
            self.why_not = "iptables is not installed"
        if self.why_not:
            return False
        self._remove_stale()
        res = self._iptables("-I", self.comment)
        if res.returncode != 0:
            self.why_not = f"iptables failed: {res.stderr.strip()}"
            return False
        self.active = True
        return True

    def remove(self) -> None:
        for _ in range(20):  # bounded: our own rule, inserted once
            if self._iptables("-D", self.comment).returncode != 0:
                break
        self.active = False

    def _remove_stale(self) -> None:
        """Rules of demos that are gone (killed with -9): their process no longer exists."""
        res = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True,
                             text=True, timeout=30, check=False)
        stale = set(re.findall(rf"--comment \"?({re.escape(RULE_COMMENT)}(?:-(\d+))?)\"?",
                               res.stdout))
        for comment, pid in stale:
            if pid and Path(f"/proc/{pid}").exists():
                continue  # another demo that is running
            for _ in range(20):
                if self._iptables("-D", comment).returncode != 0:
                    break


# ---------------------------------------------------------------------------- running it


async def serve_lab(lab: DemoLab, mqtt_port: int | None, stop: asyncio.Event) -> None:
    """Run the lab's simulated SNMP agents and MQTT publishers until ``stop``.

    Meant as a task next to the daemon in the same event loop; a failure here (port in
    use …) is logged and leaves those devices "SNMP failing" / stale, never the daemon.
    """
    community = os.environ.get(COMMUNITY_ENV, DEFAULT_COMMUNITY)
    snmp = SnmpLab(lab.snmp_agents(), community)
    try:
        await snmp.start()
    except OSError as exc:
        log.warning("demo: simulated SNMP agents cannot listen on udp port %d: %s",
                    SNMP_PORT, exc)
    projectors = PjlinkLab(lab.projectors,
                           os.environ.get(PASSWORD_ENV, DEFAULT_PJLINK_PASSWORD))
    await projectors.start()
    tasks: list[asyncio.Task[None]] = []
    if lab.trap_port is not None:
        sender = TrapSender(lab.trap_routers, community, lab.trap_port)
        tasks.append(asyncio.create_task(sender.run(stop), name="demo-traps"))
    try:
        if mqtt_port is not None and lab.agents:
            await run_agents(list(lab.agents), "127.0.0.1", mqtt_port, stop, MQTT_PERIOD)
        else:
            await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await projectors.stop()
        snmp.close()


async def _run_daemon(daemon: Daemon, lab: DemoLab, mqtt_port: int | None) -> int:
    stop = asyncio.Event()
    lab_task = asyncio.create_task(serve_lab(lab, mqtt_port, stop), name="demo-lab")
    try:
        return int(await daemon.run())
    finally:
        stop.set()
        try:
            await asyncio.wait_for(lab_task, 10)
        except TimeoutError:
            log.warning("demo: the simulated agents did not stop within 10 s")
        except Exception as exc:
            log.warning("demo: simulated agents failed: %r", exc)


def demo_database(data_dir: Path, db: Path | None) -> tuple[Path, str]:
    """The database this demo run uses, and one line that says which and why.

    Without ``--db`` every run starts fresh: the previous run's ``demo.db`` (and its WAL
    files) is moved aside to ``demo-<timestamp>.db`` — otherwise its tickets would still
    be open and a ``--notify`` receiver would hear nothing new.  Only the newest
    :data:`KEEP_OLD_DBS` of those are kept.  A database given with ``--db`` is resumed.
    """
    if db is not None:
        if db.exists():
            return db, (f"demo: resuming the database {db} (--db): what it holds stays, "
                        "tickets already open send no new notification")
        return db, f"demo: new database {db} (--db)"
    db = data_dir / "demo.db"
    if not db.exists():
        return db, f"demo: new database {db}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    old = data_dir / f"demo-{stamp}.db"
    for n in range(1, 100):  # two runs within one second
        if not old.exists():
            break
        old = data_dir / f"demo-{stamp}-{n}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        src = db.with_name(db.name + suffix)
        if src.exists():
            src.rename(old.with_name(old.name + suffix))
    for stale in sorted(data_dir.glob("demo-*.db"), key=lambda p: p.stat().st_mtime,
                        reverse=True)[KEEP_OLD_DBS:]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            stale.with_name(stale.name + suffix).unlink(missing_ok=True)
    return db, (f"demo: fresh database {db}; the previous run's was moved to {old} "
                f"(resume it with --db {old})")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_demo(data_dir: Path, *, db: Path | None = None, listen: str | None = None,
             schools: int = 36, notify: Sequence[str] = (),
             self_command: str = "monitord") -> int:
    """``monitord demo``: set the lab up, run the daemon on it, tear everything down.

    Each run starts on a fresh database unless ``db`` is given (:func:`demo_database`).
    The broker, the iptables rule, the simulated SNMP agents and MQTT publishers are
    removed on every way out: a normal stop (SIGTERM/SIGINT), an exception, or SIGTERM
    while still starting.  Returns the daemon's exit code.
    """
    from monitord.app.daemon import Daemon, DaemonOptions

    os.environ.setdefault(COMMUNITY_ENV, DEFAULT_COMMUNITY)
    os.environ.setdefault(PASSWORD_ENV, DEFAULT_PJLINK_PASSWORD)
    db, db_note = demo_database(data_dir, db)
    print(db_note, flush=True)
    config_path = data_dir / "demo.yaml"
    # until the daemon installs its own handlers: SIGTERM unwinds through the finally
    previous = signal.signal(signal.SIGTERM, _terminate)
    broker = DemoBroker(data_dir)
    block = DeadBlock()
    services: ServicesLab | None = None
    try:
        mqtt_port = broker.port if broker.start() else None
        trap_port = free_port(kind=socket.SOCK_DGRAM)
        lab = build_lab(schools, mqtt_port, trap_port)
        if moved := pjlink_ports(p.address for p in lab.projectors):
            log.info("demo: tcp port %d is taken on %d projector addresses; they listen on "
                     "free ports named in the config", PJLINK_PORT, len(moved))
        plan = ServicePlan.choose(lab.server_addresses)
        lab = build_lab(schools, mqtt_port, trap_port, moved or None, plan)
        services = ServicesLab(plan, lab.server_addresses, data_dir / "services")
        services.start()
        if not plan.dns:
            log.warning("demo: dnsmasq is not installed (scripts/setup-services.sh) — the "
                        "office has no DNS service in this run")
        write_config(lab, config_path, db)
        if mqtt_port is None:
            log.warning("demo: %s — DLTV receivers and TVs are pinged instead of watched "
                        "over MQTT", broker.why_not)
        else:
            log.info("demo: MQTT broker (mosquitto) on 127.0.0.1:%d, %d agents publishing "
                     "(%d of them faulty)", mqtt_port, len(lab.agents),
                     len(lab.faulty_devices) + len(lab.degraded_devices))
        if block.install():
            log.info("demo: %d of %d devices are dead (iptables DROP on %s, removed on exit)",
                     len(lab.dead_devices), lab.device_count, DEAD_BLOCK)
        else:
            log.warning("demo: %s — cannot make devices dead, so all %d devices will be "
                        "alive", block.why_not, lab.device_count)
        from monitord.demo.users import ensure_demo_users

        first_school = next(iter(lab.config["schools"]))
        users_line = asyncio.run(ensure_demo_users(db, first_school))
        banner = [
            f"demo: config {config_path} ({len(lab.config['schools'])} schools, "
            f"{lab.device_count} devices); reload it with kill -HUP",
            "demo: open {base}/status for the schools' status page (Thai), {base}/wall for "
            "the NOC wall screen, {base}/metrics for the metrics, {base}/healthz for health",
            f"demo: device states: {self_command} status --db {db}",
            users_line,
            f"demo: SNMP polled on {len(lab.snmp_devices)} devices, answered by simulated "
            f"agents on udp port {SNMP_PORT} (community: ${COMMUNITY_ENV}); the office UPS "
            f"goes on battery {UPS_FIRST_OUTAGE:g} s after the start, then every "
            f"{UPS_CYCLE / 60:g} min",
            f"demo: {len(lab.projectors)} projectors answer PJLink on tcp port {PJLINK_PORT} "
            f"(password: ${PASSWORD_ENV}), {len(lab.degraded_projectors)} of them with a "
            f"lamp or filter fault (DEGRADED); school routers "
            f"{', '.join(d for d, _ in lab.trap_routers)} send linkDown/linkUp traps to "
            f"udp 127.0.0.1:{trap_port}, the first {TRAP_FIRST:g} s after the start",
            "demo: office services over HTTPS: "
            + ", ".join(f"{d} {lab.server_addresses[s.server]}:{plan.ports[d]}"
                        for s in SERVICES if (d := s.device_id) in plan.ports
                        and s.probe == "http")
            + f" (the certificate of {EXPIRING_SERVICE} expires in {EXPIRING_DAYS} days: a "
            "renewal ticket)"
            + (f"; DNS (dnsmasq) {lab.server_addresses['office-rtr']}:"
               f"{plan.ports['office-dns']}" if plan.dns else "; no DNS (dnsmasq missing)"),
        ]
        daemon = Daemon(DaemonOptions(config_path, db, listen, banner, list(notify)))
        return asyncio.run(_run_daemon(daemon, lab, mqtt_port))
    finally:
        with contextlib.suppress(Exception):
            broker.stop()
        if services is not None:
            services.stop()
        if block.active:
            block.remove()
            log.info("demo: iptables rule removed")
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monitord.demo``: the demo with the options of ``monitord demo``
    (any number of schools, for quick looks and tests)."""
    import argparse
    import sys

    from monitord.storage import default_data_dir

    p = argparse.ArgumentParser(prog="python -m monitord.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", metavar="HOST:PORT")
    p.add_argument("--db", type=Path, metavar="PATH")
    p.add_argument("--data-dir", type=Path, metavar="DIR")
    p.add_argument("--schools", type=int, default=36, choices=range(1, 300), metavar="N")
    p.add_argument("--notify", action="append", default=[], metavar="URL")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    data_dir: Path = args.data_dir or default_data_dir() / "demo"
    return run_demo(data_dir, db=args.db, listen=args.listen, schools=args.schools,
                    notify=args.notify, self_command="python -m monitord.demo")


if __name__ == "__main__":
    raise SystemExit(main())
