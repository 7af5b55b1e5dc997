#!/usr/bin/env bash
# Train on a Cloud TPU VM slice with several hosts: copy this checkout to every worker, install it there, and run
# main.py on all workers at once (one process per host; jax.distributed.initialize() finds the others).
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.KEY=VALUE ...]
# WORKDIR must be a path every worker sees (an NFS/Filestore mount or a mounted bucket): every host writes its part
# of each checkpoint. Environment: PROJECT (gcloud project, default: gcloud's), REMOTE_PYTHON (default python3.11),
# SKIP_INSTALL=1 to reuse the last install. The checkout is copied as committed (git HEAD).
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

if [[ -z "${SKIP_INSTALL:-}" ]]; then
  archive=$(mktemp --suffix=.tar.gz)
  trap 'rm -f "$archive"' EXIT
  git archive --format=tar.gz --output="$archive" HEAD
  "${gcloud_tpu[@]}" scp "$archive" "$tpu":genimg_jax.tar.gz --worker=all
  on_all_workers "rm -rf ~/genimg_jax && mkdir ~/genimg_jax && tar -xzf ~/genimg_jax.tar.gz -C ~/genimg_jax \
    && cd ~/genimg_jax && ${REMOTE_PYTHON:-python3.11} -m venv .venv \
    && .venv/bin/pip install --quiet -c constraints.txt -e '.[tpu]'"
fi
on_all_workers "cd ~/genimg_jax && .venv/bin/python -m genimg_jax.main $(printf '%q ' --config="$config" \
  --workdir="$workdir" --config.distributed.init=cluster "$@")"
