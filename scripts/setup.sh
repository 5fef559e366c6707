#!/usr/bin/env bash
# Idempotent set-up for monitord on Debian/Ubuntu: system packages, then a virtualenv in
# .venv with monitord installed (editable) and its dev tools.  Safe to run again: it only
# installs what is missing.  Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

source scripts/lib.sh

# The demo needs iptables (to make its dead block dead); the tests also use fping (the
# reference pinger), promtool (from prometheus) and Debian's chromium (page tests drive it
# through Playwright; Playwright never downloads a browser of its own here).  python3 -m venv needs Debian's
# python3-venv when python3 comes from Debian.
pkgs=(iptables)
(( DEV )) && pkgs+=(fping prometheus chromium)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
apt_install setup "${pkgs[@]}"

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: monitord needs Python >= 3.11, found {sys.version.split()[0]}")
PY

[[ -x .venv/bin/python ]] || python3 -m venv .venv
extra=""
(( DEV )) && extra="[dev]"
stamp=".venv/.monitord-installed${extra}"
# Reinstall when pyproject.toml changed since the last install.
sum=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$sum" ]]; then
  echo "setup: installing monitord${extra} into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
  echo "$sum" > "$stamp"
fi

# Repair reports: Thai fonts and the Pango/HarfBuzz libraries WeasyPrint shapes Thai with
# (and poppler-utils, which the report tests use).
scripts/setup-reports.sh
# mosquitto: the demo runs its own broker for its simulated school agents; the tests and
# the MQTT benchmark start theirs.  SNMP (tests and benchmark only): net-snmp's snmpd, the
# snmp tools, prometheus-snmp-exporter (the benchmark's reference) and iproute2.
scripts/setup-mqtt.sh
(( DEV )) && scripts/setup-snmp.sh
# http/tcp/dns probes (tests and benchmark only): dnsmasq and prometheus-blackbox-exporter.
(( DEV )) && scripts/setup-services.sh
exit 0
