"""``monitord users add|list|passwd|disable|enable``: the console's users, on the server.

Passwords are read with ``--password-stdin`` (one line) or, on a terminal, asked twice
without echo; they are never printed.  A new password or ``disable`` ends every session
of the user at once.  The changes go through the application commands
(:class:`monitord.app.commands.AppCommands`: the console's users page uses the same), so
the rules are the same: e.g. the last enabled admin cannot be disabled (``passwd`` ends
their sessions instead).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from monitord.domain.access import ROLE_TH, ROLES
from monitord.domain.passwords import password_problem
from monitord.storage import Storage


class UsageError(Exception):
    """Exit 2 with this message."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="console users: add/list/passwd/disable/enable")
    u_sub = p.add_subparsers(dest="action", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--db", type=Path, metavar="PATH")

    add = u_sub.add_parser("add", help="a new user (password asked twice, or --password-stdin)")
    add.add_argument("name", metavar="NAME", help="sign-in name: lower-case letters, digits, "
                     "_ . @ -")
    add.add_argument("--role", required=True, metavar="ROLE",
                     help="one of " + ", ".join(ROLES))
    add.add_argument("--school", action="append", default=[], metavar="SMIS",
                     help="a school of a 'school' user (repeatable)")
    add.add_argument("--display-name", default="", metavar="N",
                     help="the name shown in the console and in ticket history")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    common(add)
    lst = u_sub.add_parser("list", help="every user with role and schools")
    lst.add_argument("--format", choices=["text", "json"], default="text")
    common(lst)
    pw = u_sub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    pw.add_argument("name", metavar="NAME")
    pw.add_argument("--password-stdin", action="store_true")
    common(pw)
    for action, text in (("disable", "a user can no longer sign in (ends their sessions)"),
                         ("enable", "a disabled user may sign in again")):
        q = u_sub.add_parser(action, help=text)
        q.add_argument("name", metavar="NAME")
        common(q)
    p.set_defaults(func=cmd_users)


def read_password(from_stdin: bool, name: str) -> str:
    """The new password (checked against the rules); UsageError otherwise."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    elif sys.stdin.isatty():
        password = getpass.getpass("รหัสผ่านใหม่ / new password: ")
        again = getpass.getpass("ยืนยันรหัสผ่าน / repeat it: ")
        if password != again:
            raise UsageError("the two passwords differ; nothing changed")
    else:
        raise UsageError("standard input is not a terminal: give the password on standard "
                         "input with --password-stdin")
    problem = password_problem(password, name)
    if problem is not None:
        raise UsageError(problem)
    return password


def cmd_users(args: argparse.Namespace) -> int:
    from monitord.cli import with_store

    try:
        password = None
        if args.action == "add":
            _check_add(args)
        if args.action in ("add", "passwd"):
            password = read_password(args.password_stdin, args.name)
    except UsageError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2

    async def action(store: Storage) -> int:
        from monitord.http.ports import CommandError

        try:
            return await _users_action(store, args, password)
        except CommandError as exc:
            print(f"monitord: {_cli_text(exc)}", file=sys.stderr)
            return 2

    return with_store(args.db, args.action == "list", action)


#: the command's field names as the command line spells them
_FLAGS = {"name": "NAME", "role": "--role", "schools": "--school",
          "display_name": "--display-name", "password": "password"}


def _cli_text(exc: Exception) -> str:
    from monitord.http.ports import Invalid

    if isinstance(exc, Invalid) and exc.problems:
        return "; ".join(f"{_FLAGS.get(str(where[0]), str(where[0]))}: {msg}"
                         for where, msg, _ in exc.problems)
    return str(exc)


def _check_add(args: argparse.Namespace) -> None:
    """The checks that need no database, before the password is asked for (the command
    makes them again)."""
    from monitord.app.commands import clean_schools, user_problems

    problems = user_problems(args.name, args.role, clean_schools(args.school),
                             args.display_name.strip(), None)
    if problems:
        raise UsageError("; ".join(f"{_FLAGS.get(str(where[0]), str(where[0]))}: {msg}"
                                   for where, msg, _ in problems))


def _actor() -> str:
    """Who changes users from the shell (``shell:`` + the login name): never a console
    user's name, so an admin's own-account rules do not apply to the server's operator."""
    from monitord.cli import _default_actor

    return f"shell:{_default_actor()}"


async def _users_action(store: Storage, args: argparse.Namespace, password: str | None
                        ) -> int:
    from monitord.app.commands import AppCommands

    if args.action == "list":
        users = await store.list_users()
        if args.format == "json":
            print(json.dumps([{"name": u.name, "display_name": u.display_name,
                               "role": str(u.role), "role_th": ROLE_TH[u.role],
                               "schools": list(u.schools), "disabled": u.disabled}
                              for u in users], ensure_ascii=False, indent=1))
            return 0
        for u in users:
            state = "disabled" if u.disabled else "enabled"
            print(f"{u.name:<24} {u.role:<10} {state:<8} {','.join(u.schools) or '-':<20} "
                  f"{u.display_name}")
        return 0
    commands = AppCommands.on_store(store)
    if args.action == "add":
        assert password is not None
        await commands.add_user(_actor(), args.name, args.role, args.school,
                                args.display_name, password)
        print(f"user {args.name} added ({args.role})")
        return 0
    if args.action == "passwd":
        assert password is not None
        await commands.set_password(_actor(), args.name, password)
        print(f"password of {args.name} changed; their sessions have ended")
        return 0
    disabled = args.action == "disable"
    await commands.set_disabled(_actor(), args.name, disabled)
    print(f"user {args.name} " + ("disabled; their sessions have ended" if disabled
                                  else "enabled"))
    return 0
