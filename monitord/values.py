"""Value types shared by the configuration and the probes' own settings models.

They live apart from :mod:`monitord.config` so that probe modules (which define the
settings of their protocol) can use them without importing the whole configuration.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from monitord.thaidate import check_sane

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
MAX_DURATION = 366 * 86400.0  # beyond this (or .inf/.nan) a timer would be nonsense


def parse_duration(value: object) -> float:
    """``30`` / ``30s`` / ``250ms`` / ``5m`` / ``1h`` / ``2d`` → seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 250ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30s, 5m or 250ms, got {value!r}")
    if not seconds > 0:  # also NaN
        raise ValueError("duration must be greater than zero")
    if seconds > MAX_DURATION:
        raise ValueError("duration must be at most 366 days")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def code_string(value: object) -> object:
    """YAML reads ``62020001`` as an int; codes are strings of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class SecretRef(BaseModel):
    """A secret given by reference: ``{env: NAME}`` or ``{file: PATH}``.

    The value is read only when a probe or notifier needs it and is never part of
    ``repr()``, logs, metrics or pages.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    env: str | None = None
    file: Path | None = None

    def model_post_init(self, __context: Any) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")

    def reveal(self) -> str:
        if self.env is not None:
            try:
                return os.environ[self.env]
            except KeyError:
                raise LookupError(f"environment variable {self.env} is not set") from None
        assert self.file is not None
        return self.file.read_text(encoding="utf-8").strip()

    def __repr__(self) -> str:
        where = f"env:{self.env}" if self.env is not None else f"file:{self.file}"
        return f"SecretRef({where})"

    __str__ = __repr__


def known_zone(value: str) -> str:
    """A time zone name the system knows (``Asia/Bangkok``); else a clear error."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(known_zone)]


# Officers' dates (API, CLI, config): a typo such as 0001-01-01 or 9999-12-31 is refused
# where it comes in, before it reaches a ticket, a notification or a form that would have
# to print it.
SaneDateTime = Annotated[
    dt.datetime, AfterValidator(check_sane),
    Field(description="between 2000-01-01 and 2100-12-31 (naive: office local time)")]


def one_line(text: str, limit: int) -> str:
    """Text (an exception's, a broker's reason) as one line of at most ``limit``
    characters: some span lines, some are huge."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
