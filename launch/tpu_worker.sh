#!/usr/bin/env bash
# One TPU VM worker's part of launch/tpu_pod.sh: stop what a previous launch left holding the TPU, make or reuse the
# virtual environment, and start main.py detached from the ssh session, logging to ROOT/logs/<worker>.log.
#   bash ROOT/code/launch/tpu_worker.sh ROOT CONFIG WORKDIR [--config.KEY=VALUE ...]
# ROOT (e.g. ~/genimg_jax) holds code/ (this checkout, replaced on every launch), .venv/ (kept: reinstalled only when
# setup.cfg or constraints.txt change) and logs/. Stock TPU VM images have no Python 3.11: uv installs one.
# Environment: COMPILE_CACHE (JAX's persistent compilation cache, default WORKDIR/compile_cache).
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 ROOT CONFIG WORKDIR [--config.KEY=VALUE ...]" >&2
  exit 2
fi
root=$1 config=$2 workdir=$3
shift 3
mkdir -p "$root/logs"
pid_file=$root/run.pid
log=$root/logs/$(hostname).log

# A run of an earlier launch (or its orphaned children) keeps the TPU open and the new one would fail to get it.
if [[ -f "$pid_file" ]]; then
  kill -- "-$(cat "$pid_file")" 2>/dev/null || true # its whole process group: setsid made it the leader
  rm -f "$pid_file"
fi
pkill -f -- "-m genimg_jax[.]main" 2>/dev/null || true
for device in /dev/accel* /dev/vfio/[0-9]*; do
  [[ -e "$device" ]] && { sudo fuser -k "$device" 2>/dev/null || true; }
done

export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null; then
  python3 -m pip install --quiet --user uv
fi
stamp=$root/.venv/.installed
wanted=$(cat "$root/code/setup.cfg" "$root/code/constraints.txt" | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  [[ -d "$root/.venv" ]] || uv venv --quiet --python 3.11 "$root/.venv"
  VIRTUAL_ENV=$root/.venv uv pip install --quiet -c "$root/code/constraints.txt" -e "$root/code[tpu]"
  echo "$wanted" >"$stamp"
fi

export JAX_COMPILATION_CACHE_DIR=${COMPILE_CACHE:-$workdir/compile_cache}
cd "$root/code"
# setsid + nohup: the run outlives the ssh session that started it (no SIGHUP), in its own process group.
setsid nohup "$root/.venv/bin/python" -m genimg_jax.main --config="$config" --workdir="$workdir" \
  --config.distributed.init=cluster "$@" >"$log" 2>&1 </dev/null &
echo $! >"$pid_file"
echo "$(hostname): started process $! (log: $log)"
