/* test_lexer.c — tokens of .rasp (spec Lexical, Decisions 15-17), observed through the
 * parser: keywords vs names, numbers, strings and escapes, comments, invalid bytes,
 * byte columns. */
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
    char *dump;
    char *errs;
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

static void check_prog_n(const char *src, size_t len, const char *want)
{
    Parsed p;
    parse_n(&p, src, len);
    if (diag_errors(p.d)) fail_msg("errors parsing '%s':\n%s", src, p.errs);
    if (strcmp(p.dump, want)) fail_msg("'%s'\n  got  %s\n  want %s", src, p.dump, want);
    done(&p);
}

static void check_prog(const char *src, const char *want) { check_prog_n(src, strlen(src), want); }

static void check_errs_n(const char *src, size_t len, const char *want)
{
    Parsed p;
    parse_n(&p, src, len);
    if (strcmp(p.errs, want)) fail_msg("'%s'\n--- got\n%s--- want\n%s", src, p.errs, want);
    assert_true(diag_errors(p.d) > 0);
    done(&p);
}

static void check_errs(const char *src, const char *want) { check_errs_n(src, strlen(src), want); }

static void test_lexer_builtin_names_are_ordinary_names(void **st)
{
    (void)st;
    check_prog("x = tokens + indices + length;",
               "(program (assign x (binary + (binary + (name tokens) (name indices)) (name length))))");
    check_prog("map = 1; select = 2; aggregate = 3;",
               "(program (assign map (int 1)) (assign select (int 2)) (assign aggregate (int 3)))");
}

static void test_lexer_keywords_only_match_whole_words(void **st)
{
    (void)st;
    check_prog("vocabulary = if_ + _else + True + def2 + notx;",
               "(program (assign vocabulary (binary + (binary + (binary + (binary + (name if_) "
               "(name _else)) (name True)) (name def2)) (name notx))))");
}

static void test_lexer_keyword_cannot_be_assigned(void **st)
{
    (void)st;
    check_errs("if = 3;\n", "t.rasp:1:1: error: expected a statement, found keyword 'if'\n"
                            "    1 | if = 3;\n"
                            "      | ^~\n");
}

static void test_lexer_comments_run_to_end_of_line(void **st)
{
    (void)st;
    check_prog("x = 1; # y = ; ) garbage $\ny = 2; # no newline at end",
               "(program (assign x (int 1)) (assign y (int 2)))");
    check_prog("x = \"a # b\";", "(program (assign x (str \"a # b\")))");
    check_prog("#\n#\n", "(program)");
}

static void test_lexer_integers(void **st)
{
    (void)st;
    check_prog("x = 0; y = 007; z = 9223372036854775807;",
               "(program (assign x (int 0)) (assign y (int 7)) (assign z (int 9223372036854775807)))");
}

static void test_lexer_integer_overflow_is_an_error(void **st)
{
    (void)st;
    check_errs("x = 9223372036854775808;\n",
               "t.rasp:1:5: error: integer literal out of range (the largest is 9223372036854775807)\n"
               "    1 | x = 9223372036854775808;\n"
               "      |     ^~~~~~~~~~~~~~~~~~~\n");
    check_errs("vocab {-99999999999999999999};\n",
               "t.rasp:1:9: error: integer literal out of range (the largest is 9223372036854775807)\n"
               "    1 | vocab {-99999999999999999999};\n"
               "      |         ^~~~~~~~~~~~~~~~~~~~\n");
}

static void test_lexer_float_forms(void **st)
{
    (void)st;
    const char *src[] = {"0.5", ".5", "5.", "1e-3", "1E+3", "1.e2", "0.", "2.5e0", "1e0"};
    const double want[] = {0.5, 0.5, 5.0, 1e-3, 1e3, 100.0, 0.0, 2.5, 1.0};
    for (size_t i = 0; i < ARRAY_LEN(src); i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "x = %s;", src[i]);
        Parsed p;
        parse(&p, buf);
        if (diag_errors(p.d)) fail_msg("%s: %s", src[i], p.errs);
        AstNode *f = p.prog->kids[0]->kids[0];
        assert_int_equal(f->kind, AST_FLOAT);
        if (f->fval != want[i]) fail_msg("%s read as %g", src[i], f->fval);
        done(&p);
    }
}

static void test_lexer_float_overflow_is_an_error(void **st)
{
    (void)st;
    check_errs("x = 1e999;\n", "t.rasp:1:5: error: floating-point literal out of range\n"
                               "    1 | x = 1e999;\n"
                               "      |     ^~~~~\n");
}

static void test_lexer_string_escapes_are_decoded(void **st)
{
    (void)st;
    check_prog("x = \"q\\\"b\\\\s\\nn\\tt\";", "(program (assign x (str \"q\\\"b\\\\s\\nn\\tt\")))");
    Parsed p;
    parse(&p, "x = \"\\\"\\\\\\n\\t\";");
    assert_string_equal(p.prog->kids[0]->kids[0]->str, "\"\\\n\t");
    done(&p);
}

static void test_lexer_strings_may_hold_utf8(void **st)
{
    (void)st;
    check_prog("vocab {\"caf\xc3\xa9\"};", "(program (vocab (str \"caf\\xc3\\xa9\")))");
}

static void test_lexer_unknown_escape_is_an_error_naming_it(void **st)
{
    (void)st;
    check_errs("x = \"a\\qb\";\n",
               "t.rasp:1:7: error: unknown escape sequence '\\q' in string (the escapes are \\\" \\\\ \\n \\t)\n"
               "    1 | x = \"a\\qb\";\n"
               "      |       ^~\n");
    Parsed p;
    parse(&p, "x = \"\\x41\";");
    assert_non_null(strstr(p.errs, "unknown escape sequence '\\x'"));
    done(&p);
}

static void test_lexer_unterminated_string(void **st)
{
    (void)st;
    check_errs("x = \"abc;\ny = 1;\n",
               "t.rasp:1:5: error: unterminated string (a string ends with '\"' on the same line)\n"
               "    1 | x = \"abc;\n"
               "      |     ^\n");
    check_errs("x = \"abc\\\ny\";\n",
               "t.rasp:1:5: error: unterminated string (a string ends with '\"' on the same line)\n"
               "    1 | x = \"abc\\\n"
               "      |     ^\n"
               "t.rasp:2:2: error: unterminated string (a string ends with '\"' on the same line)\n"
               "    2 | y\";\n"
               "      |  ^\n");
    check_errs("x = \"abc",
               "t.rasp:1:5: error: unterminated string (a string ends with '\"' on the same line)\n"
               "    1 | x = \"abc\n"
               "      |     ^\n");
}

static void test_lexer_single_quotes_get_a_hint(void **st)
{
    (void)st;
    check_errs("x = tokens == 'a';\n",
               "t.rasp:1:15: error: strings are written in double quotes, not single quotes\n"
               "    1 | x = tokens == 'a';\n"
               "      |               ^~~\n");
}

static void test_lexer_invalid_characters(void **st)
{
    (void)st;
    check_errs("x = a $ b;\n", "t.rasp:1:7: error: invalid character '$'\n"
                               "    1 | x = a $ b;\n"
                               "      |       ^\n");
    check_errs("x = a[0];\n", "t.rasp:1:6: error: invalid character '['\n"
                              "    1 | x = a[0];\n"
                              "      |      ^\n");
    check_errs("x = !a;\n",
               "t.rasp:1:5: error: invalid character '!'; use 'not' for negation and '!=' for inequality\n"
               "    1 | x = !a;\n"
               "      |     ^\n");
    check_errs("x = a && b;\n", "t.rasp:1:7: error: invalid operator '&&'; use 'and'\n"
                                "    1 | x = a && b;\n"
                                "      |       ^~\n");
    check_errs("x = a || b;\n", "t.rasp:1:7: error: invalid operator '||'; use 'or'\n"
                                "    1 | x = a || b;\n"
                                "      |       ^~\n");
    check_errs("x = a\\b;\n", "t.rasp:1:6: error: invalid character '\\\\'\n"
                              "    1 | x = a\\b;\n"
                              "      |      ^\n");
}

static void test_lexer_non_ascii_outside_strings_is_reported_once_per_run(void **st)
{
    (void)st;
    check_errs("caf\xc3\xa9 = 1;\n",
               "t.rasp:1:4: error: invalid character '\\xc3' (only ASCII is allowed outside strings and comments)\n"
               "    1 | caf\\xc3\\xa9 = 1;\n"
               "      |    ^~~~~~~~\n");
}

static void test_lexer_nul_bytes_are_invalid_everywhere(void **st)
{
    (void)st;
    check_errs_n("x = a\0;\n", 8, "t.rasp:1:6: error: invalid character '\\x00'\n"
                                  "    1 | x = a\\x00;\n"
                                  "      |      ^~~~\n");
    check_errs_n("x = \"a\0b\";\n", 11, "t.rasp:1:7: error: invalid character '\\x00' in string\n"
                                        "    1 | x = \"a\\x00b\";\n"
                                        "      |       ^~~~\n");
    check_errs_n("x = 1; # a\0b ; $\n", 17, "t.rasp:1:11: error: invalid character '\\x00' in comment\n"
                                            "    1 | x = 1; # a\\x00b ; $\n"
                                            "      |           ^~~~\n");
}

static void test_lexer_a_lexical_error_does_not_cascade(void **st)
{
    (void)st;
    Parsed p;
    parse(&p, "x = a @ b c d;\ny = 1 +;\nz = 2;\n");
    assert_int_equal(diag_errors(p.d), 2);
    assert_non_null(strstr(p.errs, "t.rasp:1:7: error: invalid character '@'"));
    assert_non_null(strstr(p.errs, "t.rasp:2:8: error: expected an expression"));
    assert_non_null(strstr(p.dump, "(assign z (int 2))"));
    done(&p);
}

static void test_lexer_columns_count_bytes_and_tabs_count_one(void **st)
{
    (void)st;
    check_errs("\tx = $;\n", "t.rasp:1:6: error: invalid character '$'\n"
                             "    1 | \tx = $;\n"
                             "      | \t    ^\n");
    /* a string with a 2-byte character before the error: columns are bytes */
    Parsed p;
    parse(&p, "x = \"\xc3\xa9\" $;");
    assert_non_null(strstr(p.errs, "t.rasp:1:10: error: invalid character '$'"));
    done(&p);
}

static void test_lexer_crlf_line_endings_work(void **st)
{
    (void)st;
    check_prog("x = 1;\r\ny = 2;\r\n", "(program (assign x (int 1)) (assign y (int 2)))");
    check_errs("x = 1;\r\ny = $;\r\n", "t.rasp:2:5: error: invalid character '$'\n"
                                       "    2 | y = $;\n"
                                       "      |     ^\n");
}

static void test_lexer_control_characters_are_invalid(void **st)
{
    (void)st;
    check_errs("x = 1;\fy = 2;\n", "t.rasp:1:7: error: invalid character '\\x0c'\n"
                                   "    1 | x = 1;\\x0cy = 2;\n"
                                   "      |       ^~~~\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lexer_builtin_names_are_ordinary_names),
        cmocka_unit_test(test_lexer_keywords_only_match_whole_words),
        cmocka_unit_test(test_lexer_keyword_cannot_be_assigned),
        cmocka_unit_test(test_lexer_comments_run_to_end_of_line),
        cmocka_unit_test(test_lexer_integers),
        cmocka_unit_test(test_lexer_integer_overflow_is_an_error),
        cmocka_unit_test(test_lexer_float_forms),
        cmocka_unit_test(test_lexer_float_overflow_is_an_error),
        cmocka_unit_test(test_lexer_string_escapes_are_decoded),
        cmocka_unit_test(test_lexer_strings_may_hold_utf8),
        cmocka_unit_test(test_lexer_unknown_escape_is_an_error_naming_it),
        cmocka_unit_test(test_lexer_unterminated_string),
        cmocka_unit_test(test_lexer_single_quotes_get_a_hint),
        cmocka_unit_test(test_lexer_invalid_characters),
        cmocka_unit_test(test_lexer_non_ascii_outside_strings_is_reported_once_per_run),
        cmocka_unit_test(test_lexer_nul_bytes_are_invalid_everywhere),
        cmocka_unit_test(test_lexer_a_lexical_error_does_not_cascade),
        cmocka_unit_test(test_lexer_columns_count_bytes_and_tabs_count_one),
        cmocka_unit_test(test_lexer_crlf_line_endings_work),
        cmocka_unit_test(test_lexer_control_characters_are_invalid),
    };
    return cmocka_run_group_tests_name("lexer", tests, NULL, NULL);
}
