"""What the http and tcp probes read from a TLS peer certificate: its not-after time.

The leaf certificate comes as DER from the live connection (``SSLObject.getpeercert(
binary_form=True)``), which works with verification on *and* off, unlike the parsed form
(empty without verification).  ``cryptography`` parses it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Final

from cryptography import x509

from monitord.probes.base import Observation
from monitord.probes.metrics import DeviceKey, gauge

DAY: Final = 86400.0

#: shared by the http and tcp probes (the exporter merges their samples into one family)
CERT = gauge("monitord_tls_cert_not_after_timestamp_seconds", "notAfter of the TLS "
             "certificate the last check saw, Unix time (like blackbox_exporter's "
             "probe_ssl_earliest_cert_expiry; the leaf certificate).", "device", "probe")


def cert_samples(latest: Iterable[tuple[DeviceKey, Observation]], probe: str
                 ) -> dict[tuple[str, ...], float]:
    """Each device's last seen certificate not-after, labelled (device, probe)."""
    return {(dev, probe): obs.values["tls_cert_not_after"]
            for (dev, _s, _k), obs in latest
            if obs.complete and "tls_cert_not_after" in obs.values}


def not_after(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> float | None:
    """The peer certificate's notAfter as a Unix timestamp; None without TLS or a cert."""
    if ssl_object is None:
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return None
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None


def expiry_warning(not_after_ts: float | None, now: float, warning: float) -> str:
    """A DEGRADED reason naming the days left when the certificate expires within
    ``warning`` seconds, or when it expired (reachable only with verification off)."""
    if not_after_ts is None:
        return ""
    left = not_after_ts - now
    if left <= 0:
        return "certificate expired"
    if left > warning:
        return ""
    days = int(left // DAY)
    return f"certificate expires in {days} day{'s' if days != 1 else ''}"


def client_context(verify: bool) -> ssl.SSLContext:
    """A client TLS context: the system's CAs when verifying, anything otherwise."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
