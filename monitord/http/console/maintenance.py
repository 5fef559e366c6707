"""(placeholder: filled in by issue 14's maintenance part)"""

from __future__ import annotations

from starlette.routing import BaseRoute

from monitord.http.ports import Commands, View


def routes(view: View, commands: Commands) -> list[BaseRoute]:
    return []
