"""The state machine, driven with an injected clock."""

from __future__ import annotations

import random

from monitord.config import IcmpParams
from monitord.domain.state import DeviceSpec, State, StateTracker, StoredState
from monitord.probes.base import Observation


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def obs(ok: bool, ts: float, complete: bool = True, probe: str = "icmp") -> Observation:
    return Observation("d1", probe, ok=ok, ts=ts, complete=complete,
                       reason="" if ok else "timeout")


def tracker(fail: int = 3, succ: int = 2) -> tuple[StateTracker, Clock]:
    clock = Clock()
    t = StateTracker(clock)
    t.configure([DeviceSpec("d1", "icmp", fail, succ)])
    return t, clock


def test_unknown_to_up_on_first_success() -> None:
    t, c = tracker()
    st = t.status("d1")
    assert st is not None and st.state is State.UNKNOWN
    tr = t.apply(obs(True, c.now + 1))
    assert tr is not None and (tr.old, tr.new, tr.ts) == (State.UNKNOWN, State.UP, c.now + 1)


def test_down_needs_consecutive_failures_and_up_needs_consecutive_successes() -> None:
    t, _ = tracker(fail=3, succ=2)
    t.apply(obs(True, 1))
    assert t.apply(obs(False, 2)) is None
    assert t.apply(obs(False, 3)) is None
    assert t.apply(obs(True, 4)) is None  # a success resets the failure count
    assert t.apply(obs(False, 5)) is None
    assert t.apply(obs(False, 6)) is None
    tr = t.apply(obs(False, 7))
    assert tr is not None and tr.new is State.DOWN and tr.ts == 7
    assert "3 consecutive failures (timeout)" in tr.reason
    assert t.apply(obs(True, 8)) is None  # one success is not a recovery
    assert t.apply(obs(False, 9)) is None
    assert t.apply(obs(True, 10)) is None
    tr = t.apply(obs(True, 11))
    assert tr is not None and (tr.old, tr.new) == (State.DOWN, State.UP)
    st = t.status("d1")
    assert st is not None and st.since == 11


def test_unknown_to_down() -> None:
    t, _ = tracker(fail=2)
    assert t.apply(obs(False, 1)) is None
    tr = t.apply(obs(False, 2))
    assert tr is not None and (tr.old, tr.new) == (State.UNKNOWN, State.DOWN)


def test_incomplete_failures_never_make_a_device_down() -> None:
    t, _ = tracker(fail=1)
    t.apply(obs(True, 1))
    for i in range(10):
        assert t.apply(obs(False, 2 + i, complete=False)) is None
    st = t.status("d1")
    assert st is not None and st.state is State.UP and st.incomplete_results == 10


def test_other_probes_do_not_decide_reachability() -> None:
    t, _ = tracker(fail=1)
    assert t.apply(obs(False, 1, probe="snmp")) is None
    st = t.status("d1")
    assert st is not None and st.state is State.UNKNOWN and "snmp" in st.latest


def test_reconfigure_keeps_status_and_drops_removed() -> None:
    t, _ = tracker()
    t.apply(obs(True, 1))
    removed = t.configure([DeviceSpec("d1", "icmp", 1, 1), DeviceSpec("d2", "icmp", 1, 1)])
    assert removed == []
    st = t.status("d1")
    assert st is not None and st.state is State.UP
    assert t.configure([DeviceSpec("d2", "icmp", 1, 1)]) == ["d1"]
    assert t.status("d1") is None
    assert t.apply(obs(False, 5)) is None  # result of a removed device is ignored


def test_restore_resumes_stored_state() -> None:
    t, _ = tracker(fail=2, succ=2)
    t.restore({"d1": StoredState("d1", State.DOWN, 123.0, "icmp: 2 consecutive failures")})
    st = t.status("d1")
    assert st is not None and (st.state, st.since) == (State.DOWN, 123.0)
    assert t.apply(obs(True, 200)) is None  # still needs success_threshold to recover
    tr = t.apply(obs(True, 201))
    assert tr is not None and (tr.old, tr.new) == (State.DOWN, State.UP)
    assert t.counts()[State.UP] == 1


def test_degraded_needs_consecutive_results_both_ways() -> None:
    t, _ = tracker(fail=2, succ=2)
    t.apply(obs(True, 1))
    slow = Observation("d1", "icmp", ok=True, ts=2, degraded="high_latency")
    assert t.apply(slow) is None
    tr = t.apply(Observation("d1", "icmp", ok=True, ts=3, degraded="high_latency"))
    assert tr is not None and (tr.old, tr.new) == (State.UP, State.DEGRADED)
    assert tr.reason == "icmp: high_latency"
    assert t.apply(obs(True, 4)) is None
    tr = t.apply(obs(True, 5))
    assert tr is not None and (tr.old, tr.new) == (State.DEGRADED, State.UP)


def test_recovery_from_down_into_degraded() -> None:
    t, _ = tracker(fail=1, succ=2)
    t.apply(obs(False, 1))
    t.apply(Observation("d1", "icmp", ok=True, ts=2, degraded="high_loss"))
    tr = t.apply(Observation("d1", "icmp", ok=True, ts=3, degraded="high_loss"))
    assert tr is not None and (tr.old, tr.new) == (State.DOWN, State.DEGRADED)


def test_unknown_observation_moves_to_unknown_at_once() -> None:
    t, _ = tracker(fail=1)
    t.apply(obs(False, 1))
    tr = t.apply(Observation("d1", "icmp", ok=False, ts=2, complete=False, unknown=True,
                             reason="broker_unreachable"))
    assert tr is not None and (tr.old, tr.new) == (State.DOWN, State.UNKNOWN)
    assert tr.reason == "icmp: broker_unreachable"
    assert t.apply(Observation("d1", "icmp", ok=False, ts=3, unknown=True)) is None
    tr = t.apply(obs(True, 4))
    assert tr is not None and tr.new is State.UP


def test_percent_state_change_weights() -> None:
    from monitord.domain.state import percent_state_change

    assert percent_state_change([True] * 21) == 0.0
    alternating = [i % 2 == 0 for i in range(21)]
    assert abs(percent_state_change(alternating) - 100.0) < 1e-9
    # One change, newest position, weighs 1.2; oldest position 0.8.
    assert abs(percent_state_change([True] * 20 + [False]) - 100 * 1.2 / 20) < 1e-9
    assert abs(percent_state_change([False] + [True] * 20) - 100 * 0.8 / 20) < 1e-9


def test_flapping_starts_high_and_stops_low() -> None:
    t, _ = tracker(fail=1, succ=1)
    ts = 0.0
    for i in range(12):  # alternate: every result is a change
        ts += 1
        t.apply(obs(i % 2 == 0, ts))
    st = t.status("d1")
    assert st is not None and st.flapping and st.flap_percent > 50
    steady = 0
    while st.flapping and steady < 40:  # bounded
        ts += 1
        steady += 1
        t.apply(obs(True, ts))
    assert not st.flapping and st.flap_percent < 25
    assert steady > 3  # hysteresis: it does not stop at the first steady result


def snmp(ts: float, ok: bool = True, degraded: str = "", reason: str = "") -> Observation:
    return Observation("d1", "snmp", ok=ok, ts=ts, degraded=degraded, reason=reason)


def test_snmp_failing_on_a_pinged_device_is_degraded_never_down() -> None:
    t, _ = tracker(fail=2, succ=2)
    t.apply(obs(True, 1))
    # one unanswered SNMP poll changes nothing; the second (threshold) makes it DEGRADED
    assert t.apply(snmp(2, ok=False, degraded="snmp_failing", reason="timeout")) is None
    tr = t.apply(snmp(3, ok=False, degraded="snmp_failing", reason="timeout"))
    assert tr is not None and tr.new is State.DEGRADED
    assert tr.reason == "snmp: snmp_failing (timeout)"
    for ts in range(4, 30):  # however long SNMP fails, ICMP answers: never DOWN
        t.apply(snmp(ts, ok=False, degraded="snmp_failing", reason="timeout"))
        t.apply(obs(True, ts))
    st = t.status("d1")
    assert st is not None and st.state is State.DEGRADED
    # SNMP answers again: back UP after success_threshold good polls
    assert t.apply(snmp(31)) is None
    tr = t.apply(snmp(32))
    assert tr is not None and tr.new is State.UP


def test_uplink_down_makes_an_answering_device_down_and_icmp_failure_wins() -> None:
    t, _ = tracker(fail=1, succ=1)
    t.apply(obs(True, 1))
    tr = t.apply(snmp(2, degraded="uplink_down"))
    assert tr is not None and tr.new is State.DOWN and tr.reason == "snmp: uplink_down"
    assert t.apply(obs(True, 3)) is None  # ping answers, the uplink is still down
    tr = t.apply(snmp(4))
    assert tr is not None and tr.new is State.UP
    # ICMP failure is DOWN whatever SNMP said before; an SNMP success never makes it UP
    tr = t.apply(obs(False, 5))
    assert tr is not None and tr.new is State.DOWN
    assert t.apply(snmp(6)) is None
    st = t.status("d1")
    assert st is not None and st.state is State.DOWN


def test_secondary_unknown_or_incomplete_results_change_nothing() -> None:
    t, _ = tracker(fail=1, succ=1)
    t.apply(obs(True, 1))
    assert t.apply(Observation("d1", "snmp", ok=False, ts=2, complete=False,
                               degraded="snmp_failing", reason="local_error")) is None
    assert t.apply(Observation("d1", "mqtt", ok=False, ts=3, unknown=True,
                               complete=False)) is None
    st = t.status("d1")
    assert st is not None and st.state is State.UP


# --------------------------------------------------------------------------- loss window


def ping_round(sent: int, received: int, ts: float, rtt: float = 0.01) -> Observation:
    """One ICMP round as the prober reports it (values only; no verdict of its own)."""
    values = {"sent": float(sent), "received": float(received),
              "loss_ratio": 1.0 - received / sent}
    if received:
        values["rtt_avg_seconds"] = rtt
    return Observation("d1", "icmp", ok=received > 0, ts=ts, values=values,
                       reason="" if received else "timeout")


def window_tracker(window: int, fail: int = 3, succ: int = 2) -> StateTracker:
    t = StateTracker(Clock())
    t.configure([DeviceSpec("d1", "icmp", fail, succ, window_rounds=window,
                            loss_degraded=0.2, rtt_degraded=0.3)])
    return t


def lossy_rounds(n: int, loss: float, count: int = 3, seed: int = 12) -> list[int]:
    """Replies per round of ``count`` pings on a link losing ``loss`` of its packets."""
    rng = random.Random(seed)
    return [sum(rng.random() >= loss for _ in range(count)) for _ in range(n)]


def test_steady_30_percent_loss_stays_degraded_without_flapping() -> None:
    # A day of rounds of 3 pings (the defaults) on a link losing 30 % of its packets.
    replies = lossy_rounds(1440, 0.3)
    assert 0.25 < 1 - sum(replies) / (3 * 1440) < 0.35
    t = window_tracker(window=IcmpParams().window_rounds)
    states = [tr.new for i, got in enumerate(replies)
              if (tr := t.apply(ping_round(3, got, float(i)))) is not None]
    # It settles in DEGRADED once and stays there: no UP ↔ DEGRADED bouncing.
    assert states in ([State.DEGRADED], [State.UP, State.DEGRADED]), states
    st = t.status("d1")
    assert st is not None and st.state is State.DEGRADED and st.reason == "icmp: high_loss"
    assert len(st.window) == IcmpParams().window_rounds and st.window.loss_ratio is not None
    assert 0.1 < st.window.loss_ratio < 0.6
    # Judged one round at a time (the old behaviour), the same link bounces all day.
    t1 = window_tracker(window=1)
    flips = sum(1 for i, got in enumerate(replies)
                if (tr := t1.apply(ping_round(3, got, float(i)))) is not None
                and {tr.old, tr.new} == {State.UP, State.DEGRADED})
    assert flips > 100, flips


def test_healthy_link_with_a_lost_ping_now_and_then_stays_up() -> None:
    replies = lossy_rounds(1440, 0.03, seed=3)
    assert min(replies) < 3  # some pings are lost
    t = window_tracker(window=IcmpParams().window_rounds)
    states = [tr.new for i, got in enumerate(replies)
              if (tr := t.apply(ping_round(3, got, float(i)))) is not None]
    assert states == [State.UP]


def test_total_loss_goes_down_and_the_outage_is_not_counted_as_loss_after() -> None:
    t = window_tracker(window=10, fail=3, succ=2)
    ts = iter(range(1000))
    assert [tr.new for _ in range(10)
            if (tr := t.apply(ping_round(3, 3, next(ts)))) is not None] == [State.UP]
    st = t.status("d1")
    assert st is not None and st.window.loss_ratio == 0.0
    # 100 % loss for failure_threshold rounds: DOWN, as before the window.
    assert t.apply(ping_round(3, 0, next(ts))) is None
    assert t.apply(ping_round(3, 0, next(ts))) is None
    tr = t.apply(ping_round(3, 0, next(ts)))
    assert tr is not None and (tr.old, tr.new) == (State.UP, State.DOWN)
    assert "3 consecutive failures" in tr.reason
    for _ in range(5):  # a long outage
        assert t.apply(ping_round(3, 0, next(ts))) is None
    assert len(st.window) == 0
    # Recovery: clean rounds bring it straight back UP, not DEGRADED by the outage's loss.
    assert t.apply(ping_round(3, 3, next(ts))) is None  # success_threshold = 2
    tr = t.apply(ping_round(3, 3, next(ts)))
    assert tr is not None and (tr.old, tr.new) == (State.DOWN, State.UP)
    assert st.window.loss_ratio == 0.0


def test_short_total_loss_counts_in_the_window_without_going_down() -> None:
    t = window_tracker(window=10, fail=3, succ=2)
    for i in range(10):
        t.apply(ping_round(3, 3, i))
    t.apply(ping_round(3, 0, 10))
    t.apply(ping_round(3, 0, 11))
    st = t.status("d1")
    assert st is not None and st.state is State.UP
    assert st.window.loss_ratio == 0.2  # 6 of 30 pings lost: at the limit, not over it


def test_degraded_leaves_only_when_the_window_is_clearly_clean() -> None:
    t = window_tracker(window=10, fail=2, succ=2)
    for i in range(10):
        t.apply(ping_round(3, 3, i))
    # Loss 1 of 3 in every round for a while: DEGRADED once the window is over 20 %.
    transitions = [tr for i in range(10, 20)
                   if (tr := t.apply(ping_round(3, 2, i))) is not None]
    assert [(tr.old, tr.new) for tr in transitions] == [(State.UP, State.DEGRADED)]
    # Back to clean rounds: the window slides; under 20 % but over 10 % is no recovery yet.
    st = t.status("d1")
    assert st is not None
    seen: list[tuple[float, State]] = []
    for i in range(20, 40):
        t.apply(ping_round(3, 3, i))
        assert st.window.loss_ratio is not None
        seen.append((st.window.loss_ratio, st.state))
    assert all(state is State.DEGRADED for loss, state in seen if loss > 0.1), seen
    assert seen[-1] == (0.0, State.UP)


def test_high_latency_over_the_window() -> None:
    t = window_tracker(window=5, fail=2, succ=1)
    for i in range(5):
        t.apply(ping_round(3, 3, i, rtt=0.02))
    assert t.apply(ping_round(3, 3, 5, rtt=2.0)) is None  # one slow round: mean 0.35 s
    tr = t.apply(ping_round(3, 3, 6, rtt=2.0))
    assert tr is not None and (tr.new, tr.reason) == (State.DEGRADED, "icmp: high_latency")
    st = t.status("d1")
    assert st is not None and st.window.rtt_avg is not None and st.window.rtt_avg > 0.3


def test_window_resized_by_a_reload_keeps_its_rounds() -> None:
    t = window_tracker(window=10)
    for i in range(10):
        t.apply(ping_round(3, 2 if i % 2 else 3, i))
    t.configure([DeviceSpec("d1", "icmp", 3, 2, window_rounds=4, loss_degraded=0.2)])
    st = t.status("d1")
    assert st is not None and len(st.window) == 4 and st.window.size == 4
    assert st.window.loss_ratio == 2 / 12
