#!/usr/bin/env bash
# The shared library exports exactly its public API: every dynamic symbol
# it defines has the nb_ prefix and is declared in include/. Exits 1 naming
# the symbols that are not.
#
#   tools/check-symbols.sh LIBRARY [SOURCE_DIR]
set -euo pipefail
library="$1"
source_dir="${2:-$(dirname "$0")/..}"
exported="$(nm -D --defined-only "$library" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)"
declared="$(grep -rhoE '\bnb_[A-Za-z0-9_]+\s*\(' "$source_dir/include" | sed 's/\s*($//' | sort -u)"
bad="$(comm -23 <(echo "$exported") <(echo "$declared") || true)"
if [ -n "$bad" ]; then
  echo "$library exports symbols not declared in include/ (or without the nb_ prefix):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "symbols: $(echo "$exported" | wc -l) exported, all declared in include/"
