"""The JSON API (/api/v1) against a real daemon: reads and filters, what a bearer token
adds (PDPA), writes (maintenance windows, ticket updates) with the token's name as the
actor, problem JSON for every error, no secrets anywhere — and a bounded schemathesis
fuzz of every operation against the daemon's own OpenAPI document."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    wait_for,
    wait_value,
    write_config,
)

TOKEN = "tok-3f9c2a7b1e5d4c6a8b0f"
COMMUNITY = "comm-s3cret-7a1b9c"
TOKEN_NAME = "api-tester"
BANGKOK = ZoneInfo("Asia/Bangkok")
PRIVATE = ("127.95.", "rtr1.school.example", "SN-RTR-0001", "srv.office.example",
           "SN-SRV-0002", "Cisco ISR 1100")


def lab(tokens: bool = True) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"id": "62020001-rtr", "school": "62020001", "kind": "router", "address": "127.95.1.1",
         "hostname": "rtr1.school.example", "serial": "SN-RTR-0001",
         "brand_model": "Cisco ISR 1100"},
        {"id": "62020001-sw", "school": "62020001", "kind": "switch", "address": "127.95.1.2",
         "parent": "62020001-rtr"},
        {"id": "62020001-tv", "school": "62020001", "kind": "tv", "address": "127.95.1.3",
         "parent": "62020001-sw", "name": "ทีวีห้อง ป.1"},
        {"id": "62020002-rtr", "school": "62020002", "kind": "router", "address": "127.95.2.1"},
        {"id": "office-srv", "kind": "server", "address": "127.95.3.1", "name": "เซิร์ฟเวอร์",
         "hostname": "srv.office.example", "serial": "SN-SRV-0002", "unit": "กลุ่มอำนวยการ"},
    ]
    cfg = base_config(devices, ticket_delay="1s",
                      snmp={"community": {"env": "MONITORD_TEST_SNMP_COMMUNITY"}})
    cfg["schools"]["62020001"]["location"] = {"lat": 16.25, "lon": 99.41}
    cfg["http"] = {"api_tokens": [{"name": TOKEN_NAME,
                                   "token": {"env": "MONITORD_TEST_API_TOKEN"}}]
                   if tokens else []}
    cfg["tickets"] = {"reporter": {"name": "นายผู้แจ้ง ทดสอบ", "position": "นักวิชาการคอมพิวเตอร์"}}
    return cfg


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORD_TEST_API_TOKEN", TOKEN)
    monkeypatch.setenv("MONITORD_TEST_SNMP_COMMUNITY", COMMUNITY)


class Client:
    """httpx against the daemon; remembers every response to check for leaks."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.seen: list[tuple[bool, str]] = []  # (sent a token, headers + body)

    def __call__(self, method: str, path: str, *, token: str | None = None,
                 body: Any = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kw["content"] = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        r = self.http.request(method, path, headers=headers, **kw)
        self.seen.append((token is not None, f"{r.headers}\n{r.text}"))
        return r

    def get(self, path: str, token: str | None = None, **kw: Any) -> Any:
        r = self(path=path, method="GET", token=token, **kw)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        return r.json()


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-content-type-options"] == "nosniff"
    p: dict[str, Any] = r.json()
    assert p["status"] == status and p["title"] and p["detail"] and p["type"]
    return p


def start(tmp_path: Path, factory: Callable[..., DaemonProcess],
          iptables: IptablesDrop) -> DaemonProcess:
    config = write_config(tmp_path / "m.yaml", lab())
    d = factory("run", "--config", str(config))
    iptables.drop("127.95.1.0/24")  # school 1: one incident (its router), a ticket after 1 s
    d.wait_ready()
    return d


def test_api_reads_writes_privacy(tmp_path: Path, api_env: None, iptables: IptablesDrop,
                                  daemon_factory: Callable[..., DaemonProcess]) -> None:
    d = start(tmp_path, daemon_factory, iptables)
    api = Client(d.url)
    tickets = wait_value(lambda: api.get("/api/v1/tickets"), lambda t: t["count"] == 1, 30,
                         "a ticket for the dead school router")
    wait_for(lambda: api.get("/api/v1/devices/62020002-rtr")["state"] == "up", 20,
             "the live router up")
    wait_for(lambda: api.get("/api/v1/schools/62020001")["devices_down"] == 3, 20,
             "the whole school down")

    # -- schools ------------------------------------------------------------------
    schools = api.get("/api/v1/schools")
    by_smis = {s["smis"]: s for s in schools["items"]}
    assert schools["count"] == 2 and set(by_smis) == {"62020001", "62020002"}
    a = by_smis["62020001"]
    assert a["state"] == "down" and a["state_text"] == "ขัดข้อง"
    assert a["name"] == "โรงเรียนบ้านทดสอบ" and a["district"] == "คลองขลุง" and a["isp"] == "NT"
    assert a["location"] == {"lat": 16.25, "lon": 99.41} and a["device_count"] == 3
    assert a["devices_down"] == 3 and a["since"] <= time.time()
    assert by_smis["62020002"]["state"] == "up" and by_smis["62020002"]["location"] is None
    assert [s["smis"] for s in api.get("/api/v1/schools", params={"isp": "NT"})["items"]] == [
        "62020001"]
    assert [s["smis"] for s in api.get("/api/v1/schools",
                                       params={"state": "up"})["items"]] == ["62020002"]
    one = api.get("/api/v1/schools/62020001")
    assert {x["id"]: x["state"] for x in one["devices"]} == {
        "62020001-rtr": "down", "62020001-sw": "unreachable", "62020001-tv": "unreachable"}
    assert_problem(api("GET", "/api/v1/schools/99999999"), 404)

    # -- devices: filters, token-gated fields ------------------------------------
    def ids(params: dict[str, str]) -> list[str]:
        return [x["id"] for x in api.get("/api/v1/devices", params=params)["items"]]

    assert ids({}) == ["62020001-rtr", "62020001-sw", "62020001-tv", "62020002-rtr",
                       "office-srv"]
    assert ids({"school": "62020001", "kind": "router"}) == ["62020001-rtr"]
    assert ids({"state": "unreachable"}) == ["62020001-sw", "62020001-tv"]
    assert ids({"school": "office"}) == ["office-srv"]
    assert ids({"kind": "projector"}) == []
    p = assert_problem(api("GET", "/api/v1/devices", params={"kind": "toaster"}), 400)
    assert p["errors"][0]["loc"] == ["query", "kind"]
    rtr = api.get("/api/v1/devices/62020001-rtr")
    assert rtr["state"] == "down" and rtr["parent"] is None and rtr["school"] == "62020001"
    assert rtr["flapping"] is False and rtr["maintenance"] is None and rtr["since"] > 0
    tv = api.get("/api/v1/devices/62020001-tv")
    assert tv["name"] == "ทีวีห้อง ป.1" and tv["kind"] == "tv" and tv["parent"] == "62020001-sw"
    for key in ("address", "hostname", "serial", "brand_model", "unit", "probes"):
        assert key not in rtr
    full = api.get("/api/v1/devices/62020001-rtr", token=TOKEN)
    assert full["address"] == "127.95.1.1" and full["hostname"] == "rtr1.school.example"
    assert full["serial"] == "SN-RTR-0001" and full["probes"] == ["icmp"]
    srv = api.get("/api/v1/devices", token=TOKEN, params={"school": "office"})["items"][0]
    assert srv["unit"] == "กลุ่มอำนวยการ" and srv["school"] is None
    assert_problem(api("GET", "/api/v1/devices/nope"), 404)
    bad = assert_problem(api("GET", "/api/v1/devices", token="wrong-token-0123456789"), 401)
    assert "invalid" in bad["detail"]

    # -- incidents and tickets ----------------------------------------------------
    incidents = api.get("/api/v1/incidents")["items"]
    assert [(i["root"], i["kind"], i["affected"]) for i in incidents] == [
        ("62020001-rtr", "device", ["62020001-sw", "62020001-tv"])]
    assert incidents[0]["closed_at"] is None and incidents[0]["ticket_id"] is not None
    history = api.get("/api/v1/incidents", params={"all": "true"})["items"]
    assert incidents[0]["id"] in [i["id"] for i in history]  # with any superseded ones
    assert [i["opened_at"] for i in history] == sorted((i["opened_at"] for i in history),
                                                       reverse=True)
    t = tickets["items"][0]
    tid = t["id"]
    assert t["root"] == "62020001-rtr" and t["status"] == "open" and t["status_th"] == "เปิด"
    assert t["served_unit"] == "โรงเรียนบ้านทดสอบ" and incidents[0]["ticket_id"] == tid
    assert [e["device_id"] for e in t["equipment"]] == ["62020001-rtr", "62020001-sw",
                                                        "62020001-tv"]
    for key in ("reporter_name", "repairer_name", "cause", "fix", "summary", "event_text"):
        assert key not in t
    assert "serial" not in t["equipment"][0] and "hostname" not in t["equipment"][0]
    assert api.get("/api/v1/tickets", params={"status": "closed"})["count"] == 0
    assert_problem(api("GET", "/api/v1/tickets", params={"status": "lost"}), 400)
    assert_problem(api("GET", f"/api/v1/tickets/{tid + 1000}"), 404)
    assert_problem(api("GET", "/api/v1/tickets/abc"), 404)

    # -- writes need the token ----------------------------------------------------
    now = time.time()
    window = {"name": "เปลี่ยนเราเตอร์", "devices": ["62020002-rtr"], "reason": "ทดสอบ API",
              "start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60)),
              "end": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + 3600))}
    r = api("POST", "/api/v1/maintenance", body=window)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(api("POST", "/api/v1/maintenance", body=window, token="x" * 20), 401)
    assert_problem(api("PATCH", f"/api/v1/tickets/{tid}", body={"status": "closed"}), 401)
    assert_problem(api("DELETE", "/api/v1/maintenance/1"), 401)
    assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN,
                       body={**window, "devices": ["no-such-device"]}), 422)
    assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN,
                       body={**window, "end": window["start"]}), 422)
    assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN,
                       body={**window, "weekly": {"days": ["sun"], "hours": "02:00-04:00"}}),
                   422)
    assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN, content=b"{not json",
                       headers={"Content-Type": "application/json"}), 400)
    assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN, content=b"name=x",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN,
                       body={**window, "reason": "x" * 70_000}), 413)

    # -- a maintenance window through the API suppresses --------------------------
    r = api("POST", "/api/v1/maintenance", token=TOKEN, body=window)
    assert r.status_code == 201, r.text
    created = r.json()
    wid = created["id"]
    assert r.headers["location"] == f"/api/v1/maintenance/{wid}"
    assert created["source"] == "database" and created["active"] is True
    assert created["created_by"] == TOKEN_NAME and created["devices"] == ["62020002-rtr"]
    listed = api.get("/api/v1/maintenance")["items"]
    assert [(m["id"], m["name"], m["reason"]) for m in listed] == [
        (wid, "เปลี่ยนเราเตอร์", "ทดสอบ API")]
    assert "created_by" not in listed[0]
    assert api.get(f"/api/v1/maintenance/{wid}", token=TOKEN)["created_by"] == TOKEN_NAME
    dev = wait_value(lambda: api.get("/api/v1/devices/62020002-rtr"),
                     lambda x: x["state"] == "maintenance", 10, "MAINTENANCE through the API")
    assert dev["maintenance"] == "เปลี่ยนเราเตอร์"
    assert [x["id"] for x in api.get("/api/v1/devices",
                                     params={"state": "maintenance"})["items"]] == [
        "62020002-rtr"]

    # -- ticket updates: appointment, repair, actor = the token's name -------------
    r = api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN,
            body={"scheduled_for": "2030-01-15 09:30", "note": "นัดช่างเข้าตรวจ"})
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["status"] == "scheduled"
    assert t["scheduled_for"] == datetime(2030, 1, 15, 9, 30, tzinfo=BANGKOK).timestamp()
    r = api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN,
            body={"status": "in_repair", "repairer_name": "นายช่าง ซ่อมดี",
                  "cause": "อะแดปเตอร์ไฟเสีย"})
    assert r.status_code == 200, r.text
    t = api.get(f"/api/v1/tickets/{tid}", token=TOKEN)
    assert t["status"] == "in_repair" and t["repair_started"] is not None
    assert t["repairer_name"] == "นายช่าง ซ่อมดี" and t["cause"] == "อะแดปเตอร์ไฟเสีย"
    assert t["reporter_name"] == "นายผู้แจ้ง ทดสอบ"
    assert [(h["status"], h["actor"]) for h in t["history"]] == [
        ("open", "monitord"), ("scheduled", TOKEN_NAME), ("in_repair", TOKEN_NAME)]
    assert t["history"][1]["note"] == "นัดช่างเข้าตรวจ"
    public = api.get(f"/api/v1/tickets/{tid}")
    assert [h["status"] for h in public["history"]] == ["open", "scheduled", "in_repair"]
    assert all("actor" not in h and "note" not in h for h in public["history"])
    assert "repairer_name" not in public and "cause" not in public
    p = assert_problem(api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN,
                           body={"status": "fixed"}), 422)
    assert p["errors"][0]["loc"] == ["body", "status"]
    assert_problem(api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN, body={}), 422)
    assert_problem(api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN,
                       body={"colour": "red"}), 422)
    assert_problem(api("PATCH", f"/api/v1/tickets/{tid + 1000}", token=TOKEN,
                       body={"note": "x"}), 404)
    r = api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN, body={"status": "closed"})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert "closed" in assert_problem(api("PATCH", f"/api/v1/tickets/{tid}", token=TOKEN,
                                          body={"status": "open"}), 409)["detail"]
    assert api.get("/api/v1/tickets")["count"] == 0
    assert api.get("/api/v1/tickets", params={"all": "true"})["count"] == 1

    # -- delete the window: the device leaves MAINTENANCE -------------------------
    r = api("DELETE", f"/api/v1/maintenance/{wid}", token=TOKEN)
    assert r.status_code == 204 and r.content == b""
    assert_problem(api("DELETE", f"/api/v1/maintenance/{wid}", token=TOKEN), 404)
    assert_problem(api("GET", f"/api/v1/maintenance/{wid}"), 404)
    wait_for(lambda: api.get("/api/v1/devices/62020002-rtr")["state"] == "up", 10,
             "out of maintenance")
    assert api.get("/api/v1/maintenance")["count"] == 0

    # -- Starlette's own errors are problem JSON too -------------------------------
    assert_problem(api("GET", "/api/v1/nothing-here"), 404)
    r = api("PUT", "/api/v1/schools")
    assert_problem(r, 405)
    assert "GET" in r.headers["allow"]

    # -- the OpenAPI document ----------------------------------------------------
    doc = api.get("/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/api/v1/schools", "/api/v1/schools/{smis}", "/api/v1/devices",
        "/api/v1/devices/{id}", "/api/v1/incidents", "/api/v1/tickets",
        "/api/v1/tickets/{id}", "/api/v1/tickets/{id}/acknowledge", "/api/v1/maintenance",
        "/api/v1/maintenance/{id}", "/api/v1/openapi.json"}
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)] == []
    post = doc["paths"]["/api/v1/maintenance"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert "application/problem+json" in post["responses"]["401"]["content"]

    # -- no secrets anywhere; nothing private without the token ---------------------
    for with_token, text in api.seen:
        assert TOKEN not in text and COMMUNITY not in text
        if not with_token:
            for private in PRIVATE:
                assert private not in text, (private, text[:300])

    # -- without tokens the API is read-only ---------------------------------------
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(lab(tokens=False), allow_unicode=True),
                                     encoding="utf-8")
    def reloads() -> float:
        return d.metrics().get_sample("monitord_config_reloads_total", result="success") or 0

    before = reloads()
    d.signal(signal.SIGHUP)
    wait_for(lambda: reloads() > before, 20, "config reloaded")
    p = assert_problem(api("POST", "/api/v1/maintenance", token=TOKEN, body=window), 401)
    assert "read-only" in p["detail"]
    assert_problem(api("GET", "/api/v1/devices", token=TOKEN), 401)
    assert api.get("/api/v1/schools")["count"] == 2
    assert "Traceback" not in d.log()


# -- schemathesis ------------------------------------------------------------------


@pytest.fixture
def fuzz_daemon(tmp_path: Path, api_env: None, iptables: IptablesDrop,
                daemon_factory: Callable[..., DaemonProcess]) -> Iterator[DaemonProcess]:
    d = start(tmp_path, daemon_factory, iptables)
    wait_value(lambda: httpx.get(d.url + "/api/v1/tickets", timeout=5).json(),
               lambda t: t["count"] == 1, 30, "a ticket to fuzz")
    yield d


def test_api_fuzz_schemathesis(fuzz_daemon: DaemonProcess) -> None:
    """Every operation, positive and negative data, with and without the token: no 5xx,
    status codes, content types, headers and bodies as documented, auth enforced, 405 for
    undocumented methods, no secret in any response."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        ignored_auth,
        missing_required_header,
        negative_data_rejection,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
        unsupported_method,
        use_after_free,
    )
    from schemathesis.core.result import Ok

    base = fuzz_daemon.url
    schema = schemathesis.openapi.from_url(base + "/api/v1/openapi.json")
    # Negative data may be rejected as too large before it is read: 413 is a rejection too
    # (schemathesis' default list lacks it; a huge invalid array hit the 64 KiB limit).
    ndr = schema.config.checks.negative_data_rejection
    schema.config.checks.negative_data_rejection = type(ndr)(
        expected_statuses=[*ndr.expected_statuses, 413])
    # positive_data_acceptance is left out on purpose: schema-valid bodies can still be
    # refused for reasons JSON Schema cannot say (end before start, unknown device ids).
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance,
              negative_data_rejection, ignored_auth, unsupported_method,
              missing_required_header, use_after_free]
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    results = list(schema.get_all_operations())
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == len(results), "every operation in the document is loadable"
    labels = {op.label for op in operations}  # schemathesis skips the document itself
    assert {"PATCH /api/v1/tickets/{id}", "POST /api/v1/maintenance",
            "DELETE /api/v1/maintenance/{id}", "GET /api/v1/devices"} <= labels
    assert len(labels) >= 12
    def fuzz(op: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=base, headers=headers, timeout=10)
            assert TOKEN not in response.text and COMMUNITY not in response.text
            case.validate_response(response, checks=checks, headers=headers,
                                   transport_kwargs={"base_url": base, "headers": headers})

        run()

    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
                try:
                    fuzz(op, mode, headers)
                except Unsatisfiable:
                    # e.g. no schema-invalid SMIS path segment exists: nothing to send
                    assert mode is GenerationMode.NEGATIVE, op.label
                except (Exception, BaseExceptionGroup) as exc:
                    failures.append(f"{op.label} {mode.value} token={bool(headers)}:\n{exc}")
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)[:20000]
    assert calls > 500, calls
    assert elapsed < 60, elapsed
    assert "Traceback" not in fuzz_daemon.log()
    assert httpx.get(base + "/healthz", timeout=5).status_code == 200
