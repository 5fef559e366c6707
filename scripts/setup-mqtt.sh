#!/usr/bin/env bash
# Idempotent installer for what the MQTT source, its tests and its benchmark need.
#
# Debian packages:
#   mosquitto          the real MQTT broker the tests and the benchmark start (each on its
#                      own loopback port with its own config file; a system-wide broker on
#                      1883, if any, is neither used nor touched)
#   mosquitto-clients  mosquitto_pub / mosquitto_sub: the reference publisher/subscriber
#                      the benchmark compares against
# Python packages (aiomqtt, orjson) are monitord's own dependencies in pyproject.toml,
# installed by scripts/setup.sh.
#
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
apt_install_no_start setup-mqtt mosquitto mosquitto-clients
