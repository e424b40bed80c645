/* probe.c — see probe.h. */
#include "analysis/probe.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/readout.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "compiler/interp/interp.h"
#include "runtime/forward.h"

void probe_result_free(ProbeResult *r)
{
    free(r->sop);
    free(r->st);
    memset(r, 0, sizeof *r);
}

/* lr of step t of S: peak, then a tenth from 50%, a hundredth from 75%, a thousandth from
 * 87.5% (the paper's probe schedule: 4K steps, decays at 2K, 3K, 3.5K). */
static double probe_lr(double peak, int t, int S)
{
    double lr = peak;
    if (2L * t >= S) lr *= 0.1;
    if (4L * t >= 3L * S) lr *= 0.1;
    if (8L * t >= 7L * S) lr *= 0.1;
    return lr;
}

/* Train softmax regression on (n, C) features x with labels y in 0..K-1; W (C, K), b (K)
 * out. Deterministic for a given rng. */
static void train_softmax(float *W, float *b, const float *x, const int *y, long n, int C, int K,
                          const ProbeOptions *o, Rng *rng)
{
    size_t P = (size_t)C * K + (size_t)K;
    float *m1 = xcalloc(P, sizeof(float)), *m2 = xcalloc(P, sizeof(float)), *g = xcalloc(P, sizeof(float));
    float *logit = xmalloc(sizeof(float) * (size_t)K);
    memset(W, 0, sizeof(float) * (size_t)C * K);
    memset(b, 0, sizeof(float) * (size_t)K);
    int B = o->batch > 0 ? o->batch : 128;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double p1 = 1, p2 = 1;
    for (int t = 0; t < o->steps; t++) {
        memset(g, 0, sizeof(float) * P);
        float *gW = g, *gb = g + (size_t)C * K;
        for (int e = 0; e < B; e++) {
            long i = (long)rng_below(rng, (uint32_t)n);
            const float *xi = x + (size_t)i * C;
            for (int k = 0; k < K; k++) logit[k] = b[k];
            for (int c = 0; c < C; c++) {
                float xv = xi[c];
                if (xv == 0) continue;
                const float *wr = W + (size_t)c * K;
                for (int k = 0; k < K; k++) logit[k] += xv * wr[k];
            }
            float mx = logit[0];
            for (int k = 1; k < K; k++) mx = fmaxf(mx, logit[k]);
            double sum = 0;
            for (int k = 0; k < K; k++) sum += (logit[k] = expf(logit[k] - mx));
            for (int k = 0; k < K; k++) logit[k] = (float)(logit[k] / sum) - (k == y[i]) ;
            for (int k = 0; k < K; k++) gb[k] += logit[k] / B;
            for (int c = 0; c < C; c++) {
                float xv = xi[c];
                if (xv == 0) continue;
                float *gr = gW + (size_t)c * K;
                for (int k = 0; k < K; k++) gr[k] += xv * logit[k] / B;
            }
        }
        double lr = probe_lr(o->lr, t, o->steps);
        p1 *= b1;
        p2 *= b2;
        for (size_t q = 0; q < P; q++) {
            m1[q] = (float)(b1 * m1[q] + (1 - b1) * g[q]);
            m2[q] = (float)(b2 * m2[q] + (1 - b2) * (double)g[q] * g[q]);
            double mh = m1[q] / (1 - p1), vh = m2[q] / (1 - p2);
            float *w = q < (size_t)C * K ? &W[q] : &b[q - (size_t)C * K];
            double upd = mh / (sqrt(vh) + eps);
            if (q < (size_t)C * K) upd += o->weight_decay * *w;   /* no decay on the bias */
            *w -= (float)(lr * upd);
        }
    }
    free(m1);
    free(m2);
    free(g);
    free(logit);
}

static double accuracy(const float *W, const float *b, const float *x, const int *y, long n, int C, int K)
{
    if (n == 0) return NAN;
    long ok = 0;
    for (long i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * C;
        int best = 0;
        float bv = -INFINITY;
        for (int k = 0; k < K; k++) {
            float v = b[k];
            for (int c = 0; c < C; c++) v += xi[c] * W[(size_t)c * K + k];
            if (v > bv) {
                bv = v;
                best = k;
            }
        }
        ok += y[i] >= 0 && best == y[i];
    }
    return (double)ok / n;
}

/* The s-op named `sop`, or -1 with a message listing the named ones. */
static int find_sop(const RaspProgram *p, const char *sop, StrBuf *err)
{
    for (int i = 0; i < p->nsops; i++)
        if (!strcmp(p->sops[i].label, sop)) return i;
    sb_printf(err, "the program has no s-op named '%s' (named s-ops:", sop);
    for (int i = 0; i < p->nsops; i++)
        if (p->sops[i].named) sb_printf(err, " %s", p->sops[i].label);
    sb_puts(err, ")");
    return -1;
}

/* Standardize (n, C) features in place with the statistics of their first ntrain rows
 * (constant dimensions become 0). */
static void standardize(float *x, long n, long ntrain, int C)
{
    for (int c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (long i = 0; i < ntrain; i++) s1 += x[(size_t)i * C + c];
        double mu = s1 / ntrain;
        for (long i = 0; i < ntrain; i++) {
            double d = x[(size_t)i * C + c] - mu;
            s2 += d * d;
        }
        double sdv = sqrt(s2 / ntrain);
        float mean = (float)mu, sd = sdv > 1e-6 ? (float)sdv : 0;
        for (long i = 0; i < n; i++) {
            float *q = &x[(size_t)i * C + c];
            *q = sd > 0 ? (*q - mean) / sd : 0;
        }
    }
}

/* The linear probes of s-op s on standardized features feat (S stages of N rows) and its
 * values val (N). */
static void fit_probes(ProbeResult *r, const RaspSop *s, const float *feat, const int32_t *val, long N, int S, int C,
                       const ProbeOptions *o)
{
    long ntr = o->train_n, nte = o->test_n;
    /* classes: the values seen in training (no value is a class of its own) */
    int nv = s->nvals + 1;
    int *cls = xmalloc(sizeof(int) * (size_t)nv);
    long *count = xcalloc((size_t)nv, sizeof(long));
    for (int v = 0; v < nv; v++) cls[v] = -1;
    int K = 0;
    for (long i = 0; i < ntr; i++) {
        int v = val[i] == RASP_NONE ? s->nvals : val[i];
        if (cls[v] < 0) cls[v] = K++;
        count[v]++;
    }
    int *y = xmalloc(sizeof(int) * (size_t)N);
    for (long i = 0; i < N; i++) y[i] = cls[val[i] == RASP_NONE ? s->nvals : val[i]];
    int maj = 0;
    for (int v = 1; v < nv; v++)
        if (count[v] > count[maj]) maj = v;
    long majok = 0;
    for (long i = ntr; i < N; i++) majok += y[i] == cls[maj];
    r->majority = (double)majok / nte;
    r->nclasses = K;
    float *W = xmalloc(sizeof(float) * (size_t)C * (size_t)(K ? K : 1)), *bb = xmalloc(sizeof(float) * (size_t)(K + 1));
    for (int stg = 0; stg < S; stg++) {
        ProbeStage *ps = &r->st[stg];
        if (o->steps <= 0 || K < 1) continue;
        const float *x = feat + (size_t)stg * N * C;
        Rng pr;
        rng_seed(&pr, o->seed * 1000003ULL + (uint64_t)stg + 17);
        train_softmax(W, bb, x, y, ntr, C, K, o, &pr);
        ps->linear_train = accuracy(W, bb, x, y, ntr, C, K);
        ps->linear_test = accuracy(W, bb, x + (size_t)ntr * C, y + ntr, nte, C, K);
    }
    free(W);
    free(bb);
    free(cls);
    free(count);
    free(y);
}

/* Sampled inputs in batches of up to B, packed for the forward pass, which records every
 * residual stage. */
typedef struct {
    int B, hi;
    int32_t *toks, *rows;   /* (B, hi) vocab indices; (B, hi + 1) model rows */
    int *lens, *ns;
    FwdState st;
    FwdOptions fo;
    Rng rng;
} Batches;

static void batches_init(Batches *b, uint64_t seed, int hi)
{
    b->B = 256;
    b->hi = hi;
    b->toks = xmalloc(sizeof(int32_t) * (size_t)b->B * (size_t)hi);
    b->rows = xmalloc(sizeof(int32_t) * (size_t)b->B * (size_t)(hi + 1));
    b->lens = xmalloc(sizeof(int) * (size_t)b->B);
    b->ns = xmalloc(sizeof(int) * (size_t)b->B);
    fwd_init(&b->st);
    b->fo = FWD_OPTIONS_DEFAULT;
    b->fo.record_resid = 1;
    rng_seed(&b->rng, seed);
}

static void batches_free(Batches *b)
{
    fwd_free(&b->st);
    free(b->toks);
    free(b->rows);
    free(b->lens);
    free(b->ns);
}

/* The sampled inputs' length range (o's, else the program's max_len), checked against the
 * model and --at, and the program's vocab -> model rows. Returns the rows (free them), or
 * NULL with a message. */
static int32_t *check_inputs(const Model *m, const RaspProgram *p, const ProbeOptions *o, int *lo, int *hi,
                             StrBuf *err)
{
    *lo = o->len_min > 0 ? o->len_min : p->max_len;
    *hi = o->len_max > 0 ? o->len_max : p->max_len;
    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)(p->nvocab + 1));
    int bad = 1;
    if (p->max_len > m->cfg.n_ctx - 1)
        sb_printf(err, "the program's max_len %d exceeds the model's %d", p->max_len, m->cfg.n_ctx - 1);
    else if (*lo < 1 || *hi < *lo || *hi > p->max_len)
        sb_printf(err, "input lengths %d-%d are outside 1..%d", *lo, *hi, p->max_len);
    else if (o->nat > 0 && o->at[0] >= *lo)
        sb_printf(err, "--at %d needs inputs of at least %d tokens, but --len allows %d", o->at[0], o->at[0] + 1, *lo);
    else if (o->train_n < 1 || o->test_n < 1)
        sb_printf(err, "the probe needs at least one training and one test input");
    else
        bad = ro_vocab_rows(m, p, row_of, err) != 0;
    if (bad) {
        free(row_of);
        return NULL;
    }
    return row_of;
}

int probe_run_many(const Model *m, const RaspProgram *p, const char *const *sops, int nsops, const ProbeOptions *o,
                   ProbeResult *res, StrBuf *err)
{
    ProbeOptions def = PROBE_OPTIONS_DEFAULT;
    if (!o) o = &def;
    memset(res, 0, sizeof *res * (size_t)(nsops > 0 ? nsops : 0));
    int *sid = xmalloc(sizeof(int) * (size_t)(nsops + 1));
    for (int k = 0; k < nsops; k++)
        if ((sid[k] = find_sop(p, sops[k], err)) < 0) {
            free(sid);
            return -1;
        }
    int lo, hi;
    int32_t *row_of = check_inputs(m, p, o, &lo, &hi, err);
    if (!row_of) {
        free(sid);
        return -1;
    }
    /* direct reads only make sense against the program the labels were made from */
    char hex[65];
    sha256_hex(p->source ? p->source : "", p->source ? strlen(p->source) : 0, hex);
    int own = !strcmp(hex, m->program_sha256);
    DecLayout dl;
    ro_layout_init(&dl, m);
    int L = m->cfg.n_layers, C = m->cfg.d_model, S = 1 + 2 * L;
    long N = o->train_n + o->test_n;
    const DecSop **ds = xmalloc(sizeof(DecSop *) * (size_t)(nsops + 1));
    for (int k = 0; k < nsops; k++) {
        ProbeResult *r = &res[k];
        ds[k] = own ? ro_find(&dl, &p->sops[sid[k]]) : NULL;
        r->sop = xstrdup(sops[k]);
        r->categorical = p->sops[sid[k]].enc == ENC_CATEGORICAL;
        r->own_program = own;
        r->direct_ok = ds[k] != NULL;
        r->isvirtual = ds[k] && ds[k]->isvirtual;
        r->written_stage = ds[k] ? ds[k]->stage : -1;
        r->nstages = S;
        r->st = xcalloc((size_t)S, sizeof *r->st);
    }
    /* One pass over the inputs for every s-op: the residual at each input's chosen position
     * after every stage (features), each s-op's value there, and its direct reads. */
    float *feat = xmalloc(sizeof(float) * (size_t)S * (size_t)N * (size_t)C);
    int32_t *val = xmalloc(sizeof(int32_t) * (size_t)nsops * (size_t)N + 1);
    long *direct_ok = xcalloc((size_t)nsops * (size_t)S + 1, sizeof(long));
    Interp *it = interp_new(p, 1);
    Batches bt;
    batches_init(&bt, o->seed, hi);
    int B = bt.B, *ns = bt.ns;
    int32_t *toks = bt.toks;
    Rng *rng = &bt.rng;
    int *pos = xmalloc(sizeof(int) * (size_t)B);
    int rc = 0;
    for (long done = 0; done < N && !rc;) {
        int nb = (int)(N - done < B ? N - done : B);
        for (int k = 0; k < nb; k++) {
            int32_t *tk = toks + (size_t)k * hi;
            ns[k] = ro_sample(rng, p->nvocab, lo, hi, tk);
            if (o->nat > 0) {
                int na = 0;
                while (na < o->nat && o->at[na] < ns[k]) na++;
                pos[k] = o->at[rng_below(rng, (uint32_t)na)];
            } else {
                pos[k] = (int)rng_below(rng, (uint32_t)ns[k]);
            }
            if (interp_eval(it, tk, ns[k])) {
                sb_printf(err, "the interpreter failed: %s", interp_error(it));
                rc = -1;
                break;
            }
            for (int q = 0; q < nsops; q++) {
                const int32_t *v = interp_values(it, sid[q]);
                val[(size_t)q * N + (size_t)(done + k)] = v ? v[pos[k]] : RASP_NONE;
            }
        }
        if (rc) break;
        int tmax = dec_pack_batch(m, row_of, toks, (size_t)hi, ns, nb, bt.rows, bt.lens);
        if (fwd_forward(&bt.st, m, bt.rows, bt.lens, nb, tmax, &bt.fo, err)) {
            rc = -1;
            break;
        }
        for (int stg = 0; stg < S; stg++) {
            const float *rs = fwd_resid_stage(&bt.st, stg);
            for (int k = 0; k < nb; k++) {
                const float *row = rs + ((size_t)k * tmax + (size_t)pos[k] + 1) * (size_t)C;
                memcpy(feat + ((size_t)stg * N + (size_t)(done + k)) * C, row, sizeof(float) * (size_t)C);
                if (done + k < o->train_n) continue;
                for (int q = 0; q < nsops; q++)
                    if (ds[q])
                        direct_ok[(size_t)q * S + stg] +=
                            ro_agrees(ds[q], &p->sops[sid[q]], row, val[(size_t)q * N + (size_t)(done + k)]);
            }
        }
        done += nb;
    }
    batches_free(&bt);
    interp_free(it);
    free(pos);
    free(row_of);
    if (!rc) {
        /* the features do not depend on the s-op: standardize them once */
        if (o->steps > 0)
            for (int stg = 0; stg < S; stg++) standardize(feat + (size_t)stg * N * C, N, o->train_n, C);
        for (int q = 0; q < nsops; q++) {
            ProbeResult *r = &res[q];
            r->n_train = o->train_n;
            r->n_test = o->test_n;
            for (int stg = 0; stg < S; stg++) {
                ProbeStage *ps = &r->st[stg];
                ps->stage = stg;
                dec_stage_name(stg, ps->where, sizeof ps->where);
                ps->direct = r->direct_ok ? (double)direct_ok[(size_t)q * S + stg] / o->test_n : NAN;
                ps->linear_train = ps->linear_test = NAN;
            }
            fit_probes(r, &p->sops[sid[q]], feat, val + (size_t)q * N, N, S, C, o);
        }
    } else {
        for (int q = 0; q < nsops; q++) probe_result_free(&res[q]);
    }
    free(feat);
    free(val);
    free(direct_ok);
    free(ds);
    free(sid);
    dec_layout_free(&dl);
    return rc;
}

int probe_run(const Model *m, const RaspProgram *p, const char *sop, const ProbeOptions *o, ProbeResult *r,
              StrBuf *err)
{
    return probe_run_many(m, p, &sop, 1, o, r, err);
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

json_t *probe_json(const ProbeResult *r)
{
    json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:b, s:I, s:I, s:i, s:o}", "sop", r->sop, "encoding",
                          r->categorical ? "categorical" : "numerical", "own_program", r->own_program, "direct_read",
                          r->direct_ok, "linear_form",
                          r->isvirtual, "train", (json_int_t)r->n_train, "test", (json_int_t)r->n_test, "classes",
                          r->nclasses, "majority", num(r->majority));
    char where[48];
    if (r->written_stage >= 0) {
        dec_stage_name(r->written_stage, where, sizeof where);
        json_object_set_new(o, "written_at", json_string(where));
    } else {
        json_object_set_new(o, "written_at", json_null());
    }
    json_t *a = json_array();
    for (int i = 0; i < r->nstages; i++) {
        const ProbeStage *s = &r->st[i];
        json_array_append_new(a, json_pack("{s:i, s:s, s:o, s:o, s:o}", "stage", s->stage, "where", s->where, "direct",
                                           num(s->direct), "linear_train", num(s->linear_train), "linear_test",
                                           num(s->linear_test)));
    }
    json_object_set_new(o, "stages", a);
    return o;
}

void probe_neurons_free(ProbeNeurons *r)
{
    free(r->fire);
    memset(r, 0, sizeof *r);
}

int probe_neurons(const Model *m, const RaspProgram *p, const ProbeOptions *o, ProbeNeurons *r, StrBuf *err)
{
    ProbeOptions def = PROBE_OPTIONS_DEFAULT;
    if (!o) o = &def;
    memset(r, 0, sizeof *r);
    int lo, hi;
    int32_t *row_of = check_inputs(m, p, o, &lo, &hi, err);
    if (!row_of) return -1;
    int L = m->cfg.n_layers, C = m->cfg.d_model, M = m->cfg.d_mlp;
    r->L = L;
    r->M = M;
    r->fire = xcalloc((size_t)L * (size_t)M + 1, sizeof(long));
    Batches bt;
    batches_init(&bt, o->seed, hi);
    int B = bt.B, *ns = bt.ns;
    /* only the counted rows (the --at indices, or every input position) go through W_in */
    size_t cap = (size_t)B * (size_t)hi;
    size_t *sel = xmalloc(sizeof(size_t) * (cap ? cap : 1));
    float *x = xmalloc(sizeof(float) * (cap ? cap : 1) * (size_t)(C > 0 ? C : 1));
    float *pre = xmalloc(sizeof(float) * (cap ? cap : 1) * (size_t)(M > 0 ? M : 1));
    int rc = 0;
    for (long done = 0; done < o->test_n && !rc;) {
        int nb = (int)(o->test_n - done < B ? o->test_n - done : B);
        for (int k = 0; k < nb; k++) ns[k] = ro_sample(&bt.rng, p->nvocab, lo, hi, bt.toks + (size_t)k * hi);
        int tmax = dec_pack_batch(m, row_of, bt.toks, (size_t)hi, ns, nb, bt.rows, bt.lens);
        if (fwd_forward(&bt.st, m, bt.rows, bt.lens, nb, tmax, &bt.fo, err)) {
            rc = -1;
            break;
        }
        size_t nsel = 0;
        for (int k = 0; k < nb; k++)
            for (int a = 0; a < (o->nat > 0 ? o->nat : ns[k]); a++) {
                int i = o->nat > 0 ? o->at[a] : a;
                if (i >= ns[k]) break;
                sel[nsel++] = (size_t)k * tmax + (size_t)i + 1;   /* +1: the BOS position */
            }
        r->n_examples += (long)nsel;
        for (int l = 0; l < L && nsel; l++) {
            /* the MLP's input is the residual after the block's attention (stage 2l+1) */
            const float *res = fwd_resid_stage(&bt.st, 2 * l + 1);
            for (size_t q = 0; q < nsel; q++) memcpy(x + q * C, res + sel[q] * C, sizeof(float) * (size_t)C);
            fwd_matmul(pre, x, m->params.W_in + (size_t)l * C * M, m->params.b_in + (size_t)l * M, (int)nsel, C, M, 0);
            long *f = r->fire + (size_t)l * M;
            for (size_t q = 0; q < nsel; q++) {
                const float *h = pre + q * M;
                for (int j = 0; j < M; j++) f[j] += h[j] > 0;
            }
        }
        done += nb;
    }
    r->n_inputs = o->test_n;
    batches_free(&bt);
    free(sel);
    free(x);
    free(pre);
    free(row_of);
    if (rc) probe_neurons_free(r);
    return rc;
}
