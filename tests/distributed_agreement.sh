#!/usr/bin/env bash
# lenet5 --distributed: for a given rank count the final loss is the same
# run to run and for 1 or 2 threads per rank; and in float64, where
# rounding cannot grow into a visible difference in a few dozen steps,
# 2 and 3 ranks end with a single process's final loss to all 9 printed
# digits (float32 runs agree to rounding for the first steps, then the
# training dynamics amplify it; docs/distributed.md has the figures).
#
#   tests/distributed_agreement.sh LENET5 MPIRUN
set -euo pipefail
lenet5="$1"
mpirun="$2"
final_loss() { grep '^final loss:' || { echo "distributed_agreement: no final loss" >&2; exit 1; }; }
run() { local ranks="$1"; shift; "$mpirun" --oversubscribe -np "$ranks" "$lenet5" --distributed "$@" 2>&1 | final_loss; }

first="$(run 2 --max-steps 60 --threads 1)"
again="$(run 2 --max-steps 60 --threads 1)"
threads="$(run 2 --max-steps 60 --threads 2)"
echo "2 ranks x 1 thread: $first; again: $again; 2 ranks x 2 threads: $threads"
[ "$first" = "$again" ] || { echo "distributed_agreement: two runs differ" >&2; exit 1; }
[ "$first" = "$threads" ] || { echo "distributed_agreement: the thread count changes the result" >&2; exit 1; }

single="$("$lenet5" --max-steps 20 --dtype float64 | final_loss)"
two="$(run 2 --max-steps 20 --dtype float64)"
three="$(run 3 --max-steps 20 --dtype float64)"
echo "float64: 1 process: $single; 2 ranks: $two; 3 ranks: $three"
[ "$single" = "$two" ] && [ "$single" = "$three" ] ||
  { echo "distributed_agreement: the rank count changes the float64 result beyond rounding" >&2; exit 1; }
