#!/usr/bin/env bash
# Runs examples under valgrind memcheck: no errors and no definite leaks
# allowed ("possibly lost" blocks, such as the GEMM's per-thread packing
# scratch held by pool workers, are not errors).
#
#   tools/memcheck.sh [BUILD_DIR]     default: build
#
# The LeNet-5 run uses tests/memory_profile on synthetic images (the real
# examples/lenet5 evaluates 10,000 test images per epoch, which takes about
# ten minutes under valgrind), with two threads so the pool runs too.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
check() {
  echo "-- valgrind $*"
  valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --error-exitcode=1 "$@" >/dev/null
}
check "$build/examples/xor"
check "$build/examples/custom_op"
for model in gpt lstm; do
  check "$build/examples/charlm" --model "$model" --steps 2 --batch 2 --val-windows 2 --sample 4 --data docs
done
check "$build/examples/second_order" maml --steps 20
check "$build/tests/memory_profile" --synthetic --steps 4 --warmup 2 --every 1 --threads 2 --no-check
echo "memcheck: no errors, no definite leaks"
