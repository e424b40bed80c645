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
