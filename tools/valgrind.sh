#!/usr/bin/env bash
# Runs the C test suites, and the `tandem` command training, resuming and
# evaluating a small model, under valgrind's memcheck: any invalid read or
# write, use of uninitialised memory or definitely lost block fails. Builds without -march=native into its own build directory, since
# valgrind 3.19 cannot run AVX-512 code (oneDNN then picks its AVX2 kernels
# itself). Leaks inside oneDNN, libgomp and HDF5 that are not Tandem's are
# suppressed, with reasons, in tests/valgrind.supp.
#   tools/valgrind.sh [BUILD_DIR] [SUITE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-valgrind}
shift || true
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(test_ops test_elementwise test_autodiff test_graph
    test_structural test_optim test_io test_faults example_mlp)
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=debugoptimized -Dnative=false >/dev/null
fi
ninja -C "$build"
# nouserintercepts: valgrind replaces only libc's malloc, so the fault
# shim of test_faults (tests/faultshim.c) still stands in front of it.
wrapper="valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --track-origins=yes --num-callers=30
    --soname-synonyms=somalloc=nouserintercepts --suppressions=$(pwd)/tests/valgrind.supp"
# Valgrind does not model MXCSR's flush-to-zero and denormals-are-zero
# bits, so the test of those modes (tagged fpu in test_graph) is left out.
export CK_EXCLUDE_TAGS=fpu
# shellcheck disable=SC2086
meson test -C "$build" --wrapper "$(echo $wrapper)" --timeout-multiplier 20 --print-errorlogs \
    "${suites[@]}"

work=$(mktemp -d /tmp/td_valgrind.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$build/tests/make_dataset" "$work/train.h5" 400 1
"$build/tests/make_dataset" "$work/test.h5" 100 2
data=(--data "$work/train.h5" --test-data "$work/test.h5" --batch 50 --threads 2)
cli() { # cli NAME ARGS...: one command under memcheck
    local name=$1
    shift
    # shellcheck disable=SC2086
    if $wrapper --log-file="$work/$name.vg" "$build/tools/tandem" "$@" >/dev/null; then
        echo "ok: tandem $name: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$work/$name.vg")"
    else
        cat "$work/$name.vg"
        echo "FAIL: tandem $name"
        exit 1
    fi
}
cli train train "${data[@]}" --epochs 1 --checkpoint-every 3 --out "$work/o"
cli resume train "${data[@]}" --epochs 2 --optimizer tangent-sgd --out "$work/o" \
    --resume "$work/o/checkpoint.h5"
cli eval eval "${data[@]}" --weights "$work/o/weights.h5"
