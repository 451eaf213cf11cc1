#!/usr/bin/env bash
# Kill-and-resume: lenet5 killed with SIGKILL mid-run and resumed from its
# last checkpoint prints the same `final loss:` line as an uninterrupted
# run (bit-identical parameters give a bit-identical loss). With a launcher
# (e.g. "mpirun -np 2 ...") and --distributed, the same for a data-parallel
# run, where killing one rank must fail the whole job.
#
#   tests/kill_resume.sh LENET5 [LAUNCHER...]
set -uo pipefail
lenet5="$1"
shift
launcher=("$@")
distributed=()
[ ${#launcher[@]} -gt 0 ] && distributed=(--distributed)
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# 8,192 images in batches of 128: epochs of 64 steps, so the run crosses
# two epoch boundaries; checkpoints every 8 steps, the kill comes soon
# after the first, long before the 192nd step.
args=(--train-images 8192 --test-images 1000 --epochs 3 --batch 128 --threads 1 --checkpoint-every 8 "${distributed[@]}")

"${launcher[@]}" "$lenet5" "${args[@]}" --checkpoint "$dir/whole.ckpt" >"$dir/whole.log" 2>&1 ||
  { cat "$dir/whole.log"; echo "kill_resume: the uninterrupted run failed" >&2; exit 1; }
expected="$(grep '^final loss:' "$dir/whole.log")"

"${launcher[@]}" "$lenet5" "${args[@]}" --checkpoint "$dir/killed.ckpt" >"$dir/killed.log" 2>&1 &
job=$!
for _ in $(seq 1 3000); do [ -f "$dir/killed.ckpt" ] && break; sleep 0.01; done
[ -f "$dir/killed.ckpt" ] || { echo "kill_resume: no checkpoint appeared" >&2; exit 1; }
# The newest process writing this killed.ckpt: lenet5 itself, or with a
# launcher its last-started rank.
victim="$(pgrep -n -f -- "$dir/killed.ckpt")"
started=$SECONDS
kill -9 "$victim"
wait "$job"
code=$?
elapsed=$((SECONDS - started))
if grep -q '^final loss:' "$dir/killed.log"; then
  echo "kill_resume: the run finished before the kill; nothing was tested" >&2
  exit 1
fi
[ "$code" -ne 0 ] || { echo "kill_resume: the killed job exited with status 0" >&2; exit 1; }
echo "killed; the job ended with status $code in ${elapsed} s"
if [ ${#launcher[@]} -gt 0 ]; then
  # The job fails as a whole, in bounded time, saying which rank died.
  [ "$elapsed" -le 60 ] || { echo "kill_resume: the job took ${elapsed} s to fail" >&2; exit 1; }
  tail -5 "$dir/killed.log"
fi

"${launcher[@]}" "$lenet5" "${args[@]}" --checkpoint "$dir/killed.ckpt" --resume "$dir/killed.ckpt" \
  >"$dir/resumed.log" 2>&1 || { cat "$dir/resumed.log"; echo "kill_resume: the resumed run failed" >&2; exit 1; }
grep '^resumed' "$dir/resumed.log"
got="$(grep '^final loss:' "$dir/resumed.log")"
echo "uninterrupted: $expected"
echo "resumed:       $got"
[ "$got" = "$expected" ] || { echo "kill_resume: the resumed run ends differently" >&2; exit 1; }
