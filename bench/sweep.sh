#!/bin/sh
# sweep.sh — `tracc sweep` costs (issue 12): does a sweep add cost per step, and are plan and
# status fast on 1,000 jobs? Not part of `make test`; `make bench-sweep` runs it. Results:
# docs/benchmarks.md ("Sweeps"). Run it alone on the machine (under
# `flock /tmp/tracc-bench.lock`): the scaling figure is a ratio of wall times.
#
#   sh bench/sweep.sh [TRACC] [STEPS]
#
# 1. Scaling: the paper's Counter (count_a compiled at max_len 46, as Tracr: --no-fuse),
#    fine-tuned to count_b with the jain2023 preset shortened to STEPS steps (default 300),
#    4 jobs (2 lr x 2 seeds). The same plan run with -j 1 and with -j 2 (fresh copies):
#    aggregate steps/s = 4 x STEPS / wall; the ratio (-j 2) / (2 x (-j 1)) is what the pool
#    keeps of perfect scaling (job start, compile-once, evaluation and writes included).
# 2. plan and status on 1,000 jobs (10 lr x 10 C_Tr x 10 seeds, after: prune, reft, diff),
#    status once with every job pending and once with every job done (result.json files
#    made by copying one real result under each job's config_sha256: status reads only
#    which files exist).
set -eu
TRACC=${1:-build/tracc}
STEPS=${2:-300}
case $TRACC in /*) ;; *) TRACC=$(pwd)/$TRACC ;; esac
R=$(pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OPENBLAS_NUM_THREADS=1
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | sed 's/^\./0./'; }
ncpu=$(nproc)
echo "# sweep bench — $(date -u +%Y-%m-%dT%H:%MZ) — $(uname -m), $ncpu cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

cat >"$W/scale.json" <<EOF
{"name": "scale",
 "compile":  {"program": "$R/rasp_examples/count_a.rasp", "max-len": 46, "no-fuse": true},
 "finetune": {"preset": "jain2023", "task": "$R/rasp_examples/count_b.rasp", "at": 1, "len": 46,
              "spurious": "$R/rasp_examples/b_is_a_plus_1.rasp", "spurious-rate": 0.5,
              "steps": $STEPS, "warmup": $((STEPS / 5)), "eval-every": 0, "eval-size": 200,
              "eval": ["pt0=$R/rasp_examples/count_a.rasp", "ft0=$R/rasp_examples/count_b.rasp"]},
 "grid":     {"lr": [0.01, 0.001], "seed": [1, 2]}}
EOF
"$TRACC" sweep plan "$W/scale.json" -o "$W/s1" --quiet >/dev/null
"$TRACC" sweep plan "$W/scale.json" -o "$W/s2" --quiet >/dev/null
/usr/bin/time -f "%e %U %S" -o "$W/t1" "$TRACC" sweep run "$W/s1" -j 1 --quiet
/usr/bin/time -f "%e %U %S" -o "$W/t2" "$TRACC" sweep run "$W/s2" -j 2 --quiet
w1=$(cut -d' ' -f1 "$W/t1"); w2=$(cut -d' ' -f1 "$W/t2")
c1=$(awk '{ print $2 + $3 }' "$W/t1"); c2=$(awk '{ print $2 + $3 }' "$W/t2")
sps() { python3 -c "
import json,glob
v=[json.load(open(p))['finetune']['steps_per_second'] for p in glob.glob('$1/runs/*/result.json')]
print('%.1f' % (sum(v)/len(v)))"; }
job_sps=$(sps "$W/s1"); job_sps2=$(sps "$W/s2")
echo "scaling: 4 jobs x $STEPS steps (Counter max_len 46 --no-fuse, batch 96)"
echo "  one job alone, steps/s inside finetune (mean of 4):  $job_sps"
echo "  sweep run -j 1: wall $w1 s -> $(echo "4 * $STEPS / $w1" | bc -l | xargs printf '%.1f') steps/s"
echo "  sweep run -j 2: wall $w2 s -> $(echo "4 * $STEPS / $w2" | bc -l | xargs printf '%.1f') steps/s"
echo "  ratio (-j 2) / (2 x -j 1): $(echo "$w1 / $w2 / 2" | bc -l | xargs printf '%.3f')"
echo "  ratio (-j 2) / (2 x one job's own steps/s): $(echo "4 * $STEPS / $w2 / (2 * $job_sps)" | bc -l | xargs printf '%.3f')"
echo "  -j 1 against one job's own steps/s (the pool's and the job's overhead): $(echo "4 * $STEPS / $w1 / $job_sps" | bc -l | xargs printf '%.3f')"
echo "  steps/s inside finetune with 2 jobs at once (mean of 4): $job_sps2 (alone: $job_sps)"
echo "  CPU seconds (user + sys, every process): -j 1 $c1, -j 2 $c2; CPU/wall: -j 1 $(echo "$c1 / $w1" | bc -l | xargs printf '%.2f'), -j 2 $(echo "$c2 / $w2" | bc -l | xargs printf '%.2f')"

cat >"$W/big.json" <<EOF
{"name": "big",
 "compile":  {"program": "$R/rasp_examples/count_a.rasp", "max-len": 6, "verify": "none"},
 "finetune": {"preset": "jain2023", "task": "$R/rasp_examples/count_b.rasp", "at": 1, "len": 6,
              "spurious": "$R/rasp_examples/b_is_a_plus_1.rasp",
              "eval": ["pt1=$R/rasp_examples/count_a.rasp,spurious=$R/rasp_examples/b_is_a_plus_1.rasp,rate=1",
                       "pt0=$R/rasp_examples/count_a.rasp,spurious=$R/rasp_examples/b_is_a_plus_1.rasp,rate=0"]},
 "grid":     {"lr": [1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001],
              "spurious-rate": [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1],
              "seed": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]},
 "after":    {"prune": {}, "reft": {"lr": 0.0001, "stop-when": "pt0>=0.9"}, "diff": {}}}
EOF
t0=$(now); "$TRACC" sweep plan "$W/big.json" -o "$W/big" --quiet >/dev/null; t1=$(now)
"$TRACC" sweep status "$W/big" >/dev/null; t2=$(now)
python3 - "$W/big" "$W/s1" <<'EOF'
import json, os, sys, glob
big, small = sys.argv[1:3]
proto = json.load(open(glob.glob(small + "/runs/*/result.json")[0]))
for job in json.load(open(os.path.join(big, "plan.json")))["jobs"]:
    d = os.path.join(big, job["dir"])
    os.makedirs(d, exist_ok=True)
    proto.update(id=job["id"], params=job["params"], config_sha256=job["config_sha256"])
    json.dump(proto, open(os.path.join(d, "result.json"), "w"))
EOF
t3=$(now); out=$("$TRACC" sweep status "$W/big"); t4=$(now)
echo "1,000 jobs: $(wc -c <"$W/big/plan.json") bytes of plan.json"
echo "  plan:                 $(secs "$t0" "$t1") s"
echo "  status (all pending): $(secs "$t1" "$t2") s"
echo "  status (all done):    $(secs "$t3" "$t4") s   ($out)"
