"""A real mosquitto for the MQTT tests: own port, own config file, restartable.

A pytest plugin (registered in tests/conftest.py): the ``broker`` and ``run_source``
fixtures come from here.  The broker is the demo's (:mod:`monitord.demo.broker`).
A system broker on 1883 (if any) is never used.  Publishing goes through the real
``mosquitto_pub``; an agent with a last will is a real ``mosquitto_sub`` process that the
test kills with SIGKILL, so the broker (not the test) publishes the will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitord.demo import processes
from monitord.demo.broker import DemoBroker
from monitord.domain.state import DeviceSpec, State, StateTracker
from monitord.probes.base import Observation
from monitord.probes.mqtt import MqttDevice, MqttDeviceParams, MqttSettings, MqttSource

T = TypeVar("T")


class Broker(DemoBroker):
    """The demo's mosquitto (:class:`~monitord.demo.broker.DemoBroker`) on a port fixed
    at construction, restartable, with a real client to publish and to play an agent."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, port=processes.free_port())
        if not Path(self.executable).exists() or not shutil.which("mosquitto_pub"):
            pytest.fail("mosquitto/mosquitto-clients missing: run scripts/setup-mqtt.sh")

    def start(self, timeout: float = 10.0) -> bool:
        assert self.proc is None
        assert super().start(timeout), self.why_not
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        super().stop()
        processes.wait_closed(self.port, 10)

    def close(self) -> None:
        self.stop()

    def publish(self, topic: str, payload: str | bytes | dict[str, Any], *,
                retain: bool = False, qos: int = 1) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", str(qos),
               "-t", topic, "-s"]
        if retain:
            cmd.append("-r")
        subprocess.run(cmd, input=data, check=True, timeout=10, capture_output=True)

    @contextlib.contextmanager
    def agent_with_will(self, will_topic: str, will_payload: str = "offline",
                        client_id: str = "agent") -> Iterator[Callable[[], None]]:
        """A connected client whose last will is ``will_payload`` (retained) on
        ``will_topic``; call the yielded function to kill it without DISCONNECT."""
        proc = processes.spawn(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-i", client_id,
             "-t", f"lab/{client_id}/cmd", "-k", "5", "--will-topic", will_topic,
             "--will-payload", will_payload, "--will-retain", "--will-qos", "1"])

        def kill() -> None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

        try:
            yield kill
        finally:
            if proc.poll() is None:
                kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.close()


async def until(predicate: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                interval: float = 0.02) -> T:
    """Async wait for a condition with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------- MqttSource

SMIS = "62020001"


@dataclass
class MqttHarness:
    """A real MqttSource against the lab's broker, feeding a StateTracker."""

    source: MqttSource
    tracker: StateTracker
    seen: list[Observation] = field(default_factory=list)
    broker_events: list[bool] = field(default_factory=list)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        self.stop_event.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)

    def sink(self, batch: list[Observation]) -> None:
        for obs in batch:
            self.seen.append(obs)
            self.tracker.apply(obs)

    def of(self, device: str) -> list[Observation]:
        return [o for o in self.seen if o.device_id == device]

    def last(self, device: str) -> Observation | None:
        mine = self.of(device)
        return mine[-1] if mine else None

    def state(self, device: str) -> State:
        st_ = self.tracker.status(device)
        assert st_ is not None
        return st_.state


def dev(device_id: str, smis: str | None = SMIS, kind: str = "dltv_receiver",
        **params: Any) -> MqttDevice:
    return MqttDevice(device_id, smis, kind, MqttDeviceParams(**params))


@pytest.fixture
async def run_source(broker: Broker) -> AsyncIterator[Callable[..., Any]]:
    """Start MqttSources on ``broker`` (``await run_source(devices)`` → a harness);
    all are stopped after the test."""
    started: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(devices: list[MqttDevice], wait_up: bool = True,
                    **overrides: Any) -> MqttHarness:
        opts: dict[str, Any] = {"host": "127.0.0.1", "port": broker.port,
                                "client_id": f"test-{len(started)}", "check_interval": 0.05,
                                "reconnect_min": 0.05, "reconnect_max": 0.3}
        opts.update(overrides)
        tracker = StateTracker()
        tracker.configure(DeviceSpec(d.device_id, "mqtt", 1, 1) for d in devices)
        h = MqttHarness(MqttSource(MqttSettings(**opts), lambda b: None), tracker)
        h.source = MqttSource(MqttSettings(**opts), h.sink,
                              on_broker_state=lambda up, _why: h.broker_events.append(up))
        h.source.set_devices(devices)
        h.task = asyncio.create_task(h.source.run(h.stop_event))
        started.append((h.stop_event, h.task))
        if wait_up:
            await until(lambda: h.source.broker_up, 10, "source connected")
        return h

    yield start
    for stop, _task in started:
        stop.set()
    for _stop, task in started:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def state_topic(device: str, smis: str = SMIS) -> str:
    return f"monitord/{smis}/{device}/state"


def avail_topic(device: str, smis: str = SMIS) -> str:
    return f"monitord/{smis}/{device}/availability"
