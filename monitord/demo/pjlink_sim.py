"""A PJLink projector simulator (Class 1 and 2, MD5 authentication) for tests and the
demo lab, with the misbehaviours real projectors show.

One :class:`PjlinkSimulator` is one projector listening on one address and port; its
:class:`Projector` state may be changed while it runs (power, lamps, error digits …).
Misbehaviours: ``delay`` before every answer (slow projector), ``digest_mode``
(``reject``: refuses even the right digest; ``accept_any``: takes any 32 characters),
``single_connection`` (a second connection while one is open is closed at once, as most
projectors do), ``garbage`` (commands answered with junk bytes) and
``close_mid_answer`` (commands whose answer is cut off by closing the connection).

Run a few from the command line (the demo lab)::

    python -m monitord.demo.pjlink_sim projectors.json

where the file is a list of objects with ``host``, ``port`` and any :class:`Projector`
field (``lamps`` as ``[[hours, on], …]``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ERR_UNDEFINED, ERR_PARAM, ERR_UNAVAILABLE, ERR_FAILURE = "ERR1", "ERR2", "ERR3", "ERR4"


@dataclass
class Projector:
    """What the simulated projector reports and how it misbehaves."""

    pjlink_class: Literal[1, 2] = 1
    password: str | None = None
    power: int = 1  # 0 standby, 1 on, 2 cooling, 3 warming
    lamps: list[tuple[int, bool]] = field(default_factory=lambda: [(1200, True)])
    errors: str = "000000"  # fan lamp temperature cover filter other
    input: str = "31"
    manufacturer: str = "EPSON"
    model: str = "EB-X51"
    name: str = "projector"
    serial: str = "X5SN000001"
    other_info: str = ""
    # misbehaviours
    delay: float = 0.0
    digest_mode: Literal["normal", "reject", "accept_any"] = "normal"
    single_connection: bool = True
    garbage: frozenset[str] = frozenset()
    close_mid_answer: frozenset[str] = frozenset()


class PjlinkSimulator:
    """An asyncio PJLink server for one :class:`Projector`.

    Counters for tests: ``connections`` accepted, ``rejected_busy`` (closed because one
    was open), ``auth_failures``, ``max_open`` (most sessions open at once), ``commands``.
    """

    def __init__(self, projector: Projector | None = None, host: str = "127.0.0.1",
                 port: int = 4352) -> None:
        self.projector = projector or Projector()
        self.host = host
        self.port = port
        self.connections = 0
        self.rejected_busy = 0
        self.auth_failures = 0
        self.commands: list[str] = []
        self.max_open = 0
        self._open = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> PjlinkSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        pr = self.projector
        try:
            if pr.single_connection and self._open:
                self.rejected_busy += 1
                return
            self.connections += 1
            self._open += 1
            self.max_open = max(self.max_open, self._open)
            try:
                await self._session(reader, writer, pr)
            finally:
                self._open -= 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       pr: Projector) -> None:
        random = ""
        if pr.password is not None:
            random = secrets.token_hex(4)
            writer.write(f"PJLINK 1 {random}\r".encode())
        else:
            writer.write(b"PJLINK 0\r")
        await writer.drain()
        authenticated = pr.password is None
        while True:
            try:
                async with asyncio.timeout(30):  # projectors drop idle sessions
                    raw = await reader.readuntil(b"\r")
            except TimeoutError:
                return
            line = raw[:-1].decode("utf-8", "replace")
            if not authenticated:
                given, line = line[:32], line[32:]
                if not self._digest_ok(pr, random, given):
                    self.auth_failures += 1
                    writer.write(b"PJLINK ERRA\r")
                    await writer.drain()
                    return
                authenticated = True
            if pr.delay:
                await asyncio.sleep(pr.delay)
            if len(line) < 7 or line[0] != "%":
                continue  # not a command: real projectors ignore it
            head = line[:6]
            self.commands.append(line[1:6])
            name = line[2:6]
            if name in pr.garbage:
                writer.write(b"\xff\xfe%%garbage\x00\r")
            elif name in pr.close_mid_answer:
                writer.write(f"{head}={self._answer(pr, line)}"[:5].encode())
                await writer.drain()
                return
            else:
                writer.write(f"{head}={self._answer(pr, line)}\r".encode())
            await writer.drain()

    @staticmethod
    def _digest_ok(pr: Projector, random: str, given: str) -> bool:
        if pr.digest_mode == "reject":
            return False
        if pr.digest_mode == "accept_any":
            return len(given) == 32
        assert pr.password is not None
        want = hashlib.md5((random + pr.password).encode(), usedforsecurity=False).hexdigest()
        return secrets.compare_digest(given.lower(), want)

    @staticmethod
    def _answer(pr: Projector, line: str) -> str:
        cls, name, param = line[1], line[2:6], line[7:]
        if cls == "2" and pr.pjlink_class < 2:
            return ERR_UNDEFINED
        if param != "?":
            return ERR_PARAM if name in ("POWR", "INPT", "AVMT") else ERR_UNDEFINED
        match name:
            case "POWR":
                return str(pr.power)
            case "CLSS":
                return str(pr.pjlink_class)
            case "ERST":
                return pr.errors
            case "LAMP":
                if not pr.lamps:
                    return ERR_UNDEFINED
                return " ".join(f"{h} {int(on and pr.power == 1)}" for h, on in pr.lamps)
            case "INPT":
                return pr.input if pr.power == 1 else ERR_UNAVAILABLE
            case "AVMT":
                return "30"
            case "NAME":
                return pr.name
            case "INF1":
                return pr.manufacturer
            case "INF2":
                return pr.model
            case "INFO":
                return pr.other_info
            case "INST":
                return "11 31 32"
            case "SNUM" if cls == "2":
                return pr.serial
            case "SVER" if cls == "2":
                return "1.00"
            case "FILT" if cls == "2":
                return "150"
        return ERR_UNDEFINED


def projector_from(data: dict[str, Any]) -> Projector:
    """A :class:`Projector` from JSON-ish data (``lamps`` as lists, sets as lists)."""
    known = {f.name for f in dataclasses.fields(Projector)}
    kw = {k: v for k, v in data.items() if k in known}
    if "lamps" in kw:
        kw["lamps"] = [(int(h), bool(on)) for h, on in kw["lamps"]]
    for key in ("garbage", "close_mid_answer"):
        if key in kw:
            kw[key] = frozenset(kw[key])
    return Projector(**kw)


async def serve(specs: Sequence[dict[str, Any]]) -> None:
    sims = [PjlinkSimulator(projector_from(s), s.get("host", "127.0.0.1"),
                            int(s.get("port", 4352))) for s in specs]
    for sim in sims:
        await sim.start()
    print(f"pjlink_sim: {len(sims)} projectors listening", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for sim in sims:
            await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="PJLink projector simulator")
    ap.add_argument("config", type=Path, help="JSON list of projectors")
    args = ap.parse_args(argv)
    specs = json.loads(args.config.read_text(encoding="utf-8"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
