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

/* Every mean of a multiset of 1..N values from xs (ascending, merged, m > 0) into acc.
 * Integers go through the exact bitset; anything else through merged sums. 0 if the means
 * would exceed limit. *generic says which path ran (the generic one merges as it goes). */
static int means_of(const double *xs, int m, int N, int limit, DVec *acc, int *generic)
{
    int integral = 1;
    for (int i = 0; i < m && integral; i++)
        integral = xs[i] == trunc(xs[i]) && fabs(xs[i]) <= 1099511627776.0; /* 2^40 */
    /* the bitset costs N*R bits: fall back to the generic path past 2^28 */
    if (integral && (double)N * (xs[m - 1] - xs[0]) > 268435456.0) integral = 0;
    if (generic) *generic = !integral && m > 1;
    if (m == 1) {
        dv_push(acc, xs[0]);
        return 1;
    }
    return integral ? means_integer(xs, m, N, limit, acc) : means_generic(xs, m, N, limit, acc);
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
    if (m > 0) ok = means_of(xs.v, m, max_len, limit, &acc, NULL);
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

/* ---------- linear combinations of numerical means ----------
 *
 * Why the rule is complete (valueset.h states it). Take the linear sequence map
 * y = offset + sum_i c_i * mean_{sel_i}(x_i), unfolded through linear maps, linear sequence
 * maps and numerical constants, and suppose every sel_i selects exactly the same keys at
 * every query of every input (one selector, or structurally identical ones: same
 * operations on equivalent keys and queries with equal predicate tables; the causal mask
 * and the no-value rule act on them alike). Fix an input and a query q; let K be the set of
 * keys selected there, c = |K|.
 *   - c = 0: every aggregate gives its default, so y = offset + sum_i c_i * d_i. Added to T
 *     unless the selector provably always selects a key.
 *   - some x_i is None at a key of K: that aggregate is None, hence y is None: no value.
 *   - otherwise y = offset + sum_i c_i * (sum_{k in K} x_i(k)) / c
 *                 = (sum_{k in K} w(k)) / c,   w(k) = offset + sum_i c_i * x_i(k),
 *     the mean of the multiset {w(k) : k in K}, of size 1..max_len.
 * Each x_i is a pointwise function (maps, sequence maps and constants, through their
 * tables) of the "leaf" s-ops its graph reaches; at one position those leaves hold some
 * values from their value sets, so w(k) is w evaluated at some combination of leaf values,
 * an element of W. (Structurally identical leaves hold the same value, so they count once;
 * a combination where some x_i is None gives no element, as above; one that reaches a
 * RASP_IMPOSSIBLE entry of an earlier tightened table cannot occur.) Hence y is a mean of a
 * multiset of 1..max_len elements of W: a member of T. When the leaves have too many joint
 * values, the x_i themselves serve as leaves (x_i is a function of x_i), which is looser
 * but just as complete. Terms whose coefficients cancel to exactly 0 contribute 0 (or
 * None), so they are dropped.
 *
 * At run time the map's table computes the value from the operands' representatives, which
 * differ from the exact means by rounding and by the 1e-9 merging of numerical value sets
 * (at most about 2e-9 * mag per level of the unfolding, mag bounding every partial sum);
 * `tol` bounds that distance with a wide margin (a wider margin only keeps more pairs). */

#define LIN_MAX_TERMS 64            /* aggregates in one combination */
#define LIN_BUDGET 200000           /* steps of the structural walks */
#define LIN_MAX_DEPTH 256           /* nesting of those walks */
#define LIN_MAX_COMBOS (1L << 16)   /* joint leaf values enumerated */
#define LIN_MAX_NODES 4096          /* pointwise s-ops between the x_i and their leaves */
#define LIN_MAX_W 4096              /* distinct w values fed to the exact (integer) DP */
#define LIN_MAX_W_GENERIC 256       /* ... and to the generic one */

typedef struct {
    const RaspSop *sops;
    const RaspSel *sels;
    long budget;
    int bad;
    int nterms;
    int agg[LIN_MAX_TERMS];         /* numerical aggregate s-op ids */
    double coef[LIN_MAX_TERMS];
    double offset;
    double mag;                     /* sum |c| * max|value| over the unfolding: bounds |y| */
    int depth;                      /* deepest nesting of linear s-ops in the unfolding */
} Lin;

static double max_abs(const RaspSop *s)
{
    double m = 0;
    for (int i = 0; i < s->nvals; i++)
        if (val_is_number(s->vals[i])) m = fmax(m, fabs(val_as_double(s->vals[i])));
    return m;
}

static int same_vals(const RaspSop *a, const RaspSop *b)
{
    if (a->nvals != b->nvals) return 0;
    for (int i = 0; i < a->nvals; i++)
        if (a->vals[i].kind != b->vals[i].kind || val_order(a->vals[i], b->vals[i]) != 0) return 0;
    return 1;
}

static int sel_equiv(Lin *L, int a, int b, int depth);

/* 1 if s-ops a and b provably hold the same value index at every position of every input:
 * the same operation on equivalent operands, with equal value sets and tables. */
static int sop_equiv(Lin *L, int a, int b, int depth)
{
    if (a == b) return 1;
    if (--L->budget < 0 || depth > LIN_MAX_DEPTH) return 0;
    const RaspSop *A = &L->sops[a], *B = &L->sops[b];
    if (A->op != B->op || A->enc != B->enc || !same_vals(A, B)) return 0;
    switch (A->op) {
    case SOP_CONST:
        return 1;
    case SOP_MAP:
        return A->table && B->table && sop_equiv(L, A->a, B->a, depth + 1) &&
               !memcmp(A->table, B->table, sizeof(int32_t) * (size_t)L->sops[A->a].nvals);
    case SOP_SEQMAP:
        return A->table && B->table && sop_equiv(L, A->a, B->a, depth + 1) &&
               sop_equiv(L, A->b, B->b, depth + 1) &&
               !memcmp(A->table, B->table,
                       sizeof(int32_t) * (size_t)L->sops[A->a].nvals * (size_t)L->sops[A->b].nvals);
    case SOP_AGGREGATE:
        return A->deflt == B->deflt && sel_equiv(L, A->sel, B->sel, depth + 1) &&
               sop_equiv(L, A->a, B->a, depth + 1);
    case SOP_SELWIDTH:
        return sel_equiv(L, A->sel, B->sel, depth + 1);
    default:
        return 0;   /* tokens and indices exist once */
    }
}

/* 1 if selectors a and b provably select the same keys at every query of every input. */
static int sel_equiv(Lin *L, int a, int b, int depth)
{
    if (a == b) return 1;
    if (--L->budget < 0 || depth > LIN_MAX_DEPTH) return 0;
    const RaspSel *A = &L->sels[a], *B = &L->sels[b];
    if (A->op != B->op) return 0;
    switch (A->op) {
    case SEL_SELECT:
        if (!A->pred || !B->pred || !sop_equiv(L, A->keys, B->keys, depth + 1) ||
            !sop_equiv(L, A->queries, B->queries, depth + 1))
            return 0;
        return !memcmp(A->pred, B->pred,
                       (size_t)L->sops[A->keys].nvals * (size_t)L->sops[A->queries].nvals);
    case SEL_AND:
    case SEL_OR:
        return (sel_equiv(L, A->a, B->a, depth + 1) && sel_equiv(L, A->b, B->b, depth + 1)) ||
               (sel_equiv(L, A->a, B->b, depth + 1) && sel_equiv(L, A->b, B->a, depth + 1));
    case SEL_NOT:
        return sel_equiv(L, A->a, B->a, depth + 1);
    }
    return 0;
}

/* Unfold c * s into terms, constants and the magnitude bound; sets L->bad when s is not a
 * linear combination of numerical aggregates and constants. */
static void lin_expand(Lin *L, int id, double c, int depth)
{
    if (L->bad) return;
    if (--L->budget < 0 || depth > LIN_MAX_DEPTH) {
        L->bad = 1;
        return;
    }
    const RaspSop *s = &L->sops[id];
    if (s->enc != ENC_NUMERICAL) {
        L->bad = 1;
        return;
    }
    if (depth > L->depth) L->depth = depth;
    switch (s->op) {
    case SOP_AGGREGATE:
        if (s->deflt < 0 || s->deflt >= s->nvals || !val_is_number(s->vals[s->deflt])) {
            L->bad = 1;
            return;
        }
        L->mag += fabs(c) * max_abs(s);
        for (int i = 0; i < L->nterms; i++)
            if (L->agg[i] == id) {
                L->coef[i] += c;
                return;
            }
        if (L->nterms == LIN_MAX_TERMS) {
            L->bad = 1;
            return;
        }
        L->agg[L->nterms] = id;
        L->coef[L->nterms++] = c;
        return;
    case SOP_MAP:
        if (!s->linear) break;
        lin_expand(L, s->a, c * s->lin_a, depth + 1);
        return;
    case SOP_SEQMAP:
        if (!s->linear) break;
        lin_expand(L, s->a, c * s->lin_a, depth + 1);
        lin_expand(L, s->b, c * s->lin_b, depth + 1);
        return;
    case SOP_CONST:
        if (s->nvals != 1 || !val_is_number(s->vals[0])) break;
        L->offset += c * val_as_double(s->vals[0]);
        L->mag += fabs(c * val_as_double(s->vals[0]));
        return;
    default:
        break;
    }
    L->bad = 1;
}

/* The pointwise graph under the aggregated s-ops: its nodes (ascending ids), its distinct
 * leaves, and per node the leaf it stands for (or -1). */
typedef struct {
    int *nodes, nnodes;
    int *leaf, nleaf;
    int32_t *slot;      /* per s-op id below the map */
    uint8_t *seen;
} Dag;

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* Add leaf x (or note which existing leaf it is equivalent to). */
static void dag_leaf(Lin *L, Dag *g, int x)
{
    for (int j = 0; j < g->nleaf; j++)
        if (sop_equiv(L, g->leaf[j], x, 0)) {
            g->slot[x] = j;
            return;
        }
    g->slot[x] = g->nleaf;
    g->leaf[g->nleaf++] = x;
}

/* Walk down from each x_i through maps, sequence maps and constants (pointwise mode), or
 * take the x_i themselves as leaves. 0 if the graph is too big. */
static int dag_build(Lin *L, Dag *g, int below, int pointwise)
{
    g->nnodes = g->nleaf = 0;
    memset(g->seen, 0, (size_t)below);
    for (int i = 0; i < below; i++) g->slot[i] = -1;
    int *stack = xmalloc(sizeof(int) * (LIN_MAX_NODES * 2 + LIN_MAX_TERMS));
    int sp = 0, ok = 1;
    for (int t = 0; t < L->nterms && ok; t++) {
        stack[sp++] = L->sops[L->agg[t]].a;
        while (sp > 0 && ok) {
            int x = stack[--sp];
            if (g->seen[x]) continue;
            g->seen[x] = 1;
            if (g->nnodes == LIN_MAX_NODES) {
                ok = 0;
                break;
            }
            g->nodes[g->nnodes++] = x;
            const RaspSop *s = &L->sops[x];
            if (pointwise && s->op == SOP_MAP) {
                if (!s->table) ok = 0;
                else stack[sp++] = s->a;
            } else if (pointwise && s->op == SOP_SEQMAP) {
                if (!s->table) ok = 0;
                stack[sp++] = s->a;
                stack[sp++] = s->b;
            } else if (!(pointwise && s->op == SOP_CONST)) {
                dag_leaf(L, g, x);
            }
        }
    }
    free(stack);
    if (!ok || L->budget < 0) return 0;
    qsort(g->nodes, (size_t)g->nnodes, sizeof *g->nodes, cmp_int);
    return 1;
}

/* Joint values of the leaves, or -1 if more than LIN_MAX_COMBOS. */
static long dag_combos(const Lin *L, const Dag *g)
{
    long n = 1;
    for (int j = 0; j < g->nleaf; j++) {
        n *= L->sops[g->leaf[j]].nvals;
        if (n > LIN_MAX_COMBOS) return -1;
    }
    return n;
}

/* Every w over the leaves' joint values into W. 0 on a malformed operand. */
static int collect_w(const Lin *L, const Dag *g, long ncombos, int below, DVec *W)
{
    int32_t *val = xmalloc(sizeof(int32_t) * (size_t)(below > 0 ? below : 1));
    int32_t *cv = xcalloc((size_t)(g->nleaf > 0 ? g->nleaf : 1), sizeof *cv);
    int ok = 1;
    for (long combo = 0; combo < ncombos && ok; combo++) {
        if (combo > 0)   /* next joint value, mixed radix */
            for (int j = 0; j < g->nleaf; j++) {
                if (++cv[j] < L->sops[g->leaf[j]].nvals) break;
                cv[j] = 0;
            }
        for (int i = 0; i < g->nnodes; i++) {
            int x = g->nodes[i];
            const RaspSop *s = &L->sops[x];
            int32_t v;
            if (g->slot[x] >= 0) {
                v = cv[g->slot[x]];
            } else if (s->op == SOP_CONST) {
                v = 0;
            } else if (s->op == SOP_MAP) {
                int32_t a = val[s->a];
                v = a < 0 ? a : s->table[a];
            } else {   /* SOP_SEQMAP */
                int32_t a = val[s->a], b = val[s->b];
                if (a == RASP_IMPOSSIBLE || b == RASP_IMPOSSIBLE) v = RASP_IMPOSSIBLE;
                else if (a < 0 || b < 0) v = RASP_NONE;
                else v = s->table[(size_t)a * (size_t)L->sops[s->b].nvals + (size_t)b];
            }
            val[x] = v;
        }
        double w = L->offset;
        int none = 0;
        for (int t = 0; t < L->nterms; t++) {
            const RaspSop *x = &L->sops[L->sops[L->agg[t]].a];
            int32_t v = val[L->sops[L->agg[t]].a];
            if (v < 0) {   /* None, or a combination that cannot occur: no element */
                none = 1;
                break;
            }
            if (!val_is_number(x->vals[v])) {
                ok = 0;
                break;
            }
            w += L->coef[t] * val_as_double(x->vals[v]);
        }
        if (ok && !none) {
            if (!isfinite(w)) ok = 0;
            else dv_push(W, w);
        }
        if (W->n > (size_t)LIN_MAX_COMBOS) dv_compact(W);
    }
    free(val);
    free(cv);
    return ok;
}

/* Equal-width buckets over t, about four per member, so a look-up scans O(1) members for
 * evenly spread sets (tables of a million pairs are checked this way). */
static void lin_index(VsLinear *l)
{
    l->nbucket = 0;
    l->bucket = NULL;
    if (l->n < 2 || !(l->t[l->n - 1] > l->t[0])) return;
    int nb = 4 * l->n;
    l->lo = l->t[0];
    l->scale = nb / (l->t[l->n - 1] - l->t[0]);
    if (!isfinite(l->scale)) return;
    l->bucket = xmalloc(sizeof(int32_t) * ((size_t)nb + 1));
    int i = 0;
    for (int k = 0; k <= nb; k++) {
        double edge = l->lo + k / l->scale;
        while (i < l->n && l->t[i] < edge) i++;
        l->bucket[k] = i;
    }
    l->nbucket = nb;
}

int vs_linear_means(const RaspSop *sops, const RaspSel *sels, int id, int max_len,
                    int (*nonempty)(void *ctx, int sel), void *ctx, int limit, VsLinear *out)
{
    memset(out, 0, sizeof *out);
    const RaspSop *y = &sops[id];
    if (y->op != SOP_SEQMAP || !y->linear || y->enc != ENC_NUMERICAL || max_len < 1) return 0;
    Lin L;
    memset(&L, 0, sizeof L);
    L.sops = sops;
    L.sels = sels;
    L.budget = LIN_BUDGET;
    lin_expand(&L, y->a, y->lin_a, 0);
    lin_expand(&L, y->b, y->lin_b, 0);
    if (L.bad || L.nterms == 0 || !isfinite(L.offset) || !isfinite(L.mag)) return 0;

    /* terms that cancel exactly contribute 0 (or None): drop them */
    int k = 0;
    for (int t = 0; t < L.nterms; t++)
        if (L.coef[t] != 0.0) {
            L.agg[k] = L.agg[t];
            L.coef[k++] = L.coef[t];
        }
    L.nterms = k;
    for (int t = 1; t < L.nterms; t++)
        if (!sel_equiv(&L, sops[L.agg[0]].sel, sops[L.agg[t]].sel, 0)) return 0;

    DVec W = {0}, T = {0};
    int ok = 1, generic = 0;
    if (L.nterms > 0) {
        Dag g;
        g.nodes = xmalloc(sizeof(int) * LIN_MAX_NODES);
        g.leaf = xmalloc(sizeof(int) * LIN_MAX_NODES);
        g.slot = xmalloc(sizeof(int32_t) * (size_t)id);
        g.seen = xmalloc((size_t)id);
        long nc = -1;
        if (dag_build(&L, &g, id, 1)) nc = dag_combos(&L, &g);
        if (nc < 0 && dag_build(&L, &g, id, 0)) nc = dag_combos(&L, &g);
        ok = nc >= 0 && collect_w(&L, &g, nc, id, &W);
        free(g.nodes);
        free(g.leaf);
        free(g.slot);
        free(g.seen);
        if (ok) {
            dv_compact(&W);
            int integral = 1;
            for (size_t i = 0; i < W.n && integral; i++) integral = W.v[i] == trunc(W.v[i]);
            if (W.n > (size_t)(integral ? LIN_MAX_W : LIN_MAX_W_GENERIC)) ok = 0;
        }
        if (ok && W.n > 0) ok = means_of(W.v, (int)W.n, max_len, limit, &T, &generic);
        if (ok && !nonempty(ctx, sops[L.agg[0]].sel)) {
            double d = L.offset;
            for (int t = 0; t < L.nterms; t++) {
                const RaspSop *a = &sops[L.agg[t]];
                d += L.coef[t] * val_as_double(a->vals[a->deflt]);
            }
            dv_push(&T, d);
        }
    } else {
        dv_push(&T, L.offset);
    }
    if (ok) {
        dv_compact(&T);
        if (T.n > (size_t)limit) ok = 0;
    }
    free(W.v);
    if (!ok) {
        free(T.v);
        return 0;
    }
    out->t = T.v ? T.v : xmalloc(sizeof(double));
    out->n = (int)T.n;
    /* each level of the unfolding may add a representative's 1e-9 (x2: merge and look-up);
     * the generic DP merges its sums as it goes, up to max_len times */
    out->tol = (1e-7 + 1e-8 * L.depth + (generic ? 2e-9 * max_len : 0.0)) * L.mag + 1e-12;
    lin_index(out);
    return 1;
}

int vs_linear_match(const VsLinear *l, double x)
{
    double from = x - l->tol;
    int i;
    if (l->bucket) {
        /* the first member >= from is at or after bucket[k] */
        double pos = (from - l->lo) * l->scale;
        int k = !(pos > 0) ? 0 : pos >= l->nbucket ? l->nbucket : (int)pos;   /* NaN -> 0 */
        i = l->bucket[k];
        while (i > 0 && l->t[i - 1] >= from) i--;   /* rounding at the bucket edge */
        while (i < l->n && l->t[i] < from) i++;
    } else {
        int lo = 0, hi = l->n;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (l->t[mid] < from) lo = mid + 1;
            else hi = mid;
        }
        i = lo;
    }
    return i < l->n && l->t[i] <= x + l->tol;
}

void vs_linear_free(VsLinear *l)
{
    free(l->t);
    free(l->bucket);
    memset(l, 0, sizeof *l);
}
