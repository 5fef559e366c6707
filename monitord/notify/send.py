"""The send stage: one message to one channel through apprise, with its idempotency key.

Channel URLs may hold tokens: they are never logged; errors are reported by type only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitord.domain.events import event_key

#: what the pipeline sends with: (url, title, body, key) → acknowledged
Sender = Callable[[str, str, str, "str | None"], Awaitable[bool]]

# apprise's webhook channels (JSON, form, XML POSTs) take extra HTTP headers as "+Name=value"
# and extra payload fields as ":name=value" in their URL.
_KEYED_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})


def keyed_url(url: str, key: str) -> str:
    """``url`` with the message's idempotency key as the ``Idempotency-Key`` header and the
    ``idempotency_key`` payload field, for webhook channels; other channels as they are."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _KEYED_SCHEMES:
        return url
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True),
             ("+Idempotency-Key", key), (":idempotency_key", key)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def message_key(channel: str, event_keys: Iterable[str]) -> str:
    """The idempotency key of one message to one channel: the same events to the same
    channel always give the same key (receivers drop a message whose key they have seen)."""
    return event_key("message", channel, *sorted(event_keys))


async def send(url: str, title: str, body: str, key: str | None = None) -> bool:
    """Send through apprise; True when the channel acknowledged.  ``key``: the message's
    idempotency key, sent along on webhook channels (see :func:`keyed_url`)."""
    import apprise  # here: 17 MB and 0.3 s of start-up for offices without channels

    obj = apprise.Apprise()
    if not obj.add(keyed_url(url, key) if key else url):
        raise ValueError("apprise does not understand this channel URL")
    return bool(await obj.async_notify(body=body, title=title))


async def attempt(sender: Sender, url: str, title: str, body: str, key: str | None
                  ) -> str:
    """One attempt: "" when acknowledged, else why not (never the URL: it may hold a
    token).  A broken URL or a library error is a failed attempt like a refusal."""
    try:
        ok = await sender(url, title, body, key)
    except Exception as exc:
        return type(exc).__name__
    return "" if ok else "channel did not acknowledge"
