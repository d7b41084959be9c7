#!/usr/bin/env bash
# Crash test: trains with a checkpoint after every step and kills the run
# with SIGKILL at random moments, KILLS times in all. After every kill the
# run is resumed from the checkpoint on disk (so that checkpoint must load),
# and is killed again, until it finishes; each finished run's weights.h5
# and step log must then be identical, byte for byte, to those of a run
# that was never interrupted. Most of a step's time goes to writing its
# checkpoint, so most kills land inside a write; a kill that leaves
# checkpoint.h5.tmp behind was certainly one.
#   tools/crash_test.sh TANDEM MAKE_DATASET [KILLS] [SEED]
set -uo pipefail
tandem=$1 make_dataset=$2 kills=${3:-100} seed=${4:-1}
work=$(mktemp -d /tmp/td_crash.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$make_dataset" "$work/train.h5" 1000 1 && "$make_dataset" "$work/test.h5" 200 2 ||
    { echo "cannot make the data sets"; exit 1; }
run=(train --data "$work/train.h5" --test-data "$work/test.h5" --threads 2 --batch 20
     --epochs 2 --checkpoint-every 1 --optimizer adam --schedule constant)
"$tandem" "${run[@]}" --out "$work/straight" >/dev/null || { echo "the reference run failed"; exit 1; }

RANDOM=$seed
killed=0 mid_write=0 early=0 resumes=0 finished=0 failed=0
while [ $killed -lt "$kills" ]; do
    out="$work/run$finished"
    args=("${run[@]}" --out "$out")
    if [ -f "$out/checkpoint.h5" ]; then
        args+=(--resume "$out/checkpoint.h5")
        resumes=$((resumes + 1))
    fi
    "$tandem" "${args[@]}" >"$work/stdout" 2>"$work/stderr" &
    pid=$!
    # Up to 0.6 s: from before the data is loaded to well into the steps.
    sleep "$(printf '0.%03d' $((RANDOM % 600)))"
    if kill -9 $pid 2>/dev/null; then
        wait $pid 2>/dev/null
        killed=$((killed + 1))
        [ -e "$out/checkpoint.h5.tmp" ] && mid_write=$((mid_write + 1))
        [ -e "$out/checkpoint.h5" ] || early=$((early + 1))
        continue
    fi
    wait $pid
    s=$?
    if [ $s -ne 0 ]; then
        echo "FAIL: run $finished exited $s: $(tail -2 "$work/stderr")"
        failed=$((failed + 1))
    elif ! cmp -s "$work/straight/weights.h5" "$out/weights.h5"; then
        echo "FAIL: run $finished: weights.h5 differs from the uninterrupted run's"
        failed=$((failed + 1))
    elif ! cmp -s <(cut -d, -f1-3 "$work/straight/train_log.csv") <(cut -d, -f1-3 "$out/train_log.csv"); then
        echo "FAIL: run $finished: the step log differs from the uninterrupted run's"
        failed=$((failed + 1))
    fi
    finished=$((finished + 1))
done
# Let the last run finish, however often it was killed.
out="$work/run$finished"
args=("${run[@]}" --out "$out")
[ -f "$out/checkpoint.h5" ] && args+=(--resume "$out/checkpoint.h5") && resumes=$((resumes + 1))
if ! "$tandem" "${args[@]}" >/dev/null 2>"$work/stderr"; then
    echo "FAIL: the last run: $(tail -2 "$work/stderr")"
    failed=$((failed + 1))
elif ! cmp -s "$work/straight/weights.h5" "$out/weights.h5"; then
    echo "FAIL: the last run: weights.h5 differs from the uninterrupted run's"
    failed=$((failed + 1))
fi
finished=$((finished + 1))
echo "$killed kills ($mid_write left a partial checkpoint.h5.tmp; $early came before a run's" \
    "first checkpoint), $resumes resumes from the checkpoint on disk; $finished runs" \
    "finished, $((finished - failed)) identical to the uninterrupted run"
[ $failed -eq 0 ]
