/* test_optim.c — the learning-rate schedule, SGD with momentum and AdamW against hand
 * computations, clipping, weight decay, the trainable-tensor globs, the initial noise, and
 * the optimizer state's round trip through checkpoint tensors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/optim.h"

static Model *tiny(void)
{
    /* 1 block: embed (4, 2), pos (3, 2), 12 block tensors, unembed (2, 2) and (2) */
    ModelConfig c = {.n_layers = 1, .d_model = 2, .d_head = 1, .n_heads = 1, .d_mlp = 1, .d_vocab = 4,
                     .d_vocab_out = 2, .n_ctx = 3, .use_attn_scale = 1, .attn_scale = 1.0};
    StrBuf err;
    sb_init(&err);
    Model *m = model_new(&c, &err);
    assert_non_null(m);
    sb_free(&err);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] = 0.1f * (float)(i % 7) - 0.2f;
    return m;
}

static const ModelTensor *find(const Model *m, const char *name)
{
    const ModelTensor *t = model_find_tensor(m, name);
    assert_non_null(t);
    return t;
}

static void test_schedule_warms_up_linearly_then_decays_by_cosine(void **state)
{
    (void)state;
    OptimConfig c = {OPTIM_SGD, 0.1, 0.9, 0.9, 0.999, 1e-8, 0, 0, 10, 110, SCHED_COSINE, 0.01};
    assert_true(fabs(optim_lr(&c, 0) - 0.01) < 1e-12);      /* lr / warmup */
    assert_true(fabs(optim_lr(&c, 4) - 0.05) < 1e-12);
    assert_true(fabs(optim_lr(&c, 9) - 0.1) < 1e-12);       /* the last warmup step reaches lr */
    assert_true(fabs(optim_lr(&c, 10) - 0.1) < 1e-12);      /* cosine starts at lr */
    assert_true(fabs(optim_lr(&c, 60) - (0.001 + 0.5 * 0.099)) < 1e-12);   /* half way */
    assert_true(fabs(optim_lr(&c, 110) - 0.001) < 1e-12);   /* ends at lr * min_lr_ratio */
    for (long s = 11; s < 110; s++) assert_true(optim_lr(&c, s) < optim_lr(&c, s - 1));
    c.schedule = SCHED_CONSTANT;
    assert_true(fabs(optim_lr(&c, 50) - 0.1) < 1e-12);
    c.warmup = 0;
    c.schedule = SCHED_COSINE;
    assert_true(fabs(optim_lr(&c, 0) - 0.1) < 1e-12);
}

static void test_select_trains_all_but_the_unembed_by_default(void **state)
{
    (void)state;
    Model *m = tiny();
    uint8_t tr[64];
    StrBuf err;
    sb_init(&err);
    assert_int_equal(optim_select(m, NULL, 0, NULL, 0, tr, &err), 0);
    for (int t = 0; t < m->ntensors; t++)
        assert_int_equal(tr[t], strncmp(m->tensors[t].name, "unembed.", 8) != 0);
    char *train[] = {"blocks.*.mlp.*", "unembed.W_U"}, *freeze[] = {"*.b_*"};
    assert_int_equal(optim_select(m, train, 2, freeze, 1, tr, &err), 0);
    for (int t = 0; t < m->ntensors; t++) {
        const char *n = m->tensors[t].name;
        int want = (!strcmp(n, "blocks.0.mlp.W_in") || !strcmp(n, "blocks.0.mlp.W_out") || !strcmp(n, "unembed.W_U"));
        assert_int_equal(tr[t], want);
    }
    char *nothing[] = {"blocks.7.*"};
    assert_int_equal(optim_select(m, NULL, 0, nothing, 1, tr, &err), -1);
    assert_non_null(strstr(err.s, "--freeze 'blocks.7.*' matches no tensor"));
    sb_clear(&err);
    char *all[] = {"*"};
    assert_int_equal(optim_select(m, NULL, 0, all, 1, tr, &err), -1);
    assert_non_null(strstr(err.s, "nothing is left to train"));
    sb_clear(&err);
    assert_int_equal(optim_select(m, nothing, 1, NULL, 0, tr, &err), -1);
    assert_non_null(strstr(err.s, "--train"));
    sb_free(&err);
    model_free(m);
}

static void test_sgd_momentum_matches_hand_computation(void **state)
{
    (void)state;
    Model *m = tiny();
    uint8_t tr[64];
    StrBuf err;
    sb_init(&err);
    optim_select(m, NULL, 0, NULL, 0, tr, &err);
    OptimConfig c = {OPTIM_SGD, 0.5, 0.9, 0, 0, 0, 0.1, 0, 0, 10, SCHED_CONSTANT, 0};
    Optim o;
    optim_init(&o, &c, m->num_params);
    float *g = calloc(m->num_params, sizeof(float));
    const ModelTensor *we = find(m, "embed.W_E"), *wu = find(m, "unembed.W_U");
    float w0 = m->params_memory[we->offset], u0 = m->params_memory[wu->offset];
    /* step 1: v = g + wd w, w -= lr v */
    g[we->offset] = 2.0f;
    g[wu->offset] = 5.0f;   /* frozen: ignored */
    optim_step(&o, m, tr, g, optim_grad_norm(m, tr, g), 0.5);
    float v1 = 2.0f + 0.1f * w0, w1 = w0 - 0.5f * v1;
    assert_true(fabsf(m->params_memory[we->offset] - w1) < 1e-6f);
    assert_true(m->params_memory[wu->offset] == u0);
    /* step 2: v = 0.9 v + g + wd w */
    g[we->offset] = -1.0f;
    optim_step(&o, m, tr, g, 1.0, 0.25);
    float v2 = 0.9f * v1 + (-1.0f + 0.1f * w1), w2 = w1 - 0.25f * v2;
    assert_true(fabsf(m->params_memory[we->offset] - w2) < 1e-6f);
    assert_int_equal(o.t, 2);
    free(g);
    optim_free(&o);
    sb_free(&err);
    model_free(m);
}

static void test_adamw_matches_hand_computation(void **state)
{
    (void)state;
    Model *m = tiny();
    uint8_t tr[64];
    StrBuf err;
    sb_init(&err);
    optim_select(m, NULL, 0, NULL, 0, tr, &err);
    OptimConfig c = {OPTIM_ADAMW, 0.01, 0, 0.9, 0.99, 1e-8, 0.5, 0, 0, 10, SCHED_CONSTANT, 0};
    Optim o;
    optim_init(&o, &c, m->num_params);
    float *g = calloc(m->num_params, sizeof(float));
    size_t i = find(m, "pos_embed.W_pos")->offset + 1;
    double w = m->params_memory[i], mm = 0, vv = 0;
    double gs[3] = {0.3, -0.1, 0.2};
    for (int t = 1; t <= 3; t++) {
        g[i] = (float)gs[t - 1];
        optim_step(&o, m, tr, g, 0.0, 0.01);
        w -= 0.01 * 0.5 * w;   /* decoupled weight decay */
        mm = 0.9 * mm + 0.1 * gs[t - 1];
        vv = 0.99 * vv + 0.01 * gs[t - 1] * gs[t - 1];
        w -= 0.01 * (mm / (1 - pow(0.9, t))) / (sqrt(vv / (1 - pow(0.99, t))) + 1e-8);
        assert_true(fabs(m->params_memory[i] - w) < 1e-6);
    }
    free(g);
    optim_free(&o);
    sb_free(&err);
    model_free(m);
}

static void test_clipping_scales_gradients_only_above_the_bound(void **state)
{
    (void)state;
    Model *m = tiny();
    uint8_t tr[64];
    StrBuf err;
    sb_init(&err);
    optim_select(m, NULL, 0, NULL, 0, tr, &err);
    float *g = calloc(m->num_params, sizeof(float));
    size_t a = find(m, "embed.W_E")->offset, b = find(m, "blocks.0.mlp.b_out")->offset, u = find(m, "unembed.b_U")->offset;
    g[a] = 3;
    g[b] = 4;
    g[u] = 100;   /* frozen: not in the norm */
    double n = optim_grad_norm(m, tr, g);
    assert_true(fabs(n - 5) < 1e-12);
    OptimConfig c = {OPTIM_SGD, 1.0, 0, 0, 0, 0, 0, 1.0, 0, 10, SCHED_CONSTANT, 0};
    Optim o;
    optim_init(&o, &c, m->num_params);
    float wa = m->params_memory[a];
    optim_step(&o, m, tr, g, n, 1.0);
    assert_true(fabsf(m->params_memory[a] - (wa - 3.0f / (5.0f + 1e-6f))) < 1e-6f);   /* clipped to norm 1 */
    optim_free(&o);
    /* below the bound: unchanged gradient */
    c.clip = 10;
    optim_init(&o, &c, m->num_params);
    g[a] = 3;
    g[b] = 4;
    wa = m->params_memory[a];
    optim_step(&o, m, tr, g, 5.0, 1.0);
    assert_true(fabsf(m->params_memory[a] - (wa - 3.0f)) < 1e-6f);
    optim_free(&o);
    free(g);
    sb_free(&err);
    model_free(m);
}

static void test_init_noise_touches_only_trainable_tensors_and_is_seeded(void **state)
{
    (void)state;
    Model *m = tiny(), *m2 = tiny();
    uint8_t tr[64];
    StrBuf err;
    sb_init(&err);
    char *freeze[] = {"blocks.0.attn.*"};
    optim_select(m, NULL, 0, freeze, 1, tr, &err);
    float *before = malloc(sizeof(float) * m->num_params);
    memcpy(before, m->params_memory, sizeof(float) * m->num_params);
    Rng r, r2;
    rng_seed(&r, 5);
    rng_seed(&r2, 5);
    optim_init_noise(m, tr, 1e-2, &r);
    optim_init_noise(m2, tr, 1e-2, &r2);
    assert_memory_equal(m->params_memory, m2->params_memory, sizeof(float) * m->num_params);
    for (int t = 0; t < m->ntensors; t++) {
        const ModelTensor *te = &m->tensors[t];
        for (size_t i = 0; i < te->numel; i++) {
            float d = m->params_memory[te->offset + i] - before[te->offset + i];
            if (tr[t]) assert_true(d != 0 && fabsf(d) < 0.1f);
            else assert_true(d == 0);
        }
    }
    free(before);
    sb_free(&err);
    model_free(m);
    model_free(m2);
}

static void test_state_round_trips_through_checkpoint_tensors(void **state)
{
    (void)state;
    Model *m = tiny();
    StrBuf err;
    sb_init(&err);
    OptimConfig c = {OPTIM_ADAMW, 0.01, 0, 0.9, 0.99, 1e-8, 0, 0, 0, 10, SCHED_CONSTANT, 0};
    Optim o, o2;
    optim_init(&o, &c, m->num_params);
    for (size_t i = 0; i < m->num_params; i++) {
        o.m[i] = (float)i;
        o.v[i] = (float)(2 * i);
    }
    assert_int_equal(optim_save(&o, m, &err), 0);
    optim_init(&o2, &c, m->num_params);
    assert_int_equal(optim_load(&o2, m, &err), 0);
    assert_memory_equal(o.m, o2.m, sizeof(float) * m->num_params);
    assert_memory_equal(o.v, o2.v, sizeof(float) * m->num_params);
    /* an SGD run cannot resume from AdamW state */
    Optim o3;
    c.kind = OPTIM_SGD;
    optim_init(&o3, &c, m->num_params);
    assert_int_equal(optim_load(&o3, m, &err), -1);
    assert_non_null(strstr(err.s, OPTIM_TENSOR_MOMENTUM));
    optim_free(&o);
    optim_free(&o2);
    optim_free(&o3);
    sb_free(&err);
    model_free(m);
}

static void test_parse_names(void **state)
{
    (void)state;
    OptimKind k;
    OptimSchedule s;
    assert_int_equal(optim_parse_kind("adamw", &k), 0);
    assert_int_equal(k, OPTIM_ADAMW);
    assert_int_equal(optim_parse_kind("adam", &k), -1);
    assert_int_equal(optim_parse_schedule("constant", &s), 0);
    assert_int_equal(s, SCHED_CONSTANT);
    assert_int_equal(optim_parse_schedule("linear", &s), -1);
    assert_string_equal(optim_kind_name(OPTIM_SGD), "sgd");
    assert_string_equal(optim_schedule_name(SCHED_COSINE), "cosine");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_warms_up_linearly_then_decays_by_cosine),
        cmocka_unit_test(test_select_trains_all_but_the_unembed_by_default),
        cmocka_unit_test(test_sgd_momentum_matches_hand_computation),
        cmocka_unit_test(test_adamw_matches_hand_computation),
        cmocka_unit_test(test_clipping_scales_gradients_only_above_the_bound),
        cmocka_unit_test(test_init_noise_touches_only_trainable_tensors_and_is_seeded),
        cmocka_unit_test(test_state_round_trips_through_checkpoint_tensors),
        cmocka_unit_test(test_parse_names),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
