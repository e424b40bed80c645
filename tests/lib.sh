# Sourced by the CLI test scripts (tests/cli/*.sh): . tests/lib.sh $TRACC is the binary under test.
# check NAME EXPECTED_STATUS EXPECTED_STDOUT_FILE_OR_- CMD... : runs CMD, compares.
: "${TRACC:=build/tracc}"
PASSED=0
FAILED=0
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT

ok()   { PASSED=$((PASSED + 1)); }
bad()  { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

# expect_out NAME STATUS EXPECTED -- CMD... : stdout must equal EXPECTED (a string) and the
# exit status must be STATUS.
expect_out() {
    name=$1; want_rc=$2; want=$3; shift 4
    got=$("$@" 2>"$TMPD/err"); rc=$?
    if [ "$rc" -ne "$want_rc" ]; then bad "$name: status $rc, wanted $want_rc"; cat "$TMPD/err"; return; fi
    if [ "$got" != "$want" ]; then bad "$name: output differs"; echo "--- wanted"; echo "$want"; echo "--- got"; echo "$got"; return; fi
    ok
}

# expect_err NAME STATUS PATTERN -- CMD... : stderr must contain PATTERN (grep -F), status must match.
expect_err() {
    name=$1; want_rc=$2; pat=$3; shift 4
    "$@" >"$TMPD/out" 2>"$TMPD/err"; rc=$?
    if [ "$rc" -ne "$want_rc" ]; then bad "$name: status $rc, wanted $want_rc"; cat "$TMPD/err"; return; fi
    if ! grep -qF -- "$pat" "$TMPD/err"; then bad "$name: stderr lacks '$pat'"; cat "$TMPD/err"; return; fi
    ok
}

finish() { echo "RESULT passed=$PASSED failed=$FAILED"; [ "$FAILED" -eq 0 ]; }
