#!/usr/bin/env bash
# Saves that fail during training: a full disk (a small tmpfs mounted here;
# skipped without root) and each write or sync of a checkpoint failing in
# turn (tests/faultshim.c, LD_PRELOAD). Each must stop training with a clear
# error, remove the temporary file and leave the previous checkpoint, from
# which the run then resumes and ends exactly as an uninterrupted run.
#   test_save_faults.sh TANDEM MAKE_DATASET FAULTSHIM
set -uo pipefail
tandem=$1 make_dataset=$2 shim=$3
work=$(mktemp -d /tmp/td_save_faults.XXXXXX)
mnt=$work/small-disk
mounted=no
cleanup() {
    [ $mounted = yes ] && umount "$mnt"
    rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }

"$make_dataset" "$work/train.h5" 1000 1 && "$make_dataset" "$work/test.h5" 200 2 ||
    { echo "FAIL: cannot make the data sets"; exit 1; }
# 20 steps, a checkpoint every 5.
run=(train --data "$work/train.h5" --test-data "$work/test.h5" --threads 2 --batch 50 --epochs 1
     --checkpoint-every 5 --optimizer momentum --schedule constant)
"$tandem" "${run[@]}" --out "$work/straight" >/dev/null || { echo "FAIL: reference run"; exit 1; }

# expect_stopped NAME DIR OUTPUT STATUS PATTERN: the run stopped with a
# clear error, left no temporary, and its last checkpoint (if any) resumes
# to the uninterrupted run's weights.
expect_stopped() {
    local name=$1 dir=$2 out=$3 status=$4 pattern=$5
    if [ "$status" -ne 1 ] || ! grep -qE -- "$pattern" <<<"$out"; then
        bad "$name: status $status, wanted 1 and /$pattern/: $(tail -2 <<<"$out")"
        return
    fi
    if [ -e "$dir/checkpoint.h5.tmp" ]; then bad "$name: checkpoint.h5.tmp left behind"; return; fi
    if [ ! -f "$dir/checkpoint.h5" ]; then ok "$name: stopped with \"$(tail -1 <<<"$out")\""; return; fi
    local copy=$work/resume-$RANDOM
    cp -r "$dir" "$copy"
    if ! "$tandem" "${run[@]}" --out "$copy" --resume "$copy/checkpoint.h5" >/dev/null 2>&1; then
        bad "$name: the checkpoint left behind does not resume"
    elif ! cmp -s "$work/straight/weights.h5" "$copy/weights.h5"; then
        bad "$name: the resumed run differs from the uninterrupted one"
    else
        ok "$name: stopped with \"$(tail -1 <<<"$out")\"; the previous checkpoint resumes bit-exactly"
    fi
}

# A disk with room for one checkpoint and a half: the second save runs out.
size=$(stat -c %s "$work/straight/checkpoint.h5")
mkdir "$mnt"
if mount -t tmpfs -o size=$((size * 3 / 2 + 65536)) tmpfs "$mnt" 2>/dev/null; then
    mounted=yes
    out=$("$tandem" "${run[@]}" --out "$mnt/o" 2>&1)
    expect_stopped "full disk (tmpfs of $((size * 3 / 2 + 65536)) bytes)" "$mnt/o" "$out" $? \
        "checkpoint.h5.tmp: cannot write: No space left on device"
else
    echo "skipped: full disk (cannot mount a tmpfs: not root?)"
fi

# Each save writes its temporary twice (header, file) and syncs it: fail
# each of those calls of the first and of the second save.
for k in 1 2 3 4 5 6; do
    out=$(LD_PRELOAD=$shim TD_FAULT_WRITE=$k ASAN_OPTIONS=verify_asan_link_order=0 \
        "$tandem" "${run[@]}" --out "$work/io$k" 2>&1)
    expect_stopped "failing write or sync $k" "$work/io$k" "$out" $? \
        "checkpoint.h5.tmp: (cannot write|fsync failed): Input/output error"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
