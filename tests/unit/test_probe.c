/* test_probe.c — direct reads through the residual labels are exact on a compiled model for
 * every s-op, from the sub-layer that writes it on, and drop where a planted edit breaks the
 * s-op; a linear probe finds what the labels hold. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/probe.h"
#include "analysis/readout.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"

#include "testprog.h"

static ProbeOptions quick(void)
{
    ProbeOptions o = PROBE_OPTIONS_DEFAULT;
    o.train_n = 300;
    o.test_n = 300;
    o.steps = 0;
    return o;
}

/* Every readable s-op of every program reads back exactly from its stage on. */
static void check_exact(const char *path, int fuse)
{
    RaspProgram *p = tp_load(path);
    Model *m = tp_compile(p, fuse);
    DecLayout lay;
    dec_layout_init(&lay, m);
    ProbeOptions o = quick();
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dec_layout_add_virtual(&lay, m, &err), 0);
    int nread = 0;
    for (int i = 0; i < p->nsops; i++) {
        if (!ro_find(&lay, &p->sops[i])) continue;
        nread++;
        ProbeResult r;
        if (probe_run(m, p, p->sops[i].label, &o, &r, &err)) fail_msg("%s: %s", path, err.s);
        assert_true(r.direct_ok);
        assert_true(r.own_program);
        for (int s = r.written_stage; s < r.nstages; s++)
            if (!(r.st[s].direct == 1.0))
                fail_msg("%s (fuse %d): s-op %s read after %s: %.4f", path, fuse, r.sop, r.st[s].where, r.st[s].direct);
        probe_result_free(&r);
    }
    assert_true(nread >= 3);
    sb_free(&err);
    dec_layout_free(&lay);
    model_free(m);
    rasp_free(p);
}

static void test_probe_direct_read_is_exact_for_every_sop_of_compiled_models(void **state)
{
    (void)state;
    check_exact("rasp_examples/count_a.rasp", 1);
    check_exact("rasp_examples/count_a.rasp", 0);
    check_exact("rasp_examples/frac_prevs.rasp", 1);     /* numerical s-ops */
    check_exact("rasp_examples/reverse.rasp", 0);
    check_exact("rasp_examples/sort.rasp", 1);
}

static void test_probe_direct_read_drops_where_a_plant_breaks_the_sop(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *m = tp_compile(p, 0);
    /* the embedding of token c now writes is_a:true strongly: is_a breaks where c is */
    int C = m->cfg.d_model;
    m->params.W_E[(size_t)2 * C + (size_t)tp_dim(m, "is_a:true")] += 5.0f;
    ProbeOptions o = quick();
    ProbeResult r;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(probe_run(m, p, "is_a", &o, &r, &err), 0);
    double at = r.st[r.written_stage].direct;
    assert_true(at < 0.95 && at > 0.5);   /* about 1/9 of the positions hold c */
    probe_result_free(&r);
    /* tokens is untouched */
    assert_int_equal(probe_run(m, p, "tokens", &o, &r, &err), 0);
    assert_true(r.st[0].direct == 1.0);
    probe_result_free(&r);
    sb_free(&err);
    model_free(m);
    rasp_free(p);
}

static void test_probe_linear_probe_learns_what_the_labels_hold(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *m = tp_compile(p, 1);
    ProbeOptions o = quick();
    o.steps = 400;
    int at[1] = {1};
    o.nat = 1;
    o.at = at;
    ProbeResult r;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(probe_run(m, p, "count_a", &o, &r, &err), 0);
    int w = r.written_stage;
    assert_true(w == 2);   /* block 0 MLP */
    assert_true(r.st[w].linear_test > 0.95);
    assert_true(r.st[w].linear_test > r.majority);
    /* before the count exists (the embedding) a probe can do little better than guessing */
    assert_true(r.st[0].linear_test < r.st[w].linear_test);
    probe_result_free(&r);
    /* the same seed gives the same numbers */
    ProbeResult r2, r3;
    assert_int_equal(probe_run(m, p, "count_a", &o, &r2, &err), 0);
    assert_int_equal(probe_run(m, p, "count_a", &o, &r3, &err), 0);
    for (int s = 0; s < r2.nstages; s++) assert_true(r2.st[s].linear_test == r3.st[s].linear_test);
    probe_result_free(&r2);
    probe_result_free(&r3);
    sb_free(&err);
    model_free(m);
    rasp_free(p);
}

static void test_probe_of_another_program_has_no_direct_read(void **state)
{
    (void)state;
    RaspProgram *pa = tp_load("rasp_examples/count_a.rasp"), *pb = tp_load("rasp_examples/count_b.rasp");
    Model *m = tp_compile(pa, 1);
    ProbeOptions o = quick();
    ProbeResult r;
    StrBuf err;
    sb_init(&err);
    /* `out` exists in both programs, but the labels were made for count_a's */
    assert_int_equal(probe_run(m, pb, "out", &o, &r, &err), 0);
    assert_false(r.own_program);
    assert_false(r.direct_ok);
    assert_true(isnan(r.st[0].direct));
    probe_result_free(&r);
    assert_int_equal(probe_run(m, pa, "no_such", &o, &r, &err), -1);
    assert_non_null(strstr(err.s, "no s-op named 'no_such'"));
    sb_clear(&err);
    int at[1] = {9};
    o.nat = 1;
    o.at = at;
    o.len_min = 3;
    o.len_max = 5;
    assert_int_equal(probe_run(m, pa, "out", &o, &r, &err), -1);
    assert_non_null(strstr(err.s, "--at 9 needs inputs of at least 10 tokens"));
    sb_free(&err);
    model_free(m);
    rasp_free(pa);
    rasp_free(pb);
}

/* Probing several s-ops in one pass gives each the result probing it alone gives. */
static void test_probe_many_equals_one_at_a_time(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *m = tp_compile(p, 1);
    m->params.W_E[(size_t)2 * m->cfg.d_model] += 0.3f;   /* not exact: the probes have work to do */
    ProbeOptions o = quick();
    o.train_n = 120;
    o.test_n = 80;
    o.steps = 40;
    const char *names[3] = {"is_a", "count_a", "tokens"};
    ProbeResult many[3];
    StrBuf err;
    sb_init(&err);
    assert_int_equal(probe_run_many(m, p, names, 3, &o, many, &err), 0);
    for (int k = 0; k < 3; k++) {
        ProbeResult one;
        assert_int_equal(probe_run(m, p, names[k], &o, &one, &err), 0);
        assert_string_equal(one.sop, many[k].sop);
        assert_int_equal(one.nclasses, many[k].nclasses);
        assert_int_equal(one.written_stage, many[k].written_stage);
        assert_true(one.majority == many[k].majority);
        for (int s = 0; s < one.nstages; s++) {
            assert_memory_equal(&one.st[s].direct, &many[k].st[s].direct, sizeof(double));
            assert_memory_equal(&one.st[s].linear_train, &many[k].st[s].linear_train, sizeof(double));
            assert_memory_equal(&one.st[s].linear_test, &many[k].st[s].linear_test, sizeof(double));
        }
        probe_result_free(&one);
        probe_result_free(&many[k]);
    }
    /* an unknown name fails before any work */
    const char *bad[2] = {"is_a", "nope"};
    assert_int_equal(probe_run_many(m, p, bad, 2, &o, many, &err), -1);
    assert_non_null(strstr(err.s, "no s-op named 'nope'"));
    sb_free(&err);
    model_free(m);
    rasp_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_direct_read_is_exact_for_every_sop_of_compiled_models),
        cmocka_unit_test(test_probe_direct_read_drops_where_a_plant_breaks_the_sop),
        cmocka_unit_test(test_probe_linear_probe_learns_what_the_labels_hold),
        cmocka_unit_test(test_probe_of_another_program_has_no_direct_read),
        cmocka_unit_test(test_probe_many_equals_one_at_a_time),
    };
    return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
