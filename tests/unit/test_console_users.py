"""The admin's users page in-process (no daemon, no sockets): the whole site
(:func:`monitord.http.site.build_app`) over the real read model, the real application
commands and a temporary database; people sign in through the real sign-in form."""

from __future__ import annotations

import logging
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
from monitord.domain.passwords import hash_password
from monitord.http.ports import Conflict, Invalid, NotFound
from monitord.http.site import build_app, close_site
from monitord.storage import Storage

PASSWORD = "รหัสผ่าน-ผู้ดูแล-2569"
NEW_PASSWORD = "ช่างซ่อม-รหัสใหม่-99"


@dataclass
class Site:
    app: Any
    store: Storage
    commands: AppCommands

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url="http://monitord")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    doc = {
        "office": {"name": "สำนักงานทดสอบ", "area_code": "6202"},
        "schools": {"62020001": {"name": "โรงเรียนหนึ่ง", "district": "เมือง"},
                    "62020002": {"name": "โรงเรียนสอง", "district": "เมือง"}},
        "devices": [{"id": "r1", "kind": "router", "school": "62020001",
                     "address": "192.0.2.1"}],
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    cfg = load_config(path).config
    store = await Storage.open(tmp_path / "m.db")
    pipeline = Pipeline()
    pipeline.configure(cfg)
    pipeline.attach(store, None)  # type: ignore[arg-type]
    hashed = hash_password(PASSWORD)
    await store.add_user("admin", Role.ADMIN, hashed, display_name="ผู้ดูแล")
    await store.add_user("officer", Role.OFFICER, hashed)
    commands = AppCommands.for_daemon(lambda: store, lambda: cfg)
    app = build_app(ReadModel(pipeline, Runtime()), commands)
    try:
        yield Site(app, store, commands)
    finally:
        await close_site(app)
        await store.close()


def csrf_in(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD
                  ) -> httpx.Response:
    form = await client.get("/console/signin")
    return await client.post("/console/signin", data={
        "csrf_token": csrf_in(form.text), "name": name, "password": password,
        "next": "/console/tickets"})


async def signed_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD
                    ) -> str:
    """Sign in; the session's CSRF token (from a console page)."""
    r = await sign_in(client, name, password)
    assert r.status_code == 303, r.text
    page = await client.get("/console/tickets")
    assert page.status_code == 200
    return csrf_in(page.text)


def alert(page: str) -> str:
    found = re.search(r'role="alert" id="error">(.*?)</div>', page, re.S)
    return found.group(1) if found else ""


def add_form(csrf: str, **values: str) -> dict[str, str]:
    form = {"csrf_token": csrf, "name": "tech", "display_name": "นายช่าง ซ่อมเก่ง",
            "role": "technician", "schools": "", "password": NEW_PASSWORD,
            "password2": NEW_PASSWORD}
    form.update(values)
    return form


async def test_admin_adds_a_technician_who_can_then_sign_in(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with site.client() as c:
        csrf = await signed_in(c, "admin")
        page = await c.get("/console/users")
        assert page.status_code == 200
        assert 'href="/console/users" aria-current="page">ผู้ใช้งาน<' in page.text
        assert "ผู้ดูแลระบบ" in page.text and "เจ้าหน้าที่" in page.text  # roles in Thai
        r = await c.post("/console/users", data=add_form(csrf))
        assert r.status_code == 303
        assert r.headers["location"] == "/console/users?ok=add&u=tech"
        page = await c.get(r.headers["location"])
        assert 'id="flash">เพิ่มผู้ใช้ tech แล้ว<' in page.text
        row = re.search(r'<tr data-user="tech">(.*?)</tr>', page.text, re.S)
        assert row is not None and "นายช่าง ซ่อมเก่ง" in row.group(1)
        assert "ช่างเทคนิค" in row.group(1) and "ใช้งานได้" in row.group(1)
        # a school user: their schools by name, from the comma list
        r = await c.post("/console/users", data=add_form(
            csrf, name="kru", role="school", schools="62020002, 62020001"))
        assert r.status_code == 303
        page = await c.get("/console/users?lang=en")
        row = re.search(r'<tr data-user="kru">(.*?)</tr>', page.text, re.S)
        assert row is not None
        assert "โรงเรียนสอง (62020002), โรงเรียนหนึ่ง (62020001)" in row.group(1)
        assert "school ICT teacher" in row.group(1)
    user = await site.store.get_user("tech")
    assert user is not None and user.role is Role.TECHNICIAN
    async with site.client() as c:
        assert (await sign_in(c, "tech", NEW_PASSWORD)).status_code == 303
        assert (await c.get("/console/tickets")).status_code == 200
        assert (await c.get("/console/users")).status_code == 403
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "console user tech added (technician) by admin" in logged
    assert NEW_PASSWORD not in logged


async def test_a_refused_user_comes_back_in_the_form_with_the_problem(site: Site) -> None:
    async with site.client() as c:
        csrf = await signed_in(c, "admin")
        cases = {
            "weak password": ({"password": "short12", "password2": "short12"},
                              "add-new-password-error", "10"),
            "duplicate": ({"name": "officer"}, "add-new-name-error", "already exists"),
            "school without school": ({"name": "kru", "role": "school"},
                                      "add-new-schools-error", "at least one school"),
            "unknown school": ({"name": "kru", "role": "school", "schools": "62029999"},
                               "add-new-schools-error", "unknown school"),
            "passwords differ": ({"password2": NEW_PASSWORD + "x"},
                                 "add-new-password2-error", "differ"),
            "upper-case name": ({"name": "Somchai"}, "add-new-name-error", "lower-case"),
        }
        for what, (values, where, says) in cases.items():
            r = await c.post("/console/users", data=add_form(csrf, **values))
            assert r.status_code == (409 if what == "duplicate" else 422), what
            found = re.search(rf'id="{where}"[^>]*>([^<]*)<', r.text)
            assert found is not None and says in found.group(1), (what, found)
            assert alert(r.text), what
            # what was typed comes back, never the passwords
            assert f'value="{values.get("name", "tech")}"' in r.text, what
            for secret in (values.get("password", NEW_PASSWORD), NEW_PASSWORD):
                assert secret not in r.text, what
        assert [u.name for u in await site.store.list_users()] == ["admin", "officer"]


async def test_an_officer_may_not_see_or_change_users(site: Site) -> None:
    async with site.client() as c:
        csrf = await signed_in(c, "officer")
        page = await c.get("/console/tickets")
        assert 'href="/console/users"' not in page.text  # no nav link
        assert (await c.get("/console/users")).status_code == 403
        posts = {"/console/users": add_form(csrf),
                 "/console/users/admin/disable": {"csrf_token": csrf},
                 "/console/users/admin/password": {"csrf_token": csrf,
                                                   "password": NEW_PASSWORD,
                                                   "password2": NEW_PASSWORD},
                 "/console/users/officer/role": {"csrf_token": csrf, "role": "admin"}}
        for path, data in posts.items():
            assert (await c.post(path, data=data)).status_code == 403, path
    assert [(u.name, u.role, u.disabled) for u in await site.store.list_users()] == [
        ("admin", Role.ADMIN, False), ("officer", Role.OFFICER, False)]
    async with site.client() as c:  # the admin's password is unchanged
        assert (await sign_in(c, "admin")).status_code == 303


async def test_disabling_a_user_ends_their_session(site: Site) -> None:
    async with site.client() as admin, site.client() as officer:
        csrf = await signed_in(admin, "admin")
        await signed_in(officer, "officer")
        r = await admin.post("/console/users/officer/disable", data={"csrf_token": csrf})
        assert r.status_code == 303 and "ok=disable" in r.headers["location"]
        r = await officer.get("/console/tickets")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/signin?next=")
        assert (await sign_in(officer, "officer")).status_code == 401
        page = await admin.get("/console/users")
        row = re.search(r'<tr data-user="officer">(.*?)</tr>', page.text, re.S)
        assert row is not None and "ปิดการใช้งาน" in row.group(1)
        assert 'action="/console/users/officer/enable"' in row.group(1)
        r = await admin.post("/console/users/officer/enable", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert (await sign_in(officer, "officer")).status_code == 303


async def test_a_new_password_ends_the_sessions_and_replaces_the_old_one(site: Site
                                                                         ) -> None:
    async with site.client() as admin, site.client() as officer:
        csrf = await signed_in(admin, "admin")
        await signed_in(officer, "officer")
        r = await admin.post("/console/users/officer/password", data={
            "csrf_token": csrf, "password": "short", "password2": "short"})
        assert r.status_code == 422
        assert re.search(r'id="password-officer-password-error"[^>]*>[^<]*10', r.text)
        assert (await officer.get("/console/tickets")).status_code == 200  # unchanged
        r = await admin.post("/console/users/officer/password", data={
            "csrf_token": csrf, "password": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert r.status_code == 303
        assert (await officer.get("/console/tickets")).status_code == 303
        assert (await sign_in(officer, "officer")).status_code == 401
        assert (await sign_in(officer, "officer", NEW_PASSWORD)).status_code == 303


async def test_the_last_admin_stays(site: Site) -> None:
    async with site.client() as c:
        csrf = await signed_in(c, "admin")
        r = await c.post("/console/users/admin/disable", data={"csrf_token": csrf})
        assert r.status_code == 409 and "disable your own account" in alert(r.text)
        r = await c.post("/console/users/admin/role", data={"csrf_token": csrf,
                                                             "role": "officer"})
        assert r.status_code == 409
        assert (await c.get("/console/users")).status_code == 200  # still an admin
        # a second admin may be disabled while the first stays
        r = await c.post("/console/users/officer/role", data={"csrf_token": csrf,
                                                               "role": "admin"})
        assert r.status_code == 303
        r = await c.post("/console/users/officer/disable", data={"csrf_token": csrf})
        assert r.status_code == 303
        r = await c.post("/console/users/nobody/disable", data={"csrf_token": csrf})
        assert r.status_code == 404
    # not the last enabled admin either, whoever asks (the shell, another admin)
    with pytest.raises(Conflict, match="last enabled admin"):
        await site.commands.set_disabled("shell:root", "admin", True)
    with pytest.raises(Conflict, match="last enabled admin"):
        await site.commands.set_role("shell:root", "admin", "viewer", [])
    with pytest.raises(NotFound):
        await site.commands.set_password("shell:root", "nobody", NEW_PASSWORD)
    with pytest.raises(Invalid) as caught:
        await site.commands.set_role("shell:root", "officer", "school", [])
    assert caught.value.problems[0][0] == ("schools",)
    assert (await site.store.get_user("admin")) is not None
    assert await site.store.has_enabled_admin()


async def test_user_posts_need_the_csrf_token(site: Site) -> None:
    async with site.client() as c:
        csrf = await signed_in(c, "admin")
        form = add_form(csrf)
        del form["csrf_token"]
        assert (await c.post("/console/users", data=form)).status_code == 403
        assert (await c.post("/console/users", data={**form, "csrf_token": "forged"})
                ).status_code == 403
        assert (await c.post("/console/users/officer/disable")).status_code == 403
    assert [u.name for u in await site.store.list_users()] == ["admin", "officer"]
    assert not (await site.store.get_user("officer")).disabled  # type: ignore[union-attr]
