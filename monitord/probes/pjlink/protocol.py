"""The PJLink wire format (JBMIA PJLink Class 1 v1.04 / Class 2 v2.00), pure functions.

A session is text lines ending in CR.  The projector greets first: ``PJLINK 0`` (no
authentication) or ``PJLINK 1 <random>`` (MD5 authentication: the client puts
``md5(random + password)`` in lowercase hex in front of its first command); a wrong
digest is answered ``PJLINK ERRA`` and the connection closed.  A command is
``%<class><CMD4> <param>`` and its answer ``%<class><CMD4>=<data>``, where data may be
``ERR1`` (undefined command), ``ERR2`` (out of parameter), ``ERR3`` (unavailable time)
or ``ERR4`` (projector/display failure).

Nothing here does I/O; every parser raises :class:`MalformedReply` on bad input (never
another exception), which the hypothesis fuzz in tests/unit checks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

#: longest line the standard allows (136 bytes incl. CR); we accept a little more
MAX_LINE: Final = 512
TERMINATOR: Final = b"\r"

#: ERST digit order
ERROR_PARTS: Final = ("fan", "lamp", "temperature", "cover", "filter", "other")
#: POWR values → names; the value is also the exported ``monitord_pjlink_power_state``
POWER_STATES: Final = {0: "standby", 1: "on", 2: "cooling", 3: "warming"}
ERRORS: Final = {"ERR1": "undefined_command", "ERR2": "out_of_parameter",
                 "ERR3": "unavailable_time", "ERR4": "projector_failure"}

_REPLY = re.compile(r"%([12])([A-Z0-9]{4})=(.*)", re.S)
_GREETING = re.compile(r"PJLINK (?:0|1 ([0-9A-Fa-f]{8})|ERRA)", re.S)


class MalformedReply(ValueError):
    """A line that is not what the standard allows (garbage, wrong command echoed …)."""


@dataclass(frozen=True, slots=True)
class Greeting:
    """``auth`` True when the projector asks for a digest; ``random`` its 8 hex chars.
    ``auth_error`` when it greets with ``PJLINK ERRA`` (some do for a busy session)."""

    auth: bool
    random: str = ""
    auth_error: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer line: the class digit, the command and its data (or an error code)."""

    cls: int
    command: str
    data: str

    @property
    def error(self) -> str:
        """``""`` or the reason of an ``ERRn`` answer (``undefined_command`` …)."""
        return ERRORS.get(self.data, "")


def decode_line(raw: bytes) -> str:
    """A received line (without CR) as text; PJLink is ASCII (class 2 names: UTF-8)."""
    if len(raw) > MAX_LINE:
        raise MalformedReply("line too long")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedReply("not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\t" for c in text):
        raise MalformedReply("control character in line")
    return text


def parse_greeting(line: str) -> Greeting:
    m = _GREETING.fullmatch(line)
    if m is None:
        raise MalformedReply("not a PJLink greeting")
    if line == "PJLINK ERRA":
        return Greeting(auth=True, auth_error=True)
    if line == "PJLINK 0":
        return Greeting(auth=False)
    return Greeting(auth=True, random=m.group(1))


def digest(random: str, password: str) -> str:
    """The authentication digest: lowercase hex MD5 of random number + password."""
    return hashlib.md5((random + password).encode("utf-8"), usedforsecurity=False).hexdigest()


def command(cls: int, name: str, param: str = "?") -> bytes:
    """``%1POWR ?`` as bytes, CR-terminated."""
    if cls not in (1, 2) or not re.fullmatch(r"[A-Z0-9]{4}", name):
        raise ValueError(f"bad PJLink command {cls} {name}")
    return f"%{cls}{name} {param}".encode("ascii") + TERMINATOR


def is_auth_error(line: str) -> bool:
    return line == "PJLINK ERRA"


def parse_reply(line: str, cls: int, name: str) -> Reply:
    """An answer to ``%<cls><name>``; a line answering another command is malformed."""
    m = _REPLY.fullmatch(line)
    if m is None:
        raise MalformedReply("not a PJLink answer")
    if int(m.group(1)) != cls or m.group(2) != name:
        raise MalformedReply(f"answer to another command ({m.group(2)!r})")
    return Reply(cls, name, m.group(3))


def parse_power(data: str) -> int:
    if len(data) != 1 or not data.isdigit() or int(data) not in POWER_STATES:
        raise MalformedReply(f"power state {data[:16]!r}")
    return int(data)


def parse_lamps(data: str) -> list[tuple[int, bool]]:
    """``1234 1 567 0`` → [(hours, on), …] (1–8 lamps)."""
    parts = data.split(" ")
    if not parts or len(parts) % 2 or len(parts) > 16:
        raise MalformedReply("lamp answer needs pairs of hours and state")
    out: list[tuple[int, bool]] = []
    for i in range(0, len(parts), 2):
        hours, on = parts[i], parts[i + 1]
        if not (hours.isascii() and hours.isdigit() and len(hours) <= 5) or on not in ("0", "1"):
            raise MalformedReply(f"lamp entry {hours[:8]!r} {on[:8]!r}")
        out.append((int(hours), on == "1"))
    return out


def parse_errors(data: str) -> dict[str, int]:
    """ERST: six digits (fan, lamp, temperature, cover, filter, other), 0 ok, 1 warning,
    2 error."""
    if len(data) != 6 or any(c not in "012" for c in data):
        raise MalformedReply(f"error status {data[:16]!r}")
    return {part: int(c) for part, c in zip(ERROR_PARTS, data, strict=True)}


def parse_class(data: str) -> int:
    if data not in ("1", "2"):
        raise MalformedReply(f"class {data[:16]!r}")
    return int(data)


def parse_input(data: str) -> str:
    """INPT: two characters, type digit (1 RGB … 6 internal) and source number."""
    if len(data) != 2 or not data.isascii() or not data.isalnum() or data[0] not in "123456":
        raise MalformedReply(f"input {data[:16]!r}")
    return data


def parse_text(data: str, limit: int = 64) -> str:
    """INF1/INF2/INFO/NAME/SNUM: free text of at most ``limit`` characters."""
    if len(data) > limit:
        raise MalformedReply("text too long")
    return data.strip()
