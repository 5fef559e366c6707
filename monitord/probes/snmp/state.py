"""What the SNMP prober counts engine-wide and remembers per device between rounds.

Per-device memory (last counters, last uptime) is what makes counters monotonic across
32-bit wraps and resets, and what detects reboots.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from monitord.probes.snmp.oids import WRAP32
from monitord.probes.snmp.params import SnmpParams
from monitord.probes.snmp.session import RequestCounters, Session


@dataclass(slots=True)
class SnmpStats:
    """Engine-wide counters for the exporter (all monotonic).

    ``errors[(device, reason)]``  → ``monitord_snmp_errors_total{device,reason}``
    ``reboots[device]``           → ``monitord_snmp_reboots_total{device}``
    """

    polls: int = 0
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    reboots: Counter[str] = field(default_factory=Counter)
    counter_wraps: Counter[str] = field(default_factory=Counter)
    counter_resets: Counter[str] = field(default_factory=Counter)
    requests: RequestCounters = field(default_factory=RequestCounters)
    bulk_fallbacks: Counter[str] = field(default_factory=Counter)

    def error(self, device: str, reason: str) -> None:
        self.errors[(device, reason)] += 1


@dataclass(slots=True)
class Monotonic:
    """Turns a device's raw counter (which wraps or resets) into a monotonic total."""

    raw: int
    total: int
    bits: int


@dataclass(slots=True)
class DeviceState:
    """What the prober remembers about one device between rounds."""

    key: int                                  # id() of the params it was built from
    params: SnmpParams
    session: Session | None = None
    uptime_ticks: int | None = None
    uptime_at: float = 0.0
    info: dict[str, str] = field(default_factory=dict)
    counters: dict[tuple[Any, str], Monotonic] = field(default_factory=dict)
    last_octets: dict[Any, tuple[float, int, int]] = field(default_factory=dict)
    uplink_index: int | None = None
    no_hc: set[int] = field(default_factory=set)   # ifIndexes without 64-bit counters
    bulk_ok: bool = True


def fold_counter(state: DeviceState, key: tuple[Any, str], raw: int, bits: int,
             rebooted: bool, stats: SnmpStats, device: str) -> int:
    """Fold a raw counter into its monotonic total.

    A drop after a reboot (or a switch between 32- and 64-bit sources) is a reset: the new
    raw value is what was counted since.  Otherwise a 32-bit drop is a wrap.  A 64-bit
    drop without reboot cannot be a wrap in practice: it is a reset (agent restart,
    ``clear counters``), counted in ``counter_resets``.
    """
    m = state.counters.get(key)
    if m is None:
        state.counters[key] = Monotonic(raw, raw, bits)
        return raw
    if m.bits != bits:
        delta = raw
        stats.counter_resets[device] += 1
    elif raw >= m.raw:
        delta = raw - m.raw
    elif bits == 32 and not rebooted:
        delta = raw + WRAP32 - m.raw
        stats.counter_wraps[device] += 1
    else:
        delta = raw
        stats.counter_resets[device] += 1
    m.raw, m.bits = raw, bits
    m.total += delta
    return m.total


# ---------------------------------------------------------------------------- the prober
