"""MQTT ingest benchmark: monitord's MqttSource against mosquitto_sub, same stream, same run.

What it does (all on loopback, against a mosquitto it starts on a free port with its own
config file; a system broker on 1883 is never touched):

1. Register two persistent QoS 1 sessions on ``monitord/+/+/state``: mosquitto_sub's
   (``-c -i bench-ref -E``) and monitord's (an :class:`MqttSource` connects, subscribes
   and disconnects cleanly).
2. Publish ``--messages`` JSON reports from ``--devices`` simulated DLTV receivers
   (200 schools × 10 receivers by default) at QoS 1 over ``--publishers`` connections,
   pipelined, waiting for every PUBACK.  The broker queues them for both offline
   sessions (``max_queued_messages 0``: no limit, so nothing is dropped).
3. Drain mosquitto_sub's session (``-C N``) and time it, process start to exit.
4. Drain monitord's session with the real :class:`MqttSource` and time it from
   ``run()`` to the moment every message has been decoded, validated, mapped to its
   device and folded into a :class:`monitord.domain.state.StateTracker` by the sink, exactly as
   the daemon will.  ``uptime_seconds`` carries the message's sequence number, so the
   sink can tell lost messages from duplicates.

Draining a backlog measures what the subscriber can sustain without the publisher's
CPU competing on the 2 cores.  ``--plain`` also times a plain aiomqtt subscriber
(``async for message in client.messages`` + ``json.loads``) on a third session.

Last line: ``mqtt_ingest messages=N applied=N lost=0 msgs_per_s=X
mosquitto_sub_msgs_per_s=Y ratio=X/Y``.  Exit status 1 when anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitord.domain.state import DeviceSpec, StateTracker  # noqa: E402
from monitord.probes.base import Observation  # noqa: E402
from monitord.probes.mqtt import MqttDevice, MqttDeviceParams, MqttSettings, MqttSource  # noqa: E402

FILTER = "monitord/+/+/state"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- broker


@contextlib.contextmanager
def broker(workdir: Path, inflight: int) -> Iterator[int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 0\n"       # no limit: QoS 1 backlog is kept whole
        f"max_inflight_messages {inflight}\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n",
        encoding="utf-8",
    )
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {(workdir / 'mosquitto.log')}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


# --------------------------------------------------------------------------- publisher


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _connect_packet(client_id: str) -> bytes:
    body = _str("MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + _str(client_id)
    return b"\x10" + _varlen(len(body)) + body


def _publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    body = _str(topic) + struct.pack("!H", mid) + payload
    return b"\x32" + _varlen(len(body)) + body


def publish_all(port: int, streams: list[list[tuple[str, bytes]]], timeout: float) -> int:
    """Publish each stream over its own connection at QoS 1; return PUBACKs received.

    A pipelined raw-socket publisher: mosquitto_pub -l publishes to one topic only, and
    2,000 publisher processes would measure process start-up, not ingest.
    """
    acks = [0] * len(streams)

    def one(i: int, msgs: list[tuple[str, bytes]]) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(_connect_packet(f"bench-pub-{os.getpid()}-{i}"))
            connack = sock.recv(4)
            if connack[:2] != b"\x20\x02" or connack[3:4] != b"\x00":
                raise RuntimeError(f"publisher {i}: bad CONNACK {connack!r}")
            data = b"".join(_publish_packet(t, p, (n % 65535) + 1)
                            for n, (t, p) in enumerate(msgs))
            need = 4 * len(msgs)
            got = bytearray()

            def reader() -> None:
                deadline = time.monotonic() + timeout
                while len(got) < need and time.monotonic() < deadline:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return
                    got.extend(chunk)

            th = threading.Thread(target=reader, daemon=True)
            th.start()
            sock.sendall(data)
            th.join(timeout)
            acks[i] = sum(1 for k in range(0, len(got) - 3, 4) if got[k] == 0x40)

    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return sum(acks)


# --------------------------------------------------------------------------- workload


def build_devices(n: int) -> list[MqttDevice]:
    params = MqttDeviceParams(period=3600.0)  # nothing goes stale during the run
    out = []
    for i in range(n):
        smis = f"6202{i // 10 + 1:04d}"
        out.append(MqttDevice(f"{smis}-rx{i % 10 + 1}", smis, "dltv_receiver", params))
    return out


def build_streams(devices: list[MqttDevice], messages: int, publishers: int,
                  t0: float) -> list[list[tuple[str, bytes]]]:
    streams: list[list[tuple[str, bytes]]] = [[] for _ in range(publishers)]
    for k in range(messages):
        i = k % len(devices)
        seq = k // len(devices)
        dev = devices[i]
        payload = json.dumps({
            "ts": round(t0 + seq * 0.001, 3),
            "signal_lock": (k % 50) != 7,          # 2 % of reports: no lock
            "signal_strength_db": 60.0 + (k % 13) * 0.5,
            "signal_quality_db": 4.5 if k % 20 == 3 else 11.0 + (k % 7) * 0.25,
            "channel": 1 + i % 15,
            "temperature_celsius": 41.5,
            "uptime_seconds": seq,               # the sequence number, to count losses
        }, separators=(",", ":")).encode()
        streams[i % publishers].append((f"monitord/{dev.smis}/{dev.device_id}/state",
                                        payload))
    return streams


# --------------------------------------------------------------------------- subscribers


def run_mosquitto_sub(port: int, messages: int, timeout: float, out: Path) -> tuple[float, int]:
    t = time.perf_counter()
    with out.open("wb") as f:
        proc = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-c", "-i", "bench-ref",
             "-q", "1", "-t", FILTER, "-C", str(messages)],
            stdout=f, stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    wall = time.perf_counter() - t
    with out.open("rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    if proc.returncode != 0:
        print(f"# mosquitto_sub exited {proc.returncode}", file=sys.stderr)
    return wall, lines


class Sink:
    """The daemon's path: every observation into a StateTracker."""

    def __init__(self, devices: list[MqttDevice], expected: int) -> None:
        self.tracker = StateTracker()
        self.tracker.configure(DeviceSpec(d.device_id, "mqtt", 1, 1) for d in devices)
        self.expected = expected
        self.seen: set[tuple[str, float]] = set()
        self.applied = 0
        self.duplicates = 0
        self.transitions = 0
        self.done = asyncio.Event()

    def __call__(self, batch: list[Observation]) -> None:
        apply = self.tracker.apply
        seen = self.seen
        for obs in batch:
            if apply(obs) is not None:
                self.transitions += 1
            seq = obs.values.get("uptime_seconds")
            if seq is None:
                continue
            self.applied += 1
            key = (obs.device_id, seq)
            if key in seen:
                self.duplicates += 1
            else:
                seen.add(key)
        if len(seen) >= self.expected:
            self.done.set()


async def register_monitord(settings: MqttSettings, devices: list[MqttDevice]) -> None:
    source = MqttSource(settings, lambda _b: None)
    source.set_devices(devices)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    deadline = time.monotonic() + 10
    while not source.broker_up:
        if time.monotonic() > deadline or task.done():
            raise RuntimeError(f"MqttSource did not connect: {source.stats.last_error}")
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)


async def drain_monitord(settings: MqttSettings, devices: list[MqttDevice], messages: int,
                         timeout: float, read_ahead: bool) -> tuple[float, float, Sink,
                                                                    MqttSource]:
    sink = Sink(devices, messages)
    source = MqttSource(settings, sink)
    source.read_ahead = read_ahead
    source.set_devices(devices)
    stop = asyncio.Event()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    task = asyncio.create_task(source.run(stop))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sink.done.wait(), timeout)
    wall = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    await asyncio.wait_for(task, 10)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return wall, cpu, sink, source


async def drain_plain(port: int, messages: int, timeout: float) -> tuple[float, int]:
    """The naive baseline: plain aiomqtt iteration + json.loads, nothing else."""
    import aiomqtt

    count = 0
    t = time.perf_counter()
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-plain",
                              clean_session=False) as client:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for message in client.messages:
                    json.loads(message.payload)  # type: ignore[arg-type,unused-ignore]
                    count += 1
                    if count >= messages:
                        break
    return time.perf_counter() - t, count


async def register_plain(port: int) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-plain",
                              clean_session=False) as client:
        await client.subscribe(FILTER, qos=1)


# --------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="mqtt_ingest_"))
    try:
        with broker(workdir, args.inflight) as port:
            settings = MqttSettings(host="127.0.0.1", port=port, client_id="bench-monitord",
                                    max_clock_skew=3600.0)
            devices = build_devices(args.devices)
            await asyncio.to_thread(
                subprocess.run, ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-c",
                                 "-i", "bench-ref", "-q", "1", "-t", FILTER, "-E"],
                check=True, timeout=10, capture_output=True)
            await register_monitord(settings, devices)
            if args.plain:
                await register_plain(port)
            t0 = time.time()
            streams = build_streams(devices, args.messages, args.publishers, t0)
            tp = time.perf_counter()
            acked = await asyncio.to_thread(publish_all, port, streams, args.timeout)
            pub_wall = time.perf_counter() - tp
            print(f"# published {acked}/{args.messages} (PUBACKed) over {args.publishers} "
                  f"connections in {pub_wall:.2f}s", flush=True)

            ref_wall, ref_count = await asyncio.to_thread(
                run_mosquitto_sub, port, args.messages, args.timeout, workdir / "ref.out")
            print(f"# mosquitto_sub: {ref_count} messages in {ref_wall:.3f}s "
                  f"= {ref_count / ref_wall:,.0f}/s", flush=True)

            plain_line = ""
            if args.plain:
                pw, pc = await drain_plain(port, args.messages, args.timeout)
                plain_line = f"{pc} messages in {pw:.3f}s = {pc / pw:,.0f}/s"
                print(f"# plain aiomqtt + json.loads: {plain_line}", flush=True)

            wall, cpu, sink, source = await drain_monitord(
                settings, devices, args.messages, args.timeout, not args.no_read_ahead)
            st = source.stats
            unique = len(sink.seen)
            lost = args.messages - unique
            rate = unique / wall
            ref_rate = ref_count / ref_wall
            counts = {s.value: n for s, n in sink.tracker.counts().items() if n}
            print(f"# monitord: {unique} unique of {sink.applied} applied in {wall:.3f}s, "
                  f"cpu_s={cpu:.2f}, duplicates={sink.duplicates}, batches={st.batches} "
                  f"(avg {st.messages_received / max(1, st.batches):.0f} msgs), "
                  f"rejected={sum(st.rejected.values())}, ignored={sum(st.ignored.values())}, "
                  f"read_ahead={not args.no_read_ahead}, transitions={sink.transitions}, "
                  f"states={counts}", flush=True)
            goal = "goal met" if rate >= 20000 else ("resolved" if rate >= 10000 else "BELOW")
            print(f"# goals: >=10,000/s resolves, >=20,000/s goal: {goal}; lost=0 "
                  f"{'ok' if lost == 0 else 'FAILED'}")
            print(f"mqtt_ingest messages={args.messages} applied={sink.applied} lost={lost} "
                  f"msgs_per_s={rate:.0f} mosquitto_sub_msgs_per_s={ref_rate:.0f} "
                  f"ratio={rate / ref_rate:.3f}", flush=True)
            return 0 if lost == 0 and ref_count == args.messages else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=2_000)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=1000,
                    help="broker max_inflight_messages (same for both subscribers)")
    ap.add_argument("--timeout", type=float, default=120.0, help="per phase")
    ap.add_argument("--plain", action="store_true", help="also time plain aiomqtt")
    ap.add_argument("--no-read-ahead", action="store_true",
                    help="let paho read the socket itself (to compare)")
    args = ap.parse_args()
    if args.messages < 1 or args.devices < 1 or args.publishers < 1:
        ap.error("counts must be positive")
    print(f"# machine: {os.cpu_count()} cores, {platform.release()}, Python "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# workload: {args.messages} messages, {args.devices} devices, QoS 1, "
          f"persistent sessions, broker max_inflight_messages={args.inflight}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
