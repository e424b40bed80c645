/* value.c — scalar values with Python's semantics (spec Decision 2); see value.h. The
 * language's operators on them are compiler/front/valops.c. */
#include "runtime/value.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------- kinds and names for messages ---------- */

const char *val_kind_article(Value v)
{
    switch (v.kind) {
    case VAL_NONE: return "None";
    case VAL_BOOL: return "a bool";
    case VAL_INT: return "an int";
    case VAL_FLOAT: return "a float";
    case VAL_STR: return "a string";
    }
    return "a value";
}

double val_as_double(Value v)
{
    switch (v.kind) {
    case VAL_BOOL:
    case VAL_INT: return (double)v.u.i;
    case VAL_FLOAT: return v.u.f;
    default: return 0.0;
    }
}

/* ---------- exact comparison of numbers ---------- */

/* Compare an int64 with a double exactly (Python compares int and float exactly, and so
 * do we: 2**53 + 1 != 2.0**53). Returns -1, 0, 1, or 2 if f is NaN (unordered). */
static int cmp_int_float(int64_t i, double f)
{
    if (isnan(f)) return 2;
    if (f >= 9223372036854775808.0) return -1;     /* f >= 2^63 > any int64 */
    if (f < -9223372036854775808.0) return 1;
    double t = trunc(f);
    int64_t ti = (int64_t)t;                      /* exact: |t| <= 2^63 and t integral */
    if (i < ti) return -1;
    if (i > ti) return 1;
    /* integer parts equal: the fraction decides */
    if (f > t) return -1;
    if (f < t) return 1;
    return 0;
}

int val_num_cmp(Value a, Value b)
{
    int af = a.kind == VAL_FLOAT, bf = b.kind == VAL_FLOAT;
    if (!af && !bf) return (a.u.i > b.u.i) - (a.u.i < b.u.i);
    if (af && bf) {
        if (isnan(a.u.f) || isnan(b.u.f)) return 2;
        return (a.u.f > b.u.f) - (a.u.f < b.u.f);
    }
    if (af) {
        int c = cmp_int_float(b.u.i, a.u.f);
        return c == 2 ? 2 : -c;
    }
    return cmp_int_float(a.u.i, b.u.f);
}

int val_equal(Value a, Value b)
{
    if (val_is_number(a) && val_is_number(b)) return val_num_cmp(a, b) == 0;
    if (a.kind != b.kind) return 0;
    if (a.kind == VAL_NONE) return 1;
    if (a.kind == VAL_STR) return strcmp(a.u.s, b.u.s) == 0;
    return 0;
}

static int kind_rank(Value v)
{
    if (v.kind == VAL_NONE) return 0;
    if (val_is_number(v)) return 1;
    return 2;
}

int val_order(Value a, Value b)
{
    int ra = kind_rank(a), rb = kind_rank(b);
    if (ra != rb) return ra < rb ? -1 : 1;
    if (ra == 0) return 0;
    if (ra == 2) {
        int c = strcmp(a.u.s, b.u.s);   /* strcmp compares as unsigned char: bytewise */
        return (c > 0) - (c < 0);
    }
    int c = val_num_cmp(a, b);
    if (c != 2) return c;
    /* NaN sorts after every other number and equal to itself, so sorting is total. */
    int an = a.kind == VAL_FLOAT && isnan(a.u.f), bn = b.kind == VAL_FLOAT && isnan(b.u.f);
    return an - bn;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t val_hash(Value a)
{
    switch (a.kind) {
    case VAL_NONE: return 0x9e3779b97f4a7c15ULL;
    case VAL_BOOL:
    case VAL_INT: return mix64((uint64_t)a.u.i);
    case VAL_FLOAT: {
        double f = a.u.f;
        if (isnan(f)) return 0x7ff8000000000000ULL;
        /* an integral float hashes like the int it equals */
        if (f == trunc(f) && f >= -9223372036854775808.0 && f < 9223372036854775808.0)
            return mix64((uint64_t)(int64_t)f);
        uint64_t bits;
        memcpy(&bits, &f, sizeof bits);
        return mix64(bits ^ 0x5555555555555555ULL);
    }
    case VAL_STR: {
        uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
        for (const unsigned char *p = (const unsigned char *)a.u.s; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        return mix64(h);
    }
    }
    return 0;
}

int val_as_bool(Value v, int *b)
{
    if (v.kind != VAL_BOOL) return 0;
    *b = v.u.i != 0;
    return 1;
}

/* ---------- text ---------- */

void val_format(Value v, StrBuf *out)
{
    switch (v.kind) {
    case VAL_NONE: sb_puts(out, "None"); break;
    case VAL_BOOL: sb_puts(out, v.u.i ? "true" : "false"); break;
    case VAL_INT: sb_printf(out, "%lld", (long long)v.u.i); break;
    case VAL_FLOAT: {
        char buf[64];
        fmt_double(v.u.f, buf, sizeof buf);   /* Python's repr */
        sb_puts(out, buf);
        break;
    }
    case VAL_STR: sb_puts(out, v.u.s); break;
    }
}

void val_format_quoted(Value v, StrBuf *out)
{
    if (v.kind != VAL_STR) {
        val_format(v, out);
        return;
    }
    sb_putc(out, '"');
    for (const unsigned char *p = (const unsigned char *)v.u.s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(out, "\\\""); break;
        case '\\': sb_puts(out, "\\\\"); break;
        case '\n': sb_puts(out, "\\n"); break;
        case '\t': sb_puts(out, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) sb_printf(out, "\\x%02x", *p);
            else sb_putc(out, (char)*p);
        }
    }
    sb_putc(out, '"');
}
