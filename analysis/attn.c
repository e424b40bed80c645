/* attn.c — see attn.h. */
#include "analysis/attn.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "analysis/diff.h"
#include "analysis/svg.h"
#include "compiler/interp/interp.h"
#include "runtime/forward.h"

static int find_sel(const RaspProgram *p, const char *label)
{
    for (int i = 0; i < p->nsels; i++)
        if (!strcmp(p->sels[i].label, label)) return i;
    return -1;
}

/* The heads listed for --block / --head (see attn_run) into hl, hh (capacity L * NH).
 * Returns their count, or -1 with a message when block or head is out of range. */
static int select_heads(const Model *a, int block, int head, int *hl, int *hh, StrBuf *err)
{
    const ModelConfig *c = &a->cfg;
    if (block >= c->n_layers) {
        sb_printf(err, "--block %d: the model has %d block%s (0..%d)", block, c->n_layers, c->n_layers == 1 ? "" : "s",
                  c->n_layers - 1);
        return -1;
    }
    if (head >= c->n_heads) {
        sb_printf(err, "--head %d: the model has %d head%s per block (0..%d)", head, c->n_heads,
                  c->n_heads == 1 ? "" : "s", c->n_heads - 1);
        return -1;
    }
    Coords co;
    coord_init(&co, a);
    int described = json_array_size(a->layers) > 0, k = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_heads; h++) {
            if (block >= 0 && l != block) continue;
            if (head >= 0 && h != head) continue;
            if (block < 0 && head < 0 && described && !co.heads[(size_t)l * c->n_heads + (size_t)h].desc) continue;
            hl[k] = l;
            hh[k++] = h;
        }
    coord_free(&co);
    return k;
}

int attn_run(AttnMaps *am, const Model *a, const Model *b, const RaspProgram *p, char *const *toks, int n,
             int block, int head, int hard, StrBuf *err)
{
    memset(am, 0, sizeof *am);
    const ModelConfig *c = &a->cfg;
    int cap = c->n_layers * c->n_heads + 1;
    int *hl = xmalloc(sizeof(int) * (size_t)cap), *hh = xmalloc(sizeof(int) * (size_t)cap);
    int nsel = select_heads(a, block, head, hl, hh, err);
    if (nsel < 0) {
        free(hl);
        free(hh);
        return -1;
    }
    int T = n + 1;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)(T + 1));
    if (model_encode(a, toks, n, ids, err)) {
        free(ids);
        free(hl);
        free(hh);
        return -1;
    }
    am->n = n;
    am->T = T;
    am->L = c->n_layers;
    am->NH = c->n_heads;
    am->nmodels = b ? 2 : 1;
    am->labels = xmalloc(sizeof(char *) * (size_t)T);
    am->labels[0] = xstrdup("BOS");
    for (int i = 0; i < n; i++) am->labels[i + 1] = xstrdup(toks[i]);
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    fo.record_attn = 1;
    fo.hard = hard;
    size_t per = (size_t)am->L * am->NH * T * T;
    for (int w = 0; w < am->nmodels; w++) {
        FwdState st;
        fwd_init(&st);
        int len = T;
        if (fwd_forward(&st, w ? b : a, ids, &len, 1, T, &fo, err)) {
            fwd_free(&st);
            free(ids);
            free(hl);
            free(hh);
            attn_free(am);
            return -1;
        }
        am->pattern[w] = xmalloc(sizeof(float) * (per ? per : 1));
        if (per) memcpy(am->pattern[w], st.attn, sizeof(float) * per);
        fwd_free(&st);
    }
    free(ids);

    /* which heads */
    Coords co;
    coord_init(&co, a);
    am->head_l = hl;
    am->head_h = hh;
    am->head_names = xmalloc(sizeof(char *) * (size_t)(am->L * am->NH + 1));
    am->selected = xcalloc((size_t)(am->L * am->NH + 1), sizeof(uint8_t *));
    Interp *it = NULL;
    int32_t *ptoks = NULL;
    if (p) {
        ptoks = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
        int ok = n <= p->max_len;
        for (int i = 0; i < n && ok; i++) ok = (ptoks[i] = rasp_token_index(p, toks[i])) >= 0;
        if (ok) {
            it = interp_new(p, 1);
            if (interp_eval(it, ptoks, n)) {
                interp_free(it);
                it = NULL;
            }
        }
    }
    StrBuf nm;
    sb_init(&nm);
    for (int i = 0; i < nsel; i++) {
        int l = hl[i], h = hh[i];
        const CoordHead *ch = &co.heads[(size_t)l * am->NH + (size_t)h];
        am->nheads++;
        sb_clear(&nm);
        coord_head_name(&co, l, h, &nm);
        am->head_names[i] = xstrdup(nm.s);
        int sel = it && ch->selector ? find_sel(p, ch->selector) : -1;
        const uint8_t *s = sel >= 0 ? interp_selection(it, sel) : NULL;
        if (s) {
            uint8_t *m = xcalloc((size_t)T * T, 1);
            for (int q = 0; q < n; q++)
                for (int k = 0; k < n; k++) m[(size_t)(q + 1) * T + (size_t)(k + 1)] = s[(size_t)q * n + k];
            am->selected[i] = m;
        }
    }
    sb_free(&nm);
    if (it) interp_free(it);
    free(ptoks);
    coord_free(&co);
    return 0;
}

void attn_axis_label(const AttnMaps *am, int t, StrBuf *out)
{
    if (t == 0) sb_puts(out, "BOS");
    else sb_printf(out, "%d:%s", t - 1, am->labels[t]);
}

void attn_free(AttnMaps *am)
{
    if (am->labels)
        for (int i = 0; i < am->T; i++) free(am->labels[i]);
    free(am->labels);
    free(am->pattern[0]);
    free(am->pattern[1]);
    for (int i = 0; i < am->nheads; i++) {
        free(am->head_names[i]);
        free(am->selected[i]);
    }
    free(am->head_l);
    free(am->head_h);
    free(am->head_names);
    free(am->selected);
    memset(am, 0, sizeof *am);
}

float attn_weight(const AttnMaps *am, int w, int i, int q, int k)
{
    size_t T = (size_t)am->T;
    return am->pattern[w][(((size_t)am->head_l[i] * am->NH + (size_t)am->head_h[i]) * T + (size_t)q) * T + (size_t)k];
}

json_t *attn_json(const AttnMaps *am, const char *const *model_names)
{
    json_t *o = json_object();
    json_t *tok = json_array();
    for (int i = 0; i < am->T; i++) json_array_append_new(tok, json_string(am->labels[i]));
    json_object_set_new(o, "positions", tok);
    json_t *models = json_array();
    for (int w = 0; w < am->nmodels; w++) json_array_append_new(models, json_string(model_names[w]));
    json_object_set_new(o, "models", models);
    json_t *heads = json_array();
    for (int i = 0; i < am->nheads; i++) {
        json_t *h = json_pack("{s:i, s:i, s:s}", "block", am->head_l[i], "head", am->head_h[i], "name",
                              am->head_names[i]);
        json_t *pats = json_array();
        for (int w = 0; w < am->nmodels; w++) {
            json_t *rows = json_array();
            for (int q = 0; q < am->T; q++) {
                json_t *row = json_array();
                for (int k = 0; k < am->T; k++) json_array_append_new(row, json_real(attn_weight(am, w, i, q, k)));
                json_array_append_new(rows, row);
            }
            json_array_append_new(pats, rows);
        }
        json_object_set_new(h, "pattern", pats);
        if (am->selected[i]) {
            json_t *rows = json_array();
            for (int q = 0; q < am->T; q++) {
                json_t *row = json_array();
                for (int k = 0; k < am->T; k++)
                    json_array_append_new(row, json_boolean(am->selected[i][(size_t)q * am->T + k]));
                json_array_append_new(rows, row);
            }
            json_object_set_new(h, "program_selects", rows);
        } else {
            json_object_set_new(h, "program_selects", json_null());
        }
        json_array_append_new(heads, h);
    }
    json_object_set_new(o, "heads", heads);
    return o;
}

void attn_svg(const AttnMaps *am, const char *const *model_names, const char *title, StrBuf *out)
{
    int npan = am->nmodels == 2 ? 3 : 1;
    size_t TT = (size_t)am->T * am->T;
    double *v = xmalloc(sizeof(double) * (TT * (size_t)npan * (size_t)(am->nheads ? am->nheads : 1) + 1));
    SvgHeatmap *hm = xcalloc((size_t)npan * (size_t)(am->nheads ? am->nheads : 1) + 1, sizeof *hm);
    char **titles = xcalloc((size_t)npan * (size_t)(am->nheads ? am->nheads : 1) + 1, sizeof(char *));
    double W = 0, H = 44;
    double *rowh = xcalloc((size_t)am->nheads + 1, sizeof(double));
    char **axis = xcalloc((size_t)am->T + 1, sizeof(char *));
    StrBuf lb;
    sb_init(&lb);
    for (int t = 0; t < am->T; t++) {
        sb_clear(&lb);
        attn_axis_label(am, t, &lb);
        axis[t] = xstrdup(lb.s);
    }
    sb_free(&lb);
    for (int i = 0; i < am->nheads; i++) {
        double x = 0;
        for (int k = 0; k < npan; k++) {
            double *vv = v + TT * ((size_t)i * npan + (size_t)k);
            for (int q = 0; q < am->T; q++)
                for (int kk = 0; kk < am->T; kk++) {
                    double a0 = attn_weight(am, 0, i, q, kk);
                    vv[(size_t)q * am->T + kk] = k == 0 ? a0 : k == 1 ? attn_weight(am, 1, i, q, kk)
                                                                     : attn_weight(am, 1, i, q, kk) - a0;
                }
            SvgHeatmap *h = &hm[(size_t)i * npan + (size_t)k];
            StrBuf t;
            sb_init(&t);
            if (k < 2)
                sb_printf(&t, "%s", model_names[k]);
            else
                sb_printf(&t, "%s - %s", model_names[1], model_names[0]);
            titles[(size_t)i * npan + (size_t)k] = sb_steal(&t);
            sb_free(&t);
            h->title = titles[(size_t)i * npan + (size_t)k];
            h->xlabel = "key (attended to)";
            h->ylabel = "query (attending)";
            h->rows = h->cols = am->T;
            h->v = vv;
            h->row_labels = (const char *const *)axis;
            h->col_labels = (const char *const *)axis;
            h->diverging = k == 2;
            if (k == 2) {
                double mx = 0;
                for (size_t e = 0; e < TT; e++) mx = fmax(mx, fabs(vv[e]));
                h->vmax = fmax(mx, 0.01);   /* float noise stays white */
            } else {
                h->vmax = 1;
            }
            h->scale_label = k == 2 ? "change of attention weight" : "attention weight";
            h->mark = k < 2 ? am->selected[i] : NULL;
            h->mark_legend = "selected by the program's selector";
            double w, hh;
            svg_heatmap_size(h, &w, &hh);
            x += w + 12;
            rowh[i] = fmax(rowh[i], hh);
        }
        W = fmax(W, x);
        H += rowh[i] + 30;
    }
    Svg s;
    svg_begin(&s, fmax(W, 400) + 20, H + 10);
    svg_text(&s, 10, 22, "start", 15, 0, 1, "#000000", title ? title : "tracc attn");
    if (am->nheads == 0) svg_text(&s, 10, 44, "start", 12, 0, 0, "#000000", "no heads to show");
    double y = 44;
    for (int i = 0; i < am->nheads; i++) {
        svg_text(&s, 10, y + 14, "start", 13, 0, 1, "#000000", am->head_names[i]);
        double x = 10;
        for (int k = 0; k < npan; k++) {
            SvgHeatmap *h = &hm[(size_t)i * npan + (size_t)k];
            double w, hh;
            svg_heatmap_size(h, &w, &hh);
            svg_heatmap(&s, x, y + 20, h);
            x += w + 12;
        }
        y += rowh[i] + 30;
    }
    svg_end(&s);
    sb_puts(out, s.b.s);
    sb_free(&s.b);
    for (int i = 0; i < npan * am->nheads; i++) free(titles[i]);
    free(titles);
    free(hm);
    free(v);
    free(rowh);
    for (int t = 0; t < am->T; t++) free(axis[t]);
    free(axis);
}

int attn_summary(AttnSummary *s, const Model *a, const Model *b, const RaspProgram *p, int block, int head,
                 const DiffInputOptions *o, StrBuf *err)
{
    memset(s, 0, sizeof *s);
    int cap = a->cfg.n_layers * a->cfg.n_heads + 1;
    s->head_l = xmalloc(sizeof(int) * (size_t)cap);
    s->head_h = xmalloc(sizeof(int) * (size_t)cap);
    int nsel = select_heads(a, block, head, s->head_l, s->head_h, err);
    if (nsel < 0) {
        attn_summary_free(s);
        return -1;
    }
    /* diff_inputs fills only r->inputs and allocates from r->arena */
    DiffResult *r = xcalloc(1, sizeof *r);
    arena_init(&r->arena);
    if (diff_inputs(r, a, b, p, o, err)) {
        diff_free(r);
        attn_summary_free(s);
        return -1;
    }
    const DiffInputs *in = r->inputs;
    s->ninputs = in->ninputs;
    s->len_min = in->len_min;
    s->len_max = in->len_max;
    s->seed = in->seed;
    s->nat = o->nat;
    s->at = o->at;
    s->nheads = nsel;
    s->head_names = xcalloc((size_t)cap, sizeof(char *));
    s->rows = xcalloc((size_t)cap, sizeof(long));
    s->mean_tv = xcalloc((size_t)cap, sizeof(double));
    s->max_tv = xcalloc((size_t)cap, sizeof(double));
    s->moved = xcalloc((size_t)cap, sizeof(double));
    for (int i = 0; i < nsel; i++) {
        const DiffHeadStat *h = &in->heads[s->head_l[i] * a->cfg.n_heads + s->head_h[i]];
        s->head_names[i] = xstrdup(h->name);
        s->rows[i] = h->rows;
        s->mean_tv[i] = h->mean_tv;
        s->max_tv[i] = h->max_tv;
        s->moved[i] = h->rows ? (double)h->argmax_moved / (double)h->rows : 0;
    }
    diff_free(r);
    return 0;
}

void attn_summary_free(AttnSummary *s)
{
    for (int i = 0; i < s->nheads; i++) free(s->head_names[i]);
    free(s->head_names);
    free(s->head_l);
    free(s->head_h);
    free(s->rows);
    free(s->mean_tv);
    free(s->max_tv);
    free(s->moved);
    memset(s, 0, sizeof *s);
}

json_t *attn_summary_json(const AttnSummary *s, const char *const *model_names)
{
    json_t *o = json_pack("{s:[s,s], s:I, s:i, s:i, s:I}", "models", model_names[0], model_names[1], "inputs",
                          (json_int_t)s->ninputs, "len_min", s->len_min, "len_max", s->len_max, "seed",
                          (json_int_t)s->seed);
    json_t *heads = json_array();
    for (int i = 0; i < s->nheads; i++)
        json_array_append_new(heads, json_pack("{s:i, s:i, s:s, s:I, s:f, s:f, s:f}", "block", s->head_l[i], "head",
                                               s->head_h[i], "name", s->head_names[i], "rows", (json_int_t)s->rows[i],
                                               "mean_tv", s->mean_tv[i], "max_tv", s->max_tv[i], "argmax_moved",
                                               s->moved[i]));
    json_t *at = json_array();
    for (int i = 0; i < s->nat; i++) json_array_append_new(at, json_integer(s->at[i]));
    json_object_set_new(o, "at", s->nat ? at : (json_decref(at), json_null()));
    json_object_set_new(o, "heads", heads);
    return o;
}
