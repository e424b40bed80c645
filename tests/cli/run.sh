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
expect_out "trace json" 0 '{"input": ["a", "b"], "output": ["-", "a"], "virtual": [], "stages": [{"after": "embed", "sops": {"tokens": ["a", "b"], "pos": [1, 2], "prev": [null, null]}}, {"after": "block 0", "sops": {"tokens": ["a", "b"], "pos": [1, 2], "prev": [null, "a"]}}]}' -- \
    "$TRACC" run --json --trace "$PREV" a b
expect_out "trace --blocks 0 has only the embedding" 0 "2" -- \
    sh -c '"$1" run --trace --blocks 0 "$2" a b | grep -c "^after\|^decoded"' sh "$TRACC" "$PREV"

# ---- compiled programs: `tracc run` prints what `tracc eval` prints -------------------
# Every example program, compiled at its file's max_len, on every one of its "# example:"
# inputs: `tracc run --json` and `tracc eval --json` agree at every position, no value
# (null) included; numbers to 1e-4 relative (the model computes in float32). And the final
# block of `tracc run --json --trace` agrees with `tracc eval --json --trace` on every s-op
# both show. One exception, by design of the compiler: in max_identifier_6th_is_5th_plus_1
# `fifth` and `sixth` are numerical aggregates, which hold 0 where they select nothing (a
# numerical s-op has no "no value"), so `holds` has a value where the interpreter has none;
# there, positions where `tracc eval` says None are "don't care" (as in `tracc verify`).
PY=/usr/bin/python3
have_py=0
if [ -x "$PY" ]; then have_py=1; fi
# A sanitizer build may be unable to compile (see tests/cli/compile.sh); only there is a
# failed compile skipped rather than failed.
sanitized=0
if grep -aqE '__(asan|ubsan)_' "$TRACC"; then sanitized=1; fi

AGREE='
import json, sys
mode, a_path, b_path, dont_care = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
a = [json.loads(l) for l in open(a_path)]
b = [json.loads(l) for l in open(b_path)]
def same(x, y):
    if isinstance(x, float) or isinstance(y, float):
        if isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
            return x == y
        return abs(x - y) <= 1e-4 * max(1.0, abs(x))
    return x == y and type(x) == type(y)
def rows_agree(want, got):
    return len(want) == len(got) and all(same(w, g) or (dont_care and w is None) for w, g in zip(want, got))
bad = []
if len(a) != len(b):
    bad.append("%d lines against %d" % (len(a), len(b)))
for i, (e, r) in enumerate(zip(a, b)):
    if mode == "rows":
        if not rows_agree(e, r):
            bad.append("input %d: eval %s, run %s" % (i + 1, json.dumps(e), json.dumps(r)))
    else:
        final = r["stages"][-1]["sops"]
        for name, want in e["sops"].items():
            if name in final and not rows_agree(want, final[name]):
                bad.append("input %d: %s: eval %s, run %s" % (i + 1, name, json.dumps(want), json.dumps(final[name])))
        if mode == "trace-all":
            missing = [n for n in e["sops"] if n not in final]
            if missing:
                bad.append("input %d: run --trace lacks %s" % (i + 1, ", ".join(missing)))
if bad:
    print("\n".join(bad[:10]))
    sys.exit(1)
'
mkdir -p "$TMPD/ex"
nprog=0
for f in rasp_examples/*.rasp; do
    prog=$(basename "$f" .rasp)
    model="$TMPD/ex/$prog.safetensors"
    if ! "$TRACC" compile --verify none "$f" -o "$model" >/dev/null 2>"$TMPD/compile.err"; then
        if [ "$sanitized" -eq 1 ]; then
            echo "SKIPPED: run equals eval: $prog: tracc compile failed: $(grep -m 1 -v "^=*$" "$TMPD/compile.err")"
        else
            bad "run equals eval: $prog: tracc compile failed"; cat "$TMPD/compile.err"
        fi
        continue
    fi
    nprog=$((nprog + 1))
    sed -n 's/^# example: \(.*\) -> .*$/\1/p' "$f" >"$TMPD/ex/$prog.in"
    dc=0
    if [ "$prog" = max_identifier_6th_is_5th_plus_1 ]; then dc=1; fi
    "$TRACC" eval --json "$f" <"$TMPD/ex/$prog.in" >"$TMPD/ex/eval.out" 2>&1
    "$TRACC" run --json "$model" <"$TMPD/ex/$prog.in" >"$TMPD/ex/run.out" 2>&1
    "$TRACC" eval --json --trace "$f" <"$TMPD/ex/$prog.in" >"$TMPD/ex/eval.trace" 2>&1
    "$TRACC" run --json --trace "$model" <"$TMPD/ex/$prog.in" >"$TMPD/ex/run.trace" 2>&1
    if [ "$have_py" -eq 1 ]; then
        if "$PY" -c "$AGREE" rows "$TMPD/ex/eval.out" "$TMPD/ex/run.out" "$dc" >"$TMPD/ex/why" 2>&1; then ok
        else bad "run --json equals eval --json: $prog"; cat "$TMPD/ex/why"; fi
        if "$PY" -c "$AGREE" trace "$TMPD/ex/eval.trace" "$TMPD/ex/run.trace" "$dc" >"$TMPD/ex/why" 2>&1; then ok
        else bad "run --trace equals eval --trace at the last block: $prog"; cat "$TMPD/ex/why"; fi
    elif [ "$dc" -eq 0 ] && ! grep -q '[0-9]\.[0-9]' "$TMPD/ex/eval.out"; then
        # without Python: programs without numbers must agree as text
        if cmp -s "$TMPD/ex/eval.out" "$TMPD/ex/run.out"; then ok; else bad "run --json equals eval --json: $prog"; fi
    fi
    # explain: the exactness line, a margin line under every described head and MLP map
    "$TRACC" explain "$model" >"$TMPD/ex/explain.txt" 2>&1
    heads=$(grep -cE '^    head [0-9]+: ' "$TMPD/ex/explain.txt")
    hm=$(grep -cE '^            margin: c=[0-9.e+]+ score gap [0-9.e+-]+, BOS gap [0-9.e+-]+, leak [0-9.e+-]+' "$TMPD/ex/explain.txt")
    maps=$(grep -cE '^    [a-z_]+ -> ' "$TMPD/ex/explain.txt")
    cb=$(grep -cE '^    clean_bos -> ' "$TMPD/ex/explain.txt")
    mm=$(grep -cE '^      margin ([0-9.e+]+|inf) \(input error the map tolerates / input error it can get; exact above 1\): tolerance [0-9.e+-]+, input error [0-9.e+-]+, output error [0-9.e+-]+$' "$TMPD/ex/explain.txt")
    if grep -qE '^exactness   (proved exact on every input|not proved exact by the bounds)' "$TMPD/ex/explain.txt" &&
       [ "$heads" -eq "$hm" ] && [ $((maps - cb)) -eq "$mm" ]; then ok
    else bad "explain margins: $prog: $heads heads, $hm head margin lines, $((maps - cb)) maps, $mm map margin lines"; cat "$TMPD/ex/explain.txt"; fi
done
[ "$nprog" -ge 17 ] && ok || [ "$sanitized" -eq 1 ] || bad "only $nprog example programs compiled"

# The Counter fuses is_a (tokens == "a") into its readers: --trace shows it anyway, read
# through its linear form, at every stage, and every named s-op agrees with eval --trace.
CA="$TMPD/ex/count_a.safetensors"
if [ -s "$CA" ]; then
    expect_out "trace shows the fused is_a" 0 "3" -- \
        sh -c '"$1" run --trace "$2" a b a c | grep -cE "^  is_a \(virtual\) +true +false +true +false$"' sh "$TRACC" "$CA"
    expect_out "trace json lists the virtual s-ops" 0 '"virtual": ["is_a"]' -- \
        sh -c '"$1" run --json --trace "$2" a b | grep -o "\"virtual\": \[[^]]*\]"' sh "$TRACC" "$CA"
    expect_out "trace virtual row sits after what it reads" 0 "  one
  tokens
  is_a (virtual)
  indices" -- sh -c '"$1" run --trace "$2" a | sed -n "/^after block 1/,/^  indices/p" | sed "1d; s/   *[^ ]*\$//"' sh "$TRACC" "$CA"
    printf 'a b a c\ni\na a a a a a a a a a\nb c d e f g h i a\na\n' >"$TMPD/ca.in"
    "$TRACC" eval --json --trace rasp_examples/count_a.rasp <"$TMPD/ca.in" >"$TMPD/ca.eval" 2>&1
    "$TRACC" run --json --trace "$CA" <"$TMPD/ca.in" >"$TMPD/ca.run" 2>&1
    if [ "$have_py" -eq 1 ]; then
        if "$PY" -c "$AGREE" trace-all "$TMPD/ca.eval" "$TMPD/ca.run" 0 >"$TMPD/why" 2>&1; then ok
        else bad "count_a: run --trace shows every named s-op as eval --trace does"; cat "$TMPD/why"; fi
    fi
    # explain: the margins as the compiler recorded them
    "$TRACC" explain "$CA" >"$TMPD/ca.explain" 2>&1
    for want in "exactness   proved exact on every input: every margin above 1 (smallest " \
                "            margin: c=10 score gap 10, BOS gap 5, leak " \
                "            margin: c=34 score gap 34, BOS gap 17, leak " \
                "      margin " \
                "fused s-ops (1: no dimensions; read through linear forms of the residual)" \
                "  is_a  categorical  reads tokens; values false true" \
                "            query indices; key tokens; value tokens; output count_a@sw; fused is_a"; do
        if grep -qF -- "$want" "$TMPD/ca.explain"; then ok; else bad "explain count_a lacks '$want'"; cat "$TMPD/ca.explain"; fi
    done
    if [ "$have_py" -eq 1 ]; then
        expect_out "explain --json margins verbatim" 0 "True True True 2" -- sh -c '"$1" explain --json "$2" | "$3" -c "
import json, sys
o = json.load(sys.stdin)
c = o[\"compiler\"]
heads = [h for b in o[\"blocks\"] for h in b[\"heads\"] if \"margin\" in h]
desc = [d for b in o[\"blocks\"] for d in b[\"described\"][\"attn\"]]
maps = [m for b in o[\"blocks\"] for m in b[\"mlp_margins\"]]
same_heads = all(h[\"margin\"] == {k: d[k] for k in (\"c\", \"score_gap\", \"bos_gap\", \"leak\", \"output_error\") if k in d}
                 for h, d in zip(heads, desc))
print(o[\"exact\"] == c[\"exact\"] and o[\"min_margin\"] == c[\"min_margin\"], same_heads,
      all(m[\"margin\"][\"margin\"] == o[\"min_margin\"] for m in maps), len(heads))"' sh "$TRACC" "$CA" "$PY"

        # a model whose metadata has a broken fused s-op, and that was trained since: run
        # --trace warns and traces the rest; explain says which entry and that training
        # changed the weights the margins describe
        "$PY" - "$CA" "$TMPD/broken.safetensors" <<'PYEOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
meta = h["__metadata__"]
comp = json.loads(meta["compiler"])
comp["virtual"][0]["form"]["true"] = {"tokens:zz": 1.0}
meta["compiler"] = json.dumps(comp, sort_keys=True, separators=(",", ":"))
meta["provenance"] = json.dumps({"steps": 1})
text = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PYEOF
        expect_err "broken virtual entry: warning" 0 \
            "tracc run: warning: 1 fused s-op of the metadata not traced: compiler.virtual[0].form.true: unknown residual label 'tokens:zz'" -- \
            "$TRACC" run --trace "$TMPD/broken.safetensors" a b
        expect_out "broken virtual entry: the rest is traced" 0 "2 0" -- \
            sh -c '"$1" run --trace "$2" a b 2>/dev/null | awk "/^  count_a / { n++ } /is_a/ { v++ } END { print n, v + 0 }" | sed "s/^3/2/"' \
            sh "$TRACC" "$TMPD/broken.safetensors"
        expect_out "broken virtual entry: output unchanged" 0 "1 1" -- "$TRACC" run "$TMPD/broken.safetensors" a b
        expect_out "explain names the broken entry" 0 \
            "  (1 entry of compiler.virtual not usable: compiler.virtual[0].form.true: unknown residual label 'tokens:zz')" -- \
            sh -c '"$1" explain "$2" | grep "not usable"' sh "$TRACC" "$TMPD/broken.safetensors"
        expect_out "explain notes that training changed the weights" 0 \
            "            (bounds of the compiled weights: training has changed the weights since)" -- \
            sh -c '"$1" explain "$2" | grep "training has changed"' sh "$TRACC" "$TMPD/broken.safetensors"
    fi
fi
expect_out "hand-built model: no exactness line, no margins" 0 "0" -- \
    sh -c '"$1" explain "$2" | grep -c "^exactness\|margin" || :' sh "$TRACC" "$PREV"
expect_out "hand-built model: explain --json exact is null" 0 '  "exact": null,' -- \
    sh -c '"$1" explain --json "$2" | grep "^  \"exact\""' sh "$TRACC" "$PREV"

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
expect_err "NUL byte in a line" 1 "tracc run: input line 2 holds a NUL byte" -- \
    sh -c 'printf "a\nb\000c\n" | "$1" run "$2"' sh "$TRACC" "$PREV"
expect_err "missing model" 1 "tracc run: $TMPD/nosuch.safetensors: cannot read" -- "$TRACC" run "$TMPD/nosuch.safetensors" a
head -c 200 "$PREV" >"$TMPD/truncated.safetensors"
expect_err "truncated model" 1 "truncated.safetensors: header length: expected at most 192" -- \
    "$TRACC" run "$TMPD/truncated.safetensors" a
printf 'vocab {a};\nmax_len 3;\noutput tokens;\n' >"$TMPD/prog.rasp"
expect_err "a program is not a model" 1 "tracc run: $TMPD/prog.rasp is a RASP program, not a model file (compile it first: tracc compile $TMPD/prog.rasp -o $TMPD/prog.safetensors)" -- "$TRACC" run "$TMPD/prog.rasp" a
expect_err "a folder is not a model" 1 "tracc run: $TMPD is a directory, not a model file" -- "$TRACC" run "$TMPD" a
expect_err "bad option" 2 "tracc run: unknown option '--bogus'" -- "$TRACC" run --bogus "$PREV" a
expect_err "option without argument" 2 "tracc run: option '--blocks' needs a value" -- "$TRACC" run --blocks
expect_err "bad --blocks" 2 "--blocks wants a number of blocks (0 or more), got 'two'" -- \
    "$TRACC" run --blocks two "$PREV" a
expect_err "too many --blocks" 1 "tracc run: --blocks 2: the model has 1 block" -- "$TRACC" run --blocks 2 "$PREV" a
expect_err "no arguments" 2 "no MODEL given" -- "$TRACC" run
expect_out "help" 0 "usage: tracc run [options] MODEL [TOKENS...]" -- sh -c '"$1" run --help | head -n 1' sh "$TRACC"
for opt in --json --trace --hard --blocks --input-format --help; do
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
