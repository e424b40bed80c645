#!/bin/sh
# tracc compile / tracc verify: the forms of the issue, --json, the counterexample path (a
# deliberately too small sharpness), usage errors, and never a half-written output.
. tests/lib.sh
T="$TMPD/c"
mkdir -p "$T"

# compile: one summary line on stdout, the file written, exit 0
"$TRACC" compile rasp_examples/count_a.rasp -o "$T/count_a.safetensors" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && [ -s "$T/count_a.safetensors" ] && grep -q "verified on a sample: 10000 inputs" "$T/out" &&
   grep -q "2 layers" "$T/out"; then ok; else bad "compile count_a"; cat "$T/out" "$T/err"; fi

# the paper's Counter at max_len 46 (a sample: 9^46 inputs)
"$TRACC" compile --max-len 46 rasp_examples/count_a.rasp -o "$T/counter46.safetensors" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "verified on a sample: 10000 inputs" "$T/out"; then ok; else bad "compile --max-len 46"; cat "$T/out" "$T/err"; fi

# run gives what eval gives, at every position
want=$("$TRACC" eval rasp_examples/count_a.rasp a b a c a)
expect_out "run equals eval" 0 "$want" -- "$TRACC" run "$T/count_a.safetensors" a b a c a
want=$("$TRACC" eval rasp_examples/count_a.rasp a)
expect_out "run equals eval, one token" 0 "$want" -- "$TRACC" run "$T/count_a.safetensors" a
"$TRACC" compile rasp_examples/sort.rasp -o "$T/sort.safetensors" >/dev/null 2>&1
printf '3 1 2\n10 9 8 7 6\n2 4 1 2\n' >"$T/in"
want=$("$TRACC" eval rasp_examples/sort.rasp <"$T/in")
got=$("$TRACC" run "$T/sort.safetensors" <"$T/in")
if [ "$want" = "$got" ]; then ok; else bad "run equals eval on stdin inputs"; echo "$want"; echo "$got"; fi

# verify a program (compiled in memory) and a model file (checked against its own program)
"$TRACC" verify rasp_examples/sort.rasp >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "sample, lengths 1..5: 10000 inputs" "$T/out" && grep -q " 0 disagree" "$T/out"; then ok
else bad "verify sort.rasp"; cat "$T/out" "$T/err"; fi
expect_out "verify exhaustive shuffle_dyck" 0 \
    "rasp_examples/shuffle_dyck.rasp: every input, lengths 1..5: 62 inputs, 258 positions: 258 agree, 0 don't care, 0 disagree (0 inputs)" \
    -- "$TRACC" verify --exhaustive --max-len 5 rasp_examples/shuffle_dyck.rasp
"$TRACC" verify --samples 100 --max-len 3 "$T/count_a.safetensors" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "count_a.safetensors: sample, lengths 1..3: 100 inputs" "$T/out" &&
   grep -q " 0 disagree" "$T/out"; then ok; else bad "verify a model file"; cat "$T/out" "$T/err"; fi
expect_out "verify --json" 0 \
    '{"mode": "exhaustive", "max_len": 2, "inputs": 90, "positions": 171, "agree": 171, "dont_care": 0, "failed_inputs": 0, "ok": true, "file": "rasp_examples/count_a.rasp"}' \
    -- sh -c "\"$TRACC\" verify --json --max-len 2 rasp_examples/count_a.rasp | sed 's/,\"/, \"/g; s/\":/\": /g'"

# compile --json carries sizes, times and the check
"$TRACC" compile --json rasp_examples/length.rasp -o "$T/length.safetensors" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q '"n_layers":1' "$T/out" && grep -q '"ok":true' "$T/out" &&
   grep -q '"compile_ms"' "$T/out"; then ok; else bad "compile --json"; cat "$T/out" "$T/err"; fi

# --no-fuse keeps is_a in the residual (three blocks, like Tracr)
"$TRACC" compile --no-fuse rasp_examples/count_a.rasp -o "$T/nofuse.safetensors" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "3 layers" "$T/out"; then ok; else bad "compile --no-fuse"; cat "$T/out" "$T/err"; fi

# --verify none writes without checking; --verify exhaustive on a small space
expect_out "verify none" 0 "$T/hist.safetensors: 1 layer, d_model 18, 1 head (d_head 5), d_mlp 10, 1092 params (74 nonzero); not verified" \
    -- "$TRACC" compile --verify none rasp_examples/hist.rasp -o "$T/hist.safetensors"
"$TRACC" compile --verify exhaustive rasp_examples/hist.rasp -o "$T/hist.safetensors" >"$T/out" 2>&1
if grep -q "verified on every input: 1364 inputs" "$T/out"; then ok; else bad "verify exhaustive"; cat "$T/out"; fi

# a causal program compiles to a causal model
cat >"$T/causal.rasp" <<'EOF'
vocab {a, b};
max_len 5;
causal;
prefix = selector_width(select(indices, indices, <=));
output prefix;
EOF
"$TRACC" compile "$T/causal.rasp" -o "$T/causal.safetensors" >"$T/out" 2>&1
if [ $? -eq 0 ] && "$TRACC" explain "$T/causal.safetensors" | grep -q "causal"; then ok
else bad "causal compile"; cat "$T/out"; fi

# ... and one that looks ahead is rejected, naming the select
cat >"$T/ahead.rasp" <<'EOF'
vocab {a, b};
max_len 5;
causal;
nxt = aggregate(select(indices, indices, lambda k, q: k == q + 1), tokens);
output nxt;
EOF
expect_err "look-ahead rejected" 1 "ahead.rasp:4:17: error: this select needs to look ahead" -- \
    "$TRACC" compile "$T/ahead.rasp" -o "$T/ahead.safetensors"
if [ ! -e "$T/ahead.safetensors" ]; then ok; else bad "look-ahead wrote a file"; fi

# a wrong model (sharpness forced far too low): counterexample, exit 1, nothing written,
# and an existing file is left as it was
cp "$T/count_a.safetensors" "$T/keep.safetensors"
cp "$T/count_a.safetensors" "$T/before"
"$TRACC" compile --sharpness 0.5 rasp_examples/reverse.rasp -o "$T/keep.safetensors" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "disagrees with the interpreter" "$T/err" && grep -q "  input:" "$T/err" &&
   grep -q "  expected:" "$T/err" && grep -q "  got:" "$T/err" && grep -q "first wrong s-op" "$T/err" &&
   [ ! -s "$T/out" ] && cmp -s "$T/keep.safetensors" "$T/before"; then ok
else bad "counterexample path (rc $rc)"; cat "$T/out" "$T/err"; fi
ls "$T" | grep -q 'tmp\.' && bad "a temporary file was left behind" || ok
"$TRACC" compile --sharpness 0.5 rasp_examples/reverse.rasp -o "$T/never.safetensors" >/dev/null 2>&1
if [ ! -e "$T/never.safetensors" ]; then ok; else bad "a failed check wrote its output"; fi

# verify reports a wrong model with exit 1
"$TRACC" compile --verify none --sharpness 0.5 rasp_examples/reverse.rasp -o "$T/wrong.safetensors" >/dev/null 2>&1
expect_err "verify a wrong model" 1 "First counterexample" -- "$TRACC" verify --max-len 3 "$T/wrong.safetensors"

# errors in the input: exit 1 with the file named
expect_err "missing file" 1 "nope.rasp" -- "$TRACC" compile nope.rasp -o "$T/x.safetensors"
printf 'vocab {a};\nmax_len 3;\noutput 1 +;\n' >"$T/bad.rasp"
expect_err "syntax error" 1 "bad.rasp:3:" -- "$TRACC" compile "$T/bad.rasp" -o "$T/x.safetensors"
if [ ! -e "$T/x.safetensors" ]; then ok; else bad "an error wrote its output"; fi
expect_err "verify a non-model" 1 "tracc verify:" -- "$TRACC" verify "$T/bad.rasp.txt"
printf 'not a model' >"$T/junk.safetensors"
expect_err "verify junk" 1 "junk.safetensors" -- "$TRACC" verify "$T/junk.safetensors"
expect_err "unwritable output" 1 "tracc compile" -- "$TRACC" compile rasp_examples/length.rasp -o "$T/no/such/dir/x.safetensors"

# usage errors: exit 2
expect_err "no -o" 2 "no output file" -- "$TRACC" compile rasp_examples/length.rasp
expect_err "no input" 2 "no input file" -- "$TRACC" compile -o "$T/x.safetensors"
expect_err "two inputs" 2 "expected one input file" -- "$TRACC" compile a.rasp b.rasp -o "$T/x.safetensors"
expect_err "bad --verify" 2 "--verify must be" -- "$TRACC" compile --verify maybe rasp_examples/length.rasp -o "$T/x.safetensors"
expect_err "bad --max-len" 2 "--max-len must be" -- "$TRACC" compile --max-len 0 rasp_examples/length.rasp -o "$T/x.safetensors"
expect_err "bad --samples" 2 "--samples must be" -- "$TRACC" verify --samples -3 rasp_examples/length.rasp
expect_err "bad --seed" 2 "--seed must be" -- "$TRACC" verify --seed x rasp_examples/length.rasp
expect_err "unknown option" 2 "unknown option" -- "$TRACC" compile --frobnicate rasp_examples/length.rasp -o "$T/x.safetensors"
expect_err "missing value" 2 "needs a value" -- "$TRACC" compile rasp_examples/length.rasp -o
expect_err "exhaustive and samples" 2 "exclude each other" -- "$TRACC" verify --exhaustive --samples 5 rasp_examples/length.rasp
expect_err "program options on a model" 1 "apply to a RASP program; " -- "$TRACC" verify --no-fuse "$T/count_a.safetensors"
expect_out "compile --help" 0 "$("$TRACC" compile --help)" -- "$TRACC" compile -h
"$TRACC" verify --help | grep -q "usage: tracc verify" && ok || bad "verify --help"

finish
