"""The console's pages in-process (no daemon, no sockets): tickets (list, filters, detail,
actions, the manual report) and maintenance windows over a real temporary database and
the real application commands, each request as a given user.

A tiny test middleware stands in for the session middleware (issue 14's auth part): it
puts the user named in the ``x-test-user`` header in ``request.state.user`` and that
user's CSRF token in ``request.state.csrf`` — the contract of
:mod:`monitord.http.console.guard`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from monitord.app.commands import AppCommands
from monitord.config import Config, parse_config
from monitord.domain.access import Role, User
from monitord.domain.incidents import Incident, TicketOpen
from monitord.domain.tickets import Equipment, TicketContext
from monitord.http.console import maintenance, tickets
from monitord.http.console.guard import Forbidden, SignInRequired, forbidden, sign_in_required
from monitord.http.ports import View
from monitord.http.server import SecurityHeaders, not_found
from monitord.storage import Storage

USERS = {u.name: u for u in (
    User(1, "officer1", Role.OFFICER, display_name="นายสมชาย ใจดี"),
    User(2, "school1", Role.SCHOOL, ("62020001",), display_name="ครูสมศรี"),
    User(3, "tech1", Role.TECHNICIAN),
    User(4, "viewer1", Role.VIEWER),
    User(5, "admin1", Role.ADMIN),
)}
OPENED = 1_795_400_600.0  # 2026-11-23


def config() -> Config:
    doc = {
        "office": {"name": "สำนักงานเขตพื้นที่การศึกษาประถมศึกษาทดสอบ เขต 1",
                   "area_code": "6202"},
        "schools": {
            "62020001": {"name": "โรงเรียนบ้านทดสอบ", "district": "คลองขลุง", "isp": "NT"},
            "62020002": {"name": "โรงเรียนวัดทดสอบ", "district": "คลองลาน", "isp": "TRUE"},
        },
        "devices": [
            {"id": "a-rtr", "name": "เราเตอร์โรงเรียน", "school": "62020001", "kind": "router",
             "address": "127.95.9.1", "serial": "SN-A-RTR"},
            {"id": "a-proj", "name": "โปรเจกเตอร์ ป.6", "school": "62020001",
             "kind": "projector", "address": "127.95.9.3", "parent": "a-rtr"},
            {"id": "b-proj", "name": "โปรเจกเตอร์ห้องประชุม", "school": "62020002",
             "kind": "projector", "address": "127.95.9.2", "brand_model": "Epson EB-X05"},
            {"id": "srv", "kind": "server", "address": "127.95.9.9", "unit": "กลุ่มอำนวยการ"},
        ],
    }
    return parse_config(yaml.safe_dump(doc, allow_unicode=True)).config


@dataclass
class FakeView:
    """The read model as the console reads it: the config and the storage."""

    config: Config | None
    storage: Storage | None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class FakeSession:
    """Stands in for the session middleware: ``x-test-user: NAME`` signs NAME in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            name = headers.get(b"x-test-user", b"").decode()
            state = scope.setdefault("state", {})
            state["user"] = USERS.get(name)
            state["csrf"] = f"csrf-{name}" if name in USERS else ""
        await self.app(scope, receive, send)


async def open_ticket(store: Storage, tid: int, root: str, school: str, name: str,
                      serial: str = "") -> None:
    inc = Incident(f"i{tid}", "device", root, OPENED - 600)
    ctx = TicketContext("school", name, school, "สพป.ทดสอบ", "กลุ่ม DLICT", "ระบบ monitord", "",
                        [Equipment(root, root, f"{root}.example", "", serial)])
    await store.commit([], [TicketOpen(tid, inc, OPENED)], {tid: ctx})


@dataclass
class Env:
    store: Storage
    commands: AppCommands
    client: httpx.AsyncClient

    async def get(self, user: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers={"x-test-user": user}, **kw)

    async def post(self, user: str, path: str, data: dict[str, Any] | None = None,
                   csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = f"csrf-{user}"
        return await self.client.post(path, data=form, headers={"x-test-user": user})


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = await Storage.open(tmp_path / "m.db")
    await open_ticket(store, 1, "a-rtr", "62020001", "โรงเรียนบ้านทดสอบ", "SN-A-RTR")
    await open_ticket(store, 2, "b-proj", "62020002", "โรงเรียนวัดทดสอบ")
    cfg = config()
    commands = AppCommands.for_daemon(lambda: store, lambda: cfg)
    view = cast(View, FakeView(cfg, store))
    app = Starlette(
        routes=[*tickets.routes(view, commands), *maintenance.routes(view, commands)],
        exception_handlers={404: not_found, SignInRequired: sign_in_required,
                            Forbidden: forbidden},
        middleware=[Middleware(SecurityHeaders), Middleware(FakeSession)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitord") as client:
        yield Env(store, commands, client)
    await store.close()


def ticket_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-ticket="(\d+)"', html)]


def post_forms(html: str) -> set[str]:
    """The actions of the page's POST forms (sign-out left out)."""
    return {a for a in re.findall(r'<form method="post" action="([^"]+)"', html)
            if a not in ("/console/signout", "/console/signout-all")}


async def test_officer_sees_the_list_with_counts_and_the_layout(env: Env) -> None:
    r = await env.get("officer1", "/console/tickets")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'unsafe-inline'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"  # personal data
    html = r.text
    # filter options come from the config, with counts
    assert 'value="server"' in html and "คลองลาน (1)" in html
    assert ticket_ids(html) == [2, 1]  # newest first (same time: higher number first)
    assert "โรงเรียนบ้านทดสอบ" in html and "โรงเรียนวัดทดสอบ" in html
    assert "23 พ.ย. 2569" in html  # Buddhist-era date of the report
    assert "เปิด <strong>2</strong>" in html and "ระบบตรวจพบ" in html
    # the layout: office, user and role in Thai, nav by permission, sign-out as a POST
    assert "สำนักงานเขตพื้นที่การศึกษาประถมศึกษาทดสอบ เขต 1" in html
    assert "นายสมชาย ใจดี" in html and "เจ้าหน้าที่" in html
    for href in ("/console/tickets", "/console/tickets/new", "/console/maintenance", "/status"):
        assert f'href="{href}"' in html
    assert 'href="/console/import"' not in html  # admins only
    assert re.search(r'<form method="post" action="/console/signout"><input type="hidden" '
                     r'name="csrf_token" value="csrf-officer1">', html)
    admin = (await env.get("admin1", "/console/tickets")).text
    assert 'href="/console/import"' in admin


async def test_filters(env: Env) -> None:
    async def ids(query: str) -> list[int]:
        r = await env.get("officer1", f"/console/tickets?{query}")
        assert r.status_code == 200, r.text
        return ticket_ids(r.text)

    assert await ids("school=62020002") == [2]
    assert await ids("district=คลองขลุง") == [1]
    assert await ids("kind=projector") == [2]
    assert await ids("kind=router") == [1]
    assert await ids("status=closed") == []
    assert await ids("status=all") == [2, 1]
    assert await ids("status=open&origin=auto") == [2, 1]
    assert await ids("origin=manual") == []
    assert await ids("age=1") == [2, 1]
    assert await ids("age=99999") == []
    assert await ids("assigned=me") == []
    assert await ids("assigned=-") == [2, 1]
    assert await ids("status=bogus&age=x") == [2, 1]  # nonsense is ignored


async def test_detail_shows_the_facts_timeline_and_forms(env: Env) -> None:
    r = await env.get("officer1", "/console/tickets/1")
    assert r.status_code == 200
    html = r.text
    assert "SN-A-RTR" in html and "a-rtr.example" in html  # personal data: signed in
    assert "เปิดอัตโนมัติ" in html  # the timeline
    assert 'href="/tickets/1/report.pdf"' in html
    forms = post_forms(html)
    for action in ("assign", "schedule", "start", "finish", "record", "close"):
        assert f"/console/tickets/1/{action}" in forms
    assert "/console/tickets/1/confirm" not in forms  # officers close
    assert all('name="csrf_token" value="csrf-officer1"' in f for f in
               re.findall(r'<form method="post".*?</form>', html, re.S))
    assert (await env.get("officer1", "/console/tickets/999")).status_code == 404


async def test_roles_scope_what_is_seen_and_done(env: Env) -> None:
    # a school user: own school only; another school's ticket → 403
    r = await env.get("school1", "/console/tickets")
    assert ticket_ids(r.text) == [1]
    assert "โรงเรียนวัดทดสอบ" not in r.text and "62020002" not in r.text  # not even a filter
    assert 'value="server"' not in r.text  # the office's equipment is not theirs
    assert "ครูผู้รับผิดชอบ ICT ของโรงเรียน" in r.text
    assert 'href="/console/maintenance"' not in r.text
    assert (await env.get("school1", "/console/tickets/2")).status_code == 403
    assert (await env.post("school1", "/console/tickets/2/close")).status_code == 403
    detail = (await env.get("school1", "/console/tickets/1")).text
    assert post_forms(detail) == set()  # nothing to confirm while it is open
    assert (await env.post("school1", "/console/tickets/1/close")).status_code == 403
    # a viewer reads everything, changes nothing
    r = await env.get("viewer1", "/console/tickets")
    assert ticket_ids(r.text) == [2, 1]
    assert post_forms((await env.get("viewer1", "/console/tickets/2")).text) == set()
    assert (await env.post("viewer1", "/console/tickets/2/close")).status_code == 403
    assert (await env.get("viewer1", "/console/tickets/new")).status_code == 403
    # a technician sees only the tickets assigned to them: none yet
    assert ticket_ids((await env.get("tech1", "/console/tickets")).text) == []
    assert (await env.get("tech1", "/console/tickets/1")).status_code == 403

    # nobody signed in: to the sign-in page, back here afterwards
    r = await env.get("", "/console/tickets?status=all")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/signin?next=%2Fconsole%2Ftickets%3Fstatus%3Dall"


async def test_the_repair_workflow_goes_through_the_commands(env: Env) -> None:
    r = await env.post("officer1", "/console/tickets/2/schedule",
                       {"date": "2026-12-03", "time": "09:30", "note": "นัดเข้าตรวจ"})
    assert r.status_code == 303 and r.headers["location"] == "/console/tickets/2?ok=schedule"
    html = (await env.get("officer1", r.headers["location"])).text
    assert "บันทึกนัดหมายแล้ว" in html and "นัดหมายแล้ว" in html
    assert "3 ธ.ค. 2569 เวลา 09:30 น." in html and "นัดเข้าตรวจ" in html
    t = await env.store.get_ticket(2)
    assert t["status"] == "scheduled" and t["history"][-1]["actor"] == "officer1"

    r = await env.post("officer1", "/console/tickets/2/start",
                       {"start_date": "2026-12-03", "start_time": "09:45"})
    assert r.status_code == 303
    assert (await env.store.get_ticket(2))["status"] == "in_repair"

    r = await env.post("officer1", "/console/tickets/2/finish", {
        "start_date": "2026-12-03", "start_time": "09:45",
        "finish_date": "2026-12-03", "finish_time": "11:15"})
    assert r.status_code == 303
    r = await env.post("officer1", "/console/tickets/2/record", {
        "cause": "หลอดภาพเสื่อม", "fix": "เปลี่ยนหลอดภาพใหม่", "summary": "ใช้งานได้ปกติ",
        "repairer_name": "นายสมชาย ใจดี", "repairer_position": "นักวิชาการคอมพิวเตอร์",
        "event_text": ""})
    assert r.status_code == 303
    t = await env.store.get_ticket(2)
    assert t["status"] == "repaired" and t["cause"] == "หลอดภาพเสื่อม"
    assert t["repair_finished"] - t["repair_started"] == 90 * 60
    html = (await env.get("officer1", "/console/tickets/2")).text
    assert "เปลี่ยนหลอดภาพใหม่" in html and "11:15 น." in html
    assert [h["status"] for h in t["history"]] == ["open", "scheduled", "in_repair",
                                                   "repaired"] + ["repaired"] * (
        len(t["history"]) - 4)

    # the school of that ticket is not school1's; school1 confirms its own once repaired
    await env.post("officer1", "/console/tickets/1/finish", {})
    detail = (await env.get("school1", "/console/tickets/1")).text
    assert post_forms(detail) == {"/console/tickets/1/confirm"}
    r = await env.post("school1", "/console/tickets/1/confirm")
    assert r.status_code == 303
    t1 = await env.store.get_ticket(1)
    assert t1["status"] == "closed"
    assert t1["history"][-1]["note"] == "โรงเรียนยืนยันว่าใช้งานได้แล้ว"
    assert t1["history"][-1]["actor"] == "school1"

    r = await env.post("officer1", "/console/tickets/2/close", {"note": "เรียบร้อย"})
    assert r.status_code == 303
    html = (await env.get("officer1", r.headers["location"])).text
    assert "ปิดใบแจ้งซ่อมแล้ว" in html and "เรียบร้อย" in html
    assert post_forms(html) == {"/console/tickets/2/record"}  # the report can still be filled


async def test_refused_actions_say_why(env: Env) -> None:
    # no CSRF token → 403, nothing changed
    r = await env.post("officer1", "/console/tickets/2/close", csrf=False)
    assert r.status_code == 403
    assert (await env.store.get_ticket(2))["status"] == "open"
    # a bad date → the page again with the reason in Thai (422)
    r = await env.post("officer1", "/console/tickets/2/schedule",
                       {"date": "1999-01-01", "time": "09:00"})
    assert r.status_code == 422 and "ค.ศ. 2000 ถึง 2100" in r.text
    r = await env.post("officer1", "/console/tickets/2/finish", {
        "start_date": "2026-12-03", "start_time": "12:00",
        "finish_date": "2026-12-03", "finish_time": "11:00"})
    assert r.status_code == 422 and "ข้อมูลไม่ถูกต้อง" in r.text
    # confirming a ticket that is not repaired → 409
    r = await env.post("officer1", "/console/tickets/2/confirm")
    assert r.status_code == 409 and "ซ่อมเสร็จ" in r.text
    await env.post("officer1", "/console/tickets/2/close")
    r = await env.post("officer1", "/console/tickets/2/start")
    assert r.status_code == 409
    assert (await env.post("officer1", "/console/tickets/2/explode")).status_code == 404
    assert (await env.post("officer1", "/console/tickets/77/close")).status_code == 404


async def test_english_switch_is_remembered(env: Env) -> None:
    r = await env.get("officer1", "/console/tickets?lang=en")
    assert "Tickets" in r.text and "Sign out" in r.text and "2026-11-23" in r.text
    assert "lang=en" in r.headers["set-cookie"]
    for path in ("/console/tickets/1", "/console/tickets/new?school=62020001",
                 "/console/maintenance", "/console/tickets?status=all&kind=router"):
        page = await env.get("officer1", f"{path}{'&' if '?' in path else '?'}lang=en")
        assert page.status_code == 200 and '<html lang="en">' in page.text, path


async def test_report_form_offers_only_the_users_schools(env: Env) -> None:
    r = await env.get("school1", "/console/tickets/new")
    assert r.status_code == 200 and "<h2>แจ้งปัญหา</h2>" in r.text
    assert 'value="ครูสมศรี"' in r.text  # the teacher reports for themself
    assert 'value="62020001" selected' in r.text and "62020002" not in r.text
    assert 'value="a-proj"' in r.text and 'value="b-proj"' not in r.text
    officer = await env.get("officer1", "/console/tickets/new")
    assert "โรงเรียนวัดทดสอบ (62020002)" in officer.text and 'value="office"' in officer.text
    assert 'name="devices"' not in officer.text  # step 1: choose the school
    step = await env.post("officer1", "/console/tickets/new", {
        "school": "62020002", "step": "devices", "reporter_name": "ครูวิชัย"})
    assert step.status_code == 200 and 'value="b-proj"' in step.text
    assert 'value="ครูวิชัย"' in step.text  # what was typed stays
    r = await env.post("school1", "/console/tickets/new", {
        "school": "62020002", "source": "phone", "reporter_name": "x", "problem": "y"})
    assert r.status_code == 403
    assert (await env.post("officer1", "/console/tickets/new", {"school": "office"},
                           csrf=False)).status_code == 403


async def test_manual_report_acknowledge_and_assign(env: Env) -> None:
    r = await env.post("officer1", "/console/tickets/new", {
        "school": "62020002", "devices": "b-proj", "source": "phone",
        "reporter_name": "ครูวิชัย มีสุข", "reporter_position": "ครู",
        "reporter_phone": "081-234-5678", "problem": "เครื่องฉายภาพไม่ติด"})
    assert r.status_code == 303, r.text
    tid = int(r.headers["location"].split("/")[-1].split("?")[0])
    html = (await env.get("officer1", r.headers["location"])).text
    assert "รับแจ้งแล้ว" in html and "081-234-5678" in html and "เครื่องฉายภาพไม่ติด" in html
    assert "โทรศัพท์" in html and "รับแจ้ง" in html
    assert ticket_ids((await env.get("officer1", "/console/tickets?origin=manual")).text) == [
        tid]
    bad = await env.post("officer1", "/console/tickets/new", {
        "school": "62020002", "source": "phone", "reporter_name": "", "problem": "x"})
    assert bad.status_code == 422 and 'id="error"' in bad.text

    r = await env.post("officer1", f"/console/tickets/{tid}/acknowledge")
    assert r.status_code == 303
    assert (await env.store.get_ticket(tid))["acknowledged_by"] == "officer1"
    r = await env.post("officer1", f"/console/tickets/{tid}/assign", {"assignee": "tech1"})
    assert r.status_code == 303
    assert ticket_ids((await env.get("tech1", "/console/tickets")).text) == [tid]
    tech = (await env.get("tech1", f"/console/tickets/{tid}")).text
    assert f"/console/tickets/{tid}/schedule" in post_forms(tech)
    assert f"/console/tickets/{tid}/close" not in post_forms(tech)
    assert (await env.get("tech1", "/console/tickets/1")).status_code == 403

    # a teacher reports a problem of the whole school; an officer one of the office's server
    r = await env.post("school1", "/console/tickets/new", {
        "school": "62020001", "source": "line", "reporter_name": "ครูสมศรี",
        "problem": "อินเทอร์เน็ตช้ามากทั้งโรงเรียน"})
    assert r.status_code == 303, r.text
    listed = (await env.get("school1", "/console/tickets?origin=manual")).text
    assert "ทั้งโรงเรียน" in listed and len(ticket_ids(listed)) == 1
    r = await env.post("officer1", "/console/tickets/new", {
        "school": "office", "devices": "srv", "source": "walk_in",
        "reporter_name": "นางสาวใจดี", "problem": "เครื่องแม่ข่ายดับ"})
    assert r.status_code == 303, r.text
    html = (await env.get("officer1", r.headers["location"])).text
    assert "สำนักงานเขต" in html and "มาติดต่อด้วยตนเอง" in html and "กลุ่มอำนวยการ" in html


async def test_maintenance_windows(env: Env) -> None:
    r = await env.get("officer1", "/console/maintenance")
    assert r.status_code == 200 and "ไม่มีช่วงปิดปรับปรุง" in r.text
    assert "/console/maintenance" in post_forms(r.text)
    r = await env.post("officer1", "/console/maintenance", {
        "name": "ย้ายตู้สื่อสาร", "type": "once", "start_date": "2099-01-01",
        "start_time": "08:00", "end_date": "2099-01-01", "end_time": "12:00",
        "schools": "62020001", "kinds": "router", "reason": "ย้ายห้อง"})
    assert r.status_code == 303, r.text
    html = (await env.get("officer1", r.headers["location"])).text
    assert "เพิ่มช่วงปิดปรับปรุงแล้ว" in html and "ย้ายตู้สื่อสาร" in html
    assert "1 ม.ค. 2642 เวลา 08:00 น." in html and "ยังไม่ถึงเวลา" in html
    (row,) = await env.store.maintenance()
    assert row["created_by"] == "officer1" and row["kinds"] == ["router"]
    r = await env.post("officer1", "/console/maintenance", {
        "name": "สำรองข้อมูล", "type": "weekly", "days": ["sat", "sun"], "from": "02:00",
        "to": "04:00"})
    assert r.status_code == 303
    html = (await env.get("viewer1", "/console/maintenance")).text
    assert "ทุกสัปดาห์: เสาร์, อาทิตย์ 02:00-04:00 น." in html
    assert post_forms(html) == set()  # viewers see, do not change
    assert (await env.post("viewer1", f"/console/maintenance/{row['id']}/end")).status_code \
        == 403
    assert (await env.get("school1", "/console/maintenance")).status_code == 403
    bad = await env.post("officer1", "/console/maintenance", {
        "name": "x", "type": "once", "start_date": "2099-01-01", "start_time": "12:00",
        "end_date": "2099-01-01", "end_time": "08:00", "devices": "nope"})
    assert bad.status_code == 422 and 'value="nope"' in bad.text
    r = await env.post("officer1", f"/console/maintenance/{row['id']}/end")
    assert r.status_code == 303
    assert [w["name"] for w in await env.store.maintenance()] == ["สำรองข้อมูล"]
    assert (await env.post("officer1", "/console/maintenance/999/end")).status_code == 404


async def test_console_in_the_whole_site(env: Env) -> None:
    """Through build_app: /console/ goes to the tickets; not signed in → sign-in page."""
    from monitord.http.site import build_app

    view = cast(View, FakeView(config(), env.store))
    app = build_app(view, env.commands)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitord") as client:
        r = await client.get("/console/")
        assert r.status_code == 303 and r.headers["location"] == "/console/tickets"
        r = await client.get("/console/tickets")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/signin?next=")
