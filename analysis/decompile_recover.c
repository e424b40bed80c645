/* decompile_recover.c — what each op of the program computes in the model, tabulated on
 * its finite domain from the observations of decompile.c (see decompile.h). Ops are visited
 * in program order, so each op's operands already have the values the decompiled program
 * gives them (`val`): decoded from the residual where the s-op has dimensions, else
 * computed through the operand's recovered table. */
#include "analysis/decompile_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void dc_rec_free(DcRec *r)
{
    free(r->expr);
    free(r->table);
    free(r->seen);
    for (int i = 0; i < r->nreads; i++) free(r->reads[i]);
    for (int i = 0; i < r->nnew; i++) free(r->newreads[i]);
    free(r->reads);
    free(r->newreads);
}

/* ---------- tallies: for each input key, the most frequent output ---------- */

typedef struct {
    int64_t in;
    int32_t out;
} Obs;

typedef struct {
    Obs *o;
    long n, cap;
} ObsList;

static void obs_add(ObsList *l, int64_t in, int32_t out)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->o = xrealloc(l->o, sizeof(Obs) * (size_t)l->cap);
    }
    l->o[l->n].in = in;
    l->o[l->n++].out = out;
}

static int obs_cmp(const void *a, const void *b)
{
    const Obs *x = a, *y = b;
    if (x->in != y->in) return x->in < y->in ? -1 : 1;
    return (x->out > y->out) - (x->out < y->out);
}

/* For every observed input key: best[in] = its most frequent output (ties: the smaller);
 * returns the number of observations the best outputs explain. best has nin entries and
 * is left alone for keys never observed. */
static long obs_best(ObsList *l, int32_t *best, long nin, const int32_t *prefer)
{
    if (l->n) qsort(l->o, (size_t)l->n, sizeof(Obs), obs_cmp);
    long expl = 0;
    for (long i = 0; i < l->n;) {
        long j = i, bestc = 0;
        int32_t bo = 0;
        while (j < l->n && l->o[j].in == l->o[i].in) {
            long k = j;
            while (k < l->n && l->o[k].in == l->o[j].in && l->o[k].out == l->o[j].out) k++;
            long c = k - j;
            /* on a tie, keep the original behaviour */
            int pref = prefer && l->o[j].in < nin && prefer[l->o[j].in] == l->o[j].out;
            if (c > bestc || (c == bestc && pref)) bestc = c, bo = l->o[j].out;
            j = k;
        }
        if (l->o[i].in < nin) best[l->o[i].in] = bo;
        expl += bestc;
        i = j;
    }
    return expl;
}

/* ---------- helpers ---------- */

/* The output s-op is tabulated against the model's answer rather than its own dimensions:
 * a fine-tuned unembedding may read more than those (the Counter's learned answer is in the
 * logits while `out`'s dimensions still hold the old one), and the answer is what the
 * decompiled program must reproduce. A compiled model's two agree. */
int32_t dc_obs(const Dc *dc, int s, long pos)
{
    if (!dc->dec[s]) return DC_UNREAD;
    if (s == dc->p->output && dc->ans) return dc->ans[pos];
    return dc->dec[s][pos];
}

static int obs_of(const Dc *dc, int s, long pos)
{
    return dc_obs(dc, s, pos);
}

static int is_residual(const Dc *dc, int s)
{
    const DecSop *rs = ro_find(&dc->lay, &dc->p->sops[s]);
    return dc->dec[s] && rs && !rs->isvirtual;
}

int dc_selects(const Dc *dc, int sel, int k, int i, int j)
{
    const RaspSel *s = &dc->p->sels[sel];
    if (dc->p->causal && j > i) return 0;
    long off = dc->sample_off[k];
    switch (s->op) {
    case SEL_SELECT: {
        int32_t kv = dc->val[s->keys][off + j], qv = dc->val[s->queries][off + i];
        if (kv < 0 || qv < 0) return 0;
        const DcSelRec *r = &dc->srec[sel];
        if (kv >= r->nk || qv >= r->nq) return 0;
        return r->pred[(size_t)kv * r->nq + qv];
    }
    case SEL_AND: return dc_selects(dc, s->a, k, i, j) && dc_selects(dc, s->b, k, i, j);
    case SEL_OR: return dc_selects(dc, s->a, k, i, j) || dc_selects(dc, s->b, k, i, j);
    case SEL_NOT: return !dc_selects(dc, s->a, k, i, j);
    }
    return 0;
}

static int same_value(const DcDict *a, int ia, const DcDict *b, int ib)
{
    Value x = a->val[ia], y = b->val[ib];
    if (x.kind == VAL_INT && y.kind == VAL_INT) return x.u.i == y.u.i;   /* packed keys are large */
    if (val_is_number(x) && val_is_number(y) && x.kind != VAL_BOOL && y.kind != VAL_BOOL)
        return fabs(val_as_double(x) - val_as_double(y)) <= DC_NUM_TOL * fmax(1, fabs(val_as_double(x)));
    return !strcmp(a->txt[ia], b->txt[ib]);
}

/* Dictionary index in d of the value of entry i of dictionary a (added if new). */
static int32_t carry(Dc *dc, DcDict *d, const DcDict *a, int i)
{
    for (int k = 0; k < d->n; k++)
        if (same_value(a, i, d, k)) return k;
    return dc_dict_add(d, a->txt[i], &dc->arena);
}

/* ---------- the labels an op reads, from its weights ---------- */

static void add_name(char ***arr, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*arr)[i], name)) return;
    *arr = xrealloc(*arr, sizeof(char *) * (size_t)(*n + 1));
    (*arr)[(*n)++] = xstrdup(name);
}

static void name_of_label(const char *lab, char *buf, size_t cap)
{
    size_t n = strcspn(lab, ":");
    if (n >= cap) n = cap - 1;
    memcpy(buf, lab, n);
    buf[n] = 0;
}

/* rows (C x ncols, row stride `stride`, first column col0): add each row's s-op name
 * when the row's norm is at least DC_READ_FRAC of the largest */
static void scan_rows(const Dc *dc, const float *w, int C, int stride, int col0, int ncols, int stage, DcRec *r)
{
    double *norm = xcalloc((size_t)C, sizeof(double));
    double mx = 0;
    for (int d = 0; d < C; d++) {
        double s = 0;
        for (int c = 0; c < ncols; c++) {
            double x = w[(size_t)d * stride + col0 + c];
            s += x * x;
        }
        norm[d] = sqrt(s);
        if (norm[d] > mx) mx = norm[d];
    }
    for (int d = 0; d < C && mx > 0; d++) {
        if (norm[d] < DC_READ_FRAC * mx) continue;
        const char *lab = dc->m->residual[d];
        if (!strcmp(lab, "one") || !strcmp(lab, "tokens:BOS")) continue;
        char nm[256];
        name_of_label(lab, nm, sizeof nm);
        /* a label written at or after this sub-layer holds nothing when it reads */
        const DecSop *rs = dc_sop(dc, nm);
        if (rs && !rs->isvirtual && rs->stage >= stage) continue;
        add_name(&r->reads, &r->nreads, nm);
    }
    free(norm);
}

static void declared(json_t *e, const char *field, char ***arr, int *n)
{
    json_t *a = json_object_get(e, field);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s) add_name(arr, n, s);
    }
}

static void find_reads(const Dc *dc, const char *label, const char *selector, DcRec *r)
{
    const Model *m = dc->m;
    int C = m->cfg.d_model, NH = m->cfg.n_heads, HD = m->cfg.d_head, M = m->cfg.d_mlp;
    char **decl = NULL;
    int ndecl = 0;
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl; l++) {
        json_t *b = json_array_get(m->layers, l);
        json_t *attn = json_object_get(b, "attn");
        for (size_t i = 0; i < json_array_size(attn); i++) {
            json_t *e = json_array_get(attn, i);
            const char *lb = json_string_value(json_object_get(e, "label"));
            const char *sl = json_string_value(json_object_get(e, "selector"));
            int mine = (lb && !strcmp(lb, label)) || (selector && sl && !strcmp(sl, selector));
            json_t *hd = json_object_get(e, "head");
            if (!mine || !json_is_integer(hd)) continue;
            int h = (int)json_integer_value(hd);
            if (h < 0 || h >= NH) continue;
            size_t base = ((size_t)l * NH + (size_t)h) * (size_t)C * (size_t)HD;
            int st = 2 * (int)l + 1;   /* the stage this attention writes */
            scan_rows(dc, m->params.W_Q + base, C, HD, 0, HD, st, r);
            scan_rows(dc, m->params.W_K + base, C, HD, 0, HD, st, r);
            if (!selector || (lb && !strcmp(lb, label))) scan_rows(dc, m->params.W_V + base, C, HD, 0, HD, st, r);
            declared(e, "query", &decl, &ndecl);
            declared(e, "key", &decl, &ndecl);
            declared(e, "value", &decl, &ndecl);
        }
        json_t *mlp = json_object_get(b, "mlp");
        for (size_t i = 0; i < json_array_size(mlp); i++) {
            json_t *e = json_array_get(mlp, i);
            const char *lb = json_string_value(json_object_get(e, "label"));
            json_t *nr = json_object_get(e, "neurons");
            if (!lb || strcmp(lb, label) || json_array_size(nr) != 2) continue;
            int a = (int)json_integer_value(json_array_get(nr, 0)), z = (int)json_integer_value(json_array_get(nr, 1));
            if (a < 0 || z > M || a >= z) continue;
            scan_rows(dc, m->params.W_in + (size_t)l * C * M, C, M, a, z - a, 2 * (int)l + 2, r);
            declared(e, "inputs", &decl, &ndecl);
        }
    }
    for (int i = 0; i < r->nreads; i++) {
        int known = 0;
        for (int k = 0; k < ndecl && !known; k++) known = !strcmp(decl[k], r->reads[i]);
        if (!known) add_name(&r->newreads, &r->nnew, r->reads[i]);
    }
    for (int k = 0; k < ndecl; k++) free(decl[k]);
    free(decl);
}

/* ---------- which positions matter ---------- */

static void mark_sel(Dc *dc, int sel, int k, int i)
{
    const RaspSel *s = &dc->p->sels[sel];
    long off = dc->sample_off[k];
    int n = dc->sample_len[k];
    dc->selrel[sel][off + i] = 1;
    switch (s->op) {
    case SEL_SELECT:
        for (int j = 0; j < n; j++) dc->rel[s->keys][off + j] = 1;
        dc->rel[s->queries][off + i] = 1;
        break;
    case SEL_AND:
    case SEL_OR:
        mark_sel(dc, s->a, k, i);
        mark_sel(dc, s->b, k, i);
        break;
    case SEL_NOT: mark_sel(dc, s->a, k, i); break;
    }
}

/* rel[s][pos]: 1 where s-op s can influence the output at the answer positions (every
 * position when there are none): back from the output, through same-position operands, all
 * keys of a selector, and the value at the keys its head attends to (or at every key when
 * no head is observed). Tallies and fidelities count only these: a fine-tune trained at a
 * few positions leaves the others unconstrained. */
static void relevance(Dc *dc)
{
    const RaspProgram *p = dc->p;
    dc->rel = xcalloc((size_t)p->nsops + 1, sizeof(uint8_t *));
    dc->selrel = xcalloc((size_t)p->nsels + 1, sizeof(uint8_t *));
    for (int s = 0; s < p->nsels; s++) dc->selrel[s] = xcalloc((size_t)dc->npos + 1, 1);
    for (int s = 0; s < p->nsops; s++)
        if (p->sops[s].used) dc->rel[s] = xcalloc((size_t)dc->npos + 1, 1);
    if (!dc->nat) {
        for (int s = 0; s < p->nsops; s++)
            if (dc->rel[s]) memset(dc->rel[s], 1, (size_t)dc->npos);
        for (int s = 0; s < p->nsels; s++) memset(dc->selrel[s], 1, (size_t)dc->npos);
        return;
    }
    for (int k = 0; k < dc->nsamples; k++)
        for (int a = 0; a < dc->nat; a++)
            if (dc->at[a] < dc->sample_len[k]) dc->rel[p->output][dc->sample_off[k] + dc->at[a]] = 1;
    for (int s = p->nsops - 1; s >= 0; s--) {
        const RaspSop *ps = &p->sops[s];
        if (!ps->used) continue;
        for (int k = 0; k < dc->nsamples; k++) {
            int n = dc->sample_len[k];
            long off = dc->sample_off[k];
            for (int i = 0; i < n; i++) {
                if (!dc->rel[s][off + i]) continue;
                switch (ps->op) {
                case SOP_MAP: dc->rel[ps->a][off + i] = 1; break;
                case SOP_SEQMAP:
                    dc->rel[ps->a][off + i] = 1;
                    dc->rel[ps->b][off + i] = 1;
                    break;
                case SOP_SELWIDTH: mark_sel(dc, ps->sel, k, i); break;
                case SOP_AGGREGATE: {
                    mark_sel(dc, ps->sel, k, i);
                    int h = dc->sel_head[ps->sel];
                    const uint8_t *mk = h >= 0 ? dc->mask[dc->head_slot[h]] + dc->mask_off[k] : NULL;
                    for (int j = 0; j < n; j++)
                        if (!mk || mk[(size_t)i * n + j]) dc->rel[ps->a][off + j] = 1;
                    break;
                }
                default: break;
                }
            }
        }
    }
}

/* ---------- driving an MLP with the labelled encoding of its inputs ---------- */

/* The block whose MLP computes s-op `label` (from `layers`), or -1. */
static int mlp_block(const Model *m, const char *label)
{
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl; l++) {
        json_t *mlp = json_object_get(json_array_get(m->layers, l), "mlp");
        for (size_t i = 0; i < json_array_size(mlp); i++) {
            const char *lb = json_string_value(json_object_get(json_array_get(mlp, i), "label"));
            if (lb && !strcmp(lb, label)) return (int)l;
        }
    }
    return -1;
}

/* The residual dimension of `one`, or -1. */
static int one_dim(const Dc *dc)
{
    const DecSop *o = dec_layout_find(&dc->lay, "one");
    return o && !o->isvirtual && o->ndims == 1 ? o->dims[0] : -1;
}

/* For a map or sequence map whose operands and result have residual dimensions: the table
 * its MLP computes on every pair of operand values, driven with their one-hot labels (and
 * `one`) alone, decoded like the residual. Entries: dictionary indices of s, RASP_NONE, or
 * DC_UNSET where it cannot be driven. NULL when the op cannot be driven at all. */
static int32_t *driven_table(Dc *dc, int s, int nA, int nB)
{
    const Model *m = dc->m;
    const RaspSop *ps = &dc->p->sops[s];
    int l = mlp_block(m, ps->label);
    const DecSop *rs = ro_find(&dc->lay, ps);
    const DecSop *ra = ro_find(&dc->lay, &dc->p->sops[ps->a]);
    const DecSop *rb = ps->op == SOP_SEQMAP ? ro_find(&dc->lay, &dc->p->sops[ps->b]) : NULL;
    if (l < 0 || !rs || rs->isvirtual || !rs->categorical || !ra || ra->isvirtual || !ra->categorical ||
        (ps->op == SOP_SEQMAP && (!rb || rb->isvirtual || !rb->categorical)) ||
        (long)nA * nB > 100000)
        return NULL;
    int C = m->cfg.d_model, M = m->cfg.d_mlp;
    double gain = 1;
    json_t *o = json_is_object(m->compiler) ? json_object_get(m->compiler, "options") : NULL;
    if (o && json_is_number(json_object_get(o, "embed_gain"))) gain = json_number_value(json_object_get(o, "embed_gain"));
    int one = one_dim(dc);
    /* each dictionary value's dimension, for the operands */
    int *dimA = xmalloc(sizeof(int) * (size_t)(nA + 1)), *dimB = xmalloc(sizeof(int) * (size_t)(nB + 1));
    for (int i = 0; i < nA; i++) dimA[i] = -1;
    for (int i = 0; i < nB; i++) dimB[i] = -1;
    for (int side = 0; side < (rb ? 2 : 1); side++) {
        const DecSop *r = side ? rb : ra;
        const DcDict *d = &dc->dict[side ? ps->b : ps->a];
        for (int f = 0; f < r->ndims; f++) {
            int idx = dc_dict_find(d, r->values[f]);
            if (idx >= 0 && idx < (side ? nB : nA)) (side ? dimB : dimA)[idx] = r->dims[f];
        }
    }
    const float *W_in = m->params.W_in + (size_t)l * C * M, *b_in = m->params.b_in + (size_t)l * M;
    const float *W_out = m->params.W_out + (size_t)l * M * C, *b_out = m->params.b_out + (size_t)l * C;
    int32_t *t = xmalloc(sizeof(int32_t) * (size_t)nA * (size_t)nB + 1);
    double *h = xmalloc(sizeof(double) * (size_t)(M + 1));
    for (int a = 0; a < nA; a++)
        for (int b = 0; b < nB; b++) {
            int32_t *out = &t[(size_t)a * nB + b];
            *out = DC_UNSET;
            if (dimA[a] < 0 || (rb && dimB[b] < 0)) continue;
            /* x: one, and the operands' one-hots (at the embedding's gain for tokens and
             * indices, which the compiler scales with it) */
            int dims[3] = {one, dimA[a], rb ? dimB[b] : -1};
            double val[3] = {gain, ps->a <= 1 || dc->p->sops[ps->a].op == SOP_TOKENS || dc->p->sops[ps->a].op == SOP_INDICES ? gain : 1,
                             rb && (dc->p->sops[ps->b].op == SOP_TOKENS || dc->p->sops[ps->b].op == SOP_INDICES) ? gain : 1};
            for (int j = 0; j < M; j++) {
                double z = b_in[j];
                for (int k = 0; k < 3; k++)
                    if (dims[k] >= 0) z += val[k] * W_in[(size_t)dims[k] * M + j];
                h[j] = z > 0 ? z : 0;
            }
            int best = -1;
            double bv = 0;
            for (int f = 0; f < rs->ndims; f++) {
                int dim = rs->dims[f];
                double y = b_out[dim];
                for (int k = 0; k < 3; k++)
                    if (dims[k] == dim) y += val[k];
                for (int j = 0; j < M; j++) y += h[j] * W_out[(size_t)j * C + dim];
                if (best < 0 || y > bv) best = f, bv = y;
            }
            if (best >= 0 && bv > DEC_NONE_BELOW) *out = dc_dict_add(&dc->dict[s], rs->values[best], &dc->arena);
            else *out = RASP_NONE;
        }
    free(h);
    free(dimA);
    free(dimB);
    return t;
}

/* For a categorical aggregate whose value operand and result have residual dimensions: what
 * its head's OV circuit writes for each value of the operand (a key holding that value's
 * one-hot label and `one`, attended alone), decoded like the residual; as driven_table. */
static int32_t *driven_ov(Dc *dc, int s, int nA)
{
    const Model *m = dc->m;
    const RaspSop *ps = &dc->p->sops[s];
    const DecSop *rs = ro_find(&dc->lay, ps);
    const DecSop *ra = ro_find(&dc->lay, &dc->p->sops[ps->a]);
    if (!rs || rs->isvirtual || !rs->categorical || !ra || ra->isvirtual || !ra->categorical)
        return NULL;
    int blk = -1, head = -1;
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl && blk < 0; l++) {
        json_t *attn = json_object_get(json_array_get(m->layers, l), "attn");
        for (size_t i = 0; i < json_array_size(attn) && blk < 0; i++) {
            json_t *e = json_array_get(attn, i);
            const char *lb = json_string_value(json_object_get(e, "label"));
            const char *op = json_string_value(json_object_get(e, "op"));
            json_t *hd = json_object_get(e, "head");
            if (lb && op && !strcmp(lb, ps->label) && !strcmp(op, "aggregate") && json_is_integer(hd) &&
                json_integer_value(hd) >= 0 && json_integer_value(hd) < m->cfg.n_heads)
                blk = (int)l, head = (int)json_integer_value(hd);
        }
    }
    if (blk < 0) return NULL;
    int C = m->cfg.d_model, NH = m->cfg.n_heads, HD = m->cfg.d_head;
    double gain = 1;
    json_t *o = json_is_object(m->compiler) ? json_object_get(m->compiler, "options") : NULL;
    if (o && json_is_number(json_object_get(o, "embed_gain"))) gain = json_number_value(json_object_get(o, "embed_gain"));
    int one = one_dim(dc);
    const RaspSop *pa = &dc->p->sops[ps->a];
    double va = pa->op == SOP_TOKENS || pa->op == SOP_INDICES ? gain : 1;
    size_t hb = ((size_t)blk * NH + (size_t)head);
    const float *W_V = m->params.W_V + hb * (size_t)C * HD, *b_V = m->params.b_V + hb * (size_t)HD;
    const float *W_O = m->params.W_O + hb * (size_t)HD * C, *b_O = m->params.b_O + (size_t)blk * C;
    int32_t *t = xmalloc(sizeof(int32_t) * (size_t)(nA + 1));
    double *z = xmalloc(sizeof(double) * (size_t)(HD + 1));
    for (int a = 0; a < nA; a++) t[a] = DC_UNSET;
    for (int f = 0; f < ra->ndims; f++) {
        int dim = ra->dims[f];
        int a = dc_dict_find(&dc->dict[ps->a], ra->values[f]);
        if (a < 0 || a >= nA) continue;
        for (int k = 0; k < HD; k++) {
            z[k] = b_V[k] + va * W_V[(size_t)dim * HD + k];
            if (one >= 0) z[k] += gain * W_V[(size_t)one * HD + k];
        }
        int best = -1;
        double bv = 0;
        for (int g = 0; g < rs->ndims; g++) {
            int od = rs->dims[g];
            double y = b_O[od];
            for (int k = 0; k < HD; k++) y += z[k] * W_O[(size_t)k * C + od];
            if (best < 0 || y > bv) best = g, bv = y;
        }
        if (best >= 0 && bv > DEC_NONE_BELOW) t[a] = dc_dict_add(&dc->dict[s], rs->values[best], &dc->arena);
        else t[a] = RASP_NONE;
    }
    free(z);
    return t;
}

/* For a select whose keys and queries have residual (categorical) dimensions: its predicate
 * as the head's QK circuit alone gives it. Each query value's label (and `one`) is scored
 * against each key value's label (and `one`) and against BOS as embedded at position 0. A
 * compiled head scores BOS between the selected and the other keys (an aggregate's) or level
 * with the selected ones (a selector width's), so a key value is selected when it scores above
 * BOS (resp. not below it) by more than a quarter of the row's spread. Entries 0/1, or 2
 * where a row has no spread (no selection in the scores: not judged); NULL when the select
 * cannot be driven. (nK * nQ), over the dictionaries. */
static uint8_t *driven_qk(Dc *dc, int sel, int nK, int nQ)
{
    const Model *m = dc->m;
    const RaspSel *ps = &dc->p->sels[sel];
    int h = dc->sel_head[sel];
    const DecSop *rk = ro_find(&dc->lay, &dc->p->sops[ps->keys]);
    const DecSop *rq = ro_find(&dc->lay, &dc->p->sops[ps->queries]);
    if (h < 0 || !rk || rk->isvirtual || !rk->categorical || !rq || rq->isvirtual || !rq->categorical ||
        m->bos < 0 || m->bos >= m->cfg.d_vocab || !m->params.W_pos)
        return NULL;
    int C = m->cfg.d_model, NH = m->cfg.n_heads, HD = m->cfg.d_head;
    int blk = h / NH, head = h % NH, sw = dc->head_sw[h];
    double gain = 1;
    json_t *o = json_is_object(m->compiler) ? json_object_get(m->compiler, "options") : NULL;
    if (o && json_is_number(json_object_get(o, "embed_gain"))) gain = json_number_value(json_object_get(o, "embed_gain"));
    int one = one_dim(dc);
    size_t hb = (size_t)blk * NH + (size_t)head;
    const float *W_Q = m->params.W_Q + hb * (size_t)C * HD, *b_Q = m->params.b_Q + hb * (size_t)HD;
    const float *W_K = m->params.W_K + hb * (size_t)C * HD, *b_K = m->params.b_K + hb * (size_t)HD;
    /* key vectors: one per key value, and BOS's (index nK) */
    double *kv = xcalloc((size_t)(nK + 1) * (size_t)HD + 1, sizeof(double)), *qv = xmalloc(sizeof(double) * (size_t)(HD + 1));
    uint8_t *kok = xcalloc((size_t)nK + 1, 1);
    const RaspSop *pk = &dc->p->sops[ps->keys], *pq = &dc->p->sops[ps->queries];
    double gk = pk->op == SOP_TOKENS || pk->op == SOP_INDICES ? gain : 1, gq = pq->op == SOP_TOKENS || pq->op == SOP_INDICES ? gain : 1;
    for (int f = 0; f < rk->ndims; f++) {
        int a = dc_dict_find(&dc->dict[ps->keys], rk->values[f]);
        if (a < 0 || a >= nK) continue;
        kok[a] = 1;
        for (int k = 0; k < HD; k++) {
            double z = b_K[k] + gk * W_K[(size_t)rk->dims[f] * HD + k];
            if (one >= 0) z += gain * W_K[(size_t)one * HD + k];
            kv[(size_t)a * HD + k] = z;
        }
    }
    const float *xb = m->params.W_E + (size_t)m->bos * C, *pb = m->params.W_pos;
    for (int k = 0; k < HD; k++) {
        double z = b_K[k];
        for (int c = 0; c < C; c++) z += ((double)xb[c] + pb[c]) * W_K[(size_t)c * HD + k];
        kv[(size_t)nK * HD + k] = z;
    }
    uint8_t *t = xmalloc((size_t)nK * (size_t)nQ + 1);
    memset(t, 2, (size_t)nK * (size_t)nQ);
    double *sc = xmalloc(sizeof(double) * (size_t)(nK + 2));
    for (int f = 0; f < rq->ndims; f++) {
        int q = dc_dict_find(&dc->dict[ps->queries], rq->values[f]);
        if (q < 0 || q >= nQ) continue;
        for (int k = 0; k < HD; k++) {
            qv[k] = b_Q[k] + gq * W_Q[(size_t)rq->dims[f] * HD + k];
            if (one >= 0) qv[k] += gain * W_Q[(size_t)one * HD + k];
        }
        double lo = 0, hi = 0;
        for (int a = 0; a <= nK; a++) {
            if (a < nK && !kok[a]) continue;
            double z = 0;
            for (int k = 0; k < HD; k++) z += qv[k] * kv[(size_t)a * HD + k];
            sc[a] = z;
            if (a == 0 || z < lo) lo = a == 0 ? z : lo < z ? lo : z;
            if (a == 0 || z > hi) hi = a == 0 ? z : hi > z ? hi : z;
        }
        lo = sc[nK] < lo ? sc[nK] : lo;
        hi = sc[nK] > hi ? sc[nK] : hi;
        double eps = 0.25 * (hi - lo);
        if (!(hi - lo > 1e-6 * (1 + fabs(hi)))) continue;
        for (int a = 0; a < nK; a++) {
            if (!kok[a]) continue;
            t[(size_t)a * nQ + q] = (uint8_t)(sw ? sc[a] > sc[nK] - eps : sc[a] > sc[nK] + eps);
        }
    }
    free(sc);
    free(kv);
    free(qv);
    free(kok);
    return t;
}

/* ---------- per op ---------- */

static void fill_val_from_table(Dc *dc, int s)
{
    const RaspSop *ps = &dc->p->sops[s];
    DcRec *r = &dc->rec[s];
    int32_t *v = dc->val[s];
    for (long pos = 0; pos < dc->npos; pos++) {
        int32_t a = dc->val[ps->a][pos], out = RASP_NONE;
        if (ps->op == SOP_MAP) {
            if (a >= 0 && a < r->ntable) out = r->table[a];
        } else {
            int32_t b = dc->val[ps->b][pos];
            if (a >= 0 && b >= 0 && b < r->nb && (long)a * r->nb + b < r->ntable) out = r->table[(size_t)a * r->nb + b];
        }
        v[pos] = out < 0 ? RASP_NONE : out;
    }
}

static void recover_map(Dc *dc, int s)
{
    const RaspProgram *p = dc->p;
    const RaspSop *ps = &p->sops[s];
    DcRec *r = &dc->rec[s];
    int nA = dc->dict[ps->a].n, nA0 = p->sops[ps->a].nvals;
    int nB = ps->op == SOP_SEQMAP ? dc->dict[ps->b].n : 1, nB0 = ps->op == SOP_SEQMAP ? p->sops[ps->b].nvals : 1;
    if ((long)nA * nB > RASP_MAX_TABLE) {
        r->note = "domain too large to tabulate: kept as written";
        r->form = "unchanged";
        r->ntable = nA0 * nB0;
        r->nb = nB0;
        r->table = xmalloc(sizeof(int32_t) * (size_t)(r->ntable + 1));
        for (int i = 0; i < r->ntable; i++) r->table[i] = ps->table[i] < 0 ? RASP_NONE : ps->table[i];
        fill_val_from_table(dc, s);
        return;
    }
    r->ntable = nA * nB;
    r->nb = nB;
    r->table = xmalloc(sizeof(int32_t) * (size_t)(r->ntable + 1));
    int32_t *orig = xmalloc(sizeof(int32_t) * (size_t)(r->ntable + 1));
    for (int a = 0; a < nA; a++)
        for (int b = 0; b < nB; b++) {
            int32_t o = DC_UNSET;
            if (a < nA0 && b < nB0) {
                o = ps->table[(size_t)a * nB0 + b];
                if (o == RASP_IMPOSSIBLE) o = DC_UNSET;
            }
            orig[(size_t)a * nB + b] = o;
            r->table[(size_t)a * nB + b] = o;
        }
    ObsList l = {0};
    if (dc->dec[s]) {
        for (long pos = 0; pos < dc->npos; pos++) {
            if (!dc->rel[s][pos]) continue;
            int32_t a = dc->val[ps->a][pos], b = ps->op == SOP_SEQMAP ? dc->val[ps->b][pos] : 0;
            int32_t y = obs_of(dc, s, pos);
            if (a < 0 || b < 0 || y == DC_UNREAD) continue;
            obs_add(&l, (int64_t)a * nB + b, y);
        }
    } else {
        r->note = "no residual dimensions (folded into its reader): kept as written";
    }
    int32_t *best = xmalloc(sizeof(int32_t) * (size_t)(r->ntable + 1));
    for (int i = 0; i < r->ntable; i++) best[i] = DC_UNSET;
    r->nobs = l.n;
    r->nexpl = obs_best(&l, best, r->ntable, orig);
    r->seen = xcalloc((size_t)r->ntable + 1, 1);
    for (int i = 0; i < r->ntable; i++) {
        if (best[i] == DC_UNSET) continue;
        r->seen[i] = best[i] != RASP_NONE;
        if (best[i] == RASP_NONE && orig[i] != RASP_NONE && orig[i] != DC_UNSET) {
            /* a map cannot write "no value" for a value: keep the original entry */
            continue;
        }
        if (best[i] != orig[i]) r->changed = 1;
        r->table[i] = best[i];
    }
    /* the MLP driven with each operand value's labels: a weight-level reading of the
     * whole domain, which fills entries the samples never reached and says how far the
     * weights agree with the table read from the samples */
    int32_t *drv = driven_table(dc, s, nA, nB);
    if (drv) {
        long agree = 0, n = 0;
        for (int i = 0; i < r->ntable; i++) {
            if (drv[i] == DC_UNSET) continue;
            if (r->seen[i]) {
                n++;
                agree += drv[i] == r->table[i];
            } else if (drv[i] >= 0 && drv[i] != r->table[i] && r->table[i] != DC_UNSET) {
                /* an unobserved entry where the weights say something else */
                r->driven_differs++;
            }
        }
        r->driven_n = n;
        r->driven_agree = agree;
    }
    free(drv);
    free(best);
    free(orig);
    free(l.o);
    fill_val_from_table(dc, s);
    /* a map always has a value: where its dimensions decode to none (drifted below the
     * decoder's threshold, yet still read by its readers, as a fine-tuned Counter's is_a
     * is by the selector width's head), the decompiled program holds the table's value */
    if (is_residual(dc, s))
        for (long pos = 0; pos < dc->npos; pos++)
            if (dc->dec[s][pos] >= 0 || dc->val[s][pos] < 0) dc->val[s][pos] = dc->dec[s][pos] == DC_UNREAD ? RASP_NONE : dc->dec[s][pos];
}

static void recover_select(Dc *dc, int sel)
{
    const RaspProgram *p = dc->p;
    const RaspSel *ps = &p->sels[sel];
    DcSelRec *r = &dc->srec[sel];
    if (ps->op != SEL_SELECT) return;
    int K = ps->keys, Q = ps->queries;
    int nK = dc->dict[K].n, nQ = dc->dict[Q].n, nK0 = p->sops[K].nvals, nQ0 = p->sops[Q].nvals;
    r->nk = nK;
    r->nq = nQ;
    r->pred = xcalloc((size_t)nK * (size_t)nQ + 1, 1);
    for (int k = 0; k < nK0; k++)
        for (int q = 0; q < nQ0; q++) r->pred[(size_t)k * nQ + q] = ps->pred[(size_t)k * nQ0 + q];
    r->form = "unchanged";
    int h = dc->sel_head[sel];
    if (h < 0) return;
    int slot = dc->head_slot[h];
    r->observed = 1;
    long *cs = xcalloc((size_t)nK * (size_t)nQ + 1, sizeof(long)), *ct = xcalloc((size_t)nK * (size_t)nQ + 1, sizeof(long));
    /* the keys' source, when the key s-op is a map the compiler fused into this head (its
     * table may have moved into the head's key weights) */
    const RaspSop *ks = &p->sops[K];
    int fuse = ks->op == SOP_MAP && !is_residual(dc, K);
    int X = fuse ? ks->a : -1, nX = fuse ? dc->dict[X].n : 0;
    long *xs = fuse ? xcalloc((size_t)nX * (size_t)nQ + 1, sizeof(long)) : NULL;
    long *xt = fuse ? xcalloc((size_t)nX * (size_t)nQ + 1, sizeof(long)) : NULL;
    for (int k = 0; k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        const uint8_t *mk = dc->mask[slot] + dc->mask_off[k];
        for (int i = 0; i < n; i++) {
            int32_t qv = dc->val[Q][off + i];
            if (qv < 0 || !dc->selrel[sel][off + i]) continue;
            for (int j = 0; j < n; j++) {
                if (p->causal && j > i) continue;
                int o = mk[(size_t)i * n + j];
                int32_t kv = dc->val[K][off + j];
                if (kv >= 0) {
                    cs[(size_t)kv * nQ + qv] += o;
                    ct[(size_t)kv * nQ + qv]++;
                }
                if (fuse) {
                    int32_t xv = dc->val[X][off + j];
                    if (xv >= 0) {
                        xs[(size_t)xv * nQ + qv] += o;
                        xt[(size_t)xv * nQ + qv]++;
                    }
                }
            }
        }
    }
    long tot = 0, expl = 0;
    uint8_t *pred = xmalloc((size_t)nK * (size_t)nQ + 1);
    memcpy(pred, r->pred, (size_t)nK * nQ);
    r->seen = xcalloc((size_t)nK * (size_t)nQ + 1, 1);
    for (size_t c = 0; c < (size_t)nK * nQ; c++) {
        if (!ct[c]) continue;
        r->seen[c] = 1;
        tot += ct[c];
        int sel1 = 2 * cs[c] > ct[c] || (2 * cs[c] == ct[c] && r->pred[c]);
        expl += sel1 ? cs[c] : ct[c] - cs[c];
        pred[c] = (uint8_t)sel1;
    }
    int adopt_factor = 0;
    int32_t *newmap = NULL;
    long fexpl = 0;
    if (fuse && expl < tot) {
        /* read the head as (new map of X) then the predicate as written: each key source
         * value takes the key value whose predicate row agrees best with what it does */
        newmap = xmalloc(sizeof(int32_t) * (size_t)(nX + 1));
        for (int x = 0; x < nX; x++) {
            long bestv = -1;
            newmap[x] = DC_UNSET;
            for (int kv = 0; kv < nK0; kv++) {
                long agree = 0;
                for (int q = 0; q < nQ; q++) {
                    size_t c = (size_t)x * nQ + q;
                    agree += r->pred[(size_t)kv * nQ + q] ? xs[c] : xt[c] - xs[c];
                }
                if (agree > bestv) bestv = agree, newmap[x] = kv;
            }
            long any = 0;
            for (int q = 0; q < nQ; q++) any += xt[(size_t)x * nQ + q];
            if (!any) newmap[x] = DC_UNSET;
            else fexpl += bestv;
        }
        /* prefer the reading that keeps the written predicate (only the fused map
         * changed) unless a free predicate explains clearly more */
        adopt_factor = fexpl >= expl - (long)(DC_PREFER_STRUCTURE * (double)tot);
    }
    if (adopt_factor) {
        DcRec *kr = &dc->rec[K];
        for (int x = 0; x < nX && x < kr->ntable; x++) {
            if (newmap[x] == DC_UNSET) continue;
            if (kr->table[x] != newmap[x]) kr->changed = 1;
            kr->table[x] = newmap[x];
        }
        if (kr->changed) kr->note = "recovered from the head that reads it (fused into its reader)";
        if (!kr->seen) kr->seen = xcalloc((size_t)kr->ntable + 1, 1);
        for (int x = 0; x < nX && x < kr->ntable; x++) kr->seen[x] = newmap[x] != DC_UNSET;
        fill_val_from_table(dc, K);
        memset(r->seen, 0, (size_t)nK * nQ);   /* the predicate is the original's */
        r->nobs = tot;
        r->nexpl = fexpl;
    } else {
        memcpy(r->pred, pred, (size_t)nK * nQ);
        r->nobs = tot;
        r->nexpl = expl;
        for (int k = 0; k < nK; k++)
            for (int q = 0; q < nQ; q++) {
                int o = k < nK0 && q < nQ0 ? ps->pred[(size_t)k * nQ0 + q] : 0;
                if (ct[(size_t)k * nQ + q] && r->pred[(size_t)k * nQ + q] != o) r->changed = 1;
            }
    }
    /* the QK circuit alone: how far it agrees with the predicate read from the attention */
    uint8_t *qk = driven_qk(dc, sel, nK, nQ);
    for (size_t c = 0; qk && c < (size_t)nK * nQ; c++) {
        if (qk[c] == 2) continue;
        if (r->seen[c]) {
            r->qk_n++;
            r->qk_agree += qk[c] == r->pred[c];
        } else if (qk[c] != r->pred[c]) r->qk_differs++;
    }
    free(qk);
    free(newmap);
    free(pred);
    free(cs);
    free(ct);
    free(xs);
    free(xt);
}

/* The values s-op A would have if computed as written from what its operands hold (a
 * selector width: the width of its recovered selector; a map: its original table), when its
 * own residual dimensions no longer carry it: a fine-tuned reader may read the scratch or
 * operands instead. NULL for other ops. */
static int32_t *values_as_written(Dc *dc, int A)
{
    const RaspProgram *p = dc->p;
    const RaspSop *pa = &p->sops[A];
    if (pa->op != SOP_SELWIDTH && pa->op != SOP_MAP) return NULL;
    int32_t *v = xmalloc(sizeof(int32_t) * (size_t)(dc->npos + 1));
    char buf[32];
    for (int k = 0; k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        for (int i = 0; i < n; i++) {
            int32_t x = RASP_NONE;
            if (pa->op == SOP_SELWIDTH) {
                int cnt = 0;
                for (int j = 0; j < n; j++) cnt += dc_selects(dc, pa->sel, k, i, j);
                snprintf(buf, sizeof buf, "%d", cnt);
                x = dc_dict_find(&dc->dict[A], buf);
            } else {
                int32_t a = dc->val[pa->a][off + i];
                if (a >= 0 && a < p->sops[pa->a].nvals) x = pa->table[a];
            }
            v[off + i] = x < 0 ? RASP_NONE : x;
        }
    }
    return v;
}

/* Observations of a categorical aggregate: (value of A common to the selected keys, the
 * decoded output), and (nA, output) where nothing is selected (the default). Returns how
 * many positions answer a value although every selected key has none: no table over A
 * explains those (the reader takes its value from elsewhere than A's dimensions), so they
 * count as observations the reading leaves unexplained. */
static long aggregate_obs(Dc *dc, int s, const int32_t *valA, int nA, ObsList *l)
{
    long lost = 0;
    const RaspSop *ps = &dc->p->sops[s];
    for (int k = 0; k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        for (int i = 0; i < n; i++) {
            int32_t y = obs_of(dc, s, off + i);
            if (y == DC_UNREAD || !dc->rel[s][off + i]) continue;
            int cnt = 0, same = 1;
            int32_t v0 = RASP_NONE;
            for (int j = 0; j < n; j++) {
                if (!dc_selects(dc, ps->sel, k, i, j)) continue;
                int32_t v = valA[off + j];
                if (cnt == 0) v0 = v;
                else if (v != v0) same = 0;
                cnt++;
            }
            if (cnt == 0) obs_add(l, nA, y);
            else if (same && v0 >= 0) obs_add(l, v0, y);
            else if (same && y >= 0) lost++;
        }
    }
    return lost;
}

/* Solves g x = b (n x n, row-major) in place by elimination with partial pivoting; 0 when
 * singular. */
static int solve(double *g, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(g[(size_t)r * n + c]) > fabs(g[(size_t)piv * n + c])) piv = r;
        if (fabs(g[(size_t)piv * n + c]) < 1e-12) return 0;
        if (piv != c) {
            for (int k = 0; k < n; k++) {
                double t = g[(size_t)c * n + k];
                g[(size_t)c * n + k] = g[(size_t)piv * n + k];
                g[(size_t)piv * n + k] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = g[(size_t)r * n + c] / g[(size_t)c * n + c];
            if (f == 0) continue;
            for (int k = c; k < n; k++) g[(size_t)r * n + k] -= f * g[(size_t)c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = 0; c < n; c++) b[c] /= g[(size_t)c * n + c];
    return 1;
}

/* A numerical aggregate re-tabulated: the model's value at a query is the mean, over the
 * selected keys, of f(value), so f is the least-squares solution over the observations (one
 * unknown per operand value ever selected), rounded to 6 significant digits; the default is
 * the most frequent value where nothing is selected. Adopted (r->table, r->seen, r->deflt,
 * changed) when it differs from the op as written and explains more observations; returns
 * 1 then. */
static int numerical_table(Dc *dc, int s)
{
    const RaspSop *ps = &dc->p->sops[s];
    DcRec *r = &dc->rec[s];
    int A = ps->a;
    DcDict *dA = &dc->dict[A], *dS = &dc->dict[s];
    int nA = dA->n;
    if (!dc->dec[s] || nA > 256) return 0;
    /* the observations: per query, the share of each operand value among the selected keys */
    long nobs = 0, cap = 0;
    double *share = NULL, *ys = NULL;
    ObsList dl = {0};
    double *w = xcalloc((size_t)nA + 1, sizeof(double));
    for (int k = 0; k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        for (int i = 0; i < n; i++) {
            int32_t y = obs_of(dc, s, off + i);
            if (!dc->rel[s][off + i] || y < 0) continue;
            int cnt = 0, ok = 1;
            memset(w, 0, sizeof(double) * (size_t)nA);
            for (int j = 0; j < n; j++) {
                if (!dc_selects(dc, ps->sel, k, i, j)) continue;
                int32_t v = dc->val[A][off + j];
                if (v < 0 || v >= nA) ok = 0;
                else w[v] += 1;
                cnt++;
            }
            if (!ok) continue;
            if (!cnt) {
                obs_add(&dl, 0, y);
                continue;
            }
            if (nobs == cap) {
                cap = cap ? 2 * cap : 256;
                share = xrealloc(share, sizeof(double) * (size_t)cap * (size_t)nA);
                ys = xrealloc(ys, sizeof(double) * (size_t)cap);
            }
            for (int u = 0; u < nA; u++) share[(size_t)nobs * nA + u] = w[u] / cnt;
            ys[nobs++] = val_as_double(dS->val[y]);
        }
    }
    free(w);
    /* the unknowns: the values ever selected; normal equations over them */
    int *col = xmalloc(sizeof(int) * (size_t)(nA + 1)), m = 0;
    for (int u = 0; u < nA; u++) {
        col[u] = -1;
        for (long o = 0; o < nobs && col[u] < 0; o++)
            if (share[(size_t)o * nA + u] > 0) col[u] = m++;
    }
    double *g = xcalloc((size_t)m * (size_t)m + 1, sizeof(double)), *f = xcalloc((size_t)m + 1, sizeof(double));
    for (long o = 0; o < nobs; o++)
        for (int u = 0; u < nA; u++) {
            double su = share[(size_t)o * nA + u];
            if (col[u] < 0 || !su) continue;
            f[col[u]] += su * ys[o];
            for (int v = 0; v < nA; v++)
                if (col[v] >= 0) g[(size_t)col[u] * m + col[v]] += su * share[(size_t)o * nA + v];
        }
    int adopted = 0;
    if (m > 0 && solve(g, f, m)) {
        int32_t *tab = xmalloc(sizeof(int32_t) * (size_t)(nA + 1));
        char buf[64];
        int differs = 0;
        for (int u = 0; u < nA; u++) {
            tab[u] = DC_UNSET;
            if (col[u] < 0) continue;
            double x = f[col[u]];
            snprintf(buf, sizeof buf, "%.6g", fabs(x) < 1e-9 ? 0.0 : x);
            tab[u] = dc_dict_add(dS, buf, &dc->arena);
            double orig = val_as_double(dA->val[u]);
            differs |= fabs(val_as_double(dS->val[tab[u]]) - orig) > 1e-3 * fmax(1, fabs(orig));
        }
        long expl = 0;
        for (long o = 0; o < nobs; o++) {
            double pred = 0;
            for (int u = 0; u < nA; u++)
                if (col[u] >= 0) pred += share[(size_t)o * nA + u] * val_as_double(dS->val[tab[u]]);
            expl += fabs(pred - ys[o]) <= 1e-3 * fmax(1, fabs(ys[o]));
        }
        /* the default: the most frequent value where nothing is selected */
        int32_t dflt = r->deflt;
        long dexpl = 0;
        if (dl.n) {
            int32_t best = DC_UNSET;
            dexpl = obs_best(&dl, &best, 1, NULL);
            dflt = best;
        }
        if ((differs || dflt != r->deflt) && expl + dexpl > r->nexpl) {
            adopted = 1;
            r->changed = 1;
            r->form = "value mapping";
            r->nexpl = expl + dexpl;
            r->nobs = nobs + dl.n;
            if (!r->seen) r->seen = xcalloc((size_t)nA + 1, 1);
            for (int u = 0; u < nA; u++) {
                r->seen[u] = tab[u] >= 0;
                r->table[u] = tab[u] >= 0 ? tab[u] : carry(dc, dS, dA, u);
            }
            r->deflt = dflt;
            r->note = "a numerical aggregate re-tabulated: the mean of a value mapping (least squares over the observations)";
        }
        free(tab);
    }
    free(g);
    free(f);
    free(col);
    free(share);
    free(ys);
    free(dl.o);
    return adopted;
}

static void recover_aggregate(Dc *dc, int s)
{
    const RaspProgram *p = dc->p;
    const RaspSop *ps = &p->sops[s];
    DcRec *r = &dc->rec[s];
    int A = ps->a;
    DcDict *dA = &dc->dict[A], *dS = &dc->dict[s];
    int nA = dA->n;
    r->ntable = nA;
    r->table = xmalloc(sizeof(int32_t) * (size_t)(nA + 1));
    int32_t *ident = xmalloc(sizeof(int32_t) * (size_t)(nA + 2));
    int numerical = ps->enc == ENC_NUMERICAL;
    for (int a = 0; a < nA; a++) ident[a] = r->table[a] = numerical ? DC_UNSET : carry(dc, dS, dA, a);
    ident[nA] = ps->deflt;
    r->deflt = ps->deflt;
    if (numerical) {
        long nnum = 0, num_ok = 0;
        for (int k = 0; k < dc->nsamples; k++) {
            int n = dc->sample_len[k];
            long off = dc->sample_off[k];
            for (int i = 0; i < n; i++) {
                int32_t y = obs_of(dc, s, off + i);
                if (!dc->rel[s][off + i]) continue;
                int cnt = 0;
                double sum = 0;
                for (int j = 0; j < n; j++) {
                    if (!dc_selects(dc, ps->sel, k, i, j)) continue;
                    int32_t v = dc->val[A][off + j];
                    sum += v >= 0 ? val_as_double(dA->val[v]) : 0;
                    cnt++;
                }
                double mean = cnt ? sum / cnt : (ps->deflt >= 0 ? val_as_double(ps->vals[ps->deflt]) : 0);
                if (y < 0) continue;
                nnum++;
                double yv = val_as_double(dS->val[y]);
                num_ok += fabs(yv - mean) <= 1e-3 * fmax(1, fabs(mean));
            }
        }
        r->nobs = nnum;
        r->nexpl = num_ok;
        r->form = "unchanged";
        if (num_ok < nnum && !numerical_table(dc, s)) r->note = "a numerical aggregate that no value mapping explains better: kept as written";
    } else if (dc->dec[s]) {
        ObsList l = {0}, l2 = {0};
        long lost = aggregate_obs(dc, s, dc->val[A], nA, &l);
        int32_t *best = xmalloc(sizeof(int32_t) * (size_t)(nA + 2));
        for (int a = 0; a <= nA; a++) best[a] = DC_UNSET;
        r->nobs = l.n + lost;
        r->nexpl = obs_best(&l, best, nA + 1, ident);
        /* the reader may now take its value operand from elsewhere than the operand's
         * dimensions: try the operand as written */
        int32_t *alt = r->nexpl < r->nobs && is_residual(dc, A) ? values_as_written(dc, A) : NULL;
        if (alt) {
            long lost2 = aggregate_obs(dc, s, alt, nA, &l2);
            int32_t *best2 = xmalloc(sizeof(int32_t) * (size_t)(nA + 2));
            for (int a = 0; a <= nA; a++) best2[a] = DC_UNSET;
            long e2 = obs_best(&l2, best2, nA + 1, ident), n2 = l2.n + lost2;
            if (n2 && (double)e2 / (double)n2 > (double)r->nexpl / (double)(r->nobs ? r->nobs : 1)) {
                memcpy(best, best2, sizeof(int32_t) * (size_t)(nA + 1));
                r->nobs = n2;
                r->nexpl = e2;
                memcpy(dc->val[A], alt, sizeof(int32_t) * (size_t)dc->npos);
                DcRec *ar = &dc->rec[A];
                if (ar->changed) {
                    /* A keeps its written form: its reader uses that, not A's dimensions */
                    const RaspSop *pa = &p->sops[A];
                    for (int i = 0; i < ar->ntable; i++) {
                        if (pa->op == SOP_MAP) ar->table[i] = i < pa->nvals ? pa->table[i] : DC_UNSET;
                        else {
                            char buf[32];
                            snprintf(buf, sizeof buf, "%d", i);
                            ar->table[i] = dc_dict_find(&dc->dict[A], buf);
                        }
                    }
                    ar->changed = 0;
                }
                ar->note = "its reader no longer takes it from its residual dimensions: kept as written, "
                           "the reader explained through it (the fidelity of its dimensions says how far they drifted)";
            }
            free(best2);
            free(alt);
        }
        r->seen = xcalloc((size_t)nA + 1, 1);
        for (int a = 0; a < nA; a++) {
            if (best[a] == DC_UNSET || best[a] == RASP_NONE) continue;
            r->seen[a] = 1;
            if (best[a] != ident[a]) r->changed = 1;
            r->table[a] = best[a];
        }
        if (best[nA] != DC_UNSET && best[nA] != r->deflt) {
            r->changed = 1;
            r->deflt = best[nA];
        }
        /* the OV circuit driven with each value's label */
        int32_t *drv = driven_ov(dc, s, nA);
        for (int a = 0; drv && a < nA; a++) {
            if (drv[a] == DC_UNSET) continue;
            if (r->seen[a]) {
                r->driven_n++;
                r->driven_agree += drv[a] == r->table[a];
            } else if (drv[a] >= 0 && drv[a] != r->table[a] && r->table[a] != DC_UNSET) r->driven_differs++;
        }
        free(drv);
        free(best);
        free(l.o);
        free(l2.o);
    } else r->note = "not readable: kept as written";
    free(ident);
    /* values */
    if (is_residual(dc, s)) {
        for (long pos = 0; pos < dc->npos; pos++) dc->val[s][pos] = dc->dec[s][pos] == DC_UNREAD ? RASP_NONE : dc->dec[s][pos];
        return;
    }
    for (int k = 0; k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        for (int i = 0; i < n; i++) {
            int cnt = 0, same = 1;
            int32_t v0 = RASP_NONE;
            for (int j = 0; j < n; j++) {
                if (!dc_selects(dc, ps->sel, k, i, j)) continue;
                int32_t v = dc->val[A][off + j];
                if (cnt == 0) v0 = v;
                else if (v != v0) same = 0;
                cnt++;
            }
            int32_t cv = cnt == 0 ? r->deflt : (same && v0 >= 0 && !numerical ? r->table[v0] : RASP_NONE);
            dc->val[s][off + i] = cv < 0 ? RASP_NONE : cv;
        }
    }
}

static void recover_selwidth(Dc *dc, int s)
{
    const RaspProgram *p = dc->p;
    const RaspSop *ps = &p->sops[s];
    DcRec *r = &dc->rec[s];
    DcDict *dS = &dc->dict[s];
    int W = p->max_len + 1;
    r->ntable = W;
    r->table = xmalloc(sizeof(int32_t) * (size_t)(W + 1));
    int32_t *ident = xmalloc(sizeof(int32_t) * (size_t)(W + 1));
    char buf[32];
    for (int w = 0; w < W; w++) {
        snprintf(buf, sizeof buf, "%d", w);
        int idx = dc_dict_find(dS, buf);
        if (idx < 0)
            for (int k = 0; k < dS->n && idx < 0; k++)
                if (val_is_number(dS->val[k]) && dS->val[k].kind != VAL_BOOL && val_as_double(dS->val[k]) == w) idx = k;
        ident[w] = r->table[w] = idx >= 0 ? idx : DC_UNSET;
    }
    ObsList l = {0};
    long lost = 0;
    int32_t *width = xmalloc(sizeof(int32_t) * (size_t)(dc->npos + 1));
    for (int k = 0; k < dc->nsamples; k++) {
        int n = dc->sample_len[k];
        long off = dc->sample_off[k];
        for (int i = 0; i < n; i++) {
            int cnt = 0;
            for (int j = 0; j < n; j++) cnt += dc_selects(dc, ps->sel, k, i, j);
            width[off + i] = cnt;
            int32_t y = obs_of(dc, s, off + i);
            if (y == DC_UNREAD || !dc->dec[s] || !dc->rel[s][off + i]) continue;
            /* a selector width always has a value: where its dimensions hold none they
             * no longer carry it, which no table explains */
            if (y >= 0) obs_add(&l, cnt, y);
            else lost++;
        }
    }
    int32_t *best = xmalloc(sizeof(int32_t) * (size_t)(W + 1));
    for (int w = 0; w < W; w++) best[w] = DC_UNSET;
    r->nobs = l.n + lost;
    r->nexpl = obs_best(&l, best, W, ident);
    r->seen = xcalloc((size_t)W + 1, 1);
    for (int w = 0; w < W; w++) {
        if (best[w] == DC_UNSET || best[w] == RASP_NONE) continue;
        r->seen[w] = 1;
        if (best[w] != ident[w]) r->changed = 1;
        r->table[w] = best[w];
    }
    if (!dc->dec[s]) r->note = "not readable: kept as written";
    for (long pos = 0; pos < dc->npos; pos++) {
        int32_t v = is_residual(dc, s) ? dc->dec[s][pos] : r->table[width[pos]];
        dc->val[s][pos] = v < 0 ? RASP_NONE : v;
    }
    free(best);
    free(ident);
    free(width);
    free(l.o);
}

void dc_recover(Dc *dc)
{
    const RaspProgram *p = dc->p;
    dc->val = xcalloc((size_t)p->nsops + 1, sizeof(int32_t *));
    dc->rec = xcalloc((size_t)p->nsops + 1, sizeof(DcRec));
    dc->srec = xcalloc((size_t)p->nsels + 1, sizeof(DcSelRec));
    /* selectors are recovered right before their first reader */
    uint8_t *done = xcalloc((size_t)p->nsels + 1, 1);
    relevance(dc);
    for (int s = 0; s < p->nsops; s++) {
        const RaspSop *ps = &p->sops[s];
        if (!ps->used) continue;
        dc->val[s] = xmalloc(sizeof(int32_t) * (size_t)(dc->npos + 1));
        switch (ps->op) {
        case SOP_TOKENS:
        case SOP_INDICES:
            for (int k = 0; k < dc->nsamples; k++)
                for (int i = 0; i < dc->sample_len[k]; i++)
                    dc->val[s][dc->sample_off[k] + i] = ps->op == SOP_TOKENS ? dc->tok[dc->sample_off[k] + i] : i;
            continue;
        case SOP_CONST:
            for (long pos = 0; pos < dc->npos; pos++) dc->val[s][pos] = 0;
            continue;
        case SOP_MAP:
        case SOP_SEQMAP: recover_map(dc, s); break;
        case SOP_AGGREGATE:
        case SOP_SELWIDTH: {
            /* every select below this selector, in id order */
            int stack[64], ns = 0;
            stack[ns++] = ps->sel;
            for (int t = 0; t < ns; t++) {
                const RaspSel *q = &p->sels[stack[t]];
                if ((q->op == SEL_AND || q->op == SEL_OR) && ns < 62) {
                    stack[ns++] = q->a;
                    stack[ns++] = q->b;
                } else if (q->op == SEL_NOT && ns < 63) stack[ns++] = q->a;
            }
            for (int t = ns - 1; t >= 0; t--) {
                if (done[stack[t]]) continue;
                done[stack[t]] = 1;
                if (p->sels[stack[t]].op == SEL_SELECT) recover_select(dc, stack[t]);
            }
            if (ps->op == SOP_AGGREGATE) recover_aggregate(dc, s);
            else recover_selwidth(dc, s);
            break;
        }
        }
        const char *selname = ps->sel >= 0 ? p->sels[ps->sel].label : NULL;
        find_reads(dc, ps->label, selname, &dc->rec[s]);
    }
    free(done);
}
