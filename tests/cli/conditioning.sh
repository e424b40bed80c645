#!/bin/sh
# tracc compile --conditioning tracr|balanced: the option is recorded, both settings give the
# same answers, and a bad value is a usage error that writes nothing.
. tests/lib.sh
T="$TMPD/cond"
mkdir -p "$T"

"$TRACC" compile --conditioning balanced --max-len 12 rasp_examples/count_a.rasp -o "$T/b.safetensors" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "verified" "$T/out"; then ok; else bad "compile --conditioning balanced"; cat "$T/out" "$T/err"; fi
"$TRACC" explain "$T/b.safetensors" >"$T/out" 2>&1
if grep -q '"conditioning":"balanced"' "$T/out"; then ok; else bad "explain shows conditioning balanced"; cat "$T/out"; fi
"$TRACC" compile --max-len 12 rasp_examples/count_a.rasp -o "$T/t.safetensors" >/dev/null 2>&1
"$TRACC" explain "$T/t.safetensors" >"$T/out" 2>&1
if grep -q '"conditioning":"tracr"' "$T/out"; then ok; else bad "the default is tracr"; cat "$T/out"; fi
# balanced counts with the uniform selector width where the selector's queries fall into at most
# four classes (count_a: two), and keeps the other construction where they do not (sort)
"$TRACC" explain "$T/b.safetensors" >"$T/out" 2>&1
if grep -q "uniform attention: writes the BOS share and each key class's fraction" "$T/out" &&
    grep -q "count_a@sw.1" "$T/out"; then ok; else bad "balanced count_a uses the uniform selector width"; cat "$T/out"; fi
"$TRACC" compile --conditioning balanced --max-len 8 rasp_examples/sort.rasp -o "$T/sb.safetensors" >/dev/null 2>&1
"$TRACC" explain "$T/sb.safetensors" >"$T/out" 2>&1
if ! grep -q "uniform attention" "$T/out" && grep -q "margin: c=" "$T/out"; then ok; else bad "balanced sort keeps the sharp selector width"; cat "$T/out"; fi
# the paper's length: verified on 10^4 sampled inputs of every length before it is written
"$TRACC" compile --conditioning balanced --max-len 46 rasp_examples/count_a.rasp -o "$T/b46.safetensors" >"$T/out" 2>&1 &&
    grep -q "verified on a sample: 10000 inputs" "$T/out" && ok || { bad "balanced count_a at max_len 46"; cat "$T/out"; }
want=$("$TRACC" eval --max-len 12 rasp_examples/count_a.rasp a b a c a)
expect_out "balanced runs like eval" 0 "$want" -- "$TRACC" run "$T/b.safetensors" a b a c a
"$TRACC" compile --no-fuse --conditioning balanced rasp_examples/sort.rasp -o "$T/s.safetensors" >/dev/null 2>&1
want=$("$TRACC" eval rasp_examples/sort.rasp 3 1 2)
expect_out "balanced --no-fuse sort runs like eval" 0 "$want" -- "$TRACC" run "$T/s.safetensors" 3 1 2

# The property balanced is for, at fixed seeds: SGD with momentum 0.9 and no clipping on the
# model's own task does not diverge and keeps it exact (bench/finetune_grid.sh measures the
# paper's Counter at max_len 46; docs/training.md). Tracr-style gains collapse seed 2 here.
for seed in 1 2 3; do
    "$TRACC" finetune "$T/b.safetensors" --task rasp_examples/count_a.rasp --at 1 --optimizer sgd \
        --momentum 0.9 --clip 0 --lr 1e-3 --steps 300 --seed "$seed" --threads 1 --eval pt=rasp_examples/count_a.rasp \
        --eval-every 0 --quiet --json -o "$T/ft.safetensors" >"$T/out" 2>"$T/err"
    if [ $? -eq 0 ] && grep -q '"pt":{"acc":1\(\.0\)*[,}]\|"pt":{"acc":0\.99' "$T/out"; then ok
    else bad "balanced count_a, SGD lr 1e-3 without clipping, seed $seed: diverged or lost accuracy"; cat "$T/out" "$T/err"; fi
done

expect_err "bad --conditioning value" 2 "--conditioning must be tracr or balanced, got 'sharp'" -- \
    "$TRACC" compile --conditioning sharp rasp_examples/count_a.rasp -o "$T/never.safetensors"
if [ ! -e "$T/never.safetensors" ]; then ok; else bad "a usage error wrote a file"; fi
expect_err "--conditioning needs a value" 2 "needs a value" -- \
    "$TRACC" compile rasp_examples/count_a.rasp -o "$T/never.safetensors" --conditioning
"$TRACC" compile --help >"$T/out" 2>&1
if grep -q -- "--conditioning" "$T/out"; then ok; else bad "--help lists --conditioning"; fi
finish
