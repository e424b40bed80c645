#!/bin/sh
# tests/cli/exitcodes.sh — one exit-status rule for every subcommand (cli/cli.h, README
# "Exit status"): 2 when the command line is wrong in itself (unknown option, missing or
# extra operand, malformed value or one outside its fixed range, options that exclude each
# other, attn's missing input tokens); 1 when an input (file, program, model, stdin) is wrong
# or does not fit the options (a value outside the model's range, a model where a program is
# expected); 0 otherwise, options anywhere on the line. Every message begins `tracc CMD:`.
# One table: expected status | message fragment ('' for none) | command line (after tracc).
# Standard input is empty (/dev/null) for every line.
. tests/lib.sh

T=$TMPD
P=rasp_examples/count_a.rasp
M=$T/ca.safetensors
"$TRACC" compile "$P" -o "$M" >/dev/null 2>&1 || bad "compile $P"
printf '{"type":"train","step":1,"loss":1.0}\n' >"$T/log.jsonl"
printf 'hello\n' >"$T/notes.txt"
printf '\000\001binary' >"$T/noise.bin"
O=$T/out.safetensors

while IFS='|' read -r want frag line; do
    case "$want" in ''|'#'*) continue ;; esac
    eval "set -- $line"
    "$TRACC" "$@" </dev/null >"$T/o" 2>"$T/e"; rc=$?
    if [ "$rc" -ne "$want" ]; then bad "tracc $line: status $rc, wanted $want"; cat "$T/e"; continue; fi
    if [ -n "$frag" ] && ! grep -qF -- "$frag" "$T/e"; then bad "tracc $line: stderr lacks '$frag'"; cat "$T/e"; continue; fi
    # a failure says which command failed, at the start of a line (compiler diagnostics
    # "FILE:LINE:COL: error: ..." name the file instead; progress lines may come first)
    if [ "$rc" -ne 0 ] && ! grep -qE "^(tracc $1: |tracc: |[^ ]+:[0-9]+:[0-9]+: error)" "$T/e"; then
        bad "tracc $line: no line of stderr begins 'tracc $1:'"; cat "$T/e"; continue
    fi
    ok
done <<TABLE
# ---- check
0||check $P --list
2|tracc check: unknown option '--bogus'|check --bogus $P
2|tracc check: no input file|check
2|tracc check: expected one input file, got also|check $P $P
2|tracc check: --max-len must be an integer from 1 to 4096, got '0'|check $P --max-len 0
2|tracc check: option '--vocab' needs a value|check $P --vocab
1|tracc check: $T/nope.rasp: cannot read: No such file or directory|check $T/nope.rasp
1|tracc check: $M is a model file, not a RASP program|check $M
1|tracc check: $T/log.jsonl is a JSON file, not a RASP program|check $T/log.jsonl
1|tracc check: $T/noise.bin is a binary file, not a RASP program|check $T/noise.bin
1|error|check $T/notes.txt
# ---- eval
0||eval $P a b --json
0||eval $P --input-format json
2|tracc eval: no FILE given|eval
2|tracc eval: unknown option '-1' (tokens that begin with '-' go after '--')|eval $P a -1
2|tracc eval: option '--json=1' takes no value|eval --json=1 $P a
2|tracc eval: --input-format wants text or json|eval --input-format yaml $P a
2|tracc eval: --max-len wants an integer in 1..4096|eval $P --max-len 5000 a
1|tracc eval: $M is a model file, not a RASP program (run it: tracc run $M TOKENS...|eval $M a
1|tracc eval: command-line input: 11 tokens, longer than max_len 10|eval $P a a a a a a a a a a a
1|tracc eval: command-line input: token 'z' is not in the vocab|eval $P z
# ---- run
0||run $M a b --json --hard
2|tracc run: no MODEL given|run
2|tracc run: --blocks wants a number of blocks|run $M --blocks x a
2|tracc run: --input-format wants text or json|run --input-format csv $M a
2|tracc run: unknown option '--trace-all'|run $M a --trace-all
1|tracc run: --blocks 3: the model has 2 blocks|run $M a --blocks 3
1|tracc run: $P is a RASP program, not a model file (compile it first: tracc compile $P -o rasp_examples/count_a.safetensors)|run $P a
1|tracc run: $T/notes.txt is a text file, not a model file|run $T/notes.txt a
1|tracc run: $T is a directory, not a model file|run $T a
1|tracc run: token 'z' is not in the vocab|run $M z
# ---- compile
2|tracc compile: no output file: give -o OUT.safetensors|compile $P
2|tracc compile: no input file|compile -o $O
2|tracc compile: expected one input file, got also 'x'|compile $P x -o $O
2|tracc compile: --verify must be auto, exhaustive, sample or none|compile $P -o $O --verify maybe
1|tracc compile: $M is a model file, not a RASP program|compile $M -o $O
1|tracc compile: $T/nope.rasp: cannot read|compile $T/nope.rasp -o $O
# ---- verify
0||verify $P --samples 20 --json
0||verify $M --samples 20
2|tracc verify: no input file|verify
2|tracc verify: --exhaustive and --samples exclude each other|verify $P --exhaustive --samples 3
2|tracc verify: --inputs and --samples exclude each other|verify $P --inputs - --samples 3
2|tracc verify: --samples must be a positive integer|verify $P --samples 0
1|tracc verify: --vocab, --causal and --no-fuse apply to a RASP program; $M is a model file|verify $M --causal
1|tracc verify: $T/log.jsonl is a JSON file, not a RASP program|verify $T/log.jsonl
1|tracc verify: --inputs -: no inputs|verify $P --inputs -
# ---- explain
0||explain $M --json
2|tracc explain: no MODEL given|explain
2|tracc explain: expected one MODEL, got also|explain $M $M
2|tracc explain: unknown option '-x'|explain -x $M
1|tracc explain: $P is a RASP program, not a model file (compile it first|explain $P
# ---- finetune
2|tracc finetune: no model|finetune --task $P -o $O
2|tracc finetune: expected one model file, got also|finetune $M $M --task $P -o $O
2|tracc finetune: --steps must be an integer|finetune $M --task $P -o $O --steps x
2|tracc finetune: unknown option '--bogus'|finetune $M --bogus
2|tracc finetune: --spurious-others must be exclude or uniform, got 'all'|finetune $M --task $P -o $O --spurious rasp_examples/b_is_a_plus_1.rasp --spurious-rate 0.5 --spurious-others all
2|tracc finetune: --spurious-others uniform needs --spurious PRED.rasp|finetune $M --task $P -o $O --spurious-others uniform
1|tracc finetune: --at 50: expected RASP indices from 0 to 9|finetune $M --task $P -o $O --at 50
1|tracc finetune: --task $M is a model file, not a RASP program|finetune $M --task $M -o $O
1|tracc finetune: $P is a RASP program, not a model file (compile it first|finetune $P --task $P -o $O
1|tracc finetune: --spurious $M is a model file, not a RASP program|finetune $M --task $P --spurious $M --spurious-rate 0.5 -o $O
1|tracc finetune: --mix $M is a model file, not a RASP program|finetune $M --task $P --mix $M:0.5 -o $O
1|tracc finetune: --eval $M is a model file, not a RASP program|finetune $M --task $P --eval x=$M -o $O
1|tracc finetune: --data $M is a model file, not a JSON lines file|finetune $M --data $M -o $O
1|tracc finetune: $T/nope.safetensors: cannot|finetune $T/nope.safetensors --task $P -o $O
1|tracc finetune: --task $T/nope.rasp: cannot read|finetune $M --task $T/nope.rasp -o $O
# ---- diff
0||diff $M $M --top 3
2|tracc diff: expected two model files, BEFORE and AFTER|diff $M
2|tracc diff: --len and --at need --inputs N|diff $M $M --at 1
2|tracc diff: --at expects RASP indices within 0..4095|diff $M $M --inputs 5 --at x
1|tracc diff: --at 10: indices must be in 0..9|diff $M $M --inputs 5 --at 10
1|tracc diff: $P is a RASP program, not a model file|diff $P $M
1|tracc diff: $T/nope.safetensors: cannot read|diff $M $T/nope.safetensors
# ---- prune
2|tracc prune: --task FILE.rasp is required|prune $M
2|tracc prune: expected one model file|prune --task $P
2|tracc prune: --target expects an accuracy from 0 to 1|prune $M --task $P --target 2
2|tracc prune: --len expects a length N or MIN-MAX within 1..4096|prune $M --task $P --len 0
1|tracc prune: --at 99: indices must be in 0..9|prune $M --task $P --at 99
1|tracc prune: --task $M is a model file, not a RASP program|prune $M --task $M
1|tracc prune: --rollback $P is a RASP program, not a model file|prune $M --task $P --rollback $P
1|tracc prune: --eval $M is a model file, not a RASP program|prune $M --task $P --eval x=$M
1|tracc prune: $P is a RASP program, not a model file|prune $P --task $P
# ---- probe
2|tracc probe: expected one model file|probe
2|tracc probe: --at expects RASP indices within 0..4095|probe $M --at x
2|tracc probe: --steps expects a count|probe $M --steps x
2|tracc probe: --neurons reads MLP units, not s-ops|probe $M --neurons --sop x
1|tracc probe: --at 99: indices must be in 0..9|probe $M --neurons --at 99
1|tracc probe: --at 99: indices must be in 0..9|probe $M --at 99
1|tracc probe: --program $M is a model file, not a RASP program|probe $M --program $M
1|tracc probe: $P is a RASP program, not a model file|probe $P
# ---- attn
0||attn $M a b --block 0 --json
0||attn $M $M --inputs 3 --json
2|tracc attn: expected a model file|attn
2|tracc attn: no input tokens: give them after the model|attn $M
2|tracc attn: no input tokens: give them after the models|attn $M $M
2|tracc attn: --inputs N compares two models|attn $M --inputs 5
2|tracc attn: --program and --no-program exclude each other|attn $M a --program $P --no-program
2|tracc attn: --block expects a block index|attn $M a --block x
1|tracc attn: --block 5: the model has 2 blocks|attn $M a --block 5
1|tracc attn: $P is a RASP program, not a model file (compile it first|attn $P a
1|tracc attn: --program $M is a model file, not a RASP program|attn $M a --program $M
1|tracc attn: token 'z' is not in the vocab|attn $M z
# ---- plot
2|tracc plot: expected at least one log file|plot -o $T/p.svg
2|tracc plot: -o OUT.svg is required|plot $T/log.jsonl
2|tracc plot: unknown option '--bogus'|plot --bogus $T/log.jsonl -o $T/p.svg
1|tracc plot: $M is a model file, not a JSON lines file|plot $M -o $T/p.svg
1|tracc plot: $P is a RASP program, not a JSON lines file|plot $P -o $T/p.svg
1|tracc plot: $T/nope.jsonl: cannot read|plot $T/nope.jsonl -o $T/p.svg
# ---- tracc itself
2|tracc: unknown command 'bogus'|bogus
TABLE

# options anywhere: the same output whatever their place
a=$("$TRACC" eval --json "$P" a b 2>&1); b=$("$TRACC" eval "$P" a b --json 2>&1)
if [ "$a" = "$b" ]; then ok; else bad "eval: --json after the tokens differs"; fi
a=$("$TRACC" attn --block 1 "$M" a b 2>&1); b=$("$TRACC" attn "$M" a b --block 1 2>&1)
if [ "$a" = "$b" ]; then ok; else bad "attn: --block after the tokens differs"; fi
# a model given as the task: one line on stderr, exit 1, nothing on stdout (no SIGPIPE in a pipe)
"$TRACC" finetune "$M" --task "$M" -o "$O" >"$T/o" 2>"$T/e"; rc=$?
if [ "$rc" -eq 1 ] && [ ! -s "$T/o" ] && [ "$(grep -c "^tracc finetune: " "$T/e")" -eq 1 ]; then ok; else bad "finetune --task MODEL: status $rc, $(wc -l <"$T/e") lines"; cat "$T/o" "$T/e"; fi
if [ -e "$O" ]; then bad "a refused command wrote $O"; else ok; fi

# the new flags are in each command's --help
for pair in "eval --input-format" "run --input-format" "verify --input-format" "verify --inputs" \
    "attn --inputs" "attn --len" "attn --at" "attn --seed"; do
    set -- $pair
    if "$TRACC" $1 --help | grep -qE -- "^  $2 "; then ok; else bad "tracc $1 --help lacks $2"; fi
done

finish
