"""The admins' upload page in-process: the form, the preview (a dry run) with the bad rows,
apply without a second upload, the export — behind a stand-in for the session
middleware that sets ``request.state.user`` and ``request.state.csrf``."""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

from monitord.app.commands import AppCommands
from monitord.config import Config, load_config
from monitord.domain.access import Role, User
from monitord.http.console.guard import Forbidden, SignInRequired, forbidden, sign_in_required
from monitord.http.console.inventory import routes
from monitord.http.ports import View
from monitord.http.server import SecurityHeaders
from monitord.storage import Storage

CSRF = "csrf-unit-token"
USERS = {"admin": User(1, "admin", Role.ADMIN), "admin2": User(2, "admin2", Role.ADMIN),
         "officer": User(3, "officer", Role.OFFICER)}
MAIN = textwrap.dedent("""\
    office: {name: สำนักงานทดสอบ, short_name: สพป.ทดสอบ, area_code: "6202"}
    include: [inventory.yaml]
    schools:
      "62020001": {name: โรงเรียนบ้านทดสอบ, district: คลองขลุง}
    """)


class FakeSession(BaseHTTPMiddleware):
    """The session middleware's contract: the user named by the X-Test-User header."""

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.user = USERS.get(request.headers.get("x-test-user", ""))
        request.state.csrf = CSRF
        return await call_next(request)


@dataclass
class Env:
    client: httpx.AsyncClient
    dir: Path
    reloads: list[int]


@dataclass
class FakeView:
    dir: Path

    @property
    def config(self) -> Config:
        return load_config(self.dir / "main.yaml").config


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    (tmp_path / "main.yaml").write_text(MAIN, encoding="utf-8")
    (tmp_path / "inventory.yaml").write_text("", encoding="utf-8")
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(1)

    @contextlib.asynccontextmanager
    async def no_db() -> AsyncIterator[Storage]:
        raise AssertionError("the inventory needs no database")
        yield

    commands = AppCommands(no_db, config_path=tmp_path / "main.yaml",
                           inventory_changed=reload)
    app = Starlette(routes=routes(cast(View, FakeView(tmp_path)), commands),
                    middleware=[Middleware(SecurityHeaders), Middleware(FakeSession)],
                    exception_handlers={SignInRequired: sign_in_required,
                                        Forbidden: forbidden})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitord") as client:
        yield Env(client, tmp_path, reloads)


def upload(env: Env, data: bytes, kind: str = "schools", user: str = "admin",
           skip_bad: bool = False) -> Awaitable[httpx.Response]:
    fields: dict[str, Any] = {"kind": kind, "csrf_token": CSRF}
    if skip_bad:
        fields["skip_bad"] = "1"
    return env.client.post("/console/import", data=fields,
                           files={"file": ("schools.csv", data, "text/csv")},
                           headers={"x-test-user": user})


GOOD = ("รหัส SMIS,ชื่อโรงเรียน,อำเภอ\n62020002,โรงเรียนบ้านใหม่,เมือง\n"
        "62020003,โรงเรียนวัดกลาง,เมือง\n").encode("cp874")
BAD = (b"smis,name,district\n62020002,a,D\n6202003,b,D\n62020004,c,\n")


async def test_only_admins(env: Env) -> None:
    r = await env.client.get("/console/import")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/signin?next=")
    for path in ("/console/import", "/console/export/schools.csv"):
        r = await env.client.get(path, headers={"x-test-user": "officer"})
        assert r.status_code == 403
    assert (await upload(env, GOOD, user="officer")).status_code == 403


async def test_form(env: Env) -> None:
    r = await env.client.get("/console/import", headers={"x-test-user": "admin"})
    assert r.status_code == 200
    assert f'<input type="hidden" name="csrf_token" value="{CSRF}">' in r.text
    assert 'enctype="multipart/form-data"' in r.text and 'name="skip_bad"' in r.text
    assert "นำเข้าข้อมูลโรงเรียนและอุปกรณ์" in r.text
    r = await env.client.get("/console/import?lang=en", headers={"x-test-user": "admin"})
    assert "Import schools and devices" in r.text


async def test_bad_rows_preview_without_apply(env: Env) -> None:
    r = await upload(env, BAD)
    assert r.status_code == 200
    assert '<table class="cards problems">' in r.text
    cells = [re.sub(r"<[^>]+>", "|", row) for row in re.findall(
        r"<tr><td data-label.*?</tr>", r.text)]
    assert cells[0].startswith("||3||smis||SMIS code must be 8 digits"), cells
    assert cells[1] == "||4||district||empty: required||", cells
    assert 'name="upload"' not in r.text and 'class="blocked error"' in r.text
    assert (env.dir / "inventory.yaml").read_text() == ""
    # with skip_bad the good row can be applied
    r = await upload(env, BAD, skip_bad=True)
    assert 'name="upload"' in r.text and '<dd class="added">1</dd>' in r.text
    assert "3, 4" in r.text


async def test_preview_then_apply(env: Env) -> None:
    r = await upload(env, GOOD)
    assert r.status_code == 200
    assert '<dd class="encoding">Windows-874</dd>' in r.text
    assert '<dd class="rows">2</dd>' in r.text and '<dd class="added">2</dd>' in r.text
    assert (env.dir / "inventory.yaml").read_text() == ""  # a preview writes nothing
    upload_id = re.search(r'name="upload" value="([^"]+)"', r.text)
    assert upload_id is not None
    form = {"upload": upload_id.group(1), "csrf_token": CSRF}
    # bound to the user who uploaded it
    r = await env.client.post("/console/import/apply", data=form,
                              headers={"x-test-user": "admin2"})
    assert r.status_code == 410
    r = await env.client.post("/console/import/apply", data=form,
                              headers={"x-test-user": "admin"})
    assert r.status_code == 200 and 'class="result"' in r.text
    assert "นำเข้าเรียบร้อย" in r.text
    assert env.reloads == [1]
    assert set(load_config(env.dir / "main.yaml").config.schools) == {
        "62020001", "62020002", "62020003"}
    # used once
    r = await env.client.post("/console/import/apply", data=form,
                              headers={"x-test-user": "admin"})
    assert r.status_code == 410


async def test_no_file_and_export(env: Env) -> None:
    r = await env.client.post("/console/import", data={"kind": "schools",
                                                       "csrf_token": CSRF},
                              files={"file": ("empty.csv", b"", "text/csv")},
                              headers={"x-test-user": "admin"})
    assert r.status_code == 422
    r = await env.client.get("/console/export/schools.csv", headers={"x-test-user": "admin"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="schools.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert "62020001,โรงเรียนบ้านทดสอบ,คลองขลุง" in r.content.decode("utf-8-sig")
    r = await env.client.get("/console/export/users.csv", headers={"x-test-user": "admin"})
    assert r.status_code == 404
