/* test_interp.c — the reference interpreter on RaspPrograms built by hand (no front end):
 * tables and None, the select no-value rule, composite selectors, the causal mask,
 * aggregates, selector widths, what all=0 evaluates, and reuse of one Interp. A naive
 * matrix-based evaluator written here from the spec checks the fused one on random inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/util.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"

/* ---- a tiny program builder --------------------------------------------------------- */

#define CAP 64

static RaspProgram *prog_new(int max_len, int nvocab, const char *const *vocab)
{
    RaspProgram *p = xcalloc(1, sizeof *p);
    arena_init(&p->arena);
    p->path = "test";
    p->max_len = max_len;
    p->nvocab = nvocab;
    p->vocab = arena_alloc(&p->arena, sizeof(Value) * (size_t)nvocab);
    for (int i = 0; i < nvocab; i++) p->vocab[i] = val_str(vocab[i]);
    p->sops = arena_alloc(&p->arena, sizeof(RaspSop) * CAP);
    p->sels = arena_alloc(&p->arena, sizeof(RaspSel) * CAP);
    p->output = -1;
    return p;
}

static void prog_free(RaspProgram *p)
{
    arena_free(&p->arena);
    free(p);
}

static RaspSop *new_sop(RaspProgram *p, SopOp op, const char *label)
{
    assert_true(p->nsops < CAP);
    RaspSop *s = &p->sops[p->nsops];
    memset(s, 0, sizeof *s);
    s->id = p->nsops++;
    s->op = op;
    s->enc = ENC_CATEGORICAL;
    s->label = label;
    s->named = 1;
    s->span = SPAN_NONE;
    s->a = s->b = s->sel = -1;
    s->deflt = RASP_NONE;
    s->used = 0;
    return s;
}

static Value *ints(RaspProgram *p, int lo, int hi)
{
    Value *v = arena_alloc(&p->arena, sizeof(Value) * (size_t)(hi - lo + 1));
    for (int i = lo; i <= hi; i++) v[i - lo] = val_int(i);
    return v;
}

static Value *copy_vals(RaspProgram *p, const Value *vals, int n)
{
    Value *v = arena_alloc(&p->arena, sizeof(Value) * (size_t)(n > 0 ? n : 1));
    memcpy(v, vals, sizeof(Value) * (size_t)n);
    return v;
}

static int32_t *copy_table(RaspProgram *p, const int32_t *t, int n)
{
    int32_t *c = arena_alloc(&p->arena, sizeof(int32_t) * (size_t)n);
    memcpy(c, t, sizeof(int32_t) * (size_t)n);
    return c;
}

static int add_tokens(RaspProgram *p)
{
    RaspSop *s = new_sop(p, SOP_TOKENS, "tokens");
    s->nvals = p->nvocab;
    s->vals = p->vocab;
    return s->id;
}

static int add_indices(RaspProgram *p)
{
    RaspSop *s = new_sop(p, SOP_INDICES, "indices");
    s->nvals = p->max_len;
    s->vals = ints(p, 0, p->max_len - 1);
    return s->id;
}

static int add_const(RaspProgram *p, Value v)
{
    RaspSop *s = new_sop(p, SOP_CONST, "const");
    s->nvals = 1;
    s->vals = copy_vals(p, &v, 1);
    return s->id;
}

static int add_map(RaspProgram *p, const char *label, int a, const Value *vals, int nvals,
                   const int32_t *table)
{
    RaspSop *s = new_sop(p, SOP_MAP, label);
    s->a = a;
    s->nvals = nvals;
    s->vals = copy_vals(p, vals, nvals);
    s->table = copy_table(p, table, p->sops[a].nvals);
    return s->id;
}

static int add_seqmap(RaspProgram *p, const char *label, int a, int b, const Value *vals,
                      int nvals, const int32_t *table)
{
    RaspSop *s = new_sop(p, SOP_SEQMAP, label);
    s->a = a;
    s->b = b;
    s->nvals = nvals;
    s->vals = copy_vals(p, vals, nvals);
    s->table = copy_table(p, table, p->sops[a].nvals * p->sops[b].nvals);
    return s->id;
}

static double num(Value v)
{
    return v.kind == VAL_FLOAT ? v.u.f : (double)v.u.i;
}

/* pred(key, query) over the two s-ops' value sets; numbers only, or string equality. */
static int cmp_vals(AstOp op, Value k, Value q)
{
    double a, b;
    if (k.kind == VAL_STR && q.kind == VAL_STR) {
        a = strcmp(k.u.s, q.u.s);
        b = 0;
    } else if (k.kind == VAL_STR || q.kind == VAL_STR) {
        return op == OP_NE || op == OP_NONE;
    } else {
        a = num(k);
        b = num(q);
    }
    switch (op) {
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    default: return 1;  /* OP_NONE: `true` */
    }
}

static RaspSel *new_sel(RaspProgram *p, SelOp op, const char *label)
{
    assert_true(p->nsels < CAP);
    RaspSel *l = &p->sels[p->nsels];
    memset(l, 0, sizeof *l);
    l->id = p->nsels++;
    l->op = op;
    l->label = label;
    l->span = SPAN_NONE;
    l->keys = l->queries = l->a = l->b = -1;
    return l;
}

static int add_select(RaspProgram *p, int keys, int queries, AstOp op)
{
    RaspSel *l = new_sel(p, SEL_SELECT, "select");
    l->keys = keys;
    l->queries = queries;
    l->cmp = op;
    const RaspSop *k = &p->sops[keys], *q = &p->sops[queries];
    l->pred = arena_alloc(&p->arena, (size_t)k->nvals * (size_t)q->nvals);
    for (int i = 0; i < k->nvals; i++)
        for (int j = 0; j < q->nvals; j++)
            l->pred[i * q->nvals + j] = (uint8_t)cmp_vals(op, k->vals[i], q->vals[j]);
    return l->id;
}

static int add_selop(RaspProgram *p, SelOp op, int a, int b)
{
    RaspSel *l = new_sel(p, op, op == SEL_AND ? "and" : op == SEL_OR ? "or" : "not");
    l->a = a;
    l->b = b;
    return l->id;
}

static int add_aggregate(RaspProgram *p, const char *label, int sel, int a, Encoding enc,
                         const Value *vals, int nvals, int deflt)
{
    RaspSop *s = new_sop(p, SOP_AGGREGATE, label);
    s->sel = sel;
    s->a = a;
    s->enc = enc;
    s->nvals = nvals;
    s->vals = copy_vals(p, vals, nvals);
    s->deflt = deflt;
    return s->id;
}

/* Categorical aggregate whose value set is its operand's (as sema builds them). */
static int add_cat_aggregate(RaspProgram *p, const char *label, int sel, int a, int deflt)
{
    return add_aggregate(p, label, sel, a, ENC_CATEGORICAL, p->sops[a].vals, p->sops[a].nvals,
                         deflt);
}

static int add_selwidth(RaspProgram *p, const char *label, int sel, int lo)
{
    RaspSop *s = new_sop(p, SOP_SELWIDTH, label);
    s->sel = sel;
    s->nvals = p->max_len - lo + 1;
    s->vals = ints(p, lo, p->max_len);
    return s->id;
}

static void set_output(RaspProgram *p, int out)
{
    p->output = out;
    /* mark used from the output, as sema does */
    for (int i = 0; i < p->nsops; i++) p->sops[i].used = 0;
    for (int i = 0; i < p->nsels; i++) p->sels[i].used = 0;
    p->sops[out].used = 1;
    for (int i = p->nsops - 1; i >= 0; i--) {
        RaspSop *s = &p->sops[i];
        if (!s->used) continue;
        if (s->a >= 0) p->sops[s->a].used = 1;
        if (s->b >= 0) p->sops[s->b].used = 1;
        if (s->sel >= 0) {
            /* walk the selector tree with an explicit stack */
            int stack[CAP], sp = 0;
            stack[sp++] = s->sel;
            while (sp) {
                RaspSel *l = &p->sels[stack[--sp]];
                l->used = 1;
                if (l->op == SEL_SELECT) {
                    p->sops[l->keys].used = 1;
                    p->sops[l->queries].used = 1;
                } else {
                    stack[sp++] = l->a;
                    if (l->op != SEL_NOT) stack[sp++] = l->b;
                }
            }
        }
    }
}

/* Run and compare the output-or-given s-op to expected value indices (-1 = None). */
static void expect_vals(const Interp *it, int sop, const int32_t *want, int n)
{
    const int32_t *got = interp_values(it, sop);
    assert_non_null(got);
    for (int i = 0; i < n; i++) {
        if (got[i] != want[i])
            print_error("s-op %d position %d: got %d, want %d\n", sop, i, (int)got[i],
                        (int)want[i]);
        assert_int_equal(got[i], want[i]);
    }
}

static void run_ok(Interp *it, const int32_t *toks, int n)
{
    int rc = interp_eval(it, toks, n);
    if (rc) print_error("interp_eval: %s\n", interp_error(it));
    assert_int_equal(rc, 0);
    assert_string_equal(interp_error(it), "");
}

static const char *const ABCD[] = {"a", "b", "c", "d"};

/* ---- tests --------------------------------------------------------------------------- */

static void test_interp_map_and_seqmap_tables_propagate_none(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(5, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    /* m: a->10, b->20, c->None, d->10 */
    Value mv[] = {val_int(10), val_int(20)};
    int32_t mt[] = {0, 1, RASP_NONE, 0};
    int m = add_map(p, "m", tok, mv, 2, mt);
    /* sm = m + index, value set {10..24}; table entry (10, 3) is None on purpose */
    Value smv[15];
    for (int i = 0; i < 15; i++) smv[i] = val_int(10 + i);
    int32_t smt[2 * 5];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 5; b++) smt[a * 5 + b] = (a ? 20 : 10) + b - 10;
    smt[0 * 5 + 3] = RASP_NONE;
    int sm = add_seqmap(p, "sm", m, idx, smv, 15, smt);
    set_output(p, sm);

    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 1, 2, 3, 0};   /* a b c d a */
    run_ok(it, in, 5);
    int32_t want_m[] = {0, 1, RASP_NONE, 0, 0};
    int32_t want_sm[] = {0, 11, RASP_NONE, RASP_NONE, 4};
    expect_vals(it, m, want_m, 5);
    expect_vals(it, sm, want_sm, 5);
    expect_vals(it, tok, in, 5);
    int32_t want_idx[] = {0, 1, 2, 3, 4};
    expect_vals(it, idx, want_idx, 5);
    interp_free(it);
    prog_free(p);
}

static void test_interp_const_is_index_zero_everywhere(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(4, 4, ABCD);
    add_tokens(p);
    int c = add_const(p, val_int(3));
    set_output(p, c);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {3, 2, 1};
    run_ok(it, in, 3);
    int32_t want[] = {0, 0, 0};
    expect_vals(it, c, want, 3);
    interp_free(it);
    prog_free(p);
}

/* keys with no value are never selected; a query with no value selects nothing */
static void test_interp_select_skips_keys_and_queries_without_value(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(5, 4, ABCD);
    int tok = add_tokens(p);
    add_indices(p);
    Value bv[] = {val_bool(0), val_bool(1)};
    int32_t kt[] = {1, 0, RASP_NONE, 1};        /* a->T b->F c->None d->T */
    int k = add_map(p, "k", tok, bv, 2, kt);
    int sel = add_select(p, k, k, OP_NONE);      /* `true` */
    int w = add_selwidth(p, "w", sel, 0);
    set_output(p, w);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 2, 1, 2, 3};              /* a c b c d */
    run_ok(it, in, 5);
    int32_t want[] = {3, 0, 3, 0, 3};            /* 3 keys with a value; None queries: 0 */
    expect_vals(it, w, want, 5);
    const uint8_t *m = interp_selection(it, sel);
    assert_non_null(m);
    for (int q = 0; q < 5; q++)
        for (int kk = 0; kk < 5; kk++) {
            int want_sel = in[q] != 2 && in[kk] != 2;
            assert_int_equal(m[q * 5 + kk], want_sel);
        }
    interp_free(it);
    prog_free(p);
}

/* and/or/not never select a position where any leaf's key or query has no value */
static void test_interp_composite_selectors_apply_validity_rule(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(4, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value bv[] = {val_bool(0), val_bool(1)};
    int32_t kt[] = {1, 0, RASP_NONE, 0};         /* a->T b->F c->None d->F */
    int k = add_map(p, "k", tok, bv, 2, kt);
    int sa = add_select(p, idx, idx, OP_LE);     /* k <= q */
    int sb = add_select(p, k, k, OP_EQ);         /* key k == query k */
    int s_not = add_selop(p, SEL_NOT, sb, -1);
    int s_or = add_selop(p, SEL_OR, sa, sb);
    int s_and = add_selop(p, SEL_AND, sa, s_not);
    int s_notnot = add_selop(p, SEL_NOT, s_not, -1);
    int w_not = add_selwidth(p, "w_not", s_not, 0);
    int w_or = add_selwidth(p, "w_or", s_or, 0);
    int w_and = add_selwidth(p, "w_and", s_and, 0);
    int w_nn = add_selwidth(p, "w_nn", s_notnot, 0);
    set_output(p, w_nn);
    Interp *it = interp_new(p, 1);
    int32_t in[] = {0, 2, 1, 3};                 /* a c b d : k = T None F F */
    run_ok(it, in, 4);
    int kv[] = {1, -1, 0, 0};
    for (int q = 0; q < 4; q++) {
        int want_not = 0, want_or = 0, want_and = 0, want_nn = 0;
        for (int kk = 0; kk < 4; kk++) {
            int valid = kv[q] >= 0 && kv[kk] >= 0;
            int a = kk <= q;
            int b = valid && kv[kk] == kv[q];
            want_not += valid && !b;
            want_or += valid && (a || b);
            want_and += valid && a && !b;
            want_nn += valid && b;
        }
        assert_int_equal(interp_values(it, w_not)[q], want_not);
        assert_int_equal(interp_values(it, w_or)[q], want_or);
        assert_int_equal(interp_values(it, w_and)[q], want_and);
        assert_int_equal(interp_values(it, w_nn)[q], want_nn);
    }
    /* the None query row (q = 1) of `or` is empty although indices <= selects there */
    const uint8_t *m = interp_selection(it, s_or);
    assert_non_null(m);
    for (int kk = 0; kk < 4; kk++) assert_int_equal(m[1 * 4 + kk], 0);
    /* and the None key column too */
    for (int q = 0; q < 4; q++) assert_int_equal(m[q * 4 + 1], 0);
    /* the leaf `indices <= indices` itself has no None, so it selects there */
    const uint8_t *ma = interp_selection(it, sa);
    assert_int_equal(ma[1 * 4 + 0], 1);
    assert_int_equal(ma[1 * 4 + 1], 1);
    interp_free(it);
    prog_free(p);
}

static void test_interp_causal_masks_keys_after_the_query(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(5, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    int all = add_select(p, tok, tok, OP_NONE);
    int w = add_selwidth(p, "prefix_len", all, 0);
    int s_not = add_selop(p, SEL_NOT, add_select(p, idx, idx, OP_GT), -1);  /* k <= q again */
    int first = add_cat_aggregate(p, "first", add_select(p, idx, idx, OP_NONE), tok, RASP_NONE);
    int last_b = add_cat_aggregate(p, "eq", add_select(p, tok, tok, OP_EQ), idx, RASP_NONE);
    int w_not = add_selwidth(p, "w_not", s_not, 0);
    set_output(p, w);
    p->causal = 1;
    Interp *it = interp_new(p, 1);
    int32_t in[] = {1, 0, 1, 1, 2};              /* b a b b c */
    run_ok(it, in, 5);
    int32_t want_w[] = {1, 2, 3, 4, 5};
    expect_vals(it, w, want_w, 5);
    expect_vals(it, w_not, want_w, 5);
    /* a selection of every earlier key agrees only at position 0 */
    int32_t want_first[] = {1, RASP_NONE, RASP_NONE, RASP_NONE, RASP_NONE};
    expect_vals(it, first, want_first, 5);
    /* same-token keys so far: position 0 alone for b at 0; a at 1 alone; b at 2 sees 0, 2 */
    int32_t want_eq[] = {0, 1, RASP_NONE, RASP_NONE, 4};
    expect_vals(it, last_b, want_eq, 5);
    const uint8_t *m = interp_selection(it, all);
    assert_non_null(m);
    for (int q = 0; q < 5; q++)
        for (int k = 0; k < 5; k++) assert_int_equal(m[q * 5 + k], k <= q);
    interp_free(it);
    prog_free(p);
}

static void test_interp_categorical_aggregate_default_agreement_disagreement(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(6, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value bv[] = {val_bool(0), val_bool(1)};
    int32_t nt[] = {0, 1, RASP_NONE, 1};        /* a->F b->T c->None d->T */
    int v = add_map(p, "v", tok, bv, 2, nt);
    /* query q selects keys k with tokens[k] == tokens[q] */
    int same = add_select(p, tok, tok, OP_EQ);
    int agg = add_cat_aggregate(p, "agg", same, v, RASP_NONE);
    /* query q selects keys k > q: the last position selects nothing */
    int later = add_select(p, idx, idx, OP_GT);
    int no_def = add_cat_aggregate(p, "no_def", later, v, RASP_NONE);
    int with_def = add_cat_aggregate(p, "with_def", later, v, 1);
    set_output(p, with_def);
    Interp *it = interp_new(p, 1);
    /* d b a c a d : v = T T F None F T */
    int32_t in[] = {3, 1, 0, 2, 0, 3};
    run_ok(it, in, 6);
    /* same token: always agreement (same map value), c -> None */
    int32_t want_agg[] = {1, 1, 0, RASP_NONE, 0, 1};
    expect_vals(it, agg, want_agg, 6);
    /* later keys: q0 sees T F None F T -> None; q3 sees F T -> None; q4 sees T -> T;
     * q5 none -> default */
    int32_t want_nd[] = {RASP_NONE, RASP_NONE, RASP_NONE, RASP_NONE, 1, RASP_NONE};
    expect_vals(it, no_def, want_nd, 6);
    int32_t want_wd[] = {RASP_NONE, RASP_NONE, RASP_NONE, RASP_NONE, 1, 1};
    expect_vals(it, with_def, want_wd, 6);
    /* all agree on a value: d d d */
    int32_t in2[] = {3, 3, 3};
    run_ok(it, in2, 3);
    int32_t want2[] = {1, 1, 1};
    expect_vals(it, no_def, want2, 2);
    interp_free(it);
    prog_free(p);
}

/* Value set of every mean of k ones among l values, 1 <= l <= N (sorted, deduplicated). */
static int frac_set(Value *out, int N)
{
    double fr[4096];
    int n = 0;
    for (int l = 1; l <= N; l++)
        for (int k = 0; k <= l; k++) fr[n++] = (double)k / l;
    /* sort and dedupe */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fr[j - 1] > fr[j]; j--) {
            double t = fr[j];
            fr[j] = fr[j - 1];
            fr[j - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!m || fabs(fr[i] - fr[m - 1]) > 1e-12) fr[m++] = fr[i];
    for (int i = 0; i < m; i++) out[i] = val_float(fr[i]);
    return m;
}

static void test_interp_numerical_mean_finds_thirds_and_uses_default(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(6, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value bv[] = {val_int(0), val_int(1)};
    int32_t xt[] = {0, 0, 0, 1};                 /* is "d", numerical 0/1 */
    int isd = add_map(p, "is_d", tok, bv, 2, xt);
    p->sops[isd].enc = ENC_NUMERICAL;
    Value fs[64];
    int nf = frac_set(fs, 6);
    int prevs = add_select(p, idx, idx, OP_LE);
    int fzero = -1;
    for (int i = 0; i < nf; i++)
        if (num(fs[i]) == 0) fzero = i;
    int frac = add_aggregate(p, "frac", prevs, isd, ENC_NUMERICAL, fs, nf, fzero);
    /* none selected (keys after the last query) -> default 0 */
    int later = add_select(p, idx, idx, OP_GT);
    int fl = add_aggregate(p, "later", later, isd, ENC_NUMERICAL, fs, nf, fzero);
    set_output(p, frac);
    Interp *it = interp_new(p, 1);
    int32_t in[] = {3, 0, 0, 3, 1, 3};           /* d a a d b d */
    run_ok(it, in, 6);
    double want[] = {1.0, 0.5, 1.0 / 3, 0.5, 0.4, 0.5};
    double want_l[] = {0.4, 0.5, 2.0 / 3, 0.5, 1.0, 0.0};
    const int32_t *got = interp_values(it, frac), *gl = interp_values(it, fl);
    for (int i = 0; i < 6; i++) {
        assert_true(got[i] >= 0 && gl[i] >= 0);
        assert_true(fabs(num(fs[got[i]]) - want[i]) < 1e-12);
        assert_true(fabs(num(fs[gl[i]]) - want_l[i]) < 1e-12);
    }
    assert_int_equal(gl[5], fzero);
    interp_free(it);
    prog_free(p);
}

static void test_interp_numerical_mean_of_none_is_none(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(4, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value nv[] = {val_float(0.5), val_int(2)};
    int32_t t[] = {0, 1, RASP_NONE, 1};          /* a->0.5 b->2 c->None d->2 */
    int x = add_map(p, "x", tok, nv, 2, t);
    p->sops[x].enc = ENC_NUMERICAL;
    Value means[] = {val_float(0.5), val_float(1.25), val_int(2)};
    int agg = add_aggregate(p, "m", add_select(p, idx, idx, OP_LE), x, ENC_NUMERICAL, means, 3,
                            RASP_NONE);
    set_output(p, agg);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 1, 2, 3};                 /* a b c d */
    run_ok(it, in, 4);
    int32_t want[] = {0, 1, RASP_NONE, RASP_NONE};
    expect_vals(it, agg, want, 4);
    interp_free(it);
    prog_free(p);
}

static void test_interp_mean_missing_from_value_set_is_an_internal_error(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(4, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value bv[] = {val_int(0), val_int(1)};
    int32_t t[] = {0, 1, 1, 1};
    int x = add_map(p, "x", tok, bv, 2, t);
    p->sops[x].enc = ENC_NUMERICAL;
    Value means[] = {val_int(0), val_float(0.5), val_int(1)};   /* no thirds */
    int agg = add_aggregate(p, "incomplete", add_select(p, idx, idx, OP_LE), x, ENC_NUMERICAL,
                            means, 3, 0);
    set_output(p, agg);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 1, 0};                    /* 0, 1/2, 1/3 */
    assert_int_equal(interp_eval(it, in, 3), -1);
    assert_non_null(strstr(interp_error(it), "incomplete"));
    assert_non_null(strstr(interp_error(it), "not in its value set"));
    int32_t want[] = {0, 1, RASP_NONE};
    expect_vals(it, agg, want, 3);
    /* the error does not stick to the next input */
    int32_t in2[] = {1, 1};
    run_ok(it, in2, 2);
    interp_free(it);
    prog_free(p);
}

static void test_interp_selector_width_value_sets_from_zero_and_from_one(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(5, 4, ABCD);
    int tok = add_tokens(p);
    int len = add_selwidth(p, "length", add_select(p, tok, tok, OP_NONE), 1);   /* {1..5} */
    int hist = add_selwidth(p, "hist", add_select(p, tok, tok, OP_EQ), 1);      /* {1..5} */
    int cnt_a = add_selwidth(p, "count_b", add_select(p, tok, tok, OP_LT), 0);   /* {0..5} */
    set_output(p, len);
    Interp *it = interp_new(p, 1);
    int32_t in[] = {1, 0, 1, 3};                 /* b a b d */
    run_ok(it, in, 4);
    int32_t want_len[] = {3, 3, 3, 3};           /* value 4 is index 3 in {1..5} */
    expect_vals(it, len, want_len, 4);
    int32_t want_hist[] = {1, 0, 1, 0};          /* 2, 1, 2, 1 */
    expect_vals(it, hist, want_hist, 4);
    int32_t want_lt[] = {1, 0, 1, 3};            /* keys smaller than the query token */
    expect_vals(it, cnt_a, want_lt, 4);
    interp_free(it);
    prog_free(p);
}

static void test_interp_width_missing_from_value_set_is_an_internal_error(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(3, 4, ABCD);
    int tok = add_tokens(p);
    int w = add_selwidth(p, "w", add_select(p, tok, tok, OP_LT), 1);   /* wrongly {1..3} */
    set_output(p, w);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 1};
    assert_int_equal(interp_eval(it, in, 2), -1);
    assert_non_null(strstr(interp_error(it), "width 0"));
    assert_non_null(strstr(interp_error(it), "'w'"));
    interp_free(it);
    prog_free(p);
}

static void test_interp_all0_evaluates_only_what_the_output_needs(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(4, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value bv[] = {val_bool(0), val_bool(1)};
    int32_t t[] = {1, 0, 0, 0};
    int unused = add_map(p, "unused", tok, bv, 2, t);
    int unused_sel = add_select(p, unused, unused, OP_EQ);
    int unused_w = add_selwidth(p, "unused_w", unused_sel, 0);
    int out_sel = add_select(p, idx, idx, OP_EQ);
    int out = add_cat_aggregate(p, "out", out_sel, tok, RASP_NONE);
    set_output(p, out);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {2, 1};
    run_ok(it, in, 2);
    assert_null(interp_values(it, unused));
    assert_null(interp_values(it, unused_w));
    assert_null(interp_selection(it, unused_sel));
    assert_non_null(interp_values(it, idx));
    assert_non_null(interp_selection(it, out_sel));
    expect_vals(it, out, in, 2);
    interp_free(it);

    it = interp_new(p, 1);
    run_ok(it, in, 2);
    assert_non_null(interp_values(it, unused));
    assert_non_null(interp_values(it, unused_w));
    assert_non_null(interp_selection(it, unused_sel));
    assert_null(interp_values(it, 99));
    assert_null(interp_selection(it, 99));
    interp_free(it);
    prog_free(p);
}

static void test_interp_rejects_bad_lengths_and_tokens(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(3, 4, ABCD);
    int tok = add_tokens(p);
    set_output(p, tok);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 1, 2, 3};
    assert_int_equal(interp_eval(it, in, 4), -1);
    assert_non_null(strstr(interp_error(it), "max_len"));
    assert_int_equal(interp_eval(it, in, 0), -1);
    int32_t bad[] = {0, 4};
    assert_int_equal(interp_eval(it, bad, 2), -1);
    assert_non_null(strstr(interp_error(it), "not a vocab index"));
    int32_t neg[] = {-1};
    assert_int_equal(interp_eval(it, neg, 1), -1);
    assert_null(interp_selection(it, 0));
    run_ok(it, in, 3);
    interp_free(it);
    prog_free(p);
}

static void test_interp_malformed_program_is_reported_not_crashed(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(3, 4, ABCD);
    int tok = add_tokens(p);
    Value bv[] = {val_bool(0), val_bool(1)};
    int32_t t[] = {1, 0, 0, 0};
    int m = add_map(p, "m", tok, bv, 2, t);
    set_output(p, m);
    p->sops[m].table[2] = 7;                     /* out of the value set */
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 2};
    assert_int_equal(interp_eval(it, in, 2), -1);
    assert_non_null(strstr(interp_error(it), "'m'"));
    interp_free(it);

    /* a selector cycle */
    int s0 = add_select(p, tok, tok, OP_EQ);
    int s1 = add_selop(p, SEL_NOT, s0, -1);
    p->sels[s0].op = SEL_AND;
    p->sels[s0].a = s1;
    p->sels[s0].b = s1;
    it = interp_new(p, 1);
    assert_int_equal(interp_eval(it, in, 2), -1);
    assert_non_null(strstr(interp_error(it), "cycle"));
    interp_free(it);
    prog_free(p);
}

/* make_reverse, as Tracr's library builds it */
static void test_interp_reverse(void **state)
{
    (void)state;
    RaspProgram *p = prog_new(5, 4, ABCD);
    int tok = add_tokens(p);
    int idx = add_indices(p);
    int len = add_selwidth(p, "length", add_select(p, tok, tok, OP_NONE), 1);
    /* opp = length - indices - 1, value set {-4..4}; index = value + 4 */
    Value ov[9];
    for (int i = 0; i < 9; i++) ov[i] = val_int(i - 4);
    int32_t tab[5 * 5];
    for (int l = 1; l <= 5; l++)
        for (int i = 0; i < 5; i++) tab[(l - 1) * 5 + i] = l - i - 1 + 4;
    int opp = add_seqmap(p, "opp", len, idx, ov, 9, tab);
    int rev = add_cat_aggregate(p, "reverse", add_select(p, idx, opp, OP_EQ), tok, RASP_NONE);
    set_output(p, rev);
    Interp *it = interp_new(p, 0);
    int32_t in[] = {0, 1, 2, 3};
    run_ok(it, in, 4);
    int32_t want[] = {3, 2, 1, 0};
    expect_vals(it, rev, want, 4);
    int32_t in2[] = {2, 2, 0, 1, 3};
    run_ok(it, in2, 5);
    int32_t want2[] = {3, 1, 0, 2, 2};
    expect_vals(it, rev, want2, 5);
    interp_free(it);
    prog_free(p);
}

/* ---- a naive evaluator from the spec, for randomized comparison -------------------- */

static void naive_sel(const RaspProgram *p, int id, int32_t **vals, int n, uint8_t *m,
                      uint8_t *kvalid, uint8_t *qvalid)
{
    const RaspSel *l = &p->sels[id];
    if (l->op == SEL_SELECT) {
        const int32_t *kv = vals[l->keys], *qv = vals[l->queries];
        int nq = p->sops[l->queries].nvals;
        for (int q = 0; q < n; q++)
            for (int k = 0; k < n; k++) {
                int ok = kv[k] >= 0 && qv[q] >= 0 && l->pred[kv[k] * nq + qv[q]];
                m[q * n + k] = (uint8_t)ok;
            }
        for (int i = 0; i < n; i++) {
            kvalid[i] = kv[i] >= 0;
            qvalid[i] = qv[i] >= 0;
        }
    } else {
        uint8_t *ma = xcalloc((size_t)n * n, 1), *mb = xcalloc((size_t)n * n, 1);
        uint8_t ka[64], qa[64], kb[64], qb[64];
        naive_sel(p, l->a, vals, n, ma, ka, qa);
        if (l->op != SEL_NOT) naive_sel(p, l->b, vals, n, mb, kb, qb);
        else {
            memset(kb, 1, sizeof kb);
            memset(qb, 1, sizeof qb);
        }
        for (int i = 0; i < n; i++) {
            kvalid[i] = ka[i] && kb[i];
            qvalid[i] = qa[i] && qb[i];
        }
        for (int q = 0; q < n; q++)
            for (int k = 0; k < n; k++) {
                int a = ma[q * n + k], b = mb[q * n + k];
                int r = l->op == SEL_AND ? a && b : l->op == SEL_OR ? a || b : !a;
                m[q * n + k] = (uint8_t)(r && kvalid[k] && qvalid[q]);
            }
        free(ma);
        free(mb);
    }
    if (p->causal)
        for (int q = 0; q < n; q++)
            for (int k = q + 1; k < n; k++) m[q * n + k] = 0;
}

static void naive_eval(const RaspProgram *p, const int32_t *toks, int n, int32_t **vals)
{
    uint8_t *m = xmalloc((size_t)n * n);
    uint8_t kv[64], qv[64];
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        int32_t *o = vals[i];
        for (int q = 0; q < n; q++) {
            switch (s->op) {
            case SOP_TOKENS: o[q] = toks[q]; break;
            case SOP_INDICES: o[q] = q; break;
            case SOP_CONST: o[q] = 0; break;
            case SOP_MAP: o[q] = vals[s->a][q] < 0 ? -1 : s->table[vals[s->a][q]]; break;
            case SOP_SEQMAP: {
                int a = vals[s->a][q], b = vals[s->b][q];
                o[q] = a < 0 || b < 0 ? -1 : s->table[a * p->sops[s->b].nvals + b];
                break;
            }
            default: break;
            }
        }
        if (s->op != SOP_AGGREGATE && s->op != SOP_SELWIDTH) continue;
        naive_sel(p, s->sel, vals, n, m, kv, qv);
        for (int q = 0; q < n; q++) {
            int c = 0, none = 0, first = -2, agree = 1;
            double sum = 0;
            for (int k = 0; k < n; k++) {
                if (!m[q * n + k]) continue;
                c++;
                if (s->op != SOP_AGGREGATE) continue;
                int v = vals[s->a][k];
                if (v < 0) none = 1;
                else sum += num(p->sops[s->a].vals[v]);
                if (first == -2) first = v;
                else if (first != v) agree = 0;
            }
            if (s->op == SOP_SELWIDTH) o[q] = c - (int)num(s->vals[0]);
            else if (!c) o[q] = s->deflt;
            else if (s->enc == ENC_CATEGORICAL) o[q] = agree && !none ? first : -1;
            else o[q] = none ? -1 : rasp_num_index(s, sum / c);
        }
    }
    free(m);
}

/* A program with every construct: maps with None, seqmap, select on None keys, and/or/not
 * nested, categorical and numerical aggregates, widths. */
static RaspProgram *mixed_program(int max_len, int causal)
{
    RaspProgram *p = prog_new(max_len, 4, ABCD);
    p->causal = causal;
    int tok = add_tokens(p);
    int idx = add_indices(p);
    Value bv[] = {val_int(0), val_int(1)};
    int32_t t1[] = {1, 0, RASP_NONE, 1};
    int b1 = add_map(p, "b1", tok, bv, 2, t1);
    int32_t t2[] = {0, 1, 1, RASP_NONE};
    int b2 = add_map(p, "b2", tok, bv, 2, t2);
    Value sv[3] = {val_int(0), val_int(1), val_int(2)};
    int32_t st[] = {0, 1, 1, 2};
    int sum = add_seqmap(p, "sum", b1, b2, sv, 3, st);
    int s_eq = add_select(p, b1, b2, OP_EQ);
    int s_le = add_select(p, idx, idx, OP_LE);
    int s_lt = add_select(p, sum, sum, OP_LT);
    int s_or = add_selop(p, SEL_OR, s_eq, s_lt);
    int s_not = add_selop(p, SEL_NOT, s_or, -1);
    int s_and = add_selop(p, SEL_AND, s_not, s_le);
    int s_and2 = add_selop(p, SEL_AND, s_eq, s_eq);
    add_selwidth(p, "w_or", s_or, 0);
    add_selwidth(p, "w_not", s_not, 0);
    add_selwidth(p, "w_and", s_and, 0);
    add_selwidth(p, "w_eq", s_eq, 0);
    add_cat_aggregate(p, "c_and", s_and, tok, RASP_NONE);
    add_cat_aggregate(p, "c_eq", s_and2, sum, 2);
    add_cat_aggregate(p, "c_le", s_le, b2, 0);
    p->sops[b2].enc = ENC_NUMERICAL;
    Value fs[2048];
    int nf = frac_set(fs, max_len);
    int out = add_aggregate(p, "n_not", s_not, b2, ENC_NUMERICAL, fs, nf, 0);
    add_aggregate(p, "n_le", s_le, b2, ENC_NUMERICAL, fs, nf, RASP_NONE);
    set_output(p, out);
    return p;
}

static void check_against_naive(int causal)
{
    int L = 12;
    RaspProgram *p = mixed_program(L, causal);
    Interp *it = interp_new(p, 1);
    int32_t *vals[CAP];
    for (int i = 0; i < p->nsops; i++) vals[i] = xmalloc(sizeof(int32_t) * (size_t)L);
    Rng r;
    rng_seed(&r, 7);
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)rng_below(&r, (uint32_t)L);
        int32_t toks[64];
        for (int i = 0; i < n; i++) toks[i] = (int32_t)rng_below(&r, 4);
        run_ok(it, toks, n);
        naive_eval(p, toks, n, vals);
        /* a fresh Interp on the same input agrees with the reused one */
        Interp *fresh = interp_new(p, 1);
        run_ok(fresh, toks, n);
        for (int s = 0; s < p->nsops; s++) {
            const int32_t *got = interp_values(it, s), *f = interp_values(fresh, s);
            for (int q = 0; q < n; q++) {
                if (got[q] != vals[s][q])
                    print_error("trial %d s-op %s position %d: got %d, naive %d\n", trial,
                                p->sops[s].label, q, (int)got[q], (int)vals[s][q]);
                assert_int_equal(got[q], vals[s][q]);
                assert_int_equal(got[q], f[q]);
            }
        }
        uint8_t *m = xmalloc((size_t)n * n);
        uint8_t kv[64], qv[64];
        for (int l = 0; l < p->nsels; l++) {
            naive_sel(p, l, vals, n, m, kv, qv);
            const uint8_t *g = interp_selection(it, l);
            assert_non_null(g);
            assert_memory_equal(g, m, (size_t)n * n);
        }
        free(m);
        interp_free(fresh);
    }
    for (int i = 0; i < p->nsops; i++) free(vals[i]);
    interp_free(it);
    prog_free(p);
}

static void test_interp_matches_naive_reference_on_random_inputs(void **state)
{
    (void)state;
    check_against_naive(0);
}

static void test_interp_causal_matches_naive_reference_on_random_inputs(void **state)
{
    (void)state;
    check_against_naive(1);
}

/* Programs as sema builds them (lambdas, composite selectors, defaults, numerical means),
 * against the naive evaluator on random inputs, evaluated with all = 0 and all = 1. */
static const char *const LOADED[] = {
    /* reverse */
    "vocab {a, b, c, d}; max_len 9;\n"
    "opp = length - indices - 1;\n"
    "output aggregate(select(indices, opp, ==), tokens);\n",
    /* Tracr's sort */
    "vocab {1, 2, 3, 4, 5}; max_len 9;\n"
    "keys = sequence_map(lambda x, i: x + i / 9, tokens, indices);\n"
    "pos = selector_width(select(keys, keys, <));\n"
    "output aggregate(select(pos, indices, ==), tokens);\n",
    /* the paper's Counter */
    "vocab {a, b, c}; max_len 9;\n"
    "is_a = tokens == \"a\";\n"
    "count_a = selector_width(select(is_a, indices, ==));\n"
    "output aggregate(select(indices, indices, ==), count_a);\n",
    /* composites over values with None, a default, a numerical mean */
    "vocab {a, b, c, d}; max_len 9;\n"
    "prev = aggregate(select(indices, indices, lambda k, q: q == k + 1), tokens);\n"
    "same = select(prev, tokens, ==);\n"
    "both = same and not select(indices, indices, >);\n"
    "either = same or select(tokens, tokens, <);\n"
    "w1 = selector_width(both);\n"
    "w2 = selector_width(either);\n"
    "w3 = selector_width(not either);\n"
    "first = aggregate(both, indices, 0);\n"
    "is_b = numerical(tokens == \"b\");\n"
    "frac = aggregate(select(indices, indices, <=), is_b, 0);\n"
    "frac_same = aggregate(same, is_b, 0);\n"
    "output w1;\n",
    /* causal: prefix counts */
    "vocab {a, b}; max_len 9; causal;\n"
    "same = select(tokens, tokens, ==) and select(indices, indices, <=);\n"
    "n_same = selector_width(same);\n"
    "n_prefix = selector_width(select(indices, indices, <=));\n"
    "output sequence_map(lambda x, y: x * 10 + y, n_same, n_prefix);\n",
};

static void test_interp_matches_naive_reference_on_loaded_programs(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(LOADED); i++) {
        Diag *d = diag_new();
        FrontOptions fo = FRONT_OPTIONS_DEFAULT;
        RaspProgram *p = rasp_load_text("loaded.rasp", LOADED[i], strlen(LOADED[i]), &fo, d);
        if (!p) {
            char *msg = diag_render(d);
            print_error("program %zu:\n%s", i, msg);
            free(msg);
        }
        assert_non_null(p);
        diag_free(d);
        int L = p->max_len;
        Interp *needed = interp_new(p, 0), *every = interp_new(p, 1);
        int32_t **vals = xcalloc((size_t)p->nsops, sizeof *vals);
        for (int s = 0; s < p->nsops; s++) vals[s] = xmalloc(sizeof(int32_t) * (size_t)L);
        Rng r;
        rng_seed(&r, 11 + i);
        for (int trial = 0; trial < 200; trial++) {
            int n = 1 + (int)rng_below(&r, (uint32_t)L);
            int32_t toks[64];
            for (int k = 0; k < n; k++) toks[k] = (int32_t)rng_below(&r, (uint32_t)p->nvocab);
            run_ok(needed, toks, n);
            run_ok(every, toks, n);
            naive_eval(p, toks, n, vals);
            for (int s = 0; s < p->nsops; s++) {
                const int32_t *e = interp_values(every, s), *nd = interp_values(needed, s);
                assert_non_null(e);
                for (int q = 0; q < n; q++) {
                    if (e[q] != vals[s][q])
                        print_error("program %zu s-op %s position %d: got %d, naive %d\n", i,
                                    p->sops[s].label, q, (int)e[q], (int)vals[s][q]);
                    assert_int_equal(e[q], vals[s][q]);
                    if (nd) assert_int_equal(nd[q], vals[s][q]);
                }
            }
            assert_non_null(interp_values(needed, p->output));
        }
        for (int s = 0; s < p->nsops; s++) free(vals[s]);
        free(vals);
        interp_free(needed);
        interp_free(every);
        rasp_free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interp_map_and_seqmap_tables_propagate_none),
        cmocka_unit_test(test_interp_const_is_index_zero_everywhere),
        cmocka_unit_test(test_interp_select_skips_keys_and_queries_without_value),
        cmocka_unit_test(test_interp_composite_selectors_apply_validity_rule),
        cmocka_unit_test(test_interp_causal_masks_keys_after_the_query),
        cmocka_unit_test(test_interp_categorical_aggregate_default_agreement_disagreement),
        cmocka_unit_test(test_interp_numerical_mean_finds_thirds_and_uses_default),
        cmocka_unit_test(test_interp_numerical_mean_of_none_is_none),
        cmocka_unit_test(test_interp_mean_missing_from_value_set_is_an_internal_error),
        cmocka_unit_test(test_interp_selector_width_value_sets_from_zero_and_from_one),
        cmocka_unit_test(test_interp_width_missing_from_value_set_is_an_internal_error),
        cmocka_unit_test(test_interp_all0_evaluates_only_what_the_output_needs),
        cmocka_unit_test(test_interp_rejects_bad_lengths_and_tokens),
        cmocka_unit_test(test_interp_malformed_program_is_reported_not_crashed),
        cmocka_unit_test(test_interp_reverse),
        cmocka_unit_test(test_interp_matches_naive_reference_on_random_inputs),
        cmocka_unit_test(test_interp_causal_matches_naive_reference_on_random_inputs),
        cmocka_unit_test(test_interp_matches_naive_reference_on_loaded_programs),
    };
    return cmocka_run_group_tests_name("interp", tests, NULL, NULL);
}
