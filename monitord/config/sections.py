"""Top-level sections: storage, http, console, engines, tickets, incidents, notify."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from monitord.config.settings import DeviceKind, ScheduleConfig, Strict
from monitord.values import Duration, SecretRef, code_string


class StorageConfig(Strict):
    data_dir: Path | None = None
    db: Path | None = None
    retention_days: int = Field(
        90, ge=1, le=3650, description="history kept (Computer Crime Act: at least 90)"
    )


class ApiToken(Strict):
    """A bearer token that may write through ``/api/v1`` (ticket updates, maintenance)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                      description="who holds it: recorded as the actor of every change")
    token: SecretRef = Field(description="{env: NAME} or {file: PATH}; at least 16 chars")


class HttpConfig(Strict):
    listen: str = "127.0.0.1:9847"
    api_tokens: list[ApiToken] = Field(default_factory=list, description="bearer tokens "
                                       "for /api/v1 writes; none: the API is read-only")
    link_secret: SecretRef | None = Field(None, description="key of the signed ticket "
                                          "links in notifications ({env|file}, >= 32 "
                                          "chars); default: generated into the data dir")
    link_ttl: Duration = Field(7 * 86400.0, le=366 * 86400.0,
                               description="how long a signed ticket link is valid")
    max_sse_clients: int = Field(100, ge=1, le=10_000, description="open /wall/events "
                                 "streams at most; more get 429")
    limit_concurrency: int | None = Field(None, ge=8, le=1_000_000, description="HTTP "
                                          "connections at most (503 beyond); default: "
                                          "half the open-files limit")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


class ConsoleConfig(Strict):
    """The officers' console (``/console``): sessions and sign-in throttling."""

    session_idle: Duration = Field(2 * 3600.0, ge=60.0, le=30 * 86400.0,
                                   description="a session ends after this long without "
                                               "a request")
    session_max: Duration = Field(12 * 3600.0, ge=60.0, le=90 * 86400.0,
                                  description="a session ends this long after sign-in, "
                                              "used or not")
    signin_max_failures: int = Field(5, ge=1, le=1000, description="failed sign-ins per "
                                     "name within signin_window before it is refused (429)")
    signin_max_failures_per_address: int = Field(20, ge=1, le=100_000, description="failed "
                                                 "sign-ins per client address within "
                                                 "signin_window before it is refused")
    signin_window: Duration = Field(15 * 60.0, ge=60.0, le=7 * 86400.0,
                                    description="the window failed sign-ins are counted in")
    secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto", description="mark cookies Secure: auto = only when the request came over "
                            "https (X-Forwarded-Proto is not trusted)")
    session_secret: SecretRef | None = Field(None, description="key signing the session "
                                             "cookies ({env|file}, >= 32 chars); default: "
                                             "generated into the database's directory "
                                             "(session-secret)")


class IcmpEngineConfig(Strict):
    mode: Literal["auto", "raw", "dgram"] = "auto"
    rate_pps: int = Field(50000, ge=10, le=1_000_000)
    max_in_flight: int = Field(20000, ge=10, le=1_000_000)


class Signatory(Strict):
    name: str = "ระบบ monitord"
    position: str = "ระบบเฝ้าระวังเครือข่ายอัตโนมัติ"


class TicketsConfig(Strict):
    relapse_window: Duration = Field(86400.0, description="a failure this soon after repair "
                                     "reopens the same ticket")
    auto_close_after: Duration | None = Field(259200.0, description="close a repaired ticket "
                                              "that stayed well this long; null: officers close")
    reporter: Signatory = Signatory()


class CorrelationConfig(Strict):
    group_by: Literal["isp", "district", "none"] = "isp"
    min_schools: int = Field(5, ge=2)
    min_share: float = Field(0.3, ge=0, le=1)
    window: Duration = 300.0


class FlappingConfig(Strict):
    high_percent: float = Field(50.0, gt=0, le=100)
    low_percent: float = Field(25.0, ge=0, le=100)


class IncidentsConfig(Strict):
    correlation: CorrelationConfig = CorrelationConfig()
    flapping: FlappingConfig = FlappingConfig()


class ChannelConfig(Strict):
    """One notification channel: an apprise URL (by reference when it holds a token)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: SecretRef | str
    events: list[Literal["ticket_opened", "ticket_scheduled", "ticket_repaired",
                         "ticket_reopened", "ticket_closed", "upstream_started",
                         "upstream_ended", "broker_unreachable", "broker_restored",
                         "storage_failing", "storage_restored"]
                ] = Field(default_factory=list)
    schools: list[Annotated[str, BeforeValidator(code_string)]] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    kinds: list[DeviceKind] = Field(default_factory=list)
    on_duty: ScheduleConfig | None = Field(None, description="duty roster: days/hours this "
                                           "officer is on duty (skip_holidays honoured)")
    quiet: ScheduleConfig | None = Field(None, description="hours in which nothing is sent")
    max_per_hour: int | None = Field(None, ge=1)
    escalation: bool = Field(False, description="receives only escalations")


class NotifyConfig(Strict):
    base_url: str = Field("", description="where people reach this monitord (links)")
    group_window: Duration = 30.0
    max_attempts: int = Field(12, ge=1, le=1000)
    backoff_initial: Duration = 5.0
    backoff_max: Duration = 1800.0
    lang: Literal["th", "en"] = "th"
    remind_every: Duration | None = Field(14400.0, description="repeat open tickets")
    escalate_after: Duration | None = Field(172800.0, description="escalate open tickets")
    daily_summary_at: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    channels: list[ChannelConfig] = Field(default_factory=list)


class SnmpEngineConfig(Strict):
    max_in_flight: int = Field(64, ge=1, le=10_000, description="SNMP requests outstanding "
                               "at once (UDP receive buffers overflow silently otherwise)")
    rcvbuf: int = Field(8 << 20, ge=65536, le=1 << 30, description="receive buffer, bytes")


class PjlinkEngineConfig(Strict):
    concurrency: int = Field(32, ge=1, le=10_000, description="PJLink sessions open at "
                             "once (each projector takes one at a time anyway)")
    timeout: Duration = Field(5.0, le=60.0, description="default wait for each answer "
                              "(a device's pjlink.timeout overrides it)")


class HttpEngineConfig(Strict):
    max_concurrency: int = Field(100, ge=1, le=100_000, description="HTTP checks in "
                                 "flight at once, engine-wide")
    max_connections_per_host: int = Field(2, ge=1, le=1000, description="connections "
                                          "to one origin (scheme, host, port) at most; "
                                          "idle ones are kept for reuse")
    keepalive_expiry: Duration = Field(30.0, ge=0, le=3600)


class TcpEngineConfig(Strict):
    max_concurrency: int = Field(200, ge=1, le=100_000, description="TCP checks in flight")


class DnsEngineConfig(Strict):
    max_concurrency: int = Field(200, ge=1, le=100_000, description="DNS checks in flight")


class EnginesConfig(Strict):
    icmp: IcmpEngineConfig = IcmpEngineConfig()
    snmp: SnmpEngineConfig = SnmpEngineConfig()
    pjlink: PjlinkEngineConfig = PjlinkEngineConfig()
    http: HttpEngineConfig = HttpEngineConfig()
    tcp: TcpEngineConfig = TcpEngineConfig()
    dns: DnsEngineConfig = DnsEngineConfig()


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value.strip())
    if not m:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = m.group(1) or m.group(3) or "0.0.0.0"
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {value!r}")
    return host, port
