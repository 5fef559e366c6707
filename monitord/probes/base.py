"""The one interface every probe implements (modelled on blackbox_exporter's prober/).

A probe takes a batch of targets that are due and returns one :class:`Observation` per
target, as plain data.  Probes never touch device state, storage or metrics: the
scheduler hands their observations downstream (probe → observation → state → incident).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from monitord.probes.metrics import MetricFamily

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Target:
    """One device as a probe sees it.

    ``address`` is an IP literal (v4 or v6) or a host name; ``params`` are the merged
    probe settings for this device (defaults → kind → device), already validated.
    """

    device_id: str
    address: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Observation:
    """What one probe saw of one device in one run.

    ``ok``        the device answered as the probe expects.
    ``complete``  False when a *local* limit (socket buffer overrun, send error, engine
                  shutting down) makes a failure untrustworthy.  Downstream state ignores
                  incomplete failures instead of declaring the device DOWN.
    ``values``    numeric readings in base units (seconds, ratios, bytes), e.g.
                  ``rtt_min_seconds``, ``loss_ratio``.
    ``reason``    short machine-readable reason when not ok (``timeout``,
                  ``unreachable``, ``resolve_failed`` …).
    ``tables``    labelled readings, e.g. ``tables["interface"]["Gi0/1"]["in_octets"]``
                  (counters already made monotonic by the probe: wraps and resets handled).
    ``info``      descriptive strings (``sys_name``, ``sys_descr`` …), never secrets.
    ``events``    things that happened, e.g. ``["reboot"]``, for the event log/counters.
    ``degraded``  non-empty when the device works but below par (e.g.
                  ``"low_signal_quality"``): the device is DEGRADED rather than UP.  Loss
                  and latency are not judged here but by the state tracker, over a
                  window of rounds (from ``sent``/``received``/``rtt_avg_seconds``).
    ``unknown``   the probe cannot tell anything about the device right now (e.g. the
                  MQTT broker is unreachable): the device goes UNKNOWN, never DOWN.
    ``conditions`` standing problems of a device that works, by key → reason text (Thai,
                  saying what to do), e.g. ``{"tls_cert_expiring": "ใบรับรอง TLS …
                  หมดอายุใน 9 วัน (12 ธ.ค. 2569): ต่ออายุใบรับรอง"}``.  Each opens an
                  incident and a repair ticket of its own (kind ``condition``) until an
                  observation of the same probe that answers no longer reports it.  A probe
                  reports all its conditions in every observation that answers (keys:
                  ``[a-z0-9_]``, stable; the reason may change, e.g. the days left).
                  Shared keys and wording: :mod:`monitord.probes.conditions`.
    """

    device_id: str
    probe: str
    ok: bool
    ts: float = field(default_factory=time.time)
    duration_seconds: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    complete: bool = True
    tables: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    degraded: str = ""
    unknown: bool = False
    conditions: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RoundStats:
    """Summary of one batch run, for the round-duration and completeness metrics."""

    probe: str
    targets: int
    duration_seconds: float
    complete: bool = True
    reason: str = ""


@runtime_checkable
class Prober(Protocol):
    """A protocol module.  ``name`` is the key used in config (``probes: [icmp]``).

    Probes are found by name in :mod:`monitord.probes.registry`.
    """

    name: str

    async def start(self) -> None:
        """Open sockets/sessions; raise :class:`ProbeSetupError` with a clear message."""

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        """Probe every target once; return exactly one observation per target, in order."""
        ...

    async def close(self) -> None:
        """Release resources; pending probe() calls finish with incomplete observations."""

    def metrics(self) -> list[MetricFamily]:
        """The probe's engine-wide counters and gauges, as exported families (the names
        and help texts live with the probe: see :mod:`monitord.probes.metrics`)."""
        ...


class ProbeSetupError(RuntimeError):
    """A probe cannot start (missing privilege, no socket support …)."""


async def each_target(name: str, targets: Sequence[Target],
                      one: Callable[[Target], Awaitable[Observation]]
                      ) -> tuple[list[Observation], RoundStats]:
    """A round that checks every target concurrently with ``one`` (the prober bounds its
    own concurrency); the round is complete when every observation is."""
    t0 = time.monotonic()
    obs = list(await asyncio.gather(*(one(t) for t in targets)))
    complete = all(o.complete for o in obs)
    return obs, RoundStats(name, len(targets), time.monotonic() - t0, complete,
                           "" if complete else "local_error")


class ParamsCache(Generic[P]):
    """Each device's validated probe parameters, validated again only when the config
    hands over a new mapping (a reload)."""

    def __init__(self, model: type[P]) -> None:
        self._model = model
        self._cache: dict[str, tuple[object, P]] = {}

    def get(self, target: Target) -> P:
        """``pydantic.ValidationError`` when the parameters are not valid."""
        raw = target.params
        if isinstance(raw, self._model):
            return raw
        cached = self._cache.get(target.device_id)
        if cached is not None and cached[0] is raw:
            return cached[1]
        params = self._model.model_validate(dict(raw))
        self._cache[target.device_id] = (raw, params)
        return params

    def forget(self, device_id: str) -> None:
        self._cache.pop(device_id, None)


def valid_regex(pattern: str) -> str:
    """``pattern`` if it compiles; a ValueError naming it otherwise (the probes' params
    validators: body, banner and answer regexes)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    return pattern
