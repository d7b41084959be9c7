#!/usr/bin/env bash
# The empirical NTK of the seed MLP on N Fashion-MNIST test images, full
# [N, N, 10, 10] and trace [N, N]: Tandem's methods against PyTorch's
# functorch route and a hand-written layer-wise formula (tools/ntk_torch.py)
# on the same weights and inputs, alternating rounds, medians and spread.
#   tools/ntk_bench.sh [BUILD_DIR] WEIGHTS.h5 [N] [ROUNDS] [THREADS]
# Both run with the allocator settings DESIGN.md gives for a fair PyTorch
# (large blocks stay in the heap between calls) and OpenBLAS's OpenMP
# build; functorch is timed in fewer rounds (it takes seconds per kernel).
set -euo pipefail
build=${1:-build}
weights=${2:?usage: ntk_bench.sh BUILD_DIR WEIGHTS.h5 [N] [ROUNDS] [THREADS]}
n=${3:-128}
rounds=${4:-5}
threads=${5:-2}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/td_ntkbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
tandem="$build/tools/tandem"
torch_ok=0
/usr/bin/python3 -c 'import torch, functorch, h5py' 2>/dev/null && torch_ok=1
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
tmed() { # tandem's median over --repeat: tmed ARGS...
    "$tandem" ntk --weights "$weights" --n "$n" --threads "$threads" "$@" |
        awk '/more runs on the same plans: median/ { med = $9 } /^computed in/ { last = $3 }
             END { print med ? med : last }'
}
get() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
declare -A T
for r in $(seq 1 "$rounds"); do
    for mode in full trace; do
        flag=(); [ $mode = trace ] && flag=(--trace)
        T[auto_$mode]+="$(tmed "${flag[@]}" --repeat 6 --out "$work/auto_$mode.h5") "
        T[cold_$mode]+="$(tmed "${flag[@]}" --repeat 1 --out "$work/cold_$mode.h5") "
        if [ $torch_ok = 1 ]; then
            skip=(); [ "$r" -gt 2 ] && skip=(--skip-functorch)
            out=$(/usr/bin/python3 "$here/ntk_torch.py" "$weights" --n "$n" --threads "$threads" \
                --repeat 3 "${flag[@]}" "${skip[@]}" --check "$work/auto_$mode.h5")
            T[layer_$mode]+="$(get layerwise_ms "$out") "
            [ "$r" -le 2 ] && T[func_$mode]+="$(get functorch_ms "$out") "
            [ "$r" -eq 1 ] && echo "$out" | grep _vs_tandem | sed "s/^/  $mode: /"
        fi
    done
    if [ "$r" -eq 1 ]; then
        for m in jacobian ntvp structured; do
            T[$m]+="$(tmed --method $m --repeat 1 --out "$work/$m.h5") "
        done
    fi
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
echo "seed MLP, N = $n, $threads threads, $rounds rounds (functorch: 2), median over rounds of"
echo "each round's median (Tandem: 5 runs on plans built once, PyTorch: 3 runs after a warm-up;"
echo "the single Tandem runs include planning and building); spread = min-max"
row() { # row LABEL KEY
    local v="${T[$2]:-}"
    [ -z "$v" ] && return
    printf "  %-34s %10.1f ms   (%s)\n" "$1" "$(tr ' ' '\n' <<<"$v" | grep . | median)" \
        "$(tr ' ' '\n' <<<"$v" | grep . | spread)"
}
row "tandem auto (structured), full" auto_full
row "tandem auto (structured), trace" auto_trace
row "tandem auto, full, building included" cold_full
row "tandem auto, trace, building included" cold_trace
row "pytorch layer-wise formula, full" layer_full
row "pytorch layer-wise formula, trace" layer_trace
row "pytorch functorch vmap(jacrev), full" func_full
row "pytorch functorch vmap(jacrev), trace" func_trace
row "tandem --method jacobian, full (1 run)" jacobian
row "tandem --method ntvp, full (1 run)" ntvp
row "tandem --method structured, full (1 run)" structured
for mode in full trace; do
    a=$(tr ' ' '\n' <<<"${T[auto_$mode]}" | grep . | median)
    [ -n "${T[layer_$mode]:-}" ] && awk -v a="$a" -v l="$(tr ' ' '\n' <<<"${T[layer_$mode]}" | grep . | median)" \
        -v f="$(tr ' ' '\n' <<<"${T[func_$mode]:-}" | grep . | median)" -v m=$mode \
        'BEGIN { printf "  %s: layer-wise / tandem %.1fx, functorch / tandem %.0fx\n", m, l / a, f / a }'
done
