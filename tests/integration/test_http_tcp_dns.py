"""http, tcp and dns probes against real servers on loopback (tests/services_lab.py), and
once through the real daemon: /metrics shows the three families and the DEGRADED reason
of a certificate about to expire."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitord.probes.base import Observation, Target
from monitord.probes.dns import DnsProber
from monitord.probes.http import HttpProber
from monitord.probes.tcp import TcpProber
from tests.daemon_lab import (
    DaemonProcess,
    base_config,
    db_tickets,
    http_get,
    wait_for,
    write_config,
)
from tests.services_lab import (
    PORTAL_PAGE,
    SLOW_SECONDS,
    BannerServer,
    Dnsmasq,
    WebServers,
    make_cert,
    start_banner,
    start_web,
)

DAY = 86400.0


async def http_check(url: str, **params: Any) -> Observation:
    prober = HttpProber(max_concurrency=10)
    try:
        obs, stats = await prober.probe([Target("svc", "127.0.0.1", {"url": url, **params})])
        assert stats.targets == 1
        return obs[0]
    finally:
        await prober.close()


async def test_keyword_match_and_mismatch(web_servers: WebServers) -> None:
    base = web_servers.plain.base
    ok = await http_check(base + "/ok", body_contains="เข้าสู่ระบบ")
    assert ok.ok and not ok.degraded, ok
    assert ok.values["status_code"] == 200
    assert ok.values["content_length"] == len(PORTAL_PAGE.encode())
    assert "tls_cert_not_after" not in ok.values
    miss = await http_check(base + "/ok", body_contains="ไม่มีคำนี้")
    assert not miss.ok and miss.reason == "keyword_missing"
    rx = await http_check(base + "/ok", body_regex=[r"<form>\s*login"],
                          body_not_regex=["(?i)error"])
    assert rx.ok
    bad = await http_check(base + "/ok", body_not_contains="Hotspot")
    assert not bad.ok and bad.reason == "keyword_present"


async def test_status_codes_slow_and_redirects(web_servers: WebServers) -> None:
    base = web_servers.plain.base
    wrong = await http_check(base + "/status/503")
    assert not wrong.ok and wrong.reason == "status_503" and wrong.values["status_code"] == 503
    accepted = await http_check(base + "/status/404", valid_status_codes=[404])
    assert accepted.ok
    slow = await http_check(base + "/slow", max_response_time="200ms")
    assert slow.ok and slow.degraded.startswith("slow response"), slow
    assert slow.values["response_seconds"] >= SLOW_SECONDS
    timeout = await http_check(base + "/slow", timeout="150ms")
    assert not timeout.ok and timeout.reason == "timeout"
    redirected = await http_check(base + "/redirect")
    assert redirected.ok and redirected.values["redirects"] == 1
    not_followed = await http_check(base + "/redirect", follow_redirects=False,
                                    valid_status_codes=[302])
    assert not_followed.ok and not_followed.values["redirects"] == 0
    loop = await http_check(base + "/loop", max_redirects=3)
    assert not loop.ok and loop.reason == "too_many_redirects"
    refused = await http_check(f"http://127.0.0.1:{_closed_port()}/")
    assert not refused.ok and refused.reason == "connect_failed"


async def test_url_built_from_address_and_ip_protocol(web_servers: WebServers) -> None:
    prober = HttpProber()
    try:
        params = {"port": web_servers.plain.port, "path": "/ok", "ip_protocol": "ip4"}
        (obs,), _ = await prober.probe([Target("svc", "127.0.0.1", params)])
        assert obs.ok, obs
        (v6,), _ = await prober.probe([Target("svc", "127.0.0.1", {**params,
                                                                     "ip_protocol": "ip6"})])
        assert not v6.ok  # an IPv4 address cannot be reached from an IPv6 socket
        server6 = start_web(host="::1")
        try:
            p6 = {"port": server6.port, "path": "/ok", "body_contains": "Hotspot"}
            (auto, only6, only4), _ = await prober.probe([
                Target("v6", "::1", p6), Target("v6", "::1", {**p6, "ip_protocol": "ip6"}),
                Target("v6", "::1", {**p6, "ip_protocol": "ip4"})])
            assert auto.ok and only6.ok, (auto, only6)  # URL http://[::1]:port/ok
            assert not only4.ok
        finally:
            server6.close()
    finally:
        await prober.close()


async def test_closed_connections_and_big_bodies(web_servers: WebServers) -> None:
    prober = HttpProber()
    try:
        for base in (web_servers.plain.base, web_servers.valid.base):
            close = Target("c", "127.0.0.1", {"url": base + "/close", "tls_verify": False,
                                              "body_contains": "bye"})
            big = Target("b", "127.0.0.1", {"url": base + "/big", "tls_verify": False,
                                            "body_contains": "END-OF-BIG",
                                            "max_body_bytes": 2_000_000})
            cut = Target("t", "127.0.0.1", {"url": base + "/big", "tls_verify": False,
                                            "body_contains": "END-OF-BIG",
                                            "max_body_bytes": 1000})
            for _ in range(3):  # the server hangs up after each /close: new connections
                obs, _ = await prober.probe([close, big, cut])
                assert obs[0].ok and obs[1].ok, obs[:2]
                assert obs[1].values["content_length"] == 1_000_010
                assert not obs[2].ok and obs[2].reason == "keyword_missing"
    finally:
        await prober.close()


async def test_certificate_expiry(web_servers: WebServers) -> None:
    soon = await http_check(web_servers.expiring.base + "/ok", tls_verify=False)
    assert soon.ok, soon
    assert soon.values["tls_cert_not_after"] == web_servers.expiring.not_after
    assert soon.degraded in ("certificate expires in 9 days",
                             "certificate expires in 10 days"), soon.degraded
    assert list(soon.conditions) == ["tls_cert_expiring"]  # → a "renew" ticket
    assert "หมดอายุใน" in soon.conditions["tls_cert_expiring"]
    assert f"127.0.0.1:{web_servers.expiring.port}" in soon.conditions["tls_cert_expiring"]
    wrong = await http_check(web_servers.expiring.base + "/status/500", tls_verify=False)
    assert not wrong.ok and "tls_cert_expiring" in wrong.conditions  # it answered
    later = await http_check(web_servers.valid.base + "/ok", tls_verify=False)
    assert later.ok and not later.degraded and not later.conditions
    assert later.values["tls_cert_not_after"] > time.time() + 300 * DAY
    custom = await http_check(web_servers.valid.base + "/ok", tls_verify=False,
                              cert_expiry_warning="366d")
    assert custom.degraded.startswith("certificate expires in 36"), custom
    verified = await http_check(web_servers.valid.base + "/ok")  # self-signed: refused
    assert not verified.ok and verified.reason == "tls_error", verified


async def test_connection_reuse_and_secret_headers(web_servers: WebServers,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MONITORD_TEST_TOKEN", "s3cret-value-xyz")
    prober = HttpProber(max_concurrency=4)
    try:
        targets = [Target(f"svc{i}", "127.0.0.1",
                          {"url": web_servers.valid.base + "/headers", "tls_verify": False,
                           "headers": {"X-Token": {"env": "MONITORD_TEST_TOKEN"}},
                           "body_contains": "token-length=16"}) for i in range(20)]
        for _ in range(3):
            obs, _ = await prober.probe(targets)
            assert all(o.ok for o in obs), [o for o in obs if not o.ok][:1]
        assert prober.stats.requests == 60
    finally:
        await prober.close()
    assert "s3cret" not in caplog.text
    assert "s3cret" not in repr(targets[0].params)


async def test_tcp_banner_tls_and_send_expect(banner_server: BannerServer,
                                              tmp_path: Path) -> None:
    prober = TcpProber()
    tls = start_banner(b"* OK IMAP4rev1 ready\r\n", make_cert(tmp_path, "imap", 10))
    try:
        targets = [
            Target("smtp", "127.0.0.1", {"port": banner_server.port, "expect_banner": "^220 "}),
            Target("smtp-ehlo", "127.0.0.1", {"port": banner_server.port,
                                              "expect_banner": "^220 ",
                                              "send": "EHLO monitord\\r\\n",
                                              "expect": "^250 "}),
            Target("wrong", "127.0.0.1", {"port": banner_server.port,
                                          "expect_banner": "^\\* OK", "timeout": "300ms"}),
            Target("imaps", "127.0.0.1", {"port": tls.port, "tls": True, "tls_verify": False,
                                          "expect_banner": "^\\* OK"}),
            Target("closed", "127.0.0.1", {"port": _closed_port()}),
        ]
        smtp, ehlo, wrong, imaps, closed = (await prober.probe(targets))[0]
        assert smtp.ok and smtp.values["connect_seconds"] > 0, smtp
        assert ehlo.ok, ehlo
        assert not wrong.ok and wrong.reason == "banner_mismatch"
        assert imaps.ok and imaps.degraded.startswith("certificate expires in"), imaps
        assert "tls_cert_expiring" in imaps.conditions
        assert "tls_cert_not_after" in imaps.values
        assert not closed.ok and closed.reason == "connect_failed"
    finally:
        tls.close()


async def test_dns_against_dnsmasq(dnsmasq: Dnsmasq) -> None:
    prober = DnsProber()

    def t(dev: str, **p: Any) -> Target:
        return Target(dev, "127.0.0.1", {"port": dnsmasq.port, **p})

    obs, _ = await prober.probe([
        t("a", name="office.test", expect_contains=["127.0.0.5"]),
        t("a-wrong", name="office.test", expect_contains=["127.0.0.9"]),
        t("mx", name="office.test", type="MX", expect_regex=[r"^10 mail\.office\.test\.$"]),
        t("txt", name="office.test", type="TXT", expect_regex=["spf1"]),
        t("cname", name="www.office.test", type="CNAME", expect_contains=["office.test"]),
        t("tcp", name="office.test", transport="tcp", expect_contains=["127.0.0.5"]),
        t("nx", name="nowhere.invalid", expect_rcode="REFUSED"),
    ])
    by = {o.device_id: o for o in obs}
    assert by["a"].ok and by["a"].values["lookup_seconds"] > 0, by["a"]
    assert not by["a-wrong"].ok and by["a-wrong"].reason == "answer_missing"
    for dev in ("mx", "txt", "cname", "tcp"):
        assert by[dev].ok, by[dev]
    # --no-resolv and no upstream: dnsmasq refuses what is not its own
    assert by["nx"].ok, by["nx"]
    (dead,), _ = await prober.probe([Target("dead", "127.0.0.1",
                                            {"name": "office.test", "port": _closed_port(),
                                             "timeout": "200ms", "retries": 0})])
    assert not dead.ok and dead.reason in ("timeout", "unreachable")


def _closed_port() -> int:
    from monitord.demo.processes import free_port
    return free_port()


def test_daemon_exports_service_metrics(daemon_factory: Callable[..., DaemonProcess],
                                        web_servers: WebServers, banner_server: BannerServer,
                                        dnsmasq: Dnsmasq, tmp_path: Path) -> None:
    devices = [
        {"id": "office-portal", "kind": "service", "address": "127.0.0.1", "ticket_delay": "1s",
         "probes": {"http": {"scheme": "https", "port": web_servers.expiring.port,
                             "path": "/ok", "tls_verify": False,
                             "body_contains": "เข้าสู่ระบบ"}}},
        {"id": "office-website", "kind": "service", "address": "127.0.0.1",
         "probes": {"http": {"url": web_servers.valid.base + "/", "tls_verify": False}}},
        {"id": "office-mail", "kind": "service", "address": "127.0.0.1",
         "probes": {"tcp": {"port": banner_server.port, "expect_banner": "^220 "}}},
        {"id": "office-dns", "kind": "service", "address": "127.0.0.1",
         "probes": {"dns": {"name": "office.test", "port": dnsmasq.port,
                            "expect_contains": ["127.0.0.5"]}}},
    ]
    config = write_config(tmp_path / "services.yaml", base_config(devices))
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()

    def exported() -> bool:
        m = d.metrics()
        return all(m.get_sample(name, device=dev) is not None for name, dev in (
            ("monitord_http_response_seconds", "office-portal"),
            ("monitord_http_status_code", "office-website"),
            ("monitord_tcp_connect_seconds", "office-mail"),
            ("monitord_dns_lookup_seconds", "office-dns")))

    wait_for(exported, 20, "service metrics on /metrics")
    m = d.metrics()
    assert m("monitord_http_status_code", device="office-portal") == 200
    assert m("monitord_tls_cert_not_after_timestamp_seconds", device="office-portal",
             probe="http") == web_servers.expiring.not_after
    assert m("monitord_tls_cert_not_after_timestamp_seconds", device="office-website",
             probe="http") == web_servers.valid.not_after

    def portal_status() -> dict[str, Any] | None:
        status, body = http_get(d.url + "/api/v1/devices/office-portal")
        if status != 200:
            return None
        data: dict[str, Any] = json.loads(body)
        return data if data.get("state") == "degraded" else None

    st = wait_for(portal_status, 20, "office-portal DEGRADED")
    assert "certificate expires in" in st["reason"] and " days" in st["reason"], st
    # the expiring certificate is a condition: a ticket "renew the certificate"
    ticket = wait_for(lambda: next((t for t in db_tickets(d.db) if "office-portal" in
                                    json.dumps(t, ensure_ascii=False)
                                    and "ต่ออายุใบรับรอง" in json.dumps(t, ensure_ascii=False)),
                                   None), 20, "certificate ticket")
    assert "office-website" not in json.dumps(ticket), ticket
    lint = subprocess.run(["promtool", "check", "metrics"], input=d.metrics_text(),
                          capture_output=True, text=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == "" and lint.stderr == "", lint
