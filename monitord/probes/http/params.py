"""Typed per-target settings of the ``http`` probe (``Target.params``).

Config merges ``defaults.http`` → ``kinds.<kind>.http`` → a device's ``probes.http`` key by
key and validates the result here.  Without ``url`` the URL is built from the device's
address: ``{scheme}://{address}[:{port}]{path}``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from monitord.probes.base import valid_regex
from monitord.values import Duration, SecretRef


class HttpParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    url: str | None = Field(None, description="full URL; default: built from the address")
    scheme: Literal["http", "https"] = "http"
    port: int | None = Field(None, ge=1, le=65535)
    path: str = Field("/", pattern=r"^/")
    valid_status_codes: list[int] = Field(default_factory=list, description="default: "
                                          "200-299 (as blackbox_exporter)")
    body_contains: str | None = Field(None, description="keyword the body must contain")
    body_not_contains: str | None = Field(None, description="keyword the body must not "
                                          "contain")
    body_regex: list[str] = Field(default_factory=list, description="must all match")
    body_not_regex: list[str] = Field(default_factory=list, description="must not match")
    max_response_time: Duration | None = Field(None, gt=0, description="slower → DEGRADED")
    follow_redirects: bool = True
    max_redirects: int = Field(5, ge=0, le=20)
    ip_protocol: Literal["auto", "ip4", "ip6"] = "auto"
    tls_verify: bool = True
    headers: dict[str, SecretRef | SecretStr] = Field(default_factory=dict, description=
                                                      "request headers; values may be "
                                                      "secrets ({env|file}), never logged")
    timeout: Duration = Field(10.0, gt=0, le=120)
    cert_expiry_warning: Duration = Field(21 * 86400.0, ge=0, description="certificate "
                                          "expiring within this → DEGRADED")
    max_body_bytes: int = Field(1 << 20, ge=0, le=64 << 20, description="body read at "
                                "most (keyword checks see this much)")

    @field_validator("body_regex", "body_not_regex")
    @classmethod
    def _regex(cls, v: list[str]) -> list[str]:
        return [valid_regex(rx) for rx in v]

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("url must start with http:// or https:// and name a host")
        if v is not None and "@" in v.split("/", 3)[2]:
            raise ValueError("no credentials in the url (it shows in logs and pages): "
                             "send them as a header whose value is a secret {env|file}")
        return v

    @field_validator("valid_status_codes")
    @classmethod
    def _codes(cls, v: list[int]) -> list[int]:
        for code in v:
            if not 100 <= code <= 599:
                raise ValueError(f"status code {code} is not 100-599")
        return v

    def target_url(self, address: str) -> str:
        if self.url is not None:
            return self.url
        host = address
        try:
            if ipaddress.ip_address(address).version == 6:
                host = f"[{address}]"
        except ValueError:
            pass
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.path}"

    def status_ok(self, code: int) -> bool:
        if self.valid_status_codes:
            return code in self.valid_status_codes
        return 200 <= code <= 299
