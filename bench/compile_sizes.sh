#!/bin/sh
# compile_sizes.sh — our compiled models next to Tracr's, for every `main` and `notebook` row
# of tests/data/tracr_sizes.tsv (Tracr's sizes; see tests/data/README.md) and the paper's two programs, at the same vocab
# and max_len. Writes a Markdown table to stdout (docs/benchmarks.md has a copy).
#
#   sh bench/compile_sizes.sh [TRACC] [TSV]     (defaults: build/tracc, tests/data/tracr_sizes.tsv)
#
# Columns, ours / Tracr's:
#   layers, residual width (d_model), parameters and nonzero parameters — ours without the
#   unembed, which Tracr's models do not have (our W_U adds d_model x outputs + outputs);
#   compile ms — ours: the whole `tracc compile --verify none` process, median of 5 runs
#   (front end, lowering, weights, writing the file); Tracr's: its compile stages 0-4 in
#   CPython, without Haiku assembly (tracr_sizes.tsv);
#   verify ms — ours: the default check against the interpreter (every input when there are
#   at most 10^5, else 10^4 samples), from `tracc compile --json`.
set -u
TRACC=${1:-build/tracc}
TSV=${2:-tests/data/tracr_sizes.tsv}
export OPENBLAS_NUM_THREADS=1
[ -x "$TRACC" ] || { echo "compile_sizes.sh: no tracc binary at $TRACC (run make)" >&2; exit 1; }
[ -r "$TSV" ] || { echo "compile_sizes.sh: cannot read $TSV" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

program_file() {
    case "$1" in
        length|nb_length) echo rasp_examples/length.rasp ;;
        reverse) echo rasp_examples/reverse.rasp ;;
        hist|nb_hist) echo rasp_examples/hist.rasp ;;
        sort_unique|nb_sort_unique) echo rasp_examples/sort_unique.rasp ;;
        sort|nb_sort) echo rasp_examples/sort.rasp ;;
        frac_prevs|nb_frac_prevs) echo rasp_examples/frac_prevs.rasp ;;
        pair_balance|nb_pair_balance) echo rasp_examples/pair_balance.rasp ;;
        shuffle_dyck) echo rasp_examples/shuffle_dyck.rasp ;;
        nb_dyck-2) echo rasp_examples/shuffle_dyck2.rasp ;;
        nb_dyck-3) echo bench/programs/shuffle_dyck3.rasp ;;
        nb_sort_freq) echo rasp_examples/sort_freq.rasp ;;
        jain_countA) echo rasp_examples/count_a.rasp ;;
        jain_maxidentifier) echo rasp_examples/max_identifier.rasp ;;
        *) echo "" ;;
    esac
}

# a field of a flat JSON object (numbers and strings)
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$1"; }

now_ns() { date +%s%N; }

echo "| program | vocab | N | layers | d_model | params | nonzero | compile ms | verify ms | exact |"
echo "|---|---|---|---|---|---|---|---|---|---|"
tail -n +2 "$TSV" | while IFS='	' read -r config program definition vocab vocab_size N exactness layers heads key mlp width craft_width hpl mpl total layer_w embed nonzero t1 t2 t3 t4 t5 tcompile tasm err iom ioc; do
    case "$config" in main|notebook|jain2023_alg1|jain2023_alg2) ;; *) continue ;; esac
    file=$(program_file "$program")
    [ -n "$file" ] || continue
    out="$TMP/m.safetensors"
    if ! "$TRACC" compile --json --vocab "$vocab" --max-len "$N" "$file" -o "$out" >"$TMP/j" 2>"$TMP/e"; then
        echo "| $program | $vocab | $N | failed: $(head -n 1 "$TMP/e") |||||||"
        continue
    fi
    L=$(field "$TMP/j" n_layers); D=$(field "$TMP/j" d_model)
    P=$(field "$TMP/j" params); NZ=$(field "$TMP/j" nonzero)
    UP=$(field "$TMP/j" unembed_params); UNZ=$(field "$TMP/j" unembed_nonzero)
    VMS=$(field "$TMP/j" verify_ms); EX=$(field "$TMP/j" exact_by_bounds)
    MODE=$(sed -n 's/.*"mode":"\([a-z]*\)".*/\1/p' "$TMP/j")
    # whole-process compile time without verification, median of 5
    for i in 1 2 3 4 5; do
        a=$(now_ns)
        "$TRACC" compile --verify none --vocab "$vocab" --max-len "$N" "$file" -o "$out" >/dev/null 2>&1
        b=$(now_ns)
        echo $(( (b - a) / 1000 ))
    done | sort -n | sed -n 3p >"$TMP/t"
    US=$(cat "$TMP/t")
    awk -v prog="$program" -v vocab="$vocab" -v N="$N" -v L="$L" -v TL="$layers" -v D="$D" -v TD="$width" \
        -v P="$P" -v UP="$UP" -v TP="$total" -v NZ="$NZ" -v UNZ="$UNZ" -v TNZ="$nonzero" -v US="$US" \
        -v TC="$tcompile" -v VMS="$VMS" -v MODE="$MODE" -v EX="$EX" 'BEGIN {
        ms = US / 1000.0
        printf "| %s | %s | %d | %d / %d | %d / %d | %d / %d | %d / %d | %.1f / %.1f | %.0f (%s) | %s |\n",
            prog, vocab, N, L, TL, D, TD, P - UP, TP, NZ - UNZ, TNZ, ms, TC, VMS, MODE,
            EX == "true" ? "proved" : "checked"
    }'
done
