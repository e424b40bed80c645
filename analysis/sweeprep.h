/* sweeprep.h — the report over sweep directories (`tracc report`, docs/report.md): reads
 * what has finished in each DIR written by `tracc sweep plan` (plan.json, runs/<id>/result.json,
 * failed.json, the fine-tuning logs), groups the jobs into cells (the grid parameters without
 * `seed`), and aggregates over seeds: accuracies (mean, sample std, n, the per-run values),
 * Table 3 beside the paper's numbers with a regime per run, learning curves, pruning and
 * rollback, reverse fine-tuning against Scr.+FT, attention, the labelled diff and probes.
 * Output as JSON, Markdown (with SVG pictures) and one self-contained HTML page
 * (analysis/sweepdoc.c writes the documents).
 * (analysis/report.c is something else: helpers the analysis commands share.) */
#ifndef TRACC_SWEEPREP_H
#define TRACC_SWEEPREP_H

#include "common/util.h"

struct json_t;
typedef struct SrepReport SrepReport;

/* Load ndirs sweep directories. paper_tsv: the text of a paper table in the format of
 * paper/jain2023_table3.tsv (name it paper_path in messages), or NULL for the built-in copy
 * of that file. NULL with a message in err for any bad input (no plan.json, a malformed or
 * mismatched result.json / failed.json / log, an unknown paper table ...). */
SrepReport *srep_load(const char *const *dirs, int ndirs, const char *paper_tsv, const char *paper_path,
                      StrBuf *err);
void srep_free(SrepReport *r);

/* The whole report as JSON (docs/report.md describes every key). */
struct json_t *srep_json(const SrepReport *r);
/* The report as Markdown without pictures (what `tracc report DIR` prints). */
void srep_markdown(const SrepReport *r, StrBuf *out);
/* OUTDIR/report.md with its SVG pictures beside it, OUTDIR/report.html (pictures inlined),
 * OUTDIR/report.json; every file written atomically; OUTDIR is created if missing. */
int srep_write(const SrepReport *r, const char *outdir, StrBuf *err);

/* The regime of the paper's Table 3 shown by one run's four final accuracies (fractions:
 * pt1 / ft1 = pretraining / fine-tuning task with the correlation, pt0 / ft0 without), or
 * "diverged" when diverged != 0. Rule and thresholds: docs/report.md (the same as
 * bench/finetune_grid.sh's). */
const char *srep_regime(double pt1, double ft1, double pt0, double ft0, int diverged);

#endif
