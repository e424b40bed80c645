#!/bin/sh
# tests/fuzz/run.sh SECONDS NAME... — run each libFuzzer harness build/fuzz/fuzz_NAME for SECONDS
# from its seed corpus tests/fuzz/corpus/NAME (read only) and its working corpus
# build/fuzz/corpus/NAME (grown), with tests/fuzz/NAME.dict when present. Prints one line per
# harness (executions, coverage, corpus size); exits 1 on the first crash, leak or sanitizer report.
secs=$1; shift
status=0
for n in "$@"; do
    bin=build/fuzz/fuzz_$n
    work=build/fuzz/corpus/$n
    mkdir -p "$work"
    dict=""
    [ -f "tests/fuzz/$n.dict" ] && dict="-dict=tests/fuzz/$n.dict"
    log=build/fuzz/$n.log
    # -rss_limit_mb: a single input may not take more than 2 GB (a budget is part of the contract)
    if OPENBLAS_NUM_THREADS=1 "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
        -artifact_prefix="build/fuzz/crash-$n-" -print_final_stats=1 $dict "$work" "tests/fuzz/corpus/$n" \
        >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "fuzz $n: ${execs:-?} executions in ${secs}s, $cov, corpus $(ls "$work" | wc -l) files"
    else
        echo "fuzz $n: FAILED (log $log)"
        grep -E 'ERROR|SUMMARY|proved exact|Test unit written' "$log" | head -n 8
        status=1
    fi
done
exit $status
