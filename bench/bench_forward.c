/* bench_forward.c — forward-pass throughput for a model the size of the paper's Counter
 * (Jain et al. countA compiled at max_len 46: vocab 9 + BOS + PAD, n_ctx 47, 3 blocks,
 * d_model 155, 1 head of d_head 48, d_mlp 94, 47 output values), at batch 1, 96 and 1024,
 * next to OpenBLAS's own sgemm rate measured in the same run.
 *
 * The weights are random and dense: the kernels do the same work whatever the values, so
 * the figures hold for the compiled model of the same shape. Every sequence has the full
 * length (46 tokens + BOS), the worst case. FLOPs count the multiply-adds the kernels
 * perform (2 per multiply-add), including the full n x n attention logits. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "runtime/forward.h"
#include "runtime/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static Model *counter_sized(void)
{
    ModelConfig c = {.n_layers = 3, .d_model = 155, .d_head = 48, .n_heads = 1, .d_mlp = 94,
                     .d_vocab = 11, .d_vocab_out = 47, .n_ctx = 47, .causal = 0,
                     .use_attn_scale = 1, .attn_scale = 6.928203230275509};
    StrBuf err;
    sb_init(&err);
    Model *m = model_new(&c, &err);
    if (!m) {
        fprintf(stderr, "bench_forward: %s\n", err.s);
        exit(1);
    }
    sb_free(&err);
    Value vocab[11];
    static const char *const names[11] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "BOS", "PAD"};
    for (int i = 0; i < 11; i++) vocab[i] = val_str(names[i]);
    model_set_vocab(m, vocab, 9, 10);
    Value out[47];
    for (int i = 0; i < 47; i++) out[i] = val_int(i);
    model_set_output(m, "count_a", 0, out);
    char **labels = malloc(sizeof(char *) * 155);
    for (int i = 0; i < 155; i++) {
        labels[i] = malloc(16);
        snprintf(labels[i], 16, "r:%d", i);
    }
    model_set_residual(m, (const char *const *)labels);
    for (int i = 0; i < 155; i++) free(labels[i]);
    free(labels);
    Rng r;
    rng_seed(&r, 46);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] = (float)(0.05 * rng_normal(&r));
    return m;
}

static double forward_flops(const ModelConfig *c, int B, int T)
{
    double BT = (double)B * T, C = c->d_model, HD = c->d_head, NH = c->n_heads, M = c->d_mlp;
    double per_layer = 3 * 2 * BT * C * HD * NH       /* Q, K, V */
                       + 2 * 2 * (double)B * T * T * HD * NH /* logits and pattern . V */
                       + 2 * BT * HD * C * NH          /* W_O */
                       + 2 * 2 * BT * C * M;           /* W_in, W_out */
    return c->n_layers * per_layer + 2 * BT * C * c->d_vocab_out;
}

/* Seconds per run of `body`, the best of 5 repetitions of a batch of runs lasting about
 * `seconds` / 5 each: the best repetition is the least disturbed by whatever else the
 * machine is doing (the figures are wall-clock time). */
#define BEST_TIME(seconds, per_run_out, body)                           \
    do {                                                                \
        double t0_ = now();                                             \
        body;                                                           \
        double one_ = now() - t0_;                                      \
        long n_ = (long)((seconds) / 5 / (one_ > 1e-9 ? one_ : 1e-9));  \
        if (n_ < 1) n_ = 1;                                             \
        double best_ = 1e300;                                           \
        for (int rep_ = 0; rep_ < 5; rep_++) {                          \
            t0_ = now();                                                \
            for (long i_ = 0; i_ < n_; i_++) { body; }                  \
            double per_ = (now() - t0_) / (double)n_;                   \
            if (per_ < best_) best_ = per_;                             \
        }                                                               \
        *(per_run_out) = best_;                                         \
    } while (0)

static double sgemm_gflops(int M, int K, int N)
{
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)K * N);
    float *c = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    double per;
    BEST_TIME(1.0, &per,
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N));
    free(a);
    free(b);
    free(c);
    return 2.0 * M * K * N / per / 1e9;
}

int main(void)
{
    Model *m = counter_sized();
    const ModelConfig *c = &m->cfg;
    int T = c->n_ctx;
    printf("model: Counter-sized, %zu parameters (L %d, C %d, NH %d, HD %d, M %d, V %d, N %d, VO %d)\n",
           m->num_params, c->n_layers, c->d_model, c->n_heads, c->d_head, c->d_mlp, c->d_vocab, c->n_ctx,
           c->d_vocab_out);
    printf("OpenBLAS: %s, %d thread(s)\n", openblas_get_config(), openblas_get_num_threads());
    printf("%-28s %12s %12s %10s\n", "case", "seq/s", "ms/batch", "GFLOP/s");

    FwdState s;
    fwd_init(&s);
    Rng r;
    rng_seed(&r, 7);
    const int batches[3] = {1, 96, 1024};
    for (int i = 0; i < 3; i++) {
        int B = batches[i];
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T);
        int *lens = malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B; b++) {
            lens[b] = T;
            tok[(size_t)b * T] = m->bos;
            for (int t = 1; t < T; t++) tok[(size_t)b * T + t] = (int32_t)rng_below(&r, 9);
        }
        StrBuf err;
        sb_init(&err);
        for (int hard = 0; hard < 2; hard++) {
            FwdOptions o = FWD_OPTIONS_DEFAULT;
            o.hard = hard;
            if (fwd_forward(&s, m, tok, lens, B, T, &o, &err)) {   /* warm-up, sizes the workspace */
                fprintf(stderr, "bench_forward: %s\n", err.s);
                return 1;
            }
            double per;
            BEST_TIME(2.0, &per, fwd_forward(&s, m, tok, lens, B, T, &o, &err));
            char name[64];
            snprintf(name, sizeof name, "forward B=%d T=%d%s", B, T, hard ? " hard" : "");
            printf("%-28s %12.0f %12.3f %10.2f\n", name, (double)B / per, 1e3 * per,
                   forward_flops(c, B, T) / per / 1e9);
        }
        sb_free(&err);
        free(tok);
        free(lens);
    }
    printf("%-28s %12s %12s %10.2f\n", "sgemm 1024x1024x1024", "", "", sgemm_gflops(1024, 1024, 1024));
    printf("%-28s %12s %12s %10.2f\n", "sgemm 48128x155x94 (MLP in)", "", "", sgemm_gflops(1024 * 47, 155, 94));
    printf("%-28s %12s %12s %10.2f\n", "sgemm 47x155x48 (B=1 Q)", "", "", sgemm_gflops(47, 155, 48));
    fwd_free(&s);
    model_free(m);
    return 0;
}
