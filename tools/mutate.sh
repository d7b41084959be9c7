#!/usr/bin/env bash
# The mutation experiment of issue 9: trains one epoch, then makes COPIES
# copies each of checkpoint.h5 and weights.h5 with 1 to 4 random bytes
# changed (anywhere in the file in even copies, mostly weight data; within
# the first 4 KiB, where HDF5's superblock, object headers and heaps are, in
# odd ones), and loads every copy with `tandem train --epochs 1 --resume COPY`
# and `tandem eval --weights COPY`, each under a 30 s timeout. Counts clear
# errors (exit 1, a message naming the copy), silent loads (exit 0), hangs
# and crashes. Exits 0 only when every copy gave a clear error.
#   tools/mutate.sh TANDEM MAKE_DATASET [COPIES] [SEED]
# MAKE_DATASET is build/tests/make_dataset (a small synthetic data set).
set -uo pipefail
tandem=$1 make_dataset=$2 copies=${3:-300} seed=${4:-1}
work=$(mktemp -d /tmp/td_mutate.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$make_dataset" "$work/train.h5" 1000 1 && "$make_dataset" "$work/test.h5" 200 2 ||
    { echo "cannot make the data sets"; exit 1; }
data=(--data "$work/train.h5" --test-data "$work/test.h5" --threads 1 --batch 50)
"$tandem" train "${data[@]}" --epochs 1 --out "$work/run" >/dev/null ||
    { echo "the 1-epoch run failed"; exit 1; }

# COPIES mutated copies of $1 into $2/0 .. $2/COPIES-1, seeded.
mutate() {
    python3 - "$1" "$2" "$copies" "$3" <<'EOF'
import os, random, sys
src, out, copies, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(src, "rb").read()
rng = random.Random(seed)
os.makedirs(out, exist_ok=True)
for i in range(copies):
    b = bytearray(data)
    span = len(b) if i % 2 == 0 else min(len(b), 4096)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(span)
        b[pos] = (b[pos] + rng.randint(1, 255)) % 256  # always a different byte
    open(f"{out}/{i}.h5", "wb").write(b)
EOF
}

failed=0
for kind in checkpoint weights; do
    mutate "$work/run/$kind.h5" "$work/$kind" "$seed"
    seed=$((seed + 1))
    clear=0 silent=0 hang=0 crash=0 other=0
    declare -A why=()
    for i in $(seq 0 $((copies - 1))); do
        copy="$work/$kind/$i.h5"
        if [ $kind = checkpoint ]; then
            cmd=("$tandem" train "${data[@]}" --epochs 1 --out "$work/resumed" --resume "$copy")
        else
            cmd=("$tandem" eval "${data[@]}" --weights "$copy")
        fi
        out=$(timeout -k 5 30 "${cmd[@]}" 2>&1 >/dev/null)
        s=$?
        if [ $s -eq 0 ]; then silent=$((silent + 1)); echo "silent load: $kind copy $i"
        elif [ $s -eq 124 ] || [ $s -eq 137 ]; then hang=$((hang + 1)); echo "hang: $kind copy $i"
        elif [ $s -gt 128 ]; then crash=$((crash + 1)); echo "crash (signal $((s - 128))): $kind copy $i"
        elif [ $s -eq 1 ] && grep -qF "$copy" <<<"$out"; then
            clear=$((clear + 1))
            w=$(sed -e "s|.*$copy: ||" -e 's/[0-9][0-9]*/N/g' <<<"$out" | head -1)
            why[$w]=$((${why[$w]:-0} + 1))
        else other=$((other + 1)); echo "unclear (status $s): $kind copy $i: $out"; fi
    done
    echo "$kind: $copies mutated copies: $clear clear errors, $silent silent loads, $hang hangs," \
        "$crash crashes, $other unclear"
    for w in "${!why[@]}"; do printf '  %4d  %s\n' "${why[$w]}" "$w"; done
    [ $clear -eq "$copies" ] || failed=1
    unset why
done
exit $failed
