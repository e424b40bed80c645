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
    /* The stage walk (from the model's `layers` metadata): the residual stage
     * (FwdState.resids: 0 the embedding, 2l+1 after block l's attention, 2l+2 after its
     * MLP) from which the s-op is complete: after the first sub-layer that lists it as an
     * output; 0 for one no sub-layer writes (tokens, indices, one); for a virtual s-op, the
     * latest stage among the s-ops its forms read. A model without layer metadata: the
     * final residual for everything but tokens, indices and one. */
    int stage;
    int written;            /* its place in the order the layers write s-ops (0, 1, ...), or
                               -1 when no sub-layer writes it (no layer metadata: every
                               residual s-op in layout order); -1 for virtual ones */
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

/* Numerical values agree within DEC_NUM_TOL * max(1, |value|). */
#define DEC_NUM_TOL 1e-4

/* 1 if s decoded from one residual row is `want`: categorical, the decoded value's text is
 * want's (val_format), or both are no value; numerical, want is a number and the decoded
 * value is within DEC_NUM_TOL of it (a numerical s-op never agrees with no value). */
int dec_sop_agrees(const DecSop *s, const float *resid, Value want);
/* The same rule for the output at one position: categorical, the value dec_output decodes
 * (no value at a top logit <= DEC_NONE_BELOW) equals want; numerical, within DEC_NUM_TOL.
 * Every command judges outputs this way (docs/model-format.md, "Reading outputs"). */
int dec_output_agrees(const Model *m, const float *logits, Value want);

/* The residual s-ops in the order the model writes them (DecSop.written): fills idx
 * (capacity d->nsops) with indices into d->sops and returns how many. */
int dec_written_order(const DecLayout *d, int *idx);

/* Calls fn on every entry of the model's `layers` metadata in order (block by block, attn
 * before mlp), with the residual stage the entry's sub-layer completes (2l+1 attention, 2l+2
 * MLP); stops at the first nonzero return and returns it (0 when every entry was visited). */
struct json_t;
int dec_layers_foreach(const Model *m, int (*fn)(struct json_t *entry, int stage, void *ctx), void *ctx);

/* "embedding" / "block L attention" / "block L MLP" for a residual stage. */
void dec_stage_name(int stage, char *buf, size_t cap);

/* ---------------------------------------------------------------- inputs */

/* Model rows (W_E) of n vocab values, by their text. Returns 0, or -1 with a message naming
 * the first value the model lacks (or that is its BOS or PAD token). */
int dec_vocab_rows(const Model *m, const Value *vocab, int n, int32_t *rows, StrBuf *err);

/* Pack nb inputs into one forward batch: row b of `rows` ((nb, T) with T the returned
 * length, 1 + the longest input) is BOS, then row_of[t] for each of input b's n[b] tokens
 * t (toks + b * stride; vocab indices), then PAD; lens[b] = n[b] + 1. */
int dec_pack_batch(const Model *m, const int32_t *row_of, const int32_t *toks, size_t stride, const int *n, int nb,
                   int32_t *rows, int *lens);

#endif
