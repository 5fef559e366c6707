"""The NOC wall screen (``/wall``): issue 7 — being built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from monitord.daemon import Daemon


def routes(daemon: Daemon) -> list[BaseRoute]:
    """The routes this module serves from the running daemon (none yet)."""
    return []
