/* readout.h — reading a program's s-ops back out of a model's residual stream, through the
 * labels the compiler gave the residual dimensions ("direct read"), and sampling inputs that
 * both the interpreter and the model run on. Shared by `tracc diff --inputs` and `tracc probe`.
 *
 * An s-op is readable when it has residual dimensions (decoded as runtime/decode.h does: a
 * categorical s-op takes the value of its largest dimension, no value unless it is above
 * 0.5) or when the
 * compiler made it virtual and recorded its linear form over residual labels in the model's
 * `compiler.virtual` metadata (then each value's score is that form applied to the residual,
 * decoded the same way). It is read at the residual stage right after the sub-layer that
 * writes it (from `layers`; the embedding for tokens, indices and virtual forms of them). */
#ifndef TRACC_READOUT_H
#define TRACC_READOUT_H

#include <stdint.h>

#include "common/arena.h"
#include "common/rng.h"
#include "compiler/rasp.h"
#include "runtime/model.h"

typedef struct {
    int dim;
    float coef;
} RoTerm;

typedef struct {
    const char *name;       /* the program s-op's label */
    int sop;                /* its id in the program */
    int readable;           /* 0: neither residual dimensions nor a recorded linear form */
    int isvirtual;          /* read through a compiler.virtual linear form */
    int categorical;
    /* categorical: one form per readable value; numerical: nforms = 1 */
    int nforms;
    int *form_start;        /* (nforms + 1) into terms */
    RoTerm *terms;
    int *form_val;          /* (nforms) the program value index of each form, or -1 when
                               the model knows a value the program's value set lacks */
    int stage;              /* residual stage where it is complete (FwdState.resids) */
    const char *where;      /* "embedding", "block 0 attention", "block 1 MLP" */
} RoSop;

typedef struct {
    int nsops;
    RoSop *sops;            /* every s-op that is readable or named, in program order */
    Arena arena;
} RoLayout;

/* The readable s-ops of program p in model m (p is the model's program or any program over
 * the same residual labels). */
void ro_layout_init(RoLayout *lay, const Model *m, const RaspProgram *p);
void ro_layout_free(RoLayout *lay);
const RoSop *ro_layout_find(const RoLayout *lay, const char *name);

/* The s-op decoded from one residual row (C floats): categorical, the program value index,
 * RASP_NONE for no value, or -2 for a value outside the program's set; numerical, the value
 * in *x (returns 0). */
int ro_decode(const RoSop *s, const float *row, double *x);
/* 1 if the decoded value agrees with the interpreter's value index `want` (RASP_NONE
 * included); numerical values agree within 1e-4 * max(1, |value|). */
int ro_agrees(const RoSop *s, const RaspProgram *p, const float *row, int32_t want);

/* "embedding" / "block L attention" / "block L MLP" for a residual stage. */
void ro_stage_name(int stage, char *buf, size_t cap);

/* Program vocab index -> model row (W_E), by token text. Returns 0, or -1 with a message
 * naming the first token the model lacks. */
int ro_vocab_rows(const Model *m, const RaspProgram *p, int32_t *rows, StrBuf *err);

/* One input: a length uniform in len_min..len_max, tokens uniform over V vocab indices. */
int ro_sample(Rng *r, int V, int len_min, int len_max, int32_t *toks);

/* A RASP length range "N" or "MIN-MAX" (1 <= MIN <= MAX <= max_len). Returns 0, or -1 with
 * a message. */
int ro_parse_len(const char *s, int max_len, int *lo, int *hi, StrBuf *err);
/* A list of RASP indices "I[,J,K-L]" (each < max_len), sorted and deduplicated into at
 * (capacity max_len). Returns the count, or -1 with a message. */
int ro_parse_at(const char *s, int max_len, int *at, StrBuf *err);
/* A list of positive integers "1,2,4,8" in increasing order. Returns the count (at most cap),
 * or -1 with a message. */
int ro_parse_ks(const char *s, long *ks, int cap, StrBuf *err);

#endif
