"""The OIDs the profiles read (MIB-II, IF-MIB, HOST-RESOURCES, UCD-SNMP, UPS-MIB, XUPS)."""

from __future__ import annotations

from typing import Final

from monitord.probes.snmp import codec as w


def oid(text: str) -> bytes:
    return w.encode_oid(w.parse_oid(text))


SYS_DESCR = oid("1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = oid("1.3.6.1.2.1.1.2.0")
SYS_UPTIME = oid("1.3.6.1.2.1.1.3.0")
SYS_NAME = oid("1.3.6.1.2.1.1.5.0")

IF = "1.3.6.1.2.1.2.2.1."
IFX = "1.3.6.1.2.1.31.1.1.1."
#: interface columns walked by the router/switch/access_point profiles
IF_COLUMNS: Final = {
    "descr": oid(IF + "2"), "speed": oid(IF + "5"), "admin_status": oid(IF + "7"),
    "oper_status": oid(IF + "8"), "in_octets32": oid(IF + "10"),
    "in_discards": oid(IF + "13"), "in_errors": oid(IF + "14"),
    "out_octets32": oid(IF + "16"), "out_discards": oid(IF + "19"),
    "out_errors": oid(IF + "20"), "name": oid(IFX + "1"), "in_octets64": oid(IFX + "6"),
    "out_octets64": oid(IFX + "10"), "high_speed": oid(IFX + "15"),
}
HR_PROCESSOR_LOAD = oid("1.3.6.1.2.1.25.3.3.1.2")
HR_STORAGE: Final = {
    "type": oid("1.3.6.1.2.1.25.2.3.1.2"), "descr": oid("1.3.6.1.2.1.25.2.3.1.3"),
    "unit": oid("1.3.6.1.2.1.25.2.3.1.4"), "size": oid("1.3.6.1.2.1.25.2.3.1.5"),
    "used": oid("1.3.6.1.2.1.25.2.3.1.6"),
}
HR_STORAGE_RAM = (1, 3, 6, 1, 2, 1, 25, 2, 1, 2)
LA_LOAD = [oid(f"1.3.6.1.4.1.2021.10.1.3.{i}") for i in (1, 2, 3)]
#: UPS-MIB (RFC 1628) and Eaton/Powerware XUPS-MIB scalars; whichever the agent has
UPS_SCALARS: Final = {
    "battery_status": oid("1.3.6.1.2.1.33.1.2.1.0"),      # 1 unknown 2 normal 3 low 4 depleted
    "seconds_on_battery": oid("1.3.6.1.2.1.33.1.2.2.0"),
    "minutes_remaining": oid("1.3.6.1.2.1.33.1.2.3.0"),
    "charge_percent": oid("1.3.6.1.2.1.33.1.2.4.0"),
    "output_source": oid("1.3.6.1.2.1.33.1.4.1.0"),       # 3 normal, 5 battery
    "x_seconds_remaining": oid("1.3.6.1.4.1.534.1.2.1.0"),
    "x_charge_percent": oid("1.3.6.1.4.1.534.1.2.4.0"),
    "x_abm_status": oid("1.3.6.1.4.1.534.1.2.5.0"),       # 2 discharging
    "x_output_source": oid("1.3.6.1.4.1.534.1.4.5.0"),    # 3 normal, 5 battery
}

WRAP32: Final = 1 << 32
WRAP64: Final = 1 << 64
TICKS_WRAP: Final = 1 << 32   # sysUpTime is TimeTicks (hundredths), wraps after 497 days
