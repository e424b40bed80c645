/* test_sema.c — the semantic pass through rasp_load_text / rasp_load_file: value sets and
 * tables of every op, encodings, labels, every error rule, loads, causal, overrides. */
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

#include "compiler/front/frontend.h"

#define HEAD "vocab {a, b, c};\nmax_len 5;\n"

/* ---------------------------------------------------------------- helpers */

static RaspProgram *load_opt(const char *src, const FrontOptions *opt)
{
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text("test.rasp", src, strlen(src), opt, d);
    if (!p) {
        char *msg = diag_render(d);
        print_error("%s", msg);
        free(msg);
        diag_free(d);
        fail_msg("program did not check");
    }
    diag_free(d);
    return p;
}

static RaspProgram *load(const char *src) { return load_opt(src, NULL); }

/* The program must fail; every listed substring must appear in the messages. Returns
 * the number of errors. */
static int fails_opt(const char *src, const FrontOptions *opt, ...)
{
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text("test.rasp", src, strlen(src), opt, d);
    char *msg = diag_render(d);
    if (p) {
        rasp_free(p);
        free(msg);
        diag_free(d);
        fail_msg("program checked but should not have:\n%s", src);
    }
    va_list ap;
    va_start(ap, opt);
    const char *want;
    while ((want = va_arg(ap, const char *)) != NULL)
        if (!strstr(msg, want)) {
            print_error("messages:\n%s", msg);
            free(msg);
            diag_free(d);
            va_end(ap);
            fail_msg("messages lack '%s'", want);
        }
    va_end(ap);
    int n = diag_errors(d);
    free(msg);
    diag_free(d);
    return n;
}

#define FAILS(src, ...) fails_opt((src), NULL, __VA_ARGS__, (const char *)NULL)

static const RaspSop *sop(const RaspProgram *p, const char *label)
{
    for (int i = 0; i < p->nsops; i++)
        if (!strcmp(p->sops[i].label, label)) return &p->sops[i];
    fail_msg("no s-op labelled %s", label);
    return NULL;
}

static const RaspSel *sel(const RaspProgram *p, const char *label)
{
    for (int i = 0; i < p->nsels; i++)
        if (!strcmp(p->sels[i].label, label)) return &p->sels[i];
    fail_msg("no selector labelled %s", label);
    return NULL;
}

static int has_sop(const RaspProgram *p, const char *label)
{
    for (int i = 0; i < p->nsops; i++)
        if (!strcmp(p->sops[i].label, label)) return 1;
    return 0;
}

/* The value set as text "{0, 1, a}". */
static char *vals(const RaspSop *s)
{
    StrBuf b;
    sb_init(&b);
    sb_putc(&b, '{');
    for (int i = 0; i < s->nvals; i++) {
        if (i) sb_puts(&b, ", ");
        val_format(s->vals[i], &b);
    }
    sb_putc(&b, '}');
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", b.s);
    sb_free(&b);
    return buf;
}

/* ---------------------------------------------------------------- value sets and tables */

static void test_sema_tokens_and_indices(void **state)
{
    (void)state;
    RaspProgram *p = load("vocab {c, a, 3, -2};\nmax_len 4;\noutput tokens;\n");
    assert_int_equal(p->nvocab, 4);
    assert_int_equal(p->sops[0].op, SOP_TOKENS);
    assert_int_equal(p->sops[1].op, SOP_INDICES);
    assert_string_equal(vals(&p->sops[0]), "{c, a, 3, -2}");   /* declared order */
    assert_int_equal(p->sops[0].vals[3].kind, VAL_INT);
    assert_string_equal(vals(&p->sops[1]), "{0, 1, 2, 3}");
    assert_string_equal(p->bos, "BOS");
    assert_string_equal(p->pad, "PAD");
    assert_int_equal(p->max_len, 4);
    assert_int_equal(p->output, 0);
    assert_int_equal(rasp_token_index(p, "3"), 2);
    assert_int_equal(rasp_token_index(p, "-2"), 3);
    assert_int_equal(rasp_token_index(p, "a"), 1);
    assert_int_equal(rasp_token_index(p, "zz"), -1);
    assert_non_null(p->source);
    rasp_free(p);
}

static void test_sema_map_value_set_and_table(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "m = map(lambda x: x % 3, indices);\noutput m;\n");
    const RaspSop *m = sop(p, "m");
    assert_int_equal(m->op, SOP_MAP);
    assert_int_equal(m->enc, ENC_CATEGORICAL);
    assert_string_equal(vals(m), "{0, 1, 2}");
    int want[5] = {0, 1, 2, 0, 1};
    for (int i = 0; i < 5; i++) assert_int_equal(m->table[i], want[i]);
    assert_int_equal(m->a, 1);
    assert_int_equal(m->may_none, 0);
    rasp_free(p);
}

static void test_sema_map_outputs_sorted_by_value_order(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "m = map(lambda x: \"z\" if x == \"a\" else 1 if x == \"b\" else 0.5, tokens);\noutput m;\n");
    const RaspSop *m = sop(p, "m");
    assert_string_equal(vals(m), "{0.5, 1, z}");
    assert_int_equal(m->table[0], 2);   /* a -> z */
    assert_int_equal(m->table[1], 1);   /* b -> 1 */
    assert_int_equal(m->table[2], 0);   /* c -> 0.5 */
    rasp_free(p);
}

static void test_sema_sequence_map_table(void **state)
{
    (void)state;
    RaspProgram *p = load("vocab {a};\nmax_len 3;\ns = sequence_map(lambda x, y: x - y, indices, indices);\noutput s;\n");
    const RaspSop *s = sop(p, "s");
    assert_int_equal(s->op, SOP_SEQMAP);
    assert_int_equal(s->linear, 0);
    assert_string_equal(vals(s), "{-2, -1, 0, 1, 2}");
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) assert_int_equal(s->table[a * 3 + b], a - b + 2);
    rasp_free(p);
}

static void test_sema_operators_on_sops_are_maps_and_sequence_maps(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "x = tokens == \"a\";\ny = 1 - indices;\nz = indices + indices;\n"
                          "w = not x;\nv = x and x;\noutput v;\n");
    assert_int_equal(sop(p, "x")->op, SOP_MAP);
    assert_string_equal(vals(sop(p, "x")), "{false, true}");
    assert_int_equal(sop(p, "y")->op, SOP_MAP);
    assert_string_equal(vals(sop(p, "y")), "{-3, -2, -1, 0, 1}");
    assert_int_equal(sop(p, "y")->table[0], 4);   /* 1 - 0 */
    assert_int_equal(sop(p, "z")->op, SOP_SEQMAP);
    assert_string_equal(vals(sop(p, "z")), "{0, 1, 2, 3, 4, 5, 6, 7, 8}");
    assert_int_equal(sop(p, "w")->op, SOP_MAP);
    assert_int_equal(sop(p, "w")->table[0], 1);
    assert_int_equal(sop(p, "v")->op, SOP_SEQMAP);   /* same s-op twice: still a sequence map */
    assert_int_equal(sop(p, "v")->a, sop(p, "v")->b);
    rasp_free(p);
}

static void test_sema_select_predicate_tables(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "s1 = select(indices, indices, <);\n"
                          "s2 = select(indices, indices, lambda k, q: q == k + 1);\n"
                          "s3 = select(tokens, tokens, true);\ns4 = select(tokens, indices, false);\n"
                          "output aggregate(s1 and s2 or s3 and not s4, indices);\n");
    const RaspSel *s1 = sel(p, "s1"), *s2 = sel(p, "s2"), *s3 = sel(p, "s3"), *s4 = sel(p, "s4");
    assert_int_equal(s1->cmp, OP_LT);
    for (int k = 0; k < 5; k++)
        for (int q = 0; q < 5; q++) {
            assert_int_equal(s1->pred[k * 5 + q], k < q);
            assert_int_equal(s2->pred[k * 5 + q], q == k + 1);
        }
    assert_int_equal(s2->cmp, OP_NONE);
    for (int i = 0; i < 9; i++) assert_int_equal(s3->pred[i], 1);
    for (int i = 0; i < 15; i++) assert_int_equal(s4->pred[i], 0);
    /* composite selectors */
    int nand = 0, nor = 0, nnot = 0;
    for (int i = 0; i < p->nsels; i++) {
        nand += p->sels[i].op == SEL_AND;
        nor += p->sels[i].op == SEL_OR;
        nnot += p->sels[i].op == SEL_NOT;
        assert_int_equal(p->sels[i].used, 1);
    }
    assert_int_equal(nand, 2);
    assert_int_equal(nor, 1);
    assert_int_equal(nnot, 1);
    rasp_free(p);
}

static void test_sema_categorical_aggregate_value_set_and_default(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "s = select(indices, indices, ==);\n"
                          "a = aggregate(s, tokens);\nb = aggregate(s, tokens, \"none\");\n"
                          "c = aggregate(s, tokens == \"a\", false);\nd = aggregate(s, 7 , 7);\noutput a;\n");
    const RaspSop *a = sop(p, "a"), *b = sop(p, "b"), *c = sop(p, "c"), *d = sop(p, "d");
    assert_int_equal(a->enc, ENC_CATEGORICAL);
    assert_string_equal(vals(a), "{a, b, c}");
    assert_int_equal(a->deflt, RASP_NONE);
    assert_int_equal(a->may_none, 1);
    assert_string_equal(vals(b), "{a, b, c, none}");
    assert_int_equal(b->deflt, 3);
    assert_string_equal(vals(c), "{false, true}");
    assert_int_equal(c->deflt, 0);
    assert_string_equal(vals(d), "{7}");
    assert_int_equal(d->deflt, 0);
    assert_int_equal(d->may_none, 0);   /* one value and a default: always a value */
    rasp_free(p);
}

static void test_sema_numerical_mean_set_is_complete(void **state)
{
    (void)state;
    RaspProgram *p = load("vocab {a, b};\nmax_len 3;\nx = numerical(tokens == \"a\");\n"
                          "f = numerical(aggregate(select(indices, indices, <=), x));\noutput f;\n");
    const RaspSop *f = sop(p, "f");
    assert_int_equal(f->enc, ENC_NUMERICAL);
    assert_int_equal(f->nvals, 5);
    double want[5] = {0, 1.0 / 3, 0.5, 2.0 / 3, 1};
    for (int i = 0; i < 5; i++) assert_true(fabs(val_as_double(f->vals[i]) - want[i]) < 1e-12);
    assert_int_equal(f->deflt, 0);
    assert_int_equal(rasp_num_index(f, 2.0 / 3 + 1e-14), 3);
    assert_int_equal(rasp_num_index(f, 0.6), RASP_NONE);
    /* an aggregate of a numerical s-op is numerical without annotating it */
    RaspProgram *q = load("vocab {a, b};\nmax_len 3;\nx = numerical(tokens == \"a\");\n"
                          "f = aggregate(select(indices, indices, <=), x, 5);\noutput f;\n");
    const RaspSop *g = sop(q, "f");
    assert_int_equal(g->enc, ENC_NUMERICAL);
    assert_int_equal(g->nvals, 6);
    assert_true(val_as_double(g->vals[g->deflt]) == 5.0);
    rasp_free(p);
    rasp_free(q);
}

static void test_sema_numerical_mean_set_at_max_len_46(void **state)
{
    (void)state;
    RaspProgram *p = load("vocab {a, b};\nmax_len 46;\nx = numerical(tokens == \"a\");\n"
                          "f = aggregate(select(indices, indices, <=), x);\noutput f;\n");
    const RaspSop *f = sop(p, "f");
    /* the distinct fractions j/c with 0 <= j <= c <= 46 */
    int count = 0;
    for (int c = 1; c <= 46; c++)
        for (int j = 0; j <= c; j++) {
            int a = j, b = c;
            while (b) { int t = a % b; a = b; b = t; }
            if (a == 1 || (j == 0 && c == 1)) count++;
        }
    assert_int_equal(f->nvals, count);
    for (int i = 1; i < f->nvals; i++) assert_true(val_as_double(f->vals[i - 1]) < val_as_double(f->vals[i]));
    rasp_free(p);
}

static void test_sema_numerical_aggregate_too_many_values_is_an_error(void **state)
{
    (void)state;
    FAILS("vocab {a};\nmax_len 4096;\nx = numerical(indices % 2 == 0);\n"
          "f = aggregate(select(indices, indices, <=), x);\noutput f;\n",
          "more than 100000 different means", "max_len 4096");
}

static void test_sema_selector_width_value_sets(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "w = selector_width(select(tokens, indices, lambda k, q: k == \"a\"));\n"
                          "pre = selector_width(select(indices, indices, <=));\n"
                          "same = selector_width(select(tokens, tokens, ==));\n"
                          "n = numerical(selector_width(select(indices, indices, ==)));\n"
                          "l = length;\noutput w;\n");
    assert_string_equal(vals(sop(p, "w")), "{0, 1, 2, 3, 4, 5}");
    assert_int_equal(sop(p, "w")->enc, ENC_CATEGORICAL);
    assert_string_equal(vals(sop(p, "pre")), "{1, 2, 3, 4, 5}");
    assert_string_equal(vals(sop(p, "same")), "{1, 2, 3, 4, 5}");
    assert_string_equal(vals(sop(p, "length")), "{1, 2, 3, 4, 5}");
    assert_int_equal(sop(p, "n")->enc, ENC_NUMERICAL);
    assert_false(has_sop(p, "l"));   /* an alias of length */
    rasp_free(p);
}

static void test_sema_length_only_when_used(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "output tokens;\n");
    assert_int_equal(p->nsops, 2);
    assert_int_equal(p->nsels, 0);
    rasp_free(p);
    p = load(HEAD "x = length - 1;\ny = length;\noutput x;\n");
    const RaspSop *l = sop(p, "length");
    assert_int_equal(l->op, SOP_SELWIDTH);
    assert_string_equal(p->sels[l->sel].label, "length.select");
    assert_int_equal(p->nsels, 1);
    assert_string_equal(vals(sop(p, "x")), "{0, 1, 2, 3, 4}");
    rasp_free(p);
}

static void test_sema_constants_fold_and_lift(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "k = 2 ** 3 + 1;\ns = \"x\" + \"y\";\nr = max(k, 4) // 2;\n"
                          "m = map(lambda x: x + k + r, indices);\noutput 3;\n");
    const RaspSop *out = &p->sops[p->output];
    assert_int_equal(out->op, SOP_CONST);
    assert_string_equal(vals(out), "{3}");
    assert_string_equal(vals(sop(p, "m")), "{13, 14, 15, 16, 17}");
    rasp_free(p);
    p = load(HEAD "k = 4;\ns = select(tokens, k, true);\noutput aggregate(s, k);\n");
    int nconst = 0;
    for (int i = 0; i < p->nsops; i++) nconst += p->sops[i].op == SOP_CONST;
    assert_int_equal(nconst, 2);
    rasp_free(p);
}

static void test_sema_linear_maps(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "a = numerical(indices + 0);\nb = numerical(tokens == \"a\");\n"
                          "s = a + b;\nd = a - b;\nm = 3 * a;\nm2 = a * 0.5;\nneg = -a;\n"
                          "c = categorical(2 * a);\noutput s;\n");
    const RaspSop *s = sop(p, "s"), *d = sop(p, "d"), *m = sop(p, "m"), *m2 = sop(p, "m2");
    assert_int_equal(s->op, SOP_SEQMAP);
    assert_int_equal(s->linear, 1);
    assert_int_equal(s->enc, ENC_NUMERICAL);
    assert_true(s->lin_a == 1.0 && s->lin_b == 1.0);
    assert_true(d->lin_a == 1.0 && d->lin_b == -1.0);
    assert_string_equal(vals(d), "{-1, 0, 1, 2, 3, 4}");
    assert_int_equal(m->op, SOP_MAP);
    assert_int_equal(m->linear, 1);
    assert_true(m->lin_a == 3.0);
    assert_int_equal(m->enc, ENC_NUMERICAL);
    assert_true(m2->lin_a == 0.5);
    assert_int_equal(sop(p, "neg")->linear, 1);
    assert_true(sop(p, "neg")->lin_a == -1.0);
    assert_int_equal(sop(p, "c")->linear, 0);
    assert_int_equal(sop(p, "c")->enc, ENC_CATEGORICAL);
    rasp_free(p);
}

static void test_sema_encodings_of_derived_sops(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "n = numerical(map(lambda x: x * 2, indices));\n"
                          "c = map(lambda x: x > 1, n);\n"              /* numerical -> categorical map */
                          "nn = numerical(map(lambda x: x + 1, n));\n" /* numerical -> numerical map */
                          "sw = numerical(selector_width(select(indices, indices, <)));\n"
                          "q = numerical(sequence_map(lambda x, y: x + y, indices, tokens == \"a\"));\n"
                          "same = numerical(n);\n"                       /* same encoding: fine */
                          "output c;\n");
    assert_int_equal(sop(p, "n")->enc, ENC_NUMERICAL);
    assert_int_equal(sop(p, "c")->enc, ENC_CATEGORICAL);
    assert_int_equal(sop(p, "nn")->enc, ENC_NUMERICAL);
    assert_int_equal(sop(p, "sw")->enc, ENC_NUMERICAL);
    assert_int_equal(sop(p, "q")->enc, ENC_NUMERICAL);
    rasp_free(p);
}

static void test_sema_lambdas_short_circuit_and_guards_work(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "a = map(lambda x: x != 0 and 10 // x > 2, indices);\n"
                          "b = map(lambda x: 10 // x if x != 0 else -1, indices);\n"
                          "c = map(lambda x: x == 0 or 1 / x < 1, indices);\n"
                          "d = map(lambda x: str(x) + \"!\", indices);\n"
                          "e = map(lambda x: int(float(x) * 1.5) + abs(-x) + min(x, 2, 3), indices);\noutput a;\n");
    assert_string_equal(vals(sop(p, "a")), "{false, true}");
    assert_string_equal(vals(sop(p, "b")), "{-1, 2, 3, 5, 10}");
    assert_string_equal(vals(sop(p, "d")), "{0!, 1!, 2!, 3!, 4!}");
    assert_string_equal(vals(sop(p, "e")), "{0, 3, 7, 9, 12}");
    rasp_free(p);
}

/* ---------------------------------------------------------------- labels */

static void test_sema_generated_labels_count_per_op(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "x = map(lambda v: v, tokens) == map(lambda v: v, tokens);\n"
                          "y = aggregate(select(indices, indices, ==), x);\noutput y;\n");
    assert_true(has_sop(p, "map_1"));
    assert_true(has_sop(p, "map_2"));
    assert_true(has_sop(p, "x"));   /* the == is named x, not sequence_map_1 */
    assert_non_null(sel(p, "select_1"));
    rasp_free(p);
    /* a user name that looks generated is skipped by the generator */
    p = load(HEAD "y = map(lambda v: v, tokens) == \"a\";\nmap_1 = tokens == \"b\";\noutput y;\n");
    assert_true(has_sop(p, "map_1"));
    assert_true(has_sop(p, "map_2"));
    assert_int_equal(sop(p, "map_1")->named, 1);
    assert_int_equal(sop(p, "map_2")->named, 0);
    rasp_free(p);
}

static void test_sema_def_labels_are_qualified_by_call(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "def shift_by(offset, s) {\n"
                          "    sel = select(indices, indices, lambda k, q: q == k + offset);\n"
                          "    return aggregate(sel, s);\n}\n"
                          "y = shift_by(1, tokens);\nz = shift_by(2, tokens) == \"a\";\noutput y;\n");
    assert_non_null(sel(p, "shift_by_1.sel"));
    assert_non_null(sel(p, "shift_by_2.sel"));
    assert_int_equal(sop(p, "y")->op, SOP_AGGREGATE);   /* outermost assignment renames */
    assert_true(has_sop(p, "aggregate_1"));             /* the second call's, unnamed */
    assert_int_equal(sel(p, "shift_by_1.sel")->pred[0 * 5 + 1], 1);
    assert_int_equal(sel(p, "shift_by_2.sel")->pred[0 * 5 + 2], 1);
    rasp_free(p);
}

static void test_sema_nested_def_labels_nest(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "def inner(s) { x = s == \"a\"; return x; }\n"
                          "def outer(s) { u = inner(s); v = inner(s) and u; w = inner(s) == u; return v; }\n"
                          "r = outer(tokens);\noutput r;\n");
    assert_true(has_sop(p, "outer_1.u"));         /* renamed from outer_1.inner_1.x */
    assert_true(has_sop(p, "outer_1.inner_2.x"));  /* used inside an unnamed expression */
    assert_true(has_sop(p, "r"));                  /* outer_1.v renamed at top level */
    assert_true(has_sop(p, "outer_1.w"));
    assert_false(has_sop(p, "outer_1.v"));
    rasp_free(p);
}

static void test_sema_aliases_keep_the_first_name(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "a = tokens == \"a\";\nb = a;\nt = tokens;\nl = length;\n"
                          "def id(s) { r = s; return r; }\nc = id(a);\nd = id(a == true);\noutput b;\n");
    assert_false(has_sop(p, "b"));
    assert_false(has_sop(p, "t"));
    assert_false(has_sop(p, "c"));
    assert_false(has_sop(p, "id_1.r"));
    assert_true(has_sop(p, "d"));   /* id_2.r was def-qualified: renamed */
    assert_string_equal(p->sops[p->output].label, "a");
    assert_int_equal(sop(p, "a")->named, 1);
    rasp_free(p);
}

static void test_sema_ids_are_topological_and_used_is_marked(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "unused = tokens == \"b\";\nx = tokens == \"a\";\n"
                          "y = aggregate(select(x, x, ==), indices);\noutput y;\n");
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        assert_int_equal(s->id, i);
        assert_true(s->a < i && s->b < i);
        if (s->sel >= 0) {
            const RaspSel *l = &p->sels[s->sel];
            assert_true(l->keys < i && l->queries < i);
        }
    }
    assert_int_equal(sop(p, "unused")->used, 0);
    assert_int_equal(sop(p, "x")->used, 1);
    assert_int_equal(sop(p, "indices")->used, 1);
    assert_int_equal(sop(p, "tokens")->used, 1);
    rasp_free(p);
}

/* ---------------------------------------------------------------- errors */

static void test_sema_unknown_names_and_forward_references(void **state)
{
    (void)state;
    FAILS(HEAD "x = y + 1;\noutput x;\n", "test.rasp:3:5: error: unknown name `y`");
    FAILS(HEAD "x = y + 1;\ny = tokens;\noutput x;\n", "it is defined later, at line 4");
    FAILS(HEAD "x = foo(tokens);\noutput x;\n", "unknown function `foo`");
    FAILS(HEAD "def f(s) { return f(s); }\noutput f(tokens);\n", "a def cannot call itself");
    FAILS(HEAD "def f(s) { return g(s); }\ndef g(s) { return s; }\noutput f(tokens);\n", "unknown function `g`");
    FAILS(HEAD "x = tokens;\noutput x(1);\n", "`x` is an s-op, not a function");
}

static void test_sema_redefinition_shows_both_places(void **state)
{
    (void)state;
    FAILS(HEAD "x = tokens == \"a\";\nx = 3;\ny = x + 1;\noutput y;\n",
          "test.rasp:4:1: error: redefinition of `x`", "test.rasp:3:1: note: `x` is first defined here");
    FAILS(HEAD "def f(s) { return s; }\nf = 1;\noutput tokens;\n", "redefinition of `f`");
    FAILS(HEAD "map = 1;\noutput tokens;\n", "`map` is a builtin function and cannot be redefined");
    FAILS(HEAD "tokens = 1;\noutput tokens;\n", "`tokens` is predefined");
    FAILS(HEAD "def f(a, a) { return a; }\noutput tokens;\n", "duplicate parameter `a`");
    FAILS(HEAD "def f(s) { x = s; x = s; return x; }\noutput tokens;\n", "redefinition of `x` in def `f`");
    FAILS(HEAD "def f(min) { return 1; }\noutput tokens;\n", "`min` is a builtin function");
}

static void test_sema_redefined_name_does_not_cascade(void **state)
{
    (void)state;
    int n = FAILS(HEAD "x = tokens == \"a\";\nx = select(indices, indices, ==);\n"
                  "y = aggregate(x, tokens);\nz = selector_width(x);\noutput y;\n", "redefinition of `x`");
    assert_int_equal(n, 1);
    n = FAILS(HEAD "x = q;\ny = x + 1;\nz = y * 2;\noutput z;\n", "unknown name `q`");
    assert_int_equal(n, 1);
}

static void test_sema_lambda_errors_name_the_value(void **state)
{
    (void)state;
    FAILS(HEAD "y = map(lambda x: 10 / x, indices);\noutput y;\n",
          "test.rasp:3:19: error: lambda fails on x = 0: division by zero", "guard the failing case",
          "`... if x != 0 else ...`");
    FAILS(HEAD "y = map(lambda x: x + 1, tokens);\noutput y;\n",
          "lambda fails on x = \"a\": cannot apply '+' to a string and an int");
    FAILS(HEAD "y = sequence_map(lambda x, y: x // y, indices, indices);\noutput y;\n",
          "lambda fails on x = 0, y = 0: division by zero");
    FAILS(HEAD "y = map(lambda x: 2 ** (x * 40), indices);\noutput y;\n", "x = 2: integer overflow");
    FAILS(HEAD "y = map(lambda x: x if x else 0, indices);\noutput y;\n", "the condition of 'if' must be a boolean");
    FAILS(HEAD "y = map(lambda x: not x, indices);\noutput y;\n", "'not' takes a boolean");
    FAILS(HEAD "y = map(lambda x: int(x), tokens);\noutput y;\n", "cannot read \"a\" as an integer");
}

static void test_sema_lambda_static_errors(void **state)
{
    (void)state;
    FAILS(HEAD "f = lambda x: x;\noutput tokens;\n", "a lambda is not a value; pass it directly to map, sequence_map or select");
    FAILS(HEAD "y = map(lambda x: x + tokens, indices);\noutput y;\n", "`tokens` is an s-op; a lambda body can use only its parameters and constants");
    FAILS(HEAD "y = map(lambda x: z, indices);\noutput y;\n", "unknown name `z`");
    FAILS(HEAD "y = map(lambda x, y: x, indices);\noutput y;\n", "the lambda of map takes 1 parameter");
    FAILS(HEAD "y = map(tokens, indices);\noutput y;\n", "map needs a lambda here");
    FAILS(HEAD "y = map(lambda x: map(lambda z: z, x), indices);\noutput y;\n", "map cannot be used inside a lambda");
    FAILS(HEAD "def f(s) { return s; }\ny = map(lambda x: f(x), indices);\noutput y;\n", "cannot call the def `f` inside a lambda");
    FAILS(HEAD "y = map(lambda x: abs(x, 1), indices);\noutput y;\n", "abs takes 1 argument, got 2");
    FAILS(HEAD "def f(s) { return s; }\ny = f(lambda x: x);\noutput y;\n", "cannot be passed to a def");
    FAILS(HEAD "def f(s) { return lambda x: x; }\ny = f(1);\noutput tokens;\n", "cannot be returned from a def");
    FAILS(HEAD "y = map(lambda x: x, indices, tokens);\noutput y;\n", "map takes 2 arguments, got 3");
    FAILS(HEAD "y = aggregate(==, tokens);\noutput y;\n", "a comparison operator on its own is only allowed as the predicate of select");
}

static void test_sema_constant_errors_are_compile_errors(void **state)
{
    (void)state;
    FAILS(HEAD "k = 1 / 0;\noutput tokens;\n", "test.rasp:3:5: error: this constant expression fails: division by zero");
    FAILS(HEAD "k = 9223372036854775807 + 1;\noutput tokens;\n", "integer overflow");
    FAILS(HEAD "k = \"a\" < 1;\noutput tokens;\n", "cannot compare a string and an int");
    FAILS(HEAD "k = min(tokens, 2);\noutput tokens;\n", "min takes constants here");
    FAILS(HEAD "k = tokens if true else indices;\nj = tokens if tokens == \"a\" else indices;\noutput k;\n",
          "a conditional expression here needs a constant condition");
}

static void test_sema_operator_errors_point_at_the_operand(void **state)
{
    (void)state;
    FAILS(HEAD "y = 10 / indices;\noutput y;\n", "test.rasp:3:10: error: '/' fails when `indices` is 0: division by zero");
    FAILS(HEAD "y = tokens + 1;\noutput y;\n", "test.rasp:3:14: error: '+' fails for every value of `tokens`");
    FAILS(HEAD "y = indices // (indices - 1);\noutput y;\n", "'//' fails when `indices` is 0 and `indices - 1` is 0");
    FAILS(HEAD "s = select(indices, indices, ==);\ny = s + 1;\noutput y;\n", "'+' cannot take a selector");
    FAILS(HEAD "s = select(indices, indices, ==);\ny = s and tokens;\noutput y;\n", "'and' combines two selectors or two s-ops");
    FAILS(HEAD "y = numerical(map(lambda x: \"s\", tokens));\noutput y;\n", "a numerical map must produce numbers");
}

static void test_sema_select_rules(void **state)
{
    (void)state;
    FAILS(HEAD "n = numerical(tokens == \"a\");\ns = select(n, indices, ==);\noutput aggregate(s, tokens);\n",
          "test.rasp:4:12: error: select keys must be categorical, but `n` is numerical");
    FAILS(HEAD "n = numerical(indices + 0);\ns = select(indices, n, ==);\noutput aggregate(s, tokens);\n",
          "select queries must be categorical");
    FAILS(HEAD "s = select(tokens, indices, <);\noutput aggregate(s, tokens);\n",
          "this predicate fails on key \"a\" and query 0: cannot compare a string and an int");
    FAILS(HEAD "s = select(tokens, indices, lambda k, q: q);\noutput aggregate(s, tokens);\n",
          "a select predicate must give true or false, but this lambda gives 0");
    FAILS(HEAD "s = select(tokens, indices, lambda k, q: 1 / q > 0);\noutput aggregate(s, tokens);\n",
          "lambda fails on k = \"a\", q = 0: division by zero");
    FAILS(HEAD "s = select(tokens, indices, 3);\noutput aggregate(s, tokens);\n", "the predicate of select must be");
    FAILS(HEAD "s = select(tokens, select(indices, indices, ==), ==);\noutput tokens;\n", "the queries of select must be an s-op");
    FAILS(HEAD "y = aggregate(tokens, tokens);\noutput y;\n", "the first argument of aggregate must be a selector");
    FAILS(HEAD "y = selector_width(tokens);\noutput y;\n", "must be a selector");
}

static void test_sema_aggregate_encoding_rules(void **state)
{
    (void)state;
    FAILS(HEAD "c = tokens == \"a\";\nout = numerical(aggregate(select(indices, indices, ==), c));\noutput out;\n",
          "test.rasp:4:57: error: a numerical aggregate needs a numerical s-op, but `c` is categorical",
          "note: to aggregate it as numerical, create it numerical");
    FAILS(HEAD "n = numerical(indices + 0);\nout = categorical(aggregate(select(indices, indices, ==), n));\noutput out;\n",
          "a categorical aggregate needs a categorical s-op, but `n` is numerical");
    FAILS(HEAD "n = numerical(indices + 0);\nout = aggregate(select(indices, indices, ==), n, \"x\");\noutput out;\n",
          "the default of a numerical aggregate must be a number");
    FAILS(HEAD "out = aggregate(select(indices, indices, ==), tokens, tokens);\noutput out;\n",
          "the default of aggregate must be a constant");
}

static void test_sema_sequence_map_encoding_rules(void **state)
{
    (void)state;
    FAILS(HEAD "n = numerical(indices + 0);\ny = sequence_map(lambda x, y: x, n, tokens);\noutput y;\n",
          "sequence_map needs categorical inputs, but `n` is numerical");
    FAILS(HEAD "n = numerical(indices + 0);\ny = n * n;\noutput y;\n", "'*' of two s-ops is a sequence_map, which needs categorical inputs");
    FAILS(HEAD "n = numerical(indices + 0);\ny = n + indices;\noutput y;\n", "needs both numerical (a linear map) or both categorical");
    FAILS(HEAD "n = numerical(indices + 0);\ny = categorical(n + n);\noutput y;\n", "cannot be categorical");
}

static void test_sema_annotations(void **state)
{
    (void)state;
    FAILS(HEAD "x = tokens == \"a\";\ny = numerical(x);\noutput y;\n",
          "`x` is already categorical; numerical(...) only sets the encoding of the s-op it creates",
          "note: it is created here: wrap this in numerical(...)");
    FAILS(HEAD "y = numerical(tokens);\noutput y;\n", "`tokens` is always categorical");
    FAILS(HEAD "y = numerical(indices);\noutput y;\n", "`indices` is always categorical");
    FAILS(HEAD "y = numerical(select(indices, indices, ==));\noutput tokens;\n", "select makes a selector");
    FAILS(HEAD "y = numerical(\"a\");\noutput y;\n", "a numerical s-op must hold a number");
    FAILS(HEAD "y = numerical(categorical(tokens == \"a\"));\noutput y;\n", "conflicting encodings");
    FAILS(HEAD "y = numerical(tokens == \"a\", 1);\noutput y;\n", "numerical takes 1 argument, got 2");
    /* through a def, the annotation reaches the s-op the def returns */
    RaspProgram *p = load(HEAD "def is(s, v) { return s == v; }\ny = numerical(is(tokens, \"a\"));\noutput y;\n");
    assert_int_equal(sop(p, "y")->enc, ENC_NUMERICAL);
    rasp_free(p);
}

static void test_sema_def_call_errors(void **state)
{
    (void)state;
    FAILS(HEAD "def f(a, b) { return a + b; }\ny = f(tokens);\noutput y;\n",
          "`f` takes 2 arguments, got 1", "note: `f` is defined here");
    FAILS(HEAD "def f(s) { return s; }\ny = f;\noutput y;\n", "`f` is a def, not a value");
    /* an error inside an expansion says which call */
    FAILS(HEAD "def inv(s) { return 1 / s; }\ny = inv(indices);\noutput y;\n",
          "'/' fails when `s` is 0", "note: in this call of `inv`");
}

static void test_sema_output_rules(void **state)
{
    (void)state;
    FAILS(HEAD "x = tokens;\n", "test.rasp: error: missing `output` statement");
    FAILS(HEAD "output tokens;\noutput indices;\n", "more than one `output`", "note: the first `output` is here");
    FAILS(HEAD "output select(indices, indices, ==);\n", "the output must be an s-op");
    FAILS(HEAD "def f(s) { output s; return s; }\noutput tokens;\n", "only assignments and `return` are allowed inside a def");
}

static void test_sema_declaration_rules(void **state)
{
    (void)state;
    FAILS("max_len 3;\noutput tokens;\n", "test.rasp: error: missing `vocab` declaration");
    FAILS("vocab {a};\noutput tokens;\n", "test.rasp: error: missing `max_len` declaration");
    FAILS("", "missing `vocab`", "missing `max_len`", "missing `output`");
    FAILS("vocab {a};\nmax_len 0;\noutput tokens;\n", "max_len must be between 1 and 4096, got 0");
    FAILS("vocab {a};\nmax_len 5000;\noutput tokens;\n", "max_len must be between 1 and 4096, got 5000");
    FAILS("vocab {a};\nmax_len -3;\noutput tokens;\n", "got -3");
    FAILS("vocab {a};\nmax_len 1 + 2;\noutput tokens;\n", "max_len takes an integer");
    FAILS("vocab {a};\nmax_len 3;\nmax_len 4;\noutput tokens;\n", "`max_len` is declared more than once", "first declared here");
    FAILS("vocab {a, b, a};\nmax_len 3;\noutput tokens;\n", "duplicate vocab entry \"a\"", "first listed here");
    FAILS("vocab {3, \"3\"};\nmax_len 3;\noutput tokens;\n", "vocab entries 3 and \"3\" read the same");
    FAILS("vocab {a, BOS};\nmax_len 3;\noutput tokens;\n", "\"BOS\" is the default BOS token");
    FAILS("vocab {a, PAD};\nmax_len 3;\noutput tokens;\n", "\"PAD\" is the default PAD token");
    FAILS("vocab {a, s};\nbos \"s\";\nmax_len 3;\noutput tokens;\n", "the vocab cannot contain the BOS token \"s\"");
    FAILS("vocab {a};\nbos \"X\";\npad \"X\";\nmax_len 3;\noutput tokens;\n", "the BOS and PAD tokens must differ");
    FAILS("vocab {};\nmax_len 3;\noutput tokens;\n", "the vocab is empty");
    FAILS("vocab {a, \"\"};\nmax_len 3;\noutput tokens;\n", "cannot be the empty string");
    /* BOS may be a token once bos renames the BOS token */
    RaspProgram *p = load("vocab {a, BOS};\nbos \"<s>\";\nmax_len 3;\noutput tokens;\n");
    assert_string_equal(p->bos, "<s>");
    rasp_free(p);
    /* declarations may come after statements */
    p = load("x = tokens == \"a\";\noutput x;\nvocab {a};\nmax_len 2;\n");
    rasp_free(p);
}

static void test_sema_several_independent_errors_are_all_reported(void **state)
{
    (void)state;
    int n = FAILS(HEAD "a = q;\nb = map(lambda x: x * 2 + \"s\", tokens);\nc = select(tokens, indices, <);\n"
                  "d = numerical(tokens);\noutput b;\n",
                  "unknown name `q`", "lambda fails on x = \"a\"", "this predicate fails", "always categorical");
    assert_int_equal(n, 4);
}

static void test_sema_table_size_limit(void **state)
{
    (void)state;
    FAILS("vocab {a};\nmax_len 4096;\n"
          "y = sequence_map(lambda a, b: a, indices, selector_width(select(indices, indices, <)));\noutput y;\n",
          "this sequence_map needs a table of 16781312 entries (4096 x 4097 values)");
}

/* ---------------------------------------------------------------- causal */

static void test_sema_causal_accepts_prefix_selects(void **state)
{
    (void)state;
    RaspProgram *p = load(HEAD "causal;\nprev = select(indices, indices, <=);\n"
                          "n = selector_width(prev);\nsame = select(indices, indices, ==);\n"
                          "both = select(indices, indices, <) and select(tokens, tokens, ==);\n"
                          "none = select(tokens, tokens, false);\n"
                          "x = aggregate(both, tokens);\ny = aggregate(none, n);\n"
                          "out = sequence_map(lambda a, b: a, x, aggregate(same, n));\noutput out;\n");
    assert_int_equal(p->causal, 1);
    rasp_free(p);
}

static void test_sema_causal_rejects_look_ahead(void **state)
{
    (void)state;
    FAILS(HEAD "causal;\noutput length;\n",
          "test.rasp:4:8: error: `length` needs to look ahead in a causal program",
          "selector_width(select(indices, indices, <=))");
    FAILS(HEAD "causal;\ns = select(indices, indices, >=);\noutput aggregate(s, tokens);\n",
          "test.rasp:4:5: error: this select needs to look ahead in a causal program");
    FAILS(HEAD "causal;\ns = select(tokens, tokens, ==);\noutput aggregate(s, tokens);\n", "needs to look ahead");
    FAILS(HEAD "causal;\ns = not select(indices, indices, >);\noutput aggregate(s, tokens);\n",
          "`not` of a selector needs to look ahead");
    FAILS(HEAD "causal;\ns = select(indices, indices, <=) or select(indices, indices, >);\noutput aggregate(s, tokens);\n",
          "this select needs to look ahead");
    /* unused selects do not matter */
    RaspProgram *p = load(HEAD "causal;\nu = selector_width(select(tokens, tokens, ==));\noutput tokens;\n");
    rasp_free(p);
    /* --causal and FrontOptions.causal = 0 override the file */
    FrontOptions o = FRONT_OPTIONS_DEFAULT;
    o.causal = 1;
    fails_opt(HEAD "output length;\n", &o, "needs to look ahead", (const char *)NULL);
    o.causal = 0;
    p = load_opt(HEAD "causal;\noutput length;\n", &o);
    assert_int_equal(p->causal, 0);
    rasp_free(p);
}

/* ---------------------------------------------------------------- overrides */

static void test_sema_flag_overrides(void **state)
{
    (void)state;
    FrontOptions o = FRONT_OPTIONS_DEFAULT;
    o.vocab = "1, 2,x,-4";
    o.max_len = 7;
    RaspProgram *p = load_opt(HEAD "output tokens;\n", &o);
    assert_int_equal(p->nvocab, 4);
    assert_int_equal(p->vocab[0].kind, VAL_INT);
    assert_int_equal(p->vocab[2].kind, VAL_STR);
    assert_true(p->vocab[3].u.i == -4);
    assert_int_equal(p->max_len, 7);
    assert_int_equal(p->sops[1].nvals, 7);
    rasp_free(p);
    /* flags stand in for missing declarations */
    p = load_opt("output tokens;\n", &o);
    rasp_free(p);
    o.vocab = "a,,b";
    fails_opt("max_len 3;\noutput tokens;\n", &o, "--vocab: empty entry", (const char *)NULL);
    o.vocab = "a,b,a";
    fails_opt("max_len 3;\noutput tokens;\n", &o, "duplicate vocab entry \"a\"", (const char *)NULL);
    o.vocab = "a,BOS";
    fails_opt("max_len 3;\noutput tokens;\n", &o, "default BOS token", (const char *)NULL);
    o.vocab = NULL;
    o.max_len = 5000;
    fails_opt(HEAD "output tokens;\n", &o, "--max-len must be between 1 and 4096", (const char *)NULL);
}

/* ---------------------------------------------------------------- loads */

static char tmpdir[256];

static void put(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    char *slash = strrchr(path, '/');
    if (slash > path + strlen(tmpdir)) {
        *slash = 0;
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
        assert_int_equal(system(cmd), 0);
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static RaspProgram *load_path(const char *name, Diag *d)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return rasp_load_file(path, NULL, d);
}

static char *load_path_fails(const char *name)
{
    Diag *d = diag_new();
    RaspProgram *p = load_path(name, d);
    if (p) {
        rasp_free(p);
        diag_free(d);
        fail_msg("%s checked but should not have", name);
    }
    char *msg = diag_render(d);
    diag_free(d);
    return msg;
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_sema_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_sema_load_exports_public_names_and_keeps_private_ones(void **state)
{
    (void)state;
    put("lib/priv.rasp", "_helper = 2;\ndef plus(s) { return s + _helper; }\n");
    put("lib/uses.rasp", "load \"priv.rasp\";\ndef twice(s) { return plus(plus(s)); }\n");
    put("main.rasp", HEAD "load \"lib/priv.rasp\";\nload \"lib/uses.rasp\";\ny = twice(indices);\noutput y;\n");
    Diag *d = diag_new();
    RaspProgram *p = load_path("main.rasp", d);
    if (!p) {
        char *m = diag_render(d);
        fail_msg("%s", m);
    }
    assert_string_equal(vals(sop(p, "y")), "{4, 5, 6, 7, 8}");
    /* loaded once: the expanded source holds priv.rasp's text once */
    const char *first = strstr(p->source, "_helper = 2;");
    assert_non_null(first);
    assert_null(strstr(first + 1, "_helper = 2;"));
    assert_non_null(strstr(p->source, "# >>> begin load \"lib/priv.rasp\""));
    assert_non_null(strstr(p->source, "# <<< end load \"lib/uses.rasp\""));
    assert_non_null(strstr(p->source, "already loaded above"));
    /* the expanded source is one self-contained program */
    Diag *d2 = diag_new();
    RaspProgram *again = rasp_load_text("again.rasp", p->source, strlen(p->source), NULL, d2);
    assert_non_null(again);
    assert_int_equal(again->nsops, p->nsops);
    rasp_free(again);
    diag_free(d2);
    rasp_free(p);
    diag_free(d);
    put("main2.rasp", HEAD "load \"lib/priv.rasp\";\nz = _helper;\noutput tokens;\n");
    char *m = load_path_fails("main2.rasp");
    assert_non_null(strstr(m, "unknown name `_helper`"));
    free(m);
}

static void test_sema_load_cycle_is_reported_at_the_closing_load(void **state)
{
    (void)state;
    put("cyc_a.rasp", "load \"cyc_b.rasp\";\nx = 1;\n");
    put("cyc_b.rasp", "load \"cyc_a.rasp\";\ny = 2;\n");
    put("cyc_main.rasp", HEAD "load \"cyc_a.rasp\";\noutput tokens;\n");
    char *m = load_path_fails("cyc_main.rasp");
    assert_non_null(strstr(m, "cyc_b.rasp:1:1: error: load cycle:"));
    assert_non_null(strstr(m, "cyc_a.rasp' loads '"));
    assert_int_equal(strstr(strstr(m, "load cycle") + 1, "load cycle") == NULL, 1);
    free(m);
    /* a file that loads itself */
    put("self.rasp", HEAD "load \"self.rasp\";\noutput tokens;\n");
    m = load_path_fails("self.rasp");
    assert_non_null(strstr(m, "load cycle"));
    free(m);
}

static void test_sema_load_missing_file_names_path_and_reason(void **state)
{
    (void)state;
    put("miss.rasp", HEAD "load \"sub/nope.rasp\";\nx = helper(tokens);\noutput x;\n");
    char *m = load_path_fails("miss.rasp");
    assert_non_null(strstr(m, "miss.rasp:3:1: error: cannot load 'sub/nope.rasp'"));
    assert_non_null(strstr(m, "No such file or directory"));
    assert_null(strstr(m, "unknown function"));   /* the failed load explains it */
    free(m);
    put("dir.rasp", HEAD "load \"lib\";\noutput tokens;\n");
    m = load_path_fails("dir.rasp");
    assert_non_null(strstr(m, "Is a directory"));
    free(m);
}

static void test_sema_loaded_file_may_not_declare_or_output(void **state)
{
    (void)state;
    put("decl.rasp", "vocab {b};\nmax_len 3;\n_h = 1;\noutput tokens;\n");
    put("decl_main.rasp", HEAD "load \"decl.rasp\";\noutput tokens;\n");
    char *m = load_path_fails("decl_main.rasp");
    assert_non_null(strstr(m, "decl.rasp:1:1: error: declarations belong in the main file"));
    assert_non_null(strstr(m, "decl.rasp:2:1: error: declarations belong in the main file"));
    assert_non_null(strstr(m, "decl.rasp:4:1: error: `output` belongs in the main file"));
    free(m);
}

static void test_sema_load_name_clash_is_a_redefinition(void **state)
{
    (void)state;
    put("clash.rasp", "x = 1;\n");
    put("clash_main.rasp", HEAD "x = 2;\nload \"clash.rasp\";\noutput tokens;\n");
    char *m = load_path_fails("clash_main.rasp");
    assert_non_null(strstr(m, "'clash.rasp' defines `x`, which is already defined"));
    free(m);
}

static void test_sema_missing_main_file(void **state)
{
    (void)state;
    Diag *d = diag_new();
    assert_null(rasp_load_file("/nonexistent/dir/x.rasp", NULL, d));
    char *m = diag_render(d);
    assert_string_equal(m, "error: cannot read '/nonexistent/dir/x.rasp': No such file or directory\n");
    free(m);
    diag_free(d);
}

/* ---------------------------------------------------------------- robustness */

static void test_sema_survives_mutated_programs(void **state)
{
    (void)state;
    static const char base[] =
        "vocab {a, b, 3};\nmax_len 6;\nk = 2;\n"
        "def shift(o, s) { sel = select(indices, indices, lambda k, q: q == k + o); return aggregate(sel, s); }\n"
        "x = numerical(tokens == \"a\");\nf = aggregate(select(indices, indices, <=), x, 0);\n"
        "m = map(lambda v: v * k if v != 0 else -1, indices);\n"
        "w = selector_width(select(tokens, tokens, ==) and not select(indices, m, <));\n"
        "y = sequence_map(lambda p, q: str(p) + str(q), shift(1, tokens), w);\n"
        "output y;\n";
    RaspProgram *p = load(base);
    rasp_free(p);
    uint64_t seed = 12345;
    size_t n = strlen(base);
    char *buf = malloc(n + 1);
    static const char junk[] = "();,{}=+-*/ \"ab0_x\n#";
    for (int iter = 0; iter < 400; iter++) {
        memcpy(buf, base, n + 1);
        for (int k = 0; k < 3; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(seed >> 33) % n;
            buf[at] = junk[(seed >> 20) % (sizeof junk - 1)];
        }
        Diag *d = diag_new();
        RaspProgram *q = rasp_load_text("m.rasp", buf, n, NULL, d);
        if (!q) assert_true(diag_errors(d) > 0);
        rasp_free(q);
        diag_free(d);
    }
    free(buf);
}

/* Constant `and`/`or` short-circuit like lambdas (and Python): the right side of
 * `false and ...` / `true or ...` is not evaluated, in a lambda or outside one. */
static void test_sema_constant_and_or_short_circuit(void **state)
{
    (void)state;
    const char *srcs[] = {
        HEAD "c = false and (1 / 0 == 0);\nout = map(lambda x: c, tokens);\noutput out;\n",
        HEAD "out = map(lambda x: false and (1 / 0 == 0), tokens);\noutput out;\n",
        HEAD "c = true or 5;\nout = map(lambda x: not c, tokens);\noutput out;\n",
        HEAD "out = map(lambda x: not (true or 5), tokens);\noutput out;\n",
    };
    for (size_t k = 0; k < sizeof srcs / sizeof *srcs; k++) {
        RaspProgram *p = load(srcs[k]);
        const RaspSop *o = sop(p, "out");
        assert_string_equal(vals(o), "{false}");
        rasp_free(p);
    }
    /* when the left side does not decide, the right is evaluated, and its failure reported */
    FAILS(HEAD "c = true and (1 / 0 == 0);\nout = map(lambda x: c, tokens);\noutput out;\n", "division by zero");
    FAILS(HEAD "out = map(lambda x: true and (1 / 0 == 0), tokens);\noutput out;\n", "division by zero");
    FAILS(HEAD "c = false or 5;\nout = map(lambda x: c, tokens);\noutput out;\n", "'or' takes booleans");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sema_constant_and_or_short_circuit),
        cmocka_unit_test(test_sema_tokens_and_indices),
        cmocka_unit_test(test_sema_map_value_set_and_table),
        cmocka_unit_test(test_sema_map_outputs_sorted_by_value_order),
        cmocka_unit_test(test_sema_sequence_map_table),
        cmocka_unit_test(test_sema_operators_on_sops_are_maps_and_sequence_maps),
        cmocka_unit_test(test_sema_select_predicate_tables),
        cmocka_unit_test(test_sema_categorical_aggregate_value_set_and_default),
        cmocka_unit_test(test_sema_numerical_mean_set_is_complete),
        cmocka_unit_test(test_sema_numerical_mean_set_at_max_len_46),
        cmocka_unit_test(test_sema_numerical_aggregate_too_many_values_is_an_error),
        cmocka_unit_test(test_sema_selector_width_value_sets),
        cmocka_unit_test(test_sema_length_only_when_used),
        cmocka_unit_test(test_sema_constants_fold_and_lift),
        cmocka_unit_test(test_sema_linear_maps),
        cmocka_unit_test(test_sema_encodings_of_derived_sops),
        cmocka_unit_test(test_sema_lambdas_short_circuit_and_guards_work),
        cmocka_unit_test(test_sema_generated_labels_count_per_op),
        cmocka_unit_test(test_sema_def_labels_are_qualified_by_call),
        cmocka_unit_test(test_sema_nested_def_labels_nest),
        cmocka_unit_test(test_sema_aliases_keep_the_first_name),
        cmocka_unit_test(test_sema_ids_are_topological_and_used_is_marked),
        cmocka_unit_test(test_sema_unknown_names_and_forward_references),
        cmocka_unit_test(test_sema_redefinition_shows_both_places),
        cmocka_unit_test(test_sema_redefined_name_does_not_cascade),
        cmocka_unit_test(test_sema_lambda_errors_name_the_value),
        cmocka_unit_test(test_sema_lambda_static_errors),
        cmocka_unit_test(test_sema_constant_errors_are_compile_errors),
        cmocka_unit_test(test_sema_operator_errors_point_at_the_operand),
        cmocka_unit_test(test_sema_select_rules),
        cmocka_unit_test(test_sema_aggregate_encoding_rules),
        cmocka_unit_test(test_sema_sequence_map_encoding_rules),
        cmocka_unit_test(test_sema_annotations),
        cmocka_unit_test(test_sema_def_call_errors),
        cmocka_unit_test(test_sema_output_rules),
        cmocka_unit_test(test_sema_declaration_rules),
        cmocka_unit_test(test_sema_several_independent_errors_are_all_reported),
        cmocka_unit_test(test_sema_table_size_limit),
        cmocka_unit_test(test_sema_causal_accepts_prefix_selects),
        cmocka_unit_test(test_sema_causal_rejects_look_ahead),
        cmocka_unit_test(test_sema_flag_overrides),
        cmocka_unit_test(test_sema_load_exports_public_names_and_keeps_private_ones),
        cmocka_unit_test(test_sema_load_cycle_is_reported_at_the_closing_load),
        cmocka_unit_test(test_sema_load_missing_file_names_path_and_reason),
        cmocka_unit_test(test_sema_loaded_file_may_not_declare_or_output),
        cmocka_unit_test(test_sema_load_name_clash_is_a_redefinition),
        cmocka_unit_test(test_sema_missing_main_file),
        cmocka_unit_test(test_sema_survives_mutated_programs),
    };
    return cmocka_run_group_tests_name("sema", tests, setup_tmp, teardown_tmp);
}
