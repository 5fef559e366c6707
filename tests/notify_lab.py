"""Real receivers on loopback for notification tests: an HTTP webhook and an SMTP server.

A pytest plugin (registered in tests/conftest.py): the ``webhook`` and ``mailbox``
fixtures come from here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitord.demo.processes import free_port


class Webhook:
    """Records every POST; answers ``status`` (set it to 500 to play a broken receiver)
    after ``delay`` seconds (a slow receiver: what it got is recorded on arrival)."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook._lock:
                    status, delay = hook.status, hook.delay
                    if status == 200:
                        hook.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "json": json.loads(body)})
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:  # the sender died while we were slow (kill -9 tests)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def messages(self) -> list[str]:
        with self._lock:
            return [r["json"]["message"] for r in self.requests]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.content)))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "director@example.org") -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=monitord@example.org&to={to}"
                "&secure=no")

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A real HTTP receiver on loopback that records every notification it gets."""
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on loopback that records every e-mail it gets."""
    box = Mailbox()
    try:
        yield box
    finally:
        box.close()
