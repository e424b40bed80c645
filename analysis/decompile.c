/* decompile.c — see decompile.h. Steps: load the original program against the model
 * (dc_load), sample inputs and run the model once (observe: decoded s-ops and the heads'
 * selections per position), recover each op's table in program order (decompile_recover.c),
 * write the program (decompile_text.c), run it against the model again (fidelity). */
#include "analysis/decompile_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/front/frontend.h"
#include "compiler/back/verify.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "train/data.h"

/* ---------- value dictionaries ---------- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void dict_rehash(DcDict *d)
{
    size_t ns = d->nslots ? d->nslots * 2 : 64;
    while (ns < (size_t)d->n * 2 + 2) ns *= 2;
    free(d->slots);
    d->slots = xmalloc(sizeof(int32_t) * ns);
    for (size_t i = 0; i < ns; i++) d->slots[i] = -1;
    d->nslots = ns;
    for (int i = 0; i < d->n; i++) {
        size_t h = str_hash(d->txt[i]) & (ns - 1);
        while (d->slots[h] >= 0) h = (h + 1) & (ns - 1);
        d->slots[h] = i;
    }
}

int dc_dict_find(const DcDict *d, const char *text)
{
    if (!d->nslots) return -1;
    size_t h = str_hash(text) & (d->nslots - 1);
    while (d->slots[h] >= 0) {
        if (!strcmp(d->txt[d->slots[h]], text)) return d->slots[h];
        h = (h + 1) & (d->nslots - 1);
    }
    return -1;
}

/* The Value a label's text stands for, typed like the s-op's original values. */
static Value parse_like(const DcDict *d, const char *text, Arena *a)
{
    char *end;
    switch (d->kind) {
    case VAL_BOOL:
        if (!strcmp(text, "true")) return val_bool(1);
        if (!strcmp(text, "false")) return val_bool(0);
        break;
    case VAL_INT: {
        long long x = strtoll(text, &end, 10);
        if (*text && !*end) return val_int(x);
        break;
    }
    case VAL_FLOAT: {
        double x = strtod(text, &end);
        if (*text && !*end) return val_float(x);
        break;
    }
    default: break;
    }
    return val_str(arena_strdup(a, text));
}

int dc_dict_add(DcDict *d, const char *text, Arena *a)
{
    int i = dc_dict_find(d, text);
    if (i >= 0) return i;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->txt = xrealloc(d->txt, sizeof(char *) * (size_t)d->cap);
        d->val = xrealloc(d->val, sizeof(Value) * (size_t)d->cap);
    }
    d->txt[d->n] = arena_strdup(a, text);
    d->val[d->n] = parse_like(d, text, a);
    d->n++;
    if ((size_t)d->n * 2 + 2 > d->nslots) dict_rehash(d);
    else {
        size_t h = str_hash(text) & (d->nslots - 1);
        while (d->slots[h] >= 0) h = (h + 1) & (d->nslots - 1);
        d->slots[h] = d->n - 1;
    }
    return d->n - 1;
}

/* A numerical s-op's decoded number as a dictionary entry: the original value within
 * DC_NUM_TOL, else a value seen before within it, else a new one. */
static int dict_number(DcDict *d, double x, Arena *a)
{
    int lo = 0, hi = d->n0 - 1;
    while (lo <= hi) {   /* the original values are ascending */
        int mid = (lo + hi) / 2;
        double v = val_as_double(d->val[mid]);
        if (fabs(v - x) <= DC_NUM_TOL * fmax(1, fabs(v))) return mid;
        if (v < x) lo = mid + 1;
        else hi = mid - 1;
    }
    for (int i = d->n0; i < d->n; i++) {
        double v = val_as_double(d->val[i]);
        if (fabs(v - x) <= DC_NUM_TOL * fmax(1, fabs(v))) return i;
    }
    if (d->n - d->n0 >= DC_MAX_EXTRA) return DC_UNREAD;
    StrBuf b;
    sb_init(&b);
    val_format(dec_float((float)x), &b);
    int i = dc_dict_add(d, b.s, a);
    sb_free(&b);
    return i;
}

static void dict_free(DcDict *d)
{
    free(d->txt);
    free(d->val);
    free(d->slots);
}

/* ---------- loading ---------- */

/* The model's max_len and attention direction; the vocab as given (NULL: the program's). */
static FrontOptions front_options(const Model *m, const char *vocab)
{
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.max_len = m->cfg.n_ctx - 1;
    fo.causal = m->cfg.causal ? 1 : -1;
    fo.vocab = vocab;
    return fo;
}

/* The source a Diag collected, as one string: its errors. */
static void diag_message(Diag *d, StrBuf *err)
{
    char *t = diag_render(d);
    size_t n = strlen(t);
    while (n && t[n - 1] == '\n') n--;
    sb_putn(err, t, n);
    free(t);
}

RaspProgram *dc_parse(const Model *m, const char *name, const char *text, const char *vocab, StrBuf *err)
{
    FrontOptions fo = front_options(m, vocab);
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text(name, text, strlen(text), &fo, d);
    if (!p) diag_message(d, err);
    diag_free(d);
    return p;
}

/* ---------- the model's heads ---------- */

static void find_heads(Dc *dc)
{
    const Model *m = dc->m;
    dc->sel_head = xmalloc(sizeof(int) * (size_t)(dc->p->nsels + 1));
    dc->head_sw = xcalloc((size_t)(m->cfg.n_layers * m->cfg.n_heads + 1), 1);
    for (int s = 0; s < dc->p->nsels; s++) dc->sel_head[s] = -1;
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl; l++) {
        json_t *attn = json_object_get(json_array_get(m->layers, l), "attn");
        for (size_t i = 0; i < json_array_size(attn); i++) {
            json_t *h = json_array_get(attn, i);
            const char *sel = json_string_value(json_object_get(h, "selector"));
            const char *cons = json_string_value(json_object_get(h, "construction"));
            json_t *hd = json_object_get(h, "head");
            if (!sel || !json_is_integer(hd) || (cons && !strcmp(cons, "uniform"))) continue;
            const char *op = json_string_value(json_object_get(h, "op"));
            for (int s = 0; s < dc->p->nsels; s++)
                if (dc->sel_head[s] < 0 && !strcmp(dc->p->sels[s].label, sel)) {
                    dc->sel_head[s] = (int)l * m->cfg.n_heads + (int)json_integer_value(hd);
                    if (op && !strcmp(op, "selector_width")) dc->head_sw[dc->sel_head[s]] = 1;
                }
        }
    }
    dc->nhead_used = 0;
    dc->head_slot = xmalloc(sizeof(int) * (size_t)(m->cfg.n_layers * m->cfg.n_heads + 1));
    for (int h = 0; h < m->cfg.n_layers * m->cfg.n_heads; h++) dc->head_slot[h] = -1;
    for (int s = 0; s < dc->p->nsels; s++)
        if (dc->sel_head[s] >= 0 && dc->head_slot[dc->sel_head[s]] < 0)
            dc->head_slot[dc->sel_head[s]] = dc->nhead_used++;
}

/* 1 if the layer entry names `label` (as the s-op it computes, or one fused into it). */
static int entry_names(json_t *e, int stage, void *ctx)
{
    (void)stage;
    const char *label = ctx;
    const char *lb = json_string_value(json_object_get(e, "label"));
    if (lb && !strcmp(lb, label)) return 1;
    json_t *fused = json_object_get(e, "fused");
    for (size_t j = 0; j < json_array_size(fused); j++) {
        const char *f = json_string_value(json_array_get(fused, j));
        if (f && !strcmp(f, label)) return 1;
    }
    return 0;
}

/* 1 if some layer entry names `label` (as the s-op it computes). */
static int layers_mention(const Model *m, const char *label)
{
    return dec_layers_foreach(m, entry_names, (void *)label);
}

/* The structure check: every op the output needs is computed somewhere in the model. */
static int check_structure(Dc *dc, StrBuf *err)
{
    const RaspProgram *p = dc->p;
    const Model *m = dc->m;
    if (json_array_size(m->layers) == 0)
        return sb_fail(err, "the model has no layer detail (`layers` metadata): it cannot be read as a program");
    const RaspSop *out = &p->sops[p->output];
    if ((out->enc == ENC_NUMERICAL) != (m->output_numerical != 0)) {
        sb_printf(err, "the program's output '%s' is %s, the model's output '%s' is %s", out->label,
                  out->enc == ENC_NUMERICAL ? "numerical" : "categorical", m->output_name,
                  m->output_numerical ? "numerical" : "categorical");
        return -1;
    }
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        if (!s->used || s->op == SOP_TOKENS || s->op == SOP_INDICES || s->op == SOP_CONST) continue;
        if (ro_find(&dc->lay, s)) {
            /* a residual s-op must have the original's encoding */
            continue;
        }
        if (layers_mention(m, s->label)) continue;
        /* a numerical s-op stored under another encoding, or a categorical one */
        int other = 0;
        size_t n = strlen(s->label);
        for (int d = 0; d < m->cfg.d_model && !other; d++)
            other = !strncmp(m->residual[d], s->label, n) && (m->residual[d][n] == ':' || !m->residual[d][n]);
        sb_printf(err, "the model does not have the program's structure: s-op '%s' (line %d, %s) %s", s->label,
                  s->span.line, dc_op_name(s),
                  other ? "is stored with another encoding" : "has no residual dimensions, no fused form and no layer entry");
        return -1;
    }
    for (int i = 0; i < p->nsels; i++) {
        const RaspSel *s = &p->sels[i];
        if (!s->used || s->op != SEL_SELECT) continue;
        int found = dc->sel_head[i] >= 0;
        size_t nl = json_array_size(m->layers);
        for (size_t l = 0; l < nl && !found; l++) {
            json_t *attn = json_object_get(json_array_get(m->layers, l), "attn");
            for (size_t h = 0; h < json_array_size(attn) && !found; h++) {
                const char *sel = json_string_value(json_object_get(json_array_get(attn, h), "selector"));
                found = sel && !strcmp(sel, s->label);
            }
        }
        /* a select inside a combination is implemented by the combination's head */
        for (int j = 0; j < p->nsels && !found; j++)
            if (p->sels[j].op != SEL_SELECT && (p->sels[j].a == i || p->sels[j].b == i)) found = 1;
        if (!found) {
            sb_printf(err, "the model does not have the program's structure: selector '%s' (line %d) has no attention head",
                      s->label, s->span.line);
            return -1;
        }
    }
    return 0;
}

const char *dc_op_name(const RaspSop *s)
{
    switch (s->op) {
    case SOP_TOKENS: return "tokens";
    case SOP_INDICES: return "indices";
    case SOP_CONST: return "constant";
    case SOP_MAP: return "map";
    case SOP_SEQMAP: return "sequence_map";
    case SOP_AGGREGATE: return "aggregate";
    case SOP_SELWIDTH: return "selector_width";
    }
    return "?";
}

const DecSop *dc_sop(const Dc *dc, const char *label)
{
    for (int i = 0; i < dc->p->nsops; i++)
        if (!strcmp(dc->p->sops[i].label, label)) return ro_find(&dc->lay, &dc->p->sops[i]);
    return NULL;
}

/* ---------- sampling ---------- */

static void add_sample(Dc *dc, int set, const int32_t *toks, int n)
{
    if (dc->nsamples == dc->cap_samples) {
        dc->cap_samples = dc->cap_samples ? dc->cap_samples * 2 : 256;
        dc->sample_set = xrealloc(dc->sample_set, sizeof(int) * (size_t)dc->cap_samples);
        dc->sample_len = xrealloc(dc->sample_len, sizeof(int) * (size_t)dc->cap_samples);
        dc->sample_off = xrealloc(dc->sample_off, sizeof(long) * (size_t)(dc->cap_samples + 1));
    }
    long off = dc->nsamples ? dc->sample_off[dc->nsamples - 1] + dc->sample_len[dc->nsamples - 1] : 0;
    if ((size_t)(off + n) > dc->cap_tok) {
        dc->cap_tok = (size_t)(off + n) * 2;
        dc->tok = xrealloc(dc->tok, sizeof(int32_t) * dc->cap_tok);
    }
    memcpy(dc->tok + off, toks, sizeof(int32_t) * (size_t)n);
    dc->sample_set[dc->nsamples] = set;
    dc->sample_len[dc->nsamples] = n;
    dc->sample_off[dc->nsamples] = off;
    dc->nsamples++;
    dc->npos = off + n;
}

static int json_len_range(json_t *len, int max_len, int *lo, int *hi)
{
    *lo = 1;
    *hi = max_len;
    if (json_is_integer(len)) *lo = *hi = (int)json_integer_value(len);
    else if (json_is_array(len) && json_array_size(len) == 2 && json_is_integer(json_array_get(len, 0)) &&
             json_is_integer(json_array_get(len, 1))) {
        /* what tracc finetune records: [min, max] */
        *lo = (int)json_integer_value(json_array_get(len, 0));
        *hi = (int)json_integer_value(json_array_get(len, 1));
    } else if (json_is_string(len)) {
        StrBuf e;
        sb_init(&e);
        int bad = ro_parse_len(json_string_value(len), max_len, lo, hi, &e);
        sb_free(&e);
        if (bad) return -1;
    }
    return *lo >= 1 && *hi >= *lo && *hi <= max_len ? 0 : -1;
}

/* The training distribution from the model's provenance (its task, spurious predicate and
 * rate, lengths, no-repeat, answer positions), when the files it names can be read. */
static int sample_training(Dc *dc, const DcOptions *o, const int32_t *prog_of_row, StrBuf *note)
{
    const Model *m = dc->m;
    json_t *cfg = json_is_object(m->provenance) ? json_object_get(m->provenance, "config") : NULL;
    if (!cfg) return 0;
    const char *task = json_string_value(json_object_get(cfg, "task"));
    if (!task) return 0;
    DataSpec spec;
    memset(&spec, 0, sizeof spec);
    spec.task = task;
    spec.spurious = json_string_value(json_object_get(cfg, "spurious"));
    json_t *rate = json_object_get(cfg, "spurious_rate");
    spec.spurious_rate = json_is_number(rate) ? json_number_value(rate) : 0;
    const char *others = json_string_value(json_object_get(cfg, "spurious_others"));
    spec.spurious_uniform = others && !strcmp(others, "uniform");
    if (json_len_range(json_object_get(cfg, "len"), dc->p->max_len, &spec.len_min, &spec.len_max)) return 0;
    spec.no_repeat = json_is_true(json_object_get(cfg, "no_repeat"));
    json_t *at = json_object_get(cfg, "at");
    int *ats = xmalloc(sizeof(int) * (json_array_size(at) + 1));
    int nat = 0;
    for (size_t i = 0; i < json_array_size(at); i++)
        if (json_is_integer(json_array_get(at, i))) ats[nat++] = (int)json_integer_value(json_array_get(at, i));
    spec.nat = nat;
    spec.at = ats;
    spec.max_tries = DATA_DEFAULT_MAX_TRIES;
    spec.task_flag = "provenance task";
    StrBuf e;
    sb_init(&e);
    DataGen *g = data_gen_new(&spec, m, &e);
    if (!g) {
        sb_printf(note, "training distribution not reproduced (%s); sampled uniformly instead", e.s ? e.s : "");
        sb_free(&e);
        free(ats);
        return 0;
    }
    DataBatch b;
    memset(&b, 0, sizeof b);
    int32_t *toks = xmalloc(sizeof(int32_t) * (size_t)(dc->p->max_len + 1));
    int ok = 1;
    for (long done = 0; done < o->n && ok;) {
        int nb = (int)(o->n - done < 64 ? o->n - done : 64);
        if (data_gen_batch(g, o->seed, (uint64_t)(done / 64), nb, &b, &e)) {
            ok = 0;
            break;
        }
        for (int k = 0; k < b.B; k++) {
            int n = b.lens[k] - 1;
            for (int i = 0; i < n; i++) toks[i] = prog_of_row[b.tokens[(size_t)k * b.T + i + 1]];
            add_sample(dc, DC_SET_TRAIN, toks, n);
        }
        done += nb;
    }
    data_batch_free(&b);
    data_gen_free(g);
    free(toks);
    if (!ok) {
        sb_printf(note, "training distribution not reproduced (%s); sampled uniformly instead", e.s ? e.s : "");
        sb_free(&e);
        free(ats);
        /* drop what was drawn */
        dc->nsamples = 0;
        dc->npos = 0;
        return 0;
    }
    sb_free(&e);
    if (!o->all_positions && !o->at) {
        dc->nat = nat;
        dc->at = ats;
    } else free(ats);
    dc->train_len_min = spec.len_min;
    dc->train_len_max = spec.len_max;
    return 1;
}

/* ---------- running the model ---------- */

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

void dc_batches_init(DcBatches *b, const Dc *dc, int first, int end)
{
    memset(b, 0, sizeof *b);
    b->k0 = first;
    b->end = end;
    fwd_init(&b->fs);
    size_t L = (size_t)dc->p->max_len + 1;
    b->rows = xmalloc(sizeof(int32_t) * DC_BATCH * L);
    b->toks = xmalloc(sizeof(int32_t) * DC_BATCH * L);
}

int dc_batches_next(DcBatches *b, const Dc *dc, const Model *w, const int32_t *row_of, const FwdOptions *fo,
                    StrBuf *err)
{
    b->k0 += b->nb;
    if (b->k0 >= b->end) return 0;
    b->nb = b->end - b->k0 < DC_BATCH ? b->end - b->k0 : DC_BATCH;
    int L = dc->p->max_len;
    /* the samples are stored end to end: lay them out at a fixed stride to pack */
    for (int k = 0; k < b->nb; k++)
        memcpy(b->toks + (size_t)k * L, dc->tok + dc->sample_off[b->k0 + k],
               sizeof(int32_t) * (size_t)dc->sample_len[b->k0 + k]);
    b->T = dec_pack_batch(w, row_of, b->toks, (size_t)L, dc->sample_len + b->k0, b->nb, b->rows, b->lens);
    return fwd_forward(&b->fs, w, b->rows, b->lens, b->nb, b->T, fo, err) ? -1 : 1;
}

void dc_batches_free(DcBatches *b)
{
    fwd_free(&b->fs);
    free(b->rows);
    free(b->toks);
}

static int observe(Dc *dc, StrBuf *err)
{
    const Model *m = dc->m;
    const RaspProgram *p = dc->p;
    int C = m->cfg.d_model, NH = m->cfg.n_heads, VO = m->cfg.d_vocab_out;
    dc->dec = xmalloc(sizeof(int32_t *) * (size_t)p->nsops);
    for (int s = 0; s < p->nsops; s++) {
        dc->dec[s] = NULL;
        if (!p->sops[s].used || !ro_find(&dc->lay, &p->sops[s]) || p->sops[s].op == SOP_TOKENS || p->sops[s].op == SOP_INDICES)
            continue;
        dc->dec[s] = xmalloc(sizeof(int32_t) * (size_t)(dc->npos + 1));
    }
    dc->out_dec = xmalloc(sizeof(int32_t) * (size_t)(dc->npos + 1));
    dc->out_num = xmalloc(sizeof(double) * (size_t)(dc->npos + 1));
    /* selection masks per used head: for each sample, len x len */
    dc->mask_off = xmalloc(sizeof(size_t) * (size_t)(dc->nsamples + 1));
    size_t tot = 0;
    for (int k = 0; k < dc->nsamples; k++) {
        dc->mask_off[k] = tot;
        tot += (size_t)dc->sample_len[k] * (size_t)dc->sample_len[k];
    }
    dc->mask_off[dc->nsamples] = tot;
    dc->mask = xmalloc(sizeof(uint8_t *) * (size_t)(dc->nhead_used + 1));
    for (int h = 0; h < dc->nhead_used; h++) dc->mask[h] = xcalloc(tot + 1, 1);

    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)(p->nvocab + 1));
    if (ro_vocab_rows(m, p, row_of, err)) {
        free(row_of);
        return -1;
    }
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    fo.record_resid = 1;
    fo.record_attn = dc->nhead_used > 0;
    float *sorted = xmalloc(sizeof(float) * (size_t)(p->max_len + 2));
    int rc;
    StrBuf tb;
    sb_init(&tb);
    DcBatches bt;
    dc_batches_init(&bt, dc, 0, dc->nsamples);
    const FwdState *fs = &bt.fs;
    while ((rc = dc_batches_next(&bt, dc, m, row_of, &fo, err)) > 0) {
        int k0 = bt.k0, nb = bt.nb, T = bt.T;
        for (int k = 0; k < nb; k++) {
            int smp = k0 + k, n = dc->sample_len[smp];
            long off = dc->sample_off[smp];
            for (int s = 0; s < p->nsops; s++) {
                if (!dc->dec[s]) continue;
                const DecSop *rs = ro_find(&dc->lay, &p->sops[s]);
                const float *res = fwd_resid_stage(fs, rs->stage);
                for (int i = 0; i < n; i++) {
                    const float *row = res + ((size_t)k * T + (size_t)i + 1) * (size_t)C;
                    int32_t v;
                    if (rs->categorical) {
                        int f = dec_categorical(rs, row);
                        if (f < 0) v = RASP_NONE;
                        else if (!rs->isvirtual) v = dc_dict_add(&dc->dict[s], rs->values[f], &dc->arena);
                        else {
                            /* a fused form's values are the compiler's: only the program's own */
                            v = dc_dict_find(&dc->dict[s], rs->values[f]);
                            if (v < 0 || v >= dc->dict[s].n0) v = DC_UNREAD;
                        }
                    } else v = dict_number(&dc->dict[s], dec_numerical(rs, row), &dc->arena);
                    dc->dec[s][off + i] = v;
                }
            }
            for (int i = 0; i < n; i++) {
                const float *lg = fs->logits + ((size_t)k * T + (size_t)i + 1) * (size_t)VO;
                Value v = dec_output(m, lg);
                if (m->output_numerical) {
                    dc->out_num[off + i] = val_as_double(v);
                    dc->out_dec[off + i] = 0;
                } else if (v.kind == VAL_NONE) dc->out_dec[off + i] = RASP_NONE;
                else {
                    sb_clear(&tb);
                    val_format(v, &tb);
                    dc->out_dec[off + i] = dc_dict_add(&dc->out_dict, tb.s, &dc->arena);
                }
            }
            /* selections: per query row, the keys above the largest gap (on a log scale)
             * among the weights of BOS and the keys. A compiled head gives its selected
             * keys equal weights far above the others (BOS sits with the selected keys
             * in a selector width's head, and below them in an aggregate's unless nothing
             * is selected); a fine-tuned head's graded weights are split where they
             * separate most. No gap of at least DC_GAP: every key counts as selected. */
            for (int h = 0; h < m->cfg.n_layers * NH; h++) {
                int slot = dc->head_slot[h];
                if (slot < 0) continue;
                int l = h / NH, hh = h % NH;
                const float *pat = fs->attn + ((((size_t)l * NH + (size_t)hh) * (size_t)nb + (size_t)k) * (size_t)T) * (size_t)T;
                uint8_t *mk = dc->mask[slot] + dc->mask_off[smp];
                for (int i = 0; i < n; i++) {
                    const float *row = pat + (size_t)(i + 1) * T;
                    /* weights below DC_FLOOR of the row's largest count as zero, so that
                     * the split falls between what is attended and what is not, never
                     * among the leftovers */
                    float mx = 0;
                    for (int j = 0; j <= n; j++)
                        if (row[j] > mx) mx = row[j];
                    float floor_ = mx * DC_FLOOR > 1e-12f ? mx * DC_FLOOR : 1e-12f;
                    int nv = 0;
                    for (int j = 0; j <= n; j++)
                        if (!(dc->p->causal && j > i + 1)) sorted[nv++] = row[j] > floor_ ? row[j] : floor_;
                    qsort(sorted, (size_t)nv, sizeof(float), cmp_desc);
                    float thr = 0, gap = DC_GAP;
                    for (int t = 0; t + 1 < nv; t++)
                        if (sorted[t] / sorted[t + 1] > gap) gap = sorted[t] / sorted[t + 1], thr = sqrtf(sorted[t] * sorted[t + 1]);
                    for (int j = 0; j < n; j++) mk[(size_t)i * n + j] = row[j + 1] > thr;
                }
            }
        }
    }
    /* the model's answer as a value of the output s-op (see dc_obs) */
    int so = p->output;
    if (!rc && dc->dec[so] && !ro_find(&dc->lay, &p->sops[so])->isvirtual) {
        dc->ans = xmalloc(sizeof(int32_t) * (size_t)(dc->npos + 1));
        for (long pos = 0; pos < dc->npos; pos++) {
            if (m->output_numerical) dc->ans[pos] = dict_number(&dc->dict[so], dc->out_num[pos], &dc->arena);
            else if (dc->out_dec[pos] < 0) dc->ans[pos] = RASP_NONE;
            else dc->ans[pos] = dc_dict_add(&dc->dict[so], dc->out_dict.txt[dc->out_dec[pos]], &dc->arena);
        }
    }
    sb_free(&tb);
    free(sorted);
    free(row_of);
    dc_batches_free(&bt);
    return rc;
}

/* ---------- fidelity ---------- */

static const char *set_name(int set)
{
    return set == DC_SET_TRAIN ? "training" : "uniform";
}

/* Run the decompiled program q by the interpreter on every sample and compare with what
 * the model decoded: per s-op present in both (residual s-ops only: a fused s-op's form in
 * the metadata is the compiler's, not the fine-tuned weights'), and at the output. */
static int fidelity(Dc *dc, const RaspProgram *q, StrBuf *err)
{
    const RaspProgram *p = dc->p;
    Interp *it = interp_new(q, 1);
    int *qid = xmalloc(sizeof(int) * (size_t)(p->nsops + 1));
    for (int s = 0; s < p->nsops; s++) {
        qid[s] = -1;
        if (!dc->dec[s]) continue;
        const DecSop *rs = ro_find(&dc->lay, &p->sops[s]);
        if (!rs || rs->isvirtual) continue;
        for (int t = 0; t < q->nsops; t++)
            if (!strcmp(q->sops[t].label, p->sops[s].label)) qid[s] = t;
    }
    /* text of every value of q's s-ops, for comparing with dictionary texts */
    StrBuf tb;
    sb_init(&tb);
    int rc = 0;
    uint8_t *dcare = xmalloc((size_t)q->nsops * (size_t)q->max_len + 1);
    for (int k = 0; k < dc->nsamples && !rc; k++) {
        int n = dc->sample_len[k], set = dc->sample_set[k];
        long off = dc->sample_off[k];
        if (interp_eval(it, dc->tok + off, n)) {
            sb_printf(err, "the interpreter failed on the decompiled program: %s", interp_error(it));
            rc = -1;
            break;
        }
        /* dcare[t][i]: s-op t of the program has no value at position i for a reason a
         * model cannot mirror, so any model value is "don't care" there (as for tracc
         * verify; docs/model-format.md, Decoding): a categorical aggregate whose selected
         * values differ (the model holds their mixture), a numerical s-op (the model holds a
         * number), a map or sequence map of an operand without a value (the model's MLP
         * reads a zero vector). Elsewhere (an aggregate that selects nothing, a map's table)
         * no value must meet a model without one. */
        for (int t = 0; t < q->nsops; t++) {
            const RaspSop *qt = &q->sops[t];
            uint8_t *dcr = dcare + (size_t)t * q->max_len;
            memset(dcr, 0, (size_t)n);
            const int32_t *tv = interp_values(it, t);
            if (!tv) continue;
            for (int i = 0; i < n; i++) {
                if (tv[i] != RASP_NONE) continue;
                if (qt->enc == ENC_NUMERICAL) dcr[i] = 1;
                else if (qt->op == SOP_MAP || qt->op == SOP_SEQMAP) {
                    const int32_t *av = interp_values(it, qt->a), *bv = qt->op == SOP_SEQMAP ? interp_values(it, qt->b) : NULL;
                    dcr[i] = (av && av[i] == RASP_NONE) || (bv && bv[i] == RASP_NONE);
                } else if (qt->op == SOP_AGGREGATE) {
                    const int32_t *av = interp_values(it, qt->a);
                    const uint8_t *sel = interp_selection(it, qt->sel);
                    if (!av || !sel) continue;
                    int32_t v0 = RASP_NONE;
                    int cnt = 0, diff = 0;
                    for (int j = 0; j < n; j++) {
                        if (!sel[(size_t)i * n + j]) continue;
                        if (cnt++ == 0) v0 = av[j];
                        else if (av[j] != v0) diff = 1;
                    }
                    dcr[i] = diff || (cnt && v0 == RASP_NONE);
                }
            }
        }
        for (int s = 0; s < p->nsops; s++) {
            if (qid[s] < 0) continue;
            const RaspSop *qs = &q->sops[qid[s]];
            const int32_t *v = interp_values(it, qid[s]);
            if (!v) continue;
            for (int i = 0; i < n; i++) {
                int32_t d = dc->dec[s][off + i];
                int agree;
                if (!dc->rel[s][off + i]) continue;
                if (v[i] < 0 && dcare[(size_t)qid[s] * q->max_len + i]) {
                    dc->fid[set].sop_dontcare[s]++;
                    continue;
                }
                if (v[i] < 0 || d < 0) agree = v[i] < 0 && d == RASP_NONE;
                else if (qs->enc == ENC_NUMERICAL) {
                    double x = val_as_double(qs->vals[v[i]]), y = val_as_double(dc->dict[s].val[d]);
                    agree = fabs(x - y) <= 1e-3 * fmax(1, fabs(x));
                } else {
                    sb_clear(&tb);
                    val_format(qs->vals[v[i]], &tb);
                    agree = !strcmp(tb.s, dc->dict[s].txt[d]);
                }
                dc->fid[set].sop_n[s]++;
                dc->fid[set].sop_agree[s] += agree;
            }
        }
        const RaspSop *qo = &q->sops[q->output];
        const int32_t *v = interp_values(it, q->output);
        for (int i = 0; i < n; i++) {
            int agree;
            if (v[i] < 0 && dcare[(size_t)q->output * q->max_len + i]) {
                int counted = !dc->nat;
                for (int a = 0; a < dc->nat; a++) counted |= dc->at[a] == i;
                dc->fid[set].out_dontcare += counted;
                continue;
            }
            if (v[i] < 0) agree = dc->out_dec[off + i] < 0;
            else if (dc->m->output_numerical) {
                double x = val_as_double(qo->vals[v[i]]);
                agree = fabs(x - dc->out_num[off + i]) <= 1e-3 * fmax(1, fabs(x));
            } else if (dc->out_dec[off + i] < 0) agree = 0;
            else {
                sb_clear(&tb);
                val_format(qo->vals[v[i]], &tb);
                agree = !strcmp(tb.s, dc->out_dict.txt[dc->out_dec[off + i]]);
            }
            /* out_*: the answer positions (every position when there are none); all_*:
             * every position */
            dc->fid[set].all_n++;
            dc->fid[set].all_agree += agree;
            int counted = !dc->nat;
            for (int a = 0; a < dc->nat; a++) counted |= dc->at[a] == i;
            if (counted) {
                dc->fid[set].out_n++;
                dc->fid[set].out_agree += agree;
            }
        }
    }
    sb_free(&tb);
    free(dcare);
    free(qid);
    interp_free(it);
    return rc;
}

static double frac(long a, long n)
{
    return n ? (double)a / (double)n : 1.0;
}

static json_t *fid_json(const Dc *dc, int set)
{
    const DcFid *f = &dc->fid[set];
    json_t *o = json_object();
    json_object_set_new(o, "inputs", json_integer(dc->set_count[set]));
    json_object_set_new(o, "output", json_real(frac(f->out_agree, f->out_n)));
    json_object_set_new(o, "positions", json_integer(f->out_n));
    json_object_set_new(o, "dont_care", json_integer(f->out_dontcare));
    if (dc->nat) {
        json_t *at = json_array();
        for (int i = 0; i < dc->nat; i++) json_array_append_new(at, json_integer(dc->at[i]));
        json_object_set_new(o, "at", at);
        json_object_set_new(o, "output_all_positions", json_real(frac(f->all_agree, f->all_n)));
    }
    json_t *s = json_object();
    for (int i = 0; i < dc->p->nsops; i++)
        if (f->sop_n[i]) json_object_set_new(s, dc->p->sops[i].label, json_real(frac(f->sop_agree[i], f->sop_n[i])));
    json_object_set_new(o, "sops", s);
    return o;
}

static void pct(StrBuf *b, long a, long n)
{
    double x = 100.0 * frac(a, n);
    if (a != n && x > 99.95) sb_puts(b, ">99.9%");
    else if (a != n && x == 0) sb_puts(b, "0%");
    else sb_printf(b, "%.1f%%", x);
}

/* ---------- the whole run ---------- */

static void dc_free(Dc *dc)
{
    if (dc->dict)
        for (int s = 0; s < dc->p->nsops; s++) dict_free(&dc->dict[s]);
    dict_free(&dc->out_dict);
    free(dc->dict);
    if (dc->dec)
        for (int s = 0; s < dc->p->nsops; s++) free(dc->dec[s]);
    free(dc->dec);
    if (dc->val)
        for (int s = 0; s < dc->p->nsops; s++) free(dc->val[s]);
    if (dc->rel)
        for (int s = 0; s < dc->p->nsops; s++) free(dc->rel[s]);
    free(dc->rel);
    if (dc->selrel)
        for (int s = 0; s < dc->p->nsels; s++) free(dc->selrel[s]);
    free(dc->selrel);
    free(dc->val);
    if (dc->mask)
        for (int h = 0; h < dc->nhead_used; h++) free(dc->mask[h]);
    free(dc->mask);
    free(dc->mask_off);
    free(dc->out_dec);
    free(dc->out_num);
    free(dc->ans);
    free(dc->tok);
    free(dc->sample_set);
    free(dc->sample_len);
    free(dc->sample_off);
    free(dc->sel_head);
    free(dc->head_slot);
    free(dc->head_sw);
    free(dc->at);
    for (int s = 0; dc->rec && s < dc->p->nsops; s++) dc_rec_free(&dc->rec[s]);
    free(dc->rec);
    for (int s = 0; dc->srec && s < dc->p->nsels; s++) {
        free(dc->srec[s].pred);
        free(dc->srec[s].seen);
        free(dc->srec[s].expr);
    }
    free(dc->srec);
    for (int i = 0; i < 2; i++) {
        free(dc->fid[i].sop_n);
        free(dc->fid[i].sop_agree);
        free(dc->fid[i].sop_dontcare);
    }
    dec_layout_free(&dc->lay);
    arena_free(&dc->arena);
    if (dc->p) rasp_free(dc->p);
}

int dc_decompile(const Model *m, const DcOptions *o, DcResult *r, StrBuf *err)
{
    memset(r, 0, sizeof *r);
    Dc dc;
    memset(&dc, 0, sizeof dc);
    dc.m = m;
    arena_init(&dc.arena);
    char *src = NULL;
    if (o->program_path) {
        FrontOptions fo = front_options(m, NULL);
        Diag *d = diag_new();
        RaspProgram *p0 = rasp_load_file(o->program_path, &fo, d);
        if (!p0) diag_message(d, err);
        diag_free(d);
        if (!p0) {
            arena_free(&dc.arena);
            return -1;
        }
        /* read again from its text with every load expanded: one text for every span */
        src = xstrdup(p0->source);
        rasp_free(p0);
        dc.p = dc_parse(m, o->program_path, src, NULL, err);
    } else {
        if (!m->program || !*m->program) {
            sb_printf(err, "the model has no program in its metadata: give the program it was compiled from with --program ORIG.rasp");
            arena_free(&dc.arena);
            return -1;
        }
        /* as tracc verify reads it: the model's max_len, direction and vocab */
        src = xstrdup(m->program);
        Diag *d = diag_new();
        StrBuf e2;
        sb_init(&e2);
        dc.p = verify_program_of(m, d, &e2);
        if (!dc.p) {
            sb_puts(err, "the model's program does not load: ");
            if (diag_errors(d)) diag_message(d, err);
            else sb_puts(err, e2.s ? e2.s : "");
        }
        sb_free(&e2);
        diag_free(d);
    }
    if (!dc.p) {
        free(src);
        arena_free(&dc.arena);
        return -1;
    }
    dc.src = src;
    const RaspProgram *p = dc.p;
    if (o->at) {
        dc.at = xmalloc(sizeof(int) * (size_t)(p->max_len + 1));
        dc.nat = ro_parse_at(o->at, p->max_len, dc.at, err);
        dc.at_given = 1;
        if (dc.nat < 0) {
            rasp_free(dc.p);
            free(dc.at);
            free(src);
            arena_free(&dc.arena);
            return -1;
        }
    }
    ro_layout_init(&dc.lay, m);
    find_heads(&dc);
    int rc = check_structure(&dc, err);
    int32_t *prog_of_row = NULL, *row_of = NULL;
    if (!rc) {
        row_of = xmalloc(sizeof(int32_t) * (size_t)(p->nvocab + 1));
        if (ro_vocab_rows(m, p, row_of, err)) rc = -1;
    }
    StrBuf note;
    sb_init(&note);
    if (!rc) {
        /* dictionaries start with the original value sets */
        dc.dict = xcalloc((size_t)p->nsops + 1, sizeof(DcDict));
        for (int s = 0; s < p->nsops; s++) {
            const RaspSop *ps = &p->sops[s];
            DcDict *d = &dc.dict[s];
            d->kind = ps->nvals ? ps->vals[0].kind : VAL_STR;
            if (ps->op == SOP_TOKENS) d->kind = VAL_STR;
            StrBuf b;
            sb_init(&b);
            for (int v = 0; v < ps->nvals; v++) {
                sb_clear(&b);
                val_format(ps->vals[v], &b);
                int idx = dc_dict_add(d, b.s, &dc.arena);
                d->val[idx] = ps->vals[v];
                if (idx != v && !rc) {
                    /* labels are text: two values that print alike cannot be told apart */
                    sb_printf(err, "s-op '%s' has two values that print alike ('%s'): they cannot be read from residual labels",
                              ps->label, b.s);
                    rc = -1;
                }
            }
            sb_free(&b);
            d->n0 = d->n;
        }
        dc.out_dict.kind = VAL_STR;
        prog_of_row = xmalloc(sizeof(int32_t) * (size_t)(m->cfg.d_vocab + 1));
        for (int rr = 0; rr < m->cfg.d_vocab; rr++) prog_of_row[rr] = 0;
        for (int v = 0; v < p->nvocab; v++) prog_of_row[row_of[v]] = v;
        Rng rng;
        rng_seed(&rng, o->seed);
        int trained = sample_training(&dc, o, prog_of_row, &note);
        dc.set_count[DC_SET_TRAIN] = trained ? dc.nsamples : 0;
        int lo = trained ? dc.train_len_min : 1, hi = trained ? dc.train_len_max : p->max_len;
        int32_t *tk = xmalloc(sizeof(int32_t) * (size_t)(p->max_len + 1));
        for (long k = 0; k < o->n; k++) {
            int n = ro_sample(&rng, p->nvocab, lo, hi, tk);
            add_sample(&dc, DC_SET_UNIFORM, tk, n);
        }
        free(tk);
        dc.set_count[DC_SET_UNIFORM] = (int)o->n;
        if (!rc) rc = observe(&dc, err);
    }
    free(prog_of_row);
    free(row_of);
    RaspProgram *q = NULL;
    if (!rc) {
        dc_recover(&dc);
        char *text = dc_write_program(&dc);
        StrBuf pe;
        sb_init(&pe);
        /* with its own vocab declaration when that is the original's (it is the same
         * text), else with the original's as an override (a model compiled with --vocab) */
        q = dc_parse(m, "decompiled", text, NULL, &pe);
        int same = q && q->nvocab == p->nvocab;
        for (int v = 0; same && v < p->nvocab; v++)
            same = val_equal(q->vocab[v], p->vocab[v]) && q->vocab[v].kind == p->vocab[v].kind;
        if (!same) {
            if (q) rasp_free(q);
            StrBuf vocab;
            sb_init(&vocab);
            for (int v = 0; v < p->nvocab; v++) {
                if (v) sb_putc(&vocab, ',');
                val_format(p->vocab[v], &vocab);
            }
            sb_clear(&pe);
            q = dc_parse(m, "decompiled", text, vocab.s, &pe);
            sb_free(&vocab);
        }
        if (!q) {
            sb_printf(err, "internal error: the decompiled program does not check:\n%s\n--- the program:\n%s", pe.s ? pe.s : "", text);
            rc = -1;
            free(text);
        } else r->program = text;
        sb_free(&pe);
    }
    if (!rc) {
        for (int i = 0; i < 2; i++) {
            dc.fid[i].sop_n = xcalloc((size_t)p->nsops + 1, sizeof(long));
            dc.fid[i].sop_agree = xcalloc((size_t)p->nsops + 1, sizeof(long));
            dc.fid[i].sop_dontcare = xcalloc((size_t)p->nsops + 1, sizeof(long));
        }
        rc = fidelity(&dc, q, err);
    }
    if (!rc) {
        r->original = xstrdup(src);
        r->diff = dc_unified_diff(src, r->program, "original", "decompiled");
        int sets[2], ns = 0;
        if (dc.set_count[DC_SET_TRAIN]) sets[ns++] = DC_SET_TRAIN;
        sets[ns++] = DC_SET_UNIFORM;
        r->reproduces = 1;
        for (int i = 0; i < ns; i++)
            if (dc.fid[sets[i]].out_agree != dc.fid[sets[i]].out_n) r->reproduces = 0;
        /* comments */
        StrBuf c;
        sb_init(&c);
        sb_printf(&c, "# decompiled by tracc decompile from a model of %d block%s (d_model %d)\n", m->cfg.n_layers,
                  m->cfg.n_layers == 1 ? "" : "s", m->cfg.d_model);
        sb_printf(&c, "# the model's max_len is %d (compile this file with --max-len %d)\n", m->cfg.n_ctx - 1,
                  m->cfg.n_ctx - 1);
        if (note.len) sb_printf(&c, "# note: %s\n", note.s);
        for (int i = 0; i < ns; i++) {
            int st = sets[i];
            const DcFid *f = &dc.fid[st];
            sb_printf(&c, "# fidelity on %ld %s inputs: output ", (long)dc.set_count[st],
                      st == DC_SET_TRAIN ? "training-distribution" : "uniform");
            pct(&c, f->out_agree, f->out_n);
            sb_printf(&c, " of %ld %s", f->out_n, dc.nat ? "answer positions" : "positions");
            if (f->out_dontcare) sb_printf(&c, " (%ld more where the program's no value cannot be mirrored by a model: don't care)", f->out_dontcare);
            if (dc.nat) {
                sb_puts(&c, "; at every position ");
                pct(&c, f->all_agree, f->all_n);
            }
            sb_puts(&c, "\n");
        }
        if (dc.nat) {
            sb_puts(&c, "# answer positions (RASP indices):");
            for (int i = 0; i < dc.nat; i++) sb_printf(&c, " %d", dc.at[i]);
            sb_puts(&c, dc.at_given ? " (--at)\n" : " (from the model's provenance; --all-positions to read every position)\n");
        }
        sb_puts(&c, r->reproduces ? "# the program reproduces the model on every sampled answer position\n"
                                  : "# WARNING: the program does NOT reproduce the model on every sampled answer position\n");
        json_t *sops = json_object();
        for (int s = 0; s < p->nsops; s++) {
            const RaspSop *ps = &p->sops[s];
            if (!ps->used || ps->op == SOP_TOKENS || ps->op == SOP_INDICES || ps->op == SOP_CONST) continue;
            const DcRec *rc2 = &dc.rec[s];
            json_t *j = json_object();
            json_object_set_new(j, "op", json_string(dc_op_name(ps)));
            json_object_set_new(j, "form", json_string(rc2->form ? rc2->form : ""));
            json_object_set_new(j, "changed", json_boolean(rc2->changed));
            json_object_set_new(j, "explained", rc2->nobs ? json_real(frac(rc2->nexpl, rc2->nobs)) : json_null());
            json_object_set_new(j, "observations", json_integer(rc2->nobs));
            long fn = 0, fa = 0;
            for (int i = 0; i < ns; i++) {
                fn += dc.fid[sets[i]].sop_n[s];
                fa += dc.fid[sets[i]].sop_agree[s];
            }
            json_object_set_new(j, "fidelity", fn ? json_real(frac(fa, fn)) : json_null());
            json_t *reads = json_array(), *news = json_array();
            for (int k = 0; k < rc2->nreads; k++) json_array_append_new(reads, json_string(rc2->reads[k]));
            for (int k = 0; k < rc2->nnew; k++) json_array_append_new(news, json_string(rc2->newreads[k]));
            json_object_set_new(j, "reads", reads);
            json_object_set_new(j, "new_reads", news);
            if (rc2->note) json_object_set_new(j, "note", json_string(rc2->note));
            if (rc2->driven_n) {
                json_object_set_new(j, "weights_agree", json_real(frac(rc2->driven_agree, rc2->driven_n)));
                json_object_set_new(j, "weights_differ_unobserved", json_integer(rc2->driven_differs));
            }
            /* the recovered table on the observed entries: input text -> output text */
            if (rc2->table && rc2->seen && ps->enc == ENC_CATEGORICAL) {
                json_t *t = json_object();
                StrBuf key;
                sb_init(&key);
                for (int e = 0; e < rc2->ntable; e++) {
                    if (!rc2->seen[e] || rc2->table[e] < 0) continue;
                    sb_clear(&key);
                    if (ps->op == SOP_SELWIDTH) sb_printf(&key, "%d", e);
                    else if (ps->op == SOP_SEQMAP)
                        sb_printf(&key, "%s, %s", dc.dict[ps->a].txt[e / rc2->nb], dc.dict[ps->b].txt[e % rc2->nb]);
                    else sb_puts(&key, dc.dict[ps->a].txt[e]);
                    json_object_set_new(t, key.s, json_string(dc.dict[s].txt[rc2->table[e]]));
                }
                sb_free(&key);
                json_object_set_new(j, "table", t);
                if (ps->op == SOP_AGGREGATE)
                    json_object_set_new(j, "default", rc2->deflt >= 0 ? json_string(dc.dict[s].txt[rc2->deflt]) : json_null());
            }
            json_object_set_new(sops, ps->label, j);
            /* comment line */
            sb_printf(&c, "# %s (%s): %s", ps->label, dc_op_name(ps), rc2->changed ? "CHANGED" : "unchanged");
            if (rc2->nobs) {
                sb_puts(&c, ", table explains ");
                pct(&c, rc2->nexpl, rc2->nobs);
                sb_printf(&c, " of %ld observations", rc2->nobs);
            }
            if (fn) {
                sb_puts(&c, ", fidelity ");
                pct(&c, fa, fn);
            }
            if (rc2->driven_n) {
                sb_puts(&c, ps->op == SOP_AGGREGATE ? ", its OV circuit driven by labels agrees on " : ", its MLP driven by labels agrees on ");
                pct(&c, rc2->driven_agree, rc2->driven_n);
                sb_printf(&c, " of %ld entries", rc2->driven_n);
                if (rc2->driven_differs) sb_printf(&c, " (and differs on %ld unobserved)", rc2->driven_differs);
            }
            if (rc2->nnew) {
                sb_puts(&c, ", now also reads");
                for (int k = 0; k < rc2->nnew; k++) sb_printf(&c, " %s", rc2->newreads[k]);
            }
            if (rc2->note) sb_printf(&c, "; %s", rc2->note);
            sb_puts(&c, "\n");
        }
        /* selectors */
        json_t *sels = json_object();
        for (int k = 0; k < p->nsels; k++) {
            const RaspSel *ql = &p->sels[k];
            const DcSelRec *sr = &dc.srec[k];
            if (!ql->used || ql->op != SEL_SELECT) continue;
            json_t *j = json_object();
            json_object_set_new(j, "form", json_string(sr->changed && sr->form ? sr->form : "unchanged"));
            json_object_set_new(j, "changed", json_boolean(sr->changed));
            json_object_set_new(j, "observed", json_boolean(sr->observed));
            json_object_set_new(j, "explained", sr->nobs ? json_real(frac(sr->nexpl, sr->nobs)) : json_null());
            json_object_set_new(j, "observations", json_integer(sr->nobs));
            if (sr->qk_n) {
                json_object_set_new(j, "qk_agree", json_real(frac(sr->qk_agree, sr->qk_n)));
                json_object_set_new(j, "qk_differ_unobserved", json_integer(sr->qk_differs));
            }
            if (sr->seen) {
                /* the observed (key, query) pairs that are selected */
                json_t *pairs = json_array();
                for (int kk = 0; kk < sr->nk; kk++)
                    for (int qq = 0; qq < sr->nq; qq++) {
                        size_t c2 = (size_t)kk * sr->nq + qq;
                        if (!sr->seen[c2] || !sr->pred[c2]) continue;
                        json_t *pr = json_array();
                        json_array_append_new(pr, json_string(dc.dict[ql->keys].txt[kk]));
                        json_array_append_new(pr, json_string(dc.dict[ql->queries].txt[qq]));
                        json_array_append_new(pairs, pr);
                    }
                json_object_set_new(j, "selected", pairs);
            }
            json_object_set_new(sels, ql->label, j);
            if (sr->changed) {
                sb_printf(&c, "# selector %s: CHANGED, predicate explains ", ql->label);
                pct(&c, sr->nexpl, sr->nobs);
                sb_printf(&c, " of %ld (query, key) observations", sr->nobs);
                if (sr->qk_n) {
                    sb_puts(&c, ", its QK circuit driven by labels agrees on ");
                    pct(&c, sr->qk_agree, sr->qk_n);
                    sb_printf(&c, " of %ld pairs", sr->qk_n);
                }
                sb_puts(&c, "\n");
            }
        }
        json_t *idle = dc_idle(&dc, &c, err);
        if (!idle) {
            /* its message is in err; nothing half-made is returned */
            json_decref(sops);
            json_decref(sels);
            sb_free(&c);
            free(r->original);
            free(r->diff);
            free(r->program);
            r->original = r->diff = r->program = NULL;
            rc = -1;
        } else {
            r->comments = dc_take(&c);
            json_t *rep = json_object();
            json_object_set_new(rep, "program", json_string(r->program));
            json_object_set_new(rep, "diff", json_string(r->diff));
            json_t *fj = fid_json(&dc, sets[0]);
            json_object_set_new(fj, "distribution", json_string(set_name(sets[0])));
            json_object_set_new(rep, "fidelity", fj);
            if (ns > 1) {
                json_t *fu = fid_json(&dc, DC_SET_UNIFORM);
                json_object_set_new(fu, "distribution", json_string("uniform"));
                json_object_set_new(rep, "fidelity_uniform", fu);
            }
            json_object_set_new(rep, "reproduces", json_boolean(r->reproduces));
            json_object_set_new(rep, "changed", json_boolean(*r->diff != 0));
            if (dc.nat) {
                json_t *at = json_array();
                for (int i = 0; i < dc.nat; i++) json_array_append_new(at, json_integer(dc.at[i]));
                json_object_set_new(rep, "at", at);
            }
            if (note.len) json_object_set_new(rep, "note", json_string(note.s));
            json_object_set_new(rep, "sops", sops);
            json_object_set_new(rep, "selectors", sels);
            json_object_set_new(rep, "idle", idle);
            r->report = rep;
        }
    } else {
        free(r->program);
        r->program = NULL;
    }
    sb_free(&note);
    if (q) rasp_free(q);
    dc_free(&dc);
    free(src);
    return rc;
}

void dc_result_free(DcResult *r)
{
    free(r->original);
    free(r->program);
    free(r->diff);
    free(r->comments);
    if (r->report) json_decref(r->report);
    memset(r, 0, sizeof *r);
}
