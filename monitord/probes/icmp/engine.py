"""ICMP echo probe engine: whole batches of hosts over one shared socket per family.

Why not one socket (or one task) per host: at 10,000 hosts that costs 10,000 file
descriptors, 10,000 wake-ups and identifier collisions, and replies overflow the many
small receive buffers — live hosts then look dead.  Instead:

* one socket per address family (raw, or unprivileged datagram "ping" sockets), with a
  large receive buffer and a kernel filter so only echo replies (and errors) are queued;
* each request carries a random per-engine cookie, the round id, the host index, the ping
  number and its send timestamps in the payload, so a reply is matched with a couple of
  list lookups — no per-packet dictionaries, no dependence on the ICMP identifier (the
  kernel picks it for datagram sockets);
* sends are paced (token bucket, ``rate_pps``) and bounded (``max_in_flight``); a send the
  kernel refuses for lack of buffer space is retried, never counted as lost;
* RTTs come from kernel receive timestamps (``SO_TIMESTAMPNS``), so a busy event loop
  neither inflates RTTs nor turns timely replies into timeouts;
* the kernel's per-socket ``drops`` counter is read before and after each batch: if
  replies were dropped locally, the hosts that look lossy are probed again more slowly,
  and if that still cannot be trusted the round says ``incomplete`` and those hosts'
  results say ``complete=False``.  A live host is never reported dead with complete=True
  because of a local limit.

Matching and sending live here; the rest of the package holds packet building
(:mod:`.packet`), pacing and per-batch state (:mod:`.pacing`), the sockets
(:mod:`.sockets`), name resolution (:mod:`.resolve`) and the ``icmp`` prober
(:mod:`.prober`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import secrets
import socket
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from monitord.probes.base import ProbeSetupError
from monitord.probes.icmp import packet as pkt
from monitord.probes.icmp.pacing import NS, Batch, Dest, Pacer, PingParams
from monitord.probes.icmp.resolve import Resolver, same_ip
from monitord.probes.icmp.results import HostResult, IcmpRound, IcmpStats, lossy, summarise
from monitord.probes.icmp.sockets import Channel, open_channel, read_drops, setup_help

log = logging.getLogger("monitord.probes.icmp")

Mode = Literal["auto", "raw", "dgram"]

DEFAULT_RATE_PPS = 50_000
DEFAULT_MAX_IN_FLIGHT = 20_000
DEFAULT_RCVBUF_BYTES = 16 << 20
DEFAULT_COUNT = 3
DEFAULT_TIMEOUT = 1.0
DEFAULT_PERIOD = 0.2
REPROBE_ATTEMPTS = 2  # slower re-probes after local drops before giving up
REPROBE_SLOWDOWN = 8  # each re-probe runs at rate / 8**attempt
DRAIN_MAX = 4096  # packets read per reader callback before yielding to the loop
RECV_BYTES = 576  # enough for an error message quoting our whole request
SEND_RETRY_S = 0.001  # back-off when the kernel has no buffer space for a send

_UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})
_RETRY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})


class IcmpEngine:
    """Shared-socket ICMP echo engine.  Start once, then ``ping()`` batches concurrently.

    ``mode``: ``"raw"`` (root or CAP_NET_RAW), ``"dgram"`` (unprivileged ping sockets,
    allowed by ``net.ipv4.ping_group_range``) or ``"auto"`` (raw, else dgram).
    ``rate_pps`` bounds the send rate over all concurrent rounds, ``max_in_flight`` the
    requests awaiting a reply or their timeout, ``rcvbuf_bytes`` each socket's receive
    buffer (forced past ``net.core.rmem_max`` when privileged).
    """

    def __init__(self, mode: Mode = "auto", rate_pps: int = DEFAULT_RATE_PPS,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES) -> None:
        if mode not in ("auto", "raw", "dgram"):
            raise ValueError(f"mode must be auto, raw or dgram, not {mode!r}")
        if rate_pps <= 0 or max_in_flight <= 0 or rcvbuf_bytes <= 0:
            raise ValueError("rate_pps, max_in_flight and rcvbuf_bytes must be positive")
        self.requested_mode: Mode = mode
        self.mode: str | None = None  # "raw" / "dgram" once started
        self.rate_pps = rate_pps
        self.max_in_flight = max_in_flight
        self.rcvbuf_bytes = rcvbuf_bytes
        self.stats = IcmpStats()
        self._channels: list[Channel | None] = [None, None]
        self._cookie = secrets.token_bytes(pkt.COOKIE_LEN)
        self._ident = secrets.randbelow(0x10000)
        self._csum_base = pkt.checksum_base(self._ident, self._cookie)
        self._rid = itertools.count(secrets.randbelow(pkt.MAX_ROUND_ID // 2) + 1)
        self._batches: dict[int, Batch] = {}
        self._pacer = Pacer(rate_pps, max(1, rate_pps // 200))  # bursts of ≤ 5 ms
        self._in_flight = 0
        self._room = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._active_pings = 0
        self._resolver = Resolver(self._channels)

    # ------------------------------------------------------------------ lifecycle

    @property
    def families(self) -> list[str]:
        return [name for name, ch in zip(("IPv4", "IPv6"), self._channels, strict=True) if ch]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        """Open the shared sockets; raise ProbeSetupError naming the fixes if we cannot."""
        if self.mode is not None:
            return
        self._loop = asyncio.get_running_loop()
        modes = ["raw", "dgram"] if self.requested_mode == "auto" else [self.requested_mode]
        errors: list[str] = []
        for mode in modes:
            try:
                self._open(mode)
            except OSError as exc:
                errors.append(f"{mode}: {exc}")
                self._close_channels()
                continue
            self.mode = mode
            break
        if self.mode is None:
            raise ProbeSetupError(setup_help(errors))
        for ch in self._channels:
            if ch is not None:
                self._loop.add_reader(ch.sock.fileno(), self._drain, ch)
        ch4 = self._channels[0]
        rcvbuf = ch4.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) if ch4 else 0
        log.info(
            "ICMP engine started: mode=%s (%s), families=%s, rate=%d pps, max_in_flight=%d, "
            "rcvbuf=%d bytes",
            self.mode,
            "raw sockets, root/CAP_NET_RAW" if self.mode == "raw"
            else "unprivileged ICMP datagram sockets via net.ipv4.ping_group_range",
            "+".join(self.families), self.rate_pps, self.max_in_flight, rcvbuf,
        )

    def _open(self, mode: str) -> None:
        """Open the IPv4 socket (required) and the IPv6 one (optional) in ``mode``."""
        self._channels[0] = open_channel(mode, socket.AF_INET, self.rcvbuf_bytes)
        try:
            self._channels[1] = open_channel(mode, socket.AF_INET6, self.rcvbuf_bytes)
        except OSError as exc:
            log.warning("ICMP engine: IPv6 unavailable (%s); IPv6 targets will fail", exc)

    async def close(self) -> None:
        """Stop: running pings finish at once with incomplete results, sockets close."""
        if self._closing:
            return
        self._closing = True
        for b in self._batches.values():
            b.aborted = True
            b.done.set()
        self._room.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 5.0)
        self._close_channels()

    def _close_channels(self) -> None:
        for i, ch in enumerate(self._channels):
            if ch is None:
                continue
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(ch.sock.fileno())
            with contextlib.suppress(Exception):
                ch.holder.close()
            self._channels[i] = None

    # ------------------------------------------------------------------ public API

    async def ping(self, addresses: Sequence[str], *, count: int = DEFAULT_COUNT,
                   timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (ICMP reply timeout)
                   period: float = DEFAULT_PERIOD) -> IcmpRound:
        """Send ``count`` echo requests to every address; results in input order.

        ``timeout`` (s) is how long each request may wait for its reply; ``period`` (s)
        is the minimum gap between two requests to the same host.  Addresses may be IP
        literals or host names.  Never raises for a bad host: the host's result says
        why (``resolve_failed``, ``timeout`` …).
        """
        if not 1 <= count <= 0xFFFF:
            raise ValueError("count must be between 1 and 65535")
        if timeout <= 0 or period < 0:
            raise ValueError("timeout must be positive and period not negative")
        if self.mode is None:
            raise RuntimeError("IcmpEngine.start() has not been called")
        t0 = time.monotonic()
        if self._closing:
            rnd = IcmpRound([HostResult(a, None, 0, 0, 1.0, complete=False,
                                        reason="engine_closed") for a in addresses])
            summarise(rnd, dict.fromkeys(range(len(addresses)), "engine_closed"))
            return rnd
        self._active_pings += 1
        self._idle.clear()
        try:
            rnd = await self._ping(list(addresses), PingParams(count, timeout, period))
        finally:
            self._active_pings -= 1
            if self._active_pings == 0:
                self._idle.set()
        rnd.duration = time.monotonic() - t0
        self.stats.rounds += 1
        if rnd.incomplete:
            self.stats.rounds_incomplete += 1
        return rnd

    async def _ping(self, addresses: list[str], p: PingParams) -> IcmpRound:
        resolved = await self._resolver.resolve_all(addresses)
        results: list[HostResult] = []
        causes: dict[int, str] = {}  # why a host's result is incomplete
        dests: dict[int, Dest] = {}
        for i, (addr, res) in enumerate(zip(addresses, resolved, strict=True)):
            if isinstance(res, Dest):
                dests[i] = res
                results.append(HostResult(addr, res.ip, 0, 0, 1.0))  # replaced below
            else:
                reason, complete = res
                results.append(HostResult(addr, None, 0, 0, 1.0, complete=complete,
                                          reason=reason))
                if not complete:
                    causes[i] = reason
        rnd = IcmpRound(results)
        suspects = list(dests)
        for attempt in range(REPROBE_ATTEMPTS + 1):
            b = await self._run_batch([dests[i] for i in suspects], p,
                                      self._reprobe_pacer(attempt))
            if attempt:
                rnd.reprobed_hosts += len(suspects)
                self.stats.hosts_reprobed += len(suspects)
            rnd.socket_drops += b.drops
            rnd.invalid_replies += b.invalid
            rnd.late_replies += b.late
            rnd.duplicate_replies += b.duplicates
            for j, (i, hr) in enumerate(zip(suspects, b.results([addresses[i] for i in suspects]),
                                            strict=True)):
                results[i] = hr
                causes.pop(i, None)
                if b.aborted:
                    causes[i] = "engine_closed"
                elif b.send_failed[j]:
                    causes[i] = "send_failed"
            if not b.drops or b.aborted:
                suspects = []
                break
            # A local drop can only *remove* replies: hosts that answered every request
            # are exact.  Probe the others again, more slowly.
            suspects = [i for i in suspects if lossy(results[i])]
            if not suspects:
                break
            if attempt < REPROBE_ATTEMPTS:
                log.info("ICMP round: kernel drop counter rose by %d; re-probing %d lossy "
                         "hosts more slowly (attempt %d)", b.drops, len(suspects), attempt + 1)
        for i in suspects:  # still lossy while the kernel was dropping: cannot be trusted
            r = results[i]
            results[i] = replace(r, complete=False,
                                 reason=r.reason if r.received else "socket_drops")
            causes[i] = "socket_drops"
        summarise(rnd, causes)
        return rnd

    def _reprobe_pacer(self, attempt: int) -> Pacer | None:
        """Re-probes run at rate / 8**attempt so the receive queue cannot overflow again."""
        if not attempt:
            return None
        rate = max(10.0, self.rate_pps / REPROBE_SLOWDOWN**attempt)
        return Pacer(rate, max(1, int(rate // 200)))

    # ------------------------------------------------------------------ batches

    async def _run_batch(self, dests: list[Dest], p: PingParams, pacer: Pacer | None) -> Batch:
        rid = next(self._rid) & pkt.MAX_ROUND_ID
        b = Batch(rid, dests, p, pacer)
        if not dests:
            return b
        self._batches[rid] = b
        drops0 = read_drops(self._channels)
        try:
            await self._send_all(b)
            b.sending_done = True
            if b.received >= b.sent_total:
                b.done.set()
            remaining = (b.max_tx + b.timeout_ns - time.monotonic_ns()) / NS
            if remaining > 0 and not b.done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(b.done.wait(), remaining)
            self._drain_all()  # replies the kernel queued before the deadline
        finally:
            del self._batches[rid]
            self._settle(b)
        drops1 = read_drops(self._channels)
        if drops0 is None or drops1 is None:
            b.drops = 1 if b.received < b.sent_total else 0  # unknown: assume the worst
        else:
            b.drops = drops1 - drops0
            self.stats.socket_drops += b.drops
        return b

    async def _send_all(self, b: Batch) -> None:
        """Send every wave; wave k+1 to a host no sooner than ``period`` after wave k."""
        for k in range(b.count):
            active = [i for i in range(b.n) if not b.send_failed[i] and not b.unreachable[i]]
            start = stalled_since = 0
            while start < len(active):
                if self._closing:
                    b.aborted = True
                    return
                now = time.monotonic_ns()
                end = len(active)
                if k:
                    end = bisect_right(active, now - b.period_ns, start, end,
                                       key=b.last_tx.__getitem__)
                    if end == start:
                        await asyncio.sleep((b.last_tx[active[start]] + b.period_ns - now)
                                            / NS)
                        continue
                grant = self._grant(b, now, end - start)
                if grant <= 0:
                    await self._wait_for_room(b)
                    continue
                nxt = self._send_burst(b, k, active, start, start + grant)
                if nxt == start + grant:
                    stalled_since, start = 0, nxt
                    # Let the readers run between bursts; sleeping straight away for the
                    # next chunk of tokens saves an event-loop iteration per burst.
                    await asyncio.sleep(self._pause(b))
                    continue
                # The kernel had no buffer space: wait a little and send the same request
                # again.  Only if that lasts longer than the timeout is the host given up
                # (as a local failure, so its result is marked incomplete).
                now = time.monotonic_ns()
                if nxt > start or not stalled_since:
                    stalled_since = now
                elif now - stalled_since > max(b.timeout_ns, NS):
                    self._give_up_send(b, active[nxt])
                    nxt, stalled_since = nxt + 1, 0
                start = nxt
                await asyncio.sleep(SEND_RETRY_S)

    def _grant(self, b: Batch, now: int, want: int) -> int:
        """Requests allowed now by the engine pacer, the batch pacer and max_in_flight."""
        if self._in_flight >= self.max_in_flight:
            self._expire(now)
        grant = min(want, self._pacer.available(now, want),
                    self.max_in_flight - self._in_flight)
        if b.pacer is not None:
            grant = min(grant, b.pacer.available(now, want))
            b.pacer.take(max(grant, 0))
        self._pacer.take(max(grant, 0))
        return grant

    def _pause(self, b: Batch) -> float:
        """0 when the next chunk may be sent at once, else the time until it may."""
        now = time.monotonic_ns()
        want = self._pacer.chunk if b.pacer is None else min(self._pacer.chunk, b.pacer.chunk)
        if self._pacer.available(now, want) and (
                b.pacer is None or b.pacer.available(now, want)):
            return 0.0
        return max(self._pacer.wait_s(), b.pacer.wait_s() if b.pacer else 0.0)

    async def _wait_for_room(self, b: Batch) -> None:
        wait = self._pacer.wait_s()
        if b.pacer is not None:
            wait = max(wait, b.pacer.wait_s())
        if self._in_flight >= self.max_in_flight:
            # Room comes back with replies (reader sets _room) or with expiring bursts.
            self._room.clear()
            deadline = min((x.bursts[0][0] for x in self._batches.values() if x.bursts),
                           default=time.monotonic_ns() + 10_000_000)
            wait = max(0.001, (deadline - time.monotonic_ns()) / NS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), wait)
            return
        await asyncio.sleep(wait)

    def _send_burst(self, b: Batch, k: int, active: list[int], lo: int, hi: int) -> int:
        """Send wave ``k`` to ``active[lo:hi]``; return the next position to send.

        Stops early (returning that position) when the kernel is out of buffer space, so
        the caller waits and sends the same request again — it is never counted lost.
        """
        chans = self._channels
        sends = [ch.sock.sendto if ch else _no_socket for ch in chans]
        types = [ch.request_type if ch else 0 for ch in chans]
        v4raw = chans[0] is not None and chans[0].ip_header
        pack, mono_ns = pkt.PACKET.pack, time.monotonic_ns
        # Wall-clock send time (pairs with the kernel's receive timestamp) derived from
        # the monotonic one: one clock read per packet instead of two.
        wall_offset = time.time_ns() - mono_ns()
        cookie, ident, base, rid = self._cookie, self._ident, self._csum_base, b.rid
        dests, sent, last_tx = b.dests, b.sent, b.last_tx
        base_pos = k * b.n
        nsent = 0
        tx = 0
        pos = lo
        for pos in range(lo, hi):
            i = active[pos]
            d = dests[i]
            slot = d.slot
            tx = mono_ns()
            wall = tx + wall_offset
            csum = 0
            if slot == 0 and v4raw:
                s = (base + rid + i + 2 * k + wall + tx) % 0xFFFF
                csum = 0xFFFF - s if s else 0
            send = sends[slot]
            try:
                send(pack(types[slot], 0, csum, ident, k, cookie, rid, i, k, wall, tx),
                     d.sockaddr)
            except OSError as exc:
                if exc.errno in _RETRY_ERRNOS:
                    self.stats.send_retries += 1
                    if pos > lo:
                        self._record_burst(b, base_pos + active[lo], base_pos + active[pos - 1] + 1,
                                           nsent, tx)
                    return pos
                self._send_error(b, i, exc)
                continue
            sent[i] += 1
            last_tx[i] = tx
            nsent += 1
        self._record_burst(b, base_pos + active[lo], base_pos + active[hi - 1] + 1, nsent, tx)
        return hi

    def _record_burst(self, b: Batch, lo_pos: int, hi_pos: int, nsent: int,
                      last_tx: int) -> None:
        """Account a burst for max_in_flight: it expires ``timeout`` after its last send.

        Its requests' flags are ``b.flags[lo_pos:hi_pos]`` (gaps there were never sent).
        """
        if nsent <= 0:
            return
        b.bursts.append((last_tx + b.timeout_ns, lo_pos, hi_pos, nsent))
        b.sent_total += nsent
        b.max_tx = max(b.max_tx, last_tx)
        self._in_flight += nsent
        self.stats.packets_sent += nsent

    def _give_up_send(self, b: Batch, i: int) -> None:
        self.stats.send_errors += 1
        b.send_failed[i] = 1
        log.warning("ICMP send to %s kept failing for lack of buffer space; giving up "
                    "for this round", b.dests[i].ip)

    def _send_error(self, b: Batch, i: int, exc: OSError) -> None:
        self.stats.send_errors += 1
        if exc.errno in _UNREACHABLE_ERRNOS:
            b.unreachable[i] = 1  # no route from here: a real answer about the host
        else:
            b.send_failed[i] = 1  # local refusal (EPERM by a firewall, EACCES …)
            log.debug("ICMP send to %s failed: %s", b.dests[i].ip, exc)

    def _expire(self, now: int) -> None:
        """Return in-flight room for requests whose timeout has passed."""
        for b in self._batches.values():
            bursts = b.bursts
            while bursts and bursts[0][0] <= now:
                _, lo, hi, nsent = bursts.popleft()
                self._in_flight -= nsent - b.flags.count(1, lo, hi)
                b.expired_pos = hi

    def _settle(self, b: Batch) -> None:
        """Batch over: whatever is still counted in flight is not any more."""
        while b.bursts:
            _, lo, hi, nsent = b.bursts.popleft()
            self._in_flight -= nsent - b.flags.count(1, lo, hi)
        b.expired_pos = b.n * b.count
        self._room.set()

    # ------------------------------------------------------------------ receiving

    def _drain_all(self) -> None:
        for ch in self._channels:
            if ch is not None:
                self._drain(ch)

    def _drain(self, ch: Channel) -> None:
        """Reader callback: read until EAGAIN (bounded), match each reply to its request.

        This is the per-packet hot path, hence the local aliases and the per-batch
        cache: consecutive replies almost always belong to the same batch.
        """
        recvmsg = ch.sock.recvmsg
        ip_header, reply_type, errs = ch.ip_header, ch.reply_type, ch.error_types
        cookie, batches, stats = self._cookie, self._batches, self.stats
        unpack, timespec, mono_ns = (pkt.PAYLOAD_TAIL.unpack_from, pkt.TIMESPEC.unpack_from,
                                     time.monotonic_ns)
        need = pkt.PACKET_LEN
        cur = -1
        b: Batch | None = None
        n = count = start = timeout = 0
        flags, rtts, ips = bytearray(), [0], [""]
        matched = freed = 0
        for _ in range(DRAIN_MAX):
            try:
                data, anc, _flags, src = recvmsg(RECV_BYTES, 64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # an ICMP error queued on a datagram socket; nothing to match
                continue
            off = (data[0] & 0x0F) << 2 if ip_header else 0
            if len(data) < off + need or data[off] != reply_type:
                if len(data) > off and data[off] in errs:
                    self._on_icmp_error(ch, data, off)
                else:
                    stats.foreign_packets += 1
                continue
            if not data.startswith(cookie, off + 8):
                stats.foreign_packets += 1
                continue
            rid, idx, k, tx_wall, tx_mono = unpack(data, off + 16)
            if rid != cur:
                b = batches.get(rid)
                if b is None:
                    stats.late_replies += 1
                    continue
                cur, n, count, start, timeout = rid, b.n, b.count, b.start_mono, b.timeout_ns
                flags, rtts, ips = b.flags, b.rtt, b.ips
            assert b is not None
            rtt = mono_ns() - tx_mono
            if anc and len(anc[0][2]) >= 16:
                sec, nsec = timespec(anc[0][2])
                krtt = sec * NS + nsec - tx_wall
                if 0 <= krtt <= rtt:  # kernel receive time, unless the wall clock stepped
                    rtt = krtt
            if idx >= n or k >= count or tx_mono < start or rtt < 0 or (
                src[0] != ips[idx] and not same_ip(src[0], ips[idx])
            ):
                b.invalid += 1
                stats.invalid_replies += 1
                continue
            pos = k * n + idx
            if flags[pos]:
                b.duplicates += 1
                stats.duplicate_replies += 1
                continue
            if rtt > timeout:
                b.late += 1
                stats.late_replies += 1
                continue
            flags[pos] = 1
            rtts[pos] = rtt
            b.received += 1
            matched += 1
            if pos >= b.expired_pos:
                freed += 1
            if b.sending_done and b.received >= b.sent_total:
                b.done.set()
        stats.packets_received += matched
        if freed:
            self._in_flight -= freed
            self._room.set()

    def _on_icmp_error(self, ch: Channel, data: bytes, off: int) -> None:
        """Destination unreachable / time exceeded quoting one of our requests."""
        inner = off + 8
        if ch.family == socket.AF_INET:
            if len(data) < inner + 20:
                return
            dst = socket.inet_ntop(socket.AF_INET, data[inner + 16 : inner + 20])
            inner += (data[inner] & 0x0F) << 2
        else:
            if len(data) < inner + 40:
                return
            dst = socket.inet_ntop(socket.AF_INET6, data[inner + 24 : inner + 40])
            inner += 40
        if (len(data) < inner + pkt.PACKET_LEN or data[inner] != ch.request_type
                or data[inner + 8 : inner + 16] != self._cookie):
            return
        rid, idx, _k, _w, _m = pkt.PAYLOAD_TAIL.unpack_from(data, inner + 16)
        b = self._batches.get(rid)
        if b is not None and idx < b.n and same_ip(dst, b.dests[idx].ip):
            b.unreachable[idx] = 1


def _no_socket(data: bytes, address: Any) -> int:
    """Stand-in sender for a family without a socket (its hosts never get this far)."""
    raise OSError(errno.EAFNOSUPPORT, "no socket for this address family")
