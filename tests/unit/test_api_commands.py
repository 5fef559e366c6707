"""The JSON API and the application commands in-process (no daemon, no root, no network):
the API over a stand-in read model and the real commands on a temporary database —
writes go through the commands (the CLI's path), the engine hears about maintenance
changes at once, the PDPA rules and problem JSON hold, and the commands refuse what
they must whoever calls them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware

from monitord.app.commands import AppCommands
from monitord.config import Config, parse_config
from monitord.domain.activehours import MaintenanceWindow
from monitord.domain.incidents import Incident, TicketOpen
from monitord.domain.state import DeviceStatus, State
from monitord.domain.tickets import Equipment, TicketContext
from monitord.http.api.routes import routes
from monitord.http.ports import Conflict, Invalid, NotFound, View
from monitord.http.server import SecurityHeaders
from monitord.http.status import DeviceRow, SchoolRow, StatusData
from monitord.storage import Storage

TOKEN = "tok-unit-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config() -> Config:
    doc = {
        "office": {"name": "สำนักงานทดสอบ", "area_code": "6202"},
        "schools": {"62020001": {"name": "โรงเรียนบ้านทดสอบ", "district": "คลองขลุง",
                                 "isp": "NT"}},
        "devices": [
            {"id": "rtr", "school": "62020001", "kind": "router", "address": "127.95.9.1",
             "hostname": "rtr.school.example", "serial": "SN-UNIT-1"},
            {"id": "srv", "kind": "server", "address": "127.95.9.2", "unit": "กลุ่มอำนวยการ"},
        ],
        "http": {"api_tokens": [{"name": "unit-officer",
                                 "token": {"env": "MONITORD_TEST_API_TOKEN"}}]},
    }
    return parse_config(yaml.safe_dump(doc, allow_unicode=True)).config


@dataclass
class FakeView:
    """The read model as the API sees it."""

    config: Config | None
    storage: Storage | None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def status_data(self) -> StatusData:
        return StatusData("สำนักงานทดสอบ", [SchoolRow(
            "62020001", "โรงเรียนบ้านทดสอบ", "คลองขลุง", "NT", State.DOWN, 1_795_400_000.0,
            [DeviceRow("router", "rtr", State.DOWN, 1_795_400_000.0)])])

    def device_status(self, device_id: str) -> DeviceStatus | None:
        return None

    def effective_state(self, device_id: str, now: float | None = None) -> State:
        return State.DOWN if device_id == "rtr" else State.UP

    def in_maintenance(self, device_id: str, now: float) -> MaintenanceWindow | None:
        return None

    def open_incidents(self) -> list[Incident]:
        return []


async def open_ticket(store: Storage) -> None:
    inc = Incident("i1", "device", "rtr", 1_795_400_000.0)
    ctx = TicketContext("school", "โรงเรียนบ้านทดสอบ", "62020001", "สพป.ทดสอบ", "กลุ่ม DLICT",
                        "ระบบ monitord", "",
                        [Equipment("rtr", "rtr", "rtr.school.example", "", "SN-UNIT-1")])
    await store.commit([], [TicketOpen(1, inc, 1_795_400_600.0)], {1: ctx})


@dataclass
class Env:
    api: httpx.AsyncClient
    store: Storage
    commands: AppCommands
    changes: list[int]


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MONITORD_TEST_API_TOKEN", TOKEN)
    yield


@pytest.fixture
async def env(tmp_path: Path, token_env: None) -> AsyncIterator[Env]:
    store = await Storage.open(tmp_path / "m.db")
    await open_ticket(store)
    cfg = config()
    changes: list[int] = []

    async def maintenance_changed() -> None:
        changes.append(len(await store.maintenance()))

    commands = AppCommands.for_daemon(lambda: store, lambda: cfg, maintenance_changed)
    view = cast(View, FakeView(cfg, store))  # only what the API reads
    # served as the daemon serves it: behind the site's one security-headers middleware
    app = Starlette(routes=routes(view, commands), middleware=[Middleware(SecurityHeaders)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitord") as api:
        yield Env(api, store, commands, changes)
    await store.close()


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-content-type-options"] == "nosniff"
    p: dict[str, Any] = r.json()
    assert p["status"] == status and p["title"] and p["detail"]
    return p


async def test_reads_privacy_and_problems(env: Env) -> None:
    api = env.api
    r = await api.get("/api/v1/devices/rtr")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-frame-options"] == "DENY" and "default-src 'none'" in r.headers[
        "content-security-policy"]
    anon = r.json()
    assert anon["state"] == "down" and "address" not in anon and "serial" not in anon
    full = (await api.get("/api/v1/devices/rtr", headers=AUTH)).json()
    assert full["address"] == "127.95.9.1" and full["serial"] == "SN-UNIT-1"
    assert "invalid" in problem(await api.get("/api/v1/devices", headers={
        "Authorization": "Bearer wrong-wrong-wrong-wrong"}), 401)["detail"]
    assert problem(await api.get("/api/v1/devices", params={"kind": "toaster"}),
                   400)["errors"][0]["loc"] == ["query", "kind"]
    problem(await api.get("/api/v1/incidents", params={"all": "true", "limit": 2**63}), 400)
    schools = (await api.get("/api/v1/schools")).json()
    assert schools["count"] == 1 and schools["items"][0]["devices_down"] == 1
    # tickets need a caller (issue 14: a console session or a token), anonymous is 401
    for path in ("/api/v1/tickets", "/api/v1/tickets/1", "/api/v1/tickets/0"):
        assert problem(await api.get(path), 401)
    ticket = (await api.get("/api/v1/tickets/1", headers=AUTH)).json()
    assert ticket["equipment"][0]["serial"] == "SN-UNIT-1" and "reporter_name" in ticket
    for path in ("/api/v1/tickets/0", "/api/v1/tickets/abc", f"/api/v1/tickets/{2**63}"):
        problem(await api.get(path, headers=AUTH), 404)
    for path in ("/api/v1/maintenance/99", "/api/v1/schools/nope", "/api/v1/no/such"):
        problem(await api.get(path), 404)
    r = await api.put("/api/v1/schools")
    problem(r, 405)
    assert "GET" in r.headers["allow"]
    head = await api.head("/api/v1/schools")
    assert head.status_code == 200 and head.headers["x-content-type-options"] == "nosniff"
    doc = (await api.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1") and "/api/v1/tickets/{id}" in doc["paths"]
    assert doc["paths"]["/api/v1/maintenance"]["post"]["security"] == [{"bearerAuth": []}]
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)] == []


async def test_writes_go_through_the_commands(env: Env) -> None:
    api = env.api
    body = {"name": "เปลี่ยนเราเตอร์", "devices": ["rtr"], "start": "2030-01-01 08:00",
            "end": "2030-01-01 12:00"}
    r = await api.post("/api/v1/maintenance", json=body)
    assert problem(r, 401) and r.headers["www-authenticate"].startswith("Bearer")
    problem(await api.post("/api/v1/maintenance", content=b"name=x", headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded"}), 415)
    problem(await api.post("/api/v1/maintenance", content=b"{", headers={
        **AUTH, "Content-Type": "application/json"}), 400)
    problem(await api.post("/api/v1/maintenance", content=b'{"name": NaN}', headers={
        **AUTH, "Content-Type": "application/json"}), 400)
    problem(await api.post("/api/v1/maintenance", json={**body, "reason": "x" * 70_000},
                           headers=AUTH), 413)
    p = problem(await api.post("/api/v1/maintenance", json={**body, "devices": ["nope"]},
                               headers=AUTH), 422)
    assert p["errors"] == [{"loc": ["body", "devices", 0], "msg": "unknown device 'nope'",
                            "type": "unknown_reference"}]
    assert env.changes == []
    r = await api.post("/api/v1/maintenance", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    assert r.headers["location"] == f"/api/v1/maintenance/{wid}"
    assert r.json()["created_by"] == "unit-officer" and env.changes == [1]
    assert (await api.delete(f"/api/v1/maintenance/{wid}", headers=AUTH)).status_code == 204
    assert env.changes == [1, 0]
    problem(await api.delete(f"/api/v1/maintenance/{wid}", headers=AUTH), 404)

    r = await api.patch("/api/v1/tickets/1", json={"scheduled_for": "2030-01-15 09:30",
                                                   "note": "นัด"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text
    p = problem(await api.patch("/api/v1/tickets/1", headers=AUTH, json={
        "repair_started": "2030-01-15 10:00", "repair_finished": "2030-01-15 09:00"}), 422)
    assert p["errors"][0]["loc"] == ["body", "repair_finished"]
    problem(await api.patch("/api/v1/tickets/1", json={"colour": "red"}, headers=AUTH), 422)
    problem(await api.patch("/api/v1/tickets/7", json={"note": "x"}, headers=AUTH), 404)
    # The CLI's path: the same command on the same database, the same history rows.
    await AppCommands.on_store(env.store).close_ticket(1, "นายช่าง", note="ปิดงาน")
    assert "closed" in problem(await api.patch("/api/v1/tickets/1", json={"status": "open"},
                                               headers=AUTH), 409)["detail"]
    history = (await api.get("/api/v1/tickets/1", headers=AUTH)).json()["history"]
    assert [(h["status"], h["actor"]) for h in history] == [
        ("open", "monitord"), ("scheduled", "unit-officer"), ("closed", "นายช่าง")]


async def test_commands_refuse_whoever_calls(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "m.db")
    try:
        await open_ticket(store)
        cli = AppCommands.on_store(store)  # no config: references are not checked
        with pytest.raises(NotFound, match="no ticket 9"):
            await cli.schedule_ticket(9, "x", 1_900_000_000.0)
        with pytest.raises(Invalid, match="before repair_started"):
            await cli.update_ticket(1, "x", fields={"repair_started": 2.0,
                                                    "repair_finished": 1.0})
        with pytest.raises(Invalid, match="unknown status"):
            await cli.update_ticket(1, "x", status="fixed")
        with pytest.raises(Invalid, match="unknown day"):
            await cli.add_maintenance("w", "x", weekly=(["funday"], "01:00-02:00"))
        with pytest.raises(Invalid, match="after 'start'"):
            await cli.add_maintenance("w", "x", start=10.0, end=10.0)
        with pytest.raises(Invalid, match="name"):
            await cli.add_maintenance("a\nb", "x", start=10.0, end=20.0)
        row = await cli.add_maintenance("w", "x", start=10.0, end=20.0, devices=["any"])
        assert row["devices"] == ["any"] and row["created_by"] == "x"
        await cli.delete_maintenance(row["id"], "x")
        with pytest.raises(NotFound):
            await cli.delete_maintenance(row["id"], "x")
        await cli.close_ticket(1, "x")
        with pytest.raises(Conflict, match="closed"):
            await cli.update_ticket(1, "x", status="open")
        assert [h["status"] for h in (await store.get_ticket(1))["history"]] == [
            "open", "closed"]
    finally:
        await store.close()


async def test_starting_and_unexpected_errors_are_problems(
        tmp_path: Path, token_env: None, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeView):
        def status_data(self) -> StatusData:
            raise RuntimeError("boom")

    store = await Storage.open(tmp_path / "m.db")
    try:
        commands = AppCommands.for_daemon(lambda: None, lambda: None)
        views = {"starting": FakeView(None, None), "broken": Broken(config(), store)}
        for name, view in views.items():
            app = Starlette(routes=routes(cast(View, view), commands),
                            middleware=[Middleware(SecurityHeaders)])
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://monitord") as api:
                if name == "starting":
                    problem(await api.get("/api/v1/devices"), 503)
                    problem(await api.get("/api/v1/tickets"), 503)
                    assert "read-only" in problem(await api.delete(
                        "/api/v1/maintenance/1", headers=AUTH), 401)["detail"]
                else:
                    p = problem(await api.get("/api/v1/schools"), 500)
                    assert "boom" not in p["detail"]
                    assert "API request GET /api/v1/schools failed" in caplog.text
    finally:
        await store.close()
