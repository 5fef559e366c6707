"""Hostile HTTP clients against a real daemon (issue 12, findings 3, 5 and 10):

* ticket pages (names, serials, host names: PDPA) only with a bearer token or the signed,
  expiring link a notification carries; everyone else gets the same 401 and no data;
* idle wall-screen streams are capped (429), the open-files limit is raised at start, and
  running out of file descriptors neither takes the server down for good nor floods the
  log;
* out-of-range ids and dates get 400/404 (problem JSON or a Thai page), never a 500 with a
  traceback.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitord.domain.links import SECRET_FILE, LinkSigner, load_secret, ticket_url
from tests.daemon_lab import (
    MONITORD,
    ROOT,
    DaemonProcess,
    IptablesDrop,
    base_config,
    free_port,
    wait_for,
    wait_value,
    write_config,
)
from tests.notify_lab import Webhook

TOKEN = "tok-http-hardening-5e1f0a9c"
TOKEN_ENV = "MONITORD_TEST_HTTP_TOKEN"
SCHOOL = "โรงเรียนบ้านหนองปลิง"
REPORTER = "นายผู้แจ้ง ทดสอบ"
PRIVATE = (SCHOOL, REPORTER, "SN-RTR-HH01", "rtr-hh.school.example", "Cisco ISR 1100",
           "127.97.1.1", "เราเตอร์อินเทอร์เน็ต")
BASE_URL = "http://noc.example:9847"
HUGE_ID = "99999999999999999999999"


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def lab() -> dict[str, Any]:
    cfg = base_config([
        {"id": "62020001-rtr", "school": "62020001", "kind": "router", "address": "127.97.1.1",
         "name": "เราเตอร์อินเทอร์เน็ต", "hostname": "rtr-hh.school.example",
         "serial": "SN-RTR-HH01", "brand_model": "Cisco ISR 1100"},
        {"id": "62020002-rtr", "school": "62020002", "kind": "router", "address": "127.97.2.1"},
    ], ticket_delay="1s")
    cfg["schools"]["62020001"]["name"] = SCHOOL
    cfg["http"] = {"api_tokens": [{"name": "officer", "token": {"env": TOKEN_ENV}}]}
    cfg["tickets"] = {"reporter": {"name": REPORTER, "position": "นักวิชาการคอมพิวเตอร์"}}
    cfg["notify"] = {"group_window": "1s", "base_url": BASE_URL}
    return cfg


def no_traceback(d: DaemonProcess) -> None:
    assert "Traceback" not in d.log(), d.log()[-3000:]


def test_ticket_pages_need_a_token_or_a_signed_link(
        tmp_path: Path, token_env: None, iptables: IptablesDrop, webhook: Webhook,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "m.yaml", lab())
    d = daemon_factory("run", "--config", str(config), "--notify", webhook.url)
    d.wait_ready()
    iptables.drop("127.97.1.0/24")
    msg = wait_value(lambda: [m for m in webhook.messages() if "เปิดใบแจ้งซ่อม #1" in m],
                     bool, 40, "ticket message on the webhook")[0]

    # The message carries a signed link to the ticket's page (no bare /tickets/<id>).
    links = re.findall(r"(\S+/tickets/\d+\S*)", msg)
    assert len(links) == 1, msg
    m = re.fullmatch(re.escape(BASE_URL) + r"/tickets/1\?exp=(\d+)&sig=([A-Za-z0-9_-]{43})",
                     links[0])
    assert m is not None, links[0]
    assert 7 * 86400 - 120 < int(m.group(1)) - time.time() <= 7 * 86400  # default link_ttl
    signed = links[0].removeprefix(BASE_URL)
    web = httpx.Client(base_url=d.url, timeout=60)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # Anonymous, a wrong token, a tampered, expired or other ticket's signature: the same
    # 401 for a ticket that exists, one that does not and an absurd id; nothing personal.
    secret = load_secret(None, d.db.parent)
    expired = LinkSigner(secret, 1).query(1, now=time.time() - 60)
    sig = m.group(2)
    tampered = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    refused = [
        ("/tickets/1", {}), ("/tickets/1/report.pdf", {}), ("/tickets/2", {}),
        (f"/tickets/{HUGE_ID}", {}), ("/tickets/1?lang=en", {}),
        ("/tickets/1", {"Authorization": "Bearer wrong-token-0123456789"}),
        ("/tickets/1", {"Authorization": f"Basic {TOKEN}"}),
        (f"/tickets/1?exp={m.group(1)}&sig={tampered}", {}),
        (f"/tickets/1/report.pdf?exp={m.group(1)}&sig={tampered}", {}),
        (f"/tickets/1?exp={int(m.group(1)) + 1}&sig={sig}", {}),
        (f"/tickets/1?exp={expired['exp']}&sig={expired['sig']}", {}),
        (f"/tickets/2?exp={m.group(1)}&sig={sig}", {}),
        (f"/tickets/1?exp={'9' * 40}&sig={sig}", {}),
        ("/tickets/1?exp=&sig=", {}),
    ]
    bodies = set()
    for path, headers in refused:
        r = web.get(path, headers=headers)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["www-authenticate"].startswith("Bearer")
        text = f"{r.headers}\n{r.text}"
        assert not [p for p in PRIVATE if p in text], (path, text)
        assert "Traceback" not in text
        assert "/console/signin?next=" in r.text  # issue 14: a link to sign in
        bodies.add(re.sub(r"next=[^\"]*", "next=…", r.text))  # the link names the path
    assert len(bodies) == 1  # existing or not: nothing to tell them apart

    # The signed link from the message opens the page and, with the same signature,
    # its PDF; so does an officer's bearer token.
    r = web.get(signed)
    assert r.status_code == 200 and SCHOOL in r.text and "SN-RTR-HH01" in r.text
    assert REPORTER in r.text
    path, _, query = signed.partition("?")
    r = web.get(f"{path}/report.pdf?{query}")
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    r = web.get("/tickets/1", headers=auth)
    assert r.status_code == 200 and SCHOOL in r.text
    r = web.get("/tickets/1/report.pdf", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    fresh = ticket_url("", 1, LinkSigner(secret, 60))
    assert web.get(fresh).status_code == 200
    # With access, unknown and absurd ids are a plain 404 (no SQLite overflow, no 500).
    for tid in ("2", HUGE_ID, "0"):
        r = web.get(f"/tickets/{tid}", headers=auth)
        assert r.status_code == 404 and "ไม่พบใบแจ้งซ่อม" in r.text, (tid, r.text)

    # The installation's secret was generated once, readable by the daemon's user only.
    key = d.db.parent / SECRET_FILE
    assert key.stat().st_mode & 0o777 == 0o600
    assert d.metrics()("monitord_http_requests_rejected_total",
                       reason="unauthorized") == len(refused)
    no_traceback(d)
    assert d.stop() == 0


def test_configured_link_secret_and_ttl(tmp_path: Path,
                                        daemon_factory: Callable[..., DaemonProcess]) -> None:
    """``http.link_secret`` (a secret ref) replaces the generated key; a secret too short
    to be safe is refused at start with one clear line."""
    (tmp_path / "link.key").write_text("k" * 40 + "\n", encoding="utf-8")
    cfg = lab()
    cfg["http"] = {"link_secret": {"file": str(tmp_path / "link.key")}, "link_ttl": "1h"}
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()
    assert not (d.db.parent / SECRET_FILE).exists()
    assert d.stop() == 0
    (tmp_path / "link.key").write_text("short\n", encoding="utf-8")
    res = subprocess.run([*MONITORD, "run", "--config", str(tmp_path / "m.yaml"), "--db",
                          str(tmp_path / "x.db"), "--listen", f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1
    assert "http.link_secret: shorter than 32 characters" in res.stderr
    assert "Traceback" not in res.stderr


def test_link_signer() -> None:
    signer = LinkSigner(b"s" * 32, 3600)
    now = 1_800_000_000.0
    q = signer.query(7, now)
    assert q["exp"] == str(int(now) + 3600)
    assert signer.verify(7, q, now) and signer.verify(7, q, now + 3599)
    assert not signer.verify(7, q, now + 3601)  # expired
    assert not signer.verify(8, q, now)  # another ticket
    assert not LinkSigner(b"t" * 32, 3600).verify(7, q, now)  # another installation
    for bad in ({}, {"exp": q["exp"]}, {"exp": "１２３", "sig": q["sig"]},
                {"exp": "-1", "sig": q["sig"]}, {"exp": q["exp"], "sig": q["sig"] + "="},
                {"exp": q["exp"], "sig": "\udcff" * 43}, {"exp": "9" * 5000, "sig": q["sig"]}):
        assert not signer.verify(7, bad, now), bad
    url = ticket_url("http://noc:9847/", 7, signer, now)
    assert url == f"http://noc:9847/tickets/7?exp={q['exp']}&sig={q['sig']}"
    assert ticket_url("http://noc:9847", 7, None) == "http://noc:9847/tickets/7"


# -- finding 10: out-of-range input -------------------------------------------------------


def test_out_of_range_ids_and_dates_are_400_or_404(
        tmp_path: Path, token_env: None,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = lab()
    cfg["devices"] = [{"id": "62020001-rtr", "school": "62020001", "kind": "router",
                       "address": "127.0.0.1"}]
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()
    web = httpx.Client(base_url=d.url, timeout=60)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pages = [  # (path, token?, status)
        (f"/tickets/{HUGE_ID}", False, 401), (f"/tickets/{HUGE_ID}", True, 404),
        (f"/tickets/{HUGE_ID}/report.pdf", True, 404),
        ("/reports/daily?date=0001-01-01", False, 400),
        ("/reports/daily?date=9999-12-31", False, 400),
        ("/reports/daily?date=1999-12-31&format=pdf", False, 400),
        ("/reports/daily?date=2101-01-01&format=csv", False, 400),
        ("/reports/availability?from=0001-01&to=0001-02", False, 400),
        ("/reports/availability?from=9999-11&to=9999-12&format=pdf", False, 400),
        ("/reports/availability?fy=2543", False, 400),
        (f"/status/{HUGE_ID}", False, 404), ("/tickets/-1", False, 404),
        ("/no/such/page", False, 404),
    ]
    for path, token, status in pages:
        r = web.get(path, headers=auth if token else {})
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert re.search("[\u0e00-\u0e7f]", r.text), r.text  # a Thai page
        assert "Traceback" not in r.text
    api = [
        ("GET", f"/api/v1/tickets/{HUGE_ID}", 404), ("GET", "/api/v1/tickets/0", 404),
        ("PATCH", f"/api/v1/tickets/{HUGE_ID}", 404),
        ("GET", f"/api/v1/maintenance/{HUGE_ID}", 404),
        ("DELETE", f"/api/v1/maintenance/{HUGE_ID}", 404),
        ("GET", f"/api/v1/incidents?all=true&limit={HUGE_ID}", 400),
        ("GET", f"/api/v1/schools/{HUGE_ID}", 404), ("GET", "/api/v1/no/such", 404),
    ]
    for method, path, status in api:
        r = web.request(method, path, headers=auth, json={"note": "x"}
                        if method == "PATCH" else None)
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == status and "Traceback" not in r.text

    # A bounded sweep of odd values over every parameter of the report pages and the wall:
    # only 200 or 400, never a 500.
    rnd = random.Random(12)
    odd = ["", "0", "-1", "0000-00-00", "2024-02-30", "2024-13", "1999-12", "2101-01",
           "٢٠٢٤-٠١-٠١", "2024-01-01T00:00", "%00", "9" * 400, "２５６９", "2400", "2700",
           "x\u0e01", "2569", "2026-01", "2026-01-02"]
    for _ in range(60):
        what = rnd.choice(["daily", "availability", "wall", "status"])
        params = {k: rnd.choice(odd) for k in rnd.sample(
            ["date", "from", "to", "fy", "format", "lang", "q", "isp"], 3)}
        path = {"daily": "/reports/daily", "availability": "/reports/availability",
                "wall": "/wall", "status": "/status"}[what]
        r = web.get(path, params=params)
        assert r.status_code in (200, 400), (path, params, r.status_code, r.text[:300])
        assert "Traceback" not in r.text
    assert d.metrics()("monitord_http_requests_rejected_total", reason="bad_request") >= 7
    no_traceback(d)
    assert d.stop() == 0


# -- finding 5: file descriptors --------------------------------------------------------


class LimitedDaemon(DaemonProcess):
    """A daemon started under RLIMIT_NOFILE ``soft``/``hard`` (util-linux ``prlimit``
    execs it: same pid)."""

    def __init__(self, config: Path, tmp_path: Path, soft: int, hard: int) -> None:
        self.port = free_port()
        self.db = tmp_path / "monitord.db"
        self.log_path = tmp_path / "daemon.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["prlimit", f"--nofile={soft}:{hard}", "--", *MONITORD, "run", "--config",
             str(config), "--listen", f"127.0.0.1:{self.port}", "--db", str(self.db)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)


@contextlib.contextmanager
def limited_daemon(tmp_path: Path, cfg: dict[str, Any], soft: int,
                   hard: int) -> Iterator[LimitedDaemon]:
    d = LimitedDaemon(write_config(tmp_path / "m.yaml", cfg), tmp_path, soft, hard)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def small_lab() -> dict[str, Any]:
    cfg = lab()
    cfg["devices"] = [{"id": "62020001-rtr", "school": "62020001", "kind": "router",
                       "address": "127.0.0.1"}]
    cfg["http"]["max_sse_clients"] = 5
    return cfg


def open_stream(port: int) -> tuple[socket.socket, int, str]:
    """A wall screen's event stream: (socket, status, head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /wall/events HTTP/1.1\r\nHost: wall\r\nAccept: text/event-stream\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    text = head.decode("latin-1")
    return s, int(text.split(" ", 2)[1]), text


def open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files limit")


def test_open_files_limit_raised_to_the_hard_limit(tmp_path: Path, token_env: None) -> None:
    with limited_daemon(tmp_path, small_lab(), 256, 2048) as d:
        assert open_files_limit(d.proc.pid) == (2048, 2048)
        assert "open files limit 2048: HTTP connections at most 1024" in d.log()


def test_idle_wall_streams_and_fd_exhaustion(tmp_path: Path, token_env: None) -> None:
    with limited_daemon(tmp_path, small_lab(), 256, 256) as d:
        web = httpx.Client(base_url=d.url, timeout=10)
        streams: list[socket.socket] = []
        idle: list[socket.socket] = []
        try:
            # Eight wall screens: five streams (the cap), three 429 with Retry-After.
            answers = []
            for _ in range(8):
                s, status, head = open_stream(d.port)
                streams.append(s)
                answers.append(status)
                if status == 429:
                    assert "retry-after: 60" in head.lower()
            assert answers == [200] * 5 + [429] * 3
            # With the streams open, the rest of the server answers.
            for path in ("/healthz", "/status", "/api/v1/schools", "/wall/data.json",
                         "/metrics"):
                assert web.get(path).status_code == 200, path
            assert d.metrics()("monitord_http_requests_rejected_total",
                               reason="sse_limit") == 3

            # Hundreds of idle connections exhaust the daemon's 256 descriptors.
            for _ in range(400):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
                except OSError:
                    break  # the listen backlog is full too (one 5 s wait at most)
            assert len(idle) > 256
            wait_for(lambda: "out of system resource" in d.log(), 20,
                     "the daemon ran out of descriptors")
            time.sleep(3)  # let it try (and fail) to accept for a while: the log must stay small
        finally:
            for s in idle + streams:
                s.close()
        # Everything closed: the server is back within seconds.
        wait_for(lambda: web.get("/healthz").status_code == 200, 20, "/healthz again")
        assert web.get("/api/v1/schools").status_code == 200
        s, status, _ = open_stream(d.port)  # the stream slots were given back
        s.close()
        assert status == 200
        size = d.log_path.stat().st_size
        lines = d.log().splitlines()
        accept_lines = [x for x in lines if "out of system resource" in x]
        assert size < 1_000_000, size
        assert 1 <= len(accept_lines) <= 3, accept_lines[:5]
        assert len(lines) < 100, lines[-20:]
        assert "Traceback" not in d.log()
