"""The demo lab: a simulated area office on loopback, monitored by the real daemon.

``monitord demo`` writes a config for an office of 36 schools (10 devices each: router,
switch, Wi-Fi access point, DLTV receivers, TVs, a projector) plus the office's own
servers — 368 devices on 127.64.0.0/16.  A known share lives on 127.66.0.0/16, a block
made dead with one iptables rule (as root) that is removed on exit: two whole schools
whose router is down, and three single devices.  Without root (or without iptables) the
demo says so and runs with every device alive.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

LIVE_NET = "127.64"
DEAD_NET = "127.66"
DEAD_BLOCK = f"{DEAD_NET}.0.0/16"
RULE_COMMENT = "monitord-demo"
RULE = ["INPUT", "-d", DEAD_BLOCK, "-p", "icmp", "-m", "comment", "--comment", RULE_COMMENT,
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


@dataclass(frozen=True)
class DemoLab:
    config: dict[str, Any]
    dead_devices: frozenset[str]

    @property
    def root_causes(self) -> list[str]:
        """Dead devices whose parent is alive: one ticket each."""
        parents = {d["id"]: d.get("parent") for d in self.config["devices"]}
        return sorted(d for d in self.dead_devices if parents.get(d) not in self.dead_devices)

    @property
    def device_count(self) -> int:
        return len(self.config["devices"])


def build_lab(schools: int = 36) -> DemoLab:
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
        },
        "tickets": {"relapse_window": "1h", "auto_close_after": "1h"},
        "notify": {"group_window": "10s"},  # `monitord demo --notify URL`: first message <2 min
        "schools": {},
        "devices": [],
    }
    dead: set[str] = set()
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
        cfg["devices"].append(entry)
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
            cfg["devices"].append(entry)
            if is_dead:
                dead.add(dev_id)
    return DemoLab(cfg, frozenset(dead))


def write_config(lab: DemoLab, path: Path, db: Path) -> None:
    data = dict(lab.config)
    data["storage"] = {"db": str(db)}
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# monitord demo lab — generated by `monitord demo`; edit a copy, not this file.\n"
        f"# Devices on {DEAD_BLOCK} are made dead by an iptables rule while the demo runs.\n"
    )
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


class DeadBlock:
    """The iptables rule that makes the demo's dead block stop answering ping."""

    def __init__(self) -> None:
        self.active = False
        self.why_not = ""

    def _iptables(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["iptables", "-w", "5", action, *RULE], capture_output=True, text=True, timeout=30,
            check=False,
        )

    def install(self) -> bool:
        if os.geteuid() != 0:
            self.why_not = "not running as root"
        elif shutil.which("iptables") is None:
            self.why_not = "iptables is not installed"
        if self.why_not:
            return False
        self.remove()  # a rule left by a demo that was killed
        res = self._iptables("-I")
        if res.returncode != 0:
            self.why_not = f"iptables failed: {res.stderr.strip()}"
            return False
        self.active = True
        return True

    def remove(self) -> None:
        for _ in range(20):  # bounded: one rule per earlier run at most
            if self._iptables("-D").returncode != 0:
                break
        self.active = False
