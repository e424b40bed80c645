#!/bin/sh
# tests/cli/paper.sh — the paper's sweeps (paper/*.json, paper/quick/*.json) plan: every
# file passes `tracc sweep plan`'s checks (options of every stage through the real parsers,
# paths, the grid), has the job count docs/reproduction.md states, names its paper table,
# defines the four eval sets Table 3 needs, and puts the program into every job's params.
# Nothing is run. The copies differ from the files only in compile.verify = "none" (the
# compile-time check against the interpreter is what makes planning slow; it is tested
# elsewhere) and in absolute paths (the copies live in a temporary folder).
. tests/lib.sh
export OPENBLAS_NUM_THREADS=1
R=$(pwd)

# name  file  jobs  paper table  program
while read -r sw file jobs table prog; do
    copy="$TMPD/$sw.json"
    if python3 - "$R/$file" "$copy" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
d = json.load(open(src))
base = os.path.dirname(src)
def absp(v):
    if isinstance(v, list):
        return [absp(x) for x in v]
    if not isinstance(v, str):
        return v
    parts = []
    for tok in v.split(","):
        k, eq, p = tok.rpartition("=")
        if p.endswith(".rasp"):
            p = os.path.normpath(os.path.join(base, p))
        parts.append(k + eq + p)
    return ",".join(parts)
for sec in ("compile", "finetune", "grid"):
    for k in d[sec]:
        d[sec][k] = absp(d[sec][k])
d["compile"]["verify"] = "none"
json.dump(d, open(dst, "w"), indent=1)
PY
    then ok; else bad "$file: could not be read as JSON"; continue; fi
    expect_err "plan $file" 0 "$jobs jobs" -- "$TRACC" sweep plan "$copy" -o "$TMPD/$sw"
    if python3 - "$TMPD/$sw" "$jobs" "$table" "$prog" "$R/$file" <<'PY'
import json, os, sys
d, jobs, table, prog, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
plan = json.load(open(os.path.join(d, "plan.json")))
assert plan["paper"] == table, plan["paper"]
assert len(plan["jobs"]) == jobs, len(plan["jobs"])
assert len(open(os.path.join(d, "jobs.txt")).read().splitlines()) == jobs
orig = json.load(open(src))
assert isinstance(orig.get("comment"), str) and orig["comment"], "no comment"
assert orig["finetune"]["preset"] == "jain2023"
names = sorted(e.split("=", 1)[0] for e in orig["finetune"]["eval"])
assert names == ["ft0", "ft1", "pt0", "pt1"], names
seeds = set()
cells = set()
for j in plan["jobs"]:
    p = j["params"]
    assert os.path.basename(p["program"]) == prog, p
    assert "lr" in p and "spurious-rate" in p and "seed" in p, p
    seeds.add(p["seed"])
    cells.add(tuple(sorted((k, str(v)) for k, v in p.items() if k != "seed")))
    stages = [s["name"] for s in j["stages"]]
    want = {"prune", "attn", "diff", "probe", "decompile"}
    if not os.path.basename(src).startswith("counter"):   # the quick Counter sweeps skip these (paper/README.md)
        want |= {"rollback", "reft", "scratch"}
    assert stages[0] == "finetune" and want <= set(stages), stages
    argv = j["stages"][0]["argv"]
    assert "--preset" in argv and argv[argv.index("--preset") + 1] == "jain2023"
assert len(cells) * len(seeds) == jobs, (len(cells), len(seeds))
PY
    then ok; else bad "$file: plan.json not as expected"; fi
done <<EOF2
counter paper/jain2023-counter.json 84 jain2023-counter count_a.rasp
counterb paper/jain2023-counter-balanced.json 42 jain2023-counter count_a.rasp
counterf paper/jain2023-counter-fused.json 84 jain2023-counter count_a.rasp
counterfh paper/jain2023-counter-frozen-head.json 6 jain2023-counter count_a.rasp
counterof paper/jain2023-counter-one-frozen.json 6 jain2023-counter count_a.rasp
max paper/jain2023-max.json 84 jain2023-max max_identifier.rasp
maxn paper/jain2023-max-noise.json 84 jain2023-max max_identifier.rasp
qcounter1 paper/quick/counter-1e-1.json 4 jain2023-counter count_a.rasp
qcounter2 paper/quick/counter-1e-2.json 2 jain2023-counter count_a.rasp
qcounter3 paper/quick/counter-1e-3.json 4 jain2023-counter count_a.rasp
qcounterf paper/quick/counter-fused.json 4 jain2023-counter count_a.rasp
qmax paper/quick/max.json 12 jain2023-max max_identifier.rasp
qmaxn paper/quick/max-noise.json 4 jain2023-max max_identifier.rasp
EOF2

# The full Counter sweep is the paper's whole grid: 4 learning rates x 7 C_Tr x 3 seeds,
# compiled as Tracr compiles it (--no-fuse); the variants cover eta 1e-1 and 1e-2.
if python3 - "$TMPD" <<'PY'
import json, os, sys
t = sys.argv[1]
g = json.load(open(os.path.join(t, "counter", "plan.json")))["grid"]
assert g["lr"] == [0.1, 0.01, 0.001, 0.0001] and g["spurious-rate"] == [0, 0.2, 0.5, 0.6, 0.8, 0.9, 1] and g["seed"] == [1, 2, 3]
m = json.load(open(os.path.join(t, "max", "plan.json")))["grid"]
assert m["lr"] == g["lr"] and m["spurious-rate"] == g["spurious-rate"] and m["seed"] == g["seed"]
f = json.load(open(os.path.join(t, "counterf", "plan.json")))["grid"]
assert f["lr"] == [0.1, 0.01] and f["no-fuse"] == [False] and f["conditioning"] == ["tracr", "balanced"]
h = json.load(open(os.path.join(t, "counterfh", "plan.json")))
assert h["grid"]["lr"] == [0.1] and h["grid"]["spurious-rate"] == [0, 1]
for j in h["jobs"]:
    a = j["stages"][0]["argv"]
    assert a[a.index("--freeze") + 1] == "blocks.0.attn.*", a
b = json.load(open(os.path.join(t, "counterb", "plan.json")))["grid"]
assert b["lr"] == [0.1, 0.01] and b["no-fuse"] == [True] and b["conditioning"] == ["balanced"]
for name, lr in (("qcounter1", 0.1), ("qcounter2", 0.01), ("qcounter3", 0.001)):
    q = json.load(open(os.path.join(t, name, "plan.json")))["grid"]
    assert q["lr"] == [lr] and q["spurious-rate"] == [0, 1] and q["seed"] == ([1] if lr == 0.01 else [1, 2]), (name, q)
n = json.load(open(os.path.join(t, "maxn", "plan.json")))["grid"]
assert n["lr"] == g["lr"] and n["spurious-rate"] == g["spurious-rate"] and n["seed"] == g["seed"]
for name, sigma in (("max", 1e-4), ("maxn", 1e-3), ("qmax", 1e-4), ("qmaxn", 1e-3)):
    argv = json.load(open(os.path.join(t, name, "plan.json")))["jobs"][0]["stages"][0]["argv"]
    assert float(argv[argv.index("--init-noise") + 1]) == sigma, (name, argv)
qm = json.load(open(os.path.join(t, "qmax", "plan.json")))["grid"]
assert qm["lr"] == [0.01, 0.0001] and qm["spurious-rate"] == [0, 1]
PY
then ok; else bad "the paper sweeps' grids are not the paper's"; fi

# The named ablations of the sweep files (prune "reset") name tensors of each start model, all
# zeros when compiled (paper/README.md: they only carry what fine-tuning puts there)
if python3 - "$TMPD" "$TRACC" <<'PY'
import json, os, subprocess, sys
t, tracc = sys.argv[1:]
for name in ("counter", "counterb", "counterf", "max", "maxn"):
    plan = json.load(open(os.path.join(t, name, "plan.json")))
    done = set()
    for j in plan["jobs"]:
        st = {s["name"]: s["argv"] for s in j["stages"]}
        start = st["finetune"][2]
        if start in done: continue
        done.add(start)
        a = st["prune"]
        specs = [a[i + 1] for i in range(len(a)) if a[i] == "--reset"]
        assert len(specs) >= 2, (name, a)
        argv = [tracc, "prune", start] + a[3:] + ["--eval-size", "20", "--grad-samples", "8", "--each", "1"]
        out = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        assert out.returncode == 0, (name, out.stderr)
        rs = json.loads(out.stdout)["resets"]
        assert [r["reset"] for r in rs] == specs, (name, rs)
        for r in rs: assert r["params"] > 0 and r["changed"] == 0, (name, r)
    assert len(done) == (2 if name == "counterf" else 1), (name, done)
PY
then ok; else bad "the paper sweeps' named ablations: a tensor missing or not zero when compiled"; fi

# every paper sweep pins the OpenBLAS kernel its results were made on (docs/reproduction.md,
# "To the bit"), so any machine with AVX2 trains the same bits
for f in paper/*.json paper/quick/*.json; do
    if python3 -c "import json, sys; assert json.load(open(sys.argv[1])).get('blas-core') == 'Haswell'" "$f"; then ok
    else bad "$f: blas-core is not Haswell"; fi
done
# bench/blas_kernels.sh (docs/reproduction.md's seed count): one seed on both kernels
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    if bash bench/blas_kernels.sh -n 1 "$TRACC" >"$TMPD/bk.out" 2>&1 && grep -q '^learned (ft >= 90%): Haswell [01]/1, ' "$TMPD/bk.out"; then ok
    else bad "blas_kernels.sh"; cat "$TMPD/bk.out"; fi
fi

# paper/results (the packed sweeps behind docs/reproduction.md): `make paper-results` unpacks
# them (no models, no locks) and reports; every packed Counter run's regime is the letter the
# page's grid shows for it
if ls paper/results/*/*.tar.xz >/dev/null 2>&1; then
    if TRACC="$TRACC" sh paper/results.sh "$TMPD/res" >"$TMPD/res.out" 2>&1; then ok
    else bad "paper/results.sh"; cat "$TMPD/res.out"; fi
    if [ -z "$(find "$TMPD/res/sweeps" -name '*.safetensors*' -o -name lock)" ]; then ok; else bad "paper/results holds models or locks"; fi
fi
if [ -f "$TMPD/res/sweeps/jain2023-counter/plan.json" ]; then
    "$TRACC" report --json "$TMPD/res/sweeps/jain2023-counter" >"$TMPD/results.json" 2>"$TMPD/err" || bad "report of the packed Counter"
    if python3 - "$TMPD/results.json" "$TMPD/res/sweeps/jain2023-counter/plan.json" docs/reproduction.md <<'PY'
import json, math, os, re, sys
rep, plan, page = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), open(sys.argv[3]).read()
seed = {j["id"]: j["params"]["seed"] for j in plan["jobs"]}
done = sum(os.path.exists(os.path.join(os.path.dirname(sys.argv[2]), j["dir"], "result.json")) for j in plan["jobs"])
assert rep["sweep"]["jobs"]["done"] == done > 0, (rep["sweep"]["jobs"], done)
# the grid of "The full Counter sweep": | 1e-1 | LLL | ... | per C_Tr column, seeds 1, 2, 3
sec = page[page.index("## The full Counter sweep"):]
top = sec.index("| η | C_Tr 0 |")
cols = ["0", "0.2", "0.5", "0.6", "0.8", "0.9", "1"]
grid = {m.group(1): [c.strip() for c in m.group(2).split("|")][:7]
        for m in re.finditer(r"^\| (1e-\d) \| ([^\n]*)$", sec[top:sec.index("\n\n", top)], re.M)}
letter = {"learned": "L", "wrapper": "W", "collapsed": "c", "partly-a": "p", "learning": "l", "unchanged": "u"}
checked = 0
for cell in rep["cells"]:
    eta = "1e-%d" % round(-math.log10(cell["params"]["lr"]))
    col = cols.index("%g" % cell["params"]["spurious-rate"])
    for r in cell["run_regimes"]:
        want = grid[eta][col][seed[r["job"]] - 1]
        assert want == letter[r["regime"]], (eta, cols[col], r, grid[eta][col])
        checked += 1
assert checked == done, (checked, done)
PY
    then ok; else bad "docs/reproduction.md's Counter grid differs from paper/results"; fi
fi

# make paper/paper-quick refuse a bad mode and a missing OUT (usage, exit 2)
# the headline run.sh prints after the report: one line per sweep compared with the paper
"$TRACC" report tests/report_fixtures/partial >"$TMPD/fx.md" 2>/dev/null || bad "report on the fixture"
expect_out "summary.sh: regimes" 0 "fixture-counter: same regime as the paper in 0 of 4 cells compared." -- sh paper/summary.sh "$TMPD/fx.md"
expect_err "summary.sh without a file" 2 "usage" -- sh paper/summary.sh
expect_err "run.sh without a mode" 2 "usage" -- sh paper/run.sh
expect_err "run.sh without OUT" 2 "usage" -- sh paper/run.sh quick
expect_err "run.sh with an unknown sweep" 2 "PAPER_SWEEPS: no sweep 'nope'" -- env PAPER_SWEEPS=nope sh paper/run.sh full "$TMPD/none"
[ ! -e "$TMPD/none" ] && ok || bad "run.sh with an unknown sweep left its OUT behind"
# paper/results.sh and PAPER_FROM_RESULTS=1, on a copy of paper/'s scripts whose
# "jain2023-counter" is the tiny test sweep: two jobs run and packed as an archive elsewhere; the
# report of the archive has them; `run.sh full` takes them from it (their results byte for byte,
# no model made for them) and runs the six others
P="$TMPD/p"
mkdir -p "$P/results/jain2023-counter" && cp paper/run.sh paper/unpack.sh paper/summary.sh paper/results.sh "$P/" ||
    bad "fixture paper folder"
sed "s#\.\./\.\./rasp_examples#$R/rasp_examples#g" tests/sweep/tiny.json >"$P/jain2023-counter.json"
A="$TMPD/packed-sweep"
"$TRACC" sweep plan "$P/jain2023-counter.json" -o "$A" --quiet >/dev/null 2>&1 || bad "fixture: plan"
for j in 0001 0002; do "$TRACC" sweep job "$A" $j >/dev/null 2>&1 || bad "fixture: job $j"; done
"$TRACC" sweep pack "$A" -o "$TMPD/pk" --quiet >/dev/null 2>&1 &&
    tar -C "$TMPD/pk" -cJf "$P/results/jain2023-counter/2026-01-01.tar.xz" . || bad "fixture: archive"
expect_err "results.sh: the archive's report" 0 "2 done, 0 running, 0 failed, 6 pending" -- env TRACC="$TRACC" sh "$P/results.sh" "$TMPD/pres"
expect_err "run.sh takes the packed jobs" 0 "jain2023-counter: 2 finished jobs copied from paper/results, 2 jobs done now" -- \
    env TRACC="$TRACC" PAPER_FROM_RESULTS=1 PAPER_SWEEPS=jain2023-counter sh "$P/run.sh" full "$TMPD/pout" 2
for j in 0001 0002; do
    if cmp -s "$TMPD/pk/runs/$j/result.json" "$TMPD/pout/jain2023-counter/runs/$j/result.json" &&
       [ ! -e "$TMPD/pout/jain2023-counter/runs/$j/model.safetensors" ]; then ok
    else bad "PAPER_FROM_RESULTS: job $j was run again"; fi
done
expect_out "run.sh with the packed jobs: all done" 0 "tiny-counter: 8 jobs: 8 done, 0 running, 0 failed, 0 pending" -- \
    "$TRACC" sweep status "$TMPD/pout/jain2023-counter"
# an archive holding a model is refused
cp "$A/runs/0001/model.safetensors" "$TMPD/pk/runs/0001/" && tar -C "$TMPD/pk" -cJf "$P/results/jain2023-counter/2026-01-02.tar.xz" .
expect_err "results.sh: an archive with a model" 1 "holds a model or a lock" -- env TRACC="$TRACC" sh "$P/results.sh" "$TMPD/pres2"
expect_err "run.sh: an archive with a model" 1 "holds a model or a lock" -- \
    env TRACC="$TRACC" PAPER_FROM_RESULTS=1 PAPER_SWEEPS=jain2023-counter sh "$P/run.sh" full "$TMPD/pout2" 2
# bench/step_cost.sh (the per-step CPU cost docs/benchmarks.md quotes): it runs the three models
# and prints one row each with the trained model's hash; two runs of one binary hash alike.
# Timings are printed, never checked.
if bash bench/step_cost.sh -n 3 -r 1 "$TRACC" "$TRACC" >"$TMPD/steps.tsv" 2>"$TMPD/steps.err"; then ok; else bad "step_cost.sh failed: $(cat "$TMPD/steps.err")"; fi
if awk -F'\t' 'NR > 1 { n++; if (length($5) != 16 || $5 ~ /[^0-9a-f]/) bad = 1; h[$1] = h[$1] " " $5 }
    END { for (m in h) { split(h[m], a, " "); if (a[1] != a[2]) bad = 1 } exit !(n == 6 && !bad) }' "$TMPD/steps.tsv"
then ok; else bad "step_cost.sh: expected 6 rows, a hash each, equal per model"; cat "$TMPD/steps.tsv"; fi
expect_err "step_cost.sh with a missing binary" 1 "no tracc binary" -- bash bench/step_cost.sh "$TMPD/nope"
finish
