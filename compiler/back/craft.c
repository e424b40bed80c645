/* craft.c — see craft.h. The constructions, in the order of docs/compiler.md:
 *   heads: an AND of literals as one bilinear score table, factored through the smaller of
 *          its distinct rows and distinct columns; BOS as the "nothing selected" key;
 *   selector width: the same head with BOS scoring like a selected key, then a decoder;
 *   discretising MLP: two ReLUs per change of the function, ramps a quarter gap away from
 *          every input value, oriented so that the units far from their ramp are off;
 *   categorical MLP: one unit per class combination and distinct output, firing at exactly
 *          1 and otherwise at <= -1 (so small input noise is cut off);
 *   linear MLP: ReLU(x) and ReLU(-x), only the signs the value set has. */
#include "compiler/back/craft.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_CONST (-2)
#define F32_EPS (1.0 / 16777216.0)  /* 2^-24, float32's unit roundoff */
#define C_MAX 160.0                 /* largest sharpness: exp(-80) is still a normal float */
#define BOS_LEAD 40.0               /* the BOS query's own key leads every other by this */

typedef struct {
    const LowerProgram *lp;
    const CraftLayout *lay;
    const CraftPolicy *pol;
    CraftResult *res;
    double *tmp;            /* [D] scratch for building features */
    StrBuf *err;
} Cx;

/* ---- features --------------------------------------------------------------------------- */

static void feat_real(const CraftLayout *lay, double coef, double *f)
{
    /* 1 at every real position, 0 at BOS (and at PAD, which nothing reads) */
    f[lay->one] += coef;
    f[lay->bos] -= coef;
}

void craft_feat_cat(const LowerProgram *lp, const CraftLayout *lay, int node, int j, double coef,
                    double *f)
{
    if (node == BASE_CONST) {
        if (j == 0) feat_real(lay, coef, f);
        return;
    }
    const LowerNode *n = &lp->nodes[node];
    if (n->rep == LREP_EMBED || n->rep == LREP_MAT) {
        if (n->enc == ENC_CATEGORICAL && lay->node_dim[node] >= 0 && j >= 0 && j < n->nvals)
            f[lay->node_dim[node] + j] += coef;
        return;
    }
    if (n->rep == LREP_VIRTUAL && n->virt == LVIRT_CATFN) {
        if (n->base == BASE_CONST) {
            if (n->ftab[0] == j) feat_real(lay, coef, f);
            return;
        }
        int nb = lp->nodes[n->base].nvals;
        for (int v = 0; v < nb; v++)
            if (n->ftab[v] == j) craft_feat_cat(lp, lay, n->base, v, coef, f);
    }
}

/* The numerical form of a node from its virtual definition (also for a MAT node that was
 * materialised from one). */
static void feat_form_num(const LowerProgram *lp, const CraftLayout *lay, int node, double coef,
                          double *f)
{
    const LowerNode *n = &lp->nodes[node];
    if (n->virt == LVIRT_LIN) {
        for (int i = 0; i < n->nlin; i++)
            craft_feat_num(lp, lay, n->lin_node[i], coef * n->lin_coef[i], f);
        return;
    }
    if (n->virt == LVIRT_CATFN) {
        int nb = n->base == BASE_CONST ? 1 : lp->nodes[n->base].nvals;
        for (int v = 0; v < nb; v++) {
            int32_t j = n->ftab[v];
            double x = j >= 0 ? lower_num(n, j) : 0.0;
            if (x == 0.0) continue;
            if (n->base == BASE_CONST) feat_real(lay, coef * x, f);
            else craft_feat_cat(lp, lay, n->base, v, coef * x, f);
        }
    }
}

void craft_feat_num(const LowerProgram *lp, const CraftLayout *lay, int node, double coef, double *f)
{
    const LowerNode *n = &lp->nodes[node];
    if (n->rep == LREP_MAT && n->enc == ENC_NUMERICAL) {
        if (lay->node_dim[node] >= 0) f[lay->node_dim[node]] += coef;
        return;
    }
    if (n->rep == LREP_VIRTUAL) {
        feat_form_num(lp, lay, node, coef, f);
        return;
    }
    if (n->rep == LREP_EMBED || n->rep == LREP_MAT) {
        for (int j = 0; j < n->nvals; j++) {
            double x = lower_num(n, j);
            if (x != 0.0) craft_feat_cat(lp, lay, node, j, coef * x, f);
        }
    }
}

/* A sparse copy of a feature (most features touch a handful of dimensions). */
typedef struct {
    int n;
    int *dim;
    double *v;
} SFeat;

static void sfeat_from(SFeat *s, double *dense, int D)
{
    int n = 0;
    for (int i = 0; i < D; i++) n += dense[i] != 0.0;
    s->n = n;
    s->dim = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    s->v = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    n = 0;
    for (int i = 0; i < D; i++)
        if (dense[i] != 0.0) {
            s->dim[n] = i;
            s->v[n++] = dense[i];
            dense[i] = 0.0;     /* leave the scratch zeroed for the next feature */
        }
}

static void sfeat_free(SFeat *s)
{
    free(s->dim);
    free(s->v);
}

/* column col of a row-major [D][ncols] matrix += coef * s */
static void add_col(double *w, int ncols, int col, const SFeat *s, double coef)
{
    for (int i = 0; i < s->n; i++) w[(size_t)s->dim[i] * ncols + col] += coef * s->v[i];
}

/* ---- error bounds ------------------------------------------------------------------------ */

static double ecat(const Cx *cx, int node)
{
    if (node == BASE_CONST) return 0.0;
    const LowerNode *n = &cx->lp->nodes[node];
    if (n->rep == LREP_MAT) return cx->res->err[node];
    if (n->rep == LREP_VIRTUAL && n->virt == LVIRT_CATFN) return ecat(cx, n->base);
    return 0.0;
}

static double maxabs_num(const LowerNode *n)
{
    double m = 0;
    for (int j = 0; j < n->nvals; j++) m = fmax(m, fabs(lower_num(n, j)));
    return m;
}

static double enum_(const Cx *cx, int node)
{
    const LowerNode *n = &cx->lp->nodes[node];
    if (n->rep == LREP_MAT && n->enc == ENC_NUMERICAL) return cx->res->err[node];
    if (n->rep == LREP_VIRTUAL && n->virt == LVIRT_LIN) {
        double e = 0;
        for (int i = 0; i < n->nlin; i++) e += fabs(n->lin_coef[i]) * enum_(cx, n->lin_node[i]);
        return e;
    }
    return maxabs_num(n) * ecat(cx, node);
}

/* ---- heads ------------------------------------------------------------------------------ */

typedef struct {
    int n;
    int node[256];
    int off[256];
} NodeList;

static int nl_index(NodeList *l, int node, int *total, int nvals)
{
    for (int i = 0; i < l->n; i++)
        if (l->node[i] == node) return i;
    l->node[l->n] = node;
    l->off[l->n] = *total;
    *total += nvals;
    return l->n++;
}

/* Rows of a score table grouped into classes of rows that are scalar multiples of each other
 * (scale[r] = row r / row rep[cls[r]]); all-zero rows get class -1. Merging multiples (the
 * BOS query's row and the `one` row are both multiples of "BOS key only") keeps the factored
 * head exact and one dimension smaller. */
static int row_classes(const double *a, int rows, int cols, int stride_r, int stride_c, int *cls,
                       int *rep, double *scale)
{
    uint64_t *h = xmalloc(sizeof(uint64_t) * (size_t)(rows ? rows : 1));
    double *lead = xmalloc(sizeof(double) * (size_t)(rows ? rows : 1));
    int n = 0;
    for (int r = 0; r < rows; r++) {
        uint64_t x = 1469598103934665603ULL;
        double l = 0;
        for (int c = 0; c < cols; c++) {
            double v = a[(size_t)r * stride_r + (size_t)c * stride_c];
            if (v == 0.0) continue;
            if (l == 0) l = v;
            double nv = v / l;
            /* hash the pattern of nonzeros and the rounded ratios */
            uint64_t bits = (uint64_t)(int64_t)llround(nv * 1048576.0);
            x = (x ^ (uint64_t)c) * 1099511628211ULL;
            x = (x ^ bits) * 1099511628211ULL;
        }
        h[r] = x;
        lead[r] = l;
        cls[r] = -1;
        scale[r] = 0;
        if (l == 0) continue;
        for (int k = 0; k < n && cls[r] < 0; k++) {
            int s = rep[k];
            if (h[s] != x) continue;
            int same = 1;
            for (int c = 0; c < cols && same; c++) {
                double u = a[(size_t)r * stride_r + (size_t)c * stride_c] / l;
                double w = a[(size_t)s * stride_r + (size_t)c * stride_c] / lead[s];
                same = fabs(u - w) <= 1e-12 * fmax(1.0, fabs(w));
            }
            if (same) {
                cls[r] = k;
                scale[r] = l / lead[s];
            }
        }
        if (cls[r] < 0) {
            rep[n] = r;
            scale[r] = 1.0;
            cls[r] = n++;
        }
    }
    free(h);
    free(lead);
    return n;
}

static double leak_agg(double c, double eta, int N)
{
    double l = (N + 1) * exp(-c / 2 + 2 * eta);
    return l > 1 ? 1 : l;
}

static double rho_sw(double c, double eta, int N)
{
    double r = expm1(2 * eta) + N * exp(-c + 2 * eta) + 4 * F32_EPS;
    return r > 1 ? 1 : r;
}

/* The values of a selector width as widths (x = 1/(w+1) ascending, i.e. w descending). */
typedef struct {
    int n;
    double *x;              /* ascending */
    int32_t *val;           /* value index of the width behind x[i] */
} SwValues;

static void sw_values(const LowerNode *out, int N, SwValues *sv)
{
    sv->x = xmalloc(sizeof(double) * (size_t)(N + 1));
    sv->val = xmalloc(sizeof(int32_t) * (size_t)(N + 1));
    sv->n = 0;
    for (int w = N; w >= 0; w--) {
        int idx = -1;
        for (int j = 0; j < out->nvals && idx < 0; j++)
            if (lower_num(out, j) == (double)w && val_is_number(out->vals[j])) idx = j;
        if (idx < 0) continue;      /* a width the value set rules out cannot happen */
        sv->x[sv->n] = 1.0 / (w + 1);
        sv->val[sv->n] = idx;
        sv->n++;
    }
}

static double sw_rel_margin(const SwValues *sv)
{
    double m = INFINITY;
    for (int i = 1; i < sv->n; i++) m = fmin(m, (sv->x[i] - sv->x[i - 1]) / 4 / sv->x[i]);
    return m;
}

/* How far a score can move at sharpness c: the inputs' noise nu times c, and (when there is
 * any) float32 rounding of a score over m literals plus the BOS lead. */
static double score_noise(double c, double nu, int m)
{
    return c * nu + (nu > 0 ? (c * (m + 1) + BOS_LEAD) * 4 * F32_EPS : 0);
}

static int craft_head(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    const CraftLayout *lay = cx->lay;
    const RaspProgram *p = lp->p;
    int D = lay->D, N = p->max_len;
    int sw = op->kind == LOP_SELWIDTH;
    const LowerNode *out = &lp->nodes[op->out];

    /* the score table: rows = query features, columns = key features */
    NodeList qn = {0}, kn = {0};
    int rows = 0, cols = 0;
    if (op->nlits > 250) {
        sb_printf(cx->err, "cannot compile '%s': its selector has more than 250 literals", out->label);
        return -1;
    }
    for (int i = 0; i < op->nlits; i++) {
        nl_index(&qn, op->lits[i].qnode, &rows, lp->nodes[op->lits[i].qnode].nvals);
        nl_index(&kn, op->lits[i].knode, &cols, lp->nodes[op->lits[i].knode].nvals);
    }
    int one_q = rows++, bos_q = rows++, real_k = cols++, bos_k = cols++;
    int m = op->nlits;

    /* sharpness from the inputs' noise and what the output must resolve */
    double nu = 0;
    for (int i = 0; i < m; i++) {
        double ek = ecat(cx, op->lits[i].knode), eq = ecat(cx, op->lits[i].qnode);
        nu += ek + eq + ek * eq;
    }
    const LowerNode *vn = op->value >= 0 ? &lp->nodes[op->value] : NULL;
    double vmax = 0, vlo = 0, vhi = 0, dflt = 0;
    int numerical = !sw && out->enc == ENC_NUMERICAL;
    if (numerical) {
        dflt = op->out >= 0 && lp->p->sops[out->sop].deflt >= 0 ? lower_num(out, lp->p->sops[out->sop].deflt) : 0.0;
        vlo = vhi = dflt;
        for (int j = 0; j < vn->nvals; j++) {
            double x = lower_num(vn, j);
            vlo = fmin(vlo, x);
            vhi = fmax(vhi, x);
        }
        vmax = fmax(fabs(vlo), fabs(vhi));
    }
    SwValues sv = {0};
    double tau = 1e-6, rho_target = 0;
    if (sw) {
        sw_values(out, N, &sv);
        rho_target = sv.n > 1 ? sw_rel_margin(&sv) / 16 : 1e-3;
    } else if (numerical) {
        double gmin = INFINITY;
        for (int j = 1; j < out->nvals; j++) gmin = fmin(gmin, lower_num(out, j) - lower_num(out, j - 1));
        tau = fmin(1e-6 * fmax(1, vmax), gmin / 64);
    }
    /* The smallest even c that meets the target. The noise terms are worst-case bounds that
     * grow with c; when no c meets the target with them, take the c that meets it for exact
     * inputs (what the leak needs), and let the margin report the bound. */
    double c = 0, eta = 0;
    for (int pass = 0; pass < 2 && c == 0; pass++) {
        double nup = pass ? 0 : nu;
        for (double cc = 2; cc <= C_MAX && c == 0; cc += 2) {
            double e = score_noise(cc, nup, m);
            double bound = sw ? expm1(2 * e) + N * exp(-cc + 2 * e) + 4 * F32_EPS
                              : (N + 1) * exp(-cc / 2 + 2 * e) * (2 * vmax + 1);
            if (bound <= (sw ? rho_target : tau)) c = cc;
        }
    }
    if (c == 0) c = C_MAX;
    if (cx->pol->sharpness > 0) c = cx->pol->sharpness;
    eta = score_noise(c, nu, m);
    double bos_score = sw ? c : c / 2;
    double S = fmax(c, BOS_LEAD - bos_score);

    double *A = xcalloc((size_t)rows * (size_t)cols, sizeof *A);
    for (int i = 0; i < m; i++) {
        const LowerLit *lit = &op->lits[i];
        int qi = nl_index(&qn, lit->qnode, &rows, 0), ki = nl_index(&kn, lit->knode, &cols, 0);
        int nq = lp->nodes[lit->qnode].nvals, nk = lp->nodes[lit->knode].nvals;
        for (int k = 0; k < nk; k++)
            for (int q = 0; q < nq; q++)
                if (lit->table[(size_t)k * nq + q])
                    A[(size_t)(qn.off[qi] + q) * cols + kn.off[ki] + k] += c;
    }
    A[(size_t)one_q * cols + real_k] += -c * (m - 1);
    A[(size_t)one_q * cols + bos_k] += bos_score;
    A[(size_t)bos_q * cols + bos_k] += S;

    /* features of every row and column */
    SFeat *rf = xcalloc((size_t)rows, sizeof *rf), *cf = xcalloc((size_t)cols, sizeof *cf);
    for (int i = 0; i < qn.n; i++)
        for (int j = 0; j < lp->nodes[qn.node[i]].nvals; j++) {
            craft_feat_cat(lp, lay, qn.node[i], j, 1.0, cx->tmp);
            sfeat_from(&rf[qn.off[i] + j], cx->tmp, D);
        }
    cx->tmp[lay->one] = 1;
    sfeat_from(&rf[one_q], cx->tmp, D);
    cx->tmp[lay->bos] = 1;
    sfeat_from(&rf[bos_q], cx->tmp, D);
    for (int i = 0; i < kn.n; i++)
        for (int j = 0; j < lp->nodes[kn.node[i]].nvals; j++) {
            craft_feat_cat(lp, lay, kn.node[i], j, 1.0, cx->tmp);
            sfeat_from(&cf[kn.off[i] + j], cx->tmp, D);
        }
    feat_real(lay, 1.0, cx->tmp);
    sfeat_from(&cf[real_k], cx->tmp, D);
    cx->tmp[lay->bos] = 1;
    sfeat_from(&cf[bos_k], cx->tmp, D);

    /* factor A = U V^T through the smaller side's distinct rows (or columns) */
    int *rcls = xmalloc(sizeof(int) * (size_t)rows), *rrep = xmalloc(sizeof(int) * (size_t)rows);
    int *ccls = xmalloc(sizeof(int) * (size_t)cols), *crep = xmalloc(sizeof(int) * (size_t)cols);
    double *rsc = xmalloc(sizeof(double) * (size_t)rows), *csc = xmalloc(sizeof(double) * (size_t)cols);
    int nrc = row_classes(A, rows, cols, cols, 1, rcls, rrep, rsc);
    int ncc = row_classes(A, cols, rows, 1, cols, ccls, crep, csc);
    int d = nrc <= ncc ? nrc : ncc;
    co->dqk = d;
    co->wq = xcalloc((size_t)D * (size_t)(d ? d : 1), sizeof(double));
    co->wk = xcalloc((size_t)D * (size_t)(d ? d : 1), sizeof(double));
    if (nrc <= ncc) {
        /* W_Q: each query feature onto its row class (times its scale); W_K: the class's
         * representative row of scores over the key features */
        for (int r = 0; r < rows; r++)
            if (rcls[r] >= 0) add_col(co->wq, d, rcls[r], &rf[r], rsc[r]);
        for (int k = 0; k < nrc; k++)
            for (int col = 0; col < cols; col++) {
                double a = A[(size_t)rrep[k] * cols + col];
                if (a != 0.0) add_col(co->wk, d, k, &cf[col], a);
            }
    } else {
        for (int col = 0; col < cols; col++)
            if (ccls[col] >= 0) add_col(co->wk, d, ccls[col], &cf[col], csc[col]);
        for (int k = 0; k < ncc; k++)
            for (int r = 0; r < rows; r++) {
                double a = A[(size_t)r * cols + crep[k]];
                if (a != 0.0) add_col(co->wq, d, k, &rf[r], a);
            }
    }
    free(rsc);
    free(csc);
    for (int r = 0; r < rows; r++) sfeat_free(&rf[r]);
    for (int k = 0; k < cols; k++) sfeat_free(&cf[k]);
    free(rf);
    free(cf);
    free(rcls);
    free(rrep);
    free(ccls);
    free(crep);
    free(A);

    /* OV: what each key carries, and where it lands */
    co->c = c;
    co->score_noise = eta;
    co->has_head = 1;
    double *cols_v = NULL;
    int dv = 0;
    if (sw) {
        dv = 1;
        co->wv = xcalloc((size_t)D, sizeof(double));
        co->wo = xcalloc((size_t)D, sizeof(double));
        co->wv[lay->bos] = 1;
        co->wo[lay->scratch[op - lp->ops]] = 1;
    } else if (numerical) {
        dv = 1;
        co->wv = xcalloc((size_t)D, sizeof(double));
        co->wo = xcalloc((size_t)D, sizeof(double));
        craft_feat_num(lp, lay, op->value, 1.0, co->wv);
        co->wv[lay->bos] += dflt;
        co->wo[lay->node_dim[op->out]] = 1;
    } else {
        /* one OV column per output value that some key (or BOS, for the default) carries */
        int deflt = lp->p->sops[out->sop].deflt;
        cols_v = xcalloc((size_t)D * (size_t)(out->nvals ? out->nvals : 1), sizeof(double));
        int *target = xmalloc(sizeof(int) * (size_t)(out->nvals ? out->nvals : 1));
        for (int j = 0; j < out->nvals; j++) {
            double *col = cols_v + (size_t)dv * D;
            int jv = -1;
            for (int k = 0; k < vn->nvals && jv < 0; k++)
                if (val_equal(vn->vals[k], out->vals[j])) jv = k;
            if (jv >= 0) craft_feat_cat(lp, lay, op->value, jv, 1.0, col);
            if (j == deflt) col[lay->bos] += 1.0;
            int nz = 0;
            for (int i = 0; i < D && !nz; i++) nz = col[i] != 0.0;
            if (!nz) continue;
            target[dv++] = j;
        }
        co->wv = xcalloc((size_t)D * (size_t)(dv ? dv : 1), sizeof(double));
        co->wo = xcalloc((size_t)(dv ? dv : 1) * (size_t)D, sizeof(double));
        for (int k = 0; k < dv; k++) {
            for (int i = 0; i < D; i++) co->wv[(size_t)i * dv + k] = cols_v[(size_t)k * D + i];
            co->wo[(size_t)k * D + lay->node_dim[op->out] + target[k]] = 1;
        }
        free(target);
        free(cols_v);
    }
    co->dv = dv;
    /* at the BOS query the head reads (almost only) the BOS key, whose residual is exactly
     * its embedding one + tokens:BOS */
    co->bos_write = xcalloc((size_t)D, sizeof(double));
    for (int k = 0; k < dv; k++) {
        double a = co->wv[(size_t)lay->one * dv + k] + co->wv[(size_t)lay->bos * dv + k];
        if (a == 0.0) continue;
        for (int i = 0; i < D; i++) co->bos_write[i] += a * co->wo[(size_t)k * D + i];
    }

    /* error of what the head writes */
    if (sw) {
        double rho = rho_sw(c, eta, N);
        co->leak = N * exp(-c + 2 * eta);
        co->in_err = rho;       /* relative error of 1/(w+1), checked by the decoder */
    } else {
        double lam = leak_agg(c, eta, N);
        co->leak = lam;
        double e;
        if (numerical)
            e = enum_(cx, op->value) + 2 * lam * vmax + (vhi - vlo) * expm1(2 * eta) +
                4 * (N + 2) * F32_EPS * fmax(vmax, 1e-30);
        else
            e = ecat(cx, op->value) + 2 * lam + 4 * (N + 2) * F32_EPS;
        cx->res->err[op->out] = e;
        cx->res->err_max[op->out] = e;
        co->out_err = e;
        co->margin = INFINITY;
    }
    free(sv.x);
    free(sv.val);
    return 0;
}

/* ---- discretising MLP ----------------------------------------------------------------- */

typedef struct {
    int n;
    const double *x;        /* input values, ascending */
    const double *xerr;     /* bound on the input's error at each value */
    const int32_t *val;     /* output value index at each input value, or RASP_NONE */
} DiscSpec;

/* Unit list being built for one MLP op. */
typedef struct {
    int D;
    int units, cap;
    double *win;            /* [cap][D] column-major while building: unit u's input at win[u*D] */
    double *wout;           /* [cap][D] */
} Units;

static int unit_new(Units *u)
{
    if (u->units == u->cap) {
        u->cap = u->cap ? 2 * u->cap : 16;
        u->win = xrealloc(u->win, sizeof(double) * (size_t)u->cap * (size_t)u->D);
        u->wout = xrealloc(u->wout, sizeof(double) * (size_t)u->cap * (size_t)u->D);
    }
    memset(u->win + (size_t)u->units * u->D, 0, sizeof(double) * (size_t)u->D);
    memset(u->wout + (size_t)u->units * u->D, 0, sizeof(double) * (size_t)u->D);
    return u->units++;
}

static void units_to_op(Units *u, CraftOp *co)
{
    int D = u->D, h = u->units;
    co->units = h;
    co->win = xcalloc((size_t)D * (size_t)(h ? h : 1), sizeof(double));
    for (int k = 0; k < h; k++)
        for (int i = 0; i < D; i++) co->win[(size_t)i * h + k] = u->win[(size_t)k * D + i];
    co->wout = u->wout ? u->wout : xcalloc((size_t)D, sizeof(double));
    free(u->win);
    u->win = NULL;
    u->wout = NULL;
}

/* The output vector of a value index (categorical one-hot into out's dims, numerical value),
 * added with coefficient a into w[D]. */
static void out_vec(const Cx *cx, int out, int32_t v, double a, double *w)
{
    const LowerNode *n = &cx->lp->nodes[out];
    int d0 = cx->lay->node_dim[out];
    if (v < 0 || d0 < 0) return;
    if (n->enc == ENC_CATEGORICAL) w[d0 + v] += a;
    else w[d0] += a * lower_num(n, v);
}

/* delta[D] = the output vector of value `to` minus that of `from` (RASP_NONE: nothing);
 * returns its l1 norm (0: the step changes nothing). */
static double out_step(const Cx *cx, int out, int32_t to, int32_t from, double *delta)
{
    int D = cx->lay->D;
    memset(delta, 0, sizeof(double) * (size_t)D);
    out_vec(cx, out, to, 1.0, delta);
    out_vec(cx, out, from, -1.0, delta);
    double l1 = 0;
    for (int k = 0; k < D; k++) l1 += fabs(delta[k]);
    return l1;
}

static int craft_disc(Cx *cx, int out, const double *feat, const DiscSpec *ds, CraftOp *co)
{
    const LowerNode *on = &cx->lp->nodes[out];
    int D = cx->lay->D, one = cx->lay->one;
    int numerical = on->enc == ENC_NUMERICAL;
    Units u = {D, 0, 0, NULL, NULL};
    double *bias = xcalloc((size_t)D, sizeof(double));
    double *delta = xcalloc((size_t)D, sizeof(double));
    /* numerical outputs: no value is "don't care"; give it a neighbour's value */
    int32_t *val = xmalloc(sizeof(int32_t) * (size_t)(ds->n ? ds->n : 1));
    for (int i = 0; i < ds->n; i++) val[i] = ds->val[i];
    if (numerical) {
        int32_t last = RASP_NONE;
        for (int i = 0; i < ds->n; i++) {
            if (val[i] < 0) val[i] = last;
            else last = val[i];
        }
        for (int i = ds->n - 1; i >= 0; i--) {
            if (val[i] < 0) val[i] = last;
            else last = val[i];
        }
    }
    double xlo = ds->n ? ds->x[0] : 0, xhi = ds->n ? ds->x[ds->n - 1] : 0;
    double *dim_err = xcalloc((size_t)D, sizeof(double));   /* per output dimension */
    double tol_min = INFINITY, margin = INFINITY, out_err = 0, ein = 0;
    if (ds->n) out_vec(cx, out, val[0], 1.0, bias);
    for (int i = 1; i < ds->n; i++) {
        if (val[i] == val[i - 1]) continue;
        double dl1 = out_step(cx, out, val[i], val[i - 1], delta);
        if (dl1 == 0) continue;
        double g = ds->x[i] - ds->x[i - 1];
        double a = ds->x[i - 1] + g / 4, b = ds->x[i] - g / 4;
        double L = 1.0 / (b - a);
        /* off-side orientation: the units are active on the side with less to cover */
        double up = L * (xhi - a), down = L * (b - xlo);
        int p = unit_new(&u), q = unit_new(&u);
        double *wp = u.win + (size_t)p * D, *wq = u.win + (size_t)q * D;
        double mag;
        if (up <= down) {
            /* p - q = step: 0 below a, 1 above b */
            for (int k = 0; k < D; k++) wp[k] = wq[k] = L * feat[k];
            wp[one] -= L * a;
            wq[one] -= L * b;
            for (int k = 0; k < D; k++) {
                u.wout[(size_t)p * D + k] = delta[k];
                u.wout[(size_t)q * D + k] = -delta[k];
            }
            mag = up;
        } else {
            /* p - q = 1 - step */
            for (int k = 0; k < D; k++) wp[k] = wq[k] = -L * feat[k];
            wp[one] += L * b;
            wq[one] += L * a;
            for (int k = 0; k < D; k++) {
                u.wout[(size_t)p * D + k] = -delta[k];
                u.wout[(size_t)q * D + k] = delta[k];
                bias[k] += delta[k];
            }
            mag = down;
        }
        double tol = g / 4;
        double e = fmax(ds->xerr[i - 1], ds->xerr[i]);
        tol_min = fmin(tol_min, tol);
        ein = fmax(ein, e);
        margin = fmin(margin, e > 0 ? tol / e : INFINITY);
        /* float32: an active unit's input is L*x plus a bias of about L*|threshold|, both
         * rounded; only active units matter (the others stay below zero by a wide margin) */
        double xact = up <= down ? fmax(fabs(a), fabs(xhi)) : fmax(fabs(xlo), fabs(b));
        double unit_err = 2 * F32_EPS * (L * xact + L * fmax(fabs(a), fabs(b)) + mag);
        out_err += 2 * unit_err * dl1;
        for (int k = 0; k < D; k++) dim_err[k] += 2 * unit_err * fabs(delta[k]);
    }
    int nzb = 0;
    for (int k = 0; k < D; k++) nzb |= bias[k] != 0.0;
    if (nzb) {
        int b = unit_new(&u);
        u.win[(size_t)b * D + one] = 1;
        memcpy(u.wout + (size_t)b * D, bias, sizeof(double) * (size_t)D);
    }
    units_to_op(&u, co);
    co->tol = tol_min;
    co->in_err = ein;
    co->margin = margin;
    co->out_err = out_err + (numerical ? maxabs_num(on) : 1.0) * 4 * F32_EPS;
    cx->res->err[out] = co->out_err;
    double dmax = 0;
    for (int k = 0; k < D; k++) dmax = fmax(dmax, dim_err[k]);
    cx->res->err_max[out] = fmin(co->out_err, dmax + (numerical ? maxabs_num(on) : 1.0) * 4 * F32_EPS);
    free(dim_err);
    free(bias);
    free(delta);
    free(val);
    return 0;
}

static int craft_mlp_disc(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    int D = cx->lay->D;
    int x = op->in[0];
    const LowerNode *xn = &lp->nodes[x];
    double *feat = xcalloc((size_t)D, sizeof(double));
    craft_feat_num(lp, cx->lay, x, 1.0, feat);
    double *xs = xmalloc(sizeof(double) * (size_t)(xn->nvals ? xn->nvals : 1));
    double *xe = xmalloc(sizeof(double) * (size_t)(xn->nvals ? xn->nvals : 1));
    double e = enum_(cx, x) + 2 * F32_EPS * maxabs_num(xn);
    for (int j = 0; j < xn->nvals; j++) {
        xs[j] = lower_num(xn, j);
        xe[j] = e;
    }
    DiscSpec ds = {xn->nvals, xs, xe, op->table};
    int rc = craft_disc(cx, op->out, feat, &ds, co);
    free(feat);
    free(xs);
    free(xe);
    return rc;
}

static int craft_selwidth_mlp(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    int D = cx->lay->D;
    const LowerNode *out = &lp->nodes[op->out];
    SwValues sv;
    sw_values(out, lp->p->max_len, &sv);
    double *feat = xcalloc((size_t)D, sizeof(double));
    feat[cx->lay->scratch[op - lp->ops]] = 1;
    double rho = co->in_err;
    double *xe = xmalloc(sizeof(double) * (size_t)(sv.n ? sv.n : 1));
    for (int i = 0; i < sv.n; i++) xe[i] = rho * sv.x[i];
    DiscSpec ds = {sv.n, sv.x, xe, sv.val};
    double leak = co->leak;
    int rc = craft_disc(cx, op->out, feat, &ds, co);
    co->leak = leak;
    free(feat);
    free(xe);
    free(sv.x);
    free(sv.val);
    return rc;
}

/* ---- the uniform selector width (balanced) ---------------------------------------------- */

/* Tracr's selector width reads w from the BOS key's share 1/(w+1) of a sharp head: every
 * perturbation of the query, key or embedding weights moves the BOS score and the selected
 * keys' scores independently, and w is only as good as their ratio (a relative error d costs
 * w*d, tolerance 1/2). Here the head has no selection in its scores at all: every query
 * attends uniformly to BOS and every key of its window, and writes, per key class c, the
 * fraction F_c = VF * count_c / (n+1) and the BOS share U = VU / (n+1). Uniform weights are
 * not moved by first-order weight noise (the scores are products of two noisy weights), and
 * each F_c has the resolution of a count, 1/(n+1), not of 1/(w+1)(w+2). The MLP then decides
 * "w > t" for each threshold t by the sign of phi = F_S/VF - t * U/VU = (w - t)/(n+1), where
 * F_S sums the classes the query's class selects: linear in the head's outputs, so one ReLU
 * pair per threshold and query class (gated by the query class) gives an exact 0/1 step for
 * every window length. The value gains are split W_V : W_O = 3 : 1 (in powers of V) because
 * the noise every key's value shares (its `one` and token features) grows with W_O. */
#define SWU_VF 8.0          /* value height of each class fraction */
#define SWU_VU 32.0         /* value height of the BOS share */
#define SWU_ALPHA 0.75      /* W_V carries V^ALPHA, W_O V^(1-ALPHA) */
#define SWU_LEAD 20.0       /* the BOS query's score on the BOS key (keeps the BOS row clean) */
#define SWU_KB 0.25         /* ... carried by W_K at this height, the rest by W_Q: the BOS
                               key's score at other queries then moves by noise x 0.25 only */
#define SWU_MAX_QCLASSES 4  /* query classes (with something selected) it is used for */

/* The classes of a one-literal selector: key values grouped by the query values that select
 * them (kcls[k], -1 for a key no query selects), query values by the key classes they select
 * (qcls[q], -1 for a query that selects nothing; sel[qc * ncls + c] says whether query class
 * qc selects key class c). Returns the number of key classes; *nqc the number of query
 * classes. Numbered in order of first appearance. sel has room for nq * nk entries. */
static int swu_classes(const LowerLit *lit, int nk, int nq, int *kcls, int *qcls, uint8_t *sel, int *nqc)
{
    int ncls = 0;
    for (int k = 0; k < nk; k++) {
        kcls[k] = -1;
        int any = 0;
        for (int q = 0; q < nq && !any; q++) any = lit->table[(size_t)k * nq + q] != 0;
        if (!any) continue;
        for (int k2 = 0; k2 < k && kcls[k] < 0; k2++)
            if (kcls[k2] >= 0 && !memcmp(lit->table + (size_t)k * nq, lit->table + (size_t)k2 * nq, (size_t)nq))
                kcls[k] = kcls[k2];
        if (kcls[k] < 0) kcls[k] = ncls++;
    }
    uint8_t *pat = xcalloc((size_t)(ncls ? ncls : 1), 1);
    *nqc = 0;
    for (int q = 0; q < nq; q++) {
        memset(pat, 0, (size_t)(ncls ? ncls : 1));
        int any = 0;
        for (int k = 0; k < nk; k++)
            if (kcls[k] >= 0 && lit->table[(size_t)k * nq + q]) pat[kcls[k]] = 1, any = 1;
        qcls[q] = -1;
        for (int qc = 0; qc < *nqc && qcls[q] < 0 && any; qc++)
            if (!memcmp(pat, sel + (size_t)qc * ncls, (size_t)ncls)) qcls[q] = qc;
        if (any && qcls[q] < 0) {
            memcpy(sel + (size_t)*nqc * ncls, pat, (size_t)ncls);
            qcls[q] = (*nqc)++;
        }
    }
    free(pat);
    return ncls;
}

int craft_sw_uniform(const CraftPolicy *pol, const LowerProgram *lp, const LowerOp *op)
{
    if (!pol || !pol->balanced || pol->sharpness > 0 || op->kind != LOP_SELWIDTH || op->nlits != 1) return 0;
    const LowerLit *lit = &op->lits[0];
    int nk = lp->nodes[lit->knode].nvals, nq = lp->nodes[lit->qnode].nvals;
    if (nk < 1 || nq < 1) return 0;
    int *kcls = xmalloc(sizeof(int) * (size_t)nk), *qcls = xmalloc(sizeof(int) * (size_t)nq);
    uint8_t *sel = xcalloc((size_t)nq * (size_t)nk, 1);
    int nqc, ncls = swu_classes(lit, nk, nq, kcls, qcls, sel, &nqc);
    free(kcls);
    free(qcls);
    free(sel);
    /* the decoder spends 2 units per width threshold and query class (Tracr's: 2 per
     * threshold): beyond a few query classes the model would grow too much */
    return nqc <= SWU_MAX_QCLASSES ? ncls : 0;
}

static int craft_swu_head(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    const CraftLayout *lay = cx->lay;
    int D = lay->D, i = (int)(op - lp->ops);
    const LowerLit *lit = &op->lits[0];
    int nk = lp->nodes[lit->knode].nvals, nq = lp->nodes[lit->qnode].nvals, nqc;
    int *kcls = xmalloc(sizeof(int) * (size_t)nk), *qcls = xmalloc(sizeof(int) * (size_t)nq);
    uint8_t *sel = xcalloc((size_t)nq * (size_t)nk, 1);
    int ncls = swu_classes(lit, nk, nq, kcls, qcls, sel, &nqc);
    free(qcls);
    free(sel);
    co->has_head = 1;
    co->keep_gains = 1;
    co->c = 0;
    co->score_noise = 0;
    co->leak = 0;
    /* scores: only the BOS query's lead on the BOS key */
    co->dqk = 1;
    co->wq = xcalloc((size_t)D, sizeof(double));
    co->wk = xcalloc((size_t)D, sizeof(double));
    co->wq[lay->bos] = SWU_LEAD / SWU_KB;
    co->wk[lay->bos] = SWU_KB;
    /* values: column c (< ncls) the keys of class c, column ncls the BOS key */
    int dv = ncls + 1;
    co->dv = dv;
    co->wv = xcalloc((size_t)D * (size_t)dv, sizeof(double));
    co->wo = xcalloc((size_t)dv * (size_t)D, sizeof(double));
    double gvF = pow(SWU_VF, SWU_ALPHA), goF = SWU_VF / gvF;
    double gvU = pow(SWU_VU, SWU_ALPHA), goU = SWU_VU / gvU;
    double *f = xcalloc((size_t)D, sizeof(double));
    for (int c = 0; c < ncls; c++) {
        memset(f, 0, sizeof(double) * (size_t)D);
        for (int k = 0; k < nk; k++)
            if (kcls[k] == c) craft_feat_cat(lp, lay, lit->knode, k, 1.0, f);
        /* nothing at BOS, whose residual is one + tokens:BOS */
        f[lay->bos] -= f[lay->one] + f[lay->bos];
        for (int r = 0; r < D; r++) co->wv[(size_t)r * dv + c] = gvF * f[r];
        co->wo[(size_t)c * D + lay->scratch[i] + 1 + c] = goF;
    }
    co->wv[(size_t)lay->bos * dv + ncls] = gvU;
    co->wo[(size_t)ncls * D + lay->scratch[i]] = goU;
    free(f);
    free(kcls);
    /* at the BOS query the head reads the BOS key only (lead SWU_LEAD over every other) */
    co->bos_write = xcalloc((size_t)D, sizeof(double));
    co->bos_write[lay->scratch[i]] = SWU_VU;
    return 0;
}

static int craft_swu_mlp(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    const CraftLayout *lay = cx->lay;
    int D = lay->D, i = (int)(op - lp->ops), N = lp->p->max_len, one = lay->one;
    const LowerNode *out = &lp->nodes[op->out];
    const LowerLit *lit = &op->lits[0];
    int nk = lp->nodes[lit->knode].nvals, nq = lp->nodes[lit->qnode].nvals, nqc;
    int *kcls = xmalloc(sizeof(int) * (size_t)nk), *qcls = xmalloc(sizeof(int) * (size_t)nq);
    uint8_t *sel = xcalloc((size_t)nq * (size_t)nk, 1);
    int ncls = swu_classes(lit, nk, nq, kcls, qcls, sel, &nqc);
    SwValues sv;
    sw_values(out, N, &sv);     /* widths descending along sv.x ascending */
    Units u = {D, 0, 0, NULL, NULL};
    double L = 2.0 * (N + 1), G = L + 1;
    double *delta = xcalloc((size_t)D, sizeof(double)), *gate = xcalloc((size_t)D, sizeof(double));
    double dsum = 0, tmax = 0;      /* dsum: the largest l1 of one class's steps (one class is on) */
    /* query classes that select nothing have w = 0 there: the base output */
    for (int qc = 0; qc < nqc; qc++) {
        double dclass = 0;
        /* the gate: 1 at queries whose value is in this class, 0 at the others */
        memset(gate, 0, sizeof(double) * (size_t)D);
        for (int q = 0; q < nq; q++)
            if (qcls[q] == qc) craft_feat_cat(lp, lay, lit->qnode, q, 1.0, gate);
        /* one step per pair of neighbouring widths, at their midpoint t */
        for (int j = sv.n - 1; j > 0; j--) {
            int32_t va = sv.val[j], vb = sv.val[j - 1];     /* w_a < w_b */
            if (va == vb) continue;
            double wa = (double)lround(1 / sv.x[j] - 1), wb = (double)lround(1 / sv.x[j - 1] - 1), t = (wa + wb) / 2;
            double dl1 = out_step(cx, op->out, vb, va, delta);
            if (dl1 == 0) continue;
            /* the step must finish within half the gap on each side (phi = +-(wb-wa)/2/(n+1)) */
            double Lt = L / (wb - wa);
            for (int side = 0; side < 2; side++) {
                int k = unit_new(&u);
                double *w = u.win + (size_t)k * D;
                for (int c = 0; c < ncls; c++)
                    if (sel[(size_t)qc * ncls + c]) w[lay->scratch[i] + 1 + c] += Lt / SWU_VF;
                w[lay->scratch[i]] -= Lt * t / SWU_VU;
                for (int d = 0; d < D; d++) w[d] += G * gate[d];
                w[one] += (side ? -0.5 : 0.5) - G;
                for (int d = 0; d < D; d++) u.wout[(size_t)k * D + d] = side ? -delta[d] : delta[d];
            }
            dclass += dl1;
            tmax = fmax(tmax, t);
        }
        dsum = fmax(dsum, dclass);
    }
    /* the base: the smallest width's output at every real position */
    if (sv.n) {
        if (out_step(cx, op->out, sv.val[sv.n - 1], RASP_NONE, delta) > 0) {
            int k = unit_new(&u);
            u.win[(size_t)k * D + one] = 1;
            memcpy(u.wout + (size_t)k * D, delta, sizeof(double) * (size_t)D);
        }
    }
    units_to_op(&u, co);
    /* Exactness. At width w in a window of n+1 (BOS included) phi = (w - t)/(n+1), at least
     * half a gap from t, so L*|phi| >= 1 and each pair is 0 or 1 with room 1/2 on either side:
     * in phi units the tolerance is 1/(4(N+1)). The inputs' errors: the key and query
     * features' (fused maps, upstream heads) and float32 rounding of the average over N+2
     * keys; the gate must keep an off class below zero: G - L - 1/2 of room. */
    double ek = ecat(cx, lit->knode), eq = ecat(cx, lit->qnode);
    double eF = ncls * ek + 4 * (N + 2) * F32_EPS, eU = 4 * (N + 2) * F32_EPS;
    double ephi = eF + tmax * eU + G * eq / L;     /* the last: an on gate's error, in phi */
    double tol = 1.0 / (4 * (N + 1));
    co->tol = tol;
    co->in_err = ephi;
    co->margin = ephi > 0 ? tol / ephi : INFINITY;
    if (eq > 0) co->margin = fmin(co->margin, (G - L - 0.5) / (G * eq));
    /* a unit that is on has t < w + 1/2 <= n + 1/2, so each term of its input is at most
     * about L (F and U terms) or G (gate and bias): rounded, it is off by 2 eps of their sum.
     * Units far below zero stay there (their input is below -L/2 by more than that). */
    double unit_err = 2 * F32_EPS * (2 * L + 2 * G + 2);
    int numerical = out->enc == ENC_NUMERICAL;
    co->out_err = 2 * unit_err * dsum + (numerical ? maxabs_num(out) : 1.0) * 4 * F32_EPS;
    cx->res->err[op->out] = co->out_err;
    cx->res->err_max[op->out] = co->out_err;
    free(delta);
    free(gate);
    free(qcls);
    free(sel);
    free(kcls);
    free(sv.x);
    free(sv.val);
    return 0;
}

/* ---- categorical MLP ------------------------------------------------------------------ */

static int craft_mlp_cat(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    const CraftLayout *lay = cx->lay;
    int D = lay->D, m = op->nin, one = lay->one;
    const LowerNode *on = &lp->nodes[op->out];
    int sizes[64];
    for (int i = 0; i < m; i++) sizes[i] = lp->nodes[op->in[i]].nvals;
    uint8_t *skip = NULL;
    if (on->enc == ENC_NUMERICAL) {
        skip = xcalloc((size_t)(on->nvals ? on->nvals : 1), 1);
        for (int j = 0; j < on->nvals; j++) skip[j] = lower_num(on, j) == 0.0;
    }
    LowerCatPlan pl;
    if (lower_plan(sizes, m, op->table, skip, on->nvals, &pl, cx->err)) {
        free(skip);
        return -1;
    }
    /* class features of every input */
    double **cfeat = xcalloc((size_t)(m ? m : 1), sizeof *cfeat);
    for (int i = 0; i < m; i++) {
        cfeat[i] = xcalloc((size_t)pl.nclass[i] * (size_t)D, sizeof(double));
        for (int v = 0; v < sizes[i]; v++)
            craft_feat_cat(lp, lay, op->in[i], v, 1.0, cfeat[i] + (size_t)pl.cls[i][v] * D);
    }
    Units u = {D, 0, 0, NULL, NULL};
    double ein = 0;
    for (int i = 0; i < m; i++) ein += ecat(cx, op->in[i]);
    if (m == 0) {
        int32_t z = pl.ctab[0];
        if (z >= 0 && !(skip && skip[z])) {
            int k = unit_new(&u);
            double *w = u.win + (size_t)k * D;
            feat_real(lay, 2.0, w);
            w[one] -= 1.0;
            out_vec(cx, op->out, z, 1.0, u.wout + (size_t)k * D);
        }
    } else {
        int col = pl.col;
        int64_t cstride[64], s = 1;
        for (int i = m - 1; i >= 0; i--) {
            cstride[i] = s;
            s *= pl.nclass[i];
        }
        int cnt[64] = {0};
        int64_t rows = 1;
        for (int i = 0; i < m; i++)
            if (i != col) rows *= pl.nclass[i];
        uint8_t *done = xcalloc((size_t)pl.nclass[col], 1);
        for (int64_t r = 0; r < rows; r++) {
            int64_t off = 0;
            for (int i = 0; i < m; i++)
                if (i != col) off += cnt[i] * cstride[i];
            memset(done, 0, (size_t)pl.nclass[col]);
            for (int c0 = 0; c0 < pl.nclass[col]; c0++) {
                int32_t z = pl.ctab[off + c0 * cstride[col]];
                if (done[c0] || z < 0 || (skip && skip[z])) continue;
                /* one unit: this combination of the other inputs' classes, and the column
                 * input in any class whose output is z */
                int k = unit_new(&u);
                double *w = u.win + (size_t)k * D;
                for (int i = 0; i < m; i++) {
                    if (i == col) continue;
                    const double *f = cfeat[i] + (size_t)cnt[i] * D;
                    for (int d = 0; d < D; d++) w[d] += 2 * f[d];
                }
                for (int c1 = c0; c1 < pl.nclass[col]; c1++) {
                    if (pl.ctab[off + c1 * cstride[col]] != z) continue;
                    done[c1] = 1;
                    const double *f = cfeat[col] + (size_t)c1 * D;
                    for (int d = 0; d < D; d++) w[d] += 2 * f[d];
                }
                w[one] -= 2.0 * m - 1;
                out_vec(cx, op->out, z, 1.0, u.wout + (size_t)k * D);
            }
            for (int i = m - 1; i >= 0; i--) {
                if (i == col) continue;
                if (++cnt[i] < pl.nclass[i]) break;
                cnt[i] = 0;
            }
        }
        free(done);
    }
    units_to_op(&u, co);
    for (int i = 0; i < m; i++) free(cfeat[i]);
    free(cfeat);
    lower_plan_free(&pl);
    free(skip);
    /* a unit fires at 1 and stays at <= -1 otherwise; input noise moves it by 2 * ein */
    co->tol = 1.0;
    co->in_err = 2 * ein;
    co->margin = ein > 0 ? 1.0 / (2 * ein) : INFINITY;
    double scale = on->enc == ENC_NUMERICAL ? maxabs_num(on) : 1.0;
    co->out_err = scale * (2 * ein + 4 * (m + 1) * F32_EPS);
    cx->res->err[op->out] = co->out_err;
    cx->res->err_max[op->out] = co->out_err;
    return 0;
}

/* ---- linear MLP ---------------------------------------------------------------------- */

static int craft_mlp_num(Cx *cx, const LowerOp *op, CraftOp *co)
{
    const LowerProgram *lp = cx->lp;
    int D = cx->lay->D;
    const LowerNode *on = &lp->nodes[op->out];
    double *f = xcalloc((size_t)D, sizeof(double));
    feat_form_num(lp, cx->lay, op->out, 1.0, f);
    double lo = 0, hi = 0;
    for (int j = 0; j < on->nvals; j++) {
        lo = fmin(lo, lower_num(on, j));
        hi = fmax(hi, lower_num(on, j));
    }
    Units u = {D, 0, 0, NULL, NULL};
    int d0 = cx->lay->node_dim[op->out];
    for (int sgn = 1; sgn >= -1; sgn -= 2) {
        if ((sgn > 0 && hi <= 0) || (sgn < 0 && lo >= 0)) continue;
        int k = unit_new(&u);
        for (int i = 0; i < D; i++) u.win[(size_t)k * D + i] = sgn * f[i];
        u.wout[(size_t)k * D + d0] = sgn;
    }
    units_to_op(&u, co);
    /* the error of the form, read through a LIN: the virtual terms' errors */
    double e = 0;
    const LowerNode *n = on;
    if (n->virt == LVIRT_LIN)
        for (int i = 0; i < n->nlin; i++) e += fabs(n->lin_coef[i]) * enum_(cx, n->lin_node[i]);
    else
        e = maxabs_num(n) * ecat(cx, n->base);
    co->tol = INFINITY;
    co->in_err = e;
    co->margin = INFINITY;
    co->out_err = e + 4 * F32_EPS * fmax(fabs(lo), fabs(hi));
    cx->res->err[op->out] = co->out_err;
    cx->res->err_max[op->out] = co->out_err;
    free(f);
    return 0;
}

/* ---- conditioning ------------------------------------------------------------------------ */

/* Multiply column j of a [rows][ncols] matrix by a. */
static void scale_col(double *w, int rows, int ncols, int j, double a)
{
    for (int r = 0; r < rows; r++) w[(size_t)r * ncols + j] *= a;
}

static double col_norm(const double *w, int rows, int ncols, int j)
{
    double s = 0;
    for (int r = 0; r < rows; r++) s += w[(size_t)r * ncols + j] * w[(size_t)r * ncols + j];
    return sqrt(s);
}

/* Rescale x[.][j] by t and y[.][j] by 1/t so that the two columns have equal l2 norms; the
 * product x_j y_j^T (all a head or a unit computes with them) is unchanged. */
static void balance_pair(double *x, int xrows, int xcols, double *y, int yrows, int ycols, int j)
{
    double nx = col_norm(x, xrows, xcols, j), ny = col_norm(y, yrows, ycols, j);
    if (!(nx > 0) || !(ny > 0)) return;
    double t = sqrt(ny / nx);
    scale_col(x, xrows, xcols, j, t);
    scale_col(y, yrows, ycols, j, 1.0 / t);
}

/* --conditioning balanced: the positive rescalings that leave every function exact.
 * A ReLU unit computes wout_k * ReLU(win_k . x) = (wout_k / s) * ReLU(s win_k . x) for any
 * s > 0; a head's score q.k and output v W_O are unchanged when a Q (V) column is scaled by
 * t and the matching K (O) column by 1/t. Equal norms on both sides minimise the largest
 * weight and keep hidden activations at the geometric mean of the two gains, so a
 * perturbation of either side is amplified by sqrt(gain), not by gain. The error bounds are
 * those of the unscaled construction: in exact arithmetic nothing changes, and float32
 * rounding is relative, so each rounded product carries the same relative error. */
static void balance_op(CraftOp *co, int D)
{
    if (co->has_head && !co->keep_gains) {
        for (int j = 0; j < co->dqk; j++) balance_pair(co->wq, D, co->dqk, co->wk, D, co->dqk, j);
        /* W_O is [dv][D]: its row k is the partner of W_V's column k */
        for (int k = 0; k < co->dv; k++) {
            double nv = col_norm(co->wv, D, co->dv, k), no = col_norm(co->wo + (size_t)k * D, D, 1, 0);
            if (!(nv > 0) || !(no > 0)) continue;
            double t = sqrt(no / nv);
            scale_col(co->wv, D, co->dv, k, t);
            for (int i = 0; i < D; i++) co->wo[(size_t)k * D + i] /= t;
        }
    }
    for (int k = 0; k < co->units; k++) {
        double ni = col_norm(co->win, D, co->units, k), no = col_norm(co->wout + (size_t)k * D, D, 1, 0);
        if (!(ni > 0) || !(no > 0)) continue;
        double s = sqrt(no / ni);
        scale_col(co->win, D, co->units, k, s);
        for (int i = 0; i < D; i++) co->wout[(size_t)k * D + i] /= s;
    }
}

/* ---- all ops ---------------------------------------------------------------------------- */

int craft_all(const LowerProgram *lp, const CraftLayout *lay, const CraftPolicy *pol,
              CraftResult *res, StrBuf *err)
{
    memset(res, 0, sizeof *res);
    CraftPolicy def = CRAFT_POLICY_DEFAULT;
    Cx cx = {lp, lay, pol ? pol : &def, res, NULL, err};
    res->nops = lp->nops;
    res->ops = xcalloc((size_t)(lp->nops ? lp->nops : 1), sizeof *res->ops);
    res->err = xcalloc((size_t)(lp->nnodes ? lp->nnodes : 1), sizeof *res->err);
    res->err_max = xcalloc((size_t)(lp->nnodes ? lp->nnodes : 1), sizeof *res->err_max);
    cx.tmp = xcalloc((size_t)lay->D, sizeof(double));
    int rc = 0;
    for (int i = 0; i < lp->nops && !rc; i++) {
        const LowerOp *op = &lp->ops[i];
        CraftOp *co = &res->ops[i];
        co->op = i;
        co->margin = INFINITY;
        co->tol = INFINITY;
        switch (op->kind) {
        case LOP_AGG:
            rc = craft_head(&cx, op, co);
            break;
        case LOP_SELWIDTH:
            if (lay->nscratch && lay->nscratch[i] > 1) {     /* the layout chose the uniform one */
                rc = craft_swu_head(&cx, op, co);
                if (!rc) rc = craft_swu_mlp(&cx, op, co);
                break;
            }
            rc = craft_head(&cx, op, co);
            if (!rc) rc = craft_selwidth_mlp(&cx, op, co);
            break;
        case LOP_MLP_DISC:
            rc = craft_mlp_disc(&cx, op, co);
            break;
        case LOP_MLP_CAT:
            rc = craft_mlp_cat(&cx, op, co);
            break;
        case LOP_MLP_NUM:
            rc = craft_mlp_num(&cx, op, co);
            break;
        }
    }
    free(cx.tmp);
    if (!rc && cx.pol->balanced)
        for (int i = 0; i < lp->nops; i++) balance_op(&res->ops[i], lay->D);
    if (rc) {
        craft_free(res);
        return -1;
    }
    /* the output as the unembed reads it: categorical argmax needs every wrong column below
     * the right one (error < 1/2); numerical within the verifier's 1e-4 */
    const LowerNode *on = &lp->nodes[lp->output];
    double e = on->enc == ENC_NUMERICAL ? enum_(&cx, lp->output) : ecat(&cx, lp->output);
    if (on->rep == LREP_MAT) e = fmin(e, res->err_max[lp->output]);
    double tol = on->enc == ENC_NUMERICAL ? 1e-4 : 0.5;
    res->out_err = e;
    res->out_margin = e > 0 ? tol / e : INFINITY;
    /* A selection that mixes values gives the interpreter's "no value" but a mixture of
     * one-hots in the residual; the bounds above assume one-hots, so an op reading such an
     * aggregate is not covered: no proof (the check against the interpreter decides). */
    res->mix_sop = -1;
    for (int i = 0; i < lp->nops; i++) {
        const LowerOp *op = &lp->ops[i];
        int sop = op->kind == LOP_AGG ? lp->nodes[op->out].sop : -1;
        if (sop < 0 || !rasp_agg_may_mix(lp->p, &lp->p->sops[sop]) || rasp_first_reader(lp->p, sop) < 0)
            continue;
        res->ops[i].margin = 0;
        if (res->mix_sop < 0) res->mix_sop = sop;
    }
    res->min_margin = res->out_margin;
    for (int i = 0; i < lp->nops; i++) res->min_margin = fmin(res->min_margin, res->ops[i].margin);
    res->exact = res->min_margin > 1;
    return 0;
}

void craft_free(CraftResult *res)
{
    if (!res) return;
    for (int i = 0; i < res->nops; i++) {
        CraftOp *co = &res->ops[i];
        free(co->wq);
        free(co->wk);
        free(co->wv);
        free(co->wo);
        free(co->bos_write);
        free(co->win);
        free(co->wout);
    }
    free(res->ops);
    free(res->err);
    free(res->err_max);
    memset(res, 0, sizeof *res);
}
