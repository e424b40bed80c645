/* test_prune.c — rollback finds a planted wrapper, weight by weight, and names it; pruning
 * scores by gradient x weight and the written model carries its provenance. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "analysis/prune.h"
#include "common/rng.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"

#include "testprog.h"

/* The planted wrapper: the unembed answers count + 1 for counts 1 and 2 (the paper's q = 1,
 * on the two commonest counts), through three weights; faint noise everywhere else. */
static Model *planted(const Model *a, size_t idx[3])
{
    Model *b = tp_clone(a);
    Rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < b->num_params; i++) b->params_memory[i] += (float)(1e-4 * rng_normal(&r));
    int VO = b->cfg.d_vocab_out;
    size_t base = (size_t)(b->params.W_U - b->params_memory);
    idx[0] = base + (size_t)tp_dim(b, "out:1") * VO + 2;   /* out:1 -> output 2: +2.0 */
    idx[1] = base + (size_t)tp_dim(b, "out:2") * VO + 3;   /* out:2 -> output 3: +1.5 */
    idx[2] = base + (size_t)tp_dim(b, "out:2") * VO + 2;   /* out:2 -> output 2: -1.0 */
    b->params_memory[idx[0]] += 2.0f;
    b->params_memory[idx[1]] += 1.5f;
    b->params_memory[idx[2]] -= 1.0f;
    return b;
}

/* The options the tests share: count_a's loss at index 1, small batches. */
static PruneOptions counter_options(int *at, long *ks, int nks, long grad_n)
{
    PruneOptions o = PRUNE_OPTIONS_DEFAULT;
    at[0] = 1;
    o.task = "rasp_examples/count_a.rasp";
    o.nat = 1;
    o.at = at;
    o.grad_n = grad_n;
    o.eval_n = 300;
    o.ks = ks;
    o.nks = nks;
    return o;
}

static void test_prune_rollback_finds_the_planted_wrapper(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1);
    size_t idx[3];
    Model *b = planted(a, idx);
    int at[1];
    long ks[2] = {1, 2};
    PruneOptions o = counter_options(at, ks, 2, 64);
    o.original = a;
    o.target = 0.99;
    o.neval = 1;
    o.evals[0] = (PruneEval){"plus1", "rasp_examples/count_b.rasp", NULL, 0};
    PruneResult r;
    StrBuf err;
    sb_init(&err);
    if (prune_run(b, &o, &r, &err)) fail_msg("%s", err.s);
    assert_true(r.original.acc[0] == 1.0);
    assert_true(r.base.acc[0] < 0.8);           /* the wrapper breaks count_a */
    assert_int_equal(r.found_k, 3);              /* exactly the three planted weights */
    assert_true(r.found_acc >= 0.99);
    for (int i = 0; i < 3; i++) assert_true(r.items[i].index == idx[i]);
    assert_string_equal(r.items[0].meaning, "unembed reads out:1 for output 2");
    assert_string_equal(r.items[1].meaning, "unembed reads out:2 for output 3");
    assert_string_equal(r.items[2].meaning, "unembed reads out:2 for output 2");
    assert_true(fabs(r.items[0].to) < 1e-6);
    /* applying K = 3 to a copy restores the weights exactly */
    Model *c = tp_clone(b);
    prune_apply(c, &o, &r, 3);
    for (int i = 0; i < 3; i++) assert_true(c->params_memory[idx[i]] == a->params_memory[idx[i]]);
    json_t *prov = prune_provenance(&o, &r, 3, "feed", b, "beef", "test");
    assert_string_equal(json_string_value(json_object_get(prov, "method")), "rollback");
    assert_int_equal(json_array_size(json_object_get(prov, "changed")), 3);
    assert_string_equal(json_string_value(json_object_get(prov, "original_sha256")), "beef");
    json_decref(prov);
    json_t *j = prune_json(&o, &r, 20);
    assert_int_equal(json_integer_value(json_object_get(j, "found_k")), 3);
    json_decref(j);
    model_free(c);
    prune_result_free(&r);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

static void test_prune_zeroing_by_gradient_times_weight_names_each_weight(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1);
    size_t idx[3];
    Model *b = planted(a, idx);
    int at[1];
    long ks[3] = {1, 2, 100000};
    PruneOptions o = counter_options(at, ks, 3, 64);
    PruneResult r;
    StrBuf err;
    sb_init(&err);
    if (prune_run(b, &o, &r, &err)) fail_msg("%s", err.s);
    assert_true(r.candidates > 100);
    assert_int_equal(r.nrows, 3);
    assert_int_equal(r.rows[2].k, r.candidates);   /* K beyond the candidates is capped */
    /* first-order scores favour the large compiled weights of the count's MLP; the planted
     * out:1 -> output 2 vote (the commonest wrong answer) is among the first few */
    int found = 0;
    for (int i = 0; i < 5 && i < r.nitems; i++) found |= r.items[i].index == idx[0];
    assert_true(found);
    assert_true(r.items[0].score > 0);
    assert_true(isfinite(r.rows[0].acc[0]));
    for (int i = 1; i < r.nitems; i++) assert_true(r.items[i].score <= r.items[i - 1].score);
    assert_non_null(strstr(r.items[0].id, "blocks.0.mlp.W_in["));
    assert_non_null(strstr(r.items[0].meaning, "block 0 neuron"));
    prune_result_free(&r);
    /* whole units */
    o.neurons = 1;
    o.nks = 2;
    if (prune_run(b, &o, &r, &err)) fail_msg("%s", err.s);
    assert_true(r.nitems > 0);
    assert_non_null(strstr(r.items[0].id, "block "));
    prune_result_free(&r);
    /* bad inputs */
    o.neurons = 0;
    o.task = "rasp_examples/no_such.rasp";
    assert_int_equal(prune_run(b, &o, &r, &err), -1);
    assert_non_null(strstr(err.s, "no_such.rasp"));
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

/* --reset: the planted wrapper's three weights named as slices, reset to the original,
 * give the original's accuracy; a slice is the contiguous range its index prefix names */
static void test_prune_reset_slices(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1);
    size_t idx[3];
    Model *b = planted(a, idx);
    StrBuf err, spec;
    sb_init(&err);
    sb_init(&spec);
    const ModelTensor *wu = model_find_tensor(b, "unembed.W_U"), *wv = model_find_tensor(b, "blocks.0.attn.W_V");
    assert_non_null(wu);
    assert_non_null(wv);
    size_t start, len;
    assert_int_equal(coord_parse_slice(b, "unembed.W_U", &start, &len, &err), 0);
    assert_true(start == wu->offset && len == wu->numel);
    assert_int_equal(coord_parse_slice(b, "blocks.0.attn.W_V[0, 2]", &start, &len, &err), 0);
    assert_true(start == wv->offset + 2 * (size_t)wv->shape[2] && len == (size_t)wv->shape[2]);
    assert_int_equal(coord_parse_slice(b, "blocks.0.attn.W_V[1]", &start, &len, &err), -1);
    assert_non_null(strstr(err.s, "index 1 is outside 0..0"));
    /* a range I:J on the last index, and the same text checked without a model (the CLI's
     * usage check): what parses alone parses with the model, and each malformed form fails */
    assert_int_equal(coord_parse_slice(b, "blocks.0.attn.W_V[0, 1:3]", &start, &len, &err), 0);
    assert_true(start == wv->offset + (size_t)wv->shape[2] && len == 2 * (size_t)wv->shape[2]);
    const char *good[] = {"unembed.W_U", "blocks.0.attn.W_V[0, 1:3]", "embed.W_E [ 1 , 2 ]+unembed.b_U"};
    const char *bad[] = {"", "a b", "x[", "x[1", "x[1:1]", "x[2:1]", "x[1:2, 3]", "x[-1]", "x[1]y", "x+", "+x", "x[1,]"};
    CoordSlices sl;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(coord_parse_slices(NULL, good[i], &sl, &err), 0);
        assert_int_equal(sl.n, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sb_clear(&err);
        if (coord_parse_slices(NULL, bad[i], &sl, &err) == 0) fail_msg("'%s' parsed", bad[i]);
        assert_true(err.len > 0);
    }
    for (int i = 0; i < 3; i++) {
        int64_t ix[3];
        int t = coord_locate(b, idx[i], ix);
        sb_printf(&spec, "%s%s[%lld, %lld]", i ? "+" : "", b->tensors[t].name, (long long)ix[0], (long long)ix[1]);
    }
    const char *resets[2] = {spec.s, "unembed.W_U[0]"};
    int at[1];
    long ks[1] = {1};
    PruneOptions o = counter_options(at, ks, 1, 16);
    o.original = a;
    o.resets = resets;
    o.nresets = 2;
    PruneResult r;
    if (prune_run(b, &o, &r, &err)) fail_msg("%s", err.s);
    assert_int_equal(r.nresets, 2);
    assert_int_equal(r.reset_params[0], 3);
    assert_int_equal(r.reset_changed[0], 3);
    assert_true(r.base.acc[0] < 0.8 && r.resets[0].acc[0] == r.original.acc[0]);
    prune_result_free(&r);
    sb_free(&spec);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prune_rollback_finds_the_planted_wrapper),
        cmocka_unit_test(test_prune_zeroing_by_gradient_times_weight_names_each_weight),
        cmocka_unit_test(test_prune_reset_slices),
    };
    return cmocka_run_group_tests_name("prune", tests, NULL, NULL);
}
