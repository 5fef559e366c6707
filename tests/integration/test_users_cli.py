"""``monitord users …`` as a real process on a real database, and a real daemon that
warns when no admin exists and signs a user in (its own session connection, closed on
stop)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.daemon_lab import MONITORD, ROOT, DaemonProcess, base_config, cli, wait_for, write_config

PASSWORD = "ครูใหญ่-รหัส-2569"


def users(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with ``stdin`` piped in (never a terminal)."""
    return subprocess.run([*MONITORD, "users", *args], input=stdin if stdin is not None
                          else "", capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_users_add_list_passwd_disable(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    r = users("add", "boss", "--role", "admin", "--db", db, "--password-stdin",
              stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    r = users("add", "kru", "--role", "school", "--school", "62020001",
              "--display-name", "ครูสมศรี", "--db", db, "--password-stdin", stdin=PASSWORD)
    assert r.returncode == 0, r.stderr
    failures = {
        "bad role": (("add", "x1", "--role", "king"), PASSWORD, "unknown role"),
        "school without --school": (("add", "x2", "--role", "school"), PASSWORD,
                                    "--school"),
        "duplicate": (("add", "BOSS".lower(), "--role", "officer"), PASSWORD,
                      "already exists"),
        "weak password": (("add", "x3", "--role", "officer"), "short12", "10"),
        "upper-case name": (("add", "Somchai", "--role", "officer"), PASSWORD, "lower-case"),
    }
    for what, (args, password, says) in failures.items():
        r = users(*args, "--db", db, "--password-stdin", stdin=password + "\n")
        assert r.returncode == 2, what
        assert says in r.stderr, (what, r.stderr)
        assert password not in r.stdout + r.stderr, what
    # without --password-stdin and without a terminal: told what to do, exit 2
    r = users("add", "x4", "--role", "officer", "--db", db, stdin=PASSWORD + "\n")
    assert r.returncode == 2 and "--password-stdin" in r.stderr
    listed = json.loads(users("list", "--db", db, "--format", "json").stdout)
    assert [(u["name"], u["role"], u["schools"], u["disabled"]) for u in listed] == [
        ("boss", "admin", [], False), ("kru", "school", ["62020001"], False)]
    assert listed[1]["display_name"] == "ครูสมศรี"
    text = users("list", "--db", db).stdout
    assert re.search(r"^kru\s+school\s+enabled\s+62020001\s+ครูสมศรี$", text, re.M), text
    r = users("passwd", "kru", "--db", db, "--password-stdin", stdin="another-pass-456\n")
    assert r.returncode == 0 and "another-pass-456" not in r.stdout + r.stderr
    assert users("passwd", "nobody", "--db", db, "--password-stdin",
                 stdin="another-pass-456\n").returncode == 2
    assert users("disable", "kru", "--db", db).returncode == 0
    assert json.loads(users("list", "--db", db, "--format", "json").stdout)[1]["disabled"]
    assert users("enable", "kru", "--db", db).returncode == 0
    assert users("disable", "nobody", "--db", db).returncode == 2
    r = users("disable", "boss", "--db", db)  # the console's rules: an admin stays
    assert r.returncode == 2 and "last enabled admin" in r.stderr
    assert cli("db", "check", "--db", db).returncode == 0


def test_daemon_warns_without_admin_and_signs_in(
        tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "m.yaml", base_config([]))
    db = tmp_path / "monitord.db"
    d = daemon_factory("run", "--config", str(config), db=db)
    d.wait_ready()
    hint = f"monitord users add NAME --role admin --db {db}"
    wait_for(lambda: hint in d.log(), 10, "the no-admin warning")
    assert d.stop() == 0
    r = users("add", "boss", "--role", "admin", "--db", str(db), "--password-stdin",
              stdin=PASSWORD)
    assert r.returncode == 0, r.stderr
    d = daemon_factory("run", "--config", str(config), db=db)
    d.wait_ready()
    with httpx.Client(base_url=d.url, timeout=10) as c:
        form = c.get("/console/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        r = c.post("/console/signin", data={"csrf_token": token.group(1), "name": "boss",
                                            "password": PASSWORD, "next": "/console/"})
        assert r.status_code == 303, r.text
        assert c.get("/api/v1/tickets").json()["count"] == 0
    assert (tmp_path / "session-secret").stat().st_mode & 0o777 == 0o600
    assert d.stop() == 0
    assert "no enabled admin" not in d.log()
