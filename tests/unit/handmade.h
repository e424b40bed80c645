/* handmade.h — models built by hand through the model_ builder API, shared by
 * test_model.c and test_forward.c (and, through test_forward's writer mode, by the
 * interop test). Each has a known answer, or random weights for agreement tests. */
#ifndef TRACC_TEST_HANDMADE_H
#define TRACC_TEST_HANDMADE_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "runtime/model.h"

static inline Model *hm_new_or_die(const ModelConfig *c)
{
    StrBuf err;
    sb_init(&err);
    Model *m = model_new(c, &err);
    if (!m) {
        fprintf(stderr, "model_new: %s\n", err.s);
        abort();
    }
    sb_free(&err);
    return m;
}

static inline float *hm_at(Model *m, const char *name)
{
    const ModelTensor *t = model_find_tensor(m, name);
    if (!t) {
        fprintf(stderr, "no tensor %s\n", name);
        abort();
    }
    return m->params_memory + t->offset;
}

/* Vocab a, b, c, then BOS and PAD (rows 3 and 4). */
static inline void hm_vocab_abc(Model *m)
{
    Value v[5] = {val_str("a"), val_str("b"), val_str("c"), val_str("BOS"), val_str("PAD")};
    model_set_vocab(m, v, 3, 4);
}

/* A causal one-head, one-block model whose output at each position is the previous token
 * ("-" at the first position, where the previous one is BOS). max_len 4.
 * Residual: tokens:a tokens:b tokens:c tokens:BOS pos:0..pos:4 prev:a prev:b prev:c */
static inline Model *hm_copy_prev(void)
{
    ModelConfig c = {.n_layers = 1, .d_model = 12, .d_head = 5, .n_heads = 1, .d_mlp = 1,
                     .d_vocab = 5, .d_vocab_out = 4, .n_ctx = 5, .causal = 1,
                     .use_attn_scale = 1, .attn_scale = 2.0};
    Model *m = hm_new_or_die(&c);
    hm_vocab_abc(m);
    Value out[4] = {val_str("a"), val_str("b"), val_str("c"), val_str("-")};
    model_set_output(m, "prev", 0, out);
    const char *labels[12] = {"tokens:a", "tokens:b", "tokens:c", "tokens:BOS", "pos:0", "pos:1",
                              "pos:2", "pos:3", "pos:4", "prev:a", "prev:b", "prev:c"};
    model_set_residual(m, labels);
    int C = 12, HD = 5;
    float *W_E = hm_at(m, "embed.W_E"), *W_pos = hm_at(m, "pos_embed.W_pos");
    for (int t = 0; t < 4; t++) W_E[t * C + t] = 1;              /* a b c BOS; PAD is zero */
    for (int p = 0; p < 5; p++) W_pos[p * C + 4 + p] = 1;
    float *W_Q = hm_at(m, "blocks.0.attn.W_Q"), *W_K = hm_at(m, "blocks.0.attn.W_K");
    float *W_V = hm_at(m, "blocks.0.attn.W_V"), *W_O = hm_at(m, "blocks.0.attn.W_O");
    /* query p matches key p - 1: logit 200 / attn_scale 2 = 100 */
    for (int p = 0; p < 5; p++) W_Q[(4 + p) * HD + p] = 200;
    for (int j = 0; j + 1 < 5; j++) W_K[(4 + j) * HD + j + 1] = 1;
    for (int t = 0; t < 3; t++) {
        W_V[t * HD + t] = 1;
        W_O[t * C + 9 + t] = 1;
    }
    float *W_U = hm_at(m, "unembed.W_U"), *b_U = hm_at(m, "unembed.b_U");
    for (int t = 0; t < 3; t++) W_U[(9 + t) * 4 + t] = 1;
    b_U[3] = 0.75f;   /* "-" when nothing was copied: above the no-value threshold 0.5, below a copy */
    model_set_program(m, "# hand-built: the previous token\n");
    json_t *layers = json_pack("[{s:[{s:i, s:s, s:s, s:s, s:[s], s:[s], s:[s], s:[s], s:i}], s:[], s:i}]",
                               "attn", "head", 0, "op", "aggregate", "label", "prev", "selector", "prev_sel",
                               "query", "pos", "key", "pos", "value", "tokens", "output", "prev", "d_head", 5,
                               "mlp", "d_mlp", 0);
    model_set_layers(m, layers);
    json_decref(layers);
    return m;
}

/* One block whose single MLP neuron computes out = 0.5 * ReLU(3 * is_a - one) + 0.25
 * (numerical output: 1.25 for a, 0.25 for b and c). Bidirectional, attention all zero.
 * Residual: tokens:a tokens:b tokens:c one out */
static inline Model *hm_one_neuron(void)
{
    ModelConfig c = {.n_layers = 1, .d_model = 5, .d_head = 1, .n_heads = 1, .d_mlp = 1,
                     .d_vocab = 5, .d_vocab_out = 1, .n_ctx = 6, .causal = 0,
                     .use_attn_scale = 0, .attn_scale = 1.0};
    Model *m = hm_new_or_die(&c);
    hm_vocab_abc(m);
    model_set_output(m, "out", 1, NULL);
    const char *labels[5] = {"tokens:a", "tokens:b", "tokens:c", "one", "out"};
    model_set_residual(m, labels);
    float *W_E = hm_at(m, "embed.W_E");
    for (int t = 0; t < 3; t++) {
        W_E[t * 5 + t] = 1;
        W_E[t * 5 + 3] = 1;
    }
    W_E[3 * 5 + 3] = 1;                                          /* BOS: one */
    float *W_in = hm_at(m, "blocks.0.mlp.W_in"), *W_out = hm_at(m, "blocks.0.mlp.W_out");
    W_in[0] = 3;                                                 /* tokens:a */
    W_in[3] = -1;                                                /* one */
    W_out[4] = 0.5f;
    hm_at(m, "blocks.0.mlp.b_out")[4] = 0.25f;
    hm_at(m, "unembed.W_U")[4] = 1;
    json_t *layers = json_pack("[{s:[], s:[{s:s, s:s, s:[s], s:[s], s:[i, i]}], s:i}]", "attn", "mlp",
                               "op", "map", "label", "out", "inputs", "tokens", "output", "out",
                               "neurons", 0, 1, "d_mlp", 1);
    model_set_layers(m, layers);
    json_decref(layers);
    return m;
}

/* Random weights (normal, std `scale`) of the given shape; vocab a..f + BOS + PAD
 * (V = 8), n_ctx 9; residual labels x:0..x:(C-1) (one categorical s-op). Output
 * categorical over 5 values v0..v4 (integers 10..14), or numerical. */
static inline Model *hm_random(uint64_t seed, int L, int NH, int HD, int M, int C, int causal,
                               int numerical, double scale)
{
    ModelConfig c = {.n_layers = L, .d_model = C, .d_head = HD, .n_heads = NH, .d_mlp = M,
                     .d_vocab = 8, .d_vocab_out = numerical ? 1 : 5, .n_ctx = 9, .causal = causal,
                     .use_attn_scale = 1, .attn_scale = HD > 0 ? sqrt((double)HD) : 1.0};
    Model *m = hm_new_or_die(&c);
    Value v[8] = {val_str("a"), val_str("b"), val_str("c"), val_str("d"), val_str("e"), val_str("f"),
                  val_str("BOS"), val_str("PAD")};
    model_set_vocab(m, v, 6, 7);
    Value out[5] = {val_int(10), val_int(11), val_int(12), val_int(13), val_int(14)};
    model_set_output(m, "y", numerical, out);
    char **labels = malloc(sizeof(char *) * (size_t)C);
    for (int i = 0; i < C; i++) {
        labels[i] = malloc(16);
        snprintf(labels[i], 16, "x:%d", i);
    }
    model_set_residual(m, (const char *const *)labels);
    for (int i = 0; i < C; i++) free(labels[i]);
    free(labels);
    /* Matrices get std scale/sqrt(fan in) (embeddings: scale), so that activations stay
     * of order one and the argmax varies across positions. */
    Rng r;
    rng_seed(&r, seed);
    for (int t = 0; t < m->ntensors; t++) {
        const ModelTensor *e = &m->tensors[t];
        int embed = !strncmp(e->name, "embed.", 6) || !strncmp(e->name, "pos_embed.", 10);
        double std = e->ndim >= 2 && !embed ? scale / sqrt((double)(e->shape[e->ndim - 2] ? e->shape[e->ndim - 2] : 1))
                                            : embed ? scale : 0.1 * scale;
        for (size_t i = 0; i < e->numel; i++) m->params_memory[e->offset + i] = (float)(rng_normal(&r) * std);
    }
    return m;
}

#endif
