#!/bin/sh
# tests/cli/eval.sh — `tracc eval`: outputs as text and JSON, stdin inputs, --trace,
# overrides, and every error case (status and message).
. tests/lib.sh

# ---- programs ---------------------------------------------------------------------------
cat >"$TMPD/reverse.rasp" <<'EOF'
vocab {a, b, c, d};
max_len 5;
opp_idx   = length - indices;
opp_idx_1 = opp_idx - 1;
reverse   = aggregate(select(indices, opp_idx_1, ==), tokens);
output reverse;
EOF

cat >"$TMPD/hist.rasp" <<'EOF'
vocab {a, b, c, d};
max_len 5;
hist = selector_width(select(tokens, tokens, ==));
output hist;
EOF

cat >"$TMPD/frac.rasp" <<'EOF'
vocab {a, b, c, x};
max_len 5;
is_x = numerical(tokens == "x");
frac = aggregate(select(indices, indices, <=), is_x, 0);
output frac;
EOF

cat >"$TMPD/prev.rasp" <<'EOF'
vocab {a, b, c};
max_len 4;
prev = aggregate(select(indices, indices, lambda k, q: q == k + 1), tokens);
output prev;
EOF

cat >"$TMPD/neg.rasp" <<'EOF'
vocab {-1, 0, 1};
max_len 4;
flipped = -tokens;
output flipped;
EOF

# a prefix histogram (a composite selector); `hist`, unused by the output, looks ahead:
# a causal program may hold it, and --trace shows it masked
cat >"$TMPD/prefix_hist.rasp" <<'EOF'
vocab {a, b};
max_len 5;
same = select(tokens, tokens, ==) and select(indices, indices, <=);
out = selector_width(same);
hist = selector_width(select(tokens, tokens, ==));
output out;
EOF

cat >"$TMPD/lookahead.rasp" <<'EOF'
vocab {a, b};
max_len 5;
hist = selector_width(select(tokens, tokens, ==));
output hist;
EOF

cat >"$TMPD/bad.rasp" <<'EOF'
vocab {a, b};
max_len 4;
x = tokens + nosuchname;
output x;
EOF

# ---- outputs ----------------------------------------------------------------------------
expect_out "reverse" 0 "d c b a" -- "$TRACC" eval "$TMPD/reverse.rasp" a b c d
expect_out "reverse one token" 0 "a" -- "$TRACC" eval "$TMPD/reverse.rasp" a
expect_out "reverse json" 0 '["d", "c", "b", "a"]' -- "$TRACC" eval --json "$TMPD/reverse.rasp" a b c d
expect_out "hist" 0 "2 1 2 1 1" -- "$TRACC" eval "$TMPD/hist.rasp" a b a c d
expect_out "hist json" 0 "[2, 1, 2, 1, 1]" -- "$TRACC" eval --json "$TMPD/hist.rasp" a b a c d
expect_out "frac_prevs text" 0 "1.0 0.5 0.6666666666666666 0.5" -- "$TRACC" eval "$TMPD/frac.rasp" x a x a
expect_out "frac_prevs json floats" 0 "[1.0, 0.5, 0.6666666666666666, 0.5]" -- \
    "$TRACC" eval --json "$TMPD/frac.rasp" x a x a
expect_out "no value prints None" 0 "None a b" -- "$TRACC" eval "$TMPD/prev.rasp" a b c
expect_out "no value is null in json" 0 '[null, "a", "b"]' -- "$TRACC" eval --json "$TMPD/prev.rasp" a b c
expect_err "negative tokens need --" 2 "unknown option '-1' (tokens that begin with '-' go after '--')" -- "$TRACC" eval "$TMPD/neg.rasp" -1 0 1
expect_out "negative tokens after --" 0 "1 0 -1" -- "$TRACC" eval "$TMPD/neg.rasp" -- -1 0 1
expect_out "-- after FILE" 0 "1 -1" -- "$TRACC" eval "$TMPD/neg.rasp" -- -1 1
expect_out "-- before FILE" 0 "[-1]" -- "$TRACC" eval --json -- "$TMPD/neg.rasp" 1
expect_out "composite selector" 0 "1 1 2 2 3" -- "$TRACC" eval "$TMPD/prefix_hist.rasp" a b a b a
expect_out "--causal" 0 "1 1 2 2 3" -- "$TRACC" eval --causal "$TMPD/prefix_hist.rasp" a b a b a
expect_out "--causal masks every selector" 0 "         0  1  2  3  4
tokens   a  b  a  b  a
indices  0  1  2  3  4
out      1  1  2  2  3
hist     1  1  2  2  3" -- "$TRACC" eval --causal --trace "$TMPD/prefix_hist.rasp" a b a b a
expect_out "without --causal no mask" 0 "hist     3  2  3  2  3" -- \
    sh -c '"$1" eval --trace "$2" a b a b a | tail -n 1' sh "$TRACC" "$TMPD/prefix_hist.rasp"
expect_err "--causal rejects look-ahead" 1 "needs to look ahead" -- \
    "$TRACC" eval --causal "$TMPD/lookahead.rasp" a b

# ---- stdin: one input per line ----------------------------------------------------------
expect_out "stdin lines" 0 "b a
a d c
d" -- sh -c 'printf "a b\nc d a\n  d  \n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_out "stdin json" 0 '["b", "a"]
["a"]' -- sh -c 'printf "a b\na\n" | "$1" eval --json "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_out "stdin without final newline" 0 "b a" -- \
    sh -c 'printf "a b" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_out "no input at all" 0 "" -- sh -c '"$1" eval "$2" </dev/null' sh "$TRACC" "$TMPD/reverse.rasp"

# ---- overrides --------------------------------------------------------------------------
expect_out "--max-len override" 0 "a d c b a d c" -- \
    "$TRACC" eval --max-len 7 "$TMPD/reverse.rasp" c d a b c d a
expect_out "--vocab override" 0 "z y x" -- "$TRACC" eval --vocab x,y,z "$TMPD/reverse.rasp" x y z

# ---- --trace ----------------------------------------------------------------------------
expect_out "trace text" 0 "           0  1  2
tokens     a  b  c
indices    0  1  2
length     3  3  3
opp_idx    3  2  1
opp_idx_1  2  1  0
reverse    c  b  a" -- "$TRACC" eval --trace "$TMPD/reverse.rasp" a b c
expect_out "trace blank line between inputs" 0 "             0     1                   2
tokens       a     x                   x
indices      0     1                   2
is_x     false  true                true
frac       0.0   0.5  0.6666666666666666

            0      1
tokens      x      a
indices     0      1
is_x     true  false
frac      1.0    0.5" -- sh -c 'printf "a x x\nx a\n" | "$1" eval --trace "$2"' sh "$TRACC" "$TMPD/frac.rasp"
expect_out "trace json" 0 '{"input": ["a", "b"], "output": ["b", "a"], "sops": {"tokens": ["a", "b"], "indices": [0, 1], "length": [2, 2], "opp_idx": [2, 1], "opp_idx_1": [1, 0], "reverse": ["b", "a"]}}' -- \
    "$TRACC" eval --json --trace "$TMPD/reverse.rasp" a b

# ---- errors -----------------------------------------------------------------------------
expect_err "unknown token" 1 "tracc eval: input line 2: token 'z' is not in the vocab {a, b, c, d}" -- \
    sh -c 'printf "a b\na z\nc\n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_out "earlier outputs stay" 1 "b a" -- \
    sh -c 'printf "a b\na z\nc\n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_err "unknown token on the command line" 1 "token 'e' is not in the vocab {a, b, c, d}" -- \
    "$TRACC" eval "$TMPD/reverse.rasp" a e
expect_err "too long" 1 "input line 1: 6 tokens, longer than max_len 5" -- \
    sh -c 'printf "a b c d a b\n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_err "too long on the command line" 1 "6 tokens, longer than max_len 5" -- \
    "$TRACC" eval "$TMPD/reverse.rasp" a b c d a b
expect_err "empty line" 1 "tracc eval: input line 2 is empty" -- \
    sh -c 'printf "a\n\nb\n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_err "blank line" 1 "input line 1 is empty" -- \
    sh -c 'printf "   \n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_err "NUL byte" 1 "input line 2 holds a NUL byte" -- \
    sh -c 'printf "a\na\000b\n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_err "binary input" 1 "is not in the vocab" -- \
    sh -c 'printf "\377\376\001\n" | "$1" eval "$2"' sh "$TRACC" "$TMPD/reverse.rasp"
expect_err "missing file" 1 "nosuchfile.rasp" -- "$TRACC" eval "$TMPD/nosuchfile.rasp" a
expect_err "semantic error" 1 "nosuchname" -- "$TRACC" eval "$TMPD/bad.rasp" a
expect_err "semantic error position" 1 "bad.rasp:3:" -- "$TRACC" eval "$TMPD/bad.rasp" a
expect_err "bad option" 2 "tracc eval: unknown option '--bogus'" -- "$TRACC" eval --bogus "$TMPD/reverse.rasp" a
expect_err "bad short option" 2 "tracc eval: unknown option '-x'" -- "$TRACC" eval -x "$TMPD/reverse.rasp" a
expect_err "flag given a value" 2 "option '--json=yes' takes no value" -- \
    "$TRACC" eval --json=yes "$TMPD/reverse.rasp" a
expect_err "option without argument" 2 "option '--max-len' needs a value" -- "$TRACC" eval --max-len
expect_err "bad --max-len" 2 "--max-len wants an integer in 1..4096, got 'ten'" -- \
    "$TRACC" eval --max-len ten "$TMPD/reverse.rasp" a
expect_err "no arguments" 2 "no FILE given" -- "$TRACC" eval
expect_err "only options" 2 "Try 'tracc eval --help'" -- "$TRACC" eval --json
expect_out "help" 0 "usage: tracc eval [options] FILE [TOKENS...]" -- sh -c '"$1" eval --help | head -n 1' sh "$TRACC"
for opt in --vocab --max-len --causal --json --trace --input-format --help; do
    expect_out "help lists $opt" 0 "1" -- sh -c '"$1" eval --help | grep -cE -- "^  (-h, )?$2( |$)"' sh "$TRACC" "$opt"
done

# A categorical aggregate copies values in the operand's order, whatever order the vocab has.
printf 'vocab {b, a}; max_len 3;\nx = aggregate(select(indices, indices, ==), tokens);\noutput x;\n' >"$TMPD/agg_order.rasp"
expect_out "aggregate keeps values with an unsorted vocab" 0 "b a" -- "$TRACC" eval "$TMPD/agg_order.rasp" b a
expect_out "sort_unique with an unsorted integer vocab" 0 "3 5" -- \
    "$TRACC" eval --vocab 3,1,2,5 rasp_examples/sort_unique.rasp 3 5

# a categorical aggregate's default is found though its value set keeps the operand's order
# (it was read by binary search and lost: the defaulted position printed None)
cat >"$TMPD/agg_default.rasp" <<'EOF'
vocab {a, b};
max_len 4;
y = map(lambda x: x + 1, indices);
z = aggregate(select(indices, indices, <), y, 0);
output z;
EOF
expect_out "aggregate default after an unsorted operand" 0 "0 1 None None" -- "$TRACC" eval "$TMPD/agg_default.rasp" a b a b
cat >"$TMPD/agg_default_tok.rasp" <<'EOF'
vocab {c, a, b};
max_len 4;
z = aggregate(select(indices, indices, <), tokens, "c");
output z;
EOF
expect_out "aggregate default among an unsorted vocab" 0 "c a None None" -- "$TRACC" eval "$TMPD/agg_default_tok.rasp" a b a b
"$TRACC" compile "$TMPD/agg_default.rasp" -o "$TMPD/agg_default.safetensors" >/dev/null 2>&1
expect_out "the compiled aggregate keeps its default too" 0 "0 1 None None" -- "$TRACC" run "$TMPD/agg_default.safetensors" a b a b

# ---- --input-format json: any vocab token on stdin, for eval, run and verify ----------------
ODD=tests/programs/reverse_odd_tokens.rasp      # vocab {"x y", "a\"b", "c\\d"}
printf '["x y", "a\\"b", "c\\\\d"]\n["c\\\\d"]\n' >"$TMPD/odd.jsonl"
expect_out "json input: tokens with a space, a quote, a backslash" 0 '["c\\d", "a\"b", "x y"]
["c\\d"]' -- sh -c '"$1" eval --json "$2" --input-format json <"$3"' sh "$TRACC" "$ODD" "$TMPD/odd.jsonl"
"$TRACC" compile "$ODD" -o "$TMPD/odd.safetensors" >/dev/null 2>&1 || bad "compile $ODD"
expect_out "json input: run agrees with eval" 0 '["c\\d", "a\"b", "x y"]
["c\\d"]' -- sh -c '"$1" run --input-format json "$2" --json <"$3"' sh "$TRACC" "$TMPD/odd.safetensors" "$TMPD/odd.jsonl"
expect_out "json input: verify checks exactly these inputs" 0 \
    "$TMPD/odd.safetensors: the inputs of --inputs -: 2 inputs, 4 positions: 4 agree, 0 don't care, 0 disagree (0 inputs)" -- \
    sh -c '"$1" verify --inputs - --input-format json "$2" <"$3"' sh "$TRACC" "$TMPD/odd.safetensors" "$TMPD/odd.jsonl"
expect_out "json input: verify a program the same way" 0 "2" -- \
    sh -c '"$1" verify --json --inputs "$3" --input-format json "$2" | "$4" -c "import json,sys; print(json.load(sys.stdin)[\"inputs\"])"' \
    sh "$TRACC" "$ODD" "$TMPD/odd.jsonl" python3
expect_out "json input: integers for an integer vocab" 0 "1 0 -1" -- \
    sh -c 'echo "[-1, 0, \"1\"]" | "$1" eval --input-format json "$2"' sh "$TRACC" "$TMPD/neg.rasp"
expect_err "json input: not JSON names line and column" 1 "tracc eval: input line 2: column 10: not JSON" -- \
    sh -c 'printf "[\"x y\"]\n[\"x y\" \"c\"]\n" | "$1" eval --input-format json "$2"' sh "$TRACC" "$ODD"
expect_err "json input: not an array" 1 "tracc eval: input line 1: expected a JSON array of tokens" -- \
    sh -c 'echo "\"x y\"" | "$1" eval --input-format json "$2"' sh "$TRACC" "$ODD"
expect_err "json input: an element that is no token" 1 "tracc run: input line 1: element 2: expected a token (a string or a number), got an array" -- \
    sh -c 'echo "[\"x y\", [1]]" | "$1" run --input-format json "$2"' sh "$TRACC" "$TMPD/odd.safetensors"
expect_err "json input: a token outside the vocab" 1 "tracc eval: input line 1: token 'x' is not in the vocab" -- \
    sh -c 'echo "[\"x\"]" | "$1" eval --input-format json "$2"' sh "$TRACC" "$ODD"
expect_err "json input: an empty array" 1 "tracc eval: input line 1 is empty" -- \
    sh -c 'echo "[]" | "$1" eval --input-format json "$2"' sh "$TRACC" "$ODD"
expect_err "json input: verify names the line" 1 "tracc verify: --inputs -: input line 2: token 'q' is not in the vocab" -- \
    sh -c 'printf "[\"x y\"]\n[\"q\"]\n" | "$1" verify --inputs - --input-format json "$2"' sh "$TRACC" "$ODD"
expect_err "bad --input-format" 2 "--input-format wants text or json, got 'csv'" -- "$TRACC" eval --input-format csv "$ODD"
expect_err "text input splits at blanks (why json exists)" 1 "input line 1: token 'x' is not in the vocab" -- \
    sh -c 'echo "x y" | "$1" eval "$2"' sh "$TRACC" "$ODD"

finish
