#!/usr/bin/env bash
# The benchmark suite: each workload timed in Tandem (tandem-bench, tandem
# train) and in Debian's PyTorch (tools/bench_torch.py, OpenBLAS) over
# several alternating rounds, with this machine's FMA peak measured in the
# same run (tandem-peak), so every time comes with its efficiency:
# counted FLOPs / (time x peak). Prints a Markdown table and writes it with
# a CSV beside it.
#
#   tools/bench.sh [--quick] [--build DIR] [--threads N] [--rounds N] [--out DIR] [WORKLOAD...]
#
# Workloads (default: mlp wide-mlp gpt epoch):
#   mlp       seed MLP 784-128-64-10, batch 128: gradient, gradient + HVP, JVP of the logits
#   wide-mlp  784-4096-4096-10, batch 256: gradient
#   gpt       GPT d256, 4 layers, 4 heads, context 128, batch 16: gradient, and the
#             AdamW step (gradient, clipping, update)
#   gpt-hvp   the same GPT: gradient + HVP (slow in PyTorch: double backward)
#   epoch     one epoch of the seed MLP on Fashion-MNIST, Adam, batch 128, with the
#             evaluation on the test set (the loop's whole time, not start-up; the
#             files tandem train writes after it are reported apart)
#   products  the models' main matrix products alone (tandem-bench --product), each
#             operand stored plain or transposed: the ceiling their steps are held to
# --quick runs one round of small versions of mlp, wide-mlp, gpt and products
# (under a minute on a quiet 2-core machine); tests/meson.build runs it.
# Medians over rounds; the range (min-max) shows the spread. Peak RSS is per
# process (GNU time when installed, else the process's own report).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=build threads=2 rounds=5 out=bench-out quick=0
workloads=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --build) build=$2 && shift ;;
    --threads) threads=$2 && shift ;;
    --rounds) rounds=$2 && shift ;;
    --out) out=$2 && shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
    -*) echo "bench.sh: unknown option $1" >&2 && exit 2 ;;
    *) workloads+=("$1") ;;
    esac
    shift
done
if [ $quick = 1 ]; then
    rounds=1
    [ ${#workloads[@]} = 0 ] && workloads=(mlp wide-mlp gpt products)
fi
[ ${#workloads[@]} = 0 ] && workloads=(mlp wide-mlp gpt epoch)
for w in "${workloads[@]}"; do
    case $w in mlp | wide-mlp | gpt | gpt-hvp | epoch | products) ;; *) echo "bench.sh: unknown workload $w" >&2 && exit 2 ;; esac
done
mkdir -p "$out"
tmp=$(mktemp -d /tmp/td_bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

torch_ok=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && torch_ok=1
gnu_time=0
/usr/bin/time -f %M true >/dev/null 2>&1 && gnu_time=1
fmnist=/usr/share/datasets/fashion-mnist

# A fair PyTorch: OpenBLAS instead of the reference BLAS it links by
# default, no core-type override, large-page friendly malloc.
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736)

get() { awk -v k="$1" '$1 == k { v = $2 } END { print v }' <<<"$2"; }

# Runs a command; prints its stdout plus a peak_rss_mb line (GNU time's
# maximum resident set when installed, else the process's own line).
measure() {
    if [ $gnu_time = 1 ]; then
        /usr/bin/time -f %M -o "$tmp/rss" "$@" >"$tmp/stdout"
        grep -v '^peak_rss_mb ' "$tmp/stdout" || true
        awk '{ printf "peak_rss_mb %.1f\n", $1 / 1024 }' "$tmp/rss"
    else
        "$@"
    fi
}

# Per workload: tandem-bench/bench_torch.py arguments and the measures, as
# "key|label" (key: the *_ms line both print).
wl_args() {
    local q=$quick
    case $1 in
    mlp) [ "$q" = 1 ] && echo "--model mlp --batch 128 --plans grad,hvp,jvp --steps 10 --warmup 3" ||
        echo "--model mlp --batch 128 --plans grad,hvp,jvp --steps 50 --warmup 20" ;;
    wide-mlp) [ "$q" = 1 ] && echo "--model wide-mlp --batch 256 --plans grad --steps 1 --warmup 1" ||
        echo "--model wide-mlp --batch 256 --plans grad --steps 4 --warmup 2" ;;
    gpt) [ "$q" = 1 ] && echo "--model gpt --batch 16 --layers 1 --d-model 64 --heads 2 --context 32 --plans grad,train --steps 5 --warmup 2" ||
        echo "--model gpt --batch 16 --plans grad,train --steps 3 --warmup 2" ;;
    gpt-hvp) [ "$q" = 1 ] && echo "--model gpt --batch 16 --layers 1 --d-model 64 --heads 2 --context 32 --plans hvp --steps 3 --warmup 1" ||
        echo "--model gpt --batch 16 --plans hvp --steps 2 --warmup 1" ;;
    esac
}
# The products workload's shapes, M,K,N: the seed MLP's first layer and its
# weight gradient, the GPT's first MLP linear and the weight gradient of its
# second, the wide MLP's second layer and its weight gradient.
product_shapes() {
    if [ $quick = 1 ]; then echo "128,784,128 128,128,784"; else
        echo "128,784,128 128,128,784 2048,256,1024 256,2048,1024 256,4096,4096 4096,256,4096"
    fi
}
# Runs per round of one product: about 10 ms of work per layout at 350
# GFLOP/s (at most 5 in --quick).
product_steps() {
    awk -F, -v q=$quick '{ n = int(1.75e9 / ($1 * $2 * $3)) + 1; print (q && n > 5) ? 5 : n }' <<<"$1"
}
wl_measures() {
    if [ "$1" = products ]; then
        for s in $(product_shapes); do
            for l in nn tn nt tt; do echo "p${s//,/x}_$l|${s//,/x}_$l"; done
        done
        return
    fi
    case $1 in
    mlp) echo "grad_step|gradient grad_hvp_step|gradient+HVP jvp_step|JVP_of_logits" ;;
    wide-mlp) echo "grad_step|gradient" ;;
    gpt) echo "grad_step|gradient train_step|AdamW_step" ;;
    gpt-hvp) echo "grad_hvp_step|gradient+HVP" ;;
    epoch) echo "epoch|steps+evaluation" ;;
    esac
}
wl_title() {
    local gpt="GPT d256 L4 H4 T128"
    [ $quick = 1 ] && gpt="GPT d64 L1 H2 T32 (quick)"
    case $1 in
    mlp) echo "seed MLP, batch 128" ;;
    wide-mlp) echo "wide MLP 784-4096-4096-10, batch 256" ;;
    gpt) echo "$gpt, batch 16" ;;
    gpt-hvp) echo "$gpt, batch 16" ;;
    epoch) echo "seed MLP epoch on Fashion-MNIST, Adam, batch 128" ;;
    products) echo "one product alone (MxKxN, operands plain or transposed)" ;;
    esac
}

# One run of workload $1 in system $2 (tandem|torch): appends "key value"
# lines to $tmp/$1.$2.$round.
run_one() {
    local w=$1 sys=$2 r=$3 f="$tmp/$1.$2.$3"
    if [ "$w" = epoch ]; then
        if [ "$sys" = tandem ]; then
            measure "$build/tools/tandem" train --optimizer adam --lr 0.002 --batch 128 --epochs 1 \
                --threads "$threads" --out "$tmp/epoch_out" |
                awk '/^done in/ { sub("s;", "", $3); print "epoch_run_ms", 1000 * $3 } /^peak_rss_mb/' >"$f"
            # The epoch as PyTorch's loop times it: training steps and
            # evaluation (evals.csv), without the weights and checkpoint
            # files `tandem train` then writes (the rest of epoch_run_ms).
            awk -F, 'NR == 2 { print "epoch_ms", 1000 * ($7 + $10); print "epoch_train_ms", 1000 * $7
                print "epoch_plan_ms", 1000 * $9; print "epoch_eval_ms", 1000 * $10 }' \
                "$tmp/epoch_out/evals.csv" >>"$f"
        else
            measure "${torch_env[@]}" /usr/bin/python3 "$here/bench_torch.py" --epoch --batch 128 \
                --threads "$threads" --data "$fmnist" |
                awk '$1 == "epoch_s" { print "epoch_ms", 1000 * $2 } /^peak_rss_mb/' >"$f"
        fi
        return
    fi
    if [ "$w" = products ]; then
        : >"$f"
        for s in $(product_shapes); do
            local st cmd
            st=$(product_steps "$s")
            if [ "$sys" = tandem ]; then
                cmd=("$build/tools/tandem-bench" --threads "$threads" --product "$s")
            else
                cmd=("${torch_env[@]}" /usr/bin/python3 "$here/bench_torch.py" --threads "$threads" --product "$s")
            fi
            # Keys product_<layout>_* become p<M>x<K>x<N>_<layout>_*.
            measure "${cmd[@]}" --steps "$st" --warmup 2 | sed "s/^product_/p${s//,/x}_/" >>"$f"
        done
        return
    fi
    # shellcheck disable=SC2046
    if [ "$sys" = tandem ]; then
        measure "$build/tools/tandem-bench" --threads "$threads" $(wl_args "$w") >"$f"
    else
        measure "${torch_env[@]}" /usr/bin/python3 "$here/bench_torch.py" --threads "$threads" \
            $(wl_args "$w") >"$f"
    fi
}

peak_run() {
    "$build/tools/tandem-peak" --threads "$threads" >"$tmp/peak.$1"
}

load1() { cut -d' ' -f1 /proc/loadavg; }
busy() { ps -eo pcpu=,comm= | awk '$1 > 20 { printf "%s%s(%d%%)", n++ ? ", " : "", $2, $1 }'; }

load_start=$(load1) busy_start=$(busy)
peak_run 0
active=()
for w in "${workloads[@]}"; do
    if [ "$w" = epoch ] && [ ! -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
        echo "bench.sh: skipping epoch: no Fashion-MNIST in $fmnist" >&2
        continue
    fi
    active+=("$w")
done
for r in $(seq 1 "$rounds"); do
    for w in "${active[@]}"; do
        # Alternate which system goes first, so neither always runs on a
        # machine the other has just warmed or heated.
        if [ $((r % 2)) = 1 ] || [ $torch_ok = 0 ]; then order="tandem torch"; else order="torch tandem"; fi
        for sys in $order; do
            [ "$sys" = torch ] && [ $torch_ok = 0 ] && continue
            echo "bench.sh: round $r/$rounds, $w, $sys" >&2
            rt_before=$("$build/tools/tandem-peak" --round-trip)
            run_one "$w" "$sys" "$r"
            { echo "${rt_before/core_round_trip_ns/rt_before_ns}"
                "$build/tools/tandem-peak" --round-trip | sed 's/core_round_trip_ns/rt_after_ns/'; } \
                >>"$tmp/$w.$sys.$r"
        done
    done
done
peak_run 1
load_end=$(load1)

peak=$(cat "$tmp"/peak.* | awk '$1 == "peak_gflops" && $2 > m { m = $2 } END { print m }')
peak1=$(cat "$tmp"/peak.* | awk '$1 == "peak_1thr_gflops" && $2 > m { m = $2 } END { print m }')
wall=$(cat "$tmp"/peak.* | awk '$1 == "peak_wall_gflops" { printf "%s%s", n++ ? ", " : "", $2 }')
# A round trip under near_ns: the cores one cache hop apart.
near_ns=150
near_trips() { # FILE...: "NEAR TOTAL", the round-trip readings in the files under near_ns and all
    cat "$@" 2>/dev/null | awk -v near="$near_ns" '$1 ~ /^rt_(before|after)_ns$/ { n++; if ($2 < near) f++ }
        END { printf "%d %d\n", f, n }'
}
read -r n_near n_trips <<<"$(near_trips "$tmp"/*.*.*)"
trips="$n_near of $n_trips"
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
torch_ver=$( ([ $torch_ok = 1 ] && /usr/bin/python3 -c 'import torch; print(torch.__version__)') || echo none)

# Median, min and max of a list of numbers.
stats() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan nan nan"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'; }
values() { # workload system key [phase]
    for r in $(seq 1 "$rounds"); do
        [ -n "${4:-}" ] && [ "$(round_phase "$1" "$r")" != "$4" ] && continue
        [ -f "$tmp/$1.$2.$r" ] && get "$3" "$(cat "$tmp/$1.$2.$r")"
    done | grep -v '^$' || true
}
# near (every round trip around both systems' runs of the round under
# near_ns), far (all over) or mixed.
round_phase() {
    near_trips "$tmp/$1".*."$2" | awk '{ print $2 == 0 ? "mixed" : $1 == $2 ? "near" : $1 == 0 ? "far" : "mixed" }'
}

csv="$out/bench.csv" md="$out/bench.md"
echo "workload,measure,gflop,tandem_ms,tandem_min_ms,tandem_max_ms,tandem_gflops,tandem_pct_peak,torch_ms,torch_min_ms,torch_max_ms,torch_pct_peak,tandem_over_torch,tandem_rss_mb,torch_rss_mb" >"$csv"
{
    echo "Tandem $commit against PyTorch $torch_ver, $threads threads, median of $rounds alternating round(s) (range min-max)."
    echo "FMA peak measured in the same run (tandem-peak): $peak GFLOP/s on $threads cores ($peak1 on one);"
    echo "wall-clock rate of the peak runs $wall GFLOP/s; load average $load_start at the start, $load_end at the end."
    echo "Core-to-core round trip (tandem-peak --round-trip) before and after each run: about 55 ns when this VM's two cores are one cache hop apart, about 300 when two; $trips readings under $near_ns ns."
    [ -n "$busy_start" ] && echo "Busy processes at the start: $busy_start."
    echo
    echo "| workload | measure | GFLOP | Tandem ms | % of peak | PyTorch ms | % of peak | Tandem / PyTorch | RSS MB (Tandem / PyTorch) |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$md"
for w in "${active[@]}"; do
    for m in $(wl_measures "$w"); do
        key=${m%%|*} label=${m#*|}
        label=${label//_/ }
        read -r tm tmin tmax <<<"$(values "$w" tandem "${key}_ms" | stats)"
        read -r pm pmin pmax <<<"$(values "$w" torch "${key}_ms" | stats)"
        gf=$(values "$w" tandem "${key}_gflop" | head -1)
        trss=$(values "$w" tandem peak_rss_mb | sort -g | tail -1)
        prss=$(values "$w" torch peak_rss_mb | sort -g | tail -1)
        awk -v w="$w" -v title="$(wl_title "$w")" -v label="$label" -v gf="${gf:-}" \
            -v tm="$tm" -v tmin="$tmin" -v tmax="$tmax" -v pm="$pm" -v pmin="$pmin" -v pmax="$pmax" \
            -v peak="$peak" -v trss="${trss:-}" -v prss="${prss:-}" -v csv="$csv" -v md="$md" 'BEGIN {
            tg = (gf != "" && tm > 0) ? gf / (tm / 1000) : ""
            tp = (tg != "" && peak > 0) ? 100 * tg / peak : ""
            pp = (gf != "" && pm > 0 && pm != "nan" && peak > 0) ? 100 * gf / (pm / 1000) / peak : ""
            ratio = (pm != "nan" && pm > 0) ? tm / pm : ""
            printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", w, label, gf, tm, tmin, tmax,
                tg == "" ? "" : sprintf("%.1f", tg), tp == "" ? "" : sprintf("%.1f", tp),
                pm == "nan" ? "" : pm, pm == "nan" ? "" : pmin, pm == "nan" ? "" : pmax,
                pp == "" ? "" : sprintf("%.1f", pp), ratio == "" ? "" : sprintf("%.3f", ratio),
                trss, prss >> csv
            printf "| %s | %s | %s | %.3f (%.3f-%.3f) | %s | %s | %s | %s | %s / %s |\n", title, label,
                gf == "" ? "-" : sprintf("%.2f", gf), tm, tmin, tmax,
                tp == "" ? "-" : sprintf("%.0f%%", tp),
                pm == "nan" ? "-" : sprintf("%.3f (%.3f-%.3f)", pm, pmin, pmax),
                pp == "" ? "-" : sprintf("%.0f%%", pp), ratio == "" ? "-" : sprintf("%.2f", ratio),
                trss == "" ? "-" : trss, prss == "" ? "-" : prss >> md
        }'
    done
done
# The same medians over the rounds whose runs (both systems) all saw the
# cores near or all far: this VM's phase moves both frameworks' times.
{
    echo
    echo "By phase: rounds whose runs, both systems', all saw the cores one hop apart (near) or all two (far)."
    echo
    echo "| workload | measure | phase | rounds | Tandem ms | % of peak | PyTorch ms | % of peak | Tandem / PyTorch |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >>"$md"
for w in "${active[@]}"; do
    for m in $(wl_measures "$w"); do
        key=${m%%|*} label=${m#*|}
        label=${label//_/ }
        gf=$(values "$w" tandem "${key}_gflop" | head -1)
        for ph in near far; do
            n=$(values "$w" tandem "${key}_ms" "$ph" | wc -l)
            [ "$n" -gt 0 ] || continue
            read -r tm _ <<<"$(values "$w" tandem "${key}_ms" "$ph" | stats)"
            read -r pm _ <<<"$(values "$w" torch "${key}_ms" "$ph" | stats)"
            awk -v title="$(wl_title "$w")" -v label="$label" -v ph="$ph" -v n="$n" -v gf="${gf:-}" \
                -v tm="$tm" -v pm="$pm" -v peak="$peak" 'BEGIN {
                tp = (gf != "" && tm > 0 && peak > 0) ? sprintf("%.0f%%", 100 * gf / (tm / 1000) / peak) : "-"
                pp = (gf != "" && pm != "nan" && pm > 0 && peak > 0) ? sprintf("%.0f%%", 100 * gf / (pm / 1000) / peak) : "-"
                printf "| %s | %s | %s | %d | %.3f | %s | %s | %s | %s |\n", title, label, ph, n, tm, tp,
                    pm == "nan" ? "-" : sprintf("%.3f", pm), pp, (pm != "nan" && pm > 0) ? sprintf("%.2f", tm / pm) : "-"
            }' >>"$md"
        done
    done
done
for w in "${active[@]}"; do
    [ "$w" = epoch ] || continue
    read -r e _ <<<"$(values epoch tandem epoch_ms | stats)"
    read -r tr _ <<<"$(values epoch tandem epoch_train_ms | stats)"
    read -r pl _ <<<"$(values epoch tandem epoch_plan_ms | stats)"
    read -r ev _ <<<"$(values epoch tandem epoch_eval_ms | stats)"
    read -r ru _ <<<"$(values epoch tandem epoch_run_ms | stats)"
    awk -v e="$e" -v tr="$tr" -v pl="$pl" -v ev="$ev" -v ru="$ru" 'BEGIN { if (e > 0 && tr > 0)
        printf "\nTandem epoch (medians): %.0f ms of training steps (%.0f%% in plans) and %.0f ms of evaluation; the loop outside plans (training steps less their plans) %.0f ms = %.0f%% of the epoch. Writing weights.h5 and checkpoint.h5 (not in PyTorch'"'"'s loop) takes the whole run to %.0f ms.\n",
            tr, 100 * pl / tr, ev, tr - pl, 100 * (tr - pl) / e, ru }' >>"$md"
done
if [ $torch_ok = 0 ]; then
    echo >>"$md"
    echo "(PyTorch not available: apt-get install python3-torch)" >>"$md"
fi
cat "$md"
echo
echo "wrote $md and $csv"
