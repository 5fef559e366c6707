"""Typed per-target settings of the ``dns`` probe (``Target.params``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitord.probes.base import valid_regex
from monitord.probes.dns.wire import encode_name
from monitord.values import Duration

QueryType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "PTR"]


class DnsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, description="the name to look up")
    type: QueryType = "A"
    server: str | None = Field(None, description="server address; default: the device's")
    port: int = Field(53, ge=1, le=65535)
    transport: Literal["udp", "tcp"] = Field("udp", description="udp falls back to tcp "
                                             "when the reply is truncated")
    recursion: bool = True
    timeout: Duration = Field(2.0, gt=0, le=60, description="per try")
    retries: int = Field(1, ge=0, le=5, description="UDP retries")
    expect_rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] = "NOERROR"
    require_answer: bool = Field(True, description="NOERROR with no answer fails")
    expect_contains: list[str] = Field(default_factory=list, description="each must be an "
                                       "answer's data, e.g. 127.0.0.5")
    expect_regex: list[str] = Field(default_factory=list, description="each must match "
                                    "some answer's data")
    max_lookup_time: Duration | None = Field(None, gt=0, description="slower → DEGRADED")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        encode_name(v)
        return v

    @field_validator("expect_regex")
    @classmethod
    def _regex(cls, v: list[str]) -> list[str]:
        return [valid_regex(rx) for rx in v]
