#!/bin/sh
# report_sweep.sh — how long `tracc report` takes on a sweep of 1,000 finished jobs (the issue's
# bar: under 2 s). Builds a synthetic sweep directory once (python3): 4 lr x 7 spurious-rate x
# 12 variants x 3 seeds = 1,008 jobs in 336 cells, each job a result.json with the four Table 3
# evaluations and a fine-tuning log of the paper's length (10,000 steps logged every 10, an
# evaluation every 100: 1,101 lines). With -a every job also carries the analyses (pruning,
# rollback, diff, attention, probe, reFT and Scr.+FT with their logs), copied from a real job of
# tests/report_fixtures/partial. Then times, under `flock /tmp/tracc-bench.lock`:
#   tracc report --json DIR >/dev/null      and      tracc report DIR -o OUT
#
#   sh bench/report_sweep.sh [-a] [WORKDIR]       (default WORKDIR: a temporary folder, removed)
set -eu
ANALYSES=0
[ "${1:-}" = "-a" ] && { ANALYSES=1; shift; }
TRACC=${TRACC:-build/tracc}
[ -x "$TRACC" ] || { echo "report_sweep.sh: no tracc binary at $TRACC (run make)" >&2; exit 1; }
if [ $# -ge 1 ]; then W=$1; mkdir -p "$W"; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi
D=$W/sweep
if [ ! -f "$D/plan.json" ]; then
    python3 - "$D" "$ANALYSES" tests/report_fixtures/partial/runs/0001 <<'PY'
import json, os, random, sys
D, analyses, src = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
rng = random.Random(1)
after = json.load(open(os.path.join(src, "result.json")))["after"] if analyses else None
logs = {k: open(os.path.join(src, k)).read() for k in ("reft.jsonl", "scratch.jsonl")} if analyses else {}
jobs, n = [], 0
for lr in (0.1, 0.01, 0.001, 0.0001):
    for ctr in (0, 0.2, 0.5, 0.6, 0.8, 0.9, 1):
        for var in range(12):
            for seed in (1, 2, 3):
                n += 1
                jid = "%04d" % n
                params = {"lr": lr, "spurious-rate": ctr, "variant": var, "seed": seed}
                jobs.append({"id": jid, "params": params, "dir": "runs/" + jid, "cmd": "true"})
                R = os.path.join(D, "runs", jid)
                os.makedirs(R)
                acc = {k: rng.random() for k in ("pt1", "ft1", "pt0", "ft0")}
                with open(os.path.join(R, "log.jsonl"), "w") as f:
                    for step in range(0, 10001, 10):
                        if step:
                            f.write('{"type":"train","step":%d,"loss":%r,"lr":%r,"grad_norm":%r,"grad_top":["blocks.0.mlp.W_out",%r],"time":%r}\n'
                                    % (step, 2.0 / (1 + step / 500) + rng.random() * 0.01, lr, rng.random(), rng.random(), step * 0.01))
                        if step % 100 == 0:
                            ev = {k: {"acc": rng.random(), "loss": rng.random() * 5, "n": 1000} for k in acc}
                            f.write(json.dumps({"type": "eval", "step": step, "eval": ev}, separators=(",", ":")) + "\n")
                ft = {"output": "model.safetensors", "steps": 10000, "train_loss": rng.random(), "seconds": 100.0,
                      "steps_per_second": 100.0, "eval": {k: {"acc": v, "loss": 1.0, "n": 1000} for k, v in acc.items()}}
                res = {"id": jid, "params": params, "config_sha256": "bench", "finetune": ft, "log": "log.jsonl"}
                if analyses:
                    res["after"] = after
                    for k, t in logs.items():
                        open(os.path.join(R, k), "w").write(t)
                json.dump(res, open(os.path.join(R, "result.json"), "w"), separators=(",", ":"))
json.dump({"tracc_sweep": 1, "name": "bench-1008", "paper": "jain2023-counter",
           "grid": {"lr": [0.1, 0.01, 0.001, 0.0001], "spurious-rate": [0, 0.2, 0.5, 0.6, 0.8, 0.9, 1],
                    "variant": list(range(12)), "seed": [1, 2, 3]}, "jobs": jobs}, open(os.path.join(D, "plan.json"), "w"))
PY
fi
echo "sweep: $(ls "$D/runs" | wc -l) jobs, $(du -sh "$D" | cut -f1) on disk, analyses: $([ $ANALYSES = 1 ] && echo yes || echo no)"
# Hold the bench lock for the timings (other helpers' benchmarks wait), warm the page cache
# once, then time each command three times and keep the best.
exec 9>/tmp/tracc-bench.lock
flock 9
export OPENBLAS_NUM_THREADS=1
"$TRACC" report --json "$D" >/dev/null
timeit() {   # best wall time of 3, with the CPU time (user + sys) of that run
    best=
    for i in 1 2 3; do
        /usr/bin/time -f "%e %U %S" -o "$W/time.txt" "$@" >/dev/null 2>"$W/err.txt" || { echo "report_sweep.sh: failed: $*" >&2; cat "$W/err.txt" >&2; exit 1; }
        set -- "$@"
        read -r wall user sys <"$W/time.txt"
        best=$(awk -v w="$wall" -v u="$user" -v s="$sys" -v best="$best" 'BEGIN {
            split(best, b, " "); if (best == "" || w < b[1]) printf "%s %.2f", w, u + s; else printf "%s", best }')
    done
    set -- $best
    echo "wall $1 s, cpu $2 s"
}
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tracc report --json DIR >/dev/null: $(timeit "$TRACC" report --json "$D") (best of 3)"
echo "tracc report DIR -o OUT:            $(timeit "$TRACC" report "$D" -o "$W/out") (best of 3; $(ls "$W/out" | wc -l) files)"
echo "tracc report DIR (Markdown):        $(timeit "$TRACC" report "$D") (best of 3)"
