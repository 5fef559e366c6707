"""Who calls the API: bearer tokens (``http.api_tokens``) and console sessions, as
FastAPI dependencies.

A valid bearer token acts as an officer named after the token
(:func:`monitord.domain.access.token_user`); without an ``Authorization`` header the
console's session cookie (``request.state.user``, set by
:mod:`monitord.http.console.auth`, which also checks ``X-CSRF-Token`` on cookie
writes) authenticates as that user, with that user's role.

:func:`reader`: reads of schools, devices, incidents and maintenance are public; a
caller with the right role adds the non-public fields (PDPA) — a ``school`` user only for
their own schools; a wrong token is 401.  Tickets need a caller (:func:`need_user`) and
are scoped by role.  :func:`writer`: writes need a token or a session, whose name is the
actor recorded in ticket history and maintenance windows; the operations check the role
(403).  With no tokens configured and no session the API is read-only (401).  Tokens are
compared in constant time with every configured one.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitord.domain.access import Perm, User, can, can_see_school, token_user
from monitord.http.api.errors import READ_ONLY, ApiError
from monitord.http.ports import Commands, View

if TYPE_CHECKING:
    from monitord.config import Config
    from monitord.storage import Storage

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
CHALLENGE = 'Bearer realm="monitord"'

#: Declares the scheme in the OpenAPI document; the header itself is checked below (a
#: wrong scheme or token must be a 401, not an anonymous read).
bearer = HTTPBearer(scheme_name="bearerAuth", auto_error=False,
                    description="a token from http.api_tokens: needed for writes; on reads "
                                "it adds the non-public fields")


def usable_tokens(cfg: Config | None, warn: Callable[[str, str], None] | None = None
                  ) -> list[tuple[str, bytes]]:
    """(name, secret) of the ``http.api_tokens`` that can be read and are long enough."""
    out = []
    for tok in cfg.http.api_tokens if cfg is not None else []:
        try:
            secret = tok.token.reveal()
        except (LookupError, OSError) as exc:
            if warn is not None:
                warn(tok.name, f"API token {tok.name} unusable: {exc}")
            continue
        if len(secret) < MIN_TOKEN_LENGTH:
            if warn is not None:
                warn(tok.name, f"API token {tok.name} ignored: shorter than "
                     f"{MIN_TOKEN_LENGTH} characters")
            continue
        out.append((tok.name, secret.encode("utf-8")))
    return out


def token_holder(header: str | None, tokens: Sequence[tuple[str, bytes]]) -> str | None:
    """The name of the token an ``Authorization: Bearer …`` header carries, if valid
    (constant-time comparison with every token)."""
    if header is None:
        return None
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    found: str | None = None
    if scheme.lower() == "bearer" and credential:
        given = credential.encode("utf-8", "surrogateescape")
        for name, secret in tokens:
            if hmac.compare_digest(given, secret) and found is None:
                found = name
    return found


@dataclass
class ApiContext:
    """What the API's operations work with: the read model, the application commands and
    the tokens' warnings already logged.  One per API (``app.state.api``)."""

    view: View
    commands: Commands
    warned: set[str] = field(default_factory=set)

    def warn(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning("%s", message)


@dataclass(frozen=True)
class Caller:
    """One request's view of the application: who asks (``actor``: the token's or the
    user's name, None for an anonymous read; ``user``: their role) and the read model and
    commands."""

    view: View
    commands: Commands
    actor: str | None
    user: User | None = None
    #: set by :meth:`for_school`: may this caller see that school's non-public fields
    full_override: bool | None = None

    @property
    def full(self) -> bool:
        """May this request see the non-public fields (of every device and ticket, or of
        the school :meth:`for_school` named)?"""
        if self.full_override is not None:
            return self.full_override
        return can(self.user, Perm.DEVICES_ALL)

    def for_school(self, school: str | None) -> Caller:
        """This caller as it may see one school's devices and tickets (``school`` users:
        their own schools' non-public fields too)."""
        return replace(self, full_override=self.full or (
            self.user is not None and school is not None and can_see_school(self.user, school)))

    def need_user(self) -> User:
        """The caller's user; 401 for an anonymous request."""
        if self.user is None:
            if self.view.config is None:  # tokens cannot be checked yet
                raise ApiError(503, "the daemon is starting")
            raise ApiError(401, "this request needs a signed-in console session or "
                                "'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": CHALLENGE})
        return self.user

    def need(self, perm: Perm) -> User:
        """The caller's user, who must hold ``perm`` (403 otherwise)."""
        user = self.need_user()
        if not can(user, perm):
            raise ApiError(403, f"the role {user.role} may not do this")
        return user

    @property
    def officer(self) -> str:
        """The actor of a write (the writer dependency has made sure there is one)."""
        if self.actor is None:
            raise ApiError(401, "this request needs 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": CHALLENGE})
        return self.actor

    @property
    def config(self) -> Config:
        cfg = self.view.config
        if cfg is None:
            raise ApiError(503, "the daemon is starting")
        return cfg

    @property
    def storage(self) -> Storage:
        store = self.view.storage
        if store is None:
            raise ApiError(503, "the database is not open yet")
        return store


def api_context(request: Request) -> ApiContext:
    ctx = request.app.state.api
    assert isinstance(ctx, ApiContext)
    return ctx


def authenticate(ctx: ApiContext, header: str | None, required: bool) -> str | None:
    """The token's name; None for an anonymous read.  401 for a write without a valid
    token and for any request with a wrong one."""
    tokens = usable_tokens(ctx.view.config, ctx.warn)
    if required and not tokens:
        raise ApiError(401, "the API is read-only: no bearer tokens are configured "
                            "(http.api_tokens)", type_=READ_ONLY,
                       headers={"WWW-Authenticate": CHALLENGE})
    if header is None:
        if required:
            raise ApiError(401, "this request needs 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": CHALLENGE})
        return None
    found = token_holder(header, tokens)
    if found is None:
        raise ApiError(401, "invalid bearer token", headers={
            "WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
    return found


Context = Annotated[ApiContext, Depends(api_context)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def session_user(request: Request) -> User | None:
    """The console user of the session cookie (the session middleware's), if any."""
    user = getattr(request.state, "user", None)
    return user if isinstance(user, User) and not user.disabled else None


async def reader(request: Request, ctx: Context, _: Credentials) -> Caller:
    """Dependency of the reads: anonymous, with a valid token or with a session."""
    header = request.headers.get("authorization")
    if header is None and (user := session_user(request)) is not None:
        return Caller(ctx.view, ctx.commands, user.name, user)
    actor = authenticate(ctx, header, required=False)
    return Caller(ctx.view, ctx.commands, actor,
                  token_user(actor) if actor is not None else None)


async def writer(request: Request, ctx: Context, _: Credentials) -> Caller:
    """Dependency of the writes: a valid token or a session (whose CSRF header the
    session middleware has checked) is required."""
    header = request.headers.get("authorization")
    if header is None and (user := session_user(request)) is not None:
        return Caller(ctx.view, ctx.commands, user.name, user)
    actor = authenticate(ctx, header, required=True)
    assert actor is not None
    return Caller(ctx.view, ctx.commands, actor, token_user(actor))


Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
