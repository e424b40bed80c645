/* readout.h — a program's s-ops read back out of a model's residual stream ("direct read")
 * against the interpreter, and the inputs both run on. Shared by `tracc diff --inputs` and
 * `tracc probe`.
 *
 * The decoding itself is runtime/decode.h's, the one every command uses (run --trace,
 * verify, diff, probe): an s-op is readable when it has residual dimensions or a linear form
 * in `compiler.virtual`, and is read at DecSop.stage, the residual stage right after the
 * sub-layer that writes it. This module only ties those decoders to a program's s-ops and
 * value indices, and parses the options both commands take. */
#ifndef TRACC_READOUT_H
#define TRACC_READOUT_H

#include <stdint.h>

#include "common/arena.h"
#include "common/rng.h"
#include "compiler/front/rasp.h"
#include "runtime/decode.h"
#include "runtime/model.h"

/* The layout of every s-op the model can be read for: dec_layout_init and
 * dec_layout_add_virtual (an unusable virtual form leaves that s-op unreadable). Free with
 * dec_layout_free. */
void ro_layout_init(DecLayout *d, const Model *m);

/* The model's decoder for program s-op s (from a layout with dec_layout_add_virtual
 * applied), or NULL when the model has neither dimensions nor a linear form for it, or
 * reads it with the other encoding. */
const DecSop *ro_find(const DecLayout *d, const RaspSop *s);

/* 1 if ds (s's decoder) read from one residual row agrees with the interpreter's value
 * index `want` of s (RASP_NONE included): dec_sop_agrees on s's value. */
int ro_agrees(const DecSop *ds, const RaspSop *s, const float *row, int32_t want);

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
