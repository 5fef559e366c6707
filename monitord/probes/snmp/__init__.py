"""The SNMP probe, in layers each small enough to read on its own.

* :mod:`.codec`     — the BER codec for SNMPv1/v2c messages (pure, fuzz-tested);
* :mod:`.transport` — one shared UDP socket per address family, reply routing and checks;
* :mod:`.session`   — GET/GETNEXT/GETBULK sessions (v1/v2c over the transport, v3 via
  pysnmp) and the table walker with loop/budget protection;
* :mod:`.params`    — per-device settings (:class:`SnmpParams`) and profiles;
* :mod:`.oids`, :mod:`.tables` — what the profiles read and how answers are read;
* :mod:`.state`     — engine counters and per-device memory (monotonic counters, reboots);
* :mod:`.prober`    — :class:`SnmpProber`, the ``snmp`` probe;
* :mod:`.metrics`   — what it exports (engine counters, each device's readings);
* :mod:`.traps`     — the trap receiver (v1/v2c traps, informs), run by the app like MQTT.

See docs/snmp.md for the configuration keys, OIDs and what every value means.
"""

from monitord.probes.snmp.oids import SYS_DESCR, SYS_NAME, SYS_OBJECT_ID, SYS_UPTIME
from monitord.probes.snmp.params import (
    PROFILE_BY_KIND,
    Profile,
    SnmpParams,
    SnmpV3Params,
    profile_for_kind,
)
from monitord.probes.snmp.prober import SnmpProber
from monitord.probes.snmp.session import REASONS
from monitord.probes.snmp.state import SnmpStats

__all__ = ["PROFILE_BY_KIND", "REASONS", "SYS_DESCR", "SYS_NAME", "SYS_OBJECT_ID", "SYS_UPTIME",
           "Profile", "SnmpParams", "SnmpProber", "SnmpStats", "SnmpV3Params",
           "profile_for_kind"]
