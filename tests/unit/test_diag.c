/* test_diag.c — exact GCC-style rendering of diagnostics: positions, notes, tabs, long lines,
 * non-printable bytes, multi-line spans, the error cap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "compiler/front/diag.h"

static Span at(int file, int line, int col, int end_line, int end_col)
{
    Span s = {file, line, col, end_line, end_col};
    return s;
}

static void check_render(const Diag *d, const char *want)
{
    char *got = diag_render(d);
    if (strcmp(got, want)) fail_msg("--- got\n%s--- want\n%s", got, want);
    free(got);
}

static void test_diag_error_with_position_shows_line_and_caret(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char *src = "vocab {a};\nmax_len 3;\nx = foo + 1;\n";
    int f = diag_add_file(d, "path/file.rasp", src, strlen(src));
    diag_error(d, at(f, 3, 5, 3, 7), "unknown name '%s'", "foo");
    check_render(d, "path/file.rasp:3:5: error: unknown name 'foo'\n"
                    "    3 | x = foo + 1;\n"
                    "      |     ^~~\n");
    assert_int_equal(diag_errors(d), 1);
    diag_free(d);
}

static void test_diag_errors_without_line_or_file(void **st)
{
    (void)st;
    Diag *d = diag_new();
    int f = diag_add_file(d, "p.rasp", "x", 1);
    diag_error(d, at(f, 0, 0, 0, 0), "no 'output' statement");
    diag_error(d, SPAN_NONE, "cannot read '%s'", "q.rasp");
    check_render(d, "p.rasp: error: no 'output' statement\n"
                    "error: cannot read 'q.rasp'\n");
    assert_int_equal(diag_errors(d), 2);
    diag_free(d);
}

static void test_diag_notes_follow_their_error(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char *src = "a = 1;\na = 2;\n";
    int f = diag_add_file(d, "p.rasp", src, strlen(src));
    diag_error(d, at(f, 2, 1, 2, 1), "redefinition of 'a'");
    diag_note(d, at(f, 1, 1, 1, 1), "first defined here");
    check_render(d, "p.rasp:2:1: error: redefinition of 'a'\n"
                    "    2 | a = 2;\n"
                    "      | ^\n"
                    "p.rasp:1:1: note: first defined here\n"
                    "    1 | a = 1;\n"
                    "      | ^\n");
    assert_int_equal(diag_errors(d), 1);   /* notes are not errors */
    diag_free(d);
}

static void test_diag_tabs_are_kept_in_the_marker_padding(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char *src = "\tx =\tfoo;\n";
    int f = diag_add_file(d, "p.rasp", src, strlen(src));
    diag_error(d, at(f, 1, 6, 1, 8), "unknown name 'foo'");
    check_render(d, "p.rasp:1:6: error: unknown name 'foo'\n"
                    "    1 | \tx =\tfoo;\n"
                    "      | \t   \t^~~\n");
    diag_free(d);
}

static void test_diag_multiline_span_marks_to_end_of_first_line(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char *src = "def f(a) {\n  return a;\n}\n";
    int f = diag_add_file(d, "p.rasp", src, strlen(src));
    diag_error(d, at(f, 1, 5, 3, 1), "unused def 'f'");
    check_render(d, "p.rasp:1:5: error: unused def 'f'\n"
                    "    1 | def f(a) {\n"
                    "      |     ^~~~~~\n");
    diag_free(d);
}

static void test_diag_caret_just_past_the_end_of_a_line(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char *src = "output x";
    int f = diag_add_file(d, "p.rasp", src, strlen(src));
    diag_error(d, at(f, 1, 9, 1, 9), "expected ';'");
    check_render(d, "p.rasp:1:9: error: expected ';'\n"
                    "    1 | output x\n"
                    "      |         ^\n");
    diag_free(d);
}

static void test_diag_position_past_the_last_line_prints_no_source(void **st)
{
    (void)st;
    Diag *d = diag_new();
    int f = diag_add_file(d, "empty.rasp", "", 0);
    int g = diag_add_file(d, "one.rasp", "x;\n", 3);
    diag_error(d, at(f, 1, 1, 1, 1), "no 'vocab' declaration");
    diag_error(d, at(g, 2, 1, 2, 1), "late");
    check_render(d, "empty.rasp:1:1: error: no 'vocab' declaration\n"
                    "one.rasp:2:1: error: late\n");
    diag_free(d);
}

static void test_diag_non_printable_bytes_are_escaped_and_the_caret_follows(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char src[] = "x = \"\x01\" \xc3\xa9 $;\n";
    int f = diag_add_file(d, "p.rasp", src, sizeof src - 1);
    diag_error(d, at(f, 1, 9, 1, 10), "invalid character '\\xc3'");
    diag_error(d, at(f, 1, 12, 1, 12), "invalid character '$'");
    check_render(d, "p.rasp:1:9: error: invalid character '\\xc3'\n"
                    "    1 | x = \"\\x01\" \\xc3\\xa9 $;\n"
                    "      |            ^~~~~~~~\n"
                    "p.rasp:1:12: error: invalid character '$'\n"
                    "    1 | x = \"\\x01\" \\xc3\\xa9 $;\n"
                    "      |                     ^\n");
    diag_free(d);
}

static void test_diag_backslashes_are_doubled_when_escaping(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char src[] = "\\x41\x7f;";
    int f = diag_add_file(d, "p.rasp", src, sizeof src - 1);
    diag_error(d, at(f, 1, 5, 1, 5), "here");
    check_render(d, "p.rasp:1:5: error: here\n"
                    "    1 | \\\\x41\\x7f;\n"
                    "      |      ^~~~\n");
    diag_free(d);
}

static void test_diag_long_lines_show_a_window_around_the_column(void **st)
{
    (void)st;
    StrBuf src;
    sb_init(&src);
    for (int i = 0; i < 300; i++) sb_putc(&src, (char)('a' + i % 26));
    sb_putc(&src, '\n');
    Diag *d = diag_new();
    int f = diag_add_file(d, "p.rasp", src.s, src.len);
    diag_error(d, at(f, 1, 151, 1, 153), "middle");
    diag_error(d, at(f, 1, 2, 1, 2), "start");
    diag_error(d, at(f, 1, 300, 1, 300), "end");

    StrBuf want;
    sb_init(&want);
    /* middle: bytes 70..229 (0-based), cut on both sides */
    sb_puts(&want, "p.rasp:1:151: error: middle\n    1 | ...");
    sb_putn(&want, src.s + 70, 160);
    sb_puts(&want, "...\n      |    ");
    for (int i = 0; i < 80; i++) sb_putc(&want, ' ');
    sb_puts(&want, "^~~\n");
    /* start: bytes 0..80, cut on the right only */
    sb_puts(&want, "p.rasp:1:2: error: start\n    1 | ");
    sb_putn(&want, src.s, 81);
    sb_puts(&want, "...\n      |  ^\n");
    /* end: bytes 219..299, cut on the left only */
    sb_puts(&want, "p.rasp:1:300: error: end\n    1 | ...");
    sb_putn(&want, src.s + 219, 81);
    sb_puts(&want, "\n      |    ");
    for (int i = 0; i < 80; i++) sb_putc(&want, ' ');
    sb_puts(&want, "^\n");
    check_render(d, want.s);
    sb_free(&want);
    sb_free(&src);
    diag_free(d);
}

static void test_diag_crlf_is_not_echoed(void **st)
{
    (void)st;
    Diag *d = diag_new();
    const char *src = "x = 1;\r\ny = $;\r\n";
    int f = diag_add_file(d, "p.rasp", src, strlen(src));
    diag_error(d, at(f, 2, 5, 2, 5), "bad");
    check_render(d, "p.rasp:2:5: error: bad\n"
                    "    2 | y = $;\n"
                    "      |     ^\n");
    diag_free(d);
}

static void test_diag_wide_line_numbers(void **st)
{
    (void)st;
    StrBuf src;
    sb_init(&src);
    for (int i = 0; i < 123456; i++) sb_puts(&src, "x\n");
    Diag *d = diag_new();
    int f = diag_add_file(d, "p.rasp", src.s, src.len);
    diag_error(d, at(f, 123456, 1, 123456, 1), "deep");
    diag_error(d, at(f, 42, 1, 42, 1), "shallow");
    check_render(d, "p.rasp:123456:1: error: deep\n"
                    "123456 | x\n"
                    "      | ^\n"
                    "p.rasp:42:1: error: shallow\n"
                    "   42 | x\n"
                    "      | ^\n");
    sb_free(&src);
    diag_free(d);
}

static void test_diag_keeps_errors_in_report_order(void **st)
{
    (void)st;
    Diag *d = diag_new();
    diag_error(d, SPAN_NONE, "b");
    diag_error(d, SPAN_NONE, "a");
    diag_error(d, SPAN_NONE, "c");
    check_render(d, "error: b\nerror: a\nerror: c\n");
    diag_free(d);
}

static void test_diag_caps_errors_and_drops_notes_of_dropped_errors(void **st)
{
    (void)st;
    Diag *d = diag_new();
    for (int i = 1; i <= DIAG_MAX_ERRORS + 10; i++) {
        diag_error(d, SPAN_NONE, "e%d", i);
        diag_note(d, SPAN_NONE, "n%d", i);
    }
    StrBuf want;
    sb_init(&want);
    for (int i = 1; i <= DIAG_MAX_ERRORS; i++) sb_printf(&want, "error: e%d\nnote: n%d\n", i, i);
    sb_puts(&want, "error: too many errors; stopping\n");
    check_render(d, want.s);
    assert_int_equal(diag_errors(d), DIAG_MAX_ERRORS + 10);
    sb_free(&want);
    diag_free(d);
}

static void test_diag_print_writes_the_rendered_text_and_returns_the_count(void **st)
{
    (void)st;
    Diag *d = diag_new();
    int f = diag_add_file(d, "p.rasp", "abc\n", 4);
    diag_error(d, at(f, 1, 2, 1, 3), "bc");
    diag_note(d, SPAN_NONE, "why");
    diag_error(d, SPAN_NONE, "two");
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(diag_print(d, tmp), 2);
    rewind(tmp);
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    char *r = diag_render(d);
    assert_string_equal(buf, r);
    free(r);
    diag_free(d);
}

static void test_diag_keeps_its_own_copy_of_the_text(void **st)
{
    (void)st;
    Diag *d = diag_new();
    char src[] = "a\0b";
    int f = diag_add_file(d, "p.rasp", src, 3);
    src[0] = 'z';
    size_t len = 0;
    const char *t = diag_file_text(d, f, &len);
    assert_int_equal((int)len, 3);
    assert_memory_equal(t, "a\0b", 3);
    assert_int_equal(t[3], '\0');
    assert_string_equal(diag_file_path(d, f), "p.rasp");
    assert_null(diag_file_path(d, 7));
    assert_null(diag_file_text(d, -1, &len));
    diag_free(d);
}

/* Offsets and positions through the line-start table agree with a scan from byte 0. */
static void test_diag_offset_and_position_match_a_scan(void **state)
{
    (void)state;
    const char *texts[] = {"", "a", "ab\ncd\n", "\n\nx", "one\n\nthree\nfour"};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        Diag *d = diag_new();
        const char *s = texts[t];
        size_t len = strlen(s);
        int f = diag_add_file(d, "t", s, len);
        int line = 1, col = 1;
        for (size_t off = 0; off <= len; off++) {
            int l, c2;
            diag_position(d, f, off, &l, &c2);
            assert_int_equal(l, line);
            assert_int_equal(c2, col);
            assert_int_equal(diag_offset(d, f, line, col), off);
            if (off < len && s[off] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        assert_int_equal(diag_offset(d, f, line + 3, 1), len);   /* clamped */
        diag_free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diag_error_with_position_shows_line_and_caret),
        cmocka_unit_test(test_diag_errors_without_line_or_file),
        cmocka_unit_test(test_diag_notes_follow_their_error),
        cmocka_unit_test(test_diag_tabs_are_kept_in_the_marker_padding),
        cmocka_unit_test(test_diag_multiline_span_marks_to_end_of_first_line),
        cmocka_unit_test(test_diag_caret_just_past_the_end_of_a_line),
        cmocka_unit_test(test_diag_position_past_the_last_line_prints_no_source),
        cmocka_unit_test(test_diag_non_printable_bytes_are_escaped_and_the_caret_follows),
        cmocka_unit_test(test_diag_backslashes_are_doubled_when_escaping),
        cmocka_unit_test(test_diag_long_lines_show_a_window_around_the_column),
        cmocka_unit_test(test_diag_crlf_is_not_echoed),
        cmocka_unit_test(test_diag_wide_line_numbers),
        cmocka_unit_test(test_diag_keeps_errors_in_report_order),
        cmocka_unit_test(test_diag_caps_errors_and_drops_notes_of_dropped_errors),
        cmocka_unit_test(test_diag_print_writes_the_rendered_text_and_returns_the_count),
        cmocka_unit_test(test_diag_keeps_its_own_copy_of_the_text),
        cmocka_unit_test(test_diag_offset_and_position_match_a_scan),
    };
    return cmocka_run_group_tests_name("diag", tests, NULL, NULL);
}
