"""The inventory import: OBEC school lists and device lists as CSV → the inventory YAML
file the main config includes.  (Skeleton: filled in by issue 14's inventory part.)"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("schools", "devices")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad cell: printed as ``FILE:ROW: column: message``."""

    row: int
    column: str
    message: str


@dataclass(slots=True)
class ImportReport:
    """What an import found and did."""

    kind: str                     # "schools" or "devices"
    source: str                   # the file's name, for messages
    rows: int = 0                 # data rows read
    applied: bool = False         # the inventory file was written
    added: list[str] = field(default_factory=list)     # keys (SMIS / device ids)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)   # rows left out (--skip-bad)
    inventory_path: str = ""
    encoding: str = ""
