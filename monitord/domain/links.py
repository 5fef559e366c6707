"""Signed, expiring links to a ticket's pages (``/tickets/<id>``, its PDF).

Ticket pages carry people's names, phone numbers, serial numbers and host names (PDPA), so
they are not public.  Notifications send the officers a link that opens them without a
token: ``/tickets/<id>?exp=<unix>&sig=<sig>`` where ``sig`` is the unpadded URL-safe
base64 of HMAC-SHA256(secret, ``"ticket:<id>:<exp>"``).  The signature names the ticket,
not the path, so the same ``exp``/``sig`` opens the ticket's PDF too.

The secret is the installation's own: ``http.link_secret`` ({env|file}) when given, else a
random one generated once into the data directory (``link-secret``, mode 0600).
Changing it invalidates every link already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from monitord.values import SecretRef

SECRET_FILE = "link-secret"
MIN_SECRET_LENGTH = 32
_MAX_EXP_DIGITS = 12


class LinkSecretError(Exception):
    """The link secret cannot be read or created (one readable line)."""


class LinkSigner:
    def __init__(self, secret: bytes, ttl: float) -> None:
        self._secret = secret
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"LinkSigner(ttl={self.ttl:g})"

    def _sig(self, ticket_id: int, exp: int) -> str:
        mac = hmac.new(self._secret, f"ticket:{ticket_id}:{exp}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def query(self, ticket_id: int, now: float | None = None) -> dict[str, str]:
        """``{"exp": …, "sig": …}`` for a link valid ``ttl`` seconds from ``now``."""
        exp = int((time.time() if now is None else now) + self.ttl)
        return {"exp": str(exp), "sig": self._sig(ticket_id, exp)}

    def verify(self, ticket_id: int, params: Mapping[str, str],
               now: float | None = None) -> bool:
        """True for an unexpired link signed by this installation for this ticket."""
        exp_text, sig = params.get("exp", ""), params.get("sig", "")
        if not (exp_text.isascii() and exp_text.isdigit()) or len(exp_text) > _MAX_EXP_DIGITS:
            return False
        exp = int(exp_text)
        if exp < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self._sig(ticket_id, exp).encode(),
                                   sig.encode("utf-8", "surrogateescape"))


def ticket_url(base_url: str, ticket_id: object, signer: LinkSigner | None,
               now: float | None = None) -> str:
    """The ticket's page under ``base_url``, signed when a signer is given."""
    url = f"{base_url.rstrip('/')}/tickets/{ticket_id}"
    if signer is None or not isinstance(ticket_id, int):
        return url
    q = signer.query(ticket_id, now)
    return f"{url}?exp={q['exp']}&sig={q['sig']}"


def load_secret(ref: SecretRef | None, data_dir: Path, *, file_name: str = SECRET_FILE,
                key: str = "http.link_secret") -> bytes:
    """The configured secret (``key`` names it in messages), else the one in
    ``data_dir/file_name`` (created 0600 with 48 random bytes on first use).  Also the
    console's session secret (``console.session_secret``, ``session-secret``)."""
    if ref is not None:
        try:
            value = ref.reveal()
        except (LookupError, OSError) as exc:
            raise LinkSecretError(f"{key}: {exc}") from None
        return _long_enough(value, key).encode("utf-8")
    path = data_dir / file_name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LinkSecretError(f"cannot create {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LinkSecretError(f"cannot read {path}: {exc}") from None
    return _long_enough(value, str(path),
                        "; delete it to have a new one generated").encode("ascii")


def _long_enough(value: str, where: str, hint: str = "") -> str:
    if len(value) < MIN_SECRET_LENGTH:
        raise LinkSecretError(f"{where}: shorter than {MIN_SECRET_LENGTH} characters{hint}")
    return value
