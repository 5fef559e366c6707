"""The ``pjlink`` probe: one session per projector, the readings as an observation.

Decisions (docs/pjlink.md):

* the projector answering completely is ``ok``; standby, cooling and warming are not
  faults (ok, not degraded);
* an error digit 2 in ERST (lamp, filter, fan, temperature, cover, other), a POWR
  answer ``ERR4`` (projector failure) or lamp hours at or past ``lamp_warn_share`` of
  ``lamp_life_hours`` make the projector DEGRADED, with the reasons (comma-separated);
* any failure (timeout, refused, closed, garbage → ``malformed``, a wrong or missing
  password → ``auth_failed``) is ``ok=False`` with that reason and
  ``degraded="pjlink_failing"``: next to ping (the usual set-up) the projector is then
  DEGRADED with ``pjlink_failing (auth_failed)``, never DOWN; with pjlink as its only
  probe, failures count towards DOWN like any reachability probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import SecretStr, ValidationError

from monitord.probes.base import Observation, ParamsCache, RoundStats, Target, each_target
from monitord.probes.metrics import MetricFamily
from monitord.probes.pjlink import protocol as p
from monitord.probes.pjlink.client import PjlinkError, PjlinkSession
from monitord.probes.pjlink.metrics import PjlinkStats, families
from monitord.probes.pjlink.params import PjlinkParams
from monitord.probes.ratelog import RateLimitedLog
from monitord.values import SecretRef

log = logging.getLogger("monitord.probes.pjlink")
T = TypeVar("T")

#: text commands read after the numeric ones (class 1), and their info keys
_INFO_COMMANDS = (("INF1", "manufacturer"), ("INF2", "model"), ("INFO", "other_info"),
                  ("NAME", "name"))


class PjlinkProber:
    """Polls projectors over PJLink.

    ``concurrency`` bounds sessions open at once engine-wide; ``timeout`` is the default
    wait for each line (a device's ``timeout`` overrides it).  Sessions to the same
    address and port never overlap: projectors accept one connection at a time.
    """

    name = "pjlink"

    def __init__(self, concurrency: int = 32, timeout: float = 5.0) -> None:
        self.concurrency = concurrency
        self.timeout = timeout
        self.stats = PjlinkStats()
        self._limiter: asyncio.Semaphore | None = None
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._params = ParamsCache(PjlinkParams)
        self._closing = False
        self._bug_log = RateLimitedLog(log, 5, "pjlink: internal errors")

    async def start(self) -> None:
        self._limiter = asyncio.Semaphore(self.concurrency)
        self._closing = False

    async def close(self) -> None:
        self._closing = True

    def metrics(self) -> list[MetricFamily]:
        return families(self.stats)

    def forget(self, device_id: str) -> None:
        self._params.forget(device_id)

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        if self._limiter is None:
            await self.start()
        return await each_target(self.name, targets, self._poll_one)

    async def _poll_one(self, target: Target) -> Observation:
        t0 = time.monotonic()
        obs = Observation(device_id=target.device_id, probe=self.name, ok=False)
        self.stats.polls += 1
        try:
            params = self._params.get(target)
            password = _reveal(params.password)
            timeout = params.timeout or self.timeout
            lock = self._locks.setdefault((target.address, params.port), asyncio.Lock())
            assert self._limiter is not None
            async with lock, self._limiter:
                session = await PjlinkSession.open(target.address, params.port, timeout,
                                                   password)
                try:
                    await self._collect(session, params, obs)
                finally:
                    await session.close()
        except PjlinkError as exc:
            self._fail(obs, target.device_id, exc.reason, exc.detail)
        except ValidationError as exc:
            self._fail(obs, target.device_id, "local_error",
                       f"bad pjlink params: {exc.error_count()} errors")
        except (LookupError, OSError) as exc:  # the password reference cannot be read
            self._fail(obs, target.device_id, "local_error", f"password: {exc}")
        except Exception as exc:  # a bug met this device's data: keep it to this device
            self._bug_log.log(logging.ERROR, "pjlink %s: internal error %s",
                              target.device_id, type(exc).__name__, exc_info=True)
            self._fail(obs, target.device_id, "internal_error", type(exc).__name__)
        if self._closing and not obs.ok:
            obs.complete = False
        obs.duration_seconds = time.monotonic() - t0
        return obs

    def _fail(self, obs: Observation, device: str, reason: str, detail: str) -> None:
        self.stats.errors[(device, reason)] += 1
        obs.ok = False
        obs.reason = reason
        obs.degraded = "pjlink_failing"
        obs.values.clear()
        obs.tables.clear()
        if reason == "local_error":
            obs.complete = False
        log.debug("pjlink %s: %s %s", device, reason, detail)

    async def _collect(self, s: PjlinkSession, params: PjlinkParams, obs: Observation) -> None:
        degraded: list[str] = []
        clss = await s.ask(1, "CLSS")  # first command: carries the digest
        cls = 1 if clss.error else _parse(p.parse_class, clss)
        if params.pjlink_class != "auto":
            cls = int(params.pjlink_class)
        obs.info["pjlink_class"] = str(cls)
        obs.info["authenticated"] = "yes" if s.greeting.auth else "no"

        power = await s.ask(1, "POWR")
        if power.data == "ERR4":
            degraded.append("projector_failure")
        elif not power.error:
            state = _parse(p.parse_power, power)
            obs.values["power_state"] = float(state)
            obs.info["power"] = p.POWER_STATES[state]

        erst = await s.ask(1, "ERST")
        if not erst.error:
            parts = _parse(p.parse_errors, erst)
            obs.tables["error"] = {part: {"status": float(v)} for part, v in parts.items()}
            degraded += [f"{part}_error" for part, v in parts.items() if v == 2]

        lamp = await s.ask(1, "LAMP")  # ERR1: no lamp (LED/laser light source)
        if not lamp.error:
            lamps = _parse(p.parse_lamps, lamp)
            obs.tables["lamp"] = {str(i): {"hours": float(h), "on": float(on)}
                                  for i, (h, on) in enumerate(lamps, start=1)}
            if params.lamp_life_hours is not None and any(
                    h >= params.lamp_warn_share * params.lamp_life_hours for h, _ in lamps):
                degraded.append("lamp_hours_high")

        inpt = await s.ask(cls, "INPT")  # ERR3 in standby
        if not inpt.error:
            obs.info["input"] = _parse(p.parse_input, inpt)

        for name, key in _INFO_COMMANDS:
            reply = await s.ask(1, name)
            if not reply.error:
                obs.info[key] = _parse(p.parse_text, reply)
        if cls == 2:
            snum = await s.ask(2, "SNUM")
            if not snum.error:
                obs.info["serial"] = _parse(p.parse_text, snum)
        obs.ok = True
        obs.degraded = ",".join(dict.fromkeys(degraded))


def _parse(parser: Callable[[str], T], reply: p.Reply) -> T:
    try:
        return parser(reply.data)
    except p.MalformedReply as exc:
        raise PjlinkError("malformed", f"{reply.command}: {exc}") from None


def _reveal(secret: SecretRef | SecretStr | None) -> str | None:
    if secret is None:
        return None
    if isinstance(secret, SecretStr):
        return secret.get_secret_value()
    return secret.reveal()
