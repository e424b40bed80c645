#!/usr/bin/env python3
"""Random well-typed .rasp programs for the "no false exact" test (tests/cli/randprog.sh).

randprog.py SEED COUNT OUTDIR writes COUNT programs OUTDIR/p<SEED>_<i>.rasp. The generator
tracks each s-op's kind (categorical token/int/bool, numerical) so most programs pass
`tracc check`; the few that do not are skipped by the test. Small vocabs and max_len keep
every compile verified on every input. Deterministic for a given seed (Python's own PRNG).
"""
import os
import random
import sys

CMPS = ["==", "!=", "<", "<=", ">", ">="]


def program(rng):
    ints = rng.random() < 0.5
    vocab = [0, 1, 2][: rng.choice([2, 3])] if ints else ["a", "b", "c"][: rng.choice([2, 3])]
    max_len = rng.choice([2, 3, 4])
    lines = ["vocab {%s};" % ", ".join(str(v) for v in vocab), "max_len %d;" % max_len]
    # pools of s-op names by kind: 'tok' (vocab values), 'int' (small ints), 'bool', 'num'
    pools = {"tok": ["tokens"], "int": ["indices"], "bool": [], "num": []}
    sels = []
    n = 0

    def fresh(prefix):
        nonlocal n
        n += 1
        return "%s%d" % (prefix, n)

    def lit(kind):
        if kind == "tok":
            v = rng.choice(vocab)
            return '"%s"' % v if not ints else str(v)
        return str(rng.randint(0, 3))

    def new_select():
        kk = rng.choice([k for k in ("tok", "int", "bool") if pools[k]])
        qk = kk if rng.random() < 0.7 else rng.choice([k for k in ("tok", "int", "bool") if pools[k]])
        cmp = rng.choice(CMPS + ["true"] * 1) if (kk == qk or {kk, qk} <= {"int", "bool"}) else rng.choice(["true", "false"])
        if cmp in ("<", "<=", ">", ">=") and "bool" in (kk, qk) and kk != qk:
            cmp = "=="
        return "select(%s, %s, %s)" % (rng.choice(pools[kk]), rng.choice(pools[qk]), cmp)

    for _ in range(rng.randint(2, 6)):
        r = rng.random()
        name = fresh("s")
        if r < 0.25:                                      # categorical map
            src = rng.choice(["tok", "int"] + (["bool"] if pools["bool"] else []))
            a = rng.choice(pools[src])
            if src == "bool":
                lines.append("%s = map(lambda x: not x, %s);" % (name, a)); pools["bool"].append(name)
            elif rng.random() < 0.5:
                lines.append("%s = %s %s %s;" % (name, a, rng.choice(["==", "!=", "<", ">"]), lit(src if src == "tok" else "int")))
                pools["bool"].append(name)
            elif src == "int" or ints:
                lines.append("%s = map(lambda x: x + %d, %s);" % (name, rng.randint(1, 2), a)); pools["int"].append(name)
            else:
                lines.append("%s = map(lambda x: x == %s, %s);" % (name, lit("tok"), a)); pools["bool"].append(name)
        elif r < 0.35 and len(pools["int"]) + len(pools["tok"]) >= 2:   # sequence map
            a, b = rng.choice(pools["int"] + (pools["tok"] if ints else [])), rng.choice(pools["int"])
            lines.append("%s = sequence_map(lambda x, y: x + y, %s, %s);" % (name, a, b)); pools["int"].append(name)
        elif r < 0.55:                                    # selector width
            sel = new_select()
            if sels and rng.random() < 0.4:
                other = rng.choice(sels)
                sel = "%s %s %s" % (sel, rng.choice(["and", "or"]), other)
            sname = fresh("sel")
            lines.append("%s = %s;" % (sname, sel)); sels.append(sname)
            lines.append("%s = selector_width(%s);" % (name, sname)); pools["int"].append(name)
        elif r < 0.8:                                     # categorical aggregate
            sel = rng.choice(sels) if sels and rng.random() < 0.5 else new_select()
            kind = rng.choice([k for k in ("tok", "int", "bool") if pools[k]])
            d = ", %s" % lit(kind if kind != "bool" else "int") if (rng.random() < 0.3 and kind != "bool") else ""
            lines.append("%s = aggregate(%s, %s%s);" % (name, sel, rng.choice(pools[kind]), d)); pools[kind].append(name)
        else:                                             # numerical aggregate of a 0/1 s-op
            if not pools["bool"]:
                b = fresh("s"); src = rng.choice(pools["tok"])
                lines.append("%s = numerical(%s == %s);" % (b, src, lit("tok")))
            else:
                b = fresh("s"); lines.append("%s = numerical(map(lambda x: 1 if x else 0, %s));" % (b, rng.choice(pools["bool"])))
            sel = rng.choice(sels) if sels and rng.random() < 0.5 else new_select()
            lines.append("%s = numerical(aggregate(%s, %s, 0));" % (name, sel, b)); pools["num"].append(name)
    outs = sorted((s for k in ("int", "tok", "bool", "num") for s in pools[k] if s.startswith("s")),
                  key=lambda s: int(s[1:]))
    lines.append("output %s;" % (outs[-1] if outs and rng.random() < 0.7 else rng.choice(outs or ["tokens"])))
    return "\n".join(lines) + "\n"


def main():
    seed, count, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        with open(os.path.join(out, "p%d_%03d.rasp" % (seed, i)), "w") as f:
            f.write(program(rng))


if __name__ == "__main__":
    main()
