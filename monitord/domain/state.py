"""Device state: observations in, transitions out.

Every device starts UNKNOWN.  Its *reachability probe* (ICMP when configured, otherwise
the first probe listed) decides UP and DOWN:

* UNKNOWN → UP on the first successful result (nothing to confirm: we simply did not
  know yet), UNKNOWN → DOWN after ``failure_threshold`` consecutive failures;
* UP → DOWN after ``failure_threshold`` consecutive failures (Nagios' soft → hard state);
* DOWN → UP after ``success_threshold`` consecutive successes, so one lucky packet does
  not close an outage;
* UP → DEGRADED after ``failure_threshold`` consecutive results that work but below par
  (the probe sets ``Observation.degraded``, e.g. weak signal; or, for probes that count
  echo requests, the *loss window* is over ``loss_degraded`` / ``rtt_degraded``), and
  back after ``success_threshold`` clean ones;
* any state → UNKNOWN at once when the probe says it cannot tell (``unknown``: e.g. the
  MQTT broker is unreachable), so a monitoring outage never looks like a device outage.

Loss and latency are judged over a sliding window of the last ``window_rounds`` results
(``values["sent"]``, ``values["received"]``, ``values["rtt_avg_seconds"]``), not over one
round of three pings: a link that loses 30 % of its packets then reads DEGRADED steadily
instead of UP one round in three.  The window has hysteresis: it degrades above the
limits and counts as clean again only at or below :data:`LOSS_RECOVERY` ×
``loss_degraded`` and :data:`RTT_RECOVERY` × ``rtt_degraded``; in between, the state
stays; a window not yet full gives no verdict on fewer than :data:`WINDOW_MIN_PINGS`
pings (after start or an outage).  Rounds with no reply at all count in the window (they
are lost packets) while DOWN stays a matter of ``failure_threshold`` consecutive
failures; the window is emptied while a device is DOWN, so an outage is not counted
again as loss once it is back.

Failures that a probe marks *incomplete* (a local limit, not the device) are counted but
never move a device towards DOWN.  The tracker is synchronous and clock-injected so the
incident engine and the tests can drive it deterministically; it never does I/O.  The
states beyond UP/DOWN (DEGRADED, UNREACHABLE, MAINTENANCE) are already part of the enum
for the incident engine that builds on this module (UNREACHABLE, MAINTENANCE).
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from monitord.probes.base import Observation

FLAP_HISTORY = 21  # results kept: 20 possible changes, as Nagios does
#: Conditions a secondary probe reports that make a device that still answers DOWN: its
#: uplink interface is down (what hangs below it is cut off), a DLTV receiver has no
#: satellite lock, a classroom device is switched off during lesson hours.
FATAL_CONDITIONS = frozenset({"uplink_down", "no_signal_lock", "powered_off"})
#: A DEGRADED device's loss window counts as clean again only at or below these shares of
#: its limits (hysteresis): a loss estimate from a few dozen pings is noisy, an RTT mean
#: much less so.
LOSS_RECOVERY = 0.5
RTT_RECOVERY = 0.8
#: The loss window gives no verdict on fewer echo requests than this unless it is full
#: (Smokeping judges 20 pings): one lost ping of the first three is not 33 % loss.
WINDOW_MIN_PINGS = 20


def percent_state_change(history: Iterable[bool]) -> float:
    """Nagios' weighted percent state change over the kept results.

    Each change between consecutive results counts with a weight rising linearly from
    0.8 (oldest) to 1.2 (newest), so recent flapping weighs more than old flapping.
    """
    results = list(history)
    if len(results) < 2:
        return 0.0
    slots = FLAP_HISTORY - 1
    offset = slots - (len(results) - 1)
    total = 0.0
    for i in range(1, len(results)):
        if results[i] != results[i - 1]:
            total += 0.8 + 0.4 * (offset + i - 1) / (slots - 1)
    return 100.0 * total / slots


class State(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNREACHABLE = "unreachable"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What the tracker needs to know of a configured device."""

    device_id: str
    reachability_probe: str
    failure_threshold: int
    success_threshold: int
    flap_high_percent: float = 50.0
    flap_low_percent: float = 25.0
    #: Loss window: results kept, and the limits over it (None: never degrades).
    window_rounds: int = 1
    loss_degraded: float | None = None
    rtt_degraded: float | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    device_id: str
    old: State
    new: State
    ts: float
    reason: str


@dataclass(slots=True)
class DeviceStatus:
    device_id: str
    state: State = State.UNKNOWN
    since: float = 0.0
    reason: str = ""
    consecutive_ok: int = 0
    consecutive_fail: int = 0
    consecutive_degraded: int = 0
    consecutive_clean: int = 0
    last_seen_ok: float | None = None
    latest: dict[str, Observation] = field(default_factory=dict)
    incomplete_results: int = 0
    history: deque[bool] = field(default_factory=lambda: deque(maxlen=FLAP_HISTORY))
    flapping: bool = False
    flap_percent: float = 0.0
    primary: State = State.UNKNOWN
    primary_reason: str = ""
    secondary: dict[str, SecondaryStatus] = field(default_factory=dict)
    window: LossWindow = field(default_factory=lambda: LossWindow(1))
    #: bumped on every change (an observation, a restored state, a resized window), so a
    #: reader can keep what it derived from this status until it changes (/metrics)
    version: int = 0


class LossWindow:
    """Echo requests sent and answered over the last ``rounds`` results, and their RTTs.

    Kept as one flat array of (sent, received, rtt × received) per round, a ring: ~0.5 KB
    per device instead of ~2.5 KB of tuples in a deque (40 MB less at 20,000 devices)."""

    __slots__ = ("_buf", "_len", "_next", "_size")

    def __init__(self, rounds: int) -> None:
        self._size = max(1, rounds)
        self._buf = array("d", bytes(24 * self._size))
        self._len = 0
        self._next = 0  # where the next round goes

    @property
    def size(self) -> int:
        """Rounds the window holds at most."""
        return self._size

    def _ordered(self) -> list[tuple[float, float, float]]:
        """The rounds, oldest first."""
        buf, size = self._buf, self._size
        first = (self._next - self._len) % size
        return [(buf[3 * j], buf[3 * j + 1], buf[3 * j + 2])
                for j in ((first + k) % size for k in range(self._len))]

    def resize(self, rounds: int) -> None:
        if max(1, rounds) == self._size:
            return
        kept = self._ordered()[-max(1, rounds):]
        self._size = max(1, rounds)
        self._buf = array("d", bytes(24 * self._size))
        self._len = self._next = 0
        for sent, received, rtt_sum in kept:
            self._append(sent, received, rtt_sum)

    def _append(self, sent: float, received: float, rtt_sum: float) -> None:
        i = 3 * self._next
        self._buf[i], self._buf[i + 1], self._buf[i + 2] = sent, received, rtt_sum
        self._next = (self._next + 1) % self._size
        self._len = min(self._len + 1, self._size)

    def add(self, values: Mapping[str, float]) -> None:
        """Fold one result's ``sent``/``received``/``rtt_avg_seconds`` (if it has them)."""
        sent = values.get("sent")
        if not sent:
            return
        received = values.get("received", 0.0)
        rtt = values.get("rtt_avg_seconds")
        self._append(sent, received, rtt * received if rtt is not None else 0.0)

    def clear(self) -> None:
        self._buf = array("d", bytes(24 * self._size))  # unused slots stay 0 (see _sums)
        self._len = self._next = 0

    def __len__(self) -> int:
        return self._len

    def _sums(self) -> tuple[float, float, float]:
        """(sent, received, rtt sum) over the window: slots not used yet are 0, so the
        whole array sums (in C: the wall reads this for every device every few seconds)."""
        buf = self._buf
        return sum(buf[0::3]), sum(buf[1::3]), sum(buf[2::3])

    @property
    def loss_ratio(self) -> float | None:
        """Share of echo requests unanswered in the window (None: nothing in it)."""
        sent, received, _ = self._sums()
        return (sent - received) / sent if sent else None

    @property
    def rtt_avg(self) -> float | None:
        """Mean RTT of the replies in the window, seconds (None: no reply in it)."""
        _, received, rtt_sum = self._sums()
        return rtt_sum / received if received else None

    def judge(self, loss_limit: float | None, rtt_limit: float | None) -> tuple[str, bool]:
        """(``high_loss``/``high_latency``/"", clean): above a limit, or back under
        the limits with the recovery margin (neither: the grey zone in between, or too
        few pings yet to tell)."""
        if not self._len or (loss_limit is None and rtt_limit is None):
            return "", True  # nothing to judge: a probe that does not count pings
        if self._len < self.size and self._sums()[0] < WINDOW_MIN_PINGS:
            return "", False
        loss, rtt = self.loss_ratio, self.rtt_avg
        if loss is not None and loss_limit is not None and loss > loss_limit:
            return "high_loss", False
        if rtt is not None and rtt_limit is not None and rtt > rtt_limit:
            return "high_latency", False
        clean = (loss is None or loss_limit is None or loss <= loss_limit * LOSS_RECOVERY) \
            and (rtt is None or rtt_limit is None or rtt <= rtt_limit * RTT_RECOVERY)
        return "", clean


@dataclass(slots=True)
class SecondaryStatus:
    """A non-reachability probe's verdict on a device that answers (e.g. SNMP on a router
    that is pinged): a condition becomes *active* after ``failure_threshold`` consecutive
    bad results and clears after ``success_threshold`` good ones."""

    bad: int = 0
    good: int = 0
    pending: str = ""
    active: str = ""


@dataclass(frozen=True, slots=True)
class StoredState:
    """A device's state as persisted, to resume after a restart."""

    device_id: str
    state: State
    since: float
    reason: str


class StateTracker:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._specs: dict[str, DeviceSpec] = {}
        self._status: dict[str, DeviceStatus] = {}

    # -- configuration -------------------------------------------------------------

    def configure(self, specs: Iterable[DeviceSpec]) -> list[str]:
        """Adopt a (re)loaded device list; keep the status of devices that stay.

        Returns the ids of devices that were removed.
        """
        new = {s.device_id: s for s in specs}
        removed = [d for d in self._specs if d not in new]
        for dev in removed:
            self._status.pop(dev, None)
        now = self._clock()
        for dev, spec in new.items():
            status = self._status.setdefault(dev, DeviceStatus(dev, since=now))
            status.window.resize(spec.window_rounds)
            status.version += 1
        self._specs = new
        return removed

    def restore(self, stored: Mapping[str, StoredState]) -> None:
        """Resume states persisted by an earlier run (counters restart at zero)."""
        for dev, st in stored.items():
            status = self._status.get(dev)
            if status is not None and status.state is State.UNKNOWN:
                status.version += 1
                status.state, status.since, status.reason = st.state, st.since, st.reason
                status.primary, status.primary_reason = st.state, st.reason

    # -- observations --------------------------------------------------------------

    def apply(self, obs: Observation) -> Transition | None:
        """Fold one observation into its device's state; return the transition, if any."""
        spec = self._specs.get(obs.device_id)
        status = self._status.get(obs.device_id)
        if spec is None or status is None:
            return None  # device removed by a reload while its probe was in flight
        status.version += 1
        status.latest[obs.probe] = obs
        if obs.probe != spec.reachability_probe:
            return self._apply_secondary(spec, status, obs)
        if obs.unknown:
            status.consecutive_ok = status.consecutive_fail = 0
            status.consecutive_degraded = status.consecutive_clean = 0
            status.primary = State.UNKNOWN
            if status.state is State.UNKNOWN:
                return None
            return self._move(status, State.UNKNOWN, obs.ts,
                              f"{obs.probe}: {obs.reason or 'cannot tell'}")
        if not obs.ok and not obs.complete:
            status.incomplete_results += 1
            return None
        if obs.complete:
            status.window.add(obs.values)
        degraded = ""
        if obs.ok:
            status.consecutive_ok += 1
            status.consecutive_fail = 0
            status.last_seen_ok = obs.ts
            degraded, clean = status.window.judge(spec.loss_degraded, spec.rtt_degraded)
            if obs.degraded:
                degraded, clean = obs.degraded, False
            status.consecutive_degraded = status.consecutive_degraded + 1 if degraded else 0
            status.consecutive_clean = status.consecutive_clean + 1 if clean else 0
        else:
            status.consecutive_fail += 1
            status.consecutive_ok = status.consecutive_degraded = status.consecutive_clean = 0
        self._update_flapping(spec, status, obs.ok)

        target = self._target_state(spec, status, degraded)
        if target is not None and target is not status.primary:
            if target is State.DOWN:
                reason = f"{obs.probe}: {status.consecutive_fail} consecutive failures" + (
                    f" ({obs.reason})" if obs.reason else "")
            elif target is State.DEGRADED:
                reason = f"{obs.probe}: {degraded}"
            else:
                reason = f"{obs.probe}: {status.consecutive_ok} consecutive successes"
            status.primary, status.primary_reason = target, reason
        if status.primary is State.DOWN:
            status.window.clear()  # an outage is not loss to judge once the device is back
        return self._resolve(status, obs.ts)

    def _apply_secondary(self, spec: DeviceSpec, status: DeviceStatus,
                         obs: Observation) -> Transition | None:
        """Fold a secondary probe's result: it can make a working device DEGRADED (SNMP
        failing, UPS on battery, weak DLTV signal) or, for the conditions in
        :data:`FATAL_CONDITIONS` (uplink down, no satellite lock), DOWN — never UP."""
        if obs.unknown or (not obs.ok and not obs.complete):
            return None
        sec = status.secondary.setdefault(obs.probe, SecondaryStatus())
        if obs.ok and not obs.degraded:
            sec.good += 1
            sec.bad = 0
            if sec.good >= spec.success_threshold or not sec.active:
                sec.active = sec.pending = ""
        else:
            if not obs.ok and obs.reason in FATAL_CONDITIONS:
                condition = obs.reason
            else:
                condition = obs.degraded or obs.reason or "failing"
                if not obs.ok and obs.reason and obs.reason != condition:
                    condition = f"{condition} ({obs.reason})"
            sec.bad += 1
            sec.good = 0
            sec.pending = condition
            if sec.bad >= spec.failure_threshold:
                sec.active = condition
        return self._resolve(status, obs.ts)

    def _resolve(self, status: DeviceStatus, ts: float) -> Transition | None:
        """The device's state: the reachability probe's verdict, worsened by active
        secondary conditions while the device answers."""
        new, reason = status.primary, status.primary_reason
        if new in (State.UP, State.DEGRADED):
            active = sorted((p, s.active) for p, s in status.secondary.items() if s.active)
            fatal = [(p, c) for p, c in active if c in FATAL_CONDITIONS]
            if fatal:
                new, reason = State.DOWN, "; ".join(f"{p}: {c}" for p, c in fatal)
            elif active and new is State.UP:
                new, reason = State.DEGRADED, "; ".join(f"{p}: {c}" for p, c in active)
        if new is status.state:
            return None
        return self._move(status, new, ts, reason)

    @staticmethod
    def _update_flapping(spec: DeviceSpec, status: DeviceStatus, ok: bool) -> None:
        """Hysteresis: start above ``flap_high_percent``, stop below ``flap_low_percent``."""
        status.history.append(ok)
        status.flap_percent = percent_state_change(status.history)
        if status.flapping:
            status.flapping = status.flap_percent >= spec.flap_low_percent
        else:
            status.flapping = status.flap_percent > spec.flap_high_percent

    @staticmethod
    def _target_state(spec: DeviceSpec, status: DeviceStatus, degraded: str) -> State | None:
        """Where the counters say the device should be (None: stay); ``degraded`` is the
        verdict on the latest result (its probe's, or the loss window's).

        Soft/hard states as in Nagios: DOWN after ``failure_threshold`` failures; back
        from DOWN after ``success_threshold`` successes; UP ↔ DEGRADED likewise, so a
        single slow round does not flip the state.
        """
        state = status.primary
        if status.consecutive_fail >= spec.failure_threshold:
            return State.DOWN
        if status.consecutive_ok == 0:
            return None
        working = State.DEGRADED if degraded else State.UP
        if state is State.UNKNOWN:
            return working
        if state in (State.DOWN, State.UNREACHABLE):
            return working if status.consecutive_ok >= spec.success_threshold else None
        if state is State.UP and status.consecutive_degraded >= spec.failure_threshold:
            return State.DEGRADED
        if state is State.DEGRADED and status.consecutive_clean >= spec.success_threshold:
            return State.UP
        return None

    def _move(self, status: DeviceStatus, new: State, ts: float, reason: str) -> Transition:
        tr = Transition(status.device_id, status.state, new, ts, reason)
        status.state, status.since, status.reason = new, ts, reason
        return tr

    # -- reading -------------------------------------------------------------------

    def status(self, device_id: str) -> DeviceStatus | None:
        return self._status.get(device_id)

    def statuses(self) -> list[DeviceStatus]:
        return list(self._status.values())

    def counts(self) -> dict[State, int]:
        out = dict.fromkeys(State, 0)
        for st in self._status.values():
            out[st.state] += 1
        return out
