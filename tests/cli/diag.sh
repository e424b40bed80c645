#!/bin/sh
# Golden diagnostics. For every tests/diag/NAME.rasp, `tracc check tests/diag/NAME.rasp`
# must print exactly tests/diag/NAME.expected on stderr, nothing on stdout, and exit 1.
# Inputs that are huge or binary are generated here rather than committed: gen_NAME.expected
# has no .rasp beside it; the script writes tests/diag/gen_NAME.rasp into a scratch tree and
# runs the check there, so the path in the messages reads the same.
. tests/lib.sh
ROOT=$(pwd)
case $TRACC in /*) ;; *) TRACC="$ROOT/$TRACC" ;; esac

# golden NAME DIR: check DIR/tests/diag/NAME.rasp against tests/diag/NAME.expected
golden() {
    name=$1
    dir=$2
    want="$ROOT/tests/diag/$name.expected"
    if [ ! -f "$want" ]; then bad "$name: tests/diag/$name.expected is missing"; return; fi
    (cd "$dir" && "$TRACC" check "tests/diag/$name.rasp") >"$TMPD/out" 2>"$TMPD/err"
    rc=$?
    if [ "$rc" -ne 1 ]; then bad "$name: status $rc, wanted 1"; cat "$TMPD/err"; return; fi
    if [ -s "$TMPD/out" ]; then bad "$name: unexpected output on stdout"; cat "$TMPD/out"; return; fi
    if ! cmp -s "$TMPD/err" "$want"; then
        bad "$name: stderr differs from tests/diag/$name.expected"
        diff "$want" "$TMPD/err" | head -40
        return
    fi
    ok
}

# ---- generators (deterministic) ----
gen_deep_parens() {
    printf 'vocab {a, b};\nmax_len 4;\n'
    awk 'BEGIN { printf "x = "; for (i = 0; i < 10000; i++) printf "(";
                 printf "1"; for (i = 0; i < 10000; i++) printf ")"; printf ";\n" }'
    printf 'y = tokens +;\noutput x;\n'
}

gen_binary_garbage() {
    # 3000 bytes of (37 i + 11) mod 256: every byte value, NULs included
    esc=$(awk 'BEGIN { for (i = 0; i < 3000; i++) printf "\\%03o", (i * 37 + 11) % 256 }')
    printf "$esc"
}

gen_nul_byte() {
    printf 'vocab {a, b};\nmax_len 4;\nx = tokens\000 == "a";\noutput x;\n'
}

gen_long_line() {
    # a 1 MB line with one error near its middle
    printf 'vocab {a, b};\nmax_len 4;\nx = '
    awk 'BEGIN { for (i = 0; i < 50000; i++) printf "tokens + "; printf "$ + ";
                 for (i = 0; i < 50000; i++) printf "tokens + "; printf "1;\n" }'
    printf 'output x;\n'
}

mkdir -p "$TMPD/gen/tests/diag"
for g in deep_parens binary_garbage nul_byte long_line; do
    "gen_$g" >"$TMPD/gen/tests/diag/gen_$g.rasp"
    golden "gen_$g" "$TMPD/gen"
done

for f in tests/diag/*.rasp; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .rasp)
    golden "$name" "$ROOT"
done

# every .expected has its input
for e in tests/diag/*.expected; do
    [ -f "$e" ] || continue
    name=$(basename "$e" .expected)
    case $name in gen_*) continue ;; esac
    [ -f "tests/diag/$name.rasp" ] || bad "$e has no tests/diag/$name.rasp"
done

finish
