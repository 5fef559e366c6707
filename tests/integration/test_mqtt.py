"""MQTT source against a real mosquitto on loopback: schema, staleness, retained
messages, LWT, broker restart, bad input, presets, and a hypothesis fuzz."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
from typing import Any

import aiomqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitord.domain.state import DeviceSpec, State
from monitord.probes.mqtt import (
    REJECT_REASONS,
    MqttDevice,
    MqttDeviceParams,
    MqttSettings,
    MqttSource,
)
from monitord.probes.mqtt.decode import parse_path
from tests.mqtt_lab import (
    Broker,
    avail_topic,
    dev,
    state_topic,
    until,
)

# ---------------------------------------------------------------------------- semantics


async def test_fresh_report_is_up_with_values(broker: Broker, run_source: Any) -> None:
    h = await run_source([dev("rx1")])
    broker.publish(state_topic("rx1"), {
        "ts": time.time(), "signal_lock": True, "signal_strength_db": 63.5,
        "signal_quality_db": 11.2, "channel": 3, "temperature_celsius": 44.0})
    obs = await until(lambda: h.last("rx1"), 5, "an observation")
    assert obs.ok and obs.probe == "mqtt" and not obs.degraded and obs.complete
    assert obs.values["signal_lock"] == 1.0
    assert obs.values["signal_quality_db"] == 11.2
    assert obs.values["channel"] == 3.0
    assert 0 <= obs.values["message_age_seconds"] < 5
    assert h.state("rx1") is State.UP
    assert h.source.stats.messages_applied == 1


async def test_no_lock_is_a_fault_distinct_from_unreachable(broker: Broker,
                                                          run_source: Any) -> None:
    h = await run_source([dev("rx1"), dev("rx2"), dev("tv1", kind="tv")])
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": False,
                                        "receiver_power": True})
    broker.publish(state_topic("rx2"), {"ts": time.time(), "signal_lock": True,
                                        "signal_quality_db": 3.5})
    broker.publish(state_topic("tv1"), {"ts": time.time(), "tv_power": "OFF"})
    await until(lambda: all(h.last(d) for d in ("rx1", "rx2", "tv1")), 5, "3 observations")
    rx1, rx2, tv1 = h.last("rx1"), h.last("rx2"), h.last("tv1")
    assert rx1 is not None and rx2 is not None and tv1 is not None
    assert not rx1.ok and rx1.reason == "no_signal_lock"
    assert rx1.info["fault"] == "no_signal_lock" and rx1.complete
    assert rx2.ok and rx2.degraded == "low_signal_quality"
    assert not tv1.ok and tv1.reason == "powered_off"
    assert h.state("rx1") is State.DOWN
    assert h.state("rx2") is State.DEGRADED


async def test_silence_goes_stale_then_down(broker: Broker, run_source: Any) -> None:
    h = await run_source([dev("rx1", period=0.2, stale_factor=2.0)])
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
    await until(lambda: h.state("rx1") is State.UP, 5, "UP")
    t = time.monotonic()
    await until(lambda: h.state("rx1") is State.DOWN, 5, "DOWN after silence")
    assert time.monotonic() - t >= 0.25  # not before period × factor (0.4 s from ts)
    last = h.last("rx1")
    assert last is not None and last.reason == "stale" and not last.ok
    # A new report brings it back at once (success_threshold 1 in this test).
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
    await until(lambda: h.state("rx1") is State.UP, 5, "UP again")


async def test_device_that_never_reports_goes_stale(broker: Broker, run_source: Any) -> None:
    h = await run_source([dev("rx9", period=0.1, stale_factor=2.0)])
    await until(lambda: h.state("rx9") is State.DOWN, 5, "DOWN")
    assert all(not o.ok for o in h.of("rx9"))


async def test_retained_stale_message_does_not_count_as_up(broker: Broker,
                                                          run_source: Any) -> None:
    # The agent died an hour ago; its last (retained) report is still on the broker.
    old = time.time() - 3600
    broker.publish(state_topic("rx1"), {"ts": old, "signal_lock": True}, retain=True)
    # A retained report without a timestamp proves nothing about its age either.
    broker.publish(state_topic("rx2"), {"signal_lock": True}, retain=True)
    # A recent retained report is fine.
    broker.publish(state_topic("rx3"), {"ts": time.time(), "signal_lock": True}, retain=True)
    h = await run_source([dev(d, period=60) for d in ("rx1", "rx2", "rx3")])
    await until(lambda: h.last("rx1") and h.last("rx3"), 5, "retained messages")
    rx1 = h.last("rx1")
    assert rx1 is not None and not rx1.ok and rx1.reason == "stale"
    assert rx1.values["message_age_seconds"] > 3500
    assert h.state("rx1") is State.DOWN
    assert h.state("rx3") is State.UP
    await until(lambda: h.source.stats.ignored["retained_unverified"] >= 1, 5, "rx2 ignored")
    assert not any(o.ok for o in h.of("rx1") + h.of("rx2"))
    assert h.source.stats.ignored["old"] >= 1


async def test_lwt_offline_is_honoured_at_once(broker: Broker, run_source: Any) -> None:
    h = await run_source([dev("rx1", period=3600)])
    with broker.agent_with_will(avail_topic("rx1"), "offline", "agent-rx1") as kill:
        broker.publish(avail_topic("rx1"), "online", retain=True)
        broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
        await until(lambda: h.state("rx1") is State.UP, 5, "UP")
        kill()  # no DISCONNECT: the broker publishes the will
        t = time.monotonic()
        await until(lambda: h.state("rx1") is State.DOWN, 5, "DOWN from LWT")
        assert time.monotonic() - t < 3  # at once, not after period × factor (2.5 h)
    last = h.last("rx1")
    assert last is not None and last.reason == "offline" and last.info["fault"] == "offline"
    # The agent comes back: "online" with a still-fresh last report → UP again now.
    broker.publish(avail_topic("rx1"), "online", retain=True)
    await until(lambda: h.state("rx1") is State.UP, 5, "UP after online")


async def test_retained_offline_at_startup_is_down(broker: Broker, run_source: Any) -> None:
    broker.publish(avail_topic("rx1"), "offline", retain=True)
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True}, retain=True)
    h = await run_source([dev("rx1", period=3600)])
    await until(lambda: h.state("rx1") is State.DOWN, 5, "DOWN")
    # Whatever order the broker replays retained messages in, no ok=True while offline.
    await until(lambda: h.source.stats.messages_received >= 2, 5, "both retained")
    assert h.state("rx1") is State.DOWN


# ---------------------------------------------------------------------------- connection


async def test_broker_restart_gives_unknown_not_down(broker: Broker, run_source: Any) -> None:
    h = await run_source([dev("rx1", period=0.5, stale_factor=2.0), dev("rx2", period=60)])
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
    broker.publish(state_topic("rx2"), {"ts": time.time(), "signal_lock": True})
    await until(lambda: h.state("rx1") is State.UP and h.state("rx2") is State.UP, 5, "UP")
    broker.stop()
    await until(lambda: not h.source.broker_up, 10, "broker down noticed")
    await until(lambda: h.state("rx1") is State.UNKNOWN and h.state("rx2") is State.UNKNOWN,
                5, "UNKNOWN")
    assert h.broker_events == [True, False]
    # Longer than rx1's stale window: still UNKNOWN (the broker is down, not the device).
    n = len(h.seen)
    await until(lambda: len(h.seen) >= n + 4, 5, "repeated unknown observations")
    assert h.state("rx1") is State.UNKNOWN
    outage = h.seen[n:]
    assert all(o.unknown and not o.complete and o.reason == "broker_unreachable"
               for o in outage)
    broker.start()
    await until(lambda: h.source.broker_up, 15, "reconnected")
    assert h.broker_events == [True, False, True]
    assert h.source.stats.reconnects >= 1
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
    await until(lambda: h.state("rx1") is State.UP, 5, "UP after restart")
    # rx2 has a full window again after the outage: not stale straight away.
    assert h.state("rx2") is State.UNKNOWN


async def test_broker_unreachable_from_the_start(run_source: Any, broker: Broker) -> None:
    broker.stop()
    h = await run_source([dev("rx1")], wait_up=False)
    await until(lambda: h.state("rx1") is State.UNKNOWN and h.of("rx1"), 5, "unknown obs")
    assert h.broker_events == [False]
    assert h.source.stats.connect_failures >= 1 and not h.source.broker_up
    broker.start()
    await until(lambda: h.source.broker_up, 10, "connected")


async def test_persistent_session_keeps_messages_while_away(broker: Broker,
                                                          run_source: Any) -> None:
    devices = [dev("rx1", period=3600)]
    h1 = await run_source(devices, client_id="persist")
    await h1.stop()  # clean disconnect: the broker keeps the session (clean_session=false)
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})  # not retained
    h2 = await run_source(devices, client_id="persist")
    await until(lambda: h2.state("rx1") is State.UP, 5, "queued QoS 1 message delivered")
    assert h2.source.stats.messages_applied == 1


# ---------------------------------------------------------------------------- bad input


async def test_bad_input_is_counted_and_never_crashes(broker: Broker,
                                                     run_source: Any) -> None:
    h = await run_source([dev("rx1", period=3600)], max_payload_bytes=1024)
    now = time.time()
    bad = [
        (state_topic("rx1"), b"{not json"),
        (state_topic("rx1"), b"\xff\xfe\x00garbage"),
        (state_topic("rx1"), b"[1, 2, 3]"),
        (state_topic("rx1"), json.dumps({"ts": now, "signal_quality_db": "strong"}).encode()),
        (state_topic("rx1"), json.dumps({"ts": now, "signal_lock": 7}).encode()),
        (state_topic("rx1"), json.dumps({"ts": now + 86400, "signal_lock": True}).encode()),
        (state_topic("rx1"), json.dumps({"ts": "yesterday"}).encode()),
        (state_topic("rx1"), b'{"ts": ' + str(now).encode() + b', "channel": NaN}'),
        (state_topic("rx1"), b"x" * 5000),
        (state_topic("ghost", "62029999"), json.dumps({"ts": now}).encode()),
        (avail_topic("rx1"), b"maybe"),
    ]
    for topic, payload in bad:
        broker.publish(topic, payload)
    await until(lambda: sum(h.source.stats.rejected.values()) >= len(bad), 10, "rejections")
    r = h.source.stats.rejected
    assert r["malformed_json"] == 3 and r["not_an_object"] == 1
    assert r["wrong_type"] == 2 and r["future_timestamp"] == 1 and r["bad_timestamp"] == 1
    assert r["oversized"] == 1 and r["unknown_device"] == 1 and r["bad_availability"] == 1
    assert set(r) == set(REJECT_REASONS)
    assert not any(o.ok for o in h.of("rx1"))  # rejected input never makes a device UP
    # Still alive and well.
    broker.publish(state_topic("rx1"), {"ts": time.time(), "signal_lock": True})
    await until(lambda: h.state("rx1") is State.UP, 5, "UP after garbage")


def _message(topic: str, payload: bytes, retain: bool = False) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, 1, retain, 1, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["ts", "signal_lock", "signal_quality_db", "signal_strength_db",
                               "channel", "tv_power", "temperature_celsius", "other"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(
    st.binary(max_size=300)
    | st.dictionaries(field_names, json_values, max_size=6).map(
        lambda d: json.dumps(d, allow_nan=True).encode())
    | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    min_size=1, max_size=8),
    retain=st.booleans())
def test_fuzz_payloads_never_crash(payloads: list[bytes], retain: bool) -> None:
    source = MqttSource(MqttSettings(max_payload_bytes=256), lambda b: None)
    source.set_devices([dev("rx1"), dev("p1", format="shelly"),
                        dev("e1", format="esphome", fields={"signal_lock": "binary_sensor/l"})])
    topics = [state_topic("rx1"), avail_topic("rx1"), "p1/status/switch:0", "p1/online",
              "e1/binary_sensor/l/state", "e1/sensor/temperature/state", "e1/status"]
    batch = [_message(topics[i % len(topics)], p, retain) for i, p in enumerate(payloads)]
    out = source.handle_batch(batch)
    s = source.stats
    assert s.messages_received == len(batch)
    assert sum(s.rejected.values()) <= len(batch)
    for obs in out:
        assert obs.probe == "mqtt"
        assert all(isinstance(v, float) and math.isfinite(v) for v in obs.values.values())
        if obs.ok:
            assert obs.values["message_age_seconds"] <= 60 * 2.5


# ---------------------------------------------------------------------------- presets


async def test_tasmota_shelly_esphome_presets(broker: Broker, run_source: Any) -> None:
    h = await run_source([
        dev("tv1", kind="tv", format="tasmota", topic_name="tasmota_5A3F1C", period=300),
        dev("tv2", kind="tv", format="shelly", topic_name="shellyplus1pm-a8032ab1",
            period=60),
        dev("rx1", format="esphome", topic_name="dltv-rx1", period=60,
            fields={"signal_lock": "binary_sensor/dltv_lock",
                    "signal_quality_db": "sensor/dltv_snr"}),
    ])
    local = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=7)))
    broker.publish("tele/tasmota_5A3F1C/LWT", "Online", retain=True)
    broker.publish("tele/tasmota_5A3F1C/STATE", {
        "Time": local.replace(tzinfo=None).isoformat(timespec="seconds"),
        "UptimeSec": 4242, "POWER": "ON", "Wifi": {"RSSI": 70}})
    broker.publish("shellyplus1pm-a8032ab1/status/switch:0", {
        "id": 0, "output": False, "apower": 0.0, "temperature": {"tC": 39.2}})
    broker.publish("dltv-rx1/binary_sensor/dltv_lock/state", "ON")
    broker.publish("dltv-rx1/sensor/dltv_snr/state", "4.1")
    await until(lambda: h.last("tv1") and h.last("tv2") and len(h.of("rx1")) >= 2, 5,
                "preset observations")
    tv1, tv2, rx1 = h.last("tv1"), h.last("tv2"), h.last("rx1")
    assert tv1 is not None and tv1.ok and tv1.values["tv_power"] == 1.0
    assert tv1.values["uptime_seconds"] == 4242 and tv1.values["message_age_seconds"] < 5
    assert tv2 is not None and not tv2.ok and tv2.reason == "powered_off"
    assert tv2.values["temperature_celsius"] == 39.2
    assert rx1 is not None and rx1.ok and rx1.degraded == "low_signal_quality"
    assert rx1.values["signal_lock"] == 1.0 and rx1.values["signal_quality_db"] == 4.1
    broker.publish("tele/tasmota_5A3F1C/LWT", "Offline", retain=True)
    await until(lambda: h.state("tv1") is State.DOWN, 5, "Tasmota LWT offline")


async def test_config_reload_subscribes_new_devices(broker: Broker, run_source: Any) -> None:
    h = await run_source([dev("rx1", period=3600)])
    h.tracker.configure([DeviceSpec("rx1", "mqtt", 1, 1), DeviceSpec("tv7", "mqtt", 1, 1)])
    h.source.set_devices([dev("rx1", period=3600),
                          dev("tv7", kind="tv", format="tasmota", period=300)])
    await until(lambda: "tele/+/STATE" in h.source.subscribed, 5, "resubscribed")
    broker.publish("tele/tv7/STATE", {"POWER": "ON"})
    await until(lambda: h.state("tv7") is State.UP, 5, "new device UP")


# ---------------------------------------------------------------------------- settings


def test_settings_validation() -> None:
    with pytest.raises(ValidationError):
        MqttSettings(hostname="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MqttDeviceParams(state_topic="monitord/{school}/x")
    with pytest.raises(ValidationError):
        MqttDeviceParams(state_topic="monitord/+/x")
    with pytest.raises(ValidationError):
        MqttDeviceParams(fields={"signal_lock": "a..b["})
    with pytest.raises(ValidationError):
        MqttDeviceParams(fields={"colour": "x"})
    with pytest.raises(ValidationError):
        MqttSettings(password={"env": "X"})
    p = MqttDeviceParams(period="5m", fields={"signal_quality_db": "$.dvb['snr'].value"})
    assert p.period == 300.0
    assert parse_path("$.dvb['snr'].value") == ("dvb", "snr", "value")
    assert parse_path("a[2].b") == ("a", 2, "b")


# ---------------------------------------------------------------------------- demo


async def test_demo_agents_publish_faults(broker: Broker, run_source: Any) -> None:
    from monitord.demo.agents import plan, run_agents
    from monitord.demo.office import build_lab

    agents = plan(build_lab(schools=6).config["devices"])
    by = {a.behaviour: a for a in agents}
    assert {"normal", "silent", "offline", "no_lock", "weak", "tv_off"} <= set(by)
    h = await run_source([MqttDevice(a.device_id, a.smis, a.kind,
                                     MqttDeviceParams(period=0.3, stale_factor=2.0))
                          for a in agents])
    stop = asyncio.Event()
    task = asyncio.create_task(run_agents(agents, "127.0.0.1", broker.port, stop, period=0.2))
    try:
        await until(lambda: all(h.state(a.device_id) is not State.UNKNOWN for a in agents),
                    10, "every demo device has a state")
        await until(lambda: h.state(by["silent"].device_id) is State.DOWN, 5, "silent DOWN")
        assert h.state(by["normal"].device_id) is State.UP
        assert h.state(by["weak"].device_id) is State.DEGRADED
        assert h.state(by["offline"].device_id) is State.DOWN
        no_lock = h.last(by["no_lock"].device_id)
        assert no_lock is not None and no_lock.reason == "no_signal_lock"
        tv_off = h.last(by["tv_off"].device_id)
        assert tv_off is not None and tv_off.reason == "powered_off"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
