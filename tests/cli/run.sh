#!/bin/sh
# tests/cli/run.sh — `tracc run` and `tracc explain` on hand-built model files (written by
# the test_forward driver through TRACC_INTEROP_DIR): outputs as text and JSON, stdin
# inputs, --trace, --hard, --blocks, and every error case (status and message).
. tests/lib.sh

DRIVER="${BUILD:-build}/tests/test_forward"
M="$TMPD/models"
mkdir -p "$M"
if ! TRACC_INTEROP_DIR="$M" "$DRIVER" >"$TMPD/driver.log" 2>&1; then
    cat "$TMPD/driver.log"
    bad "writing the test models with $DRIVER failed"
    finish
    exit 1
fi
PREV="$M/copy_prev.safetensors"     # causal; output: the previous token, "-" at the first
NEUR="$M/one_neuron.safetensors"    # numerical output: 1.25 for a, 0.25 for b and c

# ---- outputs ----------------------------------------------------------------------------
expect_out "copy prev" 0 "- a b" -- "$TRACC" run "$PREV" a b c
expect_out "copy prev json" 0 '["-", "a", "b"]' -- "$TRACC" run --json "$PREV" a b c
expect_out "one token" 0 "-" -- "$TRACC" run "$PREV" c
expect_out "max_len tokens" 0 "- c b a" -- "$TRACC" run "$PREV" c b a c
expect_out "numerical" 0 "1.25 0.25 1.25" -- "$TRACC" run "$NEUR" a b a
expect_out "numerical json" 0 "[1.25, 0.25, 1.25]" -- "$TRACC" run --json "$NEUR" a b a
expect_out "-- after MODEL" 0 "- b" -- "$TRACC" run "$PREV" -- b a
expect_out "-- before MODEL" 0 '["-", "b"]' -- "$TRACC" run --json -- "$PREV" b a
expect_out "hard attention" 0 "- a b" -- "$TRACC" run --hard "$PREV" a b c
expect_out "--blocks 0 reads the embedding" 0 "- - -" -- "$TRACC" run --blocks 0 "$PREV" a b c
expect_out "--blocks 1 is all" 0 "- a b" -- "$TRACC" run --blocks 1 "$PREV" a b c
expect_out "--blocks=0" 0 "0.0 0.0" -- "$TRACC" run --blocks=0 "$NEUR" a b

# ---- stdin: one input per line ----------------------------------------------------------
expect_out "stdin lines" 0 "- a
- c a
-" -- sh -c 'printf "a b\nc a a\n  b  \n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_out "stdin json" 0 '["-", "a"]
["-", "c", "a"]' -- sh -c 'printf "a b\nc a a\n" | "$1" run --json "$2"' sh "$TRACC" "$PREV"
expect_out "stdin without final newline" 0 "- a" -- sh -c 'printf "a b" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_out "no input at all" 0 "" -- sh -c '"$1" run "$2" </dev/null' sh "$TRACC" "$PREV"
# more inputs than one batch: every line answered, in order
awk 'BEGIN { for (i = 0; i < 600; i++) print (i % 2 ? "a b" : "c a c") }' >"$TMPD/many.txt"
expect_out "600 inputs in batches" 0 "600 300 300" -- sh -c \
    '"$1" run "$2" <"$3" | awk "{ n++ } /^- a$/ { x++ } /^- c a$/ { y++ } END { print n, x, y }"' \
    sh "$TRACC" "$PREV" "$TMPD/many.txt"

# ---- --trace ----------------------------------------------------------------------------
expect_out "trace text" 0 "                   0     1
input              a     b
after the embedding:
  tokens           a     b
  one            1.0   1.0
  out            0.0   0.0
after block 0:
  tokens           a     b
  one            1.0   1.0
  out           1.25  0.25
decoded:
  out (output)  1.25  0.25" -- "$TRACC" run --trace "$NEUR" a b
expect_out "trace blank line between inputs, no value as None" 0 "                    0
input               b
after the embedding:
  tokens            b
  pos               1
  prev           None
after block 0:
  tokens            b
  pos               1
  prev           None
decoded:
  prev (output)     -

                    0     1
input               c     a
after the embedding:
  tokens            c     a
  pos               1     2
  prev           None  None
after block 0:
  tokens            c     a
  pos               1     2
  prev           None     c
decoded:
  prev (output)     -     c" -- sh -c 'printf "b\nc a\n" | "$1" run --trace "$2"' sh "$TRACC" "$PREV"
expect_out "trace json" 0 '{"input": ["a", "b"], "output": ["-", "a"], "stages": [{"after": "embed", "sops": {"tokens": ["a", "b"], "pos": [1, 2], "prev": [null, null]}}, {"after": "block 0", "sops": {"tokens": ["a", "b"], "pos": [1, 2], "prev": [null, "a"]}}]}' -- \
    "$TRACC" run --json --trace "$PREV" a b
expect_out "trace --blocks 0 has only the embedding" 0 "2" -- \
    sh -c '"$1" run --trace --blocks 0 "$2" a b | grep -c "^after\|^decoded"' sh "$TRACC" "$PREV"

# ---- compiled programs: `tracc run` prints what `tracc eval` prints -------------------
printf 'a b c d\nd\nb b a\nc a d b a\nd c\n' >"$TMPD/reverse.in"
cp "$TMPD/reverse.in" "$TMPD/hist.in"
printf '3 1 2\n10\n5 4 9 7 1\n' >"$TMPD/sort_unique.in"   # integer tokens, matched by text
for prog in reverse hist sort_unique; do
    if "$TRACC" compile --verify none "rasp_examples/$prog.rasp" -o "$TMPD/$prog.safetensors" \
        >/dev/null 2>"$TMPD/compile.err"; then
        "$TRACC" eval --json "rasp_examples/$prog.rasp" <"$TMPD/$prog.in" >"$TMPD/eval.out" 2>&1
        expect_out "run equals eval: $prog" 0 "$(cat "$TMPD/eval.out")" -- \
            sh -c '"$1" run --json "$2" <"$3"' sh "$TRACC" "$TMPD/$prog.safetensors" "$TMPD/$prog.in"
    else
        echo "SKIPPED: run equals eval: $prog: tracc compile failed: $(grep -m 1 -v "^=*$" "$TMPD/compile.err")"
    fi
done

# ---- errors -----------------------------------------------------------------------------
expect_err "unknown token" 1 "tracc run: input line 2: token 'z' is not in the vocab {a, b, c}" -- \
    sh -c 'printf "a b\na z\nc\n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_out "earlier outputs stay" 1 "- a" -- sh -c 'printf "a b\na z\nc\n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_err "unknown token on the command line" 1 "tracc run: token 'e' is not in the vocab {a, b, c}" -- \
    "$TRACC" run "$PREV" a e
expect_err "BOS is not an input token" 1 "token 'BOS' is BOS, not an input token" -- "$TRACC" run "$PREV" BOS a
expect_err "PAD is not an input token" 1 "token 'PAD' is PAD, not an input token" -- "$TRACC" run "$PREV" a PAD
expect_err "too long" 1 "tracc run: input line 1: 5 tokens, longer than max_len 4" -- \
    sh -c 'printf "a b c a b\n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_err "too long on the command line" 1 "5 tokens, longer than max_len 4" -- "$TRACC" run "$PREV" a b c a b
expect_err "empty line" 1 "tracc run: input line 2 is empty" -- \
    sh -c 'printf "a\n\nb\n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_err "blank line" 1 "input line 1 is empty" -- sh -c 'printf "   \n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_err "missing model" 1 "tracc run: $TMPD/nosuch.safetensors: cannot open" -- "$TRACC" run "$TMPD/nosuch.safetensors" a
head -c 200 "$PREV" >"$TMPD/truncated.safetensors"
expect_err "truncated model" 1 "truncated.safetensors: header length: expected at most 192" -- \
    "$TRACC" run "$TMPD/truncated.safetensors" a
printf 'vocab {a};\nmax_len 3;\noutput tokens;\n' >"$TMPD/prog.rasp"
expect_err "a program is not a model" 1 "prog.rasp: header length" -- "$TRACC" run "$TMPD/prog.rasp" a
expect_err "a folder is not a model" 1 "expected a regular file" -- "$TRACC" run "$TMPD" a
expect_err "bad option" 2 "tracc run: unknown option '--bogus'" -- "$TRACC" run --bogus "$PREV" a
expect_err "option without argument" 2 "tracc run: option '--blocks' needs an argument" -- "$TRACC" run --blocks
expect_err "bad --blocks" 2 "--blocks wants a number of blocks (0 or more), got 'two'" -- \
    "$TRACC" run --blocks two "$PREV" a
expect_err "too many --blocks" 2 "tracc run: --blocks 2: the model has 1 block" -- "$TRACC" run --blocks 2 "$PREV" a
expect_err "no arguments" 2 "no MODEL given" -- "$TRACC" run
expect_out "help" 0 "usage: tracc run [options] MODEL [TOKENS...]" -- sh -c '"$1" run --help | head -n 1' sh "$TRACC"
for opt in --json --trace --hard --blocks --help; do
    expect_out "run help lists $opt" 0 "1" -- sh -c '"$1" run --help | grep -cE -- "^  (-h, )?$2( |$)"' sh "$TRACC" "$opt"
done

# ---- explain ----------------------------------------------------------------------------
"$TRACC" explain "$PREV" >"$TMPD/explain.txt" 2>"$TMPD/explain.err"
rc=$?
if [ "$rc" -ne 0 ]; then bad "explain: status $rc"; cat "$TMPD/explain.err"; else ok; fi
for want in "format      tracc-model, version 1" \
            "program     sha256 64428ca3adff07bff16b0e5b59013b2f04d5ba4842914383117f8d6be6f29c97 (1 line)" \
            "  n_ctx       5 (max_len 4, plus BOS at position 0)" \
            "  attention   causal, logits divided by attn_scale 2.0" \
            "  output      prev, categorical over 4 values: a b c -" \
            "  parameters  476 in all, 28 nonzero (5.9%)" \
            "residual (12 dimensions, 3 s-ops)" \
            "  tokens  categorical  dims 0-3        a b c BOS" \
            "  prev    categorical  dims 9-11       a b c" \
            "    head 0: aggregate -> prev  selector prev_sel" \
            "            query pos; key pos; value tokens; output prev" \
            "            d_head 5 of 5, 15 nonzero weights" \
            "  mlp: 0 of 1 neurons carry weights (the program uses 0)"; do
    if grep -qxF -- "$want" "$TMPD/explain.txt"; then ok; else bad "explain lacks the line '$want'"; cat "$TMPD/explain.txt"; fi
done
expect_out "explain numerical residual" 0 "  one     numerical    dim  3" -- \
    sh -c '"$1" explain "$2" | grep "^  one"' sh "$TRACC" "$NEUR"
expect_out "explain mlp map" 0 "    map -> out from tokens; neuron 0" -- \
    sh -c '"$1" explain "$2" | grep "map ->"' sh "$TRACC" "$NEUR"
expect_out "explain without layer detail" 0 "2" -- \
    sh -c '"$1" explain "$2" | grep -c "not described in the metadata"' sh "$TRACC" "$M/random_noscale.safetensors"
expect_out "explain json" 0 '  "format": "tracc-model",' -- sh -c '"$1" explain --json "$2" | grep "\"format\""' sh "$TRACC" "$PREV"
if [ -x /usr/bin/python3 ]; then
    expect_out "explain json parses" 0 "prev 1 15" -- sh -c \
        '"$1" explain --json "$2" | /usr/bin/python3 -c "import json,sys; o=json.load(sys.stdin); print(o[\"output\"][\"name\"], len(o[\"blocks\"]), o[\"blocks\"][0][\"heads\"][0][\"nonzero\"])"' \
        sh "$TRACC" "$PREV"
fi
expect_err "explain truncated model" 1 "tracc explain: $TMPD/truncated.safetensors: header length" -- \
    "$TRACC" explain "$TMPD/truncated.safetensors"
expect_err "explain no model" 2 "no MODEL given" -- "$TRACC" explain
expect_err "explain two models" 2 "expected one MODEL" -- "$TRACC" explain "$PREV" "$NEUR"
expect_err "explain bad option" 2 "tracc explain: unknown option '--bogus'" -- "$TRACC" explain --bogus "$PREV"
expect_out "explain help" 0 "usage: tracc explain [options] MODEL" -- sh -c '"$1" explain --help | head -n 1' sh "$TRACC"

finish
