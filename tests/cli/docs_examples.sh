#!/bin/sh
# tests/cli/docs_examples.sh — the example transcripts in README.md and docs/*.md print what
# this build prints (tests/docs/check_examples.py; the convention is in tests/docs/README.md).
# Pages marked slow (docs/analysis.md's walkthrough) are listed, not run: `make docs-check`
# runs them. The demo's own programs must pass `tracc check` too.
. tests/lib.sh

if ! command -v python3 >/dev/null 2>&1; then
    bad "python3 is needed to check the documentation's examples"
    finish
    exit 1
fi
for f in demo/*.rasp; do
    if "$TRACC" check "$f" >"$TMPD/out" 2>&1; then ok; else bad "tracc check $f"; cat "$TMPD/out"; fi
done
out=$(TRACC="$TRACC" python3 tests/docs/check_examples.py 2>&1); rc=$?
printf '%s\n' "$out" | grep -v '^RESULT '
p=$(printf '%s\n' "$out" | sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\1/p')
f=$(printf '%s\n' "$out" | sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\2/p')
if [ -z "$p" ]; then bad "check_examples.py did not finish (status $rc)"; p=0; f=0; fi
PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then bad "check_examples.py exited with status $rc"; fi
finish
