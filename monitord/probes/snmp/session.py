"""Talking to one agent: GET / GETNEXT / GETBULK sessions and a careful table walker.

Two session kinds share one small interface, so profiles and the walker never care which
protocol version is underneath:

* :class:`CommunitySession` — SNMPv1/v2c over :mod:`.codec` and :mod:`.transport` (the fast path);
* :class:`UsmSession` — SNMPv3 (USM auth/priv) through pysnmp 7's asyncio API.

Every failure becomes an :class:`SnmpError` with a reason from :data:`REASONS`, which is
what ends up in ``Observation.reason`` and ``monitord_snmp_errors_total{reason}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from monitord.probes.snmp import codec as w
from monitord.probes.snmp.codec import Oid, Value, VarBind
from monitord.probes.snmp.transport import RequestTimeout, SnmpSocket

#: the fixed set of failure reasons (Observation.reason, errors_total{reason})
REASONS: Final = (
    "timeout",             # no answer within timeout × (retries + 1)
    "auth_failed",         # SNMPv3 user/key/protocol rejected (v1/v2c: looks like timeout)
    "no_such_object",      # a required object is missing (noSuchObject/Instance, v1 noSuchName)
    "end_of_mib_view",     # the agent ended the MIB view where data was expected
    "malformed",           # a reply that is not valid SNMP or does not match the request
    "too_big",             # tooBig even with max-repetitions 1
    "walk_loop",           # a walk returned non-increasing OIDs
    "oversized",           # a walk exceeded the varbind/request budget
    "agent_error",         # genErr, noAccess … in error-status
    "secret_unavailable",  # the community/key reference cannot be read
    "local_error",         # our side: socket error, engine shutting down
    "internal_error",      # the probe failed on this device's data (a bug: logged)
)


class SnmpError(Exception):
    """A failed SNMP exchange, with one of :data:`REASONS` and a human detail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Session(Protocol):
    """What profiles need from an agent connection."""

    version: int

    async def get(self, oids: Sequence[bytes]) -> list[tuple[int, Value]]:
        """One GET; values in request order (exception tags for missing objects)."""
        ...

    async def getnext(self, oids: Sequence[bytes]) -> list[VarBind]: ...

    async def getbulk(self, oids: Sequence[bytes], max_repetitions: int) -> list[VarBind]: ...


# ---------------------------------------------------------------------------- v1 / v2c


@dataclass(slots=True)
class RequestCounters:
    """Engine-wide request counters, shared by every session."""

    requests: int = 0
    retries_exhausted: int = 0
    in_flight: int = 0
    max_in_flight_seen: int = 0

    @contextlib.asynccontextmanager
    async def slot(self, limiter: asyncio.Semaphore) -> AsyncIterator[None]:
        """One request in flight: wait for the engine-wide limit, count it."""
        async with limiter:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1


class CommunitySession:
    """SNMPv1/v2c to one agent over the shared :class:`~.transport.SnmpSocket`."""

    def __init__(self, sock: SnmpSocket, limiter: asyncio.Semaphore,
                 counters: RequestCounters, address: str, port: int, version: int,
                 community: bytes, timeout: float, retries: int) -> None:
        self.sock = sock
        self.limiter = limiter
        self.counters = counters
        self.addr = (address, port)
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.version = version
        self._community = community
        self.timeout = timeout
        self.retries = retries

    def __repr__(self) -> str:  # never show the community
        return f"CommunitySession({self.addr[0]}:{self.addr[1]}, v{self.version + 1})"

    async def _exchange(self, build: w.Builder) -> w.Response:
        async with self.counters.slot(self.limiter):
            try:
                raw = await self.sock.request(self.addr, self.family, build,
                                              self.timeout, self.retries)
            except RequestTimeout:
                self.counters.retries_exhausted += 1
                raise SnmpError("timeout", f"no reply from {self.addr[0]}:{self.addr[1]}"
                                f" in {self.timeout}s × {self.retries + 1}") from None
            except OSError as exc:
                raise SnmpError("local_error", f"socket: {exc.strerror}") from None
        try:
            resp = w.decode_response(raw)
        except w.MalformedReply as exc:
            raise SnmpError("malformed", str(exc)) from None
        return resp  # (version, community and source were checked by the socket)

    async def get(self, oids: Sequence[bytes]) -> list[tuple[int, Value]]:
        """GET; under SNMPv1 a noSuchName drops that OID and retries the rest (RFC 2576)."""
        todo = list(oids)
        for _ in range(len(oids) + 1):
            if not todo:
                break
            resp = await self._exchange(w.Builder(self.version, self._community, w.PDU_GET,
                                                  todo))
            if resp.error_status == 2 and 1 <= resp.error_index <= len(todo):
                todo.pop(resp.error_index - 1)
                continue
            _raise_status(resp)
            if [vb[0] for vb in resp.varbinds] != todo:
                raise SnmpError("malformed", "GET reply does not match the request")
            got = {vb[0]: (vb[1], vb[2]) for vb in resp.varbinds}
            return [got.get(o, (w.NO_SUCH_OBJECT, None)) for o in oids]
        return [(w.NO_SUCH_OBJECT, None)] * len(oids)

    async def getnext(self, oids: Sequence[bytes]) -> list[VarBind]:
        resp = await self._exchange(w.Builder(self.version, self._community, w.PDU_GETNEXT,
                                              oids))
        if resp.error_status == 2 and self.version == 0:
            # v1 end of MIB: report it the v2c way for the walker
            return [(o, w.END_OF_MIB_VIEW, None) for o in oids]
        _raise_status(resp)
        if len(resp.varbinds) != len(oids):
            raise SnmpError("malformed", "GETNEXT reply has the wrong number of varbinds")
        return resp.varbinds

    async def getbulk(self, oids: Sequence[bytes], max_repetitions: int) -> list[VarBind]:
        resp = await self._exchange(w.Builder(self.version, self._community, w.PDU_GETBULK,
                                              oids, 0, max_repetitions))
        _raise_status(resp)
        return resp.varbinds


def _raise_status(resp: w.Response) -> None:
    if resp.error_status == 0:
        return
    name = w.ERROR_STATUS.get(resp.error_status, f"error_status_{resp.error_status}")
    if resp.error_status == 1:
        raise SnmpError("too_big", "agent answered tooBig")
    if resp.error_status == 2:
        raise SnmpError("no_such_object", "agent answered noSuchName")
    raise SnmpError("agent_error", f"agent answered {name} (index {resp.error_index})")


# ---------------------------------------------------------------------------- v3 (pysnmp)

#: config names → pysnmp protocol attribute names.  net-snmp's "AES-256" localizes keys
#: the Blumenthal way; "aes256c" is the Reeder/Cisco variant.
AUTH_PROTOCOLS: Final = {
    "none": "usmNoAuthProtocol", "md5": "usmHMACMD5AuthProtocol",
    "sha": "usmHMACSHAAuthProtocol", "sha224": "usmHMAC128SHA224AuthProtocol",
    "sha256": "usmHMAC192SHA256AuthProtocol", "sha384": "usmHMAC256SHA384AuthProtocol",
    "sha512": "usmHMAC384SHA512AuthProtocol",
}
PRIV_PROTOCOLS: Final = {
    "none": "usmNoPrivProtocol", "des": "usmDESPrivProtocol",
    "aes128": "usmAesCfb128Protocol", "aes192": "usmAesBlumenthalCfb192Protocol",
    "aes256": "usmAesBlumenthalCfb256Protocol", "aes192c": "usmAesCfb192Protocol",
    "aes256c": "usmAesCfb256Protocol",
}
_PYSNMP_TAGS: Final = {
    "Integer": w.INTEGER, "Integer32": w.INTEGER, "OctetString": w.OCTET_STRING,
    "DisplayString": w.OCTET_STRING, "Bits": w.OCTET_STRING, "Null": w.NULL,
    "ObjectIdentifier": w.OBJECT_ID, "ObjectName": w.OBJECT_ID, "IpAddress": w.IP_ADDRESS,
    "Counter32": w.COUNTER32, "Gauge32": w.GAUGE32, "Unsigned32": w.GAUGE32,
    "TimeTicks": w.TIMETICKS, "Opaque": w.OPAQUE, "Counter64": w.COUNTER64,
    "NoSuchObject": w.NO_SUCH_OBJECT, "NoSuchInstance": w.NO_SUCH_INSTANCE,
    "EndOfMibView": w.END_OF_MIB_VIEW,
}
_AUTH_INDICATIONS: Final = frozenset({
    "UnknownUserName", "WrongDigest", "DecryptionError", "UnsupportedSecurityLevel",
    "UnknownSecurityName", "AuthenticationFailure", "AuthenticationError",
    "UnknownEngineID", "NotInTimeWindow",
})


@dataclass(slots=True)
class UsmCredentials:
    """Resolved SNMPv3 credentials (keys already read from their references)."""

    user: str
    auth_protocol: str = "none"
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "none"
    priv_key: str = field(default="", repr=False)
    context: str = ""


class UsmSession:
    """SNMPv3 to one agent through pysnmp's asyncio high-level API.

    pysnmp costs milliseconds of CPU per message; v3 devices in an area office are few
    (servers, core switches), so correctness beats speed here.
    """

    version = 3

    def __init__(self, engine: Any, limiter: asyncio.Semaphore, counters: RequestCounters,
                 address: str, port: int, creds: UsmCredentials, timeout: float,
                 retries: int) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hl  # type: ignore[import-untyped]

        self._hl = hl
        self.engine = engine
        self.limiter = limiter
        self.counters = counters
        self.address, self.port = address, port
        self.timeout, self.retries = timeout, retries
        auth = getattr(hl, AUTH_PROTOCOLS[creds.auth_protocol])
        priv = getattr(hl, PRIV_PROTOCOLS[creds.priv_protocol])
        self._auth = hl.UsmUserData(
            creds.user,
            authKey=creds.auth_key or None,
            privKey=creds.priv_key or None,
            authProtocol=auth,
            privProtocol=priv,
        )
        self._context = hl.ContextData(contextName=creds.context)
        self._target: Any = None

    def __repr__(self) -> str:
        return f"UsmSession({self.address}:{self.port})"

    async def _call(self, fn: Any, *args: Any) -> list[VarBind]:
        hl = self._hl
        if self._target is None:
            cls = hl.Udp6TransportTarget if ":" in self.address else hl.UdpTransportTarget
            self._target = await cls.create((self.address, self.port), timeout=self.timeout,
                                            retries=self.retries)
        async with self.counters.slot(self.limiter):
            try:
                ind, status, index, vbs = await fn(self.engine, self._auth, self._target,
                                                   self._context, *args, lookupMib=False)
            except SnmpError:
                raise
            except Exception as exc:  # pysnmp raises a zoo of errors on bad input
                raise SnmpError("malformed", type(exc).__name__) from None
        if ind:
            raise _map_indication(ind)
        if int(status):
            _raise_status(w.Response(3, b"", 0, int(status), int(index), []))
        return [_from_pysnmp(vb) for vb in vbs]

    async def get(self, oids: Sequence[bytes]) -> list[tuple[int, Value]]:
        vbs = await self._call(self._hl.get_cmd, *self._objs(oids))
        if [vb[0] for vb in vbs] != list(oids):
            raise SnmpError("malformed", "GET reply does not match the request")
        return [(vb[1], vb[2]) for vb in vbs]

    async def getnext(self, oids: Sequence[bytes]) -> list[VarBind]:
        return await self._call(self._hl.next_cmd, *self._objs(oids))

    async def getbulk(self, oids: Sequence[bytes], max_repetitions: int) -> list[VarBind]:
        return await self._call(self._hl.bulk_cmd, 0, max_repetitions, *self._objs(oids))

    def _objs(self, oids: Sequence[bytes]) -> list[Any]:
        hl = self._hl
        return [hl.ObjectType(hl.ObjectIdentity(w.format_oid(w.decode_oid(o)))) for o in oids]


def _map_indication(ind: Any) -> SnmpError:
    name = type(ind).__name__
    if name == "RequestTimedOut":
        return SnmpError("timeout", "no SNMPv3 reply")
    if name in _AUTH_INDICATIONS:
        return SnmpError("auth_failed", name)
    return SnmpError("malformed", name)


def _from_pysnmp(vb: Any) -> VarBind:
    name, val = vb[0], vb[1]
    tag = _PYSNMP_TAGS.get(type(val).__name__)
    if tag is None:  # subclasses (textual conventions) of the base types
        tag = next((t for cls in type(val).__mro__
                    if (t := _PYSNMP_TAGS.get(cls.__name__)) is not None), w.OCTET_STRING)
    value: Value
    if tag in w.EXCEPTION_TAGS or tag == w.NULL:
        value = None
    elif tag in (w.OCTET_STRING, w.IP_ADDRESS, w.OPAQUE):
        value = bytes(val.asOctets())
    elif tag == w.OBJECT_ID:
        value = tuple(val)
    else:
        value = int(val)
    return (w.encode_oid(tuple(name)), tag, value)


# ---------------------------------------------------------------------------- walking


@dataclass(slots=True)
class WalkLimits:
    """Budgets that keep a bad agent from stalling a round."""

    max_repetitions: int = 25
    bulk: bool = True
    max_varbinds: int = 50_000
    max_requests: int = 2_000


Column = dict[Oid, tuple[int, Value]]


async def walk_columns(session: Session, columns: Sequence[bytes],
                       limits: WalkLimits) -> dict[bytes, Column]:
    """Walk several table columns side by side; ``{column: {index: (tag, value)}}``.

    GETBULK asks for every unfinished column at once, so a 14-column interface table of
    24 ports takes ~2 requests at max-repetitions 25.  Each column must advance strictly
    (else ``walk_loop``); budgets bound the work (``oversized``); tooBig halves the
    repetitions down to 1 before giving up.  SNMPv1 or ``bulk: false`` use GETNEXT.
    """
    out: dict[bytes, Column] = {c: {} for c in columns}
    cursor: dict[bytes, bytes] = {c: c for c in columns}   # column → last OID seen
    last_index: dict[bytes, Oid] = {}
    use_bulk = limits.bulk and session.version != 0
    reps = max(1, limits.max_repetitions)
    seen = 0
    for _ in range(limits.max_requests):
        active = [c for c in columns if c in cursor]
        if not active:
            return out
        asked = [cursor[c] for c in active]
        if use_bulk:
            try:
                vbs = await session.getbulk(asked, reps)
            except SnmpError as exc:
                if exc.reason == "too_big" and reps > 1:
                    reps = max(1, reps // 2)
                    continue
                raise
        else:
            vbs = await session.getnext(asked)
        if not vbs:
            raise SnmpError("malformed", "empty reply to a walk request")
        seen += len(vbs)
        if seen > limits.max_varbinds:
            raise SnmpError("oversized", f"walk passed {limits.max_varbinds} varbinds")
        _absorb(vbs, active, out, cursor, last_index)
    raise SnmpError("oversized", f"walk passed {limits.max_requests} requests")


def _absorb(vbs: list[VarBind], active: list[bytes], out: dict[bytes, Column],
            cursor: dict[bytes, bytes], last_index: dict[bytes, Oid]) -> None:
    """Fold one reply into the columns; finished columns leave ``cursor``."""
    n = len(active)
    finished: set[bytes] = set()
    for k, (oid, tag, value) in enumerate(vbs):
        col = active[k % n]
        if col in finished:
            continue
        plen = len(col)
        if tag == w.END_OF_MIB_VIEW or not oid.startswith(col) or len(oid) == plen:
            finished.add(col)
            continue
        try:
            index = w.decode_subids(oid[plen:])
        except w.MalformedReply as exc:
            raise SnmpError("malformed", str(exc)) from None
        prev = last_index.get(col)
        if prev is not None and index <= prev:
            raise SnmpError("walk_loop", f"OID did not increase after index {prev}")
        last_index[col] = index
        out[col][index] = (tag, value)
        cursor[col] = oid
    for col in finished:
        cursor.pop(col, None)
