"""Which probes exist: config name → prober, typed parameters and exported metrics.

Modelled on blackbox_exporter's ``prober/`` handler map.  To add a probe: write a
package next to ``icmp/`` with a class implementing :class:`~monitord.probes.base.Prober`
(``metrics()`` included) and a ``metrics.py`` declaring its families, then add one
:class:`ProbeKind` below.  The app builds every polled probe from here
(:func:`build`) and the exporter renders every probe's families from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitord.probes import dns, http, icmp, mqtt, pjlink, snmp, tcp
from monitord.probes.base import Observation, Prober
from monitord.probes.dns import metrics as dns_metrics
from monitord.probes.http import metrics as http_metrics
from monitord.probes.icmp import metrics as icmp_metrics
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec
from monitord.probes.mqtt import metrics as mqtt_metrics
from monitord.probes.pjlink import metrics as pjlink_metrics
from monitord.probes.snmp import metrics as snmp_metrics
from monitord.probes.tcp import metrics as tcp_metrics

ObservationMetrics = Callable[[Iterable[tuple[DeviceKey, Observation]]], list[MetricFamily]]


@dataclass(frozen=True, slots=True)
class ProbeKind:
    """One probe as config, app and exporter see it.

    ``factory``  builds the prober from its engine settings (``engines.<name>`` in
                 config, as keyword arguments); None for a pushed source (MQTT), which
                 the app runs itself.
    ``params``   the typed per-target parameters (``Target.params`` validates into it).
    ``metrics``  the families its ``metrics()`` hook reports, declared up front so the
                 exporter's HELP/TYPE lines never depend on whether it is running.
    ``observation_metrics`` per-device families built from each device's last
                 observation of this probe, at scrape time.
    """

    name: str
    factory: Callable[..., Prober] | None
    params: type[Any]
    metrics: tuple[MetricSpec, ...]
    observation_metrics: ObservationMetrics

    @property
    def polled(self) -> bool:
        return self.factory is not None


PROBES: Final[Mapping[str, ProbeKind]] = {
    "icmp": ProbeKind("icmp", icmp.IcmpProber, icmp.PingParams, icmp_metrics.SPECS,
                      icmp_metrics.observation_families),
    "snmp": ProbeKind("snmp", snmp.SnmpProber, snmp.SnmpParams, snmp_metrics.SPECS,
                      snmp_metrics.observation_families),
    "mqtt": ProbeKind("mqtt", None, mqtt.MqttDeviceParams, mqtt_metrics.SPECS,
                      mqtt_metrics.observation_families),
    "pjlink": ProbeKind("pjlink", pjlink.PjlinkProber, pjlink.PjlinkParams,
                        pjlink_metrics.SPECS, pjlink_metrics.observation_families),
    "http": ProbeKind("http", http.HttpProber, http.HttpParams, http_metrics.SPECS,
                      http_metrics.observation_families),
    "tcp": ProbeKind("tcp", tcp.TcpProber, tcp.TcpParams, tcp_metrics.SPECS,
                     tcp_metrics.observation_families),
    "dns": ProbeKind("dns", dns.DnsProber, dns.DnsParams, dns_metrics.SPECS,
                     dns_metrics.observation_families),
}


def get(name: str) -> ProbeKind:
    """The probe called ``name``; a KeyError naming the known ones otherwise."""
    try:
        return PROBES[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r}; known: {', '.join(PROBES)}") from None


def polled() -> list[str]:
    """Names of the probes the scheduler runs (in registry order)."""
    return [k.name for k in PROBES.values() if k.polled]


def build(name: str, **options: Any) -> Prober:
    """A new prober for ``name`` built from its engine options (not started)."""
    kind = get(name)
    if kind.factory is None:
        raise ValueError(f"probe {name!r} is pushed by agents, not polled: it has no prober")
    return kind.factory(**options)


def metric_specs() -> list[MetricSpec]:
    """Every family any probe's ``metrics()`` may report, in registry order."""
    return [spec for kind in PROBES.values() for spec in kind.metrics]
