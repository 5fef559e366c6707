"""Child processes for the demo and the tests' labs: start, wait until ready, stop.

One place for what ``monitord demo`` (its mosquitto) and the test labs (mosquitto,
snmpd, snmpsim, prometheus, the daemon itself) all need:

* :func:`spawn` — start a child that dies with its parent (``PR_SET_PDEATHSIG``), so
  even ``kill -9`` of the demo or of pytest leaves nothing running;
* :func:`wait_until` / :func:`wait_port` — poll with a deadline, failing early when the
  child exits instead of waiting out the timeout;
* :func:`stop` — SIGTERM, a bounded wait, then SIGKILL;
* :func:`free_port`, :func:`tcp_listening`, :func:`udp_bound` — loopback ports.

Everything is synchronous and bounded; nothing here knows about pytest.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


class NotReady(Exception):
    """A child did not become ready in time, or exited while we waited."""


def die_with_parent_hook(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when its parent dies.

    libc is loaded here, before fork, so the child only makes one system call.  The
    signal comes when the *thread* that forked exits: spawn from a long-lived thread.
    None where prctl is not available.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
    return hook


def spawn(argv: Sequence[str], *, output: IO[bytes] | int | None = subprocess.DEVNULL,
          env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
          die_with_parent: bool = True, new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdin closed and stdout+stderr to ``output``.

    ``new_session``: Ctrl-C in the terminal reaches the parent only (which then stops
    the child in order).
    """
    return subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        env=dict(env) if env is not None else None, cwd=cwd,
        start_new_session=new_session,
        preexec_fn=die_with_parent_hook() if die_with_parent else None)  # noqa: PLW1509


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0,
         sig: int = signal.SIGTERM) -> int | None:
    """Stop a child: ``sig``, up to ``timeout`` seconds, then SIGKILL; its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *,
               interval: float = 0.05, proc: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> T:
    """Poll ``predicate`` until it returns a truthy value, which is returned.

    An exception from the predicate counts as "not yet" (a server still starting) and
    is named in the error.  Raises :class:`NotReady` after ``timeout`` seconds, or as
    soon as ``proc`` exits (with ``log``'s tail, when given).
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        if proc is not None and proc.poll() is not None:
            raise NotReady(f"{what}: the process exited with {proc.returncode}"
                           + _tail(log))
        if time.monotonic() > deadline:
            raise NotReady(f"timed out after {timeout}s waiting for {what}"
                           + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n" + "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port nobody uses on ``host`` right now (TCP by default, UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tcp_listening(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def udp_bound(port: int) -> bool:
    """Whether some socket on this machine is bound to UDP ``port`` (/proc/net/udp*)."""
    want = f":{port:04X} "
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            text = Path(name).read_text(encoding="ascii")
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 1 and (fields[1] + " ").endswith(want):
                return True
    return False


def wait_port(port: int, timeout: float, *, host: str = "127.0.0.1", udp: bool = False,
              proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
              what: str = "") -> None:
    """Wait until something listens on TCP ``host:port`` (or is bound to UDP ``port``)."""
    check = (lambda: udp_bound(port)) if udp else (lambda: tcp_listening(port, host))
    wait_until(check, timeout, what or f"{'udp' if udp else 'tcp'} {host}:{port}",
               proc=proc, log=log)


def wait_closed(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    """Wait until nothing listens on TCP ``host:port`` any more."""
    wait_until(lambda: not tcp_listening(port, host), timeout, f"tcp {host}:{port} to close")


@contextlib.contextmanager
def machine_lock(name: str, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock shared by every process of this machine (``flock`` on a file
    in the temp directory), waiting at most ``timeout`` seconds: for tests that use fixed
    ports (two demos at once would fight over the SNMP agents' port)."""
    path = Path(tempfile.gettempdir()) / f"{name}.lock"
    with path.open("a") as f:
        wait_until(lambda: _try_flock(f.fileno()), timeout, f"the lock {path}", interval=0.5)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
