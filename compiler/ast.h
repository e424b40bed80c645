/* ast.h — the syntax tree the parser builds. Meaning is checked later (sema).
 *
 * One node type with a kind, a span and a child array keeps the grammar actions
 * trivial and every pass able to walk any node. All nodes live in the Arena
 * passed to the parser. */
#ifndef TRACC_AST_H
#define TRACC_AST_H

#include <stdint.h>

#include "diag.h"
#include "../common/arena.h"

typedef enum {
    /* expressions */
    AST_INT,      /* ival */
    AST_FLOAT,    /* fval */
    AST_STR,      /* str (escapes already decoded) */
    AST_BOOL,     /* ival = 0/1 */
    AST_NAME,     /* str = identifier (tokens, indices, length are names too) */
    AST_UNARY,    /* op in {OP_NEG, OP_NOT}; kids[0] */
    AST_BINARY,   /* op; kids[0] op kids[1] */
    AST_COND,     /* kids[0] if kids[1] else kids[2] */
    AST_CALL,     /* str = callee name; kids = arguments */
    AST_LAMBDA,   /* kids[0..nparams-1] = AST_NAME params, kids[nparams] = body */
    AST_CMPOP,    /* a bare comparison operator used as select's predicate: op in OP_EQ..OP_GE */
    /* statements */
    AST_PROGRAM,  /* kids = statements of one file */
    AST_ASSIGN,   /* str = name; kids[0] = value */
    AST_DEF,      /* str = name; kids[0..nparams-1] = AST_NAME params; then body statements;
                     the last statement is AST_RETURN */
    AST_RETURN,   /* kids[0] */
    AST_OUTPUT,   /* kids[0] */
    AST_VOCAB,    /* kids = entries: AST_NAME (a bare identifier = string), AST_STR, AST_INT */
    AST_MAXLEN,   /* kids[0] = the expression (an integer literal, checked by sema) */
    AST_CAUSAL,
    AST_BOS,      /* str */
    AST_PAD,      /* str */
    AST_LOAD,     /* str = path as written */
    /* a lookup table, map's first argument: {key: value, ..., else: value}. kids = key,
       value pairs in order; a key that is an AST_NAME (the keyword `else`) marks the
       default. Keys are literals (a bare identifier is a string, as in vocab). */
    AST_DICT,
} AstKind;

typedef enum {
    OP_NONE = 0,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_AND, OP_OR, OP_NOT, OP_NEG,
} AstOp;

typedef struct AstNode AstNode;
struct AstNode {
    AstKind kind;
    Span span;          /* the whole construct */
    AstOp op;
    int64_t ival;
    double fval;
    char *str;
    AstNode **kids;
    int nkids;
    int nparams;        /* AST_LAMBDA, AST_DEF */
};

/* The operator as written ("+", "//", "not", "==" ...), for messages. */
const char *ast_op_name(AstOp op);
const char *ast_kind_name(AstKind k);

/* Parse one file's text (already registered with diag as `file`).
 * Always returns an AST_PROGRAM (possibly partial); syntax errors go to diag,
 * and parsing continues after `;` so one run reports several errors. */
AstNode *parse_program(Diag *d, int file, Arena *a);

/* Debug dump as an S-expression, one line (for parser tests). */
char *ast_dump(const AstNode *n);

#endif
