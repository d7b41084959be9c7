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

tandem=$("$build/tools/tandem-bench" --threads "$threads" --batch "$batch")

torch="(PyTorch not available: apt-get install python3-torch)"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    # A fair PyTorch: OpenBLAS instead of the reference BLAS it links by
    # default, no core-type override, large-page friendly malloc.
    torch=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \
        /usr/bin/python3 "$here/bench_torch.py" --threads "$threads" --batch "$batch")
fi

get() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
echo "seed MLP 784-128-64-10, batch $batch, $threads threads"
echo
echo "$tandem" | sed 's/^/  tandem  /'
echo "$torch" | sed 's/^/  torch   /'
tg=$(get grad_step_ms "$tandem"); th=$(get grad_hvp_step_ms "$tandem")
pg=$(get grad_step_ms "$torch"); ph=$(get grad_hvp_step_ms "$torch")
if [ -n "$pg" ]; then
    echo
    awk -v tg="$tg" -v th="$th" -v pg="$pg" -v ph="$ph" 'BEGIN {
        printf "%-22s %12s %12s %14s\n", "step (ms)", "tandem", "pytorch", "tandem/pytorch"
        printf "%-22s %12.3f %12.3f %14.2f\n", "gradient", tg, pg, tg / pg
        printf "%-22s %12.3f %12.3f %14.2f\n", "gradient + HVP", th, ph, th / ph
    }'
fi
