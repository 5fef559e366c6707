"""The ``http`` probe (blackbox_exporter's http module, in-process).

* :mod:`.params` — per-target settings (:class:`HttpParams`);
* :mod:`.prober` — :class:`HttpProber`: shared clients, concurrency limit, judging;
* :mod:`.metrics` — what it exports.
"""

from monitord.probes.http.metrics import HttpStats
from monitord.probes.http.params import HttpParams
from monitord.probes.http.prober import HttpProber

__all__ = ["HttpParams", "HttpProber", "HttpStats"]
