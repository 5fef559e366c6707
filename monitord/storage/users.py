"""Console users, their web sessions and failed sign-ins (tables ``app_user``,
``web_session``, ``signin_failure``, migration of issue 14).

- Users: names are unique without regard to case; ``schools`` is a JSON list; the
  password is an Argon2 PHC string (:mod:`monitord.domain.passwords` makes it).  Changing
  the password or disabling a user ends all their sessions (``sessions_valid_after`` is
  moved too, so a session created concurrently cannot survive).
- Sessions: the row's ``id`` is the SHA-256 (hex) of the random token in the cookie, so a
  copy of the database does not hold usable cookies.  A session ends after ``idle``
  seconds without a request or ``absolute`` seconds after sign-in, whichever comes first;
  ``last_seen`` is written at most once a minute.
- Sign-in failures: one row per failed attempt (lower-cased name, address, time); the web
  layer counts them per name and per address in a window to throttle guessing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from monitord.domain.access import Role, User
from monitord.storage.tx import transaction

#: ``last_seen`` is written at most this often (seconds) per session.
TOUCH_EVERY = 60.0


class UserExists(ValueError):
    """A user of that name (in any case) already exists."""


def _user(row: Any) -> User:
    try:
        schools = tuple(str(s) for s in json.loads(row["schools"] or "[]"))
    except (ValueError, TypeError):
        schools = ()
    return User(int(row["id"]), str(row["name"]), Role(row["role"]), schools,
                bool(row["disabled"]), str(row["display_name"] or ""))


async def add_user(db: aiosqlite.Connection, name: str, role: Role, password_hash: str, *,
                   schools: Sequence[str] = (), display_name: str = "",
                   now: float) -> User:
    """Store a new user; :class:`UserExists` when the name is taken."""
    try:
        cur = await db.execute(
            "INSERT INTO app_user (name, display_name, role, schools, password_hash,"
            " disabled, created_at, updated_at) VALUES (?,?,?,?,?,0,?,?)",
            (name, display_name, str(role), json.dumps(list(schools)), password_hash,
             now, now))
    except sqlite3.IntegrityError:
        raise UserExists(f"a user named {name!r} already exists") from None
    return User(int(cur.lastrowid or 0), name, role, tuple(schools), False, display_name)


async def get_user(db: aiosqlite.Connection, name: str) -> User | None:
    async with db.execute("SELECT * FROM app_user WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    return _user(row) if row is not None else None


async def user_secret(db: aiosqlite.Connection, name: str) -> tuple[User, str] | None:
    """The user and their password hash (for signing in)."""
    async with db.execute("SELECT * FROM app_user WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    return (_user(row), str(row["password_hash"])) if row is not None else None


async def list_users(db: aiosqlite.Connection) -> list[User]:
    async with db.execute("SELECT * FROM app_user ORDER BY name") as cur:
        return [_user(r) for r in await cur.fetchall()]


async def has_enabled_admin(db: aiosqlite.Connection) -> bool:
    async with db.execute("SELECT 1 FROM app_user WHERE role = ? AND disabled = 0 LIMIT 1",
                          (str(Role.ADMIN),)) as cur:
        return await cur.fetchone() is not None


async def set_password(db: aiosqlite.Connection, name: str, password_hash: str, *,
                       now: float, end_sessions: bool = True) -> bool:
    """Replace the password hash; ends every session of the user unless told not to
    (a rehash on sign-in keeps them).  False when there is no such user."""
    async with transaction(db):
        if end_sessions:
            cur = await db.execute(
                "UPDATE app_user SET password_hash = ?, updated_at = ?,"
                " sessions_valid_after = ? WHERE name = ?", (password_hash, now, now, name))
            await _end_sessions_of(db, name)
        else:
            cur = await db.execute(
                "UPDATE app_user SET password_hash = ?, updated_at = ? WHERE name = ?",
                (password_hash, now, name))
        return cur.rowcount > 0


async def set_disabled(db: aiosqlite.Connection, name: str, disabled: bool, *,
                       now: float) -> bool:
    """Disable (ending every session) or enable a user; False when there is none."""
    async with transaction(db):
        cur = await db.execute(
            "UPDATE app_user SET disabled = ?, updated_at = ?,"
            " sessions_valid_after = CASE WHEN ? THEN ? ELSE sessions_valid_after END"
            " WHERE name = ?", (int(disabled), now, int(disabled), now, name))
        if disabled:
            await _end_sessions_of(db, name)
        return cur.rowcount > 0


async def set_role(db: aiosqlite.Connection, name: str, role: Role, schools: Sequence[str],
                   *, now: float) -> bool:
    cur = await db.execute(
        "UPDATE app_user SET role = ?, schools = ?, updated_at = ? WHERE name = ?",
        (str(role), json.dumps(list(schools)), now, name))
    return cur.rowcount > 0


async def _end_sessions_of(db: aiosqlite.Connection, name: str) -> None:
    await db.execute("DELETE FROM web_session WHERE user_id IN"
                     " (SELECT id FROM app_user WHERE name = ?)", (name,))


# -- sessions ------------------------------------------------------------------------------

async def create_session(db: aiosqlite.Connection, session_id: str, user_id: int, csrf: str,
                         *, address: str = "", user_agent: str = "", now: float) -> None:
    """``session_id``: the SHA-256 hex of the cookie's token."""
    await db.execute(
        "INSERT INTO web_session (id, user_id, created_at, last_seen, csrf, address,"
        " user_agent) VALUES (?,?,?,?,?,?,?)",
        (session_id, user_id, now, now, csrf, address[:100], user_agent[:300]))


async def session_user(db: aiosqlite.Connection, session_id: str, *, now: float,
                       idle: float, absolute: float) -> tuple[User, str] | None:
    """The session's user and CSRF token; None (and the row deleted) when the session is
    unknown, idle for longer than ``idle``, older than ``absolute``, or its user is
    disabled or changed password since.  Touches ``last_seen`` (at most once a minute)."""
    async with db.execute(
            "SELECT s.created_at AS s_created, s.last_seen, s.csrf, u.*"
            " FROM web_session s JOIN app_user u ON u.id = s.user_id WHERE s.id = ?",
            (session_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    created, last_seen = float(row["s_created"]), float(row["last_seen"])
    if (now - last_seen > idle or now - created > absolute or row["disabled"]
            or created < float(row["sessions_valid_after"])):
        await delete_session(db, session_id)
        return None
    if now - last_seen >= TOUCH_EVERY:
        await db.execute("UPDATE web_session SET last_seen = ? WHERE id = ?",
                         (now, session_id))
    return _user(row), str(row["csrf"])


async def delete_session(db: aiosqlite.Connection, session_id: str) -> None:
    await db.execute("DELETE FROM web_session WHERE id = ?", (session_id,))


async def delete_user_sessions(db: aiosqlite.Connection, user_id: int) -> int:
    """Sign out everywhere: every session of the user; returns how many ended."""
    cur = await db.execute("DELETE FROM web_session WHERE user_id = ?", (user_id,))
    return cur.rowcount


async def prune_sessions(db: aiosqlite.Connection, *, now: float, idle: float,
                         absolute: float) -> int:
    cur = await db.execute("DELETE FROM web_session WHERE last_seen < ? OR created_at < ?",
                           (now - idle, now - absolute))
    return cur.rowcount


# -- failed sign-ins -------------------------------------------------------------------------

async def record_failure(db: aiosqlite.Connection, name: str, address: str, *,
                         now: float) -> None:
    await db.execute("INSERT INTO signin_failure (name, address, ts) VALUES (?,?,?)",
                     (name.lower()[:100], address[:100], now))


def _failure_filter(name: str | None, address: str | None) -> tuple[str, str]:
    """The WHERE clause and key of a name's (or else an address's) failed sign-ins."""
    if name is not None:
        return "name = ?", name.lower()[:100]
    if address is not None:
        return "address = ?", address[:100]
    raise ValueError("name or address")


async def failure_times(db: aiosqlite.Connection, *, since: float, limit: int,
                        name: str | None = None, address: str | None = None
                        ) -> list[float]:
    """The times of the newest ``limit`` failures since ``since`` for ``name`` (or for
    ``address``), newest first: their number is the count (up to ``limit``), and the
    ``limit``-th one tells when the oldest of them leaves the window."""
    sql, key = _failure_filter(name, address)
    async with db.execute(f"SELECT ts FROM signin_failure WHERE {sql} AND ts >= ?"
                          " ORDER BY ts DESC LIMIT ?", (key, since, max(limit, 0))) as cur:
        return [float(r[0]) for r in await cur.fetchall()]


async def count_failures(db: aiosqlite.Connection, *, since: float, name: str | None = None,
                         address: str | None = None) -> int:
    """How many sign-ins failed for ``name`` (or from ``address``) since ``since``."""
    sql, key = _failure_filter(name, address)
    async with db.execute(f"SELECT count(*) FROM signin_failure WHERE {sql} AND ts >= ?",
                          (key, since)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def clear_failures(db: aiosqlite.Connection, name: str) -> None:
    """After a successful sign-in: the name's failures are forgotten (not the address's)."""
    await db.execute("DELETE FROM signin_failure WHERE name = ?", (name.lower()[:100],))


async def prune_failures(db: aiosqlite.Connection, before: float) -> int:
    cur = await db.execute("DELETE FROM signin_failure WHERE ts < ?", (before,))
    return cur.rowcount
