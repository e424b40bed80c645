/* verify.c — see verify.h. */
#include "compiler/back/verify.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct {
    const VerifyOptions *opt;
    int V, N;
    int exhaustive;
    long done, total;
    int len;                /* exhaustive: current length */
    int32_t cur[RASP_MAX_LEN];
    int started;
    Rng rng;
    int32_t *sample;        /* sampled inputs [total][N], their lengths, the order to check */
    int *slen;
    long *order;
} Inputs;

/* Next input into out (n tokens); 0 at the end. */
static int next_input(Inputs *in, int32_t *out, int *n)
{
    const VerifyOptions *o = in->opt;
    if (o->ninputs > 0) {
        if (in->done >= o->ninputs) return 0;
        *n = o->lens[in->done];
        memcpy(out, o->inputs[in->done], sizeof(int32_t) * (size_t)*n);
        in->done++;
        return 1;
    }
    if (!in->exhaustive) {
        /* the sample, drawn up front and ordered by length (stable), so that a batch pads
         * little: the order of checking does not change what is checked */
        if (!in->sample) {
            long T = in->total;
            in->sample = xmalloc(sizeof(int32_t) * (size_t)T * (size_t)in->N);
            in->slen = xmalloc(sizeof(int) * (size_t)T);
            in->order = xmalloc(sizeof(long) * (size_t)T);
            long *count = xcalloc((size_t)in->N + 2, sizeof(long));
            for (long k = 0; k < T; k++) {
                int len = 1 + (int)rng_below(&in->rng, (uint32_t)in->N);
                in->slen[k] = len;
                for (int i = 0; i < len; i++)
                    in->sample[(size_t)k * in->N + i] = (int32_t)rng_below(&in->rng, (uint32_t)in->V);
                count[len + 1]++;
            }
            for (int len = 1; len <= in->N + 1; len++) count[len] += count[len - 1];
            for (long k = 0; k < T; k++) in->order[count[in->slen[k]]++] = k;
            free(count);
        }
        if (in->done >= in->total) return 0;
        long k = in->order[in->done++];
        *n = in->slen[k];
        memcpy(out, in->sample + (size_t)k * in->N, sizeof(int32_t) * (size_t)*n);
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
            if (++in->len > in->N) return 0;
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

int verify_model(const Model *m, const RaspProgram *p, const VerifyOptions *opt, VerifyReport *rep,
                 StrBuf *err)
{
    VerifyOptions def = VERIFY_OPTIONS_DEFAULT;
    if (!opt) opt = &def;
    memset(rep, 0, sizeof *rep);
    const RaspSop *out = &p->sops[p->output];
    int N = opt->max_n > 0 && opt->max_n < p->max_len ? opt->max_n : p->max_len;
    if (N > m->cfg.n_ctx - 1) {
        sb_printf(err, "the model takes inputs of at most %d tokens, the program %d", m->cfg.n_ctx - 1, N);
        return -1;
    }
    if ((out->enc == ENC_NUMERICAL) != (m->output_numerical != 0)) {
        sb_printf(err, "the model's output is %s, the program's '%s' is %s",
                  m->output_numerical ? "numerical" : "categorical", out->label,
                  out->enc == ENC_NUMERICAL ? "numerical" : "categorical");
        return -1;
    }
    /* program vocab index -> W_E row */
    int V = p->nvocab;
    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)(V ? V : 1));
    if (dec_vocab_rows(m, p->vocab, V, row_of, err)) {
        free(row_of);
        return -1;
    }
    Inputs in;
    memset(&in, 0, sizeof in);
    in.opt = opt;
    in.V = V;
    in.N = N;
    double total = 0, pw = 1;
    for (int n = 1; n <= N && total <= 1e18; n++) {
        pw *= V;
        total += pw;
    }
    in.exhaustive = opt->ninputs == 0 &&
                    (opt->mode == VERIFY_EXHAUSTIVE || (opt->mode == VERIFY_AUTO && total <= opt->limit));
    if (in.exhaustive && total > 1e9) {
        sb_printf(err, "an exhaustive check would run %.3g inputs; use a sample", total);
        free(row_of);
        return -1;
    }
    in.total = opt->samples > 0 ? opt->samples : 10000;
    rng_seed(&in.rng, opt->seed);
    rep->exhaustive = in.exhaustive;
    rep->max_n = N;

    int B = opt->batch > 0 ? opt->batch : 256;
    int T = N + 1;
    int32_t *toks = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)N);
    int32_t *expect = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)N);
    int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    int *lens = xmalloc(sizeof(int) * (size_t)B);
    int *ns = xmalloc(sizeof(int) * (size_t)B);
    Interp *it = interp_new(p, 0);
    FwdState st;
    fwd_init(&st);
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    int rc = 0, more = 1;
    while (more && !rc) {
        int nb = 0;
        while (nb < B) {
            int n;
            if (!next_input(&in, toks + (size_t)nb * N, &n)) {
                more = 0;
                break;
            }
            if (n < 1 || n > N) {
                sb_printf(err, "input %ld has %d tokens, outside 1..%d", in.done, n, N);
                rc = -1;
                break;
            }
            if (interp_eval(it, toks + (size_t)nb * N, n)) {
                sb_printf(err, "the interpreter failed: %s", interp_error(it));
                rc = -1;
                break;
            }
            memcpy(expect + (size_t)nb * N, interp_values(it, p->output), sizeof(int32_t) * (size_t)n);
            ns[nb] = n;
            nb++;
        }
        if (rc || nb == 0) break;
        int tmax = dec_pack_batch(m, row_of, toks, (size_t)N, ns, nb, rows, lens);
        if (fwd_forward(&st, m, rows, lens, nb, tmax, &fo, err)) {
            rc = -1;
            break;
        }
        for (int b = 0; b < nb; b++) {
            int bad_here = 0;
            for (int i = 0; i < ns[b]; i++) {
                int32_t e = expect[(size_t)b * N + i];
                const float *lg = st.logits + ((size_t)b * tmax + (size_t)i + 1) * (size_t)m->cfg.d_vocab_out;
                rep->positions++;
                if (e == RASP_NONE) {
                    rep->dontcare++;
                    continue;
                }
                /* the output as every command judges it (runtime/decode.h): categorical,
                 * no value unless the top logit is above DEC_NONE_BELOW */
                int ok = dec_output_agrees(m, lg, out->vals[e]);
                char *want = NULL, *got = NULL;
                if (!ok && !rep->failed_inputs && !bad_here) {
                    if (m->output_numerical) {
                        want = float_text(val_is_number(out->vals[e]) ? val_as_double(out->vals[e]) : 0);
                        got = float_text(lg[0]);
                    } else {
                        int col = dec_output_column(m, lg);
                        want = value_text(out->vals[e]);
                        got = value_text(col < 0 ? val_none() : m->output_values[col]);
                    }
                }
                if (ok) {
                    rep->agree++;
                    continue;
                }
                if (want) {
                    rep->cx_n = ns[b];
                    rep->cx_tokens = xmalloc(sizeof(char *) * (size_t)ns[b]);
                    for (int k = 0; k < ns[b]; k++) rep->cx_tokens[k] = value_text(p->vocab[toks[(size_t)b * N + k]]);
                    rep->cx_pos = i;
                    rep->cx_expected = want;
                    rep->cx_got = got;
                    diagnose(m, p, rows + (size_t)b * tmax, toks + (size_t)b * N, ns[b], rep);
                }
                bad_here = 1;
            }
            rep->inputs++;
            if (bad_here) rep->failed_inputs++;
        }
    }
    fwd_free(&st);
    interp_free(it);
    free(in.sample);
    free(in.slen);
    free(in.order);
    free(toks);
    free(expect);
    free(rows);
    free(lens);
    free(ns);
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
