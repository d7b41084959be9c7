#!/usr/bin/env bash
# tools/bench.sh --quick runs end to end: every workload of the quick suite
# (each product in its four layouts too) gets a positive Tandem time (and a
# PyTorch one when PyTorch is installed) in the CSV, and the Markdown table
# is written; tandem-bench --product gives a positive rate for each layout
# and refuses a bad shape. Times are not asserted.
#   test_bench.sh BENCH_SH BUILD_DIR OUT_DIR
set -euo pipefail
bench=$1 build=$2 out=$3
rm -rf "$out"
"$bench" --quick --build "$build" --out "$out" >"$out.log" 2>&1 || {
    cat "$out.log"
    echo "FAIL: bench.sh --quick exited with an error"
    exit 1
}
csv="$out/bench.csv" md="$out/bench.md"
[ -s "$md" ] || { echo "FAIL: no $md"; exit 1; }
torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && torch=1
rows=$(awk -F, -v torch=$torch 'NR > 1 && $4 > 0 && $8 > 0 && (!torch || ($9 > 0 && $13 > 0)) { n++ }
    END { print n + 0 }' "$csv")
for key in "mlp,gradient," "mlp,gradient+HVP," "mlp,JVP of logits," "wide-mlp,gradient," \
    "gpt,gradient," "gpt,AdamW step," "products,128x784x128 nn," "products,128x784x128 tn," \
    "products,128x784x128 nt," "products,128x784x128 tt," "products,128x128x784 tn,"; do
    grep -q "^$key" "$csv" || { cat "$csv"; echo "FAIL: no row $key"; exit 1; }
done
[ "$rows" = 14 ] || { cat "$csv"; echo "FAIL: $rows of 14 rows have positive times and % of peak"; exit 1; }
grep -q "FMA peak measured in the same run" "$md" || { echo "FAIL: the table lacks the peak"; exit 1; }
prod=$("$build/tools/tandem-bench" --product 64,32,48 --steps 2 --warmup 1)
n=$(awk '$1 ~ /^product_(nn|tn|nt|tt)_gflops$/ && $2 > 0 { n++ } END { print n + 0 }' <<<"$prod")
[ "$n" = 4 ] || { echo "$prod"; echo "FAIL: --product gave $n of 4 positive rates"; exit 1; }
rc=0
"$build/tools/tandem-bench" --product 64,0,48 2>"$out.err" || rc=$?
[ $rc = 2 ] && grep -q "wants M,K,N" "$out.err" || { cat "$out.err"; echo "FAIL: --product 64,0,48 exited $rc"; exit 1; }
cat "$md"
echo "PASS: bench.sh --quick (torch: $torch)"
