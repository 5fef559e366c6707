"""Loading a config file: all-or-nothing, every problem reported in one pass."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pydantic import ValidationError

from monitord.config.checks import probe_problems, pydantic_problems, semantic_problems
from monitord.config.model import Config
from monitord.config.problems import MESSAGE_LIMIT, ConfigError, Problem
from monitord.config.reader import MAX_CONFIG_BYTES, read_yaml
from monitord.values import one_line

log = logging.getLogger("monitord.config")


@dataclass
class LoadResult:
    config: Config
    warnings: list[Problem]


def parse_config(text: str, file: str = "<config>") -> LoadResult:
    doc = read_yaml(text, file)
    problems = [*semantic_problems(doc), *probe_problems(doc)]
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(doc, exc))
    if cfg is None or any(not p.warning for p in problems):
        unique = dict.fromkeys(sorted(problems, key=lambda p: (p.line, p.path)))
        raise ConfigError(list(unique))
    return LoadResult(cfg.model_copy(update={"source": file}), problems)


def load_config(path: str | os.PathLike[str]) -> LoadResult:
    """Read and fully validate a config file; raise ConfigError listing every problem.

    Nothing else escapes: whatever the file holds, the caller gets a ConfigError with
    ``FILE:LINE: key.path: message`` lines (``monitord check`` exits 2, a reload is
    rejected), never a traceback.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Problem(file, 0, "(file)", exc.strerror or str(exc))]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(file, 1, "(file)", f"larger than {MAX_CONFIG_BYTES} "
                                   "bytes: not a monitord config")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(file, line, "(file)", f"not UTF-8 text: {exc.reason} "
                                   f"(byte {exc.start})")]) from None
    try:
        return parse_config(text, file)
    except ConfigError:
        raise
    except Exception as exc:  # a gap in the checks must still read as a rejected file
        log.debug("checking %s failed unexpectedly", file, exc_info=True)
        reason = one_line(f"{type(exc).__name__}: {exc}", MESSAGE_LIMIT)
        raise ConfigError([Problem(file, 1, "(top)", f"cannot be checked: {reason}")]) from None
