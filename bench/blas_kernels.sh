#!/usr/bin/env bash
# blas_kernels.sh — how much the OpenBLAS kernel decides a fine-tuning's outcome
# (docs/reproduction.md, "To the bit"). OpenBLAS picks its sgemm kernels by CPU; kernels round
# differently, so one seed trained on two of them gives other weights. This fine-tunes the
# Counter (count a, max_len 10, fused) to count b at RASP index 1 with AdamW 1e-3 — a setting
# whose outcome is knife-edge on exact compiled weights — for seeds 1..N on the Haswell kernels
# (any x86-64 with AVX2 and FMA) and on a second kernel (Cooperlake when the CPU has AVX-512 BF16,
# else SkylakeX with AVX-512, else Sandybridge), and prints per seed the argmax accuracy of count
# b on both and whether the weights are the same bytes, then how many seeds learn (>= 90%) on
# each kernel and in how many the outcome differs.
#
#   bash bench/blas_kernels.sh [-n SEEDS] [TRACC]       (default: 20 seeds, build/tracc)
set -u
N=20
while getopts n: o; do
    case $o in n) N=$OPTARG ;; *) echo "usage: blas_kernels.sh [-n SEEDS] [TRACC]" >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
T=${1:-build/tracc}
[ -x "$T" ] || { echo "blas_kernels.sh: no tracc binary at $T (run make)" >&2; exit 1; }
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo || { echo "blas_kernels.sh: no AVX2/FMA: the Haswell kernels cannot run here" >&2; exit 0; }
if grep -qw avx512_bf16 /proc/cpuinfo; then OTHER=Cooperlake
elif grep -qw avx512f /proc/cpuinfo; then OTHER=SkylakeX
else OTHER=Sandybridge; fi
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
"$T" compile rasp_examples/count_a.rasp -o "$TMP/m.safetensors" >/dev/null || exit 1
ARGS="--task rasp_examples/count_b.rasp --at 1 --len 10 --optimizer adamw --lr 1e-3 --warmup 50 --batch 32 --steps 1000
      --eval ft=rasp_examples/count_b.rasp --threads 1 --quiet --json"
echo "seed  Haswell  $OTHER  same bytes"
lh=0 lo=0 diff=0 same=0
for s in $(seq 1 "$N"); do
    for k in Haswell $OTHER; do
        # shellcheck disable=SC2086
        OPENBLAS_CORETYPE=$k "$T" finetune "$TMP/m.safetensors" $ARGS --seed "$s" -o "$TMP/$k.safetensors" >"$TMP/$k.json" || exit 1
        got=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['blas'])" "$TMP/$k.json")
        [ "$got" = "$k" ] || { echo "blas_kernels.sh: asked for $k, ran on $got" >&2; exit 1; }
    done
    read -r ah ao < <(python3 -c "
import json, sys
print(*(json.load(open(p))['eval']['ft']['acc'] * 100 for p in sys.argv[1:]))" "$TMP/Haswell.json" "$TMP/$OTHER.json")
    cmp -s "$TMP/Haswell.safetensors" "$TMP/$OTHER.safetensors" && { sb=yes; same=$((same + 1)); } || sb=no
    read -r h o < <(python3 -c "import sys; print(int(float(sys.argv[1]) >= 90), int(float(sys.argv[2]) >= 90))" "$ah" "$ao")
    lh=$((lh + h)) lo=$((lo + o))
    [ "$h" = "$o" ] || diff=$((diff + 1))
    printf '%4d  %6.1f  %6.1f  %s\n' "$s" "$ah" "$ao" "$sb"
done
echo "learned (ft >= 90%): Haswell $lh/$N, $OTHER $lo/$N; outcome differs in $diff/$N seeds; same bytes in $same/$N"
