/* valops.c — the .rasp operators on values with Python's semantics (spec Decision 2); see
 * valops.h.
 *
 * Integers are 64-bit and never wrap: an overflow is an error, where Python would grow a
 * bignum, because a compiled model cannot hold a bignum either. Floats follow IEEE as in
 * Python (1e308 * 10 is inf), except `**`, which raises on overflow as Python does. */
#include "compiler/front/valops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void type_error(StrBuf *err, AstOp op, Value a, Value b)
{
    if (!err) return;
    sb_printf(err, "cannot apply '%s' to %s and %s", ast_op_name(op), val_kind_article(a), val_kind_article(b));
}

/* ---------- arithmetic ---------- */

static int int_pow(int64_t base, int64_t exp, int64_t *out)
{
    int64_t result = 1;
    while (exp > 0) {
        if (exp & 1) {
            if (__builtin_mul_overflow(result, base, &result)) return 0;
        }
        exp >>= 1;
        if (exp > 0 && __builtin_mul_overflow(base, base, &base)) {
            /* base overflowed, but that only matters if it is used again */
            return 0;
        }
    }
    *out = result;
    return 1;
}

/* Python's float divmod (Objects/floatobject.c): floor division and a modulo with the
 * sign of the divisor. */
static void float_divmod(double vx, double wx, double *floordiv, double *mod)
{
    double m = fmod(vx, wx);
    double div = (vx - m) / wx;
    if (m != 0.0) {
        if ((wx < 0) != (m < 0)) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = copysign(0.0, wx);
    }
    double fd;
    if (div != 0.0) {
        fd = floor(div);
        if (div - fd > 0.5) fd += 1.0;
    } else {
        fd = copysign(0.0, vx / wx);
    }
    *floordiv = fd;
    *mod = m;
}

static int arith_int(AstOp op, int64_t x, int64_t y, Value *out, StrBuf *err)
{
    int64_t r;
    switch (op) {
    case OP_ADD:
        if (__builtin_add_overflow(x, y, &r)) goto overflow;
        *out = val_int(r);
        return 1;
    case OP_SUB:
        if (__builtin_sub_overflow(x, y, &r)) goto overflow;
        *out = val_int(r);
        return 1;
    case OP_MUL:
        if (__builtin_mul_overflow(x, y, &r)) goto overflow;
        *out = val_int(r);
        return 1;
    case OP_DIV:
        if (y == 0) goto divzero;
        *out = val_float((double)x / (double)y);
        return 1;
    case OP_FLOORDIV:
    case OP_MOD: {
        if (y == 0) {
            if (err) sb_puts(err, op == OP_MOD ? "modulo by zero" : "division by zero");
            return 0;
        }
        if (y == -1) {
            /* INT64_MIN / -1 overflows in C; x % -1 is always 0 */
            if (op == OP_MOD) { *out = val_int(0); return 1; }
            if (x == INT64_MIN) goto overflow;
            *out = val_int(-x);
            return 1;
        }
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
            q -= 1;
            m += y;
        }
        *out = val_int(op == OP_MOD ? m : q);
        return 1;
    }
    case OP_POW:
        if (y >= 0) {
            if (!int_pow(x, y, &r)) goto overflow;
            *out = val_int(r);
            return 1;
        }
        if (x == 0) {
            if (err) sb_puts(err, "0 cannot be raised to a negative power");
            return 0;
        }
        *out = val_float(pow((double)x, (double)y));
        return 1;
    default:
        break;
    }
    if (err) sb_puts(err, "unsupported operator");
    return 0;
overflow:
    if (err) sb_puts(err, "integer overflow");
    return 0;
divzero:
    if (err) sb_puts(err, "division by zero");
    return 0;
}

static int arith_float(AstOp op, double x, double y, Value *out, StrBuf *err)
{
    double fd, m;
    switch (op) {
    case OP_ADD: *out = val_float(x + y); return 1;
    case OP_SUB: *out = val_float(x - y); return 1;
    case OP_MUL: *out = val_float(x * y); return 1;
    case OP_DIV:
        if (y == 0.0) break;
        *out = val_float(x / y);
        return 1;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0.0) {
            if (err) sb_puts(err, op == OP_MOD ? "modulo by zero" : "division by zero");
            return 0;
        }
        float_divmod(x, y, &fd, &m);
        *out = val_float(op == OP_MOD ? m : fd);
        return 1;
    case OP_POW: {
        if (x == 0.0 && y < 0.0) {
            if (err) sb_puts(err, "0.0 cannot be raised to a negative power");
            return 0;
        }
        if (x < 0.0 && isfinite(y) && y != floor(y)) {
            if (err) sb_puts(err, "a negative number raised to a fractional power is not a real number");
            return 0;
        }
        double r = pow(x, y);
        if (isinf(r) && isfinite(x) && isfinite(y)) {
            if (err) sb_puts(err, "float overflow");
            return 0;
        }
        *out = val_float(r);
        return 1;
    }
    default:
        if (err) sb_puts(err, "unsupported operator");
        return 0;
    }
    if (err) sb_puts(err, "division by zero");
    return 0;
}

static int val_compare_op(AstOp op, Value a, Value b, Value *out, StrBuf *err)
{
    if (op == OP_EQ || op == OP_NE) {
        int eq = val_equal(a, b);
        *out = val_bool(op == OP_EQ ? eq : !eq);
        return 1;
    }
    int c;
    if (val_is_number(a) && val_is_number(b)) {
        c = val_num_cmp(a, b);
        if (c == 2) { *out = val_bool(0); return 1; }   /* NaN: every ordering is false */
    } else if (a.kind == VAL_STR && b.kind == VAL_STR) {
        c = strcmp(a.u.s, b.u.s);
        c = (c > 0) - (c < 0);
    } else {
        if (err) sb_printf(err, "cannot compare %s and %s with '%s'", val_kind_article(a), val_kind_article(b), ast_op_name(op));
        return 0;
    }
    int r = 0;
    switch (op) {
    case OP_LT: r = c < 0; break;
    case OP_LE: r = c <= 0; break;
    case OP_GT: r = c > 0; break;
    case OP_GE: r = c >= 0; break;
    default: break;
    }
    *out = val_bool(r);
    return 1;
}

int val_binary(AstOp op, Value a, Value b, Value *out, StrBuf *err, Arena *arena)
{
    switch (op) {
    case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        return val_compare_op(op, a, b, out, err);
    case OP_AND:
    case OP_OR: {
        int x, y;
        if (!val_as_bool(a, &x) || !val_as_bool(b, &y)) {
            Value bad = a.kind == VAL_BOOL ? b : a;
            if (err) sb_printf(err, "'%s' takes booleans, not %s", ast_op_name(op), val_kind_article(bad));
            return 0;
        }
        *out = val_bool(op == OP_AND ? (x && y) : (x || y));
        return 1;
    }
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_FLOORDIV: case OP_MOD: case OP_POW:
        break;
    default:
        if (err) sb_printf(err, "'%s' is not a binary operator", ast_op_name(op));
        return 0;
    }
    if (a.kind == VAL_STR && b.kind == VAL_STR && op == OP_ADD) {
        size_t la = strlen(a.u.s), lb = strlen(b.u.s);
        char *s = arena_alloc(arena, la + lb + 1);
        memcpy(s, a.u.s, la);
        memcpy(s + la, b.u.s, lb + 1);
        *out = val_str(s);
        return 1;
    }
    if (!val_is_number(a) || !val_is_number(b)) {
        type_error(err, op, a, b);
        return 0;
    }
    if (a.kind != VAL_FLOAT && b.kind != VAL_FLOAT) return arith_int(op, a.u.i, b.u.i, out, err);
    return arith_float(op, val_as_double(a), val_as_double(b), out, err);
}

int val_unary(AstOp op, Value a, Value *out, StrBuf *err)
{
    if (op == OP_NOT) {
        int b;
        if (!val_as_bool(a, &b)) {
            if (err) sb_printf(err, "'not' takes a boolean, not %s", val_kind_article(a));
            return 0;
        }
        *out = val_bool(!b);
        return 1;
    }
    if (op == OP_NEG) {
        if (a.kind == VAL_FLOAT) { *out = val_float(-a.u.f); return 1; }
        if (a.kind == VAL_INT || a.kind == VAL_BOOL) {
            if (a.u.i == INT64_MIN) {
                if (err) sb_puts(err, "integer overflow");
                return 0;
            }
            *out = val_int(-a.u.i);
            return 1;
        }
        if (err) sb_printf(err, "cannot apply unary '-' to %s", val_kind_article(a));
        return 0;
    }
    if (err) sb_printf(err, "'%s' is not a unary operator", ast_op_name(op));
    return 0;
}

