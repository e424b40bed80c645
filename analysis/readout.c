/* readout.c — see readout.h. */
#include "analysis/readout.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/value.h"

#define RO_NONE_BELOW 0.5f   /* as runtime/decode.h's DEC_NONE_BELOW: no value unless above it */
#define RO_NUM_TOL 1e-4      /* as compiler/verify.h's VERIFY_NUM_TOL */

void ro_stage_name(int stage, char *buf, size_t cap)
{
    if (stage <= 0)
        snprintf(buf, cap, "embedding");
    else
        snprintf(buf, cap, "block %d %s", (stage - 1) / 2, stage % 2 ? "attention" : "MLP");
}

static int label_dim(const Model *m, const char *label)
{
    for (int d = 0; d < m->cfg.d_model; d++)
        if (!strcmp(m->residual[d], label)) return d;
    return -1;
}

/* The stage after the sub-layer whose `output` lists name; 0 if none does. */
static int written_stage(const Model *m, const char *name)
{
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl; l++) {
        json_t *b = json_array_get(m->layers, l);
        const char *part[2] = {"attn", "mlp"};
        for (int k = 0; k < 2; k++) {
            json_t *arr = json_object_get(b, part[k]);
            for (size_t i = 0; i < json_array_size(arr); i++) {
                json_t *outs = json_object_get(json_array_get(arr, i), "output");
                for (size_t j = 0; j < json_array_size(outs); j++) {
                    const char *s = json_string_value(json_array_get(outs, j));
                    if (s && !strcmp(s, name)) return (int)(2 * l + 1 + (size_t)k);
                }
            }
        }
    }
    /* a model without layer detail: everything is complete in the final residual */
    if (nl == 0 && strcmp(name, "tokens") && strcmp(name, "indices") && strcmp(name, "one"))
        return 2 * m->cfg.n_layers;
    return 0;
}

/* The stage at which every label a linear form reads is complete. */
static int form_stage(const Model *m, json_t *form)
{
    int st = 0;
    const char *label;
    json_t *v;
    json_object_foreach(form, label, v)
    {
        (void)v;
        char name[256];
        size_t n = strcspn(label, ":");
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, label, n);
        name[n] = 0;
        int s = written_stage(m, name);
        if (s > st) st = s;
    }
    return st;
}

static json_t *virtual_form(const Model *m, const char *name, const char **enc)
{
    json_t *virt = json_is_object(m->compiler) ? json_object_get(m->compiler, "virtual") : NULL;
    for (size_t i = 0; i < json_array_size(virt); i++) {
        json_t *o = json_array_get(virt, i);
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (nm && !strcmp(nm, name)) {
            *enc = json_string_value(json_object_get(o, "encoding"));
            return json_object_get(o, "form");
        }
    }
    return NULL;
}

typedef struct {
    RoTerm *terms;
    int nterms, cap;
} Terms;

static void add_term(Terms *t, int dim, float coef)
{
    if (t->nterms == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->terms = xrealloc(t->terms, sizeof *t->terms * (size_t)t->cap);
    }
    t->terms[t->nterms++] = (RoTerm){dim, coef};
}

/* Terms of a JSON form {label: coef}; 0, or -1 when a label is not in the residual. */
static int add_form(Terms *t, const Model *m, json_t *form)
{
    const char *label;
    json_t *v;
    json_object_foreach(form, label, v)
    {
        int d = label_dim(m, label);
        if (d < 0 || !json_is_number(v)) return -1;
        add_term(t, d, (float)json_number_value(v));
    }
    return 0;
}

static int value_index_of_text(const RaspSop *s, const char *text)
{
    StrBuf b;
    sb_init(&b);
    int found = -1;
    for (int i = 0; i < s->nvals && found < 0; i++) {
        sb_clear(&b);
        val_format(s->vals[i], &b);
        if (!strcmp(b.s, text)) found = i;
    }
    sb_free(&b);
    return found;
}

static void fill_sop(RoSop *rs, const Model *m, const RaspProgram *p, const RaspSop *s, Arena *a)
{
    Terms t = {0};
    int nforms = 0, capf = 16;
    int *start = xmalloc(sizeof(int) * (size_t)(capf + 1));
    int *fval = xmalloc(sizeof(int) * (size_t)capf);
    rs->name = s->label;
    rs->sop = s->id;
    rs->categorical = s->enc == ENC_CATEGORICAL;
    (void)p;
    /* residual dimensions labelled with the s-op's name */
    size_t nlen = strlen(s->label);
    for (int d = 0; d < m->cfg.d_model; d++) {
        const char *lab = m->residual[d];
        int cat = !strncmp(lab, s->label, nlen) && lab[nlen] == ':';
        int num = !strcmp(lab, s->label);
        if (!(rs->categorical ? cat : num)) continue;
        if (nforms == capf) {
            capf *= 2;
            start = xrealloc(start, sizeof(int) * (size_t)(capf + 1));
            fval = xrealloc(fval, sizeof(int) * (size_t)capf);
        }
        start[nforms] = t.nterms;
        fval[nforms] = rs->categorical ? value_index_of_text(s, lab + nlen + 1) : 0;
        add_term(&t, d, 1.0f);
        nforms++;
    }
    if (nforms > 0) {
        rs->readable = 1;
        rs->stage = written_stage(m, s->label);
    } else {
        const char *enc = NULL;
        json_t *form = virtual_form(m, s->label, &enc);
        int ok = form && enc && !strcmp(enc, rs->categorical ? "categorical" : "numerical");
        if (ok && rs->categorical) {
            const char *vtext;
            json_t *f;
            int st = 0;
            json_object_foreach(form, vtext, f)
            {
                if (nforms == capf) {
                    capf *= 2;
                    start = xrealloc(start, sizeof(int) * (size_t)(capf + 1));
                    fval = xrealloc(fval, sizeof(int) * (size_t)capf);
                }
                start[nforms] = t.nterms;
                fval[nforms] = value_index_of_text(s, vtext);
                if (add_form(&t, m, f)) ok = 0;
                int fs = form_stage(m, f);
                if (fs > st) st = fs;
                nforms++;
            }
            rs->stage = st;
        } else if (ok) {
            start[0] = 0;
            fval[0] = 0;
            if (add_form(&t, m, form)) ok = 0;
            nforms = 1;
            rs->stage = form_stage(m, form);
        }
        if (ok && nforms > 0) {
            rs->readable = 1;
            rs->isvirtual = 1;
        } else {
            nforms = 0;
            t.nterms = 0;
        }
    }
    start[nforms] = t.nterms;
    rs->nforms = nforms;
    rs->form_start = arena_alloc(a, sizeof(int) * (size_t)(nforms + 1));
    memcpy(rs->form_start, start, sizeof(int) * (size_t)(nforms + 1));
    rs->form_val = arena_alloc(a, sizeof(int) * (size_t)(nforms + 1));
    if (nforms) memcpy(rs->form_val, fval, sizeof(int) * (size_t)nforms);
    rs->terms = arena_alloc(a, sizeof(RoTerm) * (size_t)(t.nterms + 1));
    if (t.nterms) memcpy(rs->terms, t.terms, sizeof(RoTerm) * (size_t)t.nterms);
    char where[48];
    ro_stage_name(rs->stage, where, sizeof where);
    rs->where = arena_strdup(a, where);
    free(t.terms);
    free(start);
    free(fval);
}

void ro_layout_init(RoLayout *lay, const Model *m, const RaspProgram *p)
{
    memset(lay, 0, sizeof *lay);
    arena_init(&lay->arena);
    lay->sops = arena_alloc(&lay->arena, sizeof(RoSop) * (size_t)(p->nsops + 1));
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        RoSop rs;
        memset(&rs, 0, sizeof rs);
        fill_sop(&rs, m, p, s, &lay->arena);
        if (rs.readable || s->named || i == p->output) lay->sops[lay->nsops++] = rs;
    }
}

void ro_layout_free(RoLayout *lay)
{
    arena_free(&lay->arena);
    memset(lay, 0, sizeof *lay);
}

const RoSop *ro_layout_find(const RoLayout *lay, const char *name)
{
    for (int i = 0; i < lay->nsops; i++)
        if (!strcmp(lay->sops[i].name, name)) return &lay->sops[i];
    return NULL;
}

static float form_value(const RoSop *s, int f, const float *row)
{
    float v = 0;
    for (int k = s->form_start[f]; k < s->form_start[f + 1]; k++) v += s->terms[k].coef * row[s->terms[k].dim];
    return v;
}

int ro_decode(const RoSop *s, const float *row, double *x)
{
    if (!s->readable || s->nforms == 0) return RASP_NONE;
    if (!s->categorical) {
        if (x) *x = form_value(s, 0, row);
        return 0;
    }
    int best = 0;
    float bv = form_value(s, 0, row);
    for (int f = 1; f < s->nforms; f++) {
        float v = form_value(s, f, row);
        if (v > bv) {
            bv = v;
            best = f;
        }
    }
    if (!(bv > RO_NONE_BELOW)) return RASP_NONE;   /* a value only above half a one-hot */
    return s->form_val[best] >= 0 ? s->form_val[best] : -2;
}

int ro_agrees(const RoSop *s, const RaspProgram *p, const float *row, int32_t want)
{
    if (!s->readable) return 0;
    if (s->categorical) return ro_decode(s, row, NULL) == want;
    if (want == RASP_NONE) return 0;
    double x = 0;
    ro_decode(s, row, &x);
    Value v = p->sops[s->sop].vals[want];
    double y = val_is_number(v) ? val_as_double(v) : 0;
    return fabs(x - y) <= RO_NUM_TOL * fmax(1.0, fabs(y));
}

int ro_vocab_rows(const Model *m, const RaspProgram *p, int32_t *rows, StrBuf *err)
{
    StrBuf b;
    sb_init(&b);
    for (int v = 0; v < p->nvocab; v++) {
        sb_clear(&b);
        val_format(p->vocab[v], &b);
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

int ro_sample(Rng *r, int V, int len_min, int len_max, int32_t *toks)
{
    int n = len_min + (int)rng_below(r, (uint32_t)(len_max - len_min + 1));
    for (int i = 0; i < n; i++) toks[i] = (int32_t)rng_below(r, (uint32_t)V);
    return n;
}

/* ---------------------------------------------------------------- option parsing */

static int parse_int(const char *s, const char *end, long *out)
{
    if (s == end) return -1;
    long x = 0;
    for (const char *q = s; q < end; q++) {
        if (*q < '0' || *q > '9') return -1;
        x = x * 10 + (*q - '0');
        if (x > 1000000000L) return -1;
    }
    *out = x;
    return 0;
}

int ro_parse_len(const char *s, int max_len, int *lo, int *hi, StrBuf *err)
{
    const char *dash = strchr(s, '-');
    long a, b;
    if (dash ? parse_int(s, dash, &a) || parse_int(dash + 1, dash + strlen(dash), &b)
             : parse_int(s, s + strlen(s), &a)) {
        sb_printf(err, "--len expects N or MIN-MAX, got '%s'", s);
        return -1;
    }
    if (!dash) b = a;
    if (a < 1 || b < a || b > max_len) {
        sb_printf(err, "--len %s is outside 1..%d (the model's max_len), or MIN > MAX", s, max_len);
        return -1;
    }
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int ro_parse_at(const char *s, int max_len, int *at, StrBuf *err)
{
    int n = 0;
    const char *p = s;
    if (!*s) goto bad;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *dash = memchr(p, '-', (size_t)(end - p));
        long a, b;
        if (dash ? parse_int(p, dash, &a) || parse_int(dash + 1, end, &b) : parse_int(p, end, &a)) goto bad;
        if (!dash) b = a;
        if (b < a || b >= max_len) {
            sb_printf(err, "--at %s: indices must be in 0..%d (the model's max_len - 1)", s, max_len - 1);
            return -1;
        }
        for (long i = a; i <= b; i++) {
            int dup = 0;
            for (int k = 0; k < n && !dup; k++) dup = at[k] == i;
            if (!dup) at[n++] = (int)i;
        }
        if (!comma) break;
        p = comma + 1;
        if (!*p) goto bad;
    }
    qsort(at, (size_t)n, sizeof(int), cmp_int);
    return n;
bad:
    sb_printf(err, "--at expects RASP indices like 1 or 0,2,4-6, got '%s'", s);
    return -1;
}

int ro_parse_ks(const char *s, long *ks, int cap, StrBuf *err)
{
    int n = 0;
    const char *p = s;
    if (!*s) goto bad;
    while (1) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        long k;
        if (parse_int(p, end, &k) || k < 1) goto bad;
        if (n > 0 && k <= ks[n - 1]) {
            sb_printf(err, "--top %s: the counts must increase", s);
            return -1;
        }
        if (n == cap) {
            sb_printf(err, "--top %s: at most %d counts", s, cap);
            return -1;
        }
        ks[n++] = k;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
bad:
    sb_printf(err, "--top expects increasing positive counts like 1,2,4,8, got '%s'", s);
    return -1;
}
