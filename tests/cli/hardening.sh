#!/bin/sh
# Compiler hardening (issue: no false "exact"): programs that once failed or were wrongly
# called proved, and random well-typed programs (tests/gen/randprog.py) each compiled and
# verified on every input: none may be both "proved exact" and wrong, none may fail to
# compile once `tracc check` accepts it (except by the verification gate).
. tests/lib.sh

# 1. an `or` of selects read by two ops (a width and an aggregate): one tuple node, not two
cat >"$TMPD/or2.rasp" <<'P'
vocab {0, 1};
max_len 4;
s = select(tokens, indices, ==) or select(tokens, tokens, ==);
w = selector_width(s);
a = aggregate(s, numerical(w == 1), 0);
output a;
P
if "$TRACC" compile "$TMPD/or2.rasp" -o "$TMPD/or2.safetensors" 2>&1 | grep -q "verified on every input"; then ok; else bad "or-selector read twice does not compile"; fi

# 2. a categorical aggregate that mixes values, read by a select: not proved, and check warns
cat >"$TMPD/mix.rasp" <<'P'
vocab {a, b};
max_len 2;
all = select(tokens, tokens, true);
v = aggregate(all, tokens);
w = selector_width(select(v, v, true));
output w;
P
expect_err "mixing aggregate: compile does not claim a proof" 1 "aggregate 'v' can select positions with different values" -- "$TRACC" compile "$TMPD/mix.rasp" -o "$TMPD/mix.safetensors"
[ -e "$TMPD/mix.safetensors" ] && bad "mixing aggregate: a wrong model was written" || ok
expect_err "mixing aggregate: check warns at the aggregate" 0 "mix.rasp:4:5: warning: aggregate 'v'" -- "$TRACC" check "$TMPD/mix.rasp"
expect_err "mixing aggregate: check notes the reader" 0 "note: selector 'select_1' reads it" -- "$TRACC" check "$TMPD/mix.rasp"
if "$TRACC" check rasp_examples/max_identifier.rasp 2>&1 | grep -q warning; then bad "max_identifier warns"; else ok; fi
expect_err "max_identifier_6th_is_5th_plus_1: fifth is read by holds" 0 "warning: aggregate 'fifth'" -- "$TRACC" check rasp_examples/max_identifier_6th_is_5th_plus_1.rasp
if "$TRACC" compile --max-len 4 rasp_examples/count_a.rasp -o "$TMPD/c.safetensors" 2>&1 | grep -q "do not prove"; then bad "count_a lost its proof"; else ok; fi

# 3. the table budget: a few lines at a large max_len stop at the statement that crosses it
{ echo "vocab {a, b};"; echo "max_len 1024;"
  for i in 1 2 3 4 5 6; do echo "s$i = sequence_map(lambda p, q: p + q + $i, indices, indices);"; done
  echo "output s6;"; } >"$TMPD/big.rasp"
expect_err "table budget: names the statement" 1 "big.rasp:5:6: error: this sequence_map needs a table of 1048576 entries" -- "$TRACC" check --table-budget 3000000 "$TMPD/big.rasp"
expect_err "table budget: names the flag" 1 "raise it with --table-budget N" -- "$TRACC" check --table-budget 3000000 "$TMPD/big.rasp"
if "$TRACC" check "$TMPD/big.rasp" >/dev/null 2>&1; then ok; else bad "table budget: 6 tables of 2^20 do not fit the default"; fi
expect_err "table budget: eval too" 1 "over the budget of 3000000 entries" -- "$TRACC" eval --table-budget 3000000 "$TMPD/big.rasp" a
expect_err "table budget: compile too" 1 "over the budget of 3000000 entries" -- "$TRACC" compile --table-budget 3000000 "$TMPD/big.rasp" -o "$TMPD/big.safetensors"
[ -e "$TMPD/big.safetensors" ] && bad "table budget: compile wrote a model" || ok
expect_err "table budget: a bad value is a usage error" 2 "--table-budget must be a whole number" -- "$TRACC" check --table-budget 0 "$TMPD/big.rasp"
expect_err "table budget: verify" 1 "over the budget" -- "$TRACC" verify --table-budget 10 rasp_examples/count_a.rasp

# 4. random programs: seeded, a few hundred, every one verified on every input
if command -v python3 >/dev/null 2>&1; then
    for seed in 11 12; do python3 tests/gen/randprog.py "$seed" 150 "$TMPD/rp"; done
    n=0; checked=0; unproved=0
    for f in "$TMPD"/rp/*.rasp; do
        n=$((n + 1))
        "$TRACC" check "$f" >/dev/null 2>&1 || continue
        checked=$((checked + 1))
        out=$("$TRACC" compile "$f" -o "$TMPD/rp.safetensors" 2>&1); rc=$?
        [ "$rc" -eq 0 ] && continue
        if echo "$out" | grep -q "disagrees with the interpreter"; then
            if echo "$out" | grep -q "do not prove"; then unproved=$((unproved + 1)); continue; fi
            bad "$f: proved exact but wrong"; cat "$f"; echo "$out" | head -8
        else
            bad "$f: checked but does not compile"; cat "$f"; echo "$out" | head -4
        fi
    done
    echo "random programs: $n generated, $checked checked, $unproved wrong and not proved (caught by the gate)"
    [ "$checked" -ge $((n * 9 / 10)) ] && ok || bad "only $checked of $n random programs pass check"
else
    echo "skip: python3 absent, no random programs"
fi
finish
