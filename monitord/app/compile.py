"""Config → what the running daemon is made of: probe jobs and probers, the state
tracker's device specs, the incident engine's topology and policy, notification channels
and policy, the labels pages and metrics show, and the context frozen into a ticket.

Pure functions of the config (no I/O beyond revealing channel secrets): the daemon calls
them at start and on every reload.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitord.config import Config, Device
from monitord.config.settings import SERVICE_PROBES
from monitord.domain.incidents import Node, Policy, TicketOpen, group_label, root_device
from monitord.domain.links import LinkSigner
from monitord.domain.school import link_devices
from monitord.domain.state import DeviceSpec
from monitord.domain.tickets import Equipment, TicketContext
from monitord.http.metrics import DeviceLabels, SchoolLabels
from monitord.notify import Channel, NotifyPolicy
from monitord.probes import registry as probe_registry
from monitord.probes.base import Prober, Target
from monitord.probes.mqtt import MqttDevice, MqttSettings
from monitord.probes.scheduler import Job
from monitord.storage import default_data_dir
from monitord.values import parse_duration

log = logging.getLogger("monitord")


def resolve_db_path(cfg: Config, override: Path | None) -> Path:
    if override is not None:
        return override
    if cfg.storage.db is not None:
        return cfg.storage.db
    return (cfg.storage.data_dir or default_data_dir()) / "monitord.db"


def make_probers(cfg: Config) -> dict[str, Prober]:
    """Every polled probe of the registry, built from its ``engines.<name>`` settings."""
    out: dict[str, Prober] = {}
    for name in probe_registry.polled():
        engine = getattr(cfg.engines, name, None)
        out[name] = probe_registry.build(name, **(engine.model_dump() if engine else {}))
    return out


def build_jobs(cfg: Config) -> list[Job]:
    jobs: list[Job] = []
    for dev in cfg.devices:
        eff = cfg.effective(dev)
        for probe in dev.probe_names:
            params: dict[str, Any] = {}
            interval = eff.interval
            if probe == "mqtt":
                continue  # pushed by agents, not polled: see mqtt_devices()
            if probe == "snmp" and eff.snmp is not None:
                params = eff.snmp.model_dump()
                interval = eff.snmp_interval or eff.interval
            elif probe in SERVICE_PROBES:
                raw = cfg.probe_settings(dev, probe)  # type: ignore[arg-type]
                every = raw.pop("interval", None)
                interval = parse_duration(every) if every is not None else interval
                params = probe_registry.get(probe).params.model_validate(raw).model_dump()
            elif probe == "pjlink" and eff.pjlink is not None:
                params = eff.pjlink.model_dump()
                interval = eff.pjlink_interval or eff.interval
            elif probe == "icmp":
                params = {
                    "count": eff.icmp.count,
                    "timeout": eff.icmp.timeout,
                    "period": eff.icmp.period,
                }
            jobs.append(Job(Target(dev.id, dev.address, params), probe, interval))
    return jobs


def mqtt_devices(cfg: Config) -> list[MqttDevice]:
    return [MqttDevice(dev.id, dev.school, dev.kind.value, eff.mqtt)
            for dev in cfg.devices if "mqtt" in dev.probe_names
            and (eff := cfg.effective(dev)).mqtt is not None]


def trap_sources(cfg: Config) -> dict[str, list[str]]:
    """Device address → the ids of the devices with that address (the SNMP trap
    receiver's source map; several devices may share an address)."""
    out: dict[str, list[str]] = {}
    for dev in cfg.devices:
        out.setdefault(dev.address, []).append(dev.id)
    return out


def mqtt_settings(cfg: Config) -> MqttSettings:
    return cfg.mqtt if cfg.mqtt is not None else MqttSettings()


def build_specs(cfg: Config) -> list[DeviceSpec]:
    specs = []
    for dev in cfg.devices:
        eff = cfg.effective(dev)
        probes = dev.probe_names
        reach = "icmp" if "icmp" in probes else (probes[0] if probes else "icmp")
        flap = cfg.incidents.flapping
        fail = eff.failure_threshold
        if reach == "mqtt" and not eff.failure_threshold_set:
            # "stale" already means several silent periods and "offline" is the agent's
            # own last will: both are sustained facts, not single lost packets.
            fail = 1
        icmp = eff.icmp if reach == "icmp" else None  # loss and rtt judged on a window
        specs.append(DeviceSpec(dev.id, reach, fail, eff.success_threshold,
                                flap.high_percent, flap.low_percent,
                                icmp.window_rounds if icmp else 1,
                                icmp.loss_degraded if icmp else None,
                                icmp.rtt_degraded if icmp else None))
    return specs


def build_nodes(cfg: Config) -> list[Node]:
    schedules = cfg.schedule_map()
    nodes = []
    for dev in cfg.devices:
        eff = cfg.effective(dev)
        school = cfg.schools.get(dev.school) if dev.school else None
        nodes.append(Node(dev.id, dev.kind.value, dev.school, dev.parent,
                          schedules[eff.schedule], eff.ticket_delay,
                          school.isp if school else "", school.district if school else ""))
    return nodes


def build_policy(cfg: Config) -> Policy:
    corr = cfg.incidents.correlation
    return Policy(
        relapse_window=cfg.tickets.relapse_window,
        group_by="" if corr.group_by == "none" else corr.group_by,
        group_min_schools=corr.min_schools,
        group_min_share=corr.min_share,
        group_window=corr.window,
        auto_close_after=cfg.tickets.auto_close_after,
    )


def build_channels(cfg: Config, extra_urls: Iterable[str]) -> list[Channel]:
    """Channels from the config (secrets revealed here, never logged) plus ``--notify``."""
    out: list[Channel] = []
    for ch in cfg.notify.channels:
        try:
            url = ch.url if isinstance(ch.url, str) else ch.url.reveal()
        except (LookupError, OSError) as exc:
            log.error("notification channel %s disabled: %s", ch.name, exc)
            continue
        out.append(Channel(ch.name, url, frozenset(ch.events), frozenset(ch.schools),
                           frozenset(ch.districts), frozenset(k.value for k in ch.kinds),
                           ch.on_duty.build("on_duty") if ch.on_duty else None,
                           ch.quiet.build("quiet") if ch.quiet else None,
                           ch.max_per_hour, ch.escalation))
    for i, url in enumerate(extra_urls, start=1):
        out.append(Channel(f"cli-{i}", url))
    return out


def build_notify_policy(cfg: Config, links: LinkSigner | None = None) -> NotifyPolicy:
    n = cfg.notify
    return NotifyPolicy(n.group_window, n.max_attempts, n.backoff_initial, n.backoff_max,
                        n.base_url, n.lang, links=links)


def ticket_context(cfg: Config, change: TicketOpen) -> TicketContext:
    """Freeze what the repair report needs from the config at the moment a ticket opens."""
    inc = change.incident
    devices = cfg.device_map()

    def equipment(dev: Device, remark: str = "") -> Equipment:
        return Equipment(dev.id, dev.display_name, dev.hostname, dev.brand_model, dev.serial,
                         remark)

    items: list[Equipment] = []
    if inc.kind == "upstream":
        for dev_id in sorted(inc.affected):
            if (dev := devices.get(dev_id)) is not None:
                school = cfg.schools.get(dev.school or "")
                items.append(equipment(dev, school.name if school else ""))
        served = f"โรงเรียน {len(items)} แห่ง ({group_label(inc.root)})"
        return TicketContext("school", served, None, cfg.office.name, cfg.office.group_name,
                             cfg.tickets.reporter.name, cfg.tickets.reporter.position, items)
    root = devices.get(root_device(inc.root))  # a condition's: the device that has it
    if root is not None:
        items.append(equipment(root, "ตรวจพบปัญหา" if inc.kind == "condition" else "ต้นเหตุ"))
    for dev_id in sorted(inc.affected):
        if (dev := devices.get(dev_id)) is not None:
            items.append(equipment(dev, "ได้รับผลกระทบ"))
    school = cfg.schools.get(root.school or "") if root is not None else None
    if school is not None:
        variant, served = "school", school.name
    else:
        variant, served = "office", (root.unit if root is not None and root.unit
                                     else cfg.office.group_name)
    return TicketContext(variant, served, root.school if root else None, cfg.office.name,
                         cfg.office.group_name, cfg.tickets.reporter.name,
                         cfg.tickets.reporter.position, items)



@dataclass(frozen=True, slots=True)
class Labels:
    """What pages and metrics name devices and schools by (no addresses)."""

    devices: list[DeviceLabels]
    schools: list[SchoolLabels]
    #: device id → its school's SMIS code, or "office"
    school_of: dict[str, str]


def build_labels(cfg: Config) -> Labels:
    gateways = link_devices(cfg.devices)
    return Labels(
        [DeviceLabels(d.id, d.school or "office", d.kind.value) for d in cfg.devices],
        [SchoolLabels(smis, sch.name, sch.district, sch.isp,
                      f"{sch.location.lat}" if sch.location else "",
                      f"{sch.location.lon}" if sch.location else "",
                      tuple(gateways.get(smis, ())))
         for smis, sch in cfg.schools.items()],
        {d.id: d.school or "office" for d in cfg.devices})


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything the daemon derives from a config, built where it does not hold the
    event loop (the reload's thread): at 20,000 devices these take a second or two."""

    labels: Labels
    specs: list[DeviceSpec]
    nodes: list[Node]
    policy: Policy
    jobs: list[Job]
    mqtt_devices: list[MqttDevice]
    trap_sources: dict[str, list[str]]


def prepare(cfg: Config) -> Prepared:
    return Prepared(build_labels(cfg), build_specs(cfg), build_nodes(cfg), build_policy(cfg),
                    build_jobs(cfg), mqtt_devices(cfg), trap_sources(cfg))
