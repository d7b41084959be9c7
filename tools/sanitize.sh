#!/usr/bin/env bash
# Builds Tandem with AddressSanitizer and UndefinedBehaviorSanitizer (gcc)
# into its own build directory and runs every test suite there: any invalid
# memory access, leak or undefined behaviour fails the suite that caused it.
# Leak checking is off only inside MPI ranks (see tests/test_mpi.sh).
#   tools/sanitize.sh [BUILD_DIR] [meson test arguments ...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
shift || true
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
        -Db_lundef=false -Dc_args=-fno-sanitize-recover=all >/dev/null
fi
ninja -C "$build"
# detect_leaks: LSan at exit; the Check suites do not fork, so each suite is one process.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C "$build" --timeout-multiplier 4 --print-errorlogs "$@"
