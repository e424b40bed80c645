/* test_diff.c — the labelled weight diff on a planted wrapper: a compiled Counter with a few
 * known weights edited through the library (plus faint noise everywhere, as a fine-tune
 * leaves), and what `diff` must say about it. */
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
#include "analysis/diff.h"
#include "common/rng.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "compiler/back/verify.h"

#include "testprog.h"

static int out_col(const Model *m, const char *text)
{
    StrBuf b;
    sb_init(&b);
    for (int k = 0; k < m->cfg.d_vocab_out; k++) {
        sb_clear(&b);
        model_value_text(m->output_values[k], &b);
        if (!strcmp(b.s, text)) {
            sb_free(&b);
            return k;
        }
    }
    sb_free(&b);
    fail_msg("no output value %s", text);
    return -1;
}

/* Faint noise on every parameter, below anything planted. */
static void add_noise(Model *m, double sigma)
{
    Rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += (float)(sigma * rng_normal(&r));
}

static char *entry_text(const DiffResult *r, const DiffEntry *e)
{
    StrBuf b;
    sb_init(&b);
    diff_entry_name(r, e, &b);
    char *t = sb_steal(&b);
    sb_free(&b);
    return t;
}

static void test_diff_lists_planted_entries_first_with_their_labels(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1);
    Model *b = tp_clone(a);
    add_noise(b, 1e-5);
    int C = b->cfg.d_model, VO = b->cfg.d_vocab_out, M = b->cfg.d_mlp;
    /* 1: unembed: out:2 also votes for output 3 (a new pathway) */
    b->params.W_U[(size_t)tp_dim(b, "out:2") * VO + (size_t)out_col(b, "3")] += 3.0f;
    /* 2: an existing pathway weakened: out:1 -> output 1 */
    b->params.W_U[(size_t)tp_dim(b, "out:1") * VO + (size_t)out_col(b, "1")] -= 2.5f;
    /* 3: block 0 neuron 2 now also writes count_a:5 (new) */
    b->params.W_out[(size_t)0 * M * C + (size_t)2 * C + (size_t)tp_dim(b, "count_a:5")] += 2.0f;
    /* 4: the embedding of position 3 (index 2) writes one (new) */
    b->params.W_pos[(size_t)3 * C + (size_t)tp_dim(b, "one")] -= 1.5f;

    StrBuf err;
    sb_init(&err);
    DiffOptions o = DIFF_OPTIONS_DEFAULT;
    o.top = 6;
    DiffResult *r = diff_weights(a, b, &o, &err);
    assert_non_null(r);
    const char *want[4] = {"unembed reads out:2 for output 3", "unembed reads out:1 for output 1",
                           "block 0 neuron 2 (count_a = selector_width(count_a@sw)) writes count_a:5",
                           "embedding of position 3 (index 2) writes one"};
    const double dw[4] = {3.0, -2.5, 2.0, -1.5};
    assert_true(r->ntop >= 4);
    for (int i = 0; i < 4; i++) {
        char *t = entry_text(r, &r->top[i]);
        if (strcmp(t, want[i])) fail_msg("entry %d: got '%s', wanted '%s'", i + 1, t, want[i]);
        free(t);
        assert_true(fabs((r->top[i].after - r->top[i].before) - dw[i]) < 1e-3);
    }
    /* the fifth is noise */
    assert_true(fabs(r->top[4].after - r->top[4].before) < 0.01);
    /* the new pathways: the three planted on zero entries, largest first */
    const char *fresh[3] = {want[0], want[2], want[3]};
    assert_true(r->nfresh >= 3);
    for (int i = 0; i < 3; i++) {
        char *t = entry_text(r, &r->fresh[i]);
        if (strcmp(t, fresh[i])) fail_msg("new pathway %d: got '%s', wanted '%s'", i + 1, t, fresh[i]);
        free(t);
        assert_true(r->fresh[i].before == 0);
    }
    /* the unembed is the most changed component */
    assert_string_equal(r->comp[r->order[0]].name, "unembed");
    /* subspaces: out is the largest reader (the unembed plants read out:*) */
    assert_string_equal(r->sub[0].name, "out");
    assert_true(r->sub[0].read_sq / r->read_total > 0.5);
    /* no provenance: -1 */
    assert_int_equal(r->provenance_names_before, -1);
    json_t *j = diff_json(r);
    assert_non_null(json_object_get(j, "largest_changes"));
    assert_int_equal(json_array_size(json_object_get(j, "largest_changes")), 6);
    json_decref(j);
    StrBuf svg;
    sb_init(&svg);
    diff_svg(r, 3, "planted <wrapper> & co", &svg);
    assert_non_null(strstr(svg.s, "planted &lt;wrapper&gt; &amp; co"));
    assert_non_null(strstr(svg.s, "</svg>"));
    sb_free(&svg);
    diff_free(r);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

static void test_diff_names_a_planted_query_weight_in_qk_coordinates(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1);
    Model *b = tp_clone(a);
    const ModelConfig *c = &b->cfg;
    /* block 0 head 0 reads the query index; make the query indices:3 reach a QK dimension
     * that the key tokens:a already uses: a new (query indices:3, key tokens:a) pathway */
    int C = c->d_model, HD = c->d_head, ta = tp_dim(b, "tokens:a"), q3 = tp_dim(b, "indices:3");
    int dd = -1;
    for (int d = 0; d < HD && dd < 0; d++)
        if (a->params.W_K[(size_t)ta * HD + d] != 0) dd = d;
    assert_true(dd >= 0);
    b->params.W_Q[(size_t)q3 * HD + dd] += 0.5f;
    (void)C;
    StrBuf err;
    sb_init(&err);
    DiffResult *r = diff_weights(a, b, NULL, &err);
    assert_non_null(r);
    char *t = entry_text(r, &r->top[0]);
    assert_non_null(strstr(t, "block 0 head 0 QK (count_a = selector_width(bin_idx)) [query indices:3, key tokens:a]"));
    free(t);
    assert_true(r->top[0].before == 0);
    /* only the QK form changed */
    assert_int_equal(r->comp[r->order[1]].norm_delta, 0);
    diff_free(r);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

static void test_diff_refuses_models_of_different_structure_and_says_what_differs(void **state)
{
    (void)state;
    RaspProgram *pa = tp_load("rasp_examples/count_a.rasp"), *pb = tp_load("rasp_examples/count_b.rasp");
    Model *a = tp_compile(pa, 1), *b = tp_compile(pb, 1);
    StrBuf why, err;
    sb_init(&why);
    sb_init(&err);
    assert_int_equal(diff_compatible(a, b, &why), -1);
    assert_non_null(strstr(why.s, "residual["));
    assert_non_null(strstr(why.s, "count_a"));
    assert_non_null(strstr(why.s, "count_b"));
    assert_null(diff_weights(a, b, NULL, &err));
    assert_non_null(strstr(err.s, "do not share their compiled structure"));
    /* a different configuration */
    Model *n = tp_compile(pa, 0);
    sb_clear(&why);
    assert_int_equal(diff_compatible(a, n, &why), -1);
    assert_non_null(strstr(why.s, "config.n_layers: 2 in BEFORE, 3 in AFTER"));
    /* and the same model is compatible with itself, with no change */
    sb_clear(&why);
    assert_int_equal(diff_compatible(a, a, &why), 0);
    DiffResult *r = diff_weights(a, a, NULL, &err);
    assert_non_null(r);
    assert_int_equal(r->nchanged, 0);
    assert_int_equal(r->ntop, 0);
    diff_free(r);
    sb_free(&why);
    sb_free(&err);
    model_free(a);
    model_free(b);
    model_free(n);
    rasp_free(pa);
    rasp_free(pb);
}

static void test_diff_provenance_check_compares_the_parent_hash(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1);
    Model *b = tp_clone(a);
    json_t *prov = json_pack("{s:s}", "parent_sha256", "abc123");
    model_set_provenance(b, prov);
    json_decref(prov);
    DiffOptions o = DIFF_OPTIONS_DEFAULT;
    o.before_sha = "abc123";
    StrBuf err;
    sb_init(&err);
    DiffResult *r = diff_weights(a, b, &o, &err);
    assert_int_equal(r->provenance_names_before, 1);
    diff_free(r);
    o.before_sha = "def456";
    r = diff_weights(a, b, &o, &err);
    assert_int_equal(r->provenance_names_before, 0);
    assert_string_equal(r->provenance_parent, "abc123");
    diff_free(r);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

static void test_diff_inputs_sees_a_broken_sop_and_a_moved_attention(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 0);   /* --no-fuse: is_a has its own dimensions */
    Model *b = tp_clone(a);
    /* break is_a: its MLP (block 0) writes is_a:true for token b too, through a new unit
     * weight -- simplest: the embedding of token b writes is_a:true directly */
    int C = b->cfg.d_model;
    b->params.W_E[(size_t)1 * C + (size_t)tp_dim(b, "is_a:true")] += 5.0f;
    StrBuf err;
    sb_init(&err);
    DiffResult *r = diff_weights(a, b, NULL, &err);
    assert_non_null(r);
    DiffInputOptions io = DIFF_INPUT_OPTIONS_DEFAULT;
    io.n = 200;
    assert_int_equal(diff_inputs(r, a, b, p, &io, &err), 0);
    const DiffInputs *in = r->inputs;
    int seen = 0;
    for (int i = 0; i < in->nsops; i++) {
        const DiffSopStat *s = &in->sops[i];
        if (!s->readable) continue;
        assert_true(s->n > 0);
        assert_int_equal(s->agree_before, s->n);   /* the compiled model computes every s-op */
        if (!strcmp(s->name, "is_a")) {
            seen = 1;
            assert_true(s->agree_after < s->n);
            assert_string_equal(s->where, "block 0 MLP");
        }
        if (!strcmp(s->name, "tokens")) assert_int_equal(s->agree_after, s->n);
    }
    assert_true(seen);
    assert_int_equal(in->out_before, in->out_n);
    assert_true(in->out_after < in->out_n);
    /* the selector_width head reads is_a as its key: its pattern moved */
    int moved = 0;
    for (int h = 0; h < in->nheads; h++)
        if (in->heads[h].block == 1 && in->heads[h].mean_tv > 0.01) moved = 1;
    assert_true(moved);
    diff_free(r);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

static void test_coords_name_every_kind_of_parameter(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *m = tp_compile(p, 1);
    Coords co;
    coord_init(&co, m);
    StrBuf b;
    sb_init(&b);
    const ModelTensor *t = model_find_tensor(m, "blocks.0.attn.W_K");
    assert_non_null(t);
    int C = m->cfg.d_model, HD = m->cfg.d_head;
    size_t idx = t->offset + (size_t)tp_dim(m, "tokens:a") * HD + 1;
    coord_param_id(m, idx, &b);
    assert_string_equal(b.s, "blocks.0.attn.W_K[0, 1, 1]");
    sb_clear(&b);
    coord_param_meaning(&co, idx, &b);
    assert_string_equal(b.s, "block 0 head 0 (count_a = selector_width(bin_idx)): key reads tokens:a (QK dim 1)");
    sb_clear(&b);
    t = model_find_tensor(m, "embed.W_E");
    coord_param_meaning(&co, t->offset + (size_t)2 * C + 3, &b);
    assert_string_equal(b.s, "embedding of token c writes tokens:c");
    sb_clear(&b);
    t = model_find_tensor(m, "unembed.b_U");
    coord_param_meaning(&co, t->offset + 4, &b);
    assert_string_equal(b.s, "unembed bias of output 4");
    sb_clear(&b);
    t = model_find_tensor(m, "blocks.0.mlp.W_in");
    coord_param_meaning(&co, t->offset + (size_t)tp_dim(m, "count_a@sw") * m->cfg.d_mlp + 21, &b);
    assert_string_equal(b.s, "block 0 neuron 21 (clean_bos(tokens:BOS)) reads count_a@sw");
    sb_clear(&b);
    t = model_find_tensor(m, "blocks.1.mlp.b_in");
    coord_param_meaning(&co, t->offset + 3, &b);
    assert_string_equal(b.s, "block 1 neuron 3 (unused) bias");
    sb_free(&b);
    coord_free(&co);
    model_free(m);
    rasp_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_lists_planted_entries_first_with_their_labels),
        cmocka_unit_test(test_diff_names_a_planted_query_weight_in_qk_coordinates),
        cmocka_unit_test(test_diff_refuses_models_of_different_structure_and_says_what_differs),
        cmocka_unit_test(test_diff_provenance_check_compares_the_parent_hash),
        cmocka_unit_test(test_diff_inputs_sees_a_broken_sop_and_a_moved_attention),
        cmocka_unit_test(test_coords_name_every_kind_of_parameter),
    };
    return cmocka_run_group_tests_name("diff", tests, NULL, NULL);
}
