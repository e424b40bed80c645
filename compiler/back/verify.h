/* verify.h — a model checked against the reference interpreter, position by position.
 *
 * Inputs: every sequence of lengths 1..N when there are at most `limit` of them (exhaustive),
 * else a seeded sample (lengths uniform in 1..N, tokens uniform), or an explicit list. They go
 * through the runtime's forward pass in batches. At every position where the interpreter has
 * a value, the output decoded as every command decodes it (runtime/decode.h: categorical, the
 * top logit's value, no value unless that logit is above 0.5) must be that value exactly, a
 * numerical output within 1e-4 * max(1, |value|); where it has none the position is "don't
 * care" (as in Tracr's own tests). The check stops at the first disagreement in check order
 * (whatever the thread count) and keeps it with a diagnosis: the first labelled s-op, in the
 * order the model computes them, whose value decoded from the residual stream differs from the
 * interpreter's.
 *
 * Batches run on `threads` workers (interpreter, forward pass and comparison each), BLAS on
 * one thread inside each: the report does not depend on the thread count. A sample is drawn
 * in rounds of VERIFY_ROUND_BATCHES batches; with a time budget no round starts once the
 * budget is spent (after at least VERIFY_MIN_SAMPLES inputs), so the sample's size depends on
 * the machine, but it is always the first `inputs` of the seeded stream: `samples = inputs`
 * with the same seed checks the same inputs. */
#ifndef TRACC_VERIFY_H
#define TRACC_VERIFY_H

#include <stdint.h>

#include "compiler/front/diag.h"
#include "compiler/front/rasp.h"
#include "runtime/decode.h"
#include "runtime/model.h"

#define VERIFY_NUM_TOL DEC_NUM_TOL
#define VERIFY_MIN_SAMPLES 32       /* a time-budgeted sample checks at least this many */
#define VERIFY_ROUND_BATCHES 8      /* a sample's round (sorted by length): batches */
#define VERIFY_BATCH_FLOATS ((size_t)1 << 22)  /* a batch's residual + logits, in floats */
#define VERIFY_MAX_THREADS 64

typedef enum { VERIFY_AUTO, VERIFY_EXHAUSTIVE, VERIFY_SAMPLE } VerifyMode;

typedef struct {
    VerifyMode mode;
    long samples;           /* sample size, or the most a time-budgeted one checks (default 10000) */
    uint64_t seed;          /* default 1 */
    long limit;             /* AUTO is exhaustive up to this many inputs (default 100000) */
    int max_n;              /* longest input checked (0: the program's max_len) */
    int batch;              /* sequences per forward pass (default 256; fewer at large sizes) */
    /* an explicit list instead (mode ignored): ninputs inputs of vocab indices */
    long ninputs;
    const int32_t *const *inputs;
    const int *lens;
    int threads;            /* workers (default 1; 0: the CPUs, at most 8) */
    double seconds;         /* a sample's time budget in seconds (default 0: none) */
} VerifyOptions;

#define VERIFY_OPTIONS_DEFAULT ((VerifyOptions){VERIFY_AUTO, 10000, 1, 100000, 0, 256, 0, NULL, NULL, 1, 0})

typedef struct VerifyReport {
    int exhaustive;         /* every input of lengths 1..max_n was checked */
    int max_n;
    long inputs;            /* inputs checked */
    long positions;         /* positions checked (don't-care ones included) */
    long agree;             /* positions where model and interpreter agree */
    long dontcare;          /* positions where the interpreter has no value */
    long failed_inputs;     /* 1 when an input disagrees (the check stops there), else 0;
                               the counts above cover the inputs up to and including it */
    uint64_t seed;          /* the sample's seed */
    double budget;          /* the time budget applied (0: none) */
    int budget_cut;         /* the budget ended the sample before `samples` inputs */
    double seconds;         /* how long the check took */
    /* the first disagreement (when failed_inputs > 0) */
    int cx_n;
    char **cx_tokens;       /* [cx_n] token texts */
    int cx_pos;             /* 0-based input position */
    char *cx_expected, *cx_got;
    char *cx_culprit;       /* "s-op 'x' at position 3: expected 2, got 1", or NULL */
} VerifyReport;

/* Check model m against program p (the program it was compiled from). Returns 0 when the
 * run completed (see rep->failed_inputs for the verdict), -1 with a message when it could not
 * run (vocab mismatch, forward error). */
int verify_model(const Model *m, const RaspProgram *p, const VerifyOptions *opt, VerifyReport *rep,
                 StrBuf *err);
void verify_report_free(VerifyReport *rep);

/* The program a compiled model carries (`program` metadata), loaded again with the front-end
 * overrides recorded in its `compiler` metadata. NULL when the model has no program or it
 * does not load (errors in d, or a message in err). */
RaspProgram *verify_program_of(const Model *m, Diag *d, StrBuf *err);

#endif
