/* report.h — small helpers the analysis commands share: file hashes, number parsing for
 * options, percentages, and loading the program an analysis compares a model with. */
#ifndef TRACC_REPORT_H
#define TRACC_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "compiler/front/diag.h"
#include "compiler/front/rasp.h"
#include "runtime/model.h"

/* A whole-string number in [lo, hi]: 0, or -1 when malformed or out of range (integers:
 * cli_parse_long / cli_parse_u64 in cli/cli.h). */
int rep_parse_double(const char *s, double lo, double hi, double *out);

/* "100.0%", "22.4%", "-" for a fraction (NaN: "-"). */
void rep_pct(double x, char *buf, size_t cap);

/* The program to compare model m with: the .rasp file at `path` loaded with the model's
 * max_len (its vocab must be the model's), or, when path is NULL, the program the model
 * carries (compiler/verify.h: verify_program_of). NULL with errors in d or a message in err. */
RaspProgram *rep_load_program(const Model *m, const char *path, Diag *d, StrBuf *err);

#endif
