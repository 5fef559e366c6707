"""What every console page and action asks first: who is signed in, may they do this.

The console's session middleware (:mod:`monitord.http.console.auth`) puts the signed-in
:class:`~monitord.domain.access.User` (or None) in ``request.state.user`` and the
session's CSRF token in ``request.state.csrf`` (every form carries it as the hidden
field ``csrf_token``; scripts send it as the ``X-CSRF-Token`` header).  Pages call
:func:`require`; a visitor who is not signed in is sent to the sign-in page, a user
without the right gets 403.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from monitord.domain.access import Perm, User, can
from monitord.http.server import error_page

SIGNIN_PATH = "/console/signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """The page needs a signed-in user (→ 303 to the sign-in page)."""


class Forbidden(Exception):
    """The signed-in user may not see this or do this (→ 403)."""


class TooLarge(Exception):
    """A form post larger than the console accepts (→ 413)."""


def user_of(request: Request) -> User | None:
    user = getattr(request.state, "user", None)
    return user if isinstance(user, User) and not user.disabled else None


def csrf_of(request: Request) -> str:
    token = getattr(request.state, "csrf", "")
    return token if isinstance(token, str) else ""


def require(request: Request, perm: Perm | None = None) -> User:
    """The signed-in user, who must hold ``perm`` when given."""
    user = user_of(request)
    if user is None:
        raise SignInRequired()
    if perm is not None and not can(user, perm):
        raise Forbidden()
    return user


def lang_of(request: Request) -> str:
    """``th`` unless ``?lang=en`` or the ``lang`` cookie says ``en``."""
    lang = request.query_params.get("lang") or request.cookies.get("lang", "th")
    return "en" if lang == "en" else "th"


async def sign_in_required(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{SIGNIN_PATH}?next={quote(target, safe='')}", status_code=303)


async def forbidden(_: Request, __: Exception) -> Response:
    return error_page(403, "คุณไม่มีสิทธิ์เข้าถึงหน้านี้หรือทำรายการนี้",
                      "you do not have the right to see this or do this")


async def too_large(_: Request, __: Exception) -> Response:
    return error_page(413, "ข้อมูลที่ส่งมามีขนาดใหญ่เกินไป", "form too large")

