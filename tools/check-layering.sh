#!/usr/bin/env bash
# The layers hold: built-in ops use only what a user op can use (no file
# under ops/ includes the engine's private header), and kernels/ and base/
# know nothing of ops, tensors or the tape (no include of ops/, autograd/,
# nabla/op.h or nabla/tape.h). Exits 1 naming the files that break a rule.
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
below="$(grep -rlE --include='*.c' --include='*.h' '#include "(ops/|autograd/|nabla/op\.h|nabla/tape\.h)' kernels/ base/ || true)"
if [ -n "$below" ]; then
  echo "these files in kernels/ or base/ include ops, the engine or the tape:" >&2
  echo "$below" >&2
  exit 1
fi
echo "layering: no op includes autograd/internal.h; kernels/ and base/ include no layer above"
