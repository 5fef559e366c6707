"""/metrics at scale: the per-device rows are re-rendered only for devices that changed,
and what a scrape returns is exactly what rendering everything afresh returns; families
are written as prometheus_client writes them (names, _total, escaping, number format)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitord.domain.state import DeviceStatus, State
from monitord.http.metrics import DeviceLabels, DeviceSection, family_bytes
from monitord.probes.base import Observation
from monitord.probes.metrics import MetricFamily
from tests.metrics_stub import EmptyView


class _View(EmptyView):
    def __init__(self, n: int) -> None:
        self.labels = [DeviceLabels(f"d{i}", f"s{i // 10}", "router" if i % 10 == 0 else "tv")
                       for i in range(n)]
        self.status = {lab.device: DeviceStatus(lab.device, State.UP, since=100.0)
                       for lab in self.labels}
        self.states: dict[str, State] = {}
        self.changed: set[str] = set()
        self.everything = True

    def observe(self, dev: str, ts: float, ok: bool = True) -> None:
        st = self.status[dev]
        st.version += 1
        st.latest["icmp"] = Observation(dev, "icmp", ok=ok, ts=ts, values={
            "rtt_min_seconds": 0.001, "rtt_avg_seconds": 0.002, "rtt_max_seconds": 0.003,
            "sent": 3, "received": 3 if ok else 0})
        self.changed.add(dev)

    def take_changes(self) -> tuple[bool, Collection[str]]:
        out = (self.everything, self.changed)
        self.everything, self.changed = False, set()
        return out

    def device_labels(self) -> Iterable[DeviceLabels]:
        return self.labels

    def device_status(self, device_id: str) -> DeviceStatus | None:
        return self.status.get(device_id)

    def effective_state(self, device_id: str) -> State:
        return self.states.get(device_id, self.status[device_id].state)


def _text(section: DeviceSection) -> bytes:
    out: list[bytes] = []
    for step in section.render():
        if step is not None:
            out = step
    return b"".join(out)


def _fresh(view: _View) -> bytes:
    view.everything = True
    return _text(DeviceSection(view))


def test_a_scrape_renders_only_what_changed_and_matches_a_fresh_render() -> None:
    view = _View(2500)  # more than one slice
    for lab in view.labels:
        view.observe(lab.device, 1000.0)
    section = DeviceSection(view)
    first = _text(section)
    assert first == _fresh(view)
    assert b'monitord_device_up{device="d7",school="s0",kind="tv"} 1.0' in first

    view.observe("d7", 2000.0, ok=False)
    view.status["d7"].state = State.DOWN
    view.states["d8"] = State.UNREACHABLE  # below a parent that went down
    view.changed.add("d8")
    second = _text(section)
    assert second != first
    assert b'monitord_device_up{device="d7",school="s0",kind="tv"} 0.0' in second
    assert b'monitord_device_state{device="d8",state="unreachable"} 1.0' in second
    assert b'monitord_device_last_probe_timestamp_seconds{device="d7",school="s0",kind="tv",' \
           b'probe="icmp"} 2000.0' in second
    assert second == _fresh(view)


def test_a_device_removed_by_a_reload_leaves_no_rows() -> None:
    view = _View(30)
    for lab in view.labels:
        view.observe(lab.device, 1000.0)
    section = DeviceSection(view)
    assert b'device="d29"' in _text(section)
    view.labels = view.labels[:20]
    del view.status["d29"]
    text = _text(section)
    assert b'device="d29"' not in text
    assert text == _fresh(view)


class _Legacy(Collector):
    def __init__(self, fams: list[MetricFamily]) -> None:
        self.fams = fams

    def collect(self) -> Iterable[Metric]:
        for fam in self.fams:
            out: Metric
            if fam.type == "counter":
                out = CounterMetricFamily(fam.name.removesuffix("_total"), fam.help,
                                          labels=list(fam.labels))
            else:
                out = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
            for key, value in fam.samples.items():
                out.add_metric(list(key), value)
            yield out


def test_families_are_written_as_prometheus_client_writes_them() -> None:
    fams = [
        MetricFamily("monitord_x_bytes", "Bytes, a counter named without _total.", "counter",
                     ("device", "interface"), {("a", 'Gi0/0 "wan"'): 1.5e12, ("b\\c", "x\ny"): 0}),
        MetricFamily("monitord_y_total", "A counter with it.\nTwo lines \\ here.", "counter",
                     (), {(): 7}),
        MetricFamily("monitord_z_seconds", "A gauge.", "gauge", ("device",),
                     {("ก",): 1796206415.256, ("n",): float("nan"), ("i",): float("inf")}),
        MetricFamily("monitord_empty", "No samples.", "gauge", ("device",), {}),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Legacy(fams))
    assert b"".join(family_bytes(f) for f in fams) == generate_latest(registry)


def test_metrics_parts_split_the_interface_tables_from_the_rest() -> None:
    """/metrics?part=interfaces and ?part=no_interfaces: together exactly /metrics."""
    from monitord.http.metrics import PARTS

    view = _View(20)
    for lab in view.labels:
        view.observe(lab.device, 1000.0)
    view.status["d0"].latest["snmp"] = Observation(
        "d0", "snmp", ok=True, ts=1000.0, values={"uptime_seconds": 5.0},
        tables={"interface": {"Gi0/1": {"in_octets": 10.0, "oper_status": 1.0,
                                        "admin_status": 1.0}}})
    view.changed.add("d0")
    section = DeviceSection(view)
    _text(section)

    def lines(part: str) -> set[bytes]:
        text = b"".join(header + b"".join(rows)
                        for header, rows in section.snapshot(PARTS[part]))
        return set(text.splitlines())

    every, tables, rest = lines("all"), lines("interfaces"), lines("no_interfaces")
    assert any(line.startswith(b"monitord_interface_receive_bytes_total{device=\"d0\"")
               for line in tables)
    assert all(b"monitord_interface_" in line for line in tables)
    assert not any(b"monitord_interface_" in line for line in rest)
    assert tables | rest == every and not tables & rest
