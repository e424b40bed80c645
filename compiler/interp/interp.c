/* interp.c — the reference interpreter (see interp.h).
 *
 * Everything is a value-set index, so evaluation is table lookups. The one cost that grows
 * faster than the input is a selector's n×n query/key grid; we never store it for the
 * consumers (aggregate, selector_width): each one walks the grid one query row at a time,
 * and for a plain `select` (the common case) reads the predicate straight from a table
 * laid out per query value, or, when the select picks few key values per query value,
 * visits only the positions holding those (see sparse_row). interp_selection builds the
 * full matrix only when asked. Nothing is allocated per input.
 *
 * Semantics (spec Decisions 3, 4, 10, 11):
 *   - a select never selects a key or query with no value; a composite (and/or/not) is
 *     additionally masked by "every leaf select under it has a key and a query value here",
 *     i.e. it behaves like one select over the tuple of its leaves' keys and queries;
 *   - causal programs AND every selector with k <= q;
 *   - categorical aggregate: none selected -> default, all selected agree -> that value,
 *     otherwise (disagreement or a selected None) -> None;
 *   - numerical aggregate: none selected -> default, a selected None -> None, else the mean
 *     (summed in position order) looked up in the aggregate's own value set. */
#include "compiler/interp/interp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define UNSET (-2)          /* "no selected key seen yet" while aggregating; never a value index */
#define MEAN_CACHE_BITS 10  /* entries (log2) of each numerical aggregate's mean cache */

typedef struct {
    int32_t *v;         /* max_len values, or NULL if this s-op is not evaluated */
    double *num;        /* numerical aggregate: the operand's values as doubles */
    double *x;          /* numerical aggregate, per run: the operand at each position, */
    uint8_t *xnone;     /* 0.0 where it has no value (flagged here) */
    uint64_t *ckey;     /* numerical aggregate: mean -> value index cache (see mean_index) */
    int32_t *cval;
    int32_t *widx;      /* selector_width: count (0..max_len) -> value index or RASP_NONE */
    const char *bad;    /* why this s-op cannot be evaluated (malformed program), or NULL */
} SopState;

typedef struct {
    int eval;           /* evaluated in this Interp */
    /* SEL_SELECT: the predicate transposed to [query value + 1][key value + 1], with row and
     * column 0 all zero so a None key or query (index -1) reads 0 without a branch.
     * sel(q, k) = base[qidx * stride + kidx] for qidx, kidx in -1..n-1. */
    uint8_t *pt;
    const uint8_t *base;
    int stride;
    /* composites: the leaf selects under this node (deduplicated) and, per run, whether all
     * of their keys (resp. queries) have a value at each position */
    int *leaves;
    int nleaves;
    uint8_t *kvalid, *qvalid;
    /* SEL_SELECT, sparse walks (see sparse_row): adj[adj_off[qi] .. adj_off[qi+1]) are the
     * key values query value qi selects (NULL when the table is too dense to pay); per run,
     * head/next list the positions holding each key value, cnt counts them, and kstamp
     * says which key values' entries belong to this run (no clearing per run). */
    int32_t *adj_off, *adj;
    int32_t *head, *cnt, *next;
    uint64_t *kstamp;
    uint64_t bucket_run;
    uint8_t *row;       /* one query row, max_len */
    uint8_t *mat;       /* interp_selection's matrix, allocated on first request */
    uint64_t mat_run;   /* the run `mat` was filled for (0 = never) */
    uint64_t prep_run;  /* the run kvalid/qvalid were computed for */
} SelState;

struct Interp {
    const RaspProgram *p;
    int all;
    int n;              /* length of the last successful input, 0 if none */
    uint64_t run;       /* counts runs (from 1), so per-run caches know they are stale */
    SopState *s;
    SelState *l;
    int32_t *block;     /* every evaluated s-op's values, max_len each */
    const char *malformed; /* a structural fault found by interp_new, or NULL */
    int nerr;
    char err[512];
};

static void set_error(Interp *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(Interp *it, const char *fmt, ...)
{
    if (it->nerr++) return;     /* keep the first: later ones are usually consequences */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->err, sizeof it->err, fmt, ap);
    va_end(ap);
}

/* ---- building ----------------------------------------------------------------------- */

static int sop_ok(const RaspProgram *p, int id, int below)
{
    return id >= 0 && id < p->nsops && id < below;
}

static int sel_ok(const RaspProgram *p, int id)
{
    return id >= 0 && id < p->nsels;
}

/* Mark selector `id` and what it reads as needed. Selector trees are shallow in practice;
 * the `need` check stops shared subtrees from being walked twice. */
static void need_sel(const RaspProgram *p, char *need_sop, char *need_sel_, int id)
{
    if (!sel_ok(p, id) || need_sel_[id]) return;
    need_sel_[id] = 1;
    const RaspSel *l = &p->sels[id];
    switch (l->op) {
    case SEL_SELECT:
        if (l->keys >= 0 && l->keys < p->nsops) need_sop[l->keys] = 1;
        if (l->queries >= 0 && l->queries < p->nsops) need_sop[l->queries] = 1;
        break;
    case SEL_AND:
    case SEL_OR:
        need_sel(p, need_sop, need_sel_, l->a);
        need_sel(p, need_sop, need_sel_, l->b);
        break;
    case SEL_NOT:
        need_sel(p, need_sop, need_sel_, l->a);
        break;
    }
}

/* Collect the distinct leaf selects under `id` into out (stamp marks the ones taken). */
static void collect_leaves(const RaspProgram *p, int id, int *out, int *nout, int *stamp,
                           int mark)
{
    const RaspSel *l = &p->sels[id];
    if (l->op == SEL_SELECT) {
        if (stamp[id] != mark) {
            stamp[id] = mark;
            out[(*nout)++] = id;
        }
        return;
    }
    collect_leaves(p, l->a, out, nout, stamp, mark);
    if (l->op != SEL_NOT) collect_leaves(p, l->b, out, nout, stamp, mark);
}

/* 1 if the selector graph under id has a cycle (state: 0 new, 1 on the path, 2 done). */
static int sel_cycle(const RaspProgram *p, int id, char *state)
{
    if (state[id] == 2) return 0;
    if (state[id] == 1) return 1;
    state[id] = 1;
    const RaspSel *l = &p->sels[id];
    int bad = 0;
    if (l->op != SEL_SELECT) {
        bad = sel_cycle(p, l->a, state);
        if (!bad && l->op != SEL_NOT) bad = sel_cycle(p, l->b, state);
    }
    state[id] = 2;
    return bad;
}

/* 1 if every s-op that selector id reads has an id below `below` (so it is evaluated before
 * the consumer; sema builds programs this way, and evaluation in id order relies on it). */
static int sel_reads_below(const RaspProgram *p, int id, int below)
{
    const RaspSel *l = &p->sels[id];
    if (l->op == SEL_SELECT) return l->keys < below && l->queries < below;
    if (!sel_reads_below(p, l->a, below)) return 0;
    return l->op == SEL_NOT || sel_reads_below(p, l->b, below);
}

/* Find structural faults once, so interp_eval can refuse cleanly instead of reading out of
 * bounds. A RaspProgram from sema never has any; hand-built ones (tests, tools) might. */
static const char *check_selector(const RaspProgram *p, const RaspSel *l)
{
    switch (l->op) {
    case SEL_SELECT:
        if (!sop_ok(p, l->keys, p->nsops) || !sop_ok(p, l->queries, p->nsops))
            return "select with an invalid key or query s-op";
        if (!l->pred) return "select without a predicate table";
        if ((int64_t)p->sops[l->keys].nvals * p->sops[l->queries].nvals > RASP_MAX_TABLE)
            return "select predicate table too large";
        return NULL;
    case SEL_AND:
    case SEL_OR:
        if (!sel_ok(p, l->a) || !sel_ok(p, l->b)) return "and/or with an invalid operand";
        return NULL;
    case SEL_NOT:
        if (!sel_ok(p, l->a)) return "not with an invalid operand";
        return NULL;
    }
    return "unknown selector operation";
}

static int num_of(Value v, double *out)
{
    if (!val_is_number(v)) return 0;
    *out = v.kind == VAL_FLOAT ? v.u.f : (double)v.u.i;
    return 1;
}

static const char *check_sop(const RaspProgram *p, const RaspSop *s)
{
    if (s->nvals < 0 || (s->nvals > 0 && !s->vals)) return "value set missing";
    switch (s->op) {
    case SOP_TOKENS:
        if (s->nvals < p->nvocab) return "tokens value set smaller than the vocab";
        return NULL;
    case SOP_INDICES:
        if (s->nvals < p->max_len) return "indices value set smaller than max_len";
        return NULL;
    case SOP_CONST:
        if (s->nvals < 1) return "constant without a value";
        return NULL;
    case SOP_MAP:
        if (!sop_ok(p, s->a, s->id)) return "map with an invalid operand";
        if (!s->table) return "map without a table";
        return NULL;
    case SOP_SEQMAP:
        if (!sop_ok(p, s->a, s->id) || !sop_ok(p, s->b, s->id))
            return "sequence_map with an invalid operand";
        if (!s->table) return "sequence_map without a table";
        if ((int64_t)p->sops[s->a].nvals * p->sops[s->b].nvals > RASP_MAX_TABLE)
            return "sequence_map table too large";
        return NULL;
    case SOP_AGGREGATE:
        if (!sop_ok(p, s->a, s->id) || !sel_ok(p, s->sel))
            return "aggregate with an invalid operand";
        if (s->deflt < RASP_NONE || s->deflt >= s->nvals) return "aggregate default out of range";
        if (!sel_reads_below(p, s->sel, s->id)) return "its selector reads a later s-op";
        if (s->enc == ENC_NUMERICAL) {
            const RaspSop *a = &p->sops[s->a];
            double d;
            for (int i = 0; i < a->nvals; i++)
                if (!num_of(a->vals[i], &d)) return "numerical aggregate of a non-number";
        }
        return NULL;
    case SOP_SELWIDTH:
        if (!sel_ok(p, s->sel)) return "selector_width with an invalid selector";
        if (!sel_reads_below(p, s->sel, s->id)) return "its selector reads a later s-op";
        return NULL;
    }
    return "unknown s-op operation";
}

/* Table-driven checks of value indices are too costly per position, so check once that
 * every table entry is a valid index of its s-op (or RASP_NONE). */
static const char *check_table(const RaspProgram *p, const RaspSop *s)
{
    int64_t len;
    if (s->op == SOP_MAP) len = p->sops[s->a].nvals;
    else if (s->op == SOP_SEQMAP) len = (int64_t)p->sops[s->a].nvals * p->sops[s->b].nvals;
    else return NULL;
    /* a linear sequence map may mark operand pairs that never occur (rasp.h) */
    int32_t lo = s->op == SOP_SEQMAP && s->linear ? RASP_IMPOSSIBLE : RASP_NONE;
    for (int64_t i = 0; i < len; i++)
        if (s->table[i] < lo || s->table[i] >= s->nvals) return "table entry out of range";
    return NULL;
}

/* The CSR of selected key values per query value, when the predicate is sparse enough for
 * it to pay (on average fewer selected key values per query value than positions) and the
 * lists fit a fixed budget. */
#define SPARSE_BUDGET (1 << 22)

static void build_sparse(SelState *ls, int nq, int nk, int L)
{
    int64_t total = 0;
    for (int qi = 0; qi < nq; qi++) {
        const uint8_t *r = ls->base + (ptrdiff_t)qi * ls->stride;
        for (int ki = 0; ki < nk; ki++) total += r[ki];
    }
    if (total > SPARSE_BUDGET || total >= (int64_t)nq * L) return;
    ls->adj_off = xmalloc((size_t)(nq + 1) * sizeof *ls->adj_off);
    ls->adj = xmalloc((size_t)(total > 0 ? total : 1) * sizeof *ls->adj);
    int32_t at = 0;
    for (int qi = 0; qi < nq; qi++) {
        ls->adj_off[qi] = at;
        const uint8_t *r = ls->base + (ptrdiff_t)qi * ls->stride;
        for (int ki = 0; ki < nk; ki++)
            if (r[ki]) ls->adj[at++] = ki;
    }
    ls->adj_off[nq] = at;
    ls->head = xmalloc((size_t)(nk > 0 ? nk : 1) * sizeof *ls->head);
    ls->cnt = xmalloc((size_t)(nk > 0 ? nk : 1) * sizeof *ls->cnt);
    ls->kstamp = xcalloc((size_t)(nk > 0 ? nk : 1), sizeof *ls->kstamp);
    ls->next = xmalloc((size_t)L * sizeof *ls->next);
}

Interp *interp_new(const RaspProgram *p, int all)
{
    Interp *it = xcalloc(1, sizeof *it);
    it->p = p;
    it->all = all;
    it->s = xcalloc((size_t)(p->nsops > 0 ? p->nsops : 1), sizeof *it->s);
    it->l = xcalloc((size_t)(p->nsels > 0 ? p->nsels : 1), sizeof *it->l);
    int L = p->max_len;
    if (L < 1 || L > RASP_MAX_LEN) {
        it->malformed = "max_len out of range";
        return it;
    }
    if (!sop_ok(p, p->output, p->nsops)) {
        it->malformed = "no valid output s-op";
        return it;
    }

    /* Structural checks first: everything below may then index freely. */
    for (int i = 0; i < p->nsels && !it->malformed; i++)
        it->malformed = check_selector(p, &p->sels[i]);
    if (!it->malformed && p->nsels > 0) {
        char *state = xcalloc((size_t)p->nsels, 1);
        for (int i = 0; i < p->nsels && !it->malformed; i++)
            if (sel_cycle(p, i, state)) it->malformed = "selectors form a cycle";
        free(state);
    }
    if (it->malformed) return it;
    /* A fault in an s-op is reported when (if) that s-op is evaluated. */
    for (int i = 0; i < p->nsops; i++) it->s[i].bad = check_sop(p, &p->sops[i]);

    /* What to evaluate: everything, or the output, the s-ops sema marked used, and what
     * they read (operands have smaller ids, so one downward sweep closes the set). */
    char *need_sop = xcalloc((size_t)p->nsops, 1);
    char *need_sel_ = xcalloc((size_t)(p->nsels > 0 ? p->nsels : 1), 1);
    need_sop[p->output] = 1;
    for (int i = 0; i < p->nsops; i++)
        if (all || p->sops[i].used) need_sop[i] = 1;
    if (all)
        for (int i = 0; i < p->nsels; i++) need_sel(p, need_sop, need_sel_, i);
    for (int i = p->nsops - 1; i >= 0; i--) {
        const RaspSop *s = &p->sops[i];
        if (!need_sop[i] || it->s[i].bad) continue;
        if (s->a >= 0 && (s->op == SOP_MAP || s->op == SOP_SEQMAP || s->op == SOP_AGGREGATE))
            need_sop[s->a] = 1;
        if (s->op == SOP_SEQMAP) need_sop[s->b] = 1;
        if (s->op == SOP_AGGREGATE || s->op == SOP_SELWIDTH)
            need_sel(p, need_sop, need_sel_, s->sel);
    }
    size_t nev = 0;
    for (int i = 0; i < p->nsops; i++) nev += need_sop[i] != 0;
    it->block = xmalloc((nev ? nev : 1) * (size_t)L * sizeof *it->block);
    size_t at = 0;
    for (int i = 0; i < p->nsops; i++) {
        if (!need_sop[i]) continue;
        SopState *ss = &it->s[i];
        const RaspSop *s = &p->sops[i];
        ss->v = it->block + at * (size_t)L;
        at++;
        for (int k = 0; k < L; k++) ss->v[k] = RASP_NONE;
        if (!ss->bad) ss->bad = check_table(p, s);
        if (ss->bad) continue;
        if (s->op == SOP_AGGREGATE && s->enc == ENC_NUMERICAL) {
            const RaspSop *a = &p->sops[s->a];
            ss->num = xmalloc((size_t)(a->nvals > 0 ? a->nvals : 1) * sizeof *ss->num);
            for (int k = 0; k < a->nvals; k++) num_of(a->vals[k], &ss->num[k]);
            ss->x = xmalloc((size_t)L * sizeof *ss->x);
            ss->xnone = xmalloc((size_t)L);
            ss->ckey = xmalloc(((size_t)1 << MEAN_CACHE_BITS) * sizeof *ss->ckey);
            ss->cval = xmalloc(((size_t)1 << MEAN_CACHE_BITS) * sizeof *ss->cval);
            for (size_t k = 0; k < (size_t)1 << MEAN_CACHE_BITS; k++) ss->cval[k] = UNSET;
        }
        if (s->op == SOP_SELWIDTH) {
            /* count -> index, by value: the set is {0..N} or {1..N} (or tighter), as ints
             * or, if annotated numerical, possibly floats; equal numbers match. */
            ss->widx = xmalloc((size_t)(L + 1) * sizeof *ss->widx);
            for (int c = 0; c <= L; c++) ss->widx[c] = RASP_NONE;
            for (int k = 0; k < s->nvals; k++) {
                double d;
                if (!num_of(s->vals[k], &d)) continue;
                if (d >= 0 && d <= L && d == (double)(int)d && ss->widx[(int)d] == RASP_NONE)
                    ss->widx[(int)d] = k;
            }
        }
    }

    int *stamp = xcalloc((size_t)(p->nsels > 0 ? p->nsels : 1), sizeof *stamp);
    for (int i = 0; i < p->nsels; i++) {
        if (!need_sel_[i]) continue;
        SelState *ls = &it->l[i];
        const RaspSel *l = &p->sels[i];
        ls->eval = 1;
        ls->row = xcalloc((size_t)L, 1);
        if (l->op == SEL_SELECT) {
            int nk = p->sops[l->keys].nvals, nq = p->sops[l->queries].nvals;
            ls->stride = nk + 1;
            ls->pt = xcalloc((size_t)(nq + 1) * (size_t)(nk + 1), 1);
            for (int kq = 0; kq < nq; kq++)
                for (int kk = 0; kk < nk; kk++)
                    ls->pt[(size_t)(kq + 1) * (size_t)(nk + 1) + (size_t)(kk + 1)] =
                        l->pred[(size_t)kk * (size_t)nq + (size_t)kq] != 0;
            ls->base = ls->pt + ls->stride + 1;
            build_sparse(ls, nq, nk, L);
        } else {
            ls->leaves = xmalloc((size_t)p->nsels * sizeof *ls->leaves);
            collect_leaves(p, i, ls->leaves, &ls->nleaves, stamp, i + 1);
            ls->kvalid = xmalloc((size_t)L);
            ls->qvalid = xmalloc((size_t)L);
        }
    }
    free(stamp);
    free(need_sop);
    free(need_sel_);
    return it;
}

void interp_free(Interp *it)
{
    if (!it) return;
    const RaspProgram *p = it->p;
    for (int i = 0; i < p->nsops; i++) {
        free(it->s[i].num);
        free(it->s[i].x);
        free(it->s[i].xnone);
        free(it->s[i].ckey);
        free(it->s[i].cval);
        free(it->s[i].widx);
    }
    for (int i = 0; i < p->nsels; i++) {
        SelState *ls = &it->l[i];
        free(ls->pt);
        free(ls->adj_off);
        free(ls->adj);
        free(ls->head);
        free(ls->cnt);
        free(ls->next);
        free(ls->kstamp);
        free(ls->leaves);
        free(ls->kvalid);
        free(ls->qvalid);
        free(ls->row);
        free(ls->mat);
    }
    free(it->block);
    free(it->s);
    free(it->l);
    free(it);
}

/* ---- selectors, one query row at a time --------------------------------------------- */

/* Row q of selector id (keys 0..n-1) into its row buffer; keys at lim and after (the causal
 * mask) are 0. Returns the buffer. */
static const uint8_t *sel_row(Interp *it, int id, int q, int n, int lim)
{
    const RaspProgram *p = it->p;
    const RaspSel *l = &p->sels[id];
    SelState *ls = &it->l[id];
    uint8_t *row = ls->row;
    switch (l->op) {
    case SEL_SELECT: {
        const int32_t *kv = it->s[l->keys].v;
        const uint8_t *r = ls->base + (ptrdiff_t)it->s[l->queries].v[q] * ls->stride;
        for (int k = 0; k < lim; k++) row[k] = r[kv[k]];
        break;
    }
    case SEL_AND: {
        const uint8_t *ra = sel_row(it, l->a, q, n, lim);
        /* b may share nodes with a and overwrite their rows, but never a's own buffer
         * unless b == a, in which case the contents are the same. */
        for (int k = 0; k < lim; k++) row[k] = ra[k];
        const uint8_t *rb = sel_row(it, l->b, q, n, lim);
        for (int k = 0; k < lim; k++) row[k] &= rb[k];
        break;
    }
    case SEL_OR: {
        const uint8_t *ra = sel_row(it, l->a, q, n, lim);
        for (int k = 0; k < lim; k++) row[k] = ra[k];
        const uint8_t *rb = sel_row(it, l->b, q, n, lim);
        uint8_t qv = ls->qvalid[q];
        for (int k = 0; k < lim; k++) row[k] = (uint8_t)((row[k] | rb[k]) & ls->kvalid[k] & qv);
        break;
    }
    case SEL_NOT: {
        const uint8_t *ra = sel_row(it, l->a, q, n, lim);
        uint8_t qv = ls->qvalid[q];
        for (int k = 0; k < lim; k++) row[k] = (uint8_t)((ra[k] == 0) & ls->kvalid[k] & qv);
        break;
    }
    }
    for (int k = lim; k < n; k++) row[k] = 0;
    return row;
}

/* Once per run, before a composite's first row: whether every leaf's key (query) has a
 * value at each position, for this node and the composites under it. */
static void sel_prepare(Interp *it, int id, int n)
{
    const RaspProgram *p = it->p;
    const RaspSel *l = &p->sels[id];
    SelState *ls = &it->l[id];
    if (l->op == SEL_SELECT || ls->prep_run == it->run) return;
    ls->prep_run = it->run;
    memset(ls->kvalid, 1, (size_t)n);
    memset(ls->qvalid, 1, (size_t)n);
    for (int j = 0; j < ls->nleaves; j++) {
        const RaspSel *leaf = &p->sels[ls->leaves[j]];
        const int32_t *kv = it->s[leaf->keys].v, *qv = it->s[leaf->queries].v;
        for (int k = 0; k < n; k++) {
            ls->kvalid[k] &= kv[k] != RASP_NONE;
            ls->qvalid[k] &= qv[k] != RASP_NONE;
        }
    }
    sel_prepare(it, l->a, n);
    if (l->op != SEL_NOT) sel_prepare(it, l->b, n);
}

/* A selector can be evaluated when every s-op it reads has values. */
static int sel_ready(const Interp *it, int id)
{
    const RaspProgram *p = it->p;
    const RaspSel *l = &p->sels[id];
    if (!it->l[id].eval) return 0;
    if (l->op == SEL_SELECT) {
        const SopState *k = &it->s[l->keys], *q = &it->s[l->queries];
        return k->v && !k->bad && q->v && !q->bad;
    }
    for (int j = 0; j < it->l[id].nleaves; j++)
        if (!sel_ready(it, it->l[id].leaves[j])) return 0;
    return 1;
}

/* ---- s-ops -------------------------------------------------------------------------- */

/* ---- sparse walks of a plain select -------------------------------------------------- */

/* Many selects pick few key values per query value (`==`; the paper's
 * select(is_a, indices, ==) picks one or none): for those, visiting only the positions that
 * hold a selected key value beats scanning every key, and makes such a row O(matches)
 * instead of O(n). Per select we keep the key values each query value selects (CSR, built
 * once); per run, the positions holding each key value (ascending linked lists, O(n) to
 * build, lazily). Positions with no key value are in no list: never selected. */

/* Whether row q of leaf select `ls` is cheaper sparse, and its selected key values. */
static int sparse_row(const SelState *ls, int32_t qi, int n, const int32_t **vals, int *deg)
{
    if (!ls->adj || qi < 0) return 0;
    *vals = ls->adj + ls->adj_off[qi];
    *deg = ls->adj_off[qi + 1] - ls->adj_off[qi];
    return *deg < n;
}

static void sel_buckets(SelState *ls, const int32_t *kv, int n, uint64_t run)
{
    if (ls->bucket_run == run) return;
    ls->bucket_run = run;
    for (int k = n - 1; k >= 0; k--) {
        int32_t v = kv[k];
        if (v < 0) continue;
        if (ls->kstamp[v] != run) {
            ls->kstamp[v] = run;
            ls->head[v] = -1;
            ls->cnt[v] = 0;
        }
        ls->next[k] = ls->head[v];
        ls->head[v] = k;
        ls->cnt[v]++;
    }
}

/* Fold one selected value into a categorical aggregate; 1 once the result is None. */
static inline int fold_cat(int32_t *res, int32_t v)
{
    if (*res == UNSET) *res = v;
    else if (v != *res) *res = RASP_NONE;
    return *res == RASP_NONE;
}

/* The value index of a mean. Means recur (the set of possible means is the value set), so
 * a small direct-mapped cache keyed by the double's bits saves most binary searches; it
 * only remembers what rasp_num_index answered for the very same double. */
static int32_t mean_index(Interp *it, const RaspSop *s, SopState *ss, double mean, int q)
{
    uint64_t bits;
    memcpy(&bits, &mean, sizeof bits);
    size_t h = (size_t)((bits * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - MEAN_CACHE_BITS));
    if (ss->cval[h] != UNSET && ss->ckey[h] == bits) return ss->cval[h];
    int idx = rasp_num_index(s, mean);
    if (idx == RASP_NONE) {
        set_error(it, "internal error: the mean %.17g at position %d of numerical aggregate "
                  "'%s' is not in its value set", mean, q, s->label);
        return RASP_NONE;
    }
    ss->ckey[h] = bits;
    ss->cval[h] = idx;
    return idx;
}

/* Whether the selector s reads is a leaf select; if so its keys and queries go to *kv and *qv
 * and, for a sparse selector, its key buckets for this run are filled (the sparse walks of
 * aggregate and selector width read them). A combined selector is read through sel_row. */
static int sel_leaf(Interp *it, const RaspSop *s, int n, const int32_t **kv, const int32_t **qv)
{
    const RaspSel *l = &it->p->sels[s->sel];
    *kv = *qv = NULL;
    if (l->op != SEL_SELECT) return 0;
    *kv = it->s[l->keys].v;
    *qv = it->s[l->queries].v;
    SelState *ls = &it->l[s->sel];
    if (ls->adj) sel_buckets(ls, *kv, n, it->run);
    return 1;
}

static void eval_aggregate(Interp *it, const RaspSop *s, int n)
{
    SelState *ls = &it->l[s->sel];
    const int32_t *av = it->s[s->a].v;
    int32_t *out = it->s[s->id].v;
    const int32_t *kv, *qv;
    int leaf = sel_leaf(it, s, n, &kv, &qv);
    int causal = it->p->causal;
    uint64_t run = it->run;

    if (s->enc != ENC_NUMERICAL) {
        for (int q = 0; q < n; q++) {
            int lim = causal ? q + 1 : n;
            int32_t res = UNSET;
            const int32_t *sv;
            int deg;
            if (leaf && sparse_row(ls, qv[q], n, &sv, &deg)) {
                /* agreement does not depend on the order keys are visited in */
                for (int j = 0; j < deg && res != RASP_NONE; j++) {
                    int32_t v = sv[j];
                    if (ls->kstamp[v] != run) continue;
                    for (int k = ls->head[v]; k >= 0 && k < lim; k = ls->next[k])
                        if (fold_cat(&res, av[k])) break;
                }
            } else if (leaf) {
                const uint8_t *r = ls->base + (ptrdiff_t)qv[q] * ls->stride;
                for (int k = 0; k < lim; k++)
                    if (r[kv[k]] && fold_cat(&res, av[k])) break;
            } else {
                const uint8_t *row = sel_row(it, s->sel, q, n, lim);
                for (int k = 0; k < lim; k++)
                    if (row[k] && fold_cat(&res, av[k])) break;
            }
            out[q] = res == UNSET ? s->deflt : res;
        }
        return;
    }

    /* Numerical: sums run in position order (so results do not depend on the walk), which
     * the sparse walk gives only when a single key value is selected. The dense scans are
     * branch-free: an unselected key adds +0.0, which leaves any sum unchanged. */
    SopState *ss = &it->s[s->id];
    const double *num = ss->num;
    double *x = ss->x;
    uint8_t *xnone = ss->xnone;
    for (int k = 0; k < n; k++) {
        xnone[k] = av[k] == RASP_NONE;
        x[k] = xnone[k] ? 0.0 : num[av[k]];
    }
    for (int q = 0; q < n; q++) {
        int lim = causal ? q + 1 : n;
        double sum = 0;
        int count = 0, none = 0;
        const int32_t *sv;
        int deg;
        if (leaf && sparse_row(ls, qv[q], n, &sv, &deg) && deg <= 1) {
            if (deg == 1 && ls->kstamp[sv[0]] == run)
                for (int k = ls->head[sv[0]]; k >= 0 && k < lim; k = ls->next[k]) {
                    none |= xnone[k];
                    sum += x[k];
                    count++;
                }
        } else {
            const uint8_t *row = sel_row(it, s->sel, q, n, lim);
            for (int k = 0; k < lim; k++) {
                int c = row[k];
                none |= c & xnone[k];
                sum += c ? x[k] : 0.0;
                count += c;
            }
        }
        if (none) { out[q] = RASP_NONE; continue; }
        if (!count) { out[q] = s->deflt; continue; }
        out[q] = mean_index(it, s, ss, sum / count, q);
    }
}

static void eval_selwidth(Interp *it, const RaspSop *s, int n)
{
    SelState *ls = &it->l[s->sel];
    const int32_t *widx = it->s[s->id].widx;
    int32_t *out = it->s[s->id].v;
    const int32_t *kv, *qv;
    int leaf = sel_leaf(it, s, n, &kv, &qv);
    int causal = it->p->causal;
    uint64_t run = it->run;
    for (int q = 0; q < n; q++) {
        int lim = causal ? q + 1 : n;
        int c = 0;
        const int32_t *sv;
        int deg;
        if (leaf && sparse_row(ls, qv[q], n, &sv, &deg)) {
            for (int j = 0; j < deg; j++) {
                int32_t v = sv[j];
                if (ls->kstamp[v] != run) continue;
                if (!causal) c += ls->cnt[v];
                else
                    for (int k = ls->head[v]; k >= 0 && k < lim; k = ls->next[k]) c++;
            }
        } else if (leaf) {
            const uint8_t *r = ls->base + (ptrdiff_t)qv[q] * ls->stride;
            for (int k = 0; k < lim; k++) c += r[kv[k]];
        } else {
            const uint8_t *row = sel_row(it, s->sel, q, n, lim);
            for (int k = 0; k < lim; k++) c += row[k];
        }
        out[q] = widx[c];
        if (widx[c] == RASP_NONE)
            set_error(it, "internal error: the width %d at position %d of selector_width '%s' "
                      "is not in its value set", c, q, s->label);
    }
}

static void eval_sop(Interp *it, const RaspSop *s, const int32_t *tokens, int n)
{
    SopState *ss = &it->s[s->id];
    int32_t *out = ss->v;
    if (ss->bad) {
        set_error(it, "internal error: s-op '%s' is malformed: %s", s->label, ss->bad);
        return;     /* its values stay RASP_NONE */
    }
    switch (s->op) {
    case SOP_TOKENS:
        memcpy(out, tokens, (size_t)n * sizeof *out);
        return;
    case SOP_INDICES:
        for (int i = 0; i < n; i++) out[i] = i;
        return;
    case SOP_CONST:
        for (int i = 0; i < n; i++) out[i] = 0;
        return;
    default:
        break;
    }

    /* Operands that could not be evaluated make this one unevaluable too. */
    if ((s->op == SOP_MAP || s->op == SOP_SEQMAP || s->op == SOP_AGGREGATE) &&
        (!it->s[s->a].v || it->s[s->a].bad))
        goto operand;
    if (s->op == SOP_SEQMAP && (!it->s[s->b].v || it->s[s->b].bad)) goto operand;
    if ((s->op == SOP_AGGREGATE || s->op == SOP_SELWIDTH) && !sel_ready(it, s->sel))
        goto operand;

    switch (s->op) {
    case SOP_MAP: {
        const int32_t *a = it->s[s->a].v, *t = s->table;
        for (int i = 0; i < n; i++) out[i] = a[i] < 0 ? RASP_NONE : t[a[i]];
        return;
    }
    case SOP_SEQMAP: {
        const int32_t *a = it->s[s->a].v, *b = it->s[s->b].v, *t = s->table;
        int nb = it->p->sops[s->b].nvals;
        int impossible = 0;
        for (int i = 0; i < n; i++) {
            out[i] = (a[i] < 0 || b[i] < 0) ? RASP_NONE : t[(size_t)a[i] * (size_t)nb + (size_t)b[i]];
            impossible |= out[i] == RASP_IMPOSSIBLE;
        }
        if (impossible)
            for (int i = 0; i < n; i++)
                if (out[i] == RASP_IMPOSSIBLE) {
                    set_error(it, "internal error: at position %d the operands of linear sequence "
                              "map '%s' hold values that were proved never to occur together",
                              i, s->label);
                    out[i] = RASP_NONE;
                }
        return;
    }
    case SOP_AGGREGATE:
        sel_prepare(it, s->sel, n);
        eval_aggregate(it, s, n);
        return;
    case SOP_SELWIDTH:
        sel_prepare(it, s->sel, n);
        eval_selwidth(it, s, n);
        return;
    default:
        return;
    }
operand:
    set_error(it, "internal error: an operand of s-op '%s' could not be evaluated", s->label);
    for (int i = 0; i < n; i++) out[i] = RASP_NONE;
}

int interp_eval(Interp *it, const int32_t *tokens, int n)
{
    const RaspProgram *p = it->p;
    it->nerr = 0;
    it->err[0] = 0;
    it->n = 0;
    it->run++;
    if (it->malformed) {
        set_error(it, "internal error: malformed program: %s", it->malformed);
        return -1;
    }
    if (n < 1 || n > p->max_len) {
        set_error(it, "input length %d is outside 1..%d (max_len)", n, p->max_len);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= p->nvocab) {
            set_error(it, "token %d at position %d is not a vocab index (0..%d)", (int)tokens[i],
                      i, p->nvocab - 1);
            return -1;
        }
    it->n = n;
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        if (!it->s[i].v) continue;
        eval_sop(it, s, tokens, n);
    }
    return it->nerr ? -1 : 0;
}

void interp_run(Interp *it, const int32_t *tokens, int n)
{
    (void)interp_eval(it, tokens, n);
}

const char *interp_error(const Interp *it)
{
    return it->err;
}

const int32_t *interp_values(const Interp *it, int sop)
{
    if (sop < 0 || sop >= it->p->nsops) return NULL;
    return it->s[sop].v;
}

/* Computed on demand: the consumers never need the matrix, so the run does not build it.
 * Interp is opaque and created mutable by interp_new, so filling the cache through the
 * const pointer is well defined; an Interp is not shared between threads anyway. */
const uint8_t *interp_selection(const Interp *cit, int sel)
{
    Interp *it = (Interp *)cit;
    const RaspProgram *p = it->p;
    if (sel < 0 || sel >= p->nsels || !it->n || !sel_ready(it, sel)) return NULL;
    SelState *ls = &it->l[sel];
    int n = it->n;
    if (ls->mat_run != it->run) {
        sel_prepare(it, sel, n);
        if (!ls->mat) ls->mat = xmalloc((size_t)p->max_len * (size_t)p->max_len);
        for (int q = 0; q < n; q++) {
            const uint8_t *row = sel_row(it, sel, q, n, p->causal ? q + 1 : n);
            memcpy(ls->mat + (size_t)q * (size_t)n, row, (size_t)n);
        }
        ls->mat_run = it->run;
    }
    return ls->mat;
}
