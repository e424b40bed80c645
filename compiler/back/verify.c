/* verify.c — see verify.h. */
#include "compiler/back/verify.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/rng.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"
#include "runtime/decode.h"
#include "runtime/forward.h"

static char *value_text(Value v)
{
    StrBuf b;
    sb_init(&b);
    val_format(v, &b);
    char *s = sb_steal(&b);
    sb_free(&b);
    return s;
}

static char *float_text(double x)
{
    char buf[64];
    fmt_double(x, buf, sizeof buf);
    return xstrdup(buf);
}

void verify_report_free(VerifyReport *rep)
{
    if (!rep) return;
    for (int i = 0; i < rep->cx_n; i++) free(rep->cx_tokens[i]);
    free(rep->cx_tokens);
    free(rep->cx_expected);
    free(rep->cx_got);
    free(rep->cx_culprit);
    memset(rep, 0, sizeof *rep);
}

/* ---- the input stream ---------------------------------------------------------------- */

/* Inputs come in check order, a batch at a time, from one producer under the pool's lock.
 * A sample is drawn in rounds of round_size inputs (the last one shorter), each sorted by
 * length (stably) so that a batch pads little: the first K inputs drawn, for any K that is a
 * whole number of rounds or the total, are what `--samples K` checks. */
typedef struct {
    const VerifyOptions *opt;
    int V, N, B;
    int exhaustive;
    long done, total;       /* inputs handed out; the sample's size (at most) */
    int len;                /* exhaustive: current length */
    int32_t cur[RASP_MAX_LEN];
    int started, ended;
    Rng rng;
    long round_size;        /* sample: inputs per round */
    long drawn;             /* sample: inputs drawn so far (whole rounds) */
    long rn, rat;           /* sample: the current round's size and how much of it is handed out */
    int32_t *round;         /* [round_size][N] tokens, their lengths, the order to check */
    int *rlen;
    long *rorder;
    double budget, t0;      /* time budget (0: none), start of the check */
    int budget_cut;         /* the budget ended the sample before `total` */
} Inputs;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Draw the next round of the sample; 0 when the sample is complete. */
static int draw_round(Inputs *in)
{
    if (in->drawn >= in->total) return 0;
    /* the budget: no round starts once it is spent, unless the minimum is not reached */
    if (in->budget > 0 && in->drawn >= VERIFY_MIN_SAMPLES && now_s() - in->t0 >= in->budget) {
        in->budget_cut = 1;
        return 0;
    }
    long R = in->total - in->drawn < in->round_size ? in->total - in->drawn : in->round_size;
    int N = in->N;
    long *count = xcalloc((size_t)N + 2, sizeof(long));
    for (long k = 0; k < R; k++) {
        int len = 1 + (int)rng_below(&in->rng, (uint32_t)N);
        in->rlen[k] = len;
        for (int i = 0; i < len; i++) in->round[(size_t)k * N + i] = (int32_t)rng_below(&in->rng, (uint32_t)in->V);
        count[len + 1]++;
    }
    for (int len = 1; len <= N + 1; len++) count[len] += count[len - 1];
    for (long k = 0; k < R; k++) in->rorder[count[in->rlen[k]]++] = k;
    free(count);
    in->rn = R;
    in->rat = 0;
    in->drawn += R;
    return 1;
}

/* Next input into out (n tokens); 0 at the end. */
static int next_input(Inputs *in, int32_t *out, int *n)
{
    const VerifyOptions *o = in->opt;
    if (in->ended) return 0;
    if (o->ninputs > 0) {
        if (in->done >= o->ninputs) return 0;
        *n = o->lens[in->done];
        memcpy(out, o->inputs[in->done], sizeof(int32_t) * (size_t)*n);
        in->done++;
        return 1;
    }
    if (!in->exhaustive) {
        if (in->rat >= in->rn && !draw_round(in)) return 0;
        long k = in->rorder[in->rat++];
        *n = in->rlen[k];
        memcpy(out, in->round + (size_t)k * in->N, sizeof(int32_t) * (size_t)*n);
        in->done++;
        return 1;
    }
    /* lexicographic within each length, lengths ascending */
    if (!in->started) {
        in->started = 1;
        in->len = 1;
        memset(in->cur, 0, sizeof in->cur);
    } else {
        int i = in->len - 1;
        while (i >= 0 && in->cur[i] == in->V - 1) in->cur[i--] = 0;
        if (i < 0) {
            if (++in->len > in->N) {
                in->ended = 1;
                return 0;
            }
            memset(in->cur, 0, sizeof(int32_t) * (size_t)in->len);
        } else {
            in->cur[i]++;
        }
    }
    *n = in->len;
    memcpy(out, in->cur, sizeof(int32_t) * (size_t)in->len);
    in->done++;
    return 1;
}

/* The next batch (at most B inputs, never across a round of the sample); 0 inputs at the end. */
static int next_batch(Inputs *in, int32_t *toks, int *ns)
{
    int nb = 0;
    while (nb < in->B) {
        if (!in->exhaustive && in->opt->ninputs == 0 && nb > 0 && in->rat >= in->rn) break;
        if (!next_input(in, toks + (size_t)nb * in->N, &ns[nb])) break;
        nb++;
    }
    return nb;
}

/* ---- diagnosis of a failing input ------------------------------------------------------- */

static int find_sop(const RaspProgram *p, const char *label)
{
    for (int i = 0; i < p->nsops; i++)
        if (!strcmp(p->sops[i].label, label)) return i;
    return -1;
}

static void diagnose(const Model *m, const RaspProgram *p, const int32_t *rows, const int32_t *toks,
                     int n, VerifyReport *rep)
{
    Interp *it = interp_new(p, 1);
    if (interp_eval(it, toks, n)) {
        interp_free(it);
        return;
    }
    FwdState st;
    fwd_init(&st);
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    fo.record_resid = 1;
    int len = n + 1;
    StrBuf err;
    sb_init(&err);
    if (fwd_forward(&st, m, rows, &len, 1, n + 1, &fo, &err)) goto done;
    DecLayout dl;
    dec_layout_init(&dl, m);
    /* the s-ops the model writes, in the order it writes them */
    int *order = xmalloc(sizeof(int) * (size_t)(dl.nsops + 1));
    int nw = dec_written_order(&dl, order);
    int C = m->cfg.d_model;
    for (int i = 0; i < nw && !rep->cx_culprit; i++) {
        const DecSop *ds = &dl.sops[order[i]];
        int sop = find_sop(p, ds->name);
        const float *res = fwd_resid_stage(&st, ds->stage);
        if (sop < 0 || !res) continue;
        const RaspSop *s = &p->sops[sop];
        const int32_t *ref = interp_values(it, sop);
        if (!ref) continue;
        for (int pos = 0; pos < n && !rep->cx_culprit; pos++) {
            if (ref[pos] == RASP_NONE) continue;
            const float *row = res + (size_t)(pos + 1) * C;
            if (dec_sop_agrees(ds, row, s->vals[ref[pos]])) continue;
            char *want, *got;
            if (ds->categorical) {
                int k = dec_categorical(ds, row);
                want = value_text(s->vals[ref[pos]]);
                got = xstrdup(k < 0 ? "None" : ds->values[k]);
            } else {
                want = float_text(val_is_number(s->vals[ref[pos]]) ? val_as_double(s->vals[ref[pos]]) : 0);
                got = float_text(dec_numerical(ds, row));
            }
            char where[48];
            if (json_array_size(m->layers) > 0) dec_stage_name(ds->stage, where, sizeof where);
            else snprintf(where, sizeof where, "the final residual");
            StrBuf b;
            sb_init(&b);
            sb_printf(&b, "s-op '%s' (%s) at position %d: expected %s, got %s", s->label, where, pos, want, got);
            rep->cx_culprit = sb_steal(&b);
            sb_free(&b);
            free(want);
            free(got);
        }
    }
    free(order);
    dec_layout_free(&dl);
done:
    sb_free(&err);
    fwd_free(&st);
    interp_free(it);
}

/* ---- the check ---------------------------------------------------------------------------- */

/* What one batch found: counts up to and including its first failing input. */
typedef struct {
    int ran;
    long inputs, positions, agree, dontcare;
    int fail_n, fail_pos;   /* the first failing input (fail_n tokens, > 0 when there is one) */
    int32_t *fail_toks;
    char *want, *got;
    char *error;            /* the batch could not run */
} BatchResult;

/* The state the workers share; everything below `lock` is guarded by it. */
typedef struct {
    const Model *m;
    const RaspProgram *p;
    const int32_t *row_of;
    int N, B;
    pthread_mutex_t lock;
    Inputs in;
    long next;              /* index of the next batch to hand out */
    int stop;               /* a disagreement or an error: hand out no more batches */
    BatchResult *res;       /* [cap] by batch index */
    long cap;
} Pool;

/* One worker's buffers. */
typedef struct {
    Pool *pool;
    int32_t *toks, *expect, *rows;
    int *lens, *ns;
    Interp *it;
    FwdState st;
} Worker;

/* Run one batch (inputs in w->toks / w->ns) and fill r. */
static void run_batch(Worker *w, int nb, BatchResult *r)
{
    const Pool *pl = w->pool;
    const Model *m = pl->m;
    const RaspProgram *p = pl->p;
    const RaspSop *out = &p->sops[p->output];
    int N = pl->N;
    StrBuf err;
    sb_init(&err);
    for (int b = 0; b < nb; b++) {
        if (interp_eval(w->it, w->toks + (size_t)b * N, w->ns[b])) {
            sb_printf(&err, "the interpreter failed: %s", interp_error(w->it));
            r->error = sb_steal(&err);
            sb_free(&err);
            return;
        }
        memcpy(w->expect + (size_t)b * N, interp_values(w->it, p->output), sizeof(int32_t) * (size_t)w->ns[b]);
    }
    int tmax = dec_pack_batch(m, pl->row_of, w->toks, (size_t)N, w->ns, nb, w->rows, w->lens);
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    if (fwd_forward(&w->st, m, w->rows, w->lens, nb, tmax, &fo, &err)) {
        r->error = sb_steal(&err);
        sb_free(&err);
        return;
    }
    sb_free(&err);
    for (int b = 0; b < nb && !r->fail_n; b++) {
        int n = w->ns[b];
        for (int i = 0; i < n; i++) {
            int32_t e = w->expect[(size_t)b * N + i];
            const float *lg = w->st.logits + ((size_t)b * tmax + (size_t)i + 1) * (size_t)m->cfg.d_vocab_out;
            r->positions++;
            if (e == RASP_NONE) {
                r->dontcare++;
                continue;
            }
            /* the output as every command judges it (runtime/decode.h): categorical,
             * no value unless the top logit is above DEC_NONE_BELOW */
            if (dec_output_agrees(m, lg, out->vals[e])) {
                r->agree++;
                continue;
            }
            if (!r->fail_n) {
                r->fail_n = n;
                r->fail_pos = i;
                r->fail_toks = xmalloc(sizeof(int32_t) * (size_t)n);
                memcpy(r->fail_toks, w->toks + (size_t)b * N, sizeof(int32_t) * (size_t)n);
                if (m->output_numerical) {
                    r->want = float_text(val_is_number(out->vals[e]) ? val_as_double(out->vals[e]) : 0);
                    r->got = float_text(lg[0]);
                } else {
                    int col = dec_output_column(m, lg);
                    r->want = value_text(out->vals[e]);
                    r->got = value_text(col < 0 ? val_none() : m->output_values[col]);
                }
            }
        }
        r->inputs++;
    }
    r->ran = 1;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    Pool *pl = w->pool;
    pthread_mutex_lock(&pl->lock);
    while (!pl->stop) {
        int nb = next_batch(&pl->in, w->toks, w->ns);
        if (nb == 0) {
            pl->stop = 1;
            break;
        }
        long k = pl->next++;
        if (k >= pl->cap) {
            long cap = pl->cap ? 2 * pl->cap : 64;
            while (cap <= k) cap *= 2;
            pl->res = xrealloc(pl->res, sizeof(BatchResult) * (size_t)cap);
            memset(pl->res + pl->cap, 0, sizeof(BatchResult) * (size_t)(cap - pl->cap));
            pl->cap = cap;
        }
        pthread_mutex_unlock(&pl->lock);
        BatchResult r;
        memset(&r, 0, sizeof r);
        run_batch(w, nb, &r);
        pthread_mutex_lock(&pl->lock);
        pl->res[k] = r;
        /* every batch before k was handed out already and will finish: the first failure
         * in check order is among them or this one */
        if (r.fail_n || r.error) pl->stop = 1;
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

static void worker_init(Worker *w, Pool *pl)
{
    memset(w, 0, sizeof *w);
    w->pool = pl;
    size_t B = (size_t)pl->B, N = (size_t)pl->N;
    w->toks = xmalloc(sizeof(int32_t) * B * N);
    w->expect = xmalloc(sizeof(int32_t) * B * N);
    w->rows = xmalloc(sizeof(int32_t) * B * (N + 1));
    w->lens = xmalloc(sizeof(int) * B);
    w->ns = xmalloc(sizeof(int) * B);
    w->it = interp_new(pl->p, 0);
    fwd_init(&w->st);
}

static void worker_free(Worker *w)
{
    free(w->toks);
    free(w->expect);
    free(w->rows);
    free(w->lens);
    free(w->ns);
    interp_free(w->it);
    fwd_free(&w->st);
}

/* Sequences per batch: opt->batch, fewer when the batch's residual and logits would pass
 * VERIFY_BATCH_FLOATS (a batch of 256 at max_len 1024 would hold gigabytes). It depends only on
 * the model and N, so the batches, and what a batch finds, do not depend on the threads. */
static int batch_size(const Model *m, int want, int N)
{
    size_t per = (size_t)(N + 1) * ((size_t)m->cfg.d_model + (size_t)m->cfg.d_vocab_out);
    size_t fit = VERIFY_BATCH_FLOATS / (per ? per : 1);
    int B = want > 0 ? want : 256;
    if ((size_t)B > fit) B = fit < 1 ? 1 : (int)fit;
    return B;
}

int verify_model(const Model *m, const RaspProgram *p, const VerifyOptions *opt, VerifyReport *rep,
                 StrBuf *err)
{
    VerifyOptions def = VERIFY_OPTIONS_DEFAULT;
    if (!opt) opt = &def;
    memset(rep, 0, sizeof *rep);
    const RaspSop *out = &p->sops[p->output];
    int N = opt->max_n > 0 && opt->max_n < p->max_len ? opt->max_n : p->max_len;
    if (N > m->cfg.n_ctx - 1)
        return sb_fail(err, "the model takes inputs of at most %d tokens, the program %d", m->cfg.n_ctx - 1, N);
    if ((out->enc == ENC_NUMERICAL) != (m->output_numerical != 0)) {
        sb_printf(err, "the model's output is %s, the program's '%s' is %s",
                  m->output_numerical ? "numerical" : "categorical", out->label,
                  out->enc == ENC_NUMERICAL ? "numerical" : "categorical");
        return -1;
    }
    for (long k = 0; k < opt->ninputs; k++)
        if (opt->lens[k] < 1 || opt->lens[k] > N)
            return sb_fail(err, "input %ld has %d tokens, outside 1..%d", k + 1, opt->lens[k], N);
    /* program vocab index -> W_E row */
    int V = p->nvocab;
    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)(V ? V : 1));
    if (dec_vocab_rows(m, p->vocab, V, row_of, err)) {
        free(row_of);
        return -1;
    }
    Pool pl;
    memset(&pl, 0, sizeof pl);
    pl.m = m;
    pl.p = p;
    pl.row_of = row_of;
    pl.N = N;
    pl.B = batch_size(m, opt->batch, N);
    Inputs *in = &pl.in;
    in->opt = opt;
    in->V = V;
    in->N = N;
    in->B = pl.B;
    double total = 0, pw = 1;
    for (int n = 1; n <= N && total <= 1e18; n++) {
        pw *= V;
        total += pw;
    }
    in->exhaustive = opt->ninputs == 0 &&
                     (opt->mode == VERIFY_EXHAUSTIVE || (opt->mode == VERIFY_AUTO && total <= opt->limit));
    if (in->exhaustive && total > 1e9) {
        sb_printf(err, "an exhaustive check would run %.3g inputs; use a sample", total);
        free(row_of);
        return -1;
    }
    int sampling = !in->exhaustive && opt->ninputs == 0;
    in->total = opt->samples > 0 ? opt->samples : 10000;
    in->round_size = (long)VERIFY_ROUND_BATCHES * pl.B;
    if (sampling) {
        long R = in->total < in->round_size ? in->total : in->round_size;
        in->round = xmalloc(sizeof(int32_t) * (size_t)R * (size_t)N);
        in->rlen = xmalloc(sizeof(int) * (size_t)R);
        in->rorder = xmalloc(sizeof(long) * (size_t)R);
    }
    in->budget = sampling && opt->seconds > 0 ? opt->seconds : 0;
    in->t0 = now_s();
    rng_seed(&in->rng, opt->seed);
    rep->exhaustive = in->exhaustive;
    rep->max_n = N;
    rep->seed = opt->seed;
    rep->budget = in->budget;

    /* Parallelism comes from the workers; BLAS inside a batch stays on its thread, so a
     * batch's numbers never depend on how many threads either would use. */
    int saved_blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int nt = opt->threads;
    if (nt < 1) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        nt = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    }
    if (nt > VERIFY_MAX_THREADS) nt = VERIFY_MAX_THREADS;
    Worker *w = xcalloc((size_t)nt, sizeof(Worker));
    pthread_t th[VERIFY_MAX_THREADS];
    int started[VERIFY_MAX_THREADS] = {0};
    pthread_mutex_init(&pl.lock, NULL);
    for (int i = 0; i < nt; i++) worker_init(&w[i], &pl);
    for (int i = 1; i < nt; i++) started[i] = pthread_create(&th[i], NULL, worker_main, &w[i]) == 0;
    worker_main(&w[0]);
    for (int i = 1; i < nt; i++)
        if (started[i]) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&pl.lock);
    openblas_set_num_threads(saved_blas);

    /* the results in check order, up to the first failure */
    int rc = 0;
    long k;
    for (k = 0; k < pl.next; k++) {
        BatchResult *r = &pl.res[k];
        if (r->error) {
            sb_printf(err, "%s", r->error);
            rc = -1;
            break;
        }
        rep->inputs += r->inputs;
        rep->positions += r->positions;
        rep->agree += r->agree;
        rep->dontcare += r->dontcare;
        if (r->fail_n) {
            rep->failed_inputs = 1;
            rep->cx_n = r->fail_n;
            rep->cx_tokens = xmalloc(sizeof(char *) * (size_t)r->fail_n);
            for (int i = 0; i < r->fail_n; i++) rep->cx_tokens[i] = value_text(p->vocab[r->fail_toks[i]]);
            rep->cx_pos = r->fail_pos;
            rep->cx_expected = r->want;
            rep->cx_got = r->got;
            r->want = r->got = NULL;
            int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)(N + 1));
            int len;
            dec_pack_batch(m, row_of, r->fail_toks, (size_t)N, &r->fail_n, 1, rows, &len);
            diagnose(m, p, rows, r->fail_toks, r->fail_n, rep);
            free(rows);
            break;
        }
    }
    rep->budget_cut = !rc && !rep->failed_inputs && in->budget_cut;
    rep->seconds = now_s() - in->t0;
    for (long j = 0; j < pl.cap; j++) {
        free(pl.res[j].fail_toks);
        free(pl.res[j].want);
        free(pl.res[j].got);
        free(pl.res[j].error);
    }
    free(pl.res);
    for (int i = 0; i < nt; i++) worker_free(&w[i]);
    free(w);
    free(in->round);
    free(in->rlen);
    free(in->rorder);
    free(row_of);
    return rc;
}

/* ---- the program inside a model ------------------------------------------------------- */

/* 1 if the program's vocab is the model's (rows 0..nvocab-1; BOS and PAD follow). */
static int same_vocab(const Model *m, const RaspProgram *p)
{
    if (p->nvocab != m->cfg.d_vocab - 2) return 0;
    for (int i = 0; i < p->nvocab; i++)
        if (!val_equal(p->vocab[i], m->vocab[i]) || p->vocab[i].kind != m->vocab[i].kind) return 0;
    return !strcmp(p->bos, m->vocab[m->bos].u.s) && !strcmp(p->pad, m->vocab[m->pad].u.s);
}

RaspProgram *verify_program_of(const Model *m, Diag *d, StrBuf *err)
{
    if (!m->program || !m->program[0]) {
        sb_printf(err, "the model carries no program (its `program` metadata is empty)");
        return NULL;
    }
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    /* the model's own context fixes max_len, and its attention direction causal */
    fo.max_len = m->cfg.n_ctx - 1;
    fo.causal = m->cfg.causal ? 1 : -1;
    /* The vocab: the program's own declaration, else the override the compiler recorded,
     * else one rebuilt from the model's rows; whichever gives the model's vocab. */
    StrBuf rebuilt;
    sb_init(&rebuilt);
    for (int i = 0; i < m->cfg.d_vocab - 2; i++) {
        if (i) sb_putc(&rebuilt, ',');
        val_format(m->vocab[i], &rebuilt);
    }
    json_t *o = json_is_object(m->compiler) ? json_object_get(m->compiler, "options") : NULL;
    json_t *v = o ? json_object_get(o, "vocab") : NULL;
    const char *tries[3] = {NULL, json_is_string(v) ? json_string_value(v) : rebuilt.s, rebuilt.s};
    RaspProgram *p = NULL;
    for (int t = 0; t < 3 && !p; t++) {
        if (t == 2 && tries[1] == tries[2]) break;
        fo.vocab = tries[t];
        Diag *dt = t == 0 ? d : diag_new();
        p = rasp_load_text("<model program>", m->program, strlen(m->program), &fo, dt);
        if (t) diag_free(dt);
        if (!p && t == 0) break;         /* the program itself does not load: report that */
        if (p && !same_vocab(m, p)) {
            rasp_free(p);
            p = NULL;
        }
    }
    if (!p && !diag_errors(d))
        sb_printf(err, "the model's program does not load with the model's vocab (%s)", rebuilt.s);
    sb_free(&rebuilt);
    return p;
}
