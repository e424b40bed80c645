/* clio.c — see clio.h. */
#include "cli/cli.h"
#include "cli/clio.h"
#include "analysis/readout.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"

int input_format_parse(const char *s)
{
    return !strcmp(s, "text") ? 0 : !strcmp(s, "json") ? 1 : -1;
}

void input_init(InputReader *r, int argc, char **argv, FILE *in)
{
    memset(r, 0, sizeof *r);
    if (argc > 0) {
        r->argv = argv;
        r->argc = argc;
    }
    r->in = in;
}

static void free_owned(InputReader *r)
{
    for (int i = 0; i < r->nowned; i++) free(r->owned[i]);
    r->nowned = 0;
    free(r->bad);
    r->bad = NULL;
}

static char *problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return xstrdup(tmp);
}

/* One line as a JSON array of tokens into r->toks / r->owned; r->bad on failure. */
static int json_tokens(InputReader *r, size_t n)
{
    while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r')) n--;
    size_t i = 0;
    while (i < n && isspace((unsigned char)r->line[i])) i++;
    if (i == n) return 0;   /* blank: reported as empty */
    json_error_t e;
    json_t *a = json_loadb(r->line, n, JSON_DECODE_ANY, &e);
    if (!a) {
        r->bad = problem("column %d: not JSON: %s", e.column, e.text);
        return 0;
    }
    if (!json_is_array(a)) {
        r->bad = problem("expected a JSON array of tokens, like [\"a\", \"b\"], got %s",
                         json_is_object(a) ? "an object" : json_is_string(a) ? "a string" : "a scalar");
        json_decref(a);
        return 0;
    }
    size_t count = json_array_size(a);
    XGROW(r->owned, r->ownedcap, count + 1);
    XGROW(r->toks, r->tokcap, count + 1);
    for (size_t k = 0; k < count; k++) {
        json_t *v = json_array_get(a, k);
        char buf[64];
        const char *t = NULL;
        if (json_is_string(v)) {
            if (strlen(json_string_value(v)) != json_string_length(v)) {
                r->bad = problem("element %zu: the string holds a NUL character", k + 1);
                break;
            }
            t = json_string_value(v);
        } else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            t = buf;
        } else if (json_is_real(v)) {
            fmt_double(json_real_value(v), buf, sizeof buf);
            t = buf;
        } else {
            r->bad = problem("element %zu: expected a token (a string or a number), got %s", k + 1,
                             json_is_array(v) ? "an array" : json_is_object(v) ? "an object"
                                                           : json_is_null(v) ? "null" : "a boolean");
            break;
        }
        r->owned[r->nowned++] = xstrdup(t);
    }
    json_decref(a);
    if (r->bad) return 0;
    for (int k = 0; k < r->nowned; k++) r->toks[k] = r->owned[k];
    return r->nowned;
}

int input_next(InputReader *r, char ***toks, int *ntoks)
{
    if (r->done) return 0;
    free_owned(r);
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
    if (r->json && !r->has_nul) {
        *ntoks = json_tokens(r, (size_t)n);
        *toks = r->toks;
        return 1;
    }
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

void input_where(const InputReader *r, StrBuf *b)
{
    if (r->argv) sb_puts(b, "command-line input");
    else sb_printf(b, "input line %d", r->lineno);
}

const char *input_problem(const InputReader *r, int ntoks)
{
    if (r->has_nul) return "holds a NUL byte";
    if (r->bad) return r->bad;
    if (ntoks == 0) return "is empty";
    return NULL;
}

void input_free(InputReader *r)
{
    free_owned(r);
    free(r->owned);
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

void print_json_object(FILE *out, json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags);
    if (s) fprintf(out, "%s\n", s);
    free(s);
    json_decref(j);
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

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "tracc %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'tracc %s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
    const char *opt = argv[optind - 1];
    if (c == ':') return cli_usage_error(cmd, "option '%s' needs a value", opt);
    if (optopt > 0 && optopt < 256 && !(opt[0] == '-' && opt[1] == '-'))
        return cli_usage_error(cmd, "unknown option '-%c'%s", optopt,
                               isdigit(optopt) ? " (tokens that begin with '-' go after '--')" : "");
    if (optopt > 0) return cli_usage_error(cmd, "option '%s' takes no value", opt);
    return cli_usage_error(cmd, "unknown option '%s'", opt);
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

CliFileKind cli_sniff(const char *path)
{
    struct stat st;
    if (stat(path, &st)) return CLI_FILE_MISSING;
    if (S_ISDIR(st.st_mode)) return CLI_FILE_DIR;
    if (!S_ISREG(st.st_mode)) return CLI_FILE_SPECIAL;
    FILE *f = fopen(path, "rb");
    if (!f) return CLI_FILE_MISSING;
    unsigned char h[4096];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n == 0) return CLI_FILE_EMPTY;
    if (n >= 9 && h[8] == '{') {
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--) len = len << 8 | h[i];
        if (len >= 2 && len < ((uint64_t)1 << 32)) return CLI_FILE_MODEL;
    }
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = h[i];
        if (c == 0 || (c < 0x20 && !strchr("\t\n\r\f\v", c)) || c == 0x7f) return CLI_FILE_BINARY;
        if (first == n && !isspace(c)) first = i;
    }
    if (first < n && (h[first] == '{' || h[first] == '[')) return CLI_FILE_JSONL;
    if (cli_ends_with(path, ".rasp")) return CLI_FILE_RASP;
    /* words only a RASP program is likely to hold */
    static const char *const words[] = {"vocab", "max_len", "select(", "aggregate(", "selector_width(",
                                        "numerical(", "categorical(", "output"};
    char text[sizeof h + 1];
    memcpy(text, h, n);
    text[n] = 0;
    for (size_t i = 0; i < ARRAY_LEN(words); i++)
        if (strstr(text, words[i])) return CLI_FILE_RASP;
    return CLI_FILE_TEXT;
}

/* "(compile it first: tracc compile P.rasp -o P.safetensors)" for a program path. */
static void compile_hint(StrBuf *b, const char *path)
{
    size_t n = strlen(path);
    if (cli_ends_with(path, ".rasp")) n -= 5;
    sb_printf(b, "compile it first: tracc compile %s -o %.*s.safetensors", path, (int)n, path);
}

int cli_check_input(const char *cmd, const char *what, const char *path, CliWant want)
{
    CliFileKind k = cli_sniff(path);
    int err = errno;
    if (k == CLI_FILE_SPECIAL) return 0;
    if (k == CLI_FILE_MODEL ? want == CLI_WANT_MODEL
                            : (k == CLI_FILE_RASP || k == CLI_FILE_TEXT) ? want == CLI_WANT_PROGRAM
                            : k == CLI_FILE_JSONL ? want == CLI_WANT_JSONL
                            : k == CLI_FILE_EMPTY ? want == CLI_WANT_PROGRAM : 0)
        return 0;
    /* plot and finetune --data report a text file's bad lines themselves */
    if (want == CLI_WANT_JSONL && k == CLI_FILE_TEXT) return 0;
    /* a program with stray bytes: the lexer points at each one (line and column) */
    if (want == CLI_WANT_PROGRAM && k == CLI_FILE_BINARY && cli_ends_with(path, ".rasp")) return 0;
    static const char *const wanted[] = {"a RASP program", "a model file", "a JSON lines file"};
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "tracc %s: ", cmd);
    if (what) sb_printf(&b, "%s ", what);
    switch (k) {
    case CLI_FILE_MISSING: sb_printf(&b, "%s: cannot read: %s", path, strerror(err)); break;
    case CLI_FILE_DIR: sb_printf(&b, "%s is a directory, not %s", path, wanted[want]); break;
    case CLI_FILE_EMPTY: sb_printf(&b, "%s is empty, not %s", path, wanted[want]); break;
    case CLI_FILE_MODEL:
        sb_printf(&b, "%s is a model file, not %s (run it: tracc run %s TOKENS...; describe it: tracc explain %s)", path,
                  wanted[want], path, path);
        break;
    case CLI_FILE_RASP:
    case CLI_FILE_TEXT:
        sb_printf(&b, "%s is %s, not %s (", path, k == CLI_FILE_RASP ? "a RASP program" : "a text file", wanted[want]);
        if (want == CLI_WANT_MODEL && k == CLI_FILE_RASP) compile_hint(&b, path);
        else if (want == CLI_WANT_MODEL) sb_puts(&b, "model files are written by tracc compile and tracc finetune");
        else sb_printf(&b, "check it: tracc check %s; run it: tracc eval %s TOKENS...", path, path);
        sb_putc(&b, ')');
        break;
    case CLI_FILE_JSONL:
        sb_printf(&b, "%s is a JSON file, not %s (a fine-tuning log is drawn by: tracc plot %s -o FILE.svg)", path,
                  wanted[want], path);
        break;
    case CLI_FILE_SPECIAL: break;   /* returned above */
    case CLI_FILE_BINARY:
        sb_printf(&b, "%s is a binary file, not %s%s", path, wanted[want],
                  want == CLI_WANT_MODEL ? " (a model file begins with an 8-byte header length, then '{')" : "");
        break;
    }
    fflush(stdout);
    fprintf(stderr, "%s\n", b.s);
    sb_free(&b);
    return 1;
}

int cli_is_model_file(const char *path) { return cli_sniff(path) == CLI_FILE_MODEL; }

int cli_check_len_at(const char *cmd, const char *len_s, const char *at_s)
{
    StrBuf err;
    sb_init(&err);
    int lo, hi, *at = xmalloc(sizeof(int) * (RASP_MAX_LEN + 1)), rc = 0;
    if (len_s && ro_parse_len(len_s, RASP_MAX_LEN, &lo, &hi, &err))
        rc = cli_usage_error(cmd, "--len expects a length N or MIN-MAX within 1..%d, got '%s'", RASP_MAX_LEN, len_s);
    else if (at_s && ro_parse_at(at_s, RASP_MAX_LEN, at, &err) < 0)
        rc = cli_usage_error(cmd, "--at expects RASP indices within 0..%d like 1 or 0,2,4-6, got '%s'", RASP_MAX_LEN - 1,
                             at_s);
    free(at);
    sb_free(&err);
    return rc;
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

void trace_table_row(TraceTable *t, const char *label, const Value *vals, int n)
{
    XGROW(t->rows, t->cap, (size_t)t->nrows + 1);
    TraceRow *r = &t->rows[t->nrows++];
    memset(r, 0, sizeof *r);
    r->label = xstrdup(label);
    r->n = n;
    r->cells = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < n; i++) {
        sb_clear(&b);
        val_format(vals[i], &b);
        r->cells[i] = xstrdup(b.s);
    }
    sb_free(&b);
}

void trace_table_section(TraceTable *t, const char *text)
{
    XGROW(t->rows, t->cap, (size_t)t->nrows + 1);
    TraceRow *r = &t->rows[t->nrows++];
    memset(r, 0, sizeof *r);
    r->section = xstrdup(text);
}

void trace_table_print(const TraceTable *t, FILE *out)
{
    size_t lw = 0;
    int ncol = 0;
    for (int i = 0; i < t->nrows; i++) {
        if (t->rows[i].label && strlen(t->rows[i].label) > lw) lw = strlen(t->rows[i].label);
        if (t->rows[i].n > ncol) ncol = t->rows[i].n;
    }
    size_t *w = xcalloc((size_t)(ncol ? ncol : 1), sizeof *w);
    for (int i = 0; i < t->nrows; i++)
        for (int c = 0; c < t->rows[i].n; c++)
            if (strlen(t->rows[i].cells[c]) > w[c]) w[c] = strlen(t->rows[i].cells[c]);
    for (int i = 0; i < t->nrows; i++) {
        const TraceRow *r = &t->rows[i];
        if (r->section) {
            fprintf(out, "%s\n", r->section);
            continue;
        }
        fprintf(out, "%-*s", (int)lw, r->label);
        for (int c = 0; c < r->n; c++) fprintf(out, "  %*s", (int)w[c], r->cells[c]);
        fputc('\n', out);
    }
    free(w);
}

void trace_table_free(TraceTable *t)
{
    for (int i = 0; i < t->nrows; i++) {
        free(t->rows[i].label);
        free(t->rows[i].section);
        for (int c = 0; c < t->rows[i].n; c++) free(t->rows[i].cells[c]);
        free(t->rows[i].cells);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}
