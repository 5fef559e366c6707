"""Config validation: every problem reported with file, line and key path."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from monitord.config import ConfigError, load_config, parse_duration
from tests.daemon_lab import MONITORD, ROOT

VALID = textwrap.dedent("""\
    office:
      name: สำนักงานเขตพื้นที่การศึกษาประถมศึกษากำแพงเพชร เขต 2
      area_code: "6202"
    defaults:
      interval: 30s
      icmp: {count: 3, timeout: 1s}
    kinds:
      dltv_receiver:
        interval: 1m
    schools:
      62020001:
        name: โรงเรียนบ้านหนองปลิง
        district: คลองขลุง
        isp: NT
        location: {lat: 16.2, lon: 99.6}
    devices:
      - id: r1
        school: 62020001
        kind: router
        address: 127.0.0.1
      - id: rx1
        school: 62020001
        kind: dltv_receiver
        address: "::1"
        parent: r1
        brand_model: PSI S2X
        serial: SN1
        hostname: rx1.school
        failure_threshold: 5
        probes: {icmp: {count: 5}}
      - id: web
        kind: server
        unit: กลุ่มอำนวยการ
        address: localhost
    """)


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MONITORD, "check", "--config", str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_valid_config_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID, encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK (1 schools, 3 devices)" in res.stderr


def test_cascade_defaults_kind_device(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID, encoding="utf-8")
    cfg = load_config(path).config
    devs = cfg.device_map()
    assert cfg.schools["62020001"].name == "โรงเรียนบ้านหนองปลิง"  # int key read as SMIS string
    r1, rx1 = cfg.effective(devs["r1"]), cfg.effective(devs["rx1"])
    assert r1.interval == 30 and r1.failure_threshold == 3 and r1.icmp.count == 3
    assert rx1.interval == 60 and rx1.failure_threshold == 5 and rx1.icmp.count == 5
    assert rx1.icmp.timeout == 1.0
    assert devs["rx1"].address == "::1" and devs["web"].school is None


def test_every_problem_reported_with_line_and_path(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        office:
          name: x
          area_code: 6202
          colour: red
        defaults:
          interval: 10x
        schools:
          62020001:
            name: โรงเรียน
            district: คลองขลุง
          1234:
            name: x
        devices:
          - id: r1
            school: 62020001
            kind: router
            address: 127.0.0.1
          - id: r2
            kind: routr
            address: 300.1.1.1
          - id: r1
            kind: tv
            address: 127.0.0.3
            school: 99999999
            parent: nope
            probes: {icmp: {count: 0}}
        """)
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 2
    lines = res.stdout.splitlines()
    expected = [
        f"{path}:4: office.colour: unknown key",
        f"{path}:6: defaults.interval: expected a duration such as 30s, 5m or 250ms, got '10x'",
        f"{path}:11: schools.1234: SMIS code must be 8 digits",
        f"{path}:11: schools.1234.district: required key is missing",
        f"{path}:20: devices[1].address: '300.1.1.1' is neither an IP address nor a valid "
        "host name",
        f"{path}:21: devices[2].id: duplicate device id 'r1' (first at devices[0])",
        f"{path}:24: devices[2].school: unknown school '99999999'",
        f"{path}:25: devices[2].parent: unknown device 'nope'",
        f"{path}:26: devices[2].probes.icmp.count: Input should be greater than or equal to 1",
    ]
    for line in expected:
        assert line in lines, f"missing {line!r} in:\n{res.stdout}"
    assert any(line.startswith(f"{path}:19: devices[1].kind: Input should be") for line in lines)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("office:\n  name: x\n  area_code: [6202\ndevices: []\n", encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 2
    assert res.stdout.startswith(f"{path}:4: (yaml):"), res.stdout


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("office:\n  name: x\n  area_code: '6202'\n  name: y\n", encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 2
    assert res.stdout.strip() == f"{path}:4: office.name: duplicate key"


def test_parent_cycle_detected(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(textwrap.dedent("""\
        office: {name: x, area_code: "6202"}
        devices:
          - {id: a, kind: switch, address: 127.0.0.1, parent: c}
          - {id: b, kind: switch, address: 127.0.0.2, parent: a}
          - {id: c, kind: switch, address: 127.0.0.3, parent: b}
        """), encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 2
    assert f"{path}:3: devices[0].parent: parent cycle: a → c → b → a" in res.stdout


def test_missing_file_and_warnings(tmp_path: Path) -> None:
    res = run_check(tmp_path / "nope.yaml")
    assert res.returncode == 2 and "No such file" in res.stdout
    path = tmp_path / "warn.yaml"
    path.write_text("office: {name: x, area_code: '6202'}\nstorage: {retention_days: 30}\n"
                    "schools:\n  63010001: {name: y, district: z}\n", encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 0
    assert f"{path}:2: storage.retention_days: warning: less than the 90 days" in res.stdout
    assert f"{path}:4: schools.63010001: warning: SMIS code does not start" in res.stdout


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("250ms", 0.25), ("5m", 300.0), ("1h", 3600.0), (15, 15.0), ("2d", 172800.0),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10x", "-5s", 0, True, "1.2.3s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_example_configs_are_valid() -> None:
    examples = sorted((ROOT / "config").glob("*.yaml"))
    assert examples, "config/ must hold at least one example"
    for path in examples:
        try:
            load_config(path)
        except ConfigError as exc:
            pytest.fail(f"{path} is invalid:\n{exc}")


def test_isp_named_true_stays_a_string() -> None:
    from monitord.config import parse_config

    cfg = parse_config("office: {name: x, area_code: '6202'}\nschools:\n"
                       "  62020001: {name: a, district: b, isp: TRUE}\n"
                       "  62020002: {name: c, district: d, isp: 'on'}\n").config
    assert cfg.schools["62020001"].isp == "TRUE"
    assert cfg.schools["62020002"].isp == "on"


SNMP_MQTT = textwrap.dedent("""\
    office: {name: สพป.ทดสอบ, area_code: "6202"}
    defaults:
      snmp: {community: {env: LAB_COMMUNITY}, retries: 2, interval: 5m}
    kinds:
      ups:
        snmp:
          version: "3"
          v3: {user: mon, auth_key: {file: /etc/monitord/ups.auth},
               priv_key: {env: UPS_PRIV}}
    mqtt: {host: 127.0.0.1, port: 1884, alert_after: 30s}
    schools:
      62020001: {name: โรงเรียนบ้านหนองปลิง, district: คลองขลุง}
    devices:
      - {id: r1, school: 62020001, kind: router, address: 10.0.0.1,
         probes: {icmp: null, snmp: {uplink: wan, interval: 1m}}}
      - {id: ups1, kind: ups, address: 10.0.0.2, probes: [icmp, snmp]}
      - {id: rx1, school: 62020001, kind: dltv_receiver, address: 10.0.0.3, parent: r1,
         probes: {mqtt: {period: 30s, format: tasmota, topic_name: rx_5A3F}}}
    """)


def test_snmp_and_mqtt_settings_cascade(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(SNMP_MQTT, encoding="utf-8")
    cfg = load_config(path).config
    devs = cfg.device_map()
    r1 = cfg.effective(devs["r1"])
    assert r1.snmp is not None and r1.snmp.profile == "router" and r1.snmp.uplink == "wan"
    assert r1.snmp.retries == 2 and r1.snmp_interval == 60
    assert repr(r1.snmp.community) == "SecretRef(env:LAB_COMMUNITY)"
    ups = cfg.effective(devs["ups1"])
    assert ups.snmp is not None and ups.snmp.profile == "ups" and ups.snmp.version == "3"
    assert ups.snmp.v3 is not None and ups.snmp.v3.user == "mon"
    assert ups.snmp_interval == 300
    rx = cfg.effective(devs["rx1"])
    assert rx.mqtt is not None and rx.mqtt.format == "tasmota" and rx.mqtt.period == 30
    assert cfg.mqtt is not None and cfg.mqtt.port == 1884 and cfg.mqtt.alert_after == 30


def test_snmp_and_mqtt_problems_have_lines(tmp_path: Path) -> None:
    bad = (SNMP_MQTT
           .replace("snmp: {community: {env: LAB_COMMUNITY}, retries: 2, interval: 5m}",
                    "snmp: {retries: 2, interval: soon, colour: red}")
           .replace("format: tasmota", "format: sonoff")
           .replace("port: 1884", "port: 1884, keepalive: never"))
    path = tmp_path / "bad.yaml"
    path.write_text(bad, encoding="utf-8")
    res = run_check(path)
    assert res.returncode == 2
    out = res.stdout + res.stderr
    # unknown key where it is written; the missing community where the device is
    assert f"{path}:3: defaults.snmp.colour: unknown key" in out
    assert f"{path}:3: defaults.snmp.interval: expected a duration" in out
    assert f"{path}:15: devices[0].probes.snmp: version 2c needs a 'community'" in out
    assert "devices[1]" not in out  # the UPS is SNMPv3 (from kinds.ups): no community
    assert f"{path}:18: devices[2].probes.mqtt.format: Input should be 'monitord'" in out
    assert f"{path}:10: mqtt.keepalive: expected a duration" in out
