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

/* The prefix every training line of `tracc finetune --log` starts with: what plot_read_thin
 * recognises without parsing the line. */
#define TRAIN_PREFIX "{\"type\":\"train\","

int plot_read_log(PlotLog *log, const char *path, const char *text, size_t len, StrBuf *err)
{
    return plot_read_log_thin(log, path, text, len, 0, err);
}

int plot_read_log_thin(PlotLog *log, const char *path, const char *text, size_t len, int max_train, StrBuf *err)
{
    memset(log, 0, sizeof *log);
    log->path = xstrdup(path);
    log->stop_step = NAN;
    /* Thinning: keep every stride-th training line (counted among lines that start like
     * the trainer's) and always the last one; the other lines are not parsed at all. */
    long stride = 1, ntrain = 0;
    size_t last_skipped = (size_t)-1;
    long last_skipped_line = 0;
    if (max_train > 0) {
        long lines = 0;
        for (const char *q = text; (q = memchr(q, '\n', len - (size_t)(q - text))) != NULL; q++) lines++;
        stride = lines / max_train + 1;
    }
    size_t pos = 0;
    long lineno = 0;
    int again = 0;   /* 1 while re-reading the last skipped training line at the end */
    while (pos < len || (last_skipped != (size_t)-1 && !again)) {
        if (pos >= len) {   /* the last training line was skipped: read it after all */
            pos = last_skipped;
            lineno = last_skipped_line - 1;
            again = 1;
        }
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        lineno++;
        size_t a = pos, b = end;
        pos = end + 1;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        if (a == b) continue;
        if (again) pos = len;
        else if (stride > 1 && b - a > sizeof TRAIN_PREFIX && !memcmp(text + a, TRAIN_PREFIX, sizeof TRAIN_PREFIX - 1)) {
            if (ntrain++ % stride != 0) {
                last_skipped = a;
                last_skipped_line = lineno;
                continue;
            }
            last_skipped = (size_t)-1;
        }
        json_error_t je;
        json_t *o = json_loadb(text + a, b - a, JSON_REJECT_DUPLICATES, &je);
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
            continue;
        }
        if (has_step != 0 || (type && strcmp(type, "train") && strcmp(type, "eval"))) {
            json_decref(o);   /* start, done, resume, ... or a line without a step */
            continue;
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
                    sb_printf(err, "%s:%ld: eval \"%s\" must be an object with numbers \"acc\" and \"loss\"", path,
                              lineno, name);
                    json_decref(o);
                    return -1;
                }
                int i = eval_index(log, name);
                if (ha == 0) series_push(&log->eval_acc[i], step, acc);
                if (hl == 0) series_push(&log->eval_loss[i], step, loss);
            }
        }
        json_decref(o);
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
