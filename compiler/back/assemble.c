/* assemble.c — see assemble.h.
 *
 * Residual layout, in this order (docs/compiler.md):
 *   one; tokens:<v> for the vocab in declared order, tokens:<BOS>, tokens:<PAD>;
 *   indices:0..max_len-1; then every s-op with dimensions in program order, each preceded by
 *   its scratch (`<label>@sw`, a selector width's attention output) and by the internal
 *   tuple s-ops its selector reads (`<selector>@keys:<class>`, `<selector>@queries:<class>`).
 * A categorical s-op has one dimension per value (`label:value`), a numerical one `label`.
 *
 * BOS discipline: the BOS position's residual stays exactly its embedding one + tokens:BOS.
 * Every MLP unit is gated off at BOS (W_in[tokens:BOS] = -W_in[one] - 1, so its input there
 * is -1); every head lets the BOS query see only the BOS key, so it writes a known vector
 * there, which one unit per block, ReLU(tokens:BOS), subtracts. */
#include "compiler/back/assemble.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ----------------------------------------------------------------------------- */

static char *label_value(const char *name, Value v)
{
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, name);
    sb_putc(&b, ':');
    val_format(v, &b);
    char *s = sb_steal(&b);
    sb_free(&b);
    return s;
}

static char *label_int(const char *name, const char *sep, int k)
{
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "%s%s%d", name, sep, k);
    char *s = sb_steal(&b);
    sb_free(&b);
    return s;
}

typedef struct {
    char **labels;
    size_t cap;
    int D;
} LabelList;

static int push_label(LabelList *l, char *s)
{
    XGROW(l->labels, l->cap, (size_t)l->D + 1);
    l->labels[l->D] = s;
    return l->D++;
}

static void place_node(const LowerProgram *lp, CraftLayout *lay, LabelList *ll, int node)
{
    const LowerNode *n = &lp->nodes[node];
    if (lay->node_dim[node] >= 0) return;
    if (n->enc == ENC_NUMERICAL) {
        lay->node_dim[node] = push_label(ll, xstrdup(n->label));
        return;
    }
    lay->node_dim[node] = ll->D;
    for (int j = 0; j < n->nvals; j++)
        push_label(ll, n->vals ? label_value(n->label, n->vals[j]) : label_int(n->label, ":", j));
}

/* qsort has no context argument in C11: the labels being sorted. */
static const char *const *g_labels;

/* By name stem (before ':'), bare names first, then whole label. */
static int cmp_label(const void *x, const void *y)
{
    const char *a = g_labels[*(const int *)x], *b = g_labels[*(const int *)y];
    size_t na = strcspn(a, ":"), nb = strcspn(b, ":");
    int c = strncmp(a, b, na < nb ? na : nb);
    if (c) return c;
    if (na != nb) return na < nb ? -1 : 1;
    return strcmp(a, b);
}

int asm_layout(const LowerProgram *lp, CraftLayout *lay, StrBuf *err)
{
    return asm_layout_policy(lp, NULL, lay, err);
}

int asm_layout_policy(const LowerProgram *lp, const CraftPolicy *pol, CraftLayout *lay, StrBuf *err)
{
    const RaspProgram *p = lp->p;
    memset(lay, 0, sizeof *lay);
    LabelList ll = {NULL, 0, 0};
    lay->node_dim = xmalloc(sizeof(int) * (size_t)(lp->nnodes ? lp->nnodes : 1));
    lay->scratch = xmalloc(sizeof(int) * (size_t)(lp->nops ? lp->nops : 1));
    lay->nscratch = xcalloc((size_t)(lp->nops ? lp->nops : 1), sizeof(int));
    for (int i = 0; i < lp->nnodes; i++) lay->node_dim[i] = -1;
    for (int i = 0; i < lp->nops; i++) lay->scratch[i] = -1;

    lay->one = push_label(&ll, xstrdup("one"));
    lay->tok0 = ll.D;
    for (int v = 0; v < p->nvocab; v++) push_label(&ll, label_value("tokens", p->vocab[v]));
    lay->bos = push_label(&ll, label_value("tokens", val_str(p->bos)));
    lay->pad = push_label(&ll, label_value("tokens", val_str(p->pad)));
    lay->idx0 = ll.D;
    for (int k = 0; k < p->max_len; k++) push_label(&ll, label_int("indices", ":", k));
    for (int i = 0; i < p->nsops; i++) {
        const LowerNode *n = &lp->nodes[i];
        if (n->rep != LREP_EMBED) continue;
        lay->node_dim[i] = p->sops[i].op == SOP_TOKENS ? lay->tok0 : lay->idx0;
    }
    for (int i = 0; i < p->nsops; i++) {
        const LowerNode *n = &lp->nodes[i];
        if (n->rep != LREP_MAT) continue;
        const LowerOp *op = &lp->ops[n->op];
        if (op->out == i && (op->kind == LOP_AGG || op->kind == LOP_SELWIDTH)) {
            for (int k = 0; k < op->nlits; k++) {
                if (op->lits[k].knode >= p->nsops) place_node(lp, lay, &ll, op->lits[k].knode);
                if (op->lits[k].qnode >= p->nsops) place_node(lp, lay, &ll, op->lits[k].qnode);
            }
            if (op->kind == LOP_SELWIDTH) {
                StrBuf b;
                sb_init(&b);
                sb_printf(&b, "%s@sw", n->label);
                lay->scratch[n->op] = push_label(&ll, sb_steal(&b));
                sb_free(&b);
                /* the uniform construction: the BOS share, then one fraction per key class
                 * (craft_all builds it exactly where this leaves more than one) */
                int ncls = craft_sw_uniform(pol, lp, op);
                lay->nscratch[n->op] = 1 + ncls;
                for (int c = 0; c < ncls; c++) push_label(&ll, label_int(n->label, "@sw.", c));
            }
        }
        place_node(lp, lay, &ll, i);
    }
    /* internal nodes no head placed (none expected) */
    for (int i = p->nsops; i < lp->nnodes; i++)
        if (lp->nodes[i].rep == LREP_MAT) place_node(lp, lay, &ll, i);
    lay->D = ll.D;
    lay->labels = ll.labels;

    /* Labels must be distinct, and one name either numerical (bare) or categorical
     * (name:value): a user s-op called `one` would collide with the constant. Sorted by
     * name stem, a clash sits between neighbours. */
    int *ord = xmalloc(sizeof(int) * (size_t)(lay->D ? lay->D : 1));
    for (int i = 0; i < lay->D; i++) ord[i] = i;
    g_labels = (const char *const *)lay->labels;
    qsort(ord, (size_t)lay->D, sizeof *ord, cmp_label);
    for (int i = 1; i < lay->D; i++) {
        const char *a = lay->labels[ord[i - 1]], *b = lay->labels[ord[i]];
        size_t na = strcspn(a, ":"), nb = strcspn(b, ":");
        if (!strcmp(a, b) || (na == nb && !strncmp(a, b, na) && (a[na] == ':') != (b[nb] == ':'))) {
            sb_printf(err, "residual labels '%s' and '%s' collide: rename the s-op '%.*s' "
                      "(`one`, `tokens` and `indices` name the model's own directions)",
                      a, b, (int)na, a);
            free(ord);
            asm_layout_free(lay);
            return -1;
        }
    }
    free(ord);
    return 0;
}

void asm_layout_free(CraftLayout *lay)
{
    if (!lay) return;
    for (int i = 0; i < lay->D; i++) free(lay->labels[i]);
    free(lay->labels);
    free(lay->node_dim);
    free(lay->scratch);
    free(lay->nscratch);
    memset(lay, 0, sizeof *lay);
}

/* ---- metadata helpers ---------------------------------------------------------------- */

static json_t *jnum(double x)
{
    if (isinf(x)) return json_string("inf");
    if (isnan(x)) return json_null();
    return json_real(x);
}

static json_t *jstrs1(const char *a)
{
    json_t *j = json_array();
    if (a) json_array_append_new(j, json_string(a));
    return j;
}

static void jadd_unique(json_t *arr, const char *s)
{
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (!strcmp(json_string_value(json_array_get(arr, i)), s)) return;
    json_array_append_new(arr, json_string(s));
}

/* The residual s-op a node is read from (itself, or its base for a virtual node). */
static void add_read(const LowerProgram *lp, json_t *arr, int node)
{
    if (node < 0) return;
    const LowerNode *n = &lp->nodes[node];
    if (n->rep == LREP_VIRTUAL) {
        if (n->virt == LVIRT_CATFN) {
            if (n->base >= 0) add_read(lp, arr, n->base);
            else jadd_unique(arr, "one");
        } else {
            for (int i = 0; i < n->nlin; i++) add_read(lp, arr, n->lin_node[i]);
        }
        return;
    }
    jadd_unique(arr, n->label);
}

static void add_fused_virtual(const LowerProgram *lp, json_t *arr, int node)
{
    if (node < 0) return;
    const LowerNode *n = &lp->nodes[node];
    if (n->rep != LREP_VIRTUAL) return;
    if (n->sop >= 0) jadd_unique(arr, n->label);
    if (n->virt == LVIRT_LIN)
        for (int i = 0; i < n->nlin; i++) add_fused_virtual(lp, arr, n->lin_node[i]);
}

static void selector_sops(const RaspProgram *p, int sel, json_t *keys, json_t *queries)
{
    const RaspSel *l = &p->sels[sel];
    if (l->op == SEL_SELECT) {
        jadd_unique(keys, p->sops[l->keys].label);
        jadd_unique(queries, p->sops[l->queries].label);
        return;
    }
    selector_sops(p, l->a, keys, queries);
    if (l->op != SEL_NOT) selector_sops(p, l->b, keys, queries);
}

/* The linear form of a virtual s-op over residual labels: {label: coefficient}. */
static json_t *form_json(const CraftLayout *lay, const double *f)
{
    json_t *o = json_object();
    for (int i = 0; i < lay->D; i++)
        if (f[i] != 0.0) json_object_set_new(o, lay->labels[i], json_real(f[i]));
    return o;
}

static json_t *virtual_json(const LowerProgram *lp, const CraftLayout *lay)
{
    json_t *arr = json_array();
    double *f = xcalloc((size_t)lay->D, sizeof(double));
    for (int i = 0; i < lp->p->nsops; i++) {
        const LowerNode *n = &lp->nodes[i];
        if (n->rep != LREP_VIRTUAL) continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(n->label));
        json_object_set_new(o, "encoding", json_string(n->enc == ENC_NUMERICAL ? "numerical" : "categorical"));
        if (n->enc == ENC_NUMERICAL) {
            memset(f, 0, sizeof(double) * (size_t)lay->D);
            craft_feat_num(lp, lay, i, 1.0, f);
            json_object_set_new(o, "form", form_json(lay, f));
        } else {
            json_t *vals = json_object();
            for (int j = 0; j < n->nvals; j++) {
                memset(f, 0, sizeof(double) * (size_t)lay->D);
                craft_feat_cat(lp, lay, i, j, 1.0, f);
                StrBuf b;
                sb_init(&b);
                val_format(n->vals[j], &b);
                json_object_set_new(vals, b.s, form_json(lay, f));
                sb_free(&b);
            }
            json_object_set_new(o, "form", vals);
        }
        json_array_append_new(arr, o);
    }
    free(f);
    return arr;
}

/* ---- the model ------------------------------------------------------------------------- */

static int max_i(int a, int b) { return a > b ? a : b; }

/* Residual dimension d carries g times what it did: every writer (embeddings, W_O, W_out)
 * times g, every reader (W_Q, W_K, W_V, W_in, W_U) over g. With g a power of two every
 * float32 product and sum of the forward pass is the same number scaled by a power of two,
 * so the model computes bit for bit what it computed before, and every error bound holds. */
static void rescale_dim(Model *m, int d, float g)
{
    int C = m->cfg.d_model, M = m->cfg.d_mlp, HD = m->cfg.d_head, NH = m->cfg.n_heads;
    int L = m->cfg.n_layers, VO = m->cfg.d_vocab_out;
    ModelParams *w = &m->params;
    for (int v = 0; v < m->cfg.d_vocab; v++) w->W_E[(size_t)v * C + d] *= g;
    for (int t = 0; t < m->cfg.n_ctx; t++) w->W_pos[(size_t)t * C + d] *= g;
    for (int l = 0; l < L; l++) {
        for (int h = 0; h < NH; h++) {
            size_t b = ((size_t)l * NH + (size_t)h) * C * HD + (size_t)d * HD;
            for (int k = 0; k < HD; k++) {
                w->W_Q[b + k] /= g;
                w->W_K[b + k] /= g;
                w->W_V[b + k] /= g;
                w->W_O[((size_t)l * NH + (size_t)h) * HD * C + (size_t)k * C + d] *= g;
            }
        }
        for (int j = 0; j < M; j++) {
            w->W_in[(size_t)l * C * M + (size_t)d * M + j] /= g;
            w->W_out[(size_t)l * M * C + (size_t)j * C + d] *= g;
        }
    }
    for (int j = 0; j < VO; j++) w->W_U[(size_t)d * VO + j] /= g;
}

Model *asm_model(const LowerProgram *lp, const CraftLayout *lay, const CraftResult *cr,
                 const AsmOptions *opt, StrBuf *err)
{
    const RaspProgram *p = lp->p;
    int D = lay->D, L = lp->nblocks;
    const LowerNode *on = &lp->nodes[lp->output];

    /* shapes: heads per block, the widest head, MLP units per block (+ clean-BOS unit) */
    int *nheads = xcalloc((size_t)(L ? L : 1), sizeof(int));
    int *nunits = xcalloc((size_t)(L ? L : 1), sizeof(int));
    int *clean = xcalloc((size_t)(L ? L : 1), sizeof(int));
    double *bosw = xcalloc((size_t)(L ? L : 1) * (size_t)D, sizeof(double));
    int d_head = 0;
    for (int i = 0; i < lp->nops; i++) {
        const LowerOp *op = &lp->ops[i];
        const CraftOp *co = &cr->ops[i];
        if (co->has_head) {
            int b = op->attn_slot / 2;
            nheads[b]++;
            d_head = max_i(d_head, max_i(co->dqk, co->dv));
            for (int k = 0; k < D; k++) bosw[(size_t)b * D + k] += co->bos_write[k];
        }
        if (op->mlp_slot >= 0) nunits[op->mlp_slot / 2] += co->units;
    }
    int n_heads = 0, d_mlp = 0;
    for (int b = 0; b < L; b++) {
        for (int k = 0; k < D && !clean[b]; k++) clean[b] = bosw[(size_t)b * D + k] != 0.0;
        nunits[b] += clean[b];
        n_heads = max_i(n_heads, nheads[b]);
        d_mlp = max_i(d_mlp, nunits[b]);
    }
    if (on->enc == ENC_CATEGORICAL && on->nvals < 1) {
        sb_printf(err, "cannot compile: the output '%s' never has a value", on->label);
        goto fail0;
    }

    ModelConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layers = L;
    cfg.d_model = D;
    cfg.d_head = d_head;
    cfg.n_heads = n_heads;
    cfg.d_mlp = d_mlp;
    cfg.d_vocab = p->nvocab + 2;
    cfg.d_vocab_out = on->enc == ENC_NUMERICAL ? 1 : on->nvals;
    cfg.n_ctx = p->max_len + 1;
    cfg.causal = p->causal != 0;
    cfg.use_attn_scale = 0;
    cfg.attn_scale = 1.0;
    Model *m = model_new(&cfg, err);
    if (!m) goto fail0;
    ModelParams *w = &m->params;
    size_t C = (size_t)D, NH = (size_t)n_heads, HD = (size_t)d_head, M = (size_t)d_mlp;

    /* embeddings: every token row holds one + its token; positions 1.. their index */
    int V = cfg.d_vocab;
    for (int t = 0; t < V; t++) {
        w->W_E[(size_t)t * C + lay->one] = 1.0f;
        w->W_E[(size_t)t * C + lay->tok0 + t] = 1.0f;   /* BOS and PAD follow the vocab */
    }
    for (int q = 1; q <= p->max_len; q++) w->W_pos[(size_t)q * C + lay->idx0 + q - 1] = 1.0f;

    /* blocks */
    json_t *layers = json_array();
    int *hnext = xcalloc((size_t)(L ? L : 1), sizeof(int));
    int *unext = xcalloc((size_t)(L ? L : 1), sizeof(int));
    json_t **jattn = xcalloc((size_t)(L ? L : 1), sizeof(json_t *));
    json_t **jmlp = xcalloc((size_t)(L ? L : 1), sizeof(json_t *));
    for (int b = 0; b < L; b++) {
        jattn[b] = json_array();
        jmlp[b] = json_array();
    }
    for (int i = 0; i < lp->nops; i++) {
        const LowerOp *op = &lp->ops[i];
        const CraftOp *co = &cr->ops[i];
        const LowerNode *out = &lp->nodes[op->out];
        json_t *fused = json_array();
        for (int f = 0; f < op->nfused; f++) jadd_unique(fused, p->sops[op->fused[f]].label);
        if (co->has_head) {
            int b = op->attn_slot / 2, h = hnext[b]++;
            size_t base_qk = ((size_t)b * NH + (size_t)h) * C * HD;
            for (size_t r = 0; r < C; r++) {
                for (int k = 0; k < co->dqk; k++) {
                    w->W_Q[base_qk + r * HD + k] = (float)co->wq[r * co->dqk + k];
                    w->W_K[base_qk + r * HD + k] = (float)co->wk[r * co->dqk + k];
                }
                for (int k = 0; k < co->dv; k++)
                    w->W_V[base_qk + r * HD + k] = (float)co->wv[r * co->dv + k];
            }
            size_t base_o = ((size_t)b * NH + (size_t)h) * HD * C;
            for (int k = 0; k < co->dv; k++)
                for (size_t r = 0; r < C; r++) w->W_O[base_o + (size_t)k * C + r] = (float)co->wo[(size_t)k * C + r];

            json_t *jh = json_object();
            json_object_set_new(jh, "head", json_integer(h));
            json_object_set_new(jh, "d_head", json_integer(max_i(co->dqk, co->dv)));
            json_object_set_new(jh, "d_qk", json_integer(co->dqk));
            json_object_set_new(jh, "d_ov", json_integer(co->dv));
            json_object_set_new(jh, "op", json_string(op->kind == LOP_AGG ? "aggregate" : "selector_width"));
            json_object_set_new(jh, "label", json_string(out->label));
            json_object_set_new(jh, "selector", json_string(p->sels[op->sel].label));
            /* query/key/value: the s-ops whose residual dimensions W_Q, W_K, W_V read;
             * selector_keys/queries: the s-ops the selector is written over (a virtual
             * one is read through its base, and listed under fused) */
            json_t *keys = json_array(), *queries = json_array();
            json_t *rk = json_array(), *rq = json_array(), *rv = json_array();
            selector_sops(p, op->sel, keys, queries);
            for (int k = 0; k < op->nlits; k++) {
                add_read(lp, rk, op->lits[k].knode);
                add_read(lp, rq, op->lits[k].qnode);
                add_fused_virtual(lp, fused, op->lits[k].knode);
                add_fused_virtual(lp, fused, op->lits[k].qnode);
            }
            json_object_set_new(jh, "query", rq);
            json_object_set_new(jh, "key", rk);
            if (op->kind == LOP_AGG) {
                add_read(lp, rv, op->value);
                add_fused_virtual(lp, fused, op->value);
                json_object_set_new(jh, "value", rv);
                json_object_set_new(jh, "output", jstrs1(out->label));
                json_object_set_new(jh, "aggregated", jstrs1(lp->nodes[op->value].label));
            } else {
                jadd_unique(rv, "tokens");     /* its tokens:BOS dimension */
                if (lay->nscratch[i] > 1) add_read(lp, rv, op->lits[0].knode);   /* key classes */
                json_object_set_new(jh, "value", rv);
                json_t *outs = json_array();
                for (int k = 0; k < lay->nscratch[i]; k++)
                    json_array_append_new(outs, json_string(lay->labels[lay->scratch[i] + k]));
                json_object_set_new(jh, "output", outs);
                if (lay->nscratch[i] > 1) json_object_set_new(jh, "construction", json_string("uniform"));
            }
            json_object_set_new(jh, "selector_keys", keys);
            json_object_set_new(jh, "selector_queries", queries);
            json_object_set_new(jh, "fused", json_deep_copy(fused));
            json_object_set_new(jh, "literals", json_integer(op->nlits));
            json_object_set_new(jh, "c", json_real(co->c));
            json_object_set_new(jh, "score_gap", json_real(co->c - 2 * co->score_noise));
            json_object_set_new(jh, "bos_gap", json_real(co->c / 2 - co->score_noise));
            json_object_set_new(jh, "leak", jnum(co->leak));
            if (op->kind == LOP_AGG) json_object_set_new(jh, "output_error", jnum(co->out_err));
            json_array_append_new(jattn[b], jh);
        }
        if (op->mlp_slot >= 0 && co->units > 0) {
            int b = op->mlp_slot / 2, u0 = unext[b];
            unext[b] += co->units;
            /* At this MLP the BOS row is its embedding plus what this block's heads wrote
             * there (the clean-BOS unit removes that only in this MLP's output). A unit
             * whose input there is not already <= -1 gets the difference on tokens:BOS. */
            const double *bw = bosw + (size_t)b * D;
            for (int k = 0; k < co->units; k++) {
                size_t col = (size_t)(u0 + k);
                double pre = 0;
                for (size_t r = 0; r < C; r++) {
                    double in = bw[r] + ((int)r == lay->one || (int)r == lay->bos ? 1.0 : 0.0);
                    pre += in * co->win[r * co->units + k];
                }
                for (size_t r = 0; r < C; r++) {
                    double x = co->win[r * co->units + k];
                    if ((int)r == lay->bos && pre > -1.0) x -= pre + 1.0;    /* off at BOS */
                    w->W_in[(size_t)b * C * M + r * M + col] = (float)x;
                }
                for (size_t r = 0; r < C; r++)
                    w->W_out[(size_t)b * M * C + col * C + r] = (float)co->wout[(size_t)k * C + r];
            }
            json_t *jm = json_object();
            json_object_set_new(jm, "neurons", json_pack("[ii]", u0, u0 + co->units));
            json_object_set_new(jm, "op", json_string(op->kind == LOP_SELWIDTH ? "selector_width" : lower_op_name(op->kind)));
            json_object_set_new(jm, "label", json_string(out->label));
            json_t *inputs = json_array();
            if (op->kind == LOP_SELWIDTH)
                for (int k = 0; k < lay->nscratch[i]; k++) jadd_unique(inputs, lay->labels[lay->scratch[i] + k]);
            for (int k = 0; k < op->nin; k++) {
                add_read(lp, inputs, op->in[k]);
                add_fused_virtual(lp, fused, op->in[k]);
            }
            if (op->kind == LOP_MLP_NUM) {
                add_read(lp, inputs, out->virt == LVIRT_CATFN ? out->base : -1);
                for (int k = 0; out->virt == LVIRT_LIN && k < out->nlin; k++) {
                    add_read(lp, inputs, out->lin_node[k]);
                    add_fused_virtual(lp, fused, out->lin_node[k]);
                }
            }
            json_object_set_new(jm, "inputs", inputs);
            json_object_set_new(jm, "output", jstrs1(out->label));
            json_object_set_new(jm, "fused", json_deep_copy(fused));
            json_object_set_new(jm, "tolerance", jnum(co->tol));
            json_object_set_new(jm, "input_error", jnum(co->in_err));
            json_object_set_new(jm, "output_error", jnum(co->out_err));
            json_object_set_new(jm, "margin", jnum(co->margin));
            json_array_append_new(jmlp[b], jm);
        }
        json_decref(fused);
    }
    /* clean-BOS units */
    for (int b = 0; b < L; b++) {
        if (!clean[b]) continue;
        int u = unext[b]++;
        w->W_in[(size_t)b * C * M + (size_t)lay->bos * M + (size_t)u] = 1.0f;
        for (size_t r = 0; r < C; r++)
            w->W_out[(size_t)b * M * C + (size_t)u * C + r] = (float)-bosw[(size_t)b * D + r];
        json_t *jm = json_object();
        json_object_set_new(jm, "neurons", json_pack("[ii]", u, u + 1));
        json_object_set_new(jm, "op", json_string("clean_bos"));
        json_object_set_new(jm, "label", json_string("tokens:BOS"));
        json_object_set_new(jm, "inputs", jstrs1(lay->labels[lay->bos]));
        json_object_set_new(jm, "output", json_array());
        json_array_append_new(jmlp[b], jm);
    }
    for (int b = 0; b < L; b++) {
        json_t *jb = json_object();
        json_object_set_new(jb, "attn", jattn[b]);
        json_object_set_new(jb, "mlp", jmlp[b]);
        json_object_set_new(jb, "d_mlp", json_integer(unext[b]));
        json_array_append_new(layers, jb);
    }
    free(jattn);
    free(jmlp);
    free(hnext);
    free(unext);

    /* unembed: the output's features */
    double *f = xcalloc(C, sizeof(double));
    int VO = cfg.d_vocab_out;
    for (int j = 0; j < VO; j++) {
        memset(f, 0, sizeof(double) * C);
        if (on->enc == ENC_NUMERICAL) craft_feat_num(lp, lay, lp->output, 1.0, f);
        else craft_feat_cat(lp, lay, lp->output, j, 1.0, f);
        for (size_t r = 0; r < C; r++) w->W_U[r * (size_t)VO + (size_t)j] = (float)f[r];
    }
    free(f);
    if (opt->conditioning == ASM_COND_BALANCED)
        for (int d = 0; d < lay->idx0 + p->max_len; d++) rescale_dim(m, d, ASM_EMBED_GAIN);

    /* metadata */
    Value *voc = xmalloc(sizeof(Value) * (size_t)V);
    for (int t = 0; t < p->nvocab; t++) voc[t] = p->vocab[t];
    voc[p->nvocab] = val_str(p->bos);
    voc[p->nvocab + 1] = val_str(p->pad);
    model_set_vocab(m, voc, p->nvocab, p->nvocab + 1);
    free(voc);
    model_set_output(m, on->label, on->enc == ENC_NUMERICAL, on->vals);
    model_set_residual(m, (const char *const *)lay->labels);
    model_set_program(m, p->source ? p->source : "");
    model_set_layers(m, layers);
    json_decref(layers);

    json_t *comp = json_object();
    json_object_set_new(comp, "name", json_string("tracc"));
    json_object_set_new(comp, "version", json_string(opt->version ? opt->version : ""));
    json_t *o = json_object();
    json_object_set_new(o, "max_len", json_integer(p->max_len));
    json_object_set_new(o, "vocab", opt->vocab ? json_string(opt->vocab) : json_null());
    json_object_set_new(o, "max_len_override", opt->max_len > 0 ? json_integer(opt->max_len) : json_null());
    json_object_set_new(o, "causal", json_boolean(p->causal));
    json_object_set_new(o, "causal_override", opt->causal >= 0 ? json_boolean(opt->causal) : json_null());
    json_object_set_new(o, "fuse", json_boolean(opt->fuse));
    json_object_set_new(o, "sharpness", opt->sharpness > 0 ? json_real(opt->sharpness) : json_string("auto"));
    json_object_set_new(o, "conditioning", json_string(opt->conditioning == ASM_COND_BALANCED ? "balanced" : "tracr"));
    /* the factor on the embedding's dimensions (one, tokens, indices) */
    json_object_set_new(o, "embed_gain", json_real(opt->conditioning == ASM_COND_BALANCED ? ASM_EMBED_GAIN : 1.0));
    json_object_set_new(comp, "options", o);
    json_object_set_new(comp, "exact", json_boolean(cr->exact));
    json_object_set_new(comp, "min_margin", jnum(cr->min_margin));
    json_object_set_new(comp, "output_error", jnum(cr->out_err));
    json_object_set_new(comp, "virtual", virtual_json(lp, lay));
    model_set_compiler(m, comp);
    json_decref(comp);

    free(nheads);
    free(nunits);
    free(clean);
    free(bosw);
    return m;
fail0:
    free(nheads);
    free(nunits);
    free(clean);
    free(bosw);
    return NULL;
}

Model *asm_compile(const RaspProgram *p, const AsmOptions *opt, AsmSummary *sum, StrBuf *err)
{
    AsmOptions def = ASM_OPTIONS_DEFAULT;
    if (!opt) opt = &def;
    LowerOptions lo = {opt->fuse};
    LowerProgram *lp = lower_program(p, &lo, err);
    if (!lp) return NULL;
    CraftLayout lay;
    CraftPolicy pol = {opt->sharpness, opt->conditioning == ASM_COND_BALANCED};
    if (asm_layout_policy(lp, &pol, &lay, err)) {
        lower_free(lp);
        return NULL;
    }
    CraftResult cr;
    if (craft_all(lp, &lay, &pol, &cr, err)) {
        asm_layout_free(&lay);
        lower_free(lp);
        return NULL;
    }
    Model *m = asm_model(lp, &lay, &cr, opt, err);
    if (m && sum) {
        memset(sum, 0, sizeof *sum);
        sum->n_layers = m->cfg.n_layers;
        sum->d_model = m->cfg.d_model;
        sum->n_heads = m->cfg.n_heads;
        sum->d_head = m->cfg.d_head;
        sum->d_mlp = m->cfg.d_mlp;
        sum->params = m->num_params;
        sum->nonzero = model_count_nonzero(m);
        size_t vo = (size_t)m->cfg.d_vocab_out;
        sum->unembed_params = (size_t)m->cfg.d_model * vo + vo;
        for (size_t k = 0; k < (size_t)m->cfg.d_model * vo; k++) sum->unembed_nonzero += m->params.W_U[k] != 0.0f;
        for (size_t k = 0; k < vo; k++) sum->unembed_nonzero += m->params.b_U[k] != 0.0f;
        sum->exact = cr.exact;
        sum->min_margin = cr.min_margin;
        sum->mix_sop = cr.mix_sop;
        for (int i = 0; i < cr.nops; i++) {
            if (!cr.ops[i].has_head) continue;
            double c = cr.ops[i].c;
            if (sum->c_min == 0 || c < sum->c_min) sum->c_min = c;
            if (c > sum->c_max) sum->c_max = c;
        }
    }
    craft_free(&cr);
    asm_layout_free(&lay);
    lower_free(lp);
    return m;
}
