"""What the ``dns`` probe exports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, MetricFamily, MetricSpec, counter, gauge


@dataclass(slots=True)
class DnsStats:
    queries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


QUERIES = counter("monitord_dns_queries_total", "DNS checks started.")
ERRORS = counter("monitord_dns_errors_total", "DNS checks that failed, by reason (timeout, "
                 "malformed, rcode_nxdomain, no_answer, answer_missing …).", "reason")
DROPPED = counter("monitord_dns_replies_dropped_total", "DNS replies dropped (wrong id: "
                  "late or spoofed).", "reason")
SPECS: Final[tuple[MetricSpec, ...]] = (QUERIES, ERRORS, DROPPED)

LOOKUP = gauge("monitord_dns_lookup_seconds", "Duration of the device's last DNS lookup.",
               "device")
ANSWERS = gauge("monitord_dns_answers", "Answer records in the last DNS reply.", "device")
UP = gauge("monitord_dns_up", "1 when the last DNS check passed (rcode, answers).", "device")


def families(stats: DnsStats) -> list[MetricFamily]:
    return [QUERIES.family({(): float(stats.queries)}),
            ERRORS.family({(r,): float(n) for r, n in stats.errors.items()}),
            DROPPED.family({(r,): float(n) for r, n in stats.dropped.items()})]


def observation_families(latest: Iterable[tuple[DeviceKey, Observation]]
                         ) -> list[MetricFamily]:
    rows = [((dev,), obs) for (dev, _s, _k), obs in latest if obs.complete]
    return [LOOKUP.family({k: o.values["lookup_seconds"] for k, o in rows
                           if "lookup_seconds" in o.values}),
            ANSWERS.family({k: o.values["answers"] for k, o in rows if "answers" in o.values}),
            UP.family({k: 1.0 if o.ok else 0.0 for k, o in rows})]
