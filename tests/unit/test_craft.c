/* test_craft.c — each construction's weights evaluated directly (double precision, residual
 * vectors built from s-op values): categorical MLPs, discretisers, the selector-width decoder,
 * two-sided numerical maps, and the heads' score tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/back/assemble.h"
#include "compiler/back/craft.h"
#include "compiler/front/frontend.h"

typedef struct {
    RaspProgram *p;
    LowerProgram *lp;
    CraftLayout lay;
    CraftResult cr;
} Built;

static void build(Built *b, const char *text, int fuse)
{
    Diag *d = diag_new();
    b->p = rasp_load_text("<test>", text, strlen(text), NULL, d);
    if (!b->p) diag_print(d, stderr);
    diag_free(d);
    assert_non_null(b->p);
    LowerOptions lo = {fuse};
    StrBuf err;
    sb_init(&err);
    b->lp = lower_program(b->p, &lo, &err);
    if (!b->lp) fprintf(stderr, "%s\n", err.s);
    assert_non_null(b->lp);
    assert_int_equal(asm_layout(b->lp, &b->lay, &err), 0);
    CraftPolicy pol = CRAFT_POLICY_DEFAULT;
    assert_int_equal(craft_all(b->lp, &b->lay, &pol, &b->cr, &err), 0);
    sb_free(&err);
}

static void unbuild(Built *b)
{
    craft_free(&b->cr);
    asm_layout_free(&b->lay);
    lower_free(b->lp);
    rasp_free(b->p);
}

static int node_of(const Built *b, const char *label)
{
    for (int i = 0; i < b->lp->nnodes; i++)
        if (!strcmp(b->lp->nodes[i].label, label)) return i;
    fail_msg("no node '%s'", label);
    return -1;
}

static const CraftOp *cop_of(const Built *b, const char *label)
{
    int n = node_of(b, label);
    assert_true(b->lp->nodes[n].op >= 0);
    return &b->cr.ops[b->lp->nodes[n].op];
}

/* A real position's residual: one = 1, nothing else yet. */
static double *resid(const Built *b)
{
    double *x = calloc((size_t)b->lay.D, sizeof(double));
    x[b->lay.one] = 1.0;
    return x;
}

/* Put value j of a MAT/EMBED categorical node into x (j < 0: no value, the zero vector). */
static void put_cat(const Built *b, double *x, int node, int j)
{
    if (j >= 0) x[b->lay.node_dim[node] + j] = 1.0;
}

/* out[D] = MLP(x), without the BOS gate (x is a real position) */
static void mlp(const CraftOp *co, int D, const double *x, double *out)
{
    memset(out, 0, sizeof(double) * (size_t)D);
    for (int u = 0; u < co->units; u++) {
        double h = 0;
        for (int r = 0; r < D; r++) h += x[r] * co->win[(size_t)r * co->units + u];
        if (h <= 0) continue;
        for (int r = 0; r < D; r++) out[r] += h * co->wout[(size_t)u * D + r];
    }
}

static double dot_q_k(const CraftOp *co, int D, const double *xq, const double *xk)
{
    double s = 0;
    for (int k = 0; k < co->dqk; k++) {
        double q = 0, kk = 0;
        for (int r = 0; r < D; r++) {
            q += xq[r] * co->wq[(size_t)r * co->dqk + k];
            kk += xk[r] * co->wk[(size_t)r * co->dqk + k];
        }
        s += q * kk;
    }
    return s;
}

/* ---- categorical MLP -------------------------------------------------------------------- */

static const char *TWO_AGGS =
    "vocab {a, b, c};\nmax_len 4;\n"
    "g = aggregate(select(indices, indices, lambda k, q: k == q - 1), tokens);\n"
    "h = aggregate(select(indices, indices, lambda k, q: k == q + 1), tokens);\n"
    "f = sequence_map(lambda x, y: x + y if x != y else \"same\", g, h);\noutput f;\n";

static void test_categorical_mlp_is_exact_on_every_input_pair(void **state)
{
    (void)state;
    Built b;
    build(&b, TWO_AGGS, 1);
    int g = node_of(&b, "g"), h = node_of(&b, "h"), f = node_of(&b, "f");
    const CraftOp *co = cop_of(&b, "f");
    const RaspSop *fs = &b.p->sops[b.lp->nodes[f].sop];
    int ng = b.lp->nodes[g].nvals, nh = b.lp->nodes[h].nvals, D = b.lay.D;
    double *out = malloc(sizeof(double) * (size_t)D);
    for (int i = -1; i < ng; i++)
        for (int j = -1; j < nh; j++) {
            double *x = resid(&b);
            put_cat(&b, x, g, i);
            put_cat(&b, x, h, j);
            mlp(co, D, x, out);
            int32_t want = (i < 0 || j < 0) ? RASP_NONE : fs->table[i * nh + j];
            for (int z = 0; z < fs->nvals; z++)
                assert_true(out[b.lay.node_dim[f] + z] == (z == want ? 1.0 : 0.0));
            free(x);
        }
    free(out);
    unbuild(&b);
}

/* A unit fires at 1 and otherwise sits at <= -1: noise on the inputs below 1/4 never makes a
 * wrong output dimension nonzero. */
static void test_categorical_mlp_cuts_input_noise(void **state)
{
    (void)state;
    Built b;
    build(&b, TWO_AGGS, 1);
    int g = node_of(&b, "g"), h = node_of(&b, "h"), f = node_of(&b, "f");
    const CraftOp *co = cop_of(&b, "f");
    const RaspSop *fs = &b.p->sops[b.lp->nodes[f].sop];
    int ng = b.lp->nodes[g].nvals, nh = b.lp->nodes[h].nvals, D = b.lay.D;
    double *out = malloc(sizeof(double) * (size_t)D);
    for (int i = 0; i < ng; i++)
        for (int j = 0; j < nh; j++) {
            double *x = resid(&b);
            for (int k = 0; k < ng; k++) x[b.lay.node_dim[g] + k] = k == i ? 0.9 : 0.1 / ng;
            for (int k = 0; k < nh; k++) x[b.lay.node_dim[h] + k] = k == j ? 1.1 : -0.1 / nh;
            mlp(co, D, x, out);
            int32_t want = fs->table[i * nh + j];
            for (int z = 0; z < fs->nvals; z++) {
                double v = out[b.lay.node_dim[f] + z];
                if (z == want) assert_true(fabs(v - 1.0) < 0.5);
                else assert_true(v == 0.0);
            }
            free(x);
        }
    free(out);
    unbuild(&b);
}

/* ---- discretiser ------------------------------------------------------------------------ */

/* `e < 0` over a numerical s-op with many values changes once: two ramp units (plus the
 * constant), where Tracr spends 2n - 1. Exact at every value and within a quarter gap. */
static void test_discretiser_spends_units_only_where_the_function_changes(void **state)
{
    (void)state;
    Built b;
    build(&b, "vocab {a, b};\nmax_len 6;\nx = numerical(tokens == \"a\");\n"
              "f = aggregate(select(indices, indices, <=), x);\n"
              "g = aggregate(select(indices, indices, >=), x);\n"
              "e = f - g;\nneg = e < 0;\noutput neg;\n", 1);
    const CraftOp *co = cop_of(&b, "neg");
    assert_int_equal(co->units, 3);
    int f = node_of(&b, "f"), g = node_of(&b, "g"), e = node_of(&b, "e"), neg = node_of(&b, "neg");
    const LowerNode *en = &b.lp->nodes[e];
    assert_true(en->nvals > 20);
    int D = b.lay.D;
    double *out = malloc(sizeof(double) * (size_t)D);
    for (int j = 0; j < en->nvals; j++) {
        double v = lower_num(en, j);
        for (int s = -1; s <= 1; s++) {
            double dv = s * 0.9 * co->tol;
            double *x = resid(&b);
            x[b.lay.node_dim[f]] = v + dv;     /* e = f - g */
            x[b.lay.node_dim[g]] = 0;
            mlp(co, D, x, out);
            int want = v < 0;
            const LowerNode *nn = &b.lp->nodes[neg];
            for (int z = 0; z < nn->nvals; z++)
                assert_true(fabs(out[b.lay.node_dim[neg] + z] - (nn->vals[z].u.i == want ? 1.0 : 0.0)) < 1e-9);
            free(x);
        }
    }
    /* the ramp is a quarter gap from the values on each side */
    double gap = INFINITY;
    for (int j = 1; j < en->nvals; j++)
        if (lower_num(en, j - 1) < 0 && lower_num(en, j) >= 0) gap = lower_num(en, j) - lower_num(en, j - 1);
    assert_true(fabs(co->tol - gap / 4) < 1e-12);
    free(out);
    unbuild(&b);
}

/* Negative values of a categorical -> numerical map are exact (Tracr clips them to 0). */
static void test_categorical_to_numerical_map_is_two_sided(void **state)
{
    (void)state;
    Built b;
    build(&b, "vocab {1, 2, 3, 4};\nmax_len 3;\nv = numerical(map(lambda x: 2 - x, tokens));\n"
              "m = aggregate(select(indices, indices, ==), v);\noutput m;\n", 0);
    const CraftOp *co = cop_of(&b, "v");
    assert_int_equal(co->units, 2);
    int v = node_of(&b, "v"), tok = node_of(&b, "tokens");
    double *out = malloc(sizeof(double) * (size_t)b.lay.D);
    for (int t = 0; t < 4; t++) {
        double *x = resid(&b);
        put_cat(&b, x, tok, t);
        mlp(co, b.lay.D, x, out);
        assert_true(out[b.lay.node_dim[v]] == 2.0 - (t + 1));
        free(x);
    }
    free(out);
    unbuild(&b);
}

/* ---- selector width ------------------------------------------------------------------- */

/* The decoder turns 1/(w+1) into w for every w up to max_len 256, exactly, anywhere inside
 * its tolerance. */
static void test_selector_width_decoder_is_exact_for_every_width_to_256(void **state)
{
    (void)state;
    Built b;
    build(&b, "vocab {a, b};\nmax_len 256;\nn = selector_width(select(tokens, tokens, true));\n"
              "output n;\n", 1);
    int n = node_of(&b, "n");
    const LowerNode *nn = &b.lp->nodes[n];
    const CraftOp *co = cop_of(&b, "n");
    int scratch = b.lay.scratch[nn->op], D = b.lay.D;
    assert_true(co->margin > 1);
    double *out = malloc(sizeof(double) * (size_t)D);
    for (int j = 0; j < nn->nvals; j++) {
        int w = (int)lower_num(nn, j);
        double xw = 1.0 / (w + 1);
        /* the relative error the head may leave, and twice the float32 resolution */
        double rel = co->in_err / (xw > 0 ? xw : 1);
        for (int s = -1; s <= 1; s++) {
            double *x = resid(&b);
            x[scratch] = xw * (1 + s * (fmin(rel, 1e-6) + 2.0 / 16777216.0));
            mlp(co, D, x, out);
            for (int z = 0; z < nn->nvals; z++)
                assert_true(fabs(out[b.lay.node_dim[n] + z] - (z == j ? 1.0 : 0.0)) < 1e-9);
            free(x);
        }
    }
    free(out);
    unbuild(&b);
}

/* ---- heads -------------------------------------------------------------------------------- */

/* A selected key scores c, an unselected one at most 0, the BOS key c/2 for every real query;
 * the BOS query prefers its own key by at least 40. */
static void test_head_scores_separate_selected_bos_and_the_rest(void **state)
{
    (void)state;
    Built b;
    build(&b, "vocab {a, b, c};\nmax_len 4;\n"
              "s = select(tokens, indices, lambda k, q: (k == \"a\") == (q % 2 == 0));\n"
              "x = aggregate(s, tokens);\noutput x;\n", 1);
    const CraftOp *co = cop_of(&b, "x");
    const RaspSel *sel = &b.p->sels[b.lp->ops[b.lp->nodes[node_of(&b, "x")].op].sel];
    int tok = node_of(&b, "tokens"), idx = node_of(&b, "indices"), D = b.lay.D;
    double c = co->c;
    assert_true(c >= 2);
    double *bos = calloc((size_t)D, sizeof(double));
    bos[b.lay.one] = bos[b.lay.bos] = 1;
    for (int q = 0; q < 4; q++) {
        double *xq = resid(&b);
        put_cat(&b, xq, idx, q);
        for (int k = 0; k < 3; k++) {
            double *xk = resid(&b);
            put_cat(&b, xk, tok, k);
            double sc = dot_q_k(co, D, xq, xk);
            if (sel->pred[k * 4 + q]) assert_true(fabs(sc - c) < 1e-9);
            else assert_true(sc <= 1e-9);
            free(xk);
        }
        assert_true(fabs(dot_q_k(co, D, xq, bos) - c / 2) < 1e-9);
        free(xq);
    }
    double *xk = resid(&b);
    put_cat(&b, xk, tok, 0);
    assert_true(dot_q_k(co, D, bos, bos) - dot_q_k(co, D, bos, xk) >= 40 - 1e-9);
    free(xk);
    free(bos);
    unbuild(&b);
}

/* and / not: a key selected by every literal scores c, any other at most 0. */
static void test_and_not_scores_are_additive(void **state)
{
    (void)state;
    Built b;
    build(&b, "vocab {a, b, c};\nmax_len 4;\n"
              "same = select(tokens, tokens, ==);\nearlier = select(indices, indices, <);\n"
              "w = selector_width(not same and earlier);\noutput w;\n", 1);
    const CraftOp *co = cop_of(&b, "w");
    int tok = node_of(&b, "tokens"), idx = node_of(&b, "indices"), D = b.lay.D;
    for (int tq = 0; tq < 3; tq++)
        for (int iq = 0; iq < 4; iq++)
            for (int tk = 0; tk < 3; tk++)
                for (int ik = 0; ik < 4; ik++) {
                    double *xq = resid(&b), *xk = resid(&b);
                    put_cat(&b, xq, tok, tq);
                    put_cat(&b, xq, idx, iq);
                    put_cat(&b, xk, tok, tk);
                    put_cat(&b, xk, idx, ik);
                    double sc = dot_q_k(co, D, xq, xk);
                    if (tk != tq && ik < iq) assert_true(fabs(sc - co->c) < 1e-9);
                    else assert_true(sc <= 1e-9);
                    free(xq);
                    free(xk);
                }
    unbuild(&b);
}

/* The QK part is factored through the smaller of its distinct rows and columns, and
 * multiples merge: `true` over tokens needs 2 dimensions (Tracr: 6). */
static void test_head_size_is_the_smaller_distinct_side(void **state)
{
    (void)state;
    Built b;
    build(&b, "vocab {a, b, c, d};\nmax_len 5;\nn = selector_width(select(tokens, tokens, true));\n"
              "output n;\n", 1);
    assert_true(cop_of(&b, "n")->dqk <= 2);
    assert_int_equal(cop_of(&b, "n")->dv, 1);
    unbuild(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_categorical_mlp_is_exact_on_every_input_pair),
        cmocka_unit_test(test_categorical_mlp_cuts_input_noise),
        cmocka_unit_test(test_discretiser_spends_units_only_where_the_function_changes),
        cmocka_unit_test(test_categorical_to_numerical_map_is_two_sided),
        cmocka_unit_test(test_selector_width_decoder_is_exact_for_every_width_to_256),
        cmocka_unit_test(test_head_scores_separate_selected_bos_and_the_rest),
        cmocka_unit_test(test_and_not_scores_are_additive),
        cmocka_unit_test(test_head_size_is_the_smaller_distinct_side),
    };
    return cmocka_run_group_tests_name("craft", tests, NULL, NULL);
}
