/* backward.c — see backward.h.
 *
 * Why ~1,500 lines in one file: the kernels, the general training pass and the two-block
 * fast path share the pass state (BwdState), its buffers and the query-through-keys helpers,
 * and tests/unit/test_backward.c checks the fast path against the general one. */
#include "train/backward.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
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

void bwd_rows_attend(float *a, float *pattern, const float *qt, const float *c, const float *x, const int *seq,
                     const int *pos, const int *lens, int R, int T, int C, float scale, int causal)
{
    /* a is (R, C), pattern is (R, T), qt is (R, C), c is (R), x is (B, T, C) */
    for (int r = 0; r < R; r++) {
        int b = seq[r], n = lens[b];
        int nk = causal ? pos[r] + 1 : n;
        if (nk > n) nk = n;
        float *P = pattern + (size_t)r * T;
        float *a_r = a + (size_t)r * C;
        const float *qt_r = qt + (size_t)r * C;
        const float *x_b = x + (size_t)b * T * C;
        for (int j = 0; j < T; j++) P[j] = 0.0f;
        for (int i = 0; i < C; i++) a_r[i] = 0.0f;
        float maxv = -INFINITY;
        for (int j = 0; j < nk; j++) {
            const float *x_j = x_b + (size_t)j * C;
            float s = 0.0f;
            for (int i = 0; i < C; i++) s += qt_r[i] * x_j[i];
            P[j] = scale * (s + c[r]);
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
            const float *x_j = x_b + (size_t)j * C;
            for (int i = 0; i < C; i++) a_r[i] += P[j] * x_j[i];
        }
    }
}

void bwd_rows_attend_backward(float *dx, float *dqt, float *dc, float *scratch, const float *da,
                              const float *pattern, const float *qt, const float *x, const int *seq,
                              const int *lens, int R, int T, int C, float scale)
{
    /* dx is (B, T, C), dqt and da and qt are (R, C), dc is (R), pattern is (R, T), scratch is (T) */
    for (int r = 0; r < R; r++) {
        int b = seq[r], n = lens[b];
        const float *P = pattern + (size_t)r * T;
        const float *da_r = da + (size_t)r * C, *qt_r = qt + (size_t)r * C;
        float *dqt_r = dqt + (size_t)r * C;
        const float *x_b = x + (size_t)b * T * C;
        float *dx_b = dx + (size_t)b * T * C;
        /* a = sum_j P_j x_j: dP_j = da . x_j, dx_j += P_j da */
        for (int j = 0; j < n; j++) {
            const float *x_j = x_b + (size_t)j * C;
            float *dx_j = dx_b + (size_t)j * C;
            float s = 0.0f, p = P[j];
            for (int i = 0; i < C; i++) {
                s += da_r[i] * x_j[i];
                dx_j[i] += p * da_r[i];
            }
            scratch[j] = s;
        }
        softmax_row_backward(scratch, P, n);
        /* logit_j = scale (qt . x_j + c) */
        float dcr = 0.0f;
        for (int j = 0; j < n; j++) {
            float g = scale * scratch[j];
            if (g == 0.0f) continue;
            dcr += g;
            const float *x_j = x_b + (size_t)j * C;
            float *dx_j = dx_b + (size_t)j * C;
            for (int i = 0; i < C; i++) {
                dqt_r[i] += g * x_j[i];
                dx_j[i] += g * qt_r[i];
            }
        }
        dc[r] += dcr;
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

/* Sequences per forward chunk of a full block (as runtime/forward.c: a chunk's activations
 * stay in cache through the block). */
#define BWD_CHUNK_ROWS 1024

/* Run the last block at the loss rows only when they are at most this fraction of rows. */
#define BWD_SPARSE_FRACTION 0.25

struct BwdState {
    /* the last forward */
    int B, T, R, L, sparse, nfull;
    const int32_t *tokens;
    const int *lens, *seq, *pos;
    const int32_t *target;
    const float *target_num;
    double loss;

    float *mem;
    size_t cap;
    /* full blocks 0..nfull-1 */
    float *x_in;    /* (nfull + 1, B, T, C): input of block l; [nfull] what comes after them */
    float *x_mid;   /* (nfull, B, T, C) after attention */
    float *qkv;     /* (nfull, 3, NH, B, T, HD) */
    float *att;     /* (nfull, NH, B, T, T) */
    float *z;       /* (nfull, NH, B, T, HD) */
    float *h;       /* (nfull, B, T, M) after ReLU */
    float *tab;     /* (3, NH, V + T, HD) block 0: W_E W_x[h] then W_pos W_x[h] */
    /* the rows where the loss counts */
    float *xg;      /* (R, C) input of the last block (sparse), final residual (full) */
    float *qg;      /* (NH, R, HD) */
    float *qt;      /* (NH, R, C) W_K q */
    float *cg;      /* (NH, R) q . b_K */
    float *attg;    /* (NH, R, T) */
    float *ag;      /* (NH, R, C) attention-weighted residual */
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
    float *dz;      /* (NH, max(BT, R), HD) */
    float *dh;      /* (max(BT, R), M) */
    float *da;      /* (R, C) */
    float *dqt;     /* (R, C) */
    float *dqg;     /* (NH, R, HD) */
    float *dc;      /* (R) */
    float *dtab;    /* (V + T, HD) */
    float *scratch; /* (T, T) */
    /* the two-block path (tb_forward) */
    int two_block;
    void *tb;       /* Tb */
    float *tbmem;
    size_t tbcap;
};

BwdState *bwd_new(void)
{
    return xcalloc(1, sizeof(BwdState));
}

void bwd_free(BwdState *s)
{
    if (!s) return;
    free(s->mem);
    free(s->tbmem);
    free(s->tb);
    free(s);
}

const float *bwd_logits(const BwdState *s)
{
    return s->logits;
}

static size_t rup(size_t n) { return (n + 15) & ~(size_t)15; }

/* One buffer of a pass and its size in floats. */
typedef struct {
    float **at;
    size_t n;
} Slot;

/* Point each of n slots at its own 16-float-aligned piece of one block, (re)allocating *mem
 * when *cap is short. */
static void carve(float **mem, size_t *cap, const Slot *slots, size_t n)
{
    size_t need = 0;
    for (size_t i = 0; i < n; i++) need += rup(slots[i].n);
    if (need > *cap) {
        free(*mem);
        *mem = xmalloc(need * sizeof(float));
        *cap = need;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *slots[i].at = *mem + off;
        off += rup(slots[i].n);
    }
}

/* C (M, N) = alpha op(A) op(B) + beta C, skipping empty products (C is scaled by beta). */
static void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

/* y (rows) += A (rows, cols) x (trans = 0), or y (cols) += A^T x (trans = 1). */
static void gemv(int trans, int rows, int cols, const float *A, int lda, const float *x, float *y)
{
    if (rows <= 0 || cols <= 0) return;
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, 1.0f, A, lda, x, 1, 1.0f, y, 1);
}

/* A (rows, cols) += x (rows) y (cols)^T */
static void ger(int rows, int cols, const float *x, const float *y, float *A, int lda)
{
    if (rows <= 0 || cols <= 0) return;
    cblas_sger(CblasRowMajor, rows, cols, 1.0f, x, 1, y, 1, A, lda);
}


typedef void (*MatmulFn)(float *, const float *, const float *, const float *, int, int, int, int);
typedef void (*AttnFn)(float *, float *, const float *, const float *, const float *, const int *, int, int,
                       int, float, int, int);
typedef void (*BMatmulFn)(float *, float *, float *, const float *, const float *, const float *, int, int, int);
typedef void (*BAttnFn)(float *, float *, float *, float *, const float *, const float *, const float *,
                        const float *, const float *, const int *, int, int, int, float);

/* Per-layer slices of a parameter block. */
typedef struct {
    const float *w[3], *b[3];   /* Q, K, V: (NH, C, HD), (NH, HD) */
    const float *wo, *bo, *win, *bin, *wout, *bout;
} LayerP;

static LayerP layer_slices(const ModelParams *p, const ModelConfig *c, int l)
{
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head, M = (size_t)c->d_mlp;
    LayerP s;
    s.w[0] = p->W_Q + (size_t)l * NH * C * HD;
    s.b[0] = p->b_Q + (size_t)l * NH * HD;
    s.w[1] = p->W_K + (size_t)l * NH * C * HD;
    s.b[1] = p->b_K + (size_t)l * NH * HD;
    s.w[2] = p->W_V + (size_t)l * NH * C * HD;
    s.b[2] = p->b_V + (size_t)l * NH * HD;
    s.wo = p->W_O + (size_t)l * NH * HD * C;
    s.bo = p->b_O + (size_t)l * C;
    s.win = p->W_in + (size_t)l * C * M;
    s.bin = p->b_in + (size_t)l * M;
    s.wout = p->W_out + (size_t)l * M * C;
    s.bout = p->b_out + (size_t)l * C;
    return s;
}

/* The last block's queries at the loss rows, read through the keys (both passes): head hh's
 * q (R, HD) = xg W_Q + b_Q, qt (R, C) = q W_K^T and c (R) = q . b_K, so that a key's logit is
 * qt . x_j + c without forming the keys. */
static void qk_forward(MatmulFn matmul, float *q, float *qt, float *cg, const float *xg, const LayerP *w, size_t hh,
                       int R, int C, int HD)
{
    size_t CH = (size_t)C * HD;
    matmul(q, xg, w->w[0] + hh * CH, w->b[0] + hh * HD, R, C, HD, 0);
    gemm(0, 1, R, C, HD, 1.0f, q, HD, w->w[1] + hh * CH, HD, 0.0f, qt, C);
    const float *bk = w->b[1] + hh * HD;
    for (int r = 0; r < R; r++) {
        float d = 0.0f;
        for (int e = 0; e < HD; e++) d += q[(size_t)r * HD + e] * bk[e];
        cg[r] = d;
    }
}

/* qk_forward backwards from dqt and dc (R): dq (R, HD) = dqt W_K + dc b_K, and into the key
 * weights (when trainable) gW_K += dqt^T q, gb_K += dc q. */
static void qk_backward(float *dq, float *gwk, float *gbk, const float *dqt, const float *dc, const float *q,
                        const float *wk, const float *bk, int R, int C, int HD)
{
    memset(dq, 0, sizeof(float) * (size_t)R * HD);
    gemm(0, 0, R, HD, C, 1.0f, dqt, C, wk, HD, 0.0f, dq, HD);
    if (gwk) gemm(1, 0, C, HD, R, 1.0f, dqt, C, q, HD, 1.0f, gwk, HD);
    for (int r = 0; r < R; r++)
        for (int e = 0; e < HD; e++) {
            dq[(size_t)r * HD + e] += dc[r] * bk[e];
            if (gbk) gbk[e] += dc[r] * q[(size_t)r * HD + e];
        }
}

static int check_batch(const Model *m, const BwdBatch *bt, StrBuf *err)
{
    const ModelConfig *c = &m->cfg;
    int B = bt->B, T = bt->T;
    if (B < 1 || T < 1 || T > c->n_ctx || bt->R < 0) {
        sb_printf(err, "batch of %d sequences of %d positions: expected B >= 1 and 1 <= T <= n_ctx (%d)", B, T,
                  c->n_ctx);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        if (bt->lens[b] < 1 || bt->lens[b] > T)
            return sb_fail(err, "sequence %d: length %d: expected 1..%d", b, bt->lens[b], T);
        for (int t = 0; t < T; t++) {
            int32_t id = bt->tokens[(size_t)b * T + t];
            if (id < 0 || id >= c->d_vocab) {
                sb_printf(err, "sequence %d, position %d: token row %d: expected 0..%d", b, t, (int)id,
                          c->d_vocab - 1);
                return -1;
            }
        }
    }
    for (int r = 0; r < bt->R; r++) {
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
    return 0;
}

static void tb_alloc(BwdState *s, const ModelConfig *c);
static int tb_forward(BwdState *s, const Model *m, const BwdBatch *bt, const BwdOptions *o);
static void tb_backward(BwdState *s, const Model *m, const BwdOptions *o, float *grads);

int bwd_forward(BwdState *s, const Model *m, const BwdBatch *bt, const BwdOptions *o, double *loss,
                StrBuf *err)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    if (check_batch(m, bt, err)) return -1;
    int B = bt->B, T = bt->T, R = bt->R, L = c->n_layers;
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head, V = (size_t)c->d_vocab;
    size_t M = (size_t)c->d_mlp, VO = (size_t)c->d_vocab_out, BT = (size_t)B * T, Rz = (size_t)R;
    int sparse = L > 0 && (double)R <= BWD_SPARSE_FRACTION * (double)BT;
    int nfull = sparse ? L - 1 : L;
    size_t NF = (size_t)nfull, BR = BT > Rz ? BT : Rz, TT = (size_t)T * T, VT = V + (size_t)T;
    /* every buffer of the pass, in one allocation */
    const Slot slots[] = {{&s->x_in, (NF + 1) * BT * C}, {&s->x_mid, NF * BT * C}, {&s->qkv, NF * 3 * NH * BT * HD},
                          {&s->att, NF * NH * BT * T}, {&s->z, NF * NH * BT * HD}, {&s->h, NF * BT * M},
                          {&s->tab, 3 * NH * VT * HD}, {&s->xg, Rz * C}, {&s->qg, NH * Rz * HD}, {&s->qt, NH * Rz * C},
                          {&s->cg, NH * Rz}, {&s->attg, NH * Rz * T}, {&s->ag, NH * Rz * C}, {&s->zg, NH * Rz * HD},
                          {&s->xg_mid, Rz * C}, {&s->hg, Rz * M}, {&s->xg_out, Rz * C}, {&s->logits, Rz * VO},
                          {&s->dlogits, Rz * VO}, {&s->dx, BT * C}, {&s->dxg, Rz * C}, {&s->dqkv, 3 * NH * BT * HD},
                          {&s->dz, NH * BR * HD}, {&s->dh, BR * M}, {&s->da, Rz * C}, {&s->dqt, Rz * C},
                          {&s->dqg, NH * Rz * HD}, {&s->dc, Rz}, {&s->dtab, VT * HD},
                          {&s->scratch, TT > (size_t)T ? TT : (size_t)T}};
    carve(&s->mem, &s->cap, slots, ARRAY_LEN(slots));
    s->B = B;
    s->T = T;
    s->R = R;
    s->L = L;
    s->sparse = sparse;
    s->nfull = nfull;
    s->tokens = bt->tokens;
    s->lens = bt->lens;
    s->seq = bt->seq;
    s->pos = bt->pos;
    s->target = bt->target;
    s->target_num = bt->target_num;

    s->two_block = L == 2 && sparse && !o->naive;
    if (s->two_block) {
        tb_alloc(s, c);
        tb_forward(s, m, bt, o);
        *loss = s->loss;
        return 0;
    }

    MatmulFn matmul = o->naive ? fwd_matmul_naive : fwd_matmul;
    AttnFn attention = o->naive ? fwd_attention_naive : fwd_attention;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;

    /* Block 0 reads the embedding, so its queries, keys and values are sums of a per-token
     * and a per-position row: (W_E[tok] + W_pos[t]) W = (W_E W)[tok] + (W_pos W)[t]. */
    if (nfull > 0) {
        LayerP w = layer_slices(p, c, 0);
        for (int x = 0; x < 3; x++)
            for (size_t hh = 0; hh < NH; hh++) {
                float *tE = s->tab + ((size_t)x * NH + hh) * VT * HD, *tP = tE + V * HD;
                matmul(tE, p->W_E, w.w[x] + hh * C * HD, NULL, (int)V, (int)C, (int)HD, 0);
                matmul(tP, p->W_pos, w.w[x] + hh * C * HD, NULL, T, (int)C, (int)HD, 0);
            }
    }

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
                float *out[3];
                for (int xx = 0; xx < 3; xx++) {
                    out[xx] = qkv + (((size_t)xx * NH + hh) * BT + R0) * HD;
                    if (l > 0) {
                        matmul(out[xx], x, w.w[xx] + hh * C * HD, w.b[xx] + hh * HD, (int)Rc, (int)C, (int)HD, 0);
                        continue;
                    }
                    const float *tE = s->tab + ((size_t)xx * NH + hh) * VT * HD, *tP = tE + V * HD;
                    const float *bias = w.b[xx] + hh * HD;
                    for (size_t r = 0; r < Rc; r++) {
                        const float *e = tE + (size_t)bt->tokens[R0 + r] * HD, *pp = tP + (r % (size_t)T) * HD;
                        float *o_r = out[xx] + r * HD;
                        for (size_t d = 0; d < HD; d++) o_r[d] = e[d] + pp[d] + bias[d];
                    }
                }
                float *pat = s->att + (((size_t)l * NH + hh) * B + (size_t)b0) * T * T;
                attention(s->z + ((size_t)l * NH + hh) * BT * HD + R0 * HD, pat, out[0], out[1], out[2],
                          bt->lens + b0, nb, T, (int)HD, scale, c->causal, 0);
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
    }

    /* What follows the full blocks, at the rows. */
    const float *xf = s->x_in + NF * BT * C;
    for (int r = 0; r < R; r++)
        memcpy(s->xg + (size_t)r * C, xf + ((size_t)bt->seq[r] * T + bt->pos[r]) * C, sizeof(float) * C);
    const float *xlast = s->xg;
    if (sparse) {
        /* the last block at the rows; keys and values through the residual */
        LayerP w = layer_slices(p, c, L - 1);
        for (size_t hh = 0; hh < NH; hh++) {
            float *qt = s->qt + hh * Rz * C, *cg = s->cg + hh * Rz;
            qk_forward(matmul, s->qg + hh * Rz * HD, qt, cg, s->xg, &w, hh, R, (int)C, (int)HD);
            bwd_rows_attend(s->ag + hh * Rz * C, s->attg + hh * Rz * T, qt, cg, xf, bt->seq, bt->pos, bt->lens, R, T,
                            (int)C, scale, c->causal);
            matmul(s->zg + hh * Rz * HD, s->ag + hh * Rz * C, w.w[2] + hh * C * HD, w.b[2] + hh * HD, R, (int)C,
                   (int)HD, 0);
        }
        memcpy(s->xg_mid, s->xg, sizeof(float) * Rz * C);
        matmul(s->xg_mid, NULL, NULL, w.bo, R, 0, (int)C, 1);
        for (size_t hh = 0; hh < NH; hh++)
            matmul(s->xg_mid, s->zg + hh * Rz * HD, w.wo + hh * HD * C, NULL, R, (int)HD, (int)C, 1);
        memcpy(s->xg_out, s->xg_mid, sizeof(float) * Rz * C);
        matmul(s->hg, s->xg_mid, w.win, w.bin, R, (int)C, (int)M, 0);
        fwd_relu(s->hg, s->hg, Rz * M);
        matmul(s->xg_out, s->hg, w.wout, w.bout, R, (int)M, (int)C, 1);
        xlast = s->xg_out;
    }
    matmul(s->logits, xlast, p->W_U, p->b_U, R, (int)C, (int)VO, 0);
    int norm = bt->norm > 0 ? bt->norm : R;
    if (m->output_numerical)
        s->loss = bwd_squared_error(s->dlogits, s->logits, bt->target_num, R, norm);
    else
        s->loss = bwd_crossentropy(s->dlogits, NULL, s->logits, bt->target, R, (int)VO, o->logit_scale, norm);
    *loss = s->loss;   /* the rows' sum over norm: the losses of shards add up */
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
    float *w[3], *b[3], *wo, *bo, *win, *bin, *wout, *bout;
    int any;
} LayerG;

static LayerG layer_grads(const Model *m, const BwdOptions *o, float *grads, int l)
{
    LayerG g;
    const char *wn[3] = {"blocks.%d.attn.W_Q", "blocks.%d.attn.W_K", "blocks.%d.attn.W_V"};
    const char *bn[3] = {"blocks.%d.attn.b_Q", "blocks.%d.attn.b_K", "blocks.%d.attn.b_V"};
    g.any = 0;
    for (int x = 0; x < 3; x++) {
        g.w[x] = gslot(m, o, grads, wn[x], l);
        g.b[x] = gslot(m, o, grads, bn[x], l);
        g.any |= g.w[x] || g.b[x];
    }
    g.wo = gslot(m, o, grads, "blocks.%d.attn.W_O", l);
    g.bo = gslot(m, o, grads, "blocks.%d.attn.b_O", l);
    g.win = gslot(m, o, grads, "blocks.%d.mlp.W_in", l);
    g.bin = gslot(m, o, grads, "blocks.%d.mlp.b_in", l);
    g.wout = gslot(m, o, grads, "blocks.%d.mlp.W_out", l);
    g.bout = gslot(m, o, grads, "blocks.%d.mlp.b_out", l);
    g.any |= g.wo || g.bo || g.win || g.bin || g.wout || g.bout;
    return g;
}

/* Slice of head h of a per-layer gradient (NULL stays NULL). */
static float *hs(float *g, size_t off)
{
    return g ? g + off : NULL;
}

/* dx (rows, C) = gradient of y = x + MLP(x) given dy in dx (in place):
 * the MLP's weight gradients, then dx += dh W_in^T. */
static void mlp_backward(BMatmulFn mm, float *dx, float *dh, const LayerG *g, const LayerP *w, const float *x,
                         const float *hid, int rows, int C, int M)
{
    memset(dh, 0, sizeof(float) * (size_t)rows * M);
    mm(dh, g->wout, g->bout, dx, hid, w->wout, rows, M, C);
    bwd_relu(dh, dh, hid, (size_t)rows * M);
    mm(dx, g->win, g->bin, dh, x, w->win, rows, C, M);
}

void bwd_backward(BwdState *s, const Model *m, const BwdOptions *o, float *grads)
{
    if (s->two_block) {
        tb_backward(s, m, o, grads);
        return;
    }
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int B = s->B, T = s->T, R = s->R, L = s->L;
    size_t C = (size_t)c->d_model, NH = (size_t)c->n_heads, HD = (size_t)c->d_head, V = (size_t)c->d_vocab;
    size_t M = (size_t)c->d_mlp, VO = (size_t)c->d_vocab_out, BT = (size_t)B * T, Rz = (size_t)R;
    size_t VT = V + (size_t)T;
    BMatmulFn mm = o->naive ? bwd_matmul_naive : bwd_matmul;
    BAttnFn attn = o->naive ? bwd_attention_naive : bwd_attention;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;

    /* A block's input gradient is needed only if something trainable lies below it. */
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

    /* unembed */
    const float *xlast = s->sparse ? s->xg_out : s->xg;
    memset(s->dxg, 0, sizeof(float) * Rz * C);
    mm(below[L] ? s->dxg : NULL, gW_U, gb_U, s->dlogits, xlast, p->W_U, R, (int)C, (int)VO);
    if (!below[L]) goto done;
    memset(s->dx, 0, sizeof(float) * BT * C);

    if (s->sparse) {
        int l = L - 1;
        LayerP w = layer_slices(p, c, l);
        LayerG g = lg[l];
        const float *xf = s->x_in + (size_t)s->nfull * BT * C;
        mlp_backward(mm, s->dxg, s->dh, &g, &w, s->xg_mid, s->hg, R, (int)C, (int)M);   /* dxg: d xg_mid */
        if (g.bo) bias_grad(g.bo, s->dxg, R, (int)C);
        for (size_t hh = 0; hh < NH; hh++) {
            float *dz = s->dz + hh * Rz * HD, *dq = s->dqg + hh * Rz * HD;
            const float *q = s->qg + hh * Rz * HD, *qt = s->qt + hh * Rz * C, *a = s->ag + hh * Rz * C;
            memset(dz, 0, sizeof(float) * Rz * HD);
            mm(dz, hs(g.wo, hh * HD * C), NULL, s->dxg, s->zg + hh * Rz * HD, w.wo + hh * HD * C, R, (int)HD, (int)C);
            /* z = a W_V + b_V */
            memset(s->da, 0, sizeof(float) * Rz * C);
            mm(s->da, hs(g.w[2], hh * C * HD), hs(g.b[2], hh * HD), dz, a, w.w[2] + hh * C * HD, R, (int)C, (int)HD);
            memset(s->dqt, 0, sizeof(float) * Rz * C);
            memset(s->dc, 0, sizeof(float) * Rz);
            bwd_rows_attend_backward(s->dx, s->dqt, s->dc, s->scratch, s->da, s->attg + hh * Rz * T, qt, xf, s->seq,
                                     s->lens, R, T, (int)C, scale);
            qk_backward(dq, hs(g.w[1], hh * C * HD), hs(g.b[1], hh * HD), s->dqt, s->dc, q, w.w[1] + hh * C * HD,
                        w.b[1] + hh * HD, R, (int)C, (int)HD);
        }
        /* q = xg W_Q + b_Q; then the rows' gradient joins the keys' and values' */
        for (size_t hh = 0; hh < NH; hh++)
            mm(below[l] ? s->dxg : NULL, hs(g.w[0], hh * C * HD), hs(g.b[0], hh * HD), s->dqg + hh * Rz * HD, s->xg,
               w.w[0] + hh * C * HD, R, (int)C, (int)HD);
        if (!below[l]) goto done;
    }
    for (int r = 0; r < R; r++) {
        float *d = s->dx + ((size_t)s->seq[r] * T + s->pos[r]) * C;
        const float *e = s->dxg + (size_t)r * C;
        for (size_t i = 0; i < C; i++) d[i] += e[i];
    }

    for (int l = s->nfull - 1; l >= 0; l--) {
        LayerP w = layer_slices(p, c, l);
        LayerG g = lg[l];
        float *dx = s->dx;   /* gradient of block l's output */
        const float *x = s->x_in + (size_t)l * BT * C;
        const float *xm = s->x_mid + (size_t)l * BT * C;
        const float *qkv = s->qkv + (size_t)l * 3 * NH * BT * HD;
        mlp_backward(mm, dx, s->dh, &g, &w, xm, s->h + (size_t)l * BT * M, (int)BT, (int)C, (int)M);   /* d x_mid */
        if (g.bo) bias_grad(g.bo, dx, (int)BT, (int)C);
        memset(s->dqkv, 0, sizeof(float) * 3 * NH * BT * HD);
        for (size_t hh = 0; hh < NH; hh++) {
            float *dz = s->dz + hh * BT * HD;
            memset(dz, 0, sizeof(float) * BT * HD);
            mm(dz, hs(g.wo, hh * HD * C), NULL, dx, s->z + ((size_t)l * NH + hh) * BT * HD, w.wo + hh * HD * C,
               (int)BT, (int)HD, (int)C);
            attn(s->dqkv + hh * BT * HD, s->dqkv + (NH + hh) * BT * HD, s->dqkv + (2 * NH + hh) * BT * HD,
                 s->scratch, dz, s->att + ((size_t)l * NH + hh) * BT * T, qkv + hh * BT * HD,
                 qkv + (NH + hh) * BT * HD, qkv + (2 * NH + hh) * BT * HD, s->lens, B, T, (int)HD, scale);
        }
        if (l > 0) {
            float *dxin = below[l] ? dx : NULL;   /* dx becomes d x_in */
            for (int xx = 0; xx < 3; xx++)
                for (size_t hh = 0; hh < NH; hh++)
                    mm(dxin, hs(g.w[xx], hh * C * HD), hs(g.b[xx], hh * HD), s->dqkv + ((size_t)xx * NH + hh) * BT * HD,
                       x, w.w[xx] + hh * C * HD, (int)BT, (int)C, (int)HD);
            if (!below[l]) goto done;
            continue;
        }
        /* block 0: gather each gradient by token and by position, then through the tables */
        for (int xx = 0; xx < 3; xx++)
            for (size_t hh = 0; hh < NH; hh++) {
                const float *d = s->dqkv + ((size_t)xx * NH + hh) * BT * HD;
                float *dE = s->dtab, *dP = s->dtab + V * HD;
                memset(s->dtab, 0, sizeof(float) * VT * HD);
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < s->lens[b]; t++) {
                        const float *d_r = d + ((size_t)b * T + t) * HD;
                        float *e = dE + (size_t)s->tokens[(size_t)b * T + t] * HD, *pp = dP + (size_t)t * HD;
                        for (size_t k = 0; k < HD; k++) {
                            e[k] += d_r[k];
                            pp[k] += d_r[k];
                        }
                    }
                float *gb = hs(g.b[xx], hh * HD);
                if (gb) bias_grad(gb, dE, (int)V, (int)HD);
                float *gw = hs(g.w[xx], hh * C * HD);
                mm(gW_E, gw, NULL, dE, p->W_E, w.w[xx] + hh * C * HD, (int)V, (int)C, (int)HD);
                mm(gW_pos, gw, NULL, dP, p->W_pos, w.w[xx] + hh * C * HD, T, (int)C, (int)HD);
            }
    }
    bwd_embed(gW_E, gW_pos, s->dx, s->tokens, s->lens, B, T, (int)C);
done:
    free(lg);
    free(below);
}

/* ---------------------------------------------------------------- shards and threads */

#define BWD_MAX_SHARDS 8
#define BWD_MIN_SHARD 48  /* sequences: big shards keep the per-shard constant work small */

typedef struct {
    BwdState *st;
    float *g;               /* (num_params) this shard's gradient */
    int *seq, *pos;
    int32_t *target;
    float *tnum;
    size_t rcap;
    BwdBatch b;
    double loss;
    int rc;
    StrBuf err;
} Shard;

struct BwdPool {
    int nthreads;
    int saved_blas;
    Shard sh[BWD_MAX_SHARDS];
    size_t gcap;
    /* the step being run */
    const Model *m;
    const BwdOptions *o;
    float *grads;
    int nshards;
};

BwdPool *bwd_pool_new(int nthreads)
{
    BwdPool *p = xcalloc(1, sizeof *p);
    p->nthreads = nthreads < 1 ? 1 : nthreads;
    /* Parallelism comes from shards; BLAS inside a shard stays on its thread, so results
     * never depend on how many threads BLAS would have used. */
    p->saved_blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int i = 0; i < BWD_MAX_SHARDS; i++) {
        p->sh[i].st = bwd_new();
        sb_init(&p->sh[i].err);
    }
    return p;
}

void bwd_pool_free(BwdPool *p)
{
    if (!p) return;
    for (int i = 0; i < BWD_MAX_SHARDS; i++) {
        Shard *s = &p->sh[i];
        bwd_free(s->st);
        free(s->g);
        free(s->seq);
        free(s->pos);
        free(s->target);
        free(s->tnum);
        sb_free(&s->err);
    }
    openblas_set_num_threads(p->saved_blas);
    free(p);
}

int bwd_pool_threads(const BwdPool *p)
{
    return p->nthreads;
}

typedef struct {
    BwdPool *p;
    int thread, nthreads, ntasks;
    void (*fn)(void *, int, int);
    void *ctx;
} Worker;

static void *worker_main(void *arg)
{
    Worker *w = arg;
    for (int t = w->thread; t < w->ntasks; t += w->nthreads) w->fn(w->ctx, t, w->thread);
    return NULL;
}

void bwd_pool_run(BwdPool *p, int ntasks, void (*fn)(void *ctx, int task, int thread), void *ctx)
{
    int n = p->nthreads < ntasks ? p->nthreads : ntasks;
    if (n <= 1) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    Worker w[64];
    pthread_t th[64];
    if (n > 64) n = 64;
    int started[64] = {0};
    for (int i = 0; i < n; i++) w[i] = (Worker){p, i, n, ntasks, fn, ctx};
    for (int i = 1; i < n; i++) started[i] = pthread_create(&th[i], NULL, worker_main, &w[i]) == 0;
    /* a thread that could not start: its tasks run here, after ours */
    worker_main(&w[0]);
    for (int i = 1; i < n; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else worker_main(&w[i]);
    }
}

static void shard_task(void *ctx, int k, int thread)
{
    (void)thread;
    BwdPool *p = ctx;
    Shard *s = &p->sh[k];
    memset(s->g, 0, sizeof(float) * p->m->num_params);
    sb_clear(&s->err);
    s->rc = bwd_forward(s->st, p->m, &s->b, p->o, &s->loss, &s->err);
    if (!s->rc) bwd_backward(s->st, p->m, p->o, s->g);
}

/* Add the shards' gradients in shard order, a slice of the parameters per task. */
#define BWD_REDUCE_SLICES 16

static void reduce_task(void *ctx, int k, int thread)
{
    (void)thread;
    BwdPool *p = ctx;
    size_t n = p->m->num_params, lo = n * (size_t)k / BWD_REDUCE_SLICES, hi = n * (size_t)(k + 1) / BWD_REDUCE_SLICES;
    float *g = p->grads;
    memcpy(g + lo, p->sh[0].g + lo, sizeof(float) * (hi - lo));
    for (int s = 1; s < p->nshards; s++) {
        const float *gs = p->sh[s].g;
        for (size_t i = lo; i < hi; i++) g[i] += gs[i];
    }
}

int bwd_pool_step(BwdPool *p, const Model *m, const BwdBatch *b, const BwdOptions *o, float *grads,
                  double *loss, StrBuf *err)
{
    if (check_batch(m, b, err)) return -1;
    int B = b->B, T = b->T;
    int ns = (B + BWD_MIN_SHARD - 1) / BWD_MIN_SHARD;
    if (ns > BWD_MAX_SHARDS) ns = BWD_MAX_SHARDS;
    if (ns < 1) ns = 1;
    int norm = b->norm > 0 ? b->norm : b->R;
    if (m->num_params > p->gcap) {
        for (int k = 0; k < BWD_MAX_SHARDS; k++) {
            free(p->sh[k].g);
            p->sh[k].g = NULL;
        }
        p->gcap = m->num_params;
    }
    for (int k = 0; k < ns; k++) {
        Shard *s = &p->sh[k];
        if (!s->g) s->g = xmalloc(sizeof(float) * (p->gcap ? p->gcap : 1));
        int s0 = (int)((long)B * k / ns), s1 = (int)((long)B * (k + 1) / ns);
        size_t nr = 0;
        for (int r = 0; r < b->R; r++) nr += b->seq[r] >= s0 && b->seq[r] < s1;
        if (nr > s->rcap) {
            s->seq = xrealloc(s->seq, sizeof(int) * nr);
            s->pos = xrealloc(s->pos, sizeof(int) * nr);
            s->target = xrealloc(s->target, sizeof(int32_t) * nr);
            s->tnum = xrealloc(s->tnum, sizeof(float) * nr);
            s->rcap = nr;
        }
        int R = 0;
        for (int r = 0; r < b->R; r++) {
            if (b->seq[r] < s0 || b->seq[r] >= s1) continue;
            s->seq[R] = b->seq[r] - s0;
            s->pos[R] = b->pos[r];
            s->target[R] = b->target ? b->target[r] : 0;
            s->tnum[R] = b->target_num ? b->target_num[r] : 0.0f;
            R++;
        }
        s->b = (BwdBatch){s1 - s0, T, b->tokens + (size_t)s0 * T, b->lens + s0, R, s->seq, s->pos, s->target,
                          s->tnum, norm};
    }
    p->m = m;
    p->o = o;
    p->grads = grads;
    p->nshards = ns;
    bwd_pool_run(p, ns, shard_task, p);
    double total = 0;
    for (int k = 0; k < ns; k++) {
        if (p->sh[k].rc) {
            sb_puts(err, p->sh[k].err.s);
            return -1;
        }
        total += p->sh[k].loss;
    }
    bwd_pool_run(p, BWD_REDUCE_SLICES, reduce_task, p);
    *loss = total;
    return 0;
}

/* ---------------------------------------------------------------- two blocks, few rows
 *
 * The compiled paper programs have two blocks and are trained at one position. Then block
 * 0 reads only the embedding and block 1 is needed only at the loss rows, and the whole pass
 * can avoid every dense (B*T, C) product. Block 0's output at row j is
 *     x_j = E[tok_j] + P[j] + b_O0 + sum_h z_hj W_O0[h] + h_j W_out0 + b_out0
 * (E = W_E, P = W_pos, z the heads' outputs, h the MLP's hidden units), and its MLP input
 * is u_j = (E W_in)[tok_j] + (P W_in)[j] + b_O0 W_in + b_in + sum_h z_hj (W_O0[h] W_in).
 * Block 1 at row r needs x_j only through qt_r . x_j (its attention logits) and
 * sum_j P_rj x_j (its values), both of which split over the same factors. Gradients flow
 * back through the factors too: into z and h at every row (O(T) per row and factor), into
 * E, P and the weights through small products. Costs per sequence are O(T * (HD + M) *
 * HD + T^2 * HD) instead of O(T * C * (HD + M)).
 *
 * tb_forward / tb_backward replace the general pass when n_layers == 2 and the rows are
 * few; tests/unit/test_backward.c checks them against finite differences and against the
 * general pass (run with naive kernels). */

typedef struct {
    /* block 0 */
    float *Gm;      /* (NH, HD, M) W_O0[h] W_in0 */
    float *tin;     /* (V + T, M) W_E W_in0, then W_pos W_in0 */
    float *cin;     /* (M) b_O0 W_in0 + b_in0 */
    float *hid;     /* (B, T, M) block 0's hidden units after ReLU */
    float *bsum;    /* (C) b_O0 + b_out0 */
    /* block 1 at the rows, per head of block 1 */
    float *zr;      /* (NH, R, HD) block 0's head outputs at the rows */
    float *hr;      /* (R, M) block 0's hidden units at the rows */
    float *EQ;      /* (NH, R, V) qt W_E^T */
    float *PQ;      /* (NH, R, T) qt W_pos^T */
    float *KO;      /* (NH, NH, R, HD) [h1][h0] qt W_O0[h0]^T */
    float *KM;      /* (NH, R, M) qt W_out0^T */
    float *kc;      /* (NH, R) qt . bsum + c */
    float *Ptok;    /* (NH, R, V) attention mass per token */
    float *PZ;      /* (NH, NH, R, HD) sum_j P_rj z_h0j */
    float *PH;      /* (NH, R, M) sum_j P_rj h_j */
    /* backward */
    float *dz0;     /* (NH, B, T, HD) */
    float *dh0;     /* (B, T, M) */
    float *DE;      /* (R, V) */
    float *DP;      /* (R, T) */
    float *DO;      /* (NH, R, HD) */
    float *DM;      /* (R, M) */
    float *dcst;    /* (R) */
    float *g;       /* (R, T) scale * dS */
    float *Gtok;    /* (R, V) */
    float *GZ;      /* (NH, R, HD) */
    float *GH;      /* (R, M) */
    float *DU;      /* (V + T, M) du summed by token, then by position */
    float *ZU;      /* (HD, M) z_h^T du */
    float *tmp;     /* (R, max(C, M)) */
    float *onehot;  /* (B, T, V) 1 at each row's token: sums by token are products with it */
    float *ones;    /* (B) */
} Tb;

static Tb *tb_of(BwdState *s)
{
    return (Tb *)s->tb;
}

static void tb_alloc(BwdState *s, const ModelConfig *c)
{
    size_t NH = (size_t)c->n_heads, HD = (size_t)c->d_head, M = (size_t)c->d_mlp, C = (size_t)c->d_model;
    size_t V = (size_t)c->d_vocab, T = (size_t)s->T, R = (size_t)s->R, BT = (size_t)s->B * T, VT = V + T;
    size_t tmp = R * (C > M ? C : M);
    if (tmp < R * HD) tmp = R * HD;
    tmp += C + M + 16;
    if (!s->tb) s->tb = xcalloc(1, sizeof(Tb));
    Tb *tb = s->tb;
    const Slot slots[] = {{&tb->Gm, NH * HD * M}, {&tb->tin, VT * M}, {&tb->cin, M}, {&tb->hid, BT * M}, {&tb->bsum, C},
                          {&tb->zr, NH * R * HD}, {&tb->hr, R * M}, {&tb->EQ, NH * R * V}, {&tb->PQ, NH * R * T},
                          {&tb->KO, NH * NH * R * HD}, {&tb->KM, NH * R * M}, {&tb->kc, NH * R},
                          {&tb->Ptok, NH * R * V}, {&tb->PZ, NH * NH * R * HD}, {&tb->PH, NH * R * M},
                          {&tb->dz0, NH * BT * HD}, {&tb->dh0, BT * M}, {&tb->DE, R * V}, {&tb->DP, R * T},
                          {&tb->DO, NH * R * HD}, {&tb->DM, R * M}, {&tb->dcst, R}, {&tb->g, R * T}, {&tb->Gtok, R * V},
                          {&tb->GZ, NH * R * HD}, {&tb->GH, R * M}, {&tb->DU, VT * M}, {&tb->ZU, HD * M},
                          {&tb->tmp, tmp}, {&tb->onehot, BT * V}, {&tb->ones, (size_t)s->B}};
    carve(&s->tbmem, &s->tbcap, slots, ARRAY_LEN(slots));
}

static int tb_forward(BwdState *s, const Model *m, const BwdBatch *bt, const BwdOptions *o)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int B = bt->B, T = bt->T, R = bt->R;
    int C = c->d_model, NH = c->n_heads, HD = c->d_head, M = c->d_mlp, V = c->d_vocab, VO = c->d_vocab_out;
    size_t BT = (size_t)B * T, Rz = (size_t)R, VT = (size_t)V + T;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;
    Tb *tb = tb_of(s);
    LayerP w0 = layer_slices(p, c, 0), w1 = layer_slices(p, c, 1);

    memset(tb->onehot, 0, sizeof(float) * BT * V);
    for (size_t r = 0; r < BT; r++) tb->onehot[r * V + bt->tokens[r]] = 1.0f;
    for (int b = 0; b < B; b++) tb->ones[b] = 1.0f;

    /* block 0: queries, keys, values from the tables; attention; MLP input from factors */
    for (int x = 0; x < 3; x++)
        for (int h = 0; h < NH; h++) {
            float *tE = s->tab + ((size_t)x * NH + h) * VT * HD, *tP = tE + (size_t)V * HD;
            gemm(0, 0, V, HD, C, 1.0f, p->W_E, C, w0.w[x] + (size_t)h * C * HD, HD, 0.0f, tE, HD);
            gemm(0, 0, T, HD, C, 1.0f, p->W_pos, C, w0.w[x] + (size_t)h * C * HD, HD, 0.0f, tP, HD);
            const float *bias = w0.b[x] + (size_t)h * HD;
            float *out = s->qkv + ((size_t)x * NH + h) * BT * HD;
            for (int t = 0; t < T; t++)
                for (int d = 0; d < HD; d++) out[(size_t)t * HD + d] = tP[(size_t)t * HD + d] + bias[d];
            for (int b = 1; b < B; b++) memcpy(out + (size_t)b * T * HD, out, sizeof(float) * (size_t)T * HD);
            gemm(0, 0, (int)BT, HD, V, 1.0f, tb->onehot, V, tE, HD, 1.0f, out, HD);
        }
    for (int h = 0; h < NH; h++) {
        float *q = s->qkv + (size_t)h * BT * HD, *k = s->qkv + ((size_t)NH + h) * BT * HD;
        float *v = s->qkv + ((size_t)2 * NH + h) * BT * HD;
        fwd_attention(s->z + (size_t)h * BT * HD, s->att + (size_t)h * BT * T, q, k, v, bt->lens, B, T, HD, scale,
                      c->causal, 0);
        gemm(0, 0, HD, M, C, 1.0f, w0.wo + (size_t)h * HD * C, C, w0.win, M, 0.0f, tb->Gm + (size_t)h * HD * M, M);
    }
    gemm(0, 0, V, M, C, 1.0f, p->W_E, C, w0.win, M, 0.0f, tb->tin, M);
    gemm(0, 0, T, M, C, 1.0f, p->W_pos, C, w0.win, M, 0.0f, tb->tin + (size_t)V * M, M);
    for (int j = 0; j < M; j++) {
        float acc = w0.bin[j];
        for (int i = 0; i < C; i++) acc += w0.bo[i] * w0.win[(size_t)i * M + j];
        tb->cin[j] = acc;
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < M; j++) tb->hid[(size_t)t * M + j] = tb->tin[((size_t)V + t) * M + j] + tb->cin[j];
    for (int b = 1; b < B; b++) memcpy(tb->hid + (size_t)b * T * M, tb->hid, sizeof(float) * (size_t)T * M);
    gemm(0, 0, (int)BT, M, V, 1.0f, tb->onehot, V, tb->tin, M, 1.0f, tb->hid, M);
    for (int h = 0; h < NH; h++)
        gemm(0, 0, (int)BT, M, HD, 1.0f, s->z + (size_t)h * BT * HD, HD, tb->Gm + (size_t)h * HD * M, M, 1.0f, tb->hid, M);
    fwd_relu(tb->hid, tb->hid, BT * M);
    for (int i = 0; i < C; i++) tb->bsum[i] = w0.bo[i] + w0.bout[i];

    /* block 0's output at the rows, explicitly */
    for (int r = 0; r < R; r++) {
        size_t row = (size_t)bt->seq[r] * T + bt->pos[r];
        for (int h = 0; h < NH; h++)
            memcpy(tb->zr + ((size_t)h * Rz + r) * HD, s->z + (size_t)h * BT * HD + row * HD, sizeof(float) * HD);
        memcpy(tb->hr + (size_t)r * M, tb->hid + row * M, sizeof(float) * M);
        float *x = s->xg + (size_t)r * C;
        const float *e = p->W_E + (size_t)bt->tokens[row] * C, *pp = p->W_pos + (size_t)bt->pos[r] * C;
        for (int i = 0; i < C; i++) x[i] = e[i] + pp[i] + tb->bsum[i];
    }
    for (int h = 0; h < NH; h++)
        gemm(0, 0, R, C, HD, 1.0f, tb->zr + (size_t)h * Rz * HD, HD, w0.wo + (size_t)h * HD * C, C, 1.0f, s->xg, C);
    gemm(0, 0, R, C, M, 1.0f, tb->hr, M, w0.wout, C, 1.0f, s->xg, C);

    /* block 1 at the rows */
    for (int h1 = 0; h1 < NH; h1++) {
        float *qt = s->qt + (size_t)h1 * Rz * C, *cg = s->cg + (size_t)h1 * Rz;
        qk_forward(fwd_matmul, s->qg + (size_t)h1 * Rz * HD, qt, cg, s->xg, &w1, (size_t)h1, R, C, HD);
        float *EQ = tb->EQ + (size_t)h1 * Rz * V, *PQ = tb->PQ + (size_t)h1 * Rz * T, *KM = tb->KM + (size_t)h1 * Rz * M;
        float *kc = tb->kc + (size_t)h1 * Rz;
        gemm(0, 1, R, V, C, 1.0f, qt, C, p->W_E, C, 0.0f, EQ, V);
        gemm(0, 1, R, T, C, 1.0f, qt, C, p->W_pos, C, 0.0f, PQ, T);
        gemm(0, 1, R, M, C, 1.0f, qt, C, w0.wout, C, 0.0f, KM, M);
        for (int h0 = 0; h0 < NH; h0++)
            gemm(0, 1, R, HD, C, 1.0f, qt, C, w0.wo + (size_t)h0 * HD * C, C, 0.0f,
                 tb->KO + ((size_t)h1 * NH + h0) * Rz * HD, HD);
        for (int r = 0; r < R; r++) {
            float d = cg[r];
            for (int i = 0; i < C; i++) d += qt[(size_t)r * C + i] * tb->bsum[i];
            kc[r] = d;
        }
        float *Ptok = tb->Ptok + (size_t)h1 * Rz * V, *PH = tb->PH + (size_t)h1 * Rz * M;
        memset(Ptok, 0, sizeof(float) * Rz * V);
        memset(PH, 0, sizeof(float) * Rz * M);
        for (int h0 = 0; h0 < NH; h0++) memset(tb->PZ + ((size_t)h1 * NH + h0) * Rz * HD, 0, sizeof(float) * Rz * HD);
        for (int r = 0; r < R; r++) {
            int b = bt->seq[r], n = bt->lens[b];
            int nk = c->causal ? bt->pos[r] + 1 : n;
            if (nk > n) nk = n;
            float *Pr = s->attg + ((size_t)h1 * Rz + r) * T;
            const int32_t *tok = bt->tokens + (size_t)b * T;
            const float *hb = tb->hid + (size_t)b * T * M;
            for (int j = 0; j < T; j++) Pr[j] = 0.0f;
            /* logits: qt . x_j through the factors (token, position, heads' outputs, hidden units) */
            for (int j = 0; j < nk; j++) Pr[j] = EQ[(size_t)r * V + tok[j]] + PQ[(size_t)r * T + j] + kc[r];
            for (int h0 = 0; h0 < NH; h0++)
                gemv(0, nk, HD, s->z + (size_t)h0 * BT * HD + (size_t)b * T * HD, HD,
                     tb->KO + (((size_t)h1 * NH + h0) * Rz + r) * HD, Pr);
            gemv(0, nk, M, hb, M, KM + (size_t)r * M, Pr);
            float maxv = -INFINITY;
            for (int j = 0; j < nk; j++) {
                Pr[j] *= scale;
                if (Pr[j] > maxv) maxv = Pr[j];
            }
            float sum = 0.0f;
            for (int j = 0; j < nk; j++) {
                Pr[j] = expf(Pr[j] - maxv);
                sum += Pr[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < nk; j++) {
                Pr[j] *= inv;
                Ptok[(size_t)r * V + tok[j]] += Pr[j];
            }
            /* the attention-weighted factors */
            for (int h0 = 0; h0 < NH; h0++)
                gemv(1, nk, HD, s->z + (size_t)h0 * BT * HD + (size_t)b * T * HD, HD, Pr,
                     tb->PZ + (((size_t)h1 * NH + h0) * Rz + r) * HD);
            gemv(1, nk, M, hb, M, Pr, PH + (size_t)r * M);
        }
        /* a = Ptok E + P W_pos + sum_h0 PZ W_O0[h0] + PH W_out0 + bsum (the weights sum to 1) */
        float *a = s->ag + (size_t)h1 * Rz * C;
        for (int r = 0; r < R; r++) memcpy(a + (size_t)r * C, tb->bsum, sizeof(float) * C);
        gemm(0, 0, R, C, V, 1.0f, Ptok, V, p->W_E, C, 1.0f, a, C);
        gemm(0, 0, R, C, T, 1.0f, s->attg + (size_t)h1 * Rz * T, T, p->W_pos, C, 1.0f, a, C);
        for (int h0 = 0; h0 < NH; h0++)
            gemm(0, 0, R, C, HD, 1.0f, tb->PZ + ((size_t)h1 * NH + h0) * Rz * HD, HD, w0.wo + (size_t)h0 * HD * C, C,
                 1.0f, a, C);
        gemm(0, 0, R, C, M, 1.0f, PH, M, w0.wout, C, 1.0f, a, C);
        fwd_matmul(s->zg + (size_t)h1 * Rz * HD, a, w1.w[2] + (size_t)h1 * C * HD, w1.b[2] + (size_t)h1 * HD, R, C, HD,
                   0);
    }
    memcpy(s->xg_mid, s->xg, sizeof(float) * Rz * C);
    fwd_matmul(s->xg_mid, NULL, NULL, w1.bo, R, 0, C, 1);
    for (int h = 0; h < NH; h++)
        fwd_matmul(s->xg_mid, s->zg + (size_t)h * Rz * HD, w1.wo + (size_t)h * HD * C, NULL, R, HD, C, 1);
    memcpy(s->xg_out, s->xg_mid, sizeof(float) * Rz * C);
    fwd_matmul(s->hg, s->xg_mid, w1.win, w1.bin, R, C, M, 0);
    fwd_relu(s->hg, s->hg, Rz * M);
    fwd_matmul(s->xg_out, s->hg, w1.wout, w1.bout, R, M, C, 1);
    fwd_matmul(s->logits, s->xg_out, p->W_U, p->b_U, R, C, VO, 0);
    int norm = bt->norm > 0 ? bt->norm : R;
    if (m->output_numerical)
        s->loss = bwd_squared_error(s->dlogits, s->logits, bt->target_num, R, norm);
    else
        s->loss = bwd_crossentropy(s->dlogits, NULL, s->logits, bt->target, R, VO, o->logit_scale, norm);
    return 0;
}

/* g (N) += column sums of A (rows, N) weighted by w (rows) */
static void add_weighted_rows(float *g, const float *w, const float *A, int rows, int N)
{
    for (int r = 0; r < rows; r++) {
        float k = w ? w[r] : 1.0f;
        if (k == 0.0f) continue;
        const float *a = A + (size_t)r * N;
        for (int j = 0; j < N; j++) g[j] += k * a[j];
    }
}

static void tb_backward(BwdState *s, const Model *m, const BwdOptions *o, float *grads)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int B = s->B, T = s->T, R = s->R;
    int C = c->d_model, NH = c->n_heads, HD = c->d_head, M = c->d_mlp, V = c->d_vocab, VO = c->d_vocab_out;
    size_t BT = (size_t)B * T, Rz = (size_t)R;
    float scale = c->use_attn_scale ? (float)(1.0 / c->attn_scale) : 1.0f;
    Tb *tb = tb_of(s);
    LayerP w0 = layer_slices(p, c, 0), w1 = layer_slices(p, c, 1);
    LayerG g0 = layer_grads(m, o, grads, 0), g1 = layer_grads(m, o, grads, 1);
    float *gE = gslot(m, o, grads, "embed.W_E", 0), *gP = gslot(m, o, grads, "pos_embed.W_pos", 0);
    float *gU = gslot(m, o, grads, "unembed.W_U", 0), *gbU = gslot(m, o, grads, "unembed.b_U", 0);
    int below1 = gE || gP || g0.any;   /* anything trainable under block 1 */
    if (!below1 && !g1.any && !gU && !gbU) return;

    memset(s->dxg, 0, sizeof(float) * Rz * C);
    bwd_matmul(s->dxg, gU, gbU, s->dlogits, s->xg_out, p->W_U, R, C, VO);
    if (!below1 && !g1.any) return;
    /* block 1 at the rows */
    mlp_backward(bwd_matmul, s->dxg, s->dh, &g1, &w1, s->xg_mid, s->hg, R, C, M);   /* dxg: d xg_mid */
    if (g1.bo) bias_grad(g1.bo, s->dxg, R, C);
    memset(tb->dz0, 0, sizeof(float) * (size_t)NH * BT * HD);
    memset(tb->dh0, 0, sizeof(float) * BT * M);
    float *gbsum = (g0.bo || g0.bout) ? tb->tmp : NULL;   /* gradient of bsum = b_O0 + b_out0 */
    float bs[4096];
    float *gb = C <= 4096 ? bs : xcalloc((size_t)C, sizeof(float));
    memset(gb, 0, sizeof(float) * (size_t)C);
    (void)gbsum;
    for (int h1 = 0; h1 < NH; h1++) {
        float *dz = s->dz + (size_t)h1 * Rz * HD, *dq = s->dqg + (size_t)h1 * Rz * HD;
        const float *q = s->qg + (size_t)h1 * Rz * HD, *qt = s->qt + (size_t)h1 * Rz * C, *a = s->ag + (size_t)h1 * Rz * C;
        const float *P = s->attg + (size_t)h1 * Rz * T;
        memset(dz, 0, sizeof(float) * Rz * HD);
        bwd_matmul(dz, hs(g1.wo, (size_t)h1 * HD * C), NULL, s->dxg, s->zg + (size_t)h1 * Rz * HD,
                   w1.wo + (size_t)h1 * HD * C, R, HD, C);
        memset(s->da, 0, sizeof(float) * Rz * C);
        bwd_matmul(s->da, hs(g1.w[2], (size_t)h1 * C * HD), hs(g1.b[2], (size_t)h1 * HD), dz, a,
                   w1.w[2] + (size_t)h1 * C * HD, R, C, HD);
        if (!below1 && !g1.w[0] && !g1.b[0] && !g1.w[1] && !g1.b[1]) continue;
        /* a = Ptok E + P W_pos + sum PZ W_O0 + PH W_out0 + bsum: the weights' gradients */
        const float *Ptok = tb->Ptok + (size_t)h1 * Rz * V, *PH = tb->PH + (size_t)h1 * Rz * M;
        if (gE) gemm(1, 0, V, C, R, 1.0f, Ptok, V, s->da, C, 1.0f, gE, C);
        if (gP) gemm(1, 0, T, C, R, 1.0f, P, T, s->da, C, 1.0f, gP, C);
        for (int h0 = 0; h0 < NH; h0++)
            if (g0.wo)
                gemm(1, 0, HD, C, R, 1.0f, tb->PZ + ((size_t)h1 * NH + h0) * Rz * HD, HD, s->da, C, 1.0f,
                     g0.wo + (size_t)h0 * HD * C, C);
        if (g0.wout) gemm(1, 0, M, C, R, 1.0f, PH, M, s->da, C, 1.0f, g0.wout, C);
        add_weighted_rows(gb, NULL, s->da, R, C);
        /* dP_rj = da_r . x_j through the factors */
        gemm(0, 1, R, V, C, 1.0f, s->da, C, p->W_E, C, 0.0f, tb->DE, V);
        gemm(0, 1, R, T, C, 1.0f, s->da, C, p->W_pos, C, 0.0f, tb->DP, T);
        gemm(0, 1, R, M, C, 1.0f, s->da, C, w0.wout, C, 0.0f, tb->DM, M);
        for (int h0 = 0; h0 < NH; h0++)
            gemm(0, 1, R, HD, C, 1.0f, s->da, C, w0.wo + (size_t)h0 * HD * C, C, 0.0f, tb->DO + (size_t)h0 * Rz * HD, HD);
        memset(tb->Gtok, 0, sizeof(float) * Rz * V);
        memset(tb->GZ, 0, sizeof(float) * (size_t)NH * Rz * HD);
        memset(tb->GH, 0, sizeof(float) * Rz * M);
        memset(s->dc, 0, sizeof(float) * Rz);
        const float *KM = tb->KM + (size_t)h1 * Rz * M;
        for (int r = 0; r < R; r++) {
            int b = s->seq[r], n = s->lens[b];
            const float *Pr = P + (size_t)r * T;
            const int32_t *tok = s->tokens + (size_t)b * T;
            const float *hb = tb->hid + (size_t)b * T * M;
            float *dhb = tb->dh0 + (size_t)b * T * M;
            float dcst = 0.0f;
            for (int i = 0; i < C; i++) dcst += s->da[(size_t)r * C + i] * tb->bsum[i];
            const float *DMr = tb->DM + (size_t)r * M, *KMr = KM + (size_t)r * M;
            float *gr = tb->g + (size_t)r * T;
            /* dP_j = da . x_j through the factors; the values' gradient into z and h */
            for (int j = 0; j < n; j++) gr[j] = tb->DE[(size_t)r * V + tok[j]] + tb->DP[(size_t)r * T + j] + dcst;
            for (int h0 = 0; h0 < NH; h0++) {
                const float *zb = s->z + (size_t)h0 * BT * HD + (size_t)b * T * HD;
                const float *dO = tb->DO + ((size_t)h0 * Rz + r) * HD;
                gemv(0, n, HD, zb, HD, dO, gr);
                ger(n, HD, Pr, dO, tb->dz0 + (size_t)h0 * BT * HD + (size_t)b * T * HD, HD);
            }
            gemv(0, n, M, hb, M, DMr, gr);
            ger(n, M, Pr, DMr, dhb, M);
            softmax_row_backward(gr, Pr, n);
            float gsum = 0.0f;
            for (int j = 0; j < n; j++) {
                float gj = gr[j] *= scale;
                gsum += gj;
                tb->Gtok[(size_t)r * V + tok[j]] += gj;
            }
            for (int j = n; j < T; j++) gr[j] = 0.0f;
            /* the logits' gradient into the keys' factors */
            for (int h0 = 0; h0 < NH; h0++) {
                const float *zb = s->z + (size_t)h0 * BT * HD + (size_t)b * T * HD;
                gemv(1, n, HD, zb, HD, gr, tb->GZ + ((size_t)h0 * Rz + r) * HD);
                ger(n, HD, gr, tb->KO + (((size_t)h1 * NH + h0) * Rz + r) * HD,
                    tb->dz0 + (size_t)h0 * BT * HD + (size_t)b * T * HD, HD);
            }
            gemv(1, n, M, hb, M, gr, tb->GH + (size_t)r * M);
            ger(n, M, gr, KMr, dhb, M);
            s->dc[r] = gsum;
        }
        /* dqt = sum_j g_rj x_j through the factors; the keys' weight gradients */
        memset(s->dqt, 0, sizeof(float) * Rz * C);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < C; i++) s->dqt[(size_t)r * C + i] = s->dc[r] * tb->bsum[i];
        gemm(0, 0, R, C, V, 1.0f, tb->Gtok, V, p->W_E, C, 1.0f, s->dqt, C);
        gemm(0, 0, R, C, T, 1.0f, tb->g, T, p->W_pos, C, 1.0f, s->dqt, C);
        for (int h0 = 0; h0 < NH; h0++)
            gemm(0, 0, R, C, HD, 1.0f, tb->GZ + (size_t)h0 * Rz * HD, HD, w0.wo + (size_t)h0 * HD * C, C, 1.0f, s->dqt, C);
        gemm(0, 0, R, C, M, 1.0f, tb->GH, M, w0.wout, C, 1.0f, s->dqt, C);
        if (gE) gemm(1, 0, V, C, R, 1.0f, tb->Gtok, V, qt, C, 1.0f, gE, C);
        if (gP) gemm(1, 0, T, C, R, 1.0f, tb->g, T, qt, C, 1.0f, gP, C);
        for (int h0 = 0; h0 < NH; h0++)
            if (g0.wo)
                gemm(1, 0, HD, C, R, 1.0f, tb->GZ + (size_t)h0 * Rz * HD, HD, qt, C, 1.0f, g0.wo + (size_t)h0 * HD * C, C);
        if (g0.wout) gemm(1, 0, M, C, R, 1.0f, tb->GH, M, qt, C, 1.0f, g0.wout, C);
        add_weighted_rows(gb, s->dc, qt, R, C);
        qk_backward(dq, hs(g1.w[1], (size_t)h1 * C * HD), hs(g1.b[1], (size_t)h1 * HD), s->dqt, s->dc, q,
                    w1.w[1] + (size_t)h1 * C * HD, w1.b[1] + (size_t)h1 * HD, R, C, HD);
    }
    /* q = xg W_Q1 + b_Q1; then dxg is the gradient of block 0's output at the rows */
    for (int h1 = 0; h1 < NH; h1++)
        bwd_matmul(below1 ? s->dxg : NULL, hs(g1.w[0], (size_t)h1 * C * HD), hs(g1.b[0], (size_t)h1 * HD),
                   s->dqg + (size_t)h1 * Rz * HD, s->xg, w1.w[0] + (size_t)h1 * C * HD, R, C, HD);
    if (!below1) goto done;
    /* xg = E[tok] + P[pos] + bsum + sum_h zr W_O0 + hr W_out0 */
    add_weighted_rows(gb, NULL, s->dxg, R, C);
    for (int r = 0; r < R; r++) {
        size_t row = (size_t)s->seq[r] * T + s->pos[r];
        const float *d = s->dxg + (size_t)r * C;
        if (gE) {
            float *e = gE + (size_t)s->tokens[row] * C;
            for (int i = 0; i < C; i++) e[i] += d[i];
        }
        if (gP) {
            float *e = gP + (size_t)s->pos[r] * C;
            for (int i = 0; i < C; i++) e[i] += d[i];
        }
    }
    for (int h0 = 0; h0 < NH; h0++) {
        float *dzr = tb->tmp;   /* (R, HD) */
        memset(dzr, 0, sizeof(float) * Rz * HD);
        bwd_matmul(dzr, hs(g0.wo, (size_t)h0 * HD * C), NULL, s->dxg, tb->zr + (size_t)h0 * Rz * HD,
                   w0.wo + (size_t)h0 * HD * C, R, HD, C);
        for (int r = 0; r < R; r++) {
            float *dzj = tb->dz0 + (size_t)h0 * BT * HD + ((size_t)s->seq[r] * T + s->pos[r]) * HD;
            for (int e = 0; e < HD; e++) dzj[e] += dzr[(size_t)r * HD + e];
        }
    }
    {
        float *dhr = tb->tmp;   /* (R, M) */
        memset(dhr, 0, sizeof(float) * Rz * M);
        bwd_matmul(dhr, g0.wout, NULL, s->dxg, tb->hr, w0.wout, R, M, C);
        for (int r = 0; r < R; r++) {
            float *dhj = tb->dh0 + ((size_t)s->seq[r] * T + s->pos[r]) * M;
            for (int e = 0; e < M; e++) dhj[e] += dhr[(size_t)r * M + e];
        }
    }
    /* bsum = b_O0 + b_out0 */
    if (g0.bout) add_weighted_rows(g0.bout, NULL, gb, 1, C);
    if (g0.bo) add_weighted_rows(g0.bo, NULL, gb, 1, C);

    /* block 0's MLP: du = dh (u > 0); u = tin[tok] + tin[V + t] + cin + sum_h z_h Gm_h */
    {
        float *du = tb->dh0;
        bwd_relu(du, du, tb->hid, BT * M);
        float *DUt = tb->DU, *DUp = tb->DU + (size_t)V * M;
        /* sums by token and by position (du is 0 on padding rows) */
        gemm(1, 0, V, M, (int)BT, 1.0f, tb->onehot, V, du, M, 0.0f, DUt, M);
        memset(DUp, 0, sizeof(float) * (size_t)T * M);
        gemv(1, B, T * M, du, T * M, tb->ones, DUp);
        float *sdu = tb->tmp;   /* (M) sum of du */
        memset(sdu, 0, sizeof(float) * (size_t)M);
        add_weighted_rows(sdu, NULL, DUt, V, M);
        if (g0.bin) add_weighted_rows(g0.bin, NULL, sdu, 1, M);
        /* cin = b_O0 W_in0 + b_in0: db_O0 += sdu W_in0^T, dW_in0 += b_O0 (x) sdu */
        if (g0.bo) gemm(0, 1, 1, C, M, 1.0f, sdu, M, w0.win, M, 1.0f, g0.bo, C);
        if (g0.win) gemm(1, 0, C, M, 1, 1.0f, w0.bo, C, sdu, M, 1.0f, g0.win, M);
        /* tin = E W_in0, W_pos W_in0 */
        if (gE) gemm(0, 1, V, C, M, 1.0f, DUt, M, w0.win, M, 1.0f, gE, C);
        if (gP) gemm(0, 1, T, C, M, 1.0f, DUp, M, w0.win, M, 1.0f, gP, C);
        if (g0.win) {
            gemm(1, 0, C, M, V, 1.0f, p->W_E, C, DUt, M, 1.0f, g0.win, M);
            gemm(1, 0, C, M, T, 1.0f, p->W_pos, C, DUp, M, 1.0f, g0.win, M);
        }
        /* Gm_h = W_O0[h] W_in0: dz_h += du Gm_h^T; ZU = z_h^T du; dW_O0[h] += ZU W_in0^T; dW_in0 += W_O0[h]^T ZU */
        for (int h = 0; h < NH; h++) {
            const float *z = s->z + (size_t)h * BT * HD;
            gemm(0, 1, (int)BT, HD, M, 1.0f, du, M, tb->Gm + (size_t)h * HD * M, M, 1.0f, tb->dz0 + (size_t)h * BT * HD, HD);
            if (g0.wo || g0.win) {
                gemm(1, 0, HD, M, (int)BT, 1.0f, z, HD, du, M, 0.0f, tb->ZU, M);
                if (g0.wo) gemm(0, 1, HD, C, M, 1.0f, tb->ZU, M, w0.win, M, 1.0f, g0.wo + (size_t)h * HD * C, C);
                if (g0.win) gemm(1, 0, C, M, HD, 1.0f, w0.wo + (size_t)h * HD * C, C, tb->ZU, M, 1.0f, g0.win, M);
            }
        }
    }
    /* block 0's attention, then its queries, keys and values through the tables */
    memset(s->dqkv, 0, sizeof(float) * 3 * (size_t)NH * BT * HD);
    for (int h = 0; h < NH; h++)
        bwd_attention(s->dqkv + (size_t)h * BT * HD, s->dqkv + ((size_t)NH + h) * BT * HD,
                      s->dqkv + ((size_t)2 * NH + h) * BT * HD, s->scratch, tb->dz0 + (size_t)h * BT * HD,
                      s->att + (size_t)h * BT * T, s->qkv + (size_t)h * BT * HD, s->qkv + ((size_t)NH + h) * BT * HD,
                      s->qkv + ((size_t)2 * NH + h) * BT * HD, s->lens, B, T, HD, scale);
    for (int x = 0; x < 3; x++)
        for (int h = 0; h < NH; h++) {
            const float *d = s->dqkv + ((size_t)x * NH + h) * BT * HD;
            float *dE = s->dtab, *dP = s->dtab + (size_t)V * HD;
            gemm(1, 0, V, HD, (int)BT, 1.0f, tb->onehot, V, d, HD, 0.0f, dE, HD);
            memset(dP, 0, sizeof(float) * (size_t)T * HD);
            gemv(1, B, T * HD, d, T * HD, tb->ones, dP);
            float *gbx = hs(g0.b[x], (size_t)h * HD);
            if (gbx) bias_grad(gbx, dE, V, HD);
            float *gw = hs(g0.w[x], (size_t)h * C * HD);
            bwd_matmul(gE, gw, NULL, dE, p->W_E, w0.w[x] + (size_t)h * C * HD, V, C, HD);
            bwd_matmul(gP, gw, NULL, dP, p->W_pos, w0.w[x] + (size_t)h * C * HD, T, C, HD);
        }
done:
    if (gb != bs) free(gb);
}
