"""Entry point of the JSON API for the application: ``routes(view, commands)``.

The API itself is :mod:`monitord.http.api.app` (FastAPI); the bearer tokens' helpers are
re-exported for the ticket pages, which accept the same tokens.
"""

from __future__ import annotations

from monitord.http.api.app import build_api, routes
from monitord.http.api.auth import token_holder, usable_tokens
from monitord.http.api.errors import PREFIX

__all__ = ["PREFIX", "build_api", "routes", "token_holder", "usable_tokens"]
