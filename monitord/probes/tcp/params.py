"""Typed per-target settings of the ``tcp`` probe (``Target.params``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitord.probes.base import valid_regex
from monitord.values import Duration


class TcpParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    port: int = Field(ge=1, le=65535)
    tls: bool = Field(False, description="TLS right after connect (imaps 993, smtps 465)")
    tls_verify: bool = True
    server_name: str | None = Field(None, description="TLS SNI/verified name; default: "
                                    "the device address")
    expect_banner: str | None = Field(None, description="regex the server's first bytes "
                                      "must match, e.g. '^220 ' for SMTP")
    send: str | None = Field(None, description="text sent after the banner; "
                      "\\r and \\n as typed escapes or real line ends")
    expect: str | None = Field(None, description="regex the reply to `send` must match")
    ip_protocol: Literal["auto", "ip4", "ip6"] = "auto"
    timeout: Duration = Field(5.0, gt=0, le=120)
    max_connect_time: Duration | None = Field(None, gt=0, description="slower → DEGRADED")
    cert_expiry_warning: Duration = Field(21 * 86400.0, ge=0)

    @field_validator("expect_banner", "expect")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return None if v is None else valid_regex(v)
