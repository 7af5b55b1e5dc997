#!/usr/bin/env bash
# Train with N processes on this machine, connected over 127.0.0.1: the multi-host code path on one box.
#   launch/local_multiprocess.sh N CONFIG WORKDIR [--mode=train|sample] [--config.KEY=VALUE ...]
# Environment:
#   CPU_DEVICES_PER_PROCESS=K  run on the CPU with K simulated devices per process (default: leave devices alone)
#   PORT=P                     coordinator port on 127.0.0.1 (default: a free one)
#   PYTHON=...                 interpreter (default: .venv/bin/python, installed by `make install` if missing)
#   LOG_DIR=...                local folder for the logs of processes i > 0 (default: WORKDIR/logs, or logs/ in this checkout when
#                              WORKDIR is a bucket path such as gs://B/run)
# Process 0 prints to this terminal; process i > 0 writes to LOG_DIR/process_<i>.log.
# If any process fails, the others are stopped and its exit status is returned.
set -euo pipefail
if [[ $# -lt 3 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_PROCESSES CONFIG WORKDIR [--mode=train|sample] [--config.KEY=VALUE ...]" >&2
  exit 2
fi
num_processes=$1 config=$2 workdir=$3
shift 3
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  make --silent install
  PYTHON=.venv/bin/python
fi
if [[ -n "${CPU_DEVICES_PER_PROCESS:-}" ]]; then
  export JAX_PLATFORMS=cpu
  flags=$(sed -E 's/--xla_force_host_platform_device_count=[0-9]+//g' <<<"${XLA_FLAGS:-}")
  export XLA_FLAGS="$flags --xla_force_host_platform_device_count=$CPU_DEVICES_PER_PROCESS"
fi
port=${PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
if [[ -z "${LOG_DIR:-}" ]]; then
  if [[ "$workdir" == *://* ]]; then LOG_DIR=logs; else LOG_DIR=$workdir/logs; fi
fi
mkdir -p "$LOG_DIR"

pids=()
for ((i = 0; i < num_processes; i++)); do
  args=(-m genimg_jax.main --config="$config" --workdir="$workdir" "$@"
    --config.distributed.coordinator_address="127.0.0.1:$port"
    --config.distributed.num_processes="$num_processes" --config.distributed.process_id="$i")
  if ((i == 0)); then
    "$PYTHON" "${args[@]}" &
  else
    "$PYTHON" "${args[@]}" >"$LOG_DIR/process_$i.log" 2>&1 &
  fi
  pids+=($!)
done

status=0
running=("${pids[@]}")
while ((${#running[@]})) && ((status == 0)); do
  wait -n -p finished "${running[@]}" || status=$?
  left=()
  for pid in "${running[@]}"; do [[ $pid == "$finished" ]] || left+=("$pid"); done
  running=("${left[@]}")
done
if ((status != 0)); then
  echo "$0: a process failed with exit status $status; stopping the others (logs: $LOG_DIR/)" >&2
  for pid in "${running[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
fi
exit "$status"
