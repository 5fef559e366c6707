"""Metric families as data: what a probe exports, with its name, help, type and labels.

Each probe declares its families once (:class:`MetricSpec`, next to the probe) and its
``metrics()`` hook returns them with current values (:class:`MetricFamily`).  The HTTP
exporter (monitord.http.metrics) renders any family generically, so a probe's metric
names, help texts and values live together and adding a probe adds no exporter code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["counter", "gauge"]
#: label values (in the order of the family's label names) → value
Samples = Mapping[tuple[str, ...], float]
#: a device's identifying labels as exporters pass them to probes: (device, school, kind)
DeviceKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A family's identity.  ``name`` is the exposition name (counters end in ``_total``)."""

    name: str
    help: str
    type: MetricType
    labels: tuple[str, ...] = ()

    def family(self, samples: Samples) -> MetricFamily:
        return MetricFamily(self.name, self.help, self.type, self.labels, samples)


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A family with its samples, as a probe reports it at scrape time."""

    name: str
    help: str
    type: MetricType
    labels: tuple[str, ...] = ()
    samples: Samples = field(default_factory=dict)

    @property
    def spec(self) -> MetricSpec:
        return MetricSpec(self.name, self.help, self.type, self.labels)


def counter(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, help, "counter", labels)


def gauge(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, help, "gauge", labels)
