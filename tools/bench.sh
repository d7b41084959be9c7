#!/usr/bin/env bash
# Times one training step of the seed MLP in Tandem and in Debian's PyTorch,
# in the same invocation, and prints the ratios (absolute times drift on
# shared machines; ratios from one run are what to compare).
#   tools/bench.sh [BUILD_DIR] [THREADS] [BATCH]
set -euo pipefail
build=${1:-build}
threads=${2:-2}
batch=${3:-128}
here=$(cd "$(dirname "$0")" && pwd)

rounds=${BENCH_ROUNDS:-5}
torch_ok=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && torch_ok=1
get() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
tg=() th=() pg=() ph=()
# Alternate the two so both see the same machine; report medians.
for r in $(seq 1 "$rounds"); do
    tandem=$("$build/tools/tandem-bench" --threads "$threads" --batch "$batch")
    tg+=("$(get grad_step_ms "$tandem")") th+=("$(get grad_hvp_step_ms "$tandem")")
    if [ $torch_ok = 1 ]; then
        # A fair PyTorch: OpenBLAS instead of the reference BLAS it links by
        # default, no core-type override, large-page friendly malloc.
        torch=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
            GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \
            /usr/bin/python3 "$here/bench_torch.py" --threads "$threads" --batch "$batch")
        pg+=("$(get grad_step_ms "$torch")") ph+=("$(get grad_hvp_step_ms "$torch")")
    fi
done
echo "seed MLP 784-128-64-10, batch $batch, $threads threads, median of $rounds alternating rounds"
echo
echo "$tandem" | sed 's/^/  tandem  /'
[ $torch_ok = 1 ] && echo "$torch" | sed 's/^/  torch   /'
echo
echo "  rounds, tandem gradient ms:   ${tg[*]}"
echo "  rounds, tandem grad+HVP ms:   ${th[*]}"
if [ $torch_ok = 1 ]; then
    echo "  rounds, pytorch gradient ms:  ${pg[*]}"
    echo "  rounds, pytorch grad+HVP ms:  ${ph[*]}"
    echo
    awk -v tg="$(printf '%s\n' "${tg[@]}" | median)" -v th="$(printf '%s\n' "${th[@]}" | median)" \
        -v pg="$(printf '%s\n' "${pg[@]}" | median)" -v ph="$(printf '%s\n' "${ph[@]}" | median)" 'BEGIN {
        printf "%-22s %12s %12s %14s\n", "step (ms, median)", "tandem", "pytorch", "tandem/pytorch"
        printf "%-22s %12.3f %12.3f %14.2f\n", "gradient", tg, pg, tg / pg
        printf "%-22s %12.3f %12.3f %14.2f\n", "gradient + HVP", th, ph, th / ph
    }'
else
    echo "(PyTorch not available: apt-get install python3-torch)"
fi
