#!/usr/bin/env bash
# Trains LeNet-5 on Fashion-MNIST for a few steps with 1 and with 2 threads
# and checks that both print the same `final loss:` line (bit-identical
# training; see docs/threads.md).
#
#   tools/determinism.sh [BUILD_DIR] [STEPS]     default: build 200
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
steps="${2:-200}"
run() {
  "$build/examples/lenet5" --max-steps "$steps" --seed 1 --threads "$1" | grep '^final loss:'
}
one="$(run 1)"
two="$(run 2)"
echo "1 thread:  $one"
echo "2 threads: $two"
if [ -z "$one" ] || [ "$one" != "$two" ]; then
  echo "determinism: the final loss depends on the thread count" >&2
  exit 1
fi
echo "determinism: identical"
