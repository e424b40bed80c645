/* parser.y — the .rasp grammar (spec: language.md). Builds the AST and nothing else;
 * meaning is checked in sema. Errors go to Diag; after a syntax error the parser
 * resynchronises at the next ';' (or '}' of a def or vocab) so one run reports every
 * independent error.
 *
 * Two guards keep any input from exhausting a stack, here or in later recursive passes:
 *  - top-down: every construct that opens a nesting level ('(' of a group or call, unary
 *    '-', 'not', '**', 'else', 'lambda') counts one level; past MAX_NEST the statement is
 *    abandoned with an error at the opening token (the parser's stack stays small);
 *  - bottom-up: every node records the depth of its subtree (in a header hidden in front of
 *    the node), so left-nested chains like 'a + a + ... + a' cannot build a tree deeper
 *    than MAX_TREE_DEPTH either. */

%define api.pure full
%define api.prefix {rasp_yy}
%define api.token.prefix {TOK_}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {void *scanner}

%code requires {
#include <stddef.h>
#include <stdint.h>
#include "compiler/ast.h"

/* Shared by the lexer and the parser (the scanner's "extra" data). */
typedef struct ParseState {
    Diag *d;
    int file;
    Arena *a;
    const char *text;       /* the file's text as registered with diag (stable) */
    size_t len;
    size_t off;             /* lexer position: byte offset, 1-based line and column */
    int line, col;
    size_t tok_off, tok_len;/* the most recent token (the parser's lookahead), for messages */
    AstNode *prog;          /* statements are appended as they are parsed, so a parse
                               that stops early still returns what it read */
    int nest;               /* open nesting levels in the current statement */
    int deep_reported;      /* "nested too deeply" already said in this statement */
    const AstNode *chain;   /* the comparison chain already reported */
    int stopped;            /* too many errors: the lexer returns end of file */
    int nparen;             /* open '(' of groups and calls in this statement, */
    Span paren[201];        /* for "to match this '('" (at most MAX_NEST are open) */
    int quiet_invalid;      /* an invalid character was reported in this statement:
                               further ones are skipped silently (a[0] is one error) */
} ParseState;
}

%code provides {
int rasp_yylex(RASP_YYSTYPE *lval, RASP_YYLTYPE *lloc, void *scanner);
}

%union {
    int64_t ival;
    double fval;
    char *str;
    AstNode *node;
    AstOp op;
}

%code {
#include <string.h>
#include "common/util.h"
#include "lexer.h"

#define MAX_NEST 200
#define MAX_TREE_DEPTH 1000

#define PS ((ParseState *)rasp_yyget_extra(scanner))

static void yyerror(YYLTYPE *loc, void *scanner, const char *msg);

/* Every parser-made node is preceded by its subtree depth. */
typedef struct {
    int depth;
    AstNode n;
} PNode;

static int depth_of(const AstNode *n)
{
    return ((const PNode *)(const void *)((const char *)n - offsetof(PNode, n)))->depth;
}

static void set_depth(AstNode *n, int d)
{
    ((PNode *)(void *)((char *)n - offsetof(PNode, n)))->depth = d;
}

static Span span_of(const ParseState *ps, const YYLTYPE *l)
{
    Span s = {ps->file, l->first_line, l->first_column, l->last_line, l->last_column};
    return s;
}

static AstNode *mk(ParseState *ps, AstKind k, const YYLTYPE *l)
{
    PNode *p = arena_alloc(ps->a, sizeof *p);
    p->depth = 1;
    p->n.kind = k;
    p->n.span = span_of(ps, l);
    return &p->n;
}

/* Append a child. Capacity is implicit: arrays hold 4, 8, 16 ... so they grow whenever
 * the count reaches a power of two (old arrays stay in the arena). */
static void add_kid(ParseState *ps, AstNode *p, AstNode *k)
{
    if (!k) return;
    int n = p->nkids;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n ? 2 * (size_t)n : 4;
        AstNode **kids = arena_alloc(ps->a, cap * sizeof *kids);
        if (n) memcpy(kids, p->kids, (size_t)n * sizeof *kids);
        p->kids = kids;
    }
    p->kids[p->nkids++] = k;
    if (depth_of(k) + 1 > depth_of(p)) set_depth(p, depth_of(k) + 1);
}

static void add_kids(ParseState *ps, AstNode *p, const AstNode *list)
{
    for (int i = 0; i < list->nkids; i++) add_kid(ps, p, list->kids[i]);
}

/* A tree deeper than MAX_TREE_DEPTH is reported once per statement and replaced by
 * `instead` (one of its operands) so it never grows further. */
static AstNode *check_depth(ParseState *ps, AstNode *n, const YYLTYPE *at, AstNode *instead)
{
    if (depth_of(n) <= MAX_TREE_DEPTH) return n;
    if (!ps->deep_reported) {
        ps->deep_reported = 1;
        diag_error(ps->d, span_of(ps, at),
                   "expression too deeply nested (more than %d levels of operators); "
                   "split it into named parts", MAX_TREE_DEPTH);
    }
    return instead;
}

static AstNode *binary(ParseState *ps, AstOp op, AstNode *l, AstNode *r,
                       const YYLTYPE *loc, const YYLTYPE *oploc)
{
    AstNode *n = mk(ps, AST_BINARY, loc);
    n->op = op;
    add_kid(ps, n, l);
    add_kid(ps, n, r);
    return check_depth(ps, n, oploc, l);
}

static AstNode *unary(ParseState *ps, AstOp op, AstNode *e, const YYLTYPE *loc)
{
    AstNode *n = mk(ps, AST_UNARY, loc);
    n->op = op;
    add_kid(ps, n, e);
    return check_depth(ps, n, loc, e);
}

/* Opening one nesting level; returns 0 when the limit is passed (the caller then
 * abandons the statement with YYERROR, which prints nothing itself). */
static int enter(ParseState *ps, const YYLTYPE *at)
{
    if (++ps->nest <= MAX_NEST) return 1;
    if (!ps->deep_reported) {
        ps->deep_reported = 1;
        diag_error(ps->d, span_of(ps, at),
                   "expression nested too deeply (more than %d levels)", MAX_NEST);
    }
    return 0;
}

static void leave(ParseState *ps) { ps->nest--; }

static int open_paren(ParseState *ps, const YYLTYPE *at)
{
    if (!enter(ps, at)) return 0;
    if (ps->nparen < (int)ARRAY_LEN(ps->paren)) ps->paren[ps->nparen++] = span_of(ps, at);
    return 1;
}

static void close_paren(ParseState *ps)
{
    leave(ps);
    if (ps->nparen > 0) ps->nparen--;
}

/* A statement ended (normally or by error recovery): reset per-statement state. */
static void stmt_done(ParseState *ps)
{
    ps->nest = 0;
    ps->nparen = 0;
    ps->deep_reported = 0;
    ps->quiet_invalid = 0;
}

static AstNode *leaf_str(ParseState *ps, AstKind k, char *s, const YYLTYPE *l)
{
    AstNode *n = mk(ps, k, l);
    n->str = s;
    return n;
}

static AstNode *with_kid(ParseState *ps, AstKind k, AstNode *kid, const YYLTYPE *l)
{
    AstNode *n = mk(ps, k, l);
    add_kid(ps, n, kid);
    return n;
}

static AstNode *make_def(ParseState *ps, char *name, AstNode *params, AstNode *body,
                         const YYLTYPE *loc, const YYLTYPE *close)
{
    AstNode *n = mk(ps, AST_DEF, loc);
    n->str = name;
    add_kids(ps, n, params);
    n->nparams = params->nkids;
    add_kids(ps, n, body);
    for (int i = 0; i + 1 < body->nkids; i++)
        if (body->kids[i]->kind == AST_RETURN)
            diag_error(ps->d, body->kids[i]->span,
                       "'return' must be the last statement of def '%s'", name);
    if (body->nkids == 0 || body->kids[body->nkids - 1]->kind != AST_RETURN)
        diag_error(ps->d, span_of(ps, close),
                   "expected 'return EXPR;' at the end of def '%s', found '}'", name);
    return n;
}
}

%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token <str> STR "string"
%token <str> NAME "identifier"
%token VOCAB "vocab" MAX_LEN "max_len" CAUSAL "causal" BOS "bos" PAD "pad" LOAD "load"
%token DEF "def" RETURN "return" OUTPUT "output" LAMBDA "lambda"
%token IF "if" ELSE "else" AND "and" OR "or" NOT "not" TRUE "true" FALSE "false"
%token EQ "==" NE "!=" LE "<=" GE ">=" FLOORDIV "//" POW "**"

%type <node> top_stmt body_stmt stmt def body params names lparams
%type <node> vocab_entries vocab_list vocab_entry
%type <node> expr lambda cond or_expr and_expr not_expr comparison cmp_chain
%type <node> arith term factor power primary args arg_list arg
%type <node> dict_entries dict_entry dict_key
%type <op> cmpop

%%

program
    : %empty
    | program top_stmt          { add_kid(PS, PS->prog, $2); stmt_done(PS); }
    ;

top_stmt
    : stmt
    | def
    | RETURN expr ';'
        { diag_error(PS->d, span_of(PS, &@1), "'return' outside a def");
          $$ = NULL; }
    | error ';'                 { $$ = NULL; stmt_done(PS); yyerrok; }
    | error '}'                 { $$ = NULL; stmt_done(PS); yyerrok; }
    /* 'x = 1 +' followed by a def: restart at 'def' rather than skipping to the first
       ';' inside its body (which would then report its '}' as unexpected) */
    | error def                 { $$ = $2; stmt_done(PS); yyerrok; }
    ;

def
    : DEF NAME '(' params ')' '{' body '}'
        { $$ = make_def(PS, $2, $4, $7, &@$, &@8); }
    | DEF NAME '(' params ')' '{' body error '}'
        { $$ = NULL; stmt_done(PS); yyerrok; }
    | DEF error '}'             { $$ = NULL; stmt_done(PS); yyerrok; }
    ;

body
    : %empty                    { $$ = mk(PS, AST_PROGRAM, &@$); }
    | body body_stmt            { $$ = $1; add_kid(PS, $$, $2); stmt_done(PS); }
    ;

body_stmt
    : stmt
    | RETURN expr ';'           { $$ = with_kid(PS, AST_RETURN, $2, &@$); }
    | def
        { if ($1) diag_error(PS->d, $1->span, "a def cannot be nested inside another def; "
                                                   "is a '}' missing before it?");
          $$ = NULL; }
    | error ';'                 { $$ = NULL; stmt_done(PS); yyerrok; }
    ;

stmt
    : ';'                       { $$ = NULL; }
    | VOCAB '{' vocab_entries '}' ';'
        { $$ = mk(PS, AST_VOCAB, &@$); add_kids(PS, $$, $3); }
    | MAX_LEN expr ';'          { $$ = with_kid(PS, AST_MAXLEN, $2, &@$); }
    | CAUSAL ';'                { $$ = mk(PS, AST_CAUSAL, &@$); }
    | BOS STR ';'               { $$ = leaf_str(PS, AST_BOS, $2, &@$); }
    | PAD STR ';'               { $$ = leaf_str(PS, AST_PAD, $2, &@$); }
    | LOAD STR ';'              { $$ = leaf_str(PS, AST_LOAD, $2, &@$); }
    | OUTPUT expr ';'           { $$ = with_kid(PS, AST_OUTPUT, $2, &@$); }
    | NAME '=' expr ';'
        { $$ = with_kid(PS, AST_ASSIGN, $3, &@$); $$->str = $1; }
    ;

/* def parameters: a trailing comma is allowed, as in calls and vocab lists */
params
    : %empty                    { $$ = mk(PS, AST_PROGRAM, &@$); }
    | names
    | names ','
    ;

names
    : NAME                      { $$ = mk(PS, AST_PROGRAM, &@$);
                                  add_kid(PS, $$, leaf_str(PS, AST_NAME, $1, &@1)); }
    | names ',' NAME            { $$ = $1; add_kid(PS, $$, leaf_str(PS, AST_NAME, $3, &@3)); }
    ;

vocab_entries
    : %empty                    { $$ = mk(PS, AST_PROGRAM, &@$); }
    | vocab_list
    | vocab_list ','
    ;

vocab_list
    : vocab_entry               { $$ = mk(PS, AST_PROGRAM, &@$); add_kid(PS, $$, $1); }
    | vocab_list ',' vocab_entry { $$ = $1; add_kid(PS, $$, $3); }
    ;

vocab_entry
    : NAME                      { $$ = leaf_str(PS, AST_NAME, $1, &@$); }
    | STR                       { $$ = leaf_str(PS, AST_STR, $1, &@$); }
    | INT                       { $$ = mk(PS, AST_INT, &@$); $$->ival = $1; }
    | '-' INT                   { $$ = mk(PS, AST_INT, &@$); $$->ival = -$2; }
    ;

/* ---- expressions, loosest first (spec Decision 1) ---- */

expr
    : lambda
    | cond
    ;

lambda
    : lambda_kw lparams ':' expr
        { leave(PS);
          $$ = mk(PS, AST_LAMBDA, &@$);
          add_kids(PS, $$, $2);
          $$->nparams = $2->nkids;
          add_kid(PS, $$, $4);
          $$ = check_depth(PS, $$, &@1, $4); }
    ;

lambda_kw
    : LAMBDA                    { if (!enter(PS, &@1)) YYERROR; }
    ;

lparams
    : %empty                    { $$ = mk(PS, AST_PROGRAM, &@$); }
    | names
    ;

cond
    : or_expr
    | or_expr IF or_expr else_kw expr
        { leave(PS);
          $$ = mk(PS, AST_COND, &@$);
          add_kid(PS, $$, $1);
          add_kid(PS, $$, $3);
          add_kid(PS, $$, $5);
          $$ = check_depth(PS, $$, &@2, $1); }
    ;

else_kw
    : ELSE                      { if (!enter(PS, &@1)) YYERROR; }
    ;

or_expr
    : and_expr
    | or_expr OR and_expr       { $$ = binary(PS, OP_OR, $1, $3, &@$, &@2); }
    ;

and_expr
    : not_expr
    | and_expr AND not_expr     { $$ = binary(PS, OP_AND, $1, $3, &@$, &@2); }
    ;

not_expr
    : comparison
    | not_kw not_expr           { leave(PS); $$ = unary(PS, OP_NOT, $2, &@$); }
    ;

not_kw
    : NOT                       { if (!enter(PS, &@1)) YYERROR; }
    ;

/* Comparisons do not chain: 'a < b < c' parses (so the error is specific and
 * recovery is trivial) but is reported at the second operator. */
comparison
    : arith
    | cmp_chain
    ;

cmp_chain
    : arith cmpop arith         { $$ = binary(PS, $2, $1, $3, &@$, &@2); }
    | cmp_chain cmpop arith
        { if (PS->chain != $1)
              diag_error(PS->d, span_of(PS, &@2),
                         "chained comparisons like 'a < b < c' are not allowed; use 'and'");
          $$ = binary(PS, $2, $1, $3, &@$, &@2);
          PS->chain = $$; }
    ;

cmpop
    : EQ                        { $$ = OP_EQ; }
    | NE                        { $$ = OP_NE; }
    | '<'                       { $$ = OP_LT; }
    | LE                        { $$ = OP_LE; }
    | '>'                       { $$ = OP_GT; }
    | GE                        { $$ = OP_GE; }
    ;

arith
    : term
    | arith '+' term            { $$ = binary(PS, OP_ADD, $1, $3, &@$, &@2); }
    | arith '-' term            { $$ = binary(PS, OP_SUB, $1, $3, &@$, &@2); }
    ;

term
    : factor
    | term '*' factor           { $$ = binary(PS, OP_MUL, $1, $3, &@$, &@2); }
    | term '/' factor           { $$ = binary(PS, OP_DIV, $1, $3, &@$, &@2); }
    | term FLOORDIV factor      { $$ = binary(PS, OP_FLOORDIV, $1, $3, &@$, &@2); }
    | term '%' factor           { $$ = binary(PS, OP_MOD, $1, $3, &@$, &@2); }
    ;

/* unary minus is looser than '**' on its right: -2 ** 2 == -(2 ** 2); 2 ** -1 is fine */
factor
    : power
    | minus factor              { leave(PS); $$ = unary(PS, OP_NEG, $2, &@$); }
    ;

minus
    : '-'                       { if (!enter(PS, &@1)) YYERROR; }
    ;

power
    : primary
    | primary pow_op factor     { leave(PS); $$ = binary(PS, OP_POW, $1, $3, &@$, &@2); }
    ;

pow_op
    : POW                       { if (!enter(PS, &@1)) YYERROR; }
    ;

primary
    : INT                       { $$ = mk(PS, AST_INT, &@$); $$->ival = $1; }
    | FLOAT                     { $$ = mk(PS, AST_FLOAT, &@$); $$->fval = $1; }
    | STR                       { $$ = leaf_str(PS, AST_STR, $1, &@$); }
    | TRUE                      { $$ = mk(PS, AST_BOOL, &@$); $$->ival = 1; }
    | FALSE                     { $$ = mk(PS, AST_BOOL, &@$); $$->ival = 0; }
    | NAME                      { $$ = leaf_str(PS, AST_NAME, $1, &@$); }
    | lparen expr ')'           { close_paren(PS); $$ = $2; }
    | NAME lparen args ')'
        { close_paren(PS);
          $$ = leaf_str(PS, AST_CALL, $1, &@$);
          add_kids(PS, $$, $3);
          $$ = check_depth(PS, $$, &@2, $$->nkids ? $$->kids[0] : $$); }
    | '{' dict_entries '}'      { $$ = $2; $$->span = span_of(PS, &@$); }
    | '{' dict_entries ',' '}'  { $$ = $2; $$->span = span_of(PS, &@$); }
    ;

/* a lookup table (map's first argument): {a: 1, "b c": 2, 3: 0, else: 5} */
dict_entries
    : dict_entry                { $$ = mk(PS, AST_DICT, &@$); add_kids(PS, $$, $1); }
    | dict_entries ',' dict_entry { $$ = $1; add_kids(PS, $$, $3); }
    ;

dict_entry
    : dict_key ':' expr         { $$ = mk(PS, AST_PROGRAM, &@$); add_kid(PS, $$, $1); add_kid(PS, $$, $3); }
    | ELSE ':' expr
        { $$ = mk(PS, AST_PROGRAM, &@$);
          add_kid(PS, $$, leaf_str(PS, AST_NAME, (char *)"else", &@1));
          add_kid(PS, $$, $3); }
    ;

dict_key
    : NAME                      { $$ = leaf_str(PS, AST_STR, $1, &@$); }
    | STR                       { $$ = leaf_str(PS, AST_STR, $1, &@$); }
    | INT                       { $$ = mk(PS, AST_INT, &@$); $$->ival = $1; }
    | '-' INT                   { $$ = mk(PS, AST_INT, &@$); $$->ival = -$2; }
    | FLOAT                     { $$ = mk(PS, AST_FLOAT, &@$); $$->fval = $1; }
    | '-' FLOAT                 { $$ = mk(PS, AST_FLOAT, &@$); $$->fval = -$2; }
    | TRUE                      { $$ = mk(PS, AST_BOOL, &@$); $$->ival = 1; }
    | FALSE                     { $$ = mk(PS, AST_BOOL, &@$); $$->ival = 0; }
    ;

lparen
    : '('                       { if (!open_paren(PS, &@1)) YYERROR; }
    ;

args
    : %empty                    { $$ = mk(PS, AST_PROGRAM, &@$); }
    | arg_list
    | arg_list ','
    ;

arg_list
    : arg                       { $$ = mk(PS, AST_PROGRAM, &@$); add_kid(PS, $$, $1); }
    | arg_list ',' arg          { $$ = $1; add_kid(PS, $$, $3); }
    ;

/* a bare comparison operator is select's predicate: select(k, q, ==) */
arg
    : expr
    | cmpop                     { $$ = mk(PS, AST_CMPOP, &@$); $$->op = $1; }
    ;

%%

/* ---- syntax error messages ---- */

static int has(const yysymbol_kind_t *set, int n, yysymbol_kind_t k)
{
    for (int i = 0; i < n; i++)
        if (set[i] == k) return 1;
    return 0;
}

static void drop(yysymbol_kind_t *set, int *n, yysymbol_kind_t k)
{
    for (int i = 0; i < *n; i++)
        if (set[i] == k) {
            set[i] = set[--*n];
            i--;
        }
}

/* Token text for a message: at most 40 bytes, non-printable bytes as \xNN. */
static void put_text(StrBuf *b, const char *s, size_t n)
{
    size_t lim = n > 40 ? 37 : n;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) sb_putc(b, (char)c);
        else sb_printf(b, "\\x%02x", c);
    }
    if (lim < n) sb_puts(b, "...");
}

/* "identifier 'x'", "integer 3", "string \"a\"", "keyword 'def'", "';'", "end of file" */
static void describe_found(StrBuf *b, const ParseState *ps, yysymbol_kind_t k)
{
    const char *s = ps->text + ps->tok_off;
    size_t n = ps->tok_len;
    switch (k) {
    case YYSYMBOL_YYEOF: sb_puts(b, "end of file"); return;
    case YYSYMBOL_NAME: sb_puts(b, "identifier '"); put_text(b, s, n); sb_putc(b, '\''); return;
    case YYSYMBOL_INT: sb_puts(b, "integer "); put_text(b, s, n); return;
    case YYSYMBOL_FLOAT: sb_puts(b, "number "); put_text(b, s, n); return;
    case YYSYMBOL_STR: sb_puts(b, "string "); put_text(b, s, n); return;
    case YYSYMBOL_VOCAB: case YYSYMBOL_MAX_LEN: case YYSYMBOL_CAUSAL: case YYSYMBOL_BOS:
    case YYSYMBOL_PAD: case YYSYMBOL_LOAD: case YYSYMBOL_DEF: case YYSYMBOL_RETURN:
    case YYSYMBOL_OUTPUT: case YYSYMBOL_LAMBDA: case YYSYMBOL_IF: case YYSYMBOL_ELSE:
    case YYSYMBOL_AND: case YYSYMBOL_OR: case YYSYMBOL_NOT: case YYSYMBOL_TRUE:
    case YYSYMBOL_FALSE:
        sb_puts(b, "keyword '"); put_text(b, s, n); sb_putc(b, '\''); return;
    default:
        sb_putc(b, '\''); put_text(b, s, n); sb_putc(b, '\''); return;
    }
}

/* How an expected token is named in "expected ...". */
static void describe_expected(StrBuf *b, yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_NAME: sb_puts(b, "a name"); return;
    case YYSYMBOL_STR: sb_puts(b, "a string"); return;
    case YYSYMBOL_INT: sb_puts(b, "an integer"); return;
    case YYSYMBOL_YYEOF: sb_puts(b, "end of file"); return;
    default: {
        /* bison's names are "';'" for characters and "\"def\"" for aliases */
        const char *nm = yysymbol_name(k);
        size_t n = strlen(nm);
        if (n >= 2 && nm[0] == '"') { nm++; n -= 2; }
        else if (n >= 2 && nm[0] == '\'') { nm++; n -= 2; }
        sb_putc(b, '\'');
        sb_putn(b, nm, n);
        sb_putc(b, '\'');
    }
    }
}

static const yysymbol_kind_t stmt_starts[] = {
    YYSYMBOL_VOCAB, YYSYMBOL_MAX_LEN, YYSYMBOL_CAUSAL, YYSYMBOL_BOS, YYSYMBOL_PAD,
    YYSYMBOL_LOAD, YYSYMBOL_DEF, YYSYMBOL_OUTPUT, YYSYMBOL_NAME, YYSYMBOL_RETURN,
};

static const yysymbol_kind_t expr_starts[] = {
    YYSYMBOL_INT, YYSYMBOL_FLOAT, YYSYMBOL_STR, YYSYMBOL_TRUE, YYSYMBOL_FALSE,
    YYSYMBOL_NAME, YYSYMBOL_LAMBDA, YYSYMBOL_NOT,
};

static const yysymbol_kind_t operators[] = {
    YYSYMBOL_POW, YYSYMBOL_FLOORDIV, YYSYMBOL_IF, YYSYMBOL_OR, YYSYMBOL_AND,
};

static const yysymbol_kind_t cmp_ops[] = {
    YYSYMBOL_EQ, YYSYMBOL_NE, YYSYMBOL_LE, YYSYMBOL_GE,
};

static yysymbol_kind_t char_sym(int c)
{
    return YYTRANSLATE(c);
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner)
{
    ParseState *ps = PS;
    yysymbol_kind_t tok = yypcontext_token(ctx);
    const YYLTYPE *loc = yypcontext_location(ctx);
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (n < 0) n = 0;
    int want_close = has(exp, n, char_sym(')')) && ps->nparen > 0;

    StrBuf items[8];
    int nitems = 0;
    const char *after = "";
    int at_stmt = 0;

    if (has(exp, n, YYSYMBOL_VOCAB)) {
        at_stmt = 1;
        for (size_t i = 0; i < ARRAY_LEN(stmt_starts); i++) drop(exp, &n, stmt_starts[i]);
        drop(exp, &n, char_sym(';'));
        drop(exp, &n, YYSYMBOL_YYEOF);
        sb_init(&items[nitems]);
        sb_puts(&items[nitems++], "a statement");
    }
    if (has(exp, n, YYSYMBOL_FLOAT)) {
        for (size_t i = 0; i < ARRAY_LEN(expr_starts); i++) drop(exp, &n, expr_starts[i]);
        drop(exp, &n, char_sym('('));
        drop(exp, &n, char_sym('-'));
        drop(exp, &n, char_sym('{'));   /* a lookup table is an expression too */
        sb_init(&items[nitems]);
        sb_puts(&items[nitems++], "an expression");
        if (has(exp, n, YYSYMBOL_EQ)) {
            for (size_t i = 0; i < ARRAY_LEN(cmp_ops); i++) drop(exp, &n, cmp_ops[i]);
            drop(exp, &n, char_sym('<'));
            drop(exp, &n, char_sym('>'));
            sb_init(&items[nitems]);
            sb_puts(&items[nitems++], "a comparison operator");
        }
    } else if (has(exp, n, YYSYMBOL_INT) && has(exp, n, char_sym('-'))) {
        drop(exp, &n, YYSYMBOL_NAME);
        drop(exp, &n, YYSYMBOL_STR);
        drop(exp, &n, YYSYMBOL_INT);
        drop(exp, &n, char_sym('-'));
        sb_init(&items[nitems]);
        sb_puts(&items[nitems++], "a vocab entry (a name, string or integer)");
    }
    if (has(exp, n, char_sym('*'))) {
        /* we are after a complete operand: any operator could follow, don't list them */
        after = " after the expression";
        for (size_t i = 0; i < ARRAY_LEN(operators); i++) drop(exp, &n, operators[i]);
        for (size_t i = 0; i < ARRAY_LEN(cmp_ops); i++) drop(exp, &n, cmp_ops[i]);
        const char *chars = "+-*/%<>(";
        for (const char *c = chars; *c; c++) drop(exp, &n, char_sym(*c));
    }
    /* "',' or ')'" reads better than bison's order */
    for (int i = 1; i < n; i++)
        if (exp[i] == char_sym(',')) {
            exp[i] = exp[0];
            exp[0] = char_sym(',');
        }
    for (int i = 0; i < n && nitems < (int)ARRAY_LEN(items); i++) {
        sb_init(&items[nitems]);
        describe_expected(&items[nitems++], exp[i]);
    }

    StrBuf m;
    sb_init(&m);
    int closing = tok == char_sym(')') || tok == char_sym('}');
    if (at_stmt && tok == YYSYMBOL_YYEOF && has(exp, n, char_sym('}'))) {
        sb_puts(&m, "expected '}' at the end of the def body, found end of file");
    } else if (nitems == 0 || (at_stmt && nitems == 1 && closing)) {
        sb_puts(&m, "unexpected ");
        describe_found(&m, ps, tok);
    } else {
        sb_puts(&m, "expected ");
        for (int i = 0; i < nitems; i++) {
            if (i) sb_puts(&m, i + 1 == nitems ? " or " : ", ");
            sb_puts(&m, items[i].s);
        }
        sb_puts(&m, after);
        sb_puts(&m, ", found ");
        describe_found(&m, ps, tok);
        if (tok == char_sym('=') && *after) sb_puts(&m, " (use '==' to compare)");
    }
    for (int i = 0; i < nitems; i++) sb_free(&items[i]);
    diag_error(ps->d, span_of(ps, loc), "%s", m.s);
    if (want_close)
        diag_note(ps->d, ps->paren[ps->nparen - 1], "to match this '('");
    sb_free(&m);
    return 0;
}

/* Only reached when bison's own stack is exhausted, which the nesting limit prevents. */
static void yyerror(YYLTYPE *loc, void *scanner, const char *msg)
{
    ParseState *ps = PS;
    diag_error(ps->d, span_of(ps, loc), "%s (expression nested too deeply)", msg);
}

AstNode *parse_program(Diag *d, int file, Arena *a)
{
    ParseState ps;
    memset(&ps, 0, sizeof ps);
    ps.d = d;
    ps.file = file;
    ps.a = a;
    ps.text = diag_file_text(d, file, &ps.len);
    ps.line = 1;
    ps.col = 1;
    YYLTYPE whole = {1, 1, 1, 1};
    ps.prog = mk(&ps, AST_PROGRAM, &whole);
    if (!ps.text) return ps.prog;
    if (ps.len > (size_t)INT32_MAX - 2) {
        diag_error(d, (Span){file, 0, 0, 0, 0}, "file too large (more than 2 GB)");
        return ps.prog;
    }
    yyscan_t sc;
    if (rasp_yylex_init_extra(&ps, &sc) != 0) {
        diag_error(d, (Span){file, 0, 0, 0, 0}, "out of memory starting the lexer");
        return ps.prog;
    }
    YY_BUFFER_STATE buf = rasp_yy_scan_bytes(ps.text, (int)ps.len, sc);
    rasp_yyparse(sc);
    rasp_yy_delete_buffer(buf, sc);
    rasp_yylex_destroy(sc);
    /* the program spans the whole file: 1:1 to its last byte (even if parsing stopped early) */
    if (ps.len > 0) {
        int line = 1;
        size_t line_start = 0;
        for (size_t i = 0; i + 1 < ps.len; i++)
            if (ps.text[i] == '\n') {
                line++;
                line_start = i + 1;
            }
        ps.prog->span.end_line = line;
        ps.prog->span.end_col = (int)(ps.len - line_start);
    }
    return ps.prog;
}
