"""Config problems: ``FILE:LINE: key.path: message``, and the error that carries them."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TypeAlias

KeyPath: TypeAlias = tuple[str | int, ...]

#: a problem's message at most this long (one line)
MESSAGE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}: {self.path}: {prefix}{self.message}"

    def without_values(self) -> str:
        """The problem with quoted values elided, for where anyone may read it
        (``/healthz``): a message may quote an address or a host name."""
        return str(replace(self, message=_QUOTED.sub("'…'", self.message)))


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class ConfigError(Exception):
    """The config is invalid; ``problems`` lists every error (not only the first)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"
