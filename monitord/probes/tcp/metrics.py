"""What the ``tcp`` probe exports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge
from monitord.probes.tlsinfo import CERT, cert_samples


@dataclass(slots=True)
class TcpStats:
    checks: int = 0
    errors: Counter[str] = field(default_factory=Counter)


CHECKS = counter("monitord_tcp_checks_total", "TCP checks started.")
ERRORS = counter("monitord_tcp_errors_total", "TCP checks that failed, by reason "
                 "(timeout, connect_failed, tls_error, banner_mismatch …).", "reason")
SPECS: Final[tuple[MetricSpec, ...]] = (CHECKS, ERRORS)

CONNECT = gauge("monitord_tcp_connect_seconds", "Time to connect (TLS handshake included) "
                "in the device's last TCP check.", "device")
UP = gauge("monitord_tcp_up", "1 when the last TCP check passed (connect, banner, reply).",
           "device")


def families(stats: TcpStats) -> list[MetricFamily]:
    return [CHECKS.family({(): float(stats.checks)}),
            ERRORS.family({(r,): float(n) for r, n in stats.errors.items()})]


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    rows = list(latest)
    connect: dict[tuple[str, ...], float] = {
        (dev,): obs.values["connect_seconds"] for (dev, _s, _k), obs in rows
        if obs.complete and "connect_seconds" in obs.values}
    up: dict[tuple[str, ...], float] = {
        (dev,): 1.0 if obs.ok else 0.0 for (dev, _s, _k), obs in rows if obs.complete}
    return [CONNECT.family(connect), UP.family(up), CERT.family(cert_samples(rows, "tcp"))]
