#!/bin/sh
# Runs every test: the cmocka drivers given as arguments, then every tests/cli/*.sh.
# Each cmocka driver reports its own tests; each CLI script prints "RESULT passed=N failed=M".
# Ends with one line "N passed, N failed" and exits non-zero if anything failed.
BUILD=${BUILD:-build}
export BUILD
export TRACC="$BUILD/tracc"
export OPENBLAS_NUM_THREADS=1
# One kernel family for every machine that can run it: the tests that train compare with numbers
# found on OpenBLAS's Haswell kernels (the documented ones, docs/reproduction.md "To the bit");
# other families (Cooperlake on AVX-512 BF16, the Prescott fallback) round differently and can
# tip a knife-edge run. The tests of kernel choice itself set or unset it explicitly.
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=Haswell
    unset TRACC_OPENBLAS_FALLBACK
    echo "tests/run.sh: OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE=Haswell)"
else
    echo "tests/run.sh: no AVX2/FMA: OpenBLAS's own kernel choice; a training test may land elsewhere"
fi
pass=0
fail=0
log=$(mktemp)
for t in "$@"; do
    echo "== $t"
    if "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "!! $t exited with status $rc"; fi
    pass=$((pass + p)); fail=$((fail + f))
done
for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    echo "== $s"
    if sh "$s" >"$log" 2>&1; then rc=0; else rc=$?; fi
    cat "$log"
    p=$(sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\2/p' "$log" | tail -n 1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "!! $s exited with status $rc"; fi
    pass=$((pass + p)); fail=$((fail + f))
done
rm -f "$log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
