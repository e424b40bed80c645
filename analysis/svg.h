/* svg.h — one small SVG writer for every picture tracc draws (diff heatmaps, attention maps,
 * training curves): primitives that escape every piece of text, colour scales, and two
 * composite charts (a labelled heatmap with its colour bar, a line chart with axes and a
 * legend). The document is built in memory; the caller writes it atomically.
 *
 * Text is escaped for XML 1.0: & < > " ' become entities, bytes that are not valid UTF-8
 * and code points XML forbids (controls other than tab/newline/CR, U+FFFE/U+FFFF) become
 * U+FFFD, so any token or label yields a well-formed file. */
#ifndef TRACC_SVG_H
#define TRACC_SVG_H

#include "common/util.h"

typedef struct {
    StrBuf b;
    double w, h;
} Svg;

/* Start a document of w × h user units (white background). */
void svg_begin(Svg *s, double w, double h);
/* Close the document; s->b.s then holds it (free with sb_free(&s->b)). */
void svg_end(Svg *s);

/* Append text escaped for XML (content or attribute value). */
void svg_escape(StrBuf *out, const char *text);

/* Primitives. fill/stroke are colour strings ("#rrggbb", "none"); NULL means "none".
 * tip: a tooltip (<title> child), or NULL. */
void svg_rect(Svg *s, double x, double y, double w, double h, const char *fill, const char *stroke,
              double stroke_width, const char *tip);
void svg_line(Svg *s, double x1, double y1, double x2, double y2, const char *stroke, double width,
              const char *dash);
/* anchor: "start", "middle", "end"; rotate in degrees about (x, y); bold 0/1. */
void svg_text(Svg *s, double x, double y, const char *anchor, double size, double rotate, int bold,
              const char *fill, const char *text);
void svg_polyline(Svg *s, const double *xs, const double *ys, int n, const char *stroke, double width,
                  const char *dash);
void svg_circle(Svg *s, double x, double y, double r, const char *fill, const char *stroke);
/* A closed filled polygon (no stroke), fill at the given opacity (0..1). */
void svg_polygon(Svg *s, const double *xs, const double *ys, int n, const char *fill, double opacity);

/* Colour scales, written as "#rrggbb" into out[8].
 * svg_color_seq: t in [0, 1], white to dark blue (0 is exactly white).
 * svg_color_div: t in [-1, 1], blue through white (0) to red. */
void svg_color_seq(double t, char out[8]);
void svg_color_div(double t, char out[8]);
/* A distinct colour for series i (cycles after 10). */
const char *svg_palette(int i);

/* A heatmap panel: title, row labels on the left, column labels on top (vertical), one cell
 * per value, and a colour bar with its scale on the right. */
typedef struct {
    const char *title;
    const char *subtitle;           /* a second line under the title, or NULL */
    const char *xlabel, *ylabel;    /* axis names, e.g. "key", "query" */
    int rows, cols;
    const double *v;                /* (rows, cols) */
    const char *const *row_labels;  /* (rows) */
    const char *const *col_labels;  /* (cols) */
    int diverging;                  /* 1: scale symmetric about 0 (blue -/red +); 0: 0..vmax */
    double vmax;                    /* > 0: fixed scale end; else the largest |v| */
    const char *scale_label;        /* under the colour bar, e.g. "attention weight" */
    const unsigned char *mark;      /* (rows, cols) or NULL: cells outlined (e.g. selected) */
    const char *mark_legend;        /* legend text for the outline, e.g. "selected by the program" */
    double cell;                    /* cell size; 0 = automatic */
} SvgHeatmap;

/* Size the panel will take. */
void svg_heatmap_size(const SvgHeatmap *hm, double *w, double *h);
void svg_heatmap(Svg *s, double x, double y, const SvgHeatmap *hm);

/* A line chart: axes with ticks, axis labels, title, one polyline per series, a legend. */
typedef struct {
    const char *name;
    int n;
    const double *x, *y;            /* (n); non-finite points are skipped (the line breaks) */
    int dashed;
} SvgSeries;

typedef struct {
    const char *title;
    const char *xlabel, *ylabel;
    int logy;                       /* log10 y axis (non-positive values are skipped) */
    double ymin, ymax;              /* fixed range when ymin < ymax, else automatic */
    int nseries;
    const SvgSeries *series;
    double vline;                   /* draw a dashed vertical marker at this x when finite */
    const char *vline_label;
    /* Optional (added for `tracc report`): a shaded band per series, e.g. min..max over seeds.
     * bands[i] NULL or bands NULL: none; else bands[i]->lo/hi hold series i's n points. */
    const struct SvgBand *const *bands;
    /* Optional: series i is drawn in svg_palette(color_of[i]) instead of svg_palette(i) (so a
     * dashed series can share its partner's colour). NULL: svg_palette(i). */
    const int *color_of;
} SvgChart;

typedef struct SvgBand {
    const double *lo, *hi;          /* (n of its series); non-finite points break the band */
} SvgBand;

void svg_chart(Svg *s, double x, double y, double w, double h, const SvgChart *c);

#endif
