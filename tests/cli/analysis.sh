# analysis.sh — tracc diff, prune, probe, attn and plot on the paper's Counter: compiled,
# fine-tuned briefly into a wrapper (count b with C_Tr = 1, fixed seed), then analysed.
# Checked for properties, not exact numbers (except the compiled model's attention map,
# which the compiler fixes). Every SVG is checked with an XML parser: xmllint when it is
# installed, else python3's xml.etree.
. tests/lib.sh

T=$TMPD
EX=rasp_examples

svg_ok() {
    name=$1; f=$2
    if [ ! -s "$f" ]; then bad "$name: $f missing or empty"; return; fi
    if command -v xmllint >/dev/null 2>&1; then
        if ! xmllint --noout "$f" 2>"$T/xmlerr"; then bad "$name: xmllint rejects $f"; cat "$T/xmlerr"; return; fi
    fi
    if command -v python3 >/dev/null 2>&1; then
        if ! python3 -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag == "{http://www.w3.org/2000/svg}svg", r.tag' "$f" 2>"$T/xmlerr"; then
            bad "$name: xml.etree rejects $f"; cat "$T/xmlerr"; return
        fi
    fi
    ok
}

# py NAME FILE CODE: run python code with `d` = the JSON in FILE; it must exit 0.
py() {
    name=$1; f=$2; code=$3
    if ! command -v python3 >/dev/null 2>&1; then ok; return; fi
    if ! python3 -c "import json, sys; d = json.load(open(sys.argv[1])); $code" "$f" 2>"$T/pyerr"; then
        bad "$name"; cat "$T/pyerr"; return
    fi
    ok
}

# ---- the models: compiled, and fine-tuned into a wrapper ----------------------------------
$TRACC compile $EX/count_a.rasp -o $T/ca.safetensors >/dev/null 2>&1 || bad "compile count_a"
$TRACC compile $EX/count_b.rasp -o $T/cb.safetensors >/dev/null 2>&1 || bad "compile count_b"
FT1="ft1=$EX/count_b.rasp,spurious=$EX/b_is_a_plus_1.rasp,rate=1"
$TRACC finetune $T/ca.safetensors --task $EX/count_b.rasp --at 1 --spurious $EX/b_is_a_plus_1.rasp \
    --spurious-rate 1 --lr 1e-3 --steps 300 --seed 1 --eval pt=$EX/count_a.rasp --eval "$FT1" \
    --log $T/run.jsonl -o $T/tuned.safetensors --quiet >/dev/null 2>&1 || bad "finetune"

# ---- diff --------------------------------------------------------------------------------
# --tensors: two programs compiled to one layout (labels differ, so the labelled diff refuses);
# the norms are checked against a plain reading of the two safetensors files
expect_err "diff: two programs, labelled" 1 "do not share their compiled structure" -- \
    $TRACC diff $T/ca.safetensors $T/cb.safetensors
$TRACC diff --tensors --json $T/ca.safetensors $T/cb.safetensors >$T/dten.json 2>$T/dten.err || bad "diff --tensors: status"
if command -v python3 >/dev/null 2>&1; then
    if python3 - $T/ca.safetensors $T/cb.safetensors $T/dten.json <<'EOF2' 2>$T/pyerr; then ok; else bad "diff --tensors: norms"; cat $T/pyerr; fi
import array, json, math, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); out = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] != "F32": continue
        s, e = v["data_offsets"]; a = array.array("f"); a.frombytes(b[8 + n + s:8 + n + e]); out[k] = a
    return out
A, B, d = load(sys.argv[1]), load(sys.argv[2]), json.load(open(sys.argv[3]))
ten = {t["name"]: t for t in d["tensors"]}
tot = 0
for k, t in ten.items():
    dd = sum((y - x) ** 2 for x, y in zip(A[k], B[k])); tot += dd
    assert abs(t["norm_delta"] - math.sqrt(dd)) < 1e-6 * (1 + math.sqrt(dd)), (k, t, dd)
    assert abs(t["norm_before"] - math.sqrt(sum(x * x for x in A[k]))) < 1e-4 * (1 + t["norm_before"]), k
assert abs(d["norm_delta"] - math.sqrt(tot)) < 1e-6 * (1 + math.sqrt(tot)) and d["norm_delta"] > 0
changed = sorted(k for k, t in ten.items() if t["norm_delta"] > 0)
assert changed and all(k.startswith("blocks.0.mlp.W_") or k.startswith("blocks.0.attn.W_") for k in changed), changed
assert d["params_changed"] == sum(1 for k in ten for x, y in zip(A[k], B[k]) if x != y)
EOF2
fi
$TRACC diff --tensors $T/ca.safetensors $T/cb.safetensors >$T/dten.txt 2>&1
if grep -q "^weights: [0-9]* of [0-9]* parameters differ; ||dW||" $T/dten.txt && grep -q "^by tensor" $T/dten.txt; then ok
else bad "diff --tensors: text"; cat $T/dten.txt; fi
$TRACC compile --max-len 8 $EX/count_a.rasp -o $T/ca8.safetensors >/dev/null 2>&1 || bad "compile count_a at max_len 8"
expect_err "diff --tensors: other sizes" 1 "the two models differ in size: d_model 45 in BEFORE, 39 in AFTER" -- \
    $TRACC diff --tensors $T/ca.safetensors $T/ca8.safetensors
expect_err "diff --tensors with --inputs" 2 "--tensors compares raw weights only" -- \
    $TRACC diff --tensors --inputs 10 $T/ca.safetensors $T/cb.safetensors
$TRACC diff $T/ca.safetensors $T/tuned.safetensors >$T/diff.txt 2>$T/diff.err
if [ $? -ne 0 ]; then bad "diff: status"; cat $T/diff.err; else ok; fi
for pat in "trained from BEFORE" "largest changes in program coordinates" \
    "block 0 head 0 QK (count_a = selector_width(bin_idx))" "new pathways: entries exactly 0 in BEFORE" \
    "where the change lies"; do
    if grep -qF "$pat" $T/diff.txt; then ok; else bad "diff text lacks '$pat'"; fi
done
if [ -s $T/diff.err ]; then bad "diff warns about a true parent"; cat $T/diff.err; else ok; fi

$TRACC diff --inputs 300 --at 1 --json $T/ca.safetensors $T/tuned.safetensors >$T/diff.json 2>/dev/null || bad "diff --json"
SHA=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' $T/ca.safetensors 2>/dev/null)
py "diff --json: provenance, components, entries" $T/diff.json "
assert d['after_descends_from_before'] is True
assert d['before_sha256'] == '$SHA'
assert d['params_changed'] > 0 and d['components'][0]['norm_delta'] >= d['components'][-1]['norm_delta']
assert len(d['largest_changes']) == 20 and all(e['name'] for e in d['largest_changes'])"
py "diff --inputs: the wrapper keeps the embedding and breaks count_a at index 1" $T/diff.json "
s = {x['sop']: x for x in d['inputs']['sops']}
assert s['tokens']['agree_before'] == 1 and s['tokens']['agree_after'] == 1
assert s['count_a']['agree_before'] == 1 and s['count_a']['agree_after'] < 0.5
o = d['inputs']['output']
assert o['before_vs_program'] == 1 and o['after_vs_program'] < 0.5
assert len(d['inputs']['heads']) == 2"

$TRACC diff --svg $T/diff.svg --svg-components 3 $T/ca.safetensors $T/tuned.safetensors >/dev/null 2>&1 || bad "diff --svg"
svg_ok "diff --svg" $T/diff.svg

expect_err "diff: different structures are refused" 1 "do not share their compiled structure" -- \
    $TRACC diff $T/ca.safetensors $T/cb.safetensors
expect_err "diff: ... saying what differs" 1 "residual[23]: count_a:0 in BEFORE, count_b:0 in AFTER" -- \
    $TRACC diff $T/ca.safetensors $T/cb.safetensors
expect_err "diff: no provenance is a warning" 0 "has no training provenance naming" -- \
    $TRACC diff $T/ca.safetensors $T/ca.safetensors
expect_err "diff: wrong parent is a warning" 0 "was trained from a file with sha256" -- \
    $TRACC diff $T/tuned.safetensors $T/tuned.safetensors
expect_err "diff: one file" 2 "expected two model files" -- $TRACC diff $T/ca.safetensors
expect_err "diff: missing file" 1 "nope.safetensors: cannot read" -- $TRACC diff $T/ca.safetensors $T/nope.safetensors
expect_err "diff: --at needs --inputs" 2 "--len and --at need --inputs N" -- \
    $TRACC diff --at 1 $T/ca.safetensors $T/tuned.safetensors
expect_err "diff: bad --at" 1 "--at 10: indices must be in 0..9" -- \
    $TRACC diff --inputs 5 --at 10 $T/ca.safetensors $T/tuned.safetensors
expect_err "diff: bad --top" 2 "--top expects a positive count" -- $TRACC diff --top 0 $T/ca.safetensors $T/tuned.safetensors
printf 'not a model' >$T/junk.safetensors
expect_err "diff: corrupt file" 1 "junk.safetensors" -- $TRACC diff $T/ca.safetensors $T/junk.safetensors

# ---- attn --------------------------------------------------------------------------------
expect_out "attn: the compiled Counter's block-0 pattern, with the program's selection" 0 \
"block 0 head 0 (count_a = selector_width(bin_idx))
 $T/ca.safetensors
        BOS  0:a  1:b  2:a  3:c  4:b
  BOS   100    .    .    .    .    .
  0:a    25    .  25*    .  25*  25*
  1:b    33  33*    .  33*    .    .
  2:a   100    .    .    .    .    .
  3:c   100    .    .    .    .    .
  4:b   100    .    .    .    .    ." -- $TRACC attn $T/ca.safetensors a b a c b --block 0
$TRACC attn --svg $T/attn.svg $T/ca.safetensors $T/tuned.safetensors a b a c b >$T/attn.txt 2>&1 || bad "attn two models"
if grep -qF "largest change" $T/attn.txt; then ok; else bad "attn: no change line"; cat $T/attn.txt; fi
svg_ok "attn --svg" $T/attn.svg
# a second model is recognised by its contents, whatever its name
cp $T/tuned.safetensors $T/tuned.model
$TRACC attn $T/ca.safetensors $T/tuned.model a b a c b >$T/attn2.txt 2>&1 || bad "attn: second model without the suffix"
if grep -qF "largest change" $T/attn2.txt; then ok; else bad "attn: a model named tuned.model was not taken as a model"; cat $T/attn2.txt; fi
echo "a b c" | $TRACC attn --json $T/ca.safetensors >$T/attn.json 2>&1 || bad "attn stdin --json"
py "attn --json" $T/attn.json "
h = d['heads'][0]
assert d['positions'] == ['BOS', 'a', 'b', 'c'] and len(h['pattern'][0]) == 4
assert all(abs(sum(r) - 1) < 1e-5 for r in h['pattern'][0])
assert h['program_selects'][2][1] is True"
expect_err "attn: unknown token" 1 "token 'z' is not in the vocab" -- $TRACC attn $T/ca.safetensors a z
expect_err "attn: block out of range" 1 "--block 5: the model has 2 blocks" -- $TRACC attn --block 5 $T/ca.safetensors a
expect_err "attn: different structures" 1 "do not share their compiled structure" -- \
    $TRACC attn $T/ca.safetensors $T/cb.safetensors a
expect_err "attn: no model" 2 "expected a model file" -- $TRACC attn
expect_err "attn: no tokens on stdin" 2 "tracc attn: no input tokens" -- sh -c ': | "$1" attn "$2"' sh "$TRACC" $T/ca.safetensors
expect_err "attn: a program as the model" 1 "count_a.rasp is a RASP program, not a model file (compile it first" -- \
    $TRACC attn $EX/count_a.rasp a b
expect_out "attn: options after the tokens" 0 "block 1 head 0 (out = aggregate(select_1, count_a))" -- \
    sh -c '"$1" attn "$2" a b --block 1 | head -n 1' sh "$TRACC" $T/ca.safetensors
if grep -qF '>0:a<' $T/attn.svg && grep -qF '>BOS<' $T/attn.svg; then ok; else bad "attn --svg: axes not labelled I:TOKEN"; fi

# attn --inputs: per-head change over sampled inputs of the training length, the numbers of
# diff --inputs (same sampler, same rows), plus the share of rows whose argmax key moved
$TRACC attn --inputs 200 --json $T/ca.safetensors $T/tuned.safetensors >$T/attn_in.json 2>&1 || bad "attn --inputs"
$TRACC diff --inputs 200 --json $T/ca.safetensors $T/tuned.safetensors >$T/diff_in.json 2>/dev/null || bad "diff --inputs 200"
if command -v python3 >/dev/null 2>&1; then
    if python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
dh = {(h["block"], h["head"]): h for h in d["inputs"]["heads"]}
assert a["inputs"] == 200 and a["len_min"] == a["len_max"] == 10 and len(a["heads"]) == 2
for h in a["heads"]:
    g = dh[(h["block"], h["head"])]
    assert abs(h["mean_tv"] - g["mean_tv"]) < 1e-9 and abs(h["max_tv"] - g["max_tv"]) < 1e-9, (h, g)
    assert abs(h["argmax_moved"] - g["argmax_moved"]) < 1e-9 and h["rows"] == g["rows"] == 2000
b0 = a["heads"][0]
assert b0["block"] == 0 and b0["mean_tv"] > 0.001 and 0 < b0["argmax_moved"] < 1, b0
assert a["heads"][1]["max_tv"] < 1e-3
' $T/attn_in.json $T/diff_in.json; then ok; else bad "attn --inputs disagrees with diff --inputs"; cat $T/attn_in.json; fi
fi
$TRACC attn --inputs 200 --at 1 --json $T/ca.safetensors $T/tuned.safetensors >$T/attn_at.json 2>&1 || bad "attn --inputs --at"
$TRACC diff --inputs 200 --at 1 --json $T/ca.safetensors $T/tuned.safetensors >$T/diff_at.json 2>/dev/null || bad "diff --inputs --at"
if command -v python3 >/dev/null 2>&1; then
    if python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
dh = {(h["block"], h["head"]): h for h in d["inputs"]["heads"]}
assert a["at"] == [1]
for h in a["heads"]:
    g = dh[(h["block"], h["head"])]
    assert h["rows"] == g["rows"] == 200 and h["mean_tv"] == g["mean_tv"] and h["argmax_moved"] == g["argmax_moved"], (h, g)
' $T/attn_at.json $T/diff_at.json; then ok; else bad "attn --inputs --at 1 disagrees with diff --inputs --at 1"; cat $T/attn_at.json; fi
fi
$TRACC attn $T/ca.safetensors --inputs 50 $T/tuned.safetensors >$T/attn_in.txt 2>&1 || bad "attn --inputs text"
if grep -qE '^  [0-9.]+ +[0-9.]+ +[0-9.]+% +block 0 head 0 \(count_a' $T/attn_in.txt; then ok; else bad "attn --inputs text"; cat $T/attn_in.txt; fi
expect_err "attn --inputs needs two models" 2 "--inputs N compares two models" -- $TRACC attn --inputs 5 $T/ca.safetensors
expect_err "attn --inputs takes no tokens" 2 "--inputs N compares two models" -- \
    $TRACC attn --inputs 5 $T/ca.safetensors $T/tuned.safetensors a b
expect_err "attn --len needs --inputs" 2 "--len, --at and --seed need --inputs N" -- $TRACC attn --len 3 $T/ca.safetensors a
expect_err "attn --len beyond max_len" 1 "tracc attn:" -- $TRACC attn --inputs 5 --len 11 $T/ca.safetensors $T/tuned.safetensors
expect_out "attn: one input that does not move says so" 0 " unchanged on this input (no attention weight moves by 0.01 points or more;" -- \
    sh -c '"$1" attn --block 1 "$2" "$3" a | grep unchanged' sh "$TRACC" $T/ca.safetensors $T/tuned.safetensors

# ---- plot --------------------------------------------------------------------------------
expect_out "plot: the fine-tuning log" 0 "$T/curves.svg: 1 log, 30 training points, 2 evaluation curves" -- \
    $TRACC plot $T/run.jsonl -o $T/curves.svg
svg_ok "plot" $T/curves.svg
printf '{"type":"train","step":1,"loss":1.0}\n{oops\n' >$T/bad.jsonl
expect_err "plot: malformed line" 1 "bad.jsonl:2: not a JSON object" -- $TRACC plot $T/bad.jsonl -o $T/bad.svg
if [ -e $T/bad.svg ]; then bad "plot wrote a picture from a bad log"; else ok; fi
expect_err "plot: -o required" 2 "-o OUT.svg is required" -- $TRACC plot $T/run.jsonl

# ---- probe -------------------------------------------------------------------------------
$TRACC probe --steps 0 --train 200 --test 200 --json $T/ca.safetensors >$T/probe0.json 2>&1 || bad "probe direct"
if command -v python3 >/dev/null 2>&1; then
    if python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert d["direct_read"], d["sop"]
    w = [s["where"] for s in d["stages"]].index(d["written_at"])
    assert all(s["direct"] == 1.0 for s in d["stages"][w:]), d
' $T/probe0.json; then ok; else bad "probe: direct read is not exact on the compiled model"; fi
fi
$TRACC probe --sop count_a --at 1 --steps 300 --train 400 --test 400 --json $T/tuned.safetensors >$T/probe1.json 2>&1 \
    || bad "probe linear"
py "probe: on the wrapper, count_a's labels are wrong but a linear probe still reads it" $T/probe1.json "
w = [s['where'] for s in d['stages']].index(d['written_at'])
s = d['stages'][w]
assert s['direct'] < 0.5 and s['linear_test'] > 0.7 and s['linear_test'] > d['majority'] + 0.2, s"
# --neurons: at length 1 the compiled counter's MLP sees one token, so every unit fires on
# the inputs that are `a`, on those that are not, on all or on none: its firing fractions are
# 0, 1, p and 1 - p with p the share of `a` (1/9 expected); unused units (zero weights) are dead
$TRACC probe --neurons --test 2000 --at 0 --len 1 --json $T/ca.safetensors >$T/neu0.json 2>&1 || bad "probe --neurons"
py "probe --neurons: compiled counter at length 1" $T/neu0.json "
assert d['inputs'] == 2000 and d['examples'] == 2000 and d['at'] == [0] and d['len'] == [1, 1], d
fr = [f for b in d['blocks'] for f in b['fire']]
mid = sorted({f for f in fr if 0 < f < 1})
assert len(mid) in (1, 2) and 0.07 < mid[0] < 0.16 and (len(mid) == 1 or abs(mid[0] + mid[1] - 1) < 1e-9), mid
for b in d['blocks']:
    assert sum(g['units'] for g in b['groups']) == len(b['fire'])
    for g in b['groups']:
        assert g['dead'] + g['always'] + g['varying'] == g['units'], g
        if g['map'] is None: assert g['dead'] == g['units'], g
sw = [g for g in d['blocks'][0]['groups'] if (g['map'] or '').startswith('count_a = selector_width')]
assert len(sw) == 1 and sw[0]['varying'] > 0, d['blocks'][0]"
$TRACC probe --neurons --test 50 --len 4 $T/tuned.safetensors >$T/neu1.txt 2>&1 || bad "probe --neurons text"
if grep -q "on 50 inputs, length 4, every position (200 examples)" $T/neu1.txt &&
    grep -q "count_a = selector_width(count_a@sw) \[neurons 0-" $T/neu1.txt; then ok; else bad "probe --neurons text"; cat $T/neu1.txt; fi
expect_err "probe: --neurons with --sop" 2 "--neurons reads MLP units, not s-ops" -- \
    $TRACC probe --neurons --sop count_a $T/ca.safetensors
expect_err "probe: unknown s-op" 1 "no s-op named 'nope'" -- $TRACC probe --sop nope --steps 0 $T/ca.safetensors
expect_err "probe: bad --steps" 2 "--steps expects a count" -- $TRACC probe --steps x $T/ca.safetensors
expect_err "probe: foreign vocab" 1 "is not in the model's vocab" -- \
    $TRACC probe --program $EX/sort.rasp --steps 0 $T/ca.safetensors

# ---- prune -------------------------------------------------------------------------------
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --top 1,2,4 --eval "$FT1" --json \
    >$T/prune.json 2>$T/prune.err || { bad "prune"; cat $T/prune.err; }
py "prune: the wrapper hides count_a; ranked weights are named" $T/prune.json "
assert d['base']['acc']['task'] < 0.5 and d['base']['acc']['ft1'] > 0.8
assert [r['k'] for r in d['rows']] == [1, 2, 4]
assert all(i['meaning'] and i['param'] for i in d['ranking'])
assert d['ranking'][0]['score'] >= d['ranking'][1]['score']"
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --rollback $T/ca.safetensors --json \
    -o $T/rolled.safetensors >$T/roll.json 2>$T/roll.err || { bad "prune --rollback"; cat $T/roll.err; }
py "prune --rollback: a few dozen weights hold the wrapper" $T/roll.json "
assert d['original']['acc']['task'] == 1.0
assert d['found_k'] is not None and 0 < d['found_k'] < d['candidates'] / 20, (d['found_k'], d['candidates'])
assert d['found_acc'] >= 0.9 and d['written']['k'] == d['found_k']
# the JSON lists the top --list (20) weights, not every one the search applied
assert len(d['ranking']) == min(20, d['ranked']) and d['ranked'] >= d['found_k'], (len(d['ranking']), d['ranked'])
assert [i['rank'] for i in d['ranking']] == list(range(1, len(d['ranking']) + 1))"
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --rollback $T/ca.safetensors --json \
    --list 3 --each 5 --top 1,7 >$T/roll3.json 2>$T/roll3.err || { bad "prune --rollback --list 3"; cat $T/roll3.err; }
py "prune --list 3 --each 5 --top 1,7: the JSON lists the 7 that --top needs" $T/roll3.json "
assert len(d['ranking']) == 7 and len(d['each']) == 5, (len(d['ranking']), len(d['each']))"
# --reset: every tensor reset to ORIGINAL is the original model (same sets, same accuracies);
# a slice covers the parameters its index prefix names; zeroing the token embedding's
# tokens:a weight alone loses the count
ALL=$(python3 -c '
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
print("+".join(k for k in json.loads(raw[8:8 + n]) if k != "__metadata__"))' $T/ca.safetensors 2>/dev/null)
A=$(python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["vocab"].index("a"))' <<EOF2 2>/dev/null
$($TRACC explain --json $T/ca.safetensors 2>/dev/null)
EOF2
)
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --rollback $T/ca.safetensors --eval "$FT1" \
    --top 1 --reset "$ALL" --reset 'blocks.0.attn.W_V[0]' --json >$T/reset.json 2>$T/reset.err \
    || { bad "prune --rollback --reset"; cat $T/reset.err; }
py "prune --rollback --reset every tensor: the original's accuracies" $T/reset.json "
a, o = d['resets'][0], d['original']
assert a['acc'] == o['acc'], (a['acc'], o['acc'])
assert a['params'] >= d['candidates'] and a['changed'] == d['candidates'], (a, d['candidates'])
h = d['resets'][1]
assert h['reset'] == 'blocks.0.attn.W_V[0]' and h['changed'] <= h['params']"
$TRACC explain --json $T/tuned.safetensors >$T/explain.json 2>/dev/null
py "prune --reset: a slice's size is its index prefix's" $T/reset.json "
cfg = json.load(open('$T/explain.json'))['config']
assert d['resets'][1]['params'] == cfg['d_model'] * cfg['d_head'], (d['resets'][1]['params'], cfg)"
$TRACC prune $T/ca.safetensors --task $EX/count_a.rasp --at 1 --top 1 --reset "embed.W_E[$A]" --json \
    >$T/reset0.json 2>$T/reset0.err || { bad "prune --reset (zero)"; cat $T/reset0.err; }
py "prune --reset embed.W_E[a]: the compiled Counter no longer counts a" $T/reset0.json "
assert d['base']['acc']['task'] == 1.0 and d['resets'][0]['acc']['task'] < 0.5, d['resets']
assert d['resets'][0]['changed'] >= 1"
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --reset 'blocks.0.attn.W_V[0]' \
    >$T/reset.txt 2>&1 || bad "prune --reset (text)"
if grep -qF "each --reset alone (set to 0)" $T/reset.txt && grep -qF "blocks.0.attn.W_V[0]" $T/reset.txt; then ok
else bad "prune --reset: text table"; cat $T/reset.txt; fi
expect_err "prune --reset: malformed" 2 "--reset expects TENSOR" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'blocks.0.attn.W_V[0'
expect_err "prune --reset: empty part" 2 "--reset expects TENSOR" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'embed.W_E+'
expect_err "prune --reset: empty range, checked before the model is read" 2 "a range I:J needs I < J" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'blocks.0.mlp.W_out[3:3]'
expect_err "prune --reset: range past the tensor" 1 "a range I:J needs I < J <=" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'blocks.0.mlp.W_out[0:100000]'
expect_err "prune --reset: no such tensor" 1 "the model has no tensor 'blocks.9.attn.W_V'" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'embed.W_E+blocks.9.attn.W_V'
expect_err "prune --reset: index out of range" 1 "index 7 is outside 0..0" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'blocks.0.attn.W_V[7]'
expect_err "prune --reset: too many indices" 1 "expected up to 1 indices" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --reset 'unembed.b_U[1, 2]'
if command -v python3 >/dev/null 2>&1; then
    if python3 -c '
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
p = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["provenance"])
r = json.load(open(sys.argv[2]))
assert p["method"] == "rollback" and p["k"] == r["found_k"] and len(p["changed"]) == p["k"]
assert p["changed"][0]["meaning"]
' $T/rolled.safetensors $T/roll.json; then ok; else bad "prune -o: provenance of the rolled-back model"; fi
fi
expect_err "prune: the rolled-back model descends from the tuned one" 0 "was trained from a file with sha256" -- \
    $TRACC diff $T/ca.safetensors $T/rolled.safetensors
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --neurons --top 1,2 >$T/neurons.txt 2>&1 \
    || bad "prune --neurons"
if grep -qF "ranked units" $T/neurons.txt; then ok; else bad "prune --neurons output"; cat $T/neurons.txt; fi
expect_err "prune: --task required" 2 "--task FILE.rasp is required" -- $TRACC prune $T/tuned.safetensors
expect_err "prune: --rank needs --rollback" 2 "--rank needs --rollback" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --rank grad
expect_err "prune: bad --top" 2 "the counts must increase" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --top 4,2
expect_err "prune: bad --eval" 2 "--eval" -- $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --eval nothing
expect_err "prune: rollback to another structure" 1 "do not share their compiled structure" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --rollback $T/cb.safetensors
expect_err "prune: task over another vocab" 1 "sort.rasp" -- $TRACC prune $T/tuned.safetensors --task $EX/sort.rasp
# --no-repeat reaches every set: 9 distinct letters of a-i hold one a and one b each, so
# count(b) = count(a) + 1 never holds and a set that needs it cannot be drawn (with repeats it can)
PT1="pt1=$EX/count_a.rasp,spurious=$EX/b_is_a_plus_1.rasp,rate=1"
$TRACC prune $T/ca.safetensors --task $EX/count_a.rasp --at 1 --len 9 --top 1 --eval "$PT1" --json \
    >$T/prune_rep.json 2>$T/prune_rep.err || { bad "prune --len 9 with repeats"; cat $T/prune_rep.err; }
py "prune: no_repeat false by default" $T/prune_rep.json "assert d['no_repeat'] is False"
expect_err "prune --no-repeat: the correlated set cannot be drawn" 1 "too rare to draw" -- \
    $TRACC prune $T/ca.safetensors --task $EX/count_a.rasp --at 1 --len 9 --no-repeat --top 1 --eval "$PT1"
$TRACC prune $T/ca.safetensors --task $EX/count_a.rasp --at 1 --len 9 --no-repeat --top 1 --json \
    >$T/prune_norep.json 2>$T/prune_norep.err || { bad "prune --no-repeat"; cat $T/prune_norep.err; }
py "prune --no-repeat: recorded, the compiled model exact" $T/prune_norep.json "
assert d['no_repeat'] is True and d['base']['acc']['task'] == 1.0"
expect_err "prune --no-repeat: longer than the vocabulary" 1 "cannot avoid repeating" -- \
    $TRACC prune $T/ca.safetensors --task $EX/count_a.rasp --at 1 --len 10 --no-repeat --top 1
# --each N: every one of the top N alone; the first alone is the cumulative K = 1
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --top 1,2 --each 3 --eval "$FT1" --json \
    >$T/prune_each.json 2>$T/prune_each.err || { bad "prune --each"; cat $T/prune_each.err; }
py "prune --each: one row per item, item 1 alone = K 1" $T/prune_each.json "
e = d['each']; assert [x['rank'] for x in e] == [1, 2, 3], e
assert [x['param'] for x in e] == [x['param'] for x in d['ranking'][:3]]
assert e[0]['acc'] == d['rows'][0]['acc'], (e[0], d['rows'][0])
assert set(e[1]['acc']) == {'task', 'ft1'}"
$TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --top 1 --each 2 --neurons >$T/each.txt 2>&1 \
    || bad "prune --each --neurons"
if grep -qF "each of the top 2 units alone" $T/each.txt; then ok; else bad "prune --each text"; cat $T/each.txt; fi
expect_err "prune: bad --each" 2 "--each expects a positive count" -- \
    $TRACC prune $T/tuned.safetensors --task $EX/count_a.rasp --each 0

# ---- reverse fine-tuning: a few steps on count_a at a smaller learning rate ---------------
$TRACC finetune $T/tuned.safetensors --task $EX/count_a.rasp --at 1 --lr 1e-4 --schedule constant --steps 60 --eval-every 20 \
    --eval pt=$EX/count_a.rasp --log $T/reft.jsonl -o $T/reft.safetensors --quiet >/dev/null 2>&1 || bad "reverse fine-tune"
if command -v python3 >/dev/null 2>&1; then
    if python3 -c '
import json, sys
acc = [json.loads(l)["eval"]["pt"]["acc"] for l in open(sys.argv[1]) if "\"eval\"" in l and "\"type\":\"eval\"" in l]
assert acc[-1] > acc[0] + 0.1, acc
' $T/reft.jsonl; then ok; else bad "reverse fine-tuning does not revive count_a"; fi
fi
$TRACC plot $T/run.jsonl $T/reft.jsonl -o $T/both.svg >/dev/null 2>&1 || bad "plot two logs"
svg_ok "plot two logs" $T/both.svg

finish
