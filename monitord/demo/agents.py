"""Simulated school agents for ``monitord demo``: DLTV receivers and TVs over MQTT.

In a real school a Raspberry Pi (or a Tasmota plug) watches the satellite receiver and
the TV and publishes their state (docs/mqtt.md).  Here one MQTT connection publishes for
every agent of the demo lab, in the documented ``monitord`` schema, so the demo shows the
whole path: agent → broker → MqttSource → state → incidents.  A deterministic share of
the devices misbehaves, chosen by :func:`plan`:

* ``silent``   — the agent stopped reporting: the device goes DOWN (``stale``);
* ``offline``  — the agent's last will fired: DOWN (``offline``) at once;
* ``no_lock``  — the receiver is on but has lost satellite lock (``no_signal_lock``);
* ``weak``     — signal quality below the threshold: DEGRADED;
* ``tv_off``   — a classroom TV switched off during lesson hours (``powered_off``).

Wiring (:mod:`monitord.demo.office`): each DLTV receiver/TV of the lab gets
``probes: {mqtt: mqtt_params(...)}`` and :func:`run_agents` runs next to the daemon
against the demo's own mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt

log = logging.getLogger(__name__)

Behaviour = Literal["normal", "silent", "offline", "no_lock", "weak", "tv_off"]
MQTT_KINDS = frozenset({"dltv_receiver", "tv"})
#: behaviours whose device ends up DOWN (``weak`` is DEGRADED, ``normal`` UP)
DOWN_BEHAVIOURS: frozenset[Behaviour] = frozenset({"silent", "offline", "no_lock", "tv_off"})
DEFAULT_PERIOD = 10.0


@dataclass(frozen=True, slots=True)
class Agent:
    """One simulated device agent."""

    device_id: str
    smis: str
    kind: str
    behaviour: Behaviour

    @property
    def state_topic(self) -> str:
        return f"monitord/{self.smis}/{self.device_id}/state"

    @property
    def availability_topic(self) -> str:
        return f"monitord/{self.smis}/{self.device_id}/availability"


def mqtt_params(period: float = DEFAULT_PERIOD) -> dict[str, Any]:
    """The ``probes: {mqtt: ...}`` block for a demo device (monitord schema)."""
    return {"period": f"{period:g}s", "signal_quality_degraded_db": 6.0}


def plan(devices: Iterable[Mapping[str, Any]], seed: int = 62,
         dead: Collection[str] = ()) -> list[Agent]:
    """Agents for the lab's DLTV receivers and TVs; a fixed, seeded share misbehaves.

    ``devices`` are config entries (``id``, ``school``, ``kind``).  Roughly one device in
    ten misbehaves, each fault kind at least once when there are enough devices.  Devices
    in ``dead`` (their school's network is down, or the device itself) are ``silent``: an
    agent behind a dead router cannot reach the broker.  They are not drawn for faults.
    """
    rng = random.Random(seed)
    out: list[Agent] = []
    for d in devices:
        if d.get("kind") not in MQTT_KINDS or not d.get("school"):
            continue
        behaviour: Behaviour = "silent" if d["id"] in dead else "normal"
        out.append(Agent(str(d["id"]), str(d["school"]), str(d["kind"]), behaviour))
    alive = [i for i, a in enumerate(out) if a.behaviour == "normal"]
    receivers = [i for i in alive if out[i].kind == "dltv_receiver"]
    tvs = [i for i in alive if out[i].kind == "tv"]
    faults: list[tuple[list[int], Behaviour, int]] = [
        (receivers, "no_lock", max(1, len(receivers) // 25)),
        (receivers, "weak", max(1, len(receivers) // 25)),
        (receivers, "silent", max(1, len(receivers) // 40)),
        (tvs, "tv_off", max(1, len(tvs) // 30)),
        (tvs, "silent", max(1, len(tvs) // 40)),
        (receivers + tvs, "offline", 1),
    ]
    taken: set[int] = set()
    for pool, behaviour, count in faults:
        free = [i for i in pool if i not in taken]
        for i in rng.sample(free, min(count, len(free))):
            taken.add(i)
            a = out[i]
            out[i] = Agent(a.device_id, a.smis, a.kind, behaviour)
    return out


def report(agent: Agent, now: float, rng: random.Random) -> dict[str, Any] | None:
    """One report in the monitord schema (None: this agent says nothing)."""
    if agent.behaviour in ("silent", "offline"):
        return None
    if agent.kind == "tv":
        return {"ts": round(now, 3), "tv_power": agent.behaviour != "tv_off",
                "temperature_celsius": round(rng.uniform(35, 45), 1)}
    quality = rng.uniform(9.0, 13.0)
    if agent.behaviour == "weak":
        quality = rng.uniform(3.0, 5.5)
    locked = agent.behaviour != "no_lock"
    return {
        "ts": round(now, 3),
        "receiver_power": True,
        "signal_lock": locked,
        "signal_strength_db": round(rng.uniform(55, 70) if locked else rng.uniform(20, 35), 1),
        "signal_quality_db": round(quality if locked else 0.0, 1),
        "channel": 1 + sum(agent.device_id.encode()) % 15,
        "temperature_celsius": round(rng.uniform(40, 55), 1),
    }


async def run_agents(agents: list[Agent], host: str, port: int, stop: asyncio.Event,
                     period: float = DEFAULT_PERIOD, seed: int = 62,
                     client_id: str = "monitord-demo-agents") -> None:
    """Publish every ``period`` until ``stop``; reconnect (bounded backoff) on errors."""
    rng = random.Random(seed)
    delay = 0.5
    while not stop.is_set():
        try:
            async with aiomqtt.Client(host, port, identifier=client_id) as client:
                delay = 0.5
                for a in agents:
                    word = "offline" if a.behaviour == "offline" else "online"
                    await client.publish(a.availability_topic, word, qos=1, retain=True)
                while not stop.is_set():
                    now = time.time()
                    for a in agents:
                        body = report(a, now, rng)
                        if body is not None:
                            await client.publish(a.state_topic, json.dumps(body), qos=1)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), period)
        except aiomqtt.MqttError as exc:
            log.warning("demo agents: broker %s:%d: %s; retrying in %.1fs", host, port, exc,
                        delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
