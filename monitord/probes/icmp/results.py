"""What the ICMP engine reports: engine-wide counters, one host's result, one round."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class IcmpStats:
    """Engine-wide counters since start (exported as ``monitord_icmp_*``)."""

    packets_sent: int = 0
    packets_received: int = 0  # matched, timely, first replies
    send_errors: int = 0  # sends that failed locally (not retried-then-sent ones)
    send_retries: int = 0  # sends retried after EAGAIN/ENOBUFS (then sent)
    socket_drops: int = 0  # replies the kernel dropped for our sockets (buffer full)
    invalid_replies: int = 0  # our cookie but inconsistent fields (wrong source, index…)
    duplicate_replies: int = 0
    late_replies: int = 0  # after the timeout or after the round ended
    foreign_packets: int = 0  # other programs' echo replies seen on a raw socket
    rounds: int = 0
    rounds_incomplete: int = 0
    hosts_reprobed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class HostResult:
    """One host in one round.  Times are seconds.

    ``jitter`` is the mean absolute difference between successive RTTs (in ping order,
    lost pings skipped; RFC 3550-style without smoothing): 0.0 with one reply, None
    with none.  ``complete`` is False when a local limit (socket drops, send failure,
    engine closing, DNS unavailable) makes missing replies untrustworthy.
    """

    address: str
    ip: str | None
    sent: int
    received: int
    loss_ratio: float
    rtt_min: float | None = None
    rtt_avg: float | None = None
    rtt_max: float | None = None
    jitter: float | None = None
    complete: bool = True
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.received > 0


@dataclass(slots=True)
class IcmpRound:
    """Results of one :meth:`IcmpEngine.ping` call, ``results`` in input order."""

    results: list[HostResult]
    incomplete: bool = False
    reason: str = ""
    duration: float = 0.0
    socket_drops: int = 0
    invalid_replies: int = 0
    late_replies: int = 0
    duplicate_replies: int = 0
    reprobed_hosts: int = 0



def lossy(r: HostResult | None) -> bool:
    """Lost some replies for a reason a slower re-probe could change."""
    return r is not None and r.sent > 0 and r.received < r.sent and r.reason not in (
        "send_failed", "unreachable", "engine_closed")


def summarise(rnd: IcmpRound, causes: dict[int, str]) -> None:
    """Mark the round incomplete, with a reason, if any host result is untrustworthy."""
    counts: dict[str, int] = {}
    for cause in causes.values():
        counts[cause] = counts.get(cause, 0) + 1
    if not counts:
        return
    rnd.incomplete = True
    text = {
        "socket_drops": "socket_drops: {n} lossy hosts could not be confirmed: the kernel "
                        "kept dropping replies (receive buffer overrun, drop counter "
                        "+{d}) after re-probing",
        "engine_closed": "engine closed during the round ({n} hosts)",
        "send_failed": "send_failed: the kernel refused requests to {n} hosts",
        "resolve_failed": "resolve_failed: name lookup temporarily failed for {n} hosts",
    }
    rnd.reason = "; ".join(
        text.get(c, c + ": {n} hosts").format(n=n, d=rnd.socket_drops)
        for c, n in sorted(counts.items()))
