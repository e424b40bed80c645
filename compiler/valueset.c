/* valueset.c — see valueset.h. */
#include "valueset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int vs_num_close(double a, double b)
{
    if (a == b) return 1;
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    double d = fabs(a - b);
    double m = fmax(fabs(a), fabs(b));
    return d <= 1e-9 * m || d <= 1e-12;
}

/* ---------- insertion-ordered hash set ---------- */

void vset_init(VSet *s) { memset(s, 0, sizeof *s); }

void vset_free(VSet *s)
{
    free(s->v);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static void vset_rehash(VSet *s, size_t nslots)
{
    free(s->slots);
    s->slots = xmalloc(nslots * sizeof *s->slots);
    memset(s->slots, 0xff, nslots * sizeof *s->slots);
    s->nslots = nslots;
    for (int i = 0; i < s->n; i++) {
        size_t h = (size_t)val_hash(s->v[i]) & (nslots - 1);
        while (s->slots[h] >= 0) h = (h + 1) & (nslots - 1);
        s->slots[h] = i;
    }
}

int vset_add(VSet *s, Value v)
{
    if ((size_t)(s->n + 1) * 2 > s->nslots) vset_rehash(s, s->nslots ? s->nslots * 2 : 16);
    size_t h = (size_t)val_hash(v) & (s->nslots - 1);
    while (s->slots[h] >= 0) {
        if (val_order(s->v[s->slots[h]], v) == 0) return s->slots[h];
        h = (h + 1) & (s->nslots - 1);
    }
    XGROW(s->v, s->cap, (size_t)s->n + 1);
    s->v[s->n] = v;
    s->slots[h] = s->n;
    return s->n++;
}

/* ---------- final order ---------- */

typedef struct {
    Value v;
    int32_t i;
} Entry;

static int cmp_entry(const void *x, const void *y)
{
    const Entry *a = x, *b = y;
    int c = val_order(a->v, b->v);
    if (c) return c;
    return (a->i > b->i) - (a->i < b->i);   /* stable: the earlier insertion first */
}

int vset_finish(const VSet *s, int numerical, Arena *arena, Value **out, int32_t *perm)
{
    int n = s->n;
    Entry *ord = xmalloc(sizeof(Entry) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) ord[i] = (Entry){s->v[i], i};
    qsort(ord, (size_t)n, sizeof *ord, cmp_entry);
    Value *vals = arena_alloc(arena, sizeof(Value) * (size_t)(n ? n : 1));
    int k = 0;
    for (int i = 0; i < n; i++) {
        Value v = ord[i].v;
        if (numerical && k > 0 && val_is_number(v) && val_is_number(vals[k - 1]) &&
            vs_num_close(val_as_double(vals[k - 1]), val_as_double(v))) {
            perm[ord[i].i] = k - 1;   /* merged into the previous value */
            continue;
        }
        vals[k] = v;
        perm[ord[i].i] = k++;
    }
    free(ord);
    *out = vals;
    return k;
}

/* ---------- numerical means ---------- */

typedef struct {
    double *v;
    size_t n, cap;
} DVec;

static void dv_push(DVec *d, double x)
{
    XGROW(d->v, d->cap, d->n + 1);
    d->v[d->n++] = x;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Sort and merge values within the tolerance, in place. */
static void dv_compact(DVec *d)
{
    if (d->n == 0) return;
    qsort(d->v, d->n, sizeof *d->v, cmp_double);
    size_t k = 1;
    for (size_t i = 1; i < d->n; i++)
        if (!vs_num_close(d->v[k - 1], d->v[i])) d->v[k++] = d->v[i];
    d->n = k;
}

/* Integer values in [xmin, xmin + R]: S_c (sums of c values, shifted by c*xmin) as a
 * bitset; S_{c+1} is the union of S_c shifted by each value. Each mean is (s + c*xmin)/c. */
static int means_integer(const double *x, int m, int N, int limit, DVec *acc)
{
    int64_t xmin = (int64_t)x[0];
    int64_t R = (int64_t)x[m - 1] - xmin;
    size_t nbits = (size_t)N * (size_t)R + 1;
    size_t words = (nbits + 63) / 64;
    uint64_t *cur = xcalloc(words, sizeof *cur), *nxt = xcalloc(words, sizeof *nxt);
    for (int i = 0; i < m; i++) {
        int64_t w = (int64_t)x[i] - xmin;
        cur[w / 64] |= 1ULL << (w % 64);
    }
    int ok = 1;
    for (int c = 1; c <= N && ok; c++) {
        size_t top = (size_t)c * (size_t)R;   /* highest sum possible for c values */
        size_t tw = top / 64 + 1;
        for (size_t wi = 0; wi < tw; wi++) {
            uint64_t bits = cur[wi];
            while (bits) {
                int b = __builtin_ctzll(bits);
                bits &= bits - 1;
                int64_t s = (int64_t)(wi * 64 + (size_t)b);
                dv_push(acc, (double)(s + (int64_t)c * xmin) / (double)c);
            }
        }
        if (acc->n > (size_t)limit * 2) {
            dv_compact(acc);
            if (acc->n > (size_t)limit) ok = 0;
        }
        if (c == N || !ok) break;
        size_t ntop = (size_t)(c + 1) * (size_t)R;
        size_t nw = ntop / 64 + 1;
        memset(nxt, 0, nw * sizeof *nxt);
        for (int i = 0; i < m; i++) {
            size_t w = (size_t)((int64_t)x[i] - xmin);
            size_t ws = w / 64, bs = w % 64;
            for (size_t wi = 0; wi < tw && wi + ws < nw; wi++) {
                uint64_t v = cur[wi];
                if (!v) continue;
                nxt[wi + ws] |= v << bs;
                if (bs && wi + ws + 1 < nw) nxt[wi + ws + 1] |= v >> (64 - bs);
            }
        }
        uint64_t *t = cur;
        cur = nxt;
        nxt = t;
    }
    free(cur);
    free(nxt);
    return ok;
}

/* Any numbers: S_c as a sorted array merged within the tolerance. */
static int means_generic(const double *x, int m, int N, int limit, DVec *acc)
{
    DVec cur = {0}, nxt = {0};
    for (int i = 0; i < m; i++) dv_push(&cur, x[i]);
    int ok = 1;
    for (int c = 1; c <= N && ok; c++) {
        for (size_t i = 0; i < cur.n; i++) dv_push(acc, cur.v[i] / c);
        if (acc->n > (size_t)limit * 2) {
            dv_compact(acc);
            if (acc->n > (size_t)limit) ok = 0;
        }
        if (c == N || !ok) break;
        nxt.n = 0;
        for (size_t i = 0; i < cur.n; i++)
            for (int j = 0; j < m; j++) dv_push(&nxt, cur.v[i] + x[j]);
        dv_compact(&nxt);
        /* the means of c+1 values alone are as many as the sums */
        if (nxt.n > (size_t)limit) ok = 0;
        DVec t = cur;
        cur = nxt;
        nxt = t;
    }
    free(cur.v);
    free(nxt.v);
    return ok;
}

int vs_means(const Value *nums, int n, int max_len, int has_extra, double extra, int limit,
             Arena *arena, Value **out)
{
    DVec xs = {0}, acc = {0};
    for (int i = 0; i < n; i++)
        if (val_is_number(nums[i])) dv_push(&xs, val_as_double(nums[i]));
    dv_compact(&xs);
    int m = (int)xs.n;
    int ok = 1;
    if (m > 0) {
        int integral = 1;
        for (int i = 0; i < m && integral; i++)
            integral = xs.v[i] == trunc(xs.v[i]) && fabs(xs.v[i]) <= 1099511627776.0; /* 2^40 */
        /* the bitset costs N*R bits: fall back to the generic path past 2^28 */
        if (integral && (double)max_len * (xs.v[m - 1] - xs.v[0]) > 268435456.0) integral = 0;
        if (m == 1) dv_push(&acc, xs.v[0]);
        else if (integral) ok = means_integer(xs.v, m, max_len, limit, &acc);
        else ok = means_generic(xs.v, m, max_len, limit, &acc);
    }
    if (has_extra) dv_push(&acc, extra);
    if (ok) {
        dv_compact(&acc);
        if (acc.n > (size_t)limit) ok = 0;
    }
    int count = -1;
    if (ok) {
        Value *vals = arena_alloc(arena, sizeof(Value) * (acc.n ? acc.n : 1));
        for (size_t i = 0; i < acc.n; i++) vals[i] = val_float(acc.v[i] == 0.0 ? 0.0 : acc.v[i]);
        *out = vals;
        count = (int)acc.n;
    }
    free(xs.v);
    free(acc.v);
    return count;
}
