#!/bin/sh
# tests/cli/interop.sh — a model file opens in Python with nothing but numpy: the hand-built
# models of test_forward (written into a folder through TRACC_INTEROP_DIR) are run by
# `tracc run --json` and by tests/interop/run_model.py, and their outputs compared
# (categorical values exactly, numbers to 1e-4 relative). Skipped, not failed, when
# /usr/bin/python3 has no numpy (Debian: apt-get install python3-numpy).
. tests/lib.sh

PY=/usr/bin/python3
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
    echo "SKIPPED: interop: $PY cannot import numpy (install python3-numpy)"
    finish
    exit 0
fi
DRIVER="${BUILD:-build}/tests/test_forward"
if [ ! -x "$DRIVER" ]; then
    bad "interop: $DRIVER is missing (run through make test)"
    finish
    exit 1
fi
mkdir -p "$TMPD/models"
TRACC_INTEROP_DIR="$TMPD/models" "$DRIVER" >"$TMPD/driver.log" 2>&1 || { cat "$TMPD/driver.log"; bad "interop: writing the models failed"; }

printf 'a b c\nc\nb b a c\na c b a\nc a\n' >"$TMPD/abc.txt"
printf 'a b c d e f a b\nf\nd e\nb a d c f e\nc c c\na b c d e f a\ne d\n' >"$TMPD/af.txt"

# compare NAME INPUTS [OPTIONS...] : tracc and numpy agree on every input line.
compare() {
    model=$1; inputs=$2; shift 2
    tag="$model${*:+ $*}"
    if ! "$TRACC" run --json "$@" "$TMPD/models/$model.safetensors" <"$inputs" >"$TMPD/c.out" 2>"$TMPD/c.err"; then
        bad "interop $tag: tracc run failed"; cat "$TMPD/c.err"; return
    fi
    if ! "$PY" tests/interop/run_model.py "$@" "$TMPD/models/$model.safetensors" <"$inputs" >"$TMPD/p.out" 2>"$TMPD/p.err"; then
        bad "interop $tag: run_model.py failed"; cat "$TMPD/p.err"; return
    fi
    if [ "$(wc -l <"$TMPD/c.out")" -ne "$(wc -l <"$inputs")" ]; then
        bad "interop $tag: tracc printed $(wc -l <"$TMPD/c.out") lines for $(wc -l <"$inputs") inputs"; return
    fi
    if "$PY" tests/interop/run_model.py --compare "$TMPD/c.out" "$TMPD/p.out" >"$TMPD/cmp.out"; then
        ok
    else
        bad "interop $tag: tracc and numpy disagree"; cat "$TMPD/cmp.out"
    fi
}

compare copy_prev "$TMPD/abc.txt"
compare copy_prev "$TMPD/abc.txt" --hard
compare copy_prev "$TMPD/abc.txt" --blocks 0
compare one_neuron "$TMPD/abc.txt"
compare random_causal "$TMPD/af.txt"
compare random_causal "$TMPD/af.txt" --hard
compare random_causal "$TMPD/af.txt" --blocks 1
compare random_numerical "$TMPD/af.txt"
compare random_numerical "$TMPD/af.txt" --blocks 2
compare random_noscale "$TMPD/af.txt"

# Compiled programs, when the compiler builds them (its own tests cover its failures).
printf 'a b c d\nd\nb b a\nc a d b a\nd c\n' >"$TMPD/abcd.txt"
printf 'x a x\na\nx x x x x\nb c x\n' >"$TMPD/abcx.txt"
printf 'a b a c\ni\na a a a a a a a a a\nb c d e f g h i a\n' >"$TMPD/ai.txt"
for spec in reverse:abcd hist:abcd frac_prevs:abcx count_a:ai; do
    prog=${spec%%:*}
    if "$TRACC" compile --verify none "rasp_examples/$prog.rasp" -o "$TMPD/models/$prog.safetensors" \
        >/dev/null 2>"$TMPD/compile.err"; then
        compare "$prog" "$TMPD/${spec#*:}.txt"
        compare "$prog" "$TMPD/${spec#*:}.txt" --hard
    else
        echo "SKIPPED: interop $prog: tracc compile failed: $(grep -m 1 -v "^=*$" "$TMPD/compile.err")"
    fi
done

# the hand-built models' known answers, as numpy computes them
expect_out "numpy copy_prev answers" 0 '["-", "a", "b"]' -- \
    sh -c 'echo "a b c" | "$1" tests/interop/run_model.py "$2"' sh "$PY" "$TMPD/models/copy_prev.safetensors"
expect_out "numpy one_neuron answers" 0 '[1.25, 0.25, 1.25]' -- \
    sh -c 'echo "a b a" | "$1" tests/interop/run_model.py "$2"' sh "$PY" "$TMPD/models/one_neuron.safetensors"

finish
