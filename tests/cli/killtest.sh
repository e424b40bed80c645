#!/bin/sh
# tests/cli/killtest.sh — fault injection: SIGKILL at seeded random moments of `compile` (a model
# of 13 MB, so many kills land in the save) and of `finetune` with checkpoints and a log. After
# every kill the outputs are absent or complete (byte-identical to an uninterrupted run's, and
# loadable by `tracc explain`); `finetune --resume` finishes with the bytes of an uninterrupted
# run; after the next complete run no temp file (OUT.tracc-tmp.PID) is left. The moments are
# fractions of the uninterrupted run's time drawn from a fixed seed (KILLTEST_SEED to vary them,
# KILLTEST_N kills of each command); only the outcome is asserted, never a timing.
. tests/lib.sh

SEED=${KILLTEST_SEED:-15}
N=${KILLTEST_N:-6}
export OPENBLAS_NUM_THREADS=1
D="$TMPD/k"
mkdir -p "$D"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# moments SALT COUNT MAX_MS: COUNT delays in seconds, uniform in [0, MAX_MS] ms, from SEED and SALT
# (Park-Miller in awk's exact integer range, so every awk gives the same moments)
moments() { awk -v s="$SEED" -v salt="$1" -v n="$2" -v m="$3" 'BEGIN {
    x = (s * 7919 + salt * 104729) % 2147483646 + 1
    for (i = 0; i < 3; i++) x = (16807 * x) % 2147483647
    for (i = 0; i < n; i++) { x = (16807 * x) % 2147483647; printf "%.3f\n", x / 2147483647 * m / 1000 } }'; }
temps() { ls "$D" | grep 'tracc-tmp' ; }
# complete NAME FILE REF: FILE is absent, or loads and equals REF
complete() {
    [ -e "$2" ] || { ok; return; }
    if "$TRACC" explain "$2" >/dev/null 2>"$TMPD/err" && cmp -s "$2" "$3"; then ok
    else bad "$1: $2 is present but not complete"; cat "$TMPD/err"; fi
}

# ---- compile
REF="$TMPD/ref.safetensors"
PROG="rasp_examples/sort.rasp --max-len 96 --samples 20"
t0=$(now_ms)
"$TRACC" compile $PROG -o "$REF" >/dev/null 2>"$TMPD/err" || { bad "compile: reference run"; cat "$TMPD/err"; }
t1=$(now_ms)
OUT="$D/sort.safetensors"
killed=0; left=0; i=0
for d in $(moments 1 "$N" $((t1 - t0))); do
    i=$((i + 1))
    rm -f "$OUT"
    "$TRACC" compile $PROG -o "$OUT" >/dev/null 2>&1 &
    pid=$!
    sleep "$d"
    kill -KILL $pid 2>/dev/null && killed=$((killed + 1))
    wait $pid 2>/dev/null
    complete "compile kill $i at ${d}s" "$OUT" "$REF"
    [ -n "$(temps)" ] && left=$((left + 1))
done
"$TRACC" compile $PROG -o "$OUT" >/dev/null 2>"$TMPD/err" && ok || { bad "compile after the kills"; cat "$TMPD/err"; }
cmp -s "$OUT" "$REF" && ok || bad "compile after the kills: output differs from the reference"
[ -z "$(temps)" ] && ok || bad "compile: temp files left after a complete run: $(temps)"
echo "compile: $killed of $N runs killed, $left left a temp file behind until the next run"

# ---- finetune with checkpoints and a log; resumed until done
M="$TMPD/ca.safetensors"
"$TRACC" compile rasp_examples/count_a.rasp -o "$M" >/dev/null 2>&1 || bad "compile count_a"
FT="$TRACC finetune"
ARGS="--task rasp_examples/count_b.rasp --at 1 --steps 160 --batch 16 --lr 1e-2 --warmup 5 --init-noise 1e-3
      --optimizer adamw --quiet --threads 1 --checkpoint-every 3"
FREF="$TMPD/fref.safetensors"
t0=$(now_ms)
$FT "$M" $ARGS -o "$FREF" >/dev/null 2>"$TMPD/err" || { bad "finetune: reference run"; cat "$TMPD/err"; }
t1=$(now_ms)
FOUT="$D/ft.safetensors"; CK="$D/ft.ckpt.safetensors"; LOG="$D/ft.jsonl"
killed=0; left=0; resumed=0; i=0; fresh=1
for d in $(moments 2 "$N" $((t1 - t0))); do
    i=$((i + 1))
    if [ $fresh -eq 0 ] && [ -e "$CK" ]; then
        $FT --resume "$CK" >/dev/null 2>&1 &
        resumed=$((resumed + 1))
    else   # a new run (the first, or after one that finished before its kill)
        rm -f "$FOUT" "$CK" "$LOG"
        $FT "$M" $ARGS --log "$LOG" -o "$FOUT" >/dev/null 2>&1 &
    fi
    pid=$!
    sleep "$d"
    if kill -KILL $pid 2>/dev/null; then killed=$((killed + 1)); fresh=0; else fresh=1; fi
    wait $pid 2>/dev/null
    complete "finetune kill $i at ${d}s: output" "$FOUT" "$FREF"
    if [ -e "$CK" ]; then
        "$TRACC" explain "$CK" >/dev/null 2>"$TMPD/err" && ok || { bad "finetune kill $i: checkpoint incomplete"; cat "$TMPD/err"; }
    fi
    [ -n "$(temps)" ] && left=$((left + 1))
done
if [ $fresh -eq 0 ] && [ -e "$CK" ]; then
    $FT --resume "$CK" >/dev/null 2>"$TMPD/err" && ok || { bad "finetune: the last resume"; cat "$TMPD/err"; }
    resumed=$((resumed + 1))
else
    rm -f "$FOUT" "$CK" "$LOG"
    $FT "$M" $ARGS --log "$LOG" -o "$FOUT" >/dev/null 2>"$TMPD/err" && ok || { bad "finetune: the last run"; cat "$TMPD/err"; }
fi
cmp -s "$FOUT" "$FREF" && ok || bad "finetune: the resumed output differs from the uninterrupted run's"
[ -z "$(temps)" ] && ok || bad "finetune: temp files left after the resume: $(temps)"
# the log survived the kills as whole JSON lines, ending with the run's "done"
if python3 - "$LOG" <<'EOF' 2>"$TMPD/py"; then ok; else bad "finetune: the log"; cat "$TMPD/py"; fi
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["type"] == "start" and lines[-1]["type"] == "done", (lines[0], lines[-1])
EOF
echo "finetune: $killed of $N runs killed; $resumed runs resumed from a checkpoint, $left left a temp file behind until the next run"

finish
