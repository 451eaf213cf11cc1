#!/usr/bin/env bash
# Built-in ops use only what a user op can use: no file under ops/ includes
# the engine's private header. Exits 1 naming the files that do.
#
#   tools/check-layering.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
offenders="$(grep -rl --include='*.c' --include='*.h' '"autograd/internal.h"' ops/ || true)"
if [ -n "$offenders" ]; then
  echo "these files in ops/ include autograd/internal.h (use include/nabla/op.h):" >&2
  echo "$offenders" >&2
  exit 1
fi
echo "layering: no op includes autograd/internal.h"
