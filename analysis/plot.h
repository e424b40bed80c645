/* plot.h — training curves from `tracc finetune --log` files (JSONL, docs/training.md):
 * training loss, every evaluation set's accuracy and loss, and the learning rate, against
 * the step, as one SVG with a panel each.
 *
 * Lines the trainer writes: {"type": "train", "step", "loss", "lr", ...},
 * {"type": "eval", "step", "eval": {NAME: {"acc", "loss", "n"}}}, and "start", "resume",
 * "done", "interrupted", "diverged" lines (skipped; "stop" lines from --stop-when mark their
 * step). Lines without "type" are read by their keys: "step" with "loss"/"lr" is a training
 * point, "step" with "eval" an evaluation. */
#ifndef TRACC_PLOT_H
#define TRACC_PLOT_H

#include "common/util.h"

typedef struct {
    char *name;
    int n, cap;
    double *x, *y;
} PlotSeries;

typedef struct {
    char *path;
    PlotSeries loss, lr;
    int neval;
    PlotSeries *eval_acc, *eval_loss;   /* (neval), named by the evaluation set */
    double stop_step;                   /* a "stop" line's step, or NaN */
    char *stop_label;
    long lines;                         /* JSON lines read */
} PlotLog;

/* Parse one log's text; `path` names it in messages ("run.jsonl:12: ..."). Returns 0, or -1
 * with a message (a line that is not a JSON object, a step that is not a number, a log with
 * no data point). */
int plot_read_log(PlotLog *log, const char *path, const char *text, size_t len, StrBuf *err);
/* The same, reading at most about max_points training points and as many evaluation points
 * (evenly spaced lines of each kind, and always the last): the lines in between are skipped
 * unparsed, which is what makes a report over thousands of long logs fast. max_points <= 0:
 * every line (plot_read_log). */
int plot_read_log_thin(PlotLog *log, const char *path, const char *text, size_t len, int max_points, StrBuf *err);
void plot_log_free(PlotLog *log);

/* The curves of nlogs logs as one SVG (series of several logs are named "SET (file)"). */
void plot_svg(const PlotLog *logs, int nlogs, const char *title, StrBuf *out);

#endif
