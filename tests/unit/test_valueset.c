/* test_valueset.c — value sets against brute force: every input up to a small length is run
 * through the interpreter, and every value an s-op takes must be in its value set (and a
 * None only where may_none says so). Covers every program in rasp_examples/, and the tight
 * sets of linear combinations of numerical means (valueset.h, vs_linear_means): where the
 * rule is tight, the set must equal what the inputs actually produce. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/util.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"

#define MAX_INPUTS 200000L  /* per sweep: keeps the whole driver to a few seconds */

/* ---------------------------------------------------------------- loading */

static RaspProgram *load_text_opt(const char *src, int max_len, int causal)
{
    FrontOptions o = FRONT_OPTIONS_DEFAULT;
    o.max_len = max_len;
    o.causal = causal;
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text("test.rasp", src, strlen(src), &o, d);
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

/* NULL (quietly) when the file does not check with these options. */
static RaspProgram *try_load_file(const char *path, int max_len, int causal)
{
    FrontOptions o = FRONT_OPTIONS_DEFAULT;
    o.max_len = max_len;
    o.causal = causal;
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_file(path, &o, d);
    diag_free(d);
    return p;
}

static RaspProgram *load_file(const char *path, int max_len, int causal)
{
    RaspProgram *p = try_load_file(path, max_len, causal);
    if (!p) fail_msg("%s did not check at max_len %d", path, max_len);
    return p;
}

static const RaspSop *sop(const RaspProgram *p, const char *label)
{
    for (int i = 0; i < p->nsops; i++)
        if (!strcmp(p->sops[i].label, label)) return &p->sops[i];
    fail_msg("no s-op labelled %s", label);
    return NULL;
}

/* ---------------------------------------------------------------- the sweep */

typedef struct {
    const RaspProgram *p;
    uint8_t **seen;         /* per s-op, per value index: observed */
    uint8_t *none_seen;     /* per s-op: a None observed */
    long inputs;
    /* optional check of each input: tokens, length, interpreter */
    void (*check)(void *ctx, const RaspProgram *p, const int32_t *tok, int n, const Interp *it);
    void *ctx;
} Sweep;

static void input_text(const RaspProgram *p, const int32_t *tok, int n, StrBuf *b)
{
    for (int i = 0; i < n; i++) {
        if (i) sb_putc(b, ' ');
        val_format(p->vocab[tok[i]], b);
    }
}

/* Every input of length 1..L over the vocab (L = the program's max_len). Any interpreter
 * error is a value missing from a set (an aggregate's mean, a width) or an operand pair
 * wrongly proved impossible: a completeness bug. */
static void sweep_run(Sweep *sw)
{
    const RaspProgram *p = sw->p;
    int L = p->max_len;
    sw->seen = xcalloc((size_t)p->nsops, sizeof *sw->seen);
    sw->none_seen = xcalloc((size_t)p->nsops, 1);
    for (int i = 0; i < p->nsops; i++) sw->seen[i] = xcalloc((size_t)(p->sops[i].nvals + 1), 1);
    Interp *it = interp_new(p, 1);
    int32_t tok[64];
    assert_true(L <= 64);
    for (int n = 1; n <= L; n++) {
        memset(tok, 0, sizeof tok);
        for (;;) {
            if (interp_eval(it, tok, n) != 0) {
                StrBuf b;
                sb_init(&b);
                input_text(p, tok, n, &b);
                print_error("%s (max_len %d) on input [%s]: %s\n", p->path, L, b.s, interp_error(it));
                sb_free(&b);
                fail_msg("interpreter error: a value set is incomplete");
            }
            sw->inputs++;
            for (int s = 0; s < p->nsops; s++) {
                const int32_t *v = interp_values(it, s);
                if (!v) continue;
                for (int q = 0; q < n; q++) {
                    if (v[q] == RASP_NONE) sw->none_seen[s] = 1;
                    else sw->seen[s][v[q]] = 1;
                }
            }
            if (sw->check) sw->check(sw->ctx, p, tok, n, it);
            int k = n - 1;   /* odometer */
            while (k >= 0 && ++tok[k] == p->nvocab) tok[k--] = 0;
            if (k < 0) break;
        }
    }
    interp_free(it);
    for (int s = 0; s < p->nsops; s++)
        if (sw->none_seen[s] && !p->sops[s].may_none)
            fail_msg("%s (max_len %d): s-op '%s' held None but may_none is 0", p->path, L,
                     p->sops[s].label);
}

static void sweep_free(Sweep *sw)
{
    for (int i = 0; i < sw->p->nsops; i++) free(sw->seen[i]);
    free(sw->seen);
    free(sw->none_seen);
}

/* How many of the s-op's values some input produced. */
static int observed(const Sweep *sw, const RaspSop *s)
{
    int c = 0;
    for (int i = 0; i < s->nvals; i++) c += sw->seen[s->id][i];
    return c;
}

/* The rule claims this set is tight: every value must be produced by some input. */
static int interp_values_evaluated(const Sweep *sw, int s)
{
    return sw->p->sops[s].nvals > 0;
}

static void assert_tight(const Sweep *sw, const RaspSop *s)
{
    int c = observed(sw, s);
    if (c != s->nvals) {
        StrBuf b;
        sb_init(&b);
        for (int i = 0; i < s->nvals; i++)
            if (!sw->seen[s->id][i]) {
                val_format(s->vals[i], &b);
                sb_putc(&b, ' ');
            }
        print_error("never produced: %s\n", b.s);
        sb_free(&b);
        fail_msg("'%s' at max_len %d: %d of %d values produced", s->label, sw->p->max_len, c,
                 s->nvals);
    }
}

static long count_inputs(int nvocab, int L)
{
    long total = 0, pw = 1;
    for (int n = 1; n <= L; n++) {
        pw *= nvocab;
        total += pw;
        if (total > MAX_INPUTS) return total;
    }
    return total;
}

static int has_impossible(const RaspProgram *p, const RaspSop *s)
{
    long len = (long)p->sops[s->a].nvals * p->sops[s->b].nvals;
    for (long i = 0; i < len; i++)
        if (s->table[i] == RASP_IMPOSSIBLE) return 1;
    return 0;
}

/* |{k/c : 1 <= c <= N, |k| <= c, k = c (mod step)}| as reduced fractions: step 2 gives
 * pair_balance over {(, )} ((2o - c)/c), step 1 a balance over a vocab with other tokens. */
static int count_fractions(int N, int step)
{
    uint8_t *seen = xcalloc((size_t)(2 * N + 1) * (size_t)(N + 1), 1);
    int count = 0;
    for (int c = 1; c <= N; c++)
        for (int k = -c; k <= c; k++) {
            if (((k - c) % step + step) % step) continue;
            int a = abs(k), b = c;
            while (b) {
                int t = a % b;
                a = b;
                b = t;
            }
            int g = a ? a : c;
            int kk = k / g, cc = c / g;
            uint8_t *e = &seen[(size_t)(kk + N) * (size_t)(N + 1) + (size_t)cc];
            if (!*e) {
                *e = 1;
                count++;
            }
        }
    free(seen);
    return count;
}

/* ---------------------------------------------------------------- every example */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_valueset_every_example_is_complete_on_all_short_inputs(void **state)
{
    (void)state;
    DIR *dir = opendir("rasp_examples");
    assert_non_null(dir);
    char *names[256];
    int nnames = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && nnames < 256) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".rasp")) names[nnames++] = xstrdup(e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)nnames, sizeof *names, cmp_str);
    assert_true(nnames >= 10);
    int programs = 0;
    for (int i = 0; i < nnames; i++) {
        char path[512];
        snprintf(path, sizeof path, "rasp_examples/%s", names[i]);
        for (int causal = -1; causal <= 1; causal += 2) {
            /* find the vocab size, then the longest max_len (<= 7) that stays affordable */
            RaspProgram *p = try_load_file(path, 0, causal);
            if (!p) {
                /* the file as written must check; --causal may rightly reject it */
                assert_true(causal == 1);
                continue;
            }
            int nv = p->nvocab;
            rasp_free(p);
            int L = 7;
            while (L > 2 && count_inputs(nv, L) > MAX_INPUTS) L--;
            p = load_file(path, L, causal);
            Sweep sw = {p, NULL, NULL, 0, NULL, NULL};
            sweep_run(&sw);
            assert_true(sw.inputs > 0);
            if (getenv("TRACC_TEST_VERBOSE")) {   /* how tight each set is (the report) */
                fprintf(stderr, "%s%s max_len %d, %ld inputs\n", path, causal == 1 ? " (causal)" : "",
                        L, sw.inputs);
                for (int s = 0; s < p->nsops; s++)
                    if (interp_values_evaluated(&sw, s))
                        fprintf(stderr, "  %-40s %6d of %6d values produced%s\n", p->sops[s].label,
                                observed(&sw, &p->sops[s]), p->sops[s].nvals,
                                p->sops[s].op == SOP_SEQMAP && p->sops[s].linear ? " (linear)" : "");
            }
            sweep_free(&sw);
            rasp_free(p);
            programs++;
        }
        free(names[i]);
    }
    assert_true(programs >= nnames);
}

/* ---------------------------------------------------------------- pair_balance */

/* The exact balance (#open - #close) / (q + 1) against what the interpreter printed. */
static void check_balance(void *ctx, const RaspProgram *p, const int32_t *tok, int n,
                          const Interp *it)
{
    const RaspSop *bal = ctx;
    int open = rasp_token_index(p, "("), close = rasp_token_index(p, ")");
    const int32_t *v = interp_values(it, bal->id);
    int o = 0, c = 0;
    for (int q = 0; q < n; q++) {
        o += tok[q] == open;
        c += tok[q] == close;
        double exact = (double)(o - c) / (q + 1);
        assert_true(v[q] >= 0);
        assert_true(fabs(val_as_double(bal->vals[v[q]]) - exact) < 1e-12);
        assert_int_not_equal(rasp_num_index(bal, exact), RASP_NONE);
    }
}

static void test_valueset_pair_balance_equals_every_observed_value(void **state)
{
    (void)state;
    for (int N = 1; N <= 8; N++) {
        RaspProgram *p = load_file("rasp_examples/pair_balance.rasp", N, -1);
        const RaspSop *bal = sop(p, "pair_balance");
        Sweep sw = {p, NULL, NULL, 0, check_balance, (void *)bal};
        sweep_run(&sw);
        assert_tight(&sw, bal);
        assert_int_equal(bal->nvals, count_fractions(N, 2));
        assert_tight(&sw, sop(p, "make_pair_balance_1.opens"));
        sweep_free(&sw);
        rasp_free(p);
    }
}

static void test_valueset_pair_balance_is_tight_when_causal(void **state)
{
    (void)state;
    RaspProgram *p = load_file("rasp_examples/pair_balance.rasp", 7, 1);
    assert_true(p->causal);
    const RaspSop *bal = sop(p, "pair_balance");
    Sweep sw = {p, NULL, NULL, 0, check_balance, (void *)bal};
    sweep_run(&sw);
    assert_tight(&sw, bal);
    sweep_free(&sw);
    rasp_free(p);
}

/* The sizes the report quotes: max_len 10, 46 (where the product set used to exceed
 * RASP_MAX_VALUES) and 64; the table marks the pairs that never occur. */
static void test_valueset_pair_balance_sizes_at_long_max_len(void **state)
{
    (void)state;
    const int lens[] = {10, 46, 64};
    for (int i = 0; i < 3; i++) {
        RaspProgram *p = load_file("rasp_examples/pair_balance.rasp", lens[i], -1);
        const RaspSop *bal = sop(p, "pair_balance");
        assert_int_equal(bal->nvals, count_fractions(lens[i], 2));
        assert_true(has_impossible(p, bal));
        assert_false(bal->may_none);
        rasp_free(p);
    }
    for (int i = 0; i < 3; i++) {
        const char *f = i == 0 ? "rasp_examples/pair_balance.rasp"
                      : i == 1 ? "rasp_examples/shuffle_dyck.rasp" : "rasp_examples/shuffle_dyck2.rasp";
        RaspProgram *p = load_file(f, 64, -1);
        rasp_free(p);
    }
}

/* Four tokens: a position may hold neither bracket, so the balance is any k/c, |k| <= c. */
static void test_valueset_shuffle_dyck2_balances_are_tight(void **state)
{
    (void)state;
    RaspProgram *p = load_file("rasp_examples/shuffle_dyck2.rasp", 5, -1);
    Sweep sw = {p, NULL, NULL, 0, NULL, NULL};
    sweep_run(&sw);
    const char *names[] = {"balance_paren", "balance_brace"};
    for (int i = 0; i < 2; i++) {
        const RaspSop *b = sop(p, names[i]);
        assert_int_equal(b->nvals, count_fractions(5, 1));
        assert_tight(&sw, b);
    }
    sweep_free(&sw);
    rasp_free(p);
    p = load_file("rasp_examples/shuffle_dyck2.rasp", 64, -1);
    assert_int_equal(sop(p, "balance_paren")->nvals, count_fractions(64, 1));
    rasp_free(p);
}

/* ---------------------------------------------------------------- the rule, case by case */

#define PREFIX "vocab {a, b, c};\nmax_len 5;\n"

/* Load, sweep every input, and check the listed s-ops are tight. */
static RaspProgram *swept(const char *src, int causal, const char *const *tight, Sweep *sw)
{
    RaspProgram *p = load_text_opt(src, 0, causal);
    memset(sw, 0, sizeof *sw);
    sw->p = p;
    sweep_run(sw);
    for (int i = 0; tight && tight[i]; i++) assert_tight(sw, sop(p, tight[i]));
    return p;
}

static void done(RaspProgram *p, Sweep *sw)
{
    sweep_free(sw);
    rasp_free(p);
}

static void test_valueset_one_selector_two_means_is_tight(void **state)
{
    (void)state;
    const char *src = PREFIX
        "pre = select(indices, indices, <=);\n"
        "x = aggregate(pre, numerical(tokens == \"a\"));\n"
        "y = aggregate(pre, numerical(tokens == \"b\"));\n"
        "d = x - y;\n"
        "output d;\n";
    const char *tight[] = {"d", NULL};
    Sweep sw;
    RaspProgram *p = swept(src, -1, tight, &sw);
    const RaspSop *d = sop(p, "d");
    assert_int_equal(d->nvals, count_fractions(5, 1));
    assert_true(has_impossible(p, d));
    done(p, &sw);
}

static void test_valueset_identical_selectors_count_as_one(void **state)
{
    (void)state;
    /* two selects written out twice, and two built by two calls of one def */
    const char *src = PREFIX
        "def frac(s) { return aggregate(select(indices, indices, <=), s); }\n"
        "x = aggregate(select(indices, indices, <=), numerical(tokens == \"a\"));\n"
        "y = aggregate(select(indices, indices, <=), numerical(tokens == \"b\"));\n"
        "d = x - y;\n"
        "e = frac(numerical(tokens == \"a\")) - frac(numerical(tokens == \"c\"));\n"
        "output d;\n";
    const char *tight[] = {"d", "e", NULL};
    Sweep sw;
    RaspProgram *p = swept(src, -1, tight, &sw);
    assert_int_equal(sop(p, "d")->nvals, count_fractions(5, 1));
    assert_int_equal(sop(p, "e")->nvals, count_fractions(5, 1));
    done(p, &sw);
}

/* Two different selectors: no joint argument, the product of the two sets stays. */
static void test_valueset_different_selectors_keep_the_product(void **state)
{
    (void)state;
    const char *src = PREFIX
        "x = aggregate(select(indices, indices, <=), numerical(tokens == \"a\"));\n"
        "y = aggregate(select(indices, indices, >=), numerical(tokens == \"b\"));\n"
        "d = x - y;\n"
        "output d;\n";
    Sweep sw;
    RaspProgram *p = swept(src, -1, NULL, &sw);
    const RaspSop *d = sop(p, "d"), *x = sop(p, "x"), *y = sop(p, "y");
    assert_false(has_impossible(p, d));
    /* every difference of the two sets is a value */
    for (int i = 0; i < x->nvals; i++)
        for (int j = 0; j < y->nvals; j++)
            assert_int_not_equal(rasp_num_index(d, val_as_double(x->vals[i]) - val_as_double(y->vals[j])),
                                 RASP_NONE);
    done(p, &sw);
}

/* Linear maps, longer chains, repeated terms and numerical constants unfold into one
 * combination: 3x - y - 1 = mean of w with w(a) = 2, w(b) = -2, w(c) = -1. */
static void test_valueset_chains_and_constants_are_tight(void **state)
{
    (void)state;
    const char *src = PREFIX
        "pre = select(indices, indices, <=);\n"
        "x = aggregate(pre, numerical(tokens == \"a\"));\n"
        "y = aggregate(pre, numerical(tokens == \"b\"));\n"
        "t = 2 * x - y;\n"
        "u = t + x;\n"
        "v = u - numerical(1);\n"
        "z = -(x - x);\n"
        "output v;\n";
    const char *tight[] = {"t", "u", "v", "z", NULL};
    Sweep sw;
    RaspProgram *p = swept(src, -1, tight, &sw);
    const RaspSop *z = sop(p, "z");
    assert_int_equal(z->nvals, 1);    /* x - x is 0 */
    assert_true(val_as_double(z->vals[0]) == 0.0);
    done(p, &sw);
}

/* A selector that may select nothing: the combined default (3 - 0) joins the set. */
static void test_valueset_default_joins_when_nothing_may_be_selected(void **state)
{
    (void)state;
    const char *src = PREFIX
        "sel = select(tokens, tokens, lambda k, q: k == \"a\" and q == \"b\");\n"
        "x = aggregate(sel, numerical(tokens == \"a\"), 3);\n"
        "y = aggregate(sel, numerical(indices == 0), 0);\n"
        "d = x - y;\n"
        "output d;\n";
    Sweep sw;
    RaspProgram *p = swept(src, -1, NULL, &sw);
    const RaspSop *d = sop(p, "d");
    assert_int_not_equal(rasp_num_index(d, 3.0), RASP_NONE);
    assert_true(sw.seen[d->id][rasp_num_index(d, 3.0)]);
    done(p, &sw);
}

/* An always-selecting selector leaves the default out (x's default 7 never shows). */
static void test_valueset_default_left_out_when_a_key_is_always_selected(void **state)
{
    (void)state;
    const char *src = PREFIX
        "pre = select(indices, indices, <=);\n"
        "x = aggregate(pre, numerical(tokens == \"a\"), 7);\n"
        "y = aggregate(pre, numerical(tokens == \"b\"), 0);\n"
        "d = x - y;\n"
        "output d;\n";
    const char *tight[] = {"d", NULL};
    Sweep sw;
    RaspProgram *p = swept(src, -1, tight, &sw);
    assert_int_equal(rasp_num_index(sop(p, "d"), 7.0), RASP_NONE);
    done(p, &sw);
}

/* An aggregated s-op that can be None: the combination is None there, never a new value. */
static void test_valueset_none_operands_stay_complete(void **state)
{
    (void)state;
    const char *src = PREFIX
        "first = aggregate(select(tokens, tokens, ==), indices);\n"   /* None if a token repeats */
        "m = numerical(map(lambda v: v * 2, first));\n"
        "pre = select(indices, indices, <=);\n"
        "x = aggregate(pre, m);\n"
        "y = aggregate(pre, numerical(tokens == \"a\"));\n"
        "d = x + y;\n"
        "output d;\n";
    Sweep sw;
    RaspProgram *p = swept(src, -1, NULL, &sw);
    const RaspSop *d = sop(p, "d");
    assert_true(d->may_none);
    assert_true(sw.none_seen[d->id]);
    done(p, &sw);
}

/* Non-integer weights take the generic mean computation; still complete, still smaller than
 * the product. */
static void test_valueset_fractional_weights_are_complete(void **state)
{
    (void)state;
    const char *src = PREFIX
        "pre = select(indices, indices, <=);\n"
        "x = aggregate(pre, numerical(tokens == \"a\"));\n"
        "y = aggregate(pre, numerical(tokens == \"b\"));\n"
        "d = 0.1 * x - y * 0.3;\n"
        "output d;\n";
    const char *tight[] = {"d", NULL};
    Sweep sw;
    RaspProgram *p = swept(src, -1, tight, &sw);
    const RaspSop *d = sop(p, "d");
    assert_true(has_impossible(p, d));
    done(p, &sw);
}

/* Aggregated s-ops that are functions of different s-ops (tokens, indices): the leaves are
 * enumerated jointly. */
static void test_valueset_two_leaves_are_enumerated_jointly(void **state)
{
    (void)state;
    const char *src = PREFIX
        "pre = select(indices, indices, <=);\n"
        "x = aggregate(pre, numerical(tokens == \"a\"));\n"
        "y = aggregate(pre, numerical(map(lambda i: i % 2, indices)));\n"
        "s = numerical(sequence_map(lambda t, i: t == \"b\" and i > 1, tokens, indices));\n"
        "z = aggregate(pre, s);\n"
        "d = x - y + z;\n"
        "output d;\n";
    Sweep sw;
    RaspProgram *p = swept(src, -1, NULL, &sw);
    const RaspSop *d = sop(p, "d");
    assert_true(observed(&sw, d) <= d->nvals);
    done(p, &sw);
}

/* The interpreter refuses to read an entry marked impossible (a wrong proof must not turn
 * into a silent None). */
static void test_valueset_reading_an_impossible_pair_is_an_internal_error(void **state)
{
    (void)state;
    RaspProgram *p = load_file("rasp_examples/pair_balance.rasp", 3, -1);
    const RaspSop *bal = sop(p, "pair_balance");
    Interp *it = interp_new(p, 0);
    int32_t tok[1] = {rasp_token_index(p, "(")};
    assert_int_equal(interp_eval(it, tok, 1), 0);
    int32_t a = interp_values(it, bal->a)[0], b = interp_values(it, bal->b)[0];
    int nb = p->sops[bal->b].nvals;
    int32_t saved = bal->table[a * nb + b];
    assert_true(saved >= 0);
    bal->table[a * nb + b] = RASP_IMPOSSIBLE;
    assert_int_equal(interp_eval(it, tok, 1), -1);
    assert_non_null(strstr(interp_error(it), "never to occur together"));
    assert_int_equal(interp_values(it, bal->id)[0], RASP_NONE);
    bal->table[a * nb + b] = saved;
    assert_int_equal(interp_eval(it, tok, 1), 0);
    interp_free(it);
    rasp_free(p);
}

/* ---------------------------------------------------------------- random programs */

/* A random linear expression over the aggregates g0..g(n-1): sums, differences, constant
 * multiples, negations and numerical constants. */
static void gen_expr(Rng *r, StrBuf *b, int ngg, int depth)
{
    static const char *const consts[] = {"2", "-1", "0.5", "3", "0.25"};
    uint32_t k = depth <= 0 ? 0 : rng_below(r, 10);
    if (k <= 3) {
        if (rng_below(r, 12) == 0) sb_printf(b, "numerical(%s)", consts[rng_below(r, 5)]);
        else sb_printf(b, "g%u", rng_below(r, (uint32_t)ngg));
    } else if (k <= 5) {
        sb_puts(b, "(");
        gen_expr(r, b, ngg, depth - 1);
        sb_puts(b, k == 4 ? " + " : " - ");
        gen_expr(r, b, ngg, depth - 1);
        sb_puts(b, ")");
    } else if (k <= 7) {
        sb_printf(b, "%s * ", consts[rng_below(r, 5)]);
        gen_expr(r, b, ngg, depth - 1);
    } else {
        sb_puts(b, "-");
        gen_expr(r, b, ngg, depth - 1);
    }
}

/* Random programs built to hit the rule and its edges (shared, identical and different
 * selectors, selectors that may select nothing, defaults, None operands, operands that are
 * functions of tokens, indices or both, chains, causal masks), each checked for
 * completeness on every input. */
static void test_valueset_random_combinations_are_complete(void **state)
{
    (void)state;
    static const char *const sels_any[] = {
        "select(indices, indices, <=)", "select(indices, indices, <=)",
        "select(tokens, tokens, ==)", "select(indices, indices, true)",
        "select(tokens, indices, lambda k, q: k == \"a\" or q == 0)",
        "select(tokens, tokens, lambda k, q: k == \"b\" and q == \"c\")",
        "select(indices, indices, <=) and select(tokens, tokens, !=)",
        "select(tokens, tokens, ==)",
        "select(swap, tokens, ==)",     /* the same predicate table on other keys */
        "select(tokens, swap, ==)",
    };
    static const char *const sels_causal[] = {
        "select(indices, indices, <=)", "select(indices, indices, <=)",
        "select(indices, indices, <)", "select(indices, indices, ==)",
        "select(indices, indices, <=) and select(tokens, tokens, ==)",
    };
    static const char *const vals[] = {
        "numerical(tokens == \"a\")",
        "numerical(map(lambda t: 2 if t == \"b\" else -1, tokens))",
        "numerical(map(lambda i: i * 0.5, indices))",
        "numerical(sequence_map(lambda t, i: 1 if t == \"c\" and i > 0 else 0, tokens, indices))",
        "numerical(map(lambda x: x * 3, first))",   /* None where a token repeats */
    };
    static const char *const defaults[] = {"", ", 0", ", 1", ", -2", ", 0.5"};
    Rng r;
    rng_seed(&r, 20240611);
    int programs = 0, tightened = 0;
    for (int iter = 0; iter < 150; iter++) {
        int causal = rng_below(&r, 4) == 0;
        const char *const *pool = causal ? sels_causal : sels_any;
        int npool = causal ? 5 : 10;
        int nvals = causal ? 4 : 5;
        StrBuf b;
        sb_init(&b);
        sb_printf(&b, "vocab {a, b, c};\nmax_len %d;\n%s", 4 + (int)rng_below(&r, 2), causal ? "causal;\n" : "");
        if (!causal)
            sb_puts(&b, "first = aggregate(select(tokens, tokens, ==), indices);\n"
                        "swap = map(lambda t: \"b\" if t == \"a\" else (\"a\" if t == \"b\" else t), tokens);\n");
        int nsel = 1 + (int)rng_below(&r, 3);
        for (int i = 0; i < nsel; i++) sb_printf(&b, "s%d = %s;\n", i, pool[rng_below(&r, (uint32_t)npool)]);
        int ngg = 2 + (int)rng_below(&r, 3);
        for (int i = 0; i < ngg; i++)
            sb_printf(&b, "g%d = aggregate(s%u, %s%s);\n", i, rng_below(&r, (uint32_t)nsel),
                      vals[rng_below(&r, (uint32_t)nvals)], defaults[rng_below(&r, 5)]);
        int nout = 1 + (int)rng_below(&r, 3);
        for (int i = 0; i < nout; i++) {
            sb_printf(&b, "y%d = ", i);
            /* make the top a sum or difference, so each y is a linear sequence map */
            gen_expr(&r, &b, ngg, 2);
            sb_puts(&b, rng_below(&r, 2) ? " + " : " - ");
            gen_expr(&r, &b, ngg, 2);
            sb_puts(&b, ";\n");
        }
        sb_printf(&b, "output y%d;\n", nout - 1);

        Diag *d = diag_new();
        RaspProgram *p = rasp_load_text("random.rasp", b.s, b.len, NULL, d);
        if (!p) {
            char *msg = diag_render(d);
            print_error("%s\n%s", b.s, msg);
            free(msg);
            diag_free(d);
            fail_msg("a random program did not check");
        }
        diag_free(d);
        Sweep sw;
        memset(&sw, 0, sizeof sw);
        sw.p = p;
        sweep_run(&sw);
        for (int i = 0; i < p->nsops; i++)
            if (p->sops[i].op == SOP_SEQMAP && p->sops[i].linear && has_impossible(p, &p->sops[i])) {
                tightened++;
                break;
            }
        programs++;
        sweep_free(&sw);
        rasp_free(p);
        sb_free(&b);
    }
    assert_int_equal(programs, 150);
    assert_true(tightened >= 30);   /* the rule did apply to many of them */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valueset_every_example_is_complete_on_all_short_inputs),
        cmocka_unit_test(test_valueset_pair_balance_equals_every_observed_value),
        cmocka_unit_test(test_valueset_pair_balance_is_tight_when_causal),
        cmocka_unit_test(test_valueset_pair_balance_sizes_at_long_max_len),
        cmocka_unit_test(test_valueset_shuffle_dyck2_balances_are_tight),
        cmocka_unit_test(test_valueset_one_selector_two_means_is_tight),
        cmocka_unit_test(test_valueset_identical_selectors_count_as_one),
        cmocka_unit_test(test_valueset_different_selectors_keep_the_product),
        cmocka_unit_test(test_valueset_chains_and_constants_are_tight),
        cmocka_unit_test(test_valueset_default_joins_when_nothing_may_be_selected),
        cmocka_unit_test(test_valueset_default_left_out_when_a_key_is_always_selected),
        cmocka_unit_test(test_valueset_none_operands_stay_complete),
        cmocka_unit_test(test_valueset_fractional_weights_are_complete),
        cmocka_unit_test(test_valueset_two_leaves_are_enumerated_jointly),
        cmocka_unit_test(test_valueset_reading_an_impossible_pair_is_an_internal_error),
        cmocka_unit_test(test_valueset_random_combinations_are_complete),
    };
    return cmocka_run_group_tests_name("valueset", tests, NULL, NULL);
}
