/* plot.c — see plot.h. */
#include "analysis/plot.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/svg.h"

static void series_push(PlotSeries *s, double x, double y)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = xrealloc(s->x, sizeof(double) * (size_t)s->cap);
        s->y = xrealloc(s->y, sizeof(double) * (size_t)s->cap);
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

static void series_free(PlotSeries *s)
{
    free(s->name);
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

/* Sort by step (stable) and keep the last point of each step: a resumed run logs again the
 * steps after its checkpoint. */
static void series_tidy(PlotSeries *s)
{
    for (int i = 1; i < s->n; i++) {
        double x = s->x[i], y = s->y[i];
        int j = i - 1;
        while (j >= 0 && s->x[j] > x) {
            s->x[j + 1] = s->x[j];
            s->y[j + 1] = s->y[j];
            j--;
        }
        s->x[j + 1] = x;
        s->y[j + 1] = y;
    }
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        if (k > 0 && s->x[k - 1] == s->x[i]) k--;
        s->x[k] = s->x[i];
        s->y[k] = s->y[i];
        k++;
    }
    s->n = k;
}

static int eval_index(PlotLog *log, const char *name)
{
    for (int i = 0; i < log->neval; i++)
        if (!strcmp(log->eval_acc[i].name, name)) return i;
    log->eval_acc = xrealloc(log->eval_acc, sizeof(PlotSeries) * (size_t)(log->neval + 1));
    log->eval_loss = xrealloc(log->eval_loss, sizeof(PlotSeries) * (size_t)(log->neval + 1));
    memset(&log->eval_acc[log->neval], 0, sizeof(PlotSeries));
    memset(&log->eval_loss[log->neval], 0, sizeof(PlotSeries));
    log->eval_acc[log->neval].name = xstrdup(name);
    log->eval_loss[log->neval].name = xstrdup(name);
    return log->neval++;
}

/* A number or null (NaN: a gap); -1 for anything else. */
static int get_num(json_t *o, const char *key, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = NAN;
        return v ? 0 : 1;
    }
    if (!json_is_number(v)) return -1;
    *out = json_number_value(v);
    return 0;
}

/* The prefixes the trainer's training and evaluation lines start with: what
 * plot_read_log_thin recognises without parsing a line. */
static const char *const KIND_PREFIX[2] = {"{\"type\":\"train\",", "{\"type\":\"eval\","};

int plot_read_log(PlotLog *log, const char *path, const char *text, size_t len, StrBuf *err)
{
    return plot_read_log_thin(log, path, text, len, 0, err);
}

/* One JSON line of a log: 0, or -1 with a message. */
static int read_line(PlotLog *log, const char *path, long lineno, const char *t, size_t n, StrBuf *err)
{
    json_error_t je;
    json_t *o = json_loadb(t, n, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        sb_printf(err, "%s:%ld: not a JSON object%s%s", path, lineno, o ? "" : ": ", o ? "" : je.text);
        json_decref(o);
        return -1;
    }
    log->lines++;
    const char *type = json_string_value(json_object_get(o, "type"));
    double step;
    int has_step = get_num(o, "step", &step);
    if (has_step < 0 || (has_step == 0 && !isfinite(step))) {
        sb_printf(err, "%s:%ld: \"step\" must be a number", path, lineno);
        json_decref(o);
        return -1;
    }
    if (type && !strcmp(type, "stop")) {
        if (has_step == 0) {
            log->stop_step = step;
            free(log->stop_label);
            const char *what = json_string_value(json_object_get(o, "reason"));
            log->stop_label = xstrdup(what ? what : "stopped");
        }
        json_decref(o);
        return 0;
    }
    if (has_step != 0 || (type && strcmp(type, "train") && strcmp(type, "eval"))) {
        json_decref(o);   /* start, done, resume, ... or a line without a step */
        return 0;
    }
    if (!type || !strcmp(type, "train")) {
        double loss, lr;
        int hl = get_num(o, "loss", &loss), hr = get_num(o, "lr", &lr);
        if (hl < 0 || hr < 0) {
            sb_printf(err, "%s:%ld: \"%s\" must be a number", path, lineno, hl < 0 ? "loss" : "lr");
            json_decref(o);
            return -1;
        }
        if (hl == 0) series_push(&log->loss, step, loss);
        if (hr == 0) series_push(&log->lr, step, lr);
    }
    json_t *ev = json_object_get(o, "eval");
    if (ev && (!type || !strcmp(type, "eval"))) {
        if (!json_is_object(ev)) {
            sb_printf(err, "%s:%ld: \"eval\" must be an object of evaluation sets", path, lineno);
            json_decref(o);
            return -1;
        }
        const char *name;
        json_t *set;
        json_object_foreach(ev, name, set)
        {
            double acc, loss;
            int ha = json_is_object(set) ? get_num(set, "acc", &acc) : -1;
            int hl = json_is_object(set) ? get_num(set, "loss", &loss) : -1;
            if (ha < 0 || hl < 0) {
                sb_printf(err, "%s:%ld: eval \"%s\" must be an object with numbers \"acc\" and \"loss\"", path, lineno,
                          name);
                json_decref(o);
                return -1;
            }
            int i = eval_index(log, name);
            if (ha == 0) series_push(&log->eval_acc[i], step, acc);
            if (hl == 0) series_push(&log->eval_loss[i], step, loss);
        }
    }
    json_decref(o);
    return 0;
}

/* The line at text + pos: [*a, *b) without surrounding blanks; returns the next line's start. */
static size_t line_at(const char *text, size_t len, size_t pos, size_t *a, size_t *b)
{
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    *a = pos;
    *b = end;
    while (*a < *b && (text[*a] == ' ' || text[*a] == '\t' || text[*a] == '\r')) (*a)++;
    while (*b > *a && (text[*b - 1] == ' ' || text[*b - 1] == '\t' || text[*b - 1] == '\r')) (*b)--;
    return end + 1;
}

/* 0 (training) or 1 (evaluation) for a line that starts like the trainer's, else -1. */
static int line_kind(const char *t, size_t n)
{
    for (int k = 0; k < 2; k++) {
        size_t pl = strlen(KIND_PREFIX[k]);
        if (n > pl && !memcmp(t, KIND_PREFIX[k], pl)) return k;
    }
    return -1;
}

int plot_read_log_thin(PlotLog *log, const char *path, const char *text, size_t len, int max_points, StrBuf *err)
{
    memset(log, 0, sizeof *log);
    log->path = xstrdup(path);
    log->stop_step = NAN;
    /* Thinning: of the lines that start like the trainer's training (evaluation) lines, keep
     * every stride-th and always the last; the others are not parsed at all. */
    long stride[2] = {1, 1}, seen[2] = {0, 0}, skipped_line[2] = {0, 0};
    size_t skipped[2] = {(size_t)-1, (size_t)-1};
    size_t pos, a, b;
    if (max_points > 0) {
        long count[2] = {0, 0};
        for (pos = 0; pos < len;) {
            pos = line_at(text, len, pos, &a, &b);
            int k = line_kind(text + a, b - a);
            if (k >= 0) count[k]++;
        }
        for (int k = 0; k < 2; k++) stride[k] = (count[k] + max_points - 1) / max_points;
        for (int k = 0; k < 2; k++) if (stride[k] < 1) stride[k] = 1;
    }
    long lineno = 0;
    for (pos = 0; pos < len;) {
        pos = line_at(text, len, pos, &a, &b);
        lineno++;
        if (a == b) continue;
        int k = stride[0] > 1 || stride[1] > 1 ? line_kind(text + a, b - a) : -1;
        if (k >= 0 && stride[k] > 1) {
            if (seen[k]++ % stride[k] != 0) {
                skipped[k] = a;
                skipped_line[k] = lineno;
                continue;
            }
            skipped[k] = (size_t)-1;
        }
        if (read_line(log, path, lineno, text + a, b - a, err)) return -1;
    }
    for (int k = 0; k < 2; k++)   /* the last line of each kind, if it was skipped */
        if (skipped[k] != (size_t)-1) {
            line_at(text, len, skipped[k], &a, &b);
            if (read_line(log, path, skipped_line[k], text + a, b - a, err)) return -1;
        }
    series_tidy(&log->loss);
    series_tidy(&log->lr);
    for (int i = 0; i < log->neval; i++) {
        series_tidy(&log->eval_acc[i]);
        series_tidy(&log->eval_loss[i]);
    }
    if (log->loss.n == 0 && log->neval == 0) {
        sb_printf(err, "%s: no training or evaluation points (expected lines like {\"type\": \"train\", "
                       "\"step\": 10, \"loss\": 0.5})",
                  path);
        return -1;
    }
    return 0;
}

void plot_log_free(PlotLog *log)
{
    free(log->path);
    free(log->stop_label);
    series_free(&log->loss);
    series_free(&log->lr);
    for (int i = 0; i < log->neval; i++) {
        series_free(&log->eval_acc[i]);
        series_free(&log->eval_loss[i]);
    }
    free(log->eval_acc);
    free(log->eval_loss);
    memset(log, 0, sizeof *log);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

typedef struct {
    SvgSeries *s;
    char **names;
    int n, cap;
} SeriesList;

static void add_series(SeriesList *l, const PlotSeries *ps, const char *name, const char *file, int dashed)
{
    if (ps->n == 0) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->s = xrealloc(l->s, sizeof *l->s * (size_t)l->cap);
        l->names = xrealloc(l->names, sizeof(char *) * (size_t)l->cap);
    }
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, name);
    if (file) sb_printf(&b, " (%s)", file);
    l->names[l->n] = sb_steal(&b);
    sb_free(&b);
    l->s[l->n] = (SvgSeries){l->names[l->n], ps->n, ps->x, ps->y, dashed};
    l->n++;
}

static void list_free(SeriesList *l)
{
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->s);
}

void plot_svg(const PlotLog *logs, int nlogs, const char *title, StrBuf *out)
{
    SeriesList loss = {0}, acc = {0}, eloss = {0}, lr = {0};
    double stop = NAN;
    const char *stop_label = NULL;
    for (int k = 0; k < nlogs; k++) {
        const PlotLog *g = &logs[k];
        const char *file = nlogs > 1 ? base_name(g->path) : NULL;
        add_series(&loss, &g->loss, "training loss", file, 0);
        add_series(&lr, &g->lr, "learning rate", file, 0);
        for (int i = 0; i < g->neval; i++) {
            add_series(&acc, &g->eval_acc[i], g->eval_acc[i].name, file, 0);
            add_series(&eloss, &g->eval_loss[i], g->eval_loss[i].name, file, 0);
        }
        if (isfinite(g->stop_step) && nlogs == 1) {
            stop = g->stop_step;
            stop_label = g->stop_label;
        }
    }
    double pw = 520, ph = 330;
    int rows_legend = (acc.n + 2) / 3;
    double ph2 = ph + rows_legend * 15;
    Svg s;
    svg_begin(&s, 2 * pw + 30, 40 + ph2 * 2 + 20);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title ? title : "training curves");
    SvgChart c;
    memset(&c, 0, sizeof c);
    c.vline = stop;
    c.vline_label = stop_label;
    c.xlabel = "step";

    c.title = "training loss";
    c.ylabel = "loss";
    c.logy = 1;
    c.nseries = loss.n;
    c.series = loss.s;
    svg_chart(&s, 10, 40, pw, ph2, &c);

    c.title = "evaluation accuracy (exact match)";
    c.ylabel = "accuracy";
    c.logy = 0;
    c.ymin = 0;
    c.ymax = 1;
    c.nseries = acc.n;
    c.series = acc.s;
    svg_chart(&s, 20 + pw, 40, pw, ph2, &c);

    c.title = "evaluation loss";
    c.ylabel = "loss";
    c.logy = 1;
    c.ymin = c.ymax = 0;
    c.nseries = eloss.n;
    c.series = eloss.s;
    svg_chart(&s, 10, 40 + ph2, pw, ph2, &c);

    c.title = "learning rate";
    c.ylabel = "learning rate";
    c.logy = 1;
    c.nseries = lr.n;
    c.series = lr.s;
    svg_chart(&s, 20 + pw, 40 + ph2, pw, ph2, &c);
    svg_end(&s);
    sb_puts(out, s.b.s);
    sb_free(&s.b);
    list_free(&loss);
    list_free(&acc);
    list_free(&eloss);
    list_free(&lr);
}
