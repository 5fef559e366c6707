"""Typed per-device SNMP settings (``Target.params`` of the ``snmp`` probe) and profiles.

Config merges ``defaults.snmp`` → ``kinds.<kind>.snmp`` → a device's ``snmp`` key by key
and validates the result with :class:`SnmpParams` (docs/snmp.md).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitord.values import SecretRef

Profile = Literal["basic", "router", "switch", "access_point", "server", "ups"]

#: default profile by monitord.config.DeviceKind value (a device may override it)
PROFILE_BY_KIND: Final[dict[str, Profile]] = {
    "router": "router", "switch": "switch", "access_point": "access_point",
    "server": "server", "ups": "ups",
}


def profile_for_kind(kind: str) -> Profile:
    """The profile a device of ``kind`` gets when its config names none."""
    return PROFILE_BY_KIND.get(kind, "basic")


class SnmpV3Params(BaseModel):
    """SNMPv3 USM user.  Keys are references (env/file), never literal strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str = Field(min_length=1)
    auth_protocol: Literal["none", "md5", "sha", "sha224", "sha256", "sha384",
                           "sha512"] = "sha256"
    auth_key: SecretRef | None = None
    priv_protocol: Literal["none", "des", "aes128", "aes192", "aes256", "aes192c",
                           "aes256c"] = "aes128"
    priv_key: SecretRef | None = None
    context: str = ""

    @model_validator(mode="after")
    def _keys_match_level(self) -> SnmpV3Params:
        if self.auth_protocol != "none" and self.auth_key is None:
            raise ValueError("auth_key is required when auth_protocol is set")
        if self.priv_protocol != "none" and self.auth_protocol == "none":
            raise ValueError("privacy needs authentication (authPriv)")
        if self.priv_protocol != "none" and self.priv_key is None:
            raise ValueError("priv_key is required when priv_protocol is set")
        return self


class SnmpParams(BaseModel):
    """Per-device SNMP settings (``Target.params`` of the snmp probe).

    ``community`` should be a :class:`SecretRef` (``{env: NAME}`` / ``{file: PATH}``); a
    literal string is accepted for labs and kept as a :class:`SecretStr` so it never
    shows in ``repr``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal["1", "2c", "3"] = "2c"
    community: SecretRef | SecretStr | None = None
    port: int = Field(161, ge=1, le=65535)
    timeout: float = Field(1.0, gt=0, le=60, description="seconds per try")
    retries: int = Field(1, ge=0, le=10)
    max_repetitions: int = Field(25, ge=1, le=200)
    bulk: bool = Field(True, description="GETBULK for tables (false: GETNEXT, for bad agents)")
    profile: Profile = "basic"
    uplink: str | int | None = Field(None, description="ifName/ifDescr or ifIndex")
    v3: SnmpV3Params | None = None
    max_walk_varbinds: int = Field(50_000, ge=100)
    deadline: float | None = Field(None, gt=0, description="cap on one device's poll")

    @model_validator(mode="after")
    def _credentials_match_version(self) -> SnmpParams:
        if self.version == "3" and self.v3 is None:
            raise ValueError("version 3 needs a 'v3' block")
        if self.version != "3" and self.community is None:
            raise ValueError(f"version {self.version} needs a 'community'")
        return self
