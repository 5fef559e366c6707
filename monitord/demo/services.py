"""The office's own services for ``monitord demo``: HTTPS servers and a DNS server.

Three small threaded HTTPS servers (``http.server``) on the office servers' loopback
addresses, each on a free high port, with self-signed certificates made at start
(``cryptography``):

* the website (``office-web``): ``/`` — certificate valid for a year;
* e-office (``office-eoffice``): ``/eoffice/`` → 302 to its sign-in page — certificate
  that expires in :data:`EXPIRING_DAYS` days, inside the 21-day warning window, so the
  daemon opens a "renew the certificate" ticket for it;
* the hotspot login portal (``office-hotspot``): ``/login`` shows the sign-in form.

DNS: Debian's dnsmasq (scripts/setup-services.sh) on the office router's address and a
free port, answering for :data:`DNS_NAME`; without dnsmasq the demo says so and has no
DNS service.  The service devices (kind ``service``, the profiles of
config/example.yaml) are :data:`SERVICES`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitord.demo import processes

log = logging.getLogger(__name__)

EXPIRING_DAYS: Final = 10
VALID_DAYS: Final = 365
DNS_NAME: Final = "www.office.demo.invalid"
PORTAL_PAGE: Final = ("<html><body><h1>เข้าสู่ระบบ Hotspot สพป.</h1><form method=post>"
                      "<input name=user><input name=password type=password></form>"
                      "</body></html>")
WEBSITE_PAGE: Final = "<html><body><h1>สำนักงานเขตพื้นที่การศึกษา</h1></body></html>"
EOFFICE_LOGIN: Final = "<html><body><h1>e-office: เข้าสู่ระบบ</h1></body></html>"


@dataclass(frozen=True)
class Service:
    """One service device of the demo: its id, Thai name, the server device it runs on
    (its address and parent), the probe it is watched by (``http`` or ``dns``), and the
    probe's settings (the example profiles; the port is added per run)."""

    device_id: str
    name: str
    server: str
    probe: str
    params: Mapping[str, Any]
    cert_days: int = VALID_DAYS


#: ``kinds.service`` of the demo config: config/example.yaml's, checked every 30 s, and
#: ``tls_verify: false`` since the demo's certificates are self-signed (the expiry is
#: read all the same)
SERVICE_KIND: Final[Mapping[str, Any]] = {
    "interval": "30s", "failure_threshold": 2,
    "http": {"scheme": "https", "timeout": "10s", "max_response_time": "3s",
             "cert_expiry_warning": "21d", "tls_verify": False}}
# the example profiles (config/example.yaml), with the port of this run added
SERVICES: Final = (
    Service("office-website", "เว็บไซต์สำนักงาน", "office-web", "http",
            {"path": "/", "body_not_contains": "Database Error"}),
    Service("office-eoffice-web", "ระบบสารบรรณอิเล็กทรอนิกส์ e-office", "office-eoffice",
            "http", {"path": "/eoffice/", "valid_status_codes": [200, 302],
                     "follow_redirects": False},
            cert_days=EXPIRING_DAYS),
    Service("office-hotspot-portal", "หน้าเข้าสู่ระบบ Hotspot", "office-hotspot", "http",
            {"path": "/login", "body_contains": "เข้าสู่ระบบ"}),
    Service("office-dns", "DNS สำนักงาน", "office-rtr", "dns",
            {"name": DNS_NAME, "type": "A"}),
)
#: the service whose certificate expires inside the warning window (a condition ticket)
EXPIRING_SERVICE: Final = "office-eoffice-web"


@dataclass(frozen=True)
class ServicePlan:
    """Which services this run has and on which ports (service id → port)."""

    ports: Mapping[str, int] = field(default_factory=dict)

    @property
    def dns(self) -> bool:
        return "office-dns" in self.ports

    @classmethod
    def choose(cls, addresses: Mapping[str, str]) -> ServicePlan:
        """Free ports on each service's server address (``addresses``: device → address);
        DNS only when dnsmasq is installed."""
        ports = {}
        for s in SERVICES:
            if s.probe == "dns":
                if shutil.which("dnsmasq") is None:
                    continue
                ports[s.device_id] = processes.free_port(addresses[s.server],
                                                         kind=socket.SOCK_DGRAM)
            else:
                ports[s.device_id] = processes.free_port(addresses[s.server])
        return cls(ports)

    @classmethod
    def from_devices(cls, devices: list[Mapping[str, Any]]) -> ServicePlan | None:
        """The plan a written config carries (None: no service devices)."""
        ids = {s.device_id for s in SERVICES}
        ports = {}
        for d in devices:
            if d["id"] in ids:
                ports[d["id"]] = int(next(iter(d["probes"].values()))["port"])
        return cls(ports) if ports else None


def make_cert(directory: Path, name: str, days: float, *, address: str = "127.0.0.1",
              dns_name: str | None = None) -> tuple[Path, Path, float]:
    """A self-signed certificate for ``dns_name`` (default ``name``) and ``address``, valid
    for ``days`` from now: (certificate file, key file (0600), not-after as Unix time).
    The demo's services and the tests' servers use it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name or name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(dns_name or name), x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, not_after.replace(microsecond=0).timestamp()


class PageHandler(BaseHTTPRequestHandler):
    """A quiet keep-alive HTTP/1.1 handler answering small HTML pages; subclasses route
    in ``do_GET`` with :meth:`send_page` (the demo's services, the tests' web servers)."""

    protocol_version = "HTTP/1.1"   # keep-alive: the http probe reuses connections

    def log_message(self, format: str, *args: object) -> None:
        return None

    def send_page(self, code: int, body: str, headers: Mapping[str, str] | None = None
                  ) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.send_page(404, "not found")


class _Handler(PageHandler):
    server_version = "demo-office"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.send_page(200, WEBSITE_PAGE)
        elif path == "/login":
            self.send_page(200, PORTAL_PAGE)
        elif path == "/eoffice/":
            self.send_page(302, "", {"Location": "/eoffice/login"})
        elif path == "/eoffice/login":
            self.send_page(200, EOFFICE_LOGIN)
        else:
            self.send_page(404, "not found")


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True


class ServicesLab:
    """The running services: :meth:`start` (blocking, quick) and :meth:`stop`."""

    def __init__(self, plan: ServicePlan, addresses: Mapping[str, str], workdir: Path) -> None:
        self.plan = plan
        self.addresses = addresses
        self.workdir = workdir
        self.servers: list[_Httpd] = []
        self.threads: list[threading.Thread] = []
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self._dns_log: Any = None

    def start(self) -> None:
        certs = self.workdir / "certs"
        for s in SERVICES:
            port = self.plan.ports.get(s.device_id)
            if port is None or s.probe != "http":
                continue
            address = self.addresses[s.server]
            try:
                cert, key, _ = make_cert(certs, f"{s.server}.demo.invalid", s.cert_days,
                                         address=address)
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(cert, key)
                httpd = _Httpd((address, port), _Handler)
                httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
            except (OSError, ssl.SSLError) as exc:   # this service stays down: a ticket
                log.warning("demo: %s cannot listen on %s:%d: %s", s.device_id, address,
                            port, exc)
                continue
            t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                 name=f"demo-{s.device_id}", daemon=True)
            t.start()
            self.servers.append(httpd)
            self.threads.append(t)
        if self.plan.dns:
            self._start_dnsmasq()
        log.info("demo: %d office web services over HTTPS (the e-office certificate expires "
                 "in %d days)%s", len(self.servers), EXPIRING_DAYS,
                 f", DNS (dnsmasq) on {self.addresses['office-rtr']}:"
                 f"{self.plan.ports['office-dns']}" if self.dnsmasq is not None else "")

    def _start_dnsmasq(self) -> None:
        exe = shutil.which("dnsmasq")
        if exe is None:
            log.warning("demo: dnsmasq is not installed (scripts/setup-services.sh): no DNS "
                        "service")
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._dns_log = (self.workdir / "dnsmasq.log").open("wb")
        address = self.addresses["office-rtr"]
        self.dnsmasq = processes.spawn(
            [exe, "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
             f"--port={self.plan.ports['office-dns']}", f"--listen-address={address}",
             "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=",
             "--user=root", f"--address=/{DNS_NAME}/{self.addresses['office-web']}"],
            output=self._dns_log)
        try:   # answering before the daemon's first check
            processes.wait_port(self.plan.ports["office-dns"], 10, udp=True,
                                proc=self.dnsmasq, what="dnsmasq")
        except processes.NotReady as exc:
            log.warning("demo: dnsmasq did not start: %s", exc)
            processes.stop(self.dnsmasq)
            self.dnsmasq = None

    def stop(self) -> None:
        for httpd in self.servers:
            with contextlib.suppress(Exception):
                httpd.shutdown()
                httpd.server_close()
        for t in self.threads:
            t.join(5)
        self.servers.clear()
        self.threads.clear()
        if self.dnsmasq is not None:
            processes.stop(self.dnsmasq)
            self.dnsmasq = None
        if self._dns_log is not None:
            self._dns_log.close()
            self._dns_log = None
