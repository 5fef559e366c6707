"""``monitord run|demo|check|status``: the daemon, the demo, a config check, the states."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

from monitord.cli import BANGKOK, _self_command, _setup_logging, with_store
from monitord.config import ConfigError, load_config
from monitord.storage import Storage, default_data_dir


def cmd_check(args: argparse.Namespace) -> int:
    try:
        result = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{args.config}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(warning)
    cfg = result.config
    print(f"{args.config}: OK ({len(cfg.schools)} schools, {len(cfg.devices)} devices)",
          file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from monitord.app.daemon import Daemon, DaemonOptions

    _setup_logging(args.log_level)
    daemon = Daemon(DaemonOptions(Path(args.config), args.db, args.listen,
                                  notify_urls=args.notify))
    return asyncio.run(daemon.run())


def cmd_demo(args: argparse.Namespace) -> int:
    from monitord.demo.office import run_demo

    _setup_logging(args.log_level)
    data_dir: Path = args.data_dir or default_data_dir() / "demo"
    return run_demo(data_dir, db=args.db, listen=args.listen, schools=args.schools,
                    notify=args.notify, self_command=_self_command())


def cmd_status(args: argparse.Namespace) -> int:
    async def read(store: Storage) -> int:
        states = await store.load_states()
        rows = sorted(states.values(), key=lambda s: s.device_id)
        if args.state:
            rows = [r for r in rows if r.state.value == args.state]
        if args.format == "json":
            print(json.dumps([
                {"device": r.device_id, "state": r.state.value, "since": r.since,
                 "reason": r.reason} for r in rows
            ], ensure_ascii=False, indent=1))
            return 0
        for r in rows:
            since = datetime.fromtimestamp(r.since, BANGKOK).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{r.device_id:<28} {r.state.value:<12} {since}  {r.reason}")
        return 0

    return with_store(args.db, True, read)


