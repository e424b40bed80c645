/* test_decode.c — reading values back out of a model (runtime/decode.h): the no-value rule
 * for outputs and residual s-ops, fused (virtual) s-ops read through the linear forms of
 * `compiler.virtual`, malformed metadata, and, on compiled programs, every s-op decoded
 * from the final residual agreeing with the reference interpreter on every short input. */
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

#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "runtime/model.h"
#include "handmade.h"

/* ---------------------------------------------------------------- the output */

static const char *out_text(const Model *m, const float *logits, StrBuf *b)
{
    sb_clear(b);
    Value v = dec_output(m, logits);
    if (v.kind == VAL_NONE) sb_puts(b, "None");
    else model_value_text(v, b);
    return b->s;
}

static void test_output_is_no_value_unless_the_largest_logit_is_above_one_half(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();   /* output values a b c - */
    StrBuf b;
    sb_init(&b);
    const float zero[4] = {0, 0, 0, 0};
    assert_string_equal(out_text(m, zero, &b), "None");                 /* the zero vector */
    const float even[4] = {0.5f, 0.5f, 0, 0};
    assert_string_equal(out_text(m, even, &b), "None");                 /* an even mixture */
    const float just[4] = {0.5f, 0.50001f, 0, 0};
    assert_string_equal(out_text(m, just, &b), "b");
    const float tie[4] = {0.1f, 0.9f, 0.9f, 0};
    assert_string_equal(out_text(m, tie, &b), "b");                      /* first on a tie */
    assert_int_equal(dec_output_column(m, tie), 1);
    const float third[4] = {1.0f / 3, 1.0f / 3, 1.0f / 3, 0};
    assert_int_equal(dec_output_column(m, third), -1);
    const float neg[4] = {-2, -1, -3, -4};
    assert_string_equal(out_text(m, neg, &b), "None");
    const float nan_row[4] = {NAN, 0.2f, 0.1f, 0};
    assert_string_equal(out_text(m, nan_row, &b), "None");
    const float one_hot[4] = {0, 0, 0.9999f, 1e-4f};
    assert_string_equal(out_text(m, one_hot, &b), "c");
    model_free(m);

    m = hm_one_neuron();   /* numerical: the logit, whatever its size */
    const float small = 0.125f, negative = -3.0f;
    assert_true(dec_output(m, &small).u.f == 0.125);
    assert_true(dec_output(m, &negative).u.f == -3.0);
    assert_int_equal(dec_output_column(m, &small), -1);
    model_free(m);
    sb_free(&b);
}

static void test_residual_sop_is_no_value_at_an_even_mixture(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    DecLayout d;
    dec_layout_init(&d, m);
    assert_int_equal(d.nresidual, d.nsops);
    const DecSop *prev = dec_layout_find(&d, "prev");   /* dims 9, 10, 11: a b c */
    assert_false(prev->isvirtual);
    float row[12] = {0};
    row[9] = row[10] = 0.5f;
    assert_int_equal(dec_categorical(prev, row), -1);
    row[10] = 0.6f;
    row[9] = 0.4f;
    assert_int_equal(dec_categorical(prev, row), 1);
    row[9] = row[10] = 0;
    row[11] = 0.5f;
    assert_int_equal(dec_sop_value(prev, row).kind, VAL_NONE);
    dec_layout_free(&d);
    model_free(m);
}

/* ---------------------------------------------------------------- virtual s-ops */

/* hm_copy_prev (residual tokens:a b c BOS, pos:0..4, prev:a b c) with compiler.virtual. */
static Model *with_virtual(const char *json)
{
    Model *m = hm_copy_prev();
    json_error_t e;
    json_t *virt = json_loads(json, JSON_DECODE_ANY, &e);
    if (!virt) fail_msg("bad test JSON: %s", e.text);
    json_t *comp = json_pack("{s:s, s:o}", "name", "tracc", "virtual", virt);
    model_set_compiler(m, comp);
    json_decref(comp);
    return m;
}

static void test_virtual_sops_decode_through_their_forms(void **state)
{
    (void)state;
    Model *m = with_virtual(
        "[{\"name\": \"not_c\", \"encoding\": \"categorical\","
        "  \"form\": {\"false\": {\"tokens:c\": 1.0}, \"true\": {\"tokens:a\": 1.0, \"tokens:b\": 1.0}}},"
        " {\"name\": \"score\", \"encoding\": \"numerical\", \"form\": {\"pos:1\": 2.0, \"prev:a\": -0.5}},"
        " {\"name\": \"early\", \"encoding\": \"numerical\", \"form\": {\"pos:0\": 1.0}},"
        " {\"name\": \"nothing\", \"encoding\": \"categorical\", \"form\": {}}]");
    DecLayout d;
    dec_layout_init(&d, m);
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dec_layout_add_virtual(&d, m, &err), 0);
    assert_string_equal(err.s, "");
    assert_int_equal(d.nresidual, 3);
    assert_int_equal(d.nsops, 7);
    /* each right after the last residual s-op its forms read; a form reading nothing last */
    const char *order[7] = {"tokens", "not_c", "pos", "early", "prev", "score", "nothing"};
    for (int i = 0; i < 7; i++) assert_string_equal(d.sops[i].name, order[i]);
    const DecSop *not_c = dec_layout_find(&d, "not_c");
    assert_true(not_c->isvirtual && not_c->categorical);
    assert_null(not_c->dims);
    assert_int_equal(not_c->ndims, 2);
    float row[12] = {0};
    row[1] = 1;                                            /* tokens:b */
    assert_string_equal(dec_sop_value(not_c, row).u.s, "true");
    row[1] = 0;
    row[2] = 1;                                            /* tokens:c */
    assert_string_equal(dec_sop_value(not_c, row).u.s, "false");
    row[2] = 0;
    assert_int_equal(dec_sop_value(not_c, row).kind, VAL_NONE);   /* zero: no value */
    row[0] = row[2] = 0.5f;                                /* an even mixture */
    assert_int_equal(dec_categorical(not_c, row), -1);
    const DecSop *score = dec_layout_find(&d, "score");
    assert_false(score->categorical);
    memset(row, 0, sizeof row);
    row[5] = 1;                                            /* pos:1 */
    row[9] = 0.5f;                                         /* prev:a */
    assert_true(fabsf(dec_numerical(score, row) - 1.75f) < 1e-6f);
    assert_true(dec_sop_value(score, row).u.f == 1.75);
    assert_int_equal(dec_sop_value(dec_layout_find(&d, "nothing"), row).kind, VAL_NONE);
    /* a second call adds nothing */
    assert_int_equal(dec_layout_add_virtual(&d, m, &err), 0);
    assert_int_equal(d.nsops, 7);
    sb_free(&err);
    dec_layout_free(&d);
    model_free(m);
}

static void test_model_without_virtual_metadata_adds_nothing(void **state)
{
    (void)state;
    Model *models[3] = {hm_one_neuron(), with_virtual("[]"), with_virtual("null")};
    for (int i = 0; i < 3; i++) {
        DecLayout d;
        dec_layout_init(&d, models[i]);
        StrBuf err;
        sb_init(&err);
        int n = d.nsops;
        assert_int_equal(dec_layout_add_virtual(&d, models[i], &err), 0);
        assert_int_equal(d.nsops, n);
        assert_string_equal(err.s, "");
        sb_free(&err);
        dec_layout_free(&d);
        model_free(models[i]);
    }
}

static void test_malformed_virtual_entries_are_skipped_and_named(void **state)
{
    (void)state;
    static const struct {
        const char *entry, *message;
    } cases[] = {
        {"3", "compiler.virtual[0]: expected an object"},
        {"{\"encoding\": \"numerical\", \"form\": {}}", "compiler.virtual[0].name: expected an s-op name"},
        {"{\"name\": \"\", \"encoding\": \"numerical\", \"form\": {}}", "compiler.virtual[0].name"},
        {"{\"name\": \"a:b\", \"encoding\": \"numerical\", \"form\": {}}", "compiler.virtual[0].name"},
        {"{\"name\": \"x\", \"encoding\": \"binary\", \"form\": {}}",
         "compiler.virtual[0].encoding: expected \"categorical\" or \"numerical\""},
        {"{\"name\": \"prev\", \"encoding\": \"numerical\", \"form\": {}}",
         "compiler.virtual[0]: 'prev' is already in the residual"},
        {"{\"name\": \"x\", \"encoding\": \"numerical\", \"form\": {\"tokens:z\": 1}}",
         "compiler.virtual[0].form: unknown residual label 'tokens:z'"},
        {"{\"name\": \"x\", \"encoding\": \"numerical\", \"form\": {\"tokens:a\": \"1\"}}",
         "compiler.virtual[0].form.tokens:a: expected a finite number"},
        {"{\"name\": \"x\", \"encoding\": \"numerical\", \"form\": {\"tokens:a\": 1e300}}",
         "compiler.virtual[0].form.tokens:a: expected a finite number"},
        {"{\"name\": \"x\", \"encoding\": \"numerical\", \"form\": [1]}",
         "compiler.virtual[0].form: expected an object {label: coefficient}"},
        {"{\"name\": \"x\", \"encoding\": \"categorical\", \"form\": 1}",
         "compiler.virtual[0].form: expected an object {value: {label: coefficient}}"},
        {"{\"name\": \"x\", \"encoding\": \"categorical\", \"form\": {\"t\": {\"one\": 1}}}",
         "compiler.virtual[0].form.t: unknown residual label 'one'"},
        {"{\"name\": \"x\", \"encoding\": \"categorical\", \"form\": {\"t\": 1}}",
         "compiler.virtual[0].form.t: expected an object {label: coefficient}"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        /* the bad entry, then a good one that must still be added */
        char json[512];
        snprintf(json, sizeof json,
                 "[%s, {\"name\": \"ok\", \"encoding\": \"numerical\", \"form\": {\"tokens:a\": 1}}]",
                 cases[i].entry);
        Model *m = with_virtual(json);
        DecLayout d;
        dec_layout_init(&d, m);
        StrBuf err;
        sb_init(&err);
        int skipped = dec_layout_add_virtual(&d, m, &err);
        if (skipped != 1 || !strstr(err.s, cases[i].message))
            fail_msg("case %zu: skipped %d, message '%s', wanted '%s'", i, skipped, err.s, cases[i].message);
        assert_non_null(dec_layout_find(&d, "ok"));
        assert_int_equal(d.nsops, d.nresidual + 1);
        sb_free(&err);
        dec_layout_free(&d);
        model_free(m);
    }
    /* a name listed twice: the second is skipped */
    Model *m = with_virtual("[{\"name\": \"x\", \"encoding\": \"numerical\", \"form\": {}},"
                            " {\"name\": \"x\", \"encoding\": \"numerical\", \"form\": {}},"
                            " 7]");
    DecLayout d;
    dec_layout_init(&d, m);
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dec_layout_add_virtual(&d, m, &err), 2);
    assert_string_equal(err.s, "compiler.virtual[1]: 'x' is already listed");
    dec_layout_free(&d);
    model_free(m);
    /* not an array at all */
    m = with_virtual("{\"x\": 1}");
    dec_layout_init(&d, m);
    sb_clear(&err);
    assert_int_equal(dec_layout_add_virtual(&d, m, &err), 1);
    assert_string_equal(err.s, "compiler.virtual: expected an array");
    assert_int_equal(d.nsops, d.nresidual);
    sb_free(&err);
    dec_layout_free(&d);
    model_free(m);
}

/* ---------------------------------------------------------------- compiled programs */

typedef struct {
    long positions, sops_checked, outputs_checked;
} Tally;

/* Every input of lengths 1..maxn: each program s-op that the layout can read (residual or
 * virtual) decodes at the final residual to the interpreter's value (categorical: the same
 * value or both no value; numerical: within 1e-4 where the interpreter has a value), and
 * the output decodes to the interpreter's output, no value included. Returns how many
 * program s-ops the layout cannot read. */
static int check_compiled(const char *path, int max_len, int maxn, Tally *t)
{
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.max_len = max_len;
    Diag *dg = diag_new();
    RaspProgram *p = rasp_load_file(path, &fo, dg);
    if (!p) diag_print(dg, stderr);
    diag_free(dg);
    assert_non_null(p);
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    ao.version = "test";
    StrBuf err;
    sb_init(&err);
    Model *m = asm_compile(p, &ao, NULL, &err);
    if (!m) fail_msg("%s: %s", path, err.s);
    DecLayout d;
    dec_layout_init(&d, m);
    assert_int_equal(dec_layout_add_virtual(&d, m, &err), 0);
    int unreadable = 0;
    for (int s = 0; s < p->nsops; s++)
        if (p->sops[s].named && !dec_layout_find(&d, p->sops[s].label)) unreadable++;

    Interp *it = interp_new(p, 1);
    FwdState st;
    fwd_init(&st);
    FwdOptions opt = FWD_OPTIONS_DEFAULT;
    opt.record_resid = 1;
    int V = p->nvocab, C = m->cfg.d_model;
    StrBuf txt;
    sb_init(&txt);
    for (int n = 1; n <= maxn; n++) {
        long B = 1;
        for (int i = 0; i < n; i++) B *= V;
        int T = n + 1;
        int32_t *rows = malloc(sizeof(int32_t) * (size_t)(B * T));
        int *lens = malloc(sizeof(int) * (size_t)B);
        for (long b = 0; b < B; b++) {
            long x = b;
            rows[b * T] = m->bos;
            for (int i = 0; i < n; i++, x /= V) rows[b * T + 1 + i] = (int32_t)(x % V);
            lens[b] = T;
        }
        if (fwd_forward(&st, m, rows, lens, (int)B, T, &opt, &err)) fail_msg("%s", err.s);
        for (long b = 0; b < B; b++) {
            interp_run(it, rows + b * T + 1, n);
            for (int s = 0; s < p->nsops; s++) {
                const RaspSop *sop = &p->sops[s];
                const DecSop *ds = dec_layout_find(&d, sop->label);
                const int32_t *want = interp_values(it, s);
                if (!ds || !want) continue;
                for (int i = 0; i < n; i++) {
                    const float *row = st.resid + ((size_t)b * T + 1 + (size_t)i) * C;
                    if (sop->enc == ENC_CATEGORICAL) {
                        int k = dec_categorical(ds, row);
                        sb_clear(&txt);
                        if (want[i] != RASP_NONE) val_format(sop->vals[want[i]], &txt);
                        const char *got = k < 0 ? "" : ds->values[k];
                        if (strcmp(got, txt.s))
                            fail_msg("%s: s-op %s%s, input %ld, position %d: decoded '%s', interpreter '%s'",
                                     path, sop->label, ds->isvirtual ? " (virtual)" : "", b, i, got, txt.s);
                    } else if (want[i] != RASP_NONE) {
                        double x = val_as_double(sop->vals[want[i]]);
                        double y = dec_numerical(ds, row);
                        if (!(fabs(x - y) <= 1e-4 * fmax(1.0, fabs(x))))
                            fail_msg("%s: s-op %s, input %ld, position %d: decoded %g, interpreter %g", path,
                                     sop->label, b, i, y, x);
                    }
                    t->sops_checked++;
                }
            }
            const int32_t *want = interp_values(it, p->output);
            for (int i = 0; i < n; i++) {
                Value got = dec_output(m, st.logits + ((size_t)b * T + 1 + (size_t)i) * m->cfg.d_vocab_out);
                const RaspSop *o = &p->sops[p->output];
                if (o->enc == ENC_NUMERICAL) {
                    if (want[i] == RASP_NONE) continue;
                    assert_true(fabs(got.u.f - val_as_double(o->vals[want[i]])) <= 1e-4);
                } else if (want[i] == RASP_NONE) {
                    if (got.kind != VAL_NONE) fail_msg("%s: input %ld, position %d: output has a value, interpreter none", path, b, i);
                } else if (!val_equal(got, o->vals[want[i]])) {
                    fail_msg("%s: input %ld, position %d: output differs from the interpreter", path, b, i);
                }
                t->outputs_checked++;
                t->positions++;
            }
        }
        free(rows);
        free(lens);
    }
    sb_free(&txt);
    sb_free(&err);
    fwd_free(&st);
    interp_free(it);
    dec_layout_free(&d);
    model_free(m);
    rasp_free(p);
    return unreadable;
}

static void test_compiled_sops_and_outputs_decode_like_the_interpreter(void **state)
{
    (void)state;
    /* programs with fused categorical (is_a, map_1) and numerical (pair_balance) s-ops and
     * outputs with no value (shift_by, detect_pattern); none folds a named map into an MLP,
     * so every named s-op is readable */
    static const struct {
        const char *path;
        int max_len, maxn;
    } progs[] = {
        {"rasp_examples/count_a.rasp", 4, 3},     {"rasp_examples/shift_by.rasp", 5, 4},
        {"rasp_examples/pair_balance.rasp", 5, 5}, {"rasp_examples/detect_pattern.rasp", 5, 5},
        {"rasp_examples/frac_prevs.rasp", 4, 4},  {"rasp_examples/max_identifier.rasp", 3, 2},
    };
    for (size_t i = 0; i < ARRAY_LEN(progs); i++) {
        Tally t = {0, 0, 0};
        int unreadable = check_compiled(progs[i].path, progs[i].max_len, progs[i].maxn, &t);
        if (unreadable) fail_msg("%s: %d named s-ops cannot be read", progs[i].path, unreadable);
        assert_true(t.sops_checked > t.positions);
        assert_true(t.outputs_checked > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_is_no_value_unless_the_largest_logit_is_above_one_half),
        cmocka_unit_test(test_residual_sop_is_no_value_at_an_even_mixture),
        cmocka_unit_test(test_virtual_sops_decode_through_their_forms),
        cmocka_unit_test(test_model_without_virtual_metadata_adds_nothing),
        cmocka_unit_test(test_malformed_virtual_entries_are_skipped_and_named),
        cmocka_unit_test(test_compiled_sops_and_outputs_decode_like_the_interpreter),
    };
    return cmocka_run_group_tests_name("decode", tests, NULL, NULL);
}
