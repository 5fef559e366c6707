#!/usr/bin/env bash
# Idempotent installer for what the http/tcp/dns probes' tests and benchmark need.
#
# Debian packages:
#   dnsmasq-base                   a real DNS server, run by the tests on a high loopback
#                                  port (no system-wide service: the -base package only)
#   prometheus-blackbox-exporter   the reference prober bench/http_checks.py compares against
# Python packages (httpx; cryptography for the tests' certificates) are declared in
# pyproject.toml and installed by scripts/setup.sh.
#
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
apt_install_no_start setup-services dnsmasq-base prometheus-blackbox-exporter
