#!/bin/sh
# tests/cli/examples.sh — every program in rasp_examples/ (not lib/) passes `tracc check`,
# reproduces each of its "# example: INPUT -> OUTPUT" lines through `tracc eval`, and
# gives one valid `--json` row (as many elements as tokens, agreeing with the text row).
. tests/lib.sh

# expect_status NAME STATUS -- CMD... : only the exit status matters (stderr shown on failure).
expect_status() {
    name=$1; want_rc=$2; shift 3
    "$@" >"$TMPD/out" 2>"$TMPD/err"; rc=$?
    if [ "$rc" -ne "$want_rc" ]; then bad "$name: status $rc, wanted $want_rc"; cat "$TMPD/err"; return; fi
    ok
}

# The JSON row must be an array with one element per token, each equal to the text row's
# value: null = None, true/false, numbers by value (1e-12 relative), strings exactly.
JSON_CHECK='
import json, sys
row = json.loads(sys.stdin.read())
want = sys.argv[2].split()
assert isinstance(row, list), "not a JSON array"
assert len(row) == int(sys.argv[1]), "%d elements for %s tokens" % (len(row), sys.argv[1])
assert len(row) == len(want), "%d elements, text row has %d" % (len(row), len(want))
def same(j, t):
    if j is None: return t == "None"
    if isinstance(j, bool): return t == ("true" if j else "false")
    if isinstance(j, (int, float)):
        try: x = float(t)
        except ValueError: return False
        return abs(j - x) <= 1e-12 * max(1.0, abs(x))
    return j == t
bad = [(j, t) for j, t in zip(row, want) if not same(j, t)]
assert not bad, "JSON and text disagree: %r" % bad
'

nfiles=0
files=$(ls rasp_examples/*.rasp)
set -f   # from here on, example tokens such as "(" or "*" reach tracc verbatim, never as globs
for f in $files; do
    nfiles=$((nfiles + 1))
    expect_status "check $f" 0 -- "$TRACC" check "$f"
    n=0
    # One "# example: a b c -> x y z" line per case.
    sed -n 's/^# example: //p' "$f" >"$TMPD/examples"
    while IFS= read -r line <&3; do
        input=${line%% -> *}
        want=${line#* -> }
        n=$((n + 1))
        # $input is split into tokens on purpose.
        expect_out "$f example $n ($input)" 0 "$want" -- "$TRACC" eval "$f" $input
        if [ "$n" -eq 1 ]; then
            set -- $input
            if "$TRACC" eval --json "$f" $input >"$TMPD/json" 2>"$TMPD/err" &&
               python3 -c "$JSON_CHECK" "$#" "$want" <"$TMPD/json" 2>"$TMPD/pyerr"; then
                ok
            else
                bad "$f --json ($input)"; cat "$TMPD/err" "$TMPD/json" "$TMPD/pyerr"
            fi
        fi
    done 3<"$TMPD/examples"
    if [ "$n" -lt 4 ]; then bad "$f: only $n example lines (want at least 4)"; else ok; fi
done
[ "$nfiles" -ge 17 ] && ok || bad "only $nfiles example programs found"
finish
