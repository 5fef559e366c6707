"""ICMP echo probe: whole batches of hosts over one shared socket per address family.

* :mod:`.packet`   — packet layout, checksums, kernel filters, /proc drop counters;
* :mod:`.sockets`  — opening the shared sockets (raw or unprivileged datagram);
* :mod:`.pacing`   — the send token bucket and one batch's per-ping state;
* :mod:`.resolve`  — IP literals and host names → destinations;
* :mod:`.engine`   — :class:`IcmpEngine`: sending, matching replies, re-probing;
* :mod:`.prober`   — :class:`IcmpProber`, the ``icmp`` probe on top of the engine;
* :mod:`.metrics`  — the engine's exported counters.
"""

from monitord.probes.icmp.engine import (
    DEFAULT_COUNT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PERIOD,
    DEFAULT_RATE_PPS,
    DEFAULT_RCVBUF_BYTES,
    DEFAULT_TIMEOUT,
    IcmpEngine,
    Mode,
)
from monitord.probes.icmp.pacing import PingParams
from monitord.probes.icmp.prober import IcmpProber, ping_params
from monitord.probes.icmp.results import HostResult, IcmpRound, IcmpStats

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_PERIOD",
    "DEFAULT_RATE_PPS",
    "DEFAULT_RCVBUF_BYTES",
    "DEFAULT_TIMEOUT",
    "HostResult",
    "IcmpEngine",
    "IcmpProber",
    "IcmpRound",
    "IcmpStats",
    "Mode",
    "PingParams",
    "ping_params",
]
