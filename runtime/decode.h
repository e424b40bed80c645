/* decode.h — reading values back out of a model: the output from the logits, and any
 * labelled s-op from the residual stream (for --trace and the analysis tools).
 *
 * Residual labels are "name:value" (one dimension of a categorical s-op) or "name"
 * (a numerical s-op, or `one`); labels never contain ':' otherwise, so a label splits at
 * its FIRST ':'. */
#ifndef TRACC_DECODE_H
#define TRACC_DECODE_H

#include "runtime/model.h"

/* A categorical s-op decodes to no value when its largest dimension is below this:
 * a compiled model writes no value as the zero vector (as Tracr does). */
#define DEC_NONE_BELOW 0.5f

/* The output at one position from its logits row (VO): categorical, the value of the
 * first column with the largest logit; numerical, the logit itself (dec_float). */
Value dec_output(const Model *m, const float *logits);

/* A float as a Value, rounded to the shortest decimal that reads back as the same float
 * (so 0.1f prints as 0.1, not 0.10000000149011612). */
Value dec_float(float x);

typedef struct {
    const char *name;       /* the s-op */
    int categorical;
    int ndims;
    int *dims;              /* (ndims) residual dimensions, in label order */
    const char **values;    /* (ndims) categorical: the value text of each dimension */
} DecSop;

typedef struct {
    int nsops;
    DecSop *sops;           /* in order of first appearance in the residual labels */
    Arena arena;
} DecLayout;

void dec_layout_init(DecLayout *d, const Model *m);
void dec_layout_free(DecLayout *d);
const DecSop *dec_layout_find(const DecLayout *d, const char *name);

/* Decode one s-op from one residual row (C). Categorical: the index into s->values of the
 * largest dimension, or -1 (no value) when it is below DEC_NONE_BELOW. */
int dec_categorical(const DecSop *s, const float *resid);
/* Numerical: the value of its dimension. */
float dec_numerical(const DecSop *s, const float *resid);
/* Either, as a Value: VAL_STR of the value text, VAL_NONE, or a float. The string points
 * into the model's labels. */
Value dec_sop_value(const DecSop *s, const float *resid);

#endif
