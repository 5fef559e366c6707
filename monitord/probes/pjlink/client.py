"""One PJLink session over TCP: greeting, authentication, sequential commands.

Projectors accept one connection at a time; the prober serialises sessions per address,
this module only speaks the protocol (see :mod:`.protocol`).
"""

from __future__ import annotations

import asyncio
import contextlib

from monitord.probes.pjlink import protocol as p


class PjlinkError(Exception):
    """A session failed; ``reason`` is the observation's reason (machine-readable)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class PjlinkSession:
    """An open connection; :meth:`ask` sends one command and waits for its answer.

    ``timeout`` bounds each wait for a line (greeting or answer).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._digest = ""
        self.greeting = p.Greeting(auth=False)

    @classmethod
    async def open(cls, host: str, port: int, wait: float,
                   password: str | None) -> PjlinkSession:
        """Connect, read the greeting and prepare the digest; ``wait`` bounds each step."""
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(host, port, limit=p.MAX_LINE * 2)
        except TimeoutError:
            raise PjlinkError("timeout", "connect") from None
        except OSError as exc:
            raise PjlinkError("refused" if isinstance(exc, ConnectionRefusedError)
                              else "unreachable", exc.strerror or type(exc).__name__) from None
        session = cls(reader, writer, wait)
        try:
            await session._greet(password)
        except BaseException:
            await session.close()
            raise
        return session

    async def _greet(self, password: str | None) -> None:
        line = await self._line("greeting")
        try:
            self.greeting = p.parse_greeting(line)
        except p.MalformedReply as exc:
            raise PjlinkError("malformed", f"greeting: {exc}") from None
        if self.greeting.auth_error:
            raise PjlinkError("busy", "projector answered PJLINK ERRA before a command")
        if self.greeting.auth:
            if not password:
                raise PjlinkError("auth_failed", "projector needs a password, none set")
            self._digest = p.digest(self.greeting.random, password)

    async def _line(self, what: str) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._reader.readuntil(p.TERMINATOR)
        except TimeoutError:
            raise PjlinkError("timeout", what) from None
        except asyncio.IncompleteReadError as exc:
            if what == "greeting" and not exc.partial:
                # closed before a word: how projectors refuse a second session
                raise PjlinkError("busy", "closed before the greeting (another "
                                  "controller holds the projector's one session?)") from None
            raise PjlinkError("closed", f"{what}: connection closed"
                              + (" mid-answer" if exc.partial else "")) from None
        except asyncio.LimitOverrunError:
            raise PjlinkError("malformed", f"{what}: line too long") from None
        except OSError as exc:
            raise PjlinkError("closed", f"{what}: {exc.strerror or type(exc).__name__}"
                              ) from None
        try:
            return p.decode_line(raw[:-1])
        except p.MalformedReply as exc:
            raise PjlinkError("malformed", f"{what}: {exc}") from None

    async def ask(self, cls: int, name: str) -> p.Reply:
        """Send ``%<cls><name> ?`` and return its answer (ERRn answers included)."""
        data = p.command(cls, name)
        if self._digest:
            data, self._digest = self._digest.encode("ascii") + data, ""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise PjlinkError("closed", f"send: {exc.strerror or type(exc).__name__}") from None
        line = await self._line(name)
        if p.is_auth_error(line):
            raise PjlinkError("auth_failed", "projector refused the password digest")
        try:
            return p.parse_reply(line, cls, name)
        except p.MalformedReply as exc:
            raise PjlinkError("malformed", f"{name}: {exc}") from None

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
