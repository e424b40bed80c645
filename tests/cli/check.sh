#!/bin/sh
# tests/cli/check.sh — `tracc check`: the summary line, --list, overrides, usage errors,
# unreadable files. (Golden error messages are in tests/diag, run by diag.sh.)
. tests/lib.sh

cat >"$TMPD/count_a.rasp" <<'X'
vocab {a, b, c};
max_len 10;
is_a    = tokens == "a";
count_a = selector_width(select(is_a, indices, ==));
out     = aggregate(select(indices, indices, ==), count_a);
output out;
X

cat >"$TMPD/frac.rasp" <<'X'
vocab {a, b};
max_len 3;
is_a = numerical(tokens == "a");
frac = aggregate(select(indices, indices, <=), is_a);
unused = tokens == "b";
output frac;
X

cat >"$TMPD/len.rasp" <<'X'
output length;
X

expect_out "summary line" 0 "$TMPD/count_a.rasp: ok (5 s-ops, 2 selectors; output out: categorical, 11 values or None)" \
    -- "$TRACC" check "$TMPD/count_a.rasp"

expect_out "list" 0 "$TMPD/frac.rasp: ok (5 s-ops, 1 selector; output frac: numerical, 5 values)
s-op      tokens    tokens              categorical used   {\"a\", \"b\"}
s-op      indices   indices             categorical used   {0, 1, 2}
s-op      is_a      map                 numerical   used   {false, true}
s-op      frac      aggregate           numerical   used   {0.0, 0.3333333333333333, 0.5, 0.6666666666666666, 1.0}
s-op      unused    map                 categorical unused {false, true}
selector  select_1  select(indices, indices, <=)  used" -- "$TRACC" check --list "$TMPD/frac.rasp"

expect_out "long value sets are abbreviated" 0 "s-op      indices   indices             categorical used   {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, ... (30 values)}" \
    -- sh -c "\"$TRACC\" check --list --max-len 30 \"$TMPD/count_a.rasp\" | grep '^s-op *indices'"

expect_out "flags stand in for declarations" 0 "$TMPD/len.rasp: ok (3 s-ops, 1 selector; output length: categorical, 4 values)" \
    -- "$TRACC" check --vocab "x,y,1" --max-len 4 "$TMPD/len.rasp"

expect_err "missing declarations" 1 "len.rasp: error: missing \`vocab\` declaration" -- "$TRACC" check "$TMPD/len.rasp"
expect_err "--causal rejects length" 1 "\`length\` needs to look ahead in a causal program" \
    -- "$TRACC" check --causal --vocab a,b --max-len 3 "$TMPD/len.rasp"
expect_out "errors print nothing on stdout" 1 "" -- "$TRACC" check "$TMPD/len.rasp"
expect_err "missing file" 1 "tracc check: $TMPD/nope.rasp: cannot read: No such file or directory" -- "$TRACC" check "$TMPD/nope.rasp"
expect_err "a folder" 1 "tracc check: $TMPD is a directory, not a RASP program" -- "$TRACC" check "$TMPD"

# usage errors: status 2
expect_err "no file" 2 "tracc check: no input file" -- "$TRACC" check
expect_err "two files" 2 "expected one input file" -- "$TRACC" check a.rasp b.rasp
expect_err "unknown option" 2 "tracc check: unknown option '--frobnicate'" -- "$TRACC" check --frobnicate "$TMPD/frac.rasp"
expect_err "missing option value" 2 "option '--max-len' needs a value" -- "$TRACC" check "$TMPD/frac.rasp" --max-len
expect_err "bad --max-len" 2 "--max-len must be an integer from 1 to 4096, got '0'" -- "$TRACC" check --max-len 0 "$TMPD/frac.rasp"
expect_err "non-numeric --max-len" 2 "got '12x'" -- "$TRACC" check --max-len 12x "$TMPD/frac.rasp"
expect_err "bad --vocab" 1 "error: --vocab: empty entry in 'a,,b'" -- "$TRACC" check --vocab a,,b "$TMPD/frac.rasp"
expect_out "help" 0 "usage: tracc check [options] FILE.rasp" -- sh -c "\"$TRACC\" check --help | head -n 1"

finish
