"""The ``dns`` probe: one query (name, type) to a server, the reply judged on its rcode
and answers — like blackbox_exporter's dns module.

dnspython is not a dependency, so the wire format is :mod:`.wire` (small, fuzz-tested);
UDP with a retry, TCP when the reply is truncated (or ``transport: tcp``).  Replies with
the wrong id or from the wrong address are dropped and counted (spoofing, late replies).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import struct
import time
from collections.abc import Sequence

from pydantic import ValidationError

from monitord.probes.base import Observation, RoundStats, Target, each_target
from monitord.probes.dns import metrics
from monitord.probes.dns.metrics import DnsStats
from monitord.probes.dns.params import DnsParams
from monitord.probes.dns.wire import MalformedReply, Reply, build_query, parse_reply
from monitord.probes.metrics import MetricFamily


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, qid: int, stats: DnsStats) -> None:
        self.qid = qid
        self.stats = stats
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 2 or struct.unpack_from("!H", data)[0] != self.qid:
            self.stats.dropped["unmatched"] += 1
            return
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class DnsProber:
    name = "dns"

    def __init__(self, max_concurrency: int = 200) -> None:
        self._sem = asyncio.Semaphore(max_concurrency)
        self.stats = DnsStats()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def metrics(self) -> list[MetricFamily]:
        return metrics.families(self.stats)

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        return await each_target(self.name, targets, self._one)

    def _fail(self, target: Target, reason: str, start: float, detail: str = "",
              **values: float) -> Observation:
        self.stats.errors[reason] += 1
        return Observation(target.device_id, "dns", False,
                           duration_seconds=time.monotonic() - start if start else 0.0,
                           values=dict(values), reason=reason,
                           info={"detail": detail[:200]} if detail else {})

    async def _one(self, target: Target) -> Observation:
        try:
            raw = target.params
            p = raw if isinstance(raw, DnsParams) else DnsParams.model_validate(dict(raw))
        except ValidationError as exc:
            return self._fail(target, "bad_params", 0.0, f"{exc.error_count()} errors")
        server = p.server or target.address
        async with self._sem:
            self.stats.queries += 1
            start = time.monotonic()
            try:
                reply = await self.query(server, p)
            except TimeoutError:
                return self._fail(target, "timeout", start)
            except MalformedReply as exc:
                return self._fail(target, "malformed", start, str(exc))
            except OSError as exc:
                return self._fail(target, "unreachable", start, exc.strerror or str(exc))
        elapsed = time.monotonic() - start
        values = {"lookup_seconds": elapsed, "answers": float(len(reply.answers))}
        info = {"answers": " | ".join(r.data for r in reply.answers)[:300],
                "rcode": reply.rcode}
        reason = _judge(p, reply)
        if reason:
            self.stats.errors[reason.split(" ")[0]] += 1
            return Observation(target.device_id, "dns", False, duration_seconds=elapsed,
                               values=values, reason=reason, info=info)
        degraded = ""
        if p.max_lookup_time is not None and elapsed > p.max_lookup_time:
            degraded = f"slow lookup: {elapsed:.2f}s > {p.max_lookup_time:g}s"
        return Observation(target.device_id, "dns", True, duration_seconds=elapsed,
                           values=values, info=info, degraded=degraded)

    async def query(self, server: str, p: DnsParams) -> Reply:
        qid = secrets.randbelow(1 << 16)
        msg = build_query(qid, p.name, p.type, p.recursion)
        if p.transport == "udp":
            reply = await self._udp(server, p, qid, msg)
            if not reply.truncated:
                return reply
        return await self._tcp(server, p, qid, msg)

    async def _udp(self, server: str, p: DnsParams, qid: int, msg: bytes) -> Reply:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Udp(qid, self.stats), remote_addr=(server, p.port),
            family=socket.AF_INET6 if ":" in server else socket.AF_INET)
        try:
            for attempt in range(p.retries + 1):
                transport.sendto(msg)
                try:
                    data = await asyncio.wait_for(asyncio.shield(proto.reply), p.timeout)
                    break
                except TimeoutError:
                    if attempt == p.retries:
                        raise
            return _checked(data, qid)
        finally:
            transport.close()

    async def _tcp(self, server: str, p: DnsParams, qid: int, msg: bytes) -> Reply:
        async with asyncio.timeout(p.timeout):
            reader, writer = await asyncio.open_connection(server, p.port)
            try:
                writer.write(struct.pack("!H", len(msg)) + msg)
                await writer.drain()
                try:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                except asyncio.IncompleteReadError:
                    raise MalformedReply("connection closed mid-reply") from None
            finally:
                writer.close()
        return _checked(data, qid)


def _checked(data: bytes, qid: int) -> Reply:
    reply = parse_reply(data)
    if reply.id != qid:
        raise MalformedReply("reply id does not match the query")
    return reply


def _judge(p: DnsParams, reply: Reply) -> str:
    if reply.rcode != p.expect_rcode:
        return f"rcode_{reply.rcode.lower()}"
    if p.expect_rcode != "NOERROR":
        return ""
    if p.require_answer and not reply.answers:
        return "no_answer"
    data = [r.data for r in reply.answers]
    for want in p.expect_contains:
        if want not in data and want.rstrip(".") + "." not in data:
            return "answer_missing"
    for rx in p.expect_regex:
        if not any(re.search(rx, d) for d in data):
            return "answer_mismatch"
    return ""
