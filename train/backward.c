/* backward.c — see backward.h. */
#include "train/backward.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/forward.h"

/* ---------------------------------------------------------------- kernels */

static void bias_grad(float *dbias, const float *dout, int M, int N)
{
    /* dbias (N) += column sums of dout (M, N) */
    for (int i = 0; i < M; i++) {
        const float *row = dout + (size_t)i * N;
        for (int j = 0; j < N; j++) dbias[j] += row[j];
    }
}

void bwd_matmul(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                const float *weight, int M, int K, int N)
{
    /* dout is (M, N), inp is (M, K), weight is (K, N) */
    if (M <= 0 || N <= 0) return;
    if (dbias) bias_grad(dbias, dout, M, N);
    if (K <= 0) return;
    if (dinp)   /* dinp (M, K) += dout (M, N) . weight^T (N, K) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, dout, N, weight, N, 1.0f,
                    dinp, K);
    if (dweight)   /* dweight (K, N) += inp^T (K, M) . dout (M, N) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, inp, K, dout, N, 1.0f,
                    dweight, N);
}

void bwd_matmul_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                      const float *weight, int M, int K, int N)
{
    /* the algorithmic reference for bwd_matmul */
    for (int i = 0; i < M; i++) {
        const float *dout_i = dout + (size_t)i * N;
        const float *inp_i = inp + (size_t)i * K;
        for (int j = 0; j < N; j++) {
            float d = dout_i[j];
            if (dbias) dbias[j] += d;
            for (int k = 0; k < K; k++) {
                if (dinp) dinp[(size_t)i * K + k] += d * weight[(size_t)k * N + j];
                if (dweight) dweight[(size_t)k * N + j] += inp_i[k] * d;
            }
        }
    }
}

void bwd_embed(float *dW_E, float *dW_pos, const float *dout, const int32_t *tokens, const int *lens,
               int B, int T, int C)
{
    /* dout is (B, T, C), tokens is (B, T) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            if (dW_E) {
                float *g = dW_E + (size_t)tokens[(size_t)b * T + t] * C;
                for (int i = 0; i < C; i++) g[i] += d[i];
            }
            if (dW_pos) {
                float *g = dW_pos + (size_t)t * C;
                for (int i = 0; i < C; i++) g[i] += d[i];
            }
        }
}

void bwd_relu(float *dinp, const float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* Softmax backward over one row of n keys, in place: d holds dP on entry, dS on return.
 * Masked keys have P = 0, so they get dS = 0 without knowing the mask. */
static void softmax_row_backward(float *d, const float *P, int n)
{
    float dot = 0.0f;
    for (int j = 0; j < n; j++) dot += P[j] * d[j];
    for (int j = 0; j < n; j++) d[j] = P[j] * (d[j] - dot);
}

void bwd_attention(float *dq, float *dk, float *dv, float *scratch, const float *dz, const float *pattern,
                   const float *q, const float *k, const float *v, const int *lens, int B, int T, int HD,
                   float scale)
{
    /* dq, dk, dv, dz, q, k, v are (B, T, HD), pattern is (B, T, T), scratch is (T, T) */
    if (HD <= 0) return;
    size_t TT = (size_t)T * T, THD = (size_t)T * HD;
    for (int b = 0; b < B; b++) {
        int n = lens[b];
        const float *P = pattern + (size_t)b * TT;
        const float *dz_b = dz + (size_t)b * THD, *q_b = q + (size_t)b * THD;
        const float *k_b = k + (size_t)b * THD, *v_b = v + (size_t)b * THD;
        float *dq_b = dq + (size_t)b * THD, *dk_b = dk + (size_t)b * THD, *dv_b = dv + (size_t)b * THD;
        /* dP (n, n) = dz_b . v_b^T;  dv_b += P^T . dz_b */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, HD, 1.0f, dz_b, HD, v_b, HD, 0.0f,
                    scratch, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, HD, n, 1.0f, P, T, dz_b, HD, 1.0f, dv_b,
                    HD);
        for (int i = 0; i < n; i++) softmax_row_backward(scratch + (size_t)i * T, P + (size_t)i * T, n);
        /* dq_b += scale dS . k_b;  dk_b += scale dS^T . q_b */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HD, n, scale, scratch, T, k_b, HD, 1.0f,
                    dq_b, HD);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, HD, n, scale, scratch, T, q_b, HD, 1.0f,
                    dk_b, HD);
    }
}

void bwd_attention_naive(float *dq, float *dk, float *dv, float *scratch, const float *dz,
                         const float *pattern, const float *q, const float *k, const float *v,
                         const int *lens, int B, int T, int HD, float scale)
{
    /* the algorithmic reference for bwd_attention */
    for (int b = 0; b < B; b++) {
        int n = lens[b];
        for (int i = 0; i < n; i++) {
            const float *P = pattern + ((size_t)b * T + i) * T;
            const float *dz_i = dz + ((size_t)b * T + i) * HD;
            for (int j = 0; j < n; j++) {
                const float *v_j = v + ((size_t)b * T + j) * HD;
                float s = 0.0f;
                for (int d = 0; d < HD; d++) s += dz_i[d] * v_j[d];
                scratch[j] = s;
                float *dv_j = dv + ((size_t)b * T + j) * HD;
                for (int d = 0; d < HD; d++) dv_j[d] += P[j] * dz_i[d];
            }
            softmax_row_backward(scratch, P, n);
            float *dq_i = dq + ((size_t)b * T + i) * HD;
            const float *q_i = q + ((size_t)b * T + i) * HD;
            for (int j = 0; j < n; j++) {
                const float *k_j = k + ((size_t)b * T + j) * HD;
                float *dk_j = dk + ((size_t)b * T + j) * HD;
                for (int d = 0; d < HD; d++) {
                    dq_i[d] += scale * scratch[j] * k_j[d];
                    dk_j[d] += scale * scratch[j] * q_i[d];
                }
            }
        }
    }
}

void bwd_attention_rows_forward(float *z, float *pattern, const float *q, const float *k, const float *v,
                                const int *seq, const int *pos, const int *lens, int R, int T, int HD,
                                float scale, int causal)
{
    /* z is (R, HD), pattern is (R, T), q is (R, HD), k and v are (B, T, HD) */
    for (int r = 0; r < R; r++) {
        int b = seq[r], n = lens[b];
        int nk = causal ? pos[r] + 1 : n;
        if (nk > n) nk = n;
        float *P = pattern + (size_t)r * T;
        float *z_r = z + (size_t)r * HD;
        const float *q_r = q + (size_t)r * HD;
        const float *k_b = k + (size_t)b * T * HD, *v_b = v + (size_t)b * T * HD;
        for (int j = 0; j < T; j++) P[j] = 0.0f;
        for (int d = 0; d < HD; d++) z_r[d] = 0.0f;
        float maxv = -INFINITY;
        for (int j = 0; j < nk; j++) {
            const float *k_j = k_b + (size_t)j * HD;
            float s = 0.0f;
            for (int d = 0; d < HD; d++) s += q_r[d] * k_j[d];
            P[j] = s * scale;
            if (P[j] > maxv) maxv = P[j];
        }
        float sum = 0.0f;
        for (int j = 0; j < nk; j++) {
            P[j] = expf(P[j] - maxv);
            sum += P[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < nk; j++) {
            P[j] *= inv;
            const float *v_j = v_b + (size_t)j * HD;
            for (int d = 0; d < HD; d++) z_r[d] += P[j] * v_j[d];
        }
    }
}

void bwd_attention_rows(float *dq, float *dk, float *dv, float *scratch, const float *dz,
                        const float *pattern, const float *q, const float *k, const float *v,
                        const int *seq, const int *lens, int R, int T, int HD, float scale)
{
    /* dq, dz, q are (R, HD), pattern is (R, T), dk, dv, k, v are (B, T, HD), scratch is (T) */
    for (int r = 0; r < R; r++) {
        int b = seq[r], n = lens[b];
        const float *P = pattern + (size_t)r * T;
        const float *dz_r = dz + (size_t)r * HD, *q_r = q + (size_t)r * HD;
        float *dq_r = dq + (size_t)r * HD;
        const float *k_b = k + (size_t)b * T * HD, *v_b = v + (size_t)b * T * HD;
        float *dk_b = dk + (size_t)b * T * HD, *dv_b = dv + (size_t)b * T * HD;
        for (int j = 0; j < n; j++) {
            const float *v_j = v_b + (size_t)j * HD;
            float *dv_j = dv_b + (size_t)j * HD;
            float s = 0.0f;
            for (int d = 0; d < HD; d++) {
                s += dz_r[d] * v_j[d];
                dv_j[d] += P[j] * dz_r[d];
            }
            scratch[j] = s;
        }
        softmax_row_backward(scratch, P, n);
        for (int j = 0; j < n; j++) {
            float g = scale * scratch[j];
            if (g == 0.0f) continue;
            const float *k_j = k_b + (size_t)j * HD;
            float *dk_j = dk_b + (size_t)j * HD;
            for (int d = 0; d < HD; d++) {
                dq_r[d] += g * k_j[d];
                dk_j[d] += g * q_r[d];
            }
        }
    }
}

double bwd_crossentropy(float *dlogits, float *probs, const float *logits, const int32_t *target,
                        int R, int VO, float scale, int norm)
{
    double total = 0.0;
    float inv_norm = 1.0f / (float)(norm > 0 ? norm : 1);
    for (int r = 0; r < R; r++) {
        const float *l = logits + (size_t)r * VO;
        float *d = dlogits + (size_t)r * VO;
        float maxv = scale * l[0];
        for (int j = 1; j < VO; j++)
            if (scale * l[j] > maxv) maxv = scale * l[j];
        double sum = 0.0, others = 0.0;
        for (int j = 0; j < VO; j++) {
            d[j] = expf(scale * l[j] - maxv);
            sum += d[j];
            if (j != target[r]) others += d[j];
        }
        /* -log p_y = log sum exp(z) - z_y. When the target holds the largest logit that is
         * log1p(the others' sum): a well-fitted row keeps its digits (log(1 + 1e-13) would
         * lose most of them). */
        if (scale * l[target[r]] == maxv) total += log1p(others);
        else total += log(sum) + (double)maxv - (double)scale * l[target[r]];
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < VO; j++) {
            float p = d[j] * inv;
            if (probs) probs[(size_t)r * VO + j] = p;
            d[j] = scale * (p - (j == target[r] ? 1.0f : 0.0f)) * inv_norm;
        }
    }
    return total / (norm > 0 ? norm : 1);
}

double bwd_squared_error(float *dlogits, const float *logits, const float *target, int R, int norm)
{
    double total = 0.0;
    float inv_norm = 1.0f / (float)(norm > 0 ? norm : 1);
    for (int r = 0; r < R; r++) {
        float e = logits[r] - target[r];
        total += (double)e * e;
        dlogits[r] = 2.0f * e * inv_norm;
    }
    return total / (norm > 0 ? norm : 1);
}

/* ---------------------------------------------------------------- the training pass */

/* Sequences per forward chunk: must equal runtime/forward.c's FWD_CHUNK_ROWS / T so that
 * every sgemm sees the same shapes as fwd_forward's (test_backward checks bit equality). */
#define BWD_CHUNK_ROWS 1024

/* Use the rows-only last block when the loss counts at most this fraction of the rows. */
#define BWD_SPARSE_FRACTION 0.25

struct BwdState {
    /* the last forward */
    int B, T, R, L, sparse;
    const int32_t *tokens;
    const int *lens, *seq, *pos;
    const int32_t *target;
    const float *target_num;
    double loss;

    float *mem;
    size_t cap;
    /* full blocks (all of them when !sparse, else 0..L-2), per layer l: */
    float *x_in;    /* (L + 1, B, T, C): input of block l; [L] the final residual (full mode) */
    float *x_mid;   /* (L, B, T, C) after attention */
    float *qkv;     /* (L, 3, NH, B, T, HD) */
    float *att;     /* (L, NH, B, T, T) */
    float *z;       /* (L, NH, B, T, HD) */
    float *h;       /* (L, B, T, M) after ReLU */
    /* the rows where the loss counts */
    float *xg;      /* (R, C) input of the last block (sparse) */
    float *qg;      /* (NH, R, HD) */
    float *attg;    /* (NH, R, T) */
    float *zg;      /* (NH, R, HD) */
    float *xg_mid;  /* (R, C) */
    float *hg;      /* (R, M) */
    float *xg_out;  /* (R, C) final residual at the rows */
    float *logits;  /* (R, VO) */
    float *dlogits; /* (R, VO) */
    /* backward scratch */
    float *dx;      /* (B, T, C) */
    float *dxg;     /* (R, C) */
    float *dqkv;    /* (3, NH, B, T, HD) */
    float *dz;      /* (NH, B, T, HD) or (NH, R, HD) */
    float *dh;      /* (B, T, M) */
    float *scratch; /* (T, T) */
    float *full_logits; /* (B, T, VO) full mode */
};

BwdState *bwd_new(void)
{
    return xcalloc(1, sizeof(BwdState));
}

void bwd_free(BwdState *s)
{
    if (!s) return;
    free(s->mem);
    free(s);
}

const float *bwd_logits(const BwdState *s)
{
    return s->logits;
}

static size_t rup(size_t n) { return (n + 15) & ~(size_t)15; }

typedef void (*MatmulFn)(float *, const float *, const float *, const float *, int, int, int, int);
typedef void (*AttnFn)(float *, float *, const float *, const float *, const float *, const int *, int, int,
                       int, float, int, int);

/* Per-layer slices of a parameter (or gradient) block. */
typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *win, *bin, *wout, *bout;
} LayerP;

static LayerP layer_slices(const ModelParams *p, const ModelConfig *c, int l)
{
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head, M = (size_t)c->d_mlp;
    LayerP s;
    s.wq = p->W_Q + (size_t)l * NH * C * HD;
    s.bq = p->b_Q + (size_t)l * NH * HD;
    s.wk = p->W_K + (size_t)l * NH * C * HD;
    s.bk = p->b_K + (size_t)l * NH * HD;
    s.wv = p->W_V + (size_t)l * NH * C * HD;
    s.bv = p->b_V + (size_t)l * NH * HD;
    s.wo = p->W_O + (size_t)l * NH * HD * C;
    s.bo = p->b_O + (size_t)l * C;
    s.win = p->W_in + (size_t)l * C * M;
    s.bin = p->b_in + (size_t)l * M;
    s.wout = p->W_out + (size_t)l * M * C;
    s.bout = p->b_out + (size_t)l * C;
    return s;
}

int bwd_forward(BwdState *s, const Model *m, const BwdBatch *bt, const BwdOptions *o, double *loss,
                StrBuf *err)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int B = bt->B, T = bt->T, R = bt->R;
    if (B < 1 || T < 1 || T > c->n_ctx || R < 0) {
        sb_printf(err, "batch of %d sequences of %d positions: expected B >= 1 and 1 <= T <= n_ctx (%d)", B, T,
                  c->n_ctx);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        if (bt->lens[b] < 1 || bt->lens[b] > T) {
            sb_printf(err, "sequence %d: length %d: expected 1..%d", b, bt->lens[b], T);
            return -1;
        }
        for (int t = 0; t < T; t++) {
            int32_t id = bt->tokens[(size_t)b * T + t];
            if (id < 0 || id >= c->d_vocab) {
                sb_printf(err, "sequence %d, position %d: token row %d: expected 0..%d", b, t, (int)id,
                          c->d_vocab - 1);
                return -1;
            }
        }
    }
    for (int r = 0; r < R; r++) {
        if (bt->seq[r] < 0 || bt->seq[r] >= B || bt->pos[r] < 0 || bt->pos[r] >= bt->lens[bt->seq[r]]) {
            sb_printf(err, "loss row %d: sequence %d, position %d is outside the batch", r, bt->seq[r], bt->pos[r]);
            return -1;
        }
        if (!m->output_numerical && (bt->target[r] < 0 || bt->target[r] >= c->d_vocab_out)) {
            sb_printf(err, "loss row %d: target column %d: expected 0..%d", r, (int)bt->target[r],
                      c->d_vocab_out - 1);
            return -1;
        }
    }
    int L = c->n_layers;
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head;
    size_t M = (size_t)c->d_mlp, VO = (size_t)c->d_vocab_out, BT = (size_t)B * T, Rz = (size_t)R;
    int sparse = L > 0 && (double)R <= BWD_SPARSE_FRACTION * (double)BT;
    size_t BR = BT > Rz ? BT : Rz;
    size_t TTs = (size_t)T * T;
    /* every buffer of the pass, in one allocation */
    size_t sizes[] = {(L + 1) * BT * C, L * BT * C, L * 3 * NH * BT * HD, L * NH * BT * T, L * NH * BT * HD,
                      L * BT * M, Rz * C, NH * Rz * HD, NH * Rz * T, NH * Rz * HD, Rz * C, Rz * M, Rz * C,
                      Rz * VO, Rz * VO, BT * C, Rz * C, 3 * NH * BR * HD, NH * BR * HD, BR * M, TTs, BT * VO};
    float **slots[] = {&s->x_in, &s->x_mid, &s->qkv, &s->att, &s->z, &s->h, &s->xg, &s->qg, &s->attg, &s->zg,
                       &s->xg_mid, &s->hg, &s->xg_out, &s->logits, &s->dlogits, &s->dx, &s->dxg, &s->dqkv,
                       &s->dz, &s->dh, &s->scratch, &s->full_logits};
    size_t need = 0;
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) need += rup(sizes[i]);
    if (need > s->cap) {
        free(s->mem);
        s->mem = xmalloc(need * sizeof(float));
        s->cap = need;
    }
    size_t off = 0;
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        *slots[i] = s->mem + off;
        off += rup(sizes[i]);
    }
    float *full_logits = s->full_logits;

    s->B = B;
    s->T = T;
    s->R = R;
    s->L = L;
    s->sparse = sparse;
    s->tokens = bt->tokens;
    s->lens = bt->lens;
    s->seq = bt->seq;
    s->pos = bt->pos;
    s->target = bt->target;
    s->target_num = bt->target_num;

    MatmulFn matmul = o->naive ? fwd_matmul_naive : fwd_matmul;
    AttnFn attention = o->naive ? fwd_attention_naive : fwd_attention;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;
    int nfull = sparse ? L - 1 : L;

    /* Full blocks, in the runtime's chunks and order of operations. */
    int chunk = BWD_CHUNK_ROWS / T;
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        int nb = B - b0 < chunk ? B - b0 : chunk;
        size_t R0 = (size_t)b0 * T, Rc = (size_t)nb * T;
        fwd_embed(s->x_in + R0 * C, bt->tokens + R0, p->W_E, p->W_pos, nb, T, (int)C);
        for (int l = 0; l < nfull; l++) {
            LayerP w = layer_slices(p, c, l);
            const float *x = s->x_in + ((size_t)l * BT + R0) * C;
            float *xm = s->x_mid + ((size_t)l * BT + R0) * C;
            float *xo = s->x_in + ((size_t)(l + 1) * BT + R0) * C;
            float *qkv = s->qkv + (size_t)l * 3 * NH * BT * HD;
            for (size_t hh = 0; hh < NH; hh++) {
                float *q_h = qkv + (hh * BT + R0) * HD, *k_h = qkv + ((NH + hh) * BT + R0) * HD;
                float *v_h = qkv + ((2 * NH + hh) * BT + R0) * HD;
                matmul(q_h, x, w.wq + hh * C * HD, w.bq + hh * HD, (int)Rc, (int)C, (int)HD, 0);
                matmul(k_h, x, w.wk + hh * C * HD, w.bk + hh * HD, (int)Rc, (int)C, (int)HD, 0);
                matmul(v_h, x, w.wv + hh * C * HD, w.bv + hh * HD, (int)Rc, (int)C, (int)HD, 0);
                float *pat = s->att + (((size_t)l * NH + hh) * B + (size_t)b0) * T * T;
                attention(s->z + ((size_t)l * NH + hh) * BT * HD + R0 * HD, pat, q_h, k_h, v_h, bt->lens + b0, nb,
                          T, (int)HD, scale, c->causal, 0);
            }
            memcpy(xm, x, sizeof(float) * Rc * C);
            matmul(xm, NULL, NULL, w.bo, (int)Rc, 0, (int)C, 1);
            for (size_t hh = 0; hh < NH; hh++)
                matmul(xm, s->z + ((size_t)l * NH + hh) * BT * HD + R0 * HD, w.wo + hh * HD * C, NULL, (int)Rc,
                       (int)HD, (int)C, 1);
            float *hid = s->h + ((size_t)l * BT + R0) * M;
            memcpy(xo, xm, sizeof(float) * Rc * C);
            matmul(hid, xm, w.win, w.bin, (int)Rc, (int)C, (int)M, 0);
            fwd_relu(hid, hid, Rc * M);
            matmul(xo, hid, w.wout, w.bout, (int)Rc, (int)M, (int)C, 1);
        }
        if (!sparse)
            matmul(full_logits + R0 * VO, s->x_in + ((size_t)L * BT + R0) * C, p->W_U, p->b_U, (int)Rc, (int)C,
                   (int)VO, 0);
    }

    if (!sparse) {
        for (int r = 0; r < R; r++)
            memcpy(s->logits + (size_t)r * VO, full_logits + ((size_t)bt->seq[r] * T + bt->pos[r]) * VO,
                   sizeof(float) * VO);
    } else {
        /* The last block: keys and values at every row, the rest at the loss rows only. */
        int l = L - 1;
        LayerP w = layer_slices(p, c, l);
        const float *x = s->x_in + (size_t)l * BT * C;
        float *kv = s->qkv + (size_t)l * 3 * NH * BT * HD;   /* k: heads 0..NH-1, v: NH..2NH-1 */
        for (size_t hh = 0; hh < NH; hh++) {
            matmul(kv + hh * BT * HD, x, w.wk + hh * C * HD, w.bk + hh * HD, (int)BT, (int)C, (int)HD, 0);
            matmul(kv + (NH + hh) * BT * HD, x, w.wv + hh * C * HD, w.bv + hh * HD, (int)BT, (int)C, (int)HD, 0);
        }
        for (int r = 0; r < R; r++)
            memcpy(s->xg + (size_t)r * C, x + ((size_t)bt->seq[r] * T + bt->pos[r]) * C, sizeof(float) * C);
        for (size_t hh = 0; hh < NH; hh++) {
            float *q_h = s->qg + hh * Rz * HD;
            matmul(q_h, s->xg, w.wq + hh * C * HD, w.bq + hh * HD, R, (int)C, (int)HD, 0);
            bwd_attention_rows_forward(s->zg + hh * Rz * HD, s->attg + hh * Rz * T, q_h, kv + hh * BT * HD,
                                       kv + (NH + hh) * BT * HD, bt->seq, bt->pos, bt->lens, R, T, (int)HD,
                                       scale, c->causal);
        }
        memcpy(s->xg_mid, s->xg, sizeof(float) * Rz * C);
        matmul(s->xg_mid, NULL, NULL, w.bo, R, 0, (int)C, 1);
        for (size_t hh = 0; hh < NH; hh++)
            matmul(s->xg_mid, s->zg + hh * Rz * HD, w.wo + hh * HD * C, NULL, R, (int)HD, (int)C, 1);
        memcpy(s->xg_out, s->xg_mid, sizeof(float) * Rz * C);
        matmul(s->hg, s->xg_mid, w.win, w.bin, R, (int)C, (int)M, 0);
        fwd_relu(s->hg, s->hg, Rz * M);
        matmul(s->xg_out, s->hg, w.wout, w.bout, R, (int)M, (int)C, 1);
        matmul(s->logits, s->xg_out, p->W_U, p->b_U, R, (int)C, (int)VO, 0);
    }
    if (L == 0 || !sparse) {
        /* the final residual at the loss rows, for the unembed's gradient */
        const float *xf = s->x_in + (size_t)L * BT * C;
        for (int r = 0; r < R; r++)
            memcpy(s->xg_out + (size_t)r * C, xf + ((size_t)bt->seq[r] * T + bt->pos[r]) * C, sizeof(float) * C);
    }

    if (m->output_numerical)
        s->loss = bwd_squared_error(s->dlogits, s->logits, bt->target_num, R, R);
    else
        s->loss = bwd_crossentropy(s->dlogits, NULL, s->logits, bt->target, R, (int)VO, o->logit_scale, R);
    *loss = s->loss;
    return 0;
}

/* Gradient pointer of one tensor, or NULL when it is not trainable (or empty). */
static float *gslot(const Model *m, const BwdOptions *o, float *grads, const char *fmt, int l)
{
    char name[64];
    snprintf(name, sizeof name, fmt, l);
    const ModelTensor *t = model_find_tensor(m, name);
    if (!t || !t->numel) return NULL;
    if (o->trainable && !o->trainable[t - m->tensors]) return NULL;
    return grads + t->offset;
}

typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *win, *bin, *wout, *bout;
    int any;
} LayerG;

static LayerG layer_grads(const Model *m, const BwdOptions *o, float *grads, int l)
{
    LayerG g;
    g.wq = gslot(m, o, grads, "blocks.%d.attn.W_Q", l);
    g.bq = gslot(m, o, grads, "blocks.%d.attn.b_Q", l);
    g.wk = gslot(m, o, grads, "blocks.%d.attn.W_K", l);
    g.bk = gslot(m, o, grads, "blocks.%d.attn.b_K", l);
    g.wv = gslot(m, o, grads, "blocks.%d.attn.W_V", l);
    g.bv = gslot(m, o, grads, "blocks.%d.attn.b_V", l);
    g.wo = gslot(m, o, grads, "blocks.%d.attn.W_O", l);
    g.bo = gslot(m, o, grads, "blocks.%d.attn.b_O", l);
    g.win = gslot(m, o, grads, "blocks.%d.mlp.W_in", l);
    g.bin = gslot(m, o, grads, "blocks.%d.mlp.b_in", l);
    g.wout = gslot(m, o, grads, "blocks.%d.mlp.W_out", l);
    g.bout = gslot(m, o, grads, "blocks.%d.mlp.b_out", l);
    g.any = g.wq || g.bq || g.wk || g.bk || g.wv || g.bv || g.wo || g.bo || g.win || g.bin || g.wout || g.bout;
    return g;
}

/* Slice of head h of a per-layer weight gradient (NULL stays NULL). */
static float *hslice(float *g, size_t off)
{
    return g ? g + off : NULL;
}

void bwd_backward(BwdState *s, const Model *m, const BwdOptions *o, float *grads)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int B = s->B, T = s->T, R = s->R, L = s->L;
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head;
    size_t M = (size_t)c->d_mlp, VO = (size_t)c->d_vocab_out, BT = (size_t)B * T, Rz = (size_t)R;
    void (*mm)(float *, float *, float *, const float *, const float *, const float *, int, int, int) =
        o->naive ? bwd_matmul_naive : bwd_matmul;
    void (*attn)(float *, float *, float *, float *, const float *, const float *, const float *,
                 const float *, const float *, const int *, int, int, int, float) =
        o->naive ? bwd_attention_naive : bwd_attention;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;

    /* Which gradients are wanted: a layer's input gradient is needed only if something
     * trainable lies below it (an earlier block or the embeddings). */
    float *gW_E = gslot(m, o, grads, "embed.W_E", 0), *gW_pos = gslot(m, o, grads, "pos_embed.W_pos", 0);
    float *gW_U = gslot(m, o, grads, "unembed.W_U", 0), *gb_U = gslot(m, o, grads, "unembed.b_U", 0);
    LayerG *lg = xcalloc((size_t)(L > 0 ? L : 1), sizeof *lg);
    int *below = xcalloc((size_t)(L + 1), sizeof *below);   /* below[l]: trainable under block l */
    below[0] = gW_E || gW_pos;
    for (int l = 0; l < L; l++) {
        lg[l] = layer_grads(m, o, grads, l);
        below[l + 1] = below[l] || lg[l].any;
    }
    if (!below[L] && !gW_U && !gb_U) goto done;

    /* Unembed: d(final residual) at the loss rows. */
    float *dxf = s->dxg;   /* (R, C) */
    memset(dxf, 0, sizeof(float) * Rz * C);
    mm(below[L] ? dxf : NULL, gW_U, gb_U, s->dlogits, s->xg_out, p->W_U, R, (int)C, (int)VO);
    if (!below[L]) goto done;

    memset(s->dx, 0, sizeof(float) * BT * C);
    int nfull = L;
    if (s->sparse) {
        /* The last block at the loss rows; keys and values at every row. */
        int l = L - 1;
        LayerP w = layer_slices(p, c, l);
        LayerG g = lg[l];
        const float *x = s->x_in + (size_t)l * BT * C;
        const float *kv = s->qkv + (size_t)l * 3 * NH * BT * HD;
        /* MLP: dxf is the gradient of xg_out = xg_mid + mlp(xg_mid) */
        float *dh = s->dh;
        memset(dh, 0, sizeof(float) * Rz * M);
        mm(dh, g.wout, g.bout, dxf, s->hg, w.wout, R, (int)M, (int)C);
        bwd_relu(dh, dh, s->hg, Rz * M);
        mm(dxf, g.win, g.bin, dh, s->xg_mid, w.win, R, (int)C, (int)M);   /* dxf: now d xg_mid */
        /* attention output: xg_mid = xg + b_O + sum_h zg_h W_O[h] */
        if (g.bo) bias_grad(g.bo, dxf, R, (int)C);
        float *dk = s->dqkv, *dv = s->dqkv + NH * BT * HD;   /* (NH, B, T, HD) each */
        memset(s->dqkv, 0, sizeof(float) * 2 * NH * BT * HD);
        float *dqg = s->dqkv + 2 * NH * BT * HD;   /* (NH, R, HD) */
        memset(dqg, 0, sizeof(float) * NH * Rz * HD);
        for (size_t hh = 0; hh < NH; hh++) {
            float *dz_h = s->dz + hh * Rz * HD;
            memset(dz_h, 0, sizeof(float) * Rz * HD);
            mm(dz_h, hslice(g.wo, hh * HD * C), NULL, dxf, s->zg + hh * Rz * HD, w.wo + hh * HD * C, R, (int)HD,
               (int)C);
            bwd_attention_rows(dqg + hh * Rz * HD, dk + hh * BT * HD, dv + hh * BT * HD, s->scratch, dz_h,
                               s->attg + hh * Rz * T, s->qg + hh * Rz * HD, kv + hh * BT * HD,
                               kv + (NH + hh) * BT * HD, s->seq, s->lens, R, T, (int)HD, scale);
        }
        /* d xg (loss rows) = d xg_mid (residual) + dq W_Q^T; d x (every row) = dk W_K^T + dv W_V^T */
        for (size_t hh = 0; hh < NH; hh++) {
            mm(below[l] ? dxf : NULL, hslice(g.wq, hh * C * HD), hslice(g.bq, hh * HD), dqg + hh * Rz * HD, s->xg,
               w.wq + hh * C * HD, R, (int)C, (int)HD);
            mm(below[l] ? s->dx : NULL, hslice(g.wk, hh * C * HD), hslice(g.bk, hh * HD), dk + hh * BT * HD, x,
               w.wk + hh * C * HD, (int)BT, (int)C, (int)HD);
            mm(below[l] ? s->dx : NULL, hslice(g.wv, hh * C * HD), hslice(g.bv, hh * HD), dv + hh * BT * HD, x,
               w.wv + hh * C * HD, (int)BT, (int)C, (int)HD);
        }
        if (!below[l]) goto done;
        for (int r = 0; r < R; r++) {
            float *d = s->dx + ((size_t)s->seq[r] * T + s->pos[r]) * C;
            const float *e = dxf + (size_t)r * C;
            for (size_t i = 0; i < C; i++) d[i] += e[i];
        }
        nfull = L - 1;
    } else {
        /* scatter the loss rows' gradient into the full residual gradient */
        for (int r = 0; r < R; r++) {
            float *d = s->dx + ((size_t)s->seq[r] * T + s->pos[r]) * C;
            const float *e = dxf + (size_t)r * C;
            for (size_t i = 0; i < C; i++) d[i] += e[i];
        }
    }

    for (int l = nfull - 1; l >= 0; l--) {
        LayerP w = layer_slices(p, c, l);
        LayerG g = lg[l];
        float *dx = s->dx;   /* gradient of block l's output */
        const float *x = s->x_in + (size_t)l * BT * C;
        const float *xm = s->x_mid + (size_t)l * BT * C;
        const float *hid = s->h + (size_t)l * BT * M;
        const float *qkv = s->qkv + (size_t)l * 3 * NH * BT * HD;
        /* MLP */
        memset(s->dh, 0, sizeof(float) * BT * M);
        mm(s->dh, g.wout, g.bout, dx, hid, w.wout, (int)BT, (int)M, (int)C);
        bwd_relu(s->dh, s->dh, hid, BT * M);
        mm(dx, g.win, g.bin, s->dh, xm, w.win, (int)BT, (int)C, (int)M);   /* dx: now d x_mid */
        /* attention */
        if (g.bo) bias_grad(g.bo, dx, (int)BT, (int)C);
        memset(s->dqkv, 0, sizeof(float) * 3 * NH * BT * HD);
        for (size_t hh = 0; hh < NH; hh++) {
            float *dz_h = s->dz + hh * BT * HD;
            memset(dz_h, 0, sizeof(float) * BT * HD);
            mm(dz_h, hslice(g.wo, hh * HD * C), NULL, dx, s->z + ((size_t)l * NH + hh) * BT * HD,
               w.wo + hh * HD * C, (int)BT, (int)HD, (int)C);
            attn(s->dqkv + hh * BT * HD, s->dqkv + (NH + hh) * BT * HD, s->dqkv + (2 * NH + hh) * BT * HD, s->scratch,
                 dz_h, s->att + ((size_t)l * NH + hh) * BT * T, qkv + hh * BT * HD, qkv + (NH + hh) * BT * HD,
                 qkv + (2 * NH + hh) * BT * HD, s->lens, B, T, (int)HD, scale);
        }
        float *dxin = below[l] ? dx : NULL;   /* dx: now d x_in */
        for (size_t hh = 0; hh < NH; hh++) {
            mm(dxin, hslice(g.wq, hh * C * HD), hslice(g.bq, hh * HD), s->dqkv + hh * BT * HD, x,
               w.wq + hh * C * HD, (int)BT, (int)C, (int)HD);
            mm(dxin, hslice(g.wk, hh * C * HD), hslice(g.bk, hh * HD), s->dqkv + (NH + hh) * BT * HD, x,
               w.wk + hh * C * HD, (int)BT, (int)C, (int)HD);
            mm(dxin, hslice(g.wv, hh * C * HD), hslice(g.bv, hh * HD), s->dqkv + (2 * NH + hh) * BT * HD, x,
               w.wv + hh * C * HD, (int)BT, (int)C, (int)HD);
        }
        if (!below[l]) goto done;
    }
    bwd_embed(gW_E, gW_pos, s->dx, s->tokens, s->lens, B, T, (int)C);
done:
    free(lg);
    free(below);
}
