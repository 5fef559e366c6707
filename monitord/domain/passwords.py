"""Passwords of console users: Argon2id through pwdlib, and the rules a new one must meet.

- :func:`hash_password` → an Argon2id PHC string (``$argon2id$v=19$m=…``) for
  ``app_user.password_hash``;
- :func:`verify_password` → ``(ok, new_hash)``: ``new_hash`` is set when the stored hash
  uses older parameters and should be replaced (rehash on sign-in);
- :func:`dummy_verify`: the same work for an unknown or disabled user, so the time a
  sign-in takes does not tell whether the name exists;
- :func:`password_problem`: why a new password is refused (Thai and English), or None;
- :func:`name_problem`: why a user name is refused, or None.

Hashing takes tens of milliseconds of CPU on purpose: async callers run these functions
in a thread.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_LENGTH = 10
MAX_LENGTH = 1024  # longer ones are refused: hashing megabytes is a cheap DoS
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")

_hasher = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str) -> tuple[bool, str | None]:
    """``(ok, new_hash)``; a hash that cannot be read is simply not a match."""
    if len(password) > MAX_LENGTH:
        dummy_verify(password[:MAX_LENGTH])
        return False, None
    try:
        return _hasher.verify_and_update(password, stored_hash)
    except (PwdlibError, ValueError, TypeError):
        return False, None


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def dummy_verify(password: str) -> None:
    """Spend the time of one verification (unknown user: no timing difference)."""
    with contextlib.suppress(PwdlibError, ValueError, TypeError):
        _hasher.verify(password[:MAX_LENGTH], _dummy_hash())


def password_problem(password: str, name: str = "") -> str | None:
    """Why ``password`` may not be used (``"ไทย / English"``), or None when it may."""
    if len(password) < MIN_LENGTH:
        return (f"รหัสผ่านต้องยาวอย่างน้อย {MIN_LENGTH} ตัวอักษร (นี่ยาว {len(password)}) / "
                f"the password must be at least {MIN_LENGTH} characters long "
                f"(this one has {len(password)})")
    if len(password) > MAX_LENGTH:
        return (f"รหัสผ่านยาวเกิน {MAX_LENGTH} ตัวอักษร / the password is longer than "
                f"{MAX_LENGTH} characters")
    if not password.strip() or len(set(password)) < 3:
        return ("รหัสผ่านต้องมีตัวอักษรที่ต่างกันอย่างน้อย 3 ตัว / the password must "
                "use at least 3 different characters")
    if name and password.strip().lower() == name.lower():
        return "รหัสผ่านต้องไม่ซ้ำกับชื่อผู้ใช้ / the password must not be the user name"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a user name (lower-case letters, digits, ``_ . @ -``)."""
    if not NAME_PATTERN.fullmatch(name):
        return ("ชื่อผู้ใช้ต้องเป็นอักษรอังกฤษตัวเล็ก ตัวเลข หรือ _ . @ - ไม่เกิน 64 ตัว / "
                "a user name is 1-64 lower-case letters, digits or _ . @ - "
                f"(got {name[:70]!r})")
    return None
