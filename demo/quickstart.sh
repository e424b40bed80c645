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
# (after "+ ", as the shell's trace does) before it runs, so it can be copied. Run from the repository root.
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
    line="+"
    for a in "$@"; do
        case $a in --eval|--spurious) printf '%s \\\n' "$line"; line="   " ;;
            -o) if [ ${#line} -gt 3 ] && [ "${line#   }" != "$line" ]; then printf '%s \\\n' "$line"; line="   "; fi ;; esac
        line="$line $a"
    done
    printf '%s\n' "$line"
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
echo "(#a, #b: how many a and b an input holds; accuracy of the answer at index 1)"
echo "count b, inputs with #b = #a + 1 (ft1):       $ft1 -> the new task looks learnt where the correlation holds"
echo "count b, inputs with #b != #a + 1 (ft0):      $ft0 -> but not where it does not: the model never learnt to count b"
echo "#a + 1, inputs with #b != #a + 1 (wrap0):     $wrap0 -> what it answers instead: its old count of a, plus one (a wrapper)"
echo "count a, inputs with #b != #a + 1 (pt0):      $pt0 -> the old answer itself is no longer what comes out"
echo

echo "== 3. What changed in the weights, named in the program's terms (first lines of tracc diff)"
echo "+ $TRACC diff $OUT/count_a.safetensors $OUT/count_b.safetensors | sed -n 1,11p"
"$TRACC" diff "$OUT/count_a.safetensors" "$OUT/count_b.safetensors" >"$OUT/diff.txt" 2>"$OUT/stderr" ||
    { cat "$OUT/stderr" >&2; die "tracc diff failed"; }
sed -n 1,11p "$OUT/diff.txt"
# What the report says, read from it rather than assumed: which s-op the most changed
# components belong to, and how many of the largest changed entries involve the token b.
top=$(awk '/^components, most changed first/ { f = 1; next } f && /^  [0-9]/ { print; n++ } n == 3 { exit }' "$OUT/diff.txt")
ncount_a=$(printf '%s\n' "$top" | grep -c 'count_a' || true)
nb=$(awk '/^largest changes in program coordinates/ { f = 1; next } f && /^$/ { exit } f' "$OUT/diff.txt" |
    grep -c -E 'tokens:b([],) ]|$)' || true)
nlarge=$(awk '/^largest changes in program coordinates/ { f = 1; next } f && /^$/ { exit } f && /^ +[0-9]+ /' "$OUT/diff.txt" | grep -c . || true)
if [ "$ncount_a" -eq 3 ] && [ "$nb" -eq 0 ]; then
    echo "-> the three most changed components all compute count_a (its selector-width head and the MLP that"
    echo "   decodes it), and none of the $nlarge largest changed entries involves the token b: fine-tuning moved"
    echo "   the old count of a by one instead of building a count of b."
else
    echo "-> $ncount_a of the three most changed components compute count_a, and $nb of the $nlarge largest changed"
    echo "   entries involve the token b (see the whole report)."
fi
echo "   The whole report: $OUT/diff.txt; docs/analysis.md goes further (attention, probes, pruning, reverse fine-tuning)."
rm -f "$OUT/stderr"
