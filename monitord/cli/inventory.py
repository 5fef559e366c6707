"""``monitord import schools|devices FILE.csv`` and ``monitord export schools|devices``:
the OBEC school list and the device list as CSV ⇄ the inventory file the config includes
(:mod:`monitord.config.inventory`).

A file with bad rows prints each as ``FILE:ROW: column: message`` (stderr) and exits 2
without writing anything; ``--skip-bad`` applies the good rows, lists the skipped ones and
exits 0; ``--dry-run`` says what would change and writes nothing.  A running daemon sees
the new inventory file within seconds (it watches the config and its includes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitord.config.inventory import (
    KINDS,
    ImportReport,
    InventoryError,
    RowProblem,
    export_csv,
    import_csv,
)

MAX_LISTED = 20


def _keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" … ({len(keys)} in all)" if len(keys) > MAX_LISTED else "")


def _print_row(source: str, p: RowProblem, warning: bool = False) -> None:
    prefix = "warning: " if warning else ""
    print(f"{source}:{p.row}: {p.column}: {prefix}{p.message}", file=sys.stderr)


def print_report(report: ImportReport, source: str, dry_run: bool) -> None:
    for p in report.problems:
        _print_row(source, p)
    for p in report.warnings:
        _print_row(source, p, warning=True)
    for line in report.config_problems:
        print(line, file=sys.stderr)
    bad_rows = sorted({p.row for p in report.problems})
    head = (f"{source}: {report.rows} {report.kind} rows ({report.encoding}): "
            f"{len(report.added)} new, {len(report.changed)} changed, "
            f"{report.unchanged} unchanged")
    if report.problems and not report.skipped:
        print(f"{head}; {len(bad_rows)} bad row(s): nothing applied (fix them, or "
              "--skip-bad to leave them out)", file=sys.stderr)
        return
    if report.config_problems:
        print(f"{head}; the resulting config would not load: "
              f"{report.inventory_path} not written", file=sys.stderr)
        return
    if report.skipped:
        print(f"skipped {len(report.skipped)} bad row(s): "
              f"{', '.join(str(r) for r in report.skipped)}", file=sys.stderr)
    verb = "would add" if dry_run else "added"
    if report.added:
        print(f"{verb}: {_keys(report.added)}", file=sys.stderr)
    if report.changed:
        print(f"{'would change' if dry_run else 'changed'}: {_keys(report.changed)}",
              file=sys.stderr)
    if report.applied:
        tail = f"{report.inventory_path} written (previous version: .bak)"
    elif dry_run:
        tail = f"dry run: {report.inventory_path} not written"
    else:
        tail = f"nothing to change in {report.inventory_path}"
    print(f"{head}; {tail}", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    source = str(args.file)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"monitord: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        report = import_csv(args.config, args.kind, data, source, inventory=args.inventory,
                            dry_run=args.dry_run, skip_bad=args.skip_bad)
    except InventoryError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"monitord: cannot write the inventory: {exc}", file=sys.stderr)
        return 1
    print_report(report, source, args.dry_run)
    return 0 if report.ok else 2


def cmd_export(args: argparse.Namespace) -> int:
    try:
        data = export_csv(args.config, args.kind)
    except InventoryError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"monitord: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(data)
        print(f"{args.kind} written to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_imp = sub.add_parser("import", help="import schools or devices from CSV into the "
                                          "inventory file the config includes")
    p_imp.add_argument("kind", choices=KINDS)
    p_imp.add_argument("file", metavar="FILE.csv")
    p_imp.add_argument("--config", required=True, metavar="CONFIG")
    p_imp.add_argument("--inventory", metavar="FILE",
                       help="the included file to update, when the config includes several")
    p_imp.add_argument("--dry-run", action="store_true",
                       help="print what would change; write nothing")
    p_imp.add_argument("--skip-bad", action="store_true",
                       help="apply the good rows, list the bad ones (exit 0)")
    p_imp.set_defaults(func=cmd_import)
    p_exp = sub.add_parser("export", help="the config's schools or devices as the CSV "
                                          "`monitord import` reads (UTF-8 with BOM)")
    p_exp.add_argument("kind", choices=KINDS)
    p_exp.add_argument("--config", required=True, metavar="CONFIG")
    p_exp.add_argument("-o", "--output", default="-", metavar="FILE",
                       help="'-' (default) for stdout")
    p_exp.set_defaults(func=cmd_export)
