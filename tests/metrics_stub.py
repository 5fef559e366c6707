"""A read model with nothing in it, for tests of /metrics (monitord.http.metrics.MetricsView):
subclass it and override what the test is about."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from monitord.domain.state import DeviceStatus, State
from monitord.http.metrics import DeviceLabels, RoundInfo, SchoolLabels
from monitord.probes.metrics import MetricFamily


class EmptyView:
    version = "test"
    start_time = 1.0

    def device_labels(self) -> Iterable[DeviceLabels]:
        return []

    def school_labels(self) -> Iterable[SchoolLabels]:
        return []

    def upstream_outages(self) -> Mapping[str, int]:
        return {}

    def device_status(self, device_id: str) -> DeviceStatus | None:
        return None

    def effective_state(self, device_id: str) -> State:
        return State.UNKNOWN

    def ticket_counts(self) -> Mapping[str, int]:
        return {}

    def incidents_open(self) -> int:
        return 0

    def round_info(self) -> Mapping[str, RoundInfo]:
        return {}

    def counters(self) -> Mapping[str, Mapping[tuple[str, ...], float]]:
        return {}

    def gauges(self) -> Mapping[str, Mapping[tuple[str, ...], float]]:
        return {}

    def probe_metrics(self) -> Iterable[MetricFamily]:
        return []

    def loop_lag(self) -> None:
        return None

    def take_changes(self) -> tuple[bool, Collection[str]]:
        return True, set()
