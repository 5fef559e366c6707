"""Hostile MQTT input against a real mosquitto (issue 12): a flooding publisher
(finding 6), deeply nested and oversized values (finding 7), a failing sink, and a
bounded fuzz of the payload decoder (monitord/probes/mqtt/decode.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitord.domain.state import State
from monitord.probes.mqtt import REJECT_REASONS
from monitord.probes.mqtt.decode import (
    FIELD_NAMES,
    PRESETS,
    Rejected,
    compile_fields,
    convert,
    decode_json,
    decode_scalar,
    extract,
    to_timestamp,
)
from tests.mqtt_lab import Broker, dev, state_topic, until

FLOOD_MESSAGES = 150_000
QUEUE_LIMIT = 200


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * 4096


def _mqtt_lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "monitord.probes.mqtt" and needle in r.getMessage()]


# ---------------------------------------------------------------------------- finding 6


async def test_flood_is_bounded_counted_and_the_loop_keeps_its_schedule(
        broker: Broker, run_source: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """150,000 messages as fast as mosquitto_pub can send them: the incoming queue stays
    within max_queued_incoming_messages, what did not fit is counted as overload (and
    logged rate-limited), a 20 ms timer in the same event loop stays on time, memory
    stays flat, and a normal report afterwards is applied."""
    caplog.set_level(logging.WARNING, logger="monitord.probes.mqtt")
    h = await run_source([dev("rx1", period=3600)],
                         max_queued_incoming_messages=QUEUE_LIMIT, rejected_log_per_minute=5)
    src = h.source
    lines = tmp_path / "flood.txt"
    lines.write_bytes(b"{}\n" * FLOOD_MESSAGES)  # valid heartbeats: the full ingest path

    worst_lag = 0.0
    most_queued = 0
    rss_before = peak_rss = _rss_bytes()

    async def timer() -> None:
        nonlocal worst_lag, most_queued, peak_rss
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.02)
            worst_lag = max(worst_lag, time.monotonic() - started - 0.02)
            most_queued = max(most_queued, src.queued)
            peak_rss = max(peak_rss, _rss_bytes())

    ticking = asyncio.create_task(timer())
    # Lower priority: on a 2-core test machine the flooding publisher stands in for a
    # device elsewhere on the network, not for a process competing with the daemon.
    with lines.open("rb") as stdin:
        pub = await asyncio.create_subprocess_exec(
            "nice", "-n", "10", "mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
            "-q", "0", "-t", state_topic("rx1"), "-l", stdin=stdin)
        try:
            await asyncio.wait_for(pub.wait(), 60)
        finally:
            if pub.returncode is None:
                pub.kill()
                await pub.wait()
    # Let the daemon side catch up with what the broker passed on.
    last = -1
    deadline = time.monotonic() + 30
    while src.stats.messages_received != last and time.monotonic() < deadline:
        last = src.stats.messages_received
        await asyncio.sleep(0.5)
    ticking.cancel()

    st = src.stats
    print(f"received={st.messages_received} applied={st.messages_applied} "
          f"overload={st.rejected['overload']} worst_lag={worst_lag:.3f}s "
          f"most_queued={most_queued} rss_growth={(peak_rss - rss_before) >> 20} MiB")
    assert st.rejected["overload"] > 0, "a flood this size must overflow a 200-message queue"
    assert st.messages_applied > 1000  # it kept working through the flood
    assert most_queued <= QUEUE_LIMIT
    assert worst_lag < 1.0, f"event loop blocked for {worst_lag:.2f}s"
    assert peak_rss - rss_before < 64 << 20
    overload_lines = _mqtt_lines(caplog, "overload")
    assert 1 <= len(overload_lines) <= 5
    assert set(st.rejected) == set(REJECT_REASONS)

    broker.publish(state_topic("rx1"), {"signal_lock": True, "channel": 7})
    await until(lambda: (o := h.last("rx1")) is not None and o.values.get("channel") == 7.0,
                20, "a normal report applied after the flood")
    assert h.state("rx1") is State.UP


# ---------------------------------------------------------------------------- finding 7


def _deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_deeply_nested_and_huge_values_are_rejected_with_bounded_logs(
        broker: Broker, run_source: Any, caplog: pytest.LogCaptureFixture) -> None:
    """1,000-deep values (within orjson's 1,024 limit), 2,000-deep JSON and a 10,000-
    character value, each sent several times: counted as rejected, at most
    rejected_log_per_minute log lines, no traceback; a good report still applies."""
    caplog.set_level(logging.DEBUG, logger="monitord.probes.mqtt")
    h = await run_source([dev("rx1", period=3600),
                          dev("e1", format="esphome", period=3600,
                              fields={"signal_lock": "binary_sensor/lock"})],
                         rejected_log_per_minute=4)
    deep = _deep_list(1000)
    hostile = [
        (state_topic("rx1"), b'{"signal_lock": ' + deep + b"}"),
        (state_topic("rx1"), b'{"ts": ' + deep + b', "signal_lock": true}'),
        (state_topic("rx1"), b'{"note": ' + deep + b', "signal_lock": true}'),
        (state_topic("rx1"), deep),
        (state_topic("rx1"), _deep_object(1000)),
        (state_topic("rx1"), _deep_list(2000)),
        ("e1/binary_sensor/lock/state", deep),  # a per-entity (ESPHome) topic
    ]
    rounds = 3
    for _ in range(rounds):
        for topic, payload in hostile:
            broker.publish(topic, payload)
    long_value = json.dumps({"signal_lock": "x" * 10_000}).encode()
    broker.publish(state_topic("rx1"), long_value)
    total = rounds * len(hostile) + 1
    await until(lambda: sum(h.source.stats.rejected.values()) >= total, 20, "rejections")

    r = h.source.stats.rejected
    assert r["malformed_json"] == rounds * len(hostile)
    assert r["wrong_type"] == 1
    assert h.source.stats.messages_applied == 0
    mine = [rec for rec in caplog.records if rec.name == "monitord.probes.mqtt"]
    rejected_lines = [rec for rec in mine if "rejected message" in rec.getMessage()]
    assert len(rejected_lines) == 4  # rejected_log_per_minute; the rest only counted
    assert not any(rec.exc_info for rec in mine), "no traceback for bad input"
    assert not any(rec.levelno >= logging.ERROR for rec in mine)
    assert all(len(rec.getMessage()) < 600 for rec in mine)
    assert "nested deeper than" in caplog.text

    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
    await until(lambda: h.state("rx1") is State.UP, 10, "rx1 UP after the hostile input")


async def test_a_failing_sink_is_logged_rate_limited(broker: Broker, run_source: Any,
                                                     caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    """Every per-message log path is rate-limited: a sink that fails on every batch
    (here: every message) logs at most rejected_log_per_minute lines, and ingest goes on."""
    caplog.set_level(logging.DEBUG, logger="monitord.probes.mqtt")
    h = await run_source([dev("rx1", period=3600)], rejected_log_per_minute=3)
    calls = []

    def failing_sink(batch: list[Any]) -> None:
        calls.append(len(batch))
        raise RuntimeError("storage is failing")

    h.source.sink = failing_sink  # the daemon's sink, failing
    sent = 12
    for i in range(sent):
        broker.publish(state_topic("rx1"), {"ts": time.time(), "channel": i})
        await until(lambda i=i: h.source.stats.messages_applied > i, 10, f"message {i}")
    failures = [rec for rec in caplog.records
                if rec.name == "monitord.probes.mqtt" and "sink failed" in rec.getMessage()]
    assert len(calls) == sent  # one batch per message: every one failed
    assert 1 <= len(failures) <= 3


# ---------------------------------------------------------------------------- fuzz

_TZ = ZoneInfo("Asia/Bangkok")
_SPECS = [compile_fields(p.fields) for p in PRESETS.values()]
_SPECS.append(compile_fields({"ts": "a.b[0]", "signal_lock": "x[1].y",
                              "channel": 'StatusSNS["DS18B20"].Temperature'}))
_VALID = [
    b'{"ts": 1795400100.5, "receiver_power": true, "signal_lock": true, '
    b'"signal_strength_db": 62.5, "signal_quality_db": 11.8, "channel": 3, '
    b'"temperature_celsius": 47.0, "tv_power": "on", "power_watts": 61.2, '
    b'"uptime_seconds": 86400}',
    b'{"Time": "2026-11-23T09:15:00", "POWER": "ON", "UptimeSec": 12345}',
    b'{"id": 0, "output": true, "apower": 63.4, "temperature": {"tC": 41.2, "tF": 106.2}}',
    b'{"ts": "2026-11-23T09:15:00+07:00", "signal_lock": "locked"}',
    b"{}", b"23.5", b"ON", b'"offline"', b"true", b"1795400100123",
]
_TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u0000", b"\xff", b"\xc3",
           b"NaN", b"-Infinity", b"1e400", b"-0", b"1" * 30, b"null", b"true", b"\x00",
           b'"ts"', b'"signal_lock"', b'"channel"', b'"temperature"', b'"tC"']
_HOSTILE = [_deep_list(1000), _deep_list(40), _deep_object(500), b'"' + b"y" * 5000 + b'"',
            b"9" * 400, b"-1e308", b'"9999-99-99T99:99"', b'"0001-01-01"', b"1e20"]


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


_DEEP_VALUES = [_nested(1000), _nested(5000), {"a": _nested(2000)}]


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 9:  # only where a value is passed in directly: JSON bytes cannot hold it
        return rng.choice(_DEEP_VALUES)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2**63, -(2**70), 10**rng.randrange(40), 10**400])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1e308, 5e-324, math.nan, math.inf, -math.inf,
                           rng.uniform(-1e6, 1e6)])
    if kind in (4, 5):
        return rng.choice(["", "on", "OFF", "locked", "2026-11-23T09:15:00Z", "x" * 300,
                           "\u0e1c\u0e39\u0e49", "\ud800" if rng.random() < 0.1 else "1.5"])
    if kind in (6, 7):
        return {rng.choice([*FIELD_NAMES, "Time", "POWER", "temperature", "tC", "a", "x",
                            ""]): _random_json(rng, depth + 1)
                for _ in range(rng.randrange(6))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def _input(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind < 4:  # a valid payload, mutated
        data = bytearray(rng.choice(_VALID))
        for _ in range(rng.randrange(1, 5)):
            op = rng.randrange(4)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            elif op == 1:
                data[pos:pos] = rng.choice(_TOKENS + _HOSTILE[:4])
            elif op == 2:
                del data[pos:pos + rng.randrange(1, 8)]
            else:
                data = data[:pos]
        return bytes(data)
    if kind < 6:  # random bytes
        return rng.randbytes(rng.randrange(64))
    if kind < 8:  # a random JSON structure, fields of the schema included
        try:
            return json.dumps(_random_json(rng), allow_nan=True).encode("utf-8",
                                                                       "surrogatepass")
        except (ValueError, OverflowError, RecursionError):
            return b"[]"
    # a hostile value where the schema expects a field
    name = rng.choice(sorted(FIELD_NAMES))
    return b'{"' + name.encode() + b'": ' + rng.choice(_HOSTILE) + b"}" \
        if rng.random() < 0.7 else rng.choice(_HOSTILE)


def test_fuzz_decoder_only_raises_rejected() -> None:
    """25,000 generated payloads (fixed seed) through every decoding entry point, and
    25,000 generated values through the converters: the only exception is Rejected with a
    known reason and a short detail; every value that comes out is a finite float."""
    rng = random.Random(20261123)
    count = 25_000
    started = time.monotonic()
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(count):
        payload = _input(rng)
        calls = [lambda p=payload: [extract(decode_json(p), ts, fields, _TZ)
                                    for ts, fields in _SPECS]]
        calls += [lambda p=payload, n=name: convert(n, v)
                  if (v := decode_scalar(p)) is not None else None
                  for name in sorted(FIELD_NAMES - {"ts"})]
        calls.append(lambda p=payload: to_timestamp(decode_scalar(p), _TZ))
        # Decoded values straight into the converters, including what orjson never
        # returns but the stdlib fallback does (integers beyond a float) and deep lists.
        value = _random_json(rng)
        calls.append(lambda v=value: convert(rng.choice(sorted(FIELD_NAMES - {"ts"})), v))
        calls.append(lambda v=value: to_timestamp(v, _TZ))
        for call in calls:
            try:
                result = call()
            except Rejected as rej:
                outcomes["rejected"] += 1
                assert rej.reason in REJECT_REASONS, (payload[:200], rej.reason)
                assert len(rej.detail) <= 120, (payload[:200], rej.detail[:200])
                continue
            except Exception as exc:  # anything else: the point of the test
                pytest.fail(f"{type(exc).__name__} escaped for payload {payload[:120]!r}")
            outcomes["ok"] += 1
            for ts, values in result if isinstance(result, list) else []:
                assert ts is None or math.isfinite(ts)
                assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
            if isinstance(result, float):
                assert math.isfinite(result)
    assert outcomes["ok"] > 1000 and outcomes["rejected"] > 1000, outcomes
    assert time.monotonic() - started < 30
