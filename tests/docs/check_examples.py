#!/usr/bin/env python3
"""check_examples.py — run the examples in the Markdown pages and compare what they print.

    python3 tests/docs/check_examples.py [--regen] [--slow] [FILE.md ...]

Run from the repository root (default files: README.md and docs/*.md). The convention, also
described in docs/README.md:

* A fenced block whose info string is `console` is a checked transcript: each line starting
  with `$ ` is a command (a line ending in a backslash continues it), the lines up to the next
  command are what it prints — standard output and standard error together, in the order a
  terminal shows them. A line holding only `…` stands for any number of lines (a cut listing).
* A fenced block whose info string is `rasp NAME.rasp` is written to NAME.rasp before the
  transcripts after it run (so a page can show a program and then run it as `x.rasp`).
* Every other block is an illustration and is not run. A plain block that holds a `$ `
  transcript is an error: mark it `console`, or drop the prompts.
* A page holding `<!-- examples: slow -->` runs only with --slow (`make docs-check`,
  `make docs-examples`); `make test` lists it as not run.

Each page runs in its own scratch folder holding links to the repository's files (so
`rasp_examples/...` and `demo/...` work), a `build/` folder whose `tracc` is the binary under
test (TRACC, default build/tracc), and `tracc` on PATH. All transcripts of a page run in one
shell, in order, so later commands see earlier files and variables.

A command must exit with status 0, unless its expected output shows an error (a line with
`error`) or the next command is `echo $?`.

Comparison, after a normalisation applied to both sides: sha256 prefixes (12 hex digits then
`...`) and timings (a number followed by s, ms, us, steps/s, seqs/s, sequences/s, tokens/s,
or `ETA ...`) are not compared; the scratch folder's path reads as `.`; trailing blanks are
dropped. Numbers are compared with a tolerance so that another CPU's floating-point rounding
(OpenBLAS picks its kernels per CPU) does not fail the check: integers within 2%, numbers with a
decimal point or exponent within 3% plus two units of their last digit. Words, order and line
structure must match exactly. DOCS_EXACT=1 compares numbers exactly.

--regen rewrites each transcript's output lines with what the current build prints (keeping
`…` cuts where the kept lines can still be found) and writes the pages back.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

FENCE = re.compile(r'^(`{3,}|~{3,})\s*(.*)$')
ELLIPSIS = '…'
SLOW_MARK = '<!-- examples: slow -->'

HEX = re.compile(r'\b[0-9a-f]{12}\.\.\.')
TIMING = re.compile(r'(?<![\w.])[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)? ?'
                    r'(?:steps/s|seqs/s|sequences/s|tokens/s|ms|us|µs|s)(?![\w/-])')
ETA = re.compile(r'ETA \S+')
NUMBER = re.compile(r'(?<![\w.])[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?![\w.])')


def normalise(line, scratch):
    if scratch:
        line = line.replace(scratch + '/', '').replace(scratch, '.')
    line = HEX.sub('<sha>...', line)
    line = ETA.sub('ETA <t>', line)
    line = TIMING.sub('<time>', line)
    return line.rstrip()


def shape(line):
    """The line with every number replaced: what must match exactly."""
    return NUMBER.sub('#', line)


def close(a, b, exact):
    if a == b:
        return True
    if exact:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    big = max(abs(x), abs(y))
    if re.search(r'[.eE]', a + b):
        def unit(s):
            m = re.match(r'[-+]?[0-9]*\.([0-9]+)', s)
            return 10.0 ** -len(m.group(1)) if m and 'e' not in s.lower() else 0.0
        return abs(x - y) <= 0.03 * big + 2 * max(unit(a), unit(b))
    return abs(x - y) <= 0.02 * big


def same(want, got, exact):
    if shape(want) != shape(got):
        return False
    return all(close(a, b, exact) for a, b in zip(NUMBER.findall(want), NUMBER.findall(got)))


def segments(lines):
    segs, cur = [], []
    for ln in lines:
        if ln.strip() == ELLIPSIS:
            segs.append(cur)
            cur = []
        else:
            cur.append(ln)
    segs.append(cur)
    return segs  # n segments = n-1 ellipses


def seg_at(seg, got, pos, eq):
    return pos + len(seg) <= len(got) and all(eq(w, g) for w, g in zip(seg, got[pos:]))


def align(want, got, eq):
    """Positions of each segment of `want` in `got` (glob match with `…`), or None."""
    segs = segments(want)
    if len(segs) == 1:
        return [0] if len(want) == len(got) and seg_at(want, got, 0, eq) else None
    pos, out = 0, []
    for i, seg in enumerate(segs):
        if i == 0:
            if not seg_at(seg, got, 0, eq):
                return None
            out.append(0)
            pos = len(seg)
        elif i == len(segs) - 1:
            start = len(got) - len(seg)
            if start < pos or not seg_at(seg, got, start, eq):
                return None
            out.append(start)
        else:
            p = pos
            while p + len(seg) <= len(got) and not seg_at(seg, got, p, eq):
                p += 1
            if p + len(seg) > len(got):
                return None
            out.append(p)
            pos = p + len(seg)
    return out


def regen_lines(want, got, scratch):
    """New expected lines: all of `got`, or its kept parts where `want` has `…` cuts."""
    if not any(ln.strip() == ELLIPSIS for ln in want):
        return got, True
    n = [normalise(g, scratch) for g in got]
    loose = align(want, n, lambda w, g: shape(normalise(w, None)) == shape(g))
    if loose is None:  # fall back: anchor each segment on its first line only
        segs = segments(want)
        pos, loose = 0, []
        for i, seg in enumerate(segs):
            if not seg:
                loose.append(len(got) if i == len(segs) - 1 else pos)
                continue
            if i == 0:              # a head: the first lines, whatever they now say
                p = 0
            elif i == len(segs) - 1:  # a tail: the last lines
                p = max(pos, len(n) - len(seg))
            else:                   # a middle part: found again by its first line
                first = shape(normalise(seg[0], None))
                p = pos
                while p < len(n) and shape(n[p]) != first:
                    p += 1
                if p >= len(n):
                    return want, False
            loose.append(p)
            pos = p + len(seg)
    cuts = [ln for ln in want if ln.strip() == ELLIPSIS]   # kept as written (indentation)
    out = []
    for i, (seg, p) in enumerate(zip(segments(want), loose)):
        if i:
            out.append(cuts[i - 1])
        out.extend(got[p:p + len(seg)])
    return out, True


def is_close(line, fence):
    t = line.strip()
    return len(t) >= len(fence) and t == fence[0] * len(t)


class Page:
    def __init__(self, path):
        self.path = path
        with open(path, encoding='utf-8') as f:
            self.lines = f.read().split('\n')
        self.slow = any(SLOW_MARK in ln for ln in self.lines)
        self.items = []     # ('file', name, body) or ('cmds', block_index, [cmd...])
        self.errors = []
        self.blocks = []    # [start, end) line ranges of console block bodies
        self.parse()

    def parse(self):
        i, n = 0, len(self.lines)
        while i < n:
            m = FENCE.match(self.lines[i])
            if not m:
                i += 1
                continue
            fence, info = m.group(1), m.group(2).split()
            j = i + 1
            while j < n and not is_close(self.lines[j], fence):
                j += 1
            body = self.lines[i + 1:j]
            lang = info[0] if info else ''
            if lang == 'console':
                self.blocks.append((i + 1, j))
                self.items.append(('cmds', len(self.blocks) - 1, self.commands(body, i + 2)))
            elif lang == 'rasp' and len(info) > 1:
                self.items.append(('file', info[1], '\n'.join(body) + '\n'))
            elif any(ln.startswith('$ ') for ln in body):
                self.errors.append('%s:%d: a block with `$ ` commands that is not marked `console` '
                                   '(checked); mark it, or drop the prompts' % (self.path, i + 1))
            i = j + 1

    @staticmethod
    def commands(body, first_lineno):
        cmds, k = [], 0
        while k < len(body):
            if not body[k].startswith('$ '):
                if not cmds:
                    k += 1
                    continue
                cmds[-1]['want'].append(body[k])
                k += 1
                continue
            start = k
            text = [body[k][2:]]
            while text[-1].endswith('\\') and k + 1 < len(body):
                k += 1
                text.append(body[k])
            cmds.append({'text': '\n'.join(text), 'lineno': first_lineno + start,
                         'first': start, 'last': k, 'want': []})
            k += 1
        return cmds


def scratch_dir(root, tracc):
    d = tempfile.mkdtemp(prefix='tracc-docs.')
    work = os.path.join(d, 'work')
    os.mkdir(work)
    for name in os.listdir(root):
        if name in ('build', '.git') or name.startswith('build-'):
            continue
        os.symlink(os.path.join(root, name), os.path.join(work, name))
    os.mkdir(os.path.join(work, 'build'))
    os.symlink(tracc, os.path.join(work, 'build', 'tracc'))
    os.mkdir(os.path.join(d, 'bin'))
    os.symlink(tracc, os.path.join(d, 'bin', 'tracc'))
    return d, work


def run_page(page, root, tracc):
    """Runs every transcript of the page; fills each command's 'got' and 'rc'."""
    d, work = scratch_dir(root, tracc)
    try:
        script = ['__rc=0']
        allcmds = []
        for item in page.items:
            if item[0] == 'file':
                script.append("cat > '%s' <<'__TRACC_DOCS_EOF__'\n%s__TRACC_DOCS_EOF__" % (item[1], item[2]))
                continue
            for c in item[2]:
                k = len(allcmds)
                allcmds.append(c)
                script.append('(exit $__rc)\n%s\n__rc=$?; printf "\\n@@tracc-docs %d %%d@@\\n" "$__rc"' % (c['text'], k))
        env = dict(os.environ)
        env['PATH'] = os.path.join(d, 'bin') + os.pathsep + env.get('PATH', '')
        env.setdefault('OPENBLAS_NUM_THREADS', '1')
        # the transcripts are the Haswell kernels' output (docs/reproduction.md, "To the bit");
        # another kernel family rounds differently and prints other digits
        env['OPENBLAS_CORETYPE'] = 'Haswell'
        env.pop('TRACC_OPENBLAS_FALLBACK', None)
        env['TRACC'] = 'build/tracc'
        # stdbuf works by LD_PRELOAD, which an ASan build (make SANITIZE=...) refuses unless told
        env['ASAN_OPTIONS'] = (env.get('ASAN_OPTIONS', '') + ':verify_asan_link_order=0').lstrip(':')
        with open(os.path.join(d, 'script.sh'), 'w') as f:
            f.write('\n'.join(script) + '\n')
        argv = ['sh', os.path.join(d, 'script.sh')]
        if shutil.which('stdbuf'):
            argv = ['stdbuf', '-oL', '-eL'] + argv   # stdout and stderr interleaved as on a terminal
        p = subprocess.run(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
        out = p.stdout.decode('utf-8', 'replace')
        marker = re.compile(r'\n@@tracc-docs (\d+) (\d+)@@\n')
        pos = 0
        for m in marker.finditer(out):
            k, rc = int(m.group(1)), int(m.group(2))
            chunk = out[pos:m.start()]
            pos = m.end()
            if chunk.endswith('\n'):
                chunk = chunk[:-1]
            allcmds[k]['got'] = [ln.rstrip() for ln in chunk.split('\n')] if chunk else []
            allcmds[k]['rc'] = rc
        for c in allcmds:
            if 'got' not in c:
                c['got'], c['rc'] = ['(the transcript stopped before this command)'], -1
        return allcmds, os.path.realpath(work)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def haswell_capable():
    """Whether this CPU has the AVX2 and FMA that OpenBLAS's Haswell kernels use."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = line.split(':', 1)[1].split()
                    return 'avx2' in flags and 'fma' in flags
    except OSError:
        pass
    return False


def main(argv):
    regen = '--regen' in argv
    slow = '--slow' in argv or regen
    files = [a for a in argv if not a.startswith('--')]
    root = os.getcwd()
    if not files:
        files = ['README.md'] + sorted(os.path.join('docs', f) for f in os.listdir('docs') if f.endswith('.md'))
    tracc = os.path.realpath(os.environ.get('TRACC') or 'build/tracc')
    if not os.access(tracc, os.X_OK):
        print('check_examples: no tracc binary at %s (run make)' % tracc)
        return 1
    exact = os.environ.get('DOCS_EXACT') == '1'
    if not haswell_capable():
        print('check_examples: this CPU lacks AVX2 or FMA, so it cannot run the OpenBLAS Haswell kernels '
              'whose rounding the transcripts show: skipped')
        return 0
    passed = failed = 0
    for path in files:
        page = Page(path)
        for e in page.errors:
            print('FAIL: ' + e)
            failed += 1
        cmds = [c for it in page.items if it[0] == 'cmds' for c in it[2]]
        if not cmds:
            continue
        if page.slow and not slow:
            print('%s: %d commands not run here (the page is marked slow; `make docs-check` runs them)'
                  % (path, len(cmds)))
            continue
        allcmds, scratch = run_page(page, root, tracc)
        for i, c in enumerate(allcmds):
            where = '%s:%d: $ %s' % (path, c['lineno'], c['text'].split('\n')[0])
            want = [normalise(w, None) for w in c['want']]
            got = [normalise(g, scratch) for g in c['got']]
            ok_rc = (c['rc'] == 0 or any('error' in w for w in c['want']) or
                     (i + 1 < len(allcmds) and allcmds[i + 1]['text'].strip() == 'echo $?'))
            if not ok_rc:
                print('FAIL: %s\n  exit status %d' % (where, c['rc']))
                print('\n'.join('  | ' + g for g in c['got'][-20:]))
                failed += 1
                continue
            if regen:
                new, ok = regen_lines(c['want'], [g.replace(scratch + '/', '').replace(scratch, '.') for g in c['got']], None)
                if not ok:
                    print('REGEN: %s: the kept lines around `…` are no longer printed; edit this one by hand' % where)
                    failed += 1
                c['new'] = new
                passed += 1
                continue
            if align(want, got, lambda w, g: same(w, g, exact)) is not None:
                passed += 1
                continue
            failed += 1
            print('FAIL: %s\n  the output differs from the page. Wanted:' % where)
            print('\n'.join('  | ' + w for w in c['want']))
            print('  Got:')
            print('\n'.join('  | ' + g for g in c['got']))
        if regen:
            write_back(page, allcmds)
    print('RESULT passed=%d failed=%d' % (passed, failed))
    return 1 if failed else 0


def write_back(page, allcmds):
    """Replaces each console block's output lines with the regenerated ones."""
    k = 0
    out, last = [], 0
    for (start, end), item in zip(page.blocks, [it for it in page.items if it[0] == 'cmds']):
        body = page.lines[start:end]
        cmds = item[2]
        new_body = body[:cmds[0]['first']] if cmds else body
        for c in cmds:
            new_body.extend(body[c['first']:c['last'] + 1])
            new_body.extend(allcmds[k].get('new', c['want']))
            k += 1
        out.extend(page.lines[last:start])
        out.extend(new_body)
        last = end
    out.extend(page.lines[last:])
    if out != page.lines:
        with open(page.path, 'w', encoding='utf-8') as f:
            f.write('\n'.join(out))
        print('%s: rewritten' % page.path)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
