/* test_value.c — scalar values behave as in Python (spec Decision 2), builtins, formatting,
 * ordering/hash consistency, and the value-set helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "compiler/front/scalar.h"
#include "compiler/front/valops.h"
#include "compiler/front/valueset.h"

static Arena arena;

static int setup(void **state)
{
    (void)state;
    arena_init(&arena);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(&arena);
    return 0;
}

static Value bin(AstOp op, Value a, Value b)
{
    Value out;
    StrBuf err;
    sb_init(&err);
    int ok = val_binary(op, a, b, &out, &err, &arena);
    if (!ok) fail_msg("unexpected error: %s", err.s);
    sb_free(&err);
    return out;
}

/* Expect an error whose reason contains `what`. */
static void bin_fails(AstOp op, Value a, Value b, const char *what)
{
    Value out;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(val_binary(op, a, b, &out, &err, &arena), 0);
    if (!strstr(err.s, what)) fail_msg("reason '%s' lacks '%s'", err.s, what);
    sb_free(&err);
}

static char *fmt(Value v)
{
    StrBuf b;
    sb_init(&b);
    val_format(v, &b);
    char *s = arena_strdup(&arena, b.s);
    sb_free(&b);
    return s;
}

static void assert_int_value(Value v, int64_t want)
{
    assert_int_equal(v.kind, VAL_INT);
    assert_true(v.u.i == want);
}

static void assert_float_value(Value v, double want)
{
    assert_int_equal(v.kind, VAL_FLOAT);
    assert_true(fabs(v.u.f - want) < 1e-12);
}

static void test_value_floor_division_and_modulo_follow_python(void **state)
{
    (void)state;
    assert_int_value(bin(OP_MOD, val_int(-3), val_int(4)), 1);
    assert_int_value(bin(OP_MOD, val_int(3), val_int(-4)), -1);
    assert_int_value(bin(OP_MOD, val_int(-3), val_int(-4)), -3);
    assert_int_value(bin(OP_FLOORDIV, val_int(-7), val_int(2)), -4);
    assert_int_value(bin(OP_FLOORDIV, val_int(7), val_int(-2)), -4);
    assert_int_value(bin(OP_FLOORDIV, val_int(7), val_int(2)), 3);
    assert_int_value(bin(OP_FLOORDIV, val_int(INT64_MIN), val_int(1)), INT64_MIN);
    assert_int_value(bin(OP_MOD, val_int(INT64_MIN), val_int(-1)), 0);
    /* floats too */
    assert_float_value(bin(OP_MOD, val_float(-3.5), val_int(2)), 0.5);
    assert_float_value(bin(OP_FLOORDIV, val_float(-7.0), val_int(2)), -4.0);
    assert_float_value(bin(OP_MOD, val_float(7.5), val_float(-2.0)), -0.5);
    assert_float_value(bin(OP_FLOORDIV, val_float(7.5), val_float(2.0)), 3.0);
}

static void test_value_true_division_is_always_float(void **state)
{
    (void)state;
    assert_float_value(bin(OP_DIV, val_int(4), val_int(2)), 2.0);
    assert_float_value(bin(OP_DIV, val_int(1), val_int(4)), 0.25);
    assert_float_value(bin(OP_DIV, val_bool(1), val_int(2)), 0.5);
    assert_string_equal(fmt(bin(OP_DIV, val_int(4), val_int(2))), "2.0");
}

static void test_value_division_and_modulo_by_zero_fail(void **state)
{
    (void)state;
    bin_fails(OP_DIV, val_int(1), val_int(0), "division by zero");
    bin_fails(OP_FLOORDIV, val_int(1), val_int(0), "division by zero");
    bin_fails(OP_MOD, val_int(1), val_int(0), "modulo by zero");
    bin_fails(OP_DIV, val_float(1.0), val_float(0.0), "division by zero");
    bin_fails(OP_MOD, val_float(1.0), val_bool(0), "modulo by zero");
}

static void test_value_int_float_mixing(void **state)
{
    (void)state;
    assert_float_value(bin(OP_ADD, val_int(1), val_float(0.5)), 1.5);
    assert_int_value(bin(OP_MUL, val_int(3), val_int(4)), 12);
    assert_float_value(bin(OP_SUB, val_float(1.0), val_int(3)), -2.0);
    assert_true(val_equal(val_int(1), val_float(1.0)));
    assert_true(val_equal(val_bool(1), val_int(1)));
    assert_false(val_equal(val_int(1), val_float(1.5)));
    /* int and float compare exactly: 2^53 + 1 is not the float 2^53 */
    assert_false(val_equal(val_int(9007199254740993LL), val_float(9007199254740992.0)));
    assert_int_equal(bin(OP_LT, val_int(9007199254740992LL), val_float(9007199254740993.0 + 2)).u.i, 1);
}

static void test_value_bools_are_numbers_in_arithmetic(void **state)
{
    (void)state;
    assert_int_value(bin(OP_ADD, val_bool(1), val_bool(1)), 2);
    assert_int_value(bin(OP_MUL, val_bool(1), val_int(5)), 5);
    assert_int_equal(bin(OP_EQ, val_bool(1), val_int(1)).u.i, 1);
    assert_int_equal(bin(OP_LT, val_bool(0), val_int(1)).u.i, 1);
    Value out;
    assert_true(val_unary(OP_NEG, val_bool(1), &out, NULL));
    assert_int_value(out, -1);
}

static void test_value_string_operations_and_type_errors(void **state)
{
    (void)state;
    Value ab = bin(OP_ADD, val_str("a"), val_str("b"));
    assert_int_equal(ab.kind, VAL_STR);
    assert_string_equal(ab.u.s, "ab");
    assert_int_equal(bin(OP_LT, val_str("a"), val_str("b")).u.i, 1);
    assert_int_equal(bin(OP_GE, val_str("b"), val_str("ab")).u.i, 1);
    assert_int_equal(bin(OP_LT, val_str("Z"), val_str("a")).u.i, 1);   /* bytewise */
    assert_int_equal(bin(OP_EQ, val_str("1"), val_int(1)).u.i, 0);
    assert_int_equal(bin(OP_NE, val_str("1"), val_int(1)).u.i, 1);
    bin_fails(OP_ADD, val_str("a"), val_int(1), "cannot apply '+' to a string and an int");
    bin_fails(OP_MUL, val_str("a"), val_int(3), "a string");
    bin_fails(OP_LT, val_str("a"), val_int(1), "cannot compare a string and an int with '<'");
    bin_fails(OP_SUB, val_str("a"), val_str("b"), "a string and a string");
    bin_fails(OP_POW, val_float(1.0), val_str("x"), "a string");
}

static void test_value_integer_overflow_is_an_error(void **state)
{
    (void)state;
    bin_fails(OP_ADD, val_int(INT64_MAX), val_int(1), "integer overflow");
    bin_fails(OP_SUB, val_int(INT64_MIN), val_int(1), "integer overflow");
    bin_fails(OP_MUL, val_int(INT64_MAX / 2 + 1), val_int(2), "integer overflow");
    bin_fails(OP_POW, val_int(2), val_int(63), "integer overflow");
    bin_fails(OP_FLOORDIV, val_int(INT64_MIN), val_int(-1), "integer overflow");
    Value out;
    StrBuf err;
    sb_init(&err);
    assert_false(val_unary(OP_NEG, val_int(INT64_MIN), &out, &err));
    assert_non_null(strstr(err.s, "integer overflow"));
    sb_free(&err);
}

static void test_value_power(void **state)
{
    (void)state;
    assert_int_value(bin(OP_POW, val_int(2), val_int(10)), 1024);
    assert_int_value(bin(OP_POW, val_int(-2), val_int(3)), -8);
    assert_int_value(bin(OP_POW, val_int(2), val_int(62)), (int64_t)1 << 62);
    assert_int_value(bin(OP_POW, val_int(0), val_int(0)), 1);
    assert_float_value(bin(OP_POW, val_int(2), val_int(-1)), 0.5);
    assert_float_value(bin(OP_POW, val_float(4.0), val_float(0.5)), 2.0);
    assert_float_value(bin(OP_POW, val_int(9), val_float(0.5)), 3.0);
    bin_fails(OP_POW, val_int(0), val_int(-1), "negative power");
    bin_fails(OP_POW, val_float(-8.0), val_float(1.0 / 3), "fractional power");
    bin_fails(OP_POW, val_float(10.0), val_float(400.0), "float overflow");
}

static void test_value_logic_takes_booleans_only(void **state)
{
    (void)state;
    assert_int_equal(bin(OP_AND, val_bool(1), val_bool(0)).u.i, 0);
    assert_int_equal(bin(OP_OR, val_bool(1), val_bool(0)).u.i, 1);
    bin_fails(OP_AND, val_int(1), val_bool(1), "'and' takes booleans, not an int");
    bin_fails(OP_OR, val_bool(1), val_str("x"), "not a string");
    Value out;
    int b;
    assert_true(val_unary(OP_NOT, val_bool(0), &out, NULL));
    assert_true(val_as_bool(out, &b) && b == 1);
    StrBuf err;
    sb_init(&err);
    assert_false(val_unary(OP_NOT, val_int(0), &out, &err));
    assert_non_null(strstr(err.s, "'not' takes a boolean"));
    assert_false(val_as_bool(val_int(1), &b));
    sb_free(&err);
}

static Value call(int b, int n, ...)
{
    Value args[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) args[i] = va_arg(ap, Value);
    va_end(ap);
    Value out;
    StrBuf err;
    sb_init(&err);
    if (!scalar_call(b, args, n, &out, &err, &arena)) fail_msg("unexpected error: %s", err.s);
    sb_free(&err);
    return out;
}

static void call_fails(int b, Value a, const char *what)
{
    Value out;
    StrBuf err;
    sb_init(&err);
    assert_false(scalar_call(b, &a, 1, &out, &err, &arena));
    if (!strstr(err.s, what)) fail_msg("reason '%s' lacks '%s'", err.s, what);
    sb_free(&err);
}

static void test_value_builtins(void **state)
{
    (void)state;
    assert_int_value(call(BI_MIN, 3, val_int(3), val_int(1), val_int(2)), 1);
    assert_float_value(call(BI_MAX, 2, val_int(3), val_float(3.5)), 3.5);
    assert_int_value(call(BI_MIN, 2, val_int(1), val_float(1.0)), 1);   /* first of equals */
    assert_string_equal(call(BI_MAX, 2, val_str("a"), val_str("b")).u.s, "b");
    assert_int_value(call(BI_ABS, 1, val_int(-4)), 4);
    assert_float_value(call(BI_ABS, 1, val_float(-0.5)), 0.5);
    assert_int_value(call(BI_INT, 1, val_float(-2.7)), -2);   /* toward zero */
    assert_int_value(call(BI_INT, 1, val_float(2.7)), 2);
    assert_int_value(call(BI_INT, 1, val_str(" 42 ")), 42);
    assert_int_value(call(BI_INT, 1, val_str("-7")), -7);
    assert_int_value(call(BI_INT, 1, val_bool(1)), 1);
    assert_float_value(call(BI_FLOAT, 1, val_int(3)), 3.0);
    assert_float_value(call(BI_FLOAT, 1, val_str("2.5")), 2.5);
    assert_float_value(call(BI_FLOAT, 1, val_bool(1)), 1.0);
    assert_string_equal(call(BI_STR, 1, val_bool(1)).u.s, "true");
    assert_string_equal(call(BI_STR, 1, val_float(2.0)).u.s, "2.0");
    assert_string_equal(call(BI_STR, 1, val_int(3)).u.s, "3");
    assert_string_equal(call(BI_STR, 1, val_str("x")).u.s, "x");
    call_fails(BI_INT, val_str("abc"), "cannot read \"abc\" as an integer");
    call_fails(BI_INT, val_float(INFINITY), "inf");
    call_fails(BI_FLOAT, val_str("0x10"), "as a number");
    call_fails(BI_ABS, val_str("x"), "abs takes a number");
    call_fails(BI_ABS, val_int(INT64_MIN), "integer overflow");
    Value two[2] = {val_str("a"), val_int(1)}, out;
    StrBuf err;
    sb_init(&err);
    assert_false(scalar_call(BI_MIN, two, 2, &out, &err, &arena));
    assert_non_null(strstr(err.s, "cannot compare"));
    sb_clear(&err);
    assert_false(scalar_call(BI_MIN, two, 1, &out, &err, &arena));
    assert_non_null(strstr(err.s, "at least 2"));
    sb_free(&err);
    assert_int_equal(scalar_builtin("abs"), BI_ABS);
    assert_int_equal(scalar_builtin("map"), BI_NONE);
}

static void test_value_format_matches_python_repr(void **state)
{
    (void)state;
    assert_string_equal(fmt(val_float(0.1)), "0.1");
    assert_string_equal(fmt(val_float(1e-07)), "1e-07");
    assert_string_equal(fmt(val_float(2.0)), "2.0");
    assert_string_equal(fmt(val_float(1e16)), "1e+16");
    assert_string_equal(fmt(val_float(1e15)), "1000000000000000.0");
    assert_string_equal(fmt(val_float(100.0)), "100.0");
    assert_string_equal(fmt(val_float(0.0001)), "0.0001");
    assert_string_equal(fmt(val_float(0.00001)), "1e-05");
    assert_string_equal(fmt(val_float(-0.0)), "-0.0");
    assert_string_equal(fmt(val_float(1.0 / 3)), "0.3333333333333333");
    assert_string_equal(fmt(val_float(123456789.125)), "123456789.125");
    assert_string_equal(fmt(val_float(1.5e300)), "1.5e+300");
    assert_string_equal(fmt(val_float(INFINITY)), "inf");
    assert_string_equal(fmt(val_float(-INFINITY)), "-inf");
    assert_string_equal(fmt(val_float(NAN)), "nan");
    assert_string_equal(fmt(val_int(-42)), "-42");
    assert_string_equal(fmt(val_bool(0)), "false");
    assert_string_equal(fmt(val_none()), "None");
    assert_string_equal(fmt(val_str("a b")), "a b");
    StrBuf b;
    sb_init(&b);
    val_format_quoted(val_str("say \"hi\"\\\n"), &b);
    assert_string_equal(b.s, "\"say \\\"hi\\\"\\\\\\n\"");
    sb_free(&b);
}

static void test_value_order_and_hash_agree_with_equality(void **state)
{
    (void)state;
    Value one[3] = {val_int(1), val_float(1.0), val_bool(1)};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            assert_true(val_equal(one[i], one[j]));
            assert_int_equal(val_order(one[i], one[j]), 0);
            assert_true(val_hash(one[i]) == val_hash(one[j]));
        }
    assert_true(val_order(val_none(), val_int(-100)) < 0);
    assert_true(val_order(val_int(5), val_str("")) < 0);
    assert_true(val_order(val_float(0.5), val_int(1)) < 0);
    assert_true(val_order(val_str("b"), val_str("a")) > 0);
    assert_true(val_order(val_float(NAN), val_float(1e300)) > 0);
    assert_int_equal(val_order(val_float(NAN), val_float(NAN)), 0);
    assert_true(val_hash(val_float(0.0)) == val_hash(val_int(0)));
    assert_true(val_hash(val_float(-0.0)) == val_hash(val_int(0)));
    assert_true(val_equal(val_none(), val_none()));
    assert_false(val_equal(val_none(), val_int(0)));
    assert_false(val_equal(val_str("1"), val_int(1)));
}

static void test_valueset_dedupes_and_sorts(void **state)
{
    (void)state;
    VSet s;
    vset_init(&s);
    assert_int_equal(vset_add(&s, val_str("b")), 0);
    assert_int_equal(vset_add(&s, val_int(1)), 1);
    assert_int_equal(vset_add(&s, val_bool(1)), 1);   /* true == 1 */
    assert_int_equal(vset_add(&s, val_float(0.5)), 2);
    assert_int_equal(vset_add(&s, val_str("a")), 3);
    int32_t perm[4];
    Value *vals;
    int n = vset_finish(&s, 0, &arena, &vals, perm);
    assert_int_equal(n, 4);
    assert_true(val_equal(vals[0], val_float(0.5)));
    assert_true(val_equal(vals[1], val_int(1)));
    assert_string_equal(vals[2].u.s, "a");
    assert_string_equal(vals[3].u.s, "b");
    assert_int_equal(perm[0], 3);
    assert_int_equal(perm[1], 1);
    vset_free(&s);
    /* numerical sets merge values within the tolerance */
    vset_init(&s);
    vset_add(&s, val_float(0.3));
    vset_add(&s, val_float(0.1 + 0.2));
    vset_add(&s, val_float(-1.0));
    n = vset_finish(&s, 1, &arena, &vals, perm);
    assert_int_equal(n, 2);
    assert_int_equal(perm[0], 1);
    assert_int_equal(perm[1], 1);
    assert_int_equal(perm[2], 0);
    vset_free(&s);
    assert_true(vs_num_close(1.0, 1.0 + 1e-12));
    assert_false(vs_num_close(1.0, 1.001));
}

static void test_valueset_means_are_complete(void **state)
{
    (void)state;
    Value v01[2] = {val_int(0), val_int(1)};
    Value *out;
    int n = vs_means(v01, 2, 3, 1, 0.0, 1000, &arena, &out);
    /* 0, 1/3, 1/2, 2/3, 1 */
    assert_int_equal(n, 5);
    double want[5] = {0, 1.0 / 3, 0.5, 2.0 / 3, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(out[i].kind, VAL_FLOAT);
        assert_true(fabs(out[i].u.f - want[i]) < 1e-12);
    }
    /* non-integer values take the generic path: {0.5, 2} at max_len 2 -> 0.5, 1.25, 2 plus the default 7 */
    Value vf[2] = {val_float(0.5), val_int(2)};
    n = vs_means(vf, 2, 2, 1, 7.0, 1000, &arena, &out);
    assert_int_equal(n, 4);
    assert_true(fabs(out[1].u.f - 1.25) < 1e-12);
    assert_true(fabs(out[3].u.f - 7.0) < 1e-12);
    /* every mean of {0..9} over up to 46 values: more than a small limit */
    Value digits[10];
    for (int i = 0; i < 10; i++) digits[i] = val_int(i);
    assert_int_equal(vs_means(digits, 10, 46, 1, 0.0, 100, &arena, &out), -1);
    n = vs_means(digits, 10, 46, 1, 0.0, 100000, &arena, &out);
    assert_true(n > 1000);
    /* a single value: itself */
    n = vs_means(digits + 3, 1, 4096, 0, 0.0, 10, &arena, &out);
    assert_int_equal(n, 1);
    assert_true(out[0].u.f == 3.0);
}

/* every mean of every multiset of size 1..N, by enumeration */
static void brute_means(const double *v, int m, int N, double *out, int *nout)
{
    int n = 0;
    int idx[8];
    for (int c = 1; c <= N; c++) {
        for (int i = 0; i < c; i++) idx[i] = 0;
        for (;;) {
            double sum = 0;
            for (int i = 0; i < c; i++) sum += v[idx[i]];
            double mean = sum / c;
            int seen = 0;
            for (int k = 0; k < n && !seen; k++) seen = vs_num_close(out[k], mean);
            if (!seen) out[n++] = mean;
            int i = c - 1;   /* next non-decreasing index tuple */
            while (i >= 0 && idx[i] == m - 1) i--;
            if (i < 0) break;
            idx[i]++;
            for (int j = i + 1; j < c; j++) idx[j] = idx[i];
        }
    }
    *nout = n;
}

static void test_valueset_means_match_brute_force(void **state)
{
    (void)state;
    static const double sets[][4] = {
        {-2, 3, 0, 0}, {-1, 0, 1, 0}, {0.5, 1.25, -3, 0}, {1, 2, 4, 8}, {0, 0.1, 0.2, 0.3}, {-7, -7.5, 100, 2},
    };
    static const int sizes[] = {2, 3, 3, 4, 4, 4};
    for (size_t t = 0; t < ARRAY_LEN(sizes); t++) {
        for (int N = 1; N <= 5; N++) {
            Value vals[4];
            for (int i = 0; i < sizes[t]; i++)
                vals[i] = sets[t][i] == (int)sets[t][i] ? val_int((int)sets[t][i]) : val_float(sets[t][i]);
            Value *out;
            int n = vs_means(vals, sizes[t], N, 0, 0.0, 100000, &arena, &out);
            double want[2000];
            int nw;
            brute_means(sets[t], sizes[t], N, want, &nw);
            assert_int_equal(n, nw);
            for (int i = 0; i < n; i++) {
                int found = 0;
                for (int k = 0; k < nw && !found; k++) found = vs_num_close(val_as_double(out[i]), want[k]);
                assert_true(found);
                if (i) assert_true(val_as_double(out[i - 1]) < val_as_double(out[i]));
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_floor_division_and_modulo_follow_python),
        cmocka_unit_test(test_value_true_division_is_always_float),
        cmocka_unit_test(test_value_division_and_modulo_by_zero_fail),
        cmocka_unit_test(test_value_int_float_mixing),
        cmocka_unit_test(test_value_bools_are_numbers_in_arithmetic),
        cmocka_unit_test(test_value_string_operations_and_type_errors),
        cmocka_unit_test(test_value_integer_overflow_is_an_error),
        cmocka_unit_test(test_value_power),
        cmocka_unit_test(test_value_logic_takes_booleans_only),
        cmocka_unit_test(test_value_builtins),
        cmocka_unit_test(test_value_format_matches_python_repr),
        cmocka_unit_test(test_value_order_and_hash_agree_with_equality),
        cmocka_unit_test(test_valueset_dedupes_and_sorts),
        cmocka_unit_test(test_valueset_means_are_complete),
        cmocka_unit_test(test_valueset_means_match_brute_force),
    };
    return cmocka_run_group_tests_name("value", tests, setup, teardown);
}
