/* lower.c — see lower.h. */
#include "compiler/back/lower.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_CONST (-2)     /* catview base of a constant: its feature is `one - tokens:BOS` */

/* ---- small helpers ------------------------------------------------------------------ */

static int add_node(LowerProgram *lp, size_t *cap)
{
    XGROW(lp->nodes, *cap, (size_t)lp->nnodes + 1);
    LowerNode *n = &lp->nodes[lp->nnodes];
    memset(n, 0, sizeof *n);
    n->sop = -1;
    n->op = -1;
    n->base = -1;
    n->ready = -1;
    n->rep = LREP_UNUSED;
    return lp->nnodes++;
}

static int add_op(LowerProgram *lp, size_t *cap, LowerOpKind kind, int out)
{
    XGROW(lp->ops, *cap, (size_t)lp->nops + 1);
    LowerOp *o = &lp->ops[lp->nops];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->out = out;
    o->sel = -1;
    o->value = -1;
    o->attn_slot = -1;
    o->mlp_slot = -1;
    return lp->nops++;
}

double lower_num(const LowerNode *n, int j)
{
    if (!n->vals) return (double)j;
    if (j < 0 || j >= n->nvals || !val_is_number(n->vals[j])) return 0.0;
    return val_as_double(n->vals[j]);
}

const char *lower_op_name(LowerOpKind k)
{
    switch (k) {
    case LOP_AGG: return "aggregate";
    case LOP_SELWIDTH: return "selector_width";
    case LOP_MLP_DISC: return "numerical_mlp";
    case LOP_MLP_CAT: return "categorical_mlp";
    case LOP_MLP_NUM: return "linear_mlp";
    }
    return "?";
}

int lower_catview(const LowerProgram *lp, int node, int *base, const int32_t **tab)
{
    const LowerNode *n = &lp->nodes[node];
    switch (n->rep) {
    case LREP_EMBED:
        *base = node;
        *tab = NULL;
        return 1;
    case LREP_MAT:
        if (n->enc == ENC_CATEGORICAL) {
            *base = node;
            *tab = NULL;
            return 1;
        }
        return 0;
    case LREP_VIRTUAL:
        if (n->virt == LVIRT_CATFN) {
            *base = n->base;
            *tab = n->ftab;
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* 1 if the node has a numerical linear form: a MAT numerical node, a LIN, or a categorical
 * view whose values are numbers (sum of value * one-hot). */
static int numview(const LowerProgram *lp, int node)
{
    const LowerNode *n = &lp->nodes[node];
    int base;
    const int32_t *tab;
    if (n->rep == LREP_MAT && n->enc == ENC_NUMERICAL) return 1;
    if (n->rep == LREP_VIRTUAL && n->virt == LVIRT_LIN) return 1;
    if (lower_catview(lp, node, &base, &tab)) {
        for (int j = 0; j < n->nvals; j++)
            if (n->vals && !val_is_number(n->vals[j])) return 0;
        return 1;
    }
    return 0;
}

static int base_nvals(const LowerProgram *lp, int base)
{
    return base == BASE_CONST ? 1 : lp->nodes[base].nvals;
}

/* Value index of `node` when its catview base holds value index v. */
static int32_t through(const int32_t *tab, int32_t v)
{
    if (v < 0) return RASP_NONE;
    return tab ? tab[v] : v;
}

static int node_ready(const LowerProgram *lp, int node)
{
    if (node < 0) return -1;
    const LowerNode *n = &lp->nodes[node];
    if (n->rep != LREP_VIRTUAL) return n->ready;
    if (n->virt == LVIRT_CATFN) return n->base == BASE_CONST ? -1 : node_ready(lp, n->base);
    int r = -1;
    for (int i = 0; i < n->nlin; i++) {
        int ri = node_ready(lp, n->lin_node[i]);
        if (ri > r) r = ri;
    }
    return r;
}

static int next_slot(int ready, int parity)
{
    int s = ready + 1;
    if ((s & 1) != parity) s++;
    return s;
}

/* ---- categorical MLP plans (shared with craft) -------------------------------------- */

static uint64_t hash_slice(const int32_t *t, const int64_t *idx, int64_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < n; i++) {
        h ^= (uint32_t)t[idx[i]];
        h *= 1099511628211ULL;
    }
    return h;
}

void lower_plan_free(LowerCatPlan *pl)
{
    if (!pl) return;
    for (int i = 0; i < pl->nin; i++) free(pl->cls[i]);
    free(pl->cls);
    free(pl->nclass);
    free(pl->ctab);
    memset(pl, 0, sizeof *pl);
}

/* Units of the plan's construction with input `col` as the column: for every combination of
 * the other inputs' classes, one unit per distinct output written (skip[z] = no unit). */
static int64_t plan_units(const LowerCatPlan *pl, int col, const uint8_t *skip, int nout)
{
    int m = pl->nin;
    if (m == 0) {
        int32_t z = pl->ctab[0];
        return z >= 0 && !(skip && skip[z]) ? 1 : 0;
    }
    int64_t stride[64], rows = 1;
    int64_t s = 1;
    for (int i = m - 1; i >= 0; i--) {
        stride[i] = s;
        s *= pl->nclass[i];
    }
    for (int i = 0; i < m; i++)
        if (i != col) rows *= pl->nclass[i];
    uint8_t *seen = xcalloc((size_t)(nout > 0 ? nout : 1), 1);
    int32_t *list = xmalloc(sizeof(int32_t) * (size_t)(pl->nclass[col] > 0 ? pl->nclass[col] : 1));
    int64_t units = 0;
    int cnt[64] = {0};
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int i = 0; i < m; i++)
            if (i != col) off += cnt[i] * stride[i];
        int nl = 0;
        for (int c = 0; c < pl->nclass[col]; c++) {
            int32_t z = pl->ctab[off + c * stride[col]];
            if (z < 0 || (skip && skip[z]) || seen[z]) continue;
            seen[z] = 1;
            list[nl++] = z;
        }
        units += nl;
        for (int k = 0; k < nl; k++) seen[list[k]] = 0;
        for (int i = m - 1; i >= 0; i--) {     /* next combination of the other inputs */
            if (i == col) continue;
            if (++cnt[i] < pl->nclass[i]) break;
            cnt[i] = 0;
        }
    }
    free(seen);
    free(list);
    return units;
}

int lower_plan(const int *sizes, int nin, const int32_t *table, const uint8_t *skip, int nout,
               LowerCatPlan *pl, StrBuf *err)
{
    memset(pl, 0, sizeof *pl);
    if (nin > 60) {
        if (err) sb_printf(err, "too many inputs (%d) for one categorical MLP", nin);
        return -1;
    }
    pl->nin = nin;
    pl->col = nin ? 0 : -1;
    pl->nclass = xcalloc((size_t)(nin ? nin : 1), sizeof *pl->nclass);
    pl->cls = xcalloc((size_t)(nin ? nin : 1), sizeof *pl->cls);
    int64_t total = 1, stride[64];
    for (int i = nin - 1; i >= 0; i--) {
        stride[i] = total;
        total *= sizes[i];
        if (total > RASP_MAX_TABLE) {
            if (err) sb_printf(err, "the table over its inputs would have more than %d entries",
                               RASP_MAX_TABLE);
            lower_plan_free(pl);
            return -1;
        }
    }
    /* Classes of each input: values whose slices of the table are identical. */
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)(total > 0 ? total : 1));
    int **reps = xcalloc((size_t)(nin ? nin : 1), sizeof *reps);
    for (int i = 0; i < nin; i++) {
        int n = sizes[i];
        int64_t per = n > 0 ? total / n : 0;
        pl->cls[i] = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
        reps[i] = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
        uint64_t *h = xmalloc(sizeof(uint64_t) * (size_t)(n > 0 ? n : 1));
        int64_t **slices = xmalloc(sizeof(int64_t *) * (size_t)(n > 0 ? n : 1));
        for (int v = 0; v < n; v++) {
            /* the entries of the table with input i = v, in a fixed order */
            int64_t k = 0;
            for (int64_t e = 0; e < total; e++)
                if ((e / stride[i]) % n == v) idx[k++] = e;
            slices[v] = xmalloc(sizeof(int64_t) * (size_t)(per > 0 ? per : 1));
            memcpy(slices[v], idx, sizeof(int64_t) * (size_t)per);
            h[v] = hash_slice(table, slices[v], per);
        }
        int nc = 0;
        for (int v = 0; v < n; v++) {
            int c = -1;
            for (int r = 0; r < nc && c < 0; r++) {
                int w = reps[i][r];
                if (h[w] != h[v]) continue;
                int same = 1;
                for (int64_t k = 0; k < per && same; k++)
                    same = table[slices[v][k]] == table[slices[w][k]];
                if (same) c = r;
            }
            if (c < 0) {
                c = nc++;
                reps[i][c] = v;
            }
            pl->cls[i][v] = c;
        }
        pl->nclass[i] = nc;
        for (int v = 0; v < n; v++) free(slices[v]);
        free(slices);
        free(h);
    }
    /* The table over class representatives. */
    int64_t ctotal = 1, cstride[64];
    for (int i = nin - 1; i >= 0; i--) {
        cstride[i] = ctotal;
        ctotal *= pl->nclass[i];
    }
    pl->ctab = xmalloc(sizeof(int32_t) * (size_t)(ctotal > 0 ? ctotal : 1));
    for (int64_t e = 0; e < ctotal; e++) {
        int64_t src = 0;
        for (int i = 0; i < nin; i++) {
            int c = (int)((e / cstride[i]) % pl->nclass[i]);
            src += reps[i][c] * stride[i];
        }
        pl->ctab[e] = ctotal > 0 && total > 0 ? table[src] : RASP_NONE;
    }
    if (nin == 0) pl->ctab[0] = table[0];
    for (int i = 0; i < nin; i++) free(reps[i]);
    free(reps);
    free(idx);
    /* The column input that needs the fewest units. */
    int64_t best = -1;
    if (nin == 0) best = plan_units(pl, -1, skip, nout);
    for (int c = 0; c < nin; c++) {
        int64_t u = plan_units(pl, c, skip, nout);
        if (best < 0 || u < best) {
            best = u;
            pl->col = c;
        }
    }
    pl->units = best < 0 ? 0 : (int)(best > 0x7fffffff ? 0x7fffffff : best);
    return 0;
}

/* ---- lowering ----------------------------------------------------------------------- */

typedef struct {
    LowerProgram *lp;
    const RaspProgram *p;
    size_t node_cap, op_cap;
    StrBuf *err;
    int fail;
} Ctx;

static int want_mat(const Ctx *cx, int id)
{
    const RaspProgram *p = cx->p;
    return !cx->lp->opt.fuse && (p->sops[id].named || id == p->output);
}

static void fail(Ctx *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Ctx *cx, const char *fmt, ...)
{
    if (cx->fail++) return;
    va_list ap;
    va_start(ap, fmt);
    if (cx->err) sb_vprintf(cx->err, fmt, ap);
    va_end(ap);
}

static void *arena_copy(Arena *a, const void *src, size_t n)
{
    void *d = arena_alloc(a, n ? n : 1);
    if (n) memcpy(d, src, n);
    return d;
}

/* Skip array for a numerical output: value 0 needs no unit. */
static uint8_t *zero_skip(const LowerNode *out)
{
    if (out->enc != ENC_NUMERICAL) return NULL;
    uint8_t *s = xcalloc((size_t)(out->nvals > 0 ? out->nvals : 1), 1);
    for (int j = 0; j < out->nvals; j++) s[j] = lower_num(out, j) == 0.0;
    return s;
}

static int cat_units(const LowerProgram *lp, int nin, const int *in, const int32_t *table, int out)
{
    int sizes[64];
    for (int i = 0; i < nin; i++) sizes[i] = lp->nodes[in[i]].nvals;
    uint8_t *skip = zero_skip(&lp->nodes[out]);
    LowerCatPlan pl;
    int units = -1;
    if (!lower_plan(sizes, nin, table, skip, lp->nodes[out].nvals, &pl, NULL)) units = pl.units;
    lower_plan_free(&pl);
    free(skip);
    return units;
}

static void set_mat(Ctx *cx, int node, int op, int ready)
{
    LowerNode *n = &cx->lp->nodes[node];
    n->rep = LREP_MAT;
    n->op = op;
    n->ready = ready;
}

/* An MLP op reading `nin` nodes (ready when all are), writing node `out`. */
static int new_mlp(Ctx *cx, LowerOpKind kind, int out, int nin, const int *in, const int32_t *table,
                   size_t table_len, int ready_extra)
{
    LowerProgram *lp = cx->lp;
    int o = add_op(lp, &cx->op_cap, kind, out);
    LowerOp *op = &lp->ops[o];
    op->nin = nin;
    op->in = arena_copy(&lp->arena, in, sizeof(int) * (size_t)nin);
    op->table = table ? arena_copy(&lp->arena, table, sizeof(int32_t) * table_len) : NULL;
    int r = ready_extra;
    for (int i = 0; i < nin; i++) {
        int ri = node_ready(lp, in[i]);
        if (ri > r) r = ri;
    }
    op->mlp_slot = next_slot(r, 1);
    set_mat(cx, out, o, op->mlp_slot);
    return o;
}

static void add_fused(LowerProgram *lp, LowerOp *op, int sop)
{
    int *f = arena_alloc(&lp->arena, sizeof(int) * (size_t)(op->nfused + 1));
    if (op->nfused) memcpy(f, op->fused, sizeof(int) * (size_t)op->nfused);
    f[op->nfused++] = sop;
    op->fused = f;
}

/* Materialise node id (whose virt fields are set) with an MLP. */
static void materialise(Ctx *cx, int id)
{
    LowerProgram *lp = cx->lp;
    LowerNode *n = &lp->nodes[id];
    if (n->virt == LVIRT_CATFN && n->enc == ENC_CATEGORICAL) {
        if (n->base == BASE_CONST) {
            new_mlp(cx, LOP_MLP_CAT, id, 0, NULL, n->ftab, 1, -1);
        } else {
            int in = n->base;
            new_mlp(cx, LOP_MLP_CAT, id, 1, &in, n->ftab, (size_t)lp->nodes[in].nvals, -1);
        }
        return;
    }
    /* numerical CATFN or LIN: the linear form, copied into one dimension */
    int o = add_op(lp, &cx->op_cap, LOP_MLP_NUM, id);
    LowerOp *op = &lp->ops[o];
    int r = node_ready(lp, id);   /* still virtual here: the readiness of its form */
    op->mlp_slot = next_slot(r, 1);
    set_mat(cx, id, o, op->mlp_slot);
}

static void make_virtual_or_mat(Ctx *cx, int id)
{
    LowerNode *n = &cx->lp->nodes[id];
    n->rep = LREP_VIRTUAL;
    if (want_mat(cx, id)) materialise(cx, id);
}

/* A map whose input has a categorical view, or a sequence map of two s-ops with the same
 * base: a function of one base node. ftab over the base's values. */
static void set_catfn(Ctx *cx, int id, int base, int32_t *ftab)
{
    LowerNode *n = &cx->lp->nodes[id];
    n->virt = LVIRT_CATFN;
    n->base = base;
    n->ftab = ftab;
}

/* Fold a single-use MLP-produced node `a` into its consumer `id` (a map with table t over
 * a's values): the op now writes id, with the composed table. 1 if folded. */
static int fold_map(Ctx *cx, int id, int a, const int32_t *t)
{
    LowerProgram *lp = cx->lp;
    LowerNode *na = &lp->nodes[a];
    if (!lp->opt.fuse || na->rep != LREP_MAT || na->uses != 1 || a == cx->p->output || na->sop < 0)
        return 0;
    LowerOp *op = &lp->ops[na->op];
    if ((op->kind != LOP_MLP_CAT && op->kind != LOP_MLP_DISC) || op->out != a) return 0;
    size_t len = 1;
    for (int i = 0; i < op->nin; i++) len *= (size_t)lp->nodes[op->in[i]].nvals;
    if (op->kind == LOP_MLP_CAT && op->nin == 0) len = 1;
    int32_t *nt = arena_alloc(&lp->arena, sizeof(int32_t) * len);
    for (size_t e = 0; e < len; e++) nt[e] = through(t, op->table[e]);
    op->table = nt;
    op->out = id;
    add_fused(lp, op, na->sop);
    na->rep = LREP_FUSED;
    set_mat(cx, id, na->op, na->ready);
    return 1;
}

static void lower_map(Ctx *cx, const RaspSop *s)
{
    LowerProgram *lp = cx->lp;
    int id = s->id, a = s->a;
    int base;
    const int32_t *tab;
    if (fold_map(cx, id, a, s->table)) return;
    if (lower_catview(lp, a, &base, &tab)) {
        int nb = base_nvals(lp, base);
        int32_t *ft = arena_alloc(&lp->arena, sizeof(int32_t) * (size_t)nb);
        for (int v = 0; v < nb; v++) {
            int32_t av = base == BASE_CONST ? lp->nodes[a].ftab[0] : through(tab, v);
            ft[v] = av < 0 ? RASP_NONE : s->table[av];
        }
        set_catfn(cx, id, base, ft);
        make_virtual_or_mat(cx, id);
        return;
    }
    if (s->linear && numview(lp, a)) {
        LowerNode *n = &lp->nodes[id];
        n->virt = LVIRT_LIN;
        n->nlin = 1;
        n->lin_node[0] = a;
        n->lin_coef[0] = s->lin_a;
        make_virtual_or_mat(cx, id);
        return;
    }
    if (lp->nodes[a].enc == ENC_NUMERICAL && numview(lp, a)) {
        new_mlp(cx, LOP_MLP_DISC, id, 1, &a, s->table, (size_t)lp->nodes[a].nvals, -1);
        return;
    }
    fail(cx, "cannot compile map '%s': its input '%s' has no representation an MLP can read",
         s->label, lp->nodes[a].label);
}

/* The operands of a categorical MLP: distinct base nodes, with each operand's value as a
 * function of them. An operand is either a categorical view (one base) or a single-use
 * MLP_CAT output folded in (its op's inputs). */
typedef struct {
    int nin;
    int in[64];
    /* per operand: kind 0 = view (base index into in[] or -1 for const, table), 1 = folded op */
    int kind[2];
    int vbase[2];
    const int32_t *vtab[2];
    const int32_t *ctab[2];      /* for a constant operand: its ftab (one entry) */
    const LowerOp *fop[2];
    int fin[2][64];              /* folded op input i -> index into in[] */
} Operands;

static int add_input(Operands *o, int node)
{
    for (int i = 0; i < o->nin; i++)
        if (o->in[i] == node) return i;
    if (o->nin >= 60) return -1;
    o->in[o->nin] = node;
    return o->nin++;
}

static int32_t operand_value(const LowerProgram *lp, const Operands *o, int k, const int *vals)
{
    if (o->kind[k] == 0) {
        if (o->vbase[k] < 0) return o->ctab[k][0];
        return through(o->vtab[k], vals[o->vbase[k]]);
    }
    const LowerOp *op = o->fop[k];
    int64_t e = 0;
    for (int i = 0; i < op->nin; i++) e = e * lp->nodes[op->in[i]].nvals + vals[o->fin[k][i]];
    return op->table[e];
}

/* A sequence map of two s-ops with numbers for values whose table depends only on x + k*y
 * (k = 1 or -1), like `length - indices`: the sum is a linear form of the two one-hots
 * (sum of value * dimension), so one discretiser over it replaces a unit per pair. Returns
 * the discretiser's unit count and fills *sum_out / *tab_out when it applies, else -1. */
static int num_of_val(Value v, double *x)
{
    if (!val_is_number(v)) return 0;
    *x = val_as_double(v);
    return 1;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int sum_seqmap(Ctx *cx, const RaspSop *s, int *sum_out, int32_t **tab_out)
{
    LowerProgram *lp = cx->lp;
    const LowerNode *na = &lp->nodes[s->a], *nb = &lp->nodes[s->b];
    int n1 = na->nvals, n2 = nb->nvals;
    if (n1 < 2 || n2 < 2 || (int64_t)n1 * n2 > 1 << 22 || !na->vals || !nb->vals) return -1;
    double *xa = xmalloc(sizeof(double) * (size_t)n1), *xb = xmalloc(sizeof(double) * (size_t)n2);
    int ok = 1;
    for (int i = 0; i < n1 && ok; i++) ok = num_of_val(na->vals[i], &xa[i]);
    for (int j = 0; j < n2 && ok; j++) ok = num_of_val(nb->vals[j], &xb[j]);
    int best_units = -1;
    double *sv = ok ? xmalloc(sizeof(double) * (size_t)n1 * (size_t)n2) : NULL;
    for (int k = 1; k >= -1 && ok; k -= 2) {
        size_t n = 0;
        for (int i = 0; i < n1; i++)
            for (int j = 0; j < n2; j++) sv[n++] = xa[i] + k * xb[j];
        qsort(sv, n, sizeof *sv, cmp_dbl);
        size_t m = 0;      /* distinct sums, merged within 1e-9 relative as value sets are */
        for (size_t e = 0; e < n; e++)
            if (m == 0 || sv[e] - sv[m - 1] > 1e-9 * fmax(1.0, fabs(sv[e]))) sv[m++] = sv[e];
        int32_t *tab = xmalloc(sizeof(int32_t) * m);
        uint8_t *set = xcalloc(m, 1);
        int consistent = 1;
        for (int i = 0; i < n1 && consistent; i++)
            for (int j = 0; j < n2 && consistent; j++) {
                double v = xa[i] + k * xb[j];
                size_t lo = 0, hi = m;        /* nearest distinct sum */
                while (hi - lo > 1) {
                    size_t mid = (lo + hi) / 2;
                    if (sv[mid] <= v) lo = mid;
                    else hi = mid;
                }
                if (lo + 1 < m && fabs(sv[lo + 1] - v) < fabs(sv[lo] - v)) lo++;
                int32_t z = s->table[(int64_t)i * n2 + j];
                if (!set[lo]) {
                    set[lo] = 1;
                    tab[lo] = z;
                } else if (tab[lo] != z) {
                    consistent = 0;
                }
            }
        int units = 1;
        for (size_t e = 1; consistent && e < m; e++) units += 2 * (tab[e] != tab[e - 1]);
        if (consistent && (best_units < 0 || units < best_units)) {
            /* the sum as an internal numerical node, read in place */
            int t = add_node(lp, &cx->node_cap);
            LowerNode *nn = &lp->nodes[t];
            char lab[512];
            snprintf(lab, sizeof lab, "%s@sum", s->label);
            nn->label = arena_strdup(&lp->arena, lab);
            nn->enc = ENC_NUMERICAL;
            nn->nvals = (int)m;
            Value *vals = arena_alloc(&lp->arena, sizeof(Value) * m);
            for (size_t e = 0; e < m; e++) vals[e] = val_float(sv[e]);
            nn->vals = vals;
            nn->rep = LREP_VIRTUAL;
            nn->virt = LVIRT_LIN;
            nn->nlin = 2;
            nn->lin_node[0] = s->a;
            nn->lin_node[1] = s->b;
            nn->lin_coef[0] = 1;
            nn->lin_coef[1] = k;
            nn->uses = 1;
            if (best_units >= 0) lp->nodes[*sum_out].rep = LREP_UNUSED;   /* the other sign lost */
            free(best_units >= 0 ? *tab_out : NULL);
            *sum_out = t;
            *tab_out = tab;
            best_units = units;
            tab = NULL;
        }
        free(tab);
        free(set);
    }
    free(sv);
    free(xa);
    free(xb);
    return best_units;
}

static void lower_seqmap(Ctx *cx, const RaspSop *s)
{
    LowerProgram *lp = cx->lp;
    int id = s->id;
    int ops[2] = {s->a, s->b};
    int base[2];
    const int32_t *tab[2];
    int ok[2];
    for (int k = 0; k < 2; k++) ok[k] = lower_catview(lp, ops[k], &base[k], &tab[k]);
    int nbv = lp->nodes[s->b].nvals;

    if (ok[0] && ok[1] &&
        (base[0] == base[1] || base[0] == BASE_CONST || base[1] == BASE_CONST)) {
        /* a function of one base (or of none: a constant) */
        int b = base[0] == BASE_CONST ? base[1] : base[0];
        int nb = base_nvals(lp, b);
        int32_t *ft = arena_alloc(&lp->arena, sizeof(int32_t) * (size_t)nb);
        for (int v = 0; v < nb; v++) {
            int32_t x[2];
            for (int k = 0; k < 2; k++)
                x[k] = base[k] == BASE_CONST ? lp->nodes[ops[k]].ftab[0] : through(tab[k], v);
            ft[v] = (x[0] < 0 || x[1] < 0) ? RASP_NONE : s->table[(int64_t)x[0] * nbv + x[1]];
        }
        set_catfn(cx, id, b, ft);
        make_virtual_or_mat(cx, id);
        return;
    }
    if (s->linear && numview(lp, s->a) && numview(lp, s->b)) {
        LowerNode *n = &lp->nodes[id];
        n->virt = LVIRT_LIN;
        n->nlin = 2;
        n->lin_node[0] = s->a;
        n->lin_node[1] = s->b;
        n->lin_coef[0] = s->lin_a;
        n->lin_coef[1] = s->lin_b;
        make_virtual_or_mat(cx, id);
        return;
    }
    for (int k = 0; k < 2; k++)
        if (!ok[k]) {
            fail(cx, "cannot compile sequence_map '%s': its operand '%s' is numerical and not a "
                 "function of one categorical s-op (only linear combinations of numerical s-ops "
                 "compile)", s->label, lp->nodes[ops[k]].label);
            return;
        }

    /* A categorical MLP over the operands' bases; a single-use categorical MLP output among
     * the operands is folded in (n-ary MLP) when that needs no more units. */
    Operands plain, folded;
    memset(&plain, 0, sizeof plain);
    for (int k = 0; k < 2; k++) {
        plain.kind[k] = 0;
        plain.vtab[k] = tab[k];
        plain.ctab[k] = base[k] == BASE_CONST ? lp->nodes[ops[k]].ftab : NULL;
        plain.vbase[k] = base[k] == BASE_CONST ? -1 : add_input(&plain, base[k]);
    }
    folded = plain;
    int can_fold = 0;
    if (lp->opt.fuse) {
        memset(&folded, 0, sizeof folded);
        for (int k = 0; k < 2; k++) {
            const LowerNode *na = &lp->nodes[ops[k]];
            const LowerOp *aop = na->rep == LREP_MAT ? &lp->ops[na->op] : NULL;
            if (aop && aop->kind == LOP_MLP_CAT && aop->out == ops[k] && na->uses == 1 &&
                ops[k] != cx->p->output && na->sop >= 0 && ops[0] != ops[1] && aop->nin > 0) {
                folded.kind[k] = 1;
                folded.fop[k] = aop;
                for (int i = 0; i < aop->nin; i++) folded.fin[k][i] = add_input(&folded, aop->in[i]);
                can_fold = 1;
            } else {
                folded.kind[k] = 0;
                folded.vtab[k] = tab[k];
                folded.ctab[k] = base[k] == BASE_CONST ? lp->nodes[ops[k]].ftab : NULL;
                folded.vbase[k] = base[k] == BASE_CONST ? -1 : add_input(&folded, base[k]);
            }
        }
        if (folded.nin > 60) can_fold = 0;
    }

    const Operands *use = &plain;
    int32_t *tables[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    int units[2] = {-1, -1};
    for (int variant = 0; variant < (can_fold ? 2 : 1); variant++) {
        const Operands *o = variant ? &folded : &plain;
        int64_t total = 1;
        for (int i = 0; i < o->nin; i++) {
            total *= lp->nodes[o->in[i]].nvals;
            if (total > RASP_MAX_TABLE) break;
        }
        if (total > RASP_MAX_TABLE) continue;
        int32_t *t = xmalloc(sizeof(int32_t) * (size_t)(total > 0 ? total : 1));
        int vals[64] = {0};
        for (int64_t e = 0; e < total; e++) {
            int64_t r = e;
            for (int i = o->nin - 1; i >= 0; i--) {
                int nv = lp->nodes[o->in[i]].nvals;
                vals[i] = (int)(r % nv);
                r /= nv;
            }
            int32_t x0 = operand_value(lp, o, 0, vals), x1 = operand_value(lp, o, 1, vals);
            t[e] = (x0 < 0 || x1 < 0) ? RASP_NONE : s->table[(int64_t)x0 * nbv + x1];
        }
        tables[variant] = t;
        lens[variant] = (size_t)total;
        units[variant] = cat_units(lp, o->nin, o->in, t, id);
    }
    /* A discretiser over x + k*y when the table allows it and it makes the MLP at least 8
     * times narrower: each of its units reads the whole linear form (about |X| + |Y|
     * weights), so for small value sets the pairwise MLP has fewer nonzero weights. */
    int sum_node = -1;
    int32_t *sum_tab = NULL;
    int sum_units = sum_seqmap(cx, s, &sum_node, &sum_tab);
    if (sum_units >= 0) {
        int best = units[0];
        if (can_fold && units[1] >= 0 && units[1] < best) best = units[1];
        if (best < 0 || (int64_t)sum_units * 8 <= best) {
            new_mlp(cx, LOP_MLP_DISC, id, 1, &sum_node, sum_tab, (size_t)lp->nodes[sum_node].nvals, -1);
            free(sum_tab);
            free(tables[0]);
            free(tables[1]);
            return;
        }
        lp->nodes[sum_node].rep = LREP_UNUSED;
        free(sum_tab);
    }
    int choose = 0;
    if (can_fold && tables[1] && units[1] >= 0) {
        /* folding removes a sub-layer; take it unless it makes the MLP wider than the two
         * MLPs it replaces together */
        int sep = units[0];
        for (int k = 0; k < 2; k++)
            if (folded.kind[k] == 1) sep += cat_units(lp, folded.fop[k]->nin, folded.fop[k]->in,
                                                      folded.fop[k]->table, folded.fop[k]->out);
        if (units[1] <= sep) choose = 1;
    }
    if (!tables[choose]) {
        fail(cx, "cannot compile sequence_map '%s': the table over its inputs would have more than "
             "%d entries", s->label, RASP_MAX_TABLE);
        free(tables[0]);
        free(tables[1]);
        return;
    }
    use = choose ? &folded : &plain;
    if (choose) {
        /* the folded op's node vanishes; reuse its op */
        for (int k = 0; k < 2; k++) {
            if (folded.kind[k] != 1) continue;
            int a = ops[k];
            LowerNode *na = &lp->nodes[a];
            LowerOp *aop = &lp->ops[na->op];
            na->rep = LREP_FUSED;
            aop->out = -1;   /* dead; its fused list moves to the new op below */
        }
    }
    int o = new_mlp(cx, LOP_MLP_CAT, id, use->nin, use->in, tables[choose], lens[choose], -1);
    if (choose) {
        for (int k = 0; k < 2; k++) {
            if (folded.kind[k] != 1) continue;
            LowerNode *na = &lp->nodes[ops[k]];
            LowerOp *aop = &lp->ops[na->op];
            for (int f = 0; f < aop->nfused; f++) add_fused(lp, &lp->ops[o], aop->fused[f]);
            add_fused(lp, &lp->ops[o], na->sop);
            na->op = o;
        }
    }
    free(tables[0]);
    free(tables[1]);
}

/* ---- selectors ------------------------------------------------------------------------ */

/* Evaluate selector `id` given each leaf's key and query value index (by selector id);
 * returns the selection, *valid = every leaf under id has both values (interp.c's rule). */
static int eval_sel(const RaspProgram *p, int id, const int32_t *kval, const int32_t *qval, int *valid)
{
    const RaspSel *l = &p->sels[id];
    int va, vb, a, b;
    switch (l->op) {
    case SEL_SELECT:
        *valid = kval[id] >= 0 && qval[id] >= 0;
        if (!*valid) return 0;
        return l->pred[(int64_t)kval[id] * p->sops[l->queries].nvals + qval[id]] != 0;
    case SEL_AND:
        a = eval_sel(p, l->a, kval, qval, &va);
        b = eval_sel(p, l->b, kval, qval, &vb);
        *valid = va && vb;
        return a && b;
    case SEL_OR:
        a = eval_sel(p, l->a, kval, qval, &va);
        b = eval_sel(p, l->b, kval, qval, &vb);
        *valid = va && vb;
        return (a || b) && va && vb;
    case SEL_NOT:
        a = eval_sel(p, l->a, kval, qval, &va);
        *valid = va;
        return !a && va;
    }
    *valid = 0;
    return 0;
}

static void collect_leaves(const RaspProgram *p, int id, int *out, int *n)
{
    const RaspSel *l = &p->sels[id];
    if (l->op == SEL_SELECT) {
        for (int i = 0; i < *n; i++)
            if (out[i] == id) return;
        out[(*n)++] = id;
        return;
    }
    collect_leaves(p, l->a, out, n);
    if (l->op != SEL_NOT) collect_leaves(p, l->b, out, n);
}

static void flatten_and(const RaspProgram *p, int id, int *out, int *n)
{
    const RaspSel *l = &p->sels[id];
    if (l->op == SEL_AND) {
        flatten_and(p, l->a, out, n);
        flatten_and(p, l->b, out, n);
        return;
    }
    for (int i = 0; i < *n; i++)
        if (out[i] == id) return;     /* x and x: one conjunct */
    out[(*n)++] = id;
}

/* One side (keys or queries) of a conjunct: the distinct s-ops its leaves read there, their
 * distinct bases, and the node the literal will read. */
typedef struct {
    int nsops;
    int sops[64];
    int bases[64];          /* per s-op: its catview base (BASE_CONST allowed) */
    const int32_t *tabs[64];
    int nb;
    int ubase[64];          /* distinct non-constant bases */
} Side;

static int side_add(Ctx *cx, Side *sd, int sop, const char *what, const char *sel_label)
{
    for (int i = 0; i < sd->nsops; i++)
        if (sd->sops[i] == sop) return 0;
    if (sd->nsops >= 60) {
        fail(cx, "cannot compile selector '%s': too many %s", sel_label, what);
        return -1;
    }
    int b;
    const int32_t *t;
    if (!lower_catview(cx->lp, sop, &b, &t)) {
        fail(cx, "cannot compile selector '%s': its %s '%s' has no categorical representation",
             sel_label, what, cx->lp->nodes[sop].label);
        return -1;
    }
    sd->sops[sd->nsops] = sop;
    sd->bases[sd->nsops] = b;
    sd->tabs[sd->nsops] = t;
    sd->nsops++;
    if (b != BASE_CONST) {
        int seen = 0;
        for (int i = 0; i < sd->nb; i++) seen |= sd->ubase[i] == b;
        if (!seen) sd->ubase[sd->nb++] = b;
    }
    return 0;
}

/* Values of every s-op of a side from a combination of its bases' values (vals[i] for
 * ubase[i]). */
static void side_values(const Side *sd, const int *vals, int32_t *sopval)
{
    for (int i = 0; i < sd->nsops; i++) {
        if (sd->bases[i] == BASE_CONST) {
            sopval[i] = sd->tabs[i] ? sd->tabs[i][0] : 0;
            continue;
        }
        int j = 0;
        while (sd->ubase[j] != sd->bases[i]) j++;
        sopval[i] = through(sd->tabs[i], vals[j]);
    }
}

static int64_t side_combos(const LowerProgram *lp, const Side *sd)
{
    int64_t t = 1;
    for (int i = 0; i < sd->nb; i++) {
        t *= lp->nodes[sd->ubase[i]].nvals;
        if (t > RASP_MAX_TABLE) return -1;
    }
    return t;
}

static void combo_vals(const LowerProgram *lp, const Side *sd, int64_t e, int *vals)
{
    for (int i = sd->nb - 1; i >= 0; i--) {
        int nv = lp->nodes[sd->ubase[i]].nvals;
        vals[i] = (int)(e % nv);
        e /= nv;
    }
}

/* An internal categorical node for the classes of one side of a non-additive conjunct,
 * written by an MLP over the side's bases. */
static int tuple_node(Ctx *cx, const Side *sd, int nclass, const int32_t *cls, int64_t ncombo,
                      const char *label)
{
    LowerProgram *lp = cx->lp;
    /* a selector read by several ops (a width and an aggregate) is lowered once per op; its
     * tuple node is the same each time (same selector, same classes), so the later ops share
     * the first one instead of adding a second node under the same label */
    for (int i = 0; i < lp->nnodes; i++)
        if (lp->nodes[i].label && !strcmp(lp->nodes[i].label, label)) {
            lp->nodes[i].uses++;
            return i;
        }
    int t = add_node(lp, &cx->node_cap);
    LowerNode *n = &lp->nodes[t];
    n->label = arena_strdup(&lp->arena, label);
    n->enc = ENC_CATEGORICAL;
    n->nvals = nclass;
    n->uses = 1;
    new_mlp(cx, LOP_MLP_CAT, t, sd->nb, sd->ubase, cls, (size_t)ncombo, -1);
    return t;
}

static int lower_selector(Ctx *cx, int sel, LowerOp *opout)
{
    LowerProgram *lp = cx->lp;
    const RaspProgram *p = cx->p;
    const char *slabel = p->sels[sel].label;
    int conj[256], nconj = 0;
    /* flatten_and keeps distinct conjuncts: at most one per selector */
    int *cbuf = p->nsels > 256 ? xmalloc(sizeof(int) * (size_t)p->nsels) : conj;
    flatten_and(p, sel, cbuf, &nconj);
    int32_t *kval = xmalloc(sizeof(int32_t) * (size_t)p->nsels);
    int32_t *qval = xmalloc(sizeof(int32_t) * (size_t)p->nsels);
    int *leaves = xmalloc(sizeof(int) * (size_t)p->nsels);
    LowerLit *lits = arena_alloc(&lp->arena, sizeof(LowerLit) * (size_t)nconj);
    int nlits = 0;
    int rc = 0;
    for (int c = 0; c < nconj && !rc; c++) {
        int nl = 0;
        collect_leaves(p, cbuf[c], leaves, &nl);
        Side ks, qs;
        memset(&ks, 0, sizeof ks);
        memset(&qs, 0, sizeof qs);
        for (int i = 0; i < nl && !rc; i++) {
            const RaspSel *l = &p->sels[leaves[i]];
            if (side_add(cx, &ks, l->keys, "keys", slabel) || side_add(cx, &qs, l->queries, "queries", slabel))
                rc = -1;
        }
        if (rc) break;
        LowerLit lit;
        memset(&lit, 0, sizeof lit);
        if (ks.nsops == 1 && qs.nsops == 1) {
            /* one pair: the table over the two s-ops' values */
            int kn = ks.sops[0], qn = qs.sops[0];
            int nk = lp->nodes[kn].nvals, nq = lp->nodes[qn].nvals;
            lit.knode = kn;
            lit.qnode = qn;
            lit.table = arena_alloc(&lp->arena, (size_t)nk * (size_t)nq);
            for (int k = 0; k < nk; k++)
                for (int q = 0; q < nq; q++) {
                    for (int i = 0; i < nl; i++) {
                        kval[leaves[i]] = k;
                        qval[leaves[i]] = q;
                    }
                    int v;
                    lit.table[(int64_t)k * nq + q] = (uint8_t)eval_sel(p, cbuf[c], kval, qval, &v);
                }
        } else {
            /* several s-ops on a side: the literal reads the side's base (one base) or a
             * tuple of its bases made by an MLP, reduced to classes of equal rows/columns */
            int64_t nkc = side_combos(lp, &ks), nqc = side_combos(lp, &qs);
            if (nkc < 0 || nqc < 0 || nkc * nqc > RASP_MAX_TABLE) {
                fail(cx, "cannot compile selector '%s': the combined table of its keys and queries "
                     "would have more than %d entries", slabel, RASP_MAX_TABLE);
                rc = -1;
                break;
            }
            uint8_t *full = xcalloc((size_t)(nkc * nqc > 0 ? nkc * nqc : 1), 1);
            int kv[64], qv[64];
            int32_t ksv[64], qsv[64];
            for (int64_t ke = 0; ke < nkc; ke++) {
                combo_vals(lp, &ks, ke, kv);
                side_values(&ks, kv, ksv);
                for (int64_t qe = 0; qe < nqc; qe++) {
                    combo_vals(lp, &qs, qe, qv);
                    side_values(&qs, qv, qsv);
                    for (int i = 0; i < nl; i++) {
                        const RaspSel *l = &p->sels[leaves[i]];
                        int ki = 0, qi = 0;
                        while (ks.sops[ki] != l->keys) ki++;
                        while (qs.sops[qi] != l->queries) qi++;
                        kval[leaves[i]] = ksv[ki];
                        qval[leaves[i]] = qsv[qi];
                    }
                    int v;
                    full[ke * nqc + qe] = (uint8_t)eval_sel(p, cbuf[c], kval, qval, &v);
                }
            }
            /* classes: rows (key combos) with equal selection patterns; all-zero rows get
             * no class (never selected, like no value) */
            int32_t *kcls = xmalloc(sizeof(int32_t) * (size_t)(nkc > 0 ? nkc : 1));
            int32_t *qcls = xmalloc(sizeof(int32_t) * (size_t)(nqc > 0 ? nqc : 1));
            int64_t *krep = xmalloc(sizeof(int64_t) * (size_t)(nkc > 0 ? nkc : 1));
            int64_t *qrep = xmalloc(sizeof(int64_t) * (size_t)(nqc > 0 ? nqc : 1));
            int nkcl = 0, nqcl = 0;
            for (int64_t ke = 0; ke < nkc; ke++) {
                int any = 0;
                for (int64_t qe = 0; qe < nqc && !any; qe++) any = full[ke * nqc + qe];
                kcls[ke] = RASP_NONE;
                if (!any) continue;
                for (int r = 0; r < nkcl && kcls[ke] < 0; r++)
                    if (!memcmp(full + ke * nqc, full + krep[r] * nqc, (size_t)nqc)) kcls[ke] = r;
                if (kcls[ke] < 0) {
                    krep[nkcl] = ke;
                    kcls[ke] = nkcl++;
                }
            }
            for (int64_t qe = 0; qe < nqc; qe++) {
                int any = 0;
                for (int64_t ke = 0; ke < nkc && !any; ke++) any = full[ke * nqc + qe];
                qcls[qe] = RASP_NONE;
                if (!any) continue;
                for (int r = 0; r < nqcl && qcls[qe] < 0; r++) {
                    int same = 1;
                    for (int64_t ke = 0; ke < nkc && same; ke++)
                        same = full[ke * nqc + qe] == full[ke * nqc + qrep[r]];
                    if (same) qcls[qe] = r;
                }
                if (qcls[qe] < 0) {
                    qrep[nqcl] = qe;
                    qcls[qe] = nqcl++;
                }
            }
            /* the node each side reads: a tuple node over several bases, the single base,
             * or (a side of constants only) one of its constant s-ops */
            char lab[512];
            int ktuple = ks.nb > 1, qtuple = qs.nb > 1;
            if (ktuple) {
                if (nconj == 1) snprintf(lab, sizeof lab, "%s@keys", slabel);
                else snprintf(lab, sizeof lab, "%s@keys.%d", slabel, c);
                lit.knode = tuple_node(cx, &ks, nkcl, kcls, nkc, lab);
            } else {
                lit.knode = ks.nb ? ks.ubase[0] : ks.sops[0];
            }
            if (qtuple) {
                if (nconj == 1) snprintf(lab, sizeof lab, "%s@queries", slabel);
                else snprintf(lab, sizeof lab, "%s@queries.%d", slabel, c);
                lit.qnode = tuple_node(cx, &qs, nqcl, qcls, nqc, lab);
            } else {
                lit.qnode = qs.nb ? qs.ubase[0] : qs.sops[0];
            }
            int nk = lp->nodes[lit.knode].nvals, nq = lp->nodes[lit.qnode].nvals;
            lit.table = arena_alloc(&lp->arena, (size_t)nk * (size_t)nq);
            for (int64_t ke = 0; ke < nkc; ke++)
                for (int64_t qe = 0; qe < nqc; qe++) {
                    int64_t kk = ktuple ? kcls[ke] : ke, qq = qtuple ? qcls[qe] : qe;
                    if (kk < 0 || qq < 0 || kk >= nk || qq >= nq) continue;
                    lit.table[kk * nq + qq] = full[ke * nqc + qe];
                }
            free(full);
            free(kcls);
            free(qcls);
            free(krep);
            free(qrep);
        }
        /* merge with an earlier literal over the same pair (AND of the tables) */
        int merged = 0;
        for (int i = 0; i < nlits && !merged; i++) {
            if (lits[i].knode != lit.knode || lits[i].qnode != lit.qnode) continue;
            size_t n = (size_t)lp->nodes[lit.knode].nvals * (size_t)lp->nodes[lit.qnode].nvals;
            for (size_t e = 0; e < n; e++) lits[i].table[e] &= lit.table[e];
            merged = 1;
        }
        if (!merged) lits[nlits++] = lit;
    }
    if (cbuf != conj) free(cbuf);
    free(kval);
    free(qval);
    free(leaves);
    if (rc) return -1;
    opout->nlits = nlits;
    opout->lits = lits;
    return 0;
}

static int lits_ready(const LowerProgram *lp, const LowerOp *op)
{
    int r = -1;
    for (int i = 0; i < op->nlits; i++) {
        int a = node_ready(lp, op->lits[i].knode), b = node_ready(lp, op->lits[i].qnode);
        if (a > r) r = a;
        if (b > r) r = b;
    }
    return r;
}

static void lower_head(Ctx *cx, const RaspSop *s)
{
    LowerProgram *lp = cx->lp;
    LowerOp tmp;
    memset(&tmp, 0, sizeof tmp);
    if (lower_selector(cx, s->sel, &tmp)) return;
    if (s->op == SOP_AGGREGATE) {
        int b;
        const int32_t *t;
        if (s->enc == ENC_CATEGORICAL && !lower_catview(lp, s->a, &b, &t)) {
            fail(cx, "cannot compile aggregate '%s': a categorical aggregate of '%s', which has no "
                 "categorical representation", s->label, lp->nodes[s->a].label);
            return;
        }
        if (s->enc == ENC_NUMERICAL && !numview(lp, s->a)) {
            fail(cx, "cannot compile aggregate '%s': '%s' has no numerical representation",
                 s->label, lp->nodes[s->a].label);
            return;
        }
    }
    int o = add_op(lp, &cx->op_cap, s->op == SOP_AGGREGATE ? LOP_AGG : LOP_SELWIDTH, s->id);
    LowerOp *op = &lp->ops[o];
    op->sel = s->sel;
    op->nlits = tmp.nlits;
    op->lits = tmp.lits;
    int r = lits_ready(lp, op);
    if (s->op == SOP_AGGREGATE) {
        op->value = s->a;
        int rv = node_ready(lp, s->a);
        if (rv > r) r = rv;
    }
    op->attn_slot = next_slot(r, 0);
    if (s->op == SOP_SELWIDTH) {
        op->mlp_slot = op->attn_slot + 1;
        set_mat(cx, s->id, o, op->mlp_slot);
    } else {
        set_mat(cx, s->id, o, op->attn_slot);
    }
}

/* ---- uses ---------------------------------------------------------------------------- */

static void count_sel_uses(const RaspProgram *p, LowerNode *nodes, int sel, int *buf)
{
    int n = 0;
    collect_leaves(p, sel, buf, &n);
    for (int i = 0; i < n; i++) {
        nodes[p->sels[buf[i]].keys].uses++;
        nodes[p->sels[buf[i]].queries].uses++;
    }
}

LowerProgram *lower_program(const RaspProgram *p, const LowerOptions *opt, StrBuf *err)
{
    LowerProgram *lp = xcalloc(1, sizeof *lp);
    arena_init(&lp->arena);
    lp->p = p;
    lp->opt = opt ? *opt : LOWER_OPTIONS_DEFAULT;
    lp->output = p->output;
    Ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.lp = lp;
    cx.p = p;
    cx.err = err;

    for (int i = 0; i < p->nsops; i++) {
        int id = add_node(lp, &cx.node_cap);
        const RaspSop *s = &p->sops[i];
        LowerNode *n = &lp->nodes[id];
        n->label = s->label;
        n->enc = s->enc;
        n->nvals = s->nvals;
        n->vals = s->vals;
        n->sop = i;
        n->named = s->named;
        n->may_none = s->may_none;
    }
    /* which s-ops are needed, and how often each is read */
    char *need = xcalloc((size_t)(p->nsops > 0 ? p->nsops : 1), 1);
    if (p->output >= 0 && p->output < p->nsops) need[p->output] = 1;
    for (int i = p->nsops - 1; i >= 0; i--) {
        const RaspSop *s = &p->sops[i];
        if (!need[i]) continue;
        if (s->op == SOP_MAP || s->op == SOP_SEQMAP || s->op == SOP_AGGREGATE) need[s->a] = 1;
        if (s->op == SOP_SEQMAP) need[s->b] = 1;
        if (s->op == SOP_AGGREGATE || s->op == SOP_SELWIDTH) {
            int *buf = xmalloc(sizeof(int) * (size_t)(p->nsels > 0 ? p->nsels : 1));
            int n = 0;
            collect_leaves(p, s->sel, buf, &n);
            for (int k = 0; k < n; k++) {
                need[p->sels[buf[k]].keys] = 1;
                need[p->sels[buf[k]].queries] = 1;
            }
            free(buf);
        }
    }
    int *buf = xmalloc(sizeof(int) * (size_t)(p->nsels > 0 ? p->nsels : 1));
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        if (!need[i]) continue;
        if (s->op == SOP_MAP || s->op == SOP_SEQMAP || s->op == SOP_AGGREGATE) lp->nodes[s->a].uses++;
        if (s->op == SOP_SEQMAP) lp->nodes[s->b].uses++;
        if (s->op == SOP_AGGREGATE || s->op == SOP_SELWIDTH) count_sel_uses(p, lp->nodes, s->sel, buf);
    }
    free(buf);
    if (p->output >= 0) lp->nodes[p->output].uses++;

    for (int i = 0; i < p->nsops && !cx.fail; i++) {
        const RaspSop *s = &p->sops[i];
        if (!need[i]) continue;
        switch (s->op) {
        case SOP_TOKENS:
        case SOP_INDICES:
            lp->nodes[i].rep = LREP_EMBED;
            break;
        case SOP_CONST: {
            int32_t *ft = arena_alloc(&lp->arena, sizeof(int32_t));
            ft[0] = 0;
            set_catfn(&cx, i, BASE_CONST, ft);
            lp->nodes[i].rep = LREP_VIRTUAL;
            if (want_mat(&cx, i)) materialise(&cx, i);
            break;
        }
        case SOP_MAP:
            lower_map(&cx, s);
            break;
        case SOP_SEQMAP:
            lower_seqmap(&cx, s);
            break;
        case SOP_AGGREGATE:
        case SOP_SELWIDTH:
            lower_head(&cx, s);
            break;
        }
    }
    free(need);
    if (cx.fail) {
        lower_free(lp);
        return NULL;
    }
    /* drop ops whose output was folded away, keeping the order */
    int k = 0;
    int *remap = xmalloc(sizeof(int) * (size_t)(lp->nops > 0 ? lp->nops : 1));
    for (int i = 0; i < lp->nops; i++) {
        remap[i] = -1;
        if (lp->ops[i].out < 0) continue;
        remap[i] = k;
        lp->ops[k++] = lp->ops[i];
    }
    lp->nops = k;
    for (int i = 0; i < lp->nnodes; i++)
        if (lp->nodes[i].op >= 0) lp->nodes[i].op = remap[lp->nodes[i].op];
    free(remap);
    int maxslot = -1;
    for (int i = 0; i < lp->nops; i++) {
        if (lp->ops[i].attn_slot > maxslot) maxslot = lp->ops[i].attn_slot;
        if (lp->ops[i].mlp_slot > maxslot) maxslot = lp->ops[i].mlp_slot;
    }
    lp->nblocks = maxslot < 0 ? 0 : maxslot / 2 + 1;
    return lp;
}

void lower_free(LowerProgram *lp)
{
    if (!lp) return;
    arena_free(&lp->arena);
    free(lp->nodes);
    free(lp->ops);
    free(lp);
}
