/* forward.c — see forward.h. */
#include "runtime/forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- kernels */

static void fill_bias(float *out, const float *bias, int M, int N, int accumulate)
{
    for (int i = 0; i < M; i++) {
        float *out_i = out + (size_t)i * N;
        if (!accumulate) {
            if (bias) memcpy(out_i, bias, sizeof(float) * (size_t)N);
            else memset(out_i, 0, sizeof(float) * (size_t)N);
        } else if (bias) {
            for (int j = 0; j < N; j++) out_i[j] += bias[j];
        }
    }
}

void fwd_matmul(float *out, const float *inp, const float *weight, const float *bias,
                int M, int K, int N, int accumulate)
{
    /* out is (M, N), inp is (M, K), weight is (K, N), bias is (N) */
    if (M <= 0 || N <= 0) return;
    fill_bias(out, bias, M, N, accumulate);
    if (K <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, inp, K, weight, N,
                1.0f, out, N);
}

void fwd_matmul_naive(float *out, const float *inp, const float *weight, const float *bias,
                      int M, int K, int N, int accumulate)
{
    /* the algorithmic reference for fwd_matmul */
    for (int i = 0; i < M; i++) {
        const float *inp_i = inp + (size_t)i * K;
        float *out_i = out + (size_t)i * N;
        for (int j = 0; j < N; j++) {
            float val = bias ? bias[j] : 0.0f;
            for (int k = 0; k < K; k++) val += inp_i[k] * weight[(size_t)k * N + j];
            out_i[j] = accumulate ? out_i[j] + val : val;
        }
    }
}

void fwd_embed(float *out, const int32_t *tokens, const float *W_E, const float *W_pos,
               int B, int T, int C)
{
    /* out is (B, T, C), tokens is (B, T), W_E is (V, C), W_pos is (N, C) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *out_bt = out + ((size_t)b * T + t) * C;
            const float *wte_ix = W_E + (size_t)tokens[(size_t)b * T + t] * C;
            const float *wpe_t = W_pos + (size_t)t * C;
            for (int i = 0; i < C; i++) out_bt[i] = wte_ix[i] + wpe_t[i];
        }
}

void fwd_relu(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* Turn one row of logits into attention weights over keys 0..nk-1 (the allowed ones). */
static void weigh_row(float *row, int nk, int hard)
{
    float maxv = row[0];
    for (int j = 1; j < nk; j++)
        if (row[j] > maxv) maxv = row[j];
    if (hard) {
        float tol = FWD_HARD_TOL * (fabsf(maxv) > 1.0f ? fabsf(maxv) : 1.0f);
        int count = 0;
        for (int j = 0; j < nk; j++) count += row[j] >= maxv - tol;
        float w = 1.0f / (float)count;
        for (int j = 0; j < nk; j++) row[j] = row[j] >= maxv - tol ? w : 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int j = 0; j < nk; j++) {
        row[j] = expf(row[j] - maxv);
        sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < nk; j++) row[j] *= inv;
}

/* Keys allowed for query i of a sequence of n positions. */
static int allowed_keys(int i, int n, int causal)
{
    return causal ? i + 1 : n;
}

void fwd_attention(float *z, float *pattern, const float *q, const float *k, const float *v,
                   const int *lens, int B, int T, int HD, float scale, int causal, int hard)
{
    /* z is (B, T, HD), pattern is (B, T, T), q, k, v are (B, T, HD), lens is (B) */
    size_t TT = (size_t)T * T, THD = (size_t)T * HD;
    memset(pattern, 0, sizeof(float) * (size_t)B * TT);
    memset(z, 0, sizeof(float) * (size_t)B * THD);
    for (int b = 0; b < B; b++) {
        int n = lens[b];
        float *att_b = pattern + (size_t)b * TT;
        const float *q_b = q + (size_t)b * THD, *k_b = k + (size_t)b * THD, *v_b = v + (size_t)b * THD;
        /* logits of the valid (n, n) corner: scale * q_b k_b^T */
        if (HD > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, HD, scale, q_b, HD, k_b, HD,
                        0.0f, att_b, T);
        for (int i = 0; i < n; i++) {
            float *att_bi = att_b + (size_t)i * T;
            int nk = allowed_keys(i, n, causal);
            weigh_row(att_bi, nk, hard);
            for (int j = nk; j < n; j++) att_bi[j] = 0.0f;
        }
        if (HD > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HD, n, 1.0f, att_b, T, v_b, HD,
                        0.0f, z + (size_t)b * THD, HD);
    }
}

void fwd_attention_naive(float *z, float *pattern, const float *q, const float *k, const float *v,
                         const int *lens, int B, int T, int HD, float scale, int causal, int hard)
{
    /* the algorithmic reference for fwd_attention */
    for (int b = 0; b < B; b++) {
        int n = lens[b];
        for (int i = 0; i < T; i++) {
            float *att_bi = pattern + ((size_t)b * T + i) * T;
            float *z_bi = z + ((size_t)b * T + i) * HD;
            for (int j = 0; j < T; j++) att_bi[j] = 0.0f;
            for (int d = 0; d < HD; d++) z_bi[d] = 0.0f;
            if (i >= n) continue;
            const float *q_bi = q + ((size_t)b * T + i) * HD;
            int nk = allowed_keys(i, n, causal);
            for (int j = 0; j < nk; j++) {
                const float *k_bj = k + ((size_t)b * T + j) * HD;
                float s = 0.0f;
                for (int d = 0; d < HD; d++) s += q_bi[d] * k_bj[d];
                att_bi[j] = s * scale;
            }
            weigh_row(att_bi, nk, hard);
            for (int j = 0; j < nk; j++) {
                const float *v_bj = v + ((size_t)b * T + j) * HD;
                for (int d = 0; d < HD; d++) z_bi[d] += att_bi[j] * v_bj[d];
            }
        }
    }
}

/* ---------------------------------------------------------------- forward */

void fwd_init(FwdState *s)
{
    memset(s, 0, sizeof *s);
}

void fwd_free(FwdState *s)
{
    free(s->ws);
    memset(s, 0, sizeof *s);
}

const float *fwd_resid_stage(const FwdState *s, int stage)
{
    if (!s->resids || stage < 0 || stage > 2 * s->n_blocks) return NULL;
    return s->resids + (size_t)stage * s->B * s->T * s->C;
}

/* Hand out the next buffer of the workspace (fwd_forward sized it for this call). */
static float *carve(float **at, size_t n)
{
    float *p = *at;
    *at += (n + 15) & ~(size_t)15;     /* keep each buffer 64-byte aligned relative to ws */
    return p;
}

static size_t rounded(size_t n) { return (n + 15) & ~(size_t)15; }

/* Positions per chunk of the batch (see fwd_forward). */
#define FWD_CHUNK_ROWS 1024

int fwd_forward(FwdState *s, const Model *m, const int32_t *tokens, const int *lens, int B, int T,
                const FwdOptions *opt, StrBuf *err)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    FwdOptions o = opt ? *opt : FWD_OPTIONS_DEFAULT;
    if (B < 1 || T < 1 || T > c->n_ctx) {
        sb_printf(err, "batch of %d sequences of %d positions: expected B >= 1 and 1 <= T <= n_ctx (%d)",
                  B, T, c->n_ctx);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        if (lens[b] < 1 || lens[b] > T) return sb_fail(err, "sequence %d: length %d: expected 1..%d", b, lens[b], T);
        for (int t = 0; t < T; t++) {
            int32_t id = tokens[(size_t)b * T + t];
            if (id < 0 || id >= c->d_vocab) {
                sb_printf(err, "sequence %d, position %d: token row %d: expected 0..%d", b, t, (int)id,
                          c->d_vocab - 1);
                return -1;
            }
        }
    }
    int L = o.n_blocks < 0 || o.n_blocks > c->n_layers ? c->n_layers : o.n_blocks;
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head;
    size_t M = (size_t)c->d_mlp, VO = (size_t)c->d_vocab_out, BT = (size_t)B * T;
    size_t stages = o.record_resid ? 1 + 2 * (size_t)L : 1;
    /* Sequences are independent, so the batch runs in chunks of about FWD_CHUNK_ROWS
     * positions: each chunk's activations stay in cache through all the blocks (a whole
     * batch of 1024 runs a third slower than chunks of 20 sequences). */
    int chunk = FWD_CHUNK_ROWS / T;
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    size_t CT = (size_t)chunk * T;
    size_t need = rounded(stages * BT * C) + rounded(3 * NH * CT * HD) + rounded(NH * CT * HD) +
                  rounded(CT * M) + rounded(o.record_attn ? (size_t)L * NH * BT * T : CT * T) +
                  rounded(BT * VO);
    if (need > s->ws_cap) {
        free(s->ws);
        s->ws = xmalloc(need * sizeof(float));
        s->ws_cap = need;
    }
    float *at = s->ws;
    float *resids = carve(&at, stages * BT * C);   /* (stages, B, T, C) */
    float *qkv = carve(&at, 3 * NH * CT * HD);     /* (3, NH, chunk, T, HD) */
    float *z = carve(&at, NH * CT * HD);           /* (NH, chunk, T, HD) */
    float *hid = carve(&at, CT * M);               /* (chunk, T, M) */
    float *att = carve(&at, o.record_attn ? (size_t)L * NH * BT * T : CT * T);
    float *logits = carve(&at, BT * VO);           /* (B, T, VO) */
    void (*matmul)(float *, const float *, const float *, const float *, int, int, int, int) =
        o.naive ? fwd_matmul_naive : fwd_matmul;
    void (*attention)(float *, float *, const float *, const float *, const float *, const int *, int,
                      int, int, float, int, int) = o.naive ? fwd_attention_naive : fwd_attention;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;

    for (int b0 = 0; b0 < B; b0 += chunk) {
        int nb = B - b0 < chunk ? B - b0 : chunk;
        size_t R = (size_t)nb * T;                    /* rows of this chunk */
        /* x: this chunk's rows of the current stage; stages are BT * C apart */
        float *x = resids + (size_t)b0 * T * C;
        fwd_embed(x, tokens + (size_t)b0 * T, p->W_E, p->W_pos, nb, T, (int)C);
        for (int l = 0; l < L; l++) {
            /* Per-layer slices of the parameters. */
            const float *l_wq = p->W_Q + (size_t)l * NH * C * HD, *l_bq = p->b_Q + (size_t)l * NH * HD;
            const float *l_wk = p->W_K + (size_t)l * NH * C * HD, *l_bk = p->b_K + (size_t)l * NH * HD;
            const float *l_wv = p->W_V + (size_t)l * NH * C * HD, *l_bv = p->b_V + (size_t)l * NH * HD;
            const float *l_wo = p->W_O + (size_t)l * NH * HD * C, *l_bo = p->b_O + (size_t)l * C;
            const float *l_win = p->W_in + (size_t)l * C * M, *l_bin = p->b_in + (size_t)l * M;
            const float *l_wout = p->W_out + (size_t)l * M * C, *l_bout = p->b_out + (size_t)l * C;

            /* attention: every head reads x before any head writes to it */
            const float *x_in = x;
            if (o.record_resid) {
                memcpy(x + BT * C, x, sizeof(float) * R * C);
                x += BT * C;
            }
            for (size_t h = 0; h < NH; h++) {
                float *q_h = qkv + h * R * HD, *k_h = qkv + (NH + h) * R * HD, *v_h = qkv + (2 * NH + h) * R * HD;
                matmul(q_h, x_in, l_wq + h * C * HD, l_bq + h * HD, (int)R, (int)C, (int)HD, 0);
                matmul(k_h, x_in, l_wk + h * C * HD, l_bk + h * HD, (int)R, (int)C, (int)HD, 0);
                matmul(v_h, x_in, l_wv + h * C * HD, l_bv + h * HD, (int)R, (int)C, (int)HD, 0);
                float *pat = o.record_attn ? att + (((size_t)l * NH + h) * B + (size_t)b0) * T * T : att;
                attention(z + h * R * HD, pat, q_h, k_h, v_h, lens + b0, nb, T, (int)HD, scale, c->causal,
                          o.hard);
            }
            /* x += sum_h z_h W_O[h] + b_O */
            matmul(x, NULL, NULL, l_bo, (int)R, 0, (int)C, 1);
            for (size_t h = 0; h < NH; h++)
                matmul(x, z + h * R * HD, l_wo + h * HD * C, NULL, (int)R, (int)HD, (int)C, 1);

            /* MLP: x += ReLU(x W_in + b_in) W_out + b_out */
            if (o.record_resid) {
                memcpy(x + BT * C, x, sizeof(float) * R * C);
                x += BT * C;
            }
            matmul(hid, x, l_win, l_bin, (int)R, (int)C, (int)M, 0);
            fwd_relu(hid, hid, R * M);
            matmul(x, hid, l_wout, l_bout, (int)R, (int)M, (int)C, 1);
        }
        matmul(logits + (size_t)b0 * T * VO, x, p->W_U, p->b_U, (int)R, (int)C, (int)VO, 0);
    }

    s->B = B;
    s->T = T;
    s->C = (int)C;
    s->n_blocks = L;
    s->logits = logits;
    s->resid = resids + (stages - 1) * BT * C;
    s->resids = o.record_resid ? resids : NULL;
    s->attn = o.record_attn ? att : NULL;
    return 0;
}

const char *fwd_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c && *c ? c : "unknown";
}
