#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz) with clang, libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, then runs each one for a bounded time, starting from a
# copy of its committed corpus (the corpus itself is never written to).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]    default 20
#
# A crash, leak, timeout or sanitizer report stops that target and fails the script;
# the input is kept in build-fuzz/findings/<target>/. Turn it into a regression by
# adding it to tests/fuzz/corpus/<target>/ (replayed by ctest in every build).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-20}
dir="$here/build-fuzz"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

cmake -S "$here" -B "$dir" -G Ninja "${launcher[@]}" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DINGEST_SANITIZE=address,undefined,fuzzer-no-link -DINGEST_BUILD_FUZZERS=ON \
  -DINGEST_BUILD_EXAMPLES=ON -DINGEST_BUILD_BENCHMARKS=OFF -DINGEST_INSTALL=OFF >/dev/null
cmake --build "$dir" --parallel "$(nproc)" --target fuzzers

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=()
for exe in "$dir"/tests/fuzz/fuzz_*; do
  [[ -x $exe && -f $exe ]] || continue
  name=$(basename "$exe")
  work=$(mktemp -d)
  findings="$dir/findings/$name"
  mkdir -p "$findings"
  echo "== fuzz: $name, ${seconds}s"
  if "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$findings/" "$work" "$here/tests/fuzz/corpus/$name" >"$work.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work.log" | tail -2 || true
  else
    tail -40 "$work.log"
    failed+=("$name")
  fi
  rm -rf "$work" "$work.log"
done
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in ${failed[*]} (inputs in $dir/findings)" >&2
  exit 1
fi
