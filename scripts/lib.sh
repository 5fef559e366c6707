# Shared by the set-up scripts: install Debian packages that are missing, idempotently.
# Usage (after sourcing): apt_install TAG pkg...   — TAG prefixes messages and the log file.

apt_install() {
  local tag=$1; shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  (( ${#missing[@]} )) || return 0
  echo "$tag: installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "$tag: need root (or sudo) to install: ${missing[*]}" >&2; return 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet: update first when apt cannot see them.
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    $sudo apt-get update -qq
  fi
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >"/tmp/$tag-apt.log" 2>&1; then
    $sudo apt-get update -qq   # stale lists: refresh once and retry
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Like apt_install, but a package that ships a system-wide daemon (snmpd on udp/161,
# mosquitto on 1883) is installed without starting it: monitord's tests and demo run
# their own instances.  Usage: apt_install_no_start TAG pkg...
apt_install_no_start() {
  local tag=$1; shift
  local policy=/usr/sbin/policy-rc.d made=0
  if [[ ! -e $policy ]] && [[ $(id -u) -eq 0 ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    made=1
  fi
  local rc=0
  apt_install "$tag" "$@" || rc=$?
  (( made )) && rm -f "$policy"
  return $rc
}
