#!/usr/bin/env bash
# Every registered op is in the op reference: for each name that
# `nabla-gradcheck --list` prints, docs/ops.md must mention the function
# nb_NAME. Exits 1 naming the ops it lacks.
#
#   tools/check-op-docs.sh NABLA_GRADCHECK [SOURCE_DIR]
set -euo pipefail
gradcheck="$(realpath "$1")"
cd "${2:-$(dirname "$0")/..}"
ops="$("$gradcheck" --list | awk '{print $1}')"
[ -n "$ops" ] || { echo "$gradcheck --list printed no ops" >&2; exit 1; }
missing=""
for op in $ops; do
  grep -q "nb_${op}\b" docs/ops.md || missing="$missing $op"
done
if [ -n "$missing" ]; then
  echo "docs/ops.md does not list:$missing" >&2
  exit 1
fi
echo "op docs: all $(echo "$ops" | wc -l) registered ops are in docs/ops.md"
