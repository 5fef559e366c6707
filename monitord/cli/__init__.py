"""Command line: ``monitord run|check|demo|status|tickets|maintenance|notify|report|db|
import|export``.

Exit codes: 0 success, 1 runtime failure (port in use, database unreadable), 2 invalid
configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitord import __version__
from monitord.domain.tickets import ORIGIN_TH, SOURCE_TH, TicketStatus
from monitord.storage import (
    DatabaseError,
    Storage,
    StorageError,
    backup_database,
    check_database,
    default_data_dir,
)
from monitord.thaidate import check_sane, from_timestamp

if TYPE_CHECKING:
    from monitord.app.commands import AppCommands

BANGKOK = ZoneInfo("Asia/Bangkok")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _self_command() -> str:
    """How the user started us, so printed hints can be pasted as they are."""
    argv0 = sys.argv[0]
    return argv0 if argv0.endswith("monitord") else "monitord"


def with_store(db: Path | None, readonly: bool,
               action: Callable[[Storage], Awaitable[int]]) -> int:
    """Open the database (``--db`` or the default), run ``action``, close it.

    Exit codes: 1 when the database cannot be opened, 2 for a request that cannot be
    applied (unknown ticket, bad transition), else what ``action`` returns.
    """
    from monitord.domain.tickets import TicketError

    path = _db_path(db)

    async def run() -> int:
        try:
            store = await Storage.open(path, readonly=readonly)
        except (StorageError, OSError, DatabaseError) as exc:
            print(f"monitord: cannot open database {path}: {exc}", file=sys.stderr)
            return 1
        try:
            return await action(store)
        except TicketError as exc:
            print(f"monitord: {exc}", file=sys.stderr)
            return 2
        except DatabaseError as exc:  # damaged, or not a monitord database
            print(f"monitord: cannot read database {path}: {exc} (see `monitord db check`)",
                  file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(run())


def _parse_when(text: str) -> float:
    """``2026-11-24 09:00`` (Bangkok time unless an offset is given) → Unix time; dates
    outside 2000-01-01..2100-12-31 are refused (argparse: exit 2 with the message)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date and time such as 2026-11-24 09:00, got {text[:64]!r}") from None
    try:
        check_sane(when)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=BANGKOK)
    return when.timestamp()


def _fmt_ts(ts: float | None) -> str:
    """A stored time in Bangkok; "?" for one no calendar can hold (old or corrupt data)."""
    if ts is None:
        return "-"
    when = from_timestamp(ts)
    return "?" if when is None else when.strftime("%Y-%m-%d %H:%M")


def cmd_tickets(args: argparse.Namespace) -> int:
    async def action(store: Storage) -> int:
        return await _tickets_action(store, args)

    return with_store(args.db, args.action in ("list", "show"), action)


async def _tickets_action(store: Storage, args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = await store.list_tickets(args.status, include_closed=args.all)
        if args.format == "json":
            print(json.dumps(rows, ensure_ascii=False, indent=1))
            return 0
        for t in rows:
            flags = ORIGIN_TH.get(t["origin"], t["origin"])
            if t["acknowledged_at"] is not None:
                flags += ",รับทราบ"
            assignee = f"  → {t['assigned_to']}" if t["assigned_to"] else ""
            print(f"{t['id']:>5}  {t['status_th']:<12} {_fmt_ts(t['opened_at'])}  "
                  f"{t['root']:<24} {flags:<16} {t['served_unit']}{assignee}")
        return 0
    if args.action == "show":
        t = await store.get_ticket(args.id)
        if args.format == "json":
            print(json.dumps(t, ensure_ascii=False, indent=1))
            return 0
        print(f"ใบแจ้งซ่อม {t['id']}  สถานะ {t['status_th']} ({t['status']})  "
              f"ที่มา: {ORIGIN_TH.get(t['origin'], t['origin'])}")
        print(f"  ที่ให้บริการ: {t['served_unit']}   ต้นเหตุ: {t['root']}")
        if t["origin"] == "manual":
            source = SOURCE_TH.get(t["report_source"] or "", t["report_source"] or "-")
            print(f"  รับแจ้งทาง: {source}   ผู้แจ้ง: {t['reporter_name']}"
                  + (f" ({t['reporter_position']})" if t["reporter_position"] else "")
                  + (f"   โทร {t['reporter_phone']}" if t["reporter_phone"] else "")
                  + (f"   ผู้รับแจ้ง: {t['created_by']}" if t["created_by"] else ""))
            print(f"  ปัญหา: {t['problem']}")
        print(f"  มอบหมายให้: {t['assigned_to'] or '-'}   รับทราบ: "
              + (f"{_fmt_ts(t['acknowledged_at'])} โดย {t['acknowledged_by']}"
                 if t["acknowledged_at"] is not None else "-"))
        print(f"  วันที่รับแจ้ง: {_fmt_ts(t['opened_at'])}   ขัดข้องตั้งแต่: "
              f"{_fmt_ts(t['down_since'])}")
        if t["scheduled_for"]:
            print(f"  นัดหมาย: {_fmt_ts(t['scheduled_for'])}")
        print(f"  ข้อสมมุติฐาน: {t['hypothesis']}")
        for label, key in (("สาเหตุ", "cause"), ("การแก้ไข", "fix"), ("สรุปผล", "summary"),
                           ("ผู้ซ่อม", "repairer_name")):
            if t[key]:
                print(f"  {label}: {t[key]}")
        print("  อุปกรณ์: " + ", ".join(e["device_id"] for e in t["equipment"]))
        for h in t["history"]:
            print(f"  {_fmt_ts(h['ts'])}  {h['status']:<10} {h['actor']:<16} {h['note']}")
        return 0
    from monitord.app.commands import AppCommands
    from monitord.http.ports import CommandError

    commands = AppCommands.on_store(store)
    actor = args.by
    try:
        if args.action == "schedule":
            t = await commands.schedule_ticket(args.id, actor, args.at, note=args.note)
        elif args.action == "ack":
            t = await commands.acknowledge_ticket(args.id, actor, note=args.note)
            print(f"ticket {t['id']}: acknowledged by {t['acknowledged_by']}")
            return 0
        elif args.action == "assign":
            t = await commands.assign_ticket(args.id, actor, args.to or None, note=args.note)
            print(f"ticket {t['id']}: assigned to {t['assigned_to'] or 'nobody'}")
            return 0
        elif args.action == "close":
            t = await commands.close_ticket(args.id, actor, note=args.note)
        else:  # update
            fields = {"cause": args.cause, "fix": args.fix, "summary": args.summary,
                      "event_text": args.event, "repairer_name": args.repairer,
                      "repairer_position": args.repairer_position,
                      "repair_started": args.started, "repair_finished": args.finished}
            t = await commands.update_ticket(args.id, actor, status=args.status,
                                             note=args.note, fields=fields)
    except CommandError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    print(f"ticket {t['id']}: {t['status']} ({t['status_th']})")
    return 0


def cmd_maintenance(args: argparse.Namespace) -> int:
    return with_store(args.db, args.action == "list",
                      lambda store: _maintenance_action(store, args))


async def _maintenance_action(store: Storage, args: argparse.Namespace) -> int:
    from monitord.app.commands import AppCommands
    from monitord.http.ports import CommandError

    commands = AppCommands.on_store(store)
    try:
        if args.action == "add":
            return await _maintenance_add(commands, args)
        if args.action == "delete":
            await commands.delete_maintenance(args.id, _default_actor())
            print(f"maintenance window {args.id} deleted")
            return 0
    except CommandError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    rows = await store.maintenance(include_past=args.all)
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    for r in rows if args.format == "text" else []:
        scope = ", ".join(r["devices"] + r["schools"] + r["kinds"]) or "ทั้งหมด"
        when = (f"every {','.join(r['weekly']['days'])} {r['weekly']['hours']}"
                if r["weekly"] else f"{_fmt_ts(r['start'])} → {_fmt_ts(r['end'])}")
        print(f"{r['id']:>4}  {when}  {r['name']}  [{scope}]")
    return 0


async def _maintenance_add(commands: AppCommands, args: argparse.Namespace) -> int:
    weekly = None
    if args.weekly:
        if args.start is not None or args.end is not None or not args.hours:
            print("monitord: --weekly takes --hours, not --start/--end", file=sys.stderr)
            return 2
        weekly = (args.weekly.split(","), args.hours)
        when = f"every {args.weekly} {args.hours}"
    elif args.start is None or args.end is None or args.end <= args.start:
        print("monitord: give --start and a later --end (or --weekly and --hours)",
              file=sys.stderr)
        return 2
    else:
        when = f"{_fmt_ts(args.start)} → {_fmt_ts(args.end)}"
    row = await commands.add_maintenance(
        args.name, args.by, start=args.start, end=args.end, weekly=weekly,
        devices=args.device or [], schools=args.school or [], kinds=args.kind or [],
        reason=args.reason)
    print(f"maintenance window {row['id']} added: {args.name} {when}")
    return 0


def _db_path(db: Path | None) -> Path:
    return db or default_data_dir() / "monitord.db"


def cmd_db_check(args: argparse.Namespace) -> int:
    """Integrity and schema of the database: exit 0 sound, 1 damaged (each problem said)."""
    path = _db_path(args.db)
    problems, version = check_database(path)
    for problem in problems:
        print(f"monitord: {path}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: OK (schema {version})")
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    """An online copy of the database (safe while the daemon runs)."""
    path = _db_path(args.db)
    try:
        backup_database(path, Path(args.file))
    except (StorageError, OSError, DatabaseError) as exc:
        print(f"monitord: backup of {path} failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup of {path} written to {args.file}", file=sys.stderr)
    return 0


def cmd_notify_test(args: argparse.Namespace) -> int:
    """Send one test message now; exit 0 when the channel acknowledged it."""
    from monitord.notify import send

    _setup_logging("warning")
    title = "monitord: ทดสอบการแจ้งเตือน"
    body = args.message or "ข้อความทดสอบจาก monitord — ช่องทางนี้ใช้งานได้"
    try:
        ok = asyncio.run(send(args.url, title, body))
    except ValueError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    print("sent" if ok else "NOT sent: the channel did not acknowledge",
          file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _default_actor() -> str:
    """The officer's login name (the one behind sudo when run with sudo)."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "officer"


def build_parser() -> argparse.ArgumentParser:
    from monitord.cli.inventory import register as register_inventory
    from monitord.cli.report import (
        cmd_report_availability,
        cmd_report_daily,
        cmd_report_repair,
    )
    from monitord.cli.run import cmd_check, cmd_demo, cmd_run, cmd_status

    parser = argparse.ArgumentParser(
        prog="monitord", description="Monitoring daemon for an educational service area office."
    )
    parser.add_argument("--version", action="version", version=f"monitord {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def daemon_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--listen", metavar="HOST:PORT",
                       help="HTTP listen address (default from config, 127.0.0.1:9847)")
        p.add_argument("--db", type=Path, metavar="PATH", help="SQLite database path")
        p.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
        p.add_argument("--notify", action="append", default=[], metavar="URL",
                       help="apprise URL that receives every notification (repeatable)")

    p_run = sub.add_parser("run", help="run the daemon")
    p_run.add_argument("--config", required=True, metavar="FILE")
    daemon_opts(p_run)
    p_run.set_defaults(func=cmd_run)

    p_check = sub.add_parser("check", help="validate a config file (exit 0 valid, 2 invalid)")
    p_check.add_argument("--config", required=True, metavar="FILE")
    p_check.set_defaults(func=cmd_check)

    p_demo = sub.add_parser("demo", help="run the daemon against a simulated office on loopback")
    daemon_opts(p_demo)
    p_demo.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the demo writes its config and database")
    p_demo.add_argument("--schools", type=int, default=36, choices=range(1, 301),
                        metavar="N", help="number of schools (1–300, default 36)")
    p_demo.set_defaults(func=cmd_demo)

    p_status = sub.add_parser("status", help="print device states from the database")
    p_status.add_argument("--db", type=Path, metavar="PATH")
    p_status.add_argument("--format", choices=["text", "json"], default="text")
    p_status.add_argument("--state", choices=["unknown", "up", "degraded", "down",
                                              "unreachable", "maintenance"])
    p_status.set_defaults(func=cmd_status)

    p_t = sub.add_parser("tickets", help="repair tickets: list/show/schedule/update/close/"
                                         "ack/assign")
    t_sub = p_t.add_subparsers(dest="action", required=True)

    def t_common(p: argparse.ArgumentParser, with_id: bool = True) -> None:
        p.add_argument("--db", type=Path, metavar="PATH")
        if with_id:
            p.add_argument("id", type=int, metavar="TICKET_ID")

    def t_actor(p: argparse.ArgumentParser) -> None:
        p.add_argument("--by", default=_default_actor(),
                       help="who does this (recorded in the ticket history)")
        p.add_argument("--note", default="", help="note for the ticket history")

    t_list = t_sub.add_parser("list", help="tickets not closed (or --all / --status)")
    t_common(t_list, with_id=False)
    t_list.add_argument("--format", choices=["text", "json"], default="text")
    t_list.add_argument("--status", choices=[str(s) for s in TicketStatus])
    t_list.add_argument("--all", action="store_true", help="include closed tickets")
    t_show = t_sub.add_parser("show", help="one ticket with its history")
    t_common(t_show)
    t_show.add_argument("--format", choices=["text", "json"], default="text")
    t_sched = t_sub.add_parser("schedule", help="set the inspection date/time (นัดหมาย)")
    t_common(t_sched)
    t_sched.add_argument("--at", type=_parse_when, required=True, metavar="'YYYY-MM-DD HH:MM'")
    t_actor(t_sched)
    t_upd = t_sub.add_parser("update", help="fill in cause, fix, repairer, status")
    t_common(t_upd)
    t_upd.add_argument("--status", choices=[str(s) for s in TicketStatus])
    t_upd.add_argument("--cause")
    t_upd.add_argument("--fix")
    t_upd.add_argument("--summary")
    t_upd.add_argument("--event", help="override the observed event/problem text")
    t_upd.add_argument("--repairer")
    t_upd.add_argument("--repairer-position")
    t_upd.add_argument("--started", type=_parse_when, metavar="'YYYY-MM-DD HH:MM'")
    t_upd.add_argument("--finished", type=_parse_when, metavar="'YYYY-MM-DD HH:MM'")
    t_actor(t_upd)
    t_close = t_sub.add_parser("close", help="close a ticket (ปิด)")
    t_common(t_close)
    t_actor(t_close)
    t_ack = t_sub.add_parser("ack", help="acknowledge a ticket (รับทราบ): its reminders and "
                                         "escalation stop")
    t_common(t_ack)
    t_actor(t_ack)
    t_assign = t_sub.add_parser("assign", help="assign a ticket to a user (มอบหมาย); "
                                               "--to '' takes the assignment away")
    t_common(t_assign)
    t_assign.add_argument("--to", required=True, metavar="NAME", help="the assignee")
    t_actor(t_assign)
    p_t.set_defaults(func=cmd_tickets)

    p_m = sub.add_parser("maintenance", help="maintenance windows that suppress tickets")
    m_sub = p_m.add_subparsers(dest="action", required=True)
    m_add = m_sub.add_parser("add", help="add a one-off (--start/--end) or weekly "
                                         "(--weekly/--hours) window")
    m_add.add_argument("--db", type=Path, metavar="PATH")
    m_add.add_argument("--name", required=True)
    m_add.add_argument("--start", type=_parse_when, metavar="'YYYY-MM-DD HH:MM'")
    m_add.add_argument("--end", type=_parse_when, metavar="'YYYY-MM-DD HH:MM'")
    m_add.add_argument("--weekly", metavar="DAYS", help="recurring on these days, e.g. sun or "
                       "mon-fri or sat,sun")
    m_add.add_argument("--hours", metavar="HH:MM-HH:MM", help="with --weekly")
    m_add.add_argument("--device", action="append", help="device id (repeatable)")
    m_add.add_argument("--school", action="append", help="SMIS code (repeatable)")
    m_add.add_argument("--kind", action="append", help="device kind (repeatable)")
    m_add.add_argument("--reason", default="")
    m_add.add_argument("--by", default=_default_actor(), help="who adds the window")
    m_list = m_sub.add_parser("list", help="current and future windows added with the CLI")
    m_list.add_argument("--db", type=Path, metavar="PATH")
    m_list.add_argument("--all", action="store_true", help="include past windows")
    m_list.add_argument("--format", choices=["text", "json"], default="text")
    m_del = m_sub.add_parser("delete", help="delete a window")
    m_del.add_argument("--db", type=Path, metavar="PATH")
    m_del.add_argument("id", type=int)
    p_m.set_defaults(func=cmd_maintenance)

    p_n = sub.add_parser("notify", help="notification channels")
    n_sub = p_n.add_subparsers(dest="action", required=True)
    n_test = n_sub.add_parser("test", help="send a test message to an apprise URL")
    n_test.add_argument("url", metavar="URL")
    n_test.add_argument("--message", default="")
    n_test.set_defaults(func=cmd_notify_test)

    p_db = sub.add_parser("db", help="database maintenance: check, backup")
    db_sub = p_db.add_subparsers(dest="action", required=True)
    db_check = db_sub.add_parser("check", help="integrity and schema check (exit 0 sound, "
                                               "1 damaged)")
    db_check.add_argument("--db", type=Path, metavar="PATH")
    db_check.set_defaults(func=cmd_db_check)
    db_backup = db_sub.add_parser("backup", help="online backup into FILE (SQLite backup API; "
                                                 "safe while the daemon runs)")
    db_backup.add_argument("file", metavar="FILE")
    db_backup.add_argument("--db", type=Path, metavar="PATH")
    db_backup.set_defaults(func=cmd_db_backup)

    p_r = sub.add_parser("report", help="printable reports")
    r_sub = p_r.add_subparsers(dest="report", required=True)
    r_rep = r_sub.add_parser("repair", help="the repair report (รายงานการซ่อมแซมแก้ไข) "
                                            "of a ticket, as PDF or HTML")
    r_rep.add_argument("ticket_id", type=int, metavar="TICKET_ID")
    r_rep.add_argument("--db", type=Path, metavar="PATH")
    r_rep.add_argument("--format", choices=["pdf", "html"], default="pdf")
    r_rep.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")
    r_rep.add_argument("--lang", choices=["th", "en"], default="th")
    r_rep.add_argument("--thai-digits", action="store_true", help="print ๐–๙ digits")
    r_rep.set_defaults(func=cmd_report_repair)

    def report_common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, metavar="FILE",
                       help="the daemon's config (schools, ISPs, districts, schedules)")
        p.add_argument("--db", type=Path, metavar="PATH",
                       help="SQLite database (default: as `monitord run` with this config)")
        p.add_argument("--format", choices=["html", "csv", "pdf"], default="html")
        p.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")
        p.add_argument("--lang", choices=["th", "en"], default="th")

    r_daily = r_sub.add_parser("daily", help="per-school online/offline for one day, with "
                                             "ISP and district (HTML, CSV, PDF)")
    r_daily.add_argument("--date", metavar="YYYY-MM-DD",
                         help="the day (default: today in the office's time zone)")
    report_common(r_daily)
    r_daily.set_defaults(func=cmd_report_daily)
    r_av = r_sub.add_parser("availability", help="monthly availability per school and "
                                                 "device kind, in school hours only")
    r_av.add_argument("--from", dest="first", metavar="YYYY-MM", help="first month")
    r_av.add_argument("--to", dest="last", metavar="YYYY-MM",
                      help="last month (default: this month)")
    r_av.add_argument("--fiscal-year", type=int, metavar="YYYY",
                      help="Thai fiscal year in the Buddhist era: 2569 = Oct 2025 – Sep 2026")
    report_common(r_av)
    r_av.set_defaults(func=cmd_report_availability)
    register_inventory(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Files monitord writes (database, backups, reports, the demo's config) are not for
    # other users: umask 027 as the systemd unit sets it (a stricter umask stays).
    os.umask(os.umask(0o027) | 0o027)
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
