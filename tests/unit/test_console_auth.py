"""The console's sign-in, sessions, CSRF and roles in-process (no daemon, no sockets): the
whole site (:func:`monitord.http.site.build_app`) over the real read model and a
temporary database, with the sessions' clock injected to expire them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitord.app.commands import AppCommands
from monitord.app.pipeline import Pipeline
from monitord.app.readmodel import ReadModel, Runtime
from monitord.config import load_config
from monitord.domain.access import Role
from monitord.domain.incidents import Incident, TicketOpen
from monitord.domain.passwords import hash_password
from monitord.domain.tickets import Equipment, TicketContext
from monitord.http.console.auth import SESSION_COOKIE, safe_next
from monitord.http.site import build_app, close_site
from monitord.storage import Storage

T0 = 1_760_000_000.0  # in the past: the ticket pages compute "down for …" from now
HOUR = 3600.0
PASSWORD = "รหัสผ่าน-ทดสอบ-2569"
TOKEN = "tok-console-0123456789abcdef"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Site:
    app: Any
    store: Storage
    clock: Clock
    view: ReadModel

    def client(self, scheme: str = "http") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url=f"{scheme}://monitord")


async def open_ticket(store: Storage, tid: int, school: str, device: str) -> None:
    inc = Incident(f"i{tid}", "device", device, T0)
    ctx = TicketContext("school", f"โรงเรียน {school}", school, "สพป.ทดสอบ", "กลุ่ม DLICT",
                        "ระบบ monitord", "", [Equipment(device, device, "", "", f"SN-{tid}")])
    await store.commit([], [TicketOpen(tid, inc, T0 + tid)], {tid: ctx})


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    monkeypatch.setenv("MONITORD_TEST_CONSOLE_TOKEN", TOKEN)
    doc = {
        "office": {"name": "สำนักงานทดสอบ", "area_code": "6202"},
        "schools": {"62020001": {"name": "โรงเรียนหนึ่ง", "district": "เมือง"},
                    "62020002": {"name": "โรงเรียนสอง", "district": "เมือง"}},
        "devices": [
            {"id": "r1", "kind": "router", "school": "62020001", "address": "192.0.2.1",
             "serial": "SN-R1"},
            {"id": "r2", "kind": "router", "school": "62020002", "address": "192.0.2.2",
             "serial": "SN-R2"},
        ],
        "http": {"api_tokens": [{"name": "bot", "token": {"env":
                                                          "MONITORD_TEST_CONSOLE_TOKEN"}}]},
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    cfg = load_config(path).config
    store = await Storage.open(tmp_path / "m.db")
    pipeline = Pipeline(now=lambda: T0)
    pipeline.configure(cfg)
    pipeline.attach(store, None)  # type: ignore[arg-type]
    await open_ticket(store, 1, "62020001", "r1")
    await open_ticket(store, 2, "62020002", "r2")
    hashed = hash_password(PASSWORD)
    await store.add_user("officer", Role.OFFICER, hashed)
    await store.add_user("kru", Role.SCHOOL, hashed, schools=["62020001"])
    await store.add_user("gone", Role.OFFICER, hashed)
    await store.set_disabled("gone", True)
    clock = Clock(T0)
    view = ReadModel(pipeline, Runtime())
    app = build_app(view, AppCommands.on_store(store), clock=clock)
    try:
        yield Site(app, store, clock, view)
    finally:
        await close_site(app)
        await store.close()


def csrf_in(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD,
                  next_: str = "/console/") -> httpx.Response:
    form = await client.get("/console/signin", params={"next": next_})
    assert form.status_code == 200, form.text
    return await client.post("/console/signin", data={
        "csrf_token": csrf_in(form.text), "name": name, "password": password, "next": next_})


async def session_csrf(store: Storage) -> str:
    async with store.connection.execute(
            "SELECT csrf FROM web_session ORDER BY rowid DESC LIMIT 1") as cur:
        row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def test_sign_in_sets_a_safe_cookie_and_wrong_ones_get_one_message(site: Site) -> None:
    async with site.client() as c:
        form = await c.get("/console/signin")
        assert "เข้าสู่ระบบ" in form.text and 'type="password"' in form.text
        assert "csrf" in form.headers["set-cookie"]  # the pre-session token
        r = await sign_in(c, "officer", next_="/tickets/1")
        assert r.status_code == 303 and r.headers["location"] == "/tickets/1"
        cookie = next(v for v in r.headers.get_list("set-cookie")
                      if v.startswith(SESSION_COOKIE + "="))
        flags = {p.strip().lower() for p in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= flags and "secure" not in flags
        assert PASSWORD not in r.text
        assert (await c.get("/api/v1/tickets")).json()["count"] == 2
        assert (await c.get("/console/signin")).status_code == 303  # already signed in
    async with site.client() as c:
        messages = set()
        for name, password in (("officer", "wrong-password-1"), ("nobody", PASSWORD),
                               ("gone", PASSWORD)):
            r = await sign_in(c, name, password)
            assert r.status_code == 401 and SESSION_COOKIE not in r.headers.get("set-cookie", "")
            messages.add(re.search(r'role="alert">([^<]+)<', r.text).group(1))  # type: ignore[union-attr]
        assert messages == {"ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง"}
        assert problem_status(await c.get("/api/v1/tickets")) == 401
    async with site.client("https") as c:
        r = await sign_in(c, "officer")
        assert "secure" in r.headers["set-cookie"].lower()
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil", "javascript:x", ""):
        assert safe_next(bad) == "/console/"
    assert safe_next("/console/tickets?status=open") == "/console/tickets?status=open"


def problem_status(r: httpx.Response) -> int:
    return r.status_code


async def test_sessions_expire_when_idle_and_absolutely(site: Site) -> None:
    async with site.client() as c:
        assert (await sign_in(c, "officer")).status_code == 303
        site.clock.t += 2 * HOUR - 60
        assert (await c.get("/api/v1/tickets")).status_code == 200
        site.clock.t += 2 * HOUR + 1  # idle for longer than session_idle (2 h)
        assert (await c.get("/api/v1/tickets")).status_code == 401
    async with site.client() as c:
        assert (await sign_in(c, "officer")).status_code == 303
        for _ in range(11):  # used every hour: ends at session_max (12 h) all the same
            site.clock.t += HOUR
            assert (await c.get("/api/v1/tickets")).status_code == 200
        site.clock.t += HOUR + 1
        assert (await c.get("/api/v1/tickets")).status_code == 401


async def test_csrf_is_required_on_console_posts_and_cookie_api_writes(site: Site) -> None:
    async with site.client() as c:
        form = await c.get("/console/signin")
        r = await c.post("/console/signin", data={"name": "officer", "password": PASSWORD})
        assert r.status_code == 403  # no pre-session token
        r = await c.post("/console/signin", data={"csrf_token": "forged", "name": "officer",
                                                  "password": PASSWORD})
        assert r.status_code == 403
        assert (await c.post("/console/signin", data={
            "csrf_token": csrf_in(form.text), "name": "officer", "password": PASSWORD}
        )).status_code == 303
        csrf = await session_csrf(site.store)
        assert (await c.post("/console/signout")).status_code == 403
        assert (await c.post("/console/signout", data={"csrf_token": "x" * 43})
                ).status_code == 403
        # cookie-authenticated API writes need X-CSRF-Token
        patch = {"cause": "สายหลุด"}
        r = await c.patch("/api/v1/tickets/1", json=patch)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        r = await c.patch("/api/v1/tickets/1", json=patch, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["cause"] == "สายหลุด"
        assert r.json()["history"][-1]["actor"] == "officer"
        # a multipart form carries the token too (the endpoint still gets its body)
        r = await c.post("/console/signout", files={"f": ("a.csv", b"x,y\n")},
                         data={"csrf_token": csrf})
        assert r.status_code == 303
        assert (await c.get("/api/v1/tickets")).status_code == 401  # signed out
    async with site.client() as c:  # a bearer token needs no CSRF header
        r = await c.patch("/api/v1/tickets/1", json={"fix": "เสียบสาย"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200


async def test_ten_wrong_passwords_throttle_even_the_right_one(site: Site) -> None:
    async with site.client() as c:
        codes = [(await sign_in(c, "officer", f"wrong-password-{i}")).status_code
                 for i in range(10)]
        assert codes == [401] * 5 + [429] * 5
        r = await sign_in(c, "officer")
        assert r.status_code == 429 and "ลองใหม่อีกครั้งใน 15 นาที" in r.text
        assert int(r.headers["retry-after"]) <= 15 * 60
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
        counters = site.view.counters()["monitord_http_requests_rejected_total"]
        assert counters[("signin_throttled",)] == 6
        site.clock.t += 15 * 60 + 1
        assert (await sign_in(c, "officer")).status_code == 303


async def test_sign_out_everywhere_ends_the_other_sessions(site: Site) -> None:
    async with site.client() as a, site.client() as b:
        assert (await sign_in(a, "officer")).status_code == 303
        csrf_a = await session_csrf(site.store)
        assert (await sign_in(b, "officer")).status_code == 303
        assert (await b.get("/api/v1/tickets")).status_code == 200
        r = await a.post("/console/signout-all", data={"csrf_token": csrf_a})
        assert r.status_code == 303 and r.headers["location"] == "/console/signin"
        assert (await b.get("/api/v1/tickets")).status_code == 401
        assert (await a.get("/api/v1/tickets")).status_code == 401


async def test_a_school_user_sees_only_their_school(site: Site) -> None:
    async with site.client() as c:
        r = await c.get("/tickets/1")
        assert r.status_code == 401 and "/console/signin?next=%2Ftickets%2F1" in r.text
        assert (await sign_in(c, "kru")).status_code == 303
        listed = (await c.get("/api/v1/tickets")).json()
        assert [t["id"] for t in listed["items"]] == [1]
        assert listed["items"][0]["equipment"][0]["serial"] == "SN-1"  # their own school
        assert (await c.get("/api/v1/tickets/1")).status_code == 200
        assert (await c.get("/api/v1/tickets/2")).status_code == 403
        assert (await c.get("/tickets/2")).status_code == 403
        assert (await c.get("/tickets/2/report.pdf")).status_code == 403
        own = await c.get("/tickets/1")
        assert own.status_code == 200 and own.headers["content-type"].startswith("text/html")
        # devices: their own school's details, not another's
        assert (await c.get("/api/v1/devices/r1")).json()["serial"] == "SN-R1"
        assert "serial" not in (await c.get("/api/v1/devices/r2")).json()
        # writes: a school user may not record findings nor add maintenance
        csrf = await session_csrf(site.store)
        r = await c.patch("/api/v1/tickets/1", json={"cause": "x"},
                          headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403
        r = await c.post("/api/v1/maintenance", headers={"X-CSRF-Token": csrf}, json={
            "name": "x", "devices": ["r1"], "start": "2030-01-01 08:00",
            "end": "2030-01-01 12:00"})
        assert r.status_code == 403


async def test_technician_and_viewer_rights_in_the_api(site: Site) -> None:
    hashed = hash_password(PASSWORD)
    await site.store.add_user("tech", Role.TECHNICIAN, hashed)
    await site.store.add_user("director", Role.VIEWER, hashed)
    async with site.client() as c:
        assert (await sign_in(c, "tech")).status_code == 303
        # no ticket is assigned to them (TICKETS' assigned_to): they see none
        assert (await c.get("/api/v1/tickets")).json()["count"] == 0
        assert (await c.get("/api/v1/tickets/1")).status_code == 403
        assert (await c.get("/tickets/1")).status_code == 403
    async with site.client() as c:
        assert (await sign_in(c, "director")).status_code == 303
        csrf = await session_csrf(site.store)
        assert (await c.get("/api/v1/tickets")).json()["count"] == 2
        assert (await c.get("/api/v1/devices/r2")).json()["serial"] == "SN-R2"
        r = await c.patch("/api/v1/tickets/1", json={"status": "closed"},
                          headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403 and "close" in r.json()["detail"]
        assert (await c.get("/tickets/2")).status_code == 200


async def test_an_oversized_console_form_is_a_thai_413_page(site: Site) -> None:
    """A form post beyond what a console page reads (64 KiB) is refused with the Thai
    413 page, nothing changes, and the session goes on."""
    async with site.client() as c:
        assert (await sign_in(c, "officer")).status_code == 303
        csrf = await session_csrf(site.store)
        r = await c.post("/console/tickets/1/record",
                         data={"csrf_token": csrf, "cause": "ก" * 70_000})
        assert r.status_code == 413 and "ใหญ่เกินไป" in r.text
        detail = await c.get("/console/tickets/1")
        assert detail.status_code == 200 and "ก" * 100 not in detail.text
