"""The admin's users page (:data:`~monitord.domain.access.Perm.USERS`).

- ``GET /console/users``: every console user (name, display name, role, schools,
  enabled or disabled) and the form that adds one;
- ``POST /console/users``: add a user (:meth:`~monitord.http.ports.Commands.add_user`);
- ``POST /console/users/{name}/password``: a new password (their sessions end);
- ``POST /console/users/{name}/disable`` and ``…/enable`` (disabling ends their
  sessions; an admin cannot disable themself nor the last enabled admin);
- ``POST /console/users/{name}/role``: a new role and schools.

Every change goes through the application commands — the same rules and log lines as
``monitord users …``.  A change that works redirects back with a flash message (303); a
refused one shows the page again with the problem next to its field (422 invalid, 409
conflict, 404 unknown user).  Passwords are never written back into a page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from monitord.domain.access import ROLE_TH, ROLES, Perm, User
from monitord.domain.passwords import MIN_LENGTH, NAME_PATTERN
from monitord.http.console import render as r
from monitord.http.console.guard import lang_of, require
from monitord.http.ports import CommandError, Commands, Conflict, Invalid, NotFound, View
from monitord.http.server import error_page

_SPLIT = re.compile(r"[\s,]+")

LABELS: dict[str, dict[str, str]] = {
    "th": {
        "title": "ผู้ใช้งาน", "name": "ชื่อผู้ใช้", "display_name": "ชื่อที่แสดง",
        "role": "บทบาท", "schools": "โรงเรียน", "state": "สถานะ", "enabled": "ใช้งานได้",
        "disabled": "ปิดการใช้งาน", "you": "(คุณ)", "none": "ยังไม่มีผู้ใช้",
        "add": "เพิ่มผู้ใช้", "add_submit": "เพิ่มผู้ใช้",
        "name_hint": "อักษรอังกฤษตัวเล็ก ตัวเลข หรือ _ . @ - ใช้สำหรับเข้าสู่ระบบ",
        "schools_hint": "รหัส SMIS คั่นด้วยจุลภาคหรือเว้นวรรค (เฉพาะบทบาทครูผู้รับผิดชอบ ICT "
                        "ของโรงเรียน)",
        "password": "รหัสผ่าน", "password2": "ยืนยันรหัสผ่าน",
        "password_hint": f"อย่างน้อย {MIN_LENGTH} ตัวอักษร",
        "new_password": "ตั้งรหัสผ่านใหม่", "save_password": "บันทึกรหัสผ่านใหม่",
        "password_note": "ผู้ใช้จะถูกออกจากระบบทุกเครื่อง",
        "disable": "ปิดการใช้งาน", "enable": "เปิดการใช้งาน",
        "confirm_disable": "ปิดการใช้งานผู้ใช้นี้? ผู้ใช้จะถูกออกจากระบบทุกเครื่อง",
        "change_role": "เปลี่ยนบทบาท", "save_role": "บันทึกบทบาท",
        "mismatch": "รหัสผ่านทั้งสองช่องไม่ตรงกัน / the two passwords differ",
        "ok_add": "เพิ่มผู้ใช้ {name} แล้ว", "ok_password": "ตั้งรหัสผ่านใหม่ของ {name} แล้ว "
        "(ออกจากระบบทุกเครื่องแล้ว)", "ok_disable": "ปิดการใช้งาน {name} แล้ว "
        "(ออกจากระบบทุกเครื่องแล้ว)", "ok_enable": "เปิดการใช้งาน {name} แล้ว",
        "ok_role": "เปลี่ยนบทบาทของ {name} แล้ว",
        "invalid": "ข้อมูลไม่ถูกต้อง", "conflict": "ทำรายการนี้ไม่ได้",
        "not_found": "ไม่พบผู้ใช้", "unavailable": "ระบบยังไม่พร้อม โปรดลองใหม่ภายหลัง",
        "actions": "จัดการ",
    },
    "en": {
        "title": "Users", "name": "User name", "display_name": "Display name",
        "role": "Role", "schools": "Schools", "state": "State", "enabled": "enabled",
        "disabled": "disabled", "you": "(you)", "none": "No users yet",
        "add": "Add a user", "add_submit": "Add the user",
        "name_hint": "lower-case letters, digits or _ . @ -; used to sign in",
        "schools_hint": "SMIS codes separated by commas or spaces (school ICT teachers "
                        "only)",
        "password": "Password", "password2": "Repeat the password",
        "password_hint": f"at least {MIN_LENGTH} characters",
        "new_password": "Set a new password", "save_password": "Save the new password",
        "password_note": "the user is signed out everywhere",
        "disable": "Disable", "enable": "Enable",
        "confirm_disable": "Disable this user? They are signed out everywhere.",
        "change_role": "Change the role", "save_role": "Save the role",
        "mismatch": "the two passwords differ",
        "ok_add": "User {name} added", "ok_password": "New password of {name} saved (signed "
        "out everywhere)", "ok_disable": "{name} disabled (signed out everywhere)",
        "ok_enable": "{name} enabled", "ok_role": "Role of {name} changed",
        "invalid": "invalid input", "conflict": "not possible",
        "not_found": "no such user", "unavailable": "not available; try again later",
        "actions": "Manage",
    },
}

_ACTIONS = ("password", "disable", "enable", "role")


@dataclass(frozen=True, slots=True)
class UserRow:
    name: str
    display_name: str
    role: str
    role_text: str
    schools: list[tuple[str, str]]  # (code, school name or "")
    schools_value: str
    disabled: bool
    is_you: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused change, shown on the page: which form (``add`` or a user's action),
    per-field problems and the rest."""

    form: str
    user: str = ""
    fields: Mapping[str, str] | None = None
    general: Sequence[str] = ()


def role_text(role: str, lang: str) -> str:
    return ROLE_TH.get(role, role) if lang != "en" else r.ROLE_EN.get(role, role)


def routes(view: View, commands: Commands) -> list[BaseRoute]:

    async def page(request: Request, user: User, *, status: int = 200,
                   refusal: Refusal | None = None, form: Mapping[str, str] | None = None,
                   headline: str = "") -> Response:
        store = view.storage
        if store is None:
            return error_page(503, "ระบบยังไม่พร้อม โปรดลองใหม่ภายหลัง",
                              "the database is not open yet")
        lang = lang_of(request)
        U = LABELS[lang]
        cfg = view.config
        names = {code: s.name for code, s in cfg.schools.items()} if cfg is not None else {}
        rows = [UserRow(u.name, u.display_name, u.role.value, role_text(u.role.value, lang),
                        [(s, names.get(s, "")) for s in u.schools], ", ".join(u.schools),
                        u.disabled, u.name == user.name)
                for u in await store.list_users()]
        ok, who = request.query_params.get("ok", ""), request.query_params.get("u", "")
        flash = ""
        if f"ok_{ok}" in U and NAME_PATTERN.fullmatch(who):
            flash = U[f"ok_{ok}"].format(name=who)
        return r.render(request, view, user, "console/users.html", status=status,
                        U=U, rows=rows, flash=flash, refusal=refusal, headline=headline,
                        form=form or {}, roles=[(x.value, role_text(x.value, lang))
                                                for x in ROLES],
                        min_length=MIN_LENGTH)

    def refused(exc: CommandError, lang: str) -> tuple[int, str, dict[str, str], list[str]]:
        U = LABELS[lang]
        fields: dict[str, str] = {}
        general: list[str] = []
        if isinstance(exc, Invalid):
            for where, msg, _ in exc.problems:
                if where and isinstance(where[0], str):
                    key = where[0]
                    fields[key] = f"{fields[key]}; {msg}" if key in fields else msg
                else:
                    general.append(msg)
            if not exc.problems:
                general.append(str(exc))
            return 422, U["invalid"], fields, general
        if isinstance(exc, Conflict):
            return 409, U["conflict"], fields, [str(exc)]
        if isinstance(exc, NotFound):
            return 404, U["not_found"], fields, [str(exc)]
        return 503, U["unavailable"], fields, [str(exc)]

    def done(request: Request, ok: str, name: str) -> Response:
        query = {"ok": ok, "u": name}
        if lang_of(request) == "en":
            query["lang"] = "en"
        return RedirectResponse(f"/console/users?{urlencode(query)}", status_code=303)

    async def list_page(request: Request) -> Response:
        user = require(request, Perm.USERS)
        return await page(request, user)

    async def add(request: Request) -> Response:
        user = require(request, Perm.USERS)
        form = await r.read_form(request)
        lang = lang_of(request)
        name = r.text(form, "name", 100)
        role = r.text(form, "role", 20)
        schools = _schools(form.get("schools"), form.getlist("school"))
        display_name = r.text(form, "display_name", 300)
        password, again = _secret(form.get("password")), _secret(form.get("password2"))
        # what is written back into the form (never the passwords)
        kept = {"name": name, "role": role, "schools": ", ".join(schools),
                "display_name": display_name}
        if password != again:
            return await page(request, user, status=422, form=kept,
                              headline=LABELS[lang]["invalid"],
                              refusal=Refusal("add", fields={
                                  "password2": LABELS[lang]["mismatch"]}))
        try:
            await commands.add_user(user.name, name, role, schools, display_name, password)
        except CommandError as exc:
            status, head, fields, general = refused(exc, lang)
            if isinstance(exc, Conflict):  # the only conflict of an addition: the name
                fields, general = {"name": str(exc)}, []
            return await page(request, user, status=status, form=kept, headline=head,
                              refusal=Refusal("add", fields=fields, general=general))
        return done(request, "add", name)

    async def change(request: Request) -> Response:
        user = require(request, Perm.USERS)
        form = await r.read_form(request)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in _ACTIONS or not NAME_PATTERN.fullmatch(name):
            return error_page(404, "ไม่พบผู้ใช้", "no such user")
        lang = lang_of(request)
        try:
            if action == "password":
                password = _secret(form.get("password"))
                if password != _secret(form.get("password2")):
                    return await page(request, user, status=422,
                                      headline=LABELS[lang]["invalid"],
                                      refusal=Refusal("password", name, fields={
                                          "password2": LABELS[lang]["mismatch"]}))
                await commands.set_password(user.name, name, password)
            elif action == "role":
                await commands.set_role(user.name, name, r.text(form, "role", 20),
                                        _schools(form.get("schools"), form.getlist("school")))
            else:
                await commands.set_disabled(user.name, name, action == "disable")
        except CommandError as exc:
            status, head, fields, general = refused(exc, lang)
            return await page(request, user, status=status, headline=head,
                              refusal=Refusal(action, name, fields=fields, general=general))
        return done(request, action, name)

    return [
        Route("/console/users", list_page),
        Route("/console/users", add, methods=["POST"]),
        Route("/console/users/{name}/{action}", change, methods=["POST"]),
    ]


def _secret(value: object) -> str:
    """A posted password as typed (not trimmed: spaces may be part of it)."""
    return value[:2048] if isinstance(value, str) else ""


def _schools(listed: object, chosen: Sequence[object]) -> list[str]:
    """The schools of a form: a comma/space list (``schools``) and ticked boxes or a
    multiple select (``school``)."""
    text = listed[:8000] if isinstance(listed, str) else ""
    codes = [x for x in _SPLIT.split(text) if x]
    codes += [c.strip() for c in chosen if isinstance(c, str) and c.strip()]
    return list(dict.fromkeys(codes))[:500]
