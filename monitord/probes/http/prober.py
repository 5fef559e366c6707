"""The ``http`` probe: one request per target (redirects followed, bounded), judged on
status, body, response time and the TLS certificate — like blackbox_exporter's http module.

The client is httpcore, the maintained HTTP/1.1 transport under httpx (same project),
used directly: httpx's client layer (URL/header models, cookies, auth and redirect
machinery) cost ~40 % of a check's CPU here (measured with bench/http_checks.py), and the
probe needs none of it — redirects are followed here, bounded, as data.  Connections are
reused: one small keep-alive pool per origin, engine-wide, and a global semaphore bounds
the checks in flight (``engines.http.max_concurrency``).  The certificate's not-after is
read from the connection that answered (the response's ``network_stream`` extension →
``ssl_object``): no second handshake, and it is the certificate the check actually saw,
with verification on or off.  Header values (secrets) are sent only to the URL's own
origin, never to a redirect's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httpcore
from pydantic import SecretStr, ValidationError

from monitord.probes import conditions, tlsinfo
from monitord.probes.base import Observation, ParamsCache, RoundStats, Target, each_target
from monitord.probes.http import metrics
from monitord.probes.http.metrics import HttpStats
from monitord.probes.http.netio import AsyncioBackend
from monitord.probes.http.params import HttpParams
from monitord.probes.metrics import MetricFamily

USER_AGENT = b"monitord-http-probe"
REDIRECTS = frozenset({301, 302, 303, 307, 308})

# httpcore asks ``import sniffio`` on every lock set-up (several times per request); when
# sniffio is not installed each failed import searches sys.path (~40 % of a check's CPU,
# measured).  A None entry makes that import fail at once, with the same result.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Origin:
    pool: httpcore.AsyncConnectionPool
    sem: asyncio.Semaphore


class HttpProber:
    name = "http"

    def __init__(self, max_concurrency: int = 100, max_connections_per_host: int = 2,
                 keepalive_expiry: float = 30.0) -> None:
        self._sem = asyncio.Semaphore(max_concurrency)
        self._per_host = max_connections_per_host
        self._keepalive = keepalive_expiry
        self._backend = AsyncioBackend()
        self._tls = {True: tlsinfo.client_context(True), False: tlsinfo.client_context(False)}
        self._origins: dict[tuple[str, bool, str], _Origin] = {}
        #: device → (the params mapping validated, its model); holding the mapping keeps
        #: its identity unique, so ``is`` tells a reloaded job from the same one
        self._params = ParamsCache(HttpParams)
        self.stats = HttpStats()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        origins, self._origins = self._origins, {}
        for origin in origins.values():
            await origin.pool.aclose()

    def metrics(self) -> list[MetricFamily]:
        return metrics.families(self.stats)

    def _origin(self, ip_protocol: str, verify: bool, url: str) -> _Origin:
        """The connection pool for the URL's origin (scheme, host, port).

        One small pool per origin rather than one big one: httpcore's pool scans all its
        connections for every queued request, O(requests × connections), which made 100
        checks in flight through one pool 5× slower than 10 (measured); a semaphore per
        origin keeps each pool's queue within its connections."""
        key = (ip_protocol, verify, _origin_of(url))
        origin = self._origins.get(key)
        if origin is None:
            local = {"ip4": "0.0.0.0", "ip6": "::"}.get(ip_protocol)
            pool = httpcore.AsyncConnectionPool(
                ssl_context=self._tls[verify], max_connections=self._per_host,
                max_keepalive_connections=self._per_host,
                keepalive_expiry=self._keepalive, local_address=local, retries=0,
                network_backend=self._backend)
            origin = self._origins[key] = _Origin(pool, asyncio.Semaphore(self._per_host))
        return origin

    def forget(self, device_id: str) -> None:
        """Drop a device's validated settings (it left the config)."""
        self._params.forget(device_id)

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        return await each_target(self.name, targets, self._one)

    async def _one(self, target: Target) -> Observation:
        try:
            params = self._params.get(target)
        except ValidationError as exc:
            return self._fail(target, "bad_params", f"{exc.error_count()} errors")
        url = params.target_url(target.address)
        origin = self._origin(params.ip_protocol, params.tls_verify, url)
        async with origin.sem, self._sem:
            return await self._check(target, params, origin.pool, url)

    def _fail(self, target: Target, reason: str, detail: str = "",
              start: float | None = None, **values: float) -> Observation:
        self.stats.errors[reason] += 1
        dur = time.monotonic() - start if start is not None else 0.0
        info = {"detail": detail[:200]} if detail else {}
        return Observation(target.device_id, self.name, False, duration_seconds=dur,
                           values=dict(values), reason=reason, info=info)

    async def _check(self, target: Target, p: HttpParams, pool: httpcore.AsyncConnectionPool,
                     url: str) -> Observation:
        self.stats.requests += 1
        try:
            own = [(k.encode("latin-1"), (v.get_secret_value() if isinstance(v, SecretStr)
                                          else v.reveal()).encode("latin-1"))
                   for k, v in p.headers.items()]
        except (LookupError, OSError, UnicodeEncodeError):
            return self._fail(target, "secret_unavailable")
        start = time.monotonic()
        redirects = 0
        not_after: float | None = None
        method = p.method
        first = _origin_of(url)
        try:
            async with asyncio.timeout(p.timeout):
                while True:
                    origin = _origin_of(url)
                    headers = [(b"Host", origin.split("://", 1)[1].encode("idna")),
                               (b"User-Agent", USER_AGENT), (b"Accept", b"*/*"),
                               *(own if origin == first else [])]  # no secrets elsewhere
                    async with pool.stream(method, _wire_url(url), headers=headers) as resp:
                        if url.startswith("https:"):
                            stream = resp.extensions.get("network_stream")
                            if stream is not None:
                                not_after = tlsinfo.not_after(
                                    stream.get_extra_info("ssl_object"))
                        location = _header(resp.headers, b"location")
                        if (p.follow_redirects and resp.status in REDIRECTS
                                and location is not None):
                            if redirects >= p.max_redirects:
                                return self._fail(target, "too_many_redirects", start=start,
                                                  redirects=float(redirects))
                            redirects += 1
                            url = urljoin(url, location)
                            if not url.startswith(("http://", "https://")):
                                return self._fail(target, "bad_redirect", start=start)
                            if resp.status in (301, 302, 303) and method != "HEAD":
                                method = "GET"
                            pool = self._origin(p.ip_protocol, p.tls_verify, url).pool
                            continue
                        status = resp.status
                        body = await _read_limited(resp, p.max_body_bytes)
                        break
        except (TimeoutError, httpcore.TimeoutException):
            return self._fail(target, "timeout", start=start)
        except httpcore.ConnectError as exc:
            reason = "tls_error" if _is_tls(exc) else "connect_failed"
            return self._fail(target, reason, _short(exc), start=start)
        except (httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError, OSError) as exc:
            reason = "tls_error" if _is_tls(exc) else "protocol_error"
            return self._fail(target, reason, _short(exc), start=start)
        except (httpcore.UnsupportedProtocol, ValueError) as exc:
            return self._fail(target, "bad_url", _short(exc), start=start)
        elapsed = time.monotonic() - start
        values: dict[str, float] = {"response_seconds": elapsed,
                                    "status_code": float(status),
                                    "redirects": float(redirects),
                                    "content_length": float(len(body))}
        if not_after is not None:
            values["tls_cert_not_after"] = not_after
        # the server answered: report the certificate condition (a ticket "renew the
        # certificate", monitord.probes.conditions) whatever the status or body
        conds = {} if not_after is None else conditions.tls_cert_expiring(
            _origin_of(url).split("://", 1)[1], not_after, time.time(), p.cert_expiry_warning)
        reason = _judge(p, status, body)
        if reason:
            self.stats.errors[reason.split(":")[0]] += 1
            return Observation(target.device_id, self.name, False, duration_seconds=elapsed,
                               values=values, reason=reason, conditions=conds)
        degraded = []
        if p.max_response_time is not None and elapsed > p.max_response_time:
            degraded.append(f"slow response: {elapsed:.2f}s > {p.max_response_time:g}s")
        if warn := tlsinfo.expiry_warning(not_after, time.time(), p.cert_expiry_warning):
            degraded.append(warn)
        return Observation(target.device_id, self.name, True, duration_seconds=elapsed,
                           values=values, degraded="; ".join(degraded), conditions=conds)


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL."""
    scheme, rest = url.split("://", 1)
    return scheme.lower() + "://" + rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _wire_url(url: str) -> str:
    """The URL as sent: non-ASCII path/query percent-encoded, fragment dropped."""
    url = url.split("#", 1)[0]
    origin = _origin_of(url)
    rest = url[len(origin):] or "/"
    return origin + quote(rest, safe="/?&=%:@!$'()*+,;~-._[]")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _judge(p: HttpParams, status: int, body: bytes) -> str:
    if not p.status_ok(status):
        return f"status_{status}"
    if p.body_contains is None and p.body_not_contains is None and not (
            p.body_regex or p.body_not_regex):
        return ""
    text = body.decode("utf-8", "replace")
    if p.body_contains is not None and p.body_contains not in text:
        return "keyword_missing"
    if p.body_not_contains is not None and p.body_not_contains in text:
        return "keyword_present"
    if any(re.search(rx, text) is None for rx in p.body_regex):
        return "body_regex_mismatch"
    if any(re.search(rx, text) is not None for rx in p.body_not_regex):
        return "body_regex_matched"
    return ""


async def _read_limited(resp: httpcore.Response, limit: int) -> bytes:
    out = bytearray()
    async for chunk in resp.aiter_stream():
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)


def _is_tls(exc: BaseException) -> bool:
    text = f"{exc!r} {exc.__cause__!r} {exc.__context__!r}"
    return "SSL" in text or "CERTIFICATE" in text.upper()


def _short(exc: BaseException) -> str:
    text: Any = str(exc) or type(exc).__name__
    return str(text)[:200]
