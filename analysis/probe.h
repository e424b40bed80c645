/* probe.h — is an s-op still in the residual stream? For one s-op of a program and the
 * residual after every sub-layer (the embedding, then each block's attention and MLP):
 *
 *   - the direct read: the s-op decoded through the residual labels the compiler gave it
 *     (analysis/readout.h), compared with the interpreter — exact for a compiled model
 *     from the stage that writes it on;
 *   - a linear probe: multinomial logistic regression from the (standardized) residual to
 *     the s-op's value, trained with AdamW on fresh sampled inputs (the paper's schedule:
 *     peak learning rate 1e-3, decayed tenfold at 50%, 75% and 87.5% of the steps) and
 *     scored on other fresh inputs.
 *
 * Each sampled input contributes one example: the residual at one position (chosen
 * uniformly among the requested RASP indices, or among all of the input's positions). */
#ifndef TRACC_PROBE_H
#define TRACC_PROBE_H

#include <stdint.h>

#include "compiler/front/rasp.h"
#include "runtime/model.h"

struct json_t;

typedef struct {
    long train_n, test_n;   /* inputs for training and for scoring (default 2000, 1000) */
    int steps;              /* AdamW steps (default 4000); 0: no linear probe */
    int batch;              /* examples per step (default 128) */
    double lr;              /* peak learning rate (default 1e-3) */
    double weight_decay;    /* decoupled (default 0.01) */
    uint64_t seed;          /* inputs and batches (default 1) */
    int len_min, len_max;   /* 0: the model's max_len */
    int nat;
    const int *at;          /* RASP indices (NULL: every position) */
} ProbeOptions;

#define PROBE_OPTIONS_DEFAULT ((ProbeOptions){2000, 1000, 4000, 128, 1e-3, 0.01, 1, 0, 0, 0, NULL})

typedef struct {
    int stage;
    char where[48];         /* "embedding", "block 0 attention", "block 0 MLP" */
    double direct;          /* accuracy of the direct read on the test inputs (NaN: n/a) */
    double linear_train, linear_test;   /* NaN when no probe was trained */
} ProbeStage;

typedef struct {
    char *sop;
    int categorical;
    int own_program;        /* p is the program the model was compiled from */
    int direct_ok;          /* the s-op can be read through labels (the model's own program) */
    int isvirtual;          /* ... through the compiler's linear form */
    int written_stage;      /* where the model writes it (-1 when not readable) */
    int nclasses;           /* distinct values seen in training */
    long n_train, n_test;
    double majority;        /* test accuracy of always answering the commonest training value */
    int nstages;
    ProbeStage *st;
} ProbeResult;

/* Probe s-op `sop` of program p in model m. p is the model's own program (direct reads
 * through labels) or another program over the model's vocab (linear probes only; see
 * analysis/report.h: rep_load_program). Returns 0, or -1 with a message. */
int probe_run(const Model *m, const RaspProgram *p, const char *sop, const ProbeOptions *o, ProbeResult *r,
              StrBuf *err);
/* The same for nsops s-ops at once (res: nsops results): one sampling, interpreter run and
 * forward pass serves them all, and each result equals probe_run's for that s-op. An unknown
 * name fails before any work. */
int probe_run_many(const Model *m, const RaspProgram *p, const char *const *sops, int nsops, const ProbeOptions *o,
                   ProbeResult *res, StrBuf *err);
void probe_result_free(ProbeResult *r);

struct json_t *probe_json(const ProbeResult *r);

/* MLP hidden units on sampled inputs (`tracc probe --neurons`): for unit j of block l, on
 * how many examples its pre-activation x . W_in + b_in is > 0, x being the residual after
 * the block's attention. An example is one of o->test_n inputs at one of the --at indices
 * (every one the input has), or at every position when o->nat is 0. A unit that never fires
 * there is dead (it passes nothing on), one that always fires is linear there; only the units
 * that change sign compute a non-linear function of the input. */
typedef struct {
    int L, M;
    long n_inputs, n_examples;
    long *fire;             /* (L, M) */
} ProbeNeurons;

int probe_neurons(const Model *m, const RaspProgram *p, const ProbeOptions *o, ProbeNeurons *r, StrBuf *err);
void probe_neurons_free(ProbeNeurons *r);

#endif
