/* test_sweeprep.c — pieces of `tracc report` below the CLI (tests/cli/report.sh checks the
 * whole report): the Table 3 regime rule at its thresholds, the thinned log reader that
 * makes a report over long logs fast, and the shaded band of a chart. */
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
#include "analysis/sweeprep.h"

static void test_regime_rule_and_its_thresholds(void **state)
{
    (void)state;
    assert_string_equal(srep_regime(1, 1, 1, 1, 1), "diverged");
    assert_string_equal(srep_regime(0, 1, 0, 0.9, 0), "learned");        /* ft0 >= 0.9, inclusive */
    assert_string_equal(srep_regime(0, 1, 0.95, 0.899, 0), "unchanged");
    assert_string_equal(srep_regime(0, 0.9, 0.499, 0.499, 0), "wrapper");
    assert_string_equal(srep_regime(0, 0.899, 0.1, 0.1, 0), "collapsed"); /* ft1 just below */
    assert_string_equal(srep_regime(0, 0.95, 0.1, 0.5, 0), "learning");   /* ft0 = 0.5 is not < 0.5 */
    assert_string_equal(srep_regime(0, 0.95, 0.5, 0.1, 0), "partly-a");   /* pt0 = 0.5 */
    assert_string_equal(srep_regime(0.9, 0.2, 0.3, 0.2, 0), "collapsed"); /* pt1 decides nothing */
    /* the paper's numbers (percent / 100): Counter eta 1e-2, C_Tr 1 and 0; 1e-3, C_Tr 0 */
    assert_string_equal(srep_regime(0.003, 0.983, 0.042, 0.002, 0), "wrapper");
    assert_string_equal(srep_regime(0.011, 0.963, 0.0, 0.988, 0), "learned");
    assert_string_equal(srep_regime(0.546, 0.012, 0.257, 0.272, 0), "collapsed");
}

/* A trainer-like log: training lines every 10 steps to 10,000, evaluations every 100. */
static char *make_log(size_t *len)
{
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, "{\"type\":\"start\",\"step\":0,\"config\":{}}\n");
    for (int s = 0; s <= 10000; s += 10) {
        if (s) sb_printf(&b, "{\"type\":\"train\",\"step\":%d,\"loss\":%g,\"lr\":0.01,\"grad_norm\":1}\n", s, 1.0 / s);
        if (s % 100 == 0)
            sb_printf(&b, "{\"type\":\"eval\",\"step\":%d,\"eval\":{\"a\":{\"acc\":%g,\"loss\":1,\"n\":10}}}\n", s,
                      s / 10000.0);
    }
    sb_puts(&b, "{\"type\":\"done\",\"step\":10000}\n");
    *len = b.len;
    char *t = sb_steal(&b);
    sb_free(&b);
    return t;
}

static void assert_subset(const PlotSeries *thin, const PlotSeries *full)
{
    for (int i = 0; i < thin->n; i++) {
        int found = 0;
        for (int j = 0; j < full->n && !found; j++) found = full->x[j] == thin->x[i] && full->y[j] == thin->y[i];
        assert_true(found);
    }
    assert_true(thin->x[thin->n - 1] == full->x[full->n - 1]);   /* the last point is kept */
    assert_true(thin->x[0] == full->x[0]);                       /* and the first */
}

static void test_thin_reader_keeps_evenly_spaced_points_and_the_last(void **state)
{
    (void)state;
    size_t len;
    char *t = make_log(&len);
    PlotLog full, thin;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(plot_read_log(&full, "x.jsonl", t, len, &err), 0);
    assert_int_equal(plot_read_log_thin(&thin, "x.jsonl", t, len, 100, &err), 0);
    assert_int_equal(full.loss.n, 1000);
    assert_int_equal(full.eval_acc[0].n, 101);
    assert_true(thin.loss.n >= 100 && thin.loss.n <= 101);
    assert_true(thin.eval_acc[0].n >= 50 && thin.eval_acc[0].n <= 52);
    assert_subset(&thin.loss, &full.loss);
    assert_subset(&thin.eval_acc[0], &full.eval_acc[0]);
    /* short logs are read whole */
    PlotLog t2;
    assert_int_equal(plot_read_log_thin(&t2, "x.jsonl", t, len, 5000, &err), 0);
    assert_int_equal(t2.loss.n, 1000);
    plot_log_free(&t2);
    /* a malformed line among the read ones is still reported with its line number */
    char *bad = xmalloc(len + 32);
    memcpy(bad, t, len);
    memcpy(bad + len, "{\"type\":\"stop\" oops\n", 20);
    assert_int_equal(plot_read_log_thin(&t2, "x.jsonl", bad, len + 20, 100, &err), -1);
    assert_non_null(strstr(err.s, "x.jsonl:"));
    plot_log_free(&t2);
    free(bad);
    plot_log_free(&full);
    plot_log_free(&thin);
    sb_free(&err);
    free(t);
}

static void test_chart_band_is_drawn_under_its_series(void **state)
{
    (void)state;
    double x[3] = {0, 1, 2}, y[3] = {0.5, 0.6, 0.7}, lo[3] = {0.4, 0.5, 0.6}, hi[3] = {0.6, 0.7, 0.8};
    SvgSeries se = {"mean", 3, x, y, 0};
    SvgBand band = {lo, hi};
    const SvgBand *bands[1] = {&band};
    SvgChart c = {.title = "t", .xlabel = "step", .ylabel = "acc", .nseries = 1, .series = &se, .vline = NAN,
                  .bands = bands};
    Svg s;
    svg_begin(&s, 400, 300);
    svg_chart(&s, 0, 0, 400, 300, &c);
    svg_end(&s);
    const char *poly = strstr(s.b.s, "<polygon"), *line = strstr(s.b.s, "<polyline");
    assert_non_null(poly);
    assert_non_null(line);
    assert_true(poly < line);
    assert_non_null(strstr(poly, "fill-opacity"));
    sb_free(&s.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regime_rule_and_its_thresholds),
        cmocka_unit_test(test_thin_reader_keeps_evenly_spaced_points_and_the_last),
        cmocka_unit_test(test_chart_band_is_drawn_under_its_series),
    };
    return cmocka_run_group_tests_name("sweeprep", tests, NULL, NULL);
}
