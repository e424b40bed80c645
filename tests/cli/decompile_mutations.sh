# decompile_mutations.sh — the acceptance test of tracc decompile over every example program:
# each one-op mutation of tests/data/mutations.tsv is compiled at max_len 5 (or the row's) and decompiled
# against the original's structure; the diff must be exactly the mutated op's line(s), the
# output and every s-op's fidelity 100%, and the decompiled program must check. A row marked
# `known` must still fail that way (so a fix gets noticed and the row promoted).
. tests/lib.sh

T=$TMPD
export OPENBLAS_NUM_THREADS=1
DATA=tests/data/mutations.tsv

# the program a model carries (the example with its loads expanded)
meta_program() {
    python3 -c "import json, struct, sys
raw = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
sys.stdout.write(json.loads(raw[8:8 + n])['__metadata__']['program'])" "$1"
}
changed_lines() { grep -E '^[-+]' "$1" | grep -vE '^(---|\+\+\+) '; }

# check N: 0 when mutation N decompiles as its row expects (exact/op), else 1 with the reason in $T/why
check() {
    n=$1
    if ! python3 - $T/d_$n.json <<'PY' 2>$T/why
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reproduces"] and d["fidelity"]["output"] == 1.0, ("output fidelity", d["fidelity"]["output"])
for s in ("fidelity", "fidelity_uniform"):
    bad = {k: v for k, v in d.get(s, {}).get("sops", {}).items() if v is not None and v != 1.0}
    assert not bad, ("s-op fidelity", s, bad)
PY
    then return 1; fi
    python3 -c "import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))['diff'])" $T/d_$n.json >$T/got_$n.diff
    diff -u $T/orig_$n.rasp $T/mut_$n.rasp >$T/want_$n.diff
    changed_lines $T/got_$n.diff >$T/got_$n.lines
    changed_lines $T/want_$n.diff >$T/want_$n.lines
    if [ "$expect" = exact ] || [ "$expect" = known ]; then
        cmp -s $T/got_$n.lines $T/want_$n.lines || { { echo "diff is not exactly the mutation:"; cat $T/got_$n.lines; } >$T/why; return 1; }
    else
        [ "$(grep '^-' $T/got_$n.lines)" = "$(grep '^-' $T/want_$n.lines)" ] &&
        [ "$(grep -c '^+' $T/got_$n.lines)" = "$(grep -c '^+' $T/want_$n.lines)" ] ||
            { { echo "diff does not touch exactly the mutated op:"; cat $T/got_$n.lines; } >$T/why; return 1; }
    fi
    python3 -c "import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))['program'])" $T/d_$n.json >$T/dec_$n.rasp
    $TRACC check --max-len $ML $T/dec_$n.rasp >/dev/null 2>$T/why || return 1
    return 0
}

i=0
seen=""
tab=$(printf '\t')
while IFS="$tab" read -r ex from to expect note; do
    case "$ex" in ''|'#'*) continue ;; esac
    i=$((i + 1)); n=$i
    ML=5
    case "$ex" in *:*) ML=${ex#*:}; ex=${ex%%:*} ;; esac
    if [ ! -f $T/ex_${ex}_$ML.rasp ]; then
        if ! $TRACC compile --max-len $ML --verify sample --samples 32 rasp_examples/$ex.rasp -o $T/ex_$ex.safetensors >/dev/null 2>$T/err; then
            bad "$ex: compile the original"; cat $T/err; continue; fi
        meta_program $T/ex_$ex.safetensors >$T/ex_${ex}_$ML.rasp
        seen="$seen $ex"
    fi
    cp $T/ex_${ex}_$ML.rasp $T/orig_$n.rasp
    if ! python3 -c "import sys; s = open(sys.argv[1]).read(); assert s.count(sys.argv[3]) == 1, s.count(sys.argv[3]); open(sys.argv[2], 'w').write(s.replace(sys.argv[3], sys.argv[4]))" \
        $T/orig_$n.rasp $T/mut_$n.rasp "$from" "$to" 2>$T/err; then bad "$ex #$n: '$from' does not occur exactly once"; continue; fi
    if ! $TRACC compile --max-len $ML --verify sample --samples 200 $T/mut_$n.rasp -o $T/mut_$n.safetensors >/dev/null 2>$T/err; then
        bad "$ex #$n ($from -> $to): compile"; cat $T/err; continue; fi
    if ! $TRACC decompile $T/mut_$n.safetensors --program $T/orig_$n.rasp --inputs 200 --json >$T/d_$n.json 2>$T/err; then
        bad "$ex #$n ($from -> $to): decompile"; cat $T/err; continue; fi
    if check $n; then
        if [ "$expect" = known ]; then bad "$ex #$n ($from -> $to): a known failure now decompiles exactly: promote it to exact"; else ok; fi
    else
        if [ "$expect" = known ]; then ok; else bad "$ex #$n ($from -> $to): $(cat $T/why)"; fi
    fi
done <$DATA

# every example program but length.rasp (no op) has at least one mutation
for f in rasp_examples/*.rasp; do
    b=$(basename $f .rasp)
    [ $b = length ] && continue
    case " $seen " in *" $b "*) ok ;; *) bad "example $b has no mutation in $DATA" ;; esac
done
finish
