#!/usr/bin/env bash
# Builds and runs the test suite three ways: a normal build (every test, including the
# install + find_package test), AddressSanitizer + UndefinedBehaviorSanitizer (every
# test), and ThreadSanitizer (the tests labelled "concurrency"); then runs every fuzz
# target for a bounded time (scripts/fuzz.sh, clang + libFuzzer; INGEST_FUZZ_SECONDS
# per target, default 20).
#
#   scripts/test.sh           all three
#   scripts/test.sh --quick   the normal build only
#
# With CI set, a skipped test (a server missing on the machine) counts as a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
[[ ${1:-} == --quick ]] && quick=1
jobs=$(nproc)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Paths relative to the checkout in ccache's keys: another clone of the same sources
# (as CI makes) hits the cache.
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1

build() {
  local dir=$1
  shift
  cmake -S "$here" -B "$dir" -G Ninja "${launcher[@]}" "$@" >/dev/null
  cmake --build "$dir" --parallel "$jobs"
}

run_ctest() {
  local dir=$1
  shift
  local log="$dir/ctest.log"
  local status=0
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" "$@" 2>&1 | tee "$log" || status=$?
  if [[ $status -ne 0 ]]; then return "$status"; fi
  if [[ -n ${CI:-} ]] && grep -q '\*\*\*Skipped' "$log"; then
    echo "test.sh: tests were skipped; in CI every server must be installed" >&2
    return 1
  fi
}

echo "== tests: normal build"
build "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_ctest "$here/build"

((quick)) && exit 0

echo "== tests: AddressSanitizer + UndefinedBehaviorSanitizer"
build "$here/build-asan" -DCMAKE_BUILD_TYPE=Debug -DINGEST_SANITIZE=address,undefined \
  -DINGEST_BUILD_EXAMPLES=ON -DINGEST_BUILD_BENCHMARKS=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest "$here/build-asan"

echo "== tests: ThreadSanitizer (concurrency tests)"
build "$here/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINGEST_SANITIZE=thread \
  -DINGEST_BUILD_EXAMPLES=ON -DINGEST_BUILD_BENCHMARKS=OFF
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tests/tsan.supp" \
  run_ctest "$here/build-tsan" -L concurrency

echo "== fuzzing (${INGEST_FUZZ_SECONDS:-20}s per target)"
bash "$here/scripts/fuzz.sh" "${INGEST_FUZZ_SECONDS:-20}"
