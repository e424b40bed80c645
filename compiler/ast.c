/* ast.c — names of node kinds and operators, and the S-expression dump used by tests.
 * Nodes are built by the parser (parser.y); nothing here allocates nodes. */
#include "ast.h"

#include <stdlib.h>

#include "common/util.h"

const char *ast_op_name(AstOp op)
{
    switch (op) {
    case OP_NONE: return "?";
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_FLOORDIV: return "//";
    case OP_MOD: return "%";
    case OP_POW: return "**";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case OP_LT: return "<";
    case OP_LE: return "<=";
    case OP_GT: return ">";
    case OP_GE: return ">=";
    case OP_AND: return "and";
    case OP_OR: return "or";
    case OP_NOT: return "not";
    case OP_NEG: return "-";
    }
    return "?";
}

const char *ast_kind_name(AstKind k)
{
    switch (k) {
    case AST_INT: return "int";
    case AST_FLOAT: return "float";
    case AST_STR: return "str";
    case AST_BOOL: return "bool";
    case AST_NAME: return "name";
    case AST_UNARY: return "unary";
    case AST_BINARY: return "binary";
    case AST_COND: return "cond";
    case AST_CALL: return "call";
    case AST_LAMBDA: return "lambda";
    case AST_CMPOP: return "cmpop";
    case AST_PROGRAM: return "program";
    case AST_ASSIGN: return "assign";
    case AST_DEF: return "def";
    case AST_RETURN: return "return";
    case AST_OUTPUT: return "output";
    case AST_VOCAB: return "vocab";
    case AST_MAXLEN: return "max_len";
    case AST_CAUSAL: return "causal";
    case AST_BOS: return "bos";
    case AST_PAD: return "pad";
    case AST_LOAD: return "load";
    case AST_DICT: return "dict";
    }
    return "?";
}

static void dump_str(StrBuf *b, const char *s)
{
    sb_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)*p);
        } else if (*p == '\n') {
            sb_puts(b, "\\n");
        } else if (*p == '\t') {
            sb_puts(b, "\\t");
        } else if (*p < 0x20 || *p >= 0x7f) {
            sb_printf(b, "\\x%02x", *p);
        } else {
            sb_putc(b, (char)*p);
        }
    }
    sb_putc(b, '"');
}

static void dump_kids(StrBuf *b, const AstNode *n, int from);

static void dump(StrBuf *b, const AstNode *n)
{
    if (!n) {
        sb_puts(b, "null");
        return;
    }
    char num[64];
    sb_putc(b, '(');
    sb_puts(b, ast_kind_name(n->kind));
    switch (n->kind) {
    case AST_INT:
        sb_printf(b, " %lld", (long long)n->ival);
        break;
    case AST_FLOAT:
        fmt_double(n->fval, num, sizeof num);
        sb_printf(b, " %s", num);
        break;
    case AST_STR: case AST_BOS: case AST_PAD: case AST_LOAD:
        sb_putc(b, ' ');
        dump_str(b, n->str);
        break;
    case AST_BOOL:
        sb_puts(b, n->ival ? " true" : " false");
        break;
    case AST_NAME:
        sb_printf(b, " %s", n->str ? n->str : "?");
        break;
    case AST_UNARY: case AST_BINARY: case AST_CMPOP:
        sb_printf(b, " %s", ast_op_name(n->op));
        dump_kids(b, n, 0);
        break;
    case AST_CALL: case AST_ASSIGN:
        sb_printf(b, " %s", n->str ? n->str : "?");
        dump_kids(b, n, 0);
        break;
    case AST_LAMBDA: case AST_DEF:
        if (n->kind == AST_DEF) sb_printf(b, " %s", n->str ? n->str : "?");
        sb_puts(b, " (");
        for (int i = 0; i < n->nparams && i < n->nkids; i++) {
            if (i) sb_putc(b, ' ');
            sb_puts(b, n->kids[i]->str ? n->kids[i]->str : "?");
        }
        sb_putc(b, ')');
        dump_kids(b, n, n->nparams);
        break;
    default:
        dump_kids(b, n, 0);
        break;
    }
    sb_putc(b, ')');
}

static void dump_kids(StrBuf *b, const AstNode *n, int from)
{
    for (int i = from; i < n->nkids; i++) {
        sb_putc(b, ' ');
        dump(b, n->kids[i]);
    }
}

char *ast_dump(const AstNode *n)
{
    StrBuf b;
    sb_init(&b);
    dump(&b, n);
    return b.s; /* the caller owns it */
}
