/* backward.h — the training pass of a model file's transformer: a forward pass that keeps
 * what the backward pass needs, the loss at chosen positions, and the backward pass into
 * one gradient block with the parameters' layout (model.h: model_point_params).
 *
 * Kernels follow llm.c and runtime/forward.h: gradient outputs first (they ACCUMULATE),
 * then cached activations, then const inputs, then sizes; every BLAS-backed kernel has a
 * plain-loop `*_naive` reference, and tests/unit/test_backward.c checks every kernel and the
 * whole loss against central finite differences computed in double.
 *
 * The pass computes the runtime's function (runtime/forward.h) but not in the runtime's
 * order, because it does less work:
 *   - block 0 reads only the embedding, so its queries, keys and values come from per-token
 *     and per-position tables (W_E W_Q, W_pos W_Q, ...), and their gradients are gathered by
 *     token and by position before touching the weights;
 *   - the last block is needed only at the rows where the loss counts: it runs there alone,
 *     its attention through the residual (bwd_rows_attend), when those rows are few;
 *   - a two-block model trained at few rows (both of the paper's programs as tracc compiles
 *     them) never forms a (B*T, d_model) product at all: block 0's output is kept as its
 *     factors (token, position, heads' outputs, hidden units) and block 1 reads them.
 * So the trainer's logits equal fwd_forward's to float rounding, not bit for bit; the
 * accuracies it reports come from fwd_forward itself (train/finetune.h).
 *
 * Shapes use model.h's letters plus B (batch), T (padded positions, BOS included) and
 * R (rows where the loss counts). */
#ifndef TRACC_BACKWARD_H
#define TRACC_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/model.h"

/* ---- kernels ---- */

/* Backward of out (M, N) = inp (M, K) . weight (K, N) + bias (N), given dout (M, N):
 * dinp (M, K) += dout . weight^T;  dweight (K, N) += inp^T . dout;  dbias (N) += column sums.
 * Each of dinp, dweight, dbias may be NULL (nothing to compute: a frozen tensor, or an
 * input whose gradient nobody needs). */
void bwd_matmul(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                const float *weight, int M, int K, int N);
void bwd_matmul_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                      const float *weight, int M, int K, int N);

/* Backward of fwd_embed: dW_E (V, C) += dout rows at their tokens; dW_pos (N, C) += dout
 * rows at their positions (either may be NULL). dout (B, T, C); tokens (B, T); only rows
 * t < lens[b] contribute (padding rows carry no gradient by construction anyway). */
void bwd_embed(float *dW_E, float *dW_pos, const float *dout, const int32_t *tokens, const int *lens,
               int B, int T, int C);

/* Backward of ReLU given its output: dinp (n) = dout where out > 0, else 0 (dinp may be dout). */
void bwd_relu(float *dinp, const float *dout, const float *out, size_t n);

/* Backward of fwd_attention (softmax only; hard attention has no gradient) for one head.
 * pattern (B, T, T) as fwd_attention left it; q, k, v (B, T, HD); dz (B, T, HD).
 * dq, dk, dv (B, T, HD) +=.  scratch: T * T floats. */
void bwd_attention(float *dq, float *dk, float *dv, float *scratch, const float *dz, const float *pattern,
                   const float *q, const float *k, const float *v, const int *lens, int B, int T, int HD,
                   float scale);
void bwd_attention_naive(float *dq, float *dk, float *dv, float *scratch, const float *dz,
                         const float *pattern, const float *q, const float *k, const float *v,
                         const int *lens, int B, int T, int HD, float scale);

/* The last block's attention at R chosen query rows, computed through the residual so that
 * keys and values are never formed at every row: row r is position pos[r] of sequence
 * seq[r]; with its query q_r, the logit of key j is scale * (q_r . (x_j W_K + b_K)) =
 * scale * (qt_r . x_j + c_r) where qt_r = W_K q_r and c_r = q_r . b_K, and the head's
 * output is z_r = a_r W_V + b_V with a_r = sum_j P_rj x_j (the weights sum to 1).
 * Keys j < lens[seq[r]] (and j <= pos[r] when causal). x (B, T, C) the block's input;
 * qt (R, C); c (R); pattern (R, T) (masked keys 0); a (R, C). */
void bwd_rows_attend(float *a, float *pattern, const float *qt, const float *c, const float *x, const int *seq,
                     const int *pos, const int *lens, int R, int T, int C, float scale, int causal);
/* Its backward given da (R, C): dx (B, T, C) +=, dqt (R, C) +=, dc (R) +=. scratch: T floats. */
void bwd_rows_attend_backward(float *dx, float *dqt, float *dc, float *scratch, const float *da,
                              const float *pattern, const float *qt, const float *x, const int *seq,
                              const int *lens, int R, int T, int C, float scale);

/* Cross-entropy of softmax(scale * logits) against target columns, averaged over R rows:
 * returns the mean loss; dlogits (R, VO) = its gradient (overwritten). logits (R, VO);
 * target (R) in 0..VO-1. The mean is over `norm` rows (norm >= R: a batch's loss may be
 * split across calls). probs (R, VO) receives the softmax if not NULL. */
double bwd_crossentropy(float *dlogits, float *probs, const float *logits, const int32_t *target,
                        int R, int VO, float scale, int norm);
/* Squared error of the single-column logits against target values (numerical outputs). */
double bwd_squared_error(float *dlogits, const float *logits, const float *target, int R, int norm);

/* ---- the training pass ---- */

typedef struct {
    int B, T;
    const int32_t *tokens;  /* (B, T) W_E rows, BOS at position 0 */
    const int *lens;        /* (B) BOS included */
    int R;                  /* rows where the loss counts */
    const int *seq, *pos;   /* (R) their sequence and position (model positions) */
    const int32_t *target;  /* (R) categorical: output column */
    const float *target_num;/* (R) numerical: value */
    int norm;               /* the loss is the sum over the rows divided by norm (0: R) */
} BwdBatch;

typedef struct {
    int naive;              /* use the *_naive kernels (tests) */
    float logit_scale;      /* categorical outputs: logits = logit_scale * (x W_U + b_U) */
    const uint8_t *trainable; /* (model_num_tensors) 1 = compute this tensor's gradient;
                               NULL = all */
} BwdOptions;

typedef struct BwdState BwdState;

BwdState *bwd_new(void);
void bwd_free(BwdState *s);

/* Forward pass with the activations kept; returns 0 and sets *loss, or -1 with a message
 * (bad sizes, tokens or rows). Layer 0's queries, keys and values come from per-token and
 * per-position tables (W_E W_Q, W_pos W_Q, ...); when the loss counts at few rows, the last
 * block runs at those rows only, its attention through the residual (bwd_rows_attend). */
int bwd_forward(BwdState *s, const Model *m, const BwdBatch *b, const BwdOptions *o, double *loss,
                StrBuf *err);
/* The R rows' logits of the last bwd_forward, unscaled ((R, VO)). */
const float *bwd_logits(const BwdState *s);
/* Backward of the last bwd_forward: grads (model_num_params floats, the parameters' layout)
 * += the gradient of the loss. Tensors that are not trainable are left untouched. */
void bwd_backward(BwdState *s, const Model *m, const BwdOptions *o, float *grads);

/* A batch split into shards of sequences that threads run in parallel. The shards depend
 * only on the batch size, each runs single-threaded BLAS, and their gradients are added in
 * shard order: the result is bit-identical for any number of threads. */
typedef struct BwdPool BwdPool;

/* nthreads >= 1. While a pool exists OpenBLAS runs single-threaded (restored on free). */
BwdPool *bwd_pool_new(int nthreads);
void bwd_pool_free(BwdPool *p);
int bwd_pool_threads(const BwdPool *p);

/* Forward and backward of the batch's mean loss: grads (model_num_params) is overwritten
 * with the gradient, *loss set. Returns 0 or -1 with a message. */
int bwd_pool_step(BwdPool *p, const Model *m, const BwdBatch *b, const BwdOptions *o, float *grads,
                  double *loss, StrBuf *err);

/* Run fn(ctx, task, thread) for task = 0..ntasks-1 on the pool's threads (thread in
 * 0..nthreads-1; tasks are handed out in order). */
void bwd_pool_run(BwdPool *p, int ntasks, void (*fn)(void *ctx, int task, int thread), void *ctx);

#endif
