/* sweepdoc.c — the sweep report as a document: Markdown, HTML and the SVG pictures, built
 * from the report's JSON (analysis/sweeprep.c) so every number shown is one it holds. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/svg.h"
#include "common/outfile.h"
#include "analysis/sweeprep_int.h"

/* ================================================================ the document (Markdown and HTML) */

/* One list of blocks rendered both ways, so report.md and report.html say the same. */
typedef enum { D_H, D_P, D_TABLE, D_IMG } DKind;

typedef struct {
    DKind k;
    int level, ncol, ncells;
    char *text;       /* heading, paragraph; picture: its alt text */
    char **cells;     /* table: row-major, the first row is the header */
    char *file, *svg; /* picture */
} DBlock;

typedef struct {
    DBlock *b;
    int n;
    int pictures;     /* 0: leave pictures out (stdout) */
} Doc;

static DBlock *d_new(Doc *d, DKind k)
{
    d->b = xrealloc(d->b, sizeof(DBlock) * (size_t)(d->n + 1));
    DBlock *b = &d->b[d->n++];
    memset(b, 0, sizeof *b);
    b->k = k;
    return b;
}

static void d_h(Doc *d, int level, const char *text)
{
    DBlock *b = d_new(d, D_H);
    b->level = level;
    b->text = xstrdup(text);
}

static void d_p(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void d_p(Doc *d, const char *fmt, ...)
{
    StrBuf s;
    sb_init(&s);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&s, fmt, ap);
    va_end(ap);
    d_new(d, D_P)->text = srep_take(&s);
}

/* A table with ncol columns; the cells follow with d_c, header first. */
static void d_table(Doc *d, int ncol)
{
    d_new(d, D_TABLE)->ncol = ncol;
}

static void d_c(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void d_c(Doc *d, const char *fmt, ...)
{
    DBlock *b = &d->b[d->n - 1];
    StrBuf s;
    sb_init(&s);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&s, fmt, ap);
    va_end(ap);
    b->cells = xrealloc(b->cells, sizeof(char *) * (size_t)(b->ncells + 1));
    b->cells[b->ncells++] = srep_take(&s);
}

/* Takes the SVG text. */
static void d_img(Doc *d, const char *file, const char *alt, char *svg)
{
    if (!d->pictures) {
        free(svg);
        return;
    }
    DBlock *b = d_new(d, D_IMG);
    b->file = xstrdup(file);
    b->text = xstrdup(alt);
    b->svg = svg;
}

static void d_free(Doc *d)
{
    for (int i = 0; i < d->n; i++) {
        DBlock *b = &d->b[i];
        free(b->text);
        free(b->file);
        free(b->svg);
        for (int c = 0; c < b->ncells; c++) free(b->cells[c]);
        free(b->cells);
    }
    free(d->b);
}

static void md_cell(StrBuf *o, const char *t)
{
    for (; *t; t++) {
        if (*t == '|') sb_puts(o, "\\|");
        else if (*t == '\n') sb_putc(o, ' ');
        else sb_putc(o, *t);
    }
}

static void d_markdown(const Doc *d, StrBuf *o)
{
    for (int i = 0; i < d->n; i++) {
        const DBlock *b = &d->b[i];
        switch (b->k) {
        case D_H:
            for (int l = 0; l < b->level; l++) sb_putc(o, '#');
            sb_printf(o, " %s\n\n", b->text);
            break;
        case D_P: sb_printf(o, "%s\n\n", b->text); break;
        case D_IMG: sb_printf(o, "![%s](%s)\n\n", b->text, b->file); break;
        case D_TABLE:
            for (int c = 0; c < b->ncells; c++) {
                sb_puts(o, c % b->ncol ? " | " : "| ");
                md_cell(o, b->cells[c]);
                if (c % b->ncol == b->ncol - 1) {
                    sb_puts(o, " |\n");
                    if (c == b->ncol - 1) {
                        for (int k = 0; k < b->ncol; k++) sb_puts(o, "|---");
                        sb_puts(o, "|\n");
                    }
                }
            }
            sb_putc(o, '\n');
            break;
        }
    }
}

/* n bytes of t as HTML text. */
static void html_textn(StrBuf *o, const char *t, size_t n)
{
    for (const char *e = t + n; t < e; t++) {
        if (*t == '&') sb_puts(o, "&amp;");
        else if (*t == '<') sb_puts(o, "&lt;");
        else if (*t == '>') sb_puts(o, "&gt;");
        else if (*t == '"') sb_puts(o, "&quot;");
        else sb_putc(o, *t);
    }
}

static void html_text(StrBuf *o, const char *t) { html_textn(o, t, strlen(t)); }

/* The first "**" in [t, e), or NULL. */
static const char *find_stars(const char *t, const char *e)
{
    for (; t + 1 < e; t++)
        if (t[0] == '*' && t[1] == '*') return t;
    return NULL;
}

/* n bytes of t with Markdown's two inline marks, `code` and **bold**, as HTML (a mark without
 * its closing one stays as it is). */
static void html_inline(StrBuf *o, const char *t, size_t n)
{
    const char *e = t + n;
    while (t < e) {
        const char *end = NULL;
        if (*t == '`' && (end = memchr(t + 1, '`', (size_t)(e - t - 1)))) {
            sb_puts(o, "<code>");
            html_textn(o, t + 1, (size_t)(end - t - 1));
            sb_puts(o, "</code>");
            t = end + 1;
        } else if (e - t >= 2 && t[0] == '*' && t[1] == '*' && (end = find_stars(t + 2, e)) && end > t + 2) {
            sb_puts(o, "<strong>");
            html_inline(o, t + 2, (size_t)(end - t - 2));
            sb_puts(o, "</strong>");
            t = end + 2;
        } else {
            size_t k = 1;
            while (t + k < e && t[k] != '`' && t[k] != '*') k++;
            html_textn(o, t, k);
            t += k;
        }
    }
}

static void d_html(const Doc *d, const char *title, StrBuf *o)
{
    sb_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    html_text(o, title);
    sb_puts(o, "</title>\n<style>\n"
               "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px;color:#111;max-width:1400px}\n"
               "table{border-collapse:collapse;margin:8px 0 18px 0;font-size:13px}\n"
               "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}\n"
               "th{background:#eef2f7}\ntr:nth-child(even) td{background:#fafafa}\n"
               "h1{font-size:24px}h2{font-size:20px;border-bottom:1px solid #ccc;margin-top:32px}h3{font-size:16px}\n"
               "figure{margin:6px 0 18px 0;overflow-x:auto}svg{max-width:100%;height:auto}\n"
               "code{font-family:'DejaVu Sans Mono',monospace;font-size:92%;background:#f3f3f3;padding:0 2px}\n"
               "</style>\n</head>\n<body>\n");
    for (int i = 0; i < d->n; i++) {
        const DBlock *b = &d->b[i];
        switch (b->k) {
        case D_H:
            sb_printf(o, "<h%d>", b->level);
            html_text(o, b->text);
            sb_printf(o, "</h%d>\n", b->level);
            break;
        case D_P:
            sb_puts(o, "<p>");
            html_inline(o, b->text, strlen(b->text));
            sb_puts(o, "</p>\n");
            break;
        case D_IMG: {
            /* inline: drop the XML declaration, keep the <svg> element */
            const char *s = strstr(b->svg, "<svg");
            sb_puts(o, "<figure>\n");
            sb_puts(o, s ? s : "");
            sb_puts(o, "</figure>\n");
            break;
        }
        case D_TABLE:
            sb_puts(o, "<table>\n");
            for (int c = 0; c < b->ncells; c++) {
                int head = c < b->ncol;
                if (c % b->ncol == 0) sb_puts(o, "<tr>");
                sb_puts(o, head ? "<th>" : "<td>");
                html_inline(o, b->cells[c], strlen(b->cells[c]));
                sb_puts(o, head ? "</th>" : "</td>");
                if (c % b->ncol == b->ncol - 1) sb_puts(o, "</tr>\n");
            }
            sb_puts(o, "</table>\n");
            break;
        }
    }
    sb_puts(o, "</body>\n</html>\n");
}

/* ================================================================ pictures */

/* A JSON array of numbers (null: NaN) as doubles; returns the length. */
static int jarr(json_t *a, double **out)
{
    int n = (int)json_array_size(a);
    *out = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) (*out)[i] = srep_num(json_array_get(a, (size_t)i));
    return n;
}

/* Series built from JSON curves, owning their arrays. */
typedef struct {
    SvgSeries *s;
    SvgBand *bands;
    const SvgBand **bp;
    int *color;
    char **names;
    double **arrs;
    int n, narr;
} SeriesSet;

static double *ss_keep(SeriesSet *ss, double *a)
{
    ss->arrs = xrealloc(ss->arrs, sizeof(double *) * (size_t)(ss->narr + 1));
    return ss->arrs[ss->narr++] = a;
}

/* Add a series: a curve object {"step", "mean", "min", "max"}. */
static void ss_add_curve(SeriesSet *ss, json_t *curve, const char *name, int color, int dashed)
{
    if (!curve) return;
    double *x, *m, *lo, *hi;
    int n = jarr(json_object_get(curve, "step"), &x);
    jarr(json_object_get(curve, "mean"), &m);
    jarr(json_object_get(curve, "min"), &lo);
    jarr(json_object_get(curve, "max"), &hi);
    ss_keep(ss, x), ss_keep(ss, m), ss_keep(ss, lo), ss_keep(ss, hi);
    int i = ss->n++;
    ss->s = xrealloc(ss->s, sizeof(SvgSeries) * (size_t)ss->n);
    ss->bands = xrealloc(ss->bands, sizeof(SvgBand) * (size_t)ss->n);
    ss->color = xrealloc(ss->color, sizeof(int) * (size_t)ss->n);
    ss->names = xrealloc(ss->names, sizeof(char *) * (size_t)ss->n);
    ss->names[i] = xstrdup(name);
    ss->s[i] = (SvgSeries){ss->names[i], n, x, m, dashed};
    ss->bands[i] = (SvgBand){lo, hi};
    ss->color[i] = color;
}

/* Pointers into bands are taken once the set is complete (it reallocates while growing). */
static void ss_chart(SeriesSet *ss, SvgChart *c)
{
    free(ss->bp);
    ss->bp = xmalloc(sizeof(SvgBand *) * (size_t)(ss->n ? ss->n : 1));
    for (int i = 0; i < ss->n; i++) ss->bp[i] = &ss->bands[i];
    c->nseries = ss->n;
    c->series = ss->s;
    c->bands = ss->bp;
    c->color_of = ss->color;
}

static void ss_free(SeriesSet *ss)
{
    for (int i = 0; i < ss->narr; i++) free(ss->arrs[i]);
    for (int i = 0; i < ss->n; i++) free(ss->names[i]);
    free(ss->arrs);
    free(ss->names);
    free(ss->s);
    free(ss->bands);
    free(ss->bp);
    free(ss->color);
    memset(ss, 0, sizeof *ss);
}

static char *svg_done(Svg *s)
{
    svg_end(s);
    return srep_take(&s->b);
}

/* Training loss and every evaluation accuracy against the step: the mean over runs, shaded
 * from the lowest to the highest run. */
static char *curves_svg(json_t *cv, const char *title)
{
    double pw = 520, ph = 330;
    json_t *ev = json_object_get(cv, "eval");
    int rows = ((int)json_object_size(ev) + 2) / 3;
    Svg s;
    svg_begin(&s, 2 * pw + 30, 40 + ph + rows * 15 + 10);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    SvgChart c;
    memset(&c, 0, sizeof c);
    c.vline = NAN;
    c.xlabel = "step";
    SeriesSet a = {0}, b = {0};
    ss_add_curve(&a, json_object_get(cv, "loss"), "training loss (mean, band min-max)", 0, 0);
    ss_chart(&a, &c);
    c.title = "training loss";
    c.ylabel = "loss";
    c.logy = 1;
    svg_chart(&s, 10, 40, pw, ph + rows * 15, &c);
    const char *name;
    json_t *v;
    int i = 0;
    json_object_foreach(ev, name, v) ss_add_curve(&b, v, name, i++, 0);
    ss_chart(&b, &c);
    c.title = "evaluation accuracy (argmax; mean, band min-max)";
    c.ylabel = "accuracy";
    c.logy = 0;
    c.ymin = 0;
    c.ymax = 1;
    svg_chart(&s, 20 + pw, 40, pw, ph + rows * 15, &c);
    ss_free(&a);
    ss_free(&b);
    return svg_done(&s);
}

/* A curve object from per-K aggregates: mean, min and max of each one's values. */
static json_t *agg_list_curve(json_t *k, json_t *aggs)
{
    json_t *st = json_array(), *m = json_array(), *lo = json_array(), *hi = json_array();
    for (size_t i = 0; i < json_array_size(aggs); i++) {
        json_t *a = json_array_get(aggs, i), *vals = json_object_get(a, "values"), *x;
        double mn = INFINITY, mx = -INFINITY;
        size_t j;
        json_array_foreach(vals, j, x) mn = fmin(mn, srep_num(x)), mx = fmax(mx, srep_num(x));
        json_array_append(st, json_array_get(k, i));
        json_array_append(m, json_object_get(a, "mean"));
        json_array_append_new(lo, srep_num_json(mn));
        json_array_append_new(hi, srep_num_json(mx));
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "step", st, "mean", m, "min", lo, "max", hi);
}

/* One accuracy chart (0..1) of the series in ss under a picture title; frees ss. */
static char *accuracy_svg(SeriesSet *ss, const char *title, const char *chart_title, const char *xlabel)
{
    double w = 640, h = 380 + ((ss->n + 2) / 3) * 15;
    Svg s;
    svg_begin(&s, w + 20, h + 40);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    SvgChart c;
    memset(&c, 0, sizeof c);
    c.vline = NAN;
    c.title = chart_title;
    c.xlabel = xlabel;
    c.ylabel = "accuracy";
    c.ymin = 0;
    c.ymax = 1;
    ss_chart(ss, &c);
    svg_chart(&s, 10, 40, w, h, &c);
    ss_free(ss);
    return svg_done(&s);
}

static char *prune_svg(json_t *pr, json_t *rb, const char *title)
{
    SeriesSet ss = {0};
    int col = 0, nt = 0;
    json_t *tmp[64];
    if (pr) {
        tmp[nt] = agg_list_curve(json_object_get(pr, "k"), json_object_get(pr, "task"));
        ss_add_curve(&ss, tmp[nt++], "pruned: pretraining task", col++, 0);
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(pr, "evals"), name, v)
        {
            if (nt == 63) break;
            char lab[200];
            snprintf(lab, sizeof lab, "pruned: %s", name);
            tmp[nt] = agg_list_curve(json_object_get(pr, "k"), v);
            ss_add_curve(&ss, tmp[nt++], lab, col++, 0);
        }
    }
    if (rb) {
        tmp[nt] = agg_list_curve(json_object_get(rb, "k"), json_object_get(rb, "task"));
        ss_add_curve(&ss, tmp[nt++], "rolled back: pretraining task", 0, 1);
    }
    char *svg = accuracy_svg(&ss, title, "accuracy vs weights pruned / rolled back (mean, band min-max over runs)",
                             "number of weights K");
    for (int i = 0; i < nt; i++) json_decref(tmp[i]);
    return svg;
}

static char *refit_svg(json_t *reft, json_t *scr, const char *title)
{
    json_t *re = json_object_get(json_object_get(reft, "curves"), "eval");
    json_t *se = json_object_get(json_object_get(scr, "curves"), "eval");
    SeriesSet ss = {0};
    Names nn = {0};
    const char *name;
    json_t *v;
    json_object_foreach(re, name, v) srep_names_add(&nn, name);
    json_object_foreach(se, name, v) srep_names_add(&nn, name);
    for (int i = 0; i < nn.n; i++) {
        char lab[200];
        snprintf(lab, sizeof lab, "reFT: %s", nn.v[i]);
        ss_add_curve(&ss, json_object_get(re, nn.v[i]), lab, i, 0);
        snprintf(lab, sizeof lab, "Scr.+FT: %s", nn.v[i]);
        ss_add_curve(&ss, json_object_get(se, nn.v[i]), lab, i, 1);
    }
    free(nn.v);
    return accuracy_svg(&ss, title, "reverse fine-tuning (solid) vs Scr.+FT (dashed): accuracy (mean, band min-max)",
                        "step");
}

/* Attention of every head on the sweep's input: before (the first run's first model), after
 * (the mean over runs of the last model) and the change, program selections outlined. */
static char *attn_svg(const SrepReport *r, const Cell *c, const char *title)
{
    json_t *first = NULL;
    for (int k = 0; k < c->nruns && !first; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *o = u->status == RUN_DONE ? srep_after(u, "attn", 0) : NULL;
        if (json_is_object(o)) first = o;
    }
    json_t *pos = json_object_get(first, "positions"), *heads = json_object_get(first, "heads");
    int np = (int)json_array_size(pos), nh = (int)json_array_size(heads);
    if (!np || !nh) return NULL;
    const char **labels = xmalloc(sizeof(char *) * (size_t)np);
    for (int i = 0; i < np; i++) {
        const char *t = json_string_value(json_array_get(pos, (size_t)i));
        labels[i] = t ? t : "?";
    }
    size_t nn = (size_t)np * (size_t)np;
    double *bef = xmalloc(sizeof(double) * nn), *aft = xmalloc(sizeof(double) * nn), *chg = xmalloc(sizeof(double) * nn);
    unsigned char *mark = xmalloc(nn);
    double cell = np > 30 ? 7 : np > 16 ? 11 : 16;
    SvgHeatmap hm;
    memset(&hm, 0, sizeof hm);
    hm.rows = hm.cols = np;
    hm.row_labels = hm.col_labels = labels;
    hm.cell = cell;
    hm.xlabel = "key";
    hm.ylabel = "query";
    double pw, ph;
    hm.v = bef;
    hm.title = "after (mean of 100 runs)";   /* the longest panel title sets the width */
    svg_heatmap_size(&hm, &pw, &ph);
    hm.diverging = 1;
    double pw2, ph2;
    svg_heatmap_size(&hm, &pw2, &ph2);
    double rowh = fmax(ph, ph2) + 70;
    Svg s;
    svg_begin(&s, 2 * pw + pw2 + 60, 40 + nh * rowh);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    for (int h = 0; h < nh; h++) {
        json_t *fh = json_array_get(heads, (size_t)h);
        json_t *sel = json_object_get(fh, "program_selects");
        int na = 0;
        memset(aft, 0, sizeof(double) * nn);
        json_t *p0 = json_array_get(json_object_get(fh, "pattern"), 0);   /* pattern[model][query][key] */
        for (size_t q = 0; q < nn; q++) {
            bef[q] = srep_num(json_array_get(json_array_get(p0, q / (size_t)np), q % (size_t)np));
            mark[q] = json_is_true(json_array_get(json_array_get(sel, q / (size_t)np), q % (size_t)np));
        }
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            json_t *o = u->status == RUN_DONE ? srep_after(u, "attn", 0) : NULL;
            json_t *pat = json_object_get(json_array_get(json_object_get(o, "heads"), (size_t)h), "pattern");
            size_t nm = json_array_size(pat);
            json_t *last = json_array_get(pat, nm ? nm - 1 : 0);
            if (nm < 2 || (int)json_array_size(last) != np) continue;
            for (size_t q = 0; q < nn; q++) aft[q] += srep_num(json_array_get(json_array_get(last, q / (size_t)np), q % (size_t)np));
            na++;
        }
        for (size_t q = 0; q < nn; q++) {
            aft[q] = na ? aft[q] / na : NAN;
            chg[q] = aft[q] - bef[q];
        }
        double y = 40 + h * rowh;
        const char *hn = json_string_value(json_object_get(fh, "name"));
        char sub[160];
        svg_text(&s, 12, y + 14, "start", 13, 0, 1, "#000000", hn ? hn : "head");
        y += 22;
        hm.mark = mark;
        hm.mark_legend = "selected by the program";
        hm.diverging = 0;
        hm.vmax = 1;
        hm.scale_label = "attention weight";
        hm.v = bef;
        hm.title = "before (compiled)";
        svg_heatmap(&s, 10, y, &hm);
        if (na) {
            snprintf(sub, sizeof sub, "after (mean of %d run%s)", na, na == 1 ? "" : "s");
            hm.v = aft;
            hm.title = sub;
            svg_heatmap(&s, 30 + pw, y, &hm);
            hm.v = chg;
            hm.diverging = 1;
            hm.vmax = 0;
            hm.title = "change (after - before)";
            hm.scale_label = "change";
            svg_heatmap(&s, 50 + 2 * pw, y, &hm);
        }
    }
    free(labels);
    free(bef);
    free(aft);
    free(chg);
    free(mark);
    return svg_done(&s);
}

/* ================================================================ the sections */

/* An aggregate {"values"} as "12.3 ± 1.2 (3)" (scale 100: percent). */
static void agg_text(json_t *agg, double scale, int digits, char *buf, size_t cap)
{
    double *v;
    int n = jarr(json_object_get(agg, "values"), &v);
    srep_fmt_agg(buf, cap, v, n, scale, digits);
    free(v);
}

/* A row of Table 3: the cell's runs have the four evaluation sets, or the paper has the cell
 * (then its numbers show before any run has finished). */
static int cell_in_t3(const Cell *c, json_t *cj)
{
    json_t *ev = json_object_get(cj, "evals");
    int all = 1;
    for (int k = 0; k < 4; k++) all &= json_object_get(ev, srep_t3[k]) != NULL;
    return all || c->paper;
}

static void regime_text(const Cell *c, StrBuf *o)
{
    if (!c->reg_n) {
        sb_puts(o, "–");
        return;
    }
    int first = 1;
    for (int g = 0; g < NREG; g++)
        if (c->reg_count[g]) {
            sb_printf(o, "%s%s %d/%d", first ? "" : ", ", srep_regimes[g], c->reg_count[g], c->reg_n);
            first = 0;
        }
}

/* The cell's grid parameters other than lr, spurious-rate and those in skip, as "k=v ...",
 * or "". */
static void other_params(const Cell *c, json_t *skip, StrBuf *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(c->params, k, v)
    {
        if (!strcmp(k, "lr") || !strcmp(k, "spurious-rate") || json_object_get(skip, k)) continue;
        sb_printf(o, "%s%s=", o->len ? " " : "", k);
        srep_scalar_text(v, o);
    }
}

/* The grid parameters (lr and spurious-rate aside) with one value in every Table 3 row of
 * sweep si: said once above the table rather than in each row. A new object. */
static json_t *same_in_every_row(const SrepReport *r, json_t *cells, int si)
{
    json_t *same = NULL;
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        if (c->sweep != si || !cell_in_t3(c, json_array_get(cells, (size_t)i))) continue;
        if (!same) {
            same = json_deep_copy(c->params);
            json_object_del(same, "lr");
            json_object_del(same, "spurious-rate");
            continue;
        }
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(same, tmp, k, v)
        {
            if (!json_equal(v, json_object_get(c->params, k))) json_object_del(same, k);
        }
    }
    return same ? same : json_object();
}

static void table3(Doc *d, const SrepReport *r, json_t *cells, int si, json_t *skip, int decoded)
{
    int any_other = 0, any_paper = 0;
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        if (c->sweep != si || !cell_in_t3(c, json_array_get(cells, (size_t)i))) continue;
        StrBuf o;
        sb_init(&o);
        other_params(c, skip, &o);
        any_other |= o.len > 0;
        any_paper |= c->paper != NULL;
        sb_free(&o);
    }
    int ncol = 2 + any_other + 4 * (1 + (any_paper && !decoded)) + (decoded ? 0 : 2 + 2 * any_paper);
    d_table(d, ncol);
    d_c(d, "η (lr)");
    d_c(d, "C_Tr");
    if (any_other) d_c(d, "other");
    static const char *const head[4] = {"pt1: O_PT, C_Te=1", "ft1: O_FT, C_Te=1", "pt0: O_PT, C_Te=0",
                                        "ft0: O_FT, C_Te=0"};
    for (int k = 0; k < 4; k++) {
        d_c(d, "%s", head[k]);
        if (any_paper && !decoded) d_c(d, "paper");
    }
    if (!decoded) {
        d_c(d, "regime (runs)");
        if (any_paper) d_c(d, "paper's regime"), d_c(d, "same?");
        d_c(d, "jobs done/failed/pending");
    }
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        json_t *cj = json_array_get(cells, (size_t)i);
        if (c->sweep != si || !cell_in_t3(c, cj)) continue;
        StrBuf o;
        sb_init(&o);
        if (c->has_lrctr) d_c(d, "%g", c->lr), d_c(d, "%g", c->ctr);
        else d_c(d, "–"), d_c(d, "–");
        if (any_other) {
            other_params(c, skip, &o);
            d_c(d, "%s", o.s);
        }
        for (int k = 0; k < 4; k++) {
            json_t *e = json_object_get(json_object_get(cj, "evals"), srep_t3[k]);
            char buf[80];
            agg_text(decoded ? json_object_get(e, "decoded") : e, 100, 1, buf, sizeof buf);
            d_c(d, "%s", buf);
            if (any_paper && !decoded) {
                if (c->paper) d_c(d, "%.1f", c->paper->v[k]);
                else d_c(d, "–");
            }
        }
        if (!decoded) {
            sb_clear(&o);
            regime_text(c, &o);
            d_c(d, "%s", o.s);
            if (any_paper) {
                d_c(d, "%s", c->paper_regime ? c->paper_regime : "–");
                d_c(d, "%s", !c->paper || !c->regime ? "–" : !strcmp(c->regime, c->paper_regime) ? "yes" : "no");
            }
            d_c(d, "%d/%d/%d", c->done, c->failed, c->pending);
        }
        sb_free(&o);
    }
}

/* 1 if some cell of the report JSON has key k1 (or k2). */
static int any_cell(json_t *cells, const char *k1, const char *k2)
{
    for (size_t i = 0; i < json_array_size(cells); i++) {
        json_t *cj = json_array_get(cells, i);
        if (json_object_get(cj, k1) || (k2 && json_object_get(cj, k2))) return 1;
    }
    return 0;
}

/* The heading of cell i's part of a section, "sweep: cell label" (left in buf for the
 * pictures' titles). */
static void cell_heading(Doc *d, const SrepReport *r, int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label);
    d_h(d, 3, buf);
}

/* Cell i's object under key, after its heading; NULL (and no heading) when the cell has none. */
static json_t *cell_part(Doc *d, const SrepReport *r, json_t *cells, int i, const char *key, char *buf,
                         size_t cap)
{
    json_t *o = json_object_get(json_array_get(cells, (size_t)i), key);
    if (o) cell_heading(d, r, i, buf, cap);
    return o;
}

/* Failed jobs: who, where, and the last line of stderr. */
static void doc_failed(Doc *d, const SrepReport *r, json_t *cells)
{
    (void)cells;   /* from the runs: failed jobs have no aggregates */
    int nfail = 0;
    for (int i = 0; i < r->nruns; i++) nfail += r->runs[i].status == RUN_FAILED;
    if (nfail) {
        d_h(d, 2, "Failed jobs");
        d_table(d, 6);
        d_c(d, "job"), d_c(d, "cell"), d_c(d, "stage"), d_c(d, "exit"), d_c(d, "message (last line of stderr)");
        d_c(d, "stderr");
        for (int i = 0; i < r->nruns; i++) {
            const Run *u = &r->runs[i];
            if (u->status != RUN_FAILED) continue;
            const char *stage = json_string_value(json_object_get(u->failed, "stage"));
            json_t *ex = json_object_get(u->failed, "exit");
            json_t *se = json_object_get(u->failed, "stderr");
            d_c(d, "%s", u->id), d_c(d, "%s", r->cells[u->cell].label), d_c(d, "%s%s", stage ? stage : "?",
                                                                            u->diverged ? " (diverged)" : "");
            if (json_is_integer(ex)) d_c(d, "%lld", (long long)json_integer_value(ex));
            else d_c(d, "?");
            d_c(d, "%s", u->err_line ? u->err_line : "");
            if (json_is_string(se)) d_c(d, "%s/%s", u->dir, json_string_value(se));
            else d_c(d, "–");
        }
    }
}

/* Table 3, per sweep (when its cells have the four evaluation sets). */
static void doc_table3(Doc *d, const SrepReport *r, json_t *cells)
{
    for (int si = 0; si < r->nsw; si++) {
        int has = 0, dec = 0;
        for (int i = 0; i < r->ncells; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            if (r->cells[i].sweep != si || !cell_in_t3(&r->cells[i], cj)) continue;
            has = 1;
            dec |= json_object_get(json_object_get(json_object_get(cj, "evals"), "pt1"), "decoded") != NULL;
        }
        if (!has) continue;
        StrBuf hh;
        sb_init(&hh);
        sb_printf(&hh, "Table 3: %s", r->sw[si].name);
        d_h(d, 2, hh.s);
        sb_free(&hh);
        if (r->sw[si].paper)
            d_p(d, "Paper: Jain et al., ICLR 2024 (arXiv 2311.12786), Table 3, rows \"%s\" (one run per cell, no "
                   "error bars; from paper/jain2023_table3.tsv).",
                r->sw[si].paper);
        else d_p(d, "This sweep names no paper table (plan.json \"paper\": null).");
        d_p(d, "Argmax accuracy (%%), mean ± std (n) over runs. Regime of each run from its four final accuracies, "
               "in this order: diverged (the loss became non-finite); learned (ft0 ≥ 90); unchanged (pt0 ≥ 90); "
               "wrapper (ft1 ≥ 90, ft0 < 50, pt0 < 50: it answers the pretraining answer shifted by the "
               "correlation); learning (ft0 ≥ 50); partly-a (pt0 ≥ 50); collapsed (none of these). A cell's regime "
               "is that of most of its runs (\"mixed\" on a tie); the paper's regime applies the same rule to its "
               "numbers.");
        json_t *skip = same_in_every_row(r, cells, si);
        if (json_object_size(skip)) {
            StrBuf every;
            sb_init(&every);
            const char *k;
            json_t *v;
            json_object_foreach(skip, k, v)
            {
                sb_printf(&every, "%s%s=", every.len ? " " : "", k);
                srep_scalar_text(v, &every);
            }
            d_p(d, "Every row: %s.", every.s);
            sb_free(&every);
        }
        table3(d, r, cells, si, skip, 0);
        if (r->sw[si].paper) {
            int compared = 0, same = 0;
            StrBuf diff;
            sb_init(&diff);
            for (int i = 0; i < r->ncells; i++) {
                const Cell *c = &r->cells[i];
                if (c->sweep != si || !c->paper || !c->regime) continue;
                compared++;
                if (!strcmp(c->regime, c->paper_regime)) same++;
                else {
                    StrBuf o;
                    sb_init(&o);
                    other_params(c, skip, &o);
                    sb_printf(&diff, "%slr=%g spurious-rate=%g%s%s (%s here, %s in the paper)", diff.len ? "; " : "",
                              c->lr, c->ctr, o.len ? " " : "", o.len ? o.s : "", c->regime, c->paper_regime);
                    sb_free(&o);
                }
            }
            d_p(d, "Same regime as the paper in %d of %d cells compared.%s%s", same, compared,
                diff.len ? " Different: " : "", diff.s);
            sb_free(&diff);
        }
        if (dec) {
            d_p(d, "Decoded accuracy (%%), mean ± std (n): no answer when the top logit is ≤ 0.5.");
            table3(d, r, cells, si, skip, 1);
        }
        json_decref(skip);
    }
}

/* Every cell: jobs, training loss, the evaluation sets outside table 3 */
static void doc_cells(Doc *d, const SrepReport *r, json_t *cells)
{
    Names other = {0};
    for (int i = 0; i < r->ncells; i++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(json_array_get(cells, (size_t)i), "evals"), name, v)
        {
            int t3 = 0;
            for (int k = 0; k < 4; k++) t3 |= !strcmp(name, srep_t3[k]);
            if (!t3) srep_names_add(&other, name);
        }
    }
    d_h(d, 2, "Cells");
    d_p(d, "Final training loss and the evaluation sets not in Table 3 (argmax accuracy, %%; decoded in brackets "
           "when the runs report it), mean ± std (n).");
    d_table(d, 5 + other.n);
    d_c(d, "sweep"), d_c(d, "cell"), d_c(d, "jobs done/failed/pending"), d_c(d, "training loss"), d_c(d, "steps");
    for (int e = 0; e < other.n; e++) d_c(d, "%s", other.v[e]);
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        json_t *cj = json_array_get(cells, (size_t)i);
        char buf[120], buf2[80];
        d_c(d, "%s", r->sw[c->sweep].name), d_c(d, "%s", c->label), d_c(d, "%d/%d/%d", c->done, c->failed, c->pending);
        json_t *ft = json_object_get(cj, "finetune");
        agg_text(json_object_get(ft, "train_loss"), 1, 4, buf, sizeof buf);
        d_c(d, "%s", buf);
        agg_text(json_object_get(ft, "steps"), 1, 0, buf, sizeof buf);
        d_c(d, "%s", buf);
        for (int e = 0; e < other.n; e++) {
            json_t *ev = json_object_get(json_object_get(cj, "evals"), other.v[e]);
            agg_text(ev, 100, 1, buf, sizeof buf);
            if (json_object_get(ev, "decoded")) {
                agg_text(json_object_get(ev, "decoded"), 100, 1, buf2, sizeof buf2);
                d_c(d, "%s [%s]", buf, buf2);
            } else d_c(d, "%s", buf);
        }
    }
    free(other.v);
}

/* Learning curves */
static void doc_curves(Doc *d, const SrepReport *r, json_t *cells)
{
    char file[64], title[600];
    if (any_cell(cells, "curves", NULL) && d->pictures) {
        d_h(d, 2, "Learning curves");
        d_p(d, "Per cell: training loss and the accuracy of every evaluation set against the step; the line is the "
               "mean over the cell's runs, the band spans the lowest to the highest run (min–max). Each log is read "
               "thinned: at most %d evenly spaced training and %d evaluation lines per run, the first and last "
               "included (final accuracies come from result.json).",
            MAX_TRAIN_POINTS, MAX_TRAIN_POINTS);
        for (int i = 0; i < r->ncells; i++) {
            json_t *cv = json_object_get(json_array_get(cells, (size_t)i), "curves");
            if (!cv) continue;
            snprintf(file, sizeof file, "curves_%03d.svg", i + 1);
            int nr = (int)json_integer_value(json_object_get(cv, "runs"));
            snprintf(title, sizeof title, "%s: %s (%d run%s)", r->sw[r->cells[i].sweep].name, r->cells[i].label, nr,
                     nr == 1 ? "" : "s");
            d_h(d, 3, title);
            d_img(d, file, title, curves_svg(cv, title));
        }
    }
}

/* `prune --each`: the best weight pruned alone, per run (gains in percentage points). */
static void doc_each(Doc *d, json_t *ea)
{
    char agg[80], buf[32];
    agg_text(json_object_get(ea, "best_gain"), 100, 1, agg, sizeof agg);
    double mx = srep_num(json_object_get(ea, "best_gain_max"));
    if (isfinite(mx)) snprintf(buf, sizeof buf, "%+.1f", 100 * mx);
    else snprintf(buf, sizeof buf, "–");
    json_t *runs = json_object_get(ea, "runs"), *x;
    d_p(d, "Each weight alone: best single weight per run (each of the top %d by gradient × weight zeroed on its own; "
           "gain = pretraining-task accuracy after zeroing it − before pruning, in points). Best gain: %s, max %s; "
           "runs whose best weight revives the task by ≥ %g points: %d/%d.",
        (int)json_integer_value(json_object_get(ea, "items")), agg, buf,
        100 * srep_num(json_object_get(ea, "revived_at")), (int)json_integer_value(json_object_get(ea, "revived")),
        (int)json_array_size(runs));
    Names en = {0};
    size_t q;
    json_array_foreach(runs, q, x)
    {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(x, "evals"), name, v) srep_names_add(&en, name);
    }
    d_table(d, 7 + en.n);
    d_c(d, "job"), d_c(d, "rank"), d_c(d, "weight"), d_c(d, "in the program's terms");
    d_c(d, "task before"), d_c(d, "task after"), d_c(d, "gain");
    for (int e = 0; e < en.n; e++) d_c(d, "%s after", en.v[e]);
    json_array_foreach(runs, q, x)
    {
        const char *w = json_string_value(json_object_get(x, "weight")), *mn = json_string_value(json_object_get(x, "meaning"));
        d_c(d, "%s", json_string_value(json_object_get(x, "job")));
        if (json_is_integer(json_object_get(x, "rank")))
            d_c(d, "%lld", (long long)json_integer_value(json_object_get(x, "rank")));
        else d_c(d, "–");
        d_c(d, "%s", w ? w : "–");
        d_c(d, "%s", mn ? mn : "");
        for (int k = 0; k < 3 + en.n; k++) {
            static const char *const keys[] = {"task_before", "task_after", "gain"};
            double v = srep_num(k < 3 ? json_object_get(x, keys[k])
                                      : json_object_get(json_object_get(x, "evals"), en.v[k - 3]));
            if (!isfinite(v)) d_c(d, "–");
            else d_c(d, k == 2 ? "%+.1f" : "%.1f", 100 * v);
        }
    }
    free(en.v);
}

/* One row of doc_resets: label, weights covered (-1: none), runs, each set's aggregate. */
static void reset_row(Doc *d, const char *label, json_t *params, json_t *runs, json_t *aggs, const Names *en)
{
    char buf[80];
    d_c(d, "%s", label);
    if (json_is_integer(params)) d_c(d, "%lld", (long long)json_integer_value(params));
    else d_c(d, "–");
    d_c(d, "%lld", (long long)json_integer_value(runs));
    for (int e = 0; e < en->n; e++) {
        agg_text(json_object_get(aggs, en->v[e]), 100, 1, buf, sizeof buf);
        d_c(d, "%s", buf);
    }
}

/* `prune --reset`: each named ablation's accuracies beside the same runs' as fine-tuned. */
static void doc_resets(Doc *d, json_t *rs, int rollback)
{
    Names en = {0};
    size_t q;
    json_t *x;
    json_array_foreach(rs, q, x)
    {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(x, "acc"), name, v) srep_names_add(&en, name);
    }
    d_p(d, "Named ablations (`%s --reset`): the weights each names set %s on their own, then put back; decoded "
           "accuracy (no answer at a top logit ≤ 0.5), %%, mean ± std (n) over the runs; \"as fine-tuned\" is the "
           "same runs before it.",
        rollback ? "prune --rollback" : "prune", rollback ? "to their compiled values" : "to 0");
    d_table(d, 3 + en.n);
    d_c(d, "weights"), d_c(d, "count"), d_c(d, "runs");
    for (int e = 0; e < en.n; e++) d_c(d, "%s", en.v[e]);
    /* one "as fine-tuned" row, from the first ablation's runs */
    json_t *first = json_array_get(rs, 0);
    reset_row(d, "as fine-tuned", NULL, json_object_get(first, "runs"), json_object_get(first, "base"), &en);
    json_array_foreach(rs, q, x)
        reset_row(d, json_string_value(json_object_get(x, "reset")), json_object_get(x, "params"),
                  json_object_get(x, "runs"), json_object_get(x, "acc"), &en);
    free(en.v);
}

/* Cell i's named ablations in stage ("prune" or "rollback"), or NULL. */
static json_t *cell_stage_resets(json_t *cells, int i, const char *stage)
{
    return json_object_get(json_object_get(json_array_get(cells, (size_t)i), stage), "resets");
}

/* Named ablations across a sweep's cells: one table per SPEC (and stage), a row per cell, each
 * set's mean accuracy after it with the same runs' as fine-tuned in brackets. */
static void doc_resets_overview(Doc *d, const SrepReport *r, json_t *cells)
{
    int said = 0;
    for (int si = 0; si < r->nsw; si++)
        for (int w = 0; w < 2; w++) {
            const char *stage = w ? "rollback" : "prune";
            Names specs = {0}, en = {0};
            for (int i = 0; i < r->ncells; i++) {
                if (r->cells[i].sweep != si) continue;
                json_t *x;
                size_t q;
                json_array_foreach(cell_stage_resets(cells, i, stage), q, x)
                {
                    const char *name;
                    json_t *v;
                    srep_names_add(&specs, json_string_value(json_object_get(x, "reset")));
                    json_object_foreach(json_object_get(x, "acc"), name, v) srep_names_add(&en, name);
                }
            }
            if (specs.n && !said++) d_h(d, 3, "Named ablations, every cell");
            for (int k = 0; k < specs.n; k++) {
                d_p(d, "%s: `%s` set %s (`%s --reset`): each set's decoded accuracy after it, %%, with the same runs "
                       "as fine-tuned in brackets; means over the runs.",
                    r->sw[si].name, specs.v[k], w ? "to its compiled values" : "to 0",
                    w ? "prune --rollback" : "prune");
                d_table(d, 2 + en.n);
                d_c(d, "cell"), d_c(d, "runs");
                for (int e = 0; e < en.n; e++) d_c(d, "%s", en.v[e]);
                for (int i = 0; i < r->ncells; i++) {
                    if (r->cells[i].sweep != si) continue;
                    json_t *hit = srep_find_reset(cell_stage_resets(cells, i, stage), specs.v[k]);
                    if (!hit) continue;
                    d_c(d, "%s", r->cells[i].label);
                    d_c(d, "%lld", (long long)json_integer_value(json_object_get(hit, "runs")));
                    for (int e = 0; e < en.n; e++) {
                        double a = srep_num(json_object_get(json_object_get(json_object_get(hit, "acc"), en.v[e]), "mean"));
                        double b = srep_num(json_object_get(json_object_get(json_object_get(hit, "base"), en.v[e]), "mean"));
                        if (isfinite(a) && isfinite(b)) d_c(d, "%.1f (%.1f)", 100 * a, 100 * b);
                        else d_c(d, "–");
                    }
                }
            }
            free(specs.v), free(en.v);
        }
}

/* Pruning and rollback */
static void doc_prune(Doc *d, const SrepReport *r, json_t *cells)
{
    char file[64], title[600];
    if (any_cell(cells, "prune", "rollback")) {
        d_h(d, 2, "Pruning and rollback (Fig. 55/57)");
        d_p(d, "Pretraining-task accuracy (the prune run's --task) after zeroing the top K weights by gradient × "
               "weight of that task's loss (pruned), and after resetting the K weights fine-tuning moved most to "
               "their compiled values (rolled back); mean ± std (n) over runs. Weights are named in the program's "
               "terms; \"runs\" counts the runs that ranked the weight within the top K, \"ranks\" its rank in each.");
        doc_resets_overview(d, r, cells);
        for (int i = 0; i < r->ncells; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            json_t *pr = json_object_get(cj, "prune"), *rb = json_object_get(cj, "rollback");
            if (!pr && !rb) continue;
            cell_heading(d, r, i, title, sizeof title);
            snprintf(file, sizeof file, "prune_%03d.svg", i + 1);
            d_img(d, file, title, prune_svg(pr, rb, title));
            Vals ks = {0};
            for (int w = 0; w < 2; w++) {
                json_t *o = w ? rb : pr, *x;
                size_t q;
                json_array_foreach(json_object_get(o, "k"), q, x)
                {
                    double kv = srep_num(x);
                    int seen = 0;
                    for (int z = 0; z < ks.n; z++) seen |= ks.v[z] == kv;
                    if (!seen) srep_vals_push(&ks, kv);
                }
            }
            qsort(ks.v, (size_t)ks.n, sizeof(double), srep_cmp_double);
            Names en = {0};
            const char *name;
            json_t *v;
            json_object_foreach(json_object_get(pr, "evals"), name, v) srep_names_add(&en, name);
            d_table(d, 2 + en.n + 1);
            d_c(d, "K"), d_c(d, "pruned: task");
            for (int e = 0; e < en.n; e++) d_c(d, "pruned: %s", en.v[e]);
            d_c(d, "rolled back: task");
            for (int q = 0; q < ks.n; q++) {
                d_c(d, "%g", ks.v[q]);
                char buf[80];
                for (int w = 0; w < 2 + en.n; w++) {
                    json_t *o = w == 1 + en.n ? rb : pr, *x, *aggs;
                    aggs = w == 0 || w == 1 + en.n ? json_object_get(o, "task")
                                                   : json_object_get(json_object_get(pr, "evals"), en.v[w - 1]);
                    json_t *found = NULL;
                    size_t z;
                    json_array_foreach(json_object_get(o, "k"), z, x) if (srep_num(x) == ks.v[q]) found =
                        json_array_get(aggs, z);
                    if (found) agg_text(found, 100, 1, buf, sizeof buf);
                    else snprintf(buf, sizeof buf, "–");
                    d_c(d, "%s", buf);
                }
            }
            free(ks.v);
            free(en.v);
            if (rb) {
                char fk[80], orig[80];
                agg_text(json_object_get(rb, "found_k"), 1, 1, fk, sizeof fk);
                agg_text(json_object_get(rb, "original_task"), 100, 1, orig, sizeof orig);
                d_p(d, "Rollback: weights needed to bring the task back to the target accuracy %g: %s, found in %d of "
                       "%d runs (the compiled model's task accuracy, %%: %s).",
                    srep_num(json_object_get(rb, "target")), fk, (int)json_integer_value(json_object_get(rb, "found")),
                    (int)json_integer_value(json_object_get(rb, "runs")), orig);
            }
            for (int w = 0; w < 2; w++) {
                json_t *o = w ? rb : pr, *x;
                json_t *ws = json_object_get(o, "weights");
                if (!json_array_size(ws)) continue;
                d_p(d, "%s weights (top %d of each run):", w ? "Rolled-back" : "Pruned",
                    (int)json_integer_value(json_object_get(o, "weights_top")));
                d_table(d, 4);
                d_c(d, "weight"), d_c(d, "in the program's terms"), d_c(d, "runs"), d_c(d, "ranks");
                size_t q;
                json_array_foreach(ws, q, x)
                {
                    StrBuf rk;
                    sb_init(&rk);
                    json_t *y;
                    size_t z;
                    json_array_foreach(json_object_get(x, "ranks"), z, y) sb_printf(&rk, "%s%lld", z ? ", " : "",
                                                                                    (long long)json_integer_value(y));
                    const char *mn = json_string_value(json_object_get(x, "meaning"));
                    d_c(d, "%s", json_string_value(json_object_get(x, "param")));
                    d_c(d, "%s", mn ? mn : "");
                    d_c(d, "%lld/%lld", (long long)json_integer_value(json_object_get(x, "runs")),
                        (long long)json_integer_value(json_object_get(o, "runs")));
                    d_c(d, "%s", rk.s);
                    sb_free(&rk);
                }
            }
            json_t *ea = json_object_get(pr, "each");
            if (ea) doc_each(d, ea);
            for (int w = 0; w < 2; w++) {
                json_t *rs = json_object_get(w ? rb : pr, "resets");
                if (json_array_size(rs)) doc_resets(d, rs, w);
            }
        }
    }
}

/* Reverse fine-tuning vs scr.+ft */
static void doc_refit(Doc *d, const SrepReport *r, json_t *cells)
{
    char file[64], title[600];
    if (any_cell(cells, "reft", "scratch")) {
        d_h(d, 2, "Reverse fine-tuning vs Scr.+FT (Fig. 27)");
        d_p(d, "Steps until the --stop-when target held (runs that reached it; mean ± std (n)), \"reached\" = runs "
               "that reached it of the runs that ran the stage. reFT fine-tunes the fine-tuned model back on the "
               "pretraining task; Scr.+FT fine-tunes a model compiled for the fine-tuning task on the pretraining "
               "task (the control).");
        d_table(d, 6);
        d_c(d, "cell"), d_c(d, "target"), d_c(d, "reFT: steps to target"), d_c(d, "reFT: reached");
        d_c(d, "Scr.+FT: steps to target"), d_c(d, "Scr.+FT: reached");
        for (int i = 0; i < r->ncells; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            json_t *a = json_object_get(cj, "reft"), *b = json_object_get(cj, "scratch");
            if (!a && !b) continue;
            const char *sw = json_string_value(json_object_get(a ? a : b, "stop_when"));
            d_c(d, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label), d_c(d, "%s", sw ? sw : "–");
            for (int w = 0; w < 2; w++) {
                json_t *o = w ? b : a;
                char buf[80];
                if (!o) {
                    d_c(d, "–"), d_c(d, "–");
                    continue;
                }
                agg_text(json_object_get(o, "stopped_at"), 1, 0, buf, sizeof buf);
                d_c(d, "%s", buf);
                d_c(d, "%lld/%lld", (long long)json_integer_value(json_object_get(o, "reached")),
                    (long long)json_integer_value(json_object_get(o, "runs")));
            }
        }
        for (int i = 0; i < r->ncells && d->pictures; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            json_t *a = json_object_get(cj, "reft"), *b = json_object_get(cj, "scratch");
            if (!json_object_get(a, "curves") && !json_object_get(b, "curves")) continue;
            cell_heading(d, r, i, title, sizeof title);
            snprintf(file, sizeof file, "reft_%03d.svg", i + 1);
            d_img(d, file, title, refit_svg(a, b, title));
        }
    }
}

/* Attention */
static void doc_attn(Doc *d, const SrepReport *r, json_t *cells)
{
    char file[64], title[600];
    if (any_cell(cells, "attn", NULL)) {
        d_h(d, 2, "Attention before and after (Fig. 10/45)");
        d_p(d, "Each head's attention on the sweep's attention input: the share of attention on the keys the "
               "program's selector selects (averaged over the queries that select any), before and after "
               "fine-tuning, and the mean absolute change of the pattern; mean ± std (n) over runs, in percent.");
        for (int i = 0; i < r->ncells; i++) {
            json_t *at = cell_part(d, r, cells, i, "attn", title, sizeof title);
            if (!at) continue;
            d_table(d, 4);
            d_c(d, "head"), d_c(d, "on selected keys: before"), d_c(d, "on selected keys: after");
            d_c(d, "mean |change|");
            json_t *hd;
            size_t q;
            json_array_foreach(json_object_get(at, "heads"), q, hd)
            {
                char b1[80], b2[80], b3[80];
                const char *hn = json_string_value(json_object_get(hd, "name"));
                agg_text(json_object_get(hd, "selected_before"), 100, 1, b1, sizeof b1);
                agg_text(json_object_get(hd, "selected_after"), 100, 1, b2, sizeof b2);
                agg_text(json_object_get(hd, "mean_abs_change"), 100, 2, b3, sizeof b3);
                d_c(d, "%s", hn ? hn : "?"), d_c(d, "%s", b1), d_c(d, "%s", b2), d_c(d, "%s", b3);
            }
            if (d->pictures) {
                snprintf(file, sizeof file, "attn_%03d.svg", i + 1);
                char *svg = attn_svg(r, &r->cells[i], title);
                if (svg) d_img(d, file, title, svg);
            }
        }
    }
}

/* The labelled diff */
static void doc_diff(Doc *d, const SrepReport *r, json_t *cells)
{
    char title[600];
    if (any_cell(cells, "diff", NULL)) {
        d_h(d, 2, "What fine-tuning changed (labelled diff)");
        d_p(d, "The largest changed entries named in the program's terms (`tracc diff`), grouped over runs and ranked "
               "by the mean |change| over all the cell's runs (a run that does not list an entry among its largest "
               "counts 0); the change as mean ± std (n runs that list it).");
        for (int i = 0; i < r->ncells; i++) {
            json_t *df = cell_part(d, r, cells, i, "diff", title, sizeof title);
            if (!df) continue;
            char buf[80];
            agg_text(json_object_get(df, "relative"), 1, 5, buf, sizeof buf);
            d_p(d, "Relative size of the change (|Δθ| / |θ|): %s.", buf);
            d_table(d, 2);
            d_c(d, "entry"), d_c(d, "change");
            json_t *x;
            size_t q;
            json_array_foreach(json_object_get(df, "largest_changes"), q, x)
            {
                agg_text(x, 1, 4, buf, sizeof buf);
                d_c(d, "%s", json_string_value(json_object_get(x, "name"))), d_c(d, "%s", buf);
            }
        }
    }
}

/* A decompiled line for a table: in backticks, cut at 200 characters (report.json has it whole). */
static void code_text(StrBuf *o, const char *line)
{
    size_t n = strlen(line);
    sb_putc(o, '`');
    if (n > 200) {
        sb_putn(o, line, 200);
        sb_puts(o, "…");
    } else {
        sb_puts(o, line);
    }
    sb_putc(o, '`');
}

/* What the weights now compute (tracc decompile) */
static void doc_decompile(Doc *d, const SrepReport *r, json_t *cells)
{
    char title[600];
    if (!any_cell(cells, "decompile", NULL)) return;
    d_h(d, 2, "What the weights now compute (decompiled)");
    d_p(d, "Each fine-tuned model read back as a program of its original structure (`tracc decompile`): the lines "
           "of the program that changed (comments and spacing removed; cut at 200 characters here, whole in "
           "report.json), how many seeds give each distinct diff, and how often the decompiled program says what the "
           "model says at the answer positions (output fidelity, %%, mean ± std (n), on inputs of the training "
           "distribution and uniform ones). The reading of a run: unused capacity when zeroing a component the "
           "program does not use (decompile's idle check) changes half the answers or more; not classified when "
           "decompile failed or its program "
           "reproduces less than 70%% of the answers on training inputs; unchanged when no op changed; rewritten when "
           "an unchanged op reads a changed one (the change feeds the original computation); wrapper when every "
           "changed op is its original expression with a map added and only changed ops (or same-position copies) "
           "read them; not classified otherwise (docs/report.md, \"Reading a decompiled run\").");
    for (int i = 0; i < r->ncells; i++) {
        json_t *dc = cell_part(d, r, cells, i, "decompile", title, sizeof title);
        if (!dc) continue;
        int n = (int)json_integer_value(json_object_get(dc, "runs"));
        int failed = (int)json_integer_value(json_object_get(dc, "failed"));
        StrBuf rd;
        sb_init(&rd);
        const char *g;
        json_t *v;
        json_object_foreach(json_object_get(dc, "readings"), g, v)
            sb_printf(&rd, "%s%s %lld/%d", rd.len ? ", " : "", g, (long long)json_integer_value(v), n);
        char b1[80], b2[80];
        agg_text(json_object_get(dc, "fidelity_training"), 100, 1, b1, sizeof b1);
        agg_text(json_object_get(dc, "fidelity_uniform"), 100, 1, b2, sizeof b2);
        d_p(d, "Reading: %s. Output fidelity: %s on training inputs, %s on uniform inputs.%s", rd.s ? rd.s : "–", b1, b2,
            failed ? " Decompile failed on some runs (below)." : "");
        sb_free(&rd);
        json_t *diffs = json_object_get(dc, "diffs"), *x, *l;
        size_t q, z;
        d_table(d, 3);
        d_c(d, "diff"), d_c(d, "removed (-) and added (+) lines"), d_c(d, "seeds");
        json_array_foreach(diffs, q, x)
        {
            StrBuf t, jb;
            sb_init(&t), sb_init(&jb);
            json_array_foreach(json_object_get(x, "lines"), z, l)
            {
                if (t.len) sb_puts(&t, " / ");
                code_text(&t, json_string_value(l));
            }
            json_array_foreach(json_object_get(x, "jobs"), z, l) sb_printf(&jb, "%s%s", z ? ", " : "", json_string_value(l));
            d_c(d, "D%zu", q + 1), d_c(d, "%s", t.len ? t.s : "(no change)");
            d_c(d, "%lld/%d (job%s %s)", (long long)json_integer_value(json_object_get(x, "runs")), n - failed,
                json_array_size(json_object_get(x, "jobs")) > 1 ? "s" : "", jb.s);
            sb_free(&t), sb_free(&jb);
        }
        d_table(d, 7);
        d_c(d, "job"), d_c(d, "seed"), d_c(d, "changed ops (diff)"), d_c(d, "reading"), d_c(d, "why");
        d_c(d, "fidelity, training"), d_c(d, "fidelity, uniform");
        json_array_foreach(json_object_get(dc, "per_run"), q, x)
        {
            const char *job = json_string_value(json_object_get(x, "job"));
            StrBuf t, sd;
            sb_init(&t), sb_init(&sd);
            srep_scalar_text(json_object_get(x, "seed"), &sd);
            json_array_foreach(json_object_get(x, "changed_ops"), z, l)
            {
                const char *nm = json_string_value(json_object_get(l, "name"));
                sb_printf(&t, "%s%s", t.len ? ", " : "", nm && *nm ? nm : "(a line)");
            }
            /* which distinct diff (failed runs have none) */
            json_t *y, *jj;
            size_t a, b, di = 0;
            json_array_foreach(diffs, a, y) json_array_foreach(json_object_get(y, "jobs"), b, jj)
                if (!strcmp(json_string_value(jj), job)) di = a + 1;
            if (di) sb_printf(&t, "%sD%zu%s", t.len ? " (" : "none (", di, ")");
            double ft = srep_num(json_object_get(x, "fidelity_training")), fu = srep_num(json_object_get(x, "fidelity_uniform"));
            d_c(d, "%s", job), d_c(d, "%s", sd.len ? sd.s : "–"), d_c(d, "%s", t.len ? t.s : "–");
            d_c(d, "%s", json_string_value(json_object_get(x, "reading")));
            d_c(d, "%s", json_string_value(json_object_get(x, "why")));
            if (isfinite(ft)) d_c(d, "%.1f", 100 * ft); else d_c(d, "–");
            if (isfinite(fu)) d_c(d, "%.1f", 100 * fu); else d_c(d, "–");
            sb_free(&t), sb_free(&sd);
        }
    }
}

/* Probes */
static void doc_probe(Doc *d, const SrepReport *r, json_t *cells)
{
    char title[600];
    if (any_cell(cells, "probe", NULL)) {
        d_h(d, 2, "Probes");
        d_p(d, "Is each s-op still computed? Accuracy (%%) of reading it at each residual stage directly through its "
               "labels and by a linear probe (test inputs), mean ± std (n) over runs (`tracc probe`).");
        for (int i = 0; i < r->ncells; i++) {
            json_t *pb = cell_part(d, r, cells, i, "probe", title, sizeof title);
            if (!pb) continue;
            d_table(d, 4);
            d_c(d, "s-op"), d_c(d, "stage"), d_c(d, "direct read"), d_c(d, "linear probe (test)");
            json_t *s, *st;
            size_t q, z;
            json_array_foreach(json_object_get(pb, "sops"), q, s) json_array_foreach(json_object_get(s, "stages"), z, st)
            {
                char b1[80], b2[80];
                agg_text(json_object_get(st, "direct"), 100, 1, b1, sizeof b1);
                agg_text(json_object_get(st, "linear_test"), 100, 1, b2, sizeof b2);
                d_c(d, "%s", json_string_value(json_object_get(s, "sop")));
                d_c(d, "%s", json_string_value(json_object_get(st, "where")));
                d_c(d, "%s", b1), d_c(d, "%s", b2);
            }
        }
    }
}

/* "2.31 hours", "12.5 minutes", "3.2 seconds" */
static void fmt_seconds(double x, char *buf, size_t cap)
{
    if (x >= 3600) snprintf(buf, cap, "%.2f hours", x / 3600);
    else if (x >= 60) snprintf(buf, cap, "%.1f minutes", x / 60);
    else snprintf(buf, cap, "%.1f seconds", x);
}

static int cmp_stage_cpu(const void *a, const void *b)
{
    double x = json_number_value(((json_t *const *)a)[1]), y = json_number_value(((json_t *const *)b)[1]);
    return (x < y) - (x > y);
}

/* What each sweep's finished jobs cost, as recorded: CPU-hours, wall hours, the stages'
 * shares, and how many jobs have no (or a partial) record. */
static void doc_cost(Doc *d, const SrepReport *r, json_t *j)
{
    int heading = 0;
    json_t *sweeps = json_object_get(j, "sweep");   /* one sweep: its object; several: an array */
    for (int si = 0; si < r->nsw; si++) {
        json_t *c = json_object_get(json_is_array(sweeps) ? json_array_get(sweeps, (size_t)si) : sweeps, "cost");
        int measured = (int)json_integer_value(json_object_get(c, "jobs_measured"));
        int done = (int)json_integer_value(json_object_get(c, "jobs_done"));
        int complete = (int)json_integer_value(json_object_get(c, "jobs_complete"));
        int nshared = (int)json_integer_value(json_object_get(c, "shared_runs"));
        double cpu = json_number_value(json_object_get(c, "cpu_s"));
        json_t *rd = json_object_get(c, "redone");
        int nredone = (int)json_integer_value(json_object_get(rd, "runs"));
        if (measured || nshared || nredone) {
            if (!heading++) d_h(d, 2, "Compute");
            json_t *st = json_object_get(c, "stages_cpu_s");
            size_t n = json_object_size(st), k = 0;
            json_t **kv = xcalloc(2 * n + 2, sizeof *kv);
            const char *name;
            json_t *v;
            json_object_foreach(st, name, v) kv[2 * k] = json_string(name), kv[2 * k + 1] = v, k++;
            qsort(kv, n, 2 * sizeof *kv, cmp_stage_cpu);
            StrBuf by;
            sb_init(&by);
            for (k = 0; k < n; k++) {
                sb_printf(&by, "%s%s %.0f%%", k ? ", " : "", json_string_value(kv[2 * k]),
                          cpu > 0 ? 100 * json_number_value(kv[2 * k + 1]) / cpu : 0.0);
                json_decref(kv[2 * k]);
            }
            free(kv);
            StrBuf miss;
            sb_init(&miss);
            if (measured < done)
                sb_printf(&miss, " %d finished job%s ha%s no record (run by a tracc that did not record costs): not "
                                 "counted.",
                          done - measured, done - measured == 1 ? "" : "s", done - measured == 1 ? "s" : "ve");
            if (complete < measured)
                sb_printf(&miss, " %d job%s miss%s part of a stage's cost (a stage resumed after its earlier run "
                                 "was killed outright, or recorded by an older tracc; result.json cost.complete).",
                          measured - complete, measured - complete == 1 ? "" : "s",
                          measured - complete == 1 ? "es" : "");
            char tc[32], tj[32], tw[32];
            fmt_seconds(cpu, tc, sizeof tc);
            fmt_seconds(measured ? cpu / measured : 0, tj, sizeof tj);
            fmt_seconds(json_number_value(json_object_get(c, "wall_s")), tw, sizeof tw);
            int left = r->sw[si].njobs - done;
            if (left > 0 && measured) {
                char tl[32];
                fmt_seconds(left * cpu / measured, tl, sizeof tl);
                sb_printf(&miss, " The %d job%s not finished, at that mean: about %s more (jobs differ: an estimate).",
                          left, left == 1 ? "" : "s", tl);
            }
            if (nredone) {
                char trd[32];
                fmt_seconds(json_number_value(json_object_get(rd, "cpu_s")), trd, sizeof trd);
                StrBuf which;
                sb_init(&which);
                const char *sn;
                json_t *sv;
                json_object_foreach(json_object_get(rd, "stages_cpu_s"), sn, sv)
                    sb_printf(&which, "%s%s", which.len ? ", " : "", sn);
                sb_printf(&miss, " Stages run again afterwards by `tracc sweep redo` (%s; the latest redo of each "
                                 "stage per job): %d run%s, %s of CPU time, not in the totals above.",
                          which.s, nredone, nredone == 1 ? "" : "s", trd);
                sb_free(&which);
            }
            if (measured || nshared)
                d_p(d, "%s: **%s of CPU time** (each stage process's user + system time, as `tracc sweep job` "
                       "records it) in %d of %d finished jobs and %d shared run%s: %s per job, shared runs included; %s "
                       "of wall time summed over the stages. By stage: %s.%s",
                    r->sw[si].name, tc, measured, done, nshared, nshared == 1 ? "" : "s", tj, tw, by.s ? by.s : "",
                    miss.s ? miss.s : "");
            else
                d_p(d, "%s: no cost record.%s", r->sw[si].name, miss.s ? miss.s : "");
            sb_free(&by);
            sb_free(&miss);
        }
    }
}

/* Which OpenBLAS kernels each sweep's fine-tuning ran on, when its results say (a sweep
 * whose results predate the record gets no line); more than one is flagged, since kernels
 * round differently and a seed's run on two of them is not the same run. */
static void doc_blas(Doc *d, const SrepReport *r, json_t *j)
{
    json_t *sw = json_object_get(j, "sweep");   /* one sweep's object, or an array of them */
    for (int i = 0; i < r->nsw; i++) {
        json_t *b = json_object_get(json_is_array(sw) ? json_array_get(sw, (size_t)i) : sw, "blas");
        const char *k;
        json_t *v;
        int kinds = 0;
        const char *one = NULL;
        long long unrec = json_integer_value(json_object_get(b, "not recorded")), n = 0;
        StrBuf t, u;
        sb_init(&t);
        sb_init(&u);
        json_object_foreach(b, k, v)
        {
            if (!strcmp(k, "not recorded")) continue;
            kinds++, n = json_integer_value(v), one = k;
            sb_printf(&t, "%s%s (%lld job%s)", t.len ? ", " : "", k, n, n == 1 ? "" : "s");
        }
        if (unrec) sb_printf(&u, "; %lld job%s from before the record", unrec, unrec == 1 ? "" : "s");
        if (kinds == 1)
            d_p(d, "%s: the fine-tuning of its %lld finished job%s ran on OpenBLAS's %s kernels%s.", r->sw[i].name, n,
                n == 1 ? "" : "s", one, u.len ? u.s : "");
        else if (kinds > 1)
            d_p(d, "**%s: the fine-tuning ran on more than one OpenBLAS kernel**: %s%s. Kernels round differently, so "
                   "one seed's runs on two of them are not the same run, and near a decoder ramp their outcome can "
                   "differ; a sweep file's `blas-core` pins one (docs/reproduction.md, \"To the bit\").",
                r->sw[i].name, t.s, u.len ? u.s : "");
        sb_free(&t);
        sb_free(&u);
    }
}

static void build_doc(const SrepReport *r, json_t *j, Doc *d)
{
    json_t *cells = json_object_get(j, "cells");
    StrBuf t;
    sb_init(&t);
    for (int i = 0; i < r->nsw; i++) sb_printf(&t, "%s%s", i ? ", " : "", r->sw[i].name);
    StrBuf h;
    sb_init(&h);
    sb_printf(&h, "Sweep report: %s", t.s);
    d_h(d, 1, h.s);
    sb_free(&h);
    sb_free(&t);
    d_table(d, 7);
    d_c(d, "sweep"), d_c(d, "directory"), d_c(d, "paper table"), d_c(d, "jobs"), d_c(d, "done"), d_c(d, "failed");
    d_c(d, "pending (running)");
    for (int i = 0; i < r->nsw; i++) {
        const Sweep *s = &r->sw[i];
        d_c(d, "%s", s->name), d_c(d, "%s", s->dir), d_c(d, "%s", s->paper ? s->paper : "none");
        d_c(d, "%d", s->njobs), d_c(d, "%d", s->done), d_c(d, "%d", s->failed), d_c(d, "%d (%d)", s->pending, s->running);
    }
    d_p(d, "Aggregates are over the finished runs of a cell (its grid parameters without the seed): mean ± sample "
           "standard deviation (divisor n − 1) (n runs); accuracies in percent. \"argmax\" accuracy counts the "
           "largest logit as the answer (what `tracc finetune --eval` reports as acc); \"decoded\" accuracy counts "
           "no answer when the top logit is ≤ 0.5 (as `tracc run` decodes). Every number and the per-run values it "
           "came from are in report.json.");
    doc_blas(d, r, j);
    doc_failed(d, r, cells);
    doc_table3(d, r, cells);
    doc_cells(d, r, cells);
    doc_curves(d, r, cells);
    doc_prune(d, r, cells);
    doc_refit(d, r, cells);
    doc_attn(d, r, cells);
    doc_diff(d, r, cells);
    doc_decompile(d, r, cells);
    doc_probe(d, r, cells);
    doc_cost(d, r, j);
}

void srep_markdown(const SrepReport *r, StrBuf *out)
{
    json_t *j = srep_json(r);
    Doc d = {0};
    build_doc(r, j, &d);
    d_markdown(&d, out);
    d_free(&d);
    json_decref(j);
}

static int mkdir_p(const char *path, StrBuf *err)
{
    char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        char ch = *s;
        if (ch != '/' && ch) continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            sb_printf(err, "%s: cannot create the directory: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = ch;
        if (!ch) break;
    }
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok) sb_printf(err, "%s: not a directory", path);
    free(p);
    return ok ? 0 : -1;
}

static int write_text(const char *dir, const char *name, const char *text, StrBuf *err)
{
    char *p = srep_path_join(dir, name);
    int rc = of_write(p, text, strlen(text), err);
    free(p);
    return rc;
}

/* A picture name this report writes: curves_NNN.svg, prune_NNN.svg, reft_NNN.svg, attn_NNN.svg. */
static int is_picture_name(const char *n)
{
    static const char *const kinds[] = {"curves_", "prune_", "reft_", "attn_"};
    for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
        size_t l = strlen(kinds[k]);
        if (strncmp(n, kinds[k], l)) continue;
        const char *q = n + l;
        while (*q >= '0' && *q <= '9') q++;
        if (q - (n + l) >= 3 && !strcmp(q, ".svg")) return 1;
    }
    return 0;
}

/* Pictures of an earlier report in OUTDIR that this one did not write (it had more cells):
 * removed, so OUTDIR holds exactly what report.md links. */
static void remove_stale_pictures(const char *outdir, const Doc *d)
{
    DIR *dir = opendir(outdir);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (!is_picture_name(e->d_name)) continue;
        int ours = 0;
        for (int i = 0; i < d->n && !ours; i++) ours = d->b[i].k == D_IMG && !strcmp(d->b[i].file, e->d_name);
        if (ours) continue;
        char *p = srep_path_join(outdir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(dir);
}

int srep_write(const SrepReport *r, const char *outdir, StrBuf *err)
{
    if (mkdir_p(outdir, err)) return -1;
    json_t *j = srep_json(r);
    Doc d = {0};
    d.pictures = 1;
    build_doc(r, j, &d);
    int rc = 0;
    for (int i = 0; i < d.n && !rc; i++)
        if (d.b[i].k == D_IMG) rc = write_text(outdir, d.b[i].file, d.b[i].svg, err);
    StrBuf o;
    sb_init(&o);
    if (!rc) {
        d_markdown(&d, &o);
        rc = write_text(outdir, "report.md", o.s, err);
    }
    if (!rc) {
        sb_clear(&o);
        d_html(&d, d.b[0].text, &o);
        rc = write_text(outdir, "report.html", o.s, err);
    }
    if (!rc) {
        char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        sb_clear(&o);
        sb_puts(&o, s);
        sb_putc(&o, '\n');
        free(s);
        rc = write_text(outdir, "report.json", o.s, err);
    }
    if (!rc) remove_stale_pictures(outdir, &d);
    sb_free(&o);
    d_free(&d);
    json_decref(j);
    return rc;
}
