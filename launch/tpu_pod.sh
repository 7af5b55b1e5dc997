#!/usr/bin/env bash
# Train on a Cloud TPU VM slice with several hosts: copy this checkout to every worker and start main.py on all of
# them (one process per host; jax.distributed.initialize() finds the others). Works on a stock TPU VM image.
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.KEY=VALUE ...]
# WORKDIR must be a path every worker sees, best a bucket path (gs://BUCKET/run, written through etils.epath) or an
# NFS/Filestore mount: every host writes its part of each checkpoint. Each worker keeps ~/genimg_jax/.venv between
# launches, replaces ~/genimg_jax/code with this checkout as committed (git HEAD), stops what an earlier launch left
# on the TPU, and runs detached from ssh: this script returns once every worker has started, and the run goes on when
# the connection drops. Logs: ~/genimg_jax/logs/<worker hostname>.log on each worker (the command to follow worker 0
# is printed at the end).
# A run stopped by a preemption notice has committed its checkpoint and exits with status 75: launch it again.
# Environment: PROJECT (gcloud project, default: gcloud's), COMPILE_CACHE (JAX's persistent compilation cache, on
# by default in WORKDIR/compile_cache; a bucket path such as gs://B/cache works too).
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.KEY=VALUE ...]" >&2
  exit 2
fi
tpu=$1 zone=$2 config=$3 workdir=$4
shift 4
cd "$(dirname "$0")/.."
gcloud_tpu=(gcloud compute tpus tpu-vm --zone="$zone" ${PROJECT:+--project="$PROJECT"})
on_all_workers() { "${gcloud_tpu[@]}" ssh "$tpu" --worker=all --command="$1"; }

archive=$(mktemp --suffix=.tar.gz)
trap 'rm -f "$archive"' EXIT
git archive --format=tar.gz --output="$archive" HEAD
"${gcloud_tpu[@]}" scp "$archive" "$tpu":genimg_jax.tar.gz --worker=all
remote_env=${COMPILE_CACHE:+COMPILE_CACHE=$(printf '%q' "$COMPILE_CACHE") }
on_all_workers "rm -rf ~/genimg_jax/code && mkdir -p ~/genimg_jax/code \
  && tar -xzf ~/genimg_jax.tar.gz -C ~/genimg_jax/code \
  && ${remote_env}bash ~/genimg_jax/code/launch/tpu_worker.sh ~/genimg_jax $(printf '%q ' "$config" "$workdir" "$@")"
echo "follow worker 0: ${gcloud_tpu[*]} ssh $tpu --worker=0 --command='tail -f ~/genimg_jax/logs/*.log'"
