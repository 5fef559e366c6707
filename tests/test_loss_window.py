"""A steadily lossy link reads DEGRADED steadily (issue 12, finding 15).

A real daemon pings two loopback addresses in 127.77.0.0/16: one behind an iptables rule
that drops 30 % of the echo requests at random, one clean.  Loss is judged over a window
of rounds, so the lossy one must settle in DEGRADED and stay there, not bounce between UP
and DEGRADED, and its window loss must be on /metrics and on the wall.

Randomness is kept from flipping the outcome by the sample sizes: 50 pings a round and a
window of 4 rounds (200 pings, standard deviation of the loss estimate 3 points) against
a limit of 15 % that is only left again at or below 7.5 %.  Even the first round alone
(50 pings) reads 7.5 % or less with a probability below 1e-4.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.conftest import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    http_get,
    wait_for,
    write_config,
)

LOSSY, CLEAN = "127.77.0.1", "127.77.1.1"
ROUNDS = 20  # rounds watched after start: the 4-round window slides over five times


def test_lossy_link_stays_degraded(tmp_path: Path, iptables: IptablesDrop,
                                   daemon_factory: Callable[..., DaemonProcess]) -> None:
    iptables.drop("127.77.0.0/24", probability=0.3)
    cfg = base_config([
        {"id": "lossy-rtr", "name": "เราเตอร์สายยาว", "school": "62020001", "kind": "router",
         "address": LOSSY},
        {"id": "clean-rtr", "name": "เราเตอร์ปกติ", "school": "62020002", "kind": "router",
         "address": CLEAN},
    ], icmp={"count": 50, "timeout": "300ms", "period": "5ms", "loss_degraded": 0.15,
             "window_rounds": 4})
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()

    def rounds_per_device() -> float:  # one ICMP result per device and round
        results = d.metrics().by_label("monitord_observations_total", "result")
        return sum(results.values()) / 2

    wait_for(lambda: rounds_per_device() >= ROUNDS, 90, f"{ROUNDS} rounds of both devices")
    m = d.metrics()
    assert m("monitord_device_state", device="lossy-rtr", state="degraded") == 1
    assert m("monitord_device_state", device="clean-rtr", state="up") == 1
    labels = {"school": "62020001", "kind": "router"}
    loss = m("monitord_icmp_window_loss_ratio", device="lossy-rtr", **labels)
    assert 0.15 < loss < 0.45, loss
    assert m("monitord_icmp_window_rounds", device="lossy-rtr", **labels) == 4
    assert 0 < m("monitord_icmp_window_rtt_seconds", device="lossy-rtr", **labels) < 0.1
    assert m("monitord_icmp_window_loss_ratio", device="clean-rtr", school="62020002",
             kind="router") == 0
    text = d.metrics_text()
    assert "# TYPE monitord_icmp_window_loss_ratio gauge" in text

    # The wall lists the lossy router with its window loss (by name, never its address).
    status, body = http_get(d.url + "/wall/data.json")
    assert status == 200 and LOSSY not in body and CLEAN not in body
    [row] = json.loads(body)["lossy"]
    assert row["text"] == "เราเตอร์สายยาว · บ้านทดสอบ"
    assert 15 <= row["loss_percent"] <= 45 and row["loss_text"] == f"เสีย {row['loss_percent']}%"
    assert row["rounds_text"] == "4 รอบ"
    status, html = http_get(d.url + "/wall?lang=en")
    assert status == 200 and "Unstable devices" in html and f"{row['loss_percent']}% loss" in html

    assert d.stop() == 0
    with sqlite3.connect(d.db) as db:
        history = db.execute("SELECT old_state, new_state FROM state_transition"
                             " WHERE device_id = 'lossy-rtr' ORDER BY id").fetchall()
        clean = db.execute("SELECT old_state, new_state FROM state_transition"
                           " WHERE device_id = 'clean-rtr' ORDER BY id").fetchall()
    # Settled in DEGRADED once (maybe through UP on the very first round), no bouncing.
    assert history in ([("unknown", "degraded")],
                       [("unknown", "up"), ("up", "degraded")]), history
    assert clean == [("unknown", "up")]
