/* decompile_edit.c — the nearest readable form of a changed op: its original text with ONE
 * literal or operator changed (or its aggregate's default). Every candidate edit is applied to
 * the program as decompiled so far, which is checked again, and judged by the tables it gives:
 *   - dc_op_edit: one op outside a def, its own text (`tokens == "c"`, `select(k, k, >)`);
 *   - dc_def_edit: the ops inside defs, whose text every call shares, so their tables cannot
 *     replace it: an edit inside a changed op of a def or among the arguments of a call of
 *     that def, after which every op inside a def has its recovered table (and the unchanged
 *     ones keep theirs);
 *   - dc_fused_edit: maps folded into their reader's MLP (no dimensions, so no table of their
 *     own): an edit of their text after which the interpreter gives the reader the model's
 *     values on the samples. */
#include "analysis/decompile_int.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* 1 if value v (of the candidate program) is entry i of dictionary d. */
static int val_is(const DcDict *d, int i, Value v)
{
    Value x = d->val[i];
    if (x.kind == VAL_INT && v.kind == VAL_INT) return x.u.i == v.u.i;   /* packed keys are large */
    if (val_is_number(x) && val_is_number(v) && x.kind != VAL_BOOL && v.kind != VAL_BOOL)
        return fabs(val_as_double(x) - val_as_double(v)) <= DC_NUM_TOL * fmax(1, fabs(val_as_double(x)));
    StrBuf b;
    sb_init(&b);
    val_format(v, &b);
    int same = !strcmp(b.s ? b.s : "", d->txt[i]);
    sb_free(&b);
    return same;
}

/* Index in candidate s-op qs of the value of entry i of d, or -1. */
static int val_in(const RaspSop *qs, const DcDict *d, int i)
{
    for (int k = 0; k < qs->nvals; k++)
        if (val_is(d, i, qs->vals[k])) return k;
    return -1;
}

/* For every entry of d: its index in candidate s-op qs, or -1 (heap). */
static int *val_map(const RaspSop *qs, const DcDict *d)
{
    int *m = xmalloc(sizeof(int) * (size_t)(d->n + 1));
    for (int i = 0; i < d->n; i++) m[i] = val_in(qs, d, i);
    return m;
}

/* Output entry qi of candidate s-op qs against wanted dictionary entry w of d. */
static int out_is(const RaspSop *qs, int qi, const DcDict *d, int w)
{
    if (qi < 0 || w < 0) return (qi < 0) == (w < 0);
    return val_is(d, w, qs->vals[qi]);
}

static int observed(const uint8_t *seen, long i)
{
    return !seen || seen[i];
}

/* 1 if candidate q computes, for s-op s, the table recovered for it on its observed entries. */
static int sop_agrees(const Dc *dc, const RaspProgram *q, int s)
{
    const RaspSop *ps = &dc->p->sops[s], *qs = &q->sops[s];
    const DcRec *r = &dc->rec[s];
    if (!r->table) return 1;
    const DcDict *dS = &dc->dict[s];
    switch (ps->op) {
    case SOP_MAP: {
        const DcDict *dA = &dc->dict[ps->a];
        for (int a = 0; a < r->ntable && a < dA->n; a++) {
            if (r->table[a] < 0 || !observed(r->seen, a)) continue;
            int qa = val_in(&q->sops[ps->a], dA, a);
            if (qa < 0) continue;   /* the candidate's operand never holds it: judged there */
            if (!out_is(qs, qs->table[qa], dS, r->table[a])) return 0;
        }
        return 1;
    }
    case SOP_SEQMAP: {
        const DcDict *dA = &dc->dict[ps->a], *dB = &dc->dict[ps->b];
        int nb = r->nb, ok = 1;
        int *ma = val_map(&q->sops[ps->a], dA), *mb = val_map(&q->sops[ps->b], dB);
        for (int e = 0; e < r->ntable && ok; e++) {
            if (r->table[e] < 0 || !observed(r->seen, e)) continue;
            int a = e / nb, b = e % nb;
            if (a >= dA->n || b >= dB->n || ma[a] < 0 || mb[b] < 0) continue;
            int32_t qo = qs->table[(size_t)ma[a] * q->sops[ps->b].nvals + mb[b]];
            ok = qo != RASP_IMPOSSIBLE && out_is(qs, qo, dS, r->table[e]);
        }
        free(ma);
        free(mb);
        return ok;
    }
    case SOP_AGGREGATE: {
        const DcDict *dA = &dc->dict[ps->a];
        for (int a = 0; a < r->ntable && a < dA->n; a++) {
            if (r->table[a] < 0 || !observed(r->seen, a)) continue;
            if (!val_is(dS, r->table[a], dA->val[a])) return 0;   /* not an identity */
        }
        return out_is(qs, qs->deflt, dS, r->deflt);
    }
    case SOP_SELWIDTH: {
        char buf[32];
        for (int w = 0; w < r->ntable; w++) {
            if (r->table[w] < 0 || !observed(r->seen, w)) continue;
            snprintf(buf, sizeof buf, "%d", w);
            if (strcmp(dS->txt[r->table[w]], buf)) return 0;
        }
        return 1;
    }
    default: return 1;
    }
}

static int sel_agrees(const Dc *dc, const RaspProgram *q, int sel)
{
    const RaspSel *ps = &dc->p->sels[sel], *qs = &q->sels[sel];
    const DcSelRec *r = &dc->srec[sel];
    if (ps->op != SEL_SELECT || !r->observed || !r->seen) return 1;
    const DcDict *dK = &dc->dict[ps->keys], *dQ = &dc->dict[ps->queries];
    const RaspSop *qk = &q->sops[ps->keys], *qq = &q->sops[ps->queries];
    int *mk = val_map(qk, dK), *mq = val_map(qq, dQ), ok = 1;
    for (int k = 0; k < r->nk && k < dK->n && ok; k++)
        for (int v = 0; v < r->nq && v < dQ->n && ok; v++) {
            size_t c = (size_t)k * r->nq + v;
            if (!r->seen[c] || mk[k] < 0 || mq[v] < 0) continue;
            ok = qs->pred[(size_t)mk[k] * qq->nvals + mq[v]] == r->pred[c];
        }
    free(mk);
    free(mq);
    return ok;
}

/* 1 if candidate text gives every op inside a def its recovered table. */
static int candidate_ok(const Dc *dc, const char *text, const uint8_t *sop_in, const uint8_t *sel_in)
{
    StrBuf err;
    sb_init(&err);
    RaspProgram *q = dc_parse(dc->m, "candidate", text, NULL, &err);
    sb_free(&err);
    if (!q) return 0;
    const RaspProgram *p = dc->p;
    int ok = q->nsops == p->nsops && q->nsels == p->nsels && q->output == p->output;
    for (int s = 0; ok && s < p->nsops; s++) {
        const RaspSop *a = &p->sops[s], *b = &q->sops[s];
        ok = a->op == b->op && a->a == b->a && a->b == b->b && a->sel == b->sel && a->enc == b->enc;
    }
    for (int s = 0; ok && s < p->nsels; s++) {
        const RaspSel *a = &p->sels[s], *b = &q->sels[s];
        ok = a->op == b->op && a->keys == b->keys && a->queries == b->queries && a->a == b->a && a->b == b->b;
    }
    for (int s = 0; ok && s < p->nsops; s++)
        if (sop_in[s] && p->sops[s].used) ok = sop_agrees(dc, q, s);
    for (int s = 0; ok && s < p->nsels; s++)
        if (sel_in[s] && p->sels[s].used) ok = sel_agrees(dc, q, s);
    rasp_free(q);
    return ok;
}

/* ---------- candidate edits ---------- */

typedef struct {
    size_t a, b;    /* the byte range replaced */
    char *text;
} Edit;

typedef struct {
    Edit *e;
    int n, cap;
} Edits;

static void edit_add(Edits *l, size_t a, size_t b, const char *text, size_t tlen)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->e = xrealloc(l->e, sizeof(Edit) * (size_t)l->cap);
    }
    char *t = xmalloc(tlen + 1);
    memcpy(t, text, tlen);
    t[tlen] = 0;
    l->e[l->n++] = (Edit){a, b, t};
}

static int ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* The literals a token may become: strings (the vocab and the string values of the
 * dictionaries) or numbers (small integers and the numeric values of the dictionaries). */
typedef struct {
    char **str, **num;
    int nstr, nnum;
} Lits;

static void lits_add(char ***arr, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*arr)[i], s)) return;
    *arr = xrealloc(*arr, sizeof(char *) * (size_t)(*n + 1));
    (*arr)[(*n)++] = xstrdup(s);
}

static void lits_init(const Dc *dc, Lits *L)
{
    memset(L, 0, sizeof *L);
    const RaspProgram *p = dc->p;
    StrBuf b;
    sb_init(&b);
    char buf[32];
    for (int v = -3; v <= p->max_len + 3; v++) {
        snprintf(buf, sizeof buf, "%d", v);
        lits_add(&L->num, &L->nnum, buf);
    }
    for (int s = 0; s < p->nsops; s++) {
        const DcDict *d = &dc->dict[s];
        if (!p->sops[s].used || d->n > 64) continue;
        for (int i = 0; i < d->n; i++) {
            Value v = d->val[i];
            sb_clear(&b);
            val_format_quoted(v, &b);
            if (v.kind == VAL_STR) lits_add(&L->str, &L->nstr, b.s);
            else if (v.kind != VAL_BOOL && val_is_number(v)) lits_add(&L->num, &L->nnum, b.s);
        }
    }
    sb_free(&b);
}

static void lits_free(Lits *L)
{
    for (int i = 0; i < L->nstr; i++) free(L->str[i]);
    for (int i = 0; i < L->nnum; i++) free(L->num[i]);
    free(L->str);
    free(L->num);
}

/* Every single-token edit of src[a, b): a string or number literal replaced by another, a
 * comparison by another, a binary + by - and back. Comments are skipped. */
static void token_edits(const char *src, size_t a, size_t b, const Lits *L, Edits *out)
{
    static const char *cmps[] = {"==", "!=", "<", "<=", ">", ">="};
    for (size_t i = a; i < b;) {
        char c = src[i];
        if (c == '#') {
            while (i < b && src[i] != '\n') i++;
            continue;
        }
        if (c == '"') {
            size_t j = i + 1;
            while (j < b && src[j] != '"' && src[j] != '\n') j += src[j] == '\\' ? 2 : 1;
            if (j >= b || src[j] != '"') break;
            for (int k = 0; k < L->nstr; k++)
                if (strlen(L->str[k]) != j + 1 - i || strncmp(L->str[k], src + i, j + 1 - i))
                    edit_add(out, i, j + 1, L->str[k], strlen(L->str[k]));
            i = j + 1;
            continue;
        }
        if (isdigit((unsigned char)c) && (i == a || !ident_char(src[i - 1]))) {
            size_t j = i;
            while (j < b && (isdigit((unsigned char)src[j]) || src[j] == '.')) j++;
            if (j < b && ident_char(src[j])) {
                i = j;
                continue;
            }
            for (int k = 0; k < L->nnum; k++)
                if (strlen(L->num[k]) != j - i || strncmp(L->num[k], src + i, j - i))
                    edit_add(out, i, j, L->num[k], strlen(L->num[k]));
            i = j;
            continue;
        }
        if (ident_char(c)) {
            while (i < b && ident_char(src[i])) i++;
            continue;
        }
        size_t w = 0;
        if ((c == '=' || c == '!' || c == '<' || c == '>') && i + 1 < b && src[i + 1] == '=') w = 2;
        else if ((c == '<' || c == '>') && !(i + 1 < b && src[i + 1] == '<')) w = 1;
        if (w) {
            for (int k = 0; k < 6; k++)
                if (strlen(cmps[k]) != w || strncmp(cmps[k], src + i, w)) edit_add(out, i, i + w, cmps[k], strlen(cmps[k]));
            i += w;
            continue;
        }
        /* a binary + or - (spaces on both sides) */
        if ((c == '+' || c == '-') && i > a && src[i - 1] == ' ' && i + 1 < b && src[i + 1] == ' ')
            edit_add(out, i, i + 1, c == '+' ? "-" : "+", 1);
        i++;
    }
}

/* The end of the parenthesised group opening at src[o] == '(' (the index of its ')'), or 0. */
static size_t close_paren(const char *src, size_t len, size_t o)
{
    int depth = 0;
    for (size_t k = o; k < len; k++) {
        if (src[k] == '"') {
            for (k++; k < len && src[k] != '"' && src[k] != '\n'; k++)
                if (src[k] == '\\') k++;
            continue;
        }
        if (src[k] == '#') {
            while (k < len && src[k] != '\n') k++;
            continue;
        }
        if (src[k] == '(') depth++;
        if (src[k] == ')' && --depth == 0) return k;
    }
    return 0;
}

/* The calls of the def that spans [lo, hi] (its name after `def`): their argument ranges. */
static void call_edits(const char *src, size_t len, size_t lo, size_t hi, const Lits *L, Edits *out)
{
    size_t i = lo + 3;
    while (i < hi && isspace((unsigned char)src[i])) i++;
    size_t n0 = i;
    while (i < hi && ident_char(src[i])) i++;
    size_t nl = i - n0;
    if (!nl) return;
    for (size_t k = 0; k + nl < len; k++) {
        if (k >= lo && k <= hi) continue;
        if (strncmp(src + k, src + n0, nl) || src[k + nl] != '(' || (k && ident_char(src[k - 1]))) continue;
        size_t e = close_paren(src, len, k + nl);
        if (e) token_edits(src, k + nl + 1, e, L, out);
    }
}

/* An aggregate whose default changed: its text with that default (added or replaced). */
static void default_edit(const Dc *dc, int s, size_t a, size_t b, Edits *out)
{
    const DcRec *r = &dc->rec[s];
    const char *src = dc->src;
    if (b <= a || src[b - 1] != ')') return;
    /* the top-level commas of the call */
    size_t o = a;
    while (o < b && src[o] != '(') o++;
    if (o >= b || close_paren(src, b, o) != b - 1) return;
    size_t commas[4];
    int nc = 0, depth = 0;
    for (size_t k = o; k < b - 1; k++) {
        if (src[k] == '(' || src[k] == '[' || src[k] == '{') depth++;
        if (src[k] == ')' || src[k] == ']' || src[k] == '}') depth--;
        if (src[k] == ',' && depth == 1 && nc < 4) commas[nc++] = k;
    }
    StrBuf t;
    sb_init(&t);
    if (r->deflt >= 0) {
        sb_puts(&t, ", ");
        val_format_quoted(dc->dict[s].val[r->deflt], &t);
    }
    if (nc == 1 && r->deflt >= 0) edit_add(out, b - 1, b - 1, t.s, strlen(t.s));
    else if (nc == 2) edit_add(out, commas[1], b - 1, t.s ? t.s : "", t.s ? strlen(t.s) : 0);
    sb_free(&t);
}

int dc_def_edit(Dc *dc, const size_t *def_lo, const size_t *def_hi, int ndefs, const uint8_t *sop_in,
                const uint8_t *sel_in, const size_t *sop_a, const size_t *sop_b, const size_t *sel_a,
                const size_t *sel_b, DcCompose compose, void *ctx, size_t *ea, size_t *eb, char **etext)
{
    const RaspProgram *p = dc->p;
    const char *src = dc->src;
    size_t len = strlen(src);
    Lits L;
    lits_init(dc, &L);
    Edits ed = {0};
    /* edits inside the changed ops first (innermost text), then the calls of their defs */
    uint8_t *defs = xcalloc((size_t)ndefs + 1, 1);
    for (int s = 0; s < p->nsels; s++)
        if (sel_in[s] && dc->srec[s].changed) {
            token_edits(src, sel_a[s], sel_b[s], &L, &ed);
            for (int d = 0; d < ndefs; d++)
                if (sel_a[s] >= def_lo[d] && sel_a[s] <= def_hi[d]) defs[d] = 1;
        }
    for (int s = 0; s < p->nsops; s++)
        if (sop_in[s] && dc->rec[s].changed) {
            if (p->sops[s].op == SOP_AGGREGATE && dc->rec[s].deflt != p->sops[s].deflt)
                default_edit(dc, s, sop_a[s], sop_b[s], &ed);
            token_edits(src, sop_a[s], sop_b[s], &L, &ed);
            for (int d = 0; d < ndefs; d++)
                if (sop_a[s] >= def_lo[d] && sop_a[s] <= def_hi[d]) defs[d] = 1;
        }
    for (int d = 0; d < ndefs; d++)
        if (defs[d]) call_edits(src, len, def_lo[d], def_hi[d], &L, &ed);
    int found = 0;
    for (int i = 0; i < ed.n && !found; i++) {
        /* the same edit may come from two ops (a selector and its reader) */
        int dup = 0;
        for (int j = 0; j < i && !dup; j++)
            dup = ed.e[j].a == ed.e[i].a && ed.e[j].b == ed.e[i].b && !strcmp(ed.e[j].text, ed.e[i].text);
        if (dup) continue;
        char *full = compose(ctx, ed.e[i].a, ed.e[i].b, ed.e[i].text);
        int ok = candidate_ok(dc, full, sop_in, sel_in);
        free(full);
        if (ok) {
            found = 1;
            *ea = ed.e[i].a;
            *eb = ed.e[i].b;
            *etext = xstrdup(ed.e[i].text);
        }
    }
    for (int i = 0; i < ed.n; i++) free(ed.e[i].text);
    free(ed.e);
    free(defs);
    lits_free(&L);
    return found;
}

/* One changed op outside a def (s-op s, or selector sel when s < 0) at src[a, b): the op's text
 * with one literal or operator changed (or its default, for an aggregate) when that gives it
 * its recovered table — the nearest form there is. Heap string, or NULL. */
int dc_op_agrees(Dc *dc, int s, int sel, const char *text)
{
    const RaspProgram *p = dc->p;
    uint8_t *sop_in = xcalloc((size_t)p->nsops + 1, 1), *sel_in = xcalloc((size_t)p->nsels + 1, 1);
    if (s >= 0) sop_in[s] = 1;
    else sel_in[sel] = 1;
    int ok = candidate_ok(dc, text, sop_in, sel_in);
    free(sop_in);
    free(sel_in);
    return ok;
}

char *dc_op_edit(Dc *dc, int s, int sel, size_t a, size_t b, DcCompose compose, void *ctx)
{
    const RaspProgram *p = dc->p;
    const char *src = dc->src;
    Lits L;
    lits_init(dc, &L);
    Edits ed = {0};
    if (s >= 0 && p->sops[s].op == SOP_AGGREGATE && dc->rec[s].deflt != p->sops[s].deflt) default_edit(dc, s, a, b, &ed);
    token_edits(src, a, b, &L, &ed);
    uint8_t *sop_in = xcalloc((size_t)p->nsops + 1, 1), *sel_in = xcalloc((size_t)p->nsels + 1, 1);
    if (s >= 0) sop_in[s] = 1;
    else sel_in[sel] = 1;
    char *found = NULL;
    for (int i = 0; i < ed.n && !found; i++) {
        char *full = compose(ctx, ed.e[i].a, ed.e[i].b, ed.e[i].text);
        int ok = candidate_ok(dc, full, sop_in, sel_in);
        free(full);
        if (!ok) continue;
        StrBuf o;
        sb_init(&o);
        sb_putn(&o, src + a, ed.e[i].a - a);
        sb_puts(&o, ed.e[i].text);
        sb_putn(&o, src + ed.e[i].b, b - ed.e[i].b);
        found = dc_take(&o);
    }
    for (int i = 0; i < ed.n; i++) free(ed.e[i].text);
    free(ed.e);
    free(sop_in);
    free(sel_in);
    lits_free(&L);
    return found;
}

/* ---------- a map reading maps without dimensions of their own ---------- */

/* 1 if candidate text gives s-op m, run by the interpreter on the samples, the model's
 * decoded value at every position that matters (a position where the candidate has no value
 * is not judged: the model cannot mirror "no value" there, see decompile.c's fidelity). */
static int candidate_reads_as_model(const Dc *dc, const char *text, int m)
{
    StrBuf err;
    sb_init(&err);
    RaspProgram *q = dc_parse(dc->m, "candidate", text, NULL, &err);
    sb_free(&err);
    if (!q) return 0;
    int ok = q->nsops == dc->p->nsops && q->sops[m].op == dc->p->sops[m].op;
    Interp *it = ok ? interp_new(q, 1) : NULL;
    for (int k = 0; ok && k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        if (interp_eval(it, dc->tok + off, n)) ok = 0;
        const int32_t *v = ok ? interp_values(it, m) : NULL;
        if (!v) ok = 0;
        for (int i = 0; ok && i < n; i++) {
            int32_t y = dc_obs(dc, m, off + i);
            if (!dc->rel[m][off + i] || y == DC_UNREAD || v[i] < 0) continue;
            ok = y >= 0 && val_is(&dc->dict[m], y, q->sops[m].vals[v[i]]);
        }
    }
    if (it) interp_free(it);
    rasp_free(q);
    return ok;
}

char *dc_fused_edit(Dc *dc, int m, const size_t *fa, const size_t *fb, int nf, DcCompose compose, void *ctx,
                    size_t *ea, size_t *eb)
{
    Lits L;
    lits_init(dc, &L);
    Edits ed = {0};
    for (int f = 0; f < nf; f++) token_edits(dc->src, fa[f], fb[f], &L, &ed);
    char *found = NULL;
    for (int i = 0; i < ed.n && !found; i++) {
        char *full = compose(ctx, ed.e[i].a, ed.e[i].b, ed.e[i].text);
        if (candidate_reads_as_model(dc, full, m)) {
            found = xstrdup(ed.e[i].text);
            *ea = ed.e[i].a;
            *eb = ed.e[i].b;
        }
        free(full);
    }
    for (int i = 0; i < ed.n; i++) free(ed.e[i].text);
    free(ed.e);
    lits_free(&L);
    return found;
}
