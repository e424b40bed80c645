/* test_parser.c — the grammar: precedence (spec Decision 1), statements, defs, spans,
 * syntax error messages and recovery, and robustness on hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "compiler/front/ast.h"

typedef struct {
    Diag *d;
    Arena a;
    AstNode *prog;
    char *dump;   /* ast_dump of the program */
    char *errs;   /* diag_render */
} Parsed;

static void parse_n(Parsed *p, const char *src, size_t len)
{
    p->d = diag_new();
    int f = diag_add_file(p->d, "t.rasp", src, len);
    arena_init(&p->a);
    p->prog = parse_program(p->d, f, &p->a);
    p->dump = ast_dump(p->prog);
    p->errs = diag_render(p->d);
}

static void parse(Parsed *p, const char *src) { parse_n(p, src, strlen(src)); }

static void done(Parsed *p)
{
    free(p->dump);
    free(p->errs);
    arena_free(&p->a);
    diag_free(p->d);
}

/* The dump of the expression in "x = SRC;" (without the program/assign wrapper). */
static void check_expr(const char *src, const char *want)
{
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "x = %s;", src);
    Parsed p;
    parse(&p, b.s);
    if (diag_errors(p.d)) fail_msg("errors parsing '%s':\n%s", src, p.errs);
    StrBuf w;
    sb_init(&w);
    sb_printf(&w, "(program (assign x %s))", want);
    if (strcmp(p.dump, w.s)) fail_msg("'%s'\n  got  %s\n  want %s", src, p.dump, w.s);
    sb_free(&w);
    sb_free(&b);
    done(&p);
}

static void check_prog(const char *src, const char *want)
{
    Parsed p;
    parse(&p, src);
    if (diag_errors(p.d)) fail_msg("errors parsing '%s':\n%s", src, p.errs);
    if (strcmp(p.dump, want)) fail_msg("'%s'\n  got  %s\n  want %s", src, p.dump, want);
    done(&p);
}

/* The rendered diagnostics must equal want exactly. */
static void check_errs(const char *src, const char *want)
{
    Parsed p;
    parse(&p, src);
    if (strcmp(p.errs, want)) fail_msg("'%s'\n--- got\n%s--- want\n%s", src, p.errs, want);
    assert_true(diag_errors(p.d) > 0);
    done(&p);
}

/* The first message (its "file:line:col: error: msg" line) must equal want. */
static void check_first_err(const char *src, const char *want)
{
    Parsed p;
    parse(&p, src);
    char *nl = strchr(p.errs, '\n');
    size_t n = nl ? (size_t)(nl - p.errs) : strlen(p.errs);
    if (strlen(want) != n || strncmp(p.errs, want, n))
        fail_msg("'%s'\n  got  %.*s\n  want %s", src, (int)n, p.errs, want);
    done(&p);
}

/* ---- precedence, each pair of adjacent levels (Decision 1) ---- */

static void test_parser_lambda_is_loosest(void **st)
{
    (void)st;
    check_expr("lambda x: x if c else y", "(lambda (x) (cond (name x) (name c) (name y)))");
    check_expr("lambda x: a or b", "(lambda (x) (binary or (name a) (name b)))");
    check_expr("a if c else lambda x: x", "(cond (name a) (name c) (lambda (x) (name x)))");
}

static void test_parser_cond_is_looser_than_or(void **st)
{
    (void)st;
    check_expr("a or b if c or d else e or f",
               "(cond (binary or (name a) (name b)) (binary or (name c) (name d)) "
               "(binary or (name e) (name f)))");
    check_expr("a if b else c if d else e",
               "(cond (name a) (name b) (cond (name c) (name d) (name e)))");
}

static void test_parser_or_is_looser_than_and(void **st)
{
    (void)st;
    check_expr("a or b and c", "(binary or (name a) (binary and (name b) (name c)))");
    check_expr("a and b or c", "(binary or (binary and (name a) (name b)) (name c))");
    check_expr("a or b or c", "(binary or (binary or (name a) (name b)) (name c))");
}

static void test_parser_and_is_looser_than_not(void **st)
{
    (void)st;
    check_expr("not a and not b", "(binary and (unary not (name a)) (unary not (name b)))");
    check_expr("a and b and c", "(binary and (binary and (name a) (name b)) (name c))");
    check_expr("not not a", "(unary not (unary not (name a)))");
}

static void test_parser_not_is_looser_than_comparison(void **st)
{
    (void)st;
    check_expr("not a == b", "(unary not (binary == (name a) (name b)))");
    check_expr("not a < b", "(unary not (binary < (name a) (name b)))");
}

static void test_parser_comparison_is_looser_than_additive(void **st)
{
    (void)st;
    check_expr("a + 1 == b - 2",
               "(binary == (binary + (name a) (int 1)) (binary - (name b) (int 2)))");
    check_expr("a != b", "(binary != (name a) (name b))");
    check_expr("a <= b", "(binary <= (name a) (name b))");
    check_expr("a >= b", "(binary >= (name a) (name b))");
    check_expr("a > b", "(binary > (name a) (name b))");
}

static void test_parser_additive_is_looser_than_multiplicative(void **st)
{
    (void)st;
    check_expr("a + b * c", "(binary + (name a) (binary * (name b) (name c)))");
    check_expr("a * b - c", "(binary - (binary * (name a) (name b)) (name c))");
    check_expr("a - b - c", "(binary - (binary - (name a) (name b)) (name c))");
    check_expr("a / b // c % d",
               "(binary % (binary // (binary / (name a) (name b)) (name c)) (name d))");
}

static void test_parser_multiplicative_is_looser_than_unary_minus(void **st)
{
    (void)st;
    check_expr("-a * -b", "(binary * (unary - (name a)) (unary - (name b)))");
    check_expr("- - a", "(unary - (unary - (name a)))");
    check_expr("a - -b", "(binary - (name a) (unary - (name b)))");
}

static void test_parser_pow_binds_tighter_than_unary_minus_on_its_left(void **st)
{
    (void)st;
    check_expr("-2 ** 2", "(unary - (binary ** (int 2) (int 2)))");
    check_expr("2 ** -1", "(binary ** (int 2) (unary - (int 1)))");
    check_expr("a * b ** c", "(binary * (name a) (binary ** (name b) (name c)))");
}

static void test_parser_pow_is_right_associative(void **st)
{
    (void)st;
    check_expr("a ** b ** c", "(binary ** (name a) (binary ** (name b) (name c)))");
    check_expr("(a ** b) ** c", "(binary ** (binary ** (name a) (name b)) (name c))");
}

static void test_parser_parentheses_override_precedence(void **st)
{
    (void)st;
    check_expr("(a + b) * c", "(binary * (binary + (name a) (name b)) (name c))");
    check_expr("((a))", "(name a)");
    check_expr("(a < b) < c", "(binary < (binary < (name a) (name b)) (name c))");
    check_expr("(lambda x: x)", "(lambda (x) (name x))");
}

/* ---- comparisons do not chain ---- */

static void test_parser_chained_comparison_is_an_error_at_the_second_operator(void **st)
{
    (void)st;
    check_errs("x = 0 < k < q;\n",
               "t.rasp:1:11: error: chained comparisons like 'a < b < c' are not allowed; use 'and'\n"
               "    1 | x = 0 < k < q;\n"
               "      |           ^\n");
    /* reported once per chain */
    Parsed p;
    parse(&p, "x = a == b == c == d;\ny = a <= b >= c;\n");
    assert_int_equal(diag_errors(p.d), 2);
    done(&p);
}

/* ---- primaries ---- */

static void test_parser_literals(void **st)
{
    (void)st;
    check_expr("42", "(int 42)");
    check_expr("9223372036854775807", "(int 9223372036854775807)");
    check_expr("0.5", "(float 0.5)");
    check_expr(".5", "(float 0.5)");
    check_expr("5.", "(float 5.0)");
    check_expr("1e-3", "(float 0.001)");
    check_expr("25E-1", "(float 2.5)");
    /* (checked on the value: the dump's float format is fmt_double's business) */
    const char *forms[] = {"x = 2E+3;", "x = 1.5e2;", "x = 2000.;", "x = 20e2;"};
    for (size_t i = 0; i < ARRAY_LEN(forms); i++) {
        Parsed p;
        parse(&p, forms[i]);
        assert_int_equal(diag_errors(p.d), 0);
        AstNode *f = p.prog->kids[0]->kids[0];
        assert_int_equal(f->kind, AST_FLOAT);
        assert_true(f->fval == (i == 1 ? 150.0 : 2000.0));
        done(&p);
    }
    check_expr("\"a b\"", "(str \"a b\")");
    check_expr("true", "(bool true)");
    check_expr("false", "(bool false)");
    check_expr("tokens", "(name tokens)");
}

static void test_parser_calls_take_expressions_and_comparison_operators(void **st)
{
    (void)st;
    check_expr("select(k, q, ==)", "(call select (name k) (name q) (cmpop ==))");
    check_expr("select(k, q, !=)", "(call select (name k) (name q) (cmpop !=))");
    check_expr("select(k, q, <)", "(call select (name k) (name q) (cmpop <))");
    check_expr("select(k, q, <=)", "(call select (name k) (name q) (cmpop <=))");
    check_expr("select(k, q, >)", "(call select (name k) (name q) (cmpop >))");
    check_expr("select(k, q, >=)", "(call select (name k) (name q) (cmpop >=))");
    check_expr("select(k, q, true)", "(call select (name k) (name q) (bool true))");
    check_expr("select(k, q, false)", "(call select (name k) (name q) (bool false))");
    check_expr("f()", "(call f)");
    check_expr("f(a,)", "(call f (name a))");
    check_expr("f(g(a), -b)", "(call f (call g (name a)) (unary - (name b)))");
}

static void test_parser_lambdas_with_zero_one_two_params(void **st)
{
    (void)st;
    check_expr("map(lambda x: x + 1, s)",
               "(call map (lambda (x) (binary + (name x) (int 1))) (name s))");
    check_expr("sequence_map(lambda x, y: x * y, a, b)",
               "(call sequence_map (lambda (x y) (binary * (name x) (name y))) (name a) (name b))");
    check_expr("lambda: 1", "(lambda () (int 1))");
    check_expr("select(indices, indices, lambda k, q: q == k + 1)",
               "(call select (name indices) (name indices) "
               "(lambda (k q) (binary == (name q) (binary + (name k) (int 1)))))");
}

static void test_parser_lambda_nodes_record_their_params(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "x = lambda a, b: a;");
    AstNode *l = p.prog->kids[0]->kids[0];
    assert_int_equal(l->kind, AST_LAMBDA);
    assert_int_equal(l->nparams, 2);
    assert_int_equal(l->nkids, 3);
    assert_string_equal(l->kids[0]->str, "a");
    assert_int_equal(l->kids[0]->kind, AST_NAME);
    assert_int_equal(l->kids[2]->kind, AST_NAME);
    done(&p);
}

/* ---- statements ---- */

static void test_parser_all_declarations(void **st)
{
    (void)st;
    check_prog("vocab {a, \"b c\", 3, -3, Z_9};\nmax_len 10;\ncausal;\nbos \"BOS\";\npad \"PAD\";\n"
               "load \"lib/x.rasp\";\noutput tokens;\n",
               "(program (vocab (name a) (str \"b c\") (int 3) (int -3) (name Z_9)) "
               "(max_len (int 10)) (causal) (bos \"BOS\") (pad \"PAD\") (load \"lib/x.rasp\") "
               "(output (name tokens)))");
}

static void test_parser_vocab_forms(void **st)
{
    (void)st;
    check_prog("vocab {};", "(program (vocab))");
    check_prog("vocab {a,};", "(program (vocab (name a)))");
    check_prog("vocab {-1, - 2, 0};", "(program (vocab (int -1) (int -2) (int 0)))");
}

static void test_parser_empty_statements_are_ignored(void **st)
{
    (void)st;
    check_prog(";;x = 1;;", "(program (assign x (int 1)))");
}

static void test_parser_def_with_params_and_return(void **st)
{
    (void)st;
    check_prog("def shift_by(offset, s) {\n"
               "    sel = select(indices, indices, lambda k, q: q == k + offset);\n"
               "    return aggregate(sel, s);\n"
               "}\n",
               "(program (def shift_by (offset s) (assign sel (call select (name indices) "
               "(name indices) (lambda (k q) (binary == (name q) (binary + (name k) "
               "(name offset)))))) (return (call aggregate (name sel) (name s)))))");
    check_prog("def one() { return 1; }", "(program (def one () (return (int 1))))");
    check_prog("def f(a,) { return a; }", "(program (def f (a) (return (name a))))");

    Parsed p;
    parse(&p, "def f(a, b) { c = a; return c; }");
    AstNode *d = p.prog->kids[0];
    assert_int_equal(d->kind, AST_DEF);
    assert_string_equal(d->str, "f");
    assert_int_equal(d->nparams, 2);
    assert_int_equal(d->nkids, 4);
    assert_int_equal(d->kids[0]->kind, AST_NAME);
    assert_int_equal(d->kids[2]->kind, AST_ASSIGN);
    assert_int_equal(d->kids[3]->kind, AST_RETURN);
    done(&p);
}

static void test_parser_declarations_inside_def_are_left_to_sema(void **st)
{
    (void)st;
    check_prog("def f() { vocab {a}; output 1; return 2; }",
               "(program (def f () (vocab (name a)) (output (int 1)) (return (int 2))))");
}

static void test_parser_def_without_return_is_an_error(void **st)
{
    (void)st;
    check_errs("def f(a) {\n    b = a;\n}\n",
               "t.rasp:3:1: error: expected 'return EXPR;' at the end of def 'f', found '}'\n"
               "    3 | }\n"
               "      | ^\n");
    check_first_err("def f() {}", "t.rasp:1:10: error: expected 'return EXPR;' at the end of "
                    "def 'f', found '}'");
}

static void test_parser_return_must_be_last_in_def(void **st)
{
    (void)st;
    check_first_err("def f() { return 1; x = 2; return x; }",
                    "t.rasp:1:11: error: 'return' must be the last statement of def 'f'");
}

static void test_parser_return_outside_def_is_an_error(void **st)
{
    (void)st;
    check_errs("return 3;\n", "t.rasp:1:1: error: 'return' outside a def\n"
                              "    1 | return 3;\n"
                              "      | ^~~~~~\n");
}

static void test_parser_nested_def_is_an_error(void **st)
{
    (void)st;
    check_first_err("def f() {\n  def g() { return 1; }\n  return 2;\n}",
                    "t.rasp:2:3: error: a def cannot be nested inside another def; "
                    "is a '}' missing before it?");
}

/* ---- spans ---- */

static void assert_span(const AstNode *n, int l, int c, int el, int ec)
{
    if (n->span.line != l || n->span.col != c || n->span.end_line != el || n->span.end_col != ec)
        fail_msg("%s spans %d:%d-%d:%d, wanted %d:%d-%d:%d", ast_kind_name(n->kind),
                 n->span.line, n->span.col, n->span.end_line, n->span.end_col, l, c, el, ec);
}

static void test_parser_spans_are_exact(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "# c\nx = f(a, 2) + (b);\n\tvocab {a, -3};\ndef g(p) {\n  return p;\n}\n");
    assert_int_equal(diag_errors(p.d), 0);
    AstNode *as = p.prog->kids[0];
    assert_span(as, 2, 1, 2, 18);                 /* statement, through ';' */
    AstNode *bin = as->kids[0];
    assert_span(bin, 2, 5, 2, 17);                /* binary: both operands, parens included */
    assert_span(bin->kids[0], 2, 5, 2, 11);       /* call: name to ')' */
    assert_span(bin->kids[0]->kids[1], 2, 10, 2, 10);
    assert_span(bin->kids[1], 2, 16, 2, 16);      /* (b): the name itself */
    AstNode *voc = p.prog->kids[1];
    assert_span(voc, 3, 2, 3, 15);                /* tab counts one column */
    assert_span(voc->kids[1], 3, 12, 3, 13);      /* -3 */
    AstNode *def = p.prog->kids[2];
    assert_span(def, 4, 1, 6, 1);
    assert_span(def->kids[0], 4, 7, 4, 7);        /* parameter */
    assert_span(def->kids[1], 5, 3, 5, 11);       /* return statement */
    assert_int_equal(as->span.file, 0);
    done(&p);
}

/* ---- syntax errors: messages ---- */

static void test_parser_missing_semicolon_is_reported_at_the_next_token(void **st)
{
    (void)st;
    check_errs("x = a\ny = 2;\n",
               "t.rasp:2:1: error: expected ';' after the expression, found identifier 'y'\n"
               "    2 | y = 2;\n"
               "      | ^\n");
}

static void test_parser_error_messages_say_what_was_expected_and_found(void **st)
{
    (void)st;
    check_first_err("x = (1 + 2;", "t.rasp:1:11: error: expected ')' after the expression, found ';'");
    check_first_err("x = ;", "t.rasp:1:5: error: expected an expression, found ';'");
    check_first_err("x = f(a b);",
                    "t.rasp:1:9: error: expected ',' or ')' after the expression, found identifier 'b'");
    check_first_err("vocab {a b};", "t.rasp:1:10: error: expected ',' or '}', found identifier 'b'");
    check_first_err("vocab {a, if};",
                    "t.rasp:1:11: error: expected a vocab entry (a name, string or integer) or '}', "
                    "found keyword 'if'");
    check_first_err("bos BOS;", "t.rasp:1:5: error: expected a string, found identifier 'BOS'");
    check_first_err("def 3", "t.rasp:1:5: error: expected a name, found integer 3");
    check_first_err("x = 1 if a;", "t.rasp:1:11: error: expected 'else' after the expression, found ';'");
    check_first_err("x = a = b;",
                    "t.rasp:1:7: error: expected ';' after the expression, found '=' (use '==' to compare)");
    check_first_err("x 1;", "t.rasp:1:3: error: expected '=', found integer 1");
    check_first_err("f(x);", "t.rasp:1:2: error: expected '=', found '('");
    check_first_err("+ x;", "t.rasp:1:1: error: expected a statement, found '+'");
    check_first_err("}", "t.rasp:1:1: error: unexpected '}'");
    check_first_err("x = 1", "t.rasp:1:6: error: expected ';' after the expression, found end of file");
    check_first_err("x = \"abc\" \"d\";",
                    "t.rasp:1:11: error: expected ';' after the expression, found string \"d\"");
    check_first_err("x = 1 2.5;", "t.rasp:1:7: error: expected ';' after the expression, found number 2.5");
    check_first_err("x = select(a, b, ,);",
                    "t.rasp:1:18: error: expected an expression, a comparison operator or ')', found ','");
    check_first_err("lambda x: x;", "t.rasp:1:1: error: expected a statement, found keyword 'lambda'");
    check_first_err("x = lambda a b: a;", "t.rasp:1:14: error: expected ',' or ':', found identifier 'b'");
    check_first_err("def f() { return 1 }",
                    "t.rasp:1:20: error: expected ';' after the expression, found '}'");
    check_first_err("def f() { return 1; ",
                    "t.rasp:1:20: error: expected '}' at the end of the def body, found end of file");
}

static void test_parser_missing_close_paren_points_at_the_open_one(void **st)
{
    (void)st;
    check_errs("x = f(a, (b + 1);\n",
               "t.rasp:1:17: error: expected ',' or ')' after the expression, found ';'\n"
               "    1 | x = f(a, (b + 1);\n"
               "      |                 ^\n"
               "t.rasp:1:6: note: to match this '('\n"
               "    1 | x = f(a, (b + 1);\n"
               "      |      ^\n");
}

static void test_parser_long_tokens_are_shortened_in_messages(void **st)
{
    (void)st;
    check_first_err("x = a abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij;",
                    "t.rasp:1:7: error: expected ';' after the expression, found identifier "
                    "'abcdefghijabcdefghijabcdefghijabcdefg...'");
}

/* ---- recovery ---- */

static void test_parser_reports_every_independent_error(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "x = 1 +;\ny = (2;\nok = 3;\nvocab {a b};\ndef f(a b) { return a; }\n"
              "z = ;\ndef g() { q = ; return 1; }\nw = 4;\n");
    assert_int_equal(diag_errors(p.d), 6);
    /* the good statements survive */
    assert_non_null(strstr(p.dump, "(assign ok (int 3))"));
    assert_non_null(strstr(p.dump, "(assign w (int 4))"));
    const char *lines[] = {"t.rasp:1:8:", "t.rasp:2:7:", "t.rasp:4:10:", "t.rasp:5:9:",
                           "t.rasp:6:5:", "t.rasp:7:15:"};
    const char *at = p.errs;
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        const char *hit = strstr(at, lines[i]);
        if (!hit) fail_msg("no error at %s in\n%s", lines[i], p.errs);
        at = hit + 1;
    }
    done(&p);
}

static void test_parser_error_in_def_body_recovers_at_the_closing_brace(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "def f() { return 1 }\nx = 2;\n");
    assert_int_equal(diag_errors(p.d), 1);
    assert_non_null(strstr(p.dump, "(assign x (int 2))"));
    done(&p);
}

static void test_parser_error_before_a_def_recovers_at_the_def(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "x = 1 +\ndef f() {\n  y = 2;\n  return y;\n}\noutput f();\n");
    assert_int_equal(diag_errors(p.d), 1);
    assert_non_null(strstr(p.errs, "t.rasp:2:1: error: expected an expression, found keyword 'def'"));
    assert_string_equal(p.dump, "(program (def f () (assign y (int 2)) (return (name y))) "
                                "(output (call f)))");
    done(&p);
}

static void test_parser_program_spans_the_whole_file(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "x = 1;\ny = 2;\n");
    assert_int_equal(p.prog->span.line, 1);
    assert_int_equal(p.prog->span.col, 1);
    assert_int_equal(p.prog->span.end_line, 2);
    assert_int_equal(p.prog->span.end_col, 7);   /* the final newline */
    done(&p);
    parse(&p, "");
    assert_int_equal(p.prog->span.end_line, 1);
    assert_int_equal(p.prog->span.end_col, 1);
    done(&p);
}

/* ---- robustness ---- */

static void test_parser_empty_and_comment_only_files_are_empty_programs(void **st)
{
    (void)st;
    check_prog("", "(program)");
    check_prog("# only\n# comments\n", "(program)");
    check_prog("  \n\t\r\n", "(program)");
}

static void test_parser_deep_parentheses_are_capped(void **st)
{
    (void)st;
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, "x = ");
    for (int i = 0; i < 10000; i++) sb_putc(&b, '(');
    sb_putc(&b, '1');
    for (int i = 0; i < 10000; i++) sb_putc(&b, ')');
    sb_puts(&b, ";\ny = 2;\n");
    Parsed p;
    parse(&p, b.s);
    assert_int_equal(diag_errors(p.d), 1);
    assert_non_null(strstr(p.errs, "t.rasp:1:205: error: expression nested too deeply "
                                   "(more than 200 levels)"));
    assert_string_equal(p.dump, "(program (assign y (int 2)))");
    done(&p);
    sb_free(&b);
}

static void test_parser_200_levels_are_fine(void **st)
{
    (void)st;
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, "x = ");
    for (int i = 0; i < 200; i++) sb_puts(&b, "f(");
    sb_putc(&b, '1');
    for (int i = 0; i < 200; i++) sb_putc(&b, ')');
    sb_puts(&b, ";");
    Parsed p;
    parse(&p, b.s);
    assert_int_equal(diag_errors(p.d), 0);
    done(&p);
    sb_free(&b);
}

static void test_parser_deep_prefix_operators_are_capped(void **st)
{
    (void)st;
    const char *units[] = {"- ", "not ", "2 ** ", "1 if c else ", "lambda x: "};
    for (size_t u = 0; u < ARRAY_LEN(units); u++) {
        StrBuf b;
        sb_init(&b);
        sb_puts(&b, "x = ");
        for (int i = 0; i < 5000; i++) sb_puts(&b, units[u]);
        sb_puts(&b, "1;\n");
        Parsed p;
        parse(&p, b.s);
        if (diag_errors(p.d) != 1 || !strstr(p.errs, "nested too deeply"))
            fail_msg("'%s' x 5000: %.300s", units[u], p.errs);
        done(&p);
        sb_free(&b);
    }
}

static void test_parser_long_operator_chains_are_capped(void **st)
{
    (void)st;
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, "x = a");
    for (int i = 0; i < 100000; i++) sb_puts(&b, "+a");
    sb_puts(&b, ";\n");
    Parsed p;
    parse(&p, b.s);
    assert_int_equal(diag_errors(p.d), 1);
    assert_non_null(strstr(p.errs, "t.rasp:1:2004: error: expression too deeply nested "
                                   "(more than 1000 levels of operators)"));
    done(&p);   /* freeing the dump proves it was built without deep recursion trouble */
    sb_free(&b);
}

static void test_parser_binary_garbage_stops_after_the_error_cap(void **st)
{
    (void)st;
    size_t n = 200000;
    char *g = xmalloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        g[i] = (char)(x >> 16);
    }
    Parsed p;
    parse_n(&p, g, n);
    assert_true(diag_errors(p.d) > DIAG_MAX_ERRORS);
    const char *tail = "error: too many errors; stopping\n";
    size_t el = strlen(p.errs), tl = strlen(tail);
    assert_true(el > tl);
    assert_string_equal(p.errs + el - tl, tail);
    done(&p);
    free(g);
}

static void test_parser_every_byte_value_is_handled(void **st)
{
    (void)st;
    for (int c = 0; c < 256; c++) {
        char src[16];
        memcpy(src, "x = a", 5);
        src[5] = (char)c;
        memcpy(src + 6, "b;", 2);
        Parsed p;
        parse_n(&p, src, 8);
        done(&p);
    }
}

static void test_parser_megabyte_line_is_fine(void **st)
{
    (void)st;
    size_t n = 1 << 20;
    char *s = xmalloc(n + 16);
    memcpy(s, "x = ", 4);
    memset(s + 4, 'a', n);
    memcpy(s + 4 + n, ";", 1);
    Parsed p;
    parse_n(&p, s, n + 5);
    assert_int_equal(diag_errors(p.d), 0);
    assert_int_equal((int)strlen(p.prog->kids[0]->kids[0]->str), (int)n);
    done(&p);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_lambda_is_loosest),
        cmocka_unit_test(test_parser_cond_is_looser_than_or),
        cmocka_unit_test(test_parser_or_is_looser_than_and),
        cmocka_unit_test(test_parser_and_is_looser_than_not),
        cmocka_unit_test(test_parser_not_is_looser_than_comparison),
        cmocka_unit_test(test_parser_comparison_is_looser_than_additive),
        cmocka_unit_test(test_parser_additive_is_looser_than_multiplicative),
        cmocka_unit_test(test_parser_multiplicative_is_looser_than_unary_minus),
        cmocka_unit_test(test_parser_pow_binds_tighter_than_unary_minus_on_its_left),
        cmocka_unit_test(test_parser_pow_is_right_associative),
        cmocka_unit_test(test_parser_parentheses_override_precedence),
        cmocka_unit_test(test_parser_chained_comparison_is_an_error_at_the_second_operator),
        cmocka_unit_test(test_parser_literals),
        cmocka_unit_test(test_parser_calls_take_expressions_and_comparison_operators),
        cmocka_unit_test(test_parser_lambdas_with_zero_one_two_params),
        cmocka_unit_test(test_parser_lambda_nodes_record_their_params),
        cmocka_unit_test(test_parser_all_declarations),
        cmocka_unit_test(test_parser_vocab_forms),
        cmocka_unit_test(test_parser_empty_statements_are_ignored),
        cmocka_unit_test(test_parser_def_with_params_and_return),
        cmocka_unit_test(test_parser_declarations_inside_def_are_left_to_sema),
        cmocka_unit_test(test_parser_def_without_return_is_an_error),
        cmocka_unit_test(test_parser_return_must_be_last_in_def),
        cmocka_unit_test(test_parser_return_outside_def_is_an_error),
        cmocka_unit_test(test_parser_nested_def_is_an_error),
        cmocka_unit_test(test_parser_spans_are_exact),
        cmocka_unit_test(test_parser_missing_semicolon_is_reported_at_the_next_token),
        cmocka_unit_test(test_parser_error_messages_say_what_was_expected_and_found),
        cmocka_unit_test(test_parser_missing_close_paren_points_at_the_open_one),
        cmocka_unit_test(test_parser_long_tokens_are_shortened_in_messages),
        cmocka_unit_test(test_parser_reports_every_independent_error),
        cmocka_unit_test(test_parser_error_in_def_body_recovers_at_the_closing_brace),
        cmocka_unit_test(test_parser_error_before_a_def_recovers_at_the_def),
        cmocka_unit_test(test_parser_program_spans_the_whole_file),
        cmocka_unit_test(test_parser_empty_and_comment_only_files_are_empty_programs),
        cmocka_unit_test(test_parser_deep_parentheses_are_capped),
        cmocka_unit_test(test_parser_200_levels_are_fine),
        cmocka_unit_test(test_parser_deep_prefix_operators_are_capped),
        cmocka_unit_test(test_parser_long_operator_chains_are_capped),
        cmocka_unit_test(test_parser_binary_garbage_stops_after_the_error_cap),
        cmocka_unit_test(test_parser_every_byte_value_is_handled),
        cmocka_unit_test(test_parser_megabyte_line_is_fine),
    };
    return cmocka_run_group_tests_name("parser", tests, NULL, NULL);
}
