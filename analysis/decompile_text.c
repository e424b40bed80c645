/* decompile_text.c — the decompiled program as text: the original source with the
 * expression of every changed op replaced by the nearest readable form of its recovered
 * table (decompile.h), so an unchanged op keeps its text, its comments and its layout, and
 * the diff against the original shows exactly the ops that changed. */
#include "analysis/decompile_int.h"
#include "compiler/front/valops.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t start, end;  /* byte range [start, end) of the source */
    char *text;
} Repl;

typedef struct {
    Dc *dc;
    const char *src;
    size_t len;
    size_t *line_start;
    int nlines;
    /* def bodies: byte ranges where an op's text is shared by every call */
    size_t *def_lo, *def_hi;
    int ndefs;
    Repl *repl;
    int nrepl, cap;
    char **sel_text;    /* (nsels) new text of a changed anonymous selector */
} Tx;

static void tx_lines(Tx *t)
{
    int cap = 64;
    t->line_start = xmalloc(sizeof(size_t) * (size_t)cap);
    t->nlines = 0;
    t->line_start[t->nlines++] = 0;
    for (size_t i = 0; i < t->len; i++)
        if (t->src[i] == '\n') {
            if (t->nlines == cap) {
                cap *= 2;
                t->line_start = xrealloc(t->line_start, sizeof(size_t) * (size_t)cap);
            }
            t->line_start[t->nlines++] = i + 1;
        }
}

/* The bodies of `def` blocks: from `def` at the start of a line to its closing brace
 * (braces counted outside strings and comments). */
static void tx_defs(Tx *t)
{
    const char *s = t->src;
    for (int l = 0; l < t->nlines; l++) {
        size_t i = t->line_start[l];
        while (i < t->len && (s[i] == ' ' || s[i] == '\t')) i++;
        if (strncmp(s + i, "def", 3) || !(isspace((unsigned char)s[i + 3]))) continue;
        int depth = 0, opened = 0;
        size_t k = i;
        for (; k < t->len; k++) {
            char c = s[k];
            if (c == '#') {
                while (k < t->len && s[k] != '\n') k++;
                continue;
            }
            if (c == '"') {
                for (k++; k < t->len && s[k] != '"' && s[k] != '\n'; k++)
                    if (s[k] == '\\') k++;
                continue;
            }
            if (c == '{') depth++, opened = 1;
            if (c == '}' && --depth == 0 && opened) break;
        }
        t->def_lo = xrealloc(t->def_lo, sizeof(size_t) * (size_t)(t->ndefs + 1));
        t->def_hi = xrealloc(t->def_hi, sizeof(size_t) * (size_t)(t->ndefs + 1));
        t->def_lo[t->ndefs] = i;
        t->def_hi[t->ndefs++] = k;
    }
}

/* A span's byte range, or 0 when it is not in the main text. */
static int span_range(const Tx *t, Span sp, size_t *a, size_t *b)
{
    if (sp.file != 0 || sp.line < 1 || sp.end_line < sp.line || sp.end_line > t->nlines) return 0;
    *a = t->line_start[sp.line - 1] + (size_t)sp.col - 1;
    *b = t->line_start[sp.end_line - 1] + (size_t)sp.end_col;
    return *a < *b && *b <= t->len;
}

static int in_def(const Tx *t, size_t a)
{
    for (int i = 0; i < t->ndefs; i++)
        if (a >= t->def_lo[i] && a <= t->def_hi[i]) return 1;
    return 0;
}

static int repl_cmp(const void *x, const void *y)
{
    const Repl *a = x, *b = y;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    return (a->end < b->end) - (a->end > b->end);   /* outer first */
}

/* The text of [a, b) with every replacement inside it applied (outermost wins). */
static char *range_text(Tx *t, size_t a, size_t b)
{
    if (t->nrepl) qsort(t->repl, (size_t)t->nrepl, sizeof(Repl), repl_cmp);
    StrBuf o;
    sb_init(&o);
    size_t at = a;
    for (int i = 0; i < t->nrepl; i++) {
        Repl *r = &t->repl[i];
        if (r->start < at || r->end > b) continue;
        sb_putn(&o, t->src + at, r->start - at);
        sb_puts(&o, r->text);
        at = r->end;
    }
    sb_putn(&o, t->src + at, b - at);
    return dc_take(&o);
}

static void add_repl(Tx *t, size_t a, size_t b, const char *text)
{
    if (t->nrepl == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->repl = xrealloc(t->repl, sizeof(Repl) * (size_t)t->cap);
    }
    t->repl[t->nrepl++] = (Repl){a, b, xstrdup(text)};
}

/* How an operand is written in a new expression: its name, or its current text. */
static char *sop_ref(Tx *t, int s)
{
    const RaspSop *ps = &t->dc->p->sops[s];
    if (ps->named && !strchr(ps->label, '.')) return xstrdup(ps->label);
    if (ps->op == SOP_TOKENS) return xstrdup("tokens");
    if (ps->op == SOP_INDICES) return xstrdup("indices");
    size_t a, b;
    if (span_range(t, ps->span, &a, &b)) return range_text(t, a, b);
    return xstrdup(ps->label);
}

static char *sel_ref(Tx *t, int s)
{
    const RaspSel *ps = &t->dc->p->sels[s];
    if (ps->named && !strchr(ps->label, '.')) return xstrdup(ps->label);
    size_t a, b;
    if (span_range(t, ps->span, &a, &b)) return range_text(t, a, b);
    return xstrdup(ps->label);
}

/* 1 if s can stand as an operand of a binary operator without parentheses: a name, a
 * literal, or one call. */
static int atomic(const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '"')) i++;
    if (i == n) return 1;
    if (s[i] != '(' || s[n - 1] != ')') return 0;
    int depth = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] == '(') depth++;
        if (s[k] == ')' && --depth == 0 && k != n - 1) return 0;
    }
    return 1;
}

static void operand(StrBuf *o, const char *ref)
{
    if (atomic(ref)) sb_puts(o, ref);
    else sb_printf(o, "(%s)", ref);
}

static void lit(StrBuf *o, const DcDict *d, int i)
{
    val_format_quoted(d->val[i], o);
}

static int kinds_compare(Value a, Value b)
{
    if (a.kind == VAL_STR || b.kind == VAL_STR) return a.kind == b.kind;
    return 1;
}

/* A constant for the printed program: an integral float as an integer (`balance == 1`,
 * which compares the same). */
static void const_lit(StrBuf *o, Value c)
{
    if (c.kind == VAL_FLOAT && c.u.f == (double)(int64_t)c.u.f && fabs(c.u.f) < 1e15) c = val_int((int64_t)c.u.f);
    val_format_quoted(c, o);
}

/* 1 if entry i counts: it has a value and, when some entries were observed, it was. */
static int counts(const int32_t *table, const uint8_t *seen, int any_seen, int i)
{
    return table[i] >= 0 && (!any_seen || seen[i]);
}

static int any_of(const uint8_t *seen, long n)
{
    for (long i = 0; seen && i < n; i++)
        if (seen[i]) return 1;
    return 0;
}

/* The readable form of a table over one operand: domain dA, outputs in dS; only the
 * entries that count (above) constrain it. Sets *form. ref is the operand's text. */
static char *map_form(const DcDict *dA, const DcDict *dS, const int32_t *table, const uint8_t *seen, int nA,
                      const char *ref, const char **form)
{
    StrBuf o;
    sb_init(&o);
    int as = any_of(seen, nA);
    int first = -1, nent = 0;
    for (int a = 0; a < nA; a++)
        if (counts(table, seen, as, a)) {
            if (first < 0) first = a;
            nent++;
        }
    if (nent == 0) {
        *form = "constant";
        sb_printf(&o, "map(lambda x: None, %s)", ref);
        return dc_take(&o);
    }
    /* a constant */
    int constant = 1;
    for (int a = 0; a < nA && constant; a++)
        if (counts(table, seen, as, a) && table[a] != table[first]) constant = 0;
    if (constant) {
        *form = "constant";
        sb_puts(&o, "map(lambda x: ");
        lit(&o, dS, table[first]);
        sb_printf(&o, ", %s)", ref);
        return dc_take(&o);
    }
    StrBuf err;
    sb_init(&err);
    Arena ar;
    arena_init(&ar);
    /* x OP c, for a comparison (boolean outputs) or arithmetic (numbers): the candidate
     * with the fewest exceptions; a few exceptions are listed in front of it */
    static const AstOp cmp_ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    static const AstOp num_ops[] = {OP_ADD, OP_SUB, OP_MUL};
    int best_bad = nent + 1, best_pass = 0;
    AstOp best_op = OP_NONE;
    Value best_c = val_none();
    uint8_t *bad = xcalloc((size_t)nA + 1, 1), *best_badset = xcalloc((size_t)nA + 1, 1);
    for (int pass = 0; pass < 2 && best_bad > 0; pass++) {
        const AstOp *ops = pass ? num_ops : cmp_ops;
        int nops = pass ? 3 : 6;
        for (int oi = 0; oi < nops && best_bad > 0; oi++) {
            /* candidate constants: the domain's values for a comparison; for arithmetic
             * what each entry implies */
            int ncand = pass ? nA : dA->n;
            for (int ci = 0; ci < ncand && best_bad > 0; ci++) {
                Value c;
                if (!pass) c = dA->val[ci];
                else {
                    if (!counts(table, seen, as, ci)) continue;
                    Value x = dA->val[ci], y = dS->val[table[ci]];
                    if (!val_is_number(x) || !val_is_number(y) || x.kind == VAL_BOOL || y.kind == VAL_BOOL) break;
                    AstOp inv = ops[oi] == OP_MUL ? OP_DIV : OP_SUB;
                    Value a1 = ops[oi] == OP_SUB ? x : y, b1 = ops[oi] == OP_SUB ? y : x;
                    sb_clear(&err);
                    if (!val_binary(inv, a1, b1, &c, &err, &ar)) continue;
                    if (c.kind == VAL_FLOAT && x.kind == VAL_INT && y.kind == VAL_INT) {
                        if (c.u.f != (double)(int64_t)c.u.f) continue;
                        c = val_int((int64_t)c.u.f);
                    }
                }
                int nbad = 0;
                for (int a = 0; a < nA && nbad < best_bad; a++) {
                    bad[a] = 0;
                    if (!counts(table, seen, as, a)) continue;
                    Value r;
                    sb_clear(&err);
                    int ok;
                    if (!kinds_compare(dA->val[a], c) || !val_binary(ops[oi], dA->val[a], c, &r, &err, &ar)) ok = 0;
                    else ok = val_equal(r, dS->val[table[a]]) && r.kind == dS->val[table[a]].kind;
                    if (!ok) bad[a] = 1, nbad++;
                }
                if (nbad < best_bad) {
                    best_bad = nbad;
                    best_pass = pass;
                    best_op = ops[oi];
                    best_c = c;
                    memcpy(best_badset, bad, (size_t)nA);
                }
            }
        }
    }
    /* at most a quarter of the entries (and at least three that fit) as exceptions */
    if (best_op != OP_NONE && (best_bad == 0 || (4 * best_bad <= nent && nent - best_bad >= 3))) {
        *form = best_bad ? (best_pass ? "arithmetic with exceptions" : "comparison with exceptions")
                         : (best_pass ? "arithmetic" : "comparison");
        StrBuf core;
        sb_init(&core);
        const char *x = best_bad ? "x" : ref;
        if (best_bad) sb_puts(&core, x);
        else operand(&core, ref);
        /* x + -2 reads as x - 2 */
        if (best_pass && (best_op == OP_ADD || best_op == OP_SUB) && val_is_number(best_c) &&
            best_c.kind != VAL_BOOL && val_as_double(best_c) < 0) {
            sb_puts(&core, best_op == OP_ADD ? " - " : " + ");
            Value neg;
            sb_clear(&err);
            val_unary(OP_NEG, best_c, &neg, &err);
            const_lit(&core, neg);
        } else {
            sb_printf(&core, " %s ", ast_op_name(best_op));
            const_lit(&core, best_c);
        }
        if (!best_bad) sb_puts(&o, core.s);
        else {
            sb_puts(&o, "map(lambda x: ");
            for (int a = 0; a < nA; a++) {
                if (!best_badset[a]) continue;
                lit(&o, dS, table[a]);
                sb_puts(&o, " if x == ");
                lit(&o, dA, a);
                sb_puts(&o, " else ");
            }
            sb_printf(&o, "%s, %s)", core.s, ref);
        }
        sb_free(&core);
    }
    free(bad);
    free(best_badset);
    arena_free(&ar);
    sb_free(&err);
    if (o.len) return dc_take(&o);
    int *cnt = xcalloc((size_t)dS->n + 1, sizeof(int));
    int most = table[first];
    for (int a = 0; a < nA; a++)
        if (counts(table, seen, as, a) && ++cnt[table[a]] > cnt[most]) most = table[a];
    free(cnt);
    /* the lookup-table form of map (docs/language.md): the most frequent output as
     * `else` */
    *form = "lookup";
    sb_puts(&o, "map({");
    for (int a = 0; a < nA; a++) {
        if (!counts(table, seen, as, a) || table[a] == most) continue;
        lit(&o, dA, a);
        sb_puts(&o, ": ");
        lit(&o, dS, table[a]);
        sb_puts(&o, ", ");
    }
    sb_puts(&o, "else: ");
    lit(&o, dS, most);
    sb_printf(&o, "}, %s)", ref);
    return dc_take(&o);
}

/* Two-argument forms tried before a lookup: `y OP x + c` (and `x OP y`, c = 0) for a
 * comparison, `x OP y + c` for arithmetic, c a small integer. */
static int pair_form(const DcDict *dA, const DcDict *dB, const DcDict *dS, const int32_t *table, const uint8_t *seen,
                     int any, int nB, long n, StrBuf *o)
{
    static const AstOp cmp_ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    static const AstOp num_ops[] = {OP_ADD, OP_SUB, OP_MUL};
    StrBuf err;
    sb_init(&err);
    Arena ar;
    arena_init(&ar);
    int found = 0;
    for (int pass = 0; pass < 2 && !found; pass++)
        for (int oi = 0; oi < (pass ? 3 : 6) && !found; oi++)
            for (int ci = 0; ci <= 10 && !found; ci++)
                for (int swap = 1; swap >= 0 && !found; swap--) {
                    int64_t c = ci <= 5 ? ci : -(ci - 5);   /* 0..5, then -1..-5 */
                    AstOp op = pass ? num_ops[oi] : cmp_ops[oi];
                    int ok = 1, used = 0;
                    for (long i = 0; i < n && ok; i++) {
                        if (!counts(table, seen, any, (int)i)) continue;
                        Value x = dA->val[i / nB], y = dB->val[i % nB], l, r, v, t;
                        if (!val_is_number(x) || !val_is_number(y)) {
                            ok = 0;
                            break;
                        }
                        /* comparisons: (swap ? y : x) OP (other + c); arithmetic: x OP y + c */
                        sb_clear(&err);
                        if (!pass) {
                            l = swap ? y : x;
                            if (!val_binary(OP_ADD, swap ? x : y, val_int(c), &r, &err, &ar)) ok = 0;
                            else if (!val_binary(op, l, r, &v, &err, &ar)) ok = 0;
                        } else {
                            if (swap) {
                                ok = 0;
                                break;
                            }
                            if (!val_binary(op, x, y, &t, &err, &ar) || !val_binary(OP_ADD, t, val_int(c), &v, &err, &ar)) ok = 0;
                        }
                        if (ok) ok = val_equal(v, dS->val[table[i]]) && (v.kind == VAL_BOOL) == (dS->val[table[i]].kind == VAL_BOOL);
                        used++;
                    }
                    if (!ok || !used) continue;
                    found = 1;
                    const char *a = pass ? "x" : (swap ? "y" : "x"), *b = pass ? "y" : (swap ? "x" : "y");
                    sb_printf(o, "%s %s %s", a, ast_op_name(op), b);
                    if (c > 0) sb_printf(o, " + %lld", (long long)c);
                    if (c < 0) sb_printf(o, " - %lld", (long long)-c);
                }
    arena_free(&ar);
    sb_free(&err);
    return found;
}

static char *seqmap_form(const DcDict *dA, const DcDict *dB, const DcDict *dS, const DcRec *r, const char *ra,
                         const char *rb, const char **form)
{
    StrBuf o;
    sb_init(&o);
    int as = any_of(r->seen, r->ntable);
    sb_puts(&o, "sequence_map(lambda x, y: ");
    size_t mark = o.len;
    if (pair_form(dA, dB, dS, r->table, r->seen, as, r->nb, r->ntable, &o)) {
        *form = "comparison or arithmetic";
        sb_printf(&o, ", %s, %s)", ra, rb);
        return dc_take(&o);
    }
    o.len = mark;
    o.s[mark] = 0;
    *form = "lookup";
    int *cnt = xcalloc((size_t)dS->n + 1, sizeof(int));
    int most = -1;
    for (int i = 0; i < r->ntable; i++) {
        if (!counts(r->table, r->seen, as, i)) continue;
        cnt[r->table[i]]++;
        if (most < 0 || cnt[r->table[i]] > cnt[most]) most = r->table[i];
    }
    free(cnt);
    for (int i = 0; i < r->ntable && most >= 0; i++) {
        if (!counts(r->table, r->seen, as, i) || r->table[i] == most) continue;
        lit(&o, dS, r->table[i]);
        sb_puts(&o, " if x == ");
        lit(&o, dA, i / r->nb);
        sb_puts(&o, " and y == ");
        lit(&o, dB, i % r->nb);
        sb_puts(&o, " else ");
    }
    if (most >= 0) lit(&o, dS, most);
    else sb_puts(&o, "None");
    sb_printf(&o, ", %s, %s)", ra, rb);
    return dc_take(&o);
}

static char *select_form(Tx *t, int sel, const char **form)
{
    Dc *dc = t->dc;
    const RaspSel *ps = &dc->p->sels[sel];
    const DcSelRec *r = &dc->srec[sel];
    const DcDict *dK = &dc->dict[ps->keys], *dQ = &dc->dict[ps->queries];
    char *kr = sop_ref(t, ps->keys), *qr = sop_ref(t, ps->queries);
    StrBuf o, err;
    sb_init(&o);
    sb_init(&err);
    Arena ar;
    arena_init(&ar);
    long tot = (long)r->nk * r->nq;
    int as = any_of(r->seen, tot);
    long nsel = 0, ncount = 0;
    for (long c = 0; c < tot; c++)
        if (!as || r->seen[c]) {
            ncount++;
            nsel += r->pred[c];
        }
    /* candidates: true, false, k OP q, k OP c, q OP c (c a constant of the domain); the
     * one with the fewest mismatching observed pairs, printed alone when it has none and
     * with its exceptions listed when they are few */
    static const AstOp ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    long best_bad = ncount + 1;
    int best_side = -1, best_op = 0, best_c = 0;
    uint8_t *cand = xmalloc((size_t)tot + 1), *best = xmalloc((size_t)tot + 1);
    for (int side = -2; side < 3 && best_bad > 0; side++) {
        int nc = side <= 0 ? 1 : side == 1 ? dK->n : dQ->n;
        for (int oi = 0; oi < (side < 0 ? 1 : 6) && best_bad > 0; oi++)
            for (int ci = 0; ci < nc && best_bad > 0; ci++) {
                long nbad = 0;
                for (int k = 0; k < r->nk && nbad < best_bad; k++)
                    for (int q = 0; q < r->nq && nbad < best_bad; q++) {
                        size_t c = (size_t)k * r->nq + q;
                        if (as && !r->seen[c]) continue;
                        int bb;
                        if (side == -2) bb = 1;
                        else if (side == -1) bb = 0;
                        else {
                            Value x = side == 2 ? dQ->val[q] : dK->val[k];
                            Value y = side == 0 ? dQ->val[q] : side == 1 ? dK->val[ci] : dQ->val[ci];
                            Value v;
                            sb_clear(&err);
                            if (!kinds_compare(x, y) || !val_binary(ops[oi], x, y, &v, &err, &ar) || !val_as_bool(v, &bb)) {
                                nbad = best_bad;
                                break;
                            }
                        }
                        cand[c] = (uint8_t)bb;
                        nbad += bb != r->pred[c];
                    }
                if (nbad < best_bad) {
                    best_bad = nbad;
                    best_side = side;
                    best_op = oi;
                    best_c = ci;
                    memcpy(best, cand, (size_t)tot);
                }
            }
    }
    StrBuf base;
    sb_init(&base);
    if (best_side == -2) sb_puts(&base, "true");
    else if (best_side == -1) sb_puts(&base, "false");
    else if (best_side == 0) sb_printf(&base, "%s", ast_op_name(ops[best_op]));
    else if (best_side > 0) {
        sb_printf(&base, "%s %s ", best_side == 1 ? "k" : "q", ast_op_name(ops[best_op]));
        const_lit(&base, best_side == 1 ? dK->val[best_c] : dQ->val[best_c]);
    }
    if (best_side >= -2 && best_bad == 0) {
        *form = "comparison";
        if (best_side > 0) sb_printf(&o, "select(%s, %s, lambda k, q: %s)", kr, qr, base.s);
        else sb_printf(&o, "select(%s, %s, %s)", kr, qr, base.s);
    } else if (best_side >= -2 && best_bad <= DC_MAX_EXCEPTIONS && 4 * best_bad <= ncount) {
        /* (base or added pairs) and not (removed pairs) */
        *form = "comparison with exceptions";
        const char *bl = best_side == -2 ? "true" : best_side == -1 ? "false" : NULL;
        StrBuf b2;
        sb_init(&b2);
        if (best_side == 0) sb_printf(&b2, "k %s q", ast_op_name(ops[best_op]));
        else sb_puts(&b2, bl ? bl : base.s);
        sb_printf(&o, "select(%s, %s, lambda k, q: ", kr, qr);
        int nadd = 0, nrem = 0;
        for (size_t c = 0; c < (size_t)tot; c++)
            if ((!as || r->seen[c]) && best[c] != r->pred[c]) {
                if (r->pred[c]) nadd++;
                else nrem++;
            }
        if (nadd) sb_putc(&o, '(');
        sb_puts(&o, b2.s);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 0 && !nadd) continue;
            if (pass == 1 && !nrem) continue;
            if (pass == 1) sb_puts(&o, nadd ? ") and not (" : " and not (");
            int any = 0;
            for (int k = 0; k < r->nk; k++)
                for (int q = 0; q < r->nq; q++) {
                    size_t c = (size_t)k * r->nq + q;
                    if ((as && !r->seen[c]) || best[c] == r->pred[c] || r->pred[c] != (pass == 0)) continue;
                    if (pass == 0 || any++) sb_puts(&o, " or ");
                    sb_puts(&o, "(k == ");
                    lit(&o, dK, k);
                    sb_puts(&o, " and q == ");
                    lit(&o, dQ, q);
                    sb_puts(&o, ")");
                }
        }
        sb_puts(&o, nrem || nadd ? "))" : ")");
        sb_free(&b2);
    } else {
        /* list the smaller side */
        int want = 2 * nsel <= ncount;
        *form = "lookup";
        sb_printf(&o, "select(%s, %s, lambda k, q: %s", kr, qr, want ? "" : "not (");
        int any = 0;
        for (int k = 0; k < r->nk; k++)
            for (int q = 0; q < r->nq; q++) {
                if (as && !r->seen[(size_t)k * r->nq + q]) continue;
                if (r->pred[(size_t)k * r->nq + q] != want) continue;
                if (any++) sb_puts(&o, " or ");
                sb_puts(&o, "(k == ");
                lit(&o, dK, k);
                sb_puts(&o, " and q == ");
                lit(&o, dQ, q);
                sb_puts(&o, ")");
            }
        if (!any) sb_puts(&o, "false");
        sb_puts(&o, want ? ")" : "))");
    }
    sb_free(&base);
    free(cand);
    free(best);
    arena_free(&ar);
    sb_free(&err);
    free(kr);
    free(qr);
    return dc_take(&o);
}

/* A changed op outside a def as its original text with one literal or operator changed
 * (decompile_edit.c), recorded as its replacement; NULL when no such edit gives its table,
 * when it is in a def, or when a changed op inside it was already rewritten. */
static char *compose(void *ctx, size_t a, size_t b, const char *text)
{
    Tx *t = ctx;
    add_repl(t, a, b, text);
    char *out = range_text(t, 0, t->len);
    /* take it out again (range_text sorted the list) */
    for (int i = 0; i < t->nrepl; i++)
        if (t->repl[i].start == a && t->repl[i].end == b) {
            free(t->repl[i].text);
            t->repl[i] = t->repl[--t->nrepl];
            break;
        }
    return out;
}

static char *one_edit(Tx *t, int s, int sel, Span sp)
{
    size_t a, b;
    if (!span_range(t, sp, &a, &b) || in_def(t, a)) return NULL;
    for (int i = 0; i < t->nrepl; i++)
        if (t->repl[i].start < b && t->repl[i].end > a) return NULL;
    char *txt = dc_op_edit(t->dc, s, sel, a, b, compose, t);
    if (txt) add_repl(t, a, b, txt);
    return txt;
}

/* The maps and sequence maps without residual dimensions that s-op s reads, directly or
 * through one another (folded into s's MLP), in the main text outside defs. */
static int fused_operands(Tx *t, int s, int *out, int nout)
{
    Dc *dc = t->dc;
    const RaspSop *ps = &dc->p->sops[s];
    int ops[2] = {ps->a, ps->op == SOP_SEQMAP ? ps->b : -1}, n = 0;
    for (int i = 0; i < 2; i++) {
        int x = ops[i];
        if (x < 0 || n >= nout) continue;
        const RaspSop *px = &dc->p->sops[x];
        if (px->op != SOP_MAP && px->op != SOP_SEQMAP) continue;
        const DecSop *rs = dc->dec[x] ? ro_find(&dc->lay, px) : NULL;
        if (rs && !rs->isvirtual) continue;
        size_t a, b;
        if (!span_range(t, px->span, &a, &b) || in_def(t, a)) continue;
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= out[k] == x;
        if (dup) continue;
        out[n++] = x;
        n += fused_operands(t, x, out + n, nout - n);
    }
    return n;
}

/* A changed map s that reads maps without dimensions of their own: the change may be in
 * one of those (their table lives in s's MLP). One edit of their text after which the
 * interpreter gives s the model's values is recorded on that operand; s is then unchanged. */
static int fused_edit(Tx *t, int s)
{
    Dc *dc = t->dc;
    int ops[16];
    int n = fused_operands(t, s, ops, 16);
    if (!n) return 0;
    size_t fa[16], fb[16], ea, eb;
    for (int i = 0; i < n; i++) span_range(t, dc->p->sops[ops[i]].span, &fa[i], &fb[i]);
    for (int i = 0; i < t->nrepl; i++)
        for (int k = 0; k < n; k++)
            if (t->repl[i].start < fb[k] && t->repl[i].end > fa[k]) return 0;
    char *txt = dc_fused_edit(dc, s, fa, fb, n, compose, t, &ea, &eb);
    if (!txt) return 0;
    add_repl(t, ea, eb, txt);
    free(txt);
    for (int k = 0; k < n; k++) {
        if (ea < fa[k] || eb > fb[k]) continue;
        DcRec *xr = &dc->rec[ops[k]];
        xr->changed = 1;
        xr->form = "one edit";
        xr->note = "no residual dimensions (folded into its reader): recovered through its reader's values, "
                   "as its original text with one literal or operator changed";
        free(xr->expr);
        xr->expr = range_text(t, fa[k], fb[k]);
        break;
    }
    DcRec *r = &dc->rec[s];
    r->changed = 0;
    r->note = "explained through an operand without dimensions of its own (folded into this op's MLP)";
    return 1;
}

/* 1 if the op's own text, in the program as decompiled so far (its operands rewritten),
 * already gives its recovered table: it differed from the original only on operand values
 * the original program does not have. */
static int as_written(Tx *t, int s, int sel, Span sp)
{
    size_t a, b;
    if (!span_range(t, sp, &a, &b)) return 0;
    char *cur = range_text(t, 0, t->len);
    int ok = dc_op_agrees(t->dc, s, sel, cur);
    free(cur);
    return ok;
}

/* Record the new text of op (span sp) if it can be rewritten in place. */
static int place(Tx *t, Span sp, const char *text, const char *wrap_enc)
{
    size_t a, b;
    if (!span_range(t, sp, &a, &b) || in_def(t, a)) return 0;
    /* keep an encoding annotation written around the expression */
    if (wrap_enc && !strncmp(t->src + a, wrap_enc, strlen(wrap_enc))) {
        StrBuf w;
        sb_init(&w);
        sb_printf(&w, "%s%s)", wrap_enc, text);
        add_repl(t, a, b, w.s);
        sb_free(&w);
    } else add_repl(t, a, b, text);
    return 1;
}

/* Ops changed inside a def: one edit of the program that gives every op inside a def its
 * recovered table (decompile_edit.c), recorded as a replacement; the notes say so. */
static void def_edit(Tx *t)
{
    Dc *dc = t->dc;
    const RaspProgram *p = dc->p;
    uint8_t *sop_in = xcalloc((size_t)p->nsops + 1, 1), *sel_in = xcalloc((size_t)p->nsels + 1, 1);
    size_t *sa = xcalloc((size_t)p->nsops + 1, sizeof(size_t)), *sb = xcalloc((size_t)p->nsops + 1, sizeof(size_t));
    size_t *la = xcalloc((size_t)p->nsels + 1, sizeof(size_t)), *lb = xcalloc((size_t)p->nsels + 1, sizeof(size_t));
    for (int s = 0; s < p->nsops; s++)
        sop_in[s] = p->sops[s].used && span_range(t, p->sops[s].span, &sa[s], &sb[s]) && in_def(t, sa[s]);
    for (int s = 0; s < p->nsels; s++)
        sel_in[s] = p->sels[s].used && span_range(t, p->sels[s].span, &la[s], &lb[s]) && in_def(t, la[s]);
    size_t ea, eb;
    char *etext = NULL;
    if (dc_def_edit(dc, t->def_lo, t->def_hi, t->ndefs, sop_in, sel_in, sa, sb, la, lb, compose, t, &ea, &eb, &etext)) {
        int overlaps = 0;
        for (int i = 0; i < t->nrepl; i++)
            if (ea < t->repl[i].end && eb > t->repl[i].start) overlaps = 1;
        if (!overlaps) {
            add_repl(t, ea, eb, etext);
            for (int s = 0; s < p->nsops; s++)
                if (sop_in[s] && dc->rec[s].note && strstr(dc->rec[s].note, "inside a def: not rewritten"))
                    dc->rec[s].note = "changed inside a def: rewritten by the one edit of the program (a literal or an "
                                      "operator of the def, or an argument of its call) that gives every op of the def "
                                      "its recovered table";
        }
    }
    free(etext);
    free(sop_in);
    free(sel_in);
    free(sa);
    free(sb);
    free(la);
    free(lb);
}

char *dc_write_program(Dc *dc)
{
    Tx t;
    memset(&t, 0, sizeof t);
    t.dc = dc;
    t.src = dc->src;
    t.len = strlen(dc->src);
    tx_lines(&t);
    tx_defs(&t);
    const RaspProgram *p = dc->p;
    /* ops and selectors in creation order: a selector before the first op that reads it */
    uint8_t *sel_done = xcalloc((size_t)p->nsels + 1, 1);
    int unplaced = 0;
    for (int s = 0; s < p->nsops; s++) {
        const RaspSop *ps = &p->sops[s];
        DcRec *r = &dc->rec[s];
        if (!ps->used || ps->op == SOP_TOKENS || ps->op == SOP_INDICES || ps->op == SOP_CONST) continue;
        if (ps->sel >= 0) {
            for (int k = 0; k <= ps->sel; k++) {
                if (sel_done[k] || p->sels[k].op != SEL_SELECT || !dc->srec[k].changed) continue;
                sel_done[k] = 1;
                if (as_written(&t, -1, k, p->sels[k].span)) {
                    dc->srec[k].changed = 0;
                    continue;
                }
                const char *form = "one edit";
                char *txt = one_edit(&t, -1, k, p->sels[k].span);
                if (!txt) txt = select_form(&t, k, &form);
                dc->srec[k].form = form;
                if (!place(&t, p->sels[k].span, txt, NULL)) {
                    /* note it on the reader */
                    r->note = "its selector changed inside a def: not rewritten";
                    unplaced = 1;
                }
                dc->srec[k].expr = txt;
            }
        }
        const char *wrap = ps->enc == ENC_NUMERICAL ? "numerical(" : NULL;
        char *txt = NULL;
        const char *form = "unchanged";
        if (r->changed && as_written(&t, s, -1, ps->span)) r->changed = 0;
        if (r->changed && (txt = one_edit(&t, s, -1, ps->span))) {
            form = "one edit";
            r->expr = txt;
        } else if (r->changed && (ps->op == SOP_MAP || ps->op == SOP_SEQMAP) && fused_edit(&t, s)) {
            txt = NULL;
        } else if (r->changed) {
            char *ra = ps->a >= 0 ? sop_ref(&t, ps->a) : xstrdup("");
            switch (ps->op) {
            case SOP_MAP: txt = map_form(&dc->dict[ps->a], &dc->dict[s], r->table, r->seen, r->ntable, ra, &form); break;
            case SOP_SEQMAP: {
                char *rb = sop_ref(&t, ps->b);
                txt = seqmap_form(&dc->dict[ps->a], &dc->dict[ps->b], &dc->dict[s], r, ra, rb, &form);
                free(rb);
                break;
            }
            case SOP_AGGREGATE: {
                char *sr = sel_ref(&t, ps->sel);
                StrBuf o;
                sb_init(&o);
                int ident = 1;
                for (int a = 0; a < r->ntable && ident; a++)
                    if (r->table[a] >= 0 && (!r->seen || r->seen[a]) &&
                        strcmp(dc->dict[ps->a].txt[a], dc->dict[s].txt[r->table[a]]))
                        ident = 0;
                const char *vf = "identity";
                char *vexpr = ident ? xstrdup(ra)
                                    : map_form(&dc->dict[ps->a], &dc->dict[s], r->table, r->seen, r->ntable, ra, &vf);
                if (!ident && ps->enc == ENC_NUMERICAL) {
                    /* a numerical aggregate averages a numerical operand */
                    char *w = xmalloc(strlen(vexpr) + 16);
                    sprintf(w, "numerical(%s)", vexpr);
                    free(vexpr);
                    vexpr = w;
                }
                sb_printf(&o, "aggregate(%s, %s", sr, vexpr);
                if (r->deflt >= 0) {
                    sb_puts(&o, ", ");
                    const_lit(&o, dc->dict[s].val[r->deflt]);
                }
                sb_puts(&o, ")");
                form = ident ? "default" : "value mapping";
                free(vexpr);
                free(sr);
                txt = dc_take(&o);
                break;
            }
            case SOP_SELWIDTH: {
                char *sr = sel_ref(&t, ps->sel);
                StrBuf o;
                sb_init(&o);
                sb_printf(&o, "selector_width(%s)", sr);
                DcDict wd;
                memset(&wd, 0, sizeof wd);
                wd.kind = VAL_INT;
                Arena wa;
                arena_init(&wa);
                char buf[32];
                for (int w = 0; w < r->ntable; w++) {
                    snprintf(buf, sizeof buf, "%d", w);
                    dc_dict_add(&wd, buf, &wa);
                }
                txt = map_form(&wd, &dc->dict[s], r->table, r->seen, r->ntable, o.s, &form);
                arena_free(&wa);
                free(wd.txt);
                free(wd.val);
                free(wd.slots);
                sb_free(&o);
                free(sr);
                break;
            }
            default: break;
            }
            free(ra);
            if (txt && !place(&t, ps->span, txt, wrap)) {
                r->note = "changed inside a def: not rewritten";
                unplaced = 1;
            }
            r->expr = txt;
        }
        r->form = r->changed ? form : "unchanged";
    }
    free(sel_done);
    if (unplaced) def_edit(&t);
    char *out = range_text(&t, 0, t.len);
    for (int i = 0; i < t.nrepl; i++) free(t.repl[i].text);
    free(t.repl);
    free(t.line_start);
    free(t.def_lo);
    free(t.def_hi);
    return out;
}
