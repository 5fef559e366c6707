#!/usr/bin/env bash
# Idempotent installer for what the MQTT source, its tests and its benchmark need.
#
# Debian packages:
#   mosquitto          the real MQTT broker the tests and the benchmark start (each on its
#                      own loopback port with its own config file; a system-wide broker on
#                      1883, if any, is neither used nor touched)
#   mosquitto-clients  mosquitto_pub / mosquitto_sub: the reference publisher/subscriber
#                      the benchmark compares against
# PyPI (into .venv):
#   aiomqtt>=2.3,<3    the maintained asyncio MQTT client (successor of asyncio-mqtt); it
#                      pulls in paho-mqtt>=2
#   orjson>=3.9        JSON decoding ~3-5x faster than the stdlib for the small agent
#                      payloads: ingest is CPU-bound in Python (see docs/benchmarks-mqtt.md);
#                      the source falls back to the stdlib json when it is missing
#
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
# Keep Debian's mosquitto package from starting a system-wide broker on 1883 while installing.
if ! dpkg-query -W -f='${Status}' mosquitto 2>/dev/null | grep -q "install ok installed"; then
  if [[ ! -e /usr/sbin/policy-rc.d ]] && [[ $(id -u) -eq 0 ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
fi
apt_install setup-mqtt mosquitto mosquitto-clients

PY=.venv/bin/python
if [[ ! -x "$PY" ]]; then
  echo "setup-mqtt: no .venv yet; run scripts/setup.sh first" >&2
  exit 1
fi
if ! "$PY" -c 'import aiomqtt, orjson, paho.mqtt' >/dev/null 2>&1; then
  echo "setup-mqtt: installing aiomqtt, orjson into .venv" >&2
  "$PY" -m pip install -q --disable-pip-version-check "aiomqtt>=2.3,<3" "orjson>=3.9"
fi
