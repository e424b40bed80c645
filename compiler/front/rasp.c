/* rasp.c — lookups in a checked program; see rasp.h. */
#include "rasp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "valueset.h"

void rasp_free(RaspProgram *p)
{
    if (!p) return;
    arena_free(&p->arena);   /* everything the program points to lives here */
    free(p);
}

int rasp_num_index(const RaspSop *s, double x)
{
    if (s->nvals <= 0) return RASP_NONE;
    if (s->enc != ENC_NUMERICAL) {
        /* not sorted by number in general: scan */
        for (int i = 0; i < s->nvals; i++)
            if (val_is_number(s->vals[i]) && vs_num_close(val_as_double(s->vals[i]), x)) return i;
        return RASP_NONE;
    }
    /* numerical sets are ascending and merged within the tolerance, so the nearest
     * neighbour is the only candidate */
    int lo = 0, hi = s->nvals;   /* first index with value >= x */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (val_as_double(s->vals[mid]) < x) lo = mid + 1;
        else hi = mid;
    }
    int best = RASP_NONE;
    double bd = INFINITY;
    for (int i = lo - 1; i <= lo; i++) {
        if (i < 0 || i >= s->nvals) continue;
        double v = val_as_double(s->vals[i]);
        double dist = fabs(v - x);
        if (vs_num_close(v, x) && dist < bd) { bd = dist; best = i; }
    }
    return best;
}

int rasp_value_index(const RaspSop *s, Value v)
{
    /* tokens keep the vocab's order and categorical aggregates their operand's (rasp.h) */
    if (s->op == SOP_TOKENS || (s->op == SOP_AGGREGATE && s->enc == ENC_CATEGORICAL)) {
        for (int i = 0; i < s->nvals; i++)
            if (val_equal(s->vals[i], v)) return i;
        return RASP_NONE;
    }
    /* every other set is sorted by val_order (numerical sets ascending is the same order) */
    int lo = 0, hi = s->nvals;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (val_order(s->vals[mid], v) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < s->nvals && val_equal(s->vals[lo], v)) return lo;
    return RASP_NONE;
}

int rasp_token_index(const RaspProgram *p, const char *text)
{
    char buf[32];
    for (int i = 0; i < p->nvocab; i++) {
        Value v = p->vocab[i];
        if (v.kind == VAL_STR) {
            if (!strcmp(v.u.s, text)) return i;
        } else if (v.kind == VAL_INT) {
            snprintf(buf, sizeof buf, "%lld", (long long)v.u.i);
            if (!strcmp(buf, text)) return i;
        }
    }
    return -1;
}

/* Whether every position a selector can select for one query holds the same value of `a`:
 * a single select whose rows pick at most one key value, with keys that differ at every
 * position (indices) or that determine `a` (a is the keys, or a map of them). */
static int one_value_selected(const RaspProgram *p, const RaspSel *l, int a)
{
    if (l->op != SEL_SELECT) return 0;
    const RaspSop *k = &p->sops[l->keys], *q = &p->sops[l->queries];
    for (int qi = 0; qi < q->nvals; qi++) {
        int n = 0;
        for (int ki = 0; ki < k->nvals; ki++) n += l->pred[(size_t)ki * (size_t)q->nvals + (size_t)qi] != 0;
        if (n > 1) return 0;
    }
    const RaspSop *av = &p->sops[a];
    return k->op == SOP_INDICES || a == l->keys || (av->op == SOP_MAP && av->a == l->keys);
}

int rasp_agg_may_mix(const RaspProgram *p, const RaspSop *s)
{
    if (s->op != SOP_AGGREGATE || s->enc != ENC_CATEGORICAL) return 0;
    const RaspSop *a = &p->sops[s->a];
    if (a->nvals <= 1 && !a->may_none) return 0;
    return !one_value_selected(p, &p->sels[s->sel], s->a);
}

int rasp_first_reader(const RaspProgram *p, int sop)
{
    for (int i = sop + 1; i < p->nsops; i++)
        if (p->sops[i].used && (p->sops[i].a == sop || p->sops[i].b == sop)) return i;
    for (int i = 0; i < p->nsels; i++)
        if (p->sels[i].used && p->sels[i].op == SEL_SELECT &&
            (p->sels[i].keys == sop || p->sels[i].queries == sop))
            return p->nsops + i;
    return -1;
}

int rasp_warn_mixing(const RaspProgram *p, Diag *d)
{
    int n = 0;
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        if (!s->used || !rasp_agg_may_mix(p, s)) continue;
        int r = rasp_first_reader(p, i);
        if (r < 0) continue;
        diag_warning(d, s->span,
                     "aggregate '%s' can select positions with different values (or no value): "
                     "the interpreter gives no value there, a compiled model a mixture",
                     s->label);
        if (r < p->nsops) diag_note(d, p->sops[r].span, "'%s' reads it, so a compiled model can disagree here", p->sops[r].label);
        else diag_note(d, p->sels[r - p->nsops].span, "selector '%s' reads it, so a compiled model can disagree here", p->sels[r - p->nsops].label);
        n++;
    }
    return n;
}
