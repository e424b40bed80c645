/* scalar.c — builtins and compiled lambda bodies; see scalar.h. */
#include "scalar.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const builtin_names[BI_COUNT] = {"min", "max", "abs", "int", "float", "str"};

int scalar_builtin(const char *name)
{
    for (int i = 0; i < BI_COUNT; i++)
        if (!strcmp(name, builtin_names[i])) return i;
    return BI_NONE;
}

const char *scalar_builtin_name(int b) { return b >= 0 && b < BI_COUNT ? builtin_names[b] : "?"; }

int scalar_builtin_arity(int b, int nargs, StrBuf *err)
{
    if (b == BI_MIN || b == BI_MAX) {
        if (nargs >= 2) return 1;
        if (err) sb_printf(err, "%s takes at least 2 arguments, got %d", builtin_names[b], nargs);
        return 0;
    }
    if (nargs == 1) return 1;
    if (err) sb_printf(err, "%s takes 1 argument, got %d", scalar_builtin_name(b), nargs);
    return 0;
}

/* Python's int(str): optional whitespace, sign, decimal digits (underscores between
 * digits allowed), optional whitespace. */
static int parse_int_text(const char *s, int64_t *out)
{
    while (isspace((unsigned char)*s)) s++;
    int neg = 0;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (!isdigit((unsigned char)*s)) return 0;
    uint64_t acc = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (isdigit((unsigned char)*s) || (*s == '_' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[-1]))) {
        if (*s != '_') {
            unsigned d = (unsigned)(*s - '0');
            if (acc > (limit - d) / 10) return -1;
            acc = acc * 10 + d;
        }
        s++;
    }
    while (isspace((unsigned char)*s)) s++;
    if (*s) return 0;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 1;
}

/* Python's float(str): decimal or scientific notation, inf, infinity, nan. */
static int parse_float_text(const char *s, double *out)
{
    while (isspace((unsigned char)*s)) s++;
    const char *t = s;
    if (*t == '+' || *t == '-') t++;
    if (!strncasecmp(t, "nan", 3) || !strncasecmp(t, "inf", 3)) {
        size_t n = !strncasecmp(t, "infinity", 8) ? 8 : 3;
        const char *e = t + n;
        while (isspace((unsigned char)*e)) e++;
        if (*e) return 0;
        double v = tolower((unsigned char)*t) == 'n' ? NAN : INFINITY;
        *out = *s == '-' ? -v : v;
        return 1;
    }
    /* only digits, one '.', and an exponent: keeps strtod's hex forms out */
    int digits = 0;
    const char *p = t;
    while (isdigit((unsigned char)*p)) { p++; digits++; }
    if (*p == '.') { p++; while (isdigit((unsigned char)*p)) { p++; digits++; } }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    const char *end = p;
    while (isspace((unsigned char)*p)) p++;
    if (*p) return 0;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e != end) return 0;
    *out = v;   /* overflow gives inf, as Python's float('1e999') */
    return 1;
}

int scalar_call(int b, const Value *args, int nargs, Value *out, StrBuf *err, Arena *arena)
{
    if (!scalar_builtin_arity(b, nargs, err)) return 0;
    Value a = args[0];
    switch (b) {
    case BI_MIN:
    case BI_MAX: {
        Value best = a;
        for (int i = 1; i < nargs; i++) {
            Value r;
            /* Python keeps the first of equal candidates */
            if (!val_binary(b == BI_MIN ? OP_LT : OP_GT, args[i], best, &r, err, arena)) return 0;
            if (r.u.i) best = args[i];
        }
        *out = best;
        return 1;
    }
    case BI_ABS:
        if (a.kind == VAL_FLOAT) { *out = val_float(fabs(a.u.f)); return 1; }
        if (a.kind == VAL_INT || a.kind == VAL_BOOL) {
            if (a.u.i == INT64_MIN) { if (err) sb_puts(err, "integer overflow"); return 0; }
            *out = val_int(a.u.i < 0 ? -a.u.i : a.u.i);
            return 1;
        }
        if (err) sb_printf(err, "abs takes a number, not %s", val_kind_article(a));
        return 0;
    case BI_INT:
        if (a.kind == VAL_INT || a.kind == VAL_BOOL) { *out = val_int(a.u.i); return 1; }
        if (a.kind == VAL_FLOAT) {
            double t = trunc(a.u.f);
            if (isnan(t) || isinf(t)) {
                if (err) sb_printf(err, "cannot convert %s to an int", isnan(t) ? "nan" : "inf");
                return 0;
            }
            if (t >= 9223372036854775808.0 || t < -9223372036854775808.0) {
                if (err) sb_puts(err, "integer overflow");
                return 0;
            }
            *out = val_int((int64_t)t);
            return 1;
        }
        if (a.kind == VAL_STR) {
            int64_t v;
            int r = parse_int_text(a.u.s, &v);
            if (r == 1) { *out = val_int(v); return 1; }
            if (err) {
                if (r < 0) sb_puts(err, "integer overflow");
                else {
                    sb_puts(err, "int() cannot read ");
                    val_format_quoted(a, err);
                    sb_puts(err, " as an integer");
                }
            }
            return 0;
        }
        if (err) sb_printf(err, "int takes a number or a string, not %s", val_kind_article(a));
        return 0;
    case BI_FLOAT:
        if (val_is_number(a)) { *out = val_float(val_as_double(a)); return 1; }
        if (a.kind == VAL_STR) {
            double v;
            if (parse_float_text(a.u.s, &v)) { *out = val_float(v); return 1; }
            if (err) {
                sb_puts(err, "float() cannot read ");
                val_format_quoted(a, err);
                sb_puts(err, " as a number");
            }
            return 0;
        }
        if (err) sb_printf(err, "float takes a number or a string, not %s", val_kind_article(a));
        return 0;
    case BI_STR: {
        if (a.kind == VAL_STR) { *out = a; return 1; }
        StrBuf sb;
        sb_init(&sb);
        val_format(a, &sb);
        *out = val_str(arena_strndup(arena, sb.s, sb.len));
        sb_free(&sb);
        return 1;
    }
    default:
        if (err) sb_puts(err, "unknown builtin");
        return 0;
    }
}

int lnode_eval(const LNode *n, const Value *params, Value *out, StrBuf *err, Span *where, Arena *scratch)
{
    Value a, b;
    switch (n->kind) {
    case LN_CONST: *out = n->v; return 1;
    case LN_PARAM: *out = params[n->param]; return 1;
    case LN_UNARY:
        if (!lnode_eval(n->kids[0], params, &a, err, where, scratch)) return 0;
        if (!val_unary(n->op, a, out, err)) { *where = n->span; return 0; }
        return 1;
    case LN_BINARY:
        if (!lnode_eval(n->kids[0], params, &a, err, where, scratch)) return 0;
        if (n->op == OP_AND || n->op == OP_OR) {
            int x;
            if (!val_as_bool(a, &x)) {
                sb_printf(err, "'%s' takes booleans, not %s", ast_op_name(n->op), val_kind_article(a));
                *where = n->kids[0]->span;
                return 0;
            }
            /* Python short-circuits: the right side runs only when it decides */
            if ((n->op == OP_AND && !x) || (n->op == OP_OR && x)) { *out = a; return 1; }
            if (!lnode_eval(n->kids[1], params, &b, err, where, scratch)) return 0;
            if (b.kind != VAL_BOOL) {
                sb_printf(err, "'%s' takes booleans, not %s", ast_op_name(n->op), val_kind_article(b));
                *where = n->kids[1]->span;
                return 0;
            }
            *out = b;
            return 1;
        }
        if (!lnode_eval(n->kids[1], params, &b, err, where, scratch)) return 0;
        if (!val_binary(n->op, a, b, out, err, scratch)) { *where = n->span; return 0; }
        return 1;
    case LN_COND: {
        /* kids[0] if kids[1] else kids[2] */
        Value c;
        int t;
        if (!lnode_eval(n->kids[1], params, &c, err, where, scratch)) return 0;
        if (!val_as_bool(c, &t)) {
            sb_printf(err, "the condition of 'if' must be a boolean, not %s", val_kind_article(c));
            *where = n->kids[1]->span;
            return 0;
        }
        return lnode_eval(n->kids[t ? 0 : 2], params, out, err, where, scratch);
    }
    case LN_CALL: {
        Value args[16];
        Value *argv = n->nkids <= 16 ? args : xmalloc(sizeof(Value) * (size_t)n->nkids);
        int ok = 1;
        for (int i = 0; i < n->nkids && ok; i++)
            ok = lnode_eval(n->kids[i], params, &argv[i], err, where, scratch);
        if (ok && !scalar_call(n->builtin, argv, n->nkids, out, err, scratch)) {
            *where = n->span;
            ok = 0;
        }
        if (argv != args) free(argv);
        return ok;
    }
    }
    sb_puts(err, "internal error: bad lambda node");
    *where = n->span;
    return 0;
}
