"""The ``tcp`` probe: connect (optionally TLS), optionally read a banner that must match a
regex (SMTP ``220``), optionally send a line and match the reply — like blackbox_exporter's
tcp module with ``query_response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from monitord.probes import conditions, tlsinfo
from monitord.probes.base import Observation, RoundStats, Target, each_target
from monitord.probes.metrics import MetricFamily
from monitord.probes.tcp import metrics
from monitord.probes.tcp.metrics import TcpStats
from monitord.probes.tcp.params import TcpParams

MAX_READ = 4096


class TcpProber:
    name = "tcp"

    def __init__(self, max_concurrency: int = 200) -> None:
        self._sem = asyncio.Semaphore(max_concurrency)
        self._ctx = {True: tlsinfo.client_context(True), False: tlsinfo.client_context(False)}
        self.stats = TcpStats()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def metrics(self) -> list[MetricFamily]:
        return metrics.families(self.stats)

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        return await each_target(self.name, targets, self._one)

    async def _one(self, target: Target) -> Observation:
        try:
            raw = target.params
            p = raw if isinstance(raw, TcpParams) else TcpParams.model_validate(dict(raw))
        except ValidationError as exc:
            return self._fail(target, "bad_params", 0.0, f"{exc.error_count()} errors")
        async with self._sem:
            self.stats.checks += 1
            start = time.monotonic()
            progress = _Progress()
            try:
                async with asyncio.timeout(p.timeout):
                    return await self._check(target, p, start, progress)
            except TimeoutError:
                # what was awaited when time ran out: the connection, the banner or the reply
                reason = progress.stage if progress.stage == "timeout" else (
                    f"{progress.stage}_mismatch" if progress.received
                    else f"{progress.stage}_timeout")
                return self._fail(target, reason, start, values=progress.values)

    def _fail(self, target: Target, reason: str, start: float, detail: str = "",
              values: dict[str, float] | None = None) -> Observation:
        self.stats.errors[reason] += 1
        dur = time.monotonic() - start if start else 0.0
        return Observation(target.device_id, "tcp", False, duration_seconds=dur,
                           values=dict(values or {}), reason=reason,
                           info={"detail": detail[:200]} if detail else {})

    async def _check(self, target: Target, p: TcpParams, start: float,
                     progress: _Progress) -> Observation:
        family = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}.get(p.ip_protocol, 0)
        ctx = self._ctx[p.tls_verify] if p.tls else None
        try:
            reader, writer = await asyncio.open_connection(
                target.address, p.port, family=family, ssl=ctx,
                server_hostname=(p.server_name or target.address) if ctx else None)
        except ssl.SSLError as exc:
            return self._fail(target, "tls_error", start, str(exc))
        except OSError as exc:
            return self._fail(target, "connect_failed", start, exc.strerror or str(exc))
        connect = time.monotonic() - start
        values = progress.values
        values["connect_seconds"] = connect
        try:
            if ctx is not None:
                na = tlsinfo.not_after(writer.get_extra_info("ssl_object"))
                if na is not None:
                    values["tls_cert_not_after"] = na
            progress.stage = "banner"
            if p.expect_banner is not None and not await _expect(reader, p.expect_banner,
                                                                 progress):
                return self._fail(target, "banner_mismatch", start, values=values)
            if p.send is not None:
                progress.stage, progress.received = "reply", 0
                writer.write(p.send.encode().replace(b"\\r", b"\r").replace(b"\\n", b"\n"))
                await writer.drain()
                if p.expect is not None and not await _expect(reader, p.expect, progress):
                    return self._fail(target, "reply_mismatch", start, values=values)
        except (OSError, EOFError) as exc:
            return self._fail(target, "connection_lost", start, str(exc), values)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        degraded = []
        if p.max_connect_time is not None and connect > p.max_connect_time:
            degraded.append(f"slow connect: {connect:.2f}s > {p.max_connect_time:g}s")
        if warn := tlsinfo.expiry_warning(values.get("tls_cert_not_after"), time.time(),
                                          p.cert_expiry_warning):
            degraded.append(warn)
        not_after = values.get("tls_cert_not_after")
        conds = {} if not_after is None else conditions.tls_cert_expiring(
            f"{p.server_name or target.address}:{p.port}", not_after, time.time(),
            p.cert_expiry_warning)
        return Observation(target.device_id, "tcp", True,
                           duration_seconds=time.monotonic() - start, values=values,
                           degraded="; ".join(degraded), conditions=conds)


@dataclass(slots=True)
class _Progress:
    """How far a check got, to name a timeout: connecting, waiting for banner or reply."""

    stage: str = "timeout"
    received: int = 0
    values: dict[str, float] = field(default_factory=dict)


async def _expect(reader: asyncio.StreamReader, pattern: str, progress: _Progress) -> bool:
    """Read until ``pattern`` matches what arrived, the peer closes or MAX_READ bytes."""
    rx = re.compile(pattern.encode("utf-8"), re.MULTILINE)
    buf = b""
    while len(buf) < MAX_READ:
        chunk = await reader.read(MAX_READ - len(buf))
        if not chunk:
            break
        buf += chunk
        progress.received = len(buf)
        if rx.search(buf):
            return True
    return rx.search(buf) is not None
