"""The probe registry and the metrics() hook: every probe's families are declared next to
it, reported by its prober and rendered generically by the exporter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from monitord.http.metrics import build_registry, render
from monitord.probes import registry
from monitord.probes.base import Prober
from monitord.probes.dns import DnsProber
from monitord.probes.http import HttpProber
from monitord.probes.icmp import IcmpProber
from monitord.probes.metrics import MetricFamily
from monitord.probes.mqtt import MqttSettings, MqttSource
from monitord.probes.pjlink import PjlinkProber
from monitord.probes.snmp import SnmpProber
from monitord.probes.tcp import TcpProber
from tests.metrics_stub import EmptyView


def test_registry_maps_config_names_to_probers() -> None:
    assert list(registry.PROBES)[:3] == ["icmp", "snmp", "mqtt"]
    assert {"http", "tcp", "dns"} <= set(registry.PROBES)
    assert "pjlink" in registry.PROBES
    assert registry.polled()[:2] == ["icmp", "snmp"] and "mqtt" not in registry.polled()
    icmp = registry.build("icmp", mode="dgram", rate_pps=1000, max_in_flight=100)
    assert isinstance(icmp, IcmpProber) and isinstance(icmp, Prober)
    assert icmp.engine.requested_mode == "dgram" and icmp.engine.rate_pps == 1000
    snmp = registry.build("snmp", max_in_flight=8, rcvbuf=1 << 20)
    assert isinstance(snmp, SnmpProber) and snmp.max_in_flight == 8
    with pytest.raises(ValueError, match="pushed"):
        registry.build("mqtt")
    pjlink = registry.build("pjlink", concurrency=4, timeout=2.0)
    assert isinstance(pjlink, PjlinkProber) and isinstance(pjlink, Prober)
    assert pjlink.concurrency == 4 and pjlink.timeout == 2.0
    http = registry.build("http", max_concurrency=5)
    assert isinstance(http, HttpProber) and isinstance(http, Prober)
    with pytest.raises(KeyError, match="known: icmp, snmp, mqtt"):
        registry.get("no-such-probe")


async def test_every_prober_reports_only_declared_families() -> None:
    declared = {s.name: s for s in registry.metric_specs()}
    assert len(declared) == len(registry.metric_specs())  # no name declared twice
    sources: list[Any] = [IcmpProber(), SnmpProber(), MqttSource(MqttSettings(), lambda b: None),
                          PjlinkProber(), HttpProber(), TcpProber(), DnsProber()]
    for src in sources:
        fams = src.metrics()
        assert fams
        for fam in fams:
            assert fam.spec == declared[fam.name], fam.name
            assert all(len(key) == len(fam.labels) for key in fam.samples)


class _View(EmptyView):
    def __init__(self, probe_families: list[MetricFamily]) -> None:
        self._fams = probe_families

    def probe_metrics(self) -> Iterable[MetricFamily]:
        return self._fams


def test_exporter_renders_probe_families_generically() -> None:
    icmp = IcmpProber()
    icmp.engine.stats.packets_sent = 7
    icmp.engine.stats.late_replies = 2
    text = render(build_registry(_View(icmp.metrics()))).decode()
    assert "# HELP monitord_icmp_packets_sent_total ICMP echo requests sent.\n" in text
    assert "# TYPE monitord_icmp_packets_sent_total counter\n" in text
    assert "monitord_icmp_packets_sent_total 7.0\n" in text
    assert 'monitord_icmp_replies_ignored_total{reason="late"} 2.0\n' in text
    # probes not running still get their HELP/TYPE lines (no samples)
    assert "# TYPE monitord_snmp_polls_total counter\n" in text
    assert "# HELP monitord_mqtt_broker_up 1 while connected to the MQTT broker (alert on 0).\n" \
        in text
    assert "\nmonitord_mqtt_broker_up " not in text
