#!/bin/sh
# make.sh — regenerate tests/report_fixtures/partial: a hand-made sweep directory in the layout
# `tracc sweep` writes (plan.json, runs/<id>/result.json | failed.json, logs), filled with REAL
# outputs of `tracc finetune --json --log`, `tracc prune --json` (pruning and --rollback),
# `tracc diff --json`, `tracc attn --json` and `tracc probe --json` on count_a (max_len 10,
# 60 fine-tuning steps). A partial sweep: 12 jobs (lr 0.1, 0.01 x spurious-rate 0, 1 x seeds
# 1-3), 8 done, 2 failed (one diverged: a real run at lr 1e4 without clipping; one whose
# prune stage failed: a real error), 2 pending. Long ranking lists of --rollback are cut to
# their first 40 entries to keep the fixture small (nothing else is edited). reFT and Scr.+FT
# stop at 40% count-a accuracy (--stop-when pt>=0.4): at max_len 10 and 150 steps some runs
# reach it and some do not, which is what the test needs.
#   sh tests/report_fixtures/make.sh [TRACC]      (from the repository root)
set -eu
TRACC=$(cd "$(dirname "${1:-build/tracc}")" && pwd)/$(basename "${1:-build/tracc}")
ROOT=$(pwd)
EX=$ROOT/rasp_examples
S=$EX/b_is_a_plus_1.rasp
D=$ROOT/tests/report_fixtures/partial
export OPENBLAS_NUM_THREADS=1
rm -rf "$D"
mkdir -p "$D/runs"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$TRACC" compile --max-len 10 "$EX/count_a.rasp" -o "$W/a.safetensors" >/dev/null
"$TRACC" compile --max-len 10 "$EX/count_b.rasp" -o "$W/b.safetensors" >/dev/null
EV1="pt1=$EX/count_a.rasp,spurious=$S,rate=1"
EV2="ft1=$EX/count_b.rasp,spurious=$S,rate=1"
EV3="pt0=$EX/count_a.rasp,spurious=$S,rate=0"
EV4="ft0=$EX/count_b.rasp,spurious=$S,rate=0"

# status of each job: done | diverged | prunefail | pending
status() {
    case $1 in
        0005) echo diverged ;; 0012) echo prunefail ;; 0008|0009) echo pending ;; *) echo done ;;
    esac
}
jobs_json=""
n=0
for lr in 0.1 0.01; do for ctr in 0 1; do for seed in 1 2 3; do
    n=$((n + 1)); id=$(printf %04d $n)
    R=$D/runs/$id
    mkdir -p "$R"
    cmd="tracc finetune MODEL --task count_b.rasp --at 1 --spurious b_is_a_plus_1.rasp --spurious-rate $ctr --lr $lr --seed $seed --steps 60 ..."
    jobs_json="$jobs_json${jobs_json:+,}
  {\"id\": \"$id\", \"params\": {\"lr\": $lr, \"spurious-rate\": $ctr, \"seed\": $seed}, \"dir\": \"runs/$id\", \"cmd\": \"$cmd\"}"
    st=$(status $id)
    [ "$st" = pending ] && continue
    (
    cd "$R"
    if [ "$st" = diverged ]; then
        if "$TRACC" finetune "$W/a.safetensors" --task "$EX/count_b.rasp" --at 1 --spurious "$S" --spurious-rate "$ctr" \
            --lr 1e4 --clip 0 --steps 60 --seed "$seed" --threads 1 --quiet --json -o "$W/x.safetensors" >/dev/null 2>stderr.txt; then
            echo "make.sh: expected job $id to diverge" >&2; exit 1
        fi
        sed -i "s|$ROOT/||g; s|$W/||g" stderr.txt
        printf '{"id": "%s", "exit": 1, "stage": "finetune", "stderr": "stderr.txt"}\n' "$id" >failed.json
        exit 0
    fi
    "$TRACC" finetune "$W/a.safetensors" --task "$EX/count_b.rasp" --at 1 --spurious "$S" --spurious-rate "$ctr" \
        --lr "$lr" --steps 60 --warmup 10 --seed "$seed" --eval-every 20 --eval-size 200 --threads 1 --quiet --json \
        --eval "$EV1" --eval "$EV2" --eval "$EV3" --eval "$EV4" --log log.jsonl -o "$W/ft$id.safetensors" >ft.json
    if [ "$st" = prunefail ]; then
        if "$TRACC" prune "$W/ft$id.safetensors" --task "$EX/no_such_task.rasp" --json >/dev/null 2>stderr.txt; then
            echo "make.sh: expected job $id's prune to fail" >&2; exit 1
        fi
        sed -i "s|$ROOT/||g; s|$W/||g" stderr.txt
        rm -f ft.json
        printf '{"id": "%s", "exit": 1, "stage": "prune", "stderr": "stderr.txt"}\n' "$id" >failed.json
        exit 0
    fi
    "$TRACC" prune "$W/ft$id.safetensors" --task "$EX/count_a.rasp" --at 1 --top 1,2,4,8 --list 8 --eval "$EV3" \
        --eval-size 200 --grad-samples 100 --json >prune.json
    "$TRACC" prune "$W/ft$id.safetensors" --task "$EX/count_a.rasp" --at 1 --rollback "$W/a.safetensors" --top 1,2,4,8 \
        --eval-size 200 --grad-samples 100 --json >rollback.json
    "$TRACC" diff "$W/a.safetensors" "$W/ft$id.safetensors" --top 5 --json >diff.json
    "$TRACC" attn --json "$W/a.safetensors" "$W/ft$id.safetensors" a b a c b a >attn.json
    "$TRACC" probe "$W/ft$id.safetensors" --sop count_a --at 1 --steps 50 --train 200 --test 100 --json >probe.json
    "$TRACC" finetune "$W/ft$id.safetensors" --task "$EX/count_a.rasp" --at 1 --lr 1e-2 --steps 150 --seed "$seed" \
        --eval-every 10 --eval-size 200 --eval "pt=$EX/count_a.rasp" --stop-when "pt>=0.4" --threads 1 --quiet --json \
        --log reft.jsonl -o "$W/reft$id.safetensors" >reft.json
    "$TRACC" finetune "$W/b.safetensors" --task "$EX/count_a.rasp" --at 1 --lr 1e-1 --steps 150 --seed "$seed" \
        --eval-every 10 --eval-size 200 --eval "pt=$EX/count_a.rasp" --stop-when "pt>=0.4" --threads 1 --quiet --json \
        --log scratch.jsonl -o "$W/scr$id.safetensors" >scratch.json
    python3 - "$id" "$lr" "$ctr" "$seed" "$ROOT/" "$W/" <<'PY'
import json, sys
idn, lr, ctr, seed, root, w = sys.argv[1:]
def load(p):
    t = open(p).read().replace(w, "").replace(root, "")
    return json.loads(t)
rb = load("rollback.json")
rb["ranking"] = rb["ranking"][:40]
res = {"id": idn, "params": {"lr": float(lr), "spurious-rate": int(ctr), "seed": int(seed)},
       "config_sha256": "fixture", "finetune": load("ft.json"), "log": "log.jsonl",
       "after": {"prune": load("prune.json"), "rollback": rb, "diff": load("diff.json"),
                 "attn": load("attn.json"), "probe": load("probe.json"),
                 "reft": load("reft.json"), "reft_log": "reft.jsonl",
                 "scratch": load("scratch.json"), "scratch_log": "scratch.jsonl"}}
json.dump(res, open("result.json", "w"), separators=(",", ":"))
for f in ("log.jsonl", "reft.jsonl", "scratch.jsonl"):
    t = open(f).read().replace(w, "").replace(root, "")
    open(f, "w").write(t)
PY
    rm -f ft.json prune.json rollback.json diff.json attn.json probe.json reft.json scratch.json
    )
done; done; done
cat >"$D/plan.json" <<J
{"tracc_sweep": 1, "name": "fixture-counter", "paper": "jain2023-counter",
 "grid": {"lr": [0.1, 0.01], "spurious-rate": [0, 1], "seed": [1, 2, 3]},
 "jobs": [$jobs_json
 ]}
J
echo "wrote $D"
