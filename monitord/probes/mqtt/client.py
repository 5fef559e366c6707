"""The broker connection's plumbing: a read-ahead socket and a bounded incoming queue.

Throughput: paho reads every packet with three or more ``recv`` calls and wakes the loop
once per packet; reading ahead in chunks lets one wake-up drain many packets.  A flood
never starves the daemon: the incoming queue is bounded and the socket is read one chunk
per event-loop turn (docs/mqtt.md § Overload).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Final

import aiomqtt

READ_CHUNK: Final = 32768  # socket bytes per event-loop turn (≤ 1,000 packets, ~30 ms)


class ReadAheadSocket:
    """Serves paho's small ``recv`` calls from one large read, one read per loop turn.

    paho reads each packet with at least three ``recv`` calls (command byte, length
    bytes, body) and aiomqtt's reader callback handles one packet per event-loop wake-up
    unless the socket reports ``pending()`` bytes (as an SSL socket does).  Reading
    32 KiB at once and reporting what is buffered through ``pending()`` lets one wake-up
    drain a whole chunk: ~50x fewer syscalls and loop iterations.

    At most one chunk is read per event-loop turn: when it is used up, ``recv`` says
    "would block" until the next turn, so a publisher flooding the socket cannot keep
    the reader (and its packet parsing) running while probes, HTTP and timers wait.
    The kernel keeps the rest (the socket stays readable, so the reader is called again
    next turn); when the kernel's buffer is full, TCP flow control holds the broker.
    Everything else is delegated to the real socket.
    """

    __slots__ = ("_buf", "_loop", "_pos", "_read_this_turn", "_sock")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._loop = loop
        self._buf = b""
        self._pos = 0
        self._read_this_turn = False

    def _next_turn(self) -> None:
        self._read_this_turn = False

    def recv(self, bufsize: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if self._read_this_turn:
                raise BlockingIOError  # paho keeps its partial packet: next turn
            self._read_this_turn = True
            self._loop.call_soon(self._next_turn)
            data = self._sock.recv(max(bufsize, READ_CHUNK))
            if len(data) <= bufsize:
                return data
            self._buf = buf = data
            pos = 0
        end = pos + bufsize
        self._pos = min(end, len(buf))
        return buf[pos:end]

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def install_read_ahead(client: aiomqtt.Client) -> bool:
    """Swap paho's plain TCP socket for :class:`ReadAheadSocket` (not for TLS).

    This reaches into aiomqtt/paho internals (pinned <3 in scripts/setup-mqtt.sh); when
    they change the swap is skipped and ingest is merely slower, never wrong.
    """
    paho = getattr(client, "_client", None)
    sock = getattr(paho, "_sock", None)
    if type(sock) is not socket.socket:
        return False
    reader = ReadAheadSocket(sock, asyncio.get_running_loop())
    setattr(paho, "_sock", reader)  # noqa: B010 - private on purpose
    return True


def bounded_queue(box: list[asyncio.Queue[aiomqtt.Message]],
                   on_full: Callable[[aiomqtt.Message], None]
                   ) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue type for aiomqtt's ``queue_type``: lets us drain it in batches, and hands
    what does not fit to ``on_full`` (aiomqtt would log a warning per message)."""

    class _Queue(asyncio.Queue[aiomqtt.Message]):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            box.append(self)

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full():
                on_full(item)
            else:
                super().put_nowait(item)

    return _Queue


