"""The ``dns`` probe: :mod:`.wire` (codec), :mod:`.params`, :mod:`.prober`, :mod:`.metrics`."""

from monitord.probes.dns.metrics import DnsStats
from monitord.probes.dns.params import DnsParams
from monitord.probes.dns.prober import DnsProber

__all__ = ["DnsParams", "DnsProber", "DnsStats"]
