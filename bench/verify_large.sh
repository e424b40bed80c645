#!/bin/sh
# verify_large.sh — verification at large max_len (docs/benchmarks.md, "Verification at large
# max_len"). Prints Markdown tables on stdout, progress on stderr.
#
#   flock /tmp/tracc-bench.lock sh bench/verify_large.sh [TRACC] [OLD_TRACC] [MAX_LEN]
#
# 1. The same 1,000-input sample of count_a at max_len 256 checked by OLD_TRACC (a build
#    before parallel verification, if given), and by TRACC with --threads 1 and 2.
# 2. `tracc compile --max-len MAX_LEN` (default 1024) of every example, with the default check
#    (10,000 inputs or the 60 s time budget): wall time and the summary line. Examples whose
#    tables exceed the compiler's size limits at that length fail to compile and are listed so.
set -u
TRACC=${1:-build/tracc}
OLD=${2:-}
ML=${3:-1024}
export OPENBLAS_NUM_THREADS=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc | sed 's/^\./0./'; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
echo
echo "| count_a, max_len 256, 1,000 inputs | wall s |"
echo "|---|---|"
if [ -n "$OLD" ]; then
    s=$(now); "$OLD" verify rasp_examples/count_a.rasp --max-len 256 --samples 1000 >"$T/o" 2>&1; e=$(now)
    echo "| before (one thread, batches of 256) | $(secs "$s" "$e") |"
fi
for th in 1 2; do
    s=$(now); "$TRACC" verify rasp_examples/count_a.rasp --max-len 256 --samples 1000 --threads $th >"$T/o" 2>&1; e=$(now)
    echo "| after, --threads $th | $(secs "$s" "$e") |"
done
echo
echo "| example at max_len $ML | wall s | result |"
echo "|---|---|---|"
for f in rasp_examples/*.rasp; do
    b=$(basename "$f" .rasp)
    echo "verify_large: $b" >&2
    s=$(now); "$TRACC" compile "$f" --max-len "$ML" -o "$T/m.safetensors" >"$T/o" 2>"$T/e"; rc=$?; e=$(now)
    if [ $rc -eq 0 ]; then
        line=$(sed 's/.*; verified/verified/' "$T/o")
    else
        line="not compiled: $(grep -m1 'error' "$T/e" | sed 's/^[^ ]* error: //' | cut -c1-90)"
    fi
    rm -f "$T/m.safetensors"
    echo "| $b | $(secs "$s" "$e") | $line |"
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
