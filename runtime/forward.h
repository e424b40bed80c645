/* forward.h — the forward pass of a model file's transformer on a batch of sequences.
 *
 * Each block is attention (all heads, logits divided by attn_scale when use_attn_scale,
 * causal mask when the model is causal, padding keys masked) then a ReLU MLP, both added
 * to the residual; then the unembed. Matrix products go through cblas_sgemm; every kernel
 * has a plain-loop reference `*_naive` beside it, which the tests compare against.
 *
 * Kernels follow llm.c: outputs first, then inputs, then sizes; shapes in comments with
 * the letters of model.h plus B (batch) and T (positions, BOS included). */
#ifndef TRACC_FORWARD_H
#define TRACC_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/model.h"

/* Hard attention selects the keys whose logit s satisfies s >= max - tol, with
 * tol = FWD_HARD_TOL * max(1, |max|), and weighs them uniformly. The tolerance only absorbs
 * float rounding: compiled selectors separate selected from unselected keys by whole units. */
#define FWD_HARD_TOL 1e-4f

typedef struct {
    int hard;           /* hard attention instead of softmax */
    int n_blocks;       /* run only blocks 0..n_blocks-1 and unembed from there; < 0: all */
    int record_resid;   /* keep the residual after the embedding and after every sub-layer */
    int record_attn;    /* keep every head's attention pattern */
    int naive;          /* use the *_naive reference kernels (slow; for tests) */
} FwdOptions;

#define FWD_OPTIONS_DEFAULT ((FwdOptions){0, -1, 0, 0, 0})

typedef struct {
    /* Results of the last fwd_forward, valid until the next call. */
    int B, T;           /* its batch size and padded length */
    int C;              /* d_model */
    int n_blocks;       /* blocks it ran */
    float *logits;      /* (B, T, VO) */
    float *resid;       /* (B, T, C) the residual the logits were read from */
    float *resids;      /* (1 + 2*n_blocks, B, T, C) when record_resid: stage 0 is the
                           embedding, 2l+1 after block l's attention, 2l+2 after its MLP */
    float *attn;        /* (n_blocks, NH, B, T, T) when record_attn: [l][h][b][query][key] */

    /* Workspace, grown when a larger batch comes and reused otherwise. */
    float *ws;
    size_t ws_cap;
} FwdState;

void fwd_init(FwdState *s);
void fwd_free(FwdState *s);

/* Run the model on B sequences padded to T positions.
 * tokens (B, T): W_E rows; position 0 of every sequence is BOS; positions at or past
 *   lens[b] are padding (any valid row, PAD by convention): never attended to, and their
 *   outputs mean nothing.
 * lens (B): 1 <= lens[b] <= T <= n_ctx, BOS included.
 * Returns 0, or -1 with a message in err (bad sizes or token rows). */
int fwd_forward(FwdState *s, const Model *m, const int32_t *tokens, const int *lens, int B, int T,
                const FwdOptions *opt, StrBuf *err);

/* The residual after a stage (see resids), or NULL if it was not recorded. */
const float *fwd_resid_stage(const FwdState *s, int stage);

/* ---- kernels ---- */

/* out (M, N) = inp (M, K) . weight (K, N) + bias (N); bias may be NULL.
 * accumulate: add to out instead of overwriting it. */
void fwd_matmul(float *out, const float *inp, const float *weight, const float *bias,
                int M, int K, int N, int accumulate);
void fwd_matmul_naive(float *out, const float *inp, const float *weight, const float *bias,
                      int M, int K, int N, int accumulate);

/* out (B, T, C) = W_E[tokens[b, t]] + W_pos[t]; tokens (B, T), W_E (V, C), W_pos (N, C). */
void fwd_embed(float *out, const int32_t *tokens, const float *W_E, const float *W_pos,
               int B, int T, int C);

/* One head over a batch. q, k, v (B, T, HD); lens (B).
 * pattern (B, T, T): [b][i][j] = weight of key j for query i, from the logits
 *   scale * q_i . k_j over the allowed keys j < lens[b] (and j <= i when causal); softmax,
 *   or hard (see FWD_HARD_TOL). Masked entries and padding query rows (i >= lens[b]) are 0.
 * z (B, T, HD) = pattern . v (0 on padding rows). */
void fwd_attention(float *z, float *pattern, const float *q, const float *k, const float *v,
                   const int *lens, int B, int T, int HD, float scale, int causal, int hard);
void fwd_attention_naive(float *z, float *pattern, const float *q, const float *k, const float *v,
                         const int *lens, int B, int T, int HD, float scale, int causal, int hard);

/* out (n) = max(inp, 0); out may be inp. */
void fwd_relu(float *out, const float *inp, size_t n);

/* The OpenBLAS kernel family this process runs ("Haswell", "Cooperlake", ...): OpenBLAS picks
 * it by CPU (or OPENBLAS_CORETYPE), and kernels round differently, so a training run is
 * reproducible to the bit only on the same one (docs/reproduction.md, "To the bit"). */
const char *fwd_blas_core(void);

#endif
