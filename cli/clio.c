/* clio.c — see clio.h. */
#include "cli/cli.h"
#include "cli/clio.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void input_init(InputReader *r, int argc, char **argv, FILE *in)
{
    memset(r, 0, sizeof *r);
    if (argc > 0) {
        r->argv = argv;
        r->argc = argc;
    }
    r->in = in;
}

int input_next(InputReader *r, char ***toks, int *ntoks)
{
    if (r->done) return 0;
    if (r->argv) {
        r->done = 1;
        r->lineno = 1;
        *toks = r->argv;
        *ntoks = r->argc;
        return 1;
    }
    ssize_t n = getline(&r->line, &r->cap, r->in);
    if (n < 0) {
        r->done = 1;
        return 0;
    }
    r->lineno++;
    /* C strings end at a NUL: the bytes after one would be dropped silently */
    r->has_nul = memchr(r->line, 0, (size_t)n) != NULL;
    int count = 0;
    char *p = r->line;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        XGROW(r->toks, r->tokcap, (size_t)count + 1);
        r->toks[count++] = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (*p) *p++ = 0;
    }
    *toks = r->toks;
    *ntoks = count;
    return 1;
}

void input_free(InputReader *r)
{
    free(r->line);
    free(r->toks);
    memset(r, 0, sizeof *r);
}

void print_json_value(FILE *out, Value v)
{
    char buf[64];
    switch (v.kind) {
    case VAL_NONE: fputs("null", out); break;
    case VAL_BOOL: fputs(v.u.i ? "true" : "false", out); break;
    case VAL_INT: fprintf(out, "%lld", (long long)v.u.i); break;
    case VAL_FLOAT:
        if (!isfinite(v.u.f)) { fputs("null", out); break; }   /* JSON has no inf/nan */
        fmt_double(v.u.f, buf, sizeof buf);
        fputs(buf, out);
        break;
    case VAL_STR: {
        json_t *s = json_string(v.u.s);
        char *t = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        fputs(t ? t : "null", out);
        free(t);
        json_decref(s);
        break;
    }
    }
}

void print_json_array(FILE *out, const Value *vals, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", out);
        print_json_value(out, vals[i]);
    }
    fputc(']', out);
}

void print_row(FILE *out, const Value *vals, int n, int json)
{
    StrBuf b;
    sb_init(&b);
    if (json) fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i) fputs(json ? ", " : " ", out);
        if (json) {
            print_json_value(out, vals[i]);
        } else {
            sb_clear(&b);
            val_format(vals[i], &b);
            fputs(b.s, out);
        }
    }
    if (json) fputc(']', out);
    fputc('\n', out);
    sb_free(&b);
}

int cli_usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "tracc %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'tracc %s --help'.\n", cmd);
    return 2;
}

int cli_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-') return -1;
    *out = v;
    return 0;
}

int cli_is_model_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char h[9];
    int ok = fread(h, 1, 9, f) == 9 && h[8] == '{';
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | h[i];
    fclose(f);
    return ok && n >= 2 && n < ((uint64_t)1 << 32);
}

int cli_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int cli_table_budget(const char *cmd, const char *arg, long long *out)
{
    uint64_t v;
    if (cli_parse_u64(arg, &v) || v < 1 || v > (1ULL << 40))
        return cli_usage_error(cmd, "--table-budget must be a whole number from 1 to 2^40, got '%s'", arg);
    *out = (long long)v;
    return 0;
}
