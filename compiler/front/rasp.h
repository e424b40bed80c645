/* rasp.h — the checked program: named s-ops and selectors with encodings and complete
 * value sets. Built by sema; read by the interpreter, the compiler, the trainer and the
 * analysis tools. Nothing downstream looks at the AST again.
 *
 * Values at run time are indices into an s-op's value set (int32, -1 = no value), so the
 * interpreter is table lookups: every map, sequence map and select predicate is tabulated
 * over the value sets when the program is checked (spec Decision 9 evaluates every lambda
 * on its full domain anyway). */
#ifndef TRACC_RASP_H
#define TRACC_RASP_H

#include <stdint.h>

#include "common/arena.h"
#include "compiler/front/ast.h"
#include "compiler/front/diag.h"
#include "runtime/value.h"

#define RASP_NONE (-1)          /* "no value" as a value index */
/* A SEQMAP table entry (linear sequence maps only) for a pair of operand values that sema
 * proved can never occur together at one position (valueset.h, vs_linear_means). It is
 * never a value: reading it at run time means that proof was wrong (an internal error). */
#define RASP_IMPOSSIBLE (-2)
#define RASP_MAX_LEN 4096       /* spec Decision 15 */
#define RASP_MAX_VALUES 100000  /* largest value set of one s-op (bigger is a compile error) */
/* All tables of one program together (entries): a few lines of .rasp at a large max_len can
 * otherwise ask for gigabytes and minutes before anything is compiled. --table-budget. */
#define RASP_TABLE_BUDGET (1LL << 25)
#define RASP_MAX_TABLE (1 << 24)/* largest tabulated map / predicate (entries) */

typedef enum { ENC_CATEGORICAL, ENC_NUMERICAL } Encoding;

typedef enum {
    SOP_TOKENS,     /* value index = vocab index */
    SOP_INDICES,    /* value index = position */
    SOP_CONST,      /* one value, vals[0] */
    SOP_MAP,        /* table[a_idx] -> idx or RASP_NONE */
    SOP_SEQMAP,     /* table[a_idx * nvals(b) + b_idx] -> idx or RASP_NONE
                       (or RASP_IMPOSSIBLE, linear ones only) */
    SOP_AGGREGATE,  /* selector sel, s-op a; deflt */
    SOP_SELWIDTH,   /* selector sel */
} SopOp;

typedef enum {
    SEL_SELECT,     /* keys, queries, pred */
    SEL_AND,        /* a, b */
    SEL_OR,         /* a, b */
    SEL_NOT,        /* a */
} SelOp;

typedef struct {
    int id;             /* index in RaspProgram.sops; operands always have smaller ids */
    SopOp op;
    Encoding enc;
    const char *label;  /* unique name: the assignment's, qualified inside a def
                           (`shift_by_1.sel`), or generated (`map_3`) */
    int named;          /* 1 if the user named it by an assignment */
    Span span;          /* the expression that creates it */

    /* The value set. Numerical s-ops: numbers sorted ascending. Categorical: sorted by
     * val_order, except tokens (vocab order), indices (0..max_len-1) and categorical
     * aggregates (the operand's values in its order, then the default if it is new: the
     * interpreter copies a selected value index as it is). No None inside;
     * may_none says whether some position can hold no value. */
    int nvals;
    Value *vals;
    int may_none;

    int a, b;           /* operand s-ops (MAP: a; SEQMAP: a, b; AGGREGATE: a), else -1 */
    int sel;            /* AGGREGATE, SELWIDTH: selector id, else -1 */
    int32_t *table;     /* MAP, SEQMAP, see above */
    int deflt;          /* AGGREGATE: value index of the default, or RASP_NONE */

    /* Numerical linear maps (spec Decision 5): out = lin_a * a + lin_b * b
     * (MAP: lin_b = 0). linear = 0 for every other s-op. */
    int linear;
    double lin_a, lin_b;

    int used;           /* reachable from the output */
} RaspSop;

typedef struct {
    int id;             /* index in RaspProgram.sels */
    SelOp op;
    const char *label;
    int named;
    Span span;
    int keys, queries;  /* SEL_SELECT: s-op ids */
    AstOp cmp;          /* SEL_SELECT: OP_EQ..OP_GE, or OP_NONE for `true`/`false`/lambda */
    uint8_t *pred;      /* SEL_SELECT: pred[k_idx * nvals(queries) + q_idx] = 1 if key k is
                           selected by query q */
    int a, b;           /* SEL_AND/OR: a, b; SEL_NOT: a */
    int used;
} RaspSel;

typedef struct {
    Arena arena;        /* owns everything below */
    const char *path;   /* the main file */
    int nvocab;
    Value *vocab;       /* declared order = embedding rows */
    const char *bos, *pad;
    int max_len;
    int causal;
    int nsops;
    RaspSop *sops;
    int nsels;
    RaspSel *sels;
    int output;         /* s-op id */
    char *source;       /* the whole program text with loads expanded (for the model file) */
} RaspProgram;

void rasp_free(RaspProgram *p);

/* Index of a number in a numerical s-op's sorted value set (tolerance 1e-9 relative),
 * or RASP_NONE if absent. */
int rasp_num_index(const RaspSop *s, double x);

/* 1 if a categorical aggregate can select, for one query, positions whose values differ or
 * have no value: the interpreter gives no value there, the compiled model a mixture of
 * one-hots that the error bounds do not cover once another op reads it. */
int rasp_agg_may_mix(const RaspProgram *p, const RaspSop *s);

/* The first reader of s-op `sop`: an s-op id, nsops + a selector id (a used select reading
 * it as keys or queries), or -1 when nothing reads it. */
int rasp_first_reader(const RaspProgram *p, int sop);

/* Adds a warning (with a note at its reader) for each aggregate of rasp_agg_may_mix that
 * another op reads: where its selection mixes values, the compiled model cannot reproduce the
 * interpreter's "no value". Returns the number of warnings. */
int rasp_warn_mixing(const RaspProgram *p, Diag *d);

/* Index of a value in an s-op's value set (val_equal), or RASP_NONE. */
int rasp_value_index(const RaspSop *s, Value v);

/* The vocab index whose text form is `text`, or -1. */
int rasp_token_index(const RaspProgram *p, const char *text);

#endif
