#!/usr/bin/env bash
# Builds every libFuzzer target (clang, -fsanitize=fuzzer,address,undefined)
# into its own build directory and runs each for SECONDS on a corpus seeded
# from real files (make_seeds). Exits 1 on any crash, leak, timeout or
# undefined behaviour (the input is kept under the work directory's
# artifacts/), 77 when clang or its libFuzzer runtime is missing.
#   tests/fuzz/run.sh SECONDS [TARGET ...]
# Environment: FUZZ_BUILD (default build-fuzz), FUZZ_WORK (corpora and
# artifacts, default FUZZ_BUILD/fuzz-work; corpora grow across runs),
# FUZZ_TIMEOUT (seconds one input may take before it counts as a hang,
# default 60), FUZZ_ARGS (more libFuzzer flags, e.g. -runs=10000000).
# Leaks inside HDF5 itself are suppressed, with reasons, in lsan.supp.
# regressions/TARGET/ holds inputs that once failed; each run replays them.
set -euo pipefail
secs=${1:?usage: run.sh SECONDS [TARGET ...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
work=${FUZZ_WORK:-$build/fuzz-work}
targets=("$@")

if ! command -v clang >/dev/null; then
    echo "skipped: clang is not installed (apt-get install clang libclang-rt-14-dev libomp-14-dev)"
    exit 77
fi
probe=$(mktemp -d /tmp/td_fuzz_probe.XXXXXX)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }' \
    >"$probe/t.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/t.c" -o "$probe/t" 2>"$probe/log"; then
    echo "skipped: clang cannot link libFuzzer (apt-get install libclang-rt-14-dev):"
    head -3 "$probe/log"
    exit 77
fi

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Dtests=false -Dnative=false \
        -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=all >/dev/null
fi
if ! ninja -C "$build" >"$probe/build.log"; then
    grep -v '^\[' "$probe/build.log" | head -30
    exit 1
fi
# Every target tests/fuzz/meson.build declares, unless some are named.
if [ ${#targets[@]} -eq 0 ]; then
    for t in "$build"/tests/fuzz/fuzz_*; do
        [ -f "$t" ] && [ -x "$t" ] && targets+=("$(basename "$t")")
    done
fi
mkdir -p "$work/artifacts"
"$build/tests/fuzz/make_seeds" "$work/seeds"

# max_allocation_size_mb: HDF5 1.10.8 allocates what a corrupt object header
# claims (a 64-bit size: 8 GiB seen) before it finds the header corrupt; a
# request above 4.25 GiB gets NULL, as malloc can return, and HDF5 reports an
# error. libFuzzer's own per-malloc limit (-malloc_limit_mb below) is set
# beyond that, so only the resident-memory limit (2 GiB) judges usage.
# Those two and the HDF5 suppressions come after the caller's options (the
# last setting of a flag wins): tools/sanitize.sh exports its own, and
# without them a corrupt file that HDF5 rejects correctly reads as a crash.
export ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}:allocator_may_return_null=1:max_allocation_size_mb=4352"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/seeds/$t"
    log="$work/$t.log"
    # Inputs that once failed, kept in the tree so every run replays them.
    regress=()
    [ -d "$root/tests/fuzz/regressions/$t" ] && regress=("$root/tests/fuzz/regressions/$t")
    # shellcheck disable=SC2086
    if "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-60}" \
        -rss_limit_mb=2048 -malloc_limit_mb=1048576 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$t-" ${FUZZ_ARGS:-} \
        "$work/corpus/$t" "$work/seeds/$t" "${regress[@]}" >"$log" 2>&1; then
        execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
        corpus=$(find "$work/corpus/$t" -type f | wc -l)
        echo "ok: $t: $execs executions in ${secs}s, corpus $corpus inputs"
    else
        echo "FAIL: $t (log $log):"
        grep -E "ERROR|SUMMARY|fuzz check failed|runtime error|Test unit written" "$log" | head -8
        failed=1
    fi
done
exit $failed
