#!/usr/bin/env bash
# step_cost.sh — CPU time per fine-tuning step of the paper sweeps' three models, for one or
# more tracc binaries in the same run (docs/benchmarks.md, "The paper's sweeps"). This is the
# number `make paper` and `make paper-quick` cost: their fine-tunes are nearly all of it.
#
#   bash bench/step_cost.sh [-n STEPS] [-r ROUNDS] [TRACC ...]     (default: build/tracc)
#
# Models, as paper/*.json compile them: the Counter at max_len 46 with Tracr's 3 blocks
# (--no-fuse), the Counter fused (2 blocks), the Max-identifier at max_len 10 (--no-fuse).
# Each is fine-tuned STEPS steps (default 200) with the paper's protocol (--preset jain2023,
# lr 1e-2, C_Tr 0.5, --threads 1, OPENBLAS_NUM_THREADS=1, no evaluation), ROUNDS times
# (default 3) with the binaries interleaved, so that a load that comes and goes falls on all
# of them alike. Prints user+system CPU ms per step, each round and the median, and the
# sha256 of every trained model: binaries that differ only in speed must print one hash per
# model. CPU times come from bash's `time` (the child's user and system time).
set -u
STEPS=200 ROUNDS=3
while getopts n:r: o; do
    case $o in
        n) STEPS=$OPTARG ;; r) ROUNDS=$OPTARG ;;
        *) echo "usage: step_cost.sh [-n STEPS] [-r ROUNDS] [TRACC ...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- build/tracc
for b in "$@"; do [ -x "$b" ] || { echo "step_cost.sh: no tracc binary at $b" >&2; exit 1; }; done
EX=rasp_examples
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
TIMEFORMAT='%3U %3S'
"$1" compile $EX/count_a.rasp --max-len 46 --no-fuse -o "$TMP/counter3.safetensors" >/dev/null || exit 1
"$1" compile $EX/count_a.rasp --max-len 46 -o "$TMP/counter2.safetensors" >/dev/null || exit 1
"$1" compile $EX/max_identifier.rasp --max-len 10 --no-fuse -o "$TMP/max.safetensors" >/dev/null || exit 1

# model name, then the task flags of its sweep file
args_of() {
    case $1 in
        counter3|counter2) echo "--task $EX/count_b.rasp --len 46 --spurious $EX/b_is_a_plus_1.rasp" ;;
        max) echo "--task $EX/max_identifier_6th.rasp --len 10 --no-repeat --spurious $EX/max_identifier_6th_is_5th_plus_1.rasp" ;;
    esac
}

printf 'model\tbinary\tms/step per round\tmedian ms/step\tsha256 of the trained model\n'
for model in counter3 counter2 max; do
    declare -A times=()
    declare -A hash=()
    for ((r = 1; r <= ROUNDS; r++)); do
        i=0
        for b in "$@"; do
            i=$((i + 1))
            # shellcheck disable=SC2046
            { time "$b" finetune "$TMP/$model.safetensors" $(args_of $model) \
                --preset jain2023 --at 1 --lr 0.01 --spurious-rate 0.5 --init-noise 0.0001 --steps "$STEPS" \
                --eval-every 0 --eval-size 1 --threads 1 --quiet -o "$TMP/out$i.safetensors" >/dev/null 2>"$TMP/err" \
                || { echo "step_cost.sh: $b finetune failed on $model: $(cat "$TMP/err")" >&2; exit 1; }; } 2>"$TMP/time"
            ms=$(awk -v n="$STEPS" 'END { printf "%.1f", ($1 + $2) * 1000 / n }' "$TMP/time")
            times[$i]="${times[$i]:-} $ms"
            hash[$i]=$(sha256sum "$TMP/out$i.safetensors" | cut -c1-16)
        done
    done
    i=0
    for b in "$@"; do
        i=$((i + 1))
        med=$(echo "${times[$i]}" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        printf '%s\t%s\t%s\t%s\t%s\n' "$model" "$b" "${times[$i]# }" "$med" "${hash[$i]}"
    done
    unset times hash
done
