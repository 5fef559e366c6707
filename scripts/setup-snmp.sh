#!/usr/bin/env bash
# Idempotent installer for what the SNMP probe's tests and benchmark need.
#
# Debian packages:
#   snmpd                      net-snmp's C agent: the fast, real agent of the tests and
#                              the benchmark (one process answers on many loopback addresses)
#   snmp                       snmpget/snmpbulkwalk, to cross-check by hand; snmptrap and
#                              snmpinform send the trap receiver's test traps
#   prometheus-snmp-exporter   the reference poller the benchmark compares against
#   iproute2                   network namespaces + veth pairs: real interfaces for snmpd
#   prometheus                 promtool (check metrics)
# Python packages (pysnmp and cryptography for SNMPv3; snmpsim and pysmi for the tests)
# are declared in pyproject.toml and installed by scripts/setup.sh.
#
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
apt_install_no_start setup-snmp snmpd snmp prometheus-snmp-exporter iproute2 prometheus
