#!/usr/bin/env bash
# Trains the seed MLP on Fashion-MNIST with each optimizer at equal epochs
# over several seeds and prints a Markdown table (test accuracy mean and
# spread, wall time). Each optimizer uses the learning rate given here,
# picked by a small sweep at 10 epochs.
#   tools/compare_optimizers.sh [BUILD_DIR] [EPOCHS] [SEEDS] [THREADS]
set -euo pipefail
build=${1:-build} epochs=${2:-10} seeds=${3:-3} threads=${4:-2}
out=$(mktemp -d /tmp/td_compare.XXXXXX)
runs=(
    "momentum|--optimizer momentum --lr 0.05"
    "nesterov|--optimizer nesterov --lr 0.05"
    "adam|--optimizer adam --lr 0.002"
    "tangent-sgd (momentum lookahead)|--optimizer tangent-sgd --lr 0.05"
    "tangent-sgd (gradient lookahead)|--optimizer tangent-sgd --lr 0.01 --lookahead gradient"
    "curv-sgd|--optimizer curv-sgd --lr 0.05"
    "adahessian|--optimizer adahessian"
    "sophia|--optimizer sophia"
)
echo "| optimizer | flags | test accuracy (mean ± sd of $seeds seeds) | best | wall time per run |"
echo "|---|---|---|---|---|"
for r in "${runs[@]}"; do
    name=${r%%|*} flags=${r#*|}
    accs=() times=()
    for s in $(seq 1 "$seeds"); do
        dir="$out/$(tr -c 'a-z0-9\n' _ <<<"$name")-$s"
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$build/tools/tandem" train $flags --epochs "$epochs" --seed "$s" --threads "$threads" \
            --out "$dir" >/dev/null
        t1=$(date +%s.%N)
        accs+=("$(awk -F, 'END { print 100 * $5 }' "$dir/evals.csv")")
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    done
    printf '%s\n' "${accs[@]}" | awk -v name="$name" -v flags="$flags" -v t="${times[*]}" '
        { s += $1; ss += $1 * $1; if ($1 > best) best = $1; n++ }
        END { split(t, w, " "); for (i in w) tw += w[i]
              m = s / n; sd = sqrt(ss / n - m * m > 0 ? ss / n - m * m : 0)
              printf "| %s | `%s` | %.2f%% ± %.2f | %.2f%% | %.1f s |\n", name, flags, m, sd, best, tw / n }'
done
rm -rf "$out"
