#!/usr/bin/env bash
# Idempotent set-up for monitord on Debian/Ubuntu: system packages, then a virtualenv in
# .venv with monitord installed (editable) and its dev tools.  Safe to run again: it only
# installs what is missing.  Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

# command → Debian package.  The demo needs only iptables (to make its dead block dead);
# the tests also use fping (reference pinger) and promtool (from prometheus).
declare -A NEED=([iptables]=iptables [python3]=python3)
if (( DEV )); then
  NEED+=([fping]=fping [promtool]=prometheus)
fi

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" ]] || missing+=("${NEED[$cmd]}")
done
# python3 -m venv needs Debian's python3-venv when python3 comes from Debian.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

if (( ${#missing[@]} )); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  # Never start services from package scripts (e.g. prometheus) on a dev/CI machine.
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet: update first when apt cannot see them.
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/monitord-apt.log 2>&1; then
    $SUDO apt-get update -qq   # stale lists: refresh once and retry
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

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
