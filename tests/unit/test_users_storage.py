"""Console users in storage: users, sessions (idle and absolute expiry, sign out
everywhere, password change and disabling end sessions), sign-in failures; passwords
(Argon2 through pwdlib, the rules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitord.domain.access import Role
from monitord.domain.passwords import (
    dummy_verify,
    hash_password,
    name_problem,
    password_problem,
    verify_password,
)
from monitord.storage import Storage
from monitord.storage.users import UserExists

T0 = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "m.db")
    yield s
    await s.close()


def test_passwords_argon2_and_rules() -> None:
    h = hash_password("correct horse battery")
    assert h.startswith("$argon2id$")
    assert verify_password("correct horse battery", h) == (True, None)
    assert verify_password("wrong horse battery", h)[0] is False
    assert verify_password("x", "not a hash") == (False, None)
    dummy_verify("anything")
    assert "10" in (password_problem("short") or "")
    assert password_problem("aaaaaaaaaaaa") is not None  # too few different characters
    assert password_problem("somchai.k12", "somchai.k12") is not None
    assert password_problem("กขค-ตัวอย่าง-2569") is None
    assert name_problem("somchai") is None and name_problem("Somchai") is not None
    assert name_problem("") is not None and name_problem("a b") is not None


async def test_users(store: Storage) -> None:
    assert not await store.has_enabled_admin()
    admin = await store.add_user("admin", Role.ADMIN, "h1", now=T0)
    assert admin.id > 0 and await store.has_enabled_admin()
    with pytest.raises(UserExists):
        await store.add_user("ADMIN", Role.OFFICER, "h2", now=T0)
    school = await store.add_user("kru", Role.SCHOOL, "h3", schools=["62020001", "62020002"],
                                  display_name="ครูสมศรี", now=T0)
    got = await store.get_user("kru")
    assert got == school and got is not None and got.schools == ("62020001", "62020002")
    assert got.label == "ครูสมศรี"
    assert await store.get_user("nobody") is None
    secret = await store.user_secret("kru")
    assert secret is not None and secret[1] == "h3"
    assert [u.name for u in await store.list_users()] == ["admin", "kru"]
    assert await store.set_role("kru", Role.VIEWER, [], now=T0)
    assert (await store.get_user("kru")).role is Role.VIEWER  # type: ignore[union-attr]
    assert await store.set_disabled("admin", True, now=T0)
    assert not await store.has_enabled_admin()
    assert (await store.get_user("admin")).disabled  # type: ignore[union-attr]
    assert await store.set_disabled("admin", False, now=T0)
    assert not await store.set_password("nobody", "h", now=T0)


async def test_sessions_expire_and_end(store: Storage) -> None:
    user = await store.add_user("off", Role.OFFICER, "h", now=T0)
    await store.create_session("s1", user.id, "csrf1", address="127.0.0.1", now=T0)
    await store.create_session("s2", user.id, "csrf2", now=T0)
    limits = {"idle": 2 * HOUR, "absolute": 12 * HOUR}
    found = await store.session_user("s1", now=T0 + 10, **limits)
    assert found is not None and found[0].name == "off" and found[1] == "csrf1"
    assert await store.session_user("nope", now=T0, **limits) is None
    # used every hour: alive until the absolute limit
    for h in range(1, 12):
        assert await store.session_user("s1", now=T0 + h * HOUR, **limits) is not None
    assert await store.session_user("s1", now=T0 + 12 * HOUR + 1, **limits) is None
    # s2 idle for more than 2 h: gone (and stays gone)
    assert await store.session_user("s2", now=T0 + 2 * HOUR + 1, **limits) is None
    assert await store.session_user("s2", now=T0 + 10, **limits) is None
    # sign out everywhere
    for sid in ("a", "b"):
        await store.create_session(sid, user.id, "c", now=T0)
    assert await store.delete_user_sessions(user.id) == 2
    assert await store.session_user("a", now=T0 + 1, **limits) is None
    # a new password and disabling end the sessions
    await store.create_session("c", user.id, "c", now=T0)
    assert await store.set_password("off", "h2", now=T0 + 5)
    assert await store.session_user("c", now=T0 + 6, **limits) is None
    await store.create_session("d", user.id, "c", now=T0 + 10)
    await store.set_disabled("off", True, now=T0 + 20)
    assert await store.session_user("d", now=T0 + 21, **limits) is None
    await store.set_disabled("off", False, now=T0 + 30)
    await store.create_session("e", user.id, "c", now=T0 + 40)
    assert await store.session_user("e", now=T0 + 41, **limits) is not None
    await store.delete_session("e")
    assert await store.session_user("e", now=T0 + 42, **limits) is None
    await store.create_session("f", user.id, "c", now=T0)
    assert await store.prune_sessions(now=T0 + 3 * HOUR, **limits) == 1


async def test_signin_failures(store: Storage) -> None:
    for i in range(6):
        await store.record_signin_failure("Somchai", "10.0.0.1", now=T0 + i)
    await store.record_signin_failure("other", "10.0.0.1", now=T0 + 10)
    times = await store.signin_failure_times(name="somchai", since=T0, limit=5)
    assert times == [T0 + 5, T0 + 4, T0 + 3, T0 + 2, T0 + 1]
    assert len(await store.signin_failure_times(name="SOMCHAI", since=T0 + 3, limit=20)) == 3
    assert len(await store.signin_failure_times(address="10.0.0.1", since=T0, limit=20)) == 7
    assert await store.count_signin_failures(name="somchai", since=T0 + 1) == 5
    assert await store.count_signin_failures(address="10.0.0.1", since=T0) == 7
    await store.clear_signin_failures("somchai")
    assert await store.signin_failure_times(name="somchai", since=0, limit=20) == []
    assert len(await store.signin_failure_times(address="10.0.0.1", since=0, limit=20)) == 1
    assert await store.prune_signin_failures(T0 + 11) == 1
