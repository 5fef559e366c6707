"""Real SNMP agents for the tests: net-snmp snmpd, snmpsim, and tiny misbehaving responders.

Everything listens on 127.0.0.1 only and is stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitord.demo.snmp import Request, decode_request, encode_response
from monitord.probes.snmp import codec as w
from tests.conftest import free_port, wait_for

SNMPSIM_DATA = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}." \
    f"{sys.version_info.minor}" / "site-packages" / "snmpsim" / "data"
V3_USERS = {
    # user: (net-snmp auth, auth key, net-snmp priv, priv key)
    "u_sha256_aes": ("SHA-256", "authpass-256", "AES", "privpass-128"),
    "u_sha512_aes256": ("SHA-512", "authpass-512", "AES-256", "privpass-256"),
    "u_sha_aes": ("SHA", "authpass-sha", "AES", "privpass-sha"),
}


def _udp_answers(port: int, community: str) -> bool:
    out = subprocess.run(["snmpget", "-v2c", "-c", community, "-t", "0.3", "-r", "0", "-On",
                          f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0"],
                         capture_output=True, text=True, timeout=5,
                         env={**os.environ, "MIBS": ""})
    return out.returncode == 0


class Snmpd:
    """net-snmp's snmpd on 127.0.0.1:port with community ``public`` and v3 users."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [f"agentAddress udp:127.0.0.1:{self.port}", "rocommunity public 127.0.0.1"]
        for user, (auth, akey, priv, pkey) in V3_USERS.items():
            lines += [f'createUser {user} {auth} "{akey}" {priv} "{pkey}"',
                      f"rouser {user} priv"]
        (workdir / "snmpd.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["snmpd", "-f", "-Lf", str(self.dir / "snmpd.log"), "-C", "-c",
             str(self.dir / "snmpd.conf"), "-I", "-smux,mteTrigger,mteTriggerConf",
             f"--persistentDir={self.dir / 'persist'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"})
        wait_for(lambda: _udp_answers(self.port, "public"), 15, "snmpd to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def snmpd(tmp_path: Path) -> Iterator[Snmpd]:
    if shutil.which("snmpd") is None:
        pytest.fail("snmpd missing: run scripts/setup-snmp.sh")
    agent = Snmpd(tmp_path)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


class Snmpsim:
    """snmpsim serving recorded devices; the community selects the data file."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.data = workdir / "data"
        self.data.mkdir()
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        for name in ("linux-full-walk", "winxp-full-walk", "eaton-9PX-partial-walk",
                     "linksys-system"):
            shutil.copy(SNMPSIM_DATA / "recorded" / f"{name}.snmprec", self.data)

    def add(self, name: str, text: str) -> None:
        (self.data / f"{name}.snmprec").write_text(text)

    def start(self) -> None:
        exe = Path(sys.executable).parent / "snmpsim-command-responder"
        self.proc = subprocess.Popen(
            [str(exe), f"--data-dir={self.data}", f"--cache-dir={self.dir / 'cache'}",
             f"--agent-udpv4-endpoint=127.0.0.1:{self.port}", "--logging-method=null"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"})
        wait_for(lambda: _udp_answers(self.port, "linksys-system"), 30, "snmpsim to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def snmpsim_factory(tmp_path: Path) -> Iterator[Snmpsim]:
    """An snmpsim not yet started: add variation files, then ``start()``."""
    sim = Snmpsim(tmp_path)
    try:
        yield sim
    finally:
        sim.stop()


class BadAgent:
    """A UDP responder that misbehaves on purpose.

    ``silent``  never answers;  ``junk``  answers every request with garbage bytes;
    ``loop``    answers every request with a well-formed response that echoes the
                requested OIDs — a walk that never advances (GET looks fine).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for _ in range(100_000):  # bounded: ~10,000 s of idle ticks at most
            if self._stop.is_set():
                return
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            for sock, reply in self._answers(data):
                sock.sendto(reply, addr)

    def _answers(self, data: bytes) -> list[tuple[socket.socket, bytes]]:
        """The datagrams to send back for one request, each with the socket to send it."""
        reply = self._reply(data)
        return [] if reply is None else [(self.sock, reply)]

    def _reply(self, data: bytes) -> bytes | None:
        if self.mode == "silent":
            return None
        if self.mode == "junk":
            return b"\x30\x82\xff\xff\x02\x01" + os.urandom(20)
        # "loop": read the request as if it were a response, answer the same OIDs
        pdu_at = next(k for k in range(6, len(data))
                      if data[k] in (w.PDU_GET, w.PDU_GETNEXT, w.PDU_GETBULK))
        req = w.decode_response(data[:pdu_at] + bytes((w.PDU_RESPONSE,)) + data[pdu_at + 1:])
        oids = [vb[0] for vb in req.varbinds]
        if data[pdu_at] == w.PDU_GET:
            return _response(req.version, req.community, req.request_id,
                             [(o, w.TIMETICKS, 4200) for o in oids])
        # a walk step: a column start gets its row 1, a row gets row 1 again — the walk
        # never advances (short encodings are the column starts the probe asks for)
        return _response(req.version, req.community, req.request_id,
                         [(o + b"\x01" if len(o) <= 10 else o[:-1] + b"\x01", w.INTEGER, 1)
                          for o in oids])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.sock.close()


#: (sender name, datagram); ``"agent"`` is the agent's own socket
Answer = tuple[str, bytes]


class ScriptedAgent(BadAgent):
    """A UDP agent on 127.0.0.1 whose answers the test writes.

    ``script(request)`` gets each decoded request (:class:`monitord.demo.snmp.Request`)
    and returns the datagrams to send back to the requester, in order, each from a named
    sender: ``"agent"`` (the agent's own address and port) or a sender added with
    :meth:`add_sender` (another loopback address or port: a spoofer).
    """

    def __init__(self, script: Callable[[Request], list[Answer]]) -> None:
        self.script = script
        self.senders: dict[str, socket.socket] = {}
        self.seen: list[Request] = []
        super().__init__("scripted")
        self.senders["agent"] = self.sock

    def add_sender(self, name: str, host: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        self.senders[name] = sock
        return sock

    def _answers(self, data: bytes) -> list[tuple[socket.socket, bytes]]:
        req = decode_request(data)
        self.seen.append(req)
        return [(self.senders[name], raw) for name, raw in self.script(req)]

    def close(self) -> None:
        super().close()
        for sock in self.senders.values():
            with contextlib.suppress(OSError):
                sock.close()


def get_reply(req: Request, varbinds: list[bytes], *, community: bytes | None = None,
              version: int | None = None, request_id: int | None = None) -> bytes:
    """A Response to ``req`` carrying ``varbinds`` (encoded); any header field can be
    overridden to forge a reply."""
    return encode_response(req.version if version is None else version,
                           req.community if community is None else community,
                           req.request_id if request_id is None else request_id, varbinds)


def raw_varbind(oid: tuple[int, ...], tag: int, content: bytes) -> bytes:
    """A varbind whose value has exactly the given content octets (hostile numbers)."""
    return w.tlv(w.SEQUENCE, w.tlv(w.OBJECT_ID, w.encode_oid(oid)) + w.tlv(tag, content))


def _response(version: int, community: bytes, rid: int,
              vbs: list[tuple[bytes, int, int]]) -> bytes:
    """A Response-PDU built with the codec's own helpers (tags and lengths by hand)."""
    def tlv(tag: int, body: bytes) -> bytes:
        return w.tlv(tag, body)

    def num(tag: int, v: int) -> bytes:
        return tlv(tag, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))

    body = b"".join(tlv(w.SEQUENCE, tlv(w.OBJECT_ID, o) + num(t, v)) for o, t, v in vbs)
    pdu = tlv(w.PDU_RESPONSE, num(w.INTEGER, rid) + num(w.INTEGER, 0) + num(w.INTEGER, 0)
              + tlv(w.SEQUENCE, body))
    return tlv(w.SEQUENCE, num(w.INTEGER, version) + tlv(w.OCTET_STRING, community) + pdu)


@pytest.fixture
def scripted_agent() -> Iterator[Callable[[Callable[[Request], list[Answer]]], ScriptedAgent]]:
    """Factory of :class:`ScriptedAgent`; all are closed after the test."""
    made: list[ScriptedAgent] = []

    def make(script: Callable[[Request], list[Answer]]) -> ScriptedAgent:
        agent = ScriptedAgent(script)
        made.append(agent)
        return agent

    try:
        yield make
    finally:
        for agent in made:
            agent.close()


@pytest.fixture
def bad_agent() -> Iterator[type[BadAgent]]:
    made: list[BadAgent] = []

    class _Factory(BadAgent):
        def __init__(self, mode: str) -> None:
            super().__init__(mode)
            made.append(self)

    try:
        yield _Factory
    finally:
        for agent in made:
            agent.close()
