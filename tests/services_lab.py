"""Real service endpoints for the http/tcp/dns probe tests, all on 127.0.0.1.

* :func:`make_cert` (the demo's: :mod:`monitord.demo.services`) — a self-signed certificate
  with a chosen lifetime;
* :class:`WebServer` — HTTP or HTTPS (threaded ``http.server``): ``/ok`` (the hotspot
  portal page), ``/slow``, ``/status/NNN``, ``/redirect`` → ``/ok``, ``/loop`` (endless
  redirects), ``/close`` (Connection: close), ``/big`` (1 MB), ``/headers`` (echoes
  the ``X-Token`` header's length, never its value);
* :class:`BannerServer` — a TCP server that greets like SMTP (``220 …``), answers ``EHLO``
  with ``250``, optionally over TLS;
* :class:`Dnsmasq` — Debian's dnsmasq on a free port (scripts/setup-services.sh).

Fixtures: ``cert_files``, ``web_servers``, ``banner_server``, ``dnsmasq``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from monitord.demo import processes
from monitord.demo.processes import free_port
from monitord.demo.services import PageHandler, make_cert

PORTAL_PAGE = "<html><body><h1>เข้าสู่ระบบ Hotspot</h1><form>login</form></body></html>"
SLOW_SECONDS = 0.6


class _Handler(PageHandler):
    def do_GET(self) -> None:
        path = self.path
        server: WebServerHttpd = self.server  # type: ignore[assignment]
        server.hits += 1
        if path in ("/", "/ok"):
            self.send_page(200, PORTAL_PAGE)
        elif path == "/slow":
            time.sleep(SLOW_SECONDS)  # the endpoint under test is slow on purpose
            self.send_page(200, "slow but fine")
        elif path.startswith("/status/"):
            self.send_page(int(path.rsplit("/", 1)[1]), "status page")
        elif path == "/redirect":
            self.send_page(302, "", {"Location": "/ok"})
        elif path == "/loop":
            self.send_page(302, "", {"Location": "/loop"})
        elif path == "/close":
            self.send_page(200, "bye", {"Connection": "close"})
            self.close_connection = True
        elif path == "/big":
            self.send_page(200, "x" * 1_000_000 + "END-OF-BIG")
        elif path == "/headers":
            self.send_page(200, f"token-length={len(self.headers.get('X-Token', ''))}")
        else:
            self.send_page(404, "not found")


class WebServerHttpd(ThreadingHTTPServer):
    daemon_threads = True
    hits = 0


@dataclass
class WebServer:
    port: int
    httpd: WebServerHttpd
    not_after: float | None = None

    @property
    def base(self) -> str:
        scheme = "https" if self.not_after is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class WebServerHttpd6(WebServerHttpd):
    address_family = socket.AF_INET6


def start_web(cert: tuple[Path, Path, float] | None = None,
              host: str = "127.0.0.1") -> WebServer:
    httpd = (WebServerHttpd6 if ":" in host else WebServerHttpd)((host, 0), _Handler)
    not_after = None
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert[0], cert[1])
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        not_after = cert[2]
    threading.Thread(target=httpd.serve_forever, daemon=True, name="web").start()
    return WebServer(httpd.server_address[1], httpd, not_after)


@dataclass
class WebServers:
    plain: WebServer
    expiring: WebServer  # https, certificate valid 10 more days
    valid: WebServer     # https, valid a year


@pytest.fixture
def web_servers(tmp_path: Path) -> Iterator[WebServers]:
    servers = WebServers(start_web(), start_web(make_cert(tmp_path, "expiring", 10)),
                         start_web(make_cert(tmp_path, "valid", 365)))
    try:
        yield servers
    finally:
        for s in (servers.plain, servers.expiring, servers.valid):
            s.close()


class _Banner(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        sock.settimeout(5)
        greeting = getattr(self.server, "greeting", b"220 mail.office.test ESMTP\r\n")
        with contextlib.suppress(OSError):
            sock.sendall(greeting)
            data = sock.recv(1024)
            if data.upper().startswith(b"EHLO"):
                sock.sendall(b"250-mail.office.test\r\n250 OK\r\n")
            elif data:
                sock.sendall(b"500 what?\r\n")


class _TlsBannerServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    ctx: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.ctx is not None:
            sock.settimeout(5)
            sock = self.ctx.wrap_socket(sock, server_side=True)
        return sock, addr


@dataclass
class BannerServer:
    port: int
    server: _TlsBannerServer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_banner(greeting: bytes = b"220 mail.office.test ESMTP\r\n",
                 cert: tuple[Path, Path, float] | None = None) -> BannerServer:
    server = _TlsBannerServer(("127.0.0.1", 0), _Banner)
    server.greeting = greeting  # type: ignore[attr-defined]
    if cert is not None:
        server.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.ctx.load_cert_chain(cert[0], cert[1])
    threading.Thread(target=server.serve_forever, daemon=True, name="banner").start()
    return BannerServer(server.server_address[1], server)


@pytest.fixture
def banner_server() -> Iterator[BannerServer]:
    s = start_banner()
    try:
        yield s
    finally:
        s.close()


def _free_udp_and_tcp_port() -> int:
    """A port free for UDP *and* TCP on 127.0.0.1 (dnsmasq binds both); a free UDP port
    may be some outgoing TCP connection's ephemeral port."""
    for _ in range(50):
        port = free_port(kind=socket.SOCK_DGRAM)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


class Dnsmasq:
    """dnsmasq answering for office.test on 127.0.0.1:port (UDP and TCP), nothing else."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("dnsmasq") is None:
            raise AssertionError("dnsmasq is not installed: run scripts/setup-services.sh")
        self.port = _free_udp_and_tcp_port()
        self.log = workdir / "dnsmasq.log"
        self._out = self.log.open("wb")
        self.proc = processes.spawn(
            ["dnsmasq", "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
             f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
             "--no-resolv", "--no-hosts", "--pid-file=", "--user=root",
             "--address=/office.test/127.0.0.5",
             "--mx-host=office.test,mail.office.test,10",
             "--txt-record=office.test,v=spf1 mx -all",
             "--cname=www.office.test,office.test"], output=self._out)

    def wait_ready(self, timeout: float = 10) -> None:
        from tests.daemon_lab import wait_for

        def answering() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited:\n" + self.log.read_text())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                from monitord.probes.dns.wire import build_query
                s.sendto(build_query(1, "office.test", "A"), ("127.0.0.1", self.port))
                try:
                    return bool(s.recv(512))
                except OSError:
                    return False

        wait_for(answering, timeout, "dnsmasq answering")

    def stop(self) -> None:
        processes.stop(self.proc)
        self._out.close()


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    d = Dnsmasq(tmp_path)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()
