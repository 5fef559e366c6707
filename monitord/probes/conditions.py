"""Conditions a probe reports (:attr:`monitord.probes.base.Observation.conditions`): stable
keys, and reasons worded once in Thai so every probe that finds the same problem says it
the same way (the reason is the repair ticket's เหตุการณ์ / ปัญหา and says what to do).
"""

from __future__ import annotations

import math

from monitord.thaidate import format_date, from_timestamp

#: a TLS certificate (HTTPS, SMTP/IMAP over TLS, ...) expires within the warning window
TLS_CERT_EXPIRING = "tls_cert_expiring"

DAY = 86400.0


def tls_cert_expiring(subject: str, not_after: float, now: float, warning: float
                      ) -> dict[str, str]:
    """``{TLS_CERT_EXPIRING: reason}`` when the certificate of ``subject`` (a host name,
    never an address with credentials) expires within ``warning`` seconds of ``now`` —
    or has expired — else ``{}``.  Merge it into the observation's ``conditions``."""
    left = not_after - now
    if left > warning:
        return {}
    moment = from_timestamp(not_after)
    when = format_date(moment, abbreviated=True) if moment is not None else "?"
    if left <= 0:
        text = (f"ใบรับรอง TLS ของ {subject} หมดอายุแล้วเมื่อ {when}: "
                "ต่ออายุใบรับรองโดยด่วน")
    else:
        days = max(1, math.floor(left / DAY))
        text = f"ใบรับรอง TLS ของ {subject} หมดอายุใน {days} วัน ({when}): ต่ออายุใบรับรอง"
    return {TLS_CERT_EXPIRING: text}
