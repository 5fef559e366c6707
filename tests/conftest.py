"""Test set-up: the labs are pytest plugins; a test's marker comes from its directory.

``tests/unit/`` (pure and fast, no root: ``pytest -m unit``), ``tests/integration/``
(real components on loopback), ``tests/e2e/`` (the daemon or demo as a process, browsers,
Prometheus).  Fixtures come from the labs registered below (``daemon_factory``,
``iptables``, ``broker``, ``snmpd``, ``snmpsim_factory``, ``webhook``, ``mailbox``, ...);
helpers are imported from the lab modules, never from another test file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.daemon_lab", "tests.mqtt_lab", "tests.snmp_lab", "tests.notify_lab",
                  "tests.pjlink_lab", "tests.services_lab"]

KINDS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.path)).parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
