#!/usr/bin/env bash
# Data-parallel training with 2 MPI ranks on one machine: the same run as
# one rank with the global batch (up to float rounding), bitwise identical
# from run to run, resuming with the same number of ranks (and a clear error
# with another), a text model, and a killed rank stopping the job.
#   test_mpi.sh TANDEM MAKE_DATASET H5_SAME_PY DIST_BUCKETS
# Exit 77 (skipped) when mpirun is missing or Tandem was built without MPI.
set -uo pipefail
tandem=$1 make_dataset=$2 h5_same=$3 dist_buckets=$4
command -v mpirun >/dev/null || { echo "skipped: no mpirun (apt-get install openmpi-bin)"; exit 77; }
"$tandem" version | grep -q "MPI data parallelism: yes" ||
    { echo "skipped: Tandem built without MPI (meson option mpi)"; exit 77; }
work=$(mktemp -d /tmp/td_mpi.XXXXXX)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under tools/sanitize.sh, LeakSanitizer stays off in the ranks: Open MPI's
# runtime leaves about 3,300 allocations of its unloaded plugins at exit
# (none from Tandem's frames), which no suppression can name.
mpi_run=(mpirun --oversubscribe --bind-to none --mca btl self,vader -x OMP_NUM_THREADS=1
         -x "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
mpi=("${mpi_run[@]}" -np 2)
passed=0 failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
same() { # same NAME A B [--tol X]: bitwise (or within X) equal weights
    local name=$1 a=$2 b=$3; shift 3
    local out; out=$(/usr/bin/python3 "$h5_same" "$@" "$a" "$b"); local s=$?
    if [ $s -eq 0 ]; then ok "$name: $out"
    elif [ $s -eq 77 ]; then echo "skipped: $name needs python3-h5py"
    else bad "$name: $out"; fi
}

"$make_dataset" "$work/train.h5" 3000 1 && "$make_dataset" "$work/test.h5" 1000 2 ||
    { echo "FAIL: cannot make the datasets"; exit 1; }
data=(--data "$work/train.h5" --test-data "$work/test.h5" --threads 1 --epochs 2
      --optimizer tangent-sgd --schedule constant)

"$tandem" train "${data[@]}" --batch 100 --out "$work/one" > "$work/one.txt" 2>&1 ||
    { bad "one rank: $(tail -2 "$work/one.txt")"; }
"${mpi[@]}" "$tandem" train "${data[@]}" --batch 50 --out "$work/two" > "$work/two.txt" 2>&1 &&
    grep -q "2 ranks (MPI): global batch 100" "$work/two.txt" && ok "2 ranks train" ||
    bad "2 ranks: $(tail -3 "$work/two.txt")"
acc1=$(awk -F, 'END { print $5 }' "$work/one/evals.csv")
acc2=$(awk -F, 'END { print $5 }' "$work/two/evals.csv")
[ -n "$acc1" ] && [ "$acc1" = "$acc2" ] && ok "same test accuracy as one rank with the global batch ($acc2)" ||
    bad "test accuracy: one rank $acc1, two ranks $acc2"
same "parameters of 2 ranks against 1 rank after 2 epochs" "$work/one/weights.h5" "$work/two/weights.h5" --tol 1e-5
"${mpi[@]}" "$tandem" train "${data[@]}" --batch 50 --out "$work/two-again" > /dev/null 2>&1
same "two 2-rank runs are bitwise identical" "$work/two/weights.h5" "$work/two-again/weights.h5"

# Gradients summed in many small buckets while the backward pass runs: with
# 2 ranks each element's sum is one addition, so the bits equal one bucket's.
"${mpi[@]}" "$tandem" train "${data[@]}" --batch 50 --bucket-mb 0.01 --out "$work/two-buckets" \
    > "$work/buckets.txt" 2>&1 && grep -q "in buckets of 0.01 MiB" "$work/buckets.txt" ||
    bad "2 ranks with small buckets: $(tail -3 "$work/buckets.txt")"
same "small buckets give the bits of the default ones" "$work/two/weights.h5" "$work/two-buckets/weights.h5"
# The bucketed sum itself with 3 ranks (chunks that differ per rank, buckets
# made ready in a different order on each rank).
out=$("${mpi_run[@]}" -np 3 "$dist_buckets" 2>&1) && ok "bucketed sums over 3 ranks: $(tail -1 <<<"$out")" ||
    bad "bucketed sums over 3 ranks: $out"

# Resume: 1 epoch, then 2 from the checkpoint, against 2 straight.
"${mpi[@]}" "$tandem" train "${data[@]}" --batch 50 --epochs 1 --out "$work/half" > /dev/null 2>&1
"${mpi[@]}" "$tandem" train "${data[@]}" --batch 50 --out "$work/half" \
    --resume "$work/half/checkpoint.h5" > "$work/resume.txt" 2>&1 || bad "resume: $(tail -3 "$work/resume.txt")"
same "2-rank resume is bit-exact" "$work/two/weights.h5" "$work/half/weights.h5"
out=$("$tandem" train "${data[@]}" --batch 100 --out "$work/half1" --resume "$work/half/checkpoint.h5" 2>&1)
grep -q "written by a run of 2 ranks, this run has 1" <<<"$out" &&
    ok "resuming with another number of ranks is refused" || bad "resume with 1 rank: $out"

# A text model: every rank takes its rows of each global batch.
for i in $(seq 1 300); do echo "In the beginning $i God created the heaven and the earth."; done > "$work/text.txt"
tiny=(--model gpt --text "$work/text.txt" --layers 1 --d-model 16 --heads 2 --context 16
      --threads 1 --optimizer adamw --lr 3e-3 --steps 20 --eval-every 10)
"$tandem" train "${tiny[@]}" --batch 8 --out "$work/g1" > /dev/null 2>&1
"${mpi[@]}" "$tandem" train "${tiny[@]}" --batch 4 --out "$work/g2" > "$work/g2.txt" 2>&1 ||
    bad "gpt on 2 ranks: $(tail -3 "$work/g2.txt")"
same "gpt: 2 ranks against 1 rank with the global batch" "$work/g1/weights.h5" "$work/g2/weights.h5" --tol 1e-4
"${mpi[@]}" "$tandem" train "${tiny[@]}" --batch 4 --bucket-mb 0.001 --out "$work/g3" > /dev/null 2>&1
same "gpt: buckets of 262 floats give the bits of the default ones" "$work/g2/weights.h5" "$work/g3/weights.h5"

# Kill one rank: the job must end within seconds, and the last checkpoint resume.
"$make_dataset" "$work/big.h5" 20000 3
big=(--data "$work/big.h5" --test-data "$work/test.h5" --threads 1 --batch 20 --epochs 3
     --checkpoint-every 50)
"${mpi[@]}" "$tandem" train "${big[@]}" --out "$work/killed" > "$work/killed.txt" 2>&1 &
job=$!
for _ in $(seq 1 600); do [ -f "$work/killed/checkpoint.h5" ] && break; sleep 0.05; done
victim=$(pgrep -f "tandem train .*$work/killed" | tail -1)
if [ -n "$victim" ] && [ -f "$work/killed/checkpoint.h5" ]; then
    t0=$(date +%s.%N)
    kill -9 "$victim"
    for _ in $(seq 1 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if kill -0 $job 2>/dev/null; then bad "the job still runs 30 s after a rank was killed"; kill -9 $job
    else ok "killing rank pid $victim ended the job in ${secs}s"; fi
    wait $job 2>/dev/null
    last=$(awk -F, 'END { print $1 }' "$work/killed/train_log.csv")
    "${mpi[@]}" "$tandem" train "${big[@]}" --steps $((last + 5)) --out "$work/killed" \
        --resume "$work/killed/checkpoint.h5" > "$work/res.txt" 2>&1
    if grep -q "resumed from .* at step" "$work/res.txt" && grep -q "done in" "$work/res.txt"; then
        ok "the checkpoint left by the killed job resumes ($(grep -o 'at step [0-9]*' "$work/res.txt"))"
    else bad "resume after the kill: $(tail -3 "$work/res.txt")"; fi
else
    bad "no rank or checkpoint to kill (the run ended early?)"; wait $job
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
