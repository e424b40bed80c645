#!/usr/bin/env bash
# flush_subnormals.sh — what `tracc finetune --flush-subnormals` saves where subnormal floats are
# slow (docs/benchmarks.md, "Where the subnormals are"). Fine-tunes a model the paper's way at
# η 1e-1 (or takes MODEL), then times STEPS steps of reverse fine-tuning on the pretraining task
# (count a), with and without the flag, ROUNDS times interleaved. Prints user+system CPU ms per
# step each round, the medians and their ratio, and each variant's sha256 (the two differ: the
# flush is another rounding; each must print one hash over the rounds).
#
#   bash bench/flush_subnormals.sh [-n STEPS] [-r ROUNDS] [-b TRACC] [MODEL]
#
# Without MODEL: the Counter compiled as the paper sweeps do (--no-fuse, max_len 46), fine-tuned
# 2,000 steps with --preset jain2023 at η 1e-1, C_Tr 0.9, seed 3 (main Counter sweep job 0018's
# setting, shorter): a few minutes. On a CPU that handles subnormals at full speed (AMD's, for
# one) the ratio is about 1.
set -u
STEPS=60 ROUNDS=3 TRACC=build/tracc
while getopts n:r:b: o; do
    case $o in
        n) STEPS=$OPTARG ;; r) ROUNDS=$OPTARG ;; b) TRACC=$OPTARG ;;
        *) echo "usage: flush_subnormals.sh [-n STEPS] [-r ROUNDS] [-b TRACC] [MODEL]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ -x "$TRACC" ] || { echo "flush_subnormals.sh: no tracc binary at $TRACC" >&2; exit 1; }
EX=rasp_examples
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
TIMEFORMAT='%3U %3S'
"$TRACC" --version | sed -n 2p
if [ $# -gt 0 ]; then
    MODEL=$1
else
    MODEL=$TMP/ft.safetensors
    echo "preparing: the Counter fine-tuned 2000 steps at lr 0.1 (a few minutes)"
    "$TRACC" compile $EX/count_a.rasp --max-len 46 --no-fuse -o "$TMP/c.safetensors" >/dev/null || exit 1
    "$TRACC" finetune "$TMP/c.safetensors" --preset jain2023 --task $EX/count_b.rasp --at 1 --len 46 \
        --spurious $EX/b_is_a_plus_1.rasp --spurious-rate 0.9 --lr 0.1 --seed 3 --init-noise 1e-4 \
        --steps 2000 --eval-every 0 --threads 1 --quiet -o "$MODEL" || exit 1
fi
[ -r "$MODEL" ] || { echo "flush_subnormals.sh: cannot read $MODEL" >&2; exit 1; }

# the sweeps' reverse fine-tuning, shortened: the model trained back on count a
run() {   # run FLAG OUT: prints "user sys"
    { time "$TRACC" finetune "$MODEL" --preset jain2023 --task $EX/count_a.rasp --at 1 --len 46 --lr 1e-3 \
        --steps "$STEPS" --warmup 5 --init-noise 0 --eval-every 0 --threads 1 --quiet $1 -o "$2" \
        >/dev/null 2>&1; } 2>&1 | tail -n 1
}
declare -A ms
for r in $(seq 1 "$ROUNDS"); do
    for v in kept flushed; do
        flag=""; [ $v = flushed ] && flag=--flush-subnormals
        set -- $(run "$flag" "$TMP/$v-$r.safetensors")
        ms[$v,$r]=$(awk -v u="$1" -v s="$2" -v n="$STEPS" 'BEGIN { printf "%.1f", (u + s) * 1000 / n }')
        echo "round $r  $v: ${ms[$v,$r]} ms per step"
    done
done
median() {   # median VARIANT
    for r in $(seq 1 "$ROUNDS"); do echo "${ms[$1,$r]}"; done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
mk=$(median kept) mf=$(median flushed)
echo "median: subnormals kept $mk ms, flushed $mf ms per step: $(awk -v a="$mk" -v b="$mf" 'BEGIN { printf "%.2f", a / b }')x"
for v in kept flushed; do
    echo "$v: $(sha256sum "$TMP/$v"-*.safetensors | cut -c1-16 | sort -u | tr '\n' ' ')"
done
