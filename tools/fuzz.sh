#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for N seconds, starting from the seed corpus in
# fuzz/corpus/<target> (read only; new inputs go to a scratch corpus).
#
#   tools/fuzz.sh [SECONDS] [TARGET...]     default: 30 s each, idx safetensors ops
#
# Environment: BUILD_DIR (default build-fuzz, relative to the repository);
# MESON_OPTIONS, more `meson setup` options when BUILD_DIR is new (CI passes
# -Dtests=enabled -Dwerror=true).
# A crash leaves its input as <BUILD_DIR>/artifacts/crash-*; reproduce it
# with <BUILD_DIR>/fuzz/fuzz_<target> <file>, and once fixed copy it into
# fuzz/corpus/<target>/ as a regression seed. Exits non-zero on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx safetensors ops)
build="${BUILD_DIR:-build-fuzz}"

if [ ! -f "$build/build.ninja" ]; then
  # shellcheck disable=SC2086 # MESON_OPTIONS is a list of options
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbuildtype=debugoptimized ${MESON_OPTIONS:-} >/dev/null
fi
ninja -C "$build" $(printf 'fuzz/fuzz_%s ' "${targets[@]}") >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
mkdir -p "$build/artifacts"
status=0
for target in "${targets[@]}"; do
  scratch="$build/corpus-$target"
  mkdir -p "$scratch"
  extra=()
  [ -f "fuzz/$target.dict" ] && extra+=("-dict=fuzz/$target.dict")
  log="$build/fuzz-$target.log"
  if "$build/fuzz/fuzz_$target" "$scratch" "fuzz/corpus/$target" "${extra[@]}" \
      -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/" >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  rate=$(grep -h 'stat::average_exec_per_sec' "$log" | awk '{s += $2} END {print s + 0}')
  cov=$(grep -ho 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  printf 'fuzz_%-12s %s: %s executions in %s s (%s/s), coverage %s edges\n' \
    "$target" "$result" "$execs" "$seconds" "$rate" "${cov:-?}"
  if [ "$result" = CRASH ]; then
    grep -E 'ERROR|runtime error|fuzz:|SUMMARY|Test unit written' "$log" | head -20
  fi
done
exit $status
