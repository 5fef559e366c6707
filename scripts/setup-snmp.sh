#!/usr/bin/env bash
# Idempotent installer for what the SNMP probe, its tests and its benchmark need.
#
# Debian packages:
#   snmpd                      net-snmp's C agent: the fast, real agent of the tests and
#                              the benchmark (one process answers on many loopback addresses)
#   snmp                       snmpget/snmpbulkwalk, to cross-check by hand
#   prometheus-snmp-exporter   the reference poller the benchmark compares against
#   iproute2                   network namespaces + veth pairs: real interfaces for snmpd
#   prometheus                 promtool (check metrics)
# PyPI (into .venv):
#   pysnmp>=7.1, cryptography  SNMPv3 (USM auth/priv) path of the probe (pysnmp needs
#                              cryptography for AES/DES but does not require it)
#   snmpsim, pysmi             the simulator serving recorded real devices (snmpsim needs
#                              pysmi but does not declare it)
# Optional: scripts/setup-snmp.sh --compare also installs ezsnmp (C bindings over
# Net-SNMP) for the library comparison in bench/snmp_poll.py --compare.
#
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPARE=0
[[ "${1:-}" == "--compare" ]] && COMPARE=1

source scripts/lib.sh
# Keep Debian's snmpd from starting a system-wide agent on udp/161 while installing.
if ! dpkg-query -W -f='${Status}' snmpd 2>/dev/null | grep -q "install ok installed"; then
  if [[ ! -e /usr/sbin/policy-rc.d ]] && [[ $(id -u) -eq 0 ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
fi
apt_install setup-snmp snmpd snmp prometheus-snmp-exporter iproute2 prometheus

PY=.venv/bin/python
if [[ ! -x "$PY" ]]; then
  echo "setup-snmp: no .venv yet; run scripts/setup.sh first" >&2
  exit 1
fi
if ! "$PY" -c 'import pysnmp, snmpsim, pysmi, cryptography; from pysnmp.hlapi.v3arch.asyncio import get_cmd' \
    >/dev/null 2>&1; then
  echo "setup-snmp: installing pysnmp, snmpsim, pysmi into .venv" >&2
  "$PY" -m pip install -q --disable-pip-version-check "pysnmp>=7.1,<8" "cryptography>=42" "snmpsim>=1.2" "pysmi>=1.5"
fi
if (( COMPARE )) && ! "$PY" -c 'import ezsnmp' >/dev/null 2>&1; then
  echo "setup-snmp: installing ezsnmp (comparison only)" >&2
  "$PY" -m pip install -q --disable-pip-version-check "ezsnmp>=2"
fi
