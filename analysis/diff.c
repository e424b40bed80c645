/* diff.c — see diff.h. */
#include "analysis/diff.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "analysis/readout.h"
#include "analysis/svg.h"
#include "common/rng.h"
#include "compiler/interp/interp.h"
#include "runtime/forward.h"

/* Largest QK/OV/MLP matrix (entries, both models) diff_weights will form. */
#define DIFF_MAX_ENTRIES ((size_t)1 << 28)

/* ---------------------------------------------------------------- compatibility */

static void differ(StrBuf *why, int *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void differ(StrBuf *why, int *n, const char *fmt, ...)
{
    (*n)++;
    if (*n > 12) return;   /* the first dozen say enough */
    va_list ap;
    va_start(ap, fmt);
    if (why->len) sb_putc(why, '\n');
    sb_vprintf(why, fmt, ap);
    va_end(ap);
}

static void value_text(Value v, StrBuf *b)
{
    sb_clear(b);
    model_value_text(v, b);
}

/* The sizes two models must share for their weights to line up: the config field, and its
 * name in `diff --tensors` messages. */
static const struct {
    const char *field, *name;
    size_t off;
} SIZES[] = {
    {"n_layers", "blocks", offsetof(ModelConfig, n_layers)},
    {"d_model", "d_model", offsetof(ModelConfig, d_model)},
    {"d_head", "d_head", offsetof(ModelConfig, d_head)},
    {"n_heads", "heads", offsetof(ModelConfig, n_heads)},
    {"d_mlp", "d_mlp", offsetof(ModelConfig, d_mlp)},
    {"d_vocab", "vocab rows", offsetof(ModelConfig, d_vocab)},
    {"d_vocab_out", "output columns", offsetof(ModelConfig, d_vocab_out)},
    {"n_ctx", "positions", offsetof(ModelConfig, n_ctx)},
};

static int cfg_size(const ModelConfig *c, size_t k) { return *(const int *)((const char *)c + SIZES[k].off); }

int diff_compatible(const Model *a, const Model *b, StrBuf *why)
{
    int n = 0;
    const ModelConfig *x = &a->cfg, *y = &b->cfg;
    for (size_t k = 0; k < ARRAY_LEN(SIZES); k++)
        if (cfg_size(x, k) != cfg_size(y, k))
            differ(why, &n, "config.%s: %d in BEFORE, %d in AFTER", SIZES[k].field, cfg_size(x, k), cfg_size(y, k));
#define CFG(f)                                                                                              \
    if (x->f != y->f) differ(why, &n, "config." #f ": %d in BEFORE, %d in AFTER", (int)x->f, (int)y->f)
    CFG(causal);
    CFG(use_attn_scale);
#undef CFG
    if (x->attn_scale != y->attn_scale)
        differ(why, &n, "config.attn_scale: %g in BEFORE, %g in AFTER", x->attn_scale, y->attn_scale);
    StrBuf s, t;
    sb_init(&s);
    sb_init(&t);
    if (x->d_vocab == y->d_vocab) {
        for (int v = 0; v < x->d_vocab; v++) {
            value_text(a->vocab[v], &s);
            value_text(b->vocab[v], &t);
            if (strcmp(s.s, t.s)) differ(why, &n, "vocab[%d]: '%s' in BEFORE, '%s' in AFTER", v, s.s, t.s);
        }
        if (a->bos != b->bos || a->pad != b->pad) differ(why, &n, "bos/pad: different rows");
    }
    if (strcmp(a->output_name ? a->output_name : "", b->output_name ? b->output_name : ""))
        differ(why, &n, "output.name: '%s' in BEFORE, '%s' in AFTER", a->output_name, b->output_name);
    if (a->output_numerical != b->output_numerical)
        differ(why, &n, "output.encoding: %s in BEFORE, %s in AFTER", a->output_numerical ? "numerical" : "categorical",
               b->output_numerical ? "numerical" : "categorical");
    else if (!a->output_numerical && x->d_vocab_out == y->d_vocab_out)
        for (int k = 0; k < x->d_vocab_out; k++) {
            value_text(a->output_values[k], &s);
            value_text(b->output_values[k], &t);
            if (strcmp(s.s, t.s)) differ(why, &n, "output.values[%d]: %s in BEFORE, %s in AFTER", k, s.s, t.s);
        }
    if (x->d_model == y->d_model)
        for (int d = 0; d < x->d_model; d++)
            if (strcmp(a->residual[d], b->residual[d]))
                differ(why, &n, "residual[%d]: %s in BEFORE, %s in AFTER", d, a->residual[d], b->residual[d]);
    size_t la = json_array_size(a->layers), lb = json_array_size(b->layers);
    if (la != lb)
        differ(why, &n, "layers: %zu blocks described in BEFORE, %zu in AFTER", la, lb);
    else
        for (size_t l = 0; l < la; l++)
            if (!json_equal(json_array_get(a->layers, l), json_array_get(b->layers, l)))
                differ(why, &n, "layers[%zu]: the block's heads or MLP maps differ", l);
    if (n > 12) {
        sb_putc(why, '\n');
        sb_printf(why, "... and %d more differences", n - 12);
    }
    sb_free(&s);
    sb_free(&t);
    return n ? -1 : 0;
}

/* ---------------------------------------------------------------- components */

typedef struct {
    DiffResult *r;
    Coords co;
    const Model *a, *b;
    int cap;
} Builder;

static DiffComponent *new_comp(Builder *bd, DiffKind kind, int block, int head, int rows, int cols)
{
    DiffResult *r = bd->r;
    if (r->ncomp == bd->cap) {
        bd->cap = bd->cap ? 2 * bd->cap : 32;
        r->comp = xrealloc(r->comp, sizeof *r->comp * (size_t)bd->cap);
    }
    DiffComponent *c = &r->comp[r->ncomp++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->block = block;
    c->head = head;
    c->first = c->last = -1;
    c->rows = rows;
    c->cols = cols;
    c->before = xcalloc((size_t)rows * (size_t)cols + 1, sizeof(double));
    c->after = xcalloc((size_t)rows * (size_t)cols + 1, sizeof(double));
    return c;
}

static const char **residual_labels(Builder *bd, int with_bias)
{
    int C = bd->a->cfg.d_model;
    const char **l = arena_alloc(&bd->r->arena, sizeof(char *) * (size_t)(C + 1));
    for (int d = 0; d < C; d++) l[d] = bd->a->residual[d];
    if (with_bias) l[C] = "(bias)";
    return l;
}

static const char *adup(Builder *bd, const char *s)
{
    return arena_strdup(&bd->r->arena, s);
}

/* Copy a (rows, cols) float matrix with row stride ld into a component's matrices. */
static void copy_mat(double *dst, int dcols, int r0, int c0, const float *src, int rows, int cols, size_t ld)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)(r0 + i) * dcols + (size_t)(c0 + j)] = src[(size_t)i * ld + (size_t)j];
}

/* out (C+1, C+1) = [W_Q; b_Q] [W_K; b_K]^T for one head (scaled into logits). */
static void qk_form(double *out, const Model *m, int l, int h)
{
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, HD = (size_t)c->d_head, NH = (size_t)c->n_heads;
    const float *wq = m->params.W_Q + ((size_t)l * NH + (size_t)h) * C * HD;
    const float *wk = m->params.W_K + ((size_t)l * NH + (size_t)h) * C * HD;
    const float *bq = m->params.b_Q + ((size_t)l * NH + (size_t)h) * HD;
    const float *bk = m->params.b_K + ((size_t)l * NH + (size_t)h) * HD;
    double scale = c->use_attn_scale ? 1.0 / c->attn_scale : 1.0;
    for (size_t i = 0; i <= C; i++) {
        const float *q = i < C ? wq + i * HD : bq;
        for (size_t j = 0; j <= C; j++) {
            const float *k = j < C ? wk + j * HD : bk;
            double s = 0;
            for (size_t d = 0; d < HD; d++) s += (double)q[d] * (double)k[d];
            out[i * (C + 1) + j] = s * scale;
        }
    }
}

/* out (C+1, C) = [W_V; b_V] W_O for one head. */
static void ov_form(double *out, const Model *m, int l, int h)
{
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, HD = (size_t)c->d_head, NH = (size_t)c->n_heads;
    const float *wv = m->params.W_V + ((size_t)l * NH + (size_t)h) * C * HD;
    const float *bv = m->params.b_V + ((size_t)l * NH + (size_t)h) * HD;
    const float *wo = m->params.W_O + ((size_t)l * NH + (size_t)h) * HD * C;
    for (size_t i = 0; i <= C; i++) {
        const float *v = i < C ? wv + i * HD : bv;
        for (size_t j = 0; j < C; j++) {
            double s = 0;
            for (size_t d = 0; d < HD; d++) s += (double)v[d] * (double)wo[d * C + j];
            out[i * C + j] = s;
        }
    }
}

/* A block's output bias (attention or MLP) as one component: a single row over the residual. */
static void add_bias(Builder *bd, DiffKind kind, int l, const char *what, const float *before,
                     const float *after)
{
    int C = bd->a->cfg.d_model;
    char nm[64];
    DiffComponent *c = new_comp(bd, kind, l, -1, 1, C);
    snprintf(nm, sizeof nm, "block %d %s bias", l, what);
    c->name = adup(bd, nm);
    c->row_labels = arena_alloc(&bd->r->arena, sizeof(char *));
    c->row_labels[0] = "(bias)";
    c->col_labels = residual_labels(bd, 0);
    copy_mat(c->before, C, 0, 0, before + (size_t)l * C, 1, C, (size_t)C);
    copy_mat(c->after, C, 0, 0, after + (size_t)l * C, 1, C, (size_t)C);
}

static void add_mlp(Builder *bd, int l, int first, int last, const char *desc)
{
    const Model *ms[2] = {bd->a, bd->b};
    int C = bd->a->cfg.d_model, M = bd->a->cfg.d_mlp, n = last - first;
    const char **units = arena_alloc(&bd->r->arena, sizeof(char *) * (size_t)n);
    char buf[32];
    for (int j = 0; j < n; j++) {
        snprintf(buf, sizeof buf, "neuron %d", first + j);
        units[j] = adup(bd, buf);
    }
    StrBuf nm;
    sb_init(&nm);
    for (int k = 0; k < 2; k++) {
        DiffComponent *c = new_comp(bd, k ? DIFF_MLP_OUT : DIFF_MLP_IN, l, -1, k ? n : C + 1, k ? C : n);
        c->first = first;
        c->last = last;
        sb_clear(&nm);
        if (last - first == 1)
            sb_printf(&nm, "block %d MLP %s: %s [neuron %d]", l, k ? "writes" : "reads", desc, first);
        else
            sb_printf(&nm, "block %d MLP %s: %s [neurons %d-%d]", l, k ? "writes" : "reads", desc, first, last - 1);
        c->name = adup(bd, nm.s);
        if (k) {
            c->row_labels = units;
            c->col_labels = residual_labels(bd, 0);
        } else {
            c->row_labels = residual_labels(bd, 1);
            c->col_labels = units;
        }
        for (int w = 0; w < 2; w++) {
            double *dst = w ? c->after : c->before;
            const ModelParams *p = &ms[w]->params;
            if (k) {
                copy_mat(dst, C, 0, 0, p->W_out + (size_t)l * M * C + (size_t)first * C, n, C, (size_t)C);
            } else {
                copy_mat(dst, n, 0, 0, p->W_in + (size_t)l * C * M + (size_t)first, C, n, (size_t)M);
                copy_mat(dst, n, C, 0, p->b_in + (size_t)l * M + (size_t)first, 1, n, (size_t)M);
            }
        }
    }
    sb_free(&nm);
}

static void build_components(Builder *bd)
{
    const Model *a = bd->a, *b = bd->b, *ms[2] = {a, b};
    const ModelConfig *cf = &a->cfg;
    int C = cf->d_model, V = cf->d_vocab, N = cf->n_ctx, L = cf->n_layers, NH = cf->n_heads, VO = cf->d_vocab_out;
    StrBuf nm;
    sb_init(&nm);

    DiffComponent *c = new_comp(bd, DIFF_EMBED, -1, -1, V, C);
    c->name = "embedding (tokens)";
    c->row_labels = bd->co.tokens;
    c->col_labels = residual_labels(bd, 0);
    copy_mat(c->before, C, 0, 0, a->params.W_E, V, C, (size_t)C);
    copy_mat(c->after, C, 0, 0, b->params.W_E, V, C, (size_t)C);

    c = new_comp(bd, DIFF_POS, -1, -1, N, C);
    c->name = "embedding (positions)";
    const char **pl = arena_alloc(&bd->r->arena, sizeof(char *) * (size_t)N);
    for (int p = 0; p < N; p++) {
        sb_clear(&nm);
        if (p == 0)
            sb_puts(&nm, "BOS");
        else
            sb_printf(&nm, "index %d", p - 1);
        pl[p] = adup(bd, nm.s);
    }
    c->row_labels = pl;
    c->col_labels = residual_labels(bd, 0);
    copy_mat(c->before, C, 0, 0, a->params.W_pos, N, C, (size_t)C);
    copy_mat(c->after, C, 0, 0, b->params.W_pos, N, C, (size_t)C);

    for (int l = 0; l < L; l++) {
        for (int h = 0; h < NH; h++) {
            const CoordHead *ch = &bd->co.heads[(size_t)l * (size_t)NH + (size_t)h];
            for (int k = 0; k < 2; k++) {
                c = new_comp(bd, k ? DIFF_OV : DIFF_QK, l, h, C + 1, k ? C : C + 1);
                sb_clear(&nm);
                sb_printf(&nm, "block %d head %d %s (%s)", l, h, k ? "OV" : "QK", ch->desc ? ch->desc : "unused");
                c->name = adup(bd, nm.s);
                c->row_labels = residual_labels(bd, 1);
                c->col_labels = residual_labels(bd, !k);
                for (int w = 0; w < 2; w++) {
                    if (k)
                        ov_form(w ? c->after : c->before, ms[w], l, h);
                    else
                        qk_form(w ? c->after : c->before, ms[w], l, h);
                }
            }
        }
        add_bias(bd, DIFF_ATTN_BIAS, l, "attention", a->params.b_O, b->params.b_O);

        /* the MLP: each map's units, then every run of units no map owns */
        for (int k = 0; k < bd->co.nmaps[l]; k++) {
            const CoordMap *mp = &bd->co.maps[l][k];
            add_mlp(bd, l, mp->first, mp->last, mp->desc);
        }
        for (int j = 0; j < cf->d_mlp;) {
            if (coord_neuron_map(&bd->co, l, j)) {
                j++;
                continue;
            }
            int e = j;
            while (e < cf->d_mlp && !coord_neuron_map(&bd->co, l, e)) e++;
            add_mlp(bd, l, j, e, "unused");
            j = e;
        }
        add_bias(bd, DIFF_MLP_BIAS, l, "MLP", a->params.b_out, b->params.b_out);
    }

    c = new_comp(bd, DIFF_UNEMBED, -1, -1, C + 1, VO);
    c->name = "unembed";
    c->row_labels = residual_labels(bd, 1);
    c->col_labels = bd->co.outvals;
    copy_mat(c->before, VO, 0, 0, a->params.W_U, C, VO, (size_t)VO);
    copy_mat(c->before, VO, C, 0, a->params.b_U, 1, VO, (size_t)VO);
    copy_mat(c->after, VO, 0, 0, b->params.W_U, C, VO, (size_t)VO);
    copy_mat(c->after, VO, C, 0, b->params.b_U, 1, VO, (size_t)VO);
    sb_free(&nm);
}

/* ---------------------------------------------------------------- naming entries */

void diff_entry_name(const DiffResult *r, const DiffEntry *e, StrBuf *out)
{
    const DiffComponent *c = &r->comp[e->comp];
    const char *rl = c->row_labels[e->r], *cl = c->col_labels[e->c];
    /* the component name without its kind ("block 0 head 0 (…)") */
    switch (c->kind) {
    case DIFF_EMBED:
        sb_printf(out, "embedding of token %s writes %s", rl, cl);
        break;
    case DIFF_POS:
        if (e->r == 0)
            sb_printf(out, "embedding of position 0 (BOS) writes %s", cl);
        else
            sb_printf(out, "embedding of position %d (index %d) writes %s", e->r, e->r - 1, cl);
        break;
    case DIFF_QK:
        sb_printf(out, "%s [query %s, key %s]", c->name, rl, cl);
        break;
    case DIFF_OV:
        sb_printf(out, "%s [%s -> %s]", c->name, rl, cl);
        break;
    case DIFF_ATTN_BIAS:
        sb_printf(out, "block %d attention bias writes %s", c->block, cl);
        break;
    case DIFF_MLP_IN:
    case DIFF_MLP_OUT: {
        /* "block 0 MLP reads: desc [neurons a-b]" -> "block 0 neuron j (desc) reads L" */
        const char *desc = strchr(c->name, ':');
        const char *end = strstr(c->name, " [neuron");
        int dl = desc && end && end > desc + 2 ? (int)(end - desc - 2) : 0;
        int j = c->first + (c->kind == DIFF_MLP_IN ? e->c : e->r);
        sb_printf(out, "block %d neuron %d (%.*s) %s %s", c->block, j, dl, desc ? desc + 2 : "",
                  c->kind == DIFF_MLP_IN ? "reads" : "writes", c->kind == DIFF_MLP_IN ? rl : cl);
        break;
    }
    case DIFF_MLP_BIAS:
        sb_printf(out, "block %d MLP bias writes %s", c->block, cl);
        break;
    case DIFF_UNEMBED:
        sb_printf(out, "unembed reads %s for output %s", rl, cl);
        break;
    }
}

/* ---------------------------------------------------------------- statistics */

typedef struct {
    double key;
    int comp, r, c;
} Ranked;

static int cmp_ranked(const void *x, const void *y)
{
    const Ranked *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? 1 : -1;
    if (a->comp != b->comp) return a->comp - b->comp;
    if (a->r != b->r) return a->r - b->r;
    return a->c - b->c;
}

/* Keep the `limit` largest of a stream under cmp_ranked (a total order: no two entries tie):
 * a heap whose root is the last of those kept, so a model with millions of changed weights
 * costs O(n log limit), not a sort of all n. */
typedef struct {
    Ranked *v;
    size_t n, limit;
} RankList;

static void rank_swap(Ranked *a, Ranked *b)
{
    Ranked t = *a;
    *a = *b;
    *b = t;
}

static void rank_push(RankList *l, double key, int comp, int r, int c)
{
    Ranked x = {key, comp, r, c};
    if (!l->limit) return;
    if (!l->v) l->v = xmalloc(sizeof *l->v * l->limit);
    if (l->n < l->limit) {
        size_t i = l->n++;
        l->v[i] = x;
        while (i > 0 && cmp_ranked(&l->v[(i - 1) / 2], &l->v[i]) < 0) {
            rank_swap(&l->v[(i - 1) / 2], &l->v[i]);
            i = (i - 1) / 2;
        }
        return;
    }
    if (cmp_ranked(&x, &l->v[0]) >= 0) return;     /* ranks after everything kept */
    l->v[0] = x;
    for (size_t i = 0;;) {
        size_t a = 2 * i + 1, b = a + 1, w = i;
        if (a < l->n && cmp_ranked(&l->v[a], &l->v[w]) > 0) w = a;
        if (b < l->n && cmp_ranked(&l->v[b], &l->v[w]) > 0) w = b;
        if (w == i) break;
        rank_swap(&l->v[w], &l->v[i]);
        i = w;
    }
}

static DiffEntry *rank_top(const DiffResult *r, RankList *l, int *nout)
{
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_ranked);
    int n = (int)l->n;
    DiffEntry *e = xcalloc((size_t)n + 1, sizeof *e);
    for (int i = 0; i < n; i++) {
        const DiffComponent *c = &r->comp[l->v[i].comp];
        size_t at = (size_t)l->v[i].r * c->cols + (size_t)l->v[i].c;
        e[i] = (DiffEntry){l->v[i].comp, l->v[i].r, l->v[i].c, c->before[at], c->after[at]};
    }
    *nout = n;
    return e;
}

static int sub_index(DiffResult *r, int *cap, const char *label)
{
    char name[256];
    coord_label_name(label, name, sizeof name);
    for (int i = 0; i < r->nsub; i++)
        if (!strcmp(r->sub[i].name, name)) return i;
    if (r->nsub == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        r->sub = xrealloc(r->sub, sizeof *r->sub * (size_t)*cap);
    }
    r->sub[r->nsub] = (DiffSubspace){arena_strdup(&r->arena, name), 0, 0};
    return r->nsub++;
}

static int cmp_sub(const void *x, const void *y)
{
    const DiffSubspace *a = x, *b = y;
    double ka = a->read_sq + a->write_sq, kb = b->read_sq + b->write_sq;
    if (ka != kb) return ka < kb ? 1 : -1;
    return strcmp(a->name, b->name);
}

static const DiffResult *g_sort_result;   /* for the component order comparator */

static int cmp_comp(const void *x, const void *y)
{
    int i = *(const int *)x, j = *(const int *)y;
    double a = g_sort_result->comp[i].norm_delta, b = g_sort_result->comp[j].norm_delta;
    if (a != b) return a < b ? 1 : -1;
    return i - j;
}

static void stats(DiffResult *r, int top)
{
    size_t keep = top > 0 ? (size_t)top : 0;
    RankList all = {NULL, 0, keep}, fresh = {NULL, 0, keep};
    int subcap = 0;
    for (int k = 0; k < r->ncomp; k++) {
        DiffComponent *c = &r->comp[k];
        double bb = 0, aa = 0, ab = 0, dd = 0;
        int read_rows = c->kind == DIFF_QK || c->kind == DIFF_OV || c->kind == DIFF_MLP_IN || c->kind == DIFF_UNEMBED;
        int read_cols = c->kind == DIFF_QK;
        int write_cols = c->kind == DIFF_EMBED || c->kind == DIFF_POS || c->kind == DIFF_OV ||
                         c->kind == DIFF_ATTN_BIAS || c->kind == DIFF_MLP_OUT || c->kind == DIFF_MLP_BIAS;
        for (int i = 0; i < c->rows; i++)
            for (int j = 0; j < c->cols; j++) {
                size_t at = (size_t)i * c->cols + (size_t)j;
                double x = c->before[at], y = c->after[at], d = y - x;
                bb += x * x;
                aa += y * y;
                ab += x * y;
                if (d == 0) continue;
                dd += d * d;
                c->changed++;
                if (fabs(d) > c->max_abs) {
                    c->max_abs = fabs(d);
                    c->max_r = i;
                    c->max_c = j;
                }
                rank_push(&all, fabs(d), k, i, j);
                if (x == 0) {
                    c->new_paths++;
                    rank_push(&fresh, fabs(y), k, i, j);
                }
                if (read_rows) {
                    { int si = sub_index(r, &subcap, c->row_labels[i]); r->sub[si].read_sq += d * d; }
                    r->read_total += d * d;
                }
                if (read_cols) {
                    { int si = sub_index(r, &subcap, c->col_labels[j]); r->sub[si].read_sq += d * d; }
                    r->read_total += d * d;
                }
                if (write_cols) {
                    { int si = sub_index(r, &subcap, c->col_labels[j]); r->sub[si].write_sq += d * d; }
                    r->write_total += d * d;
                }
            }
        c->norm_before = sqrt(bb);
        c->norm_after = sqrt(aa);
        c->norm_delta = sqrt(dd);
        c->cosine = bb > 0 && aa > 0 ? ab / (sqrt(bb) * sqrt(aa)) : (bb == 0 && aa == 0 ? 1 : 0);
        r->nentries += c->changed;
        r->nfresh_all += c->new_paths;
    }
    r->top = rank_top(r, &all, &r->ntop);
    r->fresh = rank_top(r, &fresh, &r->nfresh);
    free(all.v);
    free(fresh.v);
    if (r->nsub) qsort(r->sub, (size_t)r->nsub, sizeof *r->sub, cmp_sub);
    r->order = xmalloc(sizeof(int) * (size_t)(r->ncomp + 1));
    for (int k = 0; k < r->ncomp; k++) r->order[k] = k;
    g_sort_result = r;
    qsort(r->order, (size_t)r->ncomp, sizeof(int), cmp_comp);
    g_sort_result = NULL;
}

static void tensor_stats(DiffResult *r, const Model *a, const Model *b)
{
    r->ntensors = a->ntensors;
    r->tensors = xcalloc((size_t)a->ntensors + 1, sizeof *r->tensors);
    double bb = 0, dd = 0;
    for (int t = 0; t < a->ntensors; t++) {
        const ModelTensor *mt = &a->tensors[t];
        DiffTensor *dt = &r->tensors[t];
        dt->name = mt->name;
        double tb = 0, td = 0;
        for (size_t i = 0; i < mt->numel; i++) {
            double x = a->params_memory[mt->offset + i], y = b->params_memory[mt->offset + i], d = y - x;
            tb += x * x;
            td += d * d;
            if (d != 0) r->nchanged++;
            if (fabs(d) > dt->max_abs) {
                dt->max_abs = fabs(d);
                dt->max_index = mt->offset + i;
            }
        }
        dt->norm_before = sqrt(tb);
        dt->norm_delta = sqrt(td);
        bb += tb;
        dd += td;
    }
    r->nparams = (long)a->num_params;
    r->norm_before = sqrt(bb);
    r->norm_delta = sqrt(dd);
}

DiffResult *diff_weights(const Model *a, const Model *b, const DiffOptions *opt, StrBuf *err)
{
    DiffOptions def = DIFF_OPTIONS_DEFAULT;
    if (!opt) opt = &def;
    StrBuf why;
    sb_init(&why);
    if (diff_compatible(a, b, &why)) {
        sb_printf(err, "the two models do not share their compiled structure:\n%s", why.s);
        sb_free(&why);
        return NULL;
    }
    sb_free(&why);
    size_t C1 = (size_t)a->cfg.d_model + 1;
    size_t need = 2 * C1 * (2 * C1) * (size_t)a->cfg.n_layers * (size_t)(a->cfg.n_heads ? a->cfg.n_heads : 1);
    if (need > DIFF_MAX_ENTRIES) {
        sb_printf(err, "d_model %d with %d heads in %d blocks: the QK and OV forms would take %.1f GB",
                  a->cfg.d_model, a->cfg.n_heads, a->cfg.n_layers, (double)need * 8 / 1e9);
        return NULL;
    }
    DiffResult *r = xcalloc(1, sizeof *r);
    arena_init(&r->arena);
    Builder bd;
    memset(&bd, 0, sizeof bd);
    bd.r = r;
    bd.a = a;
    bd.b = b;
    coord_init(&bd.co, a);
    /* the Coords strings used as labels must outlive it: copy the arrays we keep */
    const char **tok = arena_alloc(&r->arena, sizeof(char *) * (size_t)a->cfg.d_vocab);
    for (int v = 0; v < a->cfg.d_vocab; v++) tok[v] = arena_strdup(&r->arena, bd.co.tokens[v]);
    const char **ov = arena_alloc(&r->arena, sizeof(char *) * (size_t)a->cfg.d_vocab_out);
    for (int k = 0; k < a->cfg.d_vocab_out; k++) ov[k] = arena_strdup(&r->arena, bd.co.outvals[k]);
    bd.co.tokens = tok;
    bd.co.outvals = ov;
    build_components(&bd);
    coord_free(&bd.co);
    stats(r, opt->top > 0 ? opt->top : 20);
    tensor_stats(r, a, b);

    snprintf(r->before_sha, sizeof r->before_sha, "%s", opt->before_sha ? opt->before_sha : "");
    snprintf(r->after_sha, sizeof r->after_sha, "%s", opt->after_sha ? opt->after_sha : "");
    const char *parent = json_is_object(b->provenance)
                             ? json_string_value(json_object_get(b->provenance, "parent_sha256"))
                             : NULL;
    if (!parent) {
        r->provenance_names_before = -1;
    } else {
        r->provenance_parent = arena_strdup(&r->arena, parent);
        r->provenance_names_before = r->before_sha[0] && !strcmp(parent, r->before_sha);
    }
    r->program_differs = strcmp(a->program_sha256, b->program_sha256) != 0;
    return r;
}

DiffResult *diff_tensor_norms(const Model *a, const Model *b, const DiffOptions *opt, StrBuf *err)
{
    for (size_t k = 0; k < ARRAY_LEN(SIZES); k++)
        if (cfg_size(&a->cfg, k) != cfg_size(&b->cfg, k)) {
            sb_printf(err, "the two models differ in size: %s %d in BEFORE, %d in AFTER", SIZES[k].name,
                      cfg_size(&a->cfg, k), cfg_size(&b->cfg, k));
            return NULL;
        }
    DiffResult *r = xcalloc(1, sizeof *r);
    arena_init(&r->arena);
    if (opt && opt->before_sha) snprintf(r->before_sha, sizeof r->before_sha, "%s", opt->before_sha);
    if (opt && opt->after_sha) snprintf(r->after_sha, sizeof r->after_sha, "%s", opt->after_sha);
    r->provenance_names_before = -1;
    tensor_stats(r, a, b);
    return r;
}

void diff_free(DiffResult *r)
{
    if (!r) return;
    for (int k = 0; k < r->ncomp; k++) {
        free(r->comp[k].before);
        free(r->comp[k].after);
    }
    free(r->comp);
    free(r->order);
    free(r->top);
    free(r->fresh);
    free(r->sub);
    free(r->tensors);
    if (r->inputs) {
        free(r->inputs->sops);
        free(r->inputs->heads);
        free(r->inputs);
    }
    arena_free(&r->arena);
    free(r);
}

/* ---------------------------------------------------------------- on inputs */

int diff_inputs(DiffResult *r, const Model *a, const Model *b, const RaspProgram *p, const DiffInputOptions *opt,
                StrBuf *err)
{
    DiffInputOptions def = DIFF_INPUT_OPTIONS_DEFAULT;
    if (!opt) opt = &def;
    int maxlen = a->cfg.n_ctx - 1;
    if (p->max_len > maxlen) return sb_fail(err, "the program's max_len %d exceeds the model's %d", p->max_len, maxlen);
    int lo = opt->len_min > 0 ? opt->len_min : p->max_len, hi = opt->len_max > 0 ? opt->len_max : p->max_len;
    if (lo < 1 || hi < lo || hi > p->max_len)
        return sb_fail(err, "input lengths %d-%d are outside 1..%d", lo, hi, p->max_len);
    for (int i = 0; i < opt->nat; i++)
        if (opt->at[i] >= hi) return sb_fail(err, "--at %d: the inputs have at most %d tokens", opt->at[i], hi);
    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)(p->nvocab + 1));
    if (ro_vocab_rows(a, p, row_of, err)) {
        free(row_of);
        return -1;
    }
    const RaspSop *out = &p->sops[p->output];
    if ((out->enc == ENC_NUMERICAL) != (a->output_numerical != 0)) {
        sb_printf(err, "the program's output '%s' is %s, the model's is %s", out->label,
                  out->enc == ENC_NUMERICAL ? "numerical" : "categorical",
                  a->output_numerical ? "numerical" : "categorical");
        free(row_of);
        return -1;
    }
    int VO = a->cfg.d_vocab_out;
    /* the program's s-ops to report (readable, named, or the output) and their decoders */
    DecLayout dl;
    ro_layout_init(&dl, a);
    int nsops = 0;
    int *sop_of = xmalloc(sizeof(int) * (size_t)(p->nsops + 1));
    const DecSop **dec_of = xmalloc(sizeof(DecSop *) * (size_t)(p->nsops + 1));
    for (int i = 0; i < p->nsops; i++) {
        const DecSop *ds = ro_find(&dl, &p->sops[i]);
        if (!ds && !p->sops[i].named && i != p->output) continue;
        sop_of[nsops] = i;
        dec_of[nsops++] = ds;
    }
    DiffInputs *in = xcalloc(1, sizeof *in);
    in->ninputs = opt->n;
    in->len_min = lo;
    in->len_max = hi;
    in->seed = opt->seed;
    in->nat = opt->nat;
    in->at = arena_alloc(&r->arena, sizeof(int) * (size_t)(opt->nat + 1));
    for (int i = 0; i < opt->nat; i++) in->at[i] = opt->at[i];
    in->nsops = nsops;
    in->sops = xcalloc((size_t)nsops + 1, sizeof *in->sops);
    for (int i = 0; i < nsops; i++) {
        char where[48];
        dec_stage_name(dec_of[i] ? dec_of[i]->stage : 0, where, sizeof where);
        in->sops[i].name = arena_strdup(&r->arena, p->sops[sop_of[i]].label);
        in->sops[i].where = arena_strdup(&r->arena, where);
        in->sops[i].readable = dec_of[i] != NULL;
        in->sops[i].isvirtual = dec_of[i] && dec_of[i]->isvirtual;
    }
    int L = a->cfg.n_layers, NH = a->cfg.n_heads;
    in->nheads = L * NH;
    in->heads = xcalloc((size_t)in->nheads + 1, sizeof *in->heads);
    Coords co;
    coord_init(&co, a);
    StrBuf nm;
    sb_init(&nm);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < NH; h++) {
            DiffHeadStat *hs = &in->heads[l * NH + h];
            hs->block = l;
            hs->head = h;
            sb_clear(&nm);
            coord_head_name(&co, l, h, &nm);
            hs->name = arena_strdup(&r->arena, nm.s);
        }
    sb_free(&nm);
    coord_free(&co);

    int B = opt->batch > 0 ? opt->batch : 256, T = hi + 1, C = a->cfg.d_model;
    int32_t *toks = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)hi);
    int *ns = xmalloc(sizeof(int) * (size_t)B);
    int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    int *lens = xmalloc(sizeof(int) * (size_t)B);
    /* interpreter values of every listed s-op, and of the output: [b][sop][pos] */
    int nv = nsops + 1;
    int32_t *vals = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)nv * (size_t)hi);
    uint8_t *counted = xcalloc((size_t)hi, 1);
    for (int i = 0; i < hi; i++) counted[i] = opt->nat == 0;
    for (int i = 0; i < opt->nat; i++) counted[opt->at[i]] = 1;
    Interp *it = interp_new(p, 1);
    FwdState sa, sb;
    fwd_init(&sa);
    fwd_init(&sb);
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    fo.record_resid = 1;
    fo.record_attn = 1;
    Rng rng;
    rng_seed(&rng, opt->seed);
    int rc = 0;
    double *hsum_abs = xcalloc((size_t)in->nheads + 1, sizeof(double));
    double *hsum_tv = xcalloc((size_t)in->nheads + 1, sizeof(double));
    long *hpairs = xcalloc((size_t)in->nheads + 1, sizeof(long));
    for (long done = 0; done < opt->n && !rc;) {
        int nb = (int)(opt->n - done < B ? opt->n - done : B);
        for (int k = 0; k < nb; k++) {
            int32_t *tk = toks + (size_t)k * hi;
            ns[k] = ro_sample(&rng, p->nvocab, lo, hi, tk);
            if (interp_eval(it, tk, ns[k])) {
                sb_printf(err, "the interpreter failed: %s", interp_error(it));
                rc = -1;
                break;
            }
            for (int s = 0; s < nv; s++) {
                int sop = s < nsops ? sop_of[s] : p->output;
                const int32_t *v = interp_values(it, sop);
                for (int i = 0; i < ns[k]; i++) vals[((size_t)k * nv + (size_t)s) * hi + (size_t)i] = v ? v[i] : -3;
            }
        }
        if (rc) break;
        int tmax = dec_pack_batch(a, row_of, toks, (size_t)hi, ns, nb, rows, lens);
        if (fwd_forward(&sa, a, rows, lens, nb, tmax, &fo, err) || fwd_forward(&sb, b, rows, lens, nb, tmax, &fo, err)) {
            rc = -1;
            break;
        }
        for (int k = 0; k < nb; k++) {
            for (int s = 0; s < nsops; s++) {
                const DecSop *ds = dec_of[s];
                const RaspSop *ps = &p->sops[sop_of[s]];
                if (!ds) continue;
                const float *ra = fwd_resid_stage(&sa, ds->stage), *rb = fwd_resid_stage(&sb, ds->stage);
                if (!ra || !rb) continue;
                for (int i = 0; i < ns[k]; i++) {
                    int32_t want = vals[((size_t)k * nv + (size_t)s) * hi + (size_t)i];
                    if (!counted[i] || want == -3 || (want == RASP_NONE && !ds->categorical)) continue;
                    size_t row = ((size_t)k * tmax + (size_t)i + 1) * (size_t)C;
                    in->sops[s].n++;
                    in->sops[s].agree_before += ro_agrees(ds, ps, ra + row, want);
                    in->sops[s].agree_after += ro_agrees(ds, ps, rb + row, want);
                }
            }
            /* the output */
            for (int i = 0; i < ns[k]; i++) {
                int32_t want = vals[((size_t)k * nv + (size_t)nsops) * hi + (size_t)i];
                if (!counted[i] || want < 0) continue;
                const float *la = sa.logits + ((size_t)k * tmax + (size_t)i + 1) * (size_t)VO;
                const float *lb = sb.logits + ((size_t)k * tmax + (size_t)i + 1) * (size_t)VO;
                in->out_n++;
                /* judged as every command judges outputs (runtime/decode.h) */
                in->out_before += dec_output_agrees(a, la, out->vals[want]);
                in->out_after += dec_output_agrees(b, lb, out->vals[want]);
                if (a->output_numerical)
                    in->out_models += fabs(la[0] - lb[0]) <= DEC_NUM_TOL * fmax(1.0, fabs(la[0]));
                else
                    in->out_models += dec_output_column(a, la) == dec_output_column(b, lb);
            }
            /* attention patterns: real query positions (counted ones), every real key */
            for (int l = 0; l < L; l++)
                for (int h = 0; h < NH; h++) {
                    int hi_ = l * NH + h;
                    const float *pa = sa.attn + ((((size_t)l * NH + (size_t)h) * nb + (size_t)k) * tmax) * tmax;
                    const float *pb = sb.attn + ((((size_t)l * NH + (size_t)h) * nb + (size_t)k) * tmax) * tmax;
                    for (int q = 1; q < lens[k]; q++) {
                        if (!counted[q - 1]) continue;
                        double tv = 0;
                        int ja = 0, jb = 0;
                        for (int j = 0; j < lens[k]; j++) {
                            if (pa[(size_t)q * tmax + j] > pa[(size_t)q * tmax + ja]) ja = j;
                            if (pb[(size_t)q * tmax + j] > pb[(size_t)q * tmax + jb]) jb = j;
                            double d = fabs((double)pa[(size_t)q * tmax + j] - (double)pb[(size_t)q * tmax + j]);
                            hsum_abs[hi_] += d;
                            tv += d;
                            hpairs[hi_]++;
                        }
                        tv *= 0.5;
                        hsum_tv[hi_] += tv;
                        in->heads[hi_].rows++;
                        in->heads[hi_].argmax_moved += ja != jb;
                        if (tv > in->heads[hi_].max_tv) in->heads[hi_].max_tv = tv;
                    }
                }
        }
        done += nb;
    }
    for (int h = 0; h < in->nheads; h++) {
        in->heads[h].mean_abs = hpairs[h] ? hsum_abs[h] / (double)hpairs[h] : 0;
        in->heads[h].mean_tv = in->heads[h].rows ? hsum_tv[h] / (double)in->heads[h].rows : 0;
    }
    free(hsum_abs);
    free(hsum_tv);
    free(hpairs);
    fwd_free(&sa);
    fwd_free(&sb);
    interp_free(it);
    free(counted);
    free(vals);
    free(toks);
    free(ns);
    free(rows);
    free(lens);
    free(row_of);
    free(sop_of);
    free(dec_of);
    dec_layout_free(&dl);
    if (rc) {
        free(in->sops);
        free(in->heads);
        free(in);
        return -1;
    }
    if (r->inputs) {
        free(r->inputs->sops);
        free(r->inputs->heads);
        free(r->inputs);
    }
    r->inputs = in;
    return 0;
}

/* ---------------------------------------------------------------- JSON */

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static const char *kind_name(DiffKind k)
{
    static const char *const names[] = {"embed", "pos_embed", "qk", "ov", "attn_bias",
                                        "mlp_in", "mlp_out", "mlp_bias", "unembed"};
    return names[k];
}

static json_t *entry_json(const DiffResult *r, const DiffEntry *e)
{
    StrBuf b;
    sb_init(&b);
    diff_entry_name(r, e, &b);
    const DiffComponent *c = &r->comp[e->comp];
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "name", b.s, "component", c->name, "row",
                          c->row_labels[e->r], "col", c->col_labels[e->c], "before", num(e->before), "after",
                          num(e->after), "delta", num(e->after - e->before));
    sb_free(&b);
    return o;
}

json_t *diff_tensors_json(const DiffResult *r)
{
    json_t *ten = json_array();
    for (int t = 0; t < r->ntensors; t++) {
        const DiffTensor *dt = &r->tensors[t];
        json_array_append_new(ten, json_pack("{s:s, s:o, s:o, s:o}", "name", dt->name, "norm_before",
                                             num(dt->norm_before), "norm_delta", num(dt->norm_delta), "max_abs",
                                             num(dt->max_abs)));
    }
    return ten;
}

json_t *diff_json(const DiffResult *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "before_sha256", json_string(r->before_sha));
    json_object_set_new(o, "after_sha256", json_string(r->after_sha));
    json_object_set_new(o, "provenance_parent_sha256",
                        r->provenance_parent ? json_string(r->provenance_parent) : json_null());
    json_object_set_new(o, "after_descends_from_before",
                        r->provenance_names_before < 0 ? json_null() : json_boolean(r->provenance_names_before));
    json_object_set_new(o, "program_differs", json_boolean(r->program_differs));
    json_object_set_new(o, "params", json_integer(r->nparams));
    json_object_set_new(o, "params_changed", json_integer(r->nchanged));
    json_object_set_new(o, "norm_before", num(r->norm_before));
    json_object_set_new(o, "norm_delta", num(r->norm_delta));
    json_object_set_new(o, "relative", num(r->norm_before > 0 ? r->norm_delta / r->norm_before : NAN));
    json_t *comps = json_array();
    for (int i = 0; i < r->ncomp; i++) {
        const DiffComponent *c = &r->comp[r->order[i]];
        json_t *co = json_pack("{s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "name", c->name, "kind",
                               kind_name(c->kind), "rows", c->rows, "cols", c->cols, "norm_before",
                               num(c->norm_before), "norm_after", num(c->norm_after), "norm_delta", num(c->norm_delta),
                               "relative", num(c->norm_before > 0 ? c->norm_delta / c->norm_before : NAN), "cosine",
                               num(c->cosine), "changed", (json_int_t)c->changed, "new_pathways",
                               (json_int_t)c->new_paths);
        json_object_set_new(co, "block", c->block >= 0 ? json_integer(c->block) : json_null());
        json_object_set_new(co, "head", c->head >= 0 ? json_integer(c->head) : json_null());
        if (c->max_abs > 0) {
            DiffEntry e = {r->order[i], c->max_r, c->max_c, c->before[(size_t)c->max_r * c->cols + c->max_c],
                           c->after[(size_t)c->max_r * c->cols + c->max_c]};
            json_object_set_new(co, "largest", entry_json(r, &e));
        } else {
            json_object_set_new(co, "largest", json_null());
        }
        json_array_append_new(comps, co);
    }
    json_object_set_new(o, "components", comps);
    json_t *top = json_array();
    for (int i = 0; i < r->ntop; i++) json_array_append_new(top, entry_json(r, &r->top[i]));
    json_object_set_new(o, "largest_changes", top);
    json_object_set_new(o, "changed_entries", json_integer(r->nentries));
    json_t *fr = json_array();
    for (int i = 0; i < r->nfresh; i++) json_array_append_new(fr, entry_json(r, &r->fresh[i]));
    json_object_set_new(o, "new_pathways", fr);
    json_object_set_new(o, "new_pathways_total", json_integer(r->nfresh_all));
    json_t *sub = json_array();
    for (int i = 0; i < r->nsub; i++)
        json_array_append_new(
            sub, json_pack("{s:s, s:o, s:o}", "sop", r->sub[i].name, "read_share",
                           num(r->read_total > 0 ? r->sub[i].read_sq / r->read_total : 0), "write_share",
                           num(r->write_total > 0 ? r->sub[i].write_sq / r->write_total : 0)));
    json_object_set_new(o, "subspaces", sub);
    json_object_set_new(o, "tensors", diff_tensors_json(r));
    if (r->inputs) {
        const DiffInputs *in = r->inputs;
        json_t *io = json_pack("{s:I, s:[i, i], s:I}", "n", (json_int_t)in->ninputs, "len", in->len_min, in->len_max,
                               "seed", (json_int_t)in->seed);
        json_t *at = json_array();
        for (int i = 0; i < in->nat; i++) json_array_append_new(at, json_integer(in->at[i]));
        json_object_set_new(io, "at", at);
        json_t *ss = json_array();
        for (int i = 0; i < in->nsops; i++) {
            const DiffSopStat *s = &in->sops[i];
            json_t *so = json_pack("{s:s, s:s, s:b, s:b, s:I}", "sop", s->name, "read_at", s->where, "readable",
                                   s->readable, "linear_form", s->isvirtual, "positions", (json_int_t)s->n);
            json_object_set_new(so, "agree_before", s->n ? num((double)s->agree_before / s->n) : json_null());
            json_object_set_new(so, "agree_after", s->n ? num((double)s->agree_after / s->n) : json_null());
            json_array_append_new(ss, so);
        }
        json_object_set_new(io, "sops", ss);
        json_t *hs = json_array();
        for (int i = 0; i < in->nheads; i++) {
            const DiffHeadStat *h = &in->heads[i];
            json_array_append_new(hs, json_pack("{s:i, s:i, s:s, s:I, s:o, s:o, s:o, s:o}", "block", h->block, "head",
                                                h->head, "name", h->name, "rows", (json_int_t)h->rows, "mean_abs",
                                                num(h->mean_abs), "mean_tv", num(h->mean_tv), "max_tv", num(h->max_tv),
                                                "argmax_moved", h->rows ? num((double)h->argmax_moved / h->rows) : json_null()));
        }
        json_object_set_new(io, "heads", hs);
        json_t *out = json_pack("{s:I}", "positions", (json_int_t)in->out_n);
        json_object_set_new(out, "before_vs_program", in->out_n ? num((double)in->out_before / in->out_n) : json_null());
        json_object_set_new(out, "after_vs_program", in->out_n ? num((double)in->out_after / in->out_n) : json_null());
        json_object_set_new(out, "after_vs_before", in->out_n ? num((double)in->out_models / in->out_n) : json_null());
        json_object_set_new(io, "output", out);
        json_object_set_new(o, "inputs", io);
    }
    return o;
}

/* ---------------------------------------------------------------- pictures */

#define SVG_MAX_SIDE 40

typedef struct {
    double act;
    int i;
} Act;

static int cmp_act(const void *x, const void *y)
{
    const Act *a = x, *b = y;
    if (a->act != b->act) return a->act < b->act ? 1 : -1;
    return a->i - b->i;
}

static int cmp_int(const void *x, const void *y)
{
    return *(const int *)x - *(const int *)y;
}

/* Rows (or columns) worth showing: those whose largest |before| or |after| is at least 1%
 * of the component's, or whose largest |delta| is at least 5% of the component's largest
 * change; the most active SVG_MAX_SIDE of them, in their order. */
static int pick(const DiffComponent *c, int along_rows, int *keep)
{
    int n = along_rows ? c->rows : c->cols, m = along_rows ? c->cols : c->rows;
    double wmax = 0, dmax = 0;
    for (size_t k = 0; k < (size_t)c->rows * c->cols; k++) {
        wmax = fmax(wmax, fmax(fabs(c->before[k]), fabs(c->after[k])));
        dmax = fmax(dmax, fabs(c->after[k] - c->before[k]));
    }
    Act *acts = xmalloc(sizeof *acts * (size_t)(n + 1));
    int na = 0;
    for (int i = 0; i < n; i++) {
        double w = 0, d = 0;
        for (int j = 0; j < m; j++) {
            size_t at = along_rows ? (size_t)i * c->cols + j : (size_t)j * c->cols + i;
            w = fmax(w, fmax(fabs(c->before[at]), fabs(c->after[at])));
            d = fmax(d, fabs(c->after[at] - c->before[at]));
        }
        if ((wmax > 0 && w >= 0.01 * wmax) || (dmax > 0 && d >= 0.05 * dmax))
            acts[na++] = (Act){fmax(w / (wmax > 0 ? wmax : 1), d / (dmax > 0 ? dmax : 1)), i};
    }
    qsort(acts, (size_t)na, sizeof *acts, cmp_act);
    if (na > SVG_MAX_SIDE) na = SVG_MAX_SIDE;
    for (int i = 0; i < na; i++) keep[i] = acts[i].i;
    qsort(keep, (size_t)na, sizeof(int), cmp_int);
    free(acts);
    return na;
}

void diff_svg(const DiffResult *r, int ncomp, const char *title, StrBuf *out)
{
    /* the most changed components that changed at all */
    int nshow = 0;
    int *show = xmalloc(sizeof(int) * (size_t)(r->ncomp + 1));
    for (int i = 0; i < r->ncomp && nshow < ncomp; i++)
        if (r->comp[r->order[i]].norm_delta > 0) show[nshow++] = r->order[i];
    /* lay out: one row of three panels per component */
    typedef struct {
        SvgHeatmap hm[3];
        double *v[3];
        const char **rl, **cl;
        int *rk, *ck;
        char *sub;
        double w, h;
    } Panel;
    Panel *pn = xcalloc((size_t)nshow + 1, sizeof *pn);
    double W = 0, H = 50;
    for (int s = 0; s < nshow; s++) {
        const DiffComponent *c = &r->comp[show[s]];
        Panel *p = &pn[s];
        p->rk = xmalloc(sizeof(int) * (size_t)(c->rows + 1));
        p->ck = xmalloc(sizeof(int) * (size_t)(c->cols + 1));
        int nr = pick(c, 1, p->rk), nc = pick(c, 0, p->ck);
        if (nr == 0 || nc == 0) {
            nr = nc = 1;
            p->rk[0] = c->max_r;
            p->ck[0] = c->max_c;
        }
        p->rl = xmalloc(sizeof(char *) * (size_t)nr);
        p->cl = xmalloc(sizeof(char *) * (size_t)nc);
        for (int i = 0; i < nr; i++) p->rl[i] = c->row_labels[p->rk[i]];
        for (int j = 0; j < nc; j++) p->cl[j] = c->col_labels[p->ck[j]];
        double wmax = 0;
        for (int k = 0; k < 3; k++) p->v[k] = xmalloc(sizeof(double) * (size_t)nr * (size_t)nc);
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < nc; j++) {
                size_t at = (size_t)p->rk[i] * c->cols + (size_t)p->ck[j], o = (size_t)i * nc + j;
                p->v[0][o] = c->before[at];
                p->v[1][o] = c->after[at];
                p->v[2][o] = c->after[at] - c->before[at];
                wmax = fmax(wmax, fmax(fabs(c->before[at]), fabs(c->after[at])));
            }
        StrBuf sb;
        sb_init(&sb);
        sb_printf(&sb, "‖ΔW‖ %.4g of ‖W‖ %.4g; showing %d of %d rows, %d of %d columns", c->norm_delta,
                  c->norm_before, nr, c->rows, nc, c->cols);
        p->sub = sb_steal(&sb);
        sb_free(&sb);
        const char *xl = "", *yl = "";
        switch (c->kind) {
        case DIFF_QK: yl = "query reads"; xl = "key reads"; break;
        case DIFF_OV: yl = "value reads"; xl = "output writes"; break;
        case DIFF_MLP_IN: yl = "reads"; xl = "hidden unit"; break;
        case DIFF_MLP_OUT: yl = "hidden unit"; xl = "writes"; break;
        case DIFF_EMBED: yl = "token"; xl = "writes"; break;
        case DIFF_POS: yl = "position"; xl = "writes"; break;
        case DIFF_UNEMBED: yl = "reads"; xl = "output value"; break;
        default: yl = ""; xl = "writes"; break;
        }
        static const char *const what[3] = {"BEFORE", "AFTER", "AFTER - BEFORE"};
        double rowh = 0, x = 0;
        for (int k = 0; k < 3; k++) {
            SvgHeatmap *hm = &p->hm[k];
            memset(hm, 0, sizeof *hm);
            hm->title = what[k];
            hm->subtitle = k == 0 ? p->sub : NULL;
            hm->xlabel = xl;
            hm->ylabel = yl;
            hm->rows = nr;
            hm->cols = nc;
            hm->v = p->v[k];
            hm->row_labels = p->rl;
            hm->col_labels = p->cl;
            hm->diverging = 1;
            hm->vmax = k < 2 ? (wmax > 0 ? wmax : 1) : 0;
            hm->scale_label = k < 2 ? "weight" : "change";
            double w, h;
            svg_heatmap_size(hm, &w, &h);
            x += w + 10;
            rowh = fmax(rowh, h);
        }
        p->w = x;
        p->h = rowh + 26;
        W = fmax(W, x);
        H += p->h;
    }
    Svg s;
    if (W < 400) W = 400;
    svg_begin(&s, W + 20, H + 10);
    svg_text(&s, 10, 22, "start", 15, 0, 1, "#000000", title ? title : "tracc diff");
    if (nshow == 0) svg_text(&s, 10, 44, "start", 12, 0, 0, "#000000", "no weight changed");
    double y = 50;
    for (int k = 0; k < nshow; k++) {
        Panel *p = &pn[k];
        svg_text(&s, 10, y + 14, "start", 13, 0, 1, "#000000", r->comp[show[k]].name);
        double x = 10;
        for (int j = 0; j < 3; j++) {
            double w, h;
            svg_heatmap_size(&p->hm[j], &w, &h);
            svg_heatmap(&s, x, y + 20, &p->hm[j]);
            x += w + 10;
        }
        y += p->h;
        for (int j = 0; j < 3; j++) free(p->v[j]);
        free(p->rl);
        free(p->cl);
        free(p->rk);
        free(p->ck);
        free(p->sub);
    }
    svg_end(&s);
    sb_puts(out, s.b.s);
    sb_free(&s.b);
    free(pn);
    free(show);
}
