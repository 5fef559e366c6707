"""What the ``http`` probe exports: engine counters and each target's last check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge
from monitord.probes.tlsinfo import CERT, cert_samples


@dataclass(slots=True)
class HttpStats:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)


REQUESTS = counter("monitord_http_requests_total", "HTTP checks started (redirects "
                   "followed within one check).")
ERRORS = counter("monitord_http_errors_total", "HTTP checks that failed, by reason "
                 "(timeout, connect_failed, tls_error, status_NNN, keyword_missing …).",
                 "reason")
SPECS: Final[tuple[MetricSpec, ...]] = (REQUESTS, ERRORS)

RESPONSE = gauge("monitord_http_response_seconds", "Duration of the device's last HTTP "
                 "check, redirects included.", "device")
STATUS = gauge("monitord_http_status_code", "Status code of the last HTTP response (after "
               "redirects).", "device")
REDIRECTS = gauge("monitord_http_redirects", "Redirects followed in the last HTTP check.",
                  "device")
UP = gauge("monitord_http_up", "1 when the last HTTP check passed (status, body).", "device")


def families(stats: HttpStats) -> list[MetricFamily]:
    return [REQUESTS.family({(): float(stats.requests)}),
            ERRORS.family({(r,): float(n) for r, n in stats.errors.items()})]


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    rows = list(latest)
    resp: dict[tuple[str, ...], float] = {}
    status: dict[tuple[str, ...], float] = {}
    redirects: dict[tuple[str, ...], float] = {}
    up: dict[tuple[str, ...], float] = {}
    for (dev, _school, _kind), obs in rows:
        if not obs.complete:
            continue
        up[(dev,)] = 1.0 if obs.ok else 0.0
        if "response_seconds" in obs.values:
            resp[(dev,)] = obs.values["response_seconds"]
        if "status_code" in obs.values:
            status[(dev,)] = obs.values["status_code"]
        if "redirects" in obs.values:
            redirects[(dev,)] = obs.values["redirects"]
    return [RESPONSE.family(resp), STATUS.family(status), REDIRECTS.family(redirects),
            UP.family(up), CERT.family(cert_samples(rows, "http"))]
