/* test_forward.c — the forward pass: BLAS kernels against their naive references,
 * hand-built models with known answers, batches against one-by-one runs, the options
 * (hard attention, recorded residuals and patterns, running only some blocks), decoding.
 *
 * With TRACC_INTEROP_DIR set, test_forward_writes_interop_models also leaves its models in
 * that folder: tests/cli/interop.sh runs them through tracc and the numpy reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rng.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "runtime/model.h"
#include "handmade.h"

/* ---------------------------------------------------------------- helpers */

static void fill_normal(float *x, size_t n, Rng *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r);
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d;   /* NaN-safe: a NaN difference becomes the max */
    }
    return m;
}

/* Run a model on inputs given as space-separated token strings; returns the state. */
static void run_texts(FwdState *s, const Model *m, const char *const *texts, int B, const FwdOptions *opt)
{
    int T = 1;
    int32_t *ids = calloc((size_t)B * m->cfg.n_ctx, sizeof *ids);
    int *lens = calloc((size_t)B, sizeof *lens);
    for (int b = 0; b < B; b++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", texts[b]);
        char *toks[64];
        int n = 0;
        for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) toks[n++] = t;
        StrBuf err;
        sb_init(&err);
        int32_t row[64];
        if (model_encode(m, toks, n, row, &err)) fail_msg("encode '%s': %s", texts[b], err.s);
        sb_free(&err);
        lens[b] = n + 1;
        memcpy(ids + (size_t)b * m->cfg.n_ctx, row, sizeof(int32_t) * (size_t)(n + 1));
        if (n + 1 > T) T = n + 1;
    }
    /* repack to the batch's padded length T, PAD after each sequence */
    int32_t *packed = malloc(sizeof *packed * (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            packed[(size_t)b * T + t] = t < lens[b] ? ids[(size_t)b * m->cfg.n_ctx + t] : m->pad;
    StrBuf err;
    sb_init(&err);
    if (fwd_forward(s, m, packed, lens, B, T, opt, &err)) fail_msg("forward: %s", err.s);
    sb_free(&err);
    free(packed);
    free(ids);
    free(lens);
}

/* The decoded output row of sequence b (positions 1..n) as text "v1 v2 ...". */
static void output_text(const FwdState *s, const Model *m, int b, int n, StrBuf *out)
{
    sb_clear(out);
    for (int t = 1; t <= n; t++) {
        if (t > 1) sb_putc(out, ' ');
        Value v = dec_output(m, s->logits + ((size_t)b * s->T + t) * m->cfg.d_vocab_out);
        model_value_text(v, out);
    }
}

/* ---------------------------------------------------------------- kernels */

static void test_matmul_blas_agrees_with_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 1);
    const int sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {47, 155, 48}, {96, 94, 155}, {3, 0, 4}, {1, 17, 1}, {64, 33, 65}};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        int M = sizes[i][0], K = sizes[i][1], N = sizes[i][2];
        float *inp = malloc(sizeof(float) * (size_t)(M * K + 1)), *w = malloc(sizeof(float) * (size_t)(K * N + 1));
        float *bias = malloc(sizeof(float) * (size_t)N);
        float *o1 = malloc(sizeof(float) * (size_t)M * N), *o2 = malloc(sizeof(float) * (size_t)M * N);
        fill_normal(inp, (size_t)M * K, &r);
        fill_normal(w, (size_t)K * N, &r);
        fill_normal(bias, (size_t)N, &r);
        for (int acc = 0; acc < 2; acc++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                fill_normal(o1, (size_t)M * N, &r);
                memcpy(o2, o1, sizeof(float) * (size_t)M * N);
                fwd_matmul(o1, inp, w, with_bias ? bias : NULL, M, K, N, acc);
                fwd_matmul_naive(o2, inp, w, with_bias ? bias : NULL, M, K, N, acc);
                float tol = 1e-5f * (float)(K + 1) + 1e-5f;
                if (max_abs_diff(o1, o2, (size_t)M * N) > tol)
                    fail_msg("matmul %dx%dx%d acc=%d bias=%d: differ by %g", M, K, N, acc, with_bias,
                             (double)max_abs_diff(o1, o2, (size_t)M * N));
            }
        free(inp), free(w), free(bias), free(o1), free(o2);
    }
}

static void test_attention_blas_agrees_with_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 2);
    const int B = 5, T = 9, HD = 6;
    const int lens[5] = {9, 1, 4, 7, 2};
    size_t n = (size_t)B * T * HD;
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    fill_normal(q, n, &r);
    fill_normal(k, n, &r);
    fill_normal(v, n, &r);
    /* equal logits on some rows, to exercise the hard mode's ties */
    memcpy(k + 1 * HD, k, HD * sizeof(float));
    float *z1 = malloc(n * sizeof(float)), *z2 = malloc(n * sizeof(float));
    float *p1 = malloc(sizeof(float) * B * T * T), *p2 = malloc(sizeof(float) * B * T * T);
    for (int causal = 0; causal < 2; causal++)
        for (int hard = 0; hard < 2; hard++) {
            fwd_attention(z1, p1, q, k, v, lens, B, T, HD, 0.4f, causal, hard);
            fwd_attention_naive(z2, p2, q, k, v, lens, B, T, HD, 0.4f, causal, hard);
            assert_true(max_abs_diff(p1, p2, (size_t)B * T * T) < 1e-5f);
            assert_true(max_abs_diff(z1, z2, n) < 1e-4f);
            for (int b = 0; b < B; b++)
                for (int i = 0; i < T; i++) {
                    const float *row = p1 + ((size_t)b * T + i) * T;
                    float sum = 0;
                    for (int j = 0; j < T; j++) {
                        int allowed = i < lens[b] && j < lens[b] && (!causal || j <= i);
                        if (!allowed) assert_true(row[j] == 0.0f);
                        sum += row[j];
                    }
                    if (i < lens[b]) assert_true(fabsf(sum - 1.0f) < 1e-5f);
                    else assert_true(sum == 0.0f);
                }
        }
    free(q), free(k), free(v), free(z1), free(z2), free(p1), free(p2);
}

static void test_attention_hard_is_uniform_over_the_maximal_keys(void **state)
{
    (void)state;
    /* one sequence of 4, HD 1: logits q*k = 2, 2, 1, 2 (within tolerance) */
    float q[4] = {1, 1, 1, 1}, k[4] = {2, 2, 1, 2.00001f}, v[4] = {1, 2, 30, 3}, z[4], pat[16];
    int lens[1] = {4};
    fwd_attention(z, pat, q, k, v, lens, 1, 4, 1, 1.0f, 0, 1);
    for (int i = 0; i < 4; i++) {
        assert_true(fabsf(pat[i * 4 + 0] - 1.0f / 3) < 1e-6f);
        assert_true(pat[i * 4 + 2] == 0.0f);
        assert_true(fabsf(z[i] - 2.0f) < 1e-5f);
    }
    /* causal: query 0 sees only key 0; query 2 sees keys 0, 1 (2 is smaller) */
    fwd_attention(z, pat, q, k, v, lens, 1, 4, 1, 1.0f, 1, 1);
    assert_true(pat[0] == 1.0f);
    assert_true(pat[2 * 4 + 0] == 0.5f && pat[2 * 4 + 1] == 0.5f && pat[2 * 4 + 2] == 0.0f);
    assert_true(fabsf(z[2] - 1.5f) < 1e-6f);
}

/* ---------------------------------------------------------------- known answers */

static void test_forward_copy_prev_model_copies_the_previous_token(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    const char *in[4] = {"a b c", "c", "b b a c", "c a"};
    const char *want[4] = {"- a b", "-", "- b b a", "- c"};
    FwdState s;
    fwd_init(&s);
    StrBuf out;
    sb_init(&out);
    for (int hard = 0; hard < 2; hard++) {
        FwdOptions o = FWD_OPTIONS_DEFAULT;
        o.hard = hard;
        run_texts(&s, m, in, 4, &o);
        for (int b = 0; b < 4; b++) {
            output_text(&s, m, b, (int)(strlen(in[b]) + 1) / 2, &out);
            assert_string_equal(out.s, want[b]);
        }
    }
    sb_free(&out);
    fwd_free(&s);
    model_free(m);
}

static void test_forward_one_neuron_mlp_gives_its_value(void **state)
{
    (void)state;
    Model *m = hm_one_neuron();
    const char *in[2] = {"a b a c", "b"};
    FwdState s;
    fwd_init(&s);
    run_texts(&s, m, in, 2, NULL);
    const float want[4] = {1.25f, 0.25f, 1.25f, 0.25f};
    for (int t = 1; t <= 4; t++) {
        Value v = dec_output(m, s.logits + t);
        assert_int_equal(v.kind, VAL_FLOAT);
        assert_true(v.u.f == want[t - 1]);
    }
    assert_true(dec_output(m, s.logits + s.T + 1).u.f == 0.25);
    fwd_free(&s);
    model_free(m);
}

/* ---------------------------------------------------------------- batches and options */

static void test_forward_batch_of_mixed_lengths_equals_one_by_one(void **state)
{
    (void)state;
    const char *in[6] = {"a b c d e f a b", "c", "f e", "a a a a", "d e f a b c", "b c a"};
    for (int causal = 0; causal < 2; causal++) {
        Model *m = hm_random(11 + (uint64_t)causal, 2, 3, 4, 7, 10, causal, 0, 0.7);
        FwdState all, one;
        fwd_init(&all);
        fwd_init(&one);
        run_texts(&all, m, in, 6, NULL);
        int VO = m->cfg.d_vocab_out;
        for (int b = 0; b < 6; b++) {
            run_texts(&one, m, &in[b], 1, NULL);
            int n = one.T;
            float d = max_abs_diff(all.logits + (size_t)b * all.T * VO, one.logits, (size_t)n * VO);
            if (d > 1e-4f) fail_msg("sequence %d: batch and single runs differ by %g", b, (double)d);
        }
        fwd_free(&all);
        fwd_free(&one);
        model_free(m);
    }
}

static void test_forward_large_batch_runs_in_chunks_like_one_by_one(void **state)
{
    (void)state;
    /* 300 sequences of up to 9 positions span several chunks of the batch; every recorded
     * stage, pattern and logit must match a run of that sequence alone. */
    Model *m = hm_random(31, 2, 2, 3, 5, 8, 1, 0, 0.9);
    enum { B = 300, T = 9 };
    int32_t *tok = malloc(sizeof(int32_t) * B * T);
    int lens[B];
    Rng r;
    rng_seed(&r, 3);
    for (int b = 0; b < B; b++) {
        lens[b] = 2 + (int)rng_below(&r, T - 1);
        for (int t = 0; t < T; t++)
            tok[b * T + t] = t == 0 ? m->bos : t < lens[b] ? (int32_t)rng_below(&r, 6) : m->pad;
    }
    FwdState all, one;
    fwd_init(&all);
    fwd_init(&one);
    FwdOptions o = FWD_OPTIONS_DEFAULT;
    o.record_resid = o.record_attn = 1;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(fwd_forward(&all, m, tok, lens, B, T, &o, &err), 0);
    int C = 8, VO = 5, NH = 2, L = 2;
    for (int b = 0; b < B; b += 7) {
        int n = lens[b];
        assert_int_equal(fwd_forward(&one, m, tok + b * T, &n, 1, n, &o, &err), 0);
        for (int st = 0; st <= 2 * L; st++)
            for (int t = 0; t < n; t++)
                assert_true(max_abs_diff(fwd_resid_stage(&all, st) + ((size_t)b * T + t) * C,
                                         fwd_resid_stage(&one, st) + (size_t)t * C, (size_t)C) < 1e-4f);
        for (int t = 0; t < n; t++)
            assert_true(max_abs_diff(all.logits + ((size_t)b * T + t) * VO, one.logits + (size_t)t * VO,
                                     (size_t)VO) < 1e-4f);
        for (int l = 0; l < L; l++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < n; i++)
                    assert_true(max_abs_diff(all.attn + ((((size_t)l * NH + h) * B + b) * T + i) * T,
                                             one.attn + (((size_t)l * NH + h) * n + i) * n, (size_t)n) < 1e-5f);
    }
    sb_free(&err);
    free(tok);
    fwd_free(&all);
    fwd_free(&one);
    model_free(m);
}

static void test_forward_blas_agrees_with_naive_kernels(void **state)
{
    (void)state;
    const char *in[3] = {"a b c d e f a b", "c", "f e a"};
    Model *m = hm_random(5, 3, 2, 5, 9, 12, 1, 1, 0.5);
    FwdState s1, s2;
    fwd_init(&s1);
    fwd_init(&s2);
    FwdOptions o = FWD_OPTIONS_DEFAULT;
    o.record_resid = o.record_attn = 1;
    run_texts(&s1, m, in, 3, &o);
    o.naive = 1;
    run_texts(&s2, m, in, 3, &o);
    size_t BT = (size_t)s1.B * s1.T;
    assert_true(max_abs_diff(s1.resids, s2.resids, 7 * BT * 12) < 1e-4f);
    assert_true(max_abs_diff(s1.attn, s2.attn, 3 * 2 * BT * s1.T) < 1e-5f);
    assert_true(max_abs_diff(s1.logits, s2.logits, BT) < 1e-4f);
    fwd_free(&s1);
    fwd_free(&s2);
    model_free(m);
}

static void test_forward_records_every_stage_and_pattern(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    const char *in[1] = {"b c a"};
    FwdState s;
    fwd_init(&s);
    FwdOptions o = FWD_OPTIONS_DEFAULT;
    o.record_resid = o.record_attn = 1;
    run_texts(&s, m, in, 1, &o);
    assert_int_equal(s.n_blocks, 1);
    assert_non_null(fwd_resid_stage(&s, 2));
    assert_null(fwd_resid_stage(&s, 3));
    assert_ptr_equal(fwd_resid_stage(&s, 2), s.resid);
    /* stage 0: the embedding (token b at position 1 is tokens:b + pos:1) */
    const float *e = fwd_resid_stage(&s, 0) + 1 * 12;
    assert_true(e[1] == 1.0f && e[5] == 1.0f && e[0] == 0.0f);
    /* after attention, position 2 holds prev:b; the (empty) MLP changes nothing */
    const float *a = fwd_resid_stage(&s, 1) + 2 * 12;
    assert_true(fabsf(a[10] - 1.0f) < 1e-5f);
    assert_true(max_abs_diff(fwd_resid_stage(&s, 1), fwd_resid_stage(&s, 2), 4 * 12) == 0.0f);
    /* the pattern: query p attends key p - 1 */
    for (int p = 1; p < 4; p++) assert_true(s.attn[p * 4 + p - 1] > 0.999f);
    assert_true(s.attn[0] == 1.0f);   /* causal BOS sees only itself */
    fwd_free(&s);
    model_free(m);
}

static void test_forward_runs_only_the_first_blocks_when_asked(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    const char *in[1] = {"b c a"};
    FwdState s;
    fwd_init(&s);
    FwdOptions o = FWD_OPTIONS_DEFAULT;
    o.n_blocks = 0;
    run_texts(&s, m, in, 1, &o);
    assert_int_equal(s.n_blocks, 0);
    StrBuf out;
    sb_init(&out);
    output_text(&s, m, 0, 3, &out);
    assert_string_equal(out.s, "- - -");   /* nothing copied yet */
    /* the logits are exactly the embedding read through W_U */
    o.n_blocks = 7;                           /* more than there are: all */
    run_texts(&s, m, in, 1, &o);
    assert_int_equal(s.n_blocks, 1);
    output_text(&s, m, 0, 3, &out);
    assert_string_equal(out.s, "- b c");
    sb_free(&out);
    fwd_free(&s);
    model_free(m);
}

static void test_forward_rejects_bad_batches(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    FwdState s;
    fwd_init(&s);
    StrBuf err;
    sb_init(&err);
    int32_t toks[6] = {3, 0, 1, 2, 0, 1};
    int lens[1] = {6};
    assert_int_equal(fwd_forward(&s, m, toks, lens, 1, 6, NULL, &err), -1);
    assert_non_null(strstr(err.s, "n_ctx (5)"));
    sb_clear(&err);
    toks[2] = 9;
    lens[0] = 3;
    assert_int_equal(fwd_forward(&s, m, toks, lens, 1, 3, NULL, &err), -1);
    assert_non_null(strstr(err.s, "token row 9"));
    sb_clear(&err);
    lens[0] = 0;
    assert_int_equal(fwd_forward(&s, m, toks, lens, 1, 3, NULL, &err), -1);
    assert_non_null(strstr(err.s, "length 0"));
    sb_free(&err);
    fwd_free(&s);
    model_free(m);
}

/* ---------------------------------------------------------------- decoding */

static void test_decode_groups_labels_and_reads_values(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    DecLayout d;
    dec_layout_init(&d, m);
    assert_int_equal(d.nsops, 3);
    const DecSop *prev = dec_layout_find(&d, "prev");
    assert_non_null(prev);
    assert_true(prev->categorical);
    assert_int_equal(prev->ndims, 3);
    assert_int_equal(prev->dims[0], 9);
    assert_string_equal(prev->values[2], "c");
    float row[12] = {0};
    assert_int_equal(dec_sop_value(prev, row).kind, VAL_NONE);   /* zero vector: no value */
    row[10] = 0.9f;
    row[11] = 0.2f;
    assert_string_equal(dec_sop_value(prev, row).u.s, "b");
    dec_layout_free(&d);
    model_free(m);

    m = hm_one_neuron();
    dec_layout_init(&d, m);
    const DecSop *one = dec_layout_find(&d, "one");
    assert_false(one->categorical);
    float r2[5] = {0, 0, 0, 1.0f, 0.1f};
    assert_true(dec_sop_value(one, r2).u.f == 1.0);
    assert_true(dec_sop_value(dec_layout_find(&d, "out"), r2).u.f == 0.1);   /* shortest float text */
    dec_layout_free(&d);
    model_free(m);
    assert_true(dec_float(1.0f / 3.0f).u.f == 0.33333334);
}

/* ---------------------------------------------------------------- interop models */

static void test_forward_writes_interop_models(void **state)
{
    (void)state;
    const char *dir = getenv("TRACC_INTEROP_DIR");
    char tmp[] = "/tmp/tracc-interop-XXXXXX";
    if (!dir) {
        assert_non_null(mkdtemp(tmp));
        dir = tmp;
    }
    Model *models[5] = {hm_copy_prev(), hm_one_neuron(), hm_random(21, 2, 2, 3, 6, 8, 1, 0, 0.8),
                        hm_random(22, 3, 3, 4, 5, 9, 0, 1, 0.6), hm_random(23, 1, 2, 2, 4, 6, 0, 0, 1.0)};
    models[4]->cfg.use_attn_scale = 0;
    const char *names[5] = {"copy_prev", "one_neuron", "random_causal", "random_numerical", "random_noscale"};
    StrBuf err;
    sb_init(&err);
    for (int i = 0; i < 5; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[i]);
        if (model_save(models[i], path, &err)) fail_msg("%s", err.s);
        Model *back = model_load(path, &err);
        assert_non_null(back);
        model_free(back);
        if (dir == tmp) unlink(path);
        model_free(models[i]);
    }
    if (dir == tmp) rmdir(tmp);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_blas_agrees_with_naive),
        cmocka_unit_test(test_attention_blas_agrees_with_naive),
        cmocka_unit_test(test_attention_hard_is_uniform_over_the_maximal_keys),
        cmocka_unit_test(test_forward_copy_prev_model_copies_the_previous_token),
        cmocka_unit_test(test_forward_one_neuron_mlp_gives_its_value),
        cmocka_unit_test(test_forward_batch_of_mixed_lengths_equals_one_by_one),
        cmocka_unit_test(test_forward_large_batch_runs_in_chunks_like_one_by_one),
        cmocka_unit_test(test_forward_blas_agrees_with_naive_kernels),
        cmocka_unit_test(test_forward_records_every_stage_and_pattern),
        cmocka_unit_test(test_forward_runs_only_the_first_blocks_when_asked),
        cmocka_unit_test(test_forward_rejects_bad_batches),
        cmocka_unit_test(test_decode_groups_labels_and_reads_values),
        cmocka_unit_test(test_forward_writes_interop_models),
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
