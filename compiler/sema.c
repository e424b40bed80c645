/* sema.c — the semantic pass: from parsed files to a checked RaspProgram (see rasp.h and
 * spec/language.md, Decisions 1-18).
 *
 * One walk over the statements in order. Every expression evaluates to an RVal: an s-op,
 * a selector, a compile-time constant, or an error placeholder (so one mistake reports
 * once and its uses stay quiet). S-ops and selectors are created with their value sets
 * and tables right away, because every later check (encodings, lambdas on their full
 * domain, look-ahead) needs them. A `def` is expanded at each call in a fresh scope whose
 * parent is the scope as it was when the `def` was written, which is what makes
 * recursion and forward references impossible. Labels given by assignments are fixed
 * when the assignment runs; generated labels (`map_3`) are handed out at the end, in id
 * order, skipping every label a user took, so they never collide. */
#include "sema.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalar.h"
#include "valueset.h"

#define MAX_EXPANSIONS 100000   /* def calls in one program (each is a full expansion) */
#define MAX_DEPTH 200           /* nested def calls */
#define MAX_NEST 2000           /* expression recursion, summed over nested def calls */

/* ====================================================================== string maps */

/* Open-addressing map from strings (owned elsewhere) to ints. */
typedef struct {
    const char **keys;
    int *vals;
    size_t nslots, n;
} StrMap;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static void sm_free(StrMap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Slot holding s, or the empty slot where it would go. */
static size_t sm_slot(const StrMap *m, const char *s)
{
    size_t h = (size_t)str_hash(s) & (m->nslots - 1);
    while (m->keys[h] && strcmp(m->keys[h], s)) h = (h + 1) & (m->nslots - 1);
    return h;
}

static void sm_grow(StrMap *m)
{
    StrMap old = *m;
    m->nslots = old.nslots ? old.nslots * 2 : 64;
    m->keys = xcalloc(m->nslots, sizeof *m->keys);
    m->vals = xcalloc(m->nslots, sizeof *m->vals);
    for (size_t i = 0; i < old.nslots; i++)
        if (old.keys[i]) {
            size_t h = sm_slot(m, old.keys[i]);
            m->keys[h] = old.keys[i];
            m->vals[h] = old.vals[i];
        }
    free(old.keys);
    free(old.vals);
}

/* The stored key equal to s (or NULL) and its value. */
static const char *sm_get(const StrMap *m, const char *s, int *val)
{
    if (!m->nslots) return NULL;
    size_t h = sm_slot(m, s);
    if (!m->keys[h]) return NULL;
    if (val) *val = m->vals[h];
    return m->keys[h];
}

static void sm_put(StrMap *m, const char *s, int val)
{
    if ((m->n + 1) * 2 > m->nslots) sm_grow(m);
    size_t h = sm_slot(m, s);
    if (!m->keys[h]) {
        m->keys[h] = s;
        m->n++;
    }
    m->vals[h] = val;
}

/* ====================================================================== scopes */

typedef enum { B_ERROR, B_SOP, B_SEL, B_CONST, B_DEF, B_LENGTH } BKind;

typedef struct Scope Scope;

typedef struct {
    BKind kind;
    const char *name;
    Span span;              /* the definition (an assignment, a def, a parameter) */
    int file;               /* file it was defined in, -1 if predefined */
    int id;                 /* B_SOP, B_SEL */
    Value v;                /* B_CONST */
    const AstNode *def;     /* B_DEF */
    Scope *dscope;          /* B_DEF: the scope it sees ... */
    int dlimit;             /* ... up to this many entries */
    int dok;                /* B_DEF: its body passed the static check */
} Binding;

struct Scope {
    Scope *parent;
    int parent_limit;       /* entries of parent visible from here */
    int file;               /* -1: the predefined scope */
    int incomplete;         /* a load of this file failed: unknown names are not reported */
    const char **names;
    Binding **binds;
    int n;
    size_t cap;
    StrMap index;           /* name -> entry */
};

/* ====================================================================== the pass */

typedef enum { LK_NONE, LK_PREDEF, LK_USER, LK_DEF } LabelKind;

typedef struct {
    LabelKind lk;
    int depth;              /* LK_DEF: how deep in def calls it was named */
} LabelInfo;

typedef struct {
    const char *name;
    Span span;
} Frame;

typedef enum { RK_ERROR, RK_SOP, RK_SEL, RK_CONST } RKind;

typedef struct {
    RKind kind;
    int id;
    Value v;
} RVal;

typedef struct {
    Scope *scope;           /* innermost: a file scope or a def call's local scope */
    int file;
    const char *prefix;     /* "" at top level, "shift_by_1." inside a call */
    int depth;
} Env;

typedef struct {
    Diag *d;
    const SemaInput *in;
    const FrontOptions *opt;
    RaspProgram *P;
    Arena *pa;              /* the program's arena */
    Arena tmp;              /* scopes, bindings, compiled lambdas */
    Arena scratch;          /* strings made while tabulating one table */

    RaspSop *sops;
    LabelInfo *sopl;
    int nsops;
    size_t capsops, capsopl;
    RaspSel *sels;
    LabelInfo *sell;
    int nsels;
    size_t capsels, capsell;

    StrMap labels;          /* label -> 1 while taken */
    StrMap interned;        /* string contents -> the program's copy */
    StrMap counters;        /* def name -> calls so far */
    StrMap seen;            /* errors already reported */

    Frame *frames;
    int nframes;
    size_t capframes;
    Frame *pending;         /* the calls around the last error, not yet noted */
    int npending;
    size_t cappending;
    int quiet;              /* the last error was a repeat: drop its notes */
    char ring[8][96];       /* message fragments (kept off the stack of the recursive walk) */
    int ringpos;
    int expansions;
    int nest;

    /* declarations */
    int novals;             /* no usable vocab or max_len: check names and kinds only */
    int max_len;
    Value *vocab;
    int nvocab;
    const char *bos, *pad;
    int causal;

    Scope *predef;
    Scope **fscope;
    int *fstate;            /* 0 not yet, 1 loading, 2 done */
    int *stack;             /* files being loaded, outermost first */
    int nstack;
    size_t capstack;

    int length_sop, length_sel;
    int output;
    Span output_span;
} Sema;

/* ---------------------------------------------------------------- messages */

static const char *snippet(Sema *S, Span sp, char *buf, size_t cap);

static int span_valid(Span sp) { return sp.file >= 0 && sp.line > 0; }

/* Report an error once (the same text at the same place is said once, e.g. when a def is
 * called twice). The def calls it happened inside are noted after the error's own notes:
 * they are kept pending until the next error or the end of the pass. */
static void flush_frames(Sema *S)
{
    int n = S->npending;
    for (int i = n - 1; i >= 0; i--) {
        /* a long chain of calls: the three innermost and the outermost */
        if (n > 5 && i < n - 3 && i > 0) continue;
        if (n > 5 && i == 0)
            diag_note(S->d, S->pending[i].span, "in this call of `%s` (through %d more calls)",
                      S->pending[i].name, n - 4);
        else
            diag_note(S->d, S->pending[i].span, "in this call of `%s`", S->pending[i].name);
    }
    S->npending = 0;
}

static void serr(Sema *S, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void serr(Sema *S, Span sp, const char *fmt, ...)
{
    flush_frames(S);
    StrBuf b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    char key[64];
    snprintf(key, sizeof key, "%d:%d:%d:", sp.file, sp.line, sp.col);
    StrBuf k;
    sb_init(&k);
    sb_puts(&k, key);
    sb_puts(&k, b.s);
    S->quiet = sm_get(&S->seen, k.s, NULL) != NULL;
    if (!S->quiet) {
        sm_put(&S->seen, arena_strdup(&S->tmp, k.s), 1);
        diag_error(S->d, sp, "%s", b.s);
        XGROW(S->pending, S->cappending, (size_t)S->nframes + 1);
        if (S->nframes) memcpy(S->pending, S->frames, sizeof(Frame) * (size_t)S->nframes);
        S->npending = S->nframes;
    }
    sb_free(&k);
    sb_free(&b);
}

/* A note on the error just reported (dropped with it if that error was a repeat). */
static void snote(Sema *S, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void snote(Sema *S, Span sp, const char *fmt, ...)
{
    if (S->quiet) return;
    StrBuf b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    diag_note(S->d, sp, "%s", b.s);
    sb_free(&b);
}

/* A file-level error: "path: error: ..." with no line. */
static Span file_span(int file) { return (Span){file, 0, 0, 0, 0}; }

/* The source text of a one-line span, if short enough to quote in a message. */
static const char *snippet(Sema *S, Span sp, char *buf, size_t cap)
{
    if (!span_valid(sp) || sp.end_line != sp.line || sp.end_col < sp.col) return NULL;
    size_t len;
    const char *text = diag_file_text(S->d, sp.file, &len);
    if (!text) return NULL;
    size_t off = 0;
    for (int line = 1; line < sp.line && off < len; off++)
        if (text[off] == '\n') line++;
    size_t start = off + (size_t)sp.col - 1, n = (size_t)(sp.end_col - sp.col + 1);
    if (start + n > len || n + 1 > cap || n > 40) return NULL;
    memcpy(buf, text + start, n);
    buf[n] = 0;
    if (memchr(buf, '\n', n)) return NULL;
    return buf;
}

/* "`x + 1`" or "this expression", for messages about an operand. */
static const char *describe(Sema *S, const AstNode *n, char *buf, size_t cap)
{
    char tmp[64];
    const char *s = snippet(S, n->span, tmp, sizeof tmp);
    if (s) snprintf(buf, cap, "`%s`", s);
    else snprintf(buf, cap, "this expression");
    return buf;
}

static const char *fmtval(Value v, char *buf, size_t cap)
{
    StrBuf b;
    sb_init(&b);
    val_format_quoted(v, &b);
    if (b.len + 1 > cap) {
        memcpy(buf, b.s, cap - 4);
        strcpy(buf + cap - 4, "...");
    } else {
        memcpy(buf, b.s, b.len + 1);
    }
    sb_free(&b);
    return buf;
}

static char *ring_next(Sema *S)
{
    S->ringpos = (S->ringpos + 1) % 8;
    return S->ring[S->ringpos];
}

/* describe() and fmtval() into a ring of buffers: valid for the next few calls */
static const char *desc(Sema *S, const AstNode *n) { return describe(S, n, ring_next(S), sizeof S->ring[0]); }
static const char *fv(Sema *S, Value v) { return fmtval(v, ring_next(S), sizeof S->ring[0]); }

/* ---------------------------------------------------------------- strings */

static const char *intern(Sema *S, const char *s)
{
    const char *k = sm_get(&S->interned, s, NULL);
    if (k) return k;
    k = arena_strdup(S->pa, s);
    sm_put(&S->interned, k, 1);
    return k;
}

static Value intern_val(Sema *S, Value v)
{
    if (v.kind == VAL_STR) v.u.s = intern(S, v.u.s);
    return v;
}

static const char *tmp_printf(Sema *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *tmp_printf(Sema *S, const char *fmt, ...)
{
    StrBuf b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    char *r = arena_strdup(&S->tmp, b.s);
    sb_free(&b);
    return r;
}

/* ---------------------------------------------------------------- scopes */

static Scope *scope_new(Sema *S, Scope *parent, int file)
{
    Scope *sc = arena_alloc(&S->tmp, sizeof *sc);
    sc->parent = parent;
    sc->parent_limit = parent ? parent->n : 0;
    sc->file = file;
    return sc;
}

static void scope_free_all(Scope *sc)
{
    free(sc->names);
    free(sc->binds);
    sm_free(&sc->index);
}

/* Entry index of name in sc (only entries below limit count), or -1. */
static int scope_find(const Scope *sc, const char *name, int limit)
{
    int i;
    if (!sm_get(&sc->index, name, &i)) return -1;
    return i < limit ? i : -1;
}

static Binding *scope_lookup(const Scope *sc, const char *name)
{
    int limit = sc->n;
    while (sc) {
        int i = scope_find(sc, name, limit);
        if (i >= 0) return sc->binds[i];
        limit = sc->parent_limit;
        sc = sc->parent;
    }
    return NULL;
}

static int scope_incomplete(const Scope *sc)
{
    for (; sc; sc = sc->parent)
        if (sc->incomplete) return 1;
    return 0;
}

static void scope_add(Scope *sc, const char *name, Binding *b)
{
    size_t need = (size_t)sc->n + 1;
    if (need > sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        sc->names = xrealloc(sc->names, cap * sizeof *sc->names);
        sc->binds = xrealloc(sc->binds, cap * sizeof *sc->binds);
        sc->cap = cap;
    }
    sc->names[sc->n] = name;
    sc->binds[sc->n] = b;
    sm_put(&sc->index, name, sc->n);
    sc->n++;
}

static Binding *binding_new(Sema *S, BKind kind, const char *name, Span span, int file)
{
    Binding *b = arena_alloc(&S->tmp, sizeof *b);
    b->kind = kind;
    b->name = name;
    b->span = span;
    b->file = file;
    b->id = -1;
    return b;
}

static Binding *error_binding(Sema *S, const char *name, Span span, int file)
{
    return binding_new(S, B_ERROR, name, span, file);
}

static const char *const builtin_fns[] = {
    "map", "sequence_map", "select", "aggregate", "selector_width", "numerical", "categorical",
    "min", "max", "abs", "int", "float", "str",
};

static int is_builtin_fn(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(builtin_fns); i++)
        if (!strcmp(name, builtin_fns[i])) return 1;
    return 0;
}

static int is_predefined(const char *name)
{
    return !strcmp(name, "tokens") || !strcmp(name, "indices") || !strcmp(name, "length");
}

/* May `name` be bound here? Reports and returns 0 if not. */
static int check_bindable(Sema *S, const char *name, Span sp, const char *what)
{
    if (is_builtin_fn(name)) {
        serr(S, sp, "`%s` is a builtin function and cannot be redefined; choose another name for this %s", name, what);
        return 0;
    }
    if (is_predefined(name)) {
        serr(S, sp, "`%s` is predefined and cannot be redefined; choose another name for this %s", name, what);
        return 0;
    }
    return 1;
}

/* Bind name in sc, or report a redefinition (error here, note at the first definition)
 * and poison the name so its later uses stay quiet. */
static void bind(Sema *S, Scope *sc, const char *name, Binding *b, Span sp)
{
    int i = scope_find(sc, name, sc->n);
    if (i < 0) {
        scope_add(sc, name, b);
        return;
    }
    Binding *old = sc->binds[i];
    if (old == b) return;   /* the same definition reached through two loads */
    serr(S, sp, "redefinition of `%s`", name);
    if (span_valid(old->span)) snote(S, old->span, "`%s` is first defined here", name);
    sc->binds[i] = error_binding(S, name, sp, b->file);
}

/* ---------------------------------------------------------------- program building */

static int label_taken(Sema *S, const char *l)
{
    int v = 0;
    return sm_get(&S->labels, l, &v) && v;
}

/* Take a label; if it is taken (private names of two loaded files), add ".2", ".3" ...:
 * a dot followed by a digit cannot come from a name or a def qualifier. */
static const char *label_claim(Sema *S, const char *base)
{
    const char *l = base;
    for (int k = 2; label_taken(S, l); k++) l = tmp_printf(S, "%s.%d", base, k);
    l = intern(S, l);
    sm_put(&S->labels, l, 1);
    return l;
}

static void label_release(Sema *S, const char *l)
{
    if (l) sm_put(&S->labels, l, 0);
}

static int new_sop(Sema *S, SopOp op, Encoding enc, Span span)
{
    XGROW(S->sops, S->capsops, (size_t)S->nsops + 1);
    XGROW(S->sopl, S->capsopl, (size_t)S->nsops + 1);
    RaspSop *s = &S->sops[S->nsops];
    memset(s, 0, sizeof *s);
    s->id = S->nsops;
    s->op = op;
    s->enc = enc;
    s->span = span;
    s->a = s->b = s->sel = -1;
    s->deflt = RASP_NONE;
    S->sopl[S->nsops] = (LabelInfo){LK_NONE, 0};
    return S->nsops++;
}

static int new_sel(Sema *S, SelOp op, Span span)
{
    XGROW(S->sels, S->capsels, (size_t)S->nsels + 1);
    XGROW(S->sell, S->capsell, (size_t)S->nsels + 1);
    RaspSel *s = &S->sels[S->nsels];
    memset(s, 0, sizeof *s);
    s->id = S->nsels;
    s->op = op;
    s->span = span;
    s->keys = s->queries = s->a = s->b = -1;
    s->cmp = OP_NONE;
    S->sell[S->nsels] = (LabelInfo){LK_NONE, 0};
    return S->nsels++;
}

static RVal rv_error(void) { return (RVal){RK_ERROR, -1, {0}}; }
static RVal rv_sop(int id) { RVal r = {RK_SOP, id, {0}}; return r; }
static RVal rv_sel(int id) { RVal r = {RK_SEL, id, {0}}; return r; }
static RVal rv_const(Value v) { RVal r = {RK_CONST, -1, v}; return r; }

static const char *enc_name(Encoding e) { return e == ENC_NUMERICAL ? "numerical" : "categorical"; }

/* ---------------------------------------------------------------- value-set helpers */

static void set_range(Sema *S, RaspSop *s, int lo, int hi)
{
    s->nvals = hi - lo + 1;
    s->vals = arena_alloc(S->pa, sizeof(Value) * (size_t)s->nvals);
    for (int i = 0; i < s->nvals; i++) s->vals[i] = val_int(lo + i);
}

/* "the selector selects at least one key at every query", provably (spec Decision 9):
 * keys and queries never lack a value, and either the predicate holds for every pair, or
 * keys and queries are one s-op and the predicate is reflexive on it (a position selects
 * itself), or the keys are `indices` and index 0 is selected by every query. Each of these
 * survives the causal mask. */
static int sel_nonempty(Sema *S, int id)
{
    const RaspSel *sel = &S->sels[id];
    if (sel->op == SEL_OR) return sel_nonempty(S, sel->a) || sel_nonempty(S, sel->b);
    if (sel->op != SEL_SELECT || !sel->pred) return 0;
    const RaspSop *k = &S->sops[sel->keys], *q = &S->sops[sel->queries];
    if (k->may_none || q->may_none) return 0;
    int nk = k->nvals, nq = q->nvals;
    int all = 1;
    for (long i = 0; i < (long)nk * nq && all; i++) all = sel->pred[i];
    if (all) return 1;
    if (sel->keys == sel->queries) {
        int refl = 1;
        for (int i = 0; i < nk && refl; i++) refl = sel->pred[(long)i * nq + i];
        if (refl) return 1;
    }
    if (k->op == SOP_INDICES) {
        int first = 1;
        for (int j = 0; j < nq && first; j++) first = sel->pred[j];   /* key index 0 */
        if (first) return 1;
    }
    return 0;
}

static int nonempty_cb(void *ctx, int sel) { return sel_nonempty(ctx, sel); }

/* ---------------------------------------------------------------- scalar functions */

typedef enum { FN_LAMBDA, FN_UNARY, FN_LEFT, FN_RIGHT, FN_BINARY } FnKind;

typedef struct {
    FnKind kind;
    AstOp op;
    Value c;                /* FN_LEFT: op(c, x); FN_RIGHT: op(x, c) */
    const LNode *body;      /* FN_LAMBDA */
} ScalarFn;

static int fn_apply(Sema *S, const ScalarFn *f, Value x, Value y, Value *out, StrBuf *err, Span *where)
{
    switch (f->kind) {
    case FN_LAMBDA: {
        Value ps[2] = {x, y};
        return lnode_eval(f->body, ps, out, err, where, &S->scratch);
    }
    case FN_UNARY: return val_unary(f->op, x, out, err);
    case FN_LEFT: return val_binary(f->op, f->c, x, out, err, &S->scratch);
    case FN_RIGHT: return val_binary(f->op, x, f->c, out, err, &S->scratch);
    case FN_BINARY: return val_binary(f->op, x, y, out, err, &S->scratch);
    }
    return 0;
}

typedef enum { TF_OK, TF_FAIL, TF_NOTNUM, TF_TOOMANY, TF_TABLE } TabStatus;

typedef struct {
    TabStatus status;
    Value x, y;             /* the first failing input */
    Value out;              /* TF_NOTNUM: what it returned */
    Span where;             /* TF_FAIL in a lambda: the failing construct */
    StrBuf reason;
    long nfail, ntotal;
    long long size;         /* TF_TABLE: entries needed */
} TabResult;

/* Tabulate f over V(a) (map) or V(a) x V(b) (sequence map) into s: value set (sorted as
 * rasp.h says) and table. Every input is tried, so the result can say whether some or
 * all inputs fail. With `keep` (a linear sequence map, valueset.h), a pair whose value is
 * not near a member of keep->t cannot occur: it gets RASP_IMPOSSIBLE and adds no value. */
static void tabulate(Sema *S, const ScalarFn *f, int a, int b, RaspSop *s, TabResult *tr,
                     const VsLinear *keep)
{
    const RaspSop *A = &S->sops[a], *B = b >= 0 ? &S->sops[b] : NULL;
    int na = A->nvals, nb = B ? B->nvals : 1;
    long long total = (long long)na * nb;
    tr->status = TF_OK;
    tr->nfail = 0;
    tr->ntotal = (long)total;
    tr->where = SPAN_NONE;
    if (total > RASP_MAX_TABLE) {
        tr->status = TF_TABLE;
        tr->size = total;
        return;
    }
    int numerical = s->enc == ENC_NUMERICAL;
    int32_t *raw = xmalloc(sizeof(int32_t) * (size_t)(total ? total : 1));
    VSet set;
    vset_init(&set);
    StrBuf err;
    sb_init(&err);
    for (int i = 0; i < na && tr->status != TF_TOOMANY; i++) {
        for (int j = 0; j < nb; j++) {
            long long k = (long long)i * nb + j;
            Value x = A->vals[i], y = B ? B->vals[j] : val_none(), out;
            Span where = SPAN_NONE;
            sb_clear(&err);
            raw[k] = RASP_NONE;
            if (!fn_apply(S, f, x, y, &out, &err, &where)) {
                if (tr->nfail++ == 0 && tr->status == TF_OK) {
                    tr->status = TF_FAIL;
                    tr->x = x;
                    tr->y = y;
                    tr->where = where;
                    sb_puts(&tr->reason, err.s);
                }
                continue;
            }
            if (numerical && !val_is_number(out)) {
                if (tr->status == TF_OK) {
                    tr->status = TF_NOTNUM;
                    tr->x = x;
                    tr->y = y;
                    tr->out = intern_val(S, out);
                }
                continue;
            }
            if (keep && !vs_linear_match(keep, val_as_double(out))) {
                raw[k] = RASP_IMPOSSIBLE;
                continue;
            }
            int idx = vset_add(&set, out);
            if (idx == set.n - 1) set.v[idx] = intern_val(S, out);  /* a new value: keep a copy */
            raw[k] = idx;
            if (set.n > RASP_MAX_VALUES) {
                tr->status = TF_TOOMANY;
                break;
            }
        }
    }
    if (tr->status == TF_OK) {
        int32_t *perm = xmalloc(sizeof(int32_t) * (size_t)(set.n ? set.n : 1));
        s->nvals = vset_finish(&set, numerical, S->pa, &s->vals, perm);
        s->table = arena_alloc(S->pa, sizeof(int32_t) * (size_t)(total ? total : 1));
        for (long long k = 0; k < total; k++) s->table[k] = raw[k] < 0 ? raw[k] : perm[raw[k]];
        free(perm);
    }
    if (tr->status == TF_FAIL || tr->status == TF_NOTNUM) {
        /* keep the inputs quoted in messages alive past the scratch arena */
        tr->x = intern_val(S, tr->x);
        tr->y = intern_val(S, tr->y);
    }
    sb_free(&err);
    vset_free(&set);
    free(raw);
    arena_free(&S->scratch);
}

/* ====================================================================== lambdas */

typedef struct {
    const AstNode *lam;
    int nparams;
    const char *pnames[2];
    Env *env;
    int ok;
} LamCtx;

static LNode *lnode_new(Sema *S, LNodeKind k, Span sp)
{
    LNode *n = arena_alloc(&S->tmp, sizeof *n);
    n->kind = k;
    n->span = sp;
    return n;
}

static void unknown_name(Sema *S, Env *env, const AstNode *n, const char *name, const char *defining);

/* Compile a lambda body (resolve names, fold constants). Reports static errors. */
static LNode *lam_compile(Sema *S, LamCtx *L, const AstNode *n)
{
    switch (n->kind) {
    case AST_INT: {
        LNode *r = lnode_new(S, LN_CONST, n->span);
        r->v = val_int(n->ival);
        return r;
    }
    case AST_FLOAT: {
        LNode *r = lnode_new(S, LN_CONST, n->span);
        r->v = val_float(n->fval);
        return r;
    }
    case AST_BOOL: {
        LNode *r = lnode_new(S, LN_CONST, n->span);
        r->v = val_bool((int)n->ival);
        return r;
    }
    case AST_STR: {
        LNode *r = lnode_new(S, LN_CONST, n->span);
        r->v = val_str(intern(S, n->str ? n->str : ""));
        return r;
    }
    case AST_NAME: {
        for (int i = 0; i < L->nparams; i++)
            if (!strcmp(n->str, L->pnames[i])) {
                LNode *r = lnode_new(S, LN_PARAM, n->span);
                r->param = i;
                return r;
            }
        Binding *b = scope_lookup(L->env->scope, n->str);
        if (!b) {
            unknown_name(S, L->env, n, n->str, NULL);
            L->ok = 0;
            return NULL;
        }
        switch (b->kind) {
        case B_CONST: {
            LNode *r = lnode_new(S, LN_CONST, n->span);
            r->v = b->v;
            return r;
        }
        case B_ERROR:
            L->ok = 0;
            return NULL;
        case B_DEF:
            serr(S, n->span, "`%s` is a def; a lambda body can use only its parameters, constants and min, max, abs, int, float, str", n->str);
            L->ok = 0;
            return NULL;
        default:
            serr(S, n->span, "`%s` is %s; a lambda body can use only its parameters and constants "
                 "(to combine s-ops use sequence_map(lambda x, y: ..., a, b))",
                 n->str, b->kind == B_SEL ? "a selector" : "an s-op");
            L->ok = 0;
            return NULL;
        }
    }
    case AST_UNARY:
    case AST_BINARY:
    case AST_COND:
    case AST_CALL: {
        LNodeKind k = n->kind == AST_UNARY ? LN_UNARY : n->kind == AST_BINARY ? LN_BINARY
                    : n->kind == AST_COND ? LN_COND : LN_CALL;
        LNode *r = lnode_new(S, k, n->span);
        r->op = n->op;
        if (k == LN_CALL) {
            r->builtin = scalar_builtin(n->str);
            if (r->builtin == BI_NONE) {
                Binding *b = scope_lookup(L->env->scope, n->str);
                if (is_builtin_fn(n->str))
                    serr(S, n->span, "%s cannot be used inside a lambda; a lambda computes one value from its parameters", n->str);
                else if (b && b->kind == B_DEF)
                    serr(S, n->span, "cannot call the def `%s` inside a lambda; a lambda may call only min, max, abs, int, float and str", n->str);
                else if (b && b->kind == B_ERROR)
                    ;
                else if (!b && scope_incomplete(L->env->scope))
                    ;
                else
                    serr(S, n->span, "unknown function `%s`; a lambda may call min, max, abs, int, float and str", n->str);
                L->ok = 0;
                return NULL;
            }
            StrBuf e;
            sb_init(&e);
            if (!scalar_builtin_arity(r->builtin, n->nkids, &e)) {
                serr(S, n->span, "%s", e.s);
                L->ok = 0;
            }
            sb_free(&e);
        }
        r->nkids = n->nkids;
        r->kids = arena_alloc(&S->tmp, sizeof(LNode *) * (size_t)(n->nkids ? n->nkids : 1));
        int allconst = 1;
        for (int i = 0; i < n->nkids; i++) {
            r->kids[i] = lam_compile(S, L, n->kids[i]);
            if (!r->kids[i]) allconst = 0;
            else if (r->kids[i]->kind != LN_CONST) allconst = 0;
        }
        if (!L->ok) return r;
        if (allconst) {
            /* fold; a failure stays in the tree and is reported if some input reaches it
             * (`1 / 0 if false else x` never fails, as in Python) */
            Value v;
            StrBuf e;
            sb_init(&e);
            Span where;
            if (lnode_eval(r, NULL, &v, &e, &where, S->pa)) {
                LNode *c = lnode_new(S, LN_CONST, n->span);
                c->v = intern_val(S, v);
                sb_free(&e);
                return c;
            }
            sb_free(&e);
        }
        return r;
    }
    case AST_LAMBDA:
        serr(S, n->span, "a lambda cannot appear inside a lambda");
        L->ok = 0;
        return NULL;
    case AST_CMPOP:
        serr(S, n->span, "a comparison operator on its own is only allowed as the predicate of select");
        L->ok = 0;
        return NULL;
    default:
        serr(S, n->span, "%s is not allowed in a lambda", desc(S, n));
        L->ok = 0;
        return NULL;
    }
}

/* Check a lambda argument's shape and compile it; NULL (reported) on error. */
static const LNode *lambda_prepare(Sema *S, Env *env, const AstNode *lam, int nparams, const char *fn,
                                   const char *shape, LamCtx *L)
{
    memset(L, 0, sizeof *L);
    if (lam->kind != AST_LAMBDA) {
        if (lam->kind == AST_NAME) {
            const Binding *b = scope_lookup(env->scope, lam->str);
            if (!b || b->kind == B_ERROR) {
                if (!b) unknown_name(S, env, lam, lam->str, NULL);
                return NULL;
            }
        }
        serr(S, lam->span, "%s needs a lambda here (%s), not %s", fn, shape, desc(S, lam));
        return NULL;
    }
    if (lam->nparams != nparams) {
        serr(S, lam->span, "the lambda of %s takes %d parameter%s (%s), not %d", fn, nparams,
             nparams == 1 ? "" : "s", shape, lam->nparams);
        return NULL;
    }
    L->lam = lam;
    L->nparams = nparams;
    L->env = env;
    L->ok = 1;
    for (int i = 0; i < nparams; i++) {
        const AstNode *p = lam->kids[i];
        L->pnames[i] = p->str;
        if (is_builtin_fn(p->str)) {
            serr(S, p->span, "`%s` is a builtin function and cannot be a parameter name", p->str);
            L->ok = 0;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(p->str, L->pnames[j])) {
                serr(S, p->span, "duplicate parameter `%s`", p->str);
                L->ok = 0;
            }
    }
    if (!L->ok) return NULL;
    LNode *body = lam_compile(S, L, lam->kids[nparams]);
    return L->ok ? body : NULL;
}

/* A lookup table {key: value, ..., else: value} as map's function of s-op a: the body
 * `v1 if x == k1 else v2 if x == k2 ... else default`, after checking that the keys are
 * distinct and that every value of a has an entry (or there is an `else`). NULL (reported)
 * on error. */
static const LNode *dict_prepare(Sema *S, Env *env, const AstNode *d, int a, LamCtx *L)
{
    memset(L, 0, sizeof *L);
    L->nparams = 1;
    L->pnames[0] = "";      /* no name resolves to the parameter: values are constants */
    L->env = env;
    L->ok = 1;
    int npairs = d->nkids / 2;
    const LNode *deflt = NULL;
    LNode **keys = arena_alloc(&S->tmp, sizeof(LNode *) * (size_t)(npairs + 1));
    LNode **vals = arena_alloc(&S->tmp, sizeof(LNode *) * (size_t)(npairs + 1));
    Value *kv = arena_alloc(&S->tmp, sizeof(Value) * (size_t)(npairs + 1));
    int nk = 0;
    StrBuf err;
    sb_init(&err);
    for (int i = 0; i < npairs; i++) {
        const AstNode *k = d->kids[2 * i], *v = d->kids[2 * i + 1];
        LNode *vn = lam_compile(S, L, v);
        if (!vn) continue;
        if (k->kind == AST_NAME) {   /* else */
            if (deflt) {
                serr(S, k->span, "a lookup table has at most one `else` entry");
                L->ok = 0;
            }
            deflt = vn;
            continue;
        }
        LNode *kn = lam_compile(S, L, k);
        Span where;
        if (!kn || !lnode_eval(kn, NULL, &kv[nk], &err, &where, &S->tmp)) {
            L->ok = 0;
            continue;
        }
        for (int j = 0; j < nk; j++)
            if (val_equal(kv[j], kv[nk]) && kv[j].kind == kv[nk].kind) {
                serr(S, k->span, "duplicate key %s in a lookup table", fv(S, kv[nk]));
                L->ok = 0;
            }
        keys[nk] = kn;
        vals[nk++] = vn;
    }
    sb_free(&err);
    if (!L->ok) return NULL;
    if (!deflt) {
        const RaspSop *sa = &S->sops[a];
        int missing = -1, nmissing = 0;
        for (int i = 0; i < sa->nvals; i++) {
            int found = 0;
            for (int j = 0; j < nk && !found; j++) found = val_equal(kv[j], sa->vals[i]);
            if (!found && nmissing++ == 0) missing = i;
        }
        if (missing >= 0) {
            serr(S, d->span, "this lookup table has no entry for %s, a value of the map's input; add it, or an `else: ...` entry",
                 fv(S, sa->vals[missing]));
            if (nmissing > 1) snote(S, d->span, "%d values have no entry", nmissing);
            return NULL;
        }
        if (nk == 0) return NULL;
        deflt = vals[--nk];   /* every value is listed: the last entry needs no test */
    }
    const LNode *body = deflt;
    for (int j = nk - 1; j >= 0; j--) {
        LNode *param = lnode_new(S, LN_PARAM, d->span);
        param->param = 0;
        LNode *eq = lnode_new(S, LN_BINARY, d->span);
        eq->op = OP_EQ;
        eq->nkids = 2;
        eq->kids = arena_alloc(&S->tmp, sizeof(LNode *) * 2);
        eq->kids[0] = param;
        eq->kids[1] = keys[j];
        LNode *c = lnode_new(S, LN_COND, d->span);
        c->nkids = 3;
        c->kids = arena_alloc(&S->tmp, sizeof(LNode *) * 3);
        c->kids[0] = vals[j];
        c->kids[1] = eq;
        c->kids[2] = (LNode *)body;
        body = c;
    }
    return body;
}

/* ====================================================================== builders */

/* Report a failed tabulation of a lambda. names = parameter names. */
static void report_lambda_failure(Sema *S, const AstNode *lam, const TabResult *tr, int nparams,
                                  const char *const *names, const char *input_what)
{
    Span at = span_valid(tr->where) ? tr->where : lam->span;
    const AstNode *body = lam->kids[lam->nparams];
    switch (tr->status) {
    case TF_FAIL:
        if (nparams == 1)
            serr(S, at, "lambda fails on %s = %s: %s", names[0], fv(S, tr->x), tr->reason.s);
        else
            serr(S, at, "lambda fails on %s = %s, %s = %s: %s", names[0], fv(S, tr->x),
                 names[1], fv(S, tr->y), tr->reason.s);
        if (nparams == 1)
            snote(S, lam->span, "every lambda is evaluated on all %s at compile time; "
                  "guard the failing case, e.g. `... if %s != %s else ...`", input_what, names[0], fv(S, tr->x));
        else
            snote(S, lam->span, "every lambda is evaluated on all %s at compile time; "
                  "guard the failing case with `... if <condition> else ...`", input_what);
        break;
    case TF_NOTNUM:
        if (nparams == 1)
            serr(S, body->span, "a numerical map must produce numbers, but this lambda gives %s for %s = %s",
                 fv(S, tr->out), names[0], fv(S, tr->x));
        else {
            serr(S, body->span, "a numerical sequence_map must produce numbers, but this lambda gives %s for %s = %s, %s = %s",
                 fv(S, tr->out), names[0], fv(S, tr->x), names[1], fv(S, tr->y));
        }
        break;
    default:
        break;
    }
}

static void report_size_failure(Sema *S, Span at, const TabResult *tr, const char *what, int na, int nb)
{
    if (tr->status == TF_TABLE)
        serr(S, at, "this %s needs a table of %lld entries (%d x %d values), more than the limit of %d; "
             "use operands with fewer values or a smaller max_len", what, tr->size, na, nb, RASP_MAX_TABLE);
    else if (tr->status == TF_TOOMANY) {
        if (nb > 1)
            serr(S, at, "this %s produces more than %d distinct values (from %d x %d pairs of input values); "
                 "use inputs with fewer values or a smaller max_len", what, RASP_MAX_VALUES, na, nb);
        else
            serr(S, at, "this %s produces more than %d distinct values; use fewer values or a smaller max_len",
                 what, RASP_MAX_VALUES);
    }
}

static int mk_const(Sema *S, Value v, Encoding enc, Span span)
{
    if (enc == ENC_NUMERICAL && !val_is_number(v)) {
        serr(S, span, "a numerical s-op must hold a number, not %s", fv(S, v));
        return -1;
    }
    int id = new_sop(S, SOP_CONST, enc, span);
    RaspSop *s = &S->sops[id];
    s->nvals = 1;
    s->vals = arena_alloc(S->pa, sizeof(Value));
    s->vals[0] = intern_val(S, v);
    return id;
}

/* A map of s-op a through f. node = the expression (for errors); opnode = the s-op
 * operand and cnode the constant operand (operator sugar), or NULL. */
static int mk_map(Sema *S, const ScalarFn *f, int a, Encoding enc, int linear, double lin_a,
                  const AstNode *node, const AstNode *lam, const AstNode *opnode, const AstNode *cnode)
{
    int id = new_sop(S, SOP_MAP, enc, node->span);
    S->sops[id].a = a;
    S->sops[id].may_none = S->sops[a].may_none;
    S->sops[id].linear = linear;
    S->sops[id].lin_a = lin_a;
    if (S->novals) return id;
    TabResult tr;
    memset(&tr, 0, sizeof tr);
    sb_init(&tr.reason);
    tabulate(S, f, a, -1, &S->sops[id], &tr, NULL);   /* creates no s-op: the pointer stays valid */
    char d2[80];
    int bad = 1;
    switch (tr.status) {
    case TF_OK: bad = 0; break;
    case TF_TOOMANY:
    case TF_TABLE: report_size_failure(S, node->span, &tr, "map", S->sops[a].nvals, 1); break;
    case TF_FAIL:
    case TF_NOTNUM:
        if (lam) {
            const char *names[1] = {lam->kids[0]->str};
            char what[96];
            snprintf(what, sizeof what, "%d values of its input", S->sops[a].nvals);
            report_lambda_failure(S, lam, &tr, 1, names, what);
        } else if (tr.status == TF_NOTNUM) {
            serr(S, node->span, "a numerical s-op must hold numbers, but %s gives %s",
                 desc(S, node), fv(S, tr.out));
        } else if (cnode && tr.nfail == tr.ntotal) {
            /* every value fails: the constant is the odd one out */
            serr(S, cnode->span, "'%s' fails for every value of %s (e.g. %s): %s", ast_op_name(f->op),
                 desc(S, opnode), fv(S, tr.x), tr.reason.s);
        } else {
            serr(S, opnode->span, "'%s' fails when %s is %s: %s", ast_op_name(f->op),
                 desc(S, opnode), fv(S, tr.x), tr.reason.s);
            snote(S, node->span, "operators on s-ops are checked on every value at compile time; "
                  "to handle that value use map(lambda x: ... if x != %s else ..., %s)", fv(S, tr.x),
                  snippet(S, opnode->span, d2, sizeof d2) ? d2 : "s");
        }
        break;
    }
    sb_free(&tr.reason);
    return bad ? -1 : id;
}

static int mk_seqmap(Sema *S, const ScalarFn *f, int a, int b, Encoding enc, int linear, double lin_a,
                     double lin_b, const AstNode *node, const AstNode *lam, const AstNode *na_node,
                     const AstNode *nb_node)
{
    int id = new_sop(S, SOP_SEQMAP, enc, node->span);
    S->sops[id].a = a;
    S->sops[id].b = b;
    S->sops[id].may_none = S->sops[a].may_none || S->sops[b].may_none;
    S->sops[id].linear = linear;
    S->sops[id].lin_a = lin_a;
    S->sops[id].lin_b = lin_b;
    if (S->novals) return id;
    TabResult tr;
    memset(&tr, 0, sizeof tr);
    sb_init(&tr.reason);
    /* a linear combination of means over one selection: keep only the pairs that can occur
     * together (valueset.h); otherwise every pair */
    VsLinear lin;
    int tight = linear && vs_linear_means(S->sops, S->sels, id, S->max_len, nonempty_cb, S,
                                          RASP_MAX_VALUES, &lin);
    tabulate(S, f, a, b, &S->sops[id], &tr, tight ? &lin : NULL);   /* creates no s-op */
    if (tight) vs_linear_free(&lin);

    int bad = 1;
    switch (tr.status) {
    case TF_OK: bad = 0; break;
    case TF_TOOMANY:
    case TF_TABLE:
        report_size_failure(S, node->span, &tr, "sequence_map", S->sops[a].nvals, S->sops[b].nvals);
        break;
    case TF_FAIL:
    case TF_NOTNUM:
        if (lam) {
            const char *names[2] = {lam->kids[0]->str, lam->kids[1]->str};
            char what[128];
            snprintf(what, sizeof what, "%d x %d pairs of values of its inputs", S->sops[a].nvals, S->sops[b].nvals);
            report_lambda_failure(S, lam, &tr, 2, names, what);
        } else if (tr.status == TF_NOTNUM) {
            serr(S, node->span, "a numerical s-op must hold numbers, but %s gives %s",
                 desc(S, node), fv(S, tr.out));
        } else {
            serr(S, node->span, "'%s' fails when %s is %s and %s is %s: %s", ast_op_name(f->op),
                 desc(S, na_node), fv(S, tr.x),
                 desc(S, nb_node), fv(S, tr.y), tr.reason.s);
            snote(S, node->span, "operators on s-ops are checked on every pair of values at compile time; "
                  "to handle those values use sequence_map(lambda x, y: ... if <condition> else ..., a, b)");
        }
        break;
    }
    sb_free(&tr.reason);
    return bad ? -1 : id;
}

/* The selector's predicate table, by comparison operator, constant or lambda. */
static int mk_select(Sema *S, int keys, int queries, AstOp cmp, int constant, const LNode *body,
                     const AstNode *node, const AstNode *prednode)
{
    int id = new_sel(S, SEL_SELECT, node->span);
    RaspSel *sel = &S->sels[id];
    sel->keys = keys;
    sel->queries = queries;
    sel->cmp = cmp;
    if (S->novals) return id;
    const RaspSop *K = &S->sops[keys], *Q = &S->sops[queries];
    long long total = (long long)K->nvals * Q->nvals;
    if (total > RASP_MAX_TABLE) {
        serr(S, node->span, "this select needs a table of %lld entries (%d keys x %d queries), more than the limit of %d; "
             "use keys and queries with fewer values", total, K->nvals, Q->nvals, RASP_MAX_TABLE);
        return -1;
    }
    uint8_t *pred = arena_alloc(S->pa, (size_t)(total ? total : 1));
    StrBuf err;
    sb_init(&err);
    int ok = 1;

    for (int k = 0; k < K->nvals && ok; k++)
        for (int q = 0; q < Q->nvals && ok; q++) {
            Value kv = K->vals[k], qv = Q->vals[q], out;
            long idx = (long)k * Q->nvals + q;
            if (cmp != OP_NONE) {
                sb_clear(&err);
                if (!val_binary(cmp, kv, qv, &out, &err, &S->scratch)) {
                    serr(S, prednode->span, "this predicate fails on key %s and query %s: %s",
                         fv(S, kv), fv(S, qv), err.s);
                    ok = 0;
                    break;
                }
                pred[idx] = (uint8_t)out.u.i;
            } else if (!body) {
                pred[idx] = (uint8_t)constant;
            } else {
                Value ps[2] = {kv, qv};
                Span where = SPAN_NONE;
                sb_clear(&err);
                if (!lnode_eval(body, ps, &out, &err, &where, &S->scratch)) {
                    serr(S, span_valid(where) ? where : prednode->span, "lambda fails on %s = %s, %s = %s: %s",
                         prednode->kids[0]->str, fv(S, kv), prednode->kids[1]->str,
                         fv(S, qv), err.s);
                    snote(S, prednode->span, "a select predicate is evaluated on all %d x %d key/query value pairs "
                          "at compile time; guard the failing case with `... if <condition> else false`",
                          K->nvals, Q->nvals);
                    ok = 0;
                    break;
                }
                if (out.kind != VAL_BOOL) {
                    serr(S, prednode->kids[2]->span, "a select predicate must give true or false, but this lambda gives %s "
                         "for %s = %s, %s = %s", fv(S, out), prednode->kids[0]->str,
                         fv(S, kv), prednode->kids[1]->str, fv(S, qv));
                    ok = 0;
                    break;
                }
                pred[idx] = (uint8_t)out.u.i;
            }
        }
    sb_free(&err);
    arena_free(&S->scratch);
    if (!ok) return -1;
    S->sels[id].pred = pred;
    return id;
}

static int mk_selwidth(Sema *S, int sel, Encoding enc, Span span)
{
    int id = new_sop(S, SOP_SELWIDTH, enc, span);
    S->sops[id].sel = sel;
    if (S->novals) return id;
    set_range(S, &S->sops[id], sel_nonempty(S, sel) ? 1 : 0, S->max_len);
    return id;
}

/* ====================================================================== expressions */

static RVal expr(Sema *S, Env *env, const AstNode *n, int want);

/* The first definition of `name` among the top-level statements of the file, if any
 * (for "it is defined later" hints). */
static const AstNode *find_later_def(Sema *S, int file, const char *name)
{
    if (file < 0 || file >= S->in->nfiles || !S->in->files[file].ast) return NULL;
    const AstNode *prog = S->in->files[file].ast;
    for (int i = 0; i < prog->nkids; i++) {
        const AstNode *st = prog->kids[i];
        if ((st->kind == AST_ASSIGN || st->kind == AST_DEF) && st->str && !strcmp(st->str, name)) return st;
    }
    return NULL;
}

/* The other file that defines the private name `name`, or -1 (for "it is private" hints). */
static int private_owner(Sema *S, const Env *env, const char *name)
{
    if (name[0] != '_' || !S->fscope) return -1;
    for (int f = 0; f < S->in->nfiles; f++) {
        const Scope *fs = S->fscope[f];
        if (fs && f != env->file && scope_find(fs, name, fs->n) >= 0) return f;
    }
    return -1;
}

static void unknown_name(Sema *S, Env *env, const AstNode *n, const char *name, const char *defining)
{
    if (scope_incomplete(env->scope)) return;   /* a failed load explains it */
    if (defining && !strcmp(name, defining)) {
        serr(S, n->span, "unknown name `%s`: a def cannot call itself (a def sees only the names defined before it)", name);
        return;
    }
    int owner = private_owner(S, env, name);
    if (owner >= 0) {
        serr(S, n->span, "unknown name `%s`: names starting with `_` are private to the file that defines them ('%s')",
             name, S->in->files[owner].path);
        return;
    }
    const AstNode *later = find_later_def(S, env->file, name);
    if (later && (later->span.line > n->span.line ||
                  (later->span.line == n->span.line && later->span.col > n->span.col)))
        serr(S, n->span, "unknown name `%s`: it is defined later, at line %d; names must be defined before they are used",
             name, later->span.line);
    else
        serr(S, n->span, "unknown name `%s`", name);
}

static int length_sop(Sema *S, Span sp)
{
    if (S->length_sop >= 0) return S->length_sop;
    /* the prelude: length = selector_width(select(tokens, tokens, true)) */
    int sel = new_sel(S, SEL_SELECT, sp);
    S->sels[sel].keys = 0;
    S->sels[sel].queries = 0;
    S->sels[sel].label = label_claim(S, "length.select");
    S->sell[sel].lk = LK_PREDEF;
    if (!S->novals) {
        long n = (long)S->nvocab * S->nvocab;
        S->sels[sel].pred = arena_alloc(S->pa, (size_t)(n ? n : 1));
        memset(S->sels[sel].pred, 1, (size_t)n);
    }
    int id = mk_selwidth(S, sel, ENC_CATEGORICAL, sp);
    S->sops[id].label = label_claim(S, "length");
    S->sopl[id].lk = LK_PREDEF;
    S->length_sel = sel;
    S->length_sop = id;
    return id;
}

/* An existing s-op where `want` asks for an encoding: fine if it already has it. */
static RVal existing_sop(Sema *S, int id, int want, const AstNode *n)
{
    if (want < 0 || S->sops[id].enc == (Encoding)want) return rv_sop(id);
    const RaspSop *s = &S->sops[id];

    if (s->op == SOP_TOKENS || s->op == SOP_INDICES) {
        serr(S, n->span, "`%s` is always categorical", s->op == SOP_TOKENS ? "tokens" : "indices");
        return rv_error();
    }
    serr(S, n->span, "%s is already %s; %s(...) only sets the encoding of the s-op it creates, "
         "so annotate it where it is created", desc(S, n), enc_name(s->enc),
         enc_name((Encoding)want));
    if (span_valid(s->span) && (s->span.line != n->span.line || s->span.col != n->span.col))
        snote(S, s->span, "it is created here: wrap this in %s(...)", enc_name((Encoding)want));
    return rv_error();
}

/* Evaluate n as an s-op (lifting constants). Returns the id, or -1 (reported). */
static int expect_sop(Sema *S, Env *env, const AstNode *n, int want, const char *role)
{
    RVal r = expr(S, env, n, want);

    switch (r.kind) {
    case RK_SOP: return r.id;
    case RK_CONST: return mk_const(S, r.v, want < 0 ? ENC_CATEGORICAL : (Encoding)want, n->span);
    case RK_SEL:
        serr(S, n->span, "%s must be an s-op, but %s is a selector", role, desc(S, n));
        return -1;
    default: return -1;
    }
}

static int expect_sel(Sema *S, Env *env, const AstNode *n, const char *role)
{
    RVal r = expr(S, env, n, -1);

    switch (r.kind) {
    case RK_SEL: return r.id;
    case RK_SOP:
    case RK_CONST:
        serr(S, n->span, "%s must be a selector (made by select), but %s is %s", role,
             desc(S, n), r.kind == RK_SOP ? "an s-op" : "a constant");
        return -1;
    default: return -1;
    }
}

static int expect_const(Sema *S, Env *env, const AstNode *n, const char *role, Value *out)
{
    RVal r = expr(S, env, n, -1);

    switch (r.kind) {
    case RK_CONST: *out = r.v; return 1;
    case RK_SOP:
    case RK_SEL:
        serr(S, n->span, "%s must be a constant, but %s is %s", role, desc(S, n),
             r.kind == RK_SOP ? "an s-op" : "a selector");
        return 0;
    default: return 0;
    }
}

static RVal lift(Sema *S, RVal r, int want, Span sp)
{
    if (r.kind != RK_CONST || want < 0) return r;
    int id = mk_const(S, r.v, (Encoding)want, sp);
    return id < 0 ? rv_error() : rv_sop(id);
}

static int arg_count(Sema *S, const AstNode *n, int lo, int hi, const char *usage)
{
    if (n->nkids >= lo && n->nkids <= hi) return 1;
    if (lo == hi)
        serr(S, n->span, "%s takes %d argument%s, got %d: %s", n->str, lo, lo == 1 ? "" : "s", n->nkids, usage);
    else
        serr(S, n->span, "%s takes %d or %d arguments, got %d: %s", n->str, lo, hi, n->nkids, usage);
    return 0;
}

static RVal call_def(Sema *S, Env *env, Binding *b, const AstNode *n, int want);

static RVal expr_call(Sema *S, Env *env, const AstNode *n, int want)
{
    const char *f = n->str;

    if (!strcmp(f, "numerical") || !strcmp(f, "categorical")) {
        if (!arg_count(S, n, 1, 1, "numerical(e) / categorical(e) annotate the s-op e creates")) return rv_error();
        Encoding e = f[0] == 'n' ? ENC_NUMERICAL : ENC_CATEGORICAL;
        if (want >= 0 && (Encoding)want != e) {
            serr(S, n->span, "conflicting encodings: %s(...) inside %s(...)", f, enc_name((Encoding)want));
            return rv_error();
        }
        RVal r = expr(S, env, n->kids[0], (int)e);
        if (r.kind == RK_SEL) {
            serr(S, n->kids[0]->span, "%s(...) sets the encoding of an s-op, but %s is a selector", f,
                 desc(S, n->kids[0]));
            return rv_error();
        }
        return lift(S, r, (int)e, n->span);
    }
    if (!strcmp(f, "map")) {
        if (!arg_count(S, n, 2, 2, "map(lambda x: ..., s)")) return rv_error();
        LamCtx L;
        if (n->kids[0]->kind == AST_DICT) {
            int a = expect_sop(S, env, n->kids[1], -1, "the second argument of map");
            const LNode *body = a >= 0 ? dict_prepare(S, env, n->kids[0], a, &L) : NULL;
            if (!body || a < 0) return rv_error();
            ScalarFn fn = {FN_LAMBDA, OP_NONE, {0}, body};
            int id = mk_map(S, &fn, a, want < 0 ? ENC_CATEGORICAL : (Encoding)want, 0, 0, n, NULL, NULL, NULL);
            return id < 0 ? rv_error() : rv_sop(id);
        }
        const LNode *body = lambda_prepare(S, env, n->kids[0], 1, "map", "lambda x: ...", &L);
        int a = expect_sop(S, env, n->kids[1], -1, "the second argument of map");
        if (!body || a < 0) return rv_error();
        ScalarFn fn = {FN_LAMBDA, OP_NONE, {0}, body};
        int id = mk_map(S, &fn, a, want < 0 ? ENC_CATEGORICAL : (Encoding)want, 0, 0, n, n->kids[0], NULL, NULL);
        return id < 0 ? rv_error() : rv_sop(id);
    }
    if (!strcmp(f, "sequence_map")) {
        if (!arg_count(S, n, 3, 3, "sequence_map(lambda x, y: ..., a, b)")) return rv_error();
        LamCtx L;
        const LNode *body = lambda_prepare(S, env, n->kids[0], 2, "sequence_map", "lambda x, y: ...", &L);
        int a = expect_sop(S, env, n->kids[1], -1, "the second argument of sequence_map");
        int b = expect_sop(S, env, n->kids[2], -1, "the third argument of sequence_map");
        if (!body || a < 0 || b < 0) return rv_error();
        int bad = 0;
        for (int i = 0; i < 2; i++) {
            int id = i ? b : a;
            if (S->sops[id].enc == ENC_NUMERICAL) {
                serr(S, n->kids[1 + i]->span, "sequence_map needs categorical inputs, but %s is numerical "
                     "(only + and - of two numerical s-ops are linear maps)", desc(S, n->kids[1 + i]));
                bad = 1;
            }
        }
        if (bad) return rv_error();
        ScalarFn fn = {FN_LAMBDA, OP_NONE, {0}, body};
        int id = mk_seqmap(S, &fn, a, b, want < 0 ? ENC_CATEGORICAL : (Encoding)want, 0, 0, 0, n, n->kids[0],
                           n->kids[1], n->kids[2]);
        return id < 0 ? rv_error() : rv_sop(id);
    }
    if (!strcmp(f, "select")) {
        if (!arg_count(S, n, 3, 3, "select(keys, queries, predicate)")) return rv_error();
        if (want >= 0) {
            serr(S, n->span, "%s(...) sets the encoding of an s-op, but select makes a selector", enc_name((Encoding)want));
            return rv_error();
        }
        int k = expect_sop(S, env, n->kids[0], -1, "the keys of select");
        int q = expect_sop(S, env, n->kids[1], -1, "the queries of select");
        const AstNode *p = n->kids[2];
        AstOp cmp = OP_NONE;
        int constant = 0, pok = 1;
        const LNode *body = NULL;
        LamCtx L;
        if (p->kind == AST_CMPOP) {
            cmp = p->op;
        } else if (p->kind == AST_LAMBDA) {
            body = lambda_prepare(S, env, p, 2, "select", "lambda k, q: ...", &L);
            pok = body != NULL;
        } else {
            RVal pv = p->kind == AST_NAME ? expr(S, env, p, -1) : rv_error();
            if (p->kind == AST_BOOL) {
                constant = (int)p->ival;
            } else if (pv.kind == RK_CONST && pv.v.kind == VAL_BOOL) {
                constant = (int)pv.v.u.i;   /* a constant holding true or false */
            } else if (p->kind == AST_NAME && pv.kind == RK_ERROR) {
                pok = 0;                    /* already reported */
            } else {
                serr(S, p->span, "the predicate of select must be a comparison (== != < <= > >=), true, false "
                     "or lambda k, q: ..., not %s", desc(S, p));
                pok = 0;
            }
        }
        int bad = k < 0 || q < 0 || !pok;
        for (int i = 0; i < 2; i++) {
            int id = i ? q : k;
            if (id >= 0 && S->sops[id].enc == ENC_NUMERICAL) {
                serr(S, n->kids[i]->span, "select %s must be categorical, but %s is numerical",
                     i ? "queries" : "keys", desc(S, n->kids[i]));
                bad = 1;
            }
        }
        if (bad) return rv_error();
        int id = mk_select(S, k, q, cmp, constant, body, n, p);
        return id < 0 ? rv_error() : rv_sel(id);
    }
    if (!strcmp(f, "aggregate")) {
        if (!arg_count(S, n, 2, 3, "aggregate(selector, s) or aggregate(selector, s, default)")) return rv_error();
        int sel = expect_sel(S, env, n->kids[0], "the first argument of aggregate");
        int a = expect_sop(S, env, n->kids[1], -1, "the second argument of aggregate");
        Value dv = val_none();
        int has_default = n->nkids == 3, dok = 1;
        if (has_default) dok = expect_const(S, env, n->kids[2], "the default of aggregate", &dv);
        if (sel < 0 || a < 0 || !dok) return rv_error();
        Encoding enc = want < 0 ? S->sops[a].enc : (Encoding)want;
        if (S->sops[a].enc != enc) {
            serr(S, n->kids[1]->span, "a %s aggregate needs a %s s-op, but %s is %s", enc_name(enc), enc_name(enc),
                 desc(S, n->kids[1]), enc_name(S->sops[a].enc));
            const RaspSop *s = &S->sops[a];
            if (s->op != SOP_TOKENS && s->op != SOP_INDICES && span_valid(s->span))
                snote(S, s->span, "to aggregate it as %s, create it %s: %s(...)", enc_name(enc), enc_name(enc), enc_name(enc));
            return rv_error();
        }
        if (enc == ENC_NUMERICAL && has_default && !val_is_number(dv)) {
            serr(S, n->kids[2]->span, "the default of a numerical aggregate must be a number, not %s", fv(S, dv));
            return rv_error();
        }
        int id = new_sop(S, SOP_AGGREGATE, enc, n->span);
        RaspSop *s = &S->sops[id];
        s->a = a;
        s->sel = sel;
        if (S->novals) return rv_sop(id);
        const RaspSop *A = &S->sops[a];
        if (enc == ENC_NUMERICAL) {
            double deflt = has_default ? val_as_double(dv) : 0.0;
            Value *vals = NULL;
            int nv = vs_means(A->vals, A->nvals, S->max_len, 1, deflt, RASP_MAX_VALUES, S->pa, &vals);
            if (nv < 0) {
                serr(S, n->span, "this numerical aggregate can produce more than %d different means "
                     "(%d input values, max_len %d); use an s-op with fewer values or a smaller max_len",
                     RASP_MAX_VALUES, A->nvals, S->max_len);
                return rv_error();
            }
            s = &S->sops[id];
            s->vals = vals;
            s->nvals = nv;
            s->deflt = rasp_num_index(s, deflt);
            s->may_none = A->may_none;
        } else {
            /* The operand's values in the operand's order (then the default if it is
             * new), so that the interpreter can copy a selected value index as it is. */
            int extra = has_default && rasp_value_index(A, dv) == RASP_NONE;
            s = &S->sops[id];
            s->nvals = A->nvals + extra;
            s->vals = arena_alloc(S->pa, sizeof(Value) * (size_t)s->nvals);
            memcpy(s->vals, A->vals, sizeof(Value) * (size_t)A->nvals);
            if (extra) s->vals[A->nvals] = intern_val(S, dv);
            s->deflt = has_default ? rasp_value_index(s, dv) : RASP_NONE;
            s->may_none = !has_default || A->nvals > 1 || A->may_none;
        }
        return rv_sop(id);
    }
    if (!strcmp(f, "selector_width")) {
        if (!arg_count(S, n, 1, 1, "selector_width(selector)")) return rv_error();
        int sel = expect_sel(S, env, n->kids[0], "the argument of selector_width");
        if (sel < 0) return rv_error();
        int id = mk_selwidth(S, sel, want < 0 ? ENC_CATEGORICAL : (Encoding)want, n->span);
        return rv_sop(id);
    }
    int bi = scalar_builtin(f);
    if (bi != BI_NONE) {
        StrBuf e;
        sb_init(&e);
        if (!scalar_builtin_arity(bi, n->nkids, &e)) {
            serr(S, n->span, "%s", e.s);
            sb_free(&e);
            return rv_error();
        }
        Value args[16];
        Value *argv = n->nkids <= 16 ? args : xmalloc(sizeof(Value) * (size_t)n->nkids);
        int ok = 1;
        for (int i = 0; i < n->nkids; i++) {
            RVal r = expr(S, env, n->kids[i], -1);
            if (r.kind == RK_CONST) {
                argv[i] = r.v;
            } else {
                if (r.kind != RK_ERROR)
                    serr(S, n->kids[i]->span, "%s takes constants here; to apply it to each value of an s-op use "
                         "map(lambda x: %s(x%s), s)", f, f, bi == BI_MIN || bi == BI_MAX ? ", ..." : "");
                ok = 0;
            }
        }
        RVal res = rv_error();
        if (ok) {
            Value out;
            if (scalar_call(bi, argv, n->nkids, &out, &e, S->pa)) res = lift(S, rv_const(intern_val(S, out)), want, n->span);
            else serr(S, n->span, "this constant expression fails: %s", e.s);
        }
        if (argv != args) free(argv);
        sb_free(&e);
        return res;
    }
    Binding *b = scope_lookup(env->scope, f);
    if (!b) {
        if (!scope_incomplete(env->scope)) {
            const AstNode *later = find_later_def(S, env->file, f);
            int owner = private_owner(S, env, f);
            if (owner >= 0)
                serr(S, n->span, "unknown function `%s`: names starting with `_` are private to the file that defines them ('%s')",
                     f, S->in->files[owner].path);
            else if (later && later->kind == AST_DEF && later->span.line > n->span.line)
                serr(S, n->span, "unknown function `%s`: it is defined later, at line %d; defs must be defined before they are called",
                     f, later->span.line);
            else
                serr(S, n->span, "unknown function `%s`", f);
        }
        return rv_error();
    }
    switch (b->kind) {
    case B_DEF: return call_def(S, env, b, n, want);
    case B_ERROR: return rv_error();
    default:
        serr(S, n->span, "`%s` is %s, not a function", f,
             b->kind == B_SEL ? "a selector" : b->kind == B_CONST ? "a constant" : "an s-op");
        return rv_error();
    }
}

static RVal expr_binary(Sema *S, Env *env, const AstNode *n, int want)
{
    AstOp op = n->op;
    const AstNode *ln = n->kids[0], *rn = n->kids[1];
    RVal l = expr(S, env, ln, -1), r = expr(S, env, rn, -1);
    if (l.kind == RK_ERROR || r.kind == RK_ERROR) return rv_error();

    if (l.kind == RK_CONST && r.kind == RK_CONST) {
        StrBuf e;
        sb_init(&e);
        Value out;
        RVal res = rv_error();
        if (val_binary(op, l.v, r.v, &out, &e, S->pa)) res = lift(S, rv_const(intern_val(S, out)), want, n->span);
        else serr(S, n->span, "this constant expression fails: %s", e.s);
        sb_free(&e);
        return res;
    }
    if (l.kind == RK_SEL || r.kind == RK_SEL) {
        if (l.kind == RK_SEL && r.kind == RK_SEL && (op == OP_AND || op == OP_OR)) {
            if (want >= 0) {
                serr(S, n->span, "%s(...) sets the encoding of an s-op, but this is a selector", enc_name((Encoding)want));
                return rv_error();
            }
            int id = new_sel(S, op == OP_AND ? SEL_AND : SEL_OR, n->span);
            S->sels[id].a = l.id;
            S->sels[id].b = r.id;
            return rv_sel(id);
        }
        if (op == OP_AND || op == OP_OR) {
            const AstNode *odd = l.kind == RK_SEL ? rn : ln;
            serr(S, odd->span, "'%s' combines two selectors or two s-ops, but %s is %s and the other side a selector",
                 ast_op_name(op), desc(S, odd), (l.kind == RK_SEL ? r.kind : l.kind) == RK_SOP ? "an s-op" : "a constant");
            return rv_error();
        }
        const AstNode *seln = l.kind == RK_SEL ? ln : rn;
        serr(S, seln->span, "'%s' cannot take a selector (%s); selectors combine only with and, or, not",
             ast_op_name(op), desc(S, seln));
        return rv_error();
    }
    if (l.kind == RK_SOP && r.kind == RK_SOP) {
        const RaspSop *A = &S->sops[l.id], *B = &S->sops[r.id];
        int numa = A->enc == ENC_NUMERICAL, numb = B->enc == ENC_NUMERICAL;
        if ((op == OP_ADD || op == OP_SUB) && numa && numb && want != ENC_CATEGORICAL) {
            ScalarFn fn = {FN_BINARY, op, {0}, NULL};
            int id = mk_seqmap(S, &fn, l.id, r.id, ENC_NUMERICAL, 1, 1.0, op == OP_ADD ? 1.0 : -1.0, n, NULL, ln, rn);
            return id < 0 ? rv_error() : rv_sop(id);
        }
        if (numa || numb) {
            const AstNode *bad = numa ? ln : rn;
            if ((op == OP_ADD || op == OP_SUB) && numa && numb)
                serr(S, n->span, "'%s' of two numerical s-ops is a numerical linear map and cannot be categorical", ast_op_name(op));
            else if ((op == OP_ADD || op == OP_SUB) && (numa != numb))
                serr(S, bad->span, "'%s' of two s-ops needs both numerical (a linear map) or both categorical, but %s is numerical and %s categorical",
                     ast_op_name(op), desc(S, bad), desc(S, numa ? rn : ln));
            else
                serr(S, bad->span, "'%s' of two s-ops is a sequence_map, which needs categorical inputs, but %s is numerical "
                     "(only + and - of two numerical s-ops are linear)", ast_op_name(op), desc(S, bad));
            return rv_error();
        }
        ScalarFn fn = {FN_BINARY, op, {0}, NULL};
        int id = mk_seqmap(S, &fn, l.id, r.id, want < 0 ? ENC_CATEGORICAL : (Encoding)want, 0, 0, 0, n, NULL, ln, rn);
        return id < 0 ? rv_error() : rv_sop(id);
    }
    /* an s-op and a constant: a map */
    int sop_left = l.kind == RK_SOP;
    int sid = sop_left ? l.id : r.id;
    Value c = sop_left ? r.v : l.v;
    const AstNode *sn = sop_left ? ln : rn, *cn = sop_left ? rn : ln;
    ScalarFn fn = {sop_left ? FN_RIGHT : FN_LEFT, op, c, NULL};
    int linear = op == OP_MUL && S->sops[sid].enc == ENC_NUMERICAL && val_is_number(c) && want != ENC_CATEGORICAL;
    Encoding enc = want >= 0 ? (Encoding)want : linear ? ENC_NUMERICAL : ENC_CATEGORICAL;
    int id = mk_map(S, &fn, sid, enc, linear, linear ? val_as_double(c) : 0.0, n, NULL, sn, cn);
    return id < 0 ? rv_error() : rv_sop(id);
}

static RVal expr_unary(Sema *S, Env *env, const AstNode *n, int want)
{
    RVal a = expr(S, env, n->kids[0], -1);

    switch (a.kind) {
    case RK_ERROR: return rv_error();
    case RK_CONST: {
        StrBuf e;
        sb_init(&e);
        Value out;
        RVal res = rv_error();
        if (val_unary(n->op, a.v, &out, &e)) res = lift(S, rv_const(out), want, n->span);
        else serr(S, n->span, "this constant expression fails: %s", e.s);
        sb_free(&e);
        return res;
    }
    case RK_SEL:
        if (n->op == OP_NOT) {
            if (want >= 0) {
                serr(S, n->span, "%s(...) sets the encoding of an s-op, but this is a selector", enc_name((Encoding)want));
                return rv_error();
            }
            int id = new_sel(S, SEL_NOT, n->span);
            S->sels[id].a = a.id;
            return rv_sel(id);
        }
        serr(S, n->kids[0]->span, "'%s' cannot take a selector (%s); selectors combine only with and, or, not",
             ast_op_name(n->op), desc(S, n->kids[0]));
        return rv_error();
    case RK_SOP: {
        ScalarFn fn = {FN_UNARY, n->op, {0}, NULL};
        /* -s of a numerical s-op is the linear map -1 * s */
        int linear = n->op == OP_NEG && S->sops[a.id].enc == ENC_NUMERICAL && want != ENC_CATEGORICAL;
        Encoding enc = want >= 0 ? (Encoding)want : linear ? ENC_NUMERICAL : ENC_CATEGORICAL;
        int id = mk_map(S, &fn, a.id, enc, linear, linear ? -1.0 : 0.0, n, NULL, n->kids[0], NULL);
        return id < 0 ? rv_error() : rv_sop(id);
    }
    }
    return rv_error();
}

static RVal expr(Sema *S, Env *env, const AstNode *n, int want)
{
    if (++S->nest > MAX_NEST) {
        if (S->nest == MAX_NEST + 1) serr(S, n->span, "expression nested too deeply");
        S->nest--;
        return rv_error();
    }
    RVal res = rv_error();
    switch (n->kind) {
    case AST_INT: res = lift(S, rv_const(val_int(n->ival)), want, n->span); break;
    case AST_FLOAT: res = lift(S, rv_const(val_float(n->fval)), want, n->span); break;
    case AST_BOOL: res = lift(S, rv_const(val_bool((int)n->ival)), want, n->span); break;
    case AST_STR: res = lift(S, rv_const(val_str(intern(S, n->str ? n->str : ""))), want, n->span); break;
    case AST_NAME: {
        Binding *b = scope_lookup(env->scope, n->str);
        if (!b) {
            unknown_name(S, env, n, n->str, NULL);
            break;
        }
        switch (b->kind) {
        case B_SOP: res = existing_sop(S, b->id, want, n); break;
        case B_LENGTH: res = existing_sop(S, length_sop(S, n->span), want, n); break;
        case B_SEL:
            if (want >= 0) serr(S, n->span, "%s(...) sets the encoding of an s-op, but `%s` is a selector", enc_name((Encoding)want), n->str);
            else res = rv_sel(b->id);
            break;
        case B_CONST: res = lift(S, rv_const(b->v), want, n->span); break;
        case B_DEF:
            serr(S, n->span, "`%s` is a def, not a value; call it: %s(...)", n->str, n->str);
            break;
        case B_ERROR: break;
        }
        break;
    }
    case AST_UNARY: res = expr_unary(S, env, n, want); break;
    case AST_BINARY: res = expr_binary(S, env, n, want); break;
    case AST_COND: {
        /* kids[0] if kids[1] else kids[2]: constants only, and only the chosen branch is
         * evaluated, as in Python */
        RVal c = expr(S, env, n->kids[1], -1);
        if (c.kind == RK_ERROR) break;
        if (c.kind != RK_CONST) {
            serr(S, n->span, "a conditional expression here needs a constant condition, but %s is %s; "
                 "to choose per position use sequence_map(lambda c, x: x if c else ..., cond, s)",
                 desc(S, n->kids[1]), c.kind == RK_SOP ? "an s-op" : "a selector");
            break;
        }
        int t;
        if (!val_as_bool(c.v, &t)) {
            serr(S, n->kids[1]->span, "the condition of 'if' must be a boolean, not %s", fv(S, c.v));
            break;
        }
        res = expr(S, env, n->kids[t ? 0 : 2], want);
        break;
    }
    case AST_CALL: res = expr_call(S, env, n, want); break;
    case AST_LAMBDA:
        serr(S, n->span, "a lambda is not a value; pass it directly to map, sequence_map or select");
        break;
    case AST_CMPOP:
        serr(S, n->span, "a comparison operator on its own is only allowed as the predicate of select");
        break;
    default:
        serr(S, n->span, "expected an expression here");
        break;
    }
    S->nest--;
    return res;
}

/* ====================================================================== statements */

/* Give an s-op or selector its name from an assignment: the outermost assignment wins
 * over generated labels and over labels given deeper in def calls; a user name given at
 * this depth or above (or tokens, indices, length) stays, and this name is an alias. */
static void name_result(Sema *S, Env *env, RVal r, const char *name)
{
    LabelInfo *li;
    const char **label;
    int *named;
    if (r.kind == RK_SOP) {
        li = &S->sopl[r.id];
        label = &S->sops[r.id].label;
        named = &S->sops[r.id].named;
    } else if (r.kind == RK_SEL) {
        li = &S->sell[r.id];
        label = &S->sels[r.id].label;
        named = &S->sels[r.id].named;
    } else {
        return;
    }
    int rename = li->lk == LK_NONE || (li->lk == LK_DEF && li->depth > env->depth);
    if (!rename) return;
    label_release(S, *label);
    *label = label_claim(S, env->depth ? tmp_printf(S, "%s%s", env->prefix, name) : name);
    li->lk = env->depth ? LK_DEF : LK_USER;
    li->depth = env->depth;
    *named = 1;
}

static void stmt_assign(Sema *S, Env *env, const AstNode *st)
{
    const char *name = st->str;
    const AstNode *v = st->kids[0];
    int ok = check_bindable(S, name, st->span, "definition");
    RVal r;
    if (v->kind == AST_LAMBDA) {
        serr(S, v->span, "a lambda is not a value; pass it directly to map, sequence_map or select");
        r = rv_error();
    } else {
        r = expr(S, env, v, -1);
    }
    if (!ok) return;
    Binding *b;
    switch (r.kind) {
    case RK_SOP:
        b = binding_new(S, B_SOP, name, st->span, env->file);
        b->id = r.id;
        break;
    case RK_SEL:
        b = binding_new(S, B_SEL, name, st->span, env->file);
        b->id = r.id;
        break;
    case RK_CONST:
        b = binding_new(S, B_CONST, name, st->span, env->file);
        b->v = r.v;
        break;
    default:
        b = error_binding(S, name, st->span, env->file);
        break;
    }
    int before = scope_find(env->scope, name, env->scope->n);
    bind(S, env->scope, name, b, st->span);
    if (before < 0) name_result(S, env, r, name);
}

/* Static check of a def body at its definition: every name must resolve (parameters,
 * locals assigned before, or names visible where the def is written), so mistakes in a
 * def are reported once even if it is never called, and self-calls read "unknown". */
typedef struct {
    const char **names;
    int n, cap;
} NameList;

static int nl_has(const NameList *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], s)) return 1;
    return 0;
}

static void nl_push(Sema *S, NameList *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        const char **nn = arena_alloc(&S->tmp, sizeof *nn * (size_t)cap);
        if (l->n) memcpy(nn, l->names, sizeof *nn * (size_t)l->n);
        l->names = nn;
        l->cap = cap;
    }
    l->names[l->n++] = s;
}

static int check_names(Sema *S, Env *env, const AstNode *n, NameList *locals, const char *defname)
{
    int ok = 1;
    if (!n) return 1;
    switch (n->kind) {
    case AST_NAME:
        if (nl_has(locals, n->str)) return 1;
        if (!scope_lookup(env->scope, n->str)) {
            unknown_name(S, env, n, n->str, defname);
            return 0;
        }
        return 1;
    case AST_CALL:
        if (!is_builtin_fn(n->str) && !nl_has(locals, n->str)) {
            Binding *b = scope_lookup(env->scope, n->str);
            if (!b) {
                if (!scope_incomplete(env->scope)) {
                    int owner = private_owner(S, env, n->str);
                    if (!strcmp(n->str, defname))
                        serr(S, n->span, "unknown function `%s`: a def cannot call itself (a def sees only the names defined before it)", n->str);
                    else if (owner >= 0)
                        serr(S, n->span, "unknown function `%s`: names starting with `_` are private to the file that defines them ('%s')",
                             n->str, S->in->files[owner].path);
                    else
                        serr(S, n->span, "unknown function `%s`", n->str);
                }
                ok = 0;
            }
        }
        break;
    case AST_LAMBDA: {
        int mark = locals->n;
        for (int i = 0; i < n->nparams; i++) nl_push(S, locals, n->kids[i]->str);
        ok = check_names(S, env, n->kids[n->nparams], locals, defname);
        locals->n = mark;
        return ok;
    }
    default:
        break;
    }
    for (int i = 0; i < n->nkids; i++)
        if (!check_names(S, env, n->kids[i], locals, defname)) ok = 0;
    return ok;
}

static void stmt_def(Sema *S, Env *env, const AstNode *st)
{
    const char *name = st->str;
    int ok = check_bindable(S, name, st->span, "def");
    NameList locals = {0};
    for (int i = 0; i < st->nparams; i++) {
        const AstNode *p = st->kids[i];
        if (!check_bindable(S, p->str, p->span, "parameter")) ok = 0;
        if (nl_has(&locals, p->str)) {
            serr(S, p->span, "duplicate parameter `%s`", p->str);
            ok = 0;
        }
        nl_push(S, &locals, p->str);
    }
    int nbody = st->nkids - st->nparams;
    if (nbody <= 0 || st->kids[st->nkids - 1]->kind != AST_RETURN) {
        serr(S, st->span, "def `%s` must end with `return <expression>;`", name);
        ok = 0;
    }
    for (int i = st->nparams; i < st->nkids; i++) {
        const AstNode *b = st->kids[i];
        if (b->kind == AST_ASSIGN) {
            if (!check_names(S, env, b->kids[0], &locals, name)) ok = 0;
            if (!check_bindable(S, b->str, b->span, "definition")) ok = 0;
            else if (nl_has(&locals, b->str)) {
                serr(S, b->span, "redefinition of `%s` in def `%s`", b->str, name);
                ok = 0;
            }
            nl_push(S, &locals, b->str);
        } else if (b->kind == AST_RETURN) {
            if (i != st->nkids - 1) {
                serr(S, b->span, "`return` must be the last statement of a def");
                ok = 0;
            }
            if (!check_names(S, env, b->kids[0], &locals, name)) ok = 0;
        } else {
            serr(S, b->span, "only assignments and `return` are allowed inside a def");
            ok = 0;
        }
    }
    Binding *bd = binding_new(S, B_DEF, name, st->span, env->file);
    bd->def = st;
    bd->dscope = env->scope;
    bd->dlimit = env->scope->n;   /* the def does not see itself: no recursion */
    bd->dok = ok;
    if (!is_builtin_fn(name) && !is_predefined(name)) bind(S, env->scope, name, bd, st->span);
}

static RVal call_def(Sema *S, Env *env, Binding *b, const AstNode *n, int want)
{
    const AstNode *def = b->def;
    if (n->nkids != def->nparams) {
        serr(S, n->span, "`%s` takes %d argument%s, got %d", b->name, def->nparams, def->nparams == 1 ? "" : "s", n->nkids);
        snote(S, def->span, "`%s` is defined here", b->name);
        return rv_error();
    }
    RVal *argv = xmalloc(sizeof(RVal) * (size_t)(def->nparams ? def->nparams : 1));
    int ok = 1;
    for (int i = 0; i < n->nkids; i++) {
        const AstNode *a = n->kids[i];
        if (a->kind == AST_LAMBDA) {
            serr(S, a->span, "a lambda is not a value and cannot be passed to a def; pass it directly to map, sequence_map or select");
            argv[i] = rv_error();
        } else {
            argv[i] = expr(S, env, a, -1);
        }
        if (argv[i].kind == RK_ERROR) ok = 0;
    }
    RVal res = rv_error();
    if (!ok || !b->dok) goto done;
    if (S->nframes >= MAX_DEPTH) {
        serr(S, n->span, "def calls nested more than %d deep", MAX_DEPTH);
        goto done;
    }
    if (++S->expansions > MAX_EXPANSIONS) {
        if (S->expansions == MAX_EXPANSIONS + 1)
            serr(S, n->span, "more than %d def calls in one program (each call is expanded)", MAX_EXPANSIONS);
        goto done;
    }
    int count = 0;
    sm_get(&S->counters, b->name, &count);
    count++;
    sm_put(&S->counters, b->name, count);
    Env local;
    local.scope = scope_new(S, b->dscope, b->file);
    local.scope->parent_limit = b->dlimit;
    local.file = b->file;
    local.prefix = tmp_printf(S, "%s%s_%d.", env->prefix, b->name, count);
    local.depth = env->depth + 1;
    for (int i = 0; i < def->nparams; i++) {
        const AstNode *p = def->kids[i];
        BKind k = argv[i].kind == RK_SOP ? B_SOP : argv[i].kind == RK_SEL ? B_SEL : B_CONST;
        Binding *pb = binding_new(S, k, p->str, p->span, b->file);
        pb->id = argv[i].id;
        pb->v = argv[i].v;
        scope_add(local.scope, p->str, pb);
    }
    XGROW(S->frames, S->capframes, (size_t)S->nframes + 1);
    S->frames[S->nframes++] = (Frame){b->name, n->span};
    for (int i = def->nparams; i < def->nkids; i++) {
        const AstNode *st = def->kids[i];
        if (st->kind == AST_ASSIGN) stmt_assign(S, &local, st);
        else if (st->kind == AST_RETURN) {
            if (st->kids[0]->kind == AST_LAMBDA)
                serr(S, st->kids[0]->span, "a lambda is not a value and cannot be returned from a def");
            else
                res = expr(S, &local, st->kids[0], want);
            break;
        }
    }
    S->nframes--;
    scope_free_all(local.scope);
done:
    free(argv);
    return res;
}

/* ====================================================================== declarations */

static Value vocab_entry(Sema *S, const AstNode *e, int *ok)
{
    *ok = 1;
    switch (e->kind) {
    case AST_NAME:
    case AST_STR: return val_str(intern(S, e->str ? e->str : ""));
    case AST_INT: return val_int(e->ival);
    case AST_UNARY:
        if (e->op == OP_NEG && e->kids[0]->kind == AST_INT) return val_int(-e->kids[0]->ival);
        break;
    default: break;
    }
    *ok = 0;
    serr(S, e->span, "a vocab entry must be a name, a string or an integer");
    return val_none();
}

static int vocab_text_eq(Value a, Value b)
{
    StrBuf x, y;
    sb_init(&x);
    sb_init(&y);
    val_format(a, &x);
    val_format(b, &y);
    int eq = !strcmp(x.s, y.s);
    sb_free(&x);
    sb_free(&y);
    return eq;
}

/* Parse --vocab "a,b,3": entries that read as integers are integers. */
static int vocab_from_flag(Sema *S, const char *text, Value **out, Span **spans)
{
    int n = 0;
    size_t cap = 0;
    Value *v = NULL;
    const char *p = text;
    int ok = 1;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        char *tok = arena_strndup(&S->tmp, p, len);
        if (!len) {
            serr(S, SPAN_NONE, "--vocab: empty entry in '%s' (entries are separated by commas)", text);
            ok = 0;
        } else {
            char *end;
            errno = 0;
            long long iv = strtoll(tok, &end, 10);
            int isint = *end == 0 && errno == 0 && (isdigit((unsigned char)tok[0]) || (tok[0] == '-' && isdigit((unsigned char)tok[1])));
            XGROW(v, cap, (size_t)n + 1);
            v[n++] = isint ? val_int(iv) : val_str(intern(S, tok));
        }
        if (!c) break;
        p = c + 1;
    }
    *out = v;
    *spans = xcalloc((size_t)(n ? n : 1), sizeof(Span));
    for (int i = 0; i < n; i++) (*spans)[i] = SPAN_NONE;
    if (!ok) {
        free(v);
        free(*spans);
        *out = NULL;
        *spans = NULL;
        return -1;
    }
    return n;
}

static void declarations(Sema *S)
{
    const AstNode *prog = S->in->files[0].ast;
    const AstNode *first[AST_LOAD + 1] = {0};
    int fid = S->in->files[0].diag_file;
    for (int i = 0; i < prog->nkids; i++) {
        const AstNode *st = prog->kids[i];
        switch (st->kind) {
        case AST_VOCAB: case AST_MAXLEN: case AST_CAUSAL: case AST_BOS: case AST_PAD:
            if (first[st->kind]) {
                const char *what = st->kind == AST_VOCAB ? "vocab" : st->kind == AST_MAXLEN ? "max_len"
                                 : st->kind == AST_CAUSAL ? "causal" : st->kind == AST_BOS ? "bos" : "pad";
                serr(S, st->span, "`%s` is declared more than once", what);
                snote(S, first[st->kind]->span, "first declared here");
            } else {
                first[st->kind] = st;
            }
            break;
        default: break;
        }
    }
    /* bos, pad */
    S->bos = intern(S, "BOS");
    S->pad = intern(S, "PAD");
    if (first[AST_BOS]) S->bos = intern(S, first[AST_BOS]->str ? first[AST_BOS]->str : "");
    if (first[AST_PAD]) S->pad = intern(S, first[AST_PAD]->str ? first[AST_PAD]->str : "");
    int specials_ok = 1;
    if (first[AST_BOS] && !S->bos[0]) {
        serr(S, first[AST_BOS]->span, "the BOS token name cannot be empty");
        specials_ok = 0;
    }
    if (first[AST_PAD] && !S->pad[0]) {
        serr(S, first[AST_PAD]->span, "the PAD token name cannot be empty");
        specials_ok = 0;
    }
    if (specials_ok && !strcmp(S->bos, S->pad)) {
        Span at = first[AST_PAD] ? first[AST_PAD]->span : first[AST_BOS] ? first[AST_BOS]->span : file_span(fid);
        serr(S, at, "the BOS and PAD tokens must differ, but both are \"%s\"", S->bos);
    }
    /* vocab */
    Value *vals = NULL;
    Span *spans = NULL;
    int n = -1;
    if (S->opt->vocab) {
        n = vocab_from_flag(S, S->opt->vocab, &vals, &spans);
    } else if (first[AST_VOCAB]) {
        const AstNode *vd = first[AST_VOCAB];
        n = vd->nkids;
        vals = xmalloc(sizeof(Value) * (size_t)(n ? n : 1));
        spans = xmalloc(sizeof(Span) * (size_t)(n ? n : 1));
        int ok = 1;
        for (int i = 0; i < n; i++) {
            int eok;
            vals[i] = vocab_entry(S, vd->kids[i], &eok);
            spans[i] = vd->kids[i]->span;
            if (!eok) ok = 0;
        }
        if (!ok) n = -1;
        if (n == 0) {
            serr(S, vd->span, "the vocab is empty; list the tokens, e.g. `vocab {a, b, c};`");
            n = -1;
        }
    } else {
        serr(S, file_span(fid), "missing `vocab` declaration: add e.g. `vocab {a, b, c};` or pass --vocab");
    }
    if (n > 0) {
        int ok = 1;

        for (int i = 0; i < n; i++) {
            Span at = spans[i];
            if (vals[i].kind == VAL_STR && !vals[i].u.s[0]) {
                serr(S, at, "a vocab entry cannot be the empty string");
                ok = 0;
                continue;
            }
            for (int j = 0; j < i; j++)
                if (vocab_text_eq(vals[i], vals[j])) {
                    if (val_equal(vals[i], vals[j]))
                        serr(S, at, "duplicate vocab entry %s", fv(S, vals[i]));
                    else
                        serr(S, at, "vocab entries %s and %s read the same in an input; inputs are matched by text",
                             fv(S, vals[j]), fv(S, vals[i]));
                    if (span_valid(spans[j])) snote(S, spans[j], "first listed here");
                    ok = 0;
                    break;
                }
            StrBuf t;
            sb_init(&t);
            val_format(vals[i], &t);
            for (int k = 0; k < 2; k++) {
                const char *special = k ? S->pad : S->bos;
                if (strcmp(t.s, special)) continue;
                const AstNode *decl = first[k ? AST_PAD : AST_BOS];
                if (decl)
                    serr(S, at, "the vocab cannot contain the %s token \"%s\"", k ? "PAD" : "BOS", special);
                else
                    serr(S, at, "\"%s\" is the default %s token, so it cannot be in the vocab; rename it with `%s \"<%s>\";`",
                         special, k ? "PAD" : "BOS", k ? "pad" : "bos", k ? "pad" : "s");
                if (decl) snote(S, decl->span, "the %s token is named here", k ? "PAD" : "BOS");
                ok = 0;
            }
            sb_free(&t);
        }
        if (ok) {
            S->nvocab = n;
            S->vocab = arena_alloc(S->pa, sizeof(Value) * (size_t)n);
            memcpy(S->vocab, vals, sizeof(Value) * (size_t)n);
        }
    }
    free(vals);
    free(spans);
    /* max_len */
    S->max_len = 0;
    if (S->opt->max_len != 0) {
        if (S->opt->max_len < 1 || S->opt->max_len > RASP_MAX_LEN)
            serr(S, SPAN_NONE, "--max-len must be between 1 and %d, got %d", RASP_MAX_LEN, S->opt->max_len);
        else
            S->max_len = S->opt->max_len;
    } else if (first[AST_MAXLEN]) {
        const AstNode *e = first[AST_MAXLEN]->kids[0];
        int64_t v = 0;
        int ok = 1;
        if (e->kind == AST_INT) v = e->ival;
        else if (e->kind == AST_UNARY && e->op == OP_NEG && e->kids[0]->kind == AST_INT) v = -e->kids[0]->ival;
        else ok = 0;
        if (!ok) serr(S, e->span, "max_len takes an integer, e.g. `max_len 10;`");
        else if (v < 1 || v > RASP_MAX_LEN)
            serr(S, e->span, "max_len must be between 1 and %d, got %lld", RASP_MAX_LEN, (long long)v);
        else S->max_len = (int)v;
    } else {
        serr(S, file_span(fid), "missing `max_len` declaration: add e.g. `max_len 10;` or pass --max-len");
    }
    S->causal = S->opt->causal >= 0 ? S->opt->causal != 0 : first[AST_CAUSAL] != NULL;
    if (S->nvocab == 0 || S->max_len == 0) S->novals = 1;
}

/* ====================================================================== files and loads */

static void process_file(Sema *S, int file);

static const SemaLoad *find_load(Sema *S, const AstNode *node)
{
    for (int i = 0; i < S->in->nloads; i++)
        if (S->in->loads[i].node == node) return &S->in->loads[i];
    return NULL;
}

static void stmt_load(Sema *S, Env *env, const AstNode *st)
{
    const SemaLoad *ld = find_load(S, st);
    if (!ld || ld->target < 0) {
        serr(S, st->span, "cannot load '%s'", st->str ? st->str : "");
        env->scope->incomplete = 1;
        return;
    }
    int t = ld->target;
    const SemaFile *tf = &S->in->files[t];
    if (!tf->ast) {
        if (strcmp(tf->path, st->str))
            serr(S, st->span, "cannot load '%s' (%s): %s", st->str, tf->path, strerror(tf->err));
        else
            serr(S, st->span, "cannot load '%s': %s", st->str, strerror(tf->err));
        env->scope->incomplete = 1;
        return;
    }
    if (S->fstate[t] == 1) {
        StrBuf chain;
        sb_init(&chain);
        int from = 0;
        while (from < S->nstack && S->stack[from] != t) from++;
        for (int i = from; i < S->nstack; i++) {
            sb_printf(&chain, "%s'%s'", i > from ? " loads " : "", S->in->files[S->stack[i]].path);
        }
        sb_printf(&chain, " loads '%s'", tf->path);
        serr(S, st->span, "load cycle: %s", chain.s);
        sb_free(&chain);
        env->scope->incomplete = 1;
        return;
    }
    if (S->fstate[t] == 0) process_file(S, t);
    Scope *ts = S->fscope[t];
    if (ts->incomplete) env->scope->incomplete = 1;
    for (int i = 0; i < ts->n; i++) {
        const char *name = ts->names[i];
        if (name[0] == '_') continue;   /* private to its file */
        Binding *b = ts->binds[i];
        int j = scope_find(env->scope, name, env->scope->n);
        if (j >= 0 && env->scope->binds[j] == b) continue;
        if (j >= 0) {
            serr(S, st->span, "'%s' defines `%s`, which is already defined", st->str, name);
            if (span_valid(env->scope->binds[j]->span)) snote(S, env->scope->binds[j]->span, "`%s` is first defined here", name);
            if (span_valid(b->span)) snote(S, b->span, "and '%s' defines it here", tf->path);
            env->scope->binds[j] = error_binding(S, name, st->span, env->file);
            continue;
        }
        scope_add(env->scope, name, b);
    }
}

static void process_file(Sema *S, int file)
{
    S->fstate[file] = 1;
    XGROW(S->stack, S->capstack, (size_t)S->nstack + 1);
    S->stack[S->nstack++] = file;
    Scope *sc = scope_new(S, S->predef, file);
    S->fscope[file] = sc;
    Env env = {sc, file, "", 0};
    const AstNode *prog = S->in->files[file].ast;
    int main_file = file == 0;
    const AstNode *first_output = NULL;
    for (int i = 0; i < prog->nkids; i++) {
        const AstNode *st = prog->kids[i];
        switch (st->kind) {
        case AST_ASSIGN: stmt_assign(S, &env, st); break;
        case AST_DEF: stmt_def(S, &env, st); break;
        case AST_LOAD: stmt_load(S, &env, st); break;
        case AST_OUTPUT:
            if (!main_file) {
                serr(S, st->span, "`output` belongs in the main file; a loaded file holds only definitions, defs and loads");
                break;
            }
            if (first_output) {
                serr(S, st->span, "more than one `output`; a program has exactly one");
                snote(S, first_output->span, "the first `output` is here");
                break;
            }
            first_output = st;
            {
                RVal r = expr(S, &env, st->kids[0], -1);

                if (r.kind == RK_CONST) {
                    int id = mk_const(S, r.v, ENC_CATEGORICAL, st->kids[0]->span);
                    r = id < 0 ? rv_error() : rv_sop(id);
                }
                if (r.kind == RK_SEL)
                    serr(S, st->kids[0]->span, "the output must be an s-op, but %s is a selector "
                         "(aggregate it or take its selector_width)", desc(S, st->kids[0]));
                else if (r.kind == RK_SOP) {
                    S->output = r.id;
                    S->output_span = st->span;
                }
                if (r.kind == RK_ERROR || r.kind == RK_SEL) S->output = -2;   /* reported */
            }
            break;
        case AST_RETURN:
            serr(S, st->span, "`return` outside a def");
            break;
        case AST_VOCAB: case AST_MAXLEN: case AST_CAUSAL: case AST_BOS: case AST_PAD:
            if (!main_file)
                serr(S, st->span, "declarations belong in the main file; a loaded file holds only definitions, defs and loads");
            break;   /* the main file's are read before everything else */
        default:
            serr(S, st->span, "expected a statement here");
            break;
        }
    }
    if (main_file && !first_output && !sc->incomplete)
        serr(S, file_span(S->in->files[0].diag_file), "missing `output` statement: add e.g. `output x;` naming the s-op the model computes");
    S->nstack--;
    S->fstate[file] = 2;
}

/* ====================================================================== after the walk */

static void mark_sel(Sema *S, int id);

static void mark_sop(Sema *S, int id)
{
    if (id < 0 || S->sops[id].used) return;
    RaspSop *s = &S->sops[id];
    s->used = 1;
    mark_sop(S, s->a);
    mark_sop(S, s->b);
    mark_sel(S, s->sel);
}

static void mark_sel(Sema *S, int id)
{
    if (id < 0 || S->sels[id].used) return;
    RaspSel *s = &S->sels[id];
    s->used = 1;
    if (s->op == SEL_SELECT) {
        mark_sop(S, s->keys);
        mark_sop(S, s->queries);
    } else {
        mark_sel(S, s->a);
        mark_sel(S, s->b);
    }
}

/* Decision 11: look-ahead-free selectors. */
static int sel_free(Sema *S, int id)
{
    const RaspSel *s = &S->sels[id];
    switch (s->op) {
    case SEL_SELECT: {
        const RaspSop *K = &S->sops[s->keys], *Q = &S->sops[s->queries];
        long total = (long)K->nvals * Q->nvals;
        int none = 1;
        for (long i = 0; i < total && none; i++) none = !s->pred[i];
        if (none) return 1;   /* selects nothing at all */
        if (K->op != SOP_INDICES || Q->op != SOP_INDICES) return 0;
        for (int k = 0; k < K->nvals; k++)
            for (int q = 0; q < k && q < Q->nvals; q++)
                if (s->pred[(long)k * Q->nvals + q]) return 0;
        return 1;
    }
    case SEL_AND: return sel_free(S, s->a) || sel_free(S, s->b);
    case SEL_OR: return sel_free(S, s->a) && sel_free(S, s->b);
    case SEL_NOT: return 0;
    }
    return 0;
}

static void report_lookahead(Sema *S, int id, uint8_t *reported)
{
    if (sel_free(S, id) || reported[id]) return;
    reported[id] = 1;
    const RaspSel *s = &S->sels[id];
    switch (s->op) {
    case SEL_SELECT:
        if (id == S->length_sel)
            serr(S, s->span, "`length` needs to look ahead in a causal program: it counts every position of the input; "
                 "use the prefix length `selector_width(select(indices, indices, <=))` instead");
        else
            serr(S, s->span, "this select needs to look ahead in a causal program: a query can select a key after it; "
                 "only select(indices, indices, P) with P false whenever key > query (e.g. <=, ==) is look-ahead-free");
        break;
    case SEL_AND:
        report_lookahead(S, s->a, reported);
        report_lookahead(S, s->b, reported);
        break;
    case SEL_OR:
        report_lookahead(S, s->a, reported);
        report_lookahead(S, s->b, reported);
        break;
    case SEL_NOT:
        serr(S, s->span, "`not` of a selector needs to look ahead in a causal program: it selects keys after the query");
        break;
    }
}

static void causal_check(Sema *S)
{
    uint8_t *reported = xcalloc((size_t)(S->nsels ? S->nsels : 1), 1);
    for (int i = 0; i < S->nsops; i++) {
        const RaspSop *s = &S->sops[i];
        if (s->used && s->sel >= 0) report_lookahead(S, s->sel, reported);
    }
    free(reported);
}

static const char *sop_opname(const RaspSop *s)
{
    switch (s->op) {
    case SOP_TOKENS: return "tokens";
    case SOP_INDICES: return "indices";
    case SOP_CONST: return "constant";
    case SOP_MAP: return "map";
    case SOP_SEQMAP: return s->linear ? "linear_sequence_map" : "sequence_map";
    case SOP_AGGREGATE: return "aggregate";
    case SOP_SELWIDTH: return "selector_width";
    }
    return "sop";
}

static const char *sel_opname(const RaspSel *s)
{
    switch (s->op) {
    case SEL_SELECT: return "select";
    case SEL_AND: return "selector_and";
    case SEL_OR: return "selector_or";
    case SEL_NOT: return "selector_not";
    }
    return "selector";
}

static void generated_labels(Sema *S)
{
    StrMap next = {0};
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? S->nsels : S->nsops;
        for (int i = 0; i < n; i++) {
            const char **label = pass ? &S->sels[i].label : &S->sops[i].label;
            if (*label) continue;
            const char *op = pass ? sel_opname(&S->sels[i]) : sop_opname(&S->sops[i]);
            int k = 0;
            sm_get(&next, op, &k);
            const char *l;
            do l = tmp_printf(S, "%s_%d", op, ++k);
            while (label_taken(S, l));
            sm_put(&next, op, k);
            *label = label_claim(S, l);
        }
    }
    sm_free(&next);
}

/* ====================================================================== entry */

RaspProgram *sema_check(const SemaInput *in, const FrontOptions *opt, Diag *d)
{
    FrontOptions defaults = FRONT_OPTIONS_DEFAULT;
    Sema S0, *S = &S0;
    memset(S, 0, sizeof *S);
    S->d = d;
    S->in = in;
    S->opt = opt ? opt : &defaults;
    S->P = xcalloc(1, sizeof *S->P);
    arena_init(&S->P->arena);
    S->pa = &S->P->arena;
    arena_init(&S->tmp);
    arena_init(&S->scratch);
    S->length_sop = S->length_sel = -1;
    S->output = -1;
    int errors_before = diag_errors(d);

    declarations(S);

    /* the predefined names; tokens and indices are always s-ops 0 and 1 */
    int tok = new_sop(S, SOP_TOKENS, ENC_CATEGORICAL, SPAN_NONE);
    S->sops[tok].label = label_claim(S, "tokens");
    S->sopl[tok].lk = LK_PREDEF;
    int idx = new_sop(S, SOP_INDICES, ENC_CATEGORICAL, SPAN_NONE);
    S->sops[idx].label = label_claim(S, "indices");
    S->sopl[idx].lk = LK_PREDEF;
    if (!S->novals) {
        S->sops[tok].nvals = S->nvocab;
        S->sops[tok].vals = S->vocab;
        set_range(S, &S->sops[idx], 0, S->max_len - 1);
    }
    S->predef = scope_new(S, NULL, -1);
    Binding *bt = binding_new(S, B_SOP, "tokens", SPAN_NONE, -1);
    bt->id = tok;
    Binding *bi = binding_new(S, B_SOP, "indices", SPAN_NONE, -1);
    bi->id = idx;
    Binding *bl = binding_new(S, B_LENGTH, "length", SPAN_NONE, -1);
    scope_add(S->predef, "tokens", bt);
    scope_add(S->predef, "indices", bi);
    scope_add(S->predef, "length", bl);

    S->fscope = xcalloc((size_t)in->nfiles, sizeof *S->fscope);
    S->fstate = xcalloc((size_t)in->nfiles, sizeof *S->fstate);
    process_file(S, 0);

    RaspProgram *P = S->P;
    int ok = diag_errors(d) == errors_before && S->output >= 0;
    if (ok) {
        mark_sop(S, S->output);
        if (S->causal) causal_check(S);
        ok = diag_errors(d) == errors_before;
    }
    flush_frames(S);
    if (ok) {
        generated_labels(S);
        P->path = intern(S, in->files[0].path);
        P->nvocab = S->nvocab;
        P->vocab = S->vocab;
        P->bos = S->bos;
        P->pad = S->pad;
        P->max_len = S->max_len;
        P->causal = S->causal;
        P->nsops = S->nsops;
        P->sops = arena_alloc(S->pa, sizeof(RaspSop) * (size_t)S->nsops);
        memcpy(P->sops, S->sops, sizeof(RaspSop) * (size_t)S->nsops);
        P->nsels = S->nsels;
        P->sels = arena_alloc(S->pa, sizeof(RaspSel) * (size_t)(S->nsels ? S->nsels : 1));
        if (S->nsels) memcpy(P->sels, S->sels, sizeof(RaspSel) * (size_t)S->nsels);
        P->output = S->output;
    } else {
        rasp_free(P);
        P = NULL;
    }

    for (int i = 0; i < in->nfiles; i++)
        if (S->fscope[i]) scope_free_all(S->fscope[i]);
    scope_free_all(S->predef);
    free(S->fscope);
    free(S->fstate);
    free(S->stack);
    free(S->frames);
    free(S->pending);
    free(S->sops);
    free(S->sopl);
    free(S->sels);
    free(S->sell);
    sm_free(&S->labels);
    sm_free(&S->interned);
    sm_free(&S->counters);
    sm_free(&S->seen);
    arena_free(&S->tmp);
    arena_free(&S->scratch);
    return P;
}
