#!/bin/sh
# Verification in parallel, with an early stop and a time budget: the report does not depend
# on --threads, a wrong model stops at its first disagreement (the same one whatever the
# threads), a time-budgeted sample says so and records what it checked in the model's
# metadata, and --samples N still checks exactly N inputs (the same inputs the budget took).
. tests/lib.sh
T="$TMPD/v"
mkdir -p "$T"
export OPENBLAS_NUM_THREADS=1

# the same report with 1 and 4 threads: a sample spread over many batches, and every input
for args in "rasp_examples/sort.rasp --max-len 8 --samples 3000" "rasp_examples/shuffle_dyck.rasp --max-len 6 --exhaustive"; do
    # shellcheck disable=SC2086
    a=$("$TRACC" verify --json --threads 1 $args)
    # shellcheck disable=SC2086
    b=$("$TRACC" verify --json --threads 4 $args)
    if [ -n "$a" ] && [ "$a" = "$b" ]; then ok; else bad "verify $args: threads 1 and 4 differ"; echo "$a"; echo "$b"; fi
done

# a wrong model (sharpness 3.5 at max_len 12 fails first at input 1201, in the fifth batch):
# the check stops there, with the same counterexample and counts whatever the threads
for t in 1 4; do
    "$TRACC" compile --sharpness 3.5 --threads $t rasp_examples/sort.rasp --max-len 12 \
        -o "$T/wrong.safetensors" >"$T/out$t" 2>"$T/err$t"
    echo "rc $?" >>"$T/err$t"
done
if grep -q "rc 1" "$T/err1" && cmp -s "$T/err1" "$T/err4" &&
   grep -q "at input 1201 of the check (it stops at the first disagreement)" "$T/err1" &&
   grep -q "  input:    6 5 2 3 9 7 3 9" "$T/err1" && [ ! -e "$T/wrong.safetensors" ]; then ok
else bad "early stop on a wrong model"; cat "$T/err1" "$T/err4"; fi
"$TRACC" verify --json --threads 3 --samples 5000 rasp_examples/sort.rasp --max-len 12 >/dev/null 2>&1   # a right model
[ $? -eq 0 ] && ok || bad "sort at max_len 12 does not verify"

# a time budget too small for 10000 inputs: the line says so; the model records the sample;
# --samples N --seed S checks the same inputs again
"$TRACC" compile --verify-seconds 0.001 --seed 7 rasp_examples/count_a.rasp --max-len 128 \
    -o "$T/budget.safetensors" >"$T/out" 2>"$T/err"
n=$(sed -n 's/.*verified on a sample: \([0-9]*\) inputs in [0-9]* s (time budget 0.001 s; seed 7), .*/\1/p' "$T/out")
if [ -n "$n" ] && [ "$n" -ge 32 ] && [ "$n" -lt 10000 ]; then ok; else bad "time-budget line"; cat "$T/out" "$T/err"; fi
python3 - "$T/budget.safetensors" "$n" >"$T/py" 2>&1 <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    (hl,) = struct.unpack("<Q", f.read(8))
    meta = json.loads(f.read(hl))["__metadata__"]
v = json.loads(meta["compiler"])["verification"]
want = {"mode": "sample", "max_len": 128, "inputs": int(sys.argv[2]), "seed": 7, "time_budget_s": 0.001,
        "budget_cut": True}
assert v == want, v
EOF
[ $? -eq 0 ] && ok || { bad "verification metadata"; cat "$T/py"; }
"$TRACC" verify --json --samples "${n:-1}" --seed 7 rasp_examples/count_a.rasp --max-len 128 >"$T/j1"
"$TRACC" verify --json --verify-seconds 0.001 --seed 7 rasp_examples/count_a.rasp --max-len 128 >"$T/j2"
# the same inputs: the counts agree (the budget's own run stops at a round too)
python3 - "$T/j1" "$T/j2" "${n:-1}" >"$T/py" 2>&1 <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
n = int(sys.argv[3])
assert a["inputs"] == n and a["budget_cut"] is False and a["time_budget_s"] is None, a
assert b["budget_cut"] is True and b["time_budget_s"] == 0.001 and b["inputs"] < 10000, b
if b["inputs"] == n:
    assert a["positions"] == b["positions"] and a["agree"] == b["agree"], (a, b)
EOF
[ $? -eq 0 ] && ok || { bad "--samples N reproduces a budgeted sample"; cat "$T/py" "$T/j1" "$T/j2"; }
"$TRACC" verify "$T/budget.safetensors" --samples "${n:-1}" --seed 7 >"$T/out" 2>&1
grep -q ": ${n:-1} inputs, .* 0 disagree (0 inputs); sample (seed 7)" "$T/out" && ok || { bad "re-check a model's sample"; cat "$T/out"; }

# --samples N is exact (not a multiple of anything), and not cut by the budget
"$TRACC" verify --samples 1234 rasp_examples/count_a.rasp --max-len 64 >"$T/out" 2>&1
grep -q "sample, lengths 1..64: 1234 inputs, " "$T/out" && ok || { bad "--samples 1234"; cat "$T/out"; }
"$TRACC" compile --samples 777 rasp_examples/count_a.rasp --max-len 64 -o "$T/s.safetensors" >"$T/out" 2>&1
grep -q "verified on a sample: 777 inputs (seed 1), " "$T/out" && ok || { bad "compile --samples 777"; cat "$T/out"; }
# the default: 10000 inputs when they fit in the budget, and every input when they are few
"$TRACC" verify rasp_examples/count_a.rasp >"$T/out" 2>&1
grep -q "10000 inputs, .*; sample (seed 1)$" "$T/out" && ok || { bad "default sample"; cat "$T/out"; }

# usage errors
expect_err "--samples with --verify-seconds" 2 "--samples N checks exactly N inputs" -- \
    "$TRACC" verify --samples 10 --verify-seconds 5 rasp_examples/count_a.rasp
expect_err "compile --samples with --verify-seconds" 2 "--samples N checks exactly N inputs" -- \
    "$TRACC" compile --verify-seconds 5 --samples 10 rasp_examples/count_a.rasp -o "$T/u.safetensors"
expect_err "--verify-seconds -1" 2 "--verify-seconds must be a number of seconds" -- \
    "$TRACC" verify --verify-seconds -1 rasp_examples/count_a.rasp
expect_err "--verify-seconds x" 2 "--verify-seconds must be a number of seconds" -- \
    "$TRACC" compile --verify-seconds x rasp_examples/count_a.rasp -o "$T/u.safetensors"
expect_err "--threads 0" 2 "--threads must be an integer from 1 to 64" -- \
    "$TRACC" verify --threads 0 rasp_examples/count_a.rasp
expect_err "compile --threads 65" 2 "--threads must be an integer from 1 to 64" -- \
    "$TRACC" compile --threads 65 rasp_examples/count_a.rasp -o "$T/u.safetensors"
[ ! -e "$T/u.safetensors" ] && ok || bad "a usage error wrote a model"

finish
