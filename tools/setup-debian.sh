#!/usr/bin/env bash
# Installs the Debian 12 packages nabla needs, quietly.
#
#   tools/setup-debian.sh run     build the library and examples, and train
#                                 LeNet-5 on Fashion-MNIST (examples/lenet5)
#   tools/setup-debian.sh test    all of the above, plus what the test suite
#                                 needs (meson test -C build)
#
# run:  build-essential meson ninja-build pkg-config zlib1g-dev
#       dataset-fashion-mnist (installs the data in /usr/share/datasets)
#       fortunes (English text for examples/charlm, /usr/share/games/fortunes)
# test: the run packages, plus libcriterion-dev (the unit tests), python3
#       (the safetensors and parity helpers), graphviz (the DOT export
#       test renders with dot), python3-torch and python3-numpy (the
#       torch_parity test compares the CNN ops with PyTorch; without torch
#       it would skip), libopenmpi-dev and openmpi-bin (nabla_mpi, the
#       data-parallel library, and its tests under mpirun).
#
# Run as root, or as a user with sudo. README.md's two commands and .ci/run
# call this script.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

run_packages=(build-essential meson ninja-build pkg-config zlib1g-dev dataset-fashion-mnist fortunes)
test_packages=(libcriterion-dev python3 graphviz python3-torch python3-numpy libopenmpi-dev openmpi-bin)

case "${1:-}" in
  run) packages=("${run_packages[@]}") ;;
  test) packages=("${run_packages[@]}" "${test_packages[@]}") ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo DEBIAN_FRONTEND=noninteractive); fi

"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
