"""A real mosquitto for the MQTT tests: own port, own config file, restartable.

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
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import free_port, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
T = TypeVar("T")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """mosquitto on 127.0.0.1:``port`` with a config file this lab writes."""

    def __init__(self, workdir: Path) -> None:
        if not Path(MOSQUITTO).exists() or not shutil.which("mosquitto_pub"):
            pytest.fail("mosquitto/mosquitto-clients missing: run scripts/setup-mqtt.sh")
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 10000\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = (workdir / "mosquitto.log").open("ab")

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=self._log, stderr=self._log)
        wait_for(lambda: _listening(self.port), 10, f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        wait_for(lambda: not _listening(self.port), 10, "mosquitto to close its port")

    def close(self) -> None:
        self.stop()
        self._log.close()

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
        proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-i", client_id,
             "-t", f"lab/{client_id}/cmd", "-k", "5", "--will-topic", will_topic,
             "--will-payload", will_payload, "--will-retain", "--will-qos", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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
