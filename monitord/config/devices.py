"""The office, its schools and devices."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from monitord.config.settings import DeviceKind, Settings, Strict
from monitord.values import TimeZoneName, code_string


class Office(Strict):
    name: str = Field(min_length=1, description="full name of the area office")
    short_name: str = ""
    area_code: Annotated[str, BeforeValidator(code_string)] = Field(pattern=r"^\d{4}$")
    group_name: str = "กลุ่มส่งเสริมการศึกษาทางไกล เทคโนโลยีสารสนเทศและการสื่อสาร"
    timezone: TimeZoneName = "Asia/Bangkok"


class Location(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class School(Strict):
    name: str = Field(min_length=1)
    district: str = Field(min_length=1, description="อำเภอ")
    subdistrict: str = Field("", description="ตำบล")
    isp: str = Field("", description="ผู้ให้บริการอินเทอร์เน็ต")
    percode: Annotated[str, BeforeValidator(code_string)] | None = Field(
        None, pattern=r"^\d{6}$"
    )
    location: Location | None = None
    schedule: str | None = Field(None, description="active hours for this school's devices")


def _validate_address(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("address must not be empty")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", value) or not re.fullmatch(
        r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?",
        value,
    ):
        raise ValueError(f"{value!r} is neither an IP address nor a valid host name")
    return value


ProbeName = Literal["icmp", "snmp", "mqtt", "pjlink", "http", "tcp", "dns"]
ProbeList = list[ProbeName] | dict[ProbeName, dict[str, Any] | None]


def _default_probes() -> list[ProbeName]:
    return ["icmp"]


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_IN_ID = re.compile(rf"(?<![0-9]){_OCTET}([._-]){_OCTET}\1{_OCTET}\1{_OCTET}(?![0-9])")


def _validate_device_id(value: str) -> str:
    """Device ids are public (status API, /metrics): they must not carry an IP address."""
    looks_like_ip = _IPV4_IN_ID.search(value) is not None
    if ":" in value:
        for part in {value, *re.split(r"[_-]", value)}:
            try:
                ipaddress.ip_address(part)
            except ValueError:
                continue
            looks_like_ip = True
    if looks_like_ip:
        raise ValueError(f"{value!r} looks like an IP address; device ids are shown "
                         "publicly, so use a name like school-62020001-router")
    return value


class Device(Settings):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
                    description="shown publicly: a name, never an IP address")
    name: str = ""
    school: Annotated[str, BeforeValidator(code_string)] | None = Field(
        None, description="SMIS code; omit for office devices"
    )
    unit: str = Field("", description="office work unit (กลุ่มงาน) served, office devices")
    kind: DeviceKind
    address: Annotated[str, BeforeValidator(str)]
    hostname: str = ""
    brand_model: str = ""
    serial: str = ""
    parent: str | None = None
    probes: ProbeList = Field(default_factory=_default_probes)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return _validate_address(v)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _validate_device_id(v)

    @property
    def probe_names(self) -> list[str]:
        return list(self.probes)

    @property
    def display_name(self) -> str:
        return self.name or self.id
