#!/usr/bin/env bash
# Train (or sample) with one process on this machine, using every local device.
#   launch/local.sh CONFIG WORKDIR [--mode=sample] [--config.KEY=VALUE ...]
# Simulate N devices on a CPU with XLA_FLAGS=--xla_force_host_platform_device_count=N.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG WORKDIR [--mode=train|sample] [--config.KEY=VALUE ...]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
make --silent install
exec .venv/bin/python -m genimg_jax.main --config="$1" --workdir="$2" "${@:3}"
