/* svg.c — see svg.h. */
#include "analysis/svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"

void svg_begin(Svg *s, double w, double h)
{
    sb_init(&s->b);
    s->w = w;
    s->h = h;
    sb_printf(&s->b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
              "viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\">\n",
              ceil(w), ceil(h), ceil(w), ceil(h), FONT);
    sb_printf(&s->b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", ceil(w), ceil(h));
}

void svg_end(Svg *s)
{
    sb_puts(&s->b, "</svg>\n");
}

/* ---------------------------------------------------------------- escaping */

/* Length of the valid UTF-8 sequence at p (1..4) and its code point, or 0 if invalid. */
static int utf8_next(const unsigned char *p, unsigned *cp)
{
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n;
    unsigned min;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;   /* also stops at the NUL terminator */
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return n;
}

/* Code points XML 1.0 allows in a document. */
static int xml_char_ok(unsigned c)
{
    return c == 0x9 || c == 0xa || c == 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) ||
           (c >= 0x10000 && c <= 0x10ffff);
}

void svg_escape(StrBuf *out, const char *text)
{
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    while (*p) {
        unsigned cp;
        int n = utf8_next(p, &cp);
        if (n == 0 || !xml_char_ok(cp)) {
            sb_puts(out, "\xef\xbf\xbd");   /* U+FFFD */
            p += n ? n : 1;
            continue;
        }
        switch (cp) {
        case '&': sb_puts(out, "&amp;"); break;
        case '<': sb_puts(out, "&lt;"); break;
        case '>': sb_puts(out, "&gt;"); break;
        case '"': sb_puts(out, "&quot;"); break;
        case '\'': sb_puts(out, "&apos;"); break;
        default: sb_putn(out, (const char *)p, (size_t)n);
        }
        p += n;
    }
}

/* Code points in a string (for width estimates). */
static int text_len(const char *t)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)(t ? t : ""); *p; p++) n += (*p & 0xc0) != 0x80;
    return n;
}

static double text_width(const char *t, double size)
{
    return 0.6 * size * text_len(t);
}

/* ---------------------------------------------------------------- primitives */

static const char *col(const char *c)
{
    return c ? c : "none";
}

void svg_rect(Svg *s, double x, double y, double w, double h, const char *fill, const char *stroke,
              double stroke_width, const char *tip)
{
    sb_printf(&s->b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"", x, y, w, h);
    svg_escape(&s->b, col(fill));
    sb_puts(&s->b, "\"");
    if (stroke) {
        sb_puts(&s->b, " stroke=\"");
        svg_escape(&s->b, stroke);
        sb_printf(&s->b, "\" stroke-width=\"%.2f\"", stroke_width);
    }
    if (tip) {
        sb_puts(&s->b, "><title>");
        svg_escape(&s->b, tip);
        sb_puts(&s->b, "</title></rect>\n");
    } else {
        sb_puts(&s->b, "/>\n");
    }
}

void svg_line(Svg *s, double x1, double y1, double x2, double y2, const char *stroke, double width,
              const char *dash)
{
    sb_printf(&s->b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"", x1, y1, x2, y2);
    svg_escape(&s->b, col(stroke));
    sb_printf(&s->b, "\" stroke-width=\"%.2f\"", width);
    if (dash) {
        sb_puts(&s->b, " stroke-dasharray=\"");
        svg_escape(&s->b, dash);
        sb_puts(&s->b, "\"");
    }
    sb_puts(&s->b, "/>\n");
}

void svg_text(Svg *s, double x, double y, const char *anchor, double size, double rotate, int bold,
              const char *fill, const char *text)
{
    sb_printf(&s->b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" text-anchor=\"", x, y, size);
    svg_escape(&s->b, anchor ? anchor : "start");
    sb_puts(&s->b, "\"");
    if (rotate != 0) sb_printf(&s->b, " transform=\"rotate(%.1f %.2f %.2f)\"", rotate, x, y);
    if (bold) sb_puts(&s->b, " font-weight=\"bold\"");
    if (fill) {
        sb_puts(&s->b, " fill=\"");
        svg_escape(&s->b, fill);
        sb_puts(&s->b, "\"");
    }
    sb_puts(&s->b, ">");
    svg_escape(&s->b, text);
    sb_puts(&s->b, "</text>\n");
}

void svg_polyline(Svg *s, const double *xs, const double *ys, int n, const char *stroke, double width,
                  const char *dash)
{
    if (n <= 0) return;
    sb_puts(&s->b, "<polyline fill=\"none\" points=\"");
    for (int i = 0; i < n; i++) sb_printf(&s->b, "%s%.2f,%.2f", i ? " " : "", xs[i], ys[i]);
    sb_puts(&s->b, "\" stroke=\"");
    svg_escape(&s->b, col(stroke));
    sb_printf(&s->b, "\" stroke-width=\"%.2f\" stroke-linejoin=\"round\"", width);
    if (dash) {
        sb_puts(&s->b, " stroke-dasharray=\"");
        svg_escape(&s->b, dash);
        sb_puts(&s->b, "\"");
    }
    sb_puts(&s->b, "/>\n");
}

void svg_circle(Svg *s, double x, double y, double r, const char *fill, const char *stroke)
{
    sb_printf(&s->b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"", x, y, r);
    svg_escape(&s->b, col(fill));
    sb_puts(&s->b, "\"");
    if (stroke) {
        sb_puts(&s->b, " stroke=\"");
        svg_escape(&s->b, stroke);
        sb_puts(&s->b, "\"");
    }
    sb_puts(&s->b, "/>\n");
}

void svg_polygon(Svg *s, const double *xs, const double *ys, int n, const char *fill, double opacity)
{
    if (n <= 0) return;
    sb_puts(&s->b, "<polygon points=\"");
    for (int i = 0; i < n; i++) sb_printf(&s->b, "%s%.2f,%.2f", i ? " " : "", xs[i], ys[i]);
    sb_puts(&s->b, "\" fill=\"");
    svg_escape(&s->b, col(fill));
    sb_printf(&s->b, "\" fill-opacity=\"%.2f\" stroke=\"none\"/>\n", opacity);
}

/* ---------------------------------------------------------------- colours */

static void rgb(double r, double g, double b, char out[8])
{
    int R = (int)lround(fmin(255, fmax(0, r))), G = (int)lround(fmin(255, fmax(0, g))),
        B = (int)lround(fmin(255, fmax(0, b)));
    snprintf(out, 8, "#%02x%02x%02x", R, G, B);
}

/* Piecewise-linear interpolation through n stops at equal spacing over [0, 1]. */
static void ramp(const unsigned char (*stops)[3], int n, double t, char out[8])
{
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double u = t * (n - 1);
    int i = (int)floor(u);
    if (i >= n - 1) i = n - 2;
    double f = u - i;
    rgb(stops[i][0] + f * (stops[i + 1][0] - stops[i][0]), stops[i][1] + f * (stops[i + 1][1] - stops[i][1]),
        stops[i][2] + f * (stops[i + 1][2] - stops[i][2]), out);
}

void svg_color_seq(double t, char out[8])
{
    static const unsigned char stops[][3] = {
        {255, 255, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    ramp(stops, 5, t, out);
}

void svg_color_div(double t, char out[8])
{
    static const unsigned char stops[][3] = {{5, 48, 97},    {67, 147, 195}, {209, 229, 240}, {255, 255, 255},
                                             {253, 219, 199}, {214, 96, 77},  {103, 0, 31}};
    ramp(stops, 7, (t + 1) / 2, out);
}

const char *svg_palette(int i)
{
    static const char *const p[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return p[((i % 10) + 10) % 10];
}

/* ---------------------------------------------------------------- number labels */

static void fmt_num(double x, char *buf, size_t cap)
{
    if (x == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    double a = fabs(x);
    if (a >= 1e5 || a < 1e-3)
        snprintf(buf, cap, "%.2g", x);
    else
        snprintf(buf, cap, "%.4g", x);
}

/* "Nice" tick step for a range: 1, 2 or 5 times a power of ten, about n ticks. */
static double nice_step(double range, int n)
{
    if (!(range > 0)) return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    double nf = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return nf * p;
}

/* ---------------------------------------------------------------- heatmap */

typedef struct {
    double cell, font, left, top, title_h, bar_w, width, height, grid_w, grid_h;
    int label_every_r, label_every_c;
} HmGeom;

static void hm_geom(const SvgHeatmap *hm, HmGeom *g)
{
    int n = hm->rows > hm->cols ? hm->rows : hm->cols;
    g->cell = hm->cell > 0 ? hm->cell : n <= 12 ? 28 : n <= 24 ? 18 : n <= 64 ? 12 : n <= 160 ? 6 : 3;
    g->font = g->cell >= 12 ? 10 : 8;
    /* label only every k-th row/column when cells are smaller than the text */
    g->label_every_r = g->cell >= g->font ? 1 : (int)ceil(g->font / g->cell);
    g->label_every_c = g->label_every_r;
    double lw = 0, lh = 0;
    for (int r = 0; r < hm->rows; r++) lw = fmax(lw, text_width(hm->row_labels ? hm->row_labels[r] : "", g->font));
    for (int c = 0; c < hm->cols; c++) lh = fmax(lh, text_width(hm->col_labels ? hm->col_labels[c] : "", g->font));
    g->left = lw + 8 + (hm->ylabel ? 18 : 0);
    g->title_h = 22 + (hm->subtitle ? 16 : 0);
    g->top = g->title_h + lh + 8 + (hm->xlabel ? 16 : 0);
    g->grid_w = hm->cols * g->cell;
    g->grid_h = hm->rows * g->cell;
    g->bar_w = 90;
    g->width = g->left + g->grid_w + 16 + g->bar_w;
    double tw = text_width(hm->title, 13) + 16;
    if (hm->subtitle) tw = fmax(tw, text_width(hm->subtitle, 10) + 16);
    if (g->width < tw) g->width = tw;
    double bar_h = fmax(g->grid_h, 120);
    g->height = g->top + bar_h + 24 + (hm->mark && hm->mark_legend ? 20 : 0);
}

void svg_heatmap_size(const SvgHeatmap *hm, double *w, double *h)
{
    HmGeom g;
    hm_geom(hm, &g);
    *w = g.width;
    *h = g.height;
}

static double hm_scale(const SvgHeatmap *hm)
{
    if (hm->vmax > 0) return hm->vmax;
    double m = 0;
    for (int i = 0; i < hm->rows * hm->cols; i++)
        if (isfinite(hm->v[i])) m = fmax(m, fabs(hm->v[i]));
    return m > 0 ? m : 1;
}

static void hm_color(const SvgHeatmap *hm, double v, double vmax, char out[8])
{
    if (!isfinite(v)) {
        snprintf(out, 8, "#cccccc");
        return;
    }
    if (hm->diverging)
        svg_color_div(v / vmax, out);
    else
        svg_color_seq(v / vmax, out);
}

void svg_heatmap(Svg *s, double x, double y, const SvgHeatmap *hm)
{
    HmGeom g;
    hm_geom(hm, &g);
    double vmax = hm_scale(hm);
    svg_text(s, x + 4, y + 16, "start", 13, 0, 1, "#000000", hm->title ? hm->title : "");
    if (hm->subtitle) svg_text(s, x + 4, y + 32, "start", 10, 0, 0, "#444444", hm->subtitle);
    double gx = x + g.left, gy = y + g.top;
    /* axis names */
    if (hm->xlabel) svg_text(s, gx + g.grid_w / 2, y + g.title_h + 12, "middle", 11, 0, 1, "#333333", hm->xlabel);
    if (hm->ylabel)
        svg_text(s, x + 12, gy + g.grid_h / 2, "middle", 11, -90, 1, "#333333", hm->ylabel);
    /* labels */
    for (int r = 0; r < hm->rows; r++)
        if (hm->row_labels && r % g.label_every_r == 0)
            svg_text(s, gx - 4, gy + (r + 0.5) * g.cell + g.font * 0.35, "end", g.font, 0, 0, "#000000",
                     hm->row_labels[r]);
    for (int c = 0; c < hm->cols; c++)
        if (hm->col_labels && c % g.label_every_c == 0) {
            double tx = gx + (c + 0.5) * g.cell + g.font * 0.35, ty = gy - 4;
            svg_text(s, tx, ty, "start", g.font, -90, 0, "#000000", hm->col_labels[c]);
        }
    /* cells: white (zero) cells are left to the background, but every cell gets an
     * outline-free rect so tooltips work on nonzero ones */
    svg_rect(s, gx, gy, g.grid_w, g.grid_h, "#ffffff", "#999999", 0.5, NULL);
    StrBuf tip;
    sb_init(&tip);
    for (int r = 0; r < hm->rows; r++)
        for (int c = 0; c < hm->cols; c++) {
            double v = hm->v[(size_t)r * hm->cols + c];
            if (v == 0) continue;
            char fill[8];
            hm_color(hm, v, vmax, fill);
            char num[32];
            fmt_num(v, num, sizeof num);
            sb_clear(&tip);
            sb_printf(&tip, "%s%s%s, %s%s%s: %s", hm->ylabel ? hm->ylabel : "", hm->ylabel ? " " : "",
                      hm->row_labels ? hm->row_labels[r] : "", hm->xlabel ? hm->xlabel : "", hm->xlabel ? " " : "",
                      hm->col_labels ? hm->col_labels[c] : "", num);
            svg_rect(s, gx + c * g.cell, gy + r * g.cell, g.cell, g.cell, fill, NULL, 0, tip.s);
        }
    sb_free(&tip);
    /* outlines of marked cells */
    if (hm->mark)
        for (int r = 0; r < hm->rows; r++)
            for (int c = 0; c < hm->cols; c++)
                if (hm->mark[(size_t)r * hm->cols + c])
                    svg_rect(s, gx + c * g.cell + 0.75, gy + r * g.cell + 0.75, g.cell - 1.5, g.cell - 1.5, NULL,
                             "#e6550d", g.cell >= 8 ? 1.5 : 0.75, NULL);
    /* the colour bar */
    double bx = gx + g.grid_w + 16, bh = fmax(g.grid_h, 120), bw = 14;
    int steps = 48;
    for (int i = 0; i < steps; i++) {
        double t = 1 - (i + 0.5) / steps;   /* top = largest */
        double v = hm->diverging ? (2 * t - 1) * vmax : t * vmax;
        char fill[8];
        hm_color(hm, v, vmax, fill);
        svg_rect(s, bx, gy + i * bh / steps, bw, bh / steps + 0.3, fill, NULL, 0, NULL);
    }
    svg_rect(s, bx, gy, bw, bh, NULL, "#666666", 0.5, NULL);
    char num[32];
    double ticks[3] = {vmax, hm->diverging ? 0 : vmax / 2, hm->diverging ? -vmax : 0};
    for (int i = 0; i < 3; i++) {
        double ty = gy + bh * i / 2.0;
        svg_line(s, bx + bw, ty, bx + bw + 3, ty, "#666666", 0.75, NULL);
        fmt_num(ticks[i], num, sizeof num);
        svg_text(s, bx + bw + 5, ty + 3.5, "start", 9, 0, 0, "#000000", num);
    }
    if (hm->scale_label)
        svg_text(s, bx + bw + 40, gy + bh / 2, "middle", 9, 90, 0, "#333333", hm->scale_label);
    if (hm->mark && hm->mark_legend) {
        double ly = gy + bh + 14;
        svg_rect(s, gx, ly - 9, 10, 10, NULL, "#e6550d", 1.5, NULL);
        svg_text(s, gx + 14, ly, "start", 10, 0, 0, "#000000", hm->mark_legend);
    }
}

/* ---------------------------------------------------------------- line chart */

void svg_chart(Svg *s, double x, double y, double w, double h, const SvgChart *c)
{
    double left = 62, right = 12, top = 28, bottom = 40;
    /* legend below the plot: one row per 3 series */
    int legend_rows = (c->nseries + 2) / 3;
    bottom += legend_rows * 15;
    double px = x + left, py = y + top, pw = w - left - right, ph = h - top - bottom;
    if (pw < 20) pw = 20;
    if (ph < 20) ph = 20;
    svg_text(s, x + w / 2, y + 17, "middle", 13, 0, 1, "#000000", c->title ? c->title : "");

    /* data range */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < c->nseries; i++)
        for (int k = 0; k < c->series[i].n; k++) {
            double xv = c->series[i].x[k], yv = c->series[i].y[k];
            if (!isfinite(xv) || !isfinite(yv) || (c->logy && yv <= 0)) continue;
            x0 = fmin(x0, xv);
            x1 = fmax(x1, xv);
            double yy = c->logy ? log10(yv) : yv;
            y0 = fmin(y0, yy);
            y1 = fmax(y1, yy);
            const SvgBand *bd = c->bands ? c->bands[i] : NULL;
            for (int e = 0; bd && e < 2; e++) {
                double bv = e ? bd->hi[k] : bd->lo[k];
                if (!isfinite(bv) || (c->logy && bv <= 0)) continue;
                bv = c->logy ? log10(bv) : bv;
                y0 = fmin(y0, bv);
                y1 = fmax(y1, bv);
            }
        }
    if (c->ymin < c->ymax) {
        y0 = c->logy ? log10(c->ymin) : c->ymin;
        y1 = c->logy ? log10(c->ymax) : c->ymax;
    }
    if (!(x0 <= x1)) {
        x0 = 0;
        x1 = 1;
    }
    if (!(y0 <= y1)) {
        y0 = 0;
        y1 = 1;
    }
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) {
        y0 -= c->logy ? 0.5 : 0.5 * fmax(1, fabs(y0));
        y1 += c->logy ? 0.5 : 0.5 * fmax(1, fabs(y1));
    }
    if (c->logy) {
        y0 = floor(y0);
        y1 = ceil(y1);
    }
    double ys = ph / (y1 - y0), xs = pw / (x1 - x0);
#define MAPX(v) (px + ((v) - x0) * xs)
#define MAPY(v) (py + ph - ((v) - y0) * ys)

    svg_rect(s, px, py, pw, ph, "#ffffff", "#666666", 0.75, NULL);
    char num[32];
    /* x ticks */
    double st = nice_step(x1 - x0, 6);
    for (double t = ceil(x0 / st) * st; t <= x1 + st * 1e-9; t += st) {
        double tx = MAPX(t);
        svg_line(s, tx, py, tx, py + ph, "#eeeeee", 0.75, NULL);
        svg_line(s, tx, py + ph, tx, py + ph + 4, "#666666", 0.75, NULL);
        fmt_num(fabs(t) < st * 1e-9 ? 0 : t, num, sizeof num);
        svg_text(s, tx, py + ph + 15, "middle", 9, 0, 0, "#000000", num);
    }
    /* y ticks */
    if (c->logy) {
        int every = (int)ceil((y1 - y0) / 8);
        if (every < 1) every = 1;
        for (int e = (int)y0; e <= (int)y1; e += every) {
            double ty = MAPY(e);
            svg_line(s, px, ty, px + pw, ty, "#eeeeee", 0.75, NULL);
            svg_line(s, px - 4, ty, px, ty, "#666666", 0.75, NULL);
            snprintf(num, sizeof num, "1e%d", e);
            svg_text(s, px - 6, ty + 3, "end", 9, 0, 0, "#000000", num);
        }
    } else {
        double sy = nice_step(y1 - y0, 5);
        for (double t = ceil(y0 / sy - 1e-9) * sy; t <= y1 + sy * 1e-9; t += sy) {
            double ty = MAPY(t);
            svg_line(s, px, ty, px + pw, ty, "#eeeeee", 0.75, NULL);
            svg_line(s, px - 4, ty, px, ty, "#666666", 0.75, NULL);
            fmt_num(fabs(t) < sy * 1e-9 ? 0 : t, num, sizeof num);
            svg_text(s, px - 6, ty + 3, "end", 9, 0, 0, "#000000", num);
        }
    }
    svg_text(s, px + pw / 2, py + ph + 30, "middle", 11, 0, 1, "#333333", c->xlabel ? c->xlabel : "");
    StrBuf yl;
    sb_init(&yl);
    sb_puts(&yl, c->ylabel ? c->ylabel : "");
    if (c->logy) sb_puts(&yl, " (log scale)");
    svg_text(s, x + 14, py + ph / 2, "middle", 11, -90, 1, "#333333", yl.s);
    sb_free(&yl);

    if (isfinite(c->vline) && c->vline >= x0 && c->vline <= x1) {
        double tx = MAPX(c->vline);
        svg_line(s, tx, py, tx, py + ph, "#444444", 1, "4,3");
        if (c->vline_label) svg_text(s, tx + 3, py + 11, "start", 9, 0, 0, "#444444", c->vline_label);
    }

    double *xs_ = NULL, *ys_ = NULL;
    size_t cap = 0;
    /* bands first, under every line: one polygon per finite run (lo forwards, hi back) */
    for (int i = 0; c->bands && i < c->nseries; i++) {
        const SvgSeries *se = &c->series[i];
        const SvgBand *bd = c->bands[i];
        if (!bd) continue;
        int k = 0;
        while (k < se->n) {
            size_t n = 0;
            int start = k;
            while (k < se->n) {
                double xv = se->x[k], lo = bd->lo[k], hi = bd->hi[k];
                int ok = isfinite(xv) && isfinite(lo) && isfinite(hi) && !(c->logy && (lo <= 0 || hi <= 0));
                k++;
                if (!ok) break;
                n++;
            }
            if (n < 2) continue;
            if (2 * n > cap) {
                cap = 2 * n;
                xs_ = xrealloc(xs_, sizeof *xs_ * cap);
                ys_ = xrealloc(ys_, sizeof *ys_ * cap);
            }
            for (size_t q = 0; q < n; q++) {
                int kk = start + (int)q;
                double lo = c->logy ? log10(bd->lo[kk]) : bd->lo[kk], hi = c->logy ? log10(bd->hi[kk]) : bd->hi[kk];
                xs_[q] = xs_[2 * n - 1 - q] = MAPX(se->x[kk]);
                ys_[q] = MAPY(fmin(fmax(lo, y0), y1));
                ys_[2 * n - 1 - q] = MAPY(fmin(fmax(hi, y0), y1));
            }
            svg_polygon(s, xs_, ys_, (int)(2 * n), svg_palette(c->color_of ? c->color_of[i] : i), 0.18);
        }
    }
    /* series: a polyline per finite run; single points as dots */
    for (int i = 0; i < c->nseries; i++) {
        const SvgSeries *se = &c->series[i];
        const char *color = svg_palette(c->color_of ? c->color_of[i] : i);
        int k = 0;
        while (k < se->n) {
            size_t n = 0;
            while (k < se->n) {
                double xv = se->x[k], yv = se->y[k];
                int ok = isfinite(xv) && isfinite(yv) && !(c->logy && yv <= 0);
                k++;
                if (!ok) break;
                double yy = c->logy ? log10(yv) : yv;
                if (n + 1 > cap) {
                    cap = cap ? cap * 2 : 64;
                    xs_ = xrealloc(xs_, sizeof *xs_ * cap);
                    ys_ = xrealloc(ys_, sizeof *ys_ * cap);
                }
                xs_[n] = MAPX(xv);
                ys_[n] = MAPY(fmin(fmax(yy, y0), y1));
                n++;
            }
            if (n > 1) svg_polyline(s, xs_, ys_, (int)n, color, 1.5, se->dashed ? "5,3" : NULL);
            /* sparse series (evaluations) get a dot at every point */
            if (n == 1 || se->n <= 60)
                for (size_t q = 0; q < n; q++) svg_circle(s, xs_[q], ys_[q], 2.5, color, NULL);
        }
    }
    free(xs_);
    free(ys_);
    /* legend */
    for (int i = 0; i < c->nseries; i++) {
        double lx = px + (i % 3) * (pw / 3), ly = py + ph + 46 + (i / 3) * 15;
        svg_line(s, lx, ly - 4, lx + 18, ly - 4, svg_palette(c->color_of ? c->color_of[i] : i), 2,
                 c->series[i].dashed ? "5,3" : NULL);
        svg_text(s, lx + 22, ly, "start", 10, 0, 0, "#000000", c->series[i].name ? c->series[i].name : "");
    }
#undef MAPX
#undef MAPY
}
