"""The ``http`` probe: one request per target (redirects followed, bounded), judged on
status, body, response time and the TLS certificate — like blackbox_exporter's http module.

Connections are reused: one :class:`httpx.AsyncClient` per (IP family, TLS verification)
for the whole engine, with connection limits, and a global semaphore bounds the checks in
flight (``engines.http.max_concurrency``).  The certificate's not-after is read from the
connection that answered (httpx exposes it through the response's ``network_stream``
extension → ``ssl_object``): no second handshake, and it is the certificate the check
actually saw, with verification on or off.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from monitord.probes import tlsinfo
from monitord.probes.base import Observation, RoundStats, Target
from monitord.probes.http import metrics
from monitord.probes.http.metrics import HttpStats
from monitord.probes.http.params import HttpParams
from monitord.probes.metrics import MetricFamily

USER_AGENT = "monitord-http-probe"


class HttpProber:
    name = "http"

    def __init__(self, max_concurrency: int = 100, max_connections: int = 200,
                 max_keepalive_connections: int = 100, keepalive_expiry: float = 30.0) -> None:
        self._sem = asyncio.Semaphore(max_concurrency)
        self._limits = httpx.Limits(max_connections=max_connections,
                                    max_keepalive_connections=max_keepalive_connections,
                                    keepalive_expiry=keepalive_expiry)
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}
        self._params: dict[str, tuple[int, HttpParams]] = {}
        self.stats = HttpStats()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def metrics(self) -> list[MetricFamily]:
        return metrics.families(self.stats)

    def _client(self, ip_protocol: str, verify: bool) -> httpx.AsyncClient:
        key = (ip_protocol, verify)
        client = self._clients.get(key)
        if client is None:
            local = {"ip4": "0.0.0.0", "ip6": "::"}.get(ip_protocol)
            transport = httpx.AsyncHTTPTransport(verify=tlsinfo.client_context(verify),
                                                 local_address=local, limits=self._limits,
                                                 retries=0)
            client = httpx.AsyncClient(transport=transport, follow_redirects=False,
                                       trust_env=False, headers={"User-Agent": USER_AGENT})
            self._clients[key] = client
        return client

    def _params_of(self, target: Target) -> HttpParams:
        raw = target.params
        if isinstance(raw, HttpParams):
            return raw
        cached = self._params.get(target.device_id)
        if cached is not None and cached[0] == id(raw):
            return cached[1]
        params = HttpParams.model_validate(dict(raw))
        self._params[target.device_id] = (id(raw), params)
        return params

    async def probe(self, targets: Sequence[Target]) -> tuple[list[Observation], RoundStats]:
        t0 = time.monotonic()
        obs = list(await asyncio.gather(*(self._one(t) for t in targets)))
        return obs, RoundStats(self.name, len(targets), time.monotonic() - t0)

    async def _one(self, target: Target) -> Observation:
        try:
            params = self._params_of(target)
        except ValidationError as exc:
            return self._fail(target, "bad_params", f"{exc.error_count()} errors")
        async with self._sem:
            return await self._check(target, params)

    def _fail(self, target: Target, reason: str, detail: str = "",
              start: float | None = None, **values: float) -> Observation:
        self.stats.errors[reason] += 1
        dur = time.monotonic() - start if start is not None else 0.0
        info = {"detail": detail[:200]} if detail else {}
        return Observation(target.device_id, self.name, False, duration_seconds=dur,
                           values=dict(values), reason=reason, info=info)

    async def _check(self, target: Target, p: HttpParams) -> Observation:
        self.stats.requests += 1
        client = self._client(p.ip_protocol, p.tls_verify)
        try:
            headers = {k: (v.get_secret_value() if isinstance(v, SecretStr) else v.reveal())
                       for k, v in p.headers.items()}
        except (LookupError, OSError):
            return self._fail(target, "secret_unavailable")
        url = p.target_url(target.address)
        start = time.monotonic()
        redirects = 0
        not_after: float | None = None
        try:
            async with asyncio.timeout(p.timeout):
                request = client.build_request(p.method, url, headers=headers)
                while True:
                    resp = await client.send(request, stream=True)
                    try:
                        stream = resp.extensions.get("network_stream")
                        if stream is not None:
                            not_after = tlsinfo.not_after(stream.get_extra_info("ssl_object"))
                        if (p.follow_redirects and resp.is_redirect
                                and resp.next_request is not None):
                            if redirects >= p.max_redirects:
                                return self._fail(target, "too_many_redirects", start=start,
                                                  redirects=float(redirects))
                            redirects += 1
                            request = resp.next_request
                            continue
                        body = await _read_limited(resp, p.max_body_bytes)
                        break
                    finally:
                        await resp.aclose()
        except TimeoutError:
            return self._fail(target, "timeout", start=start)
        except httpx.ConnectError as exc:
            reason = "tls_error" if _is_tls(exc) else "connect_failed"
            return self._fail(target, reason, _short(exc), start=start)
        except httpx.TransportError as exc:
            reason = "tls_error" if _is_tls(exc) else "protocol_error"
            return self._fail(target, reason, _short(exc), start=start)
        except httpx.InvalidURL as exc:
            return self._fail(target, "bad_url", _short(exc), start=start)
        elapsed = time.monotonic() - start
        values: dict[str, float] = {"response_seconds": elapsed,
                                    "status_code": float(resp.status_code),
                                    "redirects": float(redirects),
                                    "content_length": float(len(body))}
        if not_after is not None:
            values["tls_cert_not_after"] = not_after
        reason = _judge(p, resp.status_code, body)
        if reason:
            self.stats.errors[reason.split(":")[0]] += 1
            return Observation(target.device_id, self.name, False, duration_seconds=elapsed,
                               values=values, reason=reason)
        degraded = []
        if p.max_response_time is not None and elapsed > p.max_response_time:
            degraded.append(f"slow response: {elapsed:.2f}s > {p.max_response_time:g}s")
        if warn := tlsinfo.expiry_warning(not_after, time.time(), p.cert_expiry_warning):
            degraded.append(warn)
        return Observation(target.device_id, self.name, True, duration_seconds=elapsed,
                           values=values, degraded="; ".join(degraded))


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


async def _read_limited(resp: httpx.Response, limit: int) -> bytes:
    out = bytearray()
    async for chunk in resp.aiter_bytes():
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
