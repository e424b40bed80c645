#!/bin/sh
# compile_sweep.sh — the long checks of the compiler, too slow for `make test`:
#   every program in rasp_examples/ compiled and checked on 10^4 seeded samples at max_len 16
#   and 64 (300 for the two whose max_len-64 models are tens of millions of parameters); the paper's Counter at max_len 46 (10^4 samples; tests/unit/test_compile.c covers
#   every count 0..46 explicitly); length and hist at max_len 256.
# Prints one line per check with its time, and a summary; exits 1 if any check failed.
#
#   sh bench/compile_sweep.sh [TRACC] [SAMPLES]     (defaults: build/tracc, 10000)
set -u
TRACC=${1:-build/tracc}
SAMPLES=${2:-10000}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
[ -x "$TRACC" ] || { echo "compile_sweep.sh: no tracc binary at $TRACC (run make)" >&2; exit 1; }
pass=0; fail=0
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

run() {   # run NAME ARGS...: one `tracc verify` with timing
    name=$1; shift
    a=$(date +%s%N)
    if "$TRACC" ${SUB:-verify} "$@" >"$LOG" 2>&1; then st=ok; pass=$((pass + 1)); else st=FAIL; fail=$((fail + 1)); fi
    b=$(date +%s%N)
    printf '%-4s %-40s %8.1f s  %s\n' "$st" "$name" "$(echo "($b - $a) / 1000000000" | bc -l)" "$(head -n 1 "$LOG")"
    [ "$st" = ok ] || sed 's/^/     /' "$LOG"
}

for n in 16 64; do
    for f in rasp_examples/*.rasp; do
        case "$(basename "$f"):$n" in
            # large dense models at 64: nary_sequencemap packs 4 x 64 x 64 argument
            # combinations into one ~16k-unit MLP; sort_freq's keys (-hist + i/10) have
            # 64 x 64 combinations (42M parameters): fewer samples
            nary_sequencemap.rasp:64|sort_freq.rasp:64)
                run "$(basename "$f") max_len $n (300 samples)" --samples 300 --max-len "$n" "$f"; continue ;;
        esac
        run "$(basename "$f") max_len $n" --samples "$SAMPLES" --max-len "$n" "$f"
    done
done
run "count_a.rasp max_len 46" --samples "$SAMPLES" --max-len 46 rasp_examples/count_a.rasp
# --conditioning balanced's own selector width (docs/compiler.md §10), on every example that
# uses it: `tracc compile` verifies before it writes
MOUT=$(mktemp)
for n in 16 64; do
    for f in count_a count_b b_is_a_plus_1 count length hist count_less_freq; do
        SUB=compile run "$f.rasp balanced max_len $n" --conditioning balanced --samples "$SAMPLES" \
            --max-len "$n" rasp_examples/$f.rasp -o "$MOUT"
    done
done
SUB=compile run "count_a.rasp balanced max_len 46" --conditioning balanced --samples "$SAMPLES" \
    --max-len 46 rasp_examples/count_a.rasp -o "$MOUT"
rm -f "$MOUT"
run "length.rasp max_len 256" --samples 2000 --max-len 256 rasp_examples/length.rasp
run "hist.rasp max_len 256" --samples 2000 --max-len 256 rasp_examples/hist.rasp
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
