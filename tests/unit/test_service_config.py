"""kind `service` and the http/tcp/dns settings cascade: defaults → kinds → probes.<p>."""

from __future__ import annotations

import textwrap

import pytest

from monitord.app.compile import build_jobs, build_specs, make_probers
from monitord.config import ConfigError
from monitord.config.loader import LoadResult, parse_config
from monitord.probes.http import HttpProber

BASE = textwrap.dedent("""\
    office: {name: สำนักงานทดสอบ, area_code: "6202"}
    defaults:
      interval: 60s
      http: {timeout: 5s}
    kinds:
      service:
        interval: 30s
        http: {scheme: https, max_response_time: 2s}
    devices:
    """)


def parse(devices: str) -> LoadResult:
    return parse_config(BASE + textwrap.indent(textwrap.dedent(devices), "  "), "svc.yaml")


def test_three_line_service_cascades_and_compiles() -> None:
    res = parse("""\
        - {id: office-hotspot, kind: service, address: 127.0.0.2,
           probes: {http: {path: /login, body_contains: เข้าสู่ระบบ, interval: 10s}}}
        - id: office-mail
          kind: service
          address: 127.0.0.2
          probes: {tcp: {port: 25, expect_banner: "^220 "}, dns: {name: office.test}}
        """)
    cfg = res.config
    assert not res.warnings
    jobs = {(j.target.device_id, j.probe): j for j in build_jobs(cfg)}
    http = jobs[("office-hotspot", "http")]
    assert http.interval == 10.0
    assert http.target.params["scheme"] == "https" and http.target.params["path"] == "/login"
    assert http.target.params["timeout"] == 5.0 and http.target.params["max_response_time"] == 2
    assert jobs[("office-mail", "tcp")].interval == 30.0
    assert jobs[("office-mail", "dns")].target.params["name"] == "office.test"
    assert ("office-hotspot", "icmp") not in jobs  # no ping for a service with checks
    specs = {s.device_id: s for s in build_specs(cfg)}
    assert specs["office-hotspot"].reachability_probe == "http"
    assert specs["office-mail"].reachability_probe == "tcp"
    assert isinstance(make_probers(cfg)["http"], HttpProber)


def test_service_without_checks_warns() -> None:
    res = parse("- {id: svc, kind: service, address: 127.0.0.2}\n")
    assert any(p.warning and "needs an http, tcp or dns check" in p.message
               for p in res.warnings)


@pytest.mark.parametrize(("device", "expect"), [
    ("probes: {http: {bogus: 1}}", "devices[0].probes.http.bogus: unknown key"),
    ("probes: {tcp: {expect_banner: '^220'}}", "devices[0].probes.tcp.port: required key"),
    ("probes: {http: {url: 'http://u:p@host/'}}", "no credentials in the url"),
    ("probes: {dns: {name: office.test, type: SRV}}", "devices[0].probes.dns.type"),
    ("probes: {http: {body_regex: ['(']}}", "bad regex"),
])
def test_bad_service_settings_are_config_errors(device: str, expect: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(f"- {{id: svc, kind: service, address: 127.0.0.2, {device}}}\n")
    assert expect in str(err.value), str(err.value)
