/* test_svg.c — the SVG writer: escaping that yields well-formed XML whatever the labels
 * hold, colour scales, and the composite charts (the CLI tests check whole documents with
 * an XML parser). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/plot.h"
#include "analysis/svg.h"

static char *esc(const char *s)
{
    StrBuf b;
    sb_init(&b);
    svg_escape(&b, s);
    char *r = sb_steal(&b);
    sb_free(&b);
    return r;
}

static void test_svg_escape_turns_markup_characters_into_entities(void **state)
{
    (void)state;
    char *e = esc("a<b & c>\"d\" 'e'");
    assert_string_equal(e, "a&lt;b &amp; c&gt;&quot;d&quot; &apos;e&apos;");
    free(e);
    e = esc("]]> <!-- -->");
    assert_string_equal(e, "]]&gt; &lt;!-- --&gt;");
    free(e);
}

static void test_svg_escape_replaces_invalid_utf8_and_forbidden_controls(void **state)
{
    (void)state;
    /* a lone continuation byte, a truncated sequence, an overlong '/', a surrogate, and
     * control characters XML 1.0 forbids: each becomes U+FFFD; tab and newline stay */
    char *e = esc("x\x80y\xc3" "z\xc0\xaf\xed\xa0\x80\x01\x1b\t\n");
    assert_string_equal(e, "x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                           "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\t\n");
    free(e);
    /* valid multi-byte text passes through */
    e = esc("count_a \xe2\x86\x92 \xce\x94W \xf0\x9f\x98\x80");
    assert_string_equal(e, "count_a \xe2\x86\x92 \xce\x94W \xf0\x9f\x98\x80");
    free(e);
    /* U+FFFE is not an XML character */
    e = esc("\xef\xbf\xbe");
    assert_string_equal(e, "\xef\xbf\xbd");
    free(e);
}

static void test_svg_color_scales_have_white_at_zero_and_saturate(void **state)
{
    (void)state;
    char c[8];
    svg_color_seq(0, c);
    assert_string_equal(c, "#ffffff");
    svg_color_div(0, c);
    assert_string_equal(c, "#ffffff");
    svg_color_div(-1, c);
    char lo[8];
    svg_color_div(-5, lo);   /* clamped */
    assert_string_equal(c, lo);
    svg_color_seq(NAN, c);   /* no crash, some colour */
    assert_int_equal(strlen(c), 7);
    assert_string_not_equal(svg_palette(0), svg_palette(1));
}

static int count(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

static void test_svg_heatmap_labels_axes_and_escapes_every_label(void **state)
{
    (void)state;
    double v[6] = {0, 0.5, 1, -1, 0.25, 0};
    const char *rows[2] = {"tokens:<BOS>", "a&b"};
    const char *cols[3] = {"x", "\"y\"", "z\x01"};
    unsigned char mark[6] = {0, 1, 0, 0, 0, 1};
    SvgHeatmap hm = {.title = "QK <form>", .xlabel = "key", .ylabel = "query", .rows = 2, .cols = 3, .v = v,
                     .row_labels = rows, .col_labels = cols, .diverging = 1, .scale_label = "weight",
                     .mark = mark, .mark_legend = "selected"};
    double w, h;
    svg_heatmap_size(&hm, &w, &h);
    assert_true(w > 0 && h > 0);
    Svg s;
    svg_begin(&s, w, h);
    svg_heatmap(&s, 0, 0, &hm);
    svg_end(&s);
    const char *d = s.b.s;
    assert_non_null(strstr(d, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert_non_null(strstr(d, "QK &lt;form&gt;"));
    assert_non_null(strstr(d, "tokens:&lt;BOS&gt;"));
    assert_non_null(strstr(d, "a&amp;b"));
    assert_non_null(strstr(d, "&quot;y&quot;"));
    assert_null(strstr(d, "\x01"));
    assert_non_null(strstr(d, ">key<"));
    assert_non_null(strstr(d, ">query<"));
    assert_non_null(strstr(d, ">weight<"));
    assert_non_null(strstr(d, ">selected<"));
    /* one cell per nonzero value, each with a tooltip */
    assert_int_equal(count(d, "<title>"), 4);
    /* balanced elements */
    assert_int_equal(count(d, "<text"), count(d, "</text>"));
    assert_int_equal(count(d, "<svg"), 1);
    assert_non_null(strstr(d, "</svg>\n"));
    sb_free(&s.b);
}

static void test_svg_chart_skips_points_a_log_axis_cannot_show(void **state)
{
    (void)state;
    double x[4] = {1, 2, 3, 4}, y[4] = {1, 0, NAN, 0.01};
    SvgSeries se = {"loss <train>", 4, x, y, 0};
    SvgChart c = {.title = "t", .xlabel = "step", .ylabel = "loss", .logy = 1, .nseries = 1, .series = &se,
                  .vline = 3, .vline_label = "stop"};
    Svg s;
    svg_begin(&s, 500, 300);
    svg_chart(&s, 0, 0, 500, 300, &c);
    svg_end(&s);
    assert_null(strstr(s.b.s, "nan"));
    assert_null(strstr(s.b.s, "inf"));
    assert_non_null(strstr(s.b.s, "loss &lt;train&gt;"));
    assert_non_null(strstr(s.b.s, ">stop<"));
    assert_non_null(strstr(s.b.s, "(log scale)"));
    sb_free(&s.b);
}

static void test_plot_reads_trainer_logs_and_reports_bad_lines(void **state)
{
    (void)state;
    const char *log = "{\"type\":\"start\",\"step\":0,\"config\":{}}\n"
                      "{\"type\":\"eval\",\"step\":0,\"eval\":{\"pt\":{\"acc\":1.0,\"loss\":0.01,\"n\":10}}}\n"
                      "\n"
                      "{\"type\":\"train\",\"step\":10,\"loss\":2.5,\"lr\":0.001,\"grad_norm\":3}\n"
                      "{\"type\":\"train\",\"step\":20,\"loss\":1.5,\"lr\":0.001}\n"
                      "{\"type\":\"train\",\"step\":10,\"loss\":2.0,\"lr\":0.001}\n"
                      "{\"step\":30,\"loss\":1.0}\n"
                      "{\"type\":\"stop\",\"step\":30,\"reason\":\"pt>=0.9\"}\n"
                      "{\"type\":\"done\",\"step\":30}\n";
    PlotLog g;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(plot_read_log(&g, "run.jsonl", log, strlen(log), &err), 0);
    assert_int_equal(g.loss.n, 3);              /* step 10 logged twice: the last one kept */
    assert_true(g.loss.y[0] == 2.0 && g.loss.x[2] == 30);
    assert_int_equal(g.neval, 1);
    assert_string_equal(g.eval_acc[0].name, "pt");
    assert_true(g.stop_step == 30);
    StrBuf svg;
    sb_init(&svg);
    plot_svg(&g, 1, "curves", &svg);
    assert_non_null(strstr(svg.s, ">evaluation accuracy (exact match)<"));
    assert_non_null(strstr(svg.s, ">pt&gt;=0.9<"));
    sb_free(&svg);
    plot_log_free(&g);

    const char *bad[] = {"{\"step\":1,\"loss\":1}\nnot json\n", "[1,2]\n", "{\"step\":\"x\",\"loss\":1}\n",
                         "{\"type\":\"train\",\"step\":1,\"loss\":\"big\"}\n",
                         "{\"type\":\"eval\",\"step\":1,\"eval\":{\"pt\":3}}\n", "{\"type\":\"start\"}\n"};
    const char *msg[] = {"run.jsonl:2: not a JSON object", "run.jsonl:1: not a JSON object",
                         "run.jsonl:1: \"step\" must be a number", "run.jsonl:1: \"loss\" must be a number",
                         "run.jsonl:1: eval \"pt\" must be an object", "run.jsonl: no training or evaluation points"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_clear(&err);
        assert_int_equal(plot_read_log(&g, "run.jsonl", bad[i], strlen(bad[i]), &err), -1);
        if (!strstr(err.s, msg[i])) fail_msg("case %zu: '%s' lacks '%s'", i, err.s, msg[i]);
        plot_log_free(&g);
    }
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_escape_turns_markup_characters_into_entities),
        cmocka_unit_test(test_svg_escape_replaces_invalid_utf8_and_forbidden_controls),
        cmocka_unit_test(test_svg_color_scales_have_white_at_zero_and_saturate),
        cmocka_unit_test(test_svg_heatmap_labels_axes_and_escapes_every_label),
        cmocka_unit_test(test_svg_chart_skips_points_a_log_axis_cannot_show),
        cmocka_unit_test(test_plot_reads_trainer_logs_and_reports_bad_lines),
    };
    return cmocka_run_group_tests_name("svg", tests, NULL, NULL);
}
