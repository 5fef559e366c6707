"""monitord.demo.processes: the child-process helpers the demo and the test labs share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitord.demo import processes
from tests.daemon_lab import ROOT


def test_wait_until_returns_the_value_and_names_the_last_error() -> None:
    calls = iter([0, None, 7])
    assert processes.wait_until(lambda: next(calls), 5, "seven", interval=0.01) == 7

    def broken() -> bool:
        raise ConnectionRefusedError("not yet")

    t = time.monotonic()
    with pytest.raises(processes.NotReady, match=r"timed out after 0.2s waiting for it .*"
                       r"ConnectionRefusedError"):
        processes.wait_until(broken, 0.2, "it", interval=0.01)
    assert time.monotonic() - t < 2


def test_wait_until_fails_as_soon_as_the_child_exits(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        proc = processes.spawn(["/bin/sh", "-c", "echo broken config; exit 3"], output=out)
    t = time.monotonic()
    with pytest.raises(processes.NotReady, match=r"exited with 3\n.*broken config"):
        processes.wait_until(lambda: False, 30, "the child", proc=proc, log=log)
    assert time.monotonic() - t < 10


def test_stop_terminates_then_kills() -> None:
    polite = processes.spawn(["sleep", "30"])
    assert processes.stop(polite, timeout=5) == -signal.SIGTERM
    stubborn = processes.spawn(["/bin/sh", "-c", "trap '' TERM; exec sleep 30"])
    time.sleep(0.2)   # the trap is in place
    t = time.monotonic()
    assert processes.stop(stubborn, timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - t < 5
    assert processes.stop(None) is None
    assert processes.stop(stubborn) == -signal.SIGKILL   # already gone: nothing to do


def test_a_child_dies_with_its_parent() -> None:
    """kill -9 of the parent still ends the child (PR_SET_PDEATHSIG)."""
    code = ("from monitord.demo import processes; import time\n"
            "p = processes.spawn(['sleep', '60'])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert Path(f"/proc/{child}").exists()
    finally:
        parent.kill()
        parent.wait(10)

    def gone() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except OSError:
            return True
        return state == "Z"   # a zombie until init reaps it: dead

    processes.wait_until(gone, 10, "the child to die with its parent")


def test_ports() -> None:
    tcp = processes.free_port()
    assert not processes.tcp_listening(tcp)
    with socket.socket() as server:
        server.bind(("127.0.0.1", tcp))
        server.listen()
        processes.wait_port(tcp, 5)
        assert processes.tcp_listening(tcp)
    processes.wait_closed(tcp, 5)
    udp = processes.free_port(kind=socket.SOCK_DGRAM)
    assert not processes.udp_bound(udp)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", udp))
        processes.wait_port(udp, 5, udp=True)
    assert not processes.udp_bound(udp)
    with pytest.raises(processes.NotReady, match="timed out"):
        processes.wait_port(processes.free_port(), 0.3)


def test_spawn_passes_env_and_cwd(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with out.open("wb") as fh:
        proc = processes.spawn(["/bin/sh", "-c", 'echo "$LAB_VALUE $(pwd)"; echo err >&2'],
                               output=fh, env={**os.environ, "LAB_VALUE": "x1"}, cwd=tmp_path)
        assert proc.wait(10) == 0
    assert out.read_text().split("\n")[:2] == [f"x1 {tmp_path}", "err"]
