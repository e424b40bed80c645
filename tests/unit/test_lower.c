/* test_lower.c — the operation graph: which s-ops get dimensions, which are read in place or
 * fused, how selectors become literals, and the schedule into blocks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/front/frontend.h"
#include "compiler/back/lower.h"

static RaspProgram *load_text(const char *text)
{
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text("<test>", text, strlen(text), NULL, d);
    if (!p) diag_print(d, stderr);
    diag_free(d);
    assert_non_null(p);
    return p;
}

static LowerProgram *lower(const RaspProgram *p, int fuse)
{
    LowerOptions lo = {fuse};
    StrBuf err;
    sb_init(&err);
    LowerProgram *lp = lower_program(p, &lo, &err);
    if (!lp) fprintf(stderr, "lower: %s\n", err.s);
    sb_free(&err);
    assert_non_null(lp);
    return lp;
}

static int node_of(const LowerProgram *lp, const char *label)
{
    for (int i = 0; i < lp->nnodes; i++)
        if (!strcmp(lp->nodes[i].label, label)) return i;
    fail_msg("no node '%s'", label);
    return -1;
}

static const LowerOp *op_of(const LowerProgram *lp, const char *label)
{
    int n = node_of(lp, label);
    assert_true(lp->nodes[n].op >= 0);
    return &lp->ops[lp->nodes[n].op];
}

static const char *COUNTER =
    "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 10;\n"
    "is_a = tokens == \"a\";\nbin_idx = select(is_a, indices, ==);\n"
    "count_a = selector_width(bin_idx);\n"
    "out = aggregate(select(indices, indices, ==), count_a);\noutput out;\n";

/* ---- the schedule -------------------------------------------------------------------- */

static void test_counter_is_two_blocks_with_is_a_read_in_place(void **state)
{
    (void)state;
    RaspProgram *p = load_text(COUNTER);
    LowerProgram *lp = lower(p, 1);
    assert_int_equal(lp->nblocks, 2);
    assert_int_equal(lp->nodes[node_of(lp, "is_a")].rep, LREP_VIRTUAL);
    const LowerOp *sw = op_of(lp, "count_a");
    assert_int_equal(sw->kind, LOP_SELWIDTH);
    assert_int_equal(sw->attn_slot, 0);     /* block 0: head and decoder */
    assert_int_equal(sw->mlp_slot, 1);
    assert_int_equal(op_of(lp, "out")->attn_slot, 2);
    lower_free(lp);
    rasp_free(p);
}

/* Without fusion the Counter keeps is_a in the residual: Tracr's [mlp] [attn+mlp] [attn]. */
static void test_counter_without_fusion_is_tracrs_three_blocks(void **state)
{
    (void)state;
    RaspProgram *p = load_text(COUNTER);
    LowerProgram *lp = lower(p, 0);
    assert_int_equal(lp->nblocks, 3);
    const LowerOp *is_a = op_of(lp, "is_a");
    assert_int_equal(is_a->kind, LOP_MLP_CAT);
    assert_int_equal(is_a->mlp_slot, 1);
    assert_int_equal(op_of(lp, "count_a")->attn_slot, 2);
    assert_int_equal(op_of(lp, "out")->attn_slot, 4);
    lower_free(lp);
    rasp_free(p);
}

static void test_independent_heads_share_a_block(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b};\nmax_len 5;\n"
                               "x = numerical(tokens == \"a\");\ny = numerical(tokens == \"b\");\n"
                               "fx = aggregate(select(indices, indices, <=), x);\n"
                               "fy = aggregate(select(indices, indices, <=), y);\n"
                               "d = fx - fy;\noutput d;\n");
    LowerProgram *lp = lower(p, 1);
    assert_int_equal(op_of(lp, "fx")->attn_slot, 0);
    assert_int_equal(op_of(lp, "fy")->attn_slot, 0);
    /* the difference is read in place by the unembed: nothing else to compute */
    assert_int_equal(lp->nodes[node_of(lp, "d")].rep, LREP_VIRTUAL);
    assert_int_equal(lp->nblocks, 1);
    lower_free(lp);
    rasp_free(p);
}

static void test_independent_mlps_run_side_by_side(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b};\nmax_len 5;\n"
                               "u = sequence_map(lambda t, i: t + str(i), tokens, indices);\n"
                               "v = sequence_map(lambda t, i: i > 2 and t == \"a\", tokens, indices);\n"
                               "w = sequence_map(lambda x, y: x + str(y), u, v);\noutput w;\n");
    LowerProgram *lp = lower(p, 0);
    assert_int_equal(op_of(lp, "u")->mlp_slot, 1);
    assert_int_equal(op_of(lp, "v")->mlp_slot, 1);
    assert_int_equal(op_of(lp, "w")->mlp_slot, 3);
    assert_int_equal(lp->nblocks, 2);
    lower_free(lp);
    rasp_free(p);
}

static void test_an_output_read_from_the_embedding_needs_no_block(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b};\nmax_len 4;\noutput tokens;\n");
    LowerProgram *lp = lower(p, 1);
    assert_int_equal(lp->nblocks, 0);
    assert_int_equal(lp->nops, 0);
    lower_free(lp);
    rasp_free(p);
}

/* ---- fusion ------------------------------------------------------------------------- */

static void test_maps_of_one_categorical_sop_are_read_in_place(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b, c};\nmax_len 5;\n"
                               "is_a = tokens == \"a\";\nnot_a = not is_a;\n"
                               "both = sequence_map(lambda x, y: x or y, is_a, not_a);\n"
                               "w = selector_width(select(both, tokens, ==));\noutput w;\n");
    LowerProgram *lp = lower(p, 1);
    int n = node_of(lp, "not_a");
    assert_int_equal(lp->nodes[n].rep, LREP_VIRTUAL);
    assert_int_equal(lp->nodes[n].virt, LVIRT_CATFN);
    assert_int_equal(lp->nodes[n].base, node_of(lp, "tokens"));
    /* not_a is "not (tokens == a)": true for b and c */
    const LowerNode *nn = &lp->nodes[n];
    for (int v = 0; v < 3; v++) {
        int32_t j = nn->ftab[v];
        assert_true(j >= 0);
        assert_int_equal(nn->vals[j].u.i, v != 0);
    }
    /* a function of two s-ops of one base is one too */
    assert_int_equal(lp->nodes[node_of(lp, "both")].rep, LREP_VIRTUAL);
    lower_free(lp);
    rasp_free(p);
}

/* Decision 7: a map whose only use is a map is folded into that map's MLP. */
static void test_a_map_of_an_mlp_output_is_folded_into_it(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b};\nmax_len 5;\n"
                               "opp = length - indices;\nopp1 = opp - 1;\n"
                               "r = aggregate(select(indices, opp1, ==), tokens);\noutput r;\n");
    LowerProgram *lp = lower(p, 1);
    int opp = node_of(lp, "opp"), opp1 = node_of(lp, "opp1");
    assert_int_equal(lp->nodes[opp].rep, LREP_FUSED);
    assert_int_equal(lp->nodes[opp1].rep, LREP_MAT);
    const LowerOp *op = &lp->ops[lp->nodes[opp1].op];
    assert_int_equal(op->kind, LOP_MLP_CAT);
    assert_int_equal(op->nfused, 1);
    assert_int_equal(op->fused[0], lp->nodes[opp].sop);
    assert_int_equal(lp->nblocks, 3);      /* length; opp1; the reversing head */
    lower_free(lp);
    LowerProgram *nf = lower(p, 0);         /* --no-fuse keeps opp */
    assert_int_equal(nf->nodes[opp].rep, LREP_MAT);
    assert_int_equal(nf->nodes[opp1].rep, LREP_MAT);
    lower_free(nf);
    rasp_free(p);
}

/* `length - indices` depends only on the difference: at large max_len one discretiser over the
 * linear form length - indices replaces the unit per (length, index) pair. */
static void test_a_difference_of_two_sops_is_discretised_when_much_narrower(void **state)
{
    (void)state;
    static const char *src = "vocab {a, b};\nmax_len %d;\nopp = length - indices;\n"
                             "r = aggregate(select(indices, opp, ==), tokens);\noutput r;\n";
    char text[256];
    snprintf(text, sizeof text, src, 64);
    RaspProgram *p = load_text(text);
    LowerProgram *lp = lower(p, 1);
    const LowerOp *op = op_of(lp, "opp");
    assert_int_equal(op->kind, LOP_MLP_DISC);
    const LowerNode *sum = &lp->nodes[op->in[0]];
    assert_int_equal(sum->rep, LREP_VIRTUAL);
    assert_int_equal(sum->virt, LVIRT_LIN);
    assert_true(sum->lin_coef[0] == 1 && sum->lin_coef[1] == -1);
    lower_free(lp);
    rasp_free(p);
    snprintf(text, sizeof text, src, 10);     /* small: the pairwise MLP has fewer nonzeros */
    p = load_text(text);
    lp = lower(p, 1);
    assert_int_equal(op_of(lp, "opp")->kind, LOP_MLP_CAT);
    lower_free(lp);
    rasp_free(p);
}

/* A sequence map whose operand is another single-use categorical MLP becomes one n-ary MLP
 * when that is no wider. */
static void test_nested_sequence_maps_become_one_mlp(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b};\nmax_len 4;\n"
                               "x = numerical(tokens == \"a\");\n"
                               "f = aggregate(select(indices, indices, <=), x);\n"
                               "g = aggregate(select(indices, indices, ==), tokens);\n"
                               "h = aggregate(select(indices, indices, >=), tokens);\n"
                               "gh = sequence_map(lambda u, v: u == v, g, h);\n"
                               "out = sequence_map(lambda u, i: u and i > 1, gh, indices);\noutput out;\n");
    LowerProgram *lp = lower(p, 1);
    assert_int_equal(lp->nodes[node_of(lp, "gh")].rep, LREP_FUSED);
    const LowerOp *op = op_of(lp, "out");
    assert_int_equal(op->nin, 3);          /* g, h, indices */
    lower_free(lp);
    rasp_free(p);
}

static void test_numerical_linear_maps_are_read_in_place(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b};\nmax_len 5;\n"
                               "x = numerical(tokens == \"a\");\n"
                               "f = aggregate(select(indices, indices, <=), x);\n"
                               "g = aggregate(select(indices, indices, >=), x);\n"
                               "d = f - g;\ne = 2 * d;\nneg = e < 0;\noutput neg;\n");
    LowerProgram *lp = lower(p, 1);
    const LowerNode *e = &lp->nodes[node_of(lp, "e")];
    assert_int_equal(e->rep, LREP_VIRTUAL);
    assert_int_equal(e->virt, LVIRT_LIN);
    const LowerOp *op = op_of(lp, "neg");
    assert_int_equal(op->kind, LOP_MLP_DISC);
    assert_int_equal(op->in[0], node_of(lp, "e"));
    assert_int_equal(op->mlp_slot, 1);
    lower_free(lp);
    rasp_free(p);
}

/* ---- selectors ------------------------------------------------------------------------ */

static void test_and_of_selects_is_a_sum_of_literals(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b, c};\nmax_len 5;\n"
                               "same = select(tokens, tokens, ==);\nearlier = select(indices, indices, <);\n"
                               "w = selector_width(same and earlier);\noutput w;\n");
    LowerProgram *lp = lower(p, 1);
    const LowerOp *op = op_of(lp, "w");
    assert_int_equal(op->nlits, 2);
    assert_int_equal(lp->nnodes, p->nsops);    /* no tuple needed */
    lower_free(lp);
    rasp_free(p);
}

static void test_not_of_a_select_negates_its_table(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b, c};\nmax_len 5;\n"
                               "same = select(tokens, tokens, ==);\nw = selector_width(not same);\noutput w;\n");
    LowerProgram *lp = lower(p, 1);
    const LowerOp *op = op_of(lp, "w");
    assert_int_equal(op->nlits, 1);
    for (int k = 0; k < 3; k++)
        for (int q = 0; q < 3; q++) assert_int_equal(op->lits[0].table[k * 3 + q], k != q);
    lower_free(lp);
    rasp_free(p);
}

/* or over the same keys and queries: one combined table, no tuple. */
static void test_or_over_the_same_sops_combines_tables(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b, c};\nmax_len 5;\n"
                               "w = selector_width(select(tokens, tokens, <) or select(tokens, tokens, ==));\n"
                               "output w;\n");
    LowerProgram *lp = lower(p, 1);
    const LowerOp *op = op_of(lp, "w");
    assert_int_equal(op->nlits, 1);
    assert_int_equal(lp->nnodes, p->nsops);
    for (int k = 0; k < 3; k++)
        for (int q = 0; q < 3; q++) assert_int_equal(op->lits[0].table[k * 3 + q], k <= q);
    lower_free(lp);
    rasp_free(p);
}

/* or over different s-ops: the keys and the queries become tuples (classes of equal rows /
 * columns of the combined table), each made by a categorical MLP before the head. */
static void test_or_over_different_sops_reads_tuples(void **state)
{
    (void)state;
    RaspProgram *p = load_text("vocab {a, b, c};\nmax_len 5;\n"
                               "same = select(tokens, tokens, ==);\nearlier = select(indices, indices, <);\n"
                               "w = selector_width(same or earlier);\noutput w;\n");
    LowerProgram *lp = lower(p, 1);
    const LowerOp *op = op_of(lp, "w");
    assert_int_equal(op->nlits, 1);
    int k = op->lits[0].knode, q = op->lits[0].qnode;
    assert_true(k >= p->nsops && q >= p->nsops);
    assert_int_equal(lp->nodes[k].rep, LREP_MAT);
    assert_int_equal(lp->ops[lp->nodes[k].op].kind, LOP_MLP_CAT);
    assert_int_equal(lp->ops[lp->nodes[k].op].mlp_slot, 1);
    assert_int_equal(op->attn_slot, 2);
    assert_non_null(strstr(lp->nodes[k].label, "@keys"));
    assert_non_null(strstr(lp->nodes[q].label, "@queries"));
    lower_free(lp);
    rasp_free(p);
}

/* ---- the categorical MLP plan ------------------------------------------------------- */

static void test_plan_groups_values_the_table_cannot_tell_apart(void **state)
{
    (void)state;
    /* f(x, y) over 4 x 3 values; x = 1, 2, 3 behave alike */
    int sizes[2] = {4, 3};
    int32_t t[12] = {0, 1, 0,  2, 2, 1,  2, 2, 1,  2, 2, 1};
    LowerCatPlan pl;
    assert_int_equal(lower_plan(sizes, 2, t, NULL, 3, &pl, NULL), 0);
    assert_int_equal(pl.nclass[0], 2);
    assert_int_equal(pl.nclass[1], 3);
    assert_int_equal(pl.cls[0][1], pl.cls[0][3]);
    /* rows by x-class: {0,1,0} needs 2 units, {2,2,1} needs 2: 4 units */
    assert_int_equal(pl.units, 4);
    lower_plan_free(&pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_is_two_blocks_with_is_a_read_in_place),
        cmocka_unit_test(test_counter_without_fusion_is_tracrs_three_blocks),
        cmocka_unit_test(test_independent_heads_share_a_block),
        cmocka_unit_test(test_independent_mlps_run_side_by_side),
        cmocka_unit_test(test_an_output_read_from_the_embedding_needs_no_block),
        cmocka_unit_test(test_maps_of_one_categorical_sop_are_read_in_place),
        cmocka_unit_test(test_a_map_of_an_mlp_output_is_folded_into_it),
        cmocka_unit_test(test_a_difference_of_two_sops_is_discretised_when_much_narrower),
        cmocka_unit_test(test_nested_sequence_maps_become_one_mlp),
        cmocka_unit_test(test_numerical_linear_maps_are_read_in_place),
        cmocka_unit_test(test_and_of_selects_is_a_sum_of_literals),
        cmocka_unit_test(test_not_of_a_select_negates_its_table),
        cmocka_unit_test(test_or_over_the_same_sops_combines_tables),
        cmocka_unit_test(test_or_over_different_sops_reads_tuples),
        cmocka_unit_test(test_plan_groups_values_the_table_cannot_tell_apart),
    };
    return cmocka_run_group_tests_name("lower", tests, NULL, NULL);
}
