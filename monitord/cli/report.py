"""``monitord report repair|daily|availability``: printable reports from the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from monitord.cli import with_store
from monitord.config import Config, ConfigError, load_config
from monitord.domain.availability import HistoryLoader
from monitord.storage import Storage

T = TypeVar("T")


def cmd_report_repair(args: argparse.Namespace) -> int:
    box: list[dict[str, Any]] = []

    async def load(store: Storage) -> int:
        box.append(await store.get_ticket(args.ticket_id))
        return 0

    code = with_store(args.db, True, load)
    if code != 0:
        return code
    from monitord.reports import render_repair_html, render_repair_pdf
    from monitord.reports.from_ticket import report_from_ticket

    ticket = box[0]
    report = report_from_ticket(ticket, lang=args.lang, thai_digits=args.thai_digits)
    data = (render_repair_pdf(report) if args.format == "pdf"
            else render_repair_html(report).encode("utf-8"))
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(args.output).write_bytes(data)
        print(f"repair report for ticket {args.ticket_id} written to {args.output}",
              file=sys.stderr)
    return 0


def _report_inputs(args: argparse.Namespace) -> tuple[Config, Path] | int:
    """The config (school names, ISPs, districts, schedules) and the database it uses
    (``--db``, else the config's ``storage``, as ``monitord run`` resolves it)."""
    from monitord.app.daemon import resolve_db_path

    try:
        cfg = load_config(args.config).config
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    return cfg, resolve_db_path(cfg, args.db)


def _write_output(data: bytes, output: str, what: str) -> None:
    if output == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(output).write_bytes(data)
        print(f"{what} written to {output}", file=sys.stderr)


def _read_report(db: Path, build: Callable[[HistoryLoader], T]) -> T | int:
    """Build a report from a read-only connection; an exit code when that fails
    (1: the database cannot be opened or read, 2: the request cannot be answered)."""
    from monitord.app.readmodel import HistoryError, read_history

    try:
        return read_history(db, build)
    except ValueError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    except HistoryError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 1


def cmd_report_daily(args: argparse.Namespace) -> int:
    from monitord.reports import daily

    got = _report_inputs(args)
    if isinstance(got, int):
        return got
    cfg, db = got
    try:
        day = datetime.strptime(args.date, "%Y-%m-%d").date() if args.date else None
    except ValueError:
        print(f"monitord: expected --date YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    report = _read_report(db, lambda load: daily.build_daily(cfg, load, day))
    if isinstance(report, int):
        return report
    _write_output(daily.render_daily(report, args.format, args.lang), args.output,
                  f"daily report for {report.day.isoformat()}")
    return 0


def cmd_report_availability(args: argparse.Namespace) -> int:
    from monitord.reports import monthly

    got = _report_inputs(args)
    if isinstance(got, int):
        return got
    cfg, db = got
    try:
        if args.fiscal_year is not None:
            if args.first or args.last:
                raise ValueError("give either --fiscal-year or --from/--to")
            if not 2400 < args.fiscal_year < 2700:
                raise ValueError("--fiscal-year is a Buddhist-era year such as 2569")
            first, last = monthly.fiscal_months(args.fiscal_year)
        elif args.first:
            first = monthly.parse_month(args.first)
            now = datetime.now(cfg.tz)
            last = monthly.parse_month(args.last) if args.last else (now.year, now.month)
        else:
            raise ValueError("give --from YYYY-MM [--to YYYY-MM] or --fiscal-year YYYY (BE)")
        monthly.months_between(first, last)
    except ValueError as exc:
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    report = _read_report(db, lambda load: monthly.build_monthly(
        cfg, load, first, last, fiscal_year=args.fiscal_year, lang=args.lang))
    if isinstance(report, int):
        return report
    _write_output(monthly.render_monthly(report, args.format, args.lang), args.output,
                  "availability report")
    return 0


