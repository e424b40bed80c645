/* coords.h — program coordinates of a model's weights: every parameter named by what the
 * compiler made it for. Residual dimensions by their labels (`tokens:a`, `count_a:3`),
 * heads by the operation they implement (`count_a = selector_width(bin_idx)`), MLP hidden
 * units by the map that owns them, embedding rows by token and position, unembed columns by
 * output value. Built from the model's metadata (residual labels, `layers`, vocab, output),
 * so it works on any model file; a model without `layers` gets plain names. */
#ifndef TRACC_COORDS_H
#define TRACC_COORDS_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/util.h"
#include "runtime/model.h"

typedef struct {
    const char *desc;       /* "count_a = selector_width(bin_idx)", or NULL: not used */
    const char *label;      /* the s-op it computes, or NULL */
    const char *selector;   /* the selector it implements, or NULL */
    const char *op;
} CoordHead;

typedef struct {
    int first, last;        /* hidden units first .. last-1 */
    const char *desc;       /* "count_a = selector_width(count_a@sw)" */
    const char *label;      /* the s-op it computes */
    const char *op;
} CoordMap;

typedef struct {
    const Model *m;
    int L, NH, M, C;
    CoordHead *heads;       /* (L * NH) */
    int *nmaps;             /* (L) */
    CoordMap **maps;        /* (L)[nmaps[l]] */
    int *neuron_map;        /* (L * M) index into maps[l], or -1 */
    const char **tokens;    /* (d_vocab) token text of each W_E row */
    const char **outvals;   /* (d_vocab_out) text of each output column ("out" when numerical) */
    Arena arena;
} Coords;

void coord_init(Coords *c, const Model *m);
void coord_free(Coords *c);

/* The label of residual dimension d, "(bias)" for d == C (the bias row of an augmented
 * matrix). */
const char *coord_label(const Coords *c, int d);

/* The name part of a label: "count_a" for "count_a:3" and for "count_a@sw"'s owner
 * "count_a@sw" (scratch dimensions keep their own name). Written into buf. */
void coord_label_name(const char *label, char *buf, size_t cap);

/* "block 1 head 0 (out = aggregate(select_1))" / "block 1 head 3 (unused)". */
void coord_head_name(const Coords *c, int l, int h, StrBuf *out);
/* "block 0 neuron 5 (count_a = selector_width(count_a@sw))" / "(unused)". */
void coord_neuron_name(const Coords *c, int l, int j, StrBuf *out);
/* The map owning hidden unit j of block l, or NULL. */
const CoordMap *coord_neuron_map(const Coords *c, int l, int j);

/* The tensor holding parameter `index` (an offset into the parameter block) and its
 * multi-index (up to 3). Returns the table index, or -1 when out of range. */
int coord_locate(const Model *m, size_t index, int64_t idx[3]);

/* The parameter's TransformerLens name and index, "blocks.0.attn.W_K[0, 1, 2]". */
void coord_param_id(const Model *m, size_t index, StrBuf *out);
/* A slice of one tensor by the names prune and diff print: "blocks.0.attn.W_V" (all of
 * it) or an index prefix, "blocks.0.attn.W_V[0]" (head 0), "blocks.0.attn.W_V[0, 2]" (one
 * row), "embed.W_E[1, 2]" (one weight); the last index may be a range I:J (rows I .. J-1,
 * "blocks.0.mlp.W_out[2:94]"). Row-major, so a prefix is one contiguous range:
 * *start (into params_memory) and *len. Returns 0, or -1 with a message naming the spec.
 * With m NULL only the text is checked (a CLI checking its options before loading a model). */
int coord_parse_slice(const Model *m, const char *spec, size_t *start, size_t *len, StrBuf *err);

/* Several slices joined by '+' ("blocks.1.mlp.W_in+blocks.1.mlp.b_in"; a '+' inside
 * brackets does not join): their ranges, adjacent ones merged, and how many weights in all.
 * With m NULL only the text is checked and sl is left empty. */
typedef struct {
    int n;
    size_t *start, *len;
    size_t total;
} CoordSlices;
int coord_parse_slices(const Model *m, const char *spec, CoordSlices *sl, StrBuf *err);
void coord_slices_free(CoordSlices *sl);

/* What the parameter does in program terms, e.g.
 * "block 0 head 0 (count_a = selector_width(bin_idx)): key reads tokens:a (QK dim 2)". */
void coord_param_meaning(const Coords *c, size_t index, StrBuf *out);

/* A hidden-unit view of the parameters, for pruning whole units (`prune --neurons`):
 * MLP hidden units (their W_in column, b_in entry and W_out row) and head dimensions (a
 * QK dimension: W_Q and W_K columns with b_Q, b_K; an OV dimension: W_V column, b_V,
 * W_O row). */
typedef enum { UNIT_NEURON, UNIT_QK, UNIT_OV } CoordUnitKind;

typedef struct {
    CoordUnitKind kind;
    int l, h, j;            /* block, head (-1 for neurons), unit index */
} CoordUnit;

/* All units of the model (n returned). */
CoordUnit *coord_units(const Model *m, int *n);
/* The parameter indices of a unit; returns how many (idx must hold 2C + 2 + ... : use
 * coord_unit_size). */
size_t coord_unit_size(const Model *m, const CoordUnit *u);
size_t coord_unit_params(const Model *m, const CoordUnit *u, size_t *idx);
void coord_unit_name(const Coords *c, const CoordUnit *u, StrBuf *out);

#endif
