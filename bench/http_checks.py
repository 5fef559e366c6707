"""HTTP check benchmark: monitord's http probe vs prometheus-blackbox-exporter's http
module, on the same local targets in the same run.

Targets: ``--targets`` distinct URLs (``http://127.0.0.1:PORT/t/N``) spread over
``--ports`` listening ports, served by ``--servers`` worker processes of a minimal
keep-alive HTTP server (SO_REUSEPORT) that answers every request with a small page.
Each check asks for status 2xx and the keyword ``monitord-bench-ok`` in the body.

* monitord: one :class:`HttpProber` (engine settings as shipped: concurrency 100),
  one ``probe()`` per round over all targets (its scheduler batches the same way);
* blackbox_exporter: ``/probe?module=http_keyword&target=URL`` for every target, with
  ``--exporter-concurrency`` keep-alive scrapes in flight (a Prometheus scraping that
  many targets at once).  Targets answer at once, so what is measured is each side's
  CPU per check (the two cores are shared with the target server).

Both get one warm-up round, then ``--rounds`` timed rounds.

Usage:  .venv/bin/python bench/http_checks.py [--targets 2000] [--rounds 3]
Last line:
  http_checks targets=N per_s=X blackbox_per_s=Y ratio=R errors=E
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import exporter_client  # noqa: E402  (bench/, the script's own directory)

from monitord.demo.processes import free_port  # noqa: E402
from monitord.probes.base import Target  # noqa: E402
from monitord.probes.http import HttpProber  # noqa: E402

KEYWORD = "monitord-bench-ok"
BODY = f"<html><body>{KEYWORD}</body></html>".encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


# ---------------------------------------------------------------------------- targets


class _Serve(asyncio.Protocol):
    """Answers each request (headers end with a blank line; no bodies) with RESPONSE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * n)


def _server_main(ports: list[int]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for port in ports:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            await loop.create_server(_Serve, sock=sock, backlog=4096)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# ---------------------------------------------------------------------------- monitord


async def monitord_run(urls: list[str], rounds: int, concurrency: int,
                       per_host: int = 2) -> tuple[float, int]:
    prober = HttpProber(max_concurrency=concurrency, max_connections_per_host=per_host)
    targets = [Target(f"svc{i}", "127.0.0.1", {"url": u, "body_contains": KEYWORD,
                                                "timeout": 5.0})
               for i, u in enumerate(urls)]
    errors = 0
    try:
        obs, _ = await prober.probe(targets)  # warm-up: connections, validation
        errors += sum(not o.ok for o in obs)
        t0 = time.perf_counter()
        for _ in range(rounds):
            obs, _ = await prober.probe(targets)
            errors += sum(not o.ok for o in obs)
        elapsed = time.perf_counter() - t0
    finally:
        await prober.close()
    return len(urls) * rounds / elapsed, errors


# ---------------------------------------------------------------------------- blackbox


BLACKBOX_YML = f"""modules:
  http_keyword:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: []
      fail_if_body_not_matches_regexp: ["{KEYWORD}"]
"""


async def blackbox_run(port: int, urls: list[str], rounds: int,
                       concurrency: int) -> tuple[float, int]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    url = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                status, body = await exporter_client.get(
                    reader, writer, f"/probe?module=http_keyword&target={quote(url, safe='')}")
                if b" 200 " not in status or b"\nprobe_success 1" not in body:
                    errors += 1
        finally:
            writer.close()

    async def one_round() -> None:
        for u in urls:
            queue.put_nowait(u)
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await one_round()  # warm-up
    errors = 0
    t0 = time.perf_counter()
    for _ in range(rounds):
        await one_round()
    return len(urls) * rounds / (time.perf_counter() - t0), errors


def _wait_port(port: int, alive: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            sys.exit(f"http_checks: {what} exited")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling a child's port with a deadline
    sys.exit(f"http_checks: {what} did not start")


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ports", type=int, default=20, help="listening ports of the targets")
    ap.add_argument("--servers", type=int, default=1, help="target server processes")
    ap.add_argument("--concurrency", type=int, default=100, help="monitord's "
                    "engines.http.max_concurrency")
    ap.add_argument("--per-host", type=int, default=2, help="monitord's "
                    "engines.http.max_connections_per_host")
    ap.add_argument("--exporter-concurrency", type=int, default=100,
                    help="blackbox scrapes in flight")
    args = ap.parse_args()
    exe = shutil.which("prometheus-blackbox-exporter")
    if exe is None:
        sys.exit("http_checks: prometheus-blackbox-exporter missing: run "
                 "scripts/setup-services.sh")
    ports = [free_port() for _ in range(args.ports)]
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/t/{i}" for i in range(args.targets)]
    ctx = multiprocessing.get_context("spawn")
    servers = [ctx.Process(target=_server_main, args=(ports,), daemon=True)
               for _ in range(args.servers)]
    for s in servers:
        s.start()
    work = Path(tempfile.mkdtemp(prefix="http_checks."))
    (work / "blackbox.yml").write_text(BLACKBOX_YML)
    bport = free_port()
    log = (work / "blackbox.log").open("wb")
    bb = subprocess.Popen([exe, f"--config.file={work / 'blackbox.yml'}",
                           f"--web.listen-address=127.0.0.1:{bport}", "--log.level=warn"],
                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        _wait_port(bport, lambda: bb.poll() is None, "blackbox_exporter")
        for port in ports:
            _wait_port(port, lambda: all(s.is_alive() for s in servers), "target server")
        ours, our_err = asyncio.run(monitord_run(urls, args.rounds, args.concurrency,
                                                    args.per_host))
        print(f"monitord: {ours:.0f} checks/s ({our_err} errors)", flush=True)
        theirs, their_err = asyncio.run(blackbox_run(bport, urls, args.rounds,
                                                     args.exporter_concurrency))
        print(f"blackbox_exporter: {theirs:.0f} checks/s ({their_err} errors)", flush=True)
        print(f"http_checks targets={args.targets} per_s={ours:.0f} "
              f"blackbox_per_s={theirs:.0f} ratio={ours / theirs:.2f} "
              f"errors={our_err + their_err}")
    finally:
        bb.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            bb.wait(10)
        if bb.poll() is None:
            bb.kill()
        log.close()
        for s in servers:
            s.terminate()
            s.join(5)
        shutil.rmtree(work, ignore_errors=True)
    return 0 if our_err + their_err == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
