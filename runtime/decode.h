/* decode.h — reading values back out of a model: the output from the logits, and any
 * labelled s-op from the residual stream (for --trace and the analysis tools).
 *
 * Residual labels are "name:value" (one dimension of a categorical s-op) or "name"
 * (a numerical s-op, or `one`); labels never contain ':' otherwise, so a label splits at
 * its FIRST ':'.
 *
 * An s-op the compiler fused into its readers has no dimensions of its own; the model's
 * `compiler.virtual` metadata gives its linear form over residual labels (one form per
 * value when categorical), and dec_layout_add_virtual adds such s-ops to a layout so that
 * they decode like the others: the value whose form is largest, no value unless it is
 * above DEC_NONE_BELOW; numerical, the form's value. */
#ifndef TRACC_DECODE_H
#define TRACC_DECODE_H

#include "runtime/model.h"

/* A categorical s-op decodes to a value only when its largest dimension is ABOVE this (more
 * than half a one-hot), else to no value: a compiled model writes no value as the zero
 * vector (as Tracr does), and a categorical aggregate whose selected values disagree writes
 * their mixture, which an even split between two values (0.5 each) must not decode as
 * either. The compiler proves exact models to within 1/2 of the one-hot, so a real value is
 * always above it. The compiler's unembed reads the output's one-hot with weight 1 and no
 * bias, so the output's logits are that one-hot and the same rule applies to them
 * (dec_output). */
#define DEC_NONE_BELOW 0.5f

/* The output at one position from its logits row (VO). Categorical: the value of the
 * first column with the largest logit, or no value (VAL_NONE) when that logit is not above
 * DEC_NONE_BELOW (or is NaN); numerical: the logit itself (dec_float). */
Value dec_output(const Model *m, const float *logits);
/* Categorical outputs only: the column dec_output picks, or -1 for no value. */
int dec_output_column(const Model *m, const float *logits);

/* A float as a Value, rounded to the shortest decimal that reads back as the same float
 * (so 0.1f prints as 0.1, not 0.10000000149011612). */
Value dec_float(float x);

typedef struct {
    const char *name;       /* the s-op */
    int categorical;
    int ndims;              /* residual dimensions; for a virtual s-op, its forms (one per
                               value when categorical, 1 when numerical) */
    int *dims;              /* (ndims) residual dimensions, in label order; NULL when virtual */
    const char **values;    /* (ndims) categorical: the value text of each dimension (form) */
    /* Added for virtual s-ops (compiler.virtual); all 0/NULL for residual ones. */
    int isvirtual;
    int *form_start;        /* (ndims + 1) form k is terms form_start[k] .. form_start[k+1]-1 */
    int *form_dim;          /* (terms) residual dimension of each term */
    float *form_coef;       /* (terms) its coefficient */
} DecSop;

typedef struct {
    int nsops;
    DecSop *sops;           /* residual s-ops in order of first appearance in the residual
                               labels; after dec_layout_add_virtual, each virtual s-op right
                               after the last residual s-op its forms read (a form
                               that reads nothing: at the end) */
    Arena arena;
    int nresidual;          /* added: how many of sops have residual dimensions */
} DecLayout;

void dec_layout_init(DecLayout *d, const Model *m);
/* Add the s-ops of the model's `compiler.virtual` metadata (nothing when the model has
 * none). Entries that cannot be used (not an object, a name that has dimensions or comes
 * twice, an unknown residual label, a coefficient that is not a finite number, ...) are
 * skipped: returns the number skipped, the first described in err
 * ("compiler.virtual[2].form.true: unknown residual label 'x:1'").
 * A second call does nothing. */
int dec_layout_add_virtual(DecLayout *d, const Model *m, StrBuf *err);
void dec_layout_free(DecLayout *d);
const DecSop *dec_layout_find(const DecLayout *d, const char *name);

/* Decode one s-op from one residual row (C). Categorical: the index into s->values of the
 * largest dimension (form), or -1 (no value) when it is not above DEC_NONE_BELOW. */
int dec_categorical(const DecSop *s, const float *resid);
/* Numerical: the value of its dimension (form). */
float dec_numerical(const DecSop *s, const float *resid);
/* Either, as a Value: VAL_STR of the value text, VAL_NONE, or a float. The string points
 * into the layout (the model's labels, or the layout's arena for a virtual s-op). */
Value dec_sop_value(const DecSop *s, const float *resid);

#endif
