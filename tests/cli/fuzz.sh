#!/bin/sh
# A short bounded slice of `make fuzz` in every test run: build the libFuzzer harnesses of
# tests/fuzz/ (clang, ASan/UBSan) and run each for FUZZ_SECONDS (default 8) from its seed
# corpus. Skips with a message when clang is absent. `make fuzz FUZZ_SECONDS=N` is the campaign.
. tests/lib.sh
if ! command -v clang >/dev/null 2>&1; then
    echo "skip: clang is not installed (apt-get install clang): no fuzzing in this run"
    finish
    exit $?
fi
if make --no-print-directory fuzz-build >"$TMPD/build.log" 2>&1; then ok; else bad "make fuzz-build failed"; tail -n 20 "$TMPD/build.log"; finish; exit 1; fi
for n in $(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/fuzz_\(.*\)\.c|\1|'); do
    if sh tests/fuzz/run.sh "${FUZZ_SECONDS:-8}" "$n"; then ok; else bad "fuzz $n"; fi
done
finish
