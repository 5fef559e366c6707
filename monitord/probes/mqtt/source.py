"""MQTT source: school agents publish, monitord subscribes and turns messages into state.

Many classroom devices (a DLTV satellite receiver, a TV) cannot be pinged or polled; a
small agent at the school (Raspberry Pi, ESP32, Tasmota/ESPHome/Shelly plug) publishes
their state over MQTT instead.  MQTT is push-based, so this is not a poll
:class:`~monitord.probes.base.Prober`: :class:`MqttSource` holds one persistent broker session,
decodes every message and hands :class:`~monitord.probes.base.Observation` batches to a *sink*
(the daemon folds them into :class:`monitord.domain.state.StateTracker`).

The rules that matter (docs/mqtt.md has the agent-facing side):

* **Staleness is DOWN.**  A device that has not reported within ``period × stale_factor``
  gets ``ok=False, reason="stale"``.  Liveness is judged by the payload's timestamp when
  it has one, so a message that sat in a broker queue or was *retained* long ago never
  makes a device UP (the classic trap: a retained message replayed on subscribe looks
  like a fresh report).  A retained message without a timestamp proves nothing and is
  ignored for liveness.
* **Availability/LWT is honoured at once**: ``offline`` → ``ok=False, reason="offline"``.
* **Faults are distinct**: receiver reporting but without satellite lock is
  ``reason="no_signal_lock"`` (``info["fault"]``), not ``stale``/``offline``; powered off
  is ``powered_off``; weak signal is ``ok=True, degraded="low_signal_quality"``.
* **Broker unreachable is not device DOWN**: every MQTT device gets ``unknown=True``
  (``complete=False``) observations and one alertable condition (``broker_up`` false,
  ``on_broker_state`` callback, ``monitord_mqtt_broker_up`` 0) is raised instead.
* **Bad input never crashes**: every rejected message is counted by reason and logged
  rate-limited (every per-message log line is), describing values boundedly.
* **A flood never starves the daemon**: the incoming queue is bounded
  (``max_queued_incoming_messages``; what does not fit is dropped and counted as
  ``rejected{reason="overload"}``) and the socket is read one chunk per event-loop turn,
  so probes, HTTP and timers keep their schedule; what is not read yet stays with the
  broker (docs/mqtt.md § Overload).

Throughput: ingest is CPU-bound Python.  Messages are handled in batches (one event-loop
wake-up and one sink call per batch, not per message), JSON is decoded by orjson, and
the socket is read ahead in chunks (paho reads every packet with three or more ``recv``
calls and wakes the loop once per packet).  See docs/benchmarks.md (MQTT ingest).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final
from zoneinfo import ZoneInfo

import aiomqtt

from monitord.probes.base import Observation
from monitord.probes.metrics import MetricFamily
from monitord.probes.mqtt.client import bounded_queue, install_read_ahead
from monitord.probes.mqtt.decode import (
    PRESETS,
    Rejected,
    compile_fields,
    convert,
    decode_json,
    decode_scalar,
    extract,
    to_timestamp,
)
from monitord.probes.mqtt.devices import AVAIL, STATE, Dev, Route, expand, filter_of
from monitord.probes.mqtt.metrics import MqttStats, families
from monitord.probes.mqtt.settings import MqttDevice, MqttSettings
from monitord.probes.ratelog import RateLimitedLog

log = logging.getLogger("monitord.probes.mqtt")

PROBE: Final = "mqtt"
_POWER_FIELDS: Final = ("receiver_power", "tv_power")
_BATCH_MAX: Final = 1024  # messages per batch: bounds event-loop latency of one batch


Sink = Callable[[list[Observation]], Awaitable[None]] | Callable[[list[Observation]], None]


class MqttSource:
    """One broker session feeding observations of MQTT-watched devices to ``sink``."""

    def __init__(self, settings: MqttSettings, sink: Sink,
                 clock: Callable[[], float] = time.time, *,
                 on_broker_state: Callable[[bool, str], None] | None = None) -> None:
        self.settings = settings
        self.sink = sink  # where observation batches go (the daemon's pipeline)
        self._clock = clock
        self._on_broker_state = on_broker_state
        self._tz = ZoneInfo(settings.timezone)
        self.stats = MqttStats()
        self._devs: dict[str, Dev] = {}
        #: the device list last adopted
        self._specs: list[MqttDevice] = []
        self._routes: dict[str, list[Route]] = {}
        self._filters: set[str] = set()
        self._subscribed: set[str] = set()
        self._reload = asyncio.Event()
        self._rejected_log = RateLimitedLog(log, settings.rejected_log_per_minute,
                                            "mqtt: rejected messages", clock)
        self._error_log = RateLimitedLog(log, max(1, settings.rejected_log_per_minute),
                                         "mqtt: errors", clock)
        self.read_ahead = True  # the bench may turn it off to compare
        self._queue_box: list[asyncio.Queue[aiomqtt.Message]] = []
        self._pending_emits: set[asyncio.Future[None]] = set()

    @property
    def broker_up(self) -> bool:
        return self.stats.broker_up

    @property
    def subscribed(self) -> frozenset[str]:
        """Topic filters subscribed in the current broker session."""
        return frozenset(self._subscribed)

    def metrics(self) -> list[MetricFamily]:
        """Counters and broker gauges (``monitord_mqtt_*``) as exported families."""
        return families(self.stats)

    @property
    def queued(self) -> int:
        """Messages received and waiting to be handled (≤ max_queued_incoming_messages)."""
        return self._queue_box[-1].qsize() if self._queue_box else 0

    # -- configuration ---------------------------------------------------------------

    def set_devices(self, devices: Iterable[MqttDevice]) -> None:
        """Adopt a (re)loaded device list; callable at any time.

        Devices that stay keep their timing state; new ones get a full stale window
        from now before they can be declared stale.
        """
        devices = list(devices)
        if devices == self._specs:
            return  # a reload that changed nothing here (12,000 receivers: 0.7 s saved)
        self._specs = devices
        now = self._clock()
        base = self.settings.base_topic
        devs: dict[str, Dev] = {}
        routes: dict[str, list[Route]] = {}
        filters: set[str] = set()
        for spec in devices:
            p = spec.params
            preset = PRESETS[p.format]
            mapping: dict[str, str] = dict(preset.fields)
            mapping.update(p.fields.items())
            ts_field, fields = compile_fields(mapping)
            state_t = p.state_topic or preset.state_topic
            avail_t = (preset.availability_topic if p.availability_topic is None
                       else p.availability_topic)
            factor = p.stale_factor or self.settings.stale_factor
            dev = Dev(
                spec.device_id, spec, p.period * factor, p.period, ts_field, fields,
                "{field}" in state_t,
                (p.payload_online if p.payload_online is not None
                 else preset.payload_online).strip().lower(),
                (p.payload_offline if p.payload_offline is not None
                 else preset.payload_offline).strip().lower(),
            )
            old = self._devs.get(spec.device_id)
            if old is not None:
                for name in ("fresh_until", "last_ts", "offline", "stale", "last_emit",
                             "values", "last_good"):
                    setattr(dev, name, getattr(old, name))
                if old.stale_after != dev.stale_after and old.last_ts is not None:
                    dev.fresh_until = old.last_ts + dev.stale_after
            else:
                dev.fresh_until = now + dev.stale_after
            devs[spec.device_id] = dev
            name = p.topic_name or spec.device_id
            if dev.per_field:
                for spec_f in (*fields, *([ts_field] if ts_field else [])):
                    mapped = mapping[spec_f.name]
                    topic = expand(state_t, base, spec.smis, name, mapped)
                    routes.setdefault(topic, []).append(Route(dev, STATE, spec_f.name))
                    filters.add(topic)
            else:
                topic = expand(state_t, base, spec.smis, name)
                routes.setdefault(topic, []).append(Route(dev, STATE))
                filters.add(filter_of(state_t, base))
            if avail_t:
                topic = expand(avail_t, base, spec.smis, name)
                routes.setdefault(topic, []).append(Route(dev, AVAIL))
                filters.add(filter_of(avail_t, base))
        self._devs, self._routes, self._filters = devs, routes, filters
        self._reload.set()

    # -- running ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe, ingest; reconnect with backoff and jitter until ``stop``."""
        checker = asyncio.create_task(self._check_loop(stop), name="mqtt-staleness")
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    client = self._make_client()
                    async with client:
                        attempt = 0
                        await self._session(client, stop)
                except aiomqtt.MqttError as exc:
                    self._broker_down(f"{type(exc).__name__}: {exc}")
                except (OSError, LookupError, ssl.SSLError) as exc:
                    # LookupError: the password's environment variable is not set.
                    self._broker_down(f"{type(exc).__name__}: {exc}")
                if stop.is_set():
                    break
                self.stats.connect_failures += 1
                delay = min(self.settings.reconnect_max,
                            self.settings.reconnect_min * 2.0 ** min(attempt, 30))
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), random.uniform(delay / 2, delay))
        finally:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
            if self.stats.broker_up:
                self.stats.broker_up = False

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        tls_params = None
        if s.tls is not None:
            tls_params = aiomqtt.TLSParameters(
                ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self._queue_box = []
        return aiomqtt.Client(
            s.host, s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password.reveal() if s.password is not None else None,
            clean_session=not s.persistent_session,
            keepalive=max(1, int(s.keepalive)),
            tls_params=tls_params,
            tls_insecure=s.tls.insecure if s.tls is not None else None,
            queue_type=bounded_queue(self._queue_box, self._overload),
            max_queued_incoming_messages=s.max_queued_incoming_messages,
            timeout=max(5.0, s.keepalive),
        )

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        if self.read_ahead and not install_read_ahead(client):
            log.debug("mqtt: read-ahead socket not installed (TLS or unknown internals)")
        self._subscribed = set()
        await self._sync_subscriptions(client)
        self._broker_up()
        tasks = [
            asyncio.create_task(self._ingest(client), name="mqtt-ingest"),
            asyncio.create_task(self._watch_reload(client), name="mqtt-reload"),
            asyncio.create_task(stop.wait(), name="mqtt-stop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if not t.cancelled() and (exc := t.exception()) is not None:
                raise exc

    async def _sync_subscriptions(self, client: aiomqtt.Client) -> None:
        """Subscribe new filters (QoS 1), unsubscribe dropped ones; in chunks."""
        self._reload.clear()
        want = set(self._filters)
        new = sorted(want - self._subscribed)
        gone = sorted(self._subscribed - want)
        for i in range(0, len(new), 256):
            chunk = new[i:i + 256]
            await client.subscribe([(t, 1) for t in chunk])
            self._subscribed.update(chunk)
        for i in range(0, len(gone), 256):
            chunk = gone[i:i + 256]
            await client.unsubscribe(chunk)
            self._subscribed.difference_update(chunk)

    async def _watch_reload(self, client: aiomqtt.Client) -> None:
        while True:
            await self._reload.wait()
            await self._sync_subscriptions(client)

    async def _ingest(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        queue = self._queue_box[0] if self._queue_box else None
        while True:
            batch = [await anext(messages)]  # raises MqttError when the connection drops
            if queue is not None:
                while len(batch) < _BATCH_MAX:
                    try:
                        batch.append(queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
            out = self.handle_batch(batch)
            if out:
                await self._emit(out)

    def _overload(self, msg: aiomqtt.Message) -> None:
        """A message that did not fit in the full incoming queue: dropped, counted."""
        self.stats.messages_received += 1
        self.stats.rejected["overload"] += 1
        self._rejected_log.log(
            logging.WARNING,
            "mqtt: rejected message on %r (overload: %d messages already waiting)",
            msg.topic.value[:200], self.settings.max_queued_incoming_messages)

    async def _emit(self, observations: list[Observation]) -> None:
        """Hand a batch to the sink; a failing sink is logged, never stops ingest."""
        try:
            result = self.sink(observations)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._error_log.log(logging.ERROR, "mqtt: sink failed on %d observations",
                                len(observations), exc_info=True)

    # -- broker state ----------------------------------------------------------------

    def _broker_up(self) -> None:
        now = self._clock()
        st = self.stats
        st.connects += 1
        if st.connects > 1:
            st.reconnects += 1
        if not st.broker_up:
            st.broker_up, st.broker_since = True, now
            log.info("mqtt: connected to broker %s:%d", self.settings.host,
                     self.settings.port)
            # The outage was ours, not the devices': give each a full window again.
            for dev in self._devs.values():
                dev.fresh_until = max(dev.fresh_until, now + dev.stale_after)
                dev.stale = False
            if self._on_broker_state is not None:
                self._on_broker_state(True, "")

    def _broker_down(self, why: str) -> None:
        st = self.stats
        st.last_error = why
        if st.broker_up or st.broker_since == 0.0:
            log.warning("mqtt: broker %s:%d unreachable: %s", self.settings.host,
                        self.settings.port, why)
            st.broker_up, st.broker_since = False, self._clock()
            if self._on_broker_state is not None:
                self._on_broker_state(False, why)
            out = self._unknown_all()
            if out:
                self._emit_soon(out)

    def _emit_soon(self, out: list[Observation]) -> None:
        """Emit from synchronous code (the broker just went away)."""
        task = asyncio.ensure_future(self._emit(out))
        self._pending_emits.add(task)
        task.add_done_callback(self._pending_emits.discard)

    def _unknown_all(self) -> list[Observation]:
        now = self._clock()
        out = []
        for dev in self._devs.values():
            dev.last_emit = now
            out.append(Observation(dev.device_id, PROBE, False, ts=now, complete=False,
                                   unknown=True, reason="broker_unreachable"))
        return out

    # -- staleness -------------------------------------------------------------------

    async def _check_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.check_interval)
            if stop.is_set():
                return
            out = self.check()
            if out:
                await self._emit(out)

    def check(self) -> list[Observation]:
        """Observations the passage of time calls for (run by the checker).

        Broker down: ``unknown`` for every device.  Otherwise a device silent past its
        ``fresh_until`` becomes ``stale`` at once, and stale/offline devices are
        re-reported once per period so the latest observation never looks old.
        """
        if not self.stats.broker_up:
            return self._unknown_all() if self.stats.broker_since else []
        now = self._clock()
        out: list[Observation] = []
        for dev in self._devs.values():
            if dev.offline:
                if now - dev.last_emit >= dev.period:
                    out.append(self._fault(dev, now, "offline"))
            elif now > dev.fresh_until and (not dev.stale or now - dev.last_emit >= dev.period):
                dev.stale = True
                out.append(self._fault(dev, now, "stale"))
        return out

    def _fault(self, dev: Dev, now: float, reason: str) -> Observation:
        dev.last_emit = now
        values = {}
        if dev.last_ts is not None:
            values["message_age_seconds"] = max(0.0, now - dev.last_ts)
        info = {"fault": reason}
        if dev.last_rejected:
            info["last_rejected"] = dev.last_rejected
        return Observation(dev.device_id, PROBE, False, ts=now, values=values, reason=reason,
                           info=info)

    # -- messages --------------------------------------------------------------------

    def handle_batch(self, batch: list[aiomqtt.Message]) -> list[Observation]:
        """Decode, validate and map a batch of messages → observations.  Never raises."""
        st = self.stats
        now = self._clock()
        st.batches += 1
        st.messages_received += len(batch)
        st.last_message_time = now
        out: list[Observation] = []
        routes = self._routes
        max_bytes = self.settings.max_payload_bytes
        for msg in batch:
            topic = msg.topic.value
            payload = msg.payload
            try:
                if not isinstance(payload, bytes | bytearray):
                    payload = str(payload).encode() if payload is not None else b""
                if len(payload) > max_bytes:
                    raise Rejected("oversized", f"{len(payload)} bytes")
                targets = routes.get(topic)
                if targets is None:
                    raise Rejected("unknown_device")
                if len(targets) == 1:
                    self._handle(targets[0], bytes(payload), msg.retain, now, out)
                else:  # one agent payload feeding several devices: decode once each
                    for route in targets:
                        self._handle(route, bytes(payload), msg.retain, now, out)
            except Rejected as rej:
                st.rejected[rej.reason] += 1
                if targets_ := routes.get(topic):
                    for route in targets_:
                        route.dev.last_rejected = rej.reason
                self._rejected_log.log(
                    logging.WARNING,
                    "mqtt: rejected message on %r (%s%s): %r", topic[:200], rej.reason,
                    f": {rej.detail[:200]}" if rej.detail else "", bytes(payload[:80]))
            except Exception:  # a bug must not stop ingest: count it as malformed
                st.rejected["malformed_json"] += 1
                self._error_log.log(logging.ERROR, "mqtt: unexpected error handling a "
                                    "message on %r", topic[:200], exc_info=True)
        return out

    def _handle(self, route: Route, payload: bytes, retained: bool, now: float,
                out: list[Observation]) -> None:
        dev = route.dev
        if route.kind == AVAIL:
            self._availability(dev, payload, now, out)
            return
        if dev.per_field:
            raw = decode_scalar(payload)
            if raw is None:
                return
            if route.field == "ts":
                ts: float | None = to_timestamp(raw, self._tz)
                values: dict[str, float] = {}
            else:
                ts, values = None, {route.field: convert(route.field, raw)}
        else:
            ts, values = extract(decode_json(payload), dev.ts_field, dev.fields, self._tz)
        st = self.stats
        if ts is None:
            if retained:
                st.ignored["retained_unverified"] += 1
                return
            ts = now
        elif ts > now + self.settings.max_clock_skew:
            raise Rejected("future_timestamp", f"{ts - now:.0f}s ahead")
        age = max(0.0, now - ts)
        if age > dev.stale_after:
            st.ignored["old"] += 1
            # A retained message is the last thing published on its topic: when it is
            # old, the device has been silent that long (unless we know better).
            if retained and not dev.offline and (dev.last_ts is None or ts >= dev.last_ts):
                dev.last_ts = ts
                dev.fresh_until = min(dev.fresh_until, ts + dev.stale_after)
                if not dev.stale:
                    dev.stale = True
                    out.append(self._fault(dev, now, "stale"))
            return
        if dev.last_ts is not None and ts < dev.last_ts:
            st.ignored["out_of_order"] += 1
            return
        if dev.offline:
            if retained:
                st.ignored["while_offline"] += 1
                return
            dev.offline = False  # a live report proves the agent is back
        dev.last_ts = ts
        dev.fresh_until = ts + dev.stale_after
        dev.stale = False
        dev.last_rejected = ""
        if dev.per_field:
            dev.values.update(values)
            values = dict(dev.values)
        else:
            dev.values = values
            values = dict(values)
        values["message_age_seconds"] = age
        obs = self._evaluate(dev, values, now)
        dev.last_emit = now
        st.messages_applied += 1
        out.append(obs)

    def _availability(self, dev: Dev, payload: bytes, now: float,
                      out: list[Observation]) -> None:
        try:
            word = payload.decode("utf-8").strip().lower()
        except UnicodeDecodeError:
            raise Rejected("bad_availability", "not UTF-8") from None
        if word == dev.offline_payload:
            dev.offline = True
            self.stats.messages_applied += 1
            out.append(self._fault(dev, now, "offline"))
        elif word == dev.online:
            self.stats.messages_applied += 1
            was_offline, dev.offline = dev.offline, False
            if was_offline and dev.last_good is not None and now <= dev.fresh_until:
                # Back online and the last report is still fresh: say so now rather
                # than leave the device DOWN until its next report.
                out.append(self._evaluate(dev, dict(dev.last_good.values), now))
        else:
            raise Rejected("bad_availability", repr(word[:40]))

    def _evaluate(self, dev: Dev, values: dict[str, float], now: float) -> Observation:
        """Values of a fresh report → the observation (fault / degraded / fine)."""
        p = dev.spec.params
        if p.power_off_fault and any(values.get(f) == 0.0 for f in _POWER_FIELDS):
            obs = Observation(dev.device_id, PROBE, False, ts=now, values=values,
                              reason="powered_off", info={"fault": "powered_off"})
        elif values.get("signal_lock") == 0.0:
            obs = Observation(dev.device_id, PROBE, False, ts=now, values=values,
                              reason="no_signal_lock", info={"fault": "no_signal_lock"})
        else:
            degraded = ""
            q = values.get("signal_quality_db")
            s = values.get("signal_strength_db")
            t = values.get("temperature_celsius")
            if q is not None and p.signal_quality_degraded_db is not None \
                    and q < p.signal_quality_degraded_db:
                degraded = "low_signal_quality"
            elif s is not None and p.signal_strength_degraded_db is not None \
                    and s < p.signal_strength_degraded_db:
                degraded = "low_signal_strength"
            elif t is not None and p.temperature_degraded_celsius is not None \
                    and t > p.temperature_degraded_celsius:
                degraded = "high_temperature"
            obs = Observation(dev.device_id, PROBE, True, ts=now, values=values,
                              degraded=degraded)
            dev.last_good = obs
        return obs
