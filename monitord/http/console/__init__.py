"""The officers' console (``/console/…``): sign-in, tickets, maintenance windows, the
inventory import.  Server-rendered pages (Jinja2) with plain-JS enhancement; every page
and action checks the signed-in user's role (:mod:`monitord.domain.access`) and changes
state only through the application commands (:class:`monitord.http.ports.Commands`).

- :mod:`.auth`: sessions, sign-in/out, CSRF, sign-in throttling (the middleware);
- :mod:`.guard`: ``require(request, perm)`` and friends, used by every page;
- :mod:`.tickets`, :mod:`.maintenance`: the repair workflow and maintenance windows;
- :mod:`.inventory`: the CSV import/export pages for admins;
- :mod:`.users`: the console's users, for admins.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from monitord.http.console import auth, inventory, maintenance, tickets, users
from monitord.http.ports import Commands, View


def routes(view: View, commands: Commands) -> list[BaseRoute]:
    return [*auth.routes(view, commands), *tickets.routes(view, commands),
            *maintenance.routes(view, commands), *inventory.routes(view, commands),
            *users.routes(view, commands)]
