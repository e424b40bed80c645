/* prune.c — see prune.h. */
#include "analysis/prune.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "train/backward.h"
#include "train/data.h"

#define EVAL_CHUNK 256
#define SEARCH_LINEAR 64

/* ---------------------------------------------------------------- evaluation sets */

typedef struct {
    DataGen *gen;
    DataBatch batch;
} Set;

static int set_init(Set *s, const Model *m, const PruneOptions *o, const char *program, const char *spurious,
                    double rate, const char *flag, StrBuf *err)
{
    memset(s, 0, sizeof *s);
    DataSpec spec;
    memset(&spec, 0, sizeof spec);
    spec.task = program;
    spec.spurious = spurious;
    spec.spurious_rate = rate;
    spec.len_min = o->len_min > 0 ? o->len_min : m->cfg.n_ctx - 1;
    spec.len_max = o->len_max > 0 ? o->len_max : m->cfg.n_ctx - 1;
    spec.no_repeat = o->no_repeat;
    spec.nat = o->nat;
    spec.at = o->at;
    spec.max_tries = DATA_DEFAULT_MAX_TRIES;
    spec.task_flag = flag;
    if (!(s->gen = data_gen_new(&spec, m, err))) return -1;
    /* the inputs tracc finetune --eval uses for the same set */
    if (data_gen_batch(s->gen, data_eval_seed(s->gen, o->eval_seed), 0, (int)o->eval_n, &s->batch, err))
        return -1;
    return 0;
}

static void set_free(Set *s)
{
    if (s->gen) data_gen_free(s->gen);
    data_batch_free(&s->batch);
    memset(s, 0, sizeof *s);
}

/* Exact-match accuracy over the sequences that have a counted position. */
static int set_accuracy(const Set *s, const Model *m, FwdState *fs, double *acc, StrBuf *err)
{
    const DataBatch *bt = &s->batch;
    int VO = m->cfg.d_vocab_out;
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    long nseq = 0, nok = 0;
    for (int b0 = 0; b0 < bt->B; b0 += EVAL_CHUNK) {
        int nb = bt->B - b0 < EVAL_CHUNK ? bt->B - b0 : EVAL_CHUNK;
        if (fwd_forward(fs, m, bt->tokens + (size_t)b0 * bt->T, bt->lens + b0, nb, bt->T, &fo, err)) return -1;
        for (int b = b0; b < b0 + nb; b++) {
            int r0 = bt->row_start[b], r1 = bt->row_start[b + 1];
            if (r0 == r1) continue;
            int all = 1;
            for (int r = r0; r < r1 && all; r++) {
                const float *lg = fs->logits + ((size_t)(b - b0) * bt->T + bt->pos[r]) * VO;
                if (m->output_numerical) {
                    all = bt->target[r] >= 0 && data_gen_nearest_value(s->gen, lg[0]) == bt->target[r];
                } else {
                    /* decoded as every command decodes outputs: no value at a top logit <= 0.5 */
                    all = dec_output_column(m, lg) == bt->target[r];
                }
            }
            nseq++;
            nok += all;
        }
    }
    *acc = nseq ? (double)nok / nseq : NAN;
    return 0;
}

/* ---------------------------------------------------------------- ranking */

typedef struct {
    double score;
    size_t index;
} Scored;

static int cmp_scored(const void *x, const void *y)
{
    const Scored *a = x, *b = y;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return a->index < b->index ? -1 : a->index > b->index;
}

typedef struct {
    const Model *m;             /* the model analysed (values to restore) */
    const PruneOptions *o;
    Scored *rank;
    size_t n;
    CoordUnit *units;
    size_t *uidx;               /* scratch for unit parameter lists */
} Ranking;

/* Set the weights of ranked item i in w: zero (prune) or the original value (rollback);
 * restore = 1 puts back the analysed model's values. */
static void apply_item(Model *w, const Ranking *rk, size_t i, int restore)
{
    const Model *src = restore ? rk->m : rk->o->original;
    size_t idx = rk->rank[i].index;
    if (!rk->o->neurons) {
        w->params_memory[idx] = src ? src->params_memory[idx] : 0.0f;
        return;
    }
    size_t n = coord_unit_params(rk->m, &rk->units[idx], rk->uidx);
    for (size_t k = 0; k < n; k++) w->params_memory[rk->uidx[k]] = src ? src->params_memory[rk->uidx[k]] : 0.0f;
}

static void move_to(Model *w, const Ranking *rk, long *cur, long k)
{
    for (long i = *cur; i < k; i++) apply_item(w, rk, (size_t)i, 0);
    for (long i = *cur - 1; i >= k; i--) apply_item(w, rk, (size_t)i, 1);
    *cur = k;
}

static double default_logit_scale(const Model *m)
{
    json_t *c = json_is_object(m->provenance) ? json_object_get(m->provenance, "config") : NULL;
    json_t *v = c ? json_object_get(c, "logit_scale") : NULL;
    return json_is_number(v) && json_number_value(v) > 0 ? json_number_value(v) : 10.0;
}

static void row_init(PruneRow *r, long k, int nsets)
{
    r->k = k;
    r->acc = xmalloc(sizeof(double) * (size_t)nsets);
    for (int i = 0; i < nsets; i++) r->acc[i] = NAN;
}

static int eval_all(PruneRow *row, Set *sets, int nsets, int only_task, const Model *w, FwdState *fs, StrBuf *err)
{
    for (int i = 0; i < (only_task ? 1 : nsets); i++)
        if (set_accuracy(&sets[i], w, fs, &row->acc[i], err)) return -1;
    return 0;
}

/* Set the slices in w to 0 (or `to`'s values), keeping what was there in save (sl->total);
 * returns how many values changed. */
static long reset_slices(Model *w, const CoordSlices *sl, const Model *to, float *save)
{
    long changed = 0;
    for (int i = 0, at = 0; i < sl->n; i++)
        for (size_t k = 0; k < sl->len[i]; k++, at++) {
            size_t idx = sl->start[i] + k;
            float v = to ? to->params_memory[idx] : 0.0f;
            save[at] = w->params_memory[idx];
            changed += w->params_memory[idx] != v;
            w->params_memory[idx] = v;
        }
    return changed;
}

static void restore_slices(Model *w, const CoordSlices *sl, const float *save)
{
    for (int i = 0, at = 0; i < sl->n; i++)
        for (size_t k = 0; k < sl->len[i]; k++) w->params_memory[sl->start[i] + k] = save[at++];
}

int prune_run(const Model *m, const PruneOptions *o, PruneResult *r, StrBuf *err)
{
    memset(r, 0, sizeof *r);
    r->found_k = -1;
    r->found_acc = NAN;
    if (!o->task) return sb_fail(err, "--task is required");
    if (o->original && (o->original->num_params != m->num_params || o->original->cfg.d_model != m->cfg.d_model))
        return sb_fail(err, "--rollback: the original model's shapes differ from the model's");
    /* the resets first: a misspelt one fails before any work */
    CoordSlices *resets = xcalloc((size_t)o->nresets + 1, sizeof(CoordSlices));
    for (int i = 0; i < o->nresets; i++) {
        StrBuf e;
        sb_init(&e);
        int bad = coord_parse_slices(m, o->resets[i], &resets[i], &e);
        if (bad) sb_printf(err, "--reset %s: %s", o->resets[i], e.s);
        sb_free(&e);
        if (bad) {
            for (int j = 0; j < i; j++) coord_slices_free(&resets[j]);
            free(resets);
            return -1;
        }
    }
    int nsets = 1 + o->neval, rc = -1;
    Set *sets = xcalloc((size_t)nsets, sizeof *sets);
    Model *w = NULL;
    BwdState *bs = NULL;
    float *grads = NULL;
    DataBatch gb;
    memset(&gb, 0, sizeof gb);
    Ranking rk;
    memset(&rk, 0, sizeof rk);
    rk.m = m;
    rk.o = o;
    FwdState fs;
    fwd_init(&fs);
    Coords co;
    coord_init(&co, m);

    r->neval = o->neval;
    r->eval_names = xmalloc(sizeof(char *) * (size_t)nsets);
    r->eval_names[0] = xstrdup("task");
    for (int i = 0; i < o->neval; i++) r->eval_names[i + 1] = xstrdup(o->evals[i].name);
    for (int i = 0; i < nsets; i++) {
        char flag[96];
        if (i == 0)
            snprintf(flag, sizeof flag, "--task");
        else
            snprintf(flag, sizeof flag, "--eval %s", o->evals[i - 1].name);
        const char *prog = i ? o->evals[i - 1].program : o->task;
        const char *spur = i ? o->evals[i - 1].spurious : NULL;
        if (set_init(&sets[i], m, o, prog, spur, i ? o->evals[i - 1].rate : 0, flag, err)) goto done;
    }

    /* the gradient of the task loss, once */
    r->logit_scale = o->logit_scale > 0 ? o->logit_scale : default_logit_scale(m);
    {
        if (data_gen_batch(sets[0].gen, o->seed, 0, (int)o->grad_n, &gb, err)) goto done;
        if (gb.R == 0) {
            sb_printf(err, "--task %s has no value at the positions where the loss counts", o->task);
            goto done;
        }
        BwdBatch bb = {.B = gb.B, .T = gb.T, .tokens = gb.tokens, .lens = gb.lens, .R = gb.R, .seq = gb.seq,
                       .pos = gb.pos, .target = gb.target, .target_num = gb.target_num};
        BwdOptions bo = {.naive = 0, .logit_scale = (float)r->logit_scale, .trainable = NULL};
        bs = bwd_new();
        if (bwd_forward(bs, m, &bb, &bo, &r->loss, err)) goto done;
        grads = xcalloc(m->num_params ? m->num_params : 1, sizeof(float));
        bwd_backward(bs, m, &bo, grads);
        for (size_t i = 0; i < m->num_params; i++)
            if (!isfinite(grads[i])) {
                sb_printf(err, "the gradient of the task loss is not finite (loss %g)", r->loss);
                goto done;
            }
    }

    /* the ranking */
    {
        const float *wv = m->params_memory, *ov = o->original ? o->original->params_memory : NULL;
        if (!o->neurons) {
            rk.rank = xmalloc(sizeof(Scored) * (m->num_params ? m->num_params : 1));
            for (size_t i = 0; i < m->num_params; i++) {
                double d = ov ? (double)wv[i] - ov[i] : wv[i];
                if (d == 0) continue;
                double s = o->rank_delta && ov ? fabs(d) : (double)grads[i] * d;
                rk.rank[rk.n++] = (Scored){s, i};
            }
        } else {
            int nu;
            rk.units = coord_units(m, &nu);
            size_t maxsz = 2 * (size_t)m->cfg.d_model + 2;
            rk.uidx = xmalloc(sizeof(size_t) * maxsz);
            rk.rank = xmalloc(sizeof(Scored) * (size_t)(nu ? nu : 1));
            for (int u = 0; u < nu; u++) {
                size_t n = coord_unit_params(m, &rk.units[u], rk.uidx);
                double s = 0, mag = 0;
                int any = 0;
                for (size_t k = 0; k < n; k++) {
                    size_t i = rk.uidx[k];
                    double d = ov ? (double)wv[i] - ov[i] : wv[i];
                    if (d != 0) any = 1;
                    s += (double)grads[i] * d;
                    mag += d * d;
                }
                if (!any) continue;
                rk.rank[rk.n++] = (Scored){o->rank_delta && ov ? sqrt(mag) : s, (size_t)u};
            }
        }
        qsort(rk.rank, rk.n, sizeof(Scored), cmp_scored);
        r->candidates = (long)rk.n;
    }

    if (!(w = model_copy(m, err))) goto done;
    long cur = 0;
    row_init(&r->base, 0, nsets);
    if (eval_all(&r->base, sets, nsets, 0, w, &fs, err)) goto done;
    if (o->original) {
        row_init(&r->original, -1, nsets);
        if (eval_all(&r->original, sets, nsets, 0, o->original, &fs, err)) goto done;
    }
    if (o->nresets) {
        r->resets = xcalloc((size_t)o->nresets, sizeof(PruneRow));
        r->reset_params = xcalloc((size_t)o->nresets, sizeof(long));
        r->reset_changed = xcalloc((size_t)o->nresets, sizeof(long));
        for (int i = 0; i < o->nresets; i++) {
            float *save = xmalloc(sizeof(float) * (resets[i].total ? resets[i].total : 1));
            row_init(&r->resets[r->nresets++], -1, nsets);
            r->reset_params[i] = (long)resets[i].total;
            r->reset_changed[i] = reset_slices(w, &resets[i], o->original, save);
            int bad = eval_all(&r->resets[i], sets, nsets, 0, w, &fs, err);
            restore_slices(w, &resets[i], save);
            free(save);
            if (bad) goto done;
        }
    }
    r->rows = xcalloc((size_t)o->nks + 2, sizeof(PruneRow));
    for (int i = 0; i < o->nks; i++) {
        long k = o->ks[i] < r->candidates ? o->ks[i] : r->candidates;
        if (r->nrows && r->rows[r->nrows - 1].k == k) continue;
        move_to(w, &rk, &cur, k);
        PruneRow *row = &r->rows[r->nrows++];
        row_init(row, k, nsets);
        if (eval_all(row, sets, nsets, 0, w, &fs, err)) goto done;
    }
    long needed = r->nrows ? r->rows[r->nrows - 1].k : 0;
    if (o->each > 0) {
        /* each of the top items on its own: a cumulative top K can hide an item that matters
         * alone behind items ranked above it that remove the capability outright */
        move_to(w, &rk, &cur, 0);
        r->neach = (int)(o->each < (long)rk.n ? o->each : (long)rk.n);
        r->each = xcalloc((size_t)r->neach + 1, sizeof(PruneRow));
        for (int i = 0; i < r->neach; i++) {
            row_init(&r->each[i], i + 1, nsets);
            apply_item(w, &rk, (size_t)i, 0);
            int bad = eval_all(&r->each[i], sets, nsets, 0, w, &fs, err);
            apply_item(w, &rk, (size_t)i, 1);
            if (bad) goto done;
        }
        if (r->neach > needed) needed = r->neach;
    }
    if (o->original) {
        /* the search for the smallest K restoring the task */
        int cap = 16;
        r->search = xmalloc(sizeof(PruneRow) * (size_t)cap);
#define SEARCH_EVAL(K, ACC)                                                                                            \
    do {                                                                                                               \
        if (r->nsearch == cap) r->search = xrealloc(r->search, sizeof(PruneRow) * (size_t)(cap *= 2));                 \
        PruneRow *sr_ = &r->search[r->nsearch++];                                                                      \
        row_init(sr_, (K), nsets);                                                                                     \
        move_to(w, &rk, &cur, (K));                                                                                    \
        if (eval_all(sr_, sets, nsets, 1, w, &fs, err)) goto done;                                                     \
        (ACC) = sr_->acc[0];                                                                                           \
    } while (0)
        double acc = r->base.acc[0];
        long n = r->candidates;
        if (acc >= o->target) {
            r->found_k = 0;
            r->found_acc = acc;
        }
        for (long k = 1; k <= n && k <= SEARCH_LINEAR && r->found_k < 0; k++) {
            SEARCH_EVAL(k, acc);
            if (acc >= o->target) {
                r->found_k = k;
                r->found_acc = acc;
            }
        }
        long lo = SEARCH_LINEAR, hi = -1;
        for (long k = 2 * SEARCH_LINEAR; r->found_k < 0 && lo < n; k *= 2) {
            if (k > n) k = n;
            SEARCH_EVAL(k, acc);
            if (acc >= o->target) {
                hi = k;
                break;
            }
            lo = k;
        }
        if (r->found_k < 0 && hi > 0) {
            double hacc = acc;
            while (hi - lo > 1) {
                long mid = lo + (hi - lo) / 2;
                SEARCH_EVAL(mid, acc);
                if (acc >= o->target) {
                    hi = mid;
                    hacc = acc;
                } else {
                    lo = mid;
                }
            }
            r->found_k = hi;
            r->found_acc = hacc;
        }
#undef SEARCH_EVAL
        if (r->found_k > 0) {
            /* every set at the K found */
            int have = 0;
            for (int i = 0; i < r->nrows; i++) have |= r->rows[i].k == r->found_k;
            if (!have) {
                PruneRow *row = &r->rows[r->nrows++];
                row_init(row, r->found_k, nsets);
                move_to(w, &rk, &cur, r->found_k);
                if (eval_all(row, sets, nsets, 0, w, &fs, err)) goto done;
                /* keep the rows ordered by K */
                for (int i = r->nrows - 1; i > 0 && r->rows[i].k < r->rows[i - 1].k; i--) {
                    PruneRow t = r->rows[i];
                    r->rows[i] = r->rows[i - 1];
                    r->rows[i - 1] = t;
                }
            }
            if (r->found_k > needed) needed = r->found_k;
        }
    }

    /* name the ranked items that were used */
    r->nitems = (int)(needed < (long)rk.n ? needed : (long)rk.n);
    if (r->nitems < 16 && (long)rk.n > r->nitems) r->nitems = rk.n < 16 ? (int)rk.n : 16;
    r->items = xcalloc((size_t)r->nitems + 1, sizeof(PruneItem));
    {
        StrBuf b;
        sb_init(&b);
        for (int i = 0; i < r->nitems; i++) {
            PruneItem *it = &r->items[i];
            it->index = rk.rank[i].index;
            it->score = rk.rank[i].score;
            sb_clear(&b);
            if (!o->neurons) {
                coord_param_id(m, it->index, &b);
                it->id = xstrdup(b.s);
                sb_clear(&b);
                coord_param_meaning(&co, it->index, &b);
                it->meaning = xstrdup(b.s);
                it->from = m->params_memory[it->index];
                it->to = o->original ? o->original->params_memory[it->index] : 0;
            } else {
                coord_unit_name(&co, &rk.units[it->index], &b);
                it->id = xstrdup(b.s);
                it->meaning = xstrdup("");
            }
        }
        sb_free(&b);
    }
    rc = 0;
done:
    free(rk.rank);
    free(rk.units);
    free(rk.uidx);
    if (w) model_free(w);
    if (bs) bwd_free(bs);
    free(grads);
    data_batch_free(&gb);
    for (int i = 0; i < nsets; i++) set_free(&sets[i]);
    free(sets);
    fwd_free(&fs);
    coord_free(&co);
    for (int i = 0; i < o->nresets; i++) coord_slices_free(&resets[i]);
    free(resets);
    if (rc) prune_result_free(r);
    return rc;
}

static void row_free(PruneRow *r)
{
    free(r->acc);
    r->acc = NULL;
}

void prune_result_free(PruneResult *r)
{
    for (int i = 0; i < r->nitems; i++) {
        free(r->items[i].id);
        free(r->items[i].meaning);
    }
    free(r->items);
    if (r->eval_names)
        for (int i = 0; i <= r->neval; i++) free(r->eval_names[i]);
    free(r->eval_names);
    row_free(&r->base);
    row_free(&r->original);
    for (int i = 0; i < r->nrows; i++) row_free(&r->rows[i]);
    free(r->rows);
    for (int i = 0; i < r->nsearch; i++) row_free(&r->search[i]);
    free(r->search);
    for (int i = 0; i < r->neach; i++) row_free(&r->each[i]);
    free(r->each);
    for (int i = 0; i < r->nresets; i++) row_free(&r->resets[i]);
    free(r->resets);
    free(r->reset_params);
    free(r->reset_changed);
    memset(r, 0, sizeof *r);
    r->found_k = -1;
}

void prune_apply(Model *m, const PruneOptions *o, const PruneResult *r, long k)
{
    size_t *uidx = xmalloc(sizeof(size_t) * (2 * (size_t)m->cfg.d_model + 2));
    int nu = 0;
    CoordUnit *units = o->neurons ? coord_units(m, &nu) : NULL;
    for (long i = 0; i < k && i < r->nitems; i++) {
        size_t idx = r->items[i].index;
        if (!o->neurons) {
            m->params_memory[idx] = o->original ? o->original->params_memory[idx] : 0.0f;
            continue;
        }
        size_t n = coord_unit_params(m, &units[idx], uidx);
        for (size_t q = 0; q < n; q++)
            m->params_memory[uidx[q]] = o->original ? o->original->params_memory[uidx[q]] : 0.0f;
    }
    free(units);
    free(uidx);
}

/* ---------------------------------------------------------------- JSON */

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *row_json(const PruneResult *r, const PruneRow *row)
{
    json_t *o = json_object();
    if (row->k >= 0) json_object_set_new(o, "k", json_integer(row->k));
    json_t *acc = json_object();
    for (int i = 0; i <= r->neval; i++) json_object_set_new(acc, r->eval_names[i], num(row->acc[i]));
    json_object_set_new(o, "acc", acc);
    return o;
}

static json_t *item_json(const PruneOptions *o, const PruneItem *it, int rank)
{
    json_t *j = json_pack("{s:i, s:s, s:o}", "rank", rank, o->neurons ? "unit" : "param", it->id, "score", num(it->score));
    if (!o->neurons) {
        json_object_set_new(j, "meaning", json_string(it->meaning));
        json_object_set_new(j, "from", num(it->from));
        json_object_set_new(j, "to", num(it->to));
    }
    return j;
}

static const char *method(const PruneOptions *o)
{
    if (o->original) return o->neurons ? "rollback_units" : "rollback";
    return o->neurons ? "prune_units" : "prune";
}

/* How many ranked items the JSON lists: `list`, or more when --each or a reported K names
 * them (the report reads those); never the thousands a rollback search may have applied
 * (the written model's provenance names each of those). */
static int json_items(const PruneOptions *o, const PruneResult *r, long list)
{
    long n = list > r->neach ? list : r->neach;
    if (o->nks && o->ks[o->nks - 1] > n) n = o->ks[o->nks - 1];
    return (int)(n < r->nitems ? n : r->nitems);
}

json_t *prune_json(const PruneOptions *o, const PruneResult *r, long list)
{
    json_t *j = json_object();
    json_object_set_new(j, "method", json_string(method(o)));
    json_object_set_new(j, "score", json_string(o->original ? (o->rank_delta ? "|w - w_original|"
                                                                             : "gradient * (w - w_original)")
                                                            : "gradient * w"));
    json_object_set_new(j, "task", json_string(o->task));
    json_object_set_new(j, "loss", num(r->loss));
    json_object_set_new(j, "logit_scale", num(r->logit_scale));
    json_object_set_new(j, "grad_samples", json_integer(o->grad_n));
    json_object_set_new(j, "no_repeat", json_boolean(o->no_repeat));
    json_object_set_new(j, "candidates", json_integer(r->candidates));
    json_object_set_new(j, "base", row_json(r, &r->base));
    if (o->original) json_object_set_new(j, "original", row_json(r, &r->original));
    json_t *rows = json_array();
    for (int i = 0; i < r->nrows; i++) json_array_append_new(rows, row_json(r, &r->rows[i]));
    json_object_set_new(j, "rows", rows);
    json_t *items = json_array();
    int listed = json_items(o, r, list);
    for (int i = 0; i < listed; i++) json_array_append_new(items, item_json(o, &r->items[i], i + 1));
    json_object_set_new(j, "ranked", json_integer(r->nitems));
    json_object_set_new(j, "ranking", items);
    if (o->each > 0) {
        json_t *ea = json_array();
        for (int i = 0; i < r->neach; i++) {
            json_t *e = row_json(r, &r->each[i]);
            json_object_del(e, "k");
            json_object_set_new(e, "rank", json_integer(i + 1));
            json_object_set_new(e, o->neurons ? "unit" : "param", json_string(r->items[i].id));
            json_array_append_new(ea, e);
        }
        json_object_set_new(j, "each", ea);
    }
    if (r->nresets) {
        json_t *ra = json_array();
        for (int i = 0; i < r->nresets; i++) {
            json_t *e = row_json(r, &r->resets[i]);
            json_object_set_new(e, "reset", json_string(o->resets[i]));
            json_object_set_new(e, "params", json_integer(r->reset_params[i]));
            json_object_set_new(e, "changed", json_integer(r->reset_changed[i]));
            json_array_append_new(ra, e);
        }
        json_object_set_new(j, "resets", ra);
    }
    if (o->original) {
        json_object_set_new(j, "target", num(o->target));
        json_object_set_new(j, "found_k", r->found_k >= 0 ? json_integer(r->found_k) : json_null());
        json_object_set_new(j, "found_acc", num(r->found_acc));
        json_t *s = json_array();
        for (int i = 0; i < r->nsearch; i++)
            json_array_append_new(s, json_pack("{s:I, s:o}", "k", (json_int_t)r->search[i].k, "task",
                                               num(r->search[i].acc[0])));
        json_object_set_new(j, "search", s);
    }
    return j;
}

json_t *prune_provenance(const PruneOptions *o, const PruneResult *r, long k, const char *parent_sha,
                         const Model *parent, const char *original_sha, const char *version)
{
    json_t *p = json_object();
    char tool[64];
    snprintf(tool, sizeof tool, "tracc %s prune", version ? version : "?");
    json_object_set_new(p, "tool", json_string(tool));
    json_object_set_new(p, "parent_sha256", json_string(parent_sha));
    json_object_set_new(p, "parent_provenance", parent->provenance ? json_deep_copy(parent->provenance) : json_null());
    json_object_set_new(p, "method", json_string(method(o)));
    json_object_set_new(p, "k", json_integer(k));
    json_object_set_new(p, "task", json_string(o->task));
    json_t *at = json_array();
    for (int i = 0; i < o->nat; i++) json_array_append_new(at, json_integer(o->at[i]));
    json_object_set_new(p, "at", at);
    json_object_set_new(p, "grad_samples", json_integer(o->grad_n));
    json_object_set_new(p, "no_repeat", json_boolean(o->no_repeat));
    json_object_set_new(p, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(p, "logit_scale", num(r->logit_scale));
    if (o->original) json_object_set_new(p, "original_sha256", json_string(original_sha ? original_sha : ""));
    json_t *ch = json_array();
    for (long i = 0; i < k && i < r->nitems; i++) json_array_append_new(ch, item_json(o, &r->items[i], (int)i + 1));
    json_object_set_new(p, "changed", ch);
    return p;
}
