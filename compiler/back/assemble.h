/* assemble.h — the residual layout, and the lowered, crafted program as a model file
 * (docs/model-format.md): uniform tensors, embeddings, BOS discipline, unembed, metadata.
 * asm_compile runs the whole compiler: lower, lay out, craft, assemble. */
#ifndef TRACC_ASSEMBLE_H
#define TRACC_ASSEMBLE_H

#include "compiler/back/craft.h"
#include "compiler/back/lower.h"
#include "runtime/model.h"

typedef struct {
    int fuse;               /* 1 (default): virtual and fused s-ops; 0: --no-fuse */
    double sharpness;       /* 0: chosen per head; > 0: every head uses it (testing only) */
    const char *version;    /* tool version for the metadata */
    /* The front-end overrides the program was loaded with, recorded so that `tracc verify
     * MODEL` loads the same program again: NULL, 0, -1 when not given. */
    const char *vocab;
    int max_len;
    int causal;
    int conditioning;       /* ASM_COND_TRACR (default) or ASM_COND_BALANCED (craft.h) */
} AsmOptions;

enum { ASM_COND_TRACR = 0, ASM_COND_BALANCED = 1 };

/* --conditioning balanced: the embedding writes one, tokens and indices with this value
 * instead of 1 (its readers divide by it; a power of two, so nothing else changes) */
#define ASM_EMBED_GAIN 2.0f

#define ASM_OPTIONS_DEFAULT ((AsmOptions){1, 0, "", NULL, 0, -1, ASM_COND_TRACR})

typedef struct {
    int n_layers, d_model, n_heads, d_head, d_mlp;
    size_t params, nonzero;
    size_t unembed_params;  /* W_U and b_U (Tracr's parameter counts have no unembed) */
    size_t unembed_nonzero;
    int exact;              /* every margin > 1 (craft.h) */
    double min_margin;
    int mix_sop;            /* craft.h: -1, or the aggregate that keeps the bounds from a proof */
    double c_min, c_max;    /* the sharpness range used by the heads (0 when none) */
} AsmSummary;

/* The residual layout of a lowered program (labels in docs/compiler.md), for the
 * constructions a policy chooses (NULL: the default policy). */
int asm_layout(const LowerProgram *lp, CraftLayout *lay, StrBuf *err);
int asm_layout_policy(const LowerProgram *lp, const CraftPolicy *pol, CraftLayout *lay, StrBuf *err);
void asm_layout_free(CraftLayout *lay);

/* The model of a lowered and crafted program. NULL with a message on failure. */
Model *asm_model(const LowerProgram *lp, const CraftLayout *lay, const CraftResult *cr,
                 const AsmOptions *opt, StrBuf *err);

/* Compile a checked program to a model. sum may be NULL. NULL with a message on failure. */
Model *asm_compile(const RaspProgram *p, const AsmOptions *opt, AsmSummary *sum, StrBuf *err);

#endif
