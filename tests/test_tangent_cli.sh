#!/usr/bin/env bash
# The tangent toolkit's commands end to end on a small synthetic dataset:
# tandem ntk (methods agree, files, errors before any work), curvature,
# ntk-predict, train --linearize / --track-curvature / hessian-free (resume
# bit-exact), and tools/plot.py.
#   test_tangent_cli.sh TANDEM MAKE_DATASET H5_SAME_PY PLOT_PY
set -uo pipefail
tandem=$1 make_dataset=$2 h5_same=$3 plot=$4
py=/usr/bin/python3
work=$(mktemp -d /tmp/td_tcli.XXXXXX)
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
h5py_ok=0
$py -c 'import h5py, numpy' 2>/dev/null && h5py_ok=1
# Runs a Python check (exit 0 ok, 77 skipped) with h5py.
pycheck() { # pycheck NAME CODE
    if [ $h5py_ok = 0 ]; then echo "skipped: $1 (no h5py)"; return; fi
    local out; out=$($py -c "$2" 2>&1); local s=$?
    if [ $s -eq 0 ]; then ok "$1: $out"; else bad "$1: $out"; fi
}

"$make_dataset" "$work/train.h5" 600 1 && "$make_dataset" "$work/test.h5" 200 2 \
    || { echo "FAIL: cannot make the datasets"; exit 1; }
data=(--data "$work/train.h5" --test-data "$work/test.h5" --threads 2)

"$tandem" train "${data[@]}" --batch 50 --epochs 2 --out "$work/run" >/dev/null \
    || { echo "FAIL: training the model for the later checks"; exit 1; }
w=(--weights "$work/run/weights.h5")

# Bad arguments are named before any work.
expect "ntk: more samples than the data" 1 "300 samples from offset 0 need 300 samples in test; there are 200" -- \
    "$tandem" ntk "${data[@]}" "${w[@]}" --n 300 --out "$work/x.h5"
expect "ntk: an unknown parameter" 1 "unknown parameter 'fc7' \(the model's parameters: fc1/weight" -- \
    "$tandem" ntk "${data[@]}" "${w[@]}" --n 8 --params fc7 --out "$work/x.h5"
expect "ntk: a budget too small for one tile" 1 "memory budget of 64 KiB is too small for one tile of even 1 sample" -- \
    "$tandem" ntk "${data[@]}" "${w[@]}" --n 8 --method jacobian --memory 64K --out "$work/x.h5"
expect "ntk: an unknown method" 1 "unknown method 'fast'" -- \
    "$tandem" ntk "${data[@]}" --method fast --out "$work/x.h5"
expect "ntk: a bad budget" 1 "bad --memory 'lots'" -- "$tandem" ntk "${data[@]}" --memory lots --out "$work/x.h5"
[ -e "$work/x.h5" ] && bad "a failed ntk left a file" || ok "failed ntk runs wrote no file"

# The three methods on 12 test samples against 5 training ones, in tiles.
for m in jacobian ntvp structured auto; do
    expect "ntk --method $m" 0 "computed in [0-9.]+ ms" -- \
        "$tandem" ntk "${data[@]}" "${w[@]}" --n 12 --n2 5 --from2 train --offset2 3 --tile 5 \
        --method $m --out "$work/ntk_$m.h5"
done
expect "ntk auto picks structured for the MLP" 0 "method structured \(auto\)" -- \
    "$tandem" ntk "${data[@]}" "${w[@]}" --n 12 --out "$work/ntk_sym.h5"
pycheck "the methods agree and the file is complete" "
import h5py, numpy as np
k = {m: h5py.File('$work/ntk_' + m + '.h5', 'r') for m in ['jacobian', 'ntvp', 'structured', 'auto']}
ref = k['jacobian']['ntk'][...]
assert ref.shape == (12, 5, 10, 10), ref.shape
for m in ['ntvp', 'structured', 'auto']:
    e = np.abs(k[m]['ntk'][...] - ref).max() / np.abs(ref).max()
    assert e < 1e-5, (m, e)
assert list(k['auto']['x1_index'][...]) == list(range(12))
assert list(k['auto']['x2_index'][...]) == list(range(3, 8))
text = lambda v: v.decode() if isinstance(v, bytes) else v  # fixed-length strings read as bytes
assert text(k['structured'].attrs['method']) == 'structured' and text(k['auto'].attrs['model']) == 'mlp'
s = h5py.File('$work/ntk_sym.h5', 'r')['ntk'][...]
assert np.array_equal(s, s.transpose(1, 0, 3, 2))
print('max relative difference below 1e-5, symmetric kernel exactly symmetric')
"
expect "ntk --trace" 0 "trace kernel" -- "$tandem" ntk "${data[@]}" "${w[@]}" --n 10 --trace --params fc3 --out "$work/ntk_tr.h5"
expect "ntk --diagonal" 0 "diagonal kernel" -- "$tandem" ntk "${data[@]}" "${w[@]}" --n 10 --diagonal --out "$work/ntk_dg.h5"
pycheck "trace and diagonal shapes" "
import h5py
assert h5py.File('$work/ntk_tr.h5', 'r')['ntk'].shape == (10, 10)
assert h5py.File('$work/ntk_dg.h5', 'r')['ntk'].shape == (10, 10, 10)
print('[10, 10] and [10, 10, 10]')
"

# Curvature: Lanczos on the Hessian, the Gauss-Newton matrix and the NTK.
for m in hessian ggn ntk; do
    expect "curvature --matrix $m" 0 "eigenvalue  3 " -- \
        "$tandem" curvature "${data[@]}" "${w[@]}" --matrix $m --n 40 --top-k 3 --steps 20 \
        --hutchinson 5 --out "$work/curv_$m.h5"
done
pycheck "curvature files" "
import h5py, numpy as np
for m in ['hessian', 'ggn', 'ntk']:
    f = h5py.File('$work/curv_' + m + '.h5', 'r')
    e = f['eigenvalues'][...]
    assert len(e) == 3 and np.all(np.diff(e) <= 0), e
    matrix = f.attrs['matrix']
    assert (matrix.decode() if isinstance(matrix, bytes) else matrix) == m
g = h5py.File('$work/curv_ggn.h5', 'r')['eigenvalues'][...]
assert np.all(g > 0), g
print('descending top-3 of each; Gauss-Newton positive')
"
expect "curvature: top-k beyond the steps" 1 "--top-k 9 needs at least as many --steps" -- \
    "$tandem" curvature "${data[@]}" --top-k 9 --steps 4 --out "$work/c.h5"

# Kernel-regime predictions.
expect "ntk-predict" 0 "eta t = inf +test accuracy" -- \
    "$tandem" ntk-predict "${data[@]}" "${w[@]}" --n 100 --test-n 50 --times 10,1000 --out "$work/pred.h5"
expect "ntk-predict: more training samples than the data" 1 "there are 600" -- \
    "$tandem" ntk-predict "${data[@]}" --n 700 --test-n 10

# Training: linearised, with curvature tracking, and Hessian-free.
expect "train --linearize" 0 "linearised at its initialisation" -- \
    "$tandem" train "${data[@]}" --batch 50 --epochs 1 --linearize --out "$work/lin"
expect "train --track-curvature" 0 "curvature of 32 probe samples every 4 steps" -- \
    "$tandem" train "${data[@]}" --batch 50 --steps 12 --eval-every 6 --track-curvature 4 \
    --probe-batch 32 --schedule constant --out "$work/trk"
"$tandem" train "${data[@]}" --batch 50 --steps 6 --eval-every 6 --track-curvature 4 \
    --probe-batch 32 --schedule constant --out "$work/trk2" >/dev/null &&
"$tandem" train "${data[@]}" --batch 50 --steps 12 --eval-every 6 --track-curvature 4 \
    --probe-batch 32 --schedule constant --out "$work/trk2" --resume "$work/trk2/checkpoint.h5" >/dev/null
pycheck "tracked curvature, and its series after a resume" "
import h5py, numpy as np
a, b = (h5py.File('$work/' + d + '/curvature.h5', 'r') for d in ['trk', 'trk2'])
assert list(a['step'][...]) == [0, 4, 8, 12], a['step'][...]
assert list(b['step'][...]) == [0, 4, 8, 12], b['step'][...]
for k in ['top_eigenvalue', 'hessian_trace', 'ntk_trace']:
    assert np.all(np.isfinite(a[k][...])) and np.array_equal(a[k][...], b[k][...]), k
print('steps 0, 4, 8, 12 in both; the resumed series equals the straight one')
"
hf=(--optimizer hessian-free --schedule constant --batch 100 --cg-iters 8)
"$tandem" train "${data[@]}" "${hf[@]}" --steps 10 --eval-every 5 --out "$work/hf_full" >/dev/null &&
"$tandem" train "${data[@]}" "${hf[@]}" --steps 5 --eval-every 5 --out "$work/hf_half" >/dev/null &&
"$tandem" train "${data[@]}" "${hf[@]}" --steps 10 --eval-every 5 --out "$work/hf_half" \
    --resume "$work/hf_half/checkpoint.h5" >/dev/null
out=$($py "$h5_same" "$work/hf_full/weights.h5" "$work/hf_half/weights.h5"); s=$?
if [ $s -eq 0 ]; then ok "hessian-free resumes bit-exactly: $out"
elif [ $s -eq 77 ]; then echo "skipped: resume comparison needs python3-h5py"
else bad "hessian-free resume differs: $out"; fi
acc=$(awk -F, 'END { printf "%.1f", 100 * $5 }' "$work/hf_full/evals.csv")
awk -v a="$acc" 'BEGIN { exit !(a > 80) }' && ok "hessian-free learns ($acc% after 10 steps)" \
    || bad "hessian-free test accuracy $acc%"

# Plots.
out=$($py "$plot" "$work/run" "$work/trk" -o "$work/curves.png" 2>&1); s=$?
if [ $s -eq 77 ]; then echo "skipped: plot.py ($out)"
else
    [ $s -eq 0 ] && [ -s "$work/curves.png" ] && ok "plot.py draws curves (PNG)" || bad "plot.py curves: $out"
    out=$($py "$plot" "$work/curv_hessian.h5" "$work/ntk_sym.h5" -o "$work/spectra.svg" 2>&1)
    [ $? -eq 0 ] && grep -q "<svg" "$work/spectra.svg" && ok "plot.py draws spectra (SVG)" \
        || bad "plot.py spectra: $out"
    expect "plot.py names a missing run" 2 "nowhere: no such file" -- $py "$plot" "$work/nowhere" -o "$work/x.png"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
