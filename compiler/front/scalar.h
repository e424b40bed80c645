/* scalar.h — compile-time scalar evaluation, internal to the front end: the builtin
 * functions of lambdas and constant expressions (`min max abs int float str`), and lambda
 * bodies compiled to a small resolved tree (names already bound to parameters or folded
 * constants) so tabulating a lambda over a large domain does no name lookups. */
#ifndef TRACC_SCALAR_H
#define TRACC_SCALAR_H

#include "compiler/front/valops.h"

typedef enum { BI_NONE = -1, BI_MIN, BI_MAX, BI_ABS, BI_INT, BI_FLOAT, BI_STR, BI_COUNT } Builtin;

/* The builtin called `name`, or BI_NONE. */
int scalar_builtin(const char *name);
const char *scalar_builtin_name(int b);
/* 1 if the builtin takes nargs arguments; else 0 and a reason ("abs takes 1 argument"). */
int scalar_builtin_arity(int b, int nargs, StrBuf *err);
/* Python semantics (spec Decision 2); new strings go to arena. 0 + reason on error. */
int scalar_call(int b, const Value *args, int nargs, Value *out, StrBuf *err, Arena *arena);

typedef enum {
    LN_CONST,   /* v */
    LN_PARAM,   /* param */
    LN_UNARY,   /* op; kids[0] */
    LN_BINARY,  /* op; kids[0], kids[1] (and/or short-circuit, as in Python) */
    LN_COND,    /* kids[0] if kids[1] else kids[2] */
    LN_CALL,    /* builtin; kids = args */
} LNodeKind;

typedef struct LNode LNode;
struct LNode {
    LNodeKind kind;
    AstOp op;
    Value v;
    int param;
    int builtin;
    LNode **kids;
    int nkids;
    Span span;      /* the source construct, for errors */
};

/* Evaluate a compiled body on parameter values. On an error returns 0, writes the reason
 * to err and the span of the failing construct to *where. Strings go to scratch. */
int lnode_eval(const LNode *n, const Value *params, Value *out, StrBuf *err, Span *where, Arena *scratch);

#endif
