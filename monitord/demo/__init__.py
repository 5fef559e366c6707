"""``monitord demo``: a simulated area office on loopback, monitored by the real daemon.

- :mod:`~monitord.demo.office` — the lab's config (:func:`~monitord.demo.office.build_lab`)
  and the demo's life cycle (:func:`~monitord.demo.office.run_demo`)
- :mod:`~monitord.demo.broker` — the demo's own mosquitto
- :mod:`~monitord.demo.agents` — simulated DLTV receivers and TVs publishing over MQTT
- :mod:`~monitord.demo.snmp_agent` — simulated SNMP v2c agents (UDP), answering for the
  devices of :mod:`~monitord.demo.snmp_devices` with :mod:`~monitord.demo.snmp_mib`
- :mod:`~monitord.demo.processes` — child processes: start (dying with the parent),
  wait with a deadline, stop; shared with the tests' labs

The tests' labs (tests/*_lab.py) use the broker, the SNMP codec and the process helpers
from here instead of copies.
"""
