"""The ``tcp`` probe: connect, optional TLS, banner and send/expect (:class:`TcpProber`)."""

from monitord.probes.tcp.metrics import TcpStats
from monitord.probes.tcp.params import TcpParams
from monitord.probes.tcp.prober import TcpProber

__all__ = ["TcpParams", "TcpProber", "TcpStats"]
