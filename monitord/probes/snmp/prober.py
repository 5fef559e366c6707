"""The ``snmp`` probe: poll agents, turn what they say into observations.

What to collect for a router, a server, a UPS … (the profiles) and how one device's poll
goes; the layers below are in the rest of :mod:`monitord.probes.snmp`.
See docs/snmp.md for the configuration keys, OIDs and what every value means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from monitord.probes.base import Observation, ProbeSetupError, RoundStats, Target, each_target
from monitord.probes.metrics import MetricFamily
from monitord.probes.ratelog import RateLimitedLog
from monitord.probes.snmp import codec as w
from monitord.probes.snmp.metrics import families
from monitord.probes.snmp.oids import (
    HR_PROCESSOR_LOAD,
    HR_STORAGE,
    HR_STORAGE_RAM,
    IF_COLUMNS,
    LA_LOAD,
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    TICKS_WRAP,
    UPS_SCALARS,
)
from monitord.probes.snmp.params import SnmpParams, SnmpV3Params
from monitord.probes.snmp.session import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    CommunitySession,
    Session,
    SnmpError,
    UsmCredentials,
    UsmSession,
    WalkLimits,
    walk_columns,
)
from monitord.probes.snmp.state import DeviceState, SnmpStats, fold_counter
from monitord.probes.snmp.tables import (
    find_uplink,
    if_label,
    int_of,
    is_uplink,
    light_uplink_label,
    load_average,
    speed_bps,
    text,
    uplink_degraded,
    ups_values,
)
from monitord.probes.snmp.transport import SnmpSocket
from monitord.values import SecretRef

log = logging.getLogger("monitord.probes.snmp")


class SnmpProber:
    """Polls SNMP agents; one :class:`Observation` per target per round.

    ``max_in_flight`` bounds outstanding requests engine-wide (UDP receive buffers
    overflow silently otherwise: the lab measured 14–16 % lost replies at 100 in flight
    with default buffers).  ``rcvbuf`` sizes the shared socket's buffer.
    """

    name = "snmp"

    def __init__(self, max_in_flight: int = 64, rcvbuf: int = 8 << 20,
                 default_deadline: float | None = None) -> None:
        self.max_in_flight = max_in_flight
        self.default_deadline = default_deadline
        self.stats = SnmpStats()
        self._sock = SnmpSocket(rcvbuf=rcvbuf)
        self._limiter: asyncio.Semaphore | None = None
        self._devices: dict[str, DeviceState] = {}
        self._v3_engine: Any = None
        self._closing = False
        self._bug_log = RateLimitedLog(log, 5, "snmp: internal errors")

    # -- lifecycle

    async def start(self) -> None:
        self._limiter = asyncio.Semaphore(self.max_in_flight)
        self._closing = False
        try:
            await self._sock.open()  # IPv4: fail early, not in the first round
        except OSError as exc:
            raise ProbeSetupError(f"snmp: cannot open a UDP socket: {exc}") from exc

    async def close(self) -> None:
        self._closing = True
        self._sock.close()
        if self._v3_engine is not None:
            with contextlib.suppress(Exception):
                self._v3_engine.close_dispatcher()
            self._v3_engine = None

    @property
    def dropped_datagrams(self) -> Mapping[str, int]:
        """Datagrams dropped by reason (:data:`monitord.probes.snmp.transport.DROP_REASONS`)."""
        return self._sock.dropped

    @property
    def unmatched_datagrams(self) -> int:
        """Replies that matched no pending request (late, duplicate or guessed)."""
        return self._sock.dropped["unmatched"]

    @property
    def malformed_datagrams(self) -> int:
        return self._sock.dropped["malformed"]

    def metrics(self) -> list[MetricFamily]:
        """Engine-wide counters (``monitord_snmp_*``) as exported families."""
        return families(self.stats, self._sock.dropped)

    def forget(self, device_id: str) -> None:
        """Drop a device's memory (it left the config)."""
        self._devices.pop(device_id, None)

    # -- rounds

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        if self._limiter is None:
            await self.start()
        return await each_target(self.name, targets, self._poll_one)

    async def _poll_one(self, target: Target) -> Observation:
        """One device's poll.  Whatever goes wrong is this device's error, never the
        batch's: an unexpected exception becomes ``internal_error`` (counted, logged with
        its traceback at most 5 times a minute)."""
        t0 = time.monotonic()
        obs = Observation(device_id=target.device_id, probe=self.name, ok=False)
        self.stats.polls += 1
        try:
            state = self._state(target)
            p = state.params
            budget = p.deadline or self.default_deadline or _default_deadline(p)
            async with asyncio.timeout(budget):
                await self._collect(target, state, obs)
        except SnmpError as exc:
            self._fail(obs, target.device_id, exc.reason, exc.detail)
        except TimeoutError:
            self._fail(obs, target.device_id, "timeout", "device poll deadline passed")
        except ValidationError as exc:  # invalid params
            self._fail(obs, target.device_id, "local_error",
                       f"bad snmp params: {exc.error_count()} errors")
        except OSError as exc:  # our side: a socket that cannot be opened
            self._fail(obs, target.device_id, "local_error", f"socket: {exc.strerror}")
        except Exception as exc:  # a bug met this device's data: keep it to this device
            self._bug_log.log(logging.ERROR, "snmp %s: internal error %s", target.device_id,
                              type(exc).__name__, exc_info=True)
            self._fail(obs, target.device_id, "internal_error", type(exc).__name__)
        if self._closing and not obs.ok:
            obs.complete = False
        obs.duration_seconds = time.monotonic() - t0
        return obs

    def _fail(self, obs: Observation, device: str, reason: str, detail: str) -> None:
        self.stats.error(device, reason)
        if obs.ok:
            # the agent answered; a later part failed: keep the data, say what is missing
            obs.info["snmp_partial"] = reason
        else:
            obs.reason = reason
            # answers ping but not SNMP: "SNMP failing", which state must not take as DOWN
            obs.degraded = "snmp_failing"
            if reason == "local_error":
                obs.complete = False
        log.debug("snmp %s: %s %s", device, reason, detail)

    def _state(self, target: Target) -> DeviceState:
        """The device's memory, rebuilt when its params object changes."""
        st = self._devices.get(target.device_id)
        raw = target.params
        if st is not None and st.key == id(raw):
            return st
        params = raw if isinstance(raw, SnmpParams) else SnmpParams.model_validate(dict(raw))
        if st is not None and st.params == params:
            st.key = id(raw)
            return st
        st = DeviceState(key=id(raw), params=params, bulk_ok=params.bulk)
        self._devices[target.device_id] = st
        return st

    def _session(self, target: Target, st: DeviceState) -> Session:
        if st.session is not None:
            return st.session
        try:
            st.session = self._new_session(target, st.params)
        except (LookupError, OSError, UnicodeError) as exc:  # unreadable secret reference
            raise SnmpError("secret_unavailable", type(exc).__name__) from None
        return st.session

    def _new_session(self, target: Target, p: SnmpParams) -> Session:
        assert self._limiter is not None
        counters = self.stats.requests
        if p.version == "3":
            assert p.v3 is not None
            return UsmSession(self._engine(), self._limiter, counters, target.address,
                              p.port, _usm_credentials(p.v3), p.timeout, p.retries)
        assert p.community is not None
        community = (p.community.reveal() if isinstance(p.community, SecretRef)
                     else p.community.get_secret_value())
        return CommunitySession(self._sock, self._limiter, counters, target.address, p.port,
                                0 if p.version == "1" else 1, community.encode(),
                                p.timeout, p.retries)

    def _engine(self) -> Any:
        if self._v3_engine is None:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine  # type: ignore[import-untyped]

            self._v3_engine = SnmpEngine()
        return self._v3_engine

    # -- one device

    async def _collect(self, target: Target, st: DeviceState, obs: Observation) -> None:
        session = self._session(target, st)
        p = st.params
        device = target.device_id
        rebooted = await self._system(session, st, obs, device)
        walk = WalkLimits(p.max_repetitions, st.bulk_ok, p.max_walk_varbinds)
        try:
            if p.profile in ("router", "switch", "access_point"):
                await self._interfaces(session, st, obs, walk, rebooted, device)
            elif p.profile == "server":
                await self._server(session, obs, walk)
            if p.uplink is not None and "uplink_oper_status" not in obs.values:
                await self._uplink_get(session, st, obs, rebooted, device)
        except SnmpError as exc:
            if exc.reason in ("malformed", "agent_error", "too_big") and st.bulk_ok:
                # an agent that mishandles GETBULK: remember, fall back to GETNEXT
                st.bulk_ok = False
                self.stats.bulk_fallbacks[device] += 1
            self._fail(obs, device, exc.reason, exc.detail)

    async def _system(self, session: Session, st: DeviceState, obs: Observation,
                      device: str) -> bool:
        """sysUpTime every round (+ info at start and after a reboot, + profile scalars)."""
        p = st.params
        oids = [SYS_UPTIME]
        want_info = not st.info
        if want_info:
            oids += [SYS_NAME, SYS_DESCR, SYS_OBJECT_ID]
        scalars: list[bytes] = []
        if p.profile == "server":
            scalars = LA_LOAD
        elif p.profile == "ups":
            scalars = list(UPS_SCALARS.values())
        light = self._light_uplink_oids(st)
        vals = await session.get(oids + scalars + light)
        obs.ok = True
        now = time.monotonic()
        tag, up = vals[0]
        rebooted = False
        if tag == w.TIMETICKS and isinstance(up, int):
            rebooted = self._uptime(st, up, now, obs, device)
            obs.values["sys_uptime_seconds"] = up / 100.0
        else:
            self.stats.error(device, "no_such_object")
            obs.info["snmp_partial"] = "no_such_object"
        if rebooted and not want_info:
            vals_info = await session.get([SYS_NAME, SYS_DESCR, SYS_OBJECT_ID])
            self._info(st, vals_info)
        elif want_info:
            self._info(st, vals[1:4])
        obs.info.update(st.info)
        rest = vals[len(oids):]
        if p.profile == "server":
            load_average(rest[:3], obs)
        elif p.profile == "ups":
            ups_values(dict(zip(UPS_SCALARS, rest[:len(scalars)], strict=True)), obs)
        if light:
            self._apply_light(st, rest[len(scalars):], obs, rebooted, device)
        return rebooted

    def _uptime(self, st: DeviceState, ticks: int, now: float, obs: Observation,
                device: str) -> bool:
        """A decrease of sysUpTime is a reboot, unless it is the 497-day TimeTicks wrap."""
        last, at = st.uptime_ticks, st.uptime_at
        st.uptime_ticks, st.uptime_at = ticks, now
        if last is None or ticks >= last:
            return False
        expected = last + int((now - at) * 100)
        if expected >= TICKS_WRAP and abs((expected - TICKS_WRAP) - ticks) < 6000:
            return False
        obs.events.append("reboot")
        self.stats.reboots[device] += 1
        st.info.clear()
        st.last_octets.clear()
        return True

    def _info(self, st: DeviceState, vals: Sequence[tuple[int, w.Value]]) -> None:
        for key, (tag, v) in zip(("sys_name", "sys_descr", "sys_object_id"), vals,
                                 strict=True):
            if tag in w.EXCEPTION_TAGS or v is None:
                continue
            if isinstance(v, tuple):
                st.info[key] = w.format_oid(v)
            elif isinstance(v, bytes):
                st.info[key] = text(v)

    # -- uplink on a device that does not walk interfaces (one GET, the "light" poll)

    def _light_uplink_oids(self, st: DeviceState) -> list[bytes]:
        p = st.params
        if p.uplink is None or p.profile in ("router", "switch", "access_point"):
            return []
        if st.uplink_index is None and isinstance(p.uplink, int):
            st.uplink_index = p.uplink
        if st.uplink_index is None and str(p.uplink).isdigit():
            st.uplink_index = int(str(p.uplink))
        i = st.uplink_index
        if i is None:
            return []
        sub = w.encode_subids((i,))
        if i in st.no_hc:
            return [IF_COLUMNS["oper_status"] + sub, IF_COLUMNS["in_octets32"] + sub,
                    IF_COLUMNS["out_octets32"] + sub]
        return [IF_COLUMNS["oper_status"] + sub, IF_COLUMNS["in_octets64"] + sub,
                IF_COLUMNS["out_octets64"] + sub]

    def _apply_light(self, st: DeviceState, vals: Sequence[tuple[int, w.Value]],
                     obs: Observation, rebooted: bool, device: str) -> None:
        i = st.uplink_index
        assert i is not None
        (t_oper, oper), (_, rin), (_, rout) = vals
        if isinstance(oper, int) and t_oper == w.INTEGER:
            obs.values["uplink_oper_status"] = float(oper)
            uplink_degraded(obs)
        bits = 32 if i in st.no_hc else 64
        if not (isinstance(rin, int) and isinstance(rout, int)):
            if bits == 64:
                st.no_hc.add(i)   # no 64-bit counters here: ask for 32-bit ones next time
            return
        row: dict[str, float] = {"index": float(i)}
        if isinstance(oper, int):
            row["oper_status"] = float(oper)
        row["in_octets"] = float(fold_counter(st, (i, "in_octets"), rin, bits, rebooted,
                                          self.stats, device))
        row["out_octets"] = float(fold_counter(st, (i, "out_octets"), rout, bits, rebooted,
                                           self.stats, device))
        obs.tables.setdefault("interface", {})[str(light_uplink_label(st))] = row

    async def _uplink_get(self, session: Session, st: DeviceState, obs: Observation,
                          rebooted: bool, device: str) -> None:
        """Uplink given by name on a non-interface profile: resolve once, then GET."""
        if st.uplink_index is None:
            cols = await walk_columns(session, [IF_COLUMNS["name"], IF_COLUMNS["descr"]],
                                      WalkLimits(st.params.max_repetitions, st.bulk_ok))
            st.uplink_index = find_uplink(st.params.uplink, cols)
            if st.uplink_index is None:
                raise SnmpError("no_such_object", "uplink interface not found")
        light = self._light_uplink_oids(st)
        self._apply_light(st, await session.get(light), obs, rebooted, device)

    # -- interfaces (router / switch / access point)

    async def _interfaces(self, session: Session, st: DeviceState, obs: Observation,
                          walk: WalkLimits, rebooted: bool, device: str) -> None:
        names = list(IF_COLUMNS)
        if session.version == 0:   # SNMPv1 has no Counter64: skip those columns
            names = [n for n in names if n not in ("in_octets64", "out_octets64")]
        cols = await walk_columns(session, [IF_COLUMNS[n] for n in names], walk)
        by = {n: cols[IF_COLUMNS[n]] for n in names}
        table: dict[str, dict[str, float]] = {}
        now = time.monotonic()
        indexes = sorted(set(by["oper_status"]) | set(by["descr"]))
        for index in indexes:
            if len(index) != 1:
                continue
            i = index[0]
            label = if_label(by, index, i)
            row = self._interface_row(st, by, index, i, now, rebooted, device)
            table[label] = row
            if is_uplink(st.params.uplink, i, by, index):
                st.uplink_index = i
                if "oper_status" in row:
                    obs.values["uplink_oper_status"] = row["oper_status"]
                    uplink_degraded(obs)
        obs.tables["interface"] = table

    def _interface_row(self, st: DeviceState, by: Mapping[str, Mapping[w.Oid, Any]],
                       index: w.Oid, i: int, now: float, rebooted: bool,
                       device: str) -> dict[str, float]:
        row: dict[str, float] = {"index": float(i)}
        for key in ("oper_status", "admin_status"):
            v = int_of(by[key].get(index))
            if v is not None:
                row[key] = float(v)
        octets: dict[str, int] = {}
        for d in ("in", "out"):
            raw = int_of(by.get(f"{d}_octets64", {}).get(index))
            bits = 64
            if raw is None:
                raw, bits = int_of(by[f"{d}_octets32"].get(index)), 32
            if raw is not None:
                total = fold_counter(st, (i, f"{d}_octets"), raw, bits, rebooted, self.stats,
                                 device)
                octets[d] = total
                row[f"{d}_octets"] = float(total)
            for kind in ("errors", "discards"):
                r = int_of(by[f"{d}_{kind}"].get(index))
                if r is not None:
                    row[f"{d}_{kind}"] = float(fold_counter(st, (i, f"{d}_{kind}"), r, 32,
                                                        rebooted, self.stats, device))
        speed = speed_bps(by, index)
        if speed is not None:
            row["speed_bps"] = speed
        self._utilisation(st, i, now, octets, speed, row)
        return row

    @staticmethod
    def _utilisation(st: DeviceState, i: int, now: float, octets: dict[str, int],
                     speed: float | None, row: dict[str, float]) -> None:
        """Ratio of the link's speed used since the previous round (both directions)."""
        if "in" not in octets or "out" not in octets:
            return
        prev = st.last_octets.get(i)
        st.last_octets[i] = (now, octets["in"], octets["out"])
        if prev is None or not speed:
            return
        dt = now - prev[0]
        if dt <= 0:
            return
        row["utilisation_in_ratio"] = min(1.0, (octets["in"] - prev[1]) * 8 / dt / speed)
        row["utilisation_out_ratio"] = min(1.0, (octets["out"] - prev[2]) * 8 / dt / speed)

    # -- servers

    async def _server(self, session: Session, obs: Observation, walk: WalkLimits) -> None:
        cols = await walk_columns(session, [HR_PROCESSOR_LOAD, *HR_STORAGE.values()], walk)
        loads = [v for _, (t, v) in sorted(cols[HR_PROCESSOR_LOAD].items())
                 if isinstance(v, int)]
        if loads:
            obs.values["cpu_load_ratio"] = sum(loads) / len(loads) / 100.0
            obs.values["cpu_count"] = float(len(loads))
        storage: dict[str, dict[str, float]] = {}
        by = {k: cols[oid] for k, oid in HR_STORAGE.items()}
        for index, (_, descr) in sorted(by["descr"].items()):
            unit, size, used = (int_of(by[k].get(index)) for k in ("unit", "size", "used"))
            if not unit or not size or used is None:
                continue
            row = {"size_bytes": float(size * unit), "used_bytes": float(used * unit),
                   "used_ratio": used / size}
            storage[text(descr) if isinstance(descr, bytes) else str(index)] = row
            typ = by["type"].get(index)
            if typ is not None and typ[1] == HR_STORAGE_RAM:
                obs.values["memory_used_ratio"] = row["used_ratio"]
        if storage:
            obs.tables["storage"] = storage


# ---------------------------------------------------------------------------- helpers


def _default_deadline(p: SnmpParams) -> float:
    """Enough for a few exchanges with all retries; never unbounded."""
    return min(120.0, p.timeout * (p.retries + 1) * 4 + 1.0)


def _usm_credentials(v3: SnmpV3Params) -> UsmCredentials:
    assert v3.auth_protocol in AUTH_PROTOCOLS and v3.priv_protocol in PRIV_PROTOCOLS
    return UsmCredentials(
        user=v3.user,
        auth_protocol=v3.auth_protocol,
        auth_key=v3.auth_key.reveal() if v3.auth_key else "",
        priv_protocol=v3.priv_protocol,
        priv_key=v3.priv_key.reveal() if v3.priv_key else "",
        context=v3.context,
    )
