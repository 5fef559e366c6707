"""PJLink wire format: parsers, digest, params; hypothesis fuzz on the reply parsers
(garbage never raises anything but MalformedReply)."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from monitord.config import load_config
from monitord.probes.base import Observation
from monitord.probes.pjlink import PjlinkParams
from monitord.probes.pjlink import protocol as p
from monitord.probes.pjlink.metrics import observation_families
from monitord.values import SecretRef


def test_greetings() -> None:
    assert p.parse_greeting("PJLINK 0") == p.Greeting(auth=False)
    assert p.parse_greeting("PJLINK 1 498e4a67") == p.Greeting(auth=True, random="498e4a67")
    assert p.parse_greeting("PJLINK ERRA").auth_error
    for bad in ("PJLINK 1", "PJLINK 2", "PJLINK 1 xyz", "HTTP/1.0 200", ""):
        with pytest.raises(p.MalformedReply):
            p.parse_greeting(bad)


def test_digest_is_the_standards_example() -> None:
    # PJLink Class 1 spec 5.1: random 498e4a67, password JBMIAProjectorLink
    assert p.digest("498e4a67", "JBMIAProjectorLink") == "5d8409bc1c3fa39749434aa3a5c38682"
    assert p.digest("1", "x") == hashlib.md5(b"1x").hexdigest()


def test_commands_and_replies() -> None:
    assert p.command(1, "POWR") == b"%1POWR ?\r"
    assert p.command(2, "SNUM") == b"%2SNUM ?\r"
    with pytest.raises(ValueError):
        p.command(3, "POWR")
    r = p.parse_reply("%1POWR=1", 1, "POWR")
    assert (r.cls, r.command, r.data, r.error) == (1, "POWR", "1", "")
    assert p.parse_reply("%1LAMP=ERR1", 1, "LAMP").error == "undefined_command"
    assert p.parse_reply("%1POWR=ERR4", 1, "POWR").error == "projector_failure"
    with pytest.raises(p.MalformedReply, match="another command"):
        p.parse_reply("%1ERST=000000", 1, "POWR")
    with pytest.raises(p.MalformedReply):
        p.parse_reply("POWR=1", 1, "POWR")


def test_values() -> None:
    assert [p.parse_power(str(i)) for i in range(4)] == [0, 1, 2, 3]
    assert p.parse_lamps("1234 1") == [(1234, True)]
    assert p.parse_lamps("10 0 99999 1") == [(10, False), (99999, True)]
    assert p.parse_errors("012000") == {"fan": 0, "lamp": 1, "temperature": 2, "cover": 0,
                                         "filter": 0, "other": 0}
    assert p.parse_input("31") == "31" and p.parse_input("3A") == "3A"
    assert p.parse_class("2") == 2
    assert p.parse_text("  EPSON ") == "EPSON"
    for parser, bad in ((p.parse_power, "4"), (p.parse_power, "10"), (p.parse_lamps, "12"),
                        (p.parse_lamps, "12 2"), (p.parse_lamps, "-1 1"),
                        (p.parse_lamps, "١٢ 1"), (p.parse_errors, "00000"),
                        (p.parse_errors, "000003"), (p.parse_input, "71"),
                        (p.parse_class, "3"), (p.parse_text, "x" * 65)):
        with pytest.raises(p.MalformedReply):
            parser(bad)


def test_decode_line_refuses_junk() -> None:
    assert p.decode_line(b"%1NAME=\xe0\xb8\x81") == "%1NAME=ก"
    for bad in (b"\xff\xfe", b"%1POWR=\x001", b"x" * 600):
        with pytest.raises(p.MalformedReply):
            p.decode_line(bad)


PARSERS = (p.parse_power, p.parse_lamps, p.parse_errors, p.parse_class, p.parse_input,
           p.parse_text, p.parse_greeting)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes_never_crash(raw: bytes) -> None:
    try:
        line = p.decode_line(raw)
    except p.MalformedReply:
        return
    for parser in PARSERS:
        with contextlib.suppress(p.MalformedReply):
            parser(line)
    try:
        reply = p.parse_reply(line, 1, "POWR")
    except p.MalformedReply:
        return
    assert reply.command == "POWR"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["POWR", "LAMP", "ERST", "INPT", "CLSS"]),
       st.text(alphabet=st.sampled_from("0123456789 ERR-Ax\t"), max_size=40))
def test_fuzz_structured_answers(name: str, data: str) -> None:
    reply = p.parse_reply(f"%1{name}={data}", 1, name)
    assert reply.data == data
    parser = {"POWR": p.parse_power, "LAMP": p.parse_lamps, "ERST": p.parse_errors,
              "INPT": p.parse_input, "CLSS": p.parse_class}[name]
    with contextlib.suppress(p.MalformedReply):
        parser(data)


def test_params_class_alias_secret_and_bounds() -> None:
    prm = PjlinkParams.model_validate({"class": 2, "password": "lab",
                                       "lamp_life_hours": 3000})
    assert prm.pjlink_class == "2" and isinstance(prm.password, SecretStr)
    assert "lab" not in repr(prm)
    # what compile.py hands the prober (field names) validates again
    assert PjlinkParams.model_validate(prm.model_dump()) == prm
    ref = PjlinkParams.model_validate({"password": {"env": "PJ_PW"}})
    assert isinstance(ref.password, SecretRef) and ref.port == 4352
    for bad in ({"class": "3"}, {"lamp_warn_share": 1.5}, {"colour": "red"}, {"port": 0}):
        with pytest.raises(ValidationError):
            PjlinkParams.model_validate(bad)


def test_config_cascade(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(dedent("""\
        office: {name: x, area_code: "6202"}
        engines: {pjlink: {concurrency: 4, timeout: 2s}}
        kinds:
          projector:
            pjlink: {password: {env: PJ_PW}, lamp_life_hours: 3000, interval: 5m}
        devices:
          - {id: p1, kind: projector, address: 10.0.0.9,
             probes: {icmp: null, pjlink: {class: 1, port: 4353}}}
          - {id: p2, kind: projector, address: 10.0.0.10}
        """), encoding="utf-8")
    cfg = load_config(path).config
    assert cfg.engines.pjlink.concurrency == 4 and cfg.engines.pjlink.timeout == 2
    p1 = cfg.effective(cfg.device_map()["p1"])
    assert p1.pjlink is not None and p1.pjlink.port == 4353
    assert p1.pjlink.pjlink_class == "1" and p1.pjlink.lamp_life_hours == 3000
    assert p1.pjlink_interval == 300
    assert cfg.effective(cfg.device_map()["p2"]).pjlink is None


def test_observation_families() -> None:
    ok = Observation("p1", "pjlink", True, values={"power_state": 0.0},
                     tables={"lamp": {"1": {"hours": 2900.0, "on": 0.0}},
                             "error": {"lamp": {"status": 2.0}}},
                     info={"model": "EB-X51", "pjlink_class": "1"})
    bad = Observation("p2", "pjlink", False, reason="auth_failed")
    fams = {f.name: f for f in observation_families([(("p1", "s", "projector"), ok),
                                                       (("p2", "s", "projector"), bad)])}
    assert fams["monitord_pjlink_up"].samples == {("p1",): 1, ("p2",): 0}
    assert fams["monitord_pjlink_power_state"].samples == {("p1",): 0.0}
    assert fams["monitord_pjlink_lamp_hours"].samples == {("p1", "1"): 2900.0}
    assert fams["monitord_pjlink_error"].samples == {("p1", "lamp"): 2.0}
