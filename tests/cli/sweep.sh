#!/bin/sh
# tests/cli/sweep.sh — `tracc sweep plan|run|status|job`: a tiny grid planned, run and
# counted; result.json in the shape docs/sweeps.md promises; a second run does nothing;
# SIGKILL of the runner and of single jobs, then run again, ends with results equal to
# an uninterrupted sweep; two concurrent runners never run a job twice; GNU parallel runs
# jobs.txt; a failing job is listed with its stderr; bad sweep files are rejected with the
# key named and no DIR created.
. tests/lib.sh
export OPENBLAS_NUM_THREADS=1
S="$TRACC sweep"
R=$(pwd)

# --- plan / run / status on the example sweep (every after stage) ---
D="$TMPD/tiny"
expect_err "plan tiny" 0 "8 jobs" -- $S plan tests/sweep/tiny.json -o "$D"
for f in sweep.json plan.json jobs.txt slurm.sh; do
    if [ -f "$D/$f" ]; then ok; else bad "plan wrote no $f"; fi
done
if cmp -s tests/sweep/tiny.json "$D/sweep.json"; then ok; else bad "sweep.json is not a verbatim copy"; fi
if [ "$(wc -l <"$D/jobs.txt")" -eq 8 ]; then ok; else bad "jobs.txt has $(wc -l <"$D/jobs.txt") lines"; fi
expect_out "status before" 0 "tiny-counter: 8 jobs: 0 done, 0 running, 0 failed, 8 pending" -- $S status "$D"
expect_err "plan again: same file, nothing to do" 0 "nothing to do" -- $S plan tests/sweep/tiny.json -o "$D"
expect_err "run tiny" 0 "8 of 8 jobs done" -- $S run "$D" -j 2
expect_out "status after" 0 "tiny-counter: 8 jobs: 8 done, 0 running, 0 failed, 0 pending" -- $S status "$D"
expect_out "status --json" 0 '{"name":"tiny-counter","jobs":8,"done":8,"running":0,"failed":0,"pending":0,"failed_jobs":[],"running_jobs":[],"progress":{}}' -- $S status "$D" --json
if python3 - "$D" <<'EOF'
import json, os, sys
d = sys.argv[1]
plan = json.load(open(os.path.join(d, "plan.json")))
assert plan["tracc_sweep"] == 1 and plan["name"] == "tiny-counter" and plan["paper"] is None
assert plan["grid"] == {"lr": [0.01, 0.001], "spurious-rate": [0, 1], "seed": [1, 2]}
lines = open(os.path.join(d, "jobs.txt")).read().splitlines()
seen = set()
for i, job in enumerate(plan["jobs"]):
    assert job["cmd"] == lines[i] and job["dir"] == "runs/" + job["id"]
    assert set(job["params"]) == {"lr", "spurious-rate", "seed"}
    seen.add(tuple(job["params"].values()))
    r = json.load(open(os.path.join(d, job["dir"], "result.json")))
    assert r["id"] == job["id"] and r["params"] == job["params"] and r["config_sha256"] == job["config_sha256"]
    assert set(r["finetune"]["eval"]) == {"pt1", "ft1", "pt0", "ft0"}, r["finetune"]["eval"]
    assert r["finetune"]["steps"] == 40 and r["log"] == "log.jsonl"
    a = r["after"]
    assert set(a) == {"prune", "rollback", "reft", "reft_log", "scratch", "scratch_log", "diff", "attn", "probe", "decompile"}, set(a)
    dc = a["decompile"]
    assert {"program", "diff", "fidelity", "sops"} <= set(dc) and "error" not in dc, dc.keys()
    assert dc["fidelity"]["inputs"] == 100 and 0 <= dc["fidelity"]["output"] <= 1
    assert a["prune"]["method"] == "prune" and a["rollback"]["method"] == "rollback"
    assert "stop_when" in a["reft"] and "stop_when" in a["scratch"]
    for log in ("log", ):
        assert os.path.getsize(os.path.join(d, job["dir"], r[log])) > 0
    for log in ("reft_log", "scratch_log"):
        assert os.path.getsize(os.path.join(d, job["dir"], a[log])) > 0
    assert not os.path.exists(os.path.join(d, job["dir"], "failed.json"))
    assert not os.path.exists(os.path.join(d, job["dir"], "model.ckpt.safetensors"))
    # the cost: every stage's CPU and wall seconds, a shared stage pointing at its run
    c = r["cost"]
    assert c["complete"] is True and set(c["stages"]) == {s["name"] for s in job["stages"]}, c
    for s in job["stages"]:
        sc = c["stages"][s["name"]]
        if s.get("shared"):
            assert sc == {"shared": s["shared"]}, sc
            continue
        assert sc["runs"] == 1 and sc["cpu_s"] >= 0 and sc["wall_s"] > 0 and "uncounted" not in sc, sc
    own = [v for v in c["stages"].values() if "shared" not in v]
    assert abs(c["cpu_s"] - sum(v["cpu_s"] for v in own)) < 1e-9 and c["cpu_s"] > 0
    assert not [f for f in os.listdir(os.path.join(d, job["dir"])) if f.startswith("cost-")]
assert len(seen) == 8
EOF
then ok; else bad "plan.json / result.json not as documented"; fi
# the report sums the recorded costs: every job's own stages and each shared run once
$TRACC report "$D" --json >"$TMPD/tiny-report.json" 2>/dev/null || bad "report on the tiny sweep"
$TRACC report "$D" >"$TMPD/tiny-report.md" 2>/dev/null
if python3 - "$D" "$TMPD/tiny-report.json" <<'EOF'
import glob, json, os, sys
d, rj = sys.argv[1:3]
c = json.load(open(rj))["sweep"]["cost"]
shared = glob.glob(os.path.join(d, "shared", "*", "result.json"))
want = sum(json.load(open(p))["cost"]["cpu_s"] for p in glob.glob(os.path.join(d, "runs", "*", "result.json")))
want += sum(json.load(open(p))["cost"]["cpu_s"] for p in shared)
assert c["jobs_done"] == 8 and c["jobs_measured"] == 8 and c["jobs_complete"] == 8, c
assert c["shared_runs"] == len(shared) == 2 and abs(c["cpu_s"] - want) < 1e-6, (c, want)
assert abs(sum(c["stages_cpu_s"].values()) - c["cpu_s"]) < 1e-6, c
EOF
then ok; else bad "report: the sweep's cost"; fi
if grep -q "^## Compute" "$TMPD/tiny-report.md" &&
    grep -q "^tiny-counter: \*\*.* of CPU time\*\* .* in 8 of 8 finished jobs and 2 shared runs" "$TMPD/tiny-report.md"; then ok
else bad "report: the Compute line"; grep -n Compute "$TMPD/tiny-report.md"; fi
# a job not finished: the report estimates what is left at the finished jobs' mean
cp -r "$D" "$TMPD/tiny-partial" && rm "$TMPD/tiny-partial/runs/0003/result.json"
if $TRACC report "$TMPD/tiny-partial" 2>/dev/null | grep -q "in 7 of 7 finished jobs .* The 1 job not finished, at that mean: about .* more (jobs differ: an estimate)\.$"; then ok
else bad "report: the estimate for the jobs not finished"; fi
if sh paper/summary.sh "$TMPD/tiny-report.md" | grep -q "^compute, tiny-counter: .* of CPU time in 8 of 8 finished jobs and 2 shared runs: .* per job"; then ok
else bad "paper/summary.sh: the compute line"; sh paper/summary.sh "$TMPD/tiny-report.md"; fi

# idempotence: a second run starts nothing and rewrites nothing
ls -l --time-style=full-iso "$D"/runs/*/result.json >"$TMPD/mtimes1"
expect_err "second run does nothing" 0 "0 to run" -- $S run "$D" -j 2
ls -l --time-style=full-iso "$D"/runs/*/result.json >"$TMPD/mtimes2"
if cmp -s "$TMPD/mtimes1" "$TMPD/mtimes2"; then ok; else bad "a second run rewrote results"; fi
if sh -c "$(sed -n 3p "$D/jobs.txt")" && [ ! -s "$D/runs/0003/stderr.txt.new" ]; then ok; else bad "a job line of a done job"; fi
ls -l --time-style=full-iso "$D"/runs/*/result.json >"$TMPD/mtimes3"
if cmp -s "$TMPD/mtimes1" "$TMPD/mtimes3"; then ok; else bad "the job line of a done job rewrote its result"; fi
# a job line works from any working directory
(cd / && sh -c "$(sed -n 1p "$D/jobs.txt")") && ok || bad "job line from / failed"

# --- kill and resume: a smaller sweep whose steps are slowed down ---
cat >"$TMPD/kill.in" <<EOF
{"name": "kill",
 "compile":  {"program": "$R/rasp_examples/count_a.rasp", "max-len": 6, "verify": "none"},
 "finetune": {"task": "$R/rasp_examples/count_b.rasp", "at": 1, "len": 6, "optimizer": "adamw",
              "steps": 40, "batch": 16, "init-noise": 0.001, "eval-every": 10, "eval-size": 100,
              "checkpoint-every": 5, "test-step-delay": DELAY,
              "eval": ["pt0=$R/rasp_examples/count_a.rasp", "ft0=$R/rasp_examples/count_b.rasp"]},
 "grid":     {"lr": [0.01, 0.001], "seed": [1, 2]},
 "after":    {"reft": {"lr": 0.001, "steps": 20, "stop-when": "pt0>=0.9", "eval-every": 5, "test-step-delay": 0}}}
EOF
# test-step-delay (ms per step) gives a killer time to strike; results do not depend on it
for d in 0 10 30; do sed "s/DELAY/$d/" "$TMPD/kill.in" >"$TMPD/kill$d.json"; done
# the reference: uninterrupted
expect_err "plan ref" 0 "4 jobs" -- $S plan "$TMPD/kill0.json" -o "$TMPD/ref"
expect_err "run ref" 0 "4 of 4 jobs done" -- $S run "$TMPD/ref" -j 2

same_results() {   # NAME DIR: every job's eval numbers equal the reference's
    if python3 - "$TMPD/ref" "$2" <<'EOF'
import json, os, sys
a, b = sys.argv[1:3]
for job in json.load(open(os.path.join(a, "plan.json")))["jobs"]:
    ra = json.load(open(os.path.join(a, job["dir"], "result.json")))
    rb = json.load(open(os.path.join(b, job["dir"], "result.json")))
    assert ra["params"] == rb["params"]
    assert ra["finetune"]["eval"] == rb["finetune"]["eval"], (job["id"], ra["finetune"]["eval"], rb["finetune"]["eval"])
    assert ra["finetune"]["train_loss"] == rb["finetune"]["train_loss"]
    for k in ("eval", "stopped_at", "train_loss"):
        assert ra["after"]["reft"].get(k) == rb["after"]["reft"].get(k), (job["id"], k)
    # the log holds each step once (a resumed run trims what the killed one logged past its checkpoint)
    steps = [l["step"] for l in map(json.loads, open(os.path.join(b, job["dir"], "log.jsonl")))
             if l.get("type") not in ("resume",) and "loss" in l and "eval" not in l]
    assert steps == sorted(set(steps)), steps
EOF
    then ok; else bad "$1: results differ from the uninterrupted sweep"; fi
}

# first_pid PATTERN TRIES: the first process matching PATTERN, polled every 50 ms at most
# TRIES times ("" if none appeared)
first_pid() {
    n=0
    while [ $n -lt "$2" ]; do
        p=$(pgrep -f "$1" | head -n 1)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05; n=$((n + 1))
    done
}

K="$TMPD/killed"
$S plan "$TMPD/kill30.json" -o "$K" --quiet >/dev/null 2>&1 || bad "plan killed"
# 1. SIGKILL the runner mid-way: its jobs get SIGTERM (checkpoint) and stop with it
$S run "$K" -j 2 --quiet 2>/dev/null &
RUNNER=$!
sleep 0.5
kill -9 $RUNNER
wait $RUNNER 2>/dev/null
sleep 0.5
if pgrep -f "$K/" >/dev/null; then bad "jobs outlived the killed runner"; pgrep -af "$K/"; else ok; fi
# 2. run again and SIGKILL one fine-tuning process mid-way: that job fails, the rest finish
$S run "$K" -j 2 >"$TMPD/run2.out" 2>&1 &
RUNNER=$!
P=$(first_pid "tracc finetune .*$K/runs/" 50)
if [ -n "$P" ]; then sleep 0.1; kill -9 "$P"; ok; else bad "no fine-tuning process to kill"; fi
wait $RUNNER; rc=$?
if [ $rc -eq 1 ] && grep -q "^failed: job 000[1-4] (stage finetune, exit 137): $K/runs/000[1-4]/stderr.txt" "$TMPD/run2.out"; then ok; else bad "a killed job: run status $rc"; cat "$TMPD/run2.out"; fi
if $S status "$K" | grep -q "1 failed"; then ok; else bad "status does not count the killed job"; $S status "$K"; fi
if python3 -c "
import json,glob,sys
f=[json.load(open(p)) for p in glob.glob(sys.argv[1]+'/runs/*/failed.json')]
assert len(f)==1 and f[0]['stage']=='finetune' and f[0]['exit']==137 and f[0]['stderr']=='stderr.txt', f" "$K"; then ok; else bad "failed.json"; fi
# 3. run again: only what is missing; every job done, results equal to the reference
expect_err "run after kills" 0 "4 of 4 jobs done" -- $S run "$K" -j 2
if ls "$K"/runs/*/failed.json >/dev/null 2>&1; then bad "failed.json left after success"; else ok; fi
same_results "SIGKILL runner and job" "$K"
# the killed runs' cost is kept: every job's record is complete, and the job whose
# fine-tuning was killed counts that run too
if python3 - "$K" <<'EOF'
import glob, json, sys
rs = [json.load(open(p)) for p in glob.glob(sys.argv[1] + "/runs/*/result.json")]
assert len(rs) == 4 and all(r["cost"]["complete"] for r in rs), [r["cost"] for r in rs]
assert max(r["cost"]["stages"]["finetune"]["runs"] for r in rs) >= 2, [r["cost"]["stages"]["finetune"] for r in rs]
assert not glob.glob(sys.argv[1] + "/runs/*/cost-*.json")
EOF
then ok; else bad "cost across killed and resumed runs"; fi
if grep -h "^== .*finetune" "$K"/runs/*/stderr.txt | grep -q -- "--resume"; then ok; else bad "no job resumed from a checkpoint"; fi

# a job killed outright (SIGKILL: no chance to record its stage's cost) resumes from the
# checkpoint its fine-tuning wrote on the SIGTERM that followed; that stage's cost is then
# marked uncounted and the job's record is not complete
U="$TMPD/uncounted"
$S plan "$TMPD/kill30.json" -o "$U" --quiet >/dev/null 2>&1 || bad "plan uncounted"
$S job "$U" 0001 --quiet >/dev/null 2>&1 &
JOB=$!
P=$(first_pid "tracc finetune .*$U/runs/0001/" 100)
sleep 0.3
kill -9 $JOB; wait $JOB 2>/dev/null
i=0
while [ $i -lt 100 ] && pgrep -f "$U/runs/0001/" >/dev/null; do sleep 0.05; i=$((i + 1)); done
if [ -n "$P" ] && [ -f "$U/runs/0001/model.ckpt.safetensors" ]; then ok; else bad "uncounted: no checkpoint after the kill"; fi
if $S job "$U" 0001 --quiet >/dev/null 2>"$TMPD/ujob.err"; then ok; else bad "uncounted: the job again"; cat "$TMPD/ujob.err"; fi
if python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))['cost']
f = c['stages']['finetune']
assert f.get('uncounted') is True and f['runs'] == 1 and c['complete'] is False, c
assert all('uncounted' not in v for k, v in c['stages'].items() if k != 'finetune'), c
" "$U/runs/0001/result.json"; then ok; else bad "uncounted: the record"; fi

# --spurious-others reaches the fine-tuning only: the reverse runs train on the compiled
# program's own data, without the predicate
cat >"$TMPD/others.json" <<EOF
{"name": "others",
 "compile":  {"program": "$R/rasp_examples/count_a.rasp", "max-len": 6, "verify": "none"},
 "finetune": {"task": "$R/rasp_examples/count_b.rasp", "at": 1, "len": 6, "steps": 4, "batch": 8,
              "spurious": "$R/rasp_examples/b_is_a_plus_1.rasp", "spurious-rate": 0.5, "spurious-others": "uniform",
              "eval": ["pt0=$R/rasp_examples/count_a.rasp"]},
 "grid":     {"seed": [1]},
 "after":    {"reft": {"steps": 2}}}
EOF
expect_err "plan with --spurious-others" 0 "1 jobs" -- $S plan "$TMPD/others.json" -o "$TMPD/others"
if python3 -c "
import json, sys
st = {s['name']: s['argv'] for s in json.load(open(sys.argv[1]))['jobs'][0]['stages']}
a = st['finetune']; assert a[a.index('--spurious-others') + 1] == 'uniform', a
assert '--spurious-others' not in st['reft'] and '--spurious' not in st['reft'], st['reft']
" "$TMPD/others/plan.json"; then ok; else bad "--spurious-others in the plan"; fi
expect_err "run with --spurious-others" 0 "1 of 1 jobs done" -- $S run "$TMPD/others" -j 1

# --- blas-core: every job's fine-tuning on the kernel the sweep file names, recorded; a name
# OpenBLAS does not honour fails the job (it would silently run on another kernel) ---
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
    for core in Sandybridge Bogus; do
        sed -e 's/"name": "others",/"name": "others", "blas-core": "'$core'",/' "$TMPD/others.json" >"$TMPD/core-$core.json"
    done
    $S plan "$TMPD/core-Sandybridge.json" -o "$TMPD/core-Sandybridge" --quiet >/dev/null 2>&1 || bad "plan blas-core Sandybridge"
    # a kernel this machine does not run is refused at plan time, with the way out
    expect_err "plan: blas-core OpenBLAS does not honour" 1 "blas-core Bogus: OpenBLAS here runs its" -- \
        $S plan "$TMPD/core-Bogus.json" -o "$TMPD/core-Bogus"
    if grep -qF -- "plan with --blas-core none" "$TMPD/err" && [ ! -e "$TMPD/core-Bogus" ]; then ok; else bad "plan: blas-core Bogus"; fi
    expect_err "plan --blas-core none" 0 "1 jobs" -- $S plan "$TMPD/core-Bogus.json" -o "$TMPD/core-none" --blas-core none
    expect_err "plan --blas-core over the file's" 0 "1 jobs" -- $S plan "$TMPD/core-Bogus.json" -o "$TMPD/core-over" --blas-core Haswell
    if python3 -c "
import json, sys
assert json.load(open(sys.argv[1]))['blas_core'] is None and json.load(open(sys.argv[2]))['blas_core'] == 'Haswell'
" "$TMPD/core-none/plan.json" "$TMPD/core-over/plan.json"; then ok; else bad "--blas-core in plan.json"; fi
    expect_err "--blas-core not a name" 2 "--blas-core must be an OpenBLAS core name" -- $S plan "$TMPD/others.json" -o "$TMPD/x" --blas-core 'a b'
    expect_err "--blas-core for run" 2 "does not apply" -- $S run "$TMPD/core-none" --blas-core Haswell
    # a node that does not honour the plan's kernel (planned elsewhere): the job fails, nothing kept
    $S plan "$TMPD/core-Bogus.json" -o "$TMPD/core-Bogus" --blas-core none --quiet >/dev/null 2>&1 || bad "plan core-Bogus"
    python3 -c "
import json, sys
p = json.load(open(sys.argv[1])); p['blas_core'] = 'Bogus'; json.dump(p, open(sys.argv[1], 'w'))
" "$TMPD/core-Bogus/plan.json"
    # outside the configuration hash: the same jobs as the sweep without it, planned at that path
    $S plan "$TMPD/others.json" -o "$TMPD/core-h" --quiet >/dev/null 2>&1 && cp "$TMPD/core-h/plan.json" "$TMPD/core-h0.json" &&
        rm -rf "$TMPD/core-h" && $S plan "$TMPD/core-Sandybridge.json" -o "$TMPD/core-h" --quiet >/dev/null 2>&1 || bad "plan core-h"
    if python3 -c "
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a['blas_core'] == 'Sandybridge' and b['blas_core'] is None, (a.get('blas_core'), b.get('blas_core'))
assert [j['config_sha256'] for j in a['jobs']] == [j['config_sha256'] for j in b['jobs']]
" "$TMPD/core-h/plan.json" "$TMPD/core-h0.json"; then ok; else bad "blas-core in the plan"; fi
    OPENBLAS_CORETYPE=Haswell $S run "$TMPD/core-Sandybridge" -j 1 --quiet >/dev/null 2>&1 || bad "run blas-core Sandybridge"
    if python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['finetune']['blas'] == 'Sandybridge' and r['after']['reft']['blas'] == 'Sandybridge', r['finetune']
" "$TMPD/core-Sandybridge/runs/0001/result.json"; then ok; else bad "blas-core: the kernel the jobs ran on"; fi
    expect_err "blas-core a name OpenBLAS does not know" 1 "1 failed" -- $S run "$TMPD/core-Bogus" -j 1
    if grep -q "stage finetune: it ran on OpenBLAS's .* kernels, not the sweep's blas-core Bogus" "$TMPD/core-Bogus/runs/0001/stderr.txt" &&
       [ ! -e "$TMPD/core-Bogus/runs/0001/result.json" ]; then ok
    else bad "blas-core Bogus: the failure"; cat "$TMPD/core-Bogus/runs/0001/stderr.txt"; fi
    # the report: one line per sweep; more than one kernel flagged
    $TRACC report "$TMPD/core-Sandybridge" -o "$TMPD/core-rep" >/dev/null 2>&1
    if grep -qF "others: the fine-tuning of its 1 finished job ran on OpenBLAS's Sandybridge kernels." "$TMPD/core-rep/report.md"; then ok
    else bad "report: the kernel line"; grep -i blas "$TMPD/core-rep/report.md"; fi
    cp -R "$TMPD/core-Sandybridge" "$TMPD/core-mixed"
    python3 -c "
import json, sys
p = sys.argv[1]; r = json.load(open(p)); r['finetune']['blas'] = 'Haswell'; json.dump(r, open(p, 'w'))
" "$TMPD/core-mixed/runs/0001/result.json"
    $TRACC report "$TMPD/core-mixed" "$TMPD/core-Sandybridge" --json >"$TMPD/core-mixed.json" 2>/dev/null
    $TRACC report "$TMPD/core-mixed" "$TMPD/core-Sandybridge" -o "$TMPD/core-mixed-rep" >/dev/null 2>&1
    if python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert [s['blas'] for s in d['sweep']] == [{'Haswell': 1}, {'Sandybridge': 1}], d['sweep']
" "$TMPD/core-mixed.json"; then ok; else bad "report --json: blas per sweep"; fi
    for want in "others: the fine-tuning of its 1 finished job ran on OpenBLAS's Haswell kernels." \
                "others: the fine-tuning of its 1 finished job ran on OpenBLAS's Sandybridge kernels."; do
        if grep -qF "$want" "$TMPD/core-mixed-rep/report.md"; then ok; else bad "report of two sweeps: $want"; fi
    done
    # two kernels in one sweep: flagged
    mkdir -p "$TMPD/core-two/runs" && cp "$TMPD/core-mixed/plan.json" "$TMPD/core-two/" &&
        python3 -c "
import json, sys
p = json.load(open(sys.argv[1])); j = dict(p['jobs'][0]); j['id'] = '0002'; j['dir'] = 'runs/0002'
p['jobs'].append(j); json.dump(p, open(sys.argv[1], 'w'))
" "$TMPD/core-two/plan.json" && cp -R "$TMPD/core-mixed/runs/0001" "$TMPD/core-two/runs/" &&
        cp -R "$TMPD/core-Sandybridge/runs/0001" "$TMPD/core-two/runs/0002" &&
        sed -i 's/"id": "0001"/"id": "0002"/' "$TMPD/core-two/runs/0002/result.json"
    $TRACC report "$TMPD/core-two" -o "$TMPD/core-two-rep" >"$TMPD/out" 2>&1 || { bad "report of two kernels"; cat "$TMPD/out"; }
    if grep -qF "**others: the fine-tuning ran on more than one OpenBLAS kernel**: Haswell (1 job), Sandybridge (1 job)." "$TMPD/core-two-rep/report.md"; then ok
    else bad "report: two kernels in one sweep not flagged"; grep -i -A2 'Aggregates' "$TMPD/core-two-rep/report.md"; fi
    # a result from before the record is counted apart, not as a second kernel
    python3 -c "
import json, sys
p = sys.argv[1]; r = json.load(open(p)); del r['finetune']['blas']; json.dump(r, open(p, 'w'))
" "$TMPD/core-two/runs/0001/result.json"
    $TRACC report "$TMPD/core-two" -o "$TMPD/core-unrec-rep" >/dev/null 2>&1
    if grep -qF "others: the fine-tuning of its 1 finished job ran on OpenBLAS's Sandybridge kernels; 1 job from before the record." "$TMPD/core-unrec-rep/report.md"; then ok
    else bad "report: a result without the record"; grep -i 'openblas' "$TMPD/core-unrec-rep/report.md"; fi
else
    echo "sweep.sh: no AVX2/FMA here: the blas-core checks are skipped"
fi
# --- "flush-subnormals": true reaches every training stage (fine-tuning, reverse, Scr.+FT), is
# recorded in the results, and the report counts those jobs apart from unflushed ones ---
if $TRACC finetune "$TMPD/others.json" --flush-subnormals --check-only -o "$TMPD/x.safetensors" 2>&1 | grep -q "not available"; then
    echo "sweep.sh: no flush-to-zero mode on this CPU: the flush-subnormals checks are skipped"
else
    sed -e 's/"name": "others",/"name": "flushed",/' -e 's/"at": 1,/"at": 1, "flush-subnormals": true,/' \
        -e 's/"reft": {"steps": 2}/"reft": {"steps": 2}, "scratch": {"steps": 2}/' "$TMPD/others.json" >"$TMPD/flushed.json"
    $S plan "$TMPD/flushed.json" -o "$TMPD/flushed" --quiet >/dev/null 2>&1 || bad "plan flush-subnormals"
    if python3 -c "
import json, sys
st = {s['name']: s['argv'] for s in json.load(open(sys.argv[1]))['jobs'][0]['stages']}
for n in ('finetune', 'reft', 'scratch'): assert '--flush-subnormals' in st[n], (n, st[n])
" "$TMPD/flushed/plan.json"; then ok; else bad "flush-subnormals in the plan's stages"; fi
    $S run "$TMPD/flushed" -j 1 --quiet >/dev/null 2>&1 || bad "run flush-subnormals"
    if python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['finetune']['flush_subnormals'] is True and r['after']['reft']['flush_subnormals'] is True, r['finetune']
assert r['after']['scratch']['flush_subnormals'] is True, r['after']['scratch']
" "$TMPD/flushed/runs/0001/result.json"; then ok; else bad "flush-subnormals: the results"; fi
    $TRACC report "$TMPD/flushed" --json >"$TMPD/flushed-rep.json" 2>/dev/null
    if python3 -c "
import json, sys
b = json.load(open(sys.argv[1]))['sweep']['blas']
assert len(b) == 1 and list(b)[0].endswith(' (subnormals flushed)'), b
" "$TMPD/flushed-rep.json"; then ok; else bad "report: flushed jobs not labelled"; fi
fi
bad_core=$(sed -e 's/"name": "others",/"name": "others", "blas-core": "Has well",/' "$TMPD/others.json")
printf '%s\n' "$bad_core" >"$TMPD/core-bad.json"
expect_err "blas-core not a name" 1 "blas-core: must be an OpenBLAS core name" -- $S plan "$TMPD/core-bad.json" -o "$TMPD/core-bad"
if [ ! -e "$TMPD/core-bad" ]; then ok; else bad "blas-core not a name: DIR created"; fi

# --- status of a running job: its stage, and a training stage's step of its steps (from its log) ---
if command -v flock >/dev/null 2>&1; then
    P="$TMPD/progress"
    cp -R "$TMPD/ref" "$P"
    python3 - "$P/runs/0001" <<'EOF2' || bad "progress: prepare"
import json, os, sys
d = sys.argv[1]
os.remove(os.path.join(d, "result.json"))
json.dump({}, open(os.path.join(d, "stage-finetune.json"), "w"))   # as a job in its reft stage has it
lines = [json.loads(l) for l in open(os.path.join(d, "reft.jsonl"))]
start = [l for l in lines if l["type"] == "start"][0]
train = [l for l in lines if l["type"] == "train" and l["step"] == 10][0]
with open(os.path.join(d, "reft.jsonl"), "w") as f:
    f.write(json.dumps(start) + "\n" + json.dumps(train) + "\n" + '{"type":"train","st')   # a line being written
EOF2
    flock "$P/runs/0001/lock" sleep 30 & HOLD=$!
    sleep 0.3
    $S status "$P" >"$TMPD/progress.txt" 2>&1
    if grep -qxF "kill: 4 jobs: 3 done, 1 running, 0 failed, 0 pending" "$TMPD/progress.txt" &&
       grep -qxF "running: job 0001 (stage reft, step 10 of 20)" "$TMPD/progress.txt"; then ok
    else bad "status: a running job's stage and step"; cat "$TMPD/progress.txt"; fi
    $S status "$P" --json >"$TMPD/progress.json" 2>&1
    if python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert d['running_jobs'] == ['0001'] and d['progress'] == {'0001': {'stage': 'reft', 'step': 10, 'steps': 20}}, d
" "$TMPD/progress.json"; then ok; else bad "status --json: progress"; cat "$TMPD/progress.json"; fi
    # the first stage without a record is the one running, whatever logs later stages left
    rm "$P/runs/0001/stage-finetune.json"
    if $S status "$P" | grep -qxF "running: job 0001 (stage finetune, step 40 of 40)"; then ok
    else bad "status: the first stage without a record"; $S status "$P"; fi
    kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null
else
    echo "skip: no flock(1) for the running-job status"
fi

# --- two concurrent runners on one DIR: each job runs once ---
C="$TMPD/conc"
$S plan "$TMPD/kill10.json" -o "$C" --quiet >/dev/null 2>&1 || bad "plan conc"
$S run "$C" -j 2 --quiet 2>"$TMPD/c1" &
P1=$!
$S run "$C" -j 2 --quiet 2>"$TMPD/c2" &
P2=$!
wait $P1; r1=$?
wait $P2; r2=$?
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ]; then ok; else bad "concurrent runners: status $r1 $r2"; cat "$TMPD/c1" "$TMPD/c2"; fi
n=$(cat "$C"/runs/*/stderr.txt | grep -c "^== .* finetune .*/models/start-")
if [ "$n" -eq 4 ]; then ok; else bad "concurrent runners ran $n fine-tunings for 4 jobs"; fi
same_results "concurrent runners" "$C"

# --- GNU parallel runs jobs.txt ---
if command -v parallel >/dev/null 2>&1; then
    G="$TMPD/gnu"
    $S plan "$TMPD/kill0.json" -o "$G" --quiet >/dev/null 2>&1 || bad "plan gnu"
    if (cd / && parallel -j 2 <"$G/jobs.txt") >/dev/null 2>&1; then ok; else bad "parallel < jobs.txt failed"; fi
    expect_out "status after parallel" 0 "kill: 4 jobs: 4 done, 0 running, 0 failed, 0 pending" -- $S status "$G"
    same_results "GNU parallel" "$G"
else
    echo "skip: GNU parallel is not installed (Debian package parallel)"
fi

# --- grid keys that name compile options: one start model per compile configuration ---
sed -e 's/"grid":     {"lr": \[0.01, 0.001\], "seed": \[1, 2\]}/"grid": {"conditioning": ["tracr", "balanced"], "no-fuse": [true, false], "compile.program": ["rasp_examples\/count_a.rasp"], "seed": [1]}/' \
    -e 's/"name": "kill"/"name": "variants"/' "$TMPD/kill0.json" >"$TMPD/variants.json"
cp -r rasp_examples "$TMPD/" 2>/dev/null
expect_err "plan compile variants" 0 "4 jobs" -- $S plan "$TMPD/variants.json" -o "$TMPD/var"
if python3 - "$TMPD/var" <<'EOF'
import json, os, sys
p = json.load(open(os.path.join(sys.argv[1], "plan.json")))
assert len(p["models"]) == 4, p["models"].keys()
starts = set()
for j in p["jobs"]:
    assert j["params"]["compile.program"] == "rasp_examples/count_a.rasp"   # as written in the file
    assert isinstance(j["params"]["no-fuse"], bool)
    starts.add(j["stages"][0]["argv"][2])
assert len(starts) == 4
flags = [m["argv"] for m in p["models"].values()]
assert sum("--no-fuse" in a for a in flags) == 2 and sum("balanced" in a for a in flags) == 2
EOF
then ok; else bad "compile variants in plan.json"; fi

# --- slurm.sh: resources from the options; run by hand as Slurm would (array task 3) ---
L="$TMPD/sl"
$S plan "$TMPD/kill0.json" -o "$L" --quiet --slurm-partition short --slurm-time 1:00:00 --slurm-mem 4G \
    --slurm-cpus 2 --slurm-max-parallel 3 >/dev/null 2>&1 || bad "plan with --slurm-*"
for want in "#SBATCH --array=1-4%3" "#SBATCH --partition=short" "#SBATCH --time=1:00:00" "#SBATCH --mem=4G" \
    "#SBATCH --cpus-per-task=2" "#SBATCH --output=$L/slurm/%A_%a.out"; do
    if grep -qxF -- "$want" "$L/slurm.sh"; then ok; else bad "slurm.sh lacks '$want'"; fi
done
if (cd / && SLURM_ARRAY_TASK_ID=3 bash "$L/slurm.sh") >/dev/null 2>&1; then ok; else bad "slurm.sh as array task 3"; fi
if [ -f "$L/runs/0003/result.json" ] && [ ! -e "$L/runs/0001" ]; then ok; else bad "slurm.sh task 3 ran another job"; fi
if SLURM_ARRAY_TASK_ID=9 bash "$L/slurm.sh" 2>"$TMPD/err9"; then bad "slurm.sh task 9 of 4 succeeded"; else ok; fi

# --- a job that fails at run time: listed, failed.json, exit 1 ---
sed -e 's/"name": "kill"/"name": "fails"/' -e 's/"test-step-delay": 15/"test-step-delay": 0/' \
    -e 's/"after":    {/"after": {"attn": {"tokens": "a zz b"}, /' "$TMPD/kill0.json" >"$TMPD/fails.json"
expect_err "plan fails" 0 "4 jobs" -- $S plan "$TMPD/fails.json" -o "$TMPD/fails"
expect_err "run with failing jobs" 1 "failed: job 0001 (stage attn, exit 1): $TMPD/fails/runs/0001/stderr.txt" -- $S run "$TMPD/fails" -j 2
expect_out "status failed" 0 "fails: 4 jobs: 0 done, 0 running, 4 failed, 0 pending
failed: job 0001 (stage attn, exit 1): $TMPD/fails/runs/0001/stderr.txt
failed: job 0002 (stage attn, exit 1): $TMPD/fails/runs/0002/stderr.txt
failed: job 0003 (stage attn, exit 1): $TMPD/fails/runs/0003/stderr.txt
failed: job 0004 (stage attn, exit 1): $TMPD/fails/runs/0004/stderr.txt" -- $S status "$TMPD/fails"
if grep -q "zz" "$TMPD/fails/runs/0001/stderr.txt"; then ok; else bad "stderr.txt lacks the attn error"; fi

# --- decompile: its failure on one model is recorded, the job's other results kept ---
cat >"$TMPD/dc.json" <<EOF
{"name": "dc",
 "compile":  {"program": "$R/rasp_examples/count_a.rasp", "max-len": 5, "verify": "none"},
 "finetune": {"task": "$R/rasp_examples/count_b.rasp", "at": 1, "len": 5, "optimizer": "adamw", "steps": 10,
              "batch": 8, "lr": 0.01, "eval-size": 50, "eval": ["pt0=$R/rasp_examples/count_a.rasp"]},
 "grid":     {"seed": [1, 2]},
 "after":    {"diff": {"top": 3}, "decompile": {"inputs": 50, "seed": 2}}}
EOF
expect_err "plan dc" 0 "2 jobs" -- $S plan "$TMPD/dc.json" -o "$TMPD/dc"
# job 0002's decompile reads a program that does not exist (what the plan checked was fine)
python3 - "$TMPD/dc/plan.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
st = [s for s in p["jobs"][1]["stages"] if s["name"] == "decompile"][0]
assert st["optional"] is True and st["argv"][-2:] == ["--json", p["dir"] + "/runs/0002/model.safetensors"], st
st["argv"][2:2] = ["--program", "/nonexistent/prog.rasp"]
json.dump(p, open(sys.argv[1], "w"))
EOF
expect_err "run dc: a failed decompile does not fail the job" 0 "2 of 2 jobs done" -- $S run "$TMPD/dc" -j 1
if python3 - "$TMPD/dc" <<'EOF'
import json, sys
d = sys.argv[1]
ok = json.load(open(d + "/runs/0001/result.json"))["after"]
assert ok["decompile"]["fidelity"]["inputs"] == 50 and "error" not in ok["decompile"]
r = json.load(open(d + "/runs/0002/result.json"))
assert r["finetune"]["steps"] == 10 and "largest_changes" in r["after"]["diff"], r
e = r["after"]["decompile"]
assert e["exit"] == 1 and "/nonexistent/prog.rasp" in e["error"] and e["error"].startswith("tracc decompile: "), e
EOF
then ok; else bad "after.decompile: result or recorded error not as documented"; fi
if [ -e "$TMPD/dc/runs/0002/failed.json" ]; then bad "a failed decompile wrote failed.json"; else ok; fi
# the recorded error is the stage's output: running the job again does not run decompile again
rm "$TMPD/dc/runs/0002/result.json"
sha=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][1]["config_sha256"])' "$TMPD/dc/plan.json")
for st in finetune diff; do
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); o=r["finetune"] if sys.argv[2]=="finetune" else r["after"][sys.argv[2]]
json.dump({"config_sha256": sys.argv[3], "output": o}, open(sys.argv[4], "w"))' \
        "$TMPD/dc/runs/0001/result.json" $st "$sha" "$TMPD/dc/runs/0002/stage-$st.json"
done
printf '{"config_sha256": "%s", "output": {"error": "kept", "exit": 1}}' "$sha" >"$TMPD/dc/runs/0002/stage-decompile.json"
n1=$(grep -c "decompile" "$TMPD/dc/runs/0002/stderr.txt")
$S job "$TMPD/dc" 0002 && ok || bad "job 0002 again"
n2=$(grep -c "decompile" "$TMPD/dc/runs/0002/stderr.txt")
if [ "$n1" = "$n2" ] && grep -q '"error": "kept"' "$TMPD/dc/runs/0002/result.json"; then ok; else bad "a recorded decompile error was run again ($n1, $n2)"; fi

# --- bad sweep files: rejected with the key named, no DIR created ---
bad_sweep() {   # NAME PATTERN PYTHON-EDIT
    python3 - "$3" "$TMPD/bad.json" <<'EOF'
import json, sys
s = json.load(open("tests/sweep/tiny.json"))
for sec in ("compile", "finetune"):
    for k, v in list(s[sec].items()):
        if isinstance(v, str) and "../../" in v: s[sec][k] = v.replace("../../", "")
s["finetune"]["eval"] = [e.replace("../../", "") for e in s["finetune"]["eval"]]
exec(sys.argv[1])
json.dump(s, open(sys.argv[2], "w"))
EOF
    cp -r rasp_examples "$TMPD/" 2>/dev/null
    mv "$TMPD/bad.json" "$TMPD/bad_sweep.json"
    expect_err "bad sweep: $1" 1 "$2" -- $S plan "$TMPD/bad_sweep.json" -o "$TMPD/badout/dir"
    if [ -e "$TMPD/badout" ]; then bad "bad sweep: $1: created $TMPD/badout"; rm -rf "$TMPD/badout"; else ok; fi
}
bad_sweep "unknown top key" "unknown key 'bogus'" "s['bogus'] = 1"
bad_sweep "unknown finetune key" "finetune.lrr: unknown key" "s['finetune']['lrr'] = 1"
bad_sweep "unknown grid key" "grid.colour: unknown key" "s['grid']['colour'] = [1]"
bad_sweep "unknown after stage" "after.bogus: unknown stage" "s['after']['bogus'] = {}"
bad_sweep "unknown stage key" "after.prune.bogus: unknown key" "s['after']['prune']['bogus'] = 1"
bad_sweep "value rejected (grid)" "grid.lr = -1: \`tracc finetune\` rejects it: tracc finetune: --lr must be > 0" "s['grid']['lr'] = [0.1, -1]"
bad_sweep "value rejected (section)" "--optimizer must be sgd or adamw" "s['finetune']['optimizer'] = 'foo'"
bad_sweep "value rejected (stage)" "after.probe" "s['after']['probe']['steps'] = 'many'"
bad_sweep "stop-when names no eval" "no --eval set is named 'zz'" "s['after']['reft']['stop-when'] = 'zz>=0.9'"
bad_sweep "compile value rejected" "--max-len must be an integer" "s['compile']['max-len'] = 0"
bad_sweep "empty grid" "grid: empty" "s['grid'] = {}"
bad_sweep "empty grid list" "grid.seed: must be a non-empty list" "s['grid']['seed'] = []"
bad_sweep "missing path" "finetune.task: nope.rasp: No such file" "s['finetune']['task'] = 'nope.rasp'"
bad_sweep "missing path in eval" "finetune.eval: gone.rasp: No such file" "s['finetune']['eval'][0] = 'pt1=gone.rasp'"
bad_sweep "managed key" "finetune.output: not allowed" "s['finetune']['output'] = 'x'"
bad_sweep "attn without tokens" "after.attn.tokens: missing" "s['after']['attn'] = {}"
bad_sweep "unknown decompile key" "after.decompile.bogus: unknown key: \`tracc decompile\` has no option --bogus" "s['after']['decompile']['bogus'] = 1"
bad_sweep "decompile value rejected" "after.decompile (job 0001, grid {\"lr\":0.01,\"spurious-rate\":0,\"seed\":1}): \`tracc decompile\` rejects it (run on the start model): tracc decompile: --inputs must be an integer from 1 to 1000000, got '0'" "s['after']['decompile']['inputs'] = 0"
bad_sweep "decompile --at the model lacks" "--at 9: indices must be in 0..5" "s['after']['decompile']['at'] = '9'"
bad_sweep "decompile: a program of another structure" "has no residual dimensions" "s['after']['decompile']['program'] = 'rasp_examples/max_identifier.rasp'"
bad_sweep "decompile --diff" "after.decompile.diff: not allowed in a sweep file (the stored --json holds the diff)" "s['after']['decompile']['diff'] = True"
bad_sweep "decompile not an object" "after.decompile: must be an object of \`tracc decompile\` options" "s['after']['decompile'] = 300"
bad_sweep "no compile program" "compile.program: missing" "del s['compile']['program']"
bad_sweep "grid not a list" "grid.lr: must be a non-empty list" "s['grid']['lr'] = 0.1"
expect_err "plan into a DIR holding another sweep" 1 "exists and holds something else" -- $S plan "$TMPD/kill0.json" -o "$D"
expect_err "plan: missing sweep file" 1 "nope.json" -- $S plan "$TMPD/nope.json" -o "$TMPD/x"
expect_err "plan without -o" 2 "-o DIR is required" -- $S plan tests/sweep/tiny.json
expect_err "run without a plan" 1 "plan.json" -- $S run "$TMPD"
expect_err "bad -j" 2 "--jobs must be" -- $S run "$D" -j 0
# --check-only (what plan runs): options checked, nothing loaded or written
for c in "finetune $TMPD/none.safetensors --task none.rasp -o $TMPD/co.safetensors --lr 0.1" \
         "prune $TMPD/none.safetensors --task none.rasp --top 1,2" "diff --top 3 $TMPD/a.safetensors $TMPD/b.safetensors" \
         "attn --block 0 $TMPD/a.safetensors a b" "probe --steps 10 $TMPD/a.safetensors"; do
    if $TRACC $c --check-only >/dev/null 2>&1 || $TRACC ${c%% *} --check-only ${c#* } >/dev/null 2>&1; then ok; else bad "--check-only: $c"; fi
done
if [ -e "$TMPD/co.safetensors" ]; then bad "finetune --check-only wrote its output"; else ok; fi
expect_err "finetune --check-only rejects" 2 "--lr must be a number" -- $TRACC finetune --check-only m.safetensors --task t.rasp -o o.safetensors --lr x
expect_err "prune --check-only rejects" 2 "--top" -- $TRACC prune --check-only m.safetensors --task t.rasp --top zz
expect_err "probe --check-only rejects" 2 "--steps" -- $TRACC probe --check-only --steps many m.safetensors
expect_err "bad --slurm-time" 2 "--slurm-time must be" -- $S plan tests/sweep/tiny.json -o "$TMPD/b1" --slurm-time "1 hour"
expect_err "bad --slurm-mem" 2 "--slurm-mem must be" -- $S plan tests/sweep/tiny.json -o "$TMPD/b1" --slurm-mem 2GB
expect_err "bad --slurm-partition" 2 "--slurm-partition must be" -- $S plan tests/sweep/tiny.json -o "$TMPD/b1" --slurm-partition 'a b'
expect_err "unknown subcommand" 2 "unknown subcommand" -- $S frobnicate
expect_err "option of another subcommand" 2 "option '--threads' does not apply" -- $S status "$D" --threads 2
expect_err "run: two dirs" 2 "expected one sweep directory" -- $S run "$D" "$D"
expect_err "job: unknown id" 1 "no job '9999'" -- $S job "$D" 9999
printf '{"a":\n' >"$TMPD/broken.json"
expect_err "plan: not JSON" 1 "broken.json:2:" -- $S plan "$TMPD/broken.json" -o "$TMPD/b1"
echo '[1]' >"$TMPD/arr.json"
expect_err "plan: not an object" 1 "a sweep file is a JSON object" -- $S plan "$TMPD/arr.json" -o "$TMPD/b1"
expect_err "plan: unwritable output" 1 "cannot create" -- $S plan tests/sweep/tiny.json -o /proc/nope/x
if [ -e "$TMPD/b1" ]; then bad "a rejected plan created its DIR"; else ok; fi

# ---- sweep redo: one analysis stage again on the finished jobs, with this binary -------------
R2="$TMPD/redo"
TRACC_ABS=$(readlink -f "$TRACC")
cp -r "$D" "$R2"
# an older decompile output (no idle check), a job not done, a job held by another process
python3 - "$R2" <<'EOF2' || bad "redo: prepare"
import json, os, sys
d = sys.argv[1]
p = os.path.join(d, "runs", "0001", "result.json")
r = json.load(open(p)); r["after"]["decompile"] = {"old": True}; json.dump(r, open(p, "w"))
os.remove(os.path.join(d, "runs", "0008", "result.json"))
EOF2
cp "$R2/runs/0001/result.json" "$TMPD/before.json"
if command -v flock >/dev/null 2>&1; then
    flock "$R2/runs/0002/lock" sleep 30 & HOLD=$!
    sleep 0.3
    $S redo "$R2" decompile --quiet >"$TMPD/redo.out" 2>&1; rc=$?
    kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null
    want="decompile run again on 6 jobs with $TRACC_ABS (version"
    tail="; 1 not done, 1 held by another process (skipped), 0 failed"
else
    echo "skip: no flock(1) for the held-job case"
    $S redo "$R2" decompile --quiet >"$TMPD/redo.out" 2>&1; rc=$?
    want="decompile run again on 7 jobs with $TRACC_ABS (version"
    tail="; 1 not done, 0 held by another process (skipped), 0 failed"
fi
if [ $rc -eq 0 ] && grep -qF "$want" "$TMPD/redo.out" && grep -qF "$tail" "$TMPD/redo.out"; then ok
else bad "redo decompile: status $rc, counts"; cat "$TMPD/redo.out"; fi
ARGV=$(python3 -c '
import json, shlex, sys
p = json.load(open(sys.argv[1] + "/plan.json"))
a = [s for s in p["jobs"][0]["stages"] if s["name"] == "decompile"][0]["argv"]
print(" ".join(shlex.quote(x) for x in a[1:]))' "$R2")
eval "$TRACC $ARGV" >"$TMPD/direct.json" 2>/dev/null
python3 - "$R2" "$TMPD/before.json" "$TMPD/direct.json" <<'EOF2' && ok || bad "redo: result.json's decompile replaced, the rest kept, the tracc recorded"
import json, os, sys
d, before, direct = sys.argv[1:]
r = json.load(open(os.path.join(d, "runs", "0001", "result.json"))); b = json.load(open(before))
assert r["after"]["decompile"] == json.load(open(direct)) and "idle" in r["after"]["decompile"]
assert set(r["redone"]) == {"decompile"} and r["redone"]["decompile"]["version"], r["redone"]
assert r["redone"]["decompile"]["cpu_s"] >= 0 and r["redone"]["decompile"]["wall_s"] > 0, r["redone"]
for k in ("id", "params", "config_sha256", "finetune"): assert r[k] == b[k], k
for k in b["after"]:
    if k != "decompile": assert r["after"][k] == b["after"][k], k
assert not os.path.exists(os.path.join(d, "runs", "0008", "result.json"))
log = open(os.path.join(d, "runs", "0001", "stderr.txt")).read()
assert "== tracc sweep redo decompile with" in log, log[-300:]
EOF2
expect_err "redo: the fine-tuning" 1 "cannot redo stage 'finetune': the fine-tuning is not an analysis" -- $S redo "$R2" finetune
expect_err "redo: a shared stage" 1 "cannot redo stage 'scratch': it is shared by several jobs" -- $S redo "$R2" scratch
expect_err "redo: no such stage" 1 "no stage 'nope' in the plan (its stages after the fine-tuning: prune, rollback, reft, scratch, diff, attn, probe, decompile)" -- $S redo "$R2" nope
expect_err "redo: not a sweep" 1 "plan.json" -- $S redo "$TMPD" decompile
mkdir -p "$TMPD/nojobs" && echo '{"name": "x"}' >"$TMPD/nojobs/plan.json"
for sub in "redo $TMPD/nojobs decompile" "job $TMPD/nojobs 0001" "status $TMPD/nojobs" "run $TMPD/nojobs"; do
    expect_err "$sub: a plan without jobs" 1 "nojobs/plan.json: not a sweep plan (no jobs)" -- $S $sub
done
expect_err "redo: no stage given" 2 "redo: expected DIR and a stage name" -- $S redo "$R2"
expect_err "redo: --threads" 2 "option '--threads' does not apply" -- $S redo "$R2" decompile --threads 2
expect_err "redo: -j 0" 2 "--jobs must be 1..1024" -- $S redo "$R2" decompile -j 0
# -j: one worker or three (each over every third job), the same results and counts
for j in 1 3; do
    cp -r "$D" "$TMPD/redo-j$j"
    $S redo "$TMPD/redo-j$j" probe -j $j --quiet >"$TMPD/redo-j$j.out" 2>&1 || bad "redo -j $j: status"
done
python3 - "$TMPD/redo-j1" "$TMPD/redo-j3" <<'EOF2' && ok || bad "redo -j 3: the results of -j 1, every job once"
import json, os, sys
a, b = sys.argv[1:]
ids = sorted(os.listdir(os.path.join(a, "runs")))
for i in ids:
    ra, rb = (json.load(open(os.path.join(d, "runs", i, "result.json"))) for d in (a, b))
    assert ra["after"]["probe"] == rb["after"]["probe"] and set(rb["redone"]) == {"probe"}, i
    log = open(os.path.join(b, "runs", i, "stderr.txt")).read()
    assert log.count("== tracc sweep redo probe with") == 1, (i, log[-300:])
EOF2
if grep -qF "probe run again on 8 jobs" "$TMPD/redo-j3.out" && grep -qF "0 failed" "$TMPD/redo-j3.out"; then ok
else bad "redo -j 3: the counts of every worker summed"; cat "$TMPD/redo-j3.out"; fi
# options after --: added to the planned command, checked first, recorded; a failing one keeps the results
R3="$TMPD/redo-extra"
cp -r "$D" "$R3"
cp "$R3/runs/0003/result.json" "$TMPD/extra-before.json"
expect_err "redo --: an option the sweep sets" 2 "the options after --: -o: the sweep sets it" -- $S redo "$R3" prune -- -o "$TMPD/x.safetensors"
expect_err "redo --: rollback's original" 2 "the options after --: --rollback: the sweep sets it" -- $S redo "$R3" rollback -- --rollback x
expect_err "redo --: an option the stage refuses" 2 "the options after --: tracc prune refused them (exit 2): tracc prune: unknown option '--bogus'" -- $S redo "$R3" prune -- --bogus
expect_err "redo --: a malformed reset" 2 "tracc prune refused them (exit 2)" -- $S redo "$R3" prune -- --reset 'blocks.0.attn.W_V['
expect_err "redo --: a tensor the models lack" 1 "the model has no tensor 'blocks.9.attn.W_V'" -- $S redo "$R3" prune -j 2 -- --reset blocks.9.attn.W_V
if cmp -s "$R3/runs/0003/result.json" "$TMPD/extra-before.json" && [ ! -e "$TMPD/x.safetensors" ]; then ok
else bad "redo --: a refused or failing option changed a result or wrote a file"; fi
$S redo "$R3" prune --quiet -- --reset blocks.0.attn.W_V --reset 'pos_embed.W_pos[2, 0]' >"$TMPD/extra.out" 2>&1 || bad "redo --: status"
python3 - "$R3" "$TMPD/extra-before.json" <<'EOF2' && ok || bad "redo --: every job's prune has the resets, the options recorded, the rest kept"
import json, os, sys
d, before = sys.argv[1:]
b = json.load(open(before))
for i in sorted(os.listdir(os.path.join(d, "runs"))):
    r = json.load(open(os.path.join(d, "runs", i, "result.json")))
    assert [x["reset"] for x in r["after"]["prune"]["resets"]] == ["blocks.0.attn.W_V", "pos_embed.W_pos[2, 0]"], i
    assert r["redone"]["prune"]["extra"] == ["--reset", "blocks.0.attn.W_V", "--reset", "pos_embed.W_pos[2, 0]"], i
    if i == "0003":
        p, q = dict(r["after"]["prune"]), dict(b["after"]["prune"])
        del p["resets"]
        assert p == q, "the planned part of prune changed"
        assert r["after"]["rollback"] == b["after"]["rollback"] and r["finetune"] == b["finetune"]
EOF2
# --skip-redone: only the jobs not yet redone with these options (0005's record removed: it alone runs)
python3 - "$R3" <<'EOF2' || bad "redo --skip-redone: prepare"
import json, os, sys
p = os.path.join(sys.argv[1], "runs", "0005", "result.json")
r = json.load(open(p)); del r["redone"]; json.dump(r, open(p, "w"))
EOF2
$S redo "$R3" prune --quiet --skip-redone -- --reset blocks.0.attn.W_V --reset 'pos_embed.W_pos[2, 0]' >"$TMPD/skip.out" 2>&1
if grep -qF "prune run again on 1 job with" "$TMPD/skip.out" && grep -qF ", 7 redone before with these options (skipped)" "$TMPD/skip.out"; then ok
else bad "redo --skip-redone: the counts"; cat "$TMPD/skip.out"; fi
$S redo "$R3" prune --quiet --skip-redone -- --reset blocks.0.attn.W_V >"$TMPD/skip.out" 2>&1
if grep -qF "prune run again on 8 jobs with" "$TMPD/skip.out" && grep -qF ", 0 redone before with these options" "$TMPD/skip.out"; then ok
else bad "redo --skip-redone: other options are not skipped"; cat "$TMPD/skip.out"; fi
expect_err "--skip-redone outside redo" 2 "option '--skip-redone' does not apply" -- $S run "$R3" --skip-redone
$S redo "$R3" prune --quiet -- --reset blocks.0.attn.W_V --reset 'pos_embed.W_pos[2, 0]' >/dev/null 2>&1 || bad "redo --: again"
if $TRACC report "$R3" -o "$TMPD/extra-rep" >/dev/null 2>&1 && grep -qF '| blocks.0.attn.W_V | 231 | 2 |' "$TMPD/extra-rep/report.md"; then ok
else bad "redo --: the report's named-ablation table"; grep -F -A5 'Named ablations' "$TMPD/extra-rep/report.md" | head; fi
# the redo's own cost: beside the sweep's in the report, not in it
$TRACC report --json "$R3" >"$TMPD/extra-rep.json" 2>/dev/null
python3 - "$TMPD/extra-rep.json" "$R3" <<'EOF2' && ok || bad "redo: its cost in the report, apart from the sweep's"
import json, os, sys
d = json.load(open(sys.argv[1]))
c = (d["sweeps"][0] if "sweeps" in d else d["sweep"])["cost"]
rd = c["redone"]
want = sum(json.load(open(os.path.join(sys.argv[2], "runs", i, "result.json")))["redone"]["prune"]["cpu_s"]
           for i in os.listdir(os.path.join(sys.argv[2], "runs")))
assert rd["runs"] == 8 and set(rd["stages_cpu_s"]) == {"prune"} and abs(rd["cpu_s"] - want) < 1e-6, rd
EOF2
if grep -qF 'Stages run again afterwards by `tracc sweep redo` (prune; the latest redo of each stage per job): 8 runs' "$TMPD/extra-rep/report.md"; then ok
else bad "redo: the report's Compute line on the redone stages"; grep -A3 '## Compute' "$TMPD/extra-rep/report.md"; fi

# ---- sweep pack: the results without the models; reported on anywhere, copied back to finish ----
P="$TMPD/tiny.pack"
expect_err "pack" 0 "tracc sweep pack: $P: 8 jobs (8 done, 0 failed, 0 running, 0 pending);" -- $S pack "$D" -o "$P"
if [ "$(cat "$TMPD/out")" = "$P" ]; then ok; else bad "pack: stdout is not the pack's path"; cat "$TMPD/out"; fi
if [ -z "$(find "$P" -name '*.safetensors*' -o -name lock)" ]; then ok; else bad "pack holds models or locks"; fi
# every other file of the sweep, byte for byte
(cd "$D" && find . -type f ! -name '*.safetensors*' ! -name lock | sort) >"$TMPD/pack-want"
(cd "$P" && find . -type f | sort) >"$TMPD/pack-got"
if cmp -s "$TMPD/pack-want" "$TMPD/pack-got"; then ok; else bad "pack: not the sweep's files"; diff "$TMPD/pack-want" "$TMPD/pack-got" | head; fi
while read -r f; do cmp -s "$D/$f" "$P/$f" || bad "pack: $f differs"; done <"$TMPD/pack-want"
expect_out "status of a pack" 0 "tiny-counter: 8 jobs: 8 done, 0 running, 0 failed, 0 pending" -- $S status "$P"
# the report of the pack is the sweep's (its directory's name aside)
if $TRACC report --json "$D" >"$TMPD/rep-d.json" 2>/dev/null && $TRACC report --json "$P" >"$TMPD/rep-p.json" 2>/dev/null &&
   sed "s#tiny\.pack#tiny#g" "$TMPD/rep-p.json" | cmp -s - "$TMPD/rep-d.json"; then ok
else bad "pack: its report is not the sweep's"; fi
# bad uses: nothing written, no temporary left
expect_err "pack: OUT exists" 1 "exists already" -- $S pack "$D" -o "$P"
expect_err "pack: OUT inside DIR" 1 "inside the sweep directory" -- $S pack "$D" -o "$D/p"
if [ ! -e "$D/p" ]; then ok; else bad "pack into DIR left $D/p"; fi
expect_err "pack: not a sweep" 1 "plan.json" -- $S pack "$TMPD" -o "$TMPD/notasweep.pack"
expect_err "pack: no parent" 1 "cannot create" -- $S pack "$D" -o "$TMPD/no/such/p"
expect_err "pack without -o" 2 "-o OUT is required" -- $S pack "$D"
expect_err "pack: two dirs" 2 "expected one sweep directory" -- $S pack "$D" "$P" -o "$TMPD/p2"
expect_err "-o for status" 2 "does not apply" -- $S status "$D" -o "$TMPD/p3"
if [ -z "$(find "$TMPD" -maxdepth 2 -name '.tracc-pack-*')" ] && [ ! -e "$TMPD/notasweep.pack" ]; then ok
else bad "pack left a temporary or a half pack"; fi
# a partial sweep packed, the sweep lost, planned again at its path, the pack copied in:
# the packed jobs are not run again, the others are
C="$TMPD/cont"
$S plan tests/sweep/tiny.json -o "$C" --quiet >/dev/null 2>&1 || bad "pack: plan cont"
$S job "$C" 0001 --quiet >/dev/null 2>&1 && $S job "$C" 0002 --quiet >/dev/null 2>&1 || bad "pack: two jobs"
$S pack "$C" -o "$TMPD/cont.pack" --quiet >/dev/null 2>&1 || bad "pack: partial"
rm -rf "$C"
$S plan tests/sweep/tiny.json -o "$C" --quiet >/dev/null 2>&1 || bad "pack: plan cont again"
cp -R "$TMPD/cont.pack/runs" "$TMPD/cont.pack/shared" "$C/" || bad "pack: copy back"
expect_out "pack copied back: status" 0 "tiny-counter: 8 jobs: 2 done, 0 running, 0 failed, 6 pending" -- $S status "$C"
expect_err "pack copied back: run" 0 "8 of 8 jobs done" -- $S run "$C" -j 2
for j in 0001 0002; do
    if cmp -s "$C/runs/$j/result.json" "$TMPD/cont.pack/runs/$j/result.json"; then ok; else bad "pack: job $j was run again"; fi
done
if [ -f "$C/runs/0003/model.safetensors" ]; then ok; else bad "pack: the jobs not packed did not run"; fi
# copied into the same sweep planned at another path, from a checkout at another path, the
# results are still this configuration's (the hash names no place): done, not run again
O="$TMPD/elsewhere"
mkdir -p "$TMPD/clone/tests/sweep" && cp -R rasp_examples "$TMPD/clone/" && cp tests/sweep/tiny.json "$TMPD/clone/tests/sweep/"
$S plan "$TMPD/clone/tests/sweep/tiny.json" -o "$O" --quiet >/dev/null 2>&1 || bad "pack: plan elsewhere"
cp -R "$TMPD/cont.pack/runs" "$O/" || bad "pack: copy elsewhere"
expect_out "results planned elsewhere are done" 0 "tiny-counter: 8 jobs: 2 done, 0 running, 0 failed, 6 pending" -- $S status "$O"
python3 - "$C/plan.json" "$O/plan.json" <<'PY' && ok || bad "placeless hashes"
import json, sys
a, b = (json.load(open(p))["jobs"] for p in sys.argv[1:3])
assert [j["config_sha256"] for j in a] == [j["config_sha256"] for j in b]
assert all(x["config_sha256_paths"] != y["config_sha256_paths"] for x, y in zip(a, b))
assert all(x["config_sha256"] != x["config_sha256_paths"] for x in a)
PY
$S job "$O" 0001 --quiet >/dev/null 2>&1 || bad "pack: job elsewhere"
if cmp -s "$O/runs/0001/result.json" "$TMPD/cont.pack/runs/0001/result.json" && [ ! -e "$O/runs/0001/model.safetensors" ]; then ok
else bad "a result planned elsewhere was run again"; fi
# another configuration (one setting changed) is not done
sed 's/"steps": 40/"steps": 41/' tests/sweep/tiny.json >"$TMPD/clone/tests/sweep/tiny41.json"
O2="$TMPD/other-config"
$S plan "$TMPD/clone/tests/sweep/tiny41.json" -o "$O2" --quiet >/dev/null 2>&1 || bad "pack: plan tiny41"
cp -R "$TMPD/cont.pack/runs" "$O2/" || bad "pack: copy tiny41"
expect_out "results of another configuration are not done" 0 "tiny-counter: 8 jobs: 0 done, 0 running, 0 failed, 8 pending" -- $S status "$O2"
# a result of a sweep planned before the placeless hash (it carries config_sha256_paths) is done,
# and its pack carries the placeless hash, so it is done wherever the sweep is planned
L="$TMPD/legacy"
$S plan tests/sweep/tiny.json -o "$L" --quiet >/dev/null 2>&1 || bad "legacy: plan"
cp -R "$C/runs" "$L/" || bad "legacy: copy"
python3 - "$L" <<'PY' || bad "legacy: rewrite"
import json, sys
d = sys.argv[1]
for j in json.load(open(d + "/plan.json"))["jobs"]:
    p = "%s/%s/result.json" % (d, j["dir"])
    r = json.load(open(p)); r["config_sha256"] = j["config_sha256_paths"]; json.dump(r, open(p, "w"))
PY
expect_out "a result with the hash of its paths is done" 0 "tiny-counter: 8 jobs: 8 done, 0 running, 0 failed, 0 pending" -- $S status "$L"
expect_err "pack gives it the placeless hash" 0 "8 results given the configuration hash" -- $S pack "$L" -o "$TMPD/legacy.pack"
O3="$TMPD/legacy-elsewhere"
$S plan "$TMPD/clone/tests/sweep/tiny.json" -o "$O3" --quiet >/dev/null 2>&1 || bad "legacy: plan elsewhere"
cp -R "$TMPD/legacy.pack/runs" "$O3/" || bad "legacy: copy elsewhere"
expect_out "its pack is done elsewhere" 0 "tiny-counter: 8 jobs: 8 done, 0 running, 0 failed, 0 pending" -- $S status "$O3"

finish
