/* test_decompile.c — the unified line diff, and decompiling compiled models in memory: an
 * unchanged model reads back as its own program, a mutated one as the mutation, a model
 * with faint noise on every weight still reads back, and a model without a program is
 * refused. */
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

#include "analysis/decompile.h"
#include "common/rng.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"

#include "testprog.h"

static const char *COUNT_A =
    "vocab {a, b, c, d};\n"
    "max_len 5;\n"
    "is_a    = tokens == \"a\";\n"
    "bin_idx = select(is_a, indices, ==);\n"
    "count_a = selector_width(bin_idx);\n"
    "out     = aggregate(select(indices, indices, ==), count_a);\n"
    "output out;\n";

static Model *compile_text(const char *text)
{
    Diag *d = diag_new();
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    RaspProgram *p = rasp_load_text("t.rasp", text, strlen(text), &fo, d);
    if (!p) diag_print(d, stderr);
    diag_free(d);
    assert_non_null(p);
    Model *m = tp_compile(p, 1);
    rasp_free(p);
    return m;
}

static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *o = malloc(n + 1);
    size_t pre = (size_t)(at - s);
    memcpy(o, s, pre);
    strcpy(o + pre, to);
    strcat(o, at + strlen(from));
    return o;
}

static void test_diff_equal_texts_give_nothing(void **state)
{
    (void)state;
    char *d = dc_unified_diff("a\nb\n", "a\nb\n", "x", "y");
    assert_string_equal(d, "");
    free(d);
    d = dc_unified_diff("", "", "x", "y");
    assert_string_equal(d, "");
    free(d);
}

static void test_diff_one_changed_line_with_context(void **state)
{
    (void)state;
    const char *a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    const char *b = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
    char *d = dc_unified_diff(a, b, "original", "decompiled");
    assert_string_equal(d, "--- original\n+++ decompiled\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n");
    free(d);
}

static void test_diff_insertions_deletions_and_two_hunks(void **state)
{
    (void)state;
    /* as diff -u prints them */
    char *d = dc_unified_diff("a\nb\n", "x\na\nb\n", "o", "n");
    assert_string_equal(d, "--- o\n+++ n\n@@ -1,2 +1,3 @@\n+x\n a\n b\n");
    free(d);
    d = dc_unified_diff("a\nb\nc\n", "a\nb\n", "o", "n");
    assert_string_equal(d, "--- o\n+++ n\n@@ -1,3 +1,2 @@\n a\n b\n-c\n");
    free(d);
    d = dc_unified_diff("a\n", "", "o", "n");
    assert_string_equal(d, "--- o\n+++ n\n@@ -1 +0,0 @@\n-a\n");
    free(d);
    d = dc_unified_diff("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n", "o", "n");
    assert_string_equal(d, "--- o\n+++ n\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n");
    free(d);
}

static void test_unchanged_model_reads_back_as_its_program(void **state)
{
    (void)state;
    Model *m = compile_text(COUNT_A);
    DcOptions o = DC_OPTIONS_DEFAULT;
    o.n = 100;
    DcResult r;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dc_decompile(m, &o, &r, &err), 0);
    assert_string_equal(r.diff, "");
    assert_string_equal(r.program, COUNT_A);
    assert_int_equal(r.reproduces, 1);
    json_t *s = json_object_get(r.report, "sops");
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "count_a"), "form")), "unchanged");
    assert_true(json_real_value(json_object_get(json_object_get(r.report, "fidelity"), "output")) == 1.0);
    dc_result_free(&r);
    sb_free(&err);
    model_free(m);
}

/* The mutated program compiled, read as the original's structure (the model's program
 * metadata replaced by the original, as --program does). */
static void check_mutation(const char *from, const char *to)
{
    char *mut = replace_once(COUNT_A, from, to);
    Model *m = compile_text(mut);
    model_set_program(m, COUNT_A);
    DcOptions o = DC_OPTIONS_DEFAULT;
    o.n = 200;
    DcResult r;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dc_decompile(m, &o, &r, &err), 0);
    assert_string_equal(r.program, mut);
    assert_int_equal(r.reproduces, 1);
    assert_true(strlen(r.diff) > 0);
    dc_result_free(&r);
    sb_free(&err);
    model_free(m);
    free(mut);
}

static void test_mutations_read_back_as_the_mutation(void **state)
{
    (void)state;
    check_mutation("tokens == \"a\"", "tokens == \"b\"");
    check_mutation("tokens == \"a\"", "tokens != \"a\"");
    check_mutation("select(is_a, indices, ==)", "select(is_a, indices, <=)");
}

static void test_faint_noise_everywhere_still_reads_back(void **state)
{
    (void)state;
    Model *m = compile_text(COUNT_A);
    Rng r0;
    rng_seed(&r0, 7);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += (float)(1e-5 * rng_normal(&r0));
    DcOptions o = DC_OPTIONS_DEFAULT;
    o.n = 100;
    DcResult r;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dc_decompile(m, &o, &r, &err), 0);
    assert_string_equal(r.diff, "");
    assert_int_equal(r.reproduces, 1);
    /* noise at 1e-5 is far below the 5% threshold: no new pathway is reported */
    json_t *s = json_object_get(r.report, "sops");
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) assert_int_equal(json_array_size(json_object_get(v, "new_reads")), 0);
    dc_result_free(&r);
    sb_free(&err);
    model_free(m);
}

static void test_model_without_program_is_refused(void **state)
{
    (void)state;
    Model *m = compile_text(COUNT_A);
    model_set_program(m, "");
    DcOptions o = DC_OPTIONS_DEFAULT;
    DcResult r;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(dc_decompile(m, &o, &r, &err), -1);
    assert_non_null(strstr(err.s, "has no program in its metadata"));
    sb_free(&err);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_equal_texts_give_nothing),
        cmocka_unit_test(test_diff_one_changed_line_with_context),
        cmocka_unit_test(test_diff_insertions_deletions_and_two_hunks),
        cmocka_unit_test(test_unchanged_model_reads_back_as_its_program),
        cmocka_unit_test(test_mutations_read_back_as_the_mutation),
        cmocka_unit_test(test_faint_noise_everywhere_still_reads_back),
        cmocka_unit_test(test_model_without_program_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
