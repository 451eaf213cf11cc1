#!/usr/bin/env bash
# LeNet-5 training throughput, one process against a data-parallel job on
# the same machine: 1 rank x 2 threads, then 2 ranks x 1 thread with the
# default buckets, with 64 KiB buckets, and without overlap, alternating
# for ROUNDS rounds (docs/distributed.md). Prints the images/s of one
# epoch and the all-reduce line of each job.
#
#   bench/data_parallel.sh BUILD_DIR [ROUNDS]
set -euo pipefail
lenet5="$1/examples/lenet5"
rounds="${2:-5}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rate() { tr '\r' '\n' <"$log" | grep -o '[0-9]* img/s' | tail -1; }
sums() { grep -o '[0-9.]* ms a step, [0-9.]* ms' "$log" || true; }
echo "round | 1 rank x 2 threads | 2 ranks x 1 thread: default | 64 KiB buckets | no overlap"
for round in $(seq 1 "$rounds"); do
  "$lenet5" --epochs 1 --threads 2 >"$log" 2>&1
  line="$round | $(rate)"
  for setting in "" NABLA_MPI_BUCKET_BYTES=65536 NABLA_MPI_OVERLAP=0; do
    env $setting mpirun -np 2 ${setting:+-x "${setting%%=*}"} "$lenet5" --distributed --epochs 1 >"$log" 2>&1
    line="$line | $(rate) ($(sums))"
  done
  echo "$line"
done
