# report.sh — tracc report on sweep directories: the hand-made partial sweep in
# tests/report_fixtures/partial (real tracc outputs; 8 done, 2 failed, 2 pending: see
# tests/report_fixtures/make.sh) and, made here, one sweep per paper table whose runs end
# exactly at the paper's numbers. Every mean and std is recomputed from the raw per-run
# values, the values from the runs' result.json files, the paper's numbers from
# paper/jain2023_table3.tsv, the regimes with bench/finetune_grid.sh's own awk rule.
. tests/lib.sh

T=$TMPD
FX=tests/report_fixtures/partial
TSV=paper/jain2023_table3.tsv

# py NAME CODE ARGS...: python code with sys.argv[1:] = ARGS; must exit 0.
py() {
    name=$1; code=$2; shift 2
    if ! command -v python3 >/dev/null 2>&1; then ok; return; fi
    if ! python3 -c "import json, sys, math, os
$code" "$@" 2>"$T/pyerr"; then bad "$name"; cat "$T/pyerr"; return; fi
    ok
}

# ---- usage -------------------------------------------------------------------------------------
expect_out "help" 0 "usage: tracc report [options] DIR [DIR2 ...]" -- sh -c "$TRACC report --help | head -n 1"
expect_err "no DIR" 2 "expected a sweep directory" -- $TRACC report
expect_err "unknown option" 2 "unknown option '--bogus'" -- $TRACC report --bogus $FX
expect_err "-o without value" 2 "needs a value" -- $TRACC report $FX -o

# ---- the partial sweep: --json ------------------------------------------------------------------
$TRACC report --json $FX >$T/r.json 2>$T/r.err
if [ $? -ne 0 ]; then bad "report --json: status"; cat $T/r.err; else ok; fi
if [ -s $T/r.err ]; then bad "report --json writes to stderr"; cat $T/r.err; else ok; fi

py "jobs counted: 8 done, 2 failed, 2 pending; 4 cells without seed" "
d = json.load(open(sys.argv[1]))
assert d['jobs'] == {'done': 8, 'failed': 2, 'pending': 2, 'running': 0}, d['jobs']
assert d['sweep']['name'] == 'fixture-counter' and d['sweep']['paper'] == 'jain2023-counter'
assert len(d['cells']) == 4
for c in d['cells']: assert 'seed' not in c['params'] and set(c['params']) == {'lr', 'spurious-rate'}
assert [(c['jobs']['done'], c['jobs']['failed'], c['jobs']['pending']) for c in d['cells']] == [(3,0,0), (2,1,0), (1,0,2), (2,1,0)]
" $T/r.json

py "every aggregate: mean and sample std (n-1) recomputed from its values" "
d = json.load(open(sys.argv[1]))
count = 0
def check(a, where):
    global count
    v = a['values']; n = len(v)
    assert a['n'] == n, where
    if n == 0: assert a['mean'] is None, where; return
    m = sum(v) / n
    assert abs(a['mean'] - m) <= 1e-12 * max(1, abs(m)), (where, a['mean'], m)
    if n < 2: assert a['std'] is None, where
    else:
        s = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
        assert abs(a['std'] - s) <= 1e-12 * max(1, s), (where, a['std'], s)
    count += 1
def walk(o, where):
    if isinstance(o, dict):
        if 'values' in o and 'mean' in o and 'std' in o and 'n' in o: check(o, where)
        for k, v in o.items(): walk(v, where + '.' + k)
    elif isinstance(o, list):
        for i, v in enumerate(o): walk(v, where + '[%d]' % i)
walk(d, 'report')
assert count > 200, count
" $T/r.json

py "values are the runs' own numbers (result.json), in done_jobs order; argmax labelled" "
d = json.load(open(sys.argv[1])); fx = sys.argv[2]
plan = json.load(open(os.path.join(fx, 'plan.json')))
res = {}
for j in plan['jobs']:
    p = os.path.join(fx, j['dir'], 'result.json')
    if os.path.exists(p): res[j['id']] = json.load(open(p))
for c in d['cells']:
    ids = c['done_jobs']
    mine = [j['id'] for j in plan['jobs'] if j['id'] in res and all(j['params'][k] == v for k, v in c['params'].items())]
    assert ids == mine, (ids, mine)
    assert c['seeds'] == [res[i]['params']['seed'] for i in ids]
    for name, e in c['evals'].items():
        assert e['accuracy'] == 'argmax'
        assert e['values'] == [res[i]['finetune']['eval'][name]['acc'] for i in ids], name
        assert e['loss']['values'] == [res[i]['finetune']['eval'][name]['loss'] for i in ids]
    assert c['finetune']['train_loss']['values'] == [res[i]['finetune']['train_loss'] for i in ids]
    # reFT / Scr.+FT: steps to the target over the runs that reached it
    for key in ('reft', 'scratch'):
        st = [res[i]['after'][key]['stopped_at'] for i in ids]
        assert c[key]['stopped_at']['values'] == [s for s in st if s is not None], key
        assert c[key]['reached'] == sum(s is not None for s in st) and c[key]['runs'] == len(ids)
    # pruning: task accuracy at each K over the runs
    for q, k in enumerate(c['prune']['k']):
        want = []
        for i in ids:
            pr = res[i]['after']['prune']
            row = [r for r in [pr['base']] + pr['rows'] if r['k'] == k][0]
            want.append(row['acc']['task'])
        assert c['prune']['task'][q]['values'] == want, (k, want)
    assert c['prune']['k'] == [0, 1, 2, 4, 8]
    w0 = c['prune']['weights'][0]
    assert w0['param'] and w0['meaning'] and w0['runs'] >= 1 and len(w0['ranks']) == w0['runs']
    assert c['rollback']['found'] == sum(res[i]['after']['rollback']['found_k'] is not None for i in ids)
    assert len(c['attn']['heads']) == 2 and c['attn']['runs'] == len(ids)
    assert c['diff']['runs'] == len(ids) and c['diff']['relative']['values'] == [res[i]['after']['diff']['relative'] for i in ids]
    assert c['probe']['sops'][0]['sop'] == 'count_a'
    assert set(c['curves']['eval']) == {'pt1', 'ft1', 'pt0', 'ft0'} and c['curves']['band'] == 'min-max over runs'
    cv = c['curves']['eval']['pt0']
    assert all(lo <= m + 1e-12 and m <= hi + 1e-12 for m, lo, hi in zip(cv['mean'], cv['min'], cv['max']))
    assert cv['step'][0] == 0 and cv['step'][-1] == 60 and cv['n'][-1] == len(ids)
" $T/r.json $FX

# The regime rule, as bench/finetune_grid.sh states it (its awk function, read from the script).
sed -n "/^REGIME_AWK='/,/}'$/p" bench/finetune_grid.sh | sed "1s/^REGIME_AWK='//; \$s/'\$//" >$T/regime.awk
if grep -q 'return "collapsed"' $T/regime.awk; then ok; else bad "could not read the regime rule from bench/finetune_grid.sh"; fi
# awk_regimes FILE: lines "KEY P1 F1 P0 F0 STATUS" (percent) -> "KEY REGIME"
echo '{ print $1, regime($2, $3, $4, $5, $6) }' >>$T/regime.awk
awk_regimes() { awk -f $T/regime.awk "$1"; }

py "per-run regimes and the paper's: table lines for the awk rule" "
d = json.load(open(sys.argv[1])); fx = sys.argv[2]
plan = json.load(open(os.path.join(fx, 'plan.json')))
out = open(sys.argv[3], 'w'); want = open(sys.argv[4], 'w')
for c in d['cells']:
    for r in c['run_regimes']:
        p = os.path.join(fx, 'runs', r['job'], 'result.json')
        if os.path.exists(p):
            ev = json.load(open(p))['finetune']['eval']
            out.write('%s %r %r %r %r ok\n' % (r['job'], *(100 * ev[k]['acc'] for k in ('pt1', 'ft1', 'pt0', 'ft0'))))
        else:
            out.write('%s 0 0 0 0 nan\n' % r['job'])
        want.write('%s %s\n' % (r['job'], r['regime']))
" $T/r.json $FX $T/runs.txt $T/runs.want
awk_regimes $T/runs.txt >$T/runs.got
if cmp -s $T/runs.got $T/runs.want && [ "$(wc -l <$T/runs.want)" -eq 9 ]; then ok; else bad "run regimes differ from bench/finetune_grid.sh's rule"; diff $T/runs.got $T/runs.want; fi

py "paper numbers from the data file; the diverged run; the failed prune job; cell regimes" "
d = json.load(open(sys.argv[1]))
rows = {}
for line in open(sys.argv[2]):
    if line.startswith('#') or line.startswith('table\t'): continue
    f = line.rstrip('\n').split('\t')
    rows[(f[0], float(f[1]), float(f[2]))] = [float(x) for x in f[3:7]]
assert len(rows) == 56
for c in d['cells']:
    p = rows[('jain2023-counter', c['params']['lr'], float(c['params']['spurious-rate']))]
    assert [round(100 * c['paper'][k], 9) for k in ('pt1', 'ft1', 'pt0', 'ft0')] == p, (c['params'], p)
    assert c['paper']['table'] == 'jain2023-counter'
    assert c['matches'] == (c['regime'] == c['paper_regime'])
rr = {r['job']: r['regime'] for c in d['cells'] for r in c['run_regimes']}
assert rr['0005'] == 'diverged' and '0012' not in rr and '0008' not in rr
c2 = d['cells'][1]
assert c2['regimes'].get('diverged') == 1 and c2['failed'][0]['job'] == '0005' and c2['failed'][0]['diverged'] is True
assert 'the gradient is not finite' in c2['failed'][0]['message']
c4 = d['cells'][3]
assert c4['failed'][0]['stage'] == 'prune' and c4['failed'][0]['diverged'] is False and c4['failed'][0]['exit'] == 1
assert [c['paper_regime'] for c in d['cells']] == ['learned', 'wrapper', 'learned', 'wrapper']
assert d['sweep']['paper_regimes'] == {'compared': 4, 'same': sum(c['matches'] is True for c in d['cells'])}
" $T/r.json $TSV

# ---- Markdown on stdout ---------------------------------------------------------------------------
$TRACC report $FX >$T/r.md 2>$T/r.err || bad "report (Markdown): status"
for pat in "# Sweep report: fixture-counter" "## Failed jobs" "## Table 3: fixture-counter" \
    "| 0.1 | 0 | 59.8 ± 12.7 (3) | 0.0 | 7.7 ± 12.8 (3) | 100.0 | 34.2 ± 9.3 (3) | 0.0 | 41.2 ± 3.5 (3) | 100.0 | collapsed 3/3 | learned | no | 3/0/0 |" \
    "collapsed 2/3, diverged 1/3" "Same regime as the paper in 0 of 4 cells compared. Different: lr=0.1 spurious-rate=0 (collapsed here, learned in the paper);" "sample standard deviation (divisor n − 1)" "## Pruning and rollback" \
    "## Reverse fine-tuning vs Scr.+FT" "## Attention before and after" "## What fine-tuning changed" "## Probes" \
    "| 0012 | lr=0.01 spurious-rate=1 | prune | 1 |"; do
    if grep -qF -- "$pat" $T/r.md; then ok; else bad "Markdown lacks '$pat'"; fi
done
if grep -q '!\[' $T/r.md; then bad "Markdown on stdout links pictures"; else ok; fi

# a grid parameter with one value in every row is said once above the table, not in an
# "other" column; one that varies keeps the column (and names the cells in "Different:")
cp -r $FX $T/fxk
python3 - $T/fxk <<'EOF2'
import json, os, sys, glob
d = sys.argv[1]
def tag(params):
    params["program"] = "p.rasp"
    params["fuse"] = params["lr"] == 0.1
for f in [os.path.join(d, "plan.json")] + glob.glob(os.path.join(d, "runs", "*", "result.json")):
    j = json.load(open(f))
    for job in j.get("jobs", [j]): tag(job["params"])
    if "grid" in j: j["grid"]["program"] = ["p.rasp"]; j["grid"]["fuse"] = [True, False]
    json.dump(j, open(f, "w"))
EOF2
$TRACC report $T/fxk >$T/rk.md 2>$T/rk.err || bad "report with constant parameters: status"
if grep -qF "Every row: program=p.rasp." $T/rk.md && grep -qF "| η (lr) | C_Tr | other | pt1" $T/rk.md &&
    grep -qF "| 0.1 | 0 | fuse=true | " $T/rk.md && ! grep -qF "| 0.1 | 0 | program=" $T/rk.md &&
    grep -qF "Different: lr=0.1 spurious-rate=0 fuse=true (collapsed here" $T/rk.md; then ok
else bad "report: constant and varying grid parameters"; grep -n "Every row\|other\|Different" $T/rk.md | head; fi

# ---- -o OUTDIR: Markdown + SVG, HTML, JSON --------------------------------------------------------
$TRACC report $FX -o $T/rep >$T/o.out 2>$T/o.err
if [ $? -ne 0 ]; then bad "report -o: status"; cat $T/o.err; else ok; fi
if [ -s $T/o.out ]; then bad "report -o prints on stdout"; else ok; fi
for f in report.md report.html report.json curves_001.svg prune_001.svg reft_001.svg attn_001.svg; do
    if [ -s $T/rep/$f ]; then ok; else bad "-o: $f missing"; fi
done
py "report.json is the --json object; every picture linked exists and parses; the HTML inlines them" "
import xml.etree.ElementTree as E, re
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2] + '/report.json'))
assert a == b
md = open(sys.argv[2] + '/report.md').read()
links = re.findall(r'!\[[^]]*\]\(([^)]+)\)', md)
assert len(links) == 16, links
for l in links:
    assert os.path.exists(os.path.join(sys.argv[2], l)), l
    assert E.parse(os.path.join(sys.argv[2], l)).getroot().tag == '{http://www.w3.org/2000/svg}svg'
svgs = [f for f in os.listdir(sys.argv[2]) if f.endswith('.svg')]
assert sorted(svgs) == sorted(links)
h = open(sys.argv[2] + '/report.html').read()
assert h.count('<svg') == 16 and '<?xml' not in h and 'src=' not in h and 'href=\"http' not in h
assert not [f for f in os.listdir(sys.argv[2]) if '.tmp' in f]
" $T/r.json $T/rep
touch $T/rep/curves_099.svg $T/rep/mine.svg
$TRACC report $FX -o $T/rep --json >$T/o2.json 2>/dev/null && cmp -s $T/o2.json $T/r.json && ok || bad "-o with --json prints the same JSON"
if [ ! -e $T/rep/curves_099.svg ] && [ -e $T/rep/mine.svg ]; then ok; else bad "-o again: an old report's picture stays, or another file went"; fi

# ---- a running job (its lock held) and decoded accuracy -------------------------------------------
cp -r $FX $T/fx2
mkdir -p $T/fx2/runs/0008
# hold the lock as a running job would (one process, so killing it releases the lock)
python3 -c "import fcntl, sys, time
fs = [open(p, 'w') for p in sys.argv[2:]]
for f in fs: fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[1], 'w').close(); time.sleep(30)" \
    $T/locked $T/fx2/runs/0008/lock $T/fx2/runs/0005/lock >/dev/null 2>&1 &
lockpid=$!
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [ -e $T/locked ] && break; sleep 0.1; done
$TRACC report --json $T/fx2 >$T/run.json 2>/dev/null
kill $lockpid 2>/dev/null; wait $lockpid 2>/dev/null
py "a job whose lock is held counts as running (and pending), also over an old failed.json (a retry)" "
d = json.load(open(sys.argv[1])); assert d['jobs'] == {'done': 8, 'failed': 1, 'pending': 3, 'running': 2}, d['jobs']" $T/run.json
rm -f $T/fx2/runs/0005/lock
py "inject acc_decoded (as the new finetune --eval reports it)" "
import glob
for p in glob.glob(sys.argv[1] + '/runs/*/result.json'):
    r = json.load(open(p))
    for k, e in r['finetune']['eval'].items(): e['acc_decoded'] = e['acc'] / 2
    json.dump(r, open(p, 'w'))
" $T/fx2
$TRACC report --json $T/fx2 >$T/dec.json 2>/dev/null || bad "report with acc_decoded: status"
py "decoded accuracy aggregated beside argmax" "
d = json.load(open(sys.argv[1]))
for c in d['cells']:
    for k, e in c['evals'].items(): assert e['decoded']['values'] == [v / 2 for v in e['values']] and e['accuracy'] == 'argmax'
" $T/dec.json
$TRACC report $T/fx2 2>/dev/null | grep -qF "Decoded accuracy (%), mean ± std (n)" && ok || bad "Markdown lacks the decoded table"

# ---- nothing finished yet: the paper's numbers are there, the aggregates empty ----------------------
cp -r $FX $T/fx3
rm -f $T/fx3/runs/*/result.json $T/fx3/runs/*/failed.json
$TRACC report $T/fx3 >$T/p3.md 2>$T/p3.err || { bad "report on an unstarted sweep"; cat $T/p3.err; }
if grep -qF "| 0.1 | 1 | – | 0.0 | – | 100.0 | – | 35.8 | – | 0.7 | – | wrapper | – | 0/0/3 |" $T/p3.md; then ok; else bad "unstarted sweep: Table 3 lacks the paper's row"; cat $T/p3.md; fi
$TRACC report --json $T/fx3 >$T/p3.json 2>/dev/null
py "unstarted sweep: no values, null means, 12 pending" "
d = json.load(open(sys.argv[1]))
assert d['jobs'] == {'done': 0, 'failed': 0, 'pending': 12, 'running': 0}
for c in d['cells']: assert c['evals'] == {} and c['finetune']['train_loss'] == {'mean': None, 'std': None, 'n': 0, 'values': []} and c['regime'] is None and c['matches'] is None
" $T/p3.json

# ---- known inputs: sweeps whose runs end at the paper's numbers (both tables, one report) ---------
py "make two sweeps, one per paper table, each run at the paper's numbers" "
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if not l.startswith('#') and not l.startswith('table\t')]
for tab in ('jain2023-counter', 'jain2023-max'):
    D = os.path.join(sys.argv[2], tab)
    jobs = []
    for i, f in enumerate(r for r in rows if r[0] == tab):
        jid = '%04d' % (i + 1)
        params = {'lr': float(f[1]), 'spurious-rate': float(f[2]), 'seed': 1}
        jobs.append({'id': jid, 'params': params, 'dir': 'runs/' + jid, 'cmd': 'true'})
        os.makedirs(os.path.join(D, 'runs', jid))
        ev = {k: {'acc': float(v) / 100, 'loss': 1.0, 'n': 1000} for k, v in zip(('pt1', 'ft1', 'pt0', 'ft0'), f[3:7])}
        json.dump({'id': jid, 'params': params, 'finetune': {'steps': 10, 'train_loss': 0.5, 'eval': ev}},
                  open(os.path.join(D, 'runs', jid, 'result.json'), 'w'))
    json.dump({'tracc_sweep': 1, 'name': tab, 'paper': tab, 'grid': {}, 'jobs': jobs}, open(os.path.join(D, 'plan.json'), 'w'))
" $TSV $T
$TRACC report --json $T/jain2023-counter $T/jain2023-max >$T/p.json 2>$T/p.err || { bad "report on two sweeps"; cat $T/p.err; }
py "56 cells, each run's regime is the paper's and matches; both tables in one report" "
d = json.load(open(sys.argv[1]))
assert isinstance(d['sweep'], list) and [s['name'] for s in d['sweep']] == ['jain2023-counter', 'jain2023-max']
assert len(d['cells']) == 56 and d['jobs']['done'] == 56
assert [s['paper_regimes'] for s in d['sweep']] == [{'compared': 28, 'same': 28}] * 2
for c in d['cells']:
    assert c['regime'] == c['paper_regime'] and c['matches'] is True, c['params']
    assert c['paper']['table'] == c['sweep']
out = open(sys.argv[2], 'w')
for i, c in enumerate(d['cells']):
    out.write('%d %r %r %r %r ok\n' % (i, *(100 * c['paper'][k] for k in ('pt1', 'ft1', 'pt0', 'ft0'))))
open(sys.argv[3], 'w').write(''.join('%d %s\n' % (i, c['paper_regime']) for i, c in enumerate(d['cells'])))
regs = sorted(set(c['regime'] for c in d['cells']))
assert regs == ['collapsed', 'learned', 'learning', 'wrapper'], regs
" $T/p.json $T/paper.txt $T/paper.want
awk_regimes $T/paper.txt >$T/paper.got
if cmp -s $T/paper.got $T/paper.want; then ok; else bad "paper regimes differ from bench/finetune_grid.sh's rule"; diff $T/paper.got $T/paper.want; fi
# a few by hand (Counter): eta 1e-2, C_Tr 1 = 0.3/98.3/4.2/0.2 is the wrapper; 1e-1, 0 learned; 1e-3, 0 collapsed
py "known regimes" "
d = json.load(open(sys.argv[1]))
g = {(c['sweep'], c['params']['lr'], c['params']['spurious-rate']): c['regime'] for c in d['cells']}
assert g[('jain2023-counter', 0.01, 1.0)] == 'wrapper' and g[('jain2023-counter', 0.1, 0.0)] == 'learned'
assert g[('jain2023-counter', 0.001, 0.0)] == 'collapsed' and g[('jain2023-max', 0.0001, 0.0)] == 'learned'
assert g[('jain2023-counter', 0.01, 0.9)] == 'wrapper'   # 1.4 / 98.5 / 7.1 / 39.3: ft1 >= 90, ft0 and pt0 < 50
" $T/p.json

# ---- the decompiled section: crafted `tracc decompile --json` outputs, one per reading ----------
# (the rule: docs/report.md, "Reading a decompiled run"); 3 cells of 3 seeds
python3 - $T/dcs <<'EOF'
import json, os, sys
D = sys.argv[1]
P = ['vocab {a, b};', 'max_len 5;', 'is_a = tokens == "a";   # fused', 'bin_idx = select(is_a, indices, ==);',
     'count_a = selector_width(bin_idx);     # the count', 'out = aggregate(select(indices, indices, ==), count_a);', 'output out;']
def dc(repl, fid=0.9, fu=0.8, changed=(), tables={}):
    prog, diff = list(P), []
    for i, new in repl.items():
        diff += ['-' + P[i], '+' + new]
        prog[i] = new
    sops = {n: {"op": "map", "form": "x", "changed": n in changed} for n in ("is_a", "count_a", "out")}
    for n, t in tables.items(): sops[n]["table"] = t   # the op's observed inputs -> output
    return {"program": "\n".join(prog) + "\n", "diff": ("--- original\n+++ decompiled\n@@ -1,7 +1,7 @@\n" + "\n".join(diff) + "\n") if diff else "",
            "fidelity": {"distribution": "training", "output": fid}, "fidelity_uniform": {"distribution": "uniform", "output": fu},
            "reproduces": fid == 1, "changed": bool(diff), "sops": sops}
W1 = dc({5: 'out = aggregate(select(indices, indices, ==), map(lambda x: x + 1, count_a));'}, 0.9, 0.8, ["out"])
RW = '{1: 3, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 8, 11: 6, else: 9}'
cases = [W1, W1,
         dc({2: 'is_a = tokens == "b";'}, 0.95, 0.5, ["is_a"]),                                           # rewritten
         dc({4: 'count_a = map({0: 1, else: 2}, selector_width(bin_idx));  # c'}, 0.8, 0.7, ["count_a"],
            {"count_a": {"0": "1", "1": "2"}}),                 # wrapper (out copies it; two observed inputs: not nearly constant)
         dc({}, 1.0, 1.0),                                                                                 # unchanged
         dc({2: 'is_a = tokens == "b";'}, 0.5, 0.4, ["is_a"]),                                            # fidelity < 70%
         {"error": "tracc decompile: m.safetensors: the model has no layer detail", "exit": 1},           # failed
         dc({5: 'out = aggregate(select(indices, indices, ==), map(lambda x: 1, count_a));'}),            # constant map
         dc({5: 'out = aggregate(select(indices, indices, <), count_a);'}),                                 # not a map
         # nearly constant maps (not classified): by the text alone (no table), by the observed table
         # (0..10 -> 4 but 0 -> 5), within 10% of 21 observed inputs
         dc({5: 'out = aggregate(select(indices, indices, ==), map({0: 5, else: 4}, count_a));'}, 0.95, 0.9, ["out"]),
         dc({5: 'out = aggregate(select(indices, indices, ==), map({0: 5, else: 4}, count_a));'}, 0.95, 0.9, ["out"],
            {"out": dict((str(k), "5" if k == 0 else "4") for k in range(11))}),
         dc({5: 'out = aggregate(select(indices, indices, ==), map({0: 5, 1: 5, else: 4}, count_a));'}, 0.95, 0.9, ["out"],
            {"out": dict((str(k), "5" if k < 2 else "4") for k in range(21))}),
         # real wrappers: the decompile walkthrough's lookup (text alone, and with its observed table 0..15),
         # and {0: 5, else: 4} observed on two inputs only (the table decides: a two-value map is not constant)
         dc({5: 'out = aggregate(select(indices, indices, ==), map(' + RW + ', count_a));'}, 0.88, 0.8, ["out"]),
         dc({5: 'out = aggregate(select(indices, indices, ==), map(' + RW + ', count_a));'}, 0.88, 0.8, ["out"],
            {"out": dict((str(k), str({1: 3, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 8, 11: 6}.get(k, 9))) for k in range(16))}),
         dc({5: 'out = aggregate(select(indices, indices, ==), map({0: 5, else: 4}, count_a));'}, 0.95, 0.9, ["out"],
            {"out": {"0": "5", "1": "4"}}),
         # a map printed as an operator and a constant (decompile's exact arithmetic form): on the count,
         # on the copied count, and `* 0` (a constant: not classified)
         dc({4: 'count_a = selector_width(bin_idx) + 1;'}, 1.0, 1.0, ["count_a"]),
         dc({5: 'out = aggregate(select(indices, indices, ==), (count_a) - 2);'}, 1.0, 1.0, ["out"]),
         dc({5: 'out = aggregate(select(indices, indices, ==), count_a * 0);'}, 1.0, 1.0, ["out"]),
         # the output a constant map while something before it changed: not classified (a collapsed model),
         # not rewritten; a constant further up is left to the other rules
         dc({3: 'bin_idx = select(is_a, indices, >);', 5: 'out = aggregate(select(indices, indices, ==), map(lambda x: 4, count_a));'},
            0.8, 0.8, ["bin_idx", "out"]),
         dc({2: 'is_a = tokens == "b";', 5: 'out = aggregate(select(indices, indices, ==), count_a + 1);'}, 0.9, 0.9, ["is_a", "out"]),
         dc({2: 'is_a = tokens == "b";', 4: 'count_a = map(lambda x: 0, selector_width(bin_idx));'}, 0.9, 0.9, ["is_a", "count_a"]),
         # an unused component carries the answer (decompile's idle check): unused capacity, before
         # the fidelity rule; below half the answers it does not decide
         dict(dc({}, 0.2, 0.15), idle=[{"component": "block 0 head 0", "zeroed": "blocks.0.attn.W_V[0]", "norm": 5.2,
                                        "answers_changed": 0.8, "positions": 300}]),
         dict(W1, idle=[{"component": "block 2 MLP (94 units no map owns)", "answers_changed": 0.3}]),
         dict(dc({}, 1.0, 1.0), idle=[{"component": "block 0 head 0", "answers_changed": 0.01},
                                      {"component": "block 2 MLP (94 units no map owns)", "answers_changed": 0.5}])]
jobs = []
for j, c in enumerate(cases):
    i = "%04d" % (j + 1); lr = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8][j // 3]
    jobs.append({"id": i, "params": {"lr": lr, "seed": j % 3 + 1}, "dir": "runs/" + i, "cmd": "true"})
    os.makedirs(os.path.join(D, "runs", i))
    json.dump({"id": i, "params": jobs[-1]["params"], "finetune": {"eval": {"pt0": {"acc": 0.5}}, "steps": 1},
               "after": {"decompile": c}}, open(os.path.join(D, "runs", i, "result.json"), "w"))
json.dump({"tracc_sweep": 1, "name": "dcs", "paper": None, "grid": {"lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], "seed": [1, 2, 3]}, "jobs": jobs},
          open(os.path.join(D, "plan.json"), "w"))
EOF
$TRACC report --json $T/dcs -o $T/dcs_out >$T/dcs.json 2>$T/dcs.err && ok || { bad "report on the decompile fixtures"; cat $T/dcs.err; }
py "decompile: readings, distinct diffs, fidelities per cell and run" "
d = json.load(open(sys.argv[1]))
c = [x['decompile'] for x in d['cells']]
assert [[r['reading'] for r in x['per_run']] for x in c] == [['wrapper', 'wrapper', 'rewritten'],
    ['wrapper', 'unchanged', 'not classified'], ['not classified'] * 3, ['not classified'] * 3, ['wrapper'] * 3,
    ['wrapper', 'wrapper', 'not classified'], ['not classified', 'rewritten', 'rewritten'],
    ['unused capacity', 'wrapper', 'unused capacity']], [[r['reading'] for r in x['per_run']] for x in c]
assert [x['reading'] for x in c] == ['wrapper', 'mixed', 'not classified', 'not classified', 'wrapper', 'wrapper', 'rewritten',
    'unused capacity'] and c[0]['readings'] == {'rewritten': 1, 'wrapper': 2}
assert [x['runs'] for x in c] == [3] * 8 and [x['failed'] for x in c] == [0, 0, 1, 0, 0, 0, 0, 0]
whys = [r['why'] for x in c for r in x['per_run']]
assert 'is_a changed and the unchanged bin_idx reads it' in whys[2], whys
assert '70%' not in whys[5] and 'only 50.0% of the answers on training inputs' in whys[5]
assert 'no layer detail' in whys[6] and 'constant' in whys[7] and 'not as a map' in whys[8], whys
assert whys[9] == 'the map added on out is nearly constant: its table\'s else value is that of all but at most one listed input; the original computation hardly reaches the output', whys[9]
assert 'the map added on out is nearly constant: it gives 4 for 10 of its 11 observed inputs' in whys[10], whys[10]
assert 'it gives 4 for 19 of its 21 observed inputs' in whys[11], whys[11]
assert all(w == 'a map added after the original computation: out' for w in whys[12:15]), whys[12:15]
assert whys[15:17] == ['a map added after the original computation: count_a', 'a map added after the original computation: out'], whys[15:17]
assert whys[17] == whys[18] == 'the map added on out is a constant: the original computation no longer reaches the output', whys[17:19]
assert whys[19] == whys[20] == 'is_a changed and the unchanged bin_idx reads it', whys[19:21]
assert whys[21] == 'zeroing block 0 head 0, which the program does not use, changes 80.0% of the answers', whys[21]
assert whys[23] == 'zeroing block 2 MLP (94 units no map owns), which the program does not use, changes 50.0% of the answers', whys[23]
assert c[7]['readings'] == {'wrapper': 1, 'unused capacity': 2}, c[7]['readings']
# the distinct diffs: the wrapper in 2 of 3 seeds first, lines without comments or ';'
dd = c[0]['diffs']
assert [x['runs'] for x in dd] == [2, 1] and dd[0]['jobs'] == ['0001', '0002'], dd
assert dd[0]['lines'] == ['-out = aggregate(select(indices, indices, ==), count_a)',
                          '+out = aggregate(select(indices, indices, ==), map(lambda x: x + 1, count_a))'], dd[0]
assert c[1]['diffs'][1]['lines'] == [] and c[1]['per_run'][0]['changed_ops'] == [{'name': 'count_a',
    'minus': 'count_a = selector_width(bin_idx)', 'plus': 'count_a = map({0: 1, else: 2}, selector_width(bin_idx))'}]
# fidelity aggregates recompute from the runs (a failed decompile has none)
ft = c[0]['fidelity_training']
assert ft['values'] == [0.9, 0.9, 0.95] and abs(ft['mean'] - 2.75 / 3) < 1e-12 and c[0]['fidelity_uniform']['values'] == [0.8, 0.8, 0.5]
assert c[2]['fidelity_training']['n'] == 2 and c[2]['per_run'][0]['fidelity_training'] is None
assert c[2]['per_run'][0]['error'].startswith('tracc decompile:')
" $T/dcs.json
for f in $T/dcs_out/report.md $T/dcs_out/report.html; do
    if grep -q "What the weights now compute (decompiled)" $f &&
        grep -qF 'aggregate(select(indices, indices, ==), map(lambda x: x + 1, count_a))' $f &&
        grep -qF '2/3 (jobs 0001, 0002)' $f; then ok; else bad "$f: no decompiled section, diff line or seed count"; fi
done
if grep -qF '| 0003 | 3 | is_a (D2) | rewritten | is_a changed and the unchanged bin_idx reads it | 95.0 | 50.0 |' $T/dcs_out/report.md; then ok; else
    bad "report.md: the per-run row of a rewritten run"; grep -F '| 0003 |' $T/dcs_out/report.md; fi

# ---- prune --each: the best single weight per run (crafted `tracc prune --json` outputs) -------------
python3 - $T/each <<'EOF2'
import json, os, sys
D = sys.argv[1]
def pr(base, each):
    rk = [{"rank": i + 1, "param": "w%d" % (i + 1), "meaning": "weight %d means this" % (i + 1), "score": 1.0} for i in range(3)]
    o = {"method": "prune", "task": "count_a.rasp", "base": {"k": 0, "acc": {"task": base, "pt0": 0.1}},
         "rows": [{"k": 1, "acc": {"task": 0.0, "pt0": 0.0}}], "ranking": rk}
    if each is not None:
        o["each"] = [{"rank": i + 1, "param": "w%d" % (i + 1), "acc": {"task": t, "pt0": p0}} for i, (t, p0) in enumerate(each)]
        # named ablations (prune --reset) in the runs with --each; the second run also has one more
        o["resets"] = [{"reset": "head.W_V", "params": 12, "changed": 5, "acc": {"task": base + 0.5, "pt0": 0.0}}]
        if base == 0.5:
            o["resets"].append({"reset": "w_pos[2, 0]", "params": 1, "changed": 1, "acc": {"task": 1.0, "pt0": 0.25}})
    return o
cases = [pr(0.1, [(0.05, 0.0), (0.8, 0.55), (0.8, 0.6)]),   # best: rank 2 (a tie goes to the better g.w rank), +70 points
         pr(0.5, [(0.2, 0.1), (0.3, 0.2), (0.1, 0.0)]),     # every weight alone hurts: best rank 2, -20 points
         pr(0.2, None)]                                      # a prune run without --each: not listed
jobs = []
for j, c in enumerate(cases):
    i = "%04d" % (j + 1)
    jobs.append({"id": i, "params": {"lr": 0.1, "seed": j + 1}, "dir": "runs/" + i, "cmd": "true"})
    os.makedirs(os.path.join(D, "runs", i))
    json.dump({"id": i, "params": jobs[-1]["params"], "finetune": {"eval": {"pt0": {"acc": 0.5}}, "steps": 1},
               "after": {"prune": c}}, open(os.path.join(D, "runs", i, "result.json"), "w"))
json.dump({"tracc_sweep": 1, "name": "each", "paper": None, "grid": {"lr": [0.1], "seed": [1, 2, 3]}, "jobs": jobs},
          open(os.path.join(D, "plan.json"), "w"))
EOF2
$TRACC report --json $T/each -o $T/each_out >$T/each.json 2>$T/each.err && ok || { bad "report on the prune --each fixture"; cat $T/each.err; }
py "prune --each: best weight per run, its gain, the cell's best gains" "
d = json.load(open(sys.argv[1]))
ea = d['cells'][0]['prune']['each']
assert ea['items'] == 3 and [r['job'] for r in ea['runs']] == ['0001', '0002'], ea
r1, r2 = ea['runs']
assert (r1['rank'], r1['weight'], r1['meaning'], r1['task_before'], r1['task_after']) == (2, 'w2', 'weight 2 means this', 0.1, 0.8), r1
assert abs(r1['gain'] - 0.7) < 1e-12 and r1['evals'] == {'pt0': 0.55}, r1
assert (r2['rank'], r2['weight'], r2['task_after']) == (2, 'w2', 0.3) and abs(r2['gain'] + 0.2) < 1e-12, r2
assert ea['best_gain']['values'] == [r1['gain'], r2['gain']] and ea['best_gain']['n'] == 2
assert ea['best_gain_max'] == r1['gain'] and ea['best_task_after']['values'] == [0.8, 0.3]
assert ea['revived_at'] == 0.6 and ea['revived'] == 1
" $T/each.json
for f in $T/each_out/report.md $T/each_out/report.html; do
    if grep -qF 'Each weight alone: best single weight per run' $f && grep -qF 'Best gain: 25.0 ± 63.6 (2), max +70.0' $f &&
        grep -qF 'revives the task by ≥ 60 points: 1/2' $f; then ok; else bad "$f: no each-weight-alone paragraph"; fi
done
if grep -qF '| 0001 | 2 | w2 | weight 2 means this | 10.0 | 80.0 | +70.0 | 55.0 |' $T/each_out/report.md; then ok; else
    bad "report.md: the each-weight-alone row"; grep -F '| 0001 |' $T/each_out/report.md; fi
py "prune --reset: each named ablation over the runs that have it, beside the same runs as fine-tuned" "
d = json.load(open(sys.argv[1]))
rs = d['cells'][0]['prune']['resets']
assert [r['reset'] for r in rs] == ['head.W_V', 'w_pos[2, 0]'], rs
a, b = rs
assert (a['runs'], a['jobs'], a['params']) == (2, ['0001', '0002'], 12), a
assert a['acc']['task']['values'] == [0.6, 1.0] and a['base']['task']['values'] == [0.1, 0.5], a
assert a['acc']['pt0']['values'] == [0.0, 0.0] and a['base']['pt0']['values'] == [0.1, 0.1], a
assert (b['runs'], b['jobs'], b['params']) == (1, ['0002'], 1) and b['acc']['pt0']['values'] == [0.25], b
assert b['base']['task']['values'] == [0.5], b
assert 'resets' not in (d['cells'][0].get('rollback') or {})
" $T/each.json
if grep -qF 'Named ablations (`prune --reset`): the weights each names set to 0' $T/each_out/report.md; then ok; else
    bad "report.md: no named-ablation paragraph"; fi
# the HTML renders Markdown's inline marks: `code` and **bold**
if grep -qF 'Named ablations (<code>prune --reset</code>): the weights each names set to 0' $T/each_out/report.html &&
    ! grep -q '`' $T/each_out/report.html; then ok; else
    bad "report.html: the named-ablation paragraph with its code mark rendered"; grep -o 'Named ablations (.\{0,60\}' $T/each_out/report.html; fi
if grep -qF '| as fine-tuned | – | 2 | 30.0 ± 28.3 (2) | 10.0 ± 0.0 (2) |' $T/each_out/report.md &&
    grep -qF '| head.W_V | 12 | 2 | 80.0 ± 28.3 (2) | 0.0 ± 0.0 (2) |' $T/each_out/report.md &&
    grep -qF '| w_pos[2, 0] | 1 | 1 | 100.0 (1) | 25.0 (1) |' $T/each_out/report.md; then ok; else
    bad "report.md: the named-ablation rows"; grep -F -A4 'Named ablations' $T/each_out/report.md; fi
if grep -qF '### Named ablations, every cell' $T/each_out/report.md &&
    grep -qF 'each: `w_pos[2, 0]` set to 0 (`prune --reset`)' $T/each_out/report.md &&
    grep -qF '| lr=0.1 | 2 | 80.0 (30.0) | 0.0 (10.0) |' $T/each_out/report.md &&
    grep -qF '| lr=0.1 | 1 | 100.0 (50.0) | 25.0 (10.0) |' $T/each_out/report.md; then ok; else
    bad "report.md: the named ablations across cells"; grep -F -A12 'Named ablations, every' $T/each_out/report.md; fi

# ---- a real sweep, when this build has `tracc sweep` (helper code merged) --------------------------
if $TRACC sweep --help >/dev/null 2>&1 && [ -f tests/sweep/tiny.json ]; then
    if $TRACC sweep plan tests/sweep/tiny.json -o $T/tiny >/dev/null 2>$T/tiny.err &&
        $TRACC sweep run $T/tiny -j 2 >/dev/null 2>>$T/tiny.err; then ok; else bad "tiny sweep"; cat $T/tiny.err; fi
    $TRACC report --json $T/tiny >$T/tiny.json 2>$T/tiny.err || { bad "report on the tiny sweep"; cat $T/tiny.err; }
    py "the tiny sweep: every job aggregated, values from result.json, every analysis section" "
d = json.load(open(sys.argv[1])); D = sys.argv[2]
assert d['jobs']['done'] == len(json.load(open(D + '/plan.json'))['jobs']) and d['jobs']['failed'] == 0
for c in d['cells']:
    res = [json.load(open('%s/runs/%s/result.json' % (D, i))) for i in c['done_jobs']]
    for k, e in c['evals'].items(): assert e['values'] == [r['finetune']['eval'][k]['acc'] for r in res]
    for key in ('curves', 'prune', 'rollback', 'reft', 'scratch', 'attn', 'diff', 'probe', 'decompile'): assert key in c, key
    dc = c['decompile']
    assert dc['runs'] == len(res) and dc['failed'] == 0 and sum(x['runs'] for x in dc['diffs']) == len(res)
    assert dc['fidelity_training']['values'] == [r['after']['decompile']['fidelity']['output'] for r in res]
    assert [x['job'] for x in dc['per_run']] == c['done_jobs'] and dc['reading'] in ('rewritten', 'wrapper', 'unchanged', 'not classified', 'mixed')
    assert c['regime'] is not None
    # prune --each 3: the best of each run's three weights alone, its gain over the unpruned model
    ea = c['prune']['each']
    assert ea['items'] == 3 and [x['job'] for x in ea['runs']] == c['done_jobs']
    for x, r in zip(ea['runs'], res):
        pr = r['after']['prune']; items = pr['each']
        assert len(items) == 3
        best = max(items, key=lambda e: (e['acc']['task'], -e['rank']))
        assert (x['rank'], x['weight'], x['task_after']) == (best['rank'], best['param'], best['acc']['task']), (x, best)
        assert x['meaning'] == pr['ranking'][best['rank'] - 1]['meaning']
        assert abs(x['gain'] - (best['acc']['task'] - pr['base']['acc']['task'])) < 1e-12
        assert set(x['evals']) == {'pt1', 'ft1', 'pt0', 'ft0'}
    assert ea['best_gain']['values'] == [x['gain'] for x in ea['runs']]
" $T/tiny.json $T/tiny
    # its Compute paragraph's **bold** in the HTML: rendered, no Markdown mark left
    if $TRACC report $T/tiny -o $T/tiny_out >/dev/null 2>&1 && grep -qF '**' $T/tiny_out/report.md &&
        grep -qF '<strong>' $T/tiny_out/report.html && ! grep -qF '**' $T/tiny_out/report.html; then ok; else
        bad "report.html: the bold marks of the tiny sweep's report not rendered"; fi
else
    echo "report.sh: this build has no \`tracc sweep\`: the real-sweep checks are skipped (fixtures only)"
fi

# ---- bad inputs: exit 1, a message naming the file, nothing on stdout, no OUTDIR -----------------
bad_case() {   # bad_case NAME PATTERN DIR
    name=$1; pat=$2; dir=$3
    $TRACC report "$dir" -o $T/never >$T/b.out 2>$T/b.err; rc=$?
    if [ $rc -ne 1 ]; then bad "$name: status $rc, wanted 1"; cat $T/b.err; return; fi
    if ! grep -qF -- "$pat" $T/b.err; then bad "$name: stderr lacks '$pat'"; cat $T/b.err; return; fi
    if [ -s $T/b.out ] || [ -e $T/never ]; then bad "$name: stray output"; return; fi
    ok
}
mkdir -p $T/empty
bad_case "no plan.json" "$T/empty: no plan.json: not a sweep directory" $T/empty
bad_case "missing DIR" "$T/nowhere: No such file or directory" $T/nowhere
bad_case "DIR is a file" "not a directory" $TSV
mk() { rm -rf $T/bad; cp -r $FX $T/bad; }
mk; printf '{"tracc_sweep": 1, "jobs": [' >$T/bad/plan.json
bad_case "truncated plan.json" "$T/bad/plan.json:1:" $T/bad
mk; echo '{"name": "x"}' >$T/bad/plan.json
bad_case "not a plan" "not a sweep plan (no \"tracc_sweep\": 1)" $T/bad
mk; echo '{"tracc_sweep": 1, "jobs": [{"id": "0001"}]}' >$T/bad/plan.json
bad_case "job without params" "jobs[0] must be an object with \"id\"" $T/bad
mk; sed -i 's/"paper": "jain2023-counter"/"paper": "jain2099"/' $T/bad/plan.json
bad_case "unknown paper table" "\"paper\": no table \"jain2099\" in the paper data (known: jain2023-counter, jain2023-max)" $T/bad
mk; head -c 300 $FX/runs/0002/result.json >$T/bad/runs/0002/result.json
bad_case "truncated result.json" "$T/bad/runs/0002/result.json:1:" $T/bad
mk; printf '\010\000\000\000\000\000\000\000{"a":1}' >$T/bad/runs/0002/result.json
bad_case "result.json of the wrong kind (binary)" "$T/bad/runs/0002/result.json:" $T/bad
mk; echo '[1, 2]' >$T/bad/runs/0002/result.json
bad_case "result.json not an object" "$T/bad/runs/0002/result.json: not a JSON object" $T/bad
mk; rm $T/bad/runs/0002/result.json; mkdir $T/bad/runs/0002/result.json
bad_case "result.json a directory" "$T/bad/runs/0002/result.json: not a regular file" $T/bad
mk; sed -i 's/"id":"0002"/"id":"0003"/' $T/bad/runs/0002/result.json
bad_case "result.json of another job" "\"id\" must be this job's id \"0002\"" $T/bad
mk; sed -i 's/"eval":{"pt1":{"acc":[0-9.e-]*/"eval":{"pt1":{"acc":"high"/' $T/bad/runs/0002/result.json
bad_case "an accuracy that is not a number" "finetune.eval.pt1 must be an object with a number \"acc\"" $T/bad
mk; rm $T/bad/runs/0002/log.jsonl
bad_case "missing log" "$T/bad/runs/0002/log.jsonl: cannot read log" $T/bad
mk; echo 'not json' >>$T/bad/runs/0002/log.jsonl
bad_case "malformed log" "$T/bad/runs/0002/log.jsonl:" $T/bad
mk; echo '{"id": "0005", "exit": 1' >$T/bad/runs/0005/failed.json
bad_case "truncated failed.json" "$T/bad/runs/0005/failed.json:" $T/bad
printf 'table\tlr\n' >$T/p.tsv; printf 'jain2023-counter\t0.1\t0\t1\t2\n' >>$T/p.tsv
expect_err "bad --paper-table" 1 "$T/p.tsv:2: expected 7 tab-separated fields" -- $TRACC report --paper-table $T/p.tsv $FX
expect_err "missing --paper-table" 1 "cannot read" -- $TRACC report --paper-table $T/none.tsv $FX
touch $T/afile
expect_err "-o onto a file" 1 "$T/afile" -- $TRACC report $FX -o $T/afile

finish
