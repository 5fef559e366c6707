"""The PJLink probe (projectors, TCP 4352, Class 1 and 2, MD5 authentication).

* :mod:`.protocol` — the wire format, pure and fuzz-tested;
* :mod:`.client`   — one TCP session: greeting, digest, sequential commands;
* :mod:`.params`   — per-projector settings (:class:`PjlinkParams`);
* :mod:`.prober`   — :class:`PjlinkProber`, the ``pjlink`` probe (one session per
  projector at a time);
* :mod:`.metrics`  — what it exports.

No maintained asyncio PJLink library is installed (aiopjlink2 is not in the venv), so
this is a small client of our own.  See docs/pjlink.md.
"""

from monitord.probes.pjlink.params import PjlinkParams
from monitord.probes.pjlink.prober import PjlinkProber

__all__ = ["PjlinkParams", "PjlinkProber"]
