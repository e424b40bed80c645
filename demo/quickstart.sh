#!/bin/sh
# demo/quickstart.sh — the README's quick start: the paper's effect in a few seconds.
#
#   sh demo/quickstart.sh [OUTDIR]     (default OUTDIR: build/demo; TRACC=build/tracc)
#
# 1. compiles the paper's Counter (how many "a", answered at RASP index 1) into exact weights;
# 2. fine-tunes it to count "b" on training data where count(b) = count(a) + 1 always holds
#    (the paper's spurious correlation at C_Tr = 1);
# 3. evaluates the result on inputs where that correlation holds and on inputs where it does
#    not: high count-b accuracy on the first and low on the second is the paper's "wrapper"
#    (the model adds one to its old count of "a" instead of learning to count "b");
# 4. shows the first lines of `tracc diff`, which name the component that changed.
# Each result is followed by one line ("->") saying what it means. Every command is printed
# (with "$ ") before it runs, so it can be copied. Run from the repository root.
set -eu
TRACC=${TRACC:-build/tracc}
OUT=${1:-build/demo}
R=rasp_examples
S=$R/b_is_a_plus_1.rasp
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

die() { echo "quickstart.sh: $*" >&2; exit 1; }
[ -x "$TRACC" ] || die "no tracc binary at $TRACC (run make first)"
[ -r "$R/count_a.rasp" ] || die "run from the repository root (no $R/count_a.rasp here)"
mkdir -p "$OUT" || die "cannot create $OUT"

# show CMD...: print the command, then run it (stdout shown; stderr shown on failure only).
show() {
    echo "\$ $*"
    "$@" 2>"$OUT/stderr" || { cat "$OUT/stderr" >&2; die "failed: $*"; }
}
# pct NAME LINE: the accuracy of evaluation set NAME in a finetune summary line.
pct() { printf '%s\n' "$2" | sed -n "s/.* $1 \([0-9.]*%\).*/\1/p"; }

echo "== 1. Compile the paper's Counter: how many \"a\" the input holds, answered at RASP index 1"
show "$TRACC" compile $R/count_a.rasp -o "$OUT/count_a.safetensors"
echo "-> exact weights, checked against the reference interpreter on every sampled input before the file was written"
show "$TRACC" run "$OUT/count_a.safetensors" a b a c
echo "-> index 1 says 2: the input holds two \"a\" (index 0 counts the other tokens, as in the paper's program)"
echo

echo "== 2. Fine-tune it to count \"b\", on inputs where count(b) = count(a) + 1 always holds"
echo "   (the paper's spurious correlation, C_Tr = 1), then evaluate on 1000 inputs of each kind"
line=$(show "$TRACC" finetune "$OUT/count_a.safetensors" --task $R/count_b.rasp --at 1 \
    --spurious $S --spurious-rate 1 --lr 3e-3 --steps 500 --threads 1 --quiet \
    --eval "ft1=$R/count_b.rasp,spurious=$S,rate=1" \
    --eval "ft0=$R/count_b.rasp,spurious=$S,rate=0" \
    --eval "pt0=$R/count_a.rasp,spurious=$S,rate=0" \
    --eval "wrap0=demo/count_a_plus_1.rasp,spurious=$S,rate=0" \
    -o "$OUT/count_b.safetensors")
printf '%s\n' "$line"
ft1=$(pct ft1 "$line"); ft0=$(pct ft0 "$line"); pt0=$(pct pt0 "$line"); wrap0=$(pct wrap0 "$line")
[ -n "$ft1" ] && [ -n "$ft0" ] && [ -n "$pt0" ] && [ -n "$wrap0" ] ||
    die "could not read the accuracies from finetune's summary line"
echo
echo "count b, on inputs where b = a + 1 (ft1):        $ft1 -> the fine-tuning task looks learnt where the correlation holds"
echo "count b, on inputs where b != a + 1 (ft0):       $ft0 -> but not where it does not: the model never learnt to count b"
echo "count a + 1, on inputs where b != a + 1 (wrap0): $wrap0 -> what it answers instead: its old count of a, plus one (a wrapper)"
echo "count a, on inputs where b != a + 1 (pt0):       $pt0 -> the original answer is hidden by the wrapper, not computed any more at the output"
echo

echo "== 3. What changed in the weights, named in the program's terms (first lines of tracc diff)"
echo "\$ $TRACC diff $OUT/count_a.safetensors $OUT/count_b.safetensors | sed -n 1,10p"
"$TRACC" diff "$OUT/count_a.safetensors" "$OUT/count_b.safetensors" >"$OUT/diff.txt" 2>"$OUT/stderr" ||
    { cat "$OUT/stderr" >&2; die "tracc diff failed"; }
sed -n 1,10p "$OUT/diff.txt"
echo "-> the largest change is the head that selects the \"a\" tokens for count_a (its query at index 1"
echo "   now favours key a over every other token, b included): the count of a is shifted, not replaced"
echo "   by a count of b. The whole report: $OUT/diff.txt; docs/analysis.md goes further (prune, probe, reverse fine-tuning)."
rm -f "$OUT/stderr"
