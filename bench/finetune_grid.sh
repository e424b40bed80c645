#!/usr/bin/env bash
# finetune_grid.sh — issue 7's fine-tuning measurements on the paper's Counter (count_a at
# max_len 46), for one compiler conditioning. Not part of `make test` (minutes, not seconds);
# `make finetune-grid` runs it for both conditionings. Results: docs/training.md.
#
#   bash bench/finetune_grid.sh [-c tracr|balanced] [-n NOISE] [-k CLIP] [-s SEEDS] [-j JOBS]
#                               [-p own|countb|all] OUTDIR
#
# Protocol: the paper's (`--preset jain2023`: SGD, momentum 0.9, batch 96, logit scale 10,
# warmup then cosine to 0.01 x lr) shortened to 500 steps with a 100-step warmup (the
# preset's 20%), gradient clipping OFF (--clip 0; -k 1 clips the global norm to 1, the
# trainer's default, for contrast), init noise NOISE (default 1e-3, the paper's; 0 measures the
# optimizer alone), seeds 1..SEEDS (data and noise).
#   own:    fine-tune on count_a itself, lr in {1e-1, 1e-2, 1e-3}; accuracy on count_a after.
#   countb: fine-tune to count_b with C_Tr in {0, 1} (the fraction of training inputs with
#           count(b) = count(a) + 1), lr in {1e-1, 1e-2, 1e-3, 1e-4}; count-a (O_PT) and
#           count-b (O_FT) accuracy on test inputs with (C_Te = 1) and without (C_Te = 0) the
#           correlation, and the regime of the paper's Table 3 that the numbers show.
# Writes OUTDIR/grid.tsv (one line per run) and prints it; a run that diverges (NaN) is
# recorded with the step where it did.
set -u
COND=tracr NOISE=1e-3 CLIP=0 SEEDS=5 JOBS=1 PART=all
while getopts c:n:k:s:j:p: o; do
    case $o in
        c) COND=$OPTARG ;; n) NOISE=$OPTARG ;; k) CLIP=$OPTARG ;; s) SEEDS=$OPTARG ;; j) JOBS=$OPTARG ;; p) PART=$OPTARG ;;
        *) echo "usage: finetune_grid.sh [-c tracr|balanced] [-n NOISE] [-k CLIP] [-s SEEDS] [-j JOBS] [-p own|countb|all] OUTDIR" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: finetune_grid.sh [options] OUTDIR" >&2; exit 2; }
OUT=$1
TRACC=${TRACC:-build/tracc}
EX=rasp_examples
S=$EX/b_is_a_plus_1.rasp
export OPENBLAS_NUM_THREADS=1
[ -x "$TRACC" ] || { echo "finetune_grid.sh: no tracc binary at $TRACC (run make)" >&2; exit 1; }
mkdir -p "$OUT/runs" || exit 1
MODEL=$OUT/count_a46_$COND.safetensors
"$TRACC" compile --max-len 46 --conditioning "$COND" $EX/count_a.rasp -o "$MODEL" >/dev/null || exit 1

acc() {   # acc NAME FILE: a set's accuracy (percent) from a tracc finetune --json summary or eval log line
    v=$(grep -o "\"$1\":{\"acc\":[0-9.e-]*" "$2" | tail -n 1 | sed 's/.*://')
    [ -n "$v" ] && awk -v a="$v" 'BEGIN { printf "%.1f", 100 * a }' || printf -- '-'
}
first_acc() {   # first_acc NAME LOG: the set's accuracy at step 0
    grep '"type":"eval","step":0,' "$2" | head -n 1 >"$2.0"
    acc "$1" "$2.0"
}

# one run: KIND LR CTR SEED -> one TSV line in runs/KIND_LR_CTR_SEED.tsv
one() {
    kind=$1 lr=$2 ctr=$3 seed=$4
    id=${kind}_${lr}_${ctr}_$seed
    base="$TRACC finetune $MODEL --at 1 --len 46 --preset jain2023 --steps 500 --warmup 100 --clip $CLIP
          --lr $lr --init-noise $NOISE --seed $seed --threads 1 --eval-every 0 --quiet --json
          --log $OUT/runs/$id.jsonl -o $OUT/runs/$id.safetensors"
    if [ "$kind" = own ]; then
        set -- --task $EX/count_a.rasp --eval pt=$EX/count_a.rasp
        sets="pt"
    else
        set -- --task $EX/count_b.rasp --spurious $S --spurious-rate "$ctr" \
            --eval "pt1=$EX/count_a.rasp,spurious=$S,rate=1" --eval "ft1=$EX/count_b.rasp,spurious=$S,rate=1" \
            --eval "pt0=$EX/count_a.rasp,spurious=$S,rate=0" --eval "ft0=$EX/count_b.rasp,spurious=$S,rate=0"
        sets="pt1 ft1 pt0 ft0"
    fi
    # shellcheck disable=SC2086
    $base "$@" >"$OUT/runs/$id.json" 2>"$OUT/runs/$id.err"
    rc=$?
    line="$COND	$NOISE/clip$CLIP	$kind	$lr	$ctr	$seed"
    for s in $sets; do line="$line	$(first_acc $s "$OUT/runs/$id.jsonl")"; done
    if [ $rc -eq 0 ]; then
        status=ok
        for s in $sets; do line="$line	$(acc $s "$OUT/runs/$id.json")"; done
    else
        status=$(grep -o 'step [0-9]*: the [a-z ]* is \(nan\|not finite\)' "$OUT/runs/$id.err" | sed 's/step \([0-9]*\):.*/nan@\1/')
        [ -n "$status" ] || status=error
        for s in $sets; do line="$line	-"; done
    fi
    if [ "$kind" = countb ]; then
        line="$line	$(regime "$status" "$line")"
    fi
    printf '%s	%s\n' "$line" "$status" >"$OUT/runs/$id.tsv"
    rm -f "$OUT/runs/$id.safetensors" "$OUT/runs/$id.ckpt.safetensors"
}

# The paper's Table 3 regimes, from the four final accuracies (C_Te=1 O_PT, O_FT, C_Te=0 O_PT, O_FT):
#   learned   counts b on uncorrelated inputs (C_Te=0 O_FT >= 90)
#   learning  on its way there (C_Te=0 O_FT >= 50)
#   wrapper   counts b only where the correlation holds (C_Te=1 O_FT >= 90, C_Te=0 O_FT < 50
#             and C_Te=0 O_PT < 50: it answers count(a) + 1)
#   unchanged still counts a (C_Te=0 O_PT >= 90); partly-a: C_Te=0 O_PT >= 50
#   collapsed none of these (typically the most common count everywhere)
#   diverged  the loss became NaN
# (an awk program over a TSV line: final accuracies in fields 11-14, the run's status in 16)
REGIME_AWK='function regime(p1, f1, p0, f0, st) {
    if (st != "ok") return "diverged"
    if (f0 >= 90) return "learned"
    if (p0 >= 90) return "unchanged"
    if (f1 >= 90 && f0 < 50 && p0 < 50) return "wrapper"
    if (f0 >= 50) return "learning"
    if (p0 >= 50) return "partly-a"
    return "collapsed" }'
regime() {
    echo "$2" | awk -F'\t' -v st="$1" "$REGIME_AWK"' { print regime($11, $12, $13, $14, st) }'
}

jobs_list() {
    if [ "$PART" = own ] || [ "$PART" = all ]; then
        for lr in 1e-1 1e-2 1e-3; do for s in $(seq 1 "$SEEDS"); do echo "own $lr - $s"; done; done
    fi
    if [ "$PART" = countb ] || [ "$PART" = all ]; then
        for ctr in 0 1; do for lr in 1e-1 1e-2 1e-3 1e-4; do for s in $(seq 1 "$SEEDS"); do echo "countb $lr $ctr $s"; done; done; done
    fi
}

# run the list JOBS at a time (each run is single-threaded)
jobs_list | {
    while read -r k l c s; do
        while [ "$(jobs -r | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
        one "$k" "$l" "$c" "$s" &
    done
    wait
}
{
    printf 'conditioning\tnoise\tkind\tlr\tC_Tr\tseed\tstep-0 accuracies ...\tfinal accuracies ...\t[regime]\tstatus\n'
    cat "$OUT"/runs/*.tsv | sort -t'	' -k3,3 -k5,5 -k4,4 -k6,6n
} >"$OUT/grid.tsv"
cat "$OUT/grid.tsv"

# summary: one markdown row per setting, seeds pooled
echo
echo "summary ($COND, init noise $NOISE, clip $CLIP, $SEEDS seeds; accuracies in %, after = at step 500):"
echo "| task | lr | step 0 (mean) | after, per seed | kept >= 99% |"
echo "|---|---|---|---|---|"
awk -F'\t' '$3 == "own" {
        k = $4; n[k]++; a0[k] += $7
        if ($9 == "ok") { fin[k] = fin[k] " " $8; if ($8 >= 99) kept[k]++ } else fin[k] = fin[k] " " $9
    }
    END { for (k in n) printf "| count-a | %s | %.1f |%s | %d of %d |\n", k, a0[k] / n[k], fin[k], kept[k], n[k] }' \
    "$OUT/grid.tsv" | sort
echo
echo "| task | lr | C_Tr | regimes | mean C_Te=1 O_PT / O_FT, C_Te=0 O_PT / O_FT (runs that did not diverge) |"
echo "|---|---|---|---|---|"
awk -F'\t' "$REGIME_AWK"'
    $3 == "countb" {
        k = $4 " " $5; m[k]++; reg[k, regime($11, $12, $13, $14, $16)]++
        if ($16 == "ok") { ok[k]++; for (i = 11; i <= 14; i++) s[k, i] += $i }
    }
    END {
        split("learned learning wrapper unchanged partly-a collapsed diverged", names, " ")
        for (k in m) {
            split(k, p, " "); r = ""
            for (j = 1; j <= 7; j++) if (reg[k, names[j]]) r = r sprintf("%s%d %s", r ? ", " : "", reg[k, names[j]], names[j])
            a = "-"
            if (ok[k]) a = sprintf("%.1f / %.1f / %.1f / %.1f", s[k, 11] / ok[k], s[k, 12] / ok[k], s[k, 13] / ok[k], s[k, 14] / ok[k])
            printf "| count-b | %s | %s | %s | %s |\n", p[1], p[2], r, a
        }
    }' "$OUT/grid.tsv" | sort -t'|' -k4,4 -k3,3
