#!/usr/bin/env bash
# The `tandem` command end to end on a small synthetic HDF5 dataset: usage
# errors, missing data, training and evaluation, a NaN report, resuming
# bit-exactly from a checkpoint, and resuming after the process was killed.
#   test_cli.sh TANDEM MAKE_DATASET H5_SAME_PY TORCH_EVAL_PY
set -uo pipefail
tandem=$1 make_dataset=$2 h5_same=$3 torch_eval=$4
work=$(mktemp -d /tmp/td_cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
expect() { # expect NAME WANT_STATUS PATTERN -- command...
    local name=$1 want=$2 pattern=$3; shift 4
    local out status
    out=$("$@" 2>&1); status=$?
    if [ "$status" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then ok "$name"
    else bad "$name (status $status, wanted $want and /$pattern/): $(tail -3 <<<"$out")"; fi
}

"$make_dataset" "$work/train.h5" 3000 1 && "$make_dataset" "$work/test.h5" 1000 2 \
    || { echo "FAIL: cannot make the datasets"; exit 1; }
data=(--data "$work/train.h5" --test-data "$work/test.h5" --threads 2 --batch 50)

expect "unknown option" 2 "unknown option '--bogus'" -- "$tandem" train --bogus
expect "bad value" 2 "bad value for --epochs: 'x'" -- "$tandem" train --epochs x
expect "missing value" 2 "--lr needs a value" -- "$tandem" train --lr
expect "unknown command" 2 "unknown command 'fly'" -- "$tandem" fly
expect "unknown optimizer" 1 "sgd, momentum" -- "$tandem" train "${data[@]}" --optimizer nope --out "$work/o0"
expect "missing Fashion-MNIST" 1 "apt-get install dataset-fashion-mnist" -- "$tandem" train --data "$work/nowhere" --out "$work/o0"
expect "missing HDF5 file" 1 "$work/none.h5" -- "$tandem" train --data "$work/none.h5" --out "$work/o0"
expect "help" 0 "usage: tandem train" -- "$tandem" train --help

expect "inspect prints plans" 0 "gradient\+HVP +[0-9]+ nodes" -- "$tandem" inspect --graph hvp --dot "$work/g.dot"
if head -1 "$work/g.dot" | grep -q "^digraph" && [ "$(grep -c -- '->' "$work/g.dot")" -gt 50 ]; then
    ok "inspect writes Graphviz DOT"; else bad "inspect --dot wrote: $(head -c 200 "$work/g.dot")"; fi
# --live: the buffers at the fullest step hold no more than the arena, every
# one is live at that step, and together they make the total it prints.
"$tandem" inspect --graph hvp --live 1000 >"$work/live.txt" 2>&1
if awk '/^most live at step/ { step = $5; total = $8; arena = $14 + 0; found = 1; next }
    found && $1 ~ /^[0-9.]+$/ { split($2, r, "-"); if (r[1] > step || r[2] < step) bad = 1
        sum += $1; rows++ }
    END { exit !(found && rows > 2 && !bad && total > 0 && total <= arena + 0.005 &&
        sum > total - 0.005 * rows && sum < total + 0.005 * rows) }' "$work/live.txt"; then
    ok "inspect --live lists the buffers of the fullest step"
else bad "inspect --live printed: $(tail -12 "$work/live.txt")"; fi
expect "check agrees with finite differences" 0 "derivatives agree" -- "$tandem" check --batch 32
expect "check on a smooth model over all parameters" 0 "derivatives agree" -- \
    "$tandem" check --model mlp-gelu --all-params --batch 32
expect "train" 0 "epoch +3.00 .*test acc" -- "$tandem" train "${data[@]}" --epochs 3 --out "$work/a"
acc=$(awk -F, 'NR == 4 { printf "%.2f", 100 * $5 }' "$work/a/evals.csv")
if awk -v a="$acc" 'BEGIN { exit !(a > 90) }'; then ok "learns the synthetic classes ($acc%)"
else bad "test accuracy $acc% after 3 epochs"; fi
lines=$(wc -l < "$work/a/train_log.csv")
[ "$lines" -eq $((3 * 60 + 1)) ] && ok "per-step log has 180 steps" || bad "train_log.csv has $lines lines"
expect "eval reproduces the last epoch's accuracy" 0 "accuracy $acc%" -- \
    "$tandem" eval --weights "$work/a/weights.h5" --data "$work/train.h5" --test-data "$work/test.h5"
out=$(/usr/bin/python3 "$torch_eval" "$work/a/weights.h5" "$work/test.h5" 2>&1); s=$?
if [ $s -eq 77 ]; then echo "skipped: PyTorch evaluation ($out)"
elif grep -q "accuracy $acc%" <<<"$out"; then ok "PyTorch loads weights.h5 and gets the same accuracy"
else bad "PyTorch evaluation: $out (Tandem: $acc%)"; fi
# Weights from another program: the same values in a plain HDF5 file (no
# integrity header) written by h5py are imported.
if /usr/bin/python3 - "$work/a/weights.h5" "$work/plain.h5" <<'EOF' 2>/dev/null; then
import sys, h5py
with h5py.File(sys.argv[1], "r") as src, h5py.File(sys.argv[2], "w") as dst:
    names = []
    src.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        dst[n] = src[n][...]
EOF
    expect "eval imports weights h5py wrote" 0 "accuracy $acc%" -- \
        "$tandem" eval --weights "$work/plain.h5" --data "$work/train.h5" --test-data "$work/test.h5"
else
    echo "skipped: weights written by h5py (python3-h5py missing)"
fi
expect "eval refuses a checkpoint as weights" 1 "a Tandem checkpoint file, not a weights file" -- \
    "$tandem" eval --weights "$work/a/checkpoint.h5" --data "$work/train.h5" --test-data "$work/test.h5"
head -c 3000 "$work/a/weights.h5" > "$work/cut.h5"
expect "eval names a truncated weights file" 1 "$work/cut.h5: .*the file is corrupt" -- \
    "$tandem" eval --weights "$work/cut.h5" --data "$work/train.h5" --test-data "$work/test.h5"
expect "NaN names the node" 1 "produced (NaN|Inf).*parameters are those before this step" -- \
    "$tandem" train "${data[@]}" --optimizer sgd --lr 1e6 --epochs 2 --out "$work/nan"

# Resume: 2 epochs, then 2 more from the checkpoint == 4 epochs straight
# (a constant schedule: a cosine one depends on the planned length).
for opt in tangent-sgd adam; do
    "$tandem" train "${data[@]}" --optimizer "$opt" --schedule constant --epochs 4 --out "$work/full-$opt" >/dev/null &&
    "$tandem" train "${data[@]}" --optimizer "$opt" --schedule constant --epochs 2 --out "$work/half-$opt" >/dev/null &&
    "$tandem" train "${data[@]}" --optimizer "$opt" --schedule constant --epochs 4 --out "$work/half-$opt" \
        --resume "$work/half-$opt/checkpoint.h5" >/dev/null
    out=$(/usr/bin/python3 "$h5_same" "$work/full-$opt/weights.h5" "$work/half-$opt/weights.h5"); s=$?
    if [ $s -eq 0 ]; then ok "resume is bit-exact ($opt): $out"
    elif [ $s -eq 77 ]; then echo "skipped: resume comparison needs python3-h5py"
    else bad "resume differs ($opt): $out"; fi
done

# Kill -9 in the middle of a run, resume, and compare with an uninterrupted run.
big=(--data "$work/big.h5" --test-data "$work/test.h5" --threads 2 --batch 20 --optimizer tangent-sgd)
"$make_dataset" "$work/big.h5" 20000 3
"$tandem" train "${big[@]}" --epochs 2 --out "$work/straight" >/dev/null
"$tandem" train "${big[@]}" --epochs 2 --out "$work/killed" --checkpoint-every 97 >/dev/null &
pid=$!
for _ in $(seq 1 6000); do [ -f "$work/killed/checkpoint.h5" ] && break; sleep 0.005; done
sleep 0.2
# Kill only once a checkpoint exists (a slow machine may not have one yet).
killed=no
[ -f "$work/killed/checkpoint.h5" ] && kill -9 $pid 2>/dev/null && killed=yes
wait $pid 2>/dev/null
step=$(awk -F, 'END { print $1 }' "$work/killed/train_log.csv")
expect "resume after kill -9 (killed=$killed near step $step)" 0 "done in" -- \
    "$tandem" train "${big[@]}" --epochs 2 --out "$work/killed" --checkpoint-every 97 --resume "$work/killed/checkpoint.h5"
out=$(/usr/bin/python3 "$h5_same" "$work/straight/weights.h5" "$work/killed/weights.h5"); s=$?
if [ $s -eq 0 ]; then ok "killed and resumed run is bit-exact: $out"
elif [ $s -eq 77 ]; then echo "skipped: comparison needs python3-h5py"
else bad "killed and resumed run differs: $out"; fi
cmp -s <(cut -d, -f1-3 "$work/straight/train_log.csv") <(cut -d, -f1-3 "$work/killed/train_log.csv") \
    && ok "resumed step log matches the uninterrupted one" || bad "step logs differ after resume"

# A text model: a tiny GPT on a small generated text.
for i in $(seq 1 400); do
    echo "In the beginning $i God created the heaven and the earth; and the earth was without form."
done > "$work/text.txt"
tiny=(--model gpt --text "$work/text.txt" --layers 1 --d-model 16 --heads 2 --context 16 --batch 8
      --threads 2 --optimizer adamw --lr 3e-3)
expect "text models need --text" 1 "give --text FILE" -- "$tandem" train --model gpt --out "$work/g0"
printf 'short' > "$work/short.txt"
expect "a too short text is named" 1 "$work/short.txt: too short for context 16" -- \
    "$tandem" train "${tiny[@]}" --text "$work/short.txt" --steps 5 --out "$work/g0"
expect "gpt trains on text" 0 "step +30 +train loss .*val loss .*bits" -- \
    "$tandem" train "${tiny[@]}" --steps 30 --eval-every 10 --out "$work/g1"
if head -1 "$work/g1/evals.csv" | grep -q "^step,epoch,train_loss,val_loss," &&
    [ "$(wc -l < "$work/g1/evals.csv")" -eq 4 ]; then ok "evals.csv has a header and 3 evaluations"
else bad "evals.csv: $(cat "$work/g1/evals.csv")"; fi
# Recomputing the GELU outputs in the backward pass changes no bit.
"$tandem" train "${tiny[@]}" --steps 30 --eval-every 10 --remat --out "$work/g1r" >/dev/null
if cmp -s "$work/g1/train_log.csv" "$work/g1r/train_log.csv" &&
    /usr/bin/python3 "$h5_same" "$work/g1/weights.h5" "$work/g1r/weights.h5" >/dev/null; then
    ok "--remat trains to the same losses and weights, bit for bit"
else bad "--remat changed the run: $(diff "$work/g1/train_log.csv" "$work/g1r/train_log.csv" | head -4)"; fi
val=$(awk -F, 'END { printf "%.4f", $4 }' "$work/g1/evals.csv")
expect "eval of a text model reproduces the last validation loss" 0 "loss $val nats/token" -- \
    "$tandem" eval --weights "$work/g1/weights.h5" --text "$work/text.txt" --batch 8
expect "eval refuses a text of another vocabulary" 1 "vocabulary of" -- \
    "$tandem" eval --weights "$work/g1/weights.h5" --text "$work/train.h5"
s1=$("$tandem" sample --weights "$work/g1/weights.h5" --prompt "In the" --tokens 60 --seed 4)
s2=$("$tandem" sample --weights "$work/g1/weights.h5" --prompt "In the" --tokens 60 --seed 4)
s3=$("$tandem" sample --weights "$work/g1/weights.h5" --prompt "In the" --tokens 60 --seed 5 --top-k 3 --temperature 0.5)
if [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s1" != "$s3" ] && [ "${s1:0:6}" = "In the" ]; then
    ok "sample is deterministic for a seed and continues the prompt"
else bad "samples: '$s1' / '$s2' / '$s3'"; fi
expect "a prompt byte outside the vocabulary is named" 1 "byte 'Z' at offset 3 is not in the vocabulary" -- \
    "$tandem" sample --weights "$work/g1/weights.h5" --prompt "In Z"
expect "sample needs a text model" 1 "not a text model" -- "$tandem" sample --weights "$work/a/weights.h5"
expect "check: gpt gradient and HVP agree with finite differences" 0 "derivatives agree" -- \
    "$tandem" check --model gpt --layers 1 --d-model 16 --heads 2 --context 8 --batch 2 --all-params
# Dropout draws its masks from the step: a resumed run must draw the same ones.
"$tandem" train "${tiny[@]}" --dropout 0.1 --schedule constant --steps 40 --eval-every 20 --out "$work/gs" >/dev/null &&
"$tandem" train "${tiny[@]}" --dropout 0.1 --schedule constant --steps 20 --eval-every 20 --out "$work/gr" >/dev/null &&
"$tandem" train "${tiny[@]}" --dropout 0.1 --schedule constant --steps 40 --eval-every 20 --out "$work/gr" \
    --resume "$work/gr/checkpoint.h5" >/dev/null
out=$(/usr/bin/python3 "$h5_same" "$work/gs/weights.h5" "$work/gr/weights.h5"); s=$?
if [ $s -eq 0 ]; then ok "gpt with dropout resumes bit-exactly: $out"
elif [ $s -eq 77 ]; then echo "skipped: resume comparison needs python3-h5py"
else bad "gpt resume differs: $out"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
