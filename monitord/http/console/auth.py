"""Sessions, sign-in and sign-out, CSRF and sign-in throttling for the console and the API.

**Session cookie** ``monitord_session`` = ``<token>.<signature>``: ``token`` is 32 random
bytes (URL-safe base64), ``signature`` the unpadded URL-safe base64 HMAC-SHA256 of
``"session:<token>"`` with the installation's session secret — ``console.session_secret``
({env|file}, at least 32 characters) when given, else a random one generated once into
the database's directory as ``session-secret`` (mode 0600; delete it to sign everybody
out).  The database keeps only the SHA-256 of the token (``web_session.id``).  The cookie
is HttpOnly, SameSite=Lax, Path=/, without Max-Age (the server ends sessions: idle after
``console.session_idle``, absolutely after ``console.session_max``) and Secure when the
request came over https (``console.secure_cookies``: auto/always/never).

**The middleware** (:class:`SessionMiddleware`, inside the site's security headers)
resolves the cookie on every request into ``request.state.user`` (a
:class:`~monitord.domain.access.User` or None) and ``request.state.csrf`` (the session's
CSRF token; for a visitor not signed in, the pre-session token of the signed
``monitord_csrf`` cookie: double submit for the sign-in form).  It refuses with 403:

- an unsafe request (POST/PUT/PATCH/DELETE) under ``/console`` whose ``X-CSRF-Token``
  header or ``csrf_token`` form field (URL-encoded or multipart, read without taking the
  body from the endpoint; at most 10 MiB) does not match;
- an unsafe ``/api/v1`` request authenticated by the session cookie (no
  ``Authorization`` header) without the matching ``X-CSRF-Token`` header.

The session database work runs on its own connection (opened lazily on the daemon's
database file), never on the state writer's.

**Sign-in** (``/console/signin``): Argon2 (:mod:`monitord.domain.passwords`) in a thread,
the same work for unknown names, one generic message for a wrong name or password.
Failures are counted per name and per client address (the TCP peer:
``X-Forwarded-For`` is not trusted) within ``console.signin_window``; at
``console.signin_max_failures`` (per name) or ``signin_max_failures_per_address`` every
attempt gets 429 "ลองใหม่อีกครั้งใน … นาที" — even with the right password — until the
oldest failure leaves the window (``monitord_http_requests_rejected_total{reason=
"signin_throttled"}``).  ``/console/signout`` ends this session,
``/console/signout-all`` every session of the user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitord.config.sections import ConsoleConfig
from monitord.domain.access import ROLE_TH, User
from monitord.domain.links import LinkSecretError, load_secret
from monitord.domain.passwords import dummy_verify, verify_password
from monitord.http.console.guard import CSRF_FIELD, CSRF_HEADER, SIGNIN_PATH, lang_of, user_of
from monitord.http.ports import Commands, View
from monitord.http.server import error_page
from monitord.storage import Storage
from monitord.values import SecretRef

log = logging.getLogger(__name__)

SESSION_COOKIE = "monitord_session"
PRESESSION_COOKIE = "monitord_csrf"
SECRET_FILE = "session-secret"
MAX_FORM_BYTES = 10 * 1024 * 1024
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_NEXT = "/console/"
#: failures older than this are deleted (whatever the window)
KEEP_FAILURES = 86400.0

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                          autoescape=jinja2.select_autoescape(["html"]),
                          undefined=jinja2.StrictUndefined)


class SessionSecretError(Exception):
    """The session secret cannot be read or created."""


def load_session_secret(ref: SecretRef | None, data_dir: Path) -> bytes:
    """``console.session_secret`` when configured, else ``data_dir/session-secret``
    (created with 48 random bytes, mode 0600, on first use)."""
    try:
        return load_secret(ref, data_dir, file_name=SECRET_FILE, key="console.session_secret")
    except LinkSecretError as exc:
        raise SessionSecretError(str(exc)) from None


def session_id(token: str) -> str:
    """What the database stores for a cookie's token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def safe_next(target: str | None) -> str:
    """``target`` when it is a relative path on this site, else the console's start."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return DEFAULT_NEXT
    if target.startswith(("//", "/\\")) or any(c in target for c in "\\\r\n\t\0"):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return target


class AuthService:
    """Sessions and sign-in over the daemon's database file (one connection of its own,
    opened on first use).  ``clock`` is injectable for tests."""

    def __init__(self, view: View, clock: Callable[[], float] = time.time) -> None:
        self.view = view
        self.clock = clock
        self._store: Storage | None = None
        self._lock = asyncio.Lock()
        self._secret: bytes | None = None
        self._secret_key: tuple[object, Path] | None = None
        self._warned = False
        self._last_prune = 0.0

    @property
    def settings(self) -> ConsoleConfig:
        cfg = self.view.config
        return cfg.console if cfg is not None else ConsoleConfig()

    async def store(self) -> Storage | None:
        """The session connection; None while the daemon has no database open."""
        main = self.view.storage
        if main is None:
            return None
        async with self._lock:
            if self._store is not None and self._store.path != main.path:
                await self._store.close()
                self._store = None
            if self._store is None:
                self._store = await Storage.open(main.path)
        return self._store

    async def close(self) -> None:
        async with self._lock:
            if self._store is not None:
                await self._store.close()
                self._store = None

    def secret(self) -> bytes | None:
        main = self.view.storage
        if main is None:
            return None
        ref = self.settings.session_secret
        key = (ref, main.path.parent)
        if self._secret is None or self._secret_key != key:
            try:
                self._secret = load_session_secret(ref, main.path.parent)
            except SessionSecretError as exc:
                if not self._warned:
                    self._warned = True
                    log.error("console sign-in unavailable: %s", exc)
                return None
            self._secret_key = key
        return self._secret

    # -- signed cookie values ----------------------------------------------------------

    def sign(self, purpose: str, token: str) -> str | None:
        secret = self.secret()
        if secret is None:
            return None
        mac = hmac.new(secret, f"{purpose}:{token}".encode("ascii"), hashlib.sha256)
        return token + "." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def unsign(self, purpose: str, value: str | None) -> str | None:
        if not value or len(value) > 200 or not value.isascii():
            return None
        token, _, _ = value.rpartition(".")
        if not token:
            return None
        expected = self.sign(purpose, token)
        if expected is None or not hmac.compare_digest(expected.encode(), value.encode()):
            return None
        return token

    def cookie(self, scope: Scope, name: str, value: str, *, clear: bool = False) -> bytes:
        parts = [f"{name}={'' if clear else value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        mode = self.settings.secure_cookies
        if mode == "always" or (mode == "auto" and scope.get("scheme") == "https"):
            parts.append("Secure")
        if clear:
            parts += ["Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
        return "; ".join(parts).encode("latin-1")

    # -- sessions ------------------------------------------------------------------------

    async def resolve(self, cookie: str | None) -> tuple[User, str, str] | None:
        """(user, csrf, session id) of a valid session cookie; None for an invalid or
        ended one.  Raises :class:`SessionSecretError` or RuntimeError while sessions
        cannot be checked (starting, no secret): the cookie may still be good."""
        if self.view.storage is None:
            raise RuntimeError("the database is not open yet")
        if self.secret() is None:
            raise SessionSecretError("no session secret")
        token = self.unsign("session", cookie)
        if token is None:
            return None
        store = await self.store()
        if store is None:
            raise RuntimeError("the database is not open yet")
        sid = session_id(token)
        s = self.settings
        found = await store.session_user(sid, now=self.clock(), idle=s.session_idle,
                                         absolute=s.session_max)
        if found is None:
            return None
        return found[0], found[1], sid

    async def start_session(self, store: Storage, user: User, request: Request
                            ) -> tuple[str, str]:
        """A new session: (cookie value, csrf)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        value = self.sign("session", token)
        if value is None:
            raise RuntimeError("no session secret")
        await store.create_session(session_id(token), user.id, csrf,
                                   address=client_address(request),
                                   user_agent=request.headers.get("user-agent", ""),
                                   now=self.clock())
        return value, csrf

    async def throttled(self, store: Storage, name: str, address: str) -> float | None:
        """Seconds until a sign-in for ``name`` from ``address`` is allowed again, or None
        when it is allowed now."""
        s, now = self.settings, self.clock()
        since = now - s.signin_window
        waits = []
        for limit, key in ((s.signin_max_failures, {"name": name}),
                           (s.signin_max_failures_per_address, {"address": address})):
            times = await store.signin_failure_times(since=since, limit=limit, **key)
            if len(times) >= limit:
                waits.append(times[limit - 1] + s.signin_window - now)
        return max(*waits, 1.0) if waits else None

    async def failed(self, store: Storage, name: str, address: str) -> None:
        now = self.clock()
        await store.record_signin_failure(name, address, now=now)
        if now - self._last_prune > 3600:
            self._last_prune = now
            s = self.settings
            await store.prune_signin_failures(now - max(KEEP_FAILURES, s.signin_window))
            await store.prune_sessions(now=now, idle=s.session_idle, absolute=s.session_max)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


# -- the middleware ------------------------------------------------------------------------

class SessionMiddleware:
    """Puts ``user``, ``csrf`` and ``auth`` (the :class:`AuthService`) in the request's
    state and enforces CSRF (module docstring)."""

    def __init__(self, app: ASGIApp, service: AuthService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc = self.service
        request = Request(scope)
        state = scope.setdefault("state", {})
        state["auth"] = svc
        path: str = scope["path"]
        console = path == "/console" or path.startswith("/console/")
        set_cookies: list[bytes] = []
        raw = request.cookies.get(SESSION_COOKIE)
        found = None
        if raw:
            try:
                found = await svc.resolve(raw)
            except Exception as exc:  # anonymous for now; the cookie is kept
                log.warning("cannot check the session: %s", exc)
            else:
                if found is None:  # forged, expired or ended: forget it
                    set_cookies.append(svc.cookie(scope, SESSION_COOKIE, "", clear=True))
        user, csrf = (found[0], found[1]) if found is not None else (None, "")
        state["session_id"] = found[2] if found is not None else None
        if user is None:
            csrf = svc.unsign("csrf", request.cookies.get(PRESESSION_COOKIE)) or ""
            if not csrf and console:
                fresh = secrets.token_urlsafe(32)
                signed = svc.sign("csrf", fresh)
                if signed is not None:
                    csrf = fresh
                    set_cookies.append(svc.cookie(scope, PRESESSION_COOKIE, signed))
        state["user"] = user
        state["csrf"] = csrf
        if scope["method"] in UNSAFE:
            if console:
                refusal, receive = await _check_form_csrf(scope, receive, csrf)
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return
            elif (path.startswith("/api/") and user is not None
                  and "authorization" not in request.headers):
                given = request.headers.get(CSRF_HEADER, "")
                if not _same(given, csrf):
                    await _api_forbidden(scope, receive, send)
                    return

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and set_cookies:
                headers = list(message.get("headers", []))
                headers += [(b"set-cookie", c) for c in set_cookies]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookies)


def _same(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def _too_large() -> Response:
    return error_page(413, "ไฟล์หรือแบบฟอร์มใหญ่เกิน 10 MiB", "larger than 10 MiB")


def _csrf_refused() -> Response:
    return error_page(403, "คำขอนี้ไม่มีรหัสป้องกันการปลอมแปลง (CSRF) ที่ถูกต้อง: "
                      "โหลดหน้าใหม่แล้วลองอีกครั้ง",
                      "this request lacks a valid CSRF token: reload the page and try again")


async def _api_forbidden(scope: Scope, receive: Receive, send: Send) -> None:
    body = {"type": "about:blank", "title": "Forbidden", "status": 403,
            "detail": "a write authenticated by the session cookie needs the session's "
                      "X-CSRF-Token header"}
    await JSONResponse(body, status_code=403, media_type="application/problem+json")(
        scope, receive, send)


async def _check_form_csrf(scope: Scope, receive: Receive, expected: str
                           ) -> tuple[Response | None, Receive]:
    """(None, a receive that replays the body) when the token matches, else (the refusal,
    receive).  The header wins; else the form field of a URL-encoded or multipart body."""
    headers = Request(scope).headers
    if _same(headers.get(CSRF_HEADER, ""), expected):
        return None, receive
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _csrf_refused(), receive
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_FORM_BYTES:
        return _too_large(), receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return _csrf_refused(), receive
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return _too_large(), receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    given = ""
    if ctype == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=1000).get(CSRF_FIELD)
        given = values[0] if values else ""
    else:
        once = False

        async def body_once() -> Message:
            nonlocal once
            if not once:
                once = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        form: FormData | None = None
        try:
            form = await Request(scope, body_once).form(max_files=20, max_fields=1000)
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else ""
        except Exception:  # a malformed body: no token
            given = ""
        finally:
            if form is not None:
                await form.close()
    if not _same(given, expected):
        return _csrf_refused(), replay
    return None, replay


# -- pages ---------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "th": {"console": "ระบบแจ้งซ่อมและติดตามเครือข่าย", "title": "เข้าสู่ระบบ",
           "name": "ชื่อผู้ใช้", "password": "รหัสผ่าน", "submit": "เข้าสู่ระบบ",
           "wrong": "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง",
           "throttled": "ลองเข้าสู่ระบบผิดหลายครั้งเกินไป ลองใหม่อีกครั้งใน {m} นาที",
           "unavailable": "ยังเข้าสู่ระบบไม่ได้: ระบบกำลังเริ่มทำงาน ลองใหม่ในอีกสักครู่",
           "help": "ลืมรหัสผ่าน: ติดต่อผู้ดูแลระบบของสำนักงานเขตพื้นที่",
           "again": "กลับไปหน้าเข้าสู่ระบบ", "signed_in_as": "ผู้ใช้", "signout": "ออกจากระบบ",
           "other_lang": "English", "skip": "ข้ามไปยังเนื้อหา", "nav": "เมนู"},
    "en": {"console": "Repair tickets and network console", "title": "Sign in",
           "name": "User name", "password": "Password", "submit": "Sign in",
           "wrong": "Wrong user name or password",
           "throttled": "Too many failed sign-ins: try again in {m} minutes",
           "unavailable": "Signing in is not possible yet: the daemon is starting, "
                          "try again shortly",
           "help": "Forgot your password? Ask the area office's administrator.",
           "again": "Back to sign-in", "signed_in_as": "Signed in as",
           "signout": "Sign out", "other_lang": "ภาษาไทย", "skip": "Skip to content",
           "nav": "Menu"},
}


def _office(view: View) -> str:
    cfg = view.config
    return (cfg.office.short_name or cfg.office.name) if cfg is not None else "monitord"


def signin_page(request: Request, view: View, *, status: int = 200, error: str = "",
                name: str = "", next_: str = DEFAULT_NEXT, throttled: bool = False,
                headers: dict[str, str] | None = None) -> Response:
    lang = lang_of(request)
    texts = TEXTS[lang]
    user = user_of(request)
    csrf = getattr(request.state, "csrf", "")
    other = "th" if lang == "en" else "en"
    switch = f"{SIGNIN_PATH}?lang={other}&next={_quote(next_)}"
    page = _ENV.get_template("console/signin.html").render(
        lang=lang, L=texts, S=texts, office=_office(view), user=user,
        role_text=ROLE_TH.get(user.role, "") if user is not None else "", nav=[],
        csrf=csrf, csrf_field=CSRF_FIELD, switch_url=switch, other_lang=other,
        error=error, name=name, next=next_, throttled=throttled)
    response = HTMLResponse(page, status_code=status, headers=headers)
    response.headers["cache-control"] = "no-store"
    return response


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _service(request: Request) -> AuthService:
    svc = getattr(request.state, "auth", None)
    if not isinstance(svc, AuthService):
        raise RuntimeError("the session middleware is not installed")
    return svc


def routes(view: View, commands: Commands) -> list[BaseRoute]:
    async def signin_form(request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if user_of(request) is not None:
            return RedirectResponse(target, status_code=303)
        return signin_page(request, view, next_=target)

    async def signin(request: Request) -> Response:
        svc = _service(request)
        texts = TEXTS[lang_of(request)]
        form = await request.form(max_files=0, max_fields=20)
        try:
            name = str(form.get("name") or "").strip().lower()[:100]
            password = str(form.get("password") or "")
            target = safe_next(str(form.get("next") or ""))
        finally:
            await form.close()
        store = await svc.store()
        if store is None or svc.secret() is None:
            return signin_page(request, view, status=503, error=texts["unavailable"],
                               name=name, next_=target)
        address = client_address(request)
        wait = await svc.throttled(store, name, address)
        if wait is not None:
            view.count_http_rejected("signin_throttled")
            minutes = max(1, math.ceil(wait / 60))
            return signin_page(request, view, status=429, name=name, next_=target,
                               error=texts["throttled"].format(m=minutes), throttled=True,
                               headers={"Retry-After": str(math.ceil(wait))})
        found = await store.user_secret(name) if name else None
        ok, new_hash = False, None
        if found is None or found[0].disabled:
            await asyncio.to_thread(dummy_verify, password)
        else:
            ok, new_hash = await asyncio.to_thread(verify_password, password, found[1])
        if not ok or found is None:
            await svc.failed(store, name, address)
            return signin_page(request, view, status=401, error=texts["wrong"], name=name,
                               next_=target)
        user = found[0]
        await store.clear_signin_failures(name)
        if new_hash is not None:
            await store.set_password(user.name, new_hash, end_sessions=False)
        old = getattr(request.state, "session_id", None)
        if isinstance(old, str):
            await store.delete_session(old)
        value, _ = await svc.start_session(store, user, request)
        log.info("console: %s signed in from %s", user.name, address)
        response = RedirectResponse(target, status_code=303)
        response.raw_headers.append(
            (b"set-cookie", svc.cookie(request.scope, SESSION_COOKIE, value)))
        response.raw_headers.append(
            (b"set-cookie", svc.cookie(request.scope, PRESESSION_COOKIE, "", clear=True)))
        return response

    async def signout(request: Request) -> Response:
        svc = _service(request)
        sid = getattr(request.state, "session_id", None)
        store = await svc.store()
        if store is not None and isinstance(sid, str):
            await store.delete_session(sid)
        return _signed_out(request, svc)

    async def signout_all(request: Request) -> Response:
        svc = _service(request)
        user = user_of(request)
        store = await svc.store()
        if store is not None and user is not None:
            n = await store.delete_user_sessions(user.id)
            log.info("console: %s signed out everywhere (%d sessions)", user.name, n)
        return _signed_out(request, svc)

    return [Route(SIGNIN_PATH, signin_form, methods=["GET"]),
            Route(SIGNIN_PATH, signin, methods=["POST"]),
            Route("/console/signout", signout, methods=["POST"]),
            Route("/console/signout-all", signout_all, methods=["POST"])]


def _signed_out(request: Request, svc: AuthService) -> Response:
    lang = "?lang=en" if lang_of(request) == "en" else ""
    response = RedirectResponse(SIGNIN_PATH + lang, status_code=303)
    response.raw_headers.append(
        (b"set-cookie", svc.cookie(request.scope, SESSION_COOKIE, "", clear=True)))
    return response


def sign_in_link(path: str) -> str:
    """The sign-in page that comes back to ``path`` afterwards."""
    return f"{SIGNIN_PATH}?next={_quote(safe_next(path))}"

