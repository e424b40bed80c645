/* sweeprep_int.h — what the two halves of the sweep report share (analysis/sweeprep.c reads
 * and aggregates, analysis/sweepdoc.c writes the document and pictures); not for other modules. */
#ifndef TRACC_SWEEPREP_INT_H
#define TRACC_SWEEPREP_INT_H

#include <jansson.h>

#include "analysis/plot.h"
#include "analysis/sweeprep.h"

/* Training and evaluation lines parsed per log (each; plot_read_log_thin): enough for a
 * picture, few enough that a report over a thousand 10K-step logs stays fast. */
#define MAX_TRAIN_POINTS 100
/* Top entries shown per cell (diff, pruned weights). */
#define TOP_ENTRIES 10

/* The Table 3 evaluation names (the sweep contract), and the regimes in the rule's order. */
extern const char *const srep_t3[4];
#define NREG 7
extern const char *const srep_regimes[NREG];

typedef struct {
    char *table;
    double lr, ctr, v[4];   /* v in percent, as printed in the paper */
} PaperRow;

enum { RUN_DONE, RUN_FAILED, RUN_PENDING };

typedef struct {
    int sweep, cell;
    const char *id;       /* borrowed from the plan */
    json_t *params;       /* borrowed */
    json_t *seed;         /* borrowed; NULL without a seed key */
    char *dir;
    int status, running, diverged;
    json_t *result, *failed;   /* owned */
    char *err_line;       /* failed: the last non-empty line of its stderr */
    PlotLog log, reft_log, scratch_log;
    int has_log, has_reft, has_scratch;
    const char *regime;   /* finished (or diverged) with the four Table 3 sets, else NULL */
} Run;

typedef struct {
    int sweep;
    json_t *params;       /* owned: the job's grid parameters without seed */
    char *key, *label;
    int *runs, nruns, cap;
    int done, failed, pending, running;
    int has_lrctr;
    double lr, ctr;
    const PaperRow *paper;
    int reg_count[NREG], reg_n;
    const char *regime, *paper_regime;
} Cell;

typedef struct {
    char *dir;
    json_t *plan;         /* owned */
    const char *name, *paper;
    int njobs, done, failed, pending, running;
} Sweep;

struct SrepReport {
    Sweep *sw;
    int nsw;
    Run *runs;
    int nruns;
    Cell *cells;
    int ncells;
    PaperRow *paper;
    int npaper;
};

typedef struct {
    double *v;
    int n, cap;
} Vals;

/* Names in first-seen order. */
typedef struct {
    const char **v;
    int n;
} Names;

/* The buffer's string, and b freed (sb_steal alone leaves b holding a new buffer). */
char *srep_take(StrBuf *b);
char *srep_path_join(const char *a, const char *b);
/* A JSON number as a double, NaN for anything else. */
double srep_num(json_t *v);
double srep_mean(const double *v, int n);
/* Sample standard deviation (divisor n - 1); NaN for n < 2. */
double srep_std(const double *v, int n);
/* A number, or null when not finite. */
json_t *srep_num_json(double x);
/* "12.3 ± 1.2 (3)", "12.3 (1)", "–" (scale 100: percent). */
void srep_fmt_agg(char *buf, size_t cap, const double *v, int n, double scale, int digits);
void srep_vals_push(Vals *a, double x);
/* A JSON scalar as text for labels: numbers as %g, strings as they are. */
void srep_scalar_text(json_t *v, StrBuf *out);
int srep_cmp_double(const void *a, const void *b);
void srep_names_add(Names *ns, const char *s);
/* {"mean", "std", "n", "values"} of v. */
json_t *srep_agg_json(const double *v, int n);
/* The readings of a decompiled run (analysis/sweepdc.c; rule: docs/report.md), and the
 * cell's decompile object (NULL when no finished run has after.decompile). */
#define SREP_NDC 5
extern const char *const srep_dc_readings[SREP_NDC];
json_t *srep_cell_decompile(const SrepReport *r, const Cell *c);
/* The entry of a `prune --reset` output's "resets" array (or a cell's) for spec, or NULL. */
json_t *srep_find_reset(json_t *resets, const char *spec);
/* after.<method> of a finished run (by_method: or any object in `after` whose "method" is it). */
json_t *srep_after(const Run *u, const char *method, int by_method);

#endif
