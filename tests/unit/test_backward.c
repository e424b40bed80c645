/* test_backward.c — the training pass: every backward kernel against central finite
 * differences computed in double (on a double-precision re-implementation of its forward),
 * BLAS kernels against their naive references, and the whole loss of small random models
 * (causal and not, padded batches, several heads, the rows-only last block and the full
 * one, categorical and numerical outputs) against finite differences of an independent
 * double-precision forward pass. Also: the trainer's forward equals the runtime's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "runtime/forward.h"
#include "runtime/model.h"
#include "train/backward.h"

/* ---------------------------------------------------------------- helpers */

static void fill(float *x, size_t n, Rng *r, double s)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * rng_normal(r));
}

static double *to_double(const float *x, size_t n)
{
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* |analytic - numeric| <= tol * max(1, |numeric|) for every entry. */
static void expect_close(const char *what, const float *analytic, const double *numeric, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)analytic[i] - numeric[i]);
        if (!(d <= tol * fmax(1.0, fabs(numeric[i]))))
            fail_msg("%s[%zu]: analytic %.8g, finite differences %.8g", what, i, (double)analytic[i], numeric[i]);
    }
}

static void expect_close_f(const char *what, const float *a, const float *b, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= tol * fmax(1.0, fabs((double)b[i]))))
            fail_msg("%s[%zu]: %.8g vs %.8g", what, i, (double)a[i], (double)b[i]);
    }
}

#define EPS 1e-6

/* Central differences of f (a function of the double vector x) for every entry of x. */
typedef double (*Fn)(const double *x, void *ctx);

static double *numeric_grad(Fn f, double *x, size_t n, void *ctx)
{
    double *g = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + EPS;
        double lp = f(x, ctx);
        x[i] = keep - EPS;
        double lm = f(x, ctx);
        x[i] = keep;
        g[i] = (lp - lm) / (2 * EPS);
    }
    return g;
}

/* ---------------------------------------------------------------- matmul */

typedef struct {
    int M, K, N, which;     /* which: 0 inp, 1 weight, 2 bias */
    const double *inp, *w, *b, *G;
} MmCtx;

/* L = sum(out * G), out = inp . w + b, with one of the operands replaced by x. */
static double mm_loss(const double *x, void *vctx)
{
    MmCtx *c = vctx;
    const double *inp = c->which == 0 ? x : c->inp, *w = c->which == 1 ? x : c->w, *b = c->which == 2 ? x : c->b;
    double L = 0;
    for (int i = 0; i < c->M; i++)
        for (int j = 0; j < c->N; j++) {
            double o = b[j];
            for (int k = 0; k < c->K; k++) o += inp[i * c->K + k] * w[k * c->N + j];
            L += o * c->G[i * c->N + j];
        }
    return L;
}

static void test_bwd_matmul_matches_finite_differences_and_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 1);
    int M = 7, K = 5, N = 4;
    float inp[35], w[20], b[4], G[28];
    fill(inp, 35, &r, 1);
    fill(w, 20, &r, 1);
    fill(b, 4, &r, 1);
    fill(G, 28, &r, 1);
    float dinp[35] = {0}, dw[20] = {0}, db[4] = {0}, ninp[35] = {0}, nw[20] = {0}, nb[4] = {0};
    bwd_matmul(dinp, dw, db, G, inp, w, M, K, N);
    bwd_matmul_naive(ninp, nw, nb, G, inp, w, M, K, N);
    expect_close_f("dinp blas vs naive", dinp, ninp, 35, 1e-5);
    expect_close_f("dweight blas vs naive", dw, nw, 20, 1e-5);
    expect_close_f("dbias blas vs naive", db, nb, 4, 1e-5);
    double *di = to_double(inp, 35), *dwd = to_double(w, 20), *dbd = to_double(b, 4), *dG = to_double(G, 28);
    MmCtx c = {M, K, N, 0, di, dwd, dbd, dG};
    double *g = numeric_grad(mm_loss, di, 35, &c);
    expect_close("dinp", dinp, g, 35, 1e-5);
    free(g);
    c.which = 1;
    g = numeric_grad(mm_loss, dwd, 20, &c);
    expect_close("dweight", dw, g, 20, 1e-5);
    free(g);
    c.which = 2;
    g = numeric_grad(mm_loss, dbd, 4, &c);
    expect_close("dbias", db, g, 4, 1e-5);
    free(g);
    /* gradients accumulate, and NULL outputs are skipped */
    bwd_matmul(dinp, NULL, NULL, G, inp, w, M, K, N);
    for (int i = 0; i < 35; i++) assert_true(fabsf(dinp[i] - 2 * ninp[i]) <= 1e-4f * fmaxf(1, fabsf(ninp[i])));
    free(di);
    free(dwd);
    free(dbd);
    free(dG);
}

/* ---------------------------------------------------------------- embedding, relu */

static void test_bwd_embed_adds_rows_at_tokens_and_positions(void **state)
{
    (void)state;
    int B = 2, T = 3, C = 2;
    int32_t tokens[6] = {3, 0, 1, 3, 1, 2};
    int lens[2] = {3, 2};   /* the last position of sequence 1 is padding */
    float dout[12];
    for (int i = 0; i < 12; i++) dout[i] = (float)(i + 1);
    float dW_E[8] = {0}, dW_pos[6] = {0};
    bwd_embed(dW_E, dW_pos, dout, tokens, lens, B, T, C);
    /* token 3 at (0,0) and (1,0): rows 1..2 and 7..8 */
    assert_true(dW_E[6] == 1 + 7 && dW_E[7] == 2 + 8);
    assert_true(dW_E[2] == 5 + 9 && dW_E[3] == 6 + 10);   /* token 1 at (0,2) and (1,1) */
    assert_true(dW_E[0] == 3 && dW_E[1] == 4);            /* token 0 at (0,1) */
    assert_true(dW_E[4] == 0 && dW_E[5] == 0);            /* token 2 only in padding */
    assert_true(dW_pos[0] == 8 && dW_pos[2] == 3 + 9 && dW_pos[4] == 5);
}

static void test_bwd_relu_passes_gradient_where_active(void **state)
{
    (void)state;
    float out[4] = {0, 2, 0, 0.5f}, dout[4] = {1, 2, 3, 4}, din[4];
    bwd_relu(din, dout, out, 4);
    assert_true(din[0] == 0 && din[1] == 2 && din[2] == 0 && din[3] == 4);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    int B, T, HD, causal, which;   /* which: 0 q, 1 k, 2 v */
    const int *lens;
    double scale;
    const double *q, *k, *v, *G;
} AttCtx;

static double att_loss(const double *x, void *vctx)
{
    AttCtx *c = vctx;
    const double *q = c->which == 0 ? x : c->q, *k = c->which == 1 ? x : c->k, *v = c->which == 2 ? x : c->v;
    int T = c->T, HD = c->HD;
    double L = 0, s[64];
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->lens[b]; i++) {
            int nk = c->causal ? i + 1 : c->lens[b];
            double mx = -1e300, sum = 0;
            for (int j = 0; j < nk; j++) {
                double d = 0;
                for (int e = 0; e < HD; e++) d += q[(b * T + i) * HD + e] * k[(b * T + j) * HD + e];
                s[j] = c->scale * d;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < nk; j++) sum += s[j] = exp(s[j] - mx);
            for (int e = 0; e < HD; e++) {
                double z = 0;
                for (int j = 0; j < nk; j++) z += s[j] / sum * v[(b * T + j) * HD + e];
                L += z * c->G[(b * T + i) * HD + e];
            }
        }
    return L;
}

static void check_attention(int causal)
{
    Rng r;
    rng_seed(&r, 2 + causal);
    int B = 3, T = 5, HD = 3;
    int lens[3] = {5, 3, 1};
    size_t n = (size_t)B * T * HD;
    float q[45], k[45], v[45], G[45], z[45], pat[75], scratch[25];
    fill(q, n, &r, 1);
    fill(k, n, &r, 1);
    fill(v, n, &r, 1);
    fill(G, n, &r, 1);
    /* padding rows carry no gradient into the pass (nothing reads them) */
    for (int b = 0; b < B; b++)
        for (int i = lens[b]; i < T; i++)
            for (int e = 0; e < HD; e++) G[(b * T + i) * HD + e] = 0;
    float scale = 0.7f;
    fwd_attention(z, pat, q, k, v, lens, B, T, HD, scale, causal, 0);
    float dq[45] = {0}, dk[45] = {0}, dv[45] = {0}, nq[45] = {0}, nk[45] = {0}, nv[45] = {0};
    bwd_attention(dq, dk, dv, scratch, G, pat, q, k, v, lens, B, T, HD, scale);
    bwd_attention_naive(nq, nk, nv, scratch, G, pat, q, k, v, lens, B, T, HD, scale);
    expect_close_f("dq blas vs naive", dq, nq, n, 1e-5);
    expect_close_f("dk blas vs naive", dk, nk, n, 1e-5);
    expect_close_f("dv blas vs naive", dv, nv, n, 1e-5);
    double *dqd = to_double(q, n), *dkd = to_double(k, n), *dvd = to_double(v, n), *dG = to_double(G, n);
    AttCtx c = {B, T, HD, causal, 0, lens, scale, dqd, dkd, dvd, dG};
    double *g = numeric_grad(att_loss, dqd, n, &c);
    expect_close("dq", dq, g, n, 1e-4);
    free(g);
    c.which = 1;
    g = numeric_grad(att_loss, dkd, n, &c);
    expect_close("dk", dk, g, n, 1e-4);
    free(g);
    c.which = 2;
    g = numeric_grad(att_loss, dvd, n, &c);
    expect_close("dv", dv, g, n, 1e-4);
    free(g);
    free(dqd);
    free(dkd);
    free(dvd);
    free(dG);
}

static void test_bwd_attention_matches_finite_differences(void **state)
{
    (void)state;
    check_attention(0);
}

static void test_bwd_attention_causal_matches_finite_differences(void **state)
{
    (void)state;
    check_attention(1);
}

/* The rows-only attention through the residual: its forward equals fwd_attention with keys
 * and values formed from the residual, and its backward matches finite differences. */
typedef struct {
    int B, T, C, R, causal, which;   /* which: 0 qt, 1 c, 2 x */
    const int *lens, *seq, *pos;
    double scale;
    const double *qt, *c, *x, *G;
} RowCtx;

static double rows_loss(const double *v, void *vctx)
{
    RowCtx *k = vctx;
    const double *qt = k->which == 0 ? v : k->qt, *c = k->which == 1 ? v : k->c, *x = k->which == 2 ? v : k->x;
    int T = k->T, C = k->C;
    double L = 0, s[64];
    for (int r = 0; r < k->R; r++) {
        int b = k->seq[r], n = k->lens[b];
        int nk = k->causal ? k->pos[r] + 1 : n;
        double mx = -1e300, sum = 0;
        for (int j = 0; j < nk; j++) {
            double d = c[r];
            for (int i = 0; i < C; i++) d += qt[r * C + i] * x[(b * T + j) * C + i];
            s[j] = k->scale * d;
            mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < nk; j++) sum += s[j] = exp(s[j] - mx);
        for (int i = 0; i < C; i++) {
            double a = 0;
            for (int j = 0; j < nk; j++) a += s[j] / sum * x[(b * T + j) * C + i];
            L += a * k->G[r * C + i];
        }
    }
    return L;
}

static void check_rows(int causal)
{
    Rng r;
    rng_seed(&r, 5 + causal);
    int B = 2, T = 4, C = 5, HD = 3, R = 3;
    int lens[2] = {4, 3}, seq[3] = {0, 1, 1}, pos[3] = {2, 1, 2};
    float x[40], qt[15], cc[3], G[15], a[15], pat[12], scratch[4];
    fill(x, 40, &r, 1);
    fill(qt, 15, &r, 1);
    fill(cc, 3, &r, 1);
    fill(G, 15, &r, 1);
    float scale = 1.3f;
    bwd_rows_attend(a, pat, qt, cc, x, seq, pos, lens, R, T, C, scale, causal);
    /* against fwd_attention: q = (qt, c) against keys (x_j, 1), values x_j */
    {
        float q[2 * 4 * 6] = {0}, kk[2 * 4 * 6], zf[2 * 4 * 6], patf[32];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                for (int i = 0; i < C; i++) kk[(b * T + t) * 6 + i] = x[(b * T + t) * C + i];
                kk[(b * T + t) * 6 + 5] = 1;
            }
        for (int i = 0; i < R; i++) {
            for (int d = 0; d < C; d++) q[(seq[i] * T + pos[i]) * 6 + d] = qt[i * C + d];
            q[(seq[i] * T + pos[i]) * 6 + 5] = cc[i];
        }
        fwd_attention(zf, patf, q, kk, kk, lens, B, T, 6, scale, causal, 0);
        for (int i = 0; i < R; i++)
            expect_close_f("rows forward vs fwd_attention", a + i * C, zf + (seq[i] * T + pos[i]) * 6, C, 1e-5);
    }
    (void)HD;
    float dx[40] = {0}, dqt[15] = {0}, dc[3] = {0};
    bwd_rows_attend_backward(dx, dqt, dc, scratch, G, pat, qt, x, seq, lens, R, T, C, scale);
    double *qd = to_double(qt, 15), *cd = to_double(cc, 3), *xd = to_double(x, 40), *Gd = to_double(G, 15);
    RowCtx k = {B, T, C, R, causal, 0, lens, seq, pos, scale, qd, cd, xd, Gd};
    double *g = numeric_grad(rows_loss, qd, 15, &k);
    expect_close("dqt", dqt, g, 15, 1e-4);
    free(g);
    k.which = 1;
    g = numeric_grad(rows_loss, cd, 3, &k);
    expect_close("dc", dc, g, 3, 1e-4);
    free(g);
    k.which = 2;
    g = numeric_grad(rows_loss, xd, 40, &k);
    expect_close("dx", dx, g, 40, 1e-4);
    free(g);
    free(qd);
    free(cd);
    free(xd);
    free(Gd);
}

static void test_bwd_rows_attend_matches_forward_and_finite_differences(void **state)
{
    (void)state;
    check_rows(0);
    check_rows(1);
}

/* ---------------------------------------------------------------- losses */

typedef struct {
    int R, VO;
    double scale;
    const int32_t *target;
    const double *target_num;
} LossCtx;

static double ce_loss(const double *x, void *vctx)
{
    LossCtx *c = vctx;
    double L = 0;
    for (int r = 0; r < c->R; r++) {
        double mx = -1e300, sum = 0;
        for (int j = 0; j < c->VO; j++) mx = fmax(mx, c->scale * x[r * c->VO + j]);
        for (int j = 0; j < c->VO; j++) sum += exp(c->scale * x[r * c->VO + j] - mx);
        L += log(sum) + mx - c->scale * x[r * c->VO + c->target[r]];
    }
    return L / c->R;
}

static double se_loss(const double *x, void *vctx)
{
    LossCtx *c = vctx;
    double L = 0;
    for (int r = 0; r < c->R; r++) L += (x[r] - c->target_num[r]) * (x[r] - c->target_num[r]);
    return L / c->R;
}

static void test_bwd_losses_match_finite_differences(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 9);
    int R = 4, VO = 5;
    float logits[20], dl[20], probs[20];
    fill(logits, 20, &r, 1);
    int32_t target[4] = {0, 4, 2, 2};
    double loss = bwd_crossentropy(dl, probs, logits, target, R, VO, 3.0f, R);
    double *x = to_double(logits, 20);
    LossCtx c = {R, VO, 3.0, target, NULL};
    assert_true(fabs(loss - ce_loss(x, &c)) < 1e-6);
    double *g = numeric_grad(ce_loss, x, 20, &c);
    expect_close("dlogits (cross-entropy)", dl, g, 20, 1e-5);
    for (int i = 0; i < R; i++) {
        double s = 0;
        for (int j = 0; j < VO; j++) s += probs[i * VO + j];
        assert_true(fabs(s - 1) < 1e-6);
    }
    free(g);
    float num[4] = {0.5f, -1, 2, 0}, dn[4];
    double tn[4] = {0.5, -1, 2, 0};
    double se = bwd_squared_error(dn, logits, num, R, R);
    LossCtx c2 = {R, 1, 1, NULL, tn};
    assert_true(fabs(se - se_loss(x, &c2)) < 1e-6);
    g = numeric_grad(se_loss, x, 4, &c2);
    expect_close("dlogits (squared error)", dn, g, 4, 1e-5);
    free(g);
    free(x);
    /* a tiny loss keeps its digits (computed in double) */
    float sharp[3] = {1, 0, 0};
    int32_t t0[1] = {0};
    double tiny = bwd_crossentropy(dl, NULL, sharp, t0, 1, 3, 30.0f, 1);
    assert_true(tiny > 0 && fabs(tiny - log1p(2 * exp(-30.0))) < 1e-15);
}

/* ---------------------------------------------------------------- the whole model */

static Model *random_model(int L, int C, int NH, int HD, int M, int V, int VO, int NCTX, int causal, int numerical,
                           uint64_t seed)
{
    ModelConfig cfg = {.n_layers = L, .d_model = C, .d_head = HD, .n_heads = NH, .d_mlp = M, .d_vocab = V,
                       .d_vocab_out = VO, .n_ctx = NCTX, .causal = causal, .use_attn_scale = 1,
                       .attn_scale = 1.7};
    StrBuf err;
    sb_init(&err);
    Model *m = model_new(&cfg, &err);
    if (!m) fail_msg("model_new: %s", err.s);
    sb_free(&err);
    Rng r;
    rng_seed(&r, seed);
    fill(m->params_memory, m->num_params, &r, 0.5);
    (void)numerical;
    m->output_numerical = numerical;
    return m;
}

/* An independent double-precision forward pass and loss (the model-format spec's recipe). */
typedef struct {
    const Model *m;
    const BwdBatch *b;
    double scale;
} ModelCtx;

static double model_loss(const double *P, void *vctx)
{
    ModelCtx *cx = vctx;
    const Model *m = cx->m;
    const ModelConfig *c = &m->cfg;
    const BwdBatch *bt = cx->b;
    int C = c->d_model, NH = c->n_heads, HD = c->d_head, MM = c->d_mlp, VO = c->d_vocab_out, T = bt->T;
    double as = c->use_attn_scale ? 1.0 / c->attn_scale : 1.0;
#define PT(name) (P + model_find_tensor(m, name)->offset)
    double *x = calloc((size_t)T * C, sizeof(double)), *q = calloc((size_t)T * HD, sizeof(double));
    double *k = calloc((size_t)T * HD, sizeof(double)), *v = calloc((size_t)T * HD, sizeof(double));
    double *att = calloc((size_t)T * C, sizeof(double)), *h = calloc((size_t)MM + 1, sizeof(double));
    double loss = 0;
    char nm[64];
    for (int b = 0; b < bt->B; b++) {
        int n = bt->lens[b];
        for (int t = 0; t < n; t++)
            for (int i = 0; i < C; i++)
                x[t * C + i] = PT("embed.W_E")[bt->tokens[b * T + t] * C + i] + PT("pos_embed.W_pos")[t * C + i];
        for (int l = 0; l < c->n_layers; l++) {
            for (int t = 0; t < n; t++)
                for (int i = 0; i < C; i++) {
                    snprintf(nm, sizeof nm, "blocks.%d.attn.b_O", l);
                    att[t * C + i] = PT(nm)[i];
                }
            for (int hh = 0; hh < NH; hh++) {
                const double *W[3], *Bv[3];
                const char *wn[3] = {"W_Q", "W_K", "W_V"}, *bn[3] = {"b_Q", "b_K", "b_V"};
                for (int z = 0; z < 3; z++) {
                    snprintf(nm, sizeof nm, "blocks.%d.attn.%s", l, wn[z]);
                    W[z] = PT(nm) + (size_t)hh * C * HD;
                    snprintf(nm, sizeof nm, "blocks.%d.attn.%s", l, bn[z]);
                    Bv[z] = PT(nm) + (size_t)hh * HD;
                }
                double *out[3] = {q, k, v};
                for (int z = 0; z < 3; z++)
                    for (int t = 0; t < n; t++)
                        for (int e = 0; e < HD; e++) {
                            double s = Bv[z][e];
                            for (int i = 0; i < C; i++) s += x[t * C + i] * W[z][i * HD + e];
                            out[z][t * HD + e] = s;
                        }
                snprintf(nm, sizeof nm, "blocks.%d.attn.W_O", l);
                const double *WO = PT(nm) + (size_t)hh * HD * C;
                for (int i = 0; i < n; i++) {
                    int nk = c->causal ? i + 1 : n;
                    double s[64], mx = -1e300, sum = 0;
                    for (int j = 0; j < nk; j++) {
                        double d = 0;
                        for (int e = 0; e < HD; e++) d += q[i * HD + e] * k[j * HD + e];
                        s[j] = as * d;
                        mx = fmax(mx, s[j]);
                    }
                    for (int j = 0; j < nk; j++) sum += s[j] = exp(s[j] - mx);
                    for (int e = 0; e < HD; e++) {
                        double z = 0;
                        for (int j = 0; j < nk; j++) z += s[j] / sum * v[j * HD + e];
                        for (int o = 0; o < C; o++) att[i * C + o] += z * WO[e * C + o];
                    }
                }
            }
            for (int t = 0; t < n * C; t++) x[t] += att[t];
            snprintf(nm, sizeof nm, "blocks.%d.mlp.W_in", l);
            const double *Win = PT(nm);
            snprintf(nm, sizeof nm, "blocks.%d.mlp.b_in", l);
            const double *bin = PT(nm);
            snprintf(nm, sizeof nm, "blocks.%d.mlp.W_out", l);
            const double *Wout = PT(nm);
            snprintf(nm, sizeof nm, "blocks.%d.mlp.b_out", l);
            const double *bout = PT(nm);
            for (int t = 0; t < n; t++) {
                for (int j = 0; j < MM; j++) {
                    double s = bin[j];
                    for (int i = 0; i < C; i++) s += x[t * C + i] * Win[i * MM + j];
                    h[j] = s > 0 ? s : 0;
                }
                for (int o = 0; o < C; o++) {
                    double s = bout[o];
                    for (int j = 0; j < MM; j++) s += h[j] * Wout[j * C + o];
                    x[t * C + o] += s;
                }
            }
        }
        for (int rr = 0; rr < bt->R; rr++) {
            if (bt->seq[rr] != b) continue;
            const double *xr = x + bt->pos[rr] * C;
            double lg[64];
            for (int j = 0; j < VO; j++) {
                double s = PT("unembed.b_U")[j];
                for (int i = 0; i < C; i++) s += xr[i] * PT("unembed.W_U")[i * VO + j];
                lg[j] = s;
            }
            if (m->output_numerical) {
                double e = lg[0] - bt->target_num[rr];
                loss += e * e;
            } else {
                double mx = -1e300, sum = 0;
                for (int j = 0; j < VO; j++) mx = fmax(mx, cx->scale * lg[j]);
                for (int j = 0; j < VO; j++) sum += exp(cx->scale * lg[j] - mx);
                loss += log(sum) + mx - cx->scale * lg[bt->target[rr]];
            }
        }
    }
#undef PT
    free(x);
    free(q);
    free(k);
    free(v);
    free(att);
    free(h);
    return loss / bt->R;
}

/* Checks the whole gradient of a random model on a random padded batch. */
static void check_model(int causal, int numerical, int R, int L, const uint8_t *trainable_pattern)
{
    int C = 6, NH = 2, HD = 3, M = 5, V = 5, VO = numerical ? 1 : 4, NCTX = 6, B = 3, T = 6;
    Model *m = random_model(L, C, NH, HD, M, V, VO, NCTX, causal, numerical, 11 + (uint64_t)R + 3 * causal);
    Rng r;
    rng_seed(&r, 77 + (uint64_t)R);
    int32_t tokens[18];
    int lens[3] = {6, 4, 2};
    for (int i = 0; i < B * T; i++) tokens[i] = (int32_t)rng_below(&r, (uint32_t)V);
    int seq[18], pos[18];
    int32_t target[18];
    float tnum[18];
    int nr = 0;
    for (int b = 0; b < B && nr < R; b++)
        for (int t = 1; t < lens[b] && nr < R; t++) {
            seq[nr] = b;
            pos[nr] = t;
            target[nr] = (int32_t)rng_below(&r, (uint32_t)VO);
            tnum[nr] = (float)rng_normal(&r);
            nr++;
        }
    BwdBatch bt = {B, T, tokens, lens, nr, seq, pos, target, tnum, 0};
    BwdOptions o = {0, 1.5f, trainable_pattern};
    BwdState *s = bwd_new();
    StrBuf err;
    sb_init(&err);
    double loss;
    if (bwd_forward(s, m, &bt, &o, &loss, &err)) fail_msg("bwd_forward: %s", err.s);
    float *g = calloc(m->num_params, sizeof(float));
    bwd_backward(s, m, &o, g);
    double *P = to_double(m->params_memory, m->num_params);
    ModelCtx cx = {m, &bt, 1.5};
    double ref = model_loss(P, &cx);
    if (!(fabs(loss - ref) <= 1e-5 * fmax(1, fabs(ref)))) fail_msg("loss %.9g, double forward %.9g", loss, ref);
    double *num = numeric_grad(model_loss, P, m->num_params, &cx);
    for (int t = 0; t < m->ntensors; t++) {
        const ModelTensor *te = &m->tensors[t];
        if (trainable_pattern && !trainable_pattern[t]) {
            for (size_t i = 0; i < te->numel; i++)
                if (g[te->offset + i] != 0) fail_msg("%s is frozen but has a gradient", te->name);
            continue;
        }
        expect_close(te->name, g + te->offset, num + te->offset, te->numel, 2e-3);
    }
    /* the naive kernels give the same gradient */
    BwdOptions on = o;
    on.naive = 1;
    float *gn = calloc(m->num_params, sizeof(float));
    double ln;
    if (bwd_forward(s, m, &bt, &on, &ln, &err)) fail_msg("bwd_forward naive: %s", err.s);
    bwd_backward(s, m, &on, gn);
    assert_true(fabs(ln - loss) <= 1e-5 * fmax(1, fabs(loss)));
    expect_close_f("naive vs blas gradient", gn, g, m->num_params, 1e-4);
    free(gn);
    free(num);
    free(P);
    free(g);
    sb_free(&err);
    bwd_free(s);
    model_free(m);
}

static void test_model_gradient_rows_only_last_block(void **state)
{
    (void)state;
    check_model(0, 0, 2, 2, NULL);   /* 2 of 18 rows: the rows-only last block */
}

static void test_model_gradient_full_last_block(void **state)
{
    (void)state;
    check_model(0, 0, 9, 2, NULL);   /* every valued row: the full pass */
}

static void test_model_gradient_causal(void **state)
{
    (void)state;
    check_model(1, 0, 2, 2, NULL);
    check_model(1, 0, 9, 2, NULL);
}

static void test_model_gradient_numerical_output(void **state)
{
    (void)state;
    check_model(0, 1, 3, 2, NULL);
    check_model(0, 1, 9, 1, NULL);
}

static void test_model_gradient_one_block_and_no_block(void **state)
{
    (void)state;
    check_model(0, 0, 2, 1, NULL);
    check_model(0, 0, 2, 0, NULL);
    check_model(0, 0, 9, 0, NULL);
}

static void test_model_gradient_three_blocks(void **state)
{
    (void)state;
    check_model(0, 0, 2, 3, NULL);   /* tables, a dense block, the rows-only last block */
    check_model(1, 0, 9, 3, NULL);   /* every block dense */
}

static void test_model_gradient_skips_frozen_tensors(void **state)
{
    (void)state;
    /* 2 layers: tensors are embed, pos, 12 per block, unembed x2 (table order). Freeze the
     * embeddings and all of block 0: the gradients of block 1 and the unembed must be right,
     * and the frozen ones zero. */
    ModelConfig cfg = {.n_layers = 2, .d_model = 6, .d_head = 3, .n_heads = 2, .d_mlp = 5, .d_vocab = 5,
                       .d_vocab_out = 4, .n_ctx = 6, .use_attn_scale = 1, .attn_scale = 1.7};
    int nt = model_num_tensors(&cfg);
    ModelTensor *tab = calloc((size_t)nt, sizeof *tab);
    model_layout(&cfg, tab);
    uint8_t *tr = calloc((size_t)nt, 1);
    for (int t = 0; t < nt; t++) tr[t] = strncmp(tab[t].name, "blocks.0.", 9) && strncmp(tab[t].name, "embed", 5) &&
                                         strncmp(tab[t].name, "pos_embed", 9);
    check_model(0, 0, 2, 2, tr);
    check_model(0, 0, 9, 2, tr);
    free(tr);
    free(tab);
}

/* The training forward computes the runtime's function: at every row (the full pass) and at
 * one row per sequence (the rows-only last block) its logits agree with fwd_forward's to
 * float rounding (a Counter-sized batch spans several chunks). */
static void expect_rows_match(const BwdState *s, const FwdState *fs, const int *seq, const int *pos, int R, int T,
                              int VO)
{
    for (int i = 0; i < R; i++) {
        const float *a = bwd_logits(s) + (size_t)i * VO, *b = fs->logits + ((size_t)seq[i] * T + pos[i]) * VO;
        float big = 1;
        for (int j = 0; j < VO; j++) big = fmaxf(big, fabsf(b[j]));
        for (int j = 0; j < VO; j++)
            if (!(fabsf(a[j] - b[j]) <= 1e-5f * big)) fail_msg("row %d: %g vs %g (largest logit %g)", i, a[j], b[j], big);
    }
}

static void test_training_forward_equals_runtime_forward(void **state)
{
    (void)state;
    for (int L = 1; L <= 3; L++) {
        Model *m = random_model(L, 40, 2, 12, 20, 11, 15, 47, L == 2, 0, 3);
        for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] *= 0.4f;   /* activations O(1..10) */
        int B = 50, T = 47;
        Rng r;
        rng_seed(&r, 4);
        int32_t *tokens = malloc(sizeof(int32_t) * (size_t)B * T);
        int *lens = malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B; b++) {
            lens[b] = b % 7 == 3 ? 20 : T;
            for (int t = 0; t < T; t++) tokens[b * T + t] = (int32_t)rng_below(&r, 11);
        }
        int R = 0;
        int *seq = malloc(sizeof(int) * (size_t)B * T), *pos = malloc(sizeof(int) * (size_t)B * T);
        int32_t *target = calloc((size_t)B * T, sizeof(int32_t));
        for (int b = 0; b < B; b++)
            for (int t = 1; t < lens[b]; t++) {
                seq[R] = b;
                pos[R] = t;
                R++;
            }
        FwdState fs;
        fwd_init(&fs);
        StrBuf err;
        sb_init(&err);
        FwdOptions fo = FWD_OPTIONS_DEFAULT;
        if (fwd_forward(&fs, m, tokens, lens, B, T, &fo, &err)) fail_msg("%s", err.s);
        BwdState *s = bwd_new();
        BwdOptions o = {0, 1.0f, NULL};
        double loss;
        BwdBatch bt = {B, T, tokens, lens, R, seq, pos, target, NULL, 0};
        if (bwd_forward(s, m, &bt, &o, &loss, &err)) fail_msg("%s", err.s);
        expect_rows_match(s, &fs, seq, pos, R, T, 15);
        int R1 = 0;
        for (int b = 0; b < B; b++) {
            seq[R1] = b;
            pos[R1] = 2;
            R1++;
        }
        BwdBatch bt1 = {B, T, tokens, lens, R1, seq, pos, target, NULL, 0};
        if (bwd_forward(s, m, &bt1, &o, &loss, &err)) fail_msg("%s", err.s);
        expect_rows_match(s, &fs, seq, pos, R1, T, 15);
        bwd_free(s);
        fwd_free(&fs);
        sb_free(&err);
        free(tokens);
        free(lens);
        free(seq);
        free(pos);
        free(target);
        model_free(m);
    }
}

/* The pool splits a batch into shards: the gradient is the whole batch's (to rounding), and
 * bit-identical for any number of threads. */
static void test_pool_gradient_is_the_batch_gradient_for_any_thread_count(void **state)
{
    (void)state;
    Model *m = random_model(2, 12, 1, 4, 6, 7, 5, 9, 0, 0, 21);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] *= 0.5f;
    int B = 150, T = 9;   /* 4 shards of 37 or 38 sequences */
    Rng r;
    rng_seed(&r, 8);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)B * T);
    int *lens = malloc(sizeof(int) * (size_t)B), *seq = malloc(sizeof(int) * (size_t)B), *pos = malloc(sizeof(int) * (size_t)B);
    int32_t *target = malloc(sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) {
        lens[b] = 3 + (int)rng_below(&r, 7);
        for (int t = 0; t < T; t++) tokens[b * T + t] = (int32_t)rng_below(&r, 7);
        seq[b] = b;
        pos[b] = 2;
        target[b] = (int32_t)rng_below(&r, 5);
    }
    BwdBatch bt = {B, T, tokens, lens, B, seq, pos, target, NULL, 0};
    BwdOptions o = {0, 2.0f, NULL};
    StrBuf err;
    sb_init(&err);
    float *g1 = calloc(m->num_params, sizeof(float)), *g2 = calloc(m->num_params, sizeof(float));
    float *g3 = calloc(m->num_params, sizeof(float));
    BwdState *s = bwd_new();
    double l1, l2, l3;
    if (bwd_forward(s, m, &bt, &o, &l1, &err)) fail_msg("%s", err.s);
    bwd_backward(s, m, &o, g1);
    BwdPool *p1 = bwd_pool_new(1), *p3 = bwd_pool_new(3);
    if (bwd_pool_step(p1, m, &bt, &o, g2, &l2, &err)) fail_msg("%s", err.s);
    if (bwd_pool_step(p3, m, &bt, &o, g3, &l3, &err)) fail_msg("%s", err.s);
    assert_true(fabs(l1 - l2) < 1e-6 * fmax(1, fabs(l1)));
    expect_close_f("pool vs one pass", g2, g1, m->num_params, 1e-4);
    assert_true(l2 == l3);
    assert_memory_equal(g2, g3, sizeof(float) * m->num_params);
    /* the pool overwrites the gradient: a second step gives the same again */
    if (bwd_pool_step(p3, m, &bt, &o, g3, &l3, &err)) fail_msg("%s", err.s);
    assert_memory_equal(g2, g3, sizeof(float) * m->num_params);
    bwd_pool_free(p1);
    bwd_pool_free(p3);
    bwd_free(s);
    free(g1);
    free(g2);
    free(g3);
    free(tokens);
    free(lens);
    free(seq);
    free(pos);
    free(target);
    sb_free(&err);
    model_free(m);
}

static void test_bwd_forward_rejects_bad_rows(void **state)
{
    (void)state;
    Model *m = random_model(1, 4, 1, 2, 3, 5, 3, 4, 0, 0, 1);
    int32_t tokens[4] = {0, 1, 2, 3};
    int lens[1] = {3}, seq[1] = {0}, pos[1] = {3};
    int32_t target[1] = {0};
    BwdBatch bt = {1, 4, tokens, lens, 1, seq, pos, target, NULL, 0};
    BwdOptions o = {0, 1.0f, NULL};
    BwdState *s = bwd_new();
    StrBuf err;
    sb_init(&err);
    double loss;
    assert_int_equal(bwd_forward(s, m, &bt, &o, &loss, &err), -1);   /* position 3 is padding */
    assert_non_null(strstr(err.s, "outside the batch"));
    pos[0] = 1;
    target[0] = 3;
    sb_clear(&err);
    assert_int_equal(bwd_forward(s, m, &bt, &o, &loss, &err), -1);   /* column 3 of 3 */
    assert_non_null(strstr(err.s, "target column"));
    sb_free(&err);
    bwd_free(s);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bwd_matmul_matches_finite_differences_and_naive),
        cmocka_unit_test(test_bwd_embed_adds_rows_at_tokens_and_positions),
        cmocka_unit_test(test_bwd_relu_passes_gradient_where_active),
        cmocka_unit_test(test_bwd_attention_matches_finite_differences),
        cmocka_unit_test(test_bwd_attention_causal_matches_finite_differences),
        cmocka_unit_test(test_bwd_rows_attend_matches_forward_and_finite_differences),
        cmocka_unit_test(test_bwd_losses_match_finite_differences),
        cmocka_unit_test(test_model_gradient_rows_only_last_block),
        cmocka_unit_test(test_model_gradient_full_last_block),
        cmocka_unit_test(test_model_gradient_causal),
        cmocka_unit_test(test_model_gradient_numerical_output),
        cmocka_unit_test(test_model_gradient_one_block_and_no_block),
        cmocka_unit_test(test_model_gradient_three_blocks),
        cmocka_unit_test(test_model_gradient_skips_frozen_tensors),
        cmocka_unit_test(test_training_forward_equals_runtime_forward),
        cmocka_unit_test(test_pool_gradient_is_the_batch_gradient_for_any_thread_count),
        cmocka_unit_test(test_bwd_forward_rejects_bad_rows),
    };
    return cmocka_run_group_tests_name("backward", tests, NULL, NULL);
}
