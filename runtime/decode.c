/* decode.c — see decode.h. */
#include "runtime/decode.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Value dec_float(float x)
{
    if (!isfinite(x)) return val_float((double)x);
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return val_float(strtod(buf, NULL));
}

int dec_output_column(const Model *m, const float *logits)
{
    if (m->output_numerical) return -1;
    int best = 0;
    for (int j = 1; j < m->cfg.d_vocab_out; j++)
        if (logits[j] > logits[best]) best = j;
    /* written so that a NaN logit also means no value */
    return logits[best] > DEC_NONE_BELOW ? best : -1;
}

Value dec_output(const Model *m, const float *logits)
{
    if (m->output_numerical) return dec_float(logits[0]);
    int best = dec_output_column(m, logits);
    return best < 0 ? val_none() : m->output_values[best];
}

int dec_layers_foreach(const Model *m, int (*fn)(json_t *entry, int stage, void *ctx), void *ctx)
{
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl; l++) {
        json_t *b = json_array_get(m->layers, l);
        const char *part[2] = {"attn", "mlp"};
        for (int k = 0; k < 2; k++) {
            json_t *arr = json_object_get(b, part[k]);
            for (size_t i = 0; i < json_array_size(arr); i++) {
                int rc = fn(json_array_get(arr, i), (int)(2 * l + 1 + (size_t)k), ctx);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

typedef struct {
    DecLayout *d;
    int seq;
} StageWalk;

static int stage_entry(json_t *entry, int stage, void *ctx)
{
    StageWalk *w = ctx;
    json_t *outs = json_object_get(entry, "output");
    for (size_t j = 0; j < json_array_size(outs); j++) {
        const char *lab = json_string_value(json_array_get(outs, j));
        DecSop *s = lab ? (DecSop *)dec_layout_find(w->d, lab) : NULL;
        if (!s || s->stage >= 0) continue;
        s->stage = stage;
        s->written = w->seq++;
    }
    return 0;
}

/* The one walk over the `layers` metadata: each residual s-op's stage and write order. */
static void stage_walk(DecLayout *d, const Model *m)
{
    for (int k = 0; k < d->nsops; k++) {
        d->sops[k].stage = -1;
        d->sops[k].written = -1;
    }
    size_t nl = json_array_size(m->layers);
    StageWalk w = {d, 0};
    dec_layers_foreach(m, stage_entry, &w);
    for (int k = 0; k < d->nsops; k++) {
        DecSop *s = &d->sops[k];
        if (s->stage >= 0) continue;
        s->stage = 0;
        if (nl > 0) continue;
        /* no layer detail: everything is complete in the final residual */
        if (strcmp(s->name, "tokens") && strcmp(s->name, "indices") && strcmp(s->name, "one"))
            s->stage = 2 * m->cfg.n_layers;
        s->written = k;
    }
}

void dec_layout_init(DecLayout *d, const Model *m)
{
    memset(d, 0, sizeof *d);
    arena_init(&d->arena);
    int C = m->cfg.d_model;
    /* At most one s-op per dimension; size everything for that. */
    d->sops = arena_alloc(&d->arena, sizeof(DecSop) * (size_t)(C ? C : 1));
    int *owner = xmalloc(sizeof(int) * (size_t)(C ? C : 1));
    for (int i = 0; i < C; i++) {
        const char *lab = m->residual[i];
        const char *colon = strchr(lab, ':');
        size_t nlen = colon ? (size_t)(colon - lab) : strlen(lab);
        int s = -1;
        for (int k = 0; k < d->nsops; k++)
            if (strlen(d->sops[k].name) == nlen && !strncmp(d->sops[k].name, lab, nlen)) {
                s = k;
                break;
            }
        if (s < 0) {
            s = d->nsops++;
            d->sops[s].name = arena_strndup(&d->arena, lab, nlen);
            d->sops[s].categorical = colon != NULL;
        }
        owner[i] = s;
        d->sops[s].ndims++;
    }
    for (int k = 0; k < d->nsops; k++) {
        d->sops[k].dims = arena_alloc(&d->arena, sizeof(int) * (size_t)d->sops[k].ndims);
        d->sops[k].values = arena_alloc(&d->arena, sizeof(char *) * (size_t)d->sops[k].ndims);
        d->sops[k].ndims = 0;
    }
    for (int i = 0; i < C; i++) {
        DecSop *s = &d->sops[owner[i]];
        const char *colon = strchr(m->residual[i], ':');
        s->values[s->ndims] = colon ? colon + 1 : m->residual[i];
        s->dims[s->ndims++] = i;
    }
    d->nresidual = d->nsops;
    free(owner);
    stage_walk(d, m);
}

/* ---------------------------------------------------------------- virtual s-ops */

/* Residual labels sorted, for looking up the labels of linear forms, and the residual
 * s-op that owns each dimension. */
typedef struct {
    const char *label;
    int dim;
} LabelDim;

typedef struct {
    int n;
    LabelDim *sorted;   /* (C) */
    int *owner;         /* (C) index into the layout's residual s-ops */
} LabelIndex;

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const LabelDim *)a)->label, ((const LabelDim *)b)->label);
}

static void label_index_init(LabelIndex *ix, const Model *m, const DecLayout *d)
{
    int C = m->cfg.d_model;
    ix->n = C;
    ix->sorted = xmalloc(sizeof(LabelDim) * (size_t)(C ? C : 1));
    ix->owner = xmalloc(sizeof(int) * (size_t)(C ? C : 1));
    for (int i = 0; i < C; i++) {
        ix->sorted[i] = (LabelDim){m->residual[i], i};
        ix->owner[i] = -1;
    }
    qsort(ix->sorted, (size_t)C, sizeof(LabelDim), cmp_label);
    for (int k = 0; k < d->nresidual; k++)
        for (int j = 0; j < d->sops[k].ndims; j++) ix->owner[d->sops[k].dims[j]] = k;
}

static void label_index_free(LabelIndex *ix)
{
    free(ix->sorted);
    free(ix->owner);
}

static int label_index_find(const LabelIndex *ix, const char *label)
{
    LabelDim key = {label, -1};
    const LabelDim *hit = bsearch(&key, ix->sorted, (size_t)ix->n, sizeof(LabelDim), cmp_label);
    return hit ? hit->dim : -1;
}

/* A virtual s-op being parsed: its forms' terms, grown as they come. */
typedef struct {
    int nforms, nterms;
    size_t cap_start, cap_values, cap_dim, cap_coef;
    int *start;         /* (nforms + 1) */
    const char **values;
    int *dim;
    float *coef;
} Forms;

static void forms_free(Forms *f)
{
    free(f->start);
    free(f->values);
    free(f->dim);
    free(f->coef);
    memset(f, 0, sizeof *f);
}

/* Append one form {label: coefficient} (value text `value`, or NULL when numerical).
 * Returns 0, or -1 with the problem in err (prefixed by `where`). */
static int forms_add(Forms *f, const LabelIndex *ix, const char *value, json_t *form, const char *where,
                     StrBuf *err)
{
    if (!json_is_object(form)) return sb_fail(err, "%s: expected an object {label: coefficient}", where);
    XGROW(f->start, f->cap_start, (size_t)f->nforms + 2);
    XGROW(f->values, f->cap_values, (size_t)f->nforms + 1);
    f->start[f->nforms] = f->nterms;
    f->values[f->nforms] = value;
    const char *label;
    json_t *v;
    json_object_foreach(form, label, v)
    {
        int dim = label_index_find(ix, label);
        if (dim < 0) return sb_fail(err, "%s: unknown residual label '%s'", where, label);
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || !isfinite((float)x))
            return sb_fail(err, "%s.%s: expected a finite number", where, label);
        XGROW(f->dim, f->cap_dim, (size_t)f->nterms + 1);
        XGROW(f->coef, f->cap_coef, (size_t)f->nterms + 1);
        f->dim[f->nterms] = dim;
        f->coef[f->nterms++] = (float)x;
    }
    f->nforms++;
    f->start[f->nforms] = f->nterms;
    return 0;
}

/* Parse entry i of compiler.virtual into s (in the layout's arena). Returns 0, or -1 with
 * the problem in err. */
static int parse_virtual(DecLayout *d, const LabelIndex *ix, const DecSop *known, int nknown, json_t *e, size_t i,
                         DecSop *s, StrBuf *err)
{
    char where[64];
    snprintf(where, sizeof where, "compiler.virtual[%zu]", i);
    if (!json_is_object(e)) return sb_fail(err, "%s: expected an object", where);
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *enc = json_string_value(json_object_get(e, "encoding"));
    json_t *form = json_object_get(e, "form");
    if (!name || !*name || strchr(name, ':')) return sb_fail(err, "%s.name: expected an s-op name", where);
    if (!enc || (strcmp(enc, "categorical") && strcmp(enc, "numerical")))
        return sb_fail(err, "%s.encoding: expected \"categorical\" or \"numerical\"", where);
    for (int k = 0; k < nknown; k++)
        if (!strcmp(known[k].name, name)) {
            sb_printf(err, "%s: '%s' is already %s", where, name,
                      known[k].isvirtual ? "listed" : "in the residual");
            return -1;
        }
    int categorical = !strcmp(enc, "categorical");
    Forms f;
    memset(&f, 0, sizeof f);
    int rc = 0;
    if (!categorical) {
        char w[80];
        snprintf(w, sizeof w, "%s.form", where);
        rc = forms_add(&f, ix, NULL, form, w, err);
    } else if (!json_is_object(form)) {
        sb_printf(err, "%s.form: expected an object {value: {label: coefficient}}", where);
        rc = -1;
    } else {
        const char *value;
        json_t *vf;
        json_object_foreach(form, value, vf)
        {
            StrBuf w;
            sb_init(&w);
            sb_printf(&w, "%s.form.%s", where, value);
            rc = forms_add(&f, ix, value, vf, w.s, err);
            sb_free(&w);
            if (rc) break;
        }
    }
    if (rc) {
        forms_free(&f);
        return -1;
    }
    memset(s, 0, sizeof *s);
    s->name = arena_strdup(&d->arena, name);
    s->categorical = categorical;
    s->isvirtual = 1;
    s->ndims = f.nforms;
    s->values = arena_alloc(&d->arena, sizeof(char *) * (size_t)(f.nforms + 1));
    for (int k = 0; k < f.nforms; k++) s->values[k] = arena_strdup(&d->arena, f.values[k] ? f.values[k] : name);
    s->form_start = arena_alloc(&d->arena, sizeof(int) * (size_t)(f.nforms + 1));
    if (f.nforms) memcpy(s->form_start, f.start, sizeof(int) * (size_t)(f.nforms + 1));
    s->form_dim = arena_alloc(&d->arena, sizeof(int) * (size_t)(f.nterms + 1));
    s->form_coef = arena_alloc(&d->arena, sizeof(float) * (size_t)(f.nterms + 1));
    if (f.nterms) {
        memcpy(s->form_dim, f.dim, sizeof(int) * (size_t)f.nterms);
        memcpy(s->form_coef, f.coef, sizeof(float) * (size_t)f.nterms);
    }
    forms_free(&f);
    return 0;
}

int dec_layout_add_virtual(DecLayout *d, const Model *m, StrBuf *err)
{
    json_t *virt = json_is_object(m->compiler) ? json_object_get(m->compiler, "virtual") : NULL;
    if (!virt || json_is_null(virt) || d->nsops > d->nresidual) return 0;   /* none, or added already */
    if (!json_is_array(virt)) {
        sb_puts(err, "compiler.virtual: expected an array");
        return 1;
    }
    size_t n = json_array_size(virt);
    if (n == 0) return 0;
    LabelIndex ix;
    label_index_init(&ix, m, d);
    /* Parse into a new array: residual s-ops first, then the virtual ones in metadata order
     * (the compiler lists them in program order); then place each after the last residual
     * s-op its forms read, so a trace reads in dependency order. */
    int total = d->nsops + (int)n;
    DecSop *all = arena_alloc(&d->arena, sizeof(DecSop) * (size_t)total);
    memcpy(all, d->sops, sizeof(DecSop) * (size_t)d->nsops);
    int *anchor = xmalloc(sizeof(int) * (size_t)total);
    int nv = d->nsops, skipped = 0;
    StrBuf first;
    sb_init(&first);
    for (size_t i = 0; i < n; i++) {
        DecSop s = {0};   /* parse_virtual fills it when it returns 0 */
        StrBuf e;
        sb_init(&e);
        int rc = parse_virtual(d, &ix, all, nv, json_array_get(virt, i), i, &s, &e);
        if (rc) {
            if (!skipped) sb_puts(&first, e.s);
            skipped++;
        } else {
            int a = -1;
            s.stage = 0;
            s.written = -1;
            for (int t = 0; t < s.form_start[s.ndims]; t++) {
                int o = ix.owner[s.form_dim[t]];
                if (o > a) a = o;
                if (o >= 0 && all[o].stage > s.stage) s.stage = all[o].stage;
            }
            anchor[nv] = a;
            all[nv++] = s;
        }
        sb_free(&e);
    }
    if (skipped) sb_puts(err, first.s);
    sb_free(&first);
    DecSop *ordered = arena_alloc(&d->arena, sizeof(DecSop) * (size_t)total);
    int k = 0;
    for (int r = 0; r < d->nresidual; r++) {
        ordered[k++] = all[r];
        for (int v = d->nresidual; v < nv; v++)
            if (anchor[v] == r) ordered[k++] = all[v];
    }
    for (int v = d->nresidual; v < nv; v++)   /* forms that read nothing: last */
        if (anchor[v] < 0) ordered[k++] = all[v];
    d->sops = ordered;
    d->nsops = k;
    free(anchor);
    label_index_free(&ix);
    return skipped;
}

void dec_layout_free(DecLayout *d)
{
    arena_free(&d->arena);
    memset(d, 0, sizeof *d);
}

const DecSop *dec_layout_find(const DecLayout *d, const char *name)
{
    for (int k = 0; k < d->nsops; k++)
        if (!strcmp(d->sops[k].name, name)) return &d->sops[k];
    return NULL;
}

/* ---------------------------------------------------------------- decoding */

/* The value of dimension (form) k of s at one residual row. */
static float component(const DecSop *s, int k, const float *resid)
{
    if (!s->isvirtual) return resid[s->dims[k]];
    double x = 0;   /* in double: a long form of one-hot terms sums exactly */
    for (int t = s->form_start[k]; t < s->form_start[k + 1]; t++) x += (double)s->form_coef[t] * resid[s->form_dim[t]];
    return (float)x;
}

int dec_categorical(const DecSop *s, const float *resid)
{
    int best = -1;
    float bv = 0;
    for (int k = 0; k < s->ndims; k++) {
        float v = component(s, k, resid);
        if (best < 0 || v > bv) {
            best = k;
            bv = v;
        }
    }
    return best >= 0 && bv > DEC_NONE_BELOW ? best : -1;
}

float dec_numerical(const DecSop *s, const float *resid)
{
    return s->ndims > 0 ? component(s, 0, resid) : 0.0f;
}

Value dec_sop_value(const DecSop *s, const float *resid)
{
    if (!s->categorical) return dec_float(dec_numerical(s, resid));
    int k = dec_categorical(s, resid);
    return k < 0 ? val_none() : val_str(s->values[k]);
}

int dec_sop_agrees(const DecSop *s, const float *resid, Value want)
{
    if (!s->categorical) {
        if (!val_is_number(want)) return 0;
        double x = dec_numerical(s, resid), y = val_as_double(want);
        return fabs(x - y) <= DEC_NUM_TOL * fmax(1.0, fabs(y));
    }
    int k = dec_categorical(s, resid);
    if (k < 0 || want.kind == VAL_NONE) return k < 0 && want.kind == VAL_NONE;
    StrBuf b;
    sb_init(&b);
    val_format(want, &b);
    int same = !strcmp(b.s, s->values[k]);
    sb_free(&b);
    return same;
}

int dec_output_agrees(const Model *m, const float *logits, Value want)
{
    if (m->output_numerical) {
        if (!val_is_number(want)) return 0;
        double y = val_as_double(want);
        return fabs(logits[0] - y) <= DEC_NUM_TOL * fmax(1.0, fabs(y));
    }
    int col = dec_output_column(m, logits);
    if (col < 0 || want.kind == VAL_NONE) return col < 0 && want.kind == VAL_NONE;
    return val_equal(m->output_values[col], want);
}

int dec_written_order(const DecLayout *d, int *idx)
{
    int n = 0;
    for (int k = 0; k < d->nsops; k++)
        if (d->sops[k].written >= 0) idx[n++] = k;
    /* insertion sort by write order: layouts are small */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && d->sops[idx[j]].written < d->sops[idx[j - 1]].written; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return n;
}

void dec_stage_name(int stage, char *buf, size_t cap)
{
    if (stage <= 0)
        snprintf(buf, cap, "embedding");
    else
        snprintf(buf, cap, "block %d %s", (stage - 1) / 2, stage % 2 ? "attention" : "MLP");
}

/* ---------------------------------------------------------------- inputs */

int dec_vocab_rows(const Model *m, const Value *vocab, int n, int32_t *rows, StrBuf *err)
{
    StrBuf b;
    sb_init(&b);
    for (int v = 0; v < n; v++) {
        sb_clear(&b);
        val_format(vocab[v], &b);
        rows[v] = model_token_row(m, b.s);
        if (rows[v] < 0 || rows[v] == m->bos || rows[v] == m->pad) {
            sb_printf(err, "the program's token '%s' is not in the model's vocab", b.s);
            sb_free(&b);
            return -1;
        }
    }
    sb_free(&b);
    return 0;
}

int dec_pack_batch(const Model *m, const int32_t *row_of, const int32_t *toks, size_t stride, const int *n, int nb,
                   int32_t *rows, int *lens)
{
    int T = 1;
    for (int b = 0; b < nb; b++)
        if (n[b] + 1 > T) T = n[b] + 1;
    for (int b = 0; b < nb; b++) {
        int32_t *r = rows + (size_t)b * T;
        r[0] = m->bos;
        for (int i = 0; i < T - 1; i++) r[i + 1] = i < n[b] ? row_of[toks[(size_t)b * stride + i]] : m->pad;
        lens[b] = n[b] + 1;
    }
    return T;
}
