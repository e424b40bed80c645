/* decompile.h — reading a (fine-tuned) model back as a .rasp program of its original
 * program's structure, and measuring how faithfully that program reproduces the model.
 *
 * For every s-op of the original program the model is run on sampled inputs and what the
 * weights now compute is tabulated on the op's finite domain: a map's and a sequence map's
 * table from the decoded residual (operands in, the s-op out), a select's predicate from
 * the attention of the head that implements it (key value x query value), an aggregate's
 * value mapping and default, a selector width's counts. Each table is printed in the nearest
 * readable form that agrees with it exactly (the original expression when nothing changed,
 * a comparison, `x + k`, a constant), else as a lookup lambda. The decompiled program is
 * then run by the interpreter against the model on the same inputs: the agreement per s-op
 * and at the output is the fidelity. */
#ifndef TRACC_DECOMPILE_H
#define TRACC_DECOMPILE_H

#include <stdint.h>

#include "common/util.h"
#include "runtime/model.h"

struct json_t;

typedef struct {
    const char *program_path;   /* --program ORIG.rasp, or NULL: the model's `program` */
    long n;                     /* sampled inputs per distribution (> 0) */
    uint64_t seed;
    const char *at;             /* answer positions "I[,J,K-L]", or NULL: the provenance's */
    int all_positions;          /* ignore the provenance's answer positions */
} DcOptions;

#define DC_OPTIONS_DEFAULT ((DcOptions){NULL, 300, 1, NULL, 0})

typedef struct {
    char *original;     /* the original program text (loads expanded) */
    char *program;      /* the decompiled program text */
    char *diff;         /* unified diff original -> decompiled; "" when they are equal */
    char *comments;     /* '#' lines: fidelity and per-op notes, to print above the program */
    struct json_t *report;  /* {"program", "diff", "fidelity", "fidelity_uniform", "sops", ...} */
    int reproduces;     /* 1 when the output agrees on every sampled position of every set */
} DcResult;

/* Decompile m. Returns 0, or -1 with a message (no program, a program whose structure the
 * model does not have, a vocab or output mismatch). */
int dc_decompile(const Model *m, const DcOptions *o, DcResult *r, StrBuf *err);
void dc_result_free(DcResult *r);

/* A unified diff (3 lines of context) of text a against text b, line by line through a
 * longest common subsequence; "" when they are equal. Heap string. */
char *dc_unified_diff(const char *a, const char *b, const char *name_a, const char *name_b);

#endif
