/* sweepdc.c — the report's reading of `tracc decompile --json` (a run's after.decompile):
 * per run the changed ops with their -/+ lines, the output fidelity on training-distribution
 * and uniform inputs, and a reading (rewritten, wrapper, unchanged, not classified, unused
 * capacity) by the rule of docs/report.md; per cell how many seeds give each distinct diff,
 * the mean fidelities and the readings counted. Only the keys docs/decompile.md lists are
 * read, each defensively: a key that is missing or of another type counts as absent. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/sweeprep_int.h"

/* A program that reproduces less of the model than this on training inputs is not read. */
#define DC_MIN_FIDELITY 0.7

/* A component the program leaves unused that changes this share of the answers when zeroed
 * (decompile's "idle") carries the answer: the run is read as "unused capacity". */
#define DC_IDLE_SHARE 0.5

const char *const srep_dc_readings[SREP_NDC] = {"rewritten", "wrapper", "unchanged", "not classified",
                                                "unused capacity"};

/* ---- text ---- */

static int ident_char(int c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* One program line as the report shows it: the comment (a # outside a string) and the
 * trailing ';' removed, whitespace runs collapsed to one space. */
static char *norm_line(const char *s, size_t n)
{
    StrBuf b;
    sb_init(&b);
    int in_str = 0, space = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!in_str && c == '#') break;
        if (c == '"') in_str = !in_str;
        if (!in_str && isspace((unsigned char)c)) {
            space = 1;
            continue;
        }
        if (space && b.len) sb_putc(&b, ' ');
        space = 0;
        sb_putc(&b, c);
    }
    while (b.len && (b.s[b.len - 1] == ';' || b.s[b.len - 1] == ' ')) b.s[--b.len] = 0;
    return srep_take(&b);
}

/* The name a statement assigns ("NAME = ..."; not "=="), or NULL; *rhs after the '='. */
static char *lhs_name(const char *s, const char **rhs)
{
    while (*s == ' ') s++;
    size_t n = 0;
    while (ident_char(s[n])) n++;
    if (!n || isdigit((unsigned char)s[0])) return NULL;
    const char *p = s + n;
    while (*p == ' ') p++;
    if (p[0] != '=' || p[1] == '=') return NULL;
    if (rhs) *rhs = p + 1;
    return xstrndup(s, n);
}

/* Does text mention identifier name (outside strings)? */
static int mentions(const char *text, const char *name)
{
    size_t n = strlen(name);
    int in_str = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '"') in_str = !in_str;
        if (in_str || (p > text && ident_char(p[-1]))) continue;
        if (!strncmp(p, name, n) && !ident_char(p[n])) return 1;
    }
    return 0;
}

static char *strip_spaces(const char *s)
{
    char *r = xmalloc(strlen(s) + 1), *q = r;
    for (; *s; s++)
        if (*s != ' ') *q++ = *s;
    *q = 0;
    return r;
}

/* A lookup table's text `{k: v, ..., else: d}`: its entries' keys and values, spaces removed
 * (the else entry has key "else"). Returns the count; 0 when t is not a table. */
static int lookup_entries(const char *t, char ***keys, char ***vals)
{
    int n = 0;
    *keys = *vals = NULL;
    if (t[0] != '{') return 0;
    /* the values: after each top-level ':' up to the next top-level ',' or the end */
    int d = 0, in_str = 0;
    for (const char *p = t + 1, *k = t + 1, *v = NULL; *p; p++) {
        if (*p == '"') in_str = !in_str;
        if (in_str) continue;
        if (*p == '(' || *p == '[' || *p == '{') d++;
        else if ((*p == ')' || *p == ']' || *p == '}') && d > 0) d--;
        else if (d == 0 && *p == ':' && !v) v = p + 1;
        else if (d == 0 && (*p == ',' || *p == '}')) {
            if (v) {
                char *key = xstrndup(k, (size_t)(v - 1 - k)), *val = xstrndup(v, (size_t)(p - v));
                *keys = xrealloc(*keys, sizeof(char *) * (size_t)(n + 1));
                *vals = xrealloc(*vals, sizeof(char *) * (size_t)(n + 1));
                (*keys)[n] = strip_spaces(key), (*vals)[n] = strip_spaces(val);
                free(key), free(val);
                n++;
            }
            k = p + 1, v = NULL;
            if (*p == '}') break;
        }
    }
    return n;
}

static void entries_free(char **keys, char **vals, int n)
{
    for (int i = 0; i < n; i++) free(keys[i]), free(vals[i]);
    free(keys), free(vals);
}

/* Does map function f (its text) ignore its input: `lambda x: BODY` without x in BODY, or a
 * table {k: v, ..., else: v} whose values are all the same? *near: a table whose `else` value
 * is that of all but at most one listed entry (the text-only reading of "nearly constant",
 * docs/report.md). */
static int constant_fn(const char *f, size_t n, int *near)
{
    char *t = xstrndup(f, n);
    int r = 0;
    char *colon = strchr(t, ':');
    if (!strncmp(t, "lambda", 6) && colon) {
        char *param = xstrndup(t + 6, (size_t)(colon - t - 6)), *pn = strip_spaces(param);
        r = *pn && !mentions(colon + 1, pn);
        free(param), free(pn);
    } else if (t[0] == '{') {
        char **keys, **vals;
        int ne = lookup_entries(t, &keys, &vals), same = 1, other = 0;
        const char *dflt = NULL;
        for (int i = 0; i < ne; i++) {
            same &= !strcmp(vals[0], vals[i]);
            if (!strcmp(keys[i], "else")) dflt = vals[i];
        }
        for (int i = 0; i < ne && dflt; i++) other += strcmp(keys[i], "else") && strcmp(vals[i], dflt);
        r = ne && same;
        if (dflt && other <= 1) *near = 1;
        entries_free(keys, vals, ne);
    }
    free(t);
    return r;
}

/* The length of the literal at s (a number, a "string", true, false), 0 when there is none. */
static size_t literal_len(const char *s)
{
    const char *p = s;
    if (*p == '"') {
        p = strchr(p + 1, '"');
        return p ? (size_t)(p + 1 - s) : 0;
    }
    if (!strncmp(p, "true", 4) && !ident_char(p[4])) return 4;
    if (!strncmp(p, "false", 5) && !ident_char(p[5])) return 5;
    if (*p == '-') p++;
    const char *d = p;
    while (isdigit((unsigned char)*p) || *p == '.') p++;
    return p == d || ident_char(*p) ? 0 : (size_t)(p - s);
}

/* Where the operand that ends just before c[i] starts: back over brackets and strings to the
 * enclosing '(' or ',' or the assignment's '='; SIZE_MAX when a top-level operator comes first
 * (`a + b * 2`: `* 2` applies to b alone, not to the result). */
static size_t operand_start(const char *c, size_t i)
{
    int d = 0;
    size_t j = i;
    for (; j > 0; j--) {
        char ch = c[j - 1];
        if (ch == '"') {
            while (j > 1 && c[j - 2] != '"') j--;
            if (j > 1) j--;
            continue;
        }
        if (ch == ')' || ch == ']' || ch == '}') d++;
        else if (ch == '(' || ch == '[' || ch == '{') {
            if (d == 0) break;
            d--;
        } else if (d == 0 && ch == ',') break;
        else if (d == 0 && ch == '=' && j > 1 && ident_char(c[j - 2]) && c[j] != '=') break;   /* NAME = */
        else if (d == 0 && strchr("+-*/%<>=!", ch)) return SIZE_MAX;
    }
    return j;
}

/* The same for a map written as an operator and a constant, the way tracc decompile prints an
 * exact arithmetic or comparison map (`selector_width(bin_idx) + 1`, `count_a == 3`): plus
 * (spaces ignored) with one `OP CONST` after a whole operand removed, and the operand's own
 * parentheses if it has them, equals minus. *constant for `* 0`. */
static int op_added(const char *minus, const char *plus, int *constant)
{
    static const char *const ops[] = {"//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "<", ">"};
    char *m = strip_spaces(minus), *c = strip_spaces(plus);
    int ok = 0, in_str = 0;
    for (size_t i = 0; c[i] && !ok; i++) {
        if (c[i] == '"') in_str = !in_str;
        if (in_str || i == 0 || !(ident_char(c[i - 1]) || strchr(")]\"", c[i - 1]))) continue;
        size_t k = 0;
        for (size_t o = 0; o < ARRAY_LEN(ops) && !k; o++)
            if (!strncmp(c + i, ops[o], strlen(ops[o]))) k = i + strlen(ops[o]);
        size_t lit = k ? literal_len(c + k) : 0, j = lit ? operand_start(c, i) : SIZE_MAX;
        /* the constant ends the operand list or the line (strchr finds the NUL too) */
        if (!lit || !strchr("),", c[k + lit]) || j == SIZE_MAX) continue;
        StrBuf b;
        sb_init(&b);
        sb_putn(&b, c, i);
        sb_puts(&b, c + k + lit);
        ok = !strcmp(b.s, m);
        /* `(E) + 1`: without the parentheses decompile added around a compound operand */
        if (!ok && c[j] == '(' && c[i - 1] == ')' && operand_start(c, i - 1) == j + 1) {
            sb_clear(&b);
            sb_putn(&b, c, j);
            sb_putn(&b, c + j + 1, i - 2 - j);
            sb_puts(&b, c + k + lit);
            ok = !strcmp(b.s, m);
        }
        sb_free(&b);
        if (ok && c[i] == '*' && strtod(c + k, NULL) == 0 && c[k] != '"') *constant = 1;
    }
    free(m), free(c);
    return ok;
}

static int map_added(const char *minus, const char *plus, int depth, int *constant, int *near);

/* Is plus minus with one or more maps added, written either way (`map(F, E)` or `E OP CONST`)?
 * depth: how many `map(` may be removed in turn. */
static int map_of(const char *minus, const char *plus, int depth, int *constant, int *near)
{
    return op_added(minus, plus, constant) || map_added(minus, plus, depth, constant, near);
}

/* plus with one `map(F, E)` replaced by E, for each map( in it, compared (spaces ignored)
 * with minus; depth: how many maps may be removed in turn. *constant is set when a removed
 * map's F ignores its input, *near when its text is a nearly constant table. */
static int map_added(const char *minus, const char *plus, int depth, int *constant, int *near)
{
    if (depth <= 0) return 0;
    for (const char *p = plus; (p = strstr(p, "map(")); p++) {
        if (p > plus && ident_char(p[-1])) continue;   /* sequence_map( */
        const char *q = p + 4, *last = q;
        int d = 0, in_str = 0;
        for (; *q; q++) {
            if (*q == '"') in_str = !in_str;
            if (in_str) continue;
            if (*q == '(' || *q == '{' || *q == '[') d++;
            else if ((*q == ')' || *q == '}' || *q == ']') && d-- == 0) break;
            else if (*q == ',' && d == 0) last = q + 1;
        }
        if (*q != ')' || last == p + 4) continue;
        StrBuf b;
        sb_init(&b);
        sb_putn(&b, plus, (size_t)(p - plus));
        sb_putn(&b, last, (size_t)(q - last));
        sb_puts(&b, q + 1);
        char *cand = srep_take(&b), *c1 = strip_spaces(cand), *m1 = strip_spaces(minus);
        int ok = !strcmp(c1, m1) || map_of(minus, cand, depth - 1, constant, near);
        free(cand), free(c1), free(m1);
        if (ok) {
            /* F: from after "map(" to the comma before E */
            const char *fe = last - 1;
            if (constant_fn(p + 4, (size_t)(fe - (p + 4)), near)) *constant = 1;
            return 1;
        }
    }
    return 0;
}

/* Is rhs `aggregate(select(indices, indices, ==), name)` (spaces ignored): a same-position copy? */
static int is_copy_of(const char *rhs, const char *name)
{
    char *a = strip_spaces(rhs);
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "aggregate(select(indices,indices,==),%s)", name);
    int same = !strcmp(a, b.s);
    free(a);
    sb_free(&b);
    return same;
}

/* ---- one run ---- */

typedef struct {
    char *name;          /* "" for a changed line that assigns nothing */
    char *minus, *plus;  /* normalized lines, NULL when the diff has none */
} DcOp;

typedef struct {
    char *name, *rhs;
} Stmt;

static DcOp *op_get(DcOp **ops, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*ops)[i].name, name) && *name) return &(*ops)[i];
    *ops = xrealloc(*ops, sizeof **ops * (size_t)(*n + 1));
    DcOp *o = &(*ops)[(*n)++];
    memset(o, 0, sizeof *o);
    o->name = xstrdup(name);
    return o;
}

/* The decompiled program's assignments: statements split at ';' outside strings, comments
 * removed; *output: the identifier of its `output NAME` statement (heap), NULL when it has none
 * or outputs an expression. */
static Stmt *program_stmts(const char *prog, int *n, char **output)
{
    Stmt *st = NULL;
    *n = 0;
    *output = NULL;
    StrBuf cur;
    sb_init(&cur);
    int in_str = 0;
    for (const char *p = prog; ; p++) {
        if (*p == '#' && !in_str) {   /* to the end of the line */
            while (*p && *p != '\n') p++;
        }
        if (*p == '"') in_str = !in_str;
        if (!*p || (*p == ';' && !in_str)) {
            char *line = norm_line(cur.s ? cur.s : "", cur.len);
            const char *rhs;
            char *name = lhs_name(line, &rhs);
            if (name) {
                st = xrealloc(st, sizeof *st * (size_t)(*n + 1));
                st[*n].name = name;
                st[*n].rhs = xstrdup(rhs);
                (*n)++;
            } else if (!strncmp(line, "output ", 7) && !*output) {
                const char *q = line + 7, *e = q;
                while (ident_char(*e)) e++;
                if (e > q && !*e) *output = xstrdup(q);
            }
            free(line);
            sb_clear(&cur);
            if (!*p) break;
            continue;
        }
        sb_putc(&cur, *p == '\n' ? ' ' : *p);
    }
    sb_free(&cur);
    return st;
}

/* fidelity[.distribution == dist].output of a decompile report, NaN when absent. */
static double dc_fidelity(json_t *dc, const char *dist)
{
    static const char *const keys[] = {"fidelity", "fidelity_uniform"};
    for (int k = 0; k < 2; k++) {
        json_t *f = json_object_get(dc, keys[k]);
        const char *d = json_string_value(json_object_get(f, "distribution"));
        if (json_is_object(f) && d && !strcmp(d, dist)) return srep_num(json_object_get(f, "output"));
    }
    return NAN;
}

static int op_changed(json_t *o)
{
    return json_is_object(o) && json_is_true(json_object_get(o, "changed"));
}

/* The decompile JSON's observed table of an op (`sops.NAME.table`, one entry per distinct
 * observed input value, no per-entry counts): is one output that of all but at most
 * max(1, 10%) of its inputs, with at least DC_NEAR_MIN inputs? -1 without a table. *most and
 * *n: how many inputs give the commonest output, of how many; *val that output (borrowed). */
#define DC_NEAR_MIN 3
static int near_constant_table(json_t *dc, const char *name, int *most, int *n, json_t **val)
{
    json_t *t = json_object_get(json_object_get(json_object_get(dc, "sops"), name), "table");
    *most = *n = 0;
    *val = NULL;
    if (!json_is_object(t) || !json_object_size(t)) return -1;
    const char *k1, *k2;
    json_t *v1, *v2;
    json_object_foreach(t, k1, v1)
    {
        int c = 0;
        json_object_foreach(t, k2, v2) c += json_equal(v1, v2);
        if (c > *most) *most = c, *val = v1;
        (*n)++;
    }
    int allow = *n / 10 > 1 ? *n / 10 : 1;
    return *n >= DC_NEAR_MIN && *n - *most <= allow;
}

/* The reading when the map added on op NAME ignores its input. */
static const char *dc_constant(const char *name, StrBuf *why)
{
    sb_printf(why, "the map added on %s is a constant: the original computation no longer reaches the output", name);
    return srep_dc_readings[3];
}

/* The reading when the map added on op NAME is nearly constant (not classified, with why),
 * NULL when it is not: by the op's observed table when the JSON gives one, else by the text
 * (near, from map_added). */
static const char *dc_near_constant(json_t *dc, const char *name, int near, StrBuf *why)
{
    int most, nin;
    json_t *val;
    int tab = near_constant_table(dc, name, &most, &nin, &val);
    if (tab == 1) {
        StrBuf vs;
        sb_init(&vs);
        srep_scalar_text(val, &vs);
        sb_printf(why, "the map added on %s is nearly constant: it gives %s for %d of its %d observed inputs; the "
                  "original computation hardly reaches the output", name, vs.s ? vs.s : "", most, nin);
        sb_free(&vs);
        return srep_dc_readings[3];
    }
    if (tab < 0 && near) {
        sb_printf(why, "the map added on %s is nearly constant: its table's else value is that of all but at most "
                  "one listed input; the original computation hardly reaches the output", name);
        return srep_dc_readings[3];
    }
    return NULL;
}

/* The reading of one decompile report (rule: docs/report.md); why: a sentence. */
static const char *dc_reading(json_t *dc, DcOp *ops, int nops, StrBuf *why)
{
    json_t *e = json_object_get(dc, "error");
    if (e) {
        sb_printf(why, "decompile failed: %s", json_is_string(e) ? json_string_value(e) : "(no message)");
        return srep_dc_readings[3];
    }
    /* before the fidelity: a program of the original structure cannot express an answer built
     * in a component it does not use, which is why such a run's fidelity is low */
    json_t *x, *top = NULL;
    size_t ix;
    double share = 0;
    json_array_foreach(json_object_get(dc, "idle"), ix, x)
    {
        double v = srep_num(json_object_get(x, "answers_changed"));
        if (isfinite(v) && v > share && json_is_string(json_object_get(x, "component"))) share = v, top = x;
    }
    if (top && share >= DC_IDLE_SHARE) {
        sb_printf(why, "zeroing %s, which the program does not use, changes %.1f%% of the answers",
                  json_string_value(json_object_get(top, "component")), 100 * share);
        return srep_dc_readings[4];
    }
    double f = dc_fidelity(dc, "training");
    const char *which = "training";
    if (!isfinite(f)) f = dc_fidelity(dc, "uniform"), which = "uniform";
    if (!isfinite(f)) {
        sb_puts(why, "no output fidelity");
        return srep_dc_readings[3];
    }
    if (f < DC_MIN_FIDELITY) {
        sb_printf(why, "the decompiled program reproduces only %.1f%% of the answers on %s inputs", 100 * f, which);
        return srep_dc_readings[3];
    }
    if (!nops) {
        sb_puts(why, "no op changed");
        return srep_dc_readings[2];
    }
    /* each changed op read once: its original result with maps added? (constant, near: as
     * map_added sets them) */
    int *is_map = xcalloc((size_t)nops * 3, sizeof(int)), *constant = is_map + nops, *near = constant + nops;
    for (int i = 0; i < nops; i++)
        is_map[i] = ops[i].minus && ops[i].plus && map_of(ops[i].minus, ops[i].plus, 3, &constant[i], &near[i]);
    const char *prog = json_string_value(json_object_get(dc, "program"));
    int ns = 0;
    char *output;
    Stmt *st = program_stmts(prog ? prog : "", &ns, &output);
    const char *reading = NULL;
    /* the output op changed into a constant map of its original result: the model answers one
     * value whatever else changed (a collapsed model, `bin_idx` changed and `out = aggregate(…,
     * map(lambda x: 4, count_a))`, is not a rewritten count). A constant further up is left to
     * the rules below: what reads it may still compute (the Max-identifier's learned runs). */
    for (int i = 0; i < nops && output && !reading; i++)
        if (!strcmp(ops[i].name, output) && is_map[i] && constant[i]) reading = dc_constant(ops[i].name, why);
    free(output);
    /* a changed op that an unchanged statement reads: the change sits inside the computation.
     * The tail: the changed ops and the unchanged copies of them (an aggregate of a select of
     * indices == indices passes each position's value through, so a map before it is a map
     * after the computation: the Counter's `out`) */
    Names tail = {0};
    for (int i = 0; i < nops; i++)
        if (*ops[i].name) srep_names_add(&tail, ops[i].name);
    for (int t = 0; t < tail.n && !reading; t++)
        for (int s = 0; s < ns && !reading; s++) {
            int in_tail = 0;
            for (int k = 0; k < tail.n; k++) in_tail |= !strcmp(tail.v[k], st[s].name);
            if (in_tail || !mentions(st[s].rhs, tail.v[t])) continue;
            if (is_copy_of(st[s].rhs, tail.v[t])) {
                srep_names_add(&tail, st[s].name);
                continue;
            }
            sb_printf(why, "%s changed and the unchanged %s reads it", tail.v[t], st[s].name);
            reading = srep_dc_readings[0];
        }
    free(tail.v);
    for (int s = 0; s < ns; s++) free(st[s].name), free(st[s].rhs);
    free(st);
    for (int i = 0; i < nops && !reading; i++) {
        if (!is_map[i]) {
            sb_printf(why, "%s changed after the rest of the computation, but not as a map on its original result",
                      *ops[i].name ? ops[i].name : "a line");
            reading = srep_dc_readings[3];
        } else if (constant[i]) {
            reading = dc_constant(ops[i].name, why);
        } else
            reading = dc_near_constant(dc, ops[i].name, near[i], why);
    }
    free(is_map);
    if (reading) return reading;
    sb_puts(why, "a map added after the original computation:");
    for (int i = 0; i < nops; i++) sb_printf(why, "%s %s", i ? "," : "", ops[i].name);
    return srep_dc_readings[1];
}

/* One run's object; *key gets its distinct-diff key (the -/+ lines), owned by the caller. */
static json_t *dc_run(const Run *u, json_t *dc, const char **reading, char **key)
{
    json_t *o = json_pack("{s:s, s:O}", "job", u->id, "seed", u->seed ? u->seed : json_null());
    DcOp *ops = NULL;
    int nops = 0;
    json_t *lines = json_array();
    StrBuf k;
    sb_init(&k);
    const char *diff = json_string_value(json_object_get(dc, "diff"));
    for (const char *p = diff ? diff : ""; *p;) {
        size_t n = strcspn(p, "\n");
        if ((p[0] == '-' || p[0] == '+') && !(n >= 3 && (!strncmp(p, "---", 3) || !strncmp(p, "+++", 3)))) {
            char *t = norm_line(p + 1, n - 1);
            char *name = lhs_name(t, NULL);
            DcOp *op = op_get(&ops, &nops, name ? name : "");
            char **slot = p[0] == '-' ? &op->minus : &op->plus;
            if (!*slot) *slot = xstrdup(t);
            char *l = xmalloc(strlen(t) + 2);
            sprintf(l, "%c%s", p[0], t);
            json_array_append_new(lines, json_string(l));
            sb_printf(&k, "%s\n", l);
            free(l), free(name), free(t);
        }
        p += n + (p[n] ? 1 : 0);
    }
    /* ops the decompiler calls changed without a line of their own (inside a def, an inline
     * selector): named, no text */
    static const char *const groups[] = {"sops", "selectors"};
    for (int g = 0; g < 2; g++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(dc, groups[g]), name, v) if (op_changed(v)) op_get(&ops, &nops, name);
    }
    StrBuf why;
    sb_init(&why);
    *reading = dc_reading(dc, ops, nops, &why);
    json_t *cj = json_array();
    for (int i = 0; i < nops; i++) {
        json_array_append_new(cj, json_pack("{s:s, s:s?, s:s?}", "name", ops[i].name, "minus", ops[i].minus, "plus",
                                            ops[i].plus));
        free(ops[i].name), free(ops[i].minus), free(ops[i].plus);
    }
    free(ops);
    json_object_set_new(o, "reading", json_string(*reading));
    json_object_set_new(o, "why", json_string(why.s ? why.s : ""));
    sb_free(&why);
    json_object_set_new(o, "changed_ops", cj);
    json_object_set_new(o, "diff_lines", lines);
    json_object_set_new(o, "fidelity_training", srep_num_json(dc_fidelity(dc, "training")));
    json_object_set_new(o, "fidelity_uniform", srep_num_json(dc_fidelity(dc, "uniform")));
    json_t *rp = json_object_get(dc, "reproduces");
    json_object_set_new(o, "reproduces", json_is_boolean(rp) ? json_incref(rp) : json_null());
    json_t *e = json_object_get(dc, "error");
    if (e) json_object_set_new(o, "error", json_is_string(e) ? json_incref(e) : json_string("(no message)"));
    *key = e ? NULL : srep_take(&k);
    if (e) sb_free(&k);
    return o;
}

/* ---- one cell ---- */

json_t *srep_cell_decompile(const SrepReport *r, const Cell *c)
{
    json_t *per = json_array(), *diffs = json_array();
    int counts[SREP_NDC] = {0}, n = 0, failed = 0;
    Vals ft = {0}, fu = {0};
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *dc = u->status == RUN_DONE ? json_object_get(json_object_get(u->result, "after"), "decompile") : NULL;
        if (!json_is_object(dc)) continue;
        n++;
        const char *reading;
        char *key;
        json_t *o = dc_run(u, dc, &reading, &key);
        for (int g = 0; g < SREP_NDC; g++) counts[g] += reading == srep_dc_readings[g];
        if (!key) {
            failed++;
        } else {
            double x = srep_num(json_object_get(o, "fidelity_training")), y = srep_num(json_object_get(o, "fidelity_uniform"));
            if (isfinite(x)) srep_vals_push(&ft, x);
            if (isfinite(y)) srep_vals_push(&fu, y);
            /* distinct diffs, first seen first */
            json_t *d = NULL, *x2;
            size_t i;
            json_array_foreach(diffs, i, x2) if (!strcmp(json_string_value(json_object_get(x2, "key")), key)) d = x2;
            if (!d) {
                d = json_pack("{s:s, s:O, s:i, s:[]}", "key", key, "lines", json_object_get(o, "diff_lines"), "runs", 0, "jobs");
                json_array_append_new(diffs, d);
            }
            json_object_set_new(d, "runs", json_integer(json_integer_value(json_object_get(d, "runs")) + 1));
            json_array_append_new(json_object_get(d, "jobs"), json_string(u->id));
            free(key);
        }
        json_array_append_new(per, o);
    }
    if (!n) {
        json_decref(per), json_decref(diffs);
        return NULL;
    }
    /* most seeds first; stable for ties (insertion sort keeps first-seen order) */
    size_t nd = json_array_size(diffs);
    json_t **dv = xmalloc(sizeof *dv * (nd ? nd : 1));
    for (size_t i = 0; i < nd; i++) {
        dv[i] = json_incref(json_array_get(diffs, i));
        json_object_del(dv[i], "key");
        for (size_t j = i; j > 0 && json_integer_value(json_object_get(dv[j], "runs")) >
                                       json_integer_value(json_object_get(dv[j - 1], "runs")); j--) {
            json_t *t = dv[j];
            dv[j] = dv[j - 1], dv[j - 1] = t;
        }
    }
    json_array_clear(diffs);
    for (size_t i = 0; i < nd; i++) json_array_append_new(diffs, dv[i]);
    free(dv);
    json_t *rc = json_object();
    int best = -1, tie = 0;
    for (int g = 0; g < SREP_NDC; g++) {
        if (!counts[g]) continue;
        json_object_set_new(rc, srep_dc_readings[g], json_integer(counts[g]));
        if (best < 0 || counts[g] > counts[best]) best = g, tie = 0;
        else if (counts[g] == counts[best]) tie = 1;
    }
    json_t *out = json_pack("{s:i, s:i, s:s, s:o, s:o, s:o, s:o, s:o}", "runs", n, "failed", failed, "reading",
                            tie ? "mixed" : srep_dc_readings[best], "readings", rc, "fidelity_training",
                            srep_agg_json(ft.v, ft.n), "fidelity_uniform", srep_agg_json(fu.v, fu.n), "diffs", diffs,
                            "per_run", per);
    free(ft.v), free(fu.v);
    return out;
}
